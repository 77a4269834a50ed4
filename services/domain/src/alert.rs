//! Alert rules: what a rule watches on one datastream ([`Condition`]), checked
//! once when it is made ([`RuleSpec::new`]), so that a stored rule can always
//! be evaluated. Whether the caller may watch that datastream at that
//! resolution is the policy's decision (a rule is a standing read), made by
//! the API's access gate (and, while the rule runs, by the alerts service's).
//!
//! Evaluation is pure too: [`observe`] runs one reading through a rule and
//! [`tick`] lets a silent rule check the clock; both change the rule's
//! [`State`] and return the [`Change`] (fired, resolved) it caused, which the
//! alerts service stores as one event.

use serde::{Deserialize, Serialize};

use crate::policy::Resolution;
use crate::Micros;

/// The shortest aggregate interval a rule may watch, and the longest.
pub const MIN_AGGREGATE_SECS: i64 = 60;
pub const MAX_AGGREGATE_SECS: i64 = 86_400;
/// A silent-sensor rule waits at least this long without a reading.
pub const MIN_SILENT_SECS: i64 = 60;
/// No rule waits longer than a week, for a condition or for silence.
pub const MAX_FOR_SECS: i64 = 7 * 86_400;

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// The value is above `threshold`.
    Above { threshold: f64 },
    /// The value is below `threshold`.
    Below { threshold: f64 },
    /// No reading for the rule's duration (fires from time, not from readings).
    Silent,
    /// The value changes faster than `per_minute` (absolute change per minute
    /// between consecutive values).
    Rate { per_minute: f64 },
}

impl Condition {
    /// The name stored and shown: `above`, `below`, `silent`, `rate`.
    pub fn kind(&self) -> &'static str {
        match self {
            Condition::Above { .. } => "above",
            Condition::Below { .. } => "below",
            Condition::Silent => "silent",
            Condition::Rate { .. } => "rate",
        }
    }

    /// The number stored beside the kind (threshold or change per minute).
    pub fn threshold(&self) -> Option<f64> {
        match *self {
            Condition::Above { threshold } | Condition::Below { threshold } => Some(threshold),
            Condition::Rate { per_minute } => Some(per_minute),
            Condition::Silent => None,
        }
    }

    /// The condition back from its stored kind and number.
    pub fn from_stored(kind: &str, threshold: Option<f64>) -> Option<Condition> {
        match (kind, threshold) {
            ("above", Some(threshold)) => Some(Condition::Above { threshold }),
            ("below", Some(threshold)) => Some(Condition::Below { threshold }),
            ("rate", Some(per_minute)) => Some(Condition::Rate { per_minute }),
            ("silent", None) => Some(Condition::Silent),
            _ => None,
        }
    }
}

/// Why a rule cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("the threshold must be a finite number")]
    NotFinite,
    #[error("a change per minute must be greater than 0")]
    RateNotPositive,
    #[error("the hysteresis must be a finite number of at least 0")]
    BadHysteresis,
    #[error("a silent-sensor rule watches the time without readings, not a value: it takes no hysteresis")]
    SilentHysteresis,
    #[error("a silent-sensor rule watches raw readings arriving, not aggregates")]
    SilentAggregate,
    #[error("a silent-sensor rule needs at least {MIN_SILENT_SECS} s without a reading (for_minutes >= 1)")]
    SilentTooShort,
    #[error("a rule waits at most {MAX_FOR_SECS} s (7 days)")]
    TooLong,
    #[error("the duration must not be negative")]
    Negative,
    #[error("an aggregate interval must be between {MIN_AGGREGATE_SECS} s and {MAX_AGGREGATE_SECS} s")]
    BadInterval,
}

/// A rule's condition, duration, hysteresis and resolution, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleSpec {
    condition: Condition,
    for_secs: i64,
    hysteresis: f64,
    resolution: Resolution,
}

impl RuleSpec {
    /// Checks a rule: finite numbers, a positive rate, a silent rule on raw
    /// readings of at least a minute, aggregates between a minute and a day.
    pub fn new(
        condition: Condition,
        for_secs: i64,
        hysteresis: f64,
        resolution: Resolution,
    ) -> Result<RuleSpec, RuleError> {
        if let Some(threshold) = condition.threshold() {
            if !threshold.is_finite() {
                return Err(RuleError::NotFinite);
            }
        }
        if let Condition::Rate { per_minute } = condition {
            if per_minute <= 0.0 {
                return Err(RuleError::RateNotPositive);
            }
        }
        if !hysteresis.is_finite() || hysteresis < 0.0 {
            return Err(RuleError::BadHysteresis);
        }
        if for_secs < 0 {
            return Err(RuleError::Negative);
        }
        if for_secs > MAX_FOR_SECS {
            return Err(RuleError::TooLong);
        }
        if let Resolution::Aggregate { interval_secs } = resolution {
            if !(MIN_AGGREGATE_SECS..=MAX_AGGREGATE_SECS).contains(&interval_secs) {
                return Err(RuleError::BadInterval);
            }
        }
        if condition == Condition::Silent {
            if hysteresis != 0.0 {
                return Err(RuleError::SilentHysteresis);
            }
            if resolution != Resolution::Raw {
                return Err(RuleError::SilentAggregate);
            }
            if for_secs < MIN_SILENT_SECS {
                return Err(RuleError::SilentTooShort);
            }
        }
        Ok(RuleSpec { condition, for_secs, hysteresis, resolution })
    }

    pub fn condition(&self) -> Condition {
        self.condition
    }

    /// How long the condition must hold before the rule fires; for a silent
    /// rule, how long without a reading.
    pub fn for_secs(&self) -> i64 {
        self.for_secs
    }

    /// How far back past the threshold a firing value must come to resolve.
    pub fn hysteresis(&self) -> f64 {
        self.hysteresis
    }

    pub fn resolution(&self) -> Resolution {
        self.resolution
    }

    /// The stored resolution: 0 for raw readings, else the interval in seconds.
    pub fn resolution_secs(&self) -> i64 {
        match self.resolution {
            Resolution::Raw => 0,
            Resolution::Aggregate { interval_secs } => interval_secs,
        }
    }
}

/// The stored resolution back: 0 is raw.
pub fn resolution_from_secs(secs: i64) -> Resolution {
    if secs == 0 {
        Resolution::Raw
    } else {
        Resolution::Aggregate { interval_secs: secs }
    }
}

/// The language of a rule's e-mails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    De,
    En,
}

impl Language {
    /// The name stored and shown: `de`, `en`.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::De => "de",
            Language::En => "en",
        }
    }

    /// The language back from its stored name.
    pub fn from_stored(name: &str) -> Option<Language> {
        match name {
            "de" => Some(Language::De),
            "en" => Some(Language::En),
            _ => None,
        }
    }
}

/// Where a rule stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The condition does not hold (and never fired since the rule was made or changed).
    Ok,
    /// The condition holds, not yet for the rule's duration.
    Pending,
    /// The rule fired and has not resolved yet.
    Firing,
    /// The rule fired and resolved since; it may fire again.
    Resolved,
}

impl Status {
    /// The name stored and shown.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Pending => "pending",
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }

    /// The status back from its stored name.
    pub fn from_stored(name: &str) -> Option<Status> {
        match name {
            "ok" => Some(Status::Ok),
            "pending" => Some(Status::Pending),
            "firing" => Some(Status::Firing),
            "resolved" => Some(Status::Resolved),
            _ => None,
        }
    }
}

/// A rule's aggregate interval as the API writes it (`15m`, `1h`, `1d`;
/// seconds when nothing larger divides it); `None` for raw readings.
pub fn aggregate_label(resolution: Resolution) -> Option<String> {
    let Resolution::Aggregate { interval_secs } = resolution else { return None };
    Some(match interval_secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    })
}

/// The open bucket of a rule on aggregates: the readings of one
/// epoch-aligned interval so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub start: Micros,
    pub sum: f64,
    pub count: i64,
}

/// A rule's state, as `alert_states` keeps it, plus the time a silent rule
/// counts from before its first reading (the rule's last change).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct State {
    pub status: Status,
    /// Pending: since when the condition holds; firing/resolved: when that began.
    pub since: Option<Micros>,
    pub fired_at: Option<Micros>,
    pub fired_value: Option<f64>,
    pub resolved_at: Option<Micros>,
    pub resolved_value: Option<f64>,
    /// The newest evaluated value and its time (for aggregates: the newest
    /// evaluated bucket's average and start); a silent rule's newest reading.
    pub last_value: Option<f64>,
    pub last_reading_at: Option<Micros>,
    pub bucket: Option<Bucket>,
    /// A silent rule without any reading counts from here.
    pub watching_since: Micros,
}

impl State {
    /// The state of a new (or reset) rule, watching from `since`.
    pub fn new(watching_since: Micros) -> State {
        State {
            status: Status::Ok,
            since: None,
            fired_at: None,
            fired_value: None,
            resolved_at: None,
            resolved_value: None,
            last_value: None,
            last_reading_at: None,
            bucket: None,
            watching_since,
        }
    }
}

/// A state change: each is one event, notified once per channel target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// The rule fired at `at`; `value` is the value that made it fire (none
    /// for a silent rule).
    Fired { at: Micros, value: Option<f64> },
    /// The rule resolved at `at` with `value` (a silent rule: the reading that broke the silence).
    Resolved { at: Micros, value: Option<f64> },
}

impl Change {
    /// The event's kind as stored: `firing` or `resolved`.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Fired { .. } => "firing",
            Change::Resolved { .. } => "resolved",
        }
    }

    pub fn at(&self) -> Micros {
        match *self {
            Change::Fired { at, .. } | Change::Resolved { at, .. } => at,
        }
    }

    pub fn value(&self) -> Option<f64> {
        match *self {
            Change::Fired { value, .. } | Change::Resolved { value, .. } => value,
        }
    }
}

const MICROS_PER_SEC: i64 = 1_000_000;

/// Evaluates one reading of the rule's datastream at `time`. Readings older
/// than the newest one evaluated (for aggregates: older than the open
/// bucket) are ignored, as is a repeat of the newest one. Returns the state
/// change it caused, if any (a rule on aggregates changes only when a
/// reading of a later bucket closes the open one).
pub fn observe(spec: &RuleSpec, state: &mut State, time: Micros, value: f64) -> Option<Change> {
    if spec.condition == Condition::Silent {
        return observe_silent(state, time, value);
    }
    match spec.resolution {
        Resolution::Raw => {
            if state.last_reading_at.is_some_and(|last| time <= last) {
                return None;
            }
            evaluate(spec, state, time, 0, value)
        }
        Resolution::Aggregate { interval_secs } => {
            let interval = interval_secs * MICROS_PER_SEC;
            let start = Micros(time.0.div_euclid(interval) * interval);
            match state.bucket {
                Some(open) if start == open.start => {
                    state.bucket = Some(Bucket { sum: open.sum + value, count: open.count + 1, ..open });
                    None
                }
                Some(open) if start < open.start => None,
                open => {
                    if state.last_reading_at.is_some_and(|last| start <= last) {
                        return None;
                    }
                    state.bucket = Some(Bucket { start, sum: value, count: 1 });
                    let open = open.filter(|b| b.count > 0)?;
                    evaluate(spec, state, open.start, interval, open.sum / open.count as f64)
                }
            }
        }
    }
}

/// Checks a silent rule against the clock: it fires `for_secs` after its
/// newest reading (or, without any, after it began watching). Other rules
/// never change from time alone.
pub fn tick(spec: &RuleSpec, state: &mut State, now: Micros) -> Option<Change> {
    if spec.condition != Condition::Silent || state.status == Status::Firing {
        return None;
    }
    let from = state.last_reading_at.unwrap_or(state.watching_since);
    let at = Micros(from.0.saturating_add(spec.for_secs * MICROS_PER_SEC));
    if now < at {
        return None;
    }
    fire(state, at, None)
}

fn observe_silent(state: &mut State, time: Micros, value: f64) -> Option<Change> {
    let newest = state.last_reading_at.is_none_or(|last| time > last);
    if newest {
        state.last_reading_at = Some(time);
        state.last_value = Some(value);
    }
    (state.status == Status::Firing).then(|| resolve(state, time, Some(value)))
}

/// One evaluated value (a reading, or a closed bucket's average spanning
/// `span` µs from `time`) against the rule's condition.
fn evaluate(spec: &RuleSpec, state: &mut State, time: Micros, span: i64, value: f64) -> Option<Change> {
    let previous = state.last_value.zip(state.last_reading_at);
    state.last_value = Some(value);
    state.last_reading_at = Some(time);
    let (measured, threshold, above) = match spec.condition {
        Condition::Above { threshold } => (value, threshold, true),
        Condition::Below { threshold } => (value, threshold, false),
        Condition::Rate { per_minute } => {
            let (last_value, last_time) = previous?;
            let minutes = (time.0 - last_time.0) as f64 / (60.0 * MICROS_PER_SEC as f64);
            ((value - last_value).abs() / minutes, per_minute, true)
        }
        Condition::Silent => return None,
    };
    let (holds, clears) = if above {
        (measured > threshold, measured < threshold - spec.hysteresis)
    } else {
        (measured < threshold, measured > threshold + spec.hysteresis)
    };
    match state.status {
        Status::Firing => clears.then(|| resolve(state, time, Some(measured))),
        Status::Ok | Status::Resolved | Status::Pending if holds => {
            let since = match (state.status, state.since) {
                (Status::Pending, Some(since)) => since,
                _ => time,
            };
            state.status = Status::Pending;
            state.since = Some(since);
            let held = time.0 + span - since.0;
            if held >= spec.for_secs * MICROS_PER_SEC {
                fire(state, time, Some(measured))
            } else {
                None
            }
        }
        Status::Pending => {
            state.status = if state.resolved_at.is_some() { Status::Resolved } else { Status::Ok };
            state.since = if state.status == Status::Resolved { state.resolved_at } else { None };
            None
        }
        Status::Ok | Status::Resolved => None,
    }
}

fn fire(state: &mut State, at: Micros, value: Option<f64>) -> Option<Change> {
    state.status = Status::Firing;
    state.since = Some(at);
    state.fired_at = Some(at);
    state.fired_value = value;
    Some(Change::Fired { at, value })
}

fn resolve(state: &mut State, at: Micros, value: Option<f64>) -> Change {
    state.status = Status::Resolved;
    state.since = Some(at);
    state.resolved_at = Some(at);
    state.resolved_value = value;
    Change::Resolved { at, value }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(condition: Condition, for_secs: i64, hysteresis: f64, resolution: Resolution) -> RuleSpec {
        RuleSpec::new(condition, for_secs, hysteresis, resolution).unwrap()
    }

    fn secs(s: i64) -> Micros {
        Micros(s * 1_000_000)
    }

    /// Feeds `(seconds, value)` readings; the changes they caused.
    fn feed(spec: &RuleSpec, state: &mut State, readings: &[(i64, f64)]) -> Vec<Change> {
        readings.iter().filter_map(|&(t, v)| observe(spec, state, secs(t), v)).collect()
    }

    #[test]
    fn above_without_duration_fires_at_once_and_resolves_past_the_hysteresis() {
        let rule = spec(Condition::Above { threshold: 200.0 }, 0, 10.0, Resolution::Raw);
        let mut state = State::new(secs(0));
        assert_eq!(feed(&rule, &mut state, &[(1, 150.0), (2, 200.0)]), []);
        assert_eq!(state.status, Status::Ok);
        assert_eq!(feed(&rule, &mut state, &[(3, 201.0)]), [Change::Fired { at: secs(3), value: Some(201.0) }]);
        assert_eq!(state.status, Status::Firing);
        // Within the hysteresis the rule keeps firing; nothing fires twice.
        assert_eq!(feed(&rule, &mut state, &[(4, 195.0), (5, 250.0), (6, 190.0)]), []);
        assert_eq!(feed(&rule, &mut state, &[(7, 189.0)]), [Change::Resolved { at: secs(7), value: Some(189.0) }]);
        assert_eq!(
            (state.status, state.fired_at, state.resolved_value),
            (Status::Resolved, Some(secs(3)), Some(189.0))
        );
        assert_eq!((state.last_value, state.last_reading_at), (Some(189.0), Some(secs(7))));
        // It may fire again.
        assert_eq!(feed(&rule, &mut state, &[(8, 300.0)]), [Change::Fired { at: secs(8), value: Some(300.0) }]);
    }

    #[test]
    fn a_duration_must_hold_before_firing_and_a_break_starts_it_again() {
        let rule = spec(Condition::Above { threshold: 10.0 }, 60, 0.0, Resolution::Raw);
        let mut state = State::new(secs(0));
        assert_eq!(feed(&rule, &mut state, &[(0, 11.0), (30, 12.0)]), []);
        assert_eq!((state.status, state.since), (Status::Pending, Some(secs(0))));
        // A value back below the threshold ends the pending time.
        assert_eq!(feed(&rule, &mut state, &[(40, 9.0)]), []);
        assert_eq!((state.status, state.since), (Status::Ok, None));
        assert_eq!(feed(&rule, &mut state, &[(50, 11.0), (100, 11.0)]), []);
        assert_eq!(feed(&rule, &mut state, &[(110, 13.0)]), [Change::Fired { at: secs(110), value: Some(13.0) }]);
        assert_eq!(feed(&rule, &mut state, &[(120, 5.0)]), [Change::Resolved { at: secs(120), value: Some(5.0) }]);
        // Pending after a resolution falls back to resolved, not ok.
        assert_eq!(feed(&rule, &mut state, &[(130, 11.0), (140, 1.0)]), []);
        assert_eq!((state.status, state.since), (Status::Resolved, Some(secs(120))));
    }

    #[test]
    fn below_mirrors_above() {
        let rule = spec(Condition::Below { threshold: 0.0 }, 0, 2.0, Resolution::Raw);
        let mut state = State::new(secs(0));
        assert_eq!(feed(&rule, &mut state, &[(1, 0.0), (2, -1.0)]), [Change::Fired { at: secs(2), value: Some(-1.0) }]);
        assert_eq!(
            feed(&rule, &mut state, &[(3, 1.5), (4, 2.5)]),
            [Change::Resolved { at: secs(4), value: Some(2.5) }]
        );
    }

    #[test]
    fn old_and_repeated_readings_are_ignored() {
        let rule = spec(Condition::Above { threshold: 10.0 }, 0, 0.0, Resolution::Raw);
        let mut state = State::new(secs(0));
        assert_eq!(feed(&rule, &mut state, &[(10, 1.0), (5, 50.0), (10, 50.0)]), []);
        assert_eq!((state.status, state.last_value), (Status::Ok, Some(1.0)));
    }

    #[test]
    fn rate_compares_consecutive_values_per_minute() {
        let rule = spec(Condition::Rate { per_minute: 5.0 }, 0, 1.0, Resolution::Raw);
        let mut state = State::new(secs(0));
        // 4 per minute, then 6 per minute (3 in 30 s).
        assert_eq!(feed(&rule, &mut state, &[(0, 100.0), (60, 104.0)]), []);
        assert_eq!(feed(&rule, &mut state, &[(90, 101.0)]), [Change::Fired { at: secs(90), value: Some(6.0) }]);
        // 4.5 per minute is within the hysteresis; 2 per minute resolves.
        assert_eq!(feed(&rule, &mut state, &[(150, 105.5)]), []);
        assert_eq!(feed(&rule, &mut state, &[(210, 107.5)]), [Change::Resolved { at: secs(210), value: Some(2.0) }]);
    }

    #[test]
    fn aggregates_evaluate_a_bucket_when_a_later_one_begins() {
        let rule = spec(Condition::Above { threshold: 10.0 }, 120, 0.0, Resolution::Aggregate { interval_secs: 60 });
        let mut state = State::new(secs(0));
        // Bucket [60, 120): average 11 (one reading of 20 alone would have fired a raw rule).
        assert_eq!(feed(&rule, &mut state, &[(61, 2.0), (70, 20.0), (119, 11.0)]), []);
        assert_eq!(state.bucket, Some(Bucket { start: secs(60), sum: 33.0, count: 3 }));
        // A reading of the next bucket closes it: pending from its start (60 s of 120 held).
        assert_eq!(feed(&rule, &mut state, &[(125, 12.0)]), []);
        assert_eq!((state.status, state.since, state.last_value), (Status::Pending, Some(secs(60)), Some(11.0)));
        // A reading older than the open bucket is ignored.
        assert_eq!(feed(&rule, &mut state, &[(100, 1000.0)]), []);
        assert_eq!(state.bucket, Some(Bucket { start: secs(120), sum: 12.0, count: 1 }));
        // Buckets [60, 120) and [120, 180) held 120 s: fires at the second's start.
        assert_eq!(feed(&rule, &mut state, &[(200, 0.0)]), [Change::Fired { at: secs(120), value: Some(12.0) }]);
        // The gap bucket [240, ..) resolves it with [180, 240)'s average.
        assert_eq!(feed(&rule, &mut state, &[(260, 0.0)]), [Change::Resolved { at: secs(180), value: Some(0.0) }]);
    }

    #[test]
    fn a_silent_rule_fires_from_time_and_resolves_with_the_next_reading() {
        let rule = spec(Condition::Silent, 600, 0.0, Resolution::Raw);
        let mut state = State::new(secs(1000));
        // Without a reading it counts from when it began watching.
        assert_eq!(tick(&rule, &mut state, secs(1599)), None);
        assert_eq!(tick(&rule, &mut state, secs(1600)), Some(Change::Fired { at: secs(1600), value: None }));
        assert_eq!(tick(&rule, &mut state, secs(5000)), None, "fires once");
        assert_eq!(
            observe(&rule, &mut state, secs(5001), 3.0),
            Some(Change::Resolved { at: secs(5001), value: Some(3.0) })
        );
        assert_eq!(observe(&rule, &mut state, secs(5002), 3.0), None);
        // Then from the newest reading.
        assert_eq!(tick(&rule, &mut state, secs(5601)), None);
        assert_eq!(tick(&rule, &mut state, secs(5602)), Some(Change::Fired { at: secs(5602), value: None }));
        assert_eq!(state.status.as_str(), "firing");
    }

    #[test]
    fn only_silent_rules_change_from_time() {
        let rule = spec(Condition::Above { threshold: 1.0 }, 60, 0.0, Resolution::Raw);
        let mut state = State::new(secs(0));
        assert_eq!(tick(&rule, &mut state, secs(1_000_000)), None);
        for status in [Status::Ok, Status::Pending, Status::Firing, Status::Resolved] {
            assert_eq!(Status::from_stored(status.as_str()), Some(status));
        }
        assert_eq!(Status::from_stored("other"), None);
    }

    #[test]
    fn a_rule_is_checked_when_made() {
        let above = Condition::Above { threshold: 200.0 };
        assert!(RuleSpec::new(above, 3600, 10.0, Resolution::Raw).is_ok());
        assert_eq!(
            RuleSpec::new(Condition::Above { threshold: f64::NAN }, 0, 0.0, Resolution::Raw),
            Err(RuleError::NotFinite)
        );
        assert_eq!(RuleSpec::new(above, 0, -1.0, Resolution::Raw), Err(RuleError::BadHysteresis));
        assert_eq!(RuleSpec::new(above, -1, 0.0, Resolution::Raw), Err(RuleError::Negative));
        assert_eq!(RuleSpec::new(above, MAX_FOR_SECS + 1, 0.0, Resolution::Raw), Err(RuleError::TooLong));
        assert_eq!(
            RuleSpec::new(above, 0, 0.0, Resolution::Aggregate { interval_secs: 30 }),
            Err(RuleError::BadInterval)
        );
        assert_eq!(
            RuleSpec::new(Condition::Rate { per_minute: 0.0 }, 0, 0.0, Resolution::Raw),
            Err(RuleError::RateNotPositive)
        );
        assert_eq!(RuleSpec::new(Condition::Silent, 59, 0.0, Resolution::Raw), Err(RuleError::SilentTooShort));
        assert_eq!(
            RuleSpec::new(Condition::Silent, 600, 0.0, Resolution::Aggregate { interval_secs: 900 }),
            Err(RuleError::SilentAggregate)
        );
        assert_eq!(RuleSpec::new(Condition::Silent, 600, 1.0, Resolution::Raw), Err(RuleError::SilentHysteresis));
    }

    #[test]
    fn a_condition_round_trips_through_its_stored_form() {
        for condition in [
            Condition::Above { threshold: 1.5 },
            Condition::Below { threshold: -3.0 },
            Condition::Rate { per_minute: 0.2 },
            Condition::Silent,
        ] {
            assert_eq!(Condition::from_stored(condition.kind(), condition.threshold()), Some(condition));
        }
        assert_eq!(Condition::from_stored("silent", Some(1.0)), None);
        let json: Condition = serde_json::from_str(r#"{"kind":"above","threshold":200}"#).unwrap();
        assert_eq!(json, Condition::Above { threshold: 200.0 });
        assert!(serde_json::from_str::<Condition>(r#"{"kind":"above"}"#).is_err());
    }

    #[test]
    fn the_resolution_round_trips_through_seconds() {
        let spec =
            RuleSpec::new(Condition::Above { threshold: 1.0 }, 0, 0.0, Resolution::Aggregate { interval_secs: 900 })
                .unwrap();
        assert_eq!(resolution_from_secs(spec.resolution_secs()), spec.resolution());
        assert_eq!(resolution_from_secs(0), Resolution::Raw);
    }

    #[test]
    fn languages_and_aggregate_labels_round_trip() {
        for language in [Language::De, Language::En] {
            assert_eq!(Language::from_stored(language.as_str()), Some(language));
        }
        assert_eq!(Language::default(), Language::De);
        assert_eq!(aggregate_label(Resolution::Aggregate { interval_secs: 900 }).as_deref(), Some("15m"));
        assert_eq!(aggregate_label(Resolution::Aggregate { interval_secs: 7200 }).as_deref(), Some("2h"));
        assert_eq!(aggregate_label(Resolution::Aggregate { interval_secs: 86_400 }).as_deref(), Some("1d"));
        assert_eq!(aggregate_label(Resolution::Aggregate { interval_secs: 90 }).as_deref(), Some("90s"));
        assert_eq!(aggregate_label(Resolution::Raw), None);
    }
}
