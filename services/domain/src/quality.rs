//! The data quality of a datastream, computed from what the store counts:
//! the interval its readings are expected at (set by its owner, or learned),
//! completeness per day, gaps, the share of readings rejected as out of
//! range, and one status that sums it up.
//!
//! The rules of the status, in order:
//! - `unknown`: no reading was ever stored, or no interval is known (none
//!   set, and fewer than two readings in the last [`LEARNING_DAYS`] days);
//! - `silent`: no reading for longer than [`SILENT_INTERVALS`] intervals and
//!   at least [`MIN_SILENCE_SECS`] (a sensor reporting every 10 s is not
//!   silent after 30 s of network trouble);
//! - `degraded`: the last full day's completeness below
//!   [`DEGRADED_COMPLETENESS`], today's so far below it (once at least
//!   [`MIN_EXPECTED_TODAY`] readings were expected today), or more than
//!   [`DEGRADED_OUT_OF_RANGE`] of the readings rejected as out of range;
//! - `ok` otherwise.
//!
//! Days are UTC days. A day counts readings only from the datastream's
//! start (its creation, or its first reading if that is earlier: readings
//! imported from before it was registered) and up to now, so a datastream
//! registered at noon is not incomplete for the morning it did not exist.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

/// Days of readings an interval is learned from.
pub const LEARNING_DAYS: i64 = 7;
/// Intervals without a reading after which a datastream is silent.
pub const SILENT_INTERVALS: i64 = 3;
/// The least silence that counts, whatever the interval.
pub const MIN_SILENCE_SECS: i64 = 3600;
/// Completeness below this is degraded.
pub const DEGRADED_COMPLETENESS: f64 = 0.9;
/// A share of out-of-range rejections above this is degraded.
pub const DEGRADED_OUT_OF_RANGE: f64 = 0.05;
/// Today's completeness is judged once this many readings were expected.
pub const MIN_EXPECTED_TODAY: i64 = 10;

/// Where an expected interval comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IntervalSource {
    /// Set by the datastream's owner.
    Set,
    /// The median gap between the readings of the last [`LEARNING_DAYS`] days.
    Learned,
}

/// How often a datastream is expected to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub secs: i64,
    pub source: IntervalSource,
}

/// The interval that applies: the one set, else the learned median gap
/// (rounded to whole seconds, at least one); `None` if neither is known.
pub fn expected_interval(set_secs: Option<i32>, median_gap_secs: Option<f64>) -> Option<Interval> {
    if let Some(secs) = set_secs.filter(|s| *s > 0) {
        return Some(Interval { secs: i64::from(secs), source: IntervalSource::Set });
    }
    let median = median_gap_secs.filter(|m| m.is_finite() && *m > 0.0)?;
    Some(Interval { secs: (median.round() as i64).max(1), source: IntervalSource::Learned })
}

/// The summary status of a datastream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Degraded,
    Silent,
    Unknown,
}

/// One UTC day of a datastream: readings stored, readings expected, and
/// their ratio (capped at 1; absent when none was expected).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Day {
    #[schema(value_type = String, format = Date, example = "2026-11-29")]
    pub day: NaiveDate,
    pub readings: i64,
    pub expected: i64,
    #[schema(minimum = 0, maximum = 1)]
    pub completeness: Option<f64>,
}

/// Readings expected at `interval_secs` over the part of `day` between
/// `since` (the datastream's start) and `now`.
pub fn expected_readings(day: NaiveDate, since: DateTime<Utc>, now: DateTime<Utc>, interval_secs: i64) -> i64 {
    let day_start = day.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    let Some(day_start) = day_start else { return 0 };
    let start = day_start.max(since);
    let end = (day_start + Duration::days(1)).min(now);
    let covered = (end - start).num_seconds();
    if covered <= 0 || interval_secs <= 0 {
        return 0;
    }
    // Readings at start, start + interval, … before end.
    (covered + interval_secs - 1) / interval_secs
}

/// `readings / expected`, capped at 1; `None` when nothing was expected.
pub fn completeness(readings: i64, expected: i64) -> Option<f64> {
    (expected > 0).then(|| (readings as f64 / expected as f64).min(1.0))
}

/// The days `first..=last`, each with its readings from `counts` (missing days: none).
pub fn days(
    first: NaiveDate,
    last: NaiveDate,
    counts: &[(NaiveDate, i64)],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    interval: Option<Interval>,
) -> Vec<Day> {
    first
        .iter_days()
        .take_while(|d| *d <= last)
        .map(|day| {
            let readings = counts.iter().filter(|(d, _)| *d == day).map(|(_, n)| n).sum();
            let expected = interval.map_or(0, |i| expected_readings(day, since, now, i.secs));
            Day { day, readings, expected, completeness: completeness(readings, expected) }
        })
        .collect()
}

/// A stretch without readings longer than the gap threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Gap {
    /// The last reading before the gap.
    pub from: DateTime<Utc>,
    /// The first reading after it, or now while it lasts.
    pub to: DateTime<Utc>,
    /// Readings that would have come at the expected interval.
    pub missing_intervals: i64,
    /// Whether the gap lasts until now (no reading since `from`).
    pub ongoing: bool,
}

/// Gaps are longer than this many seconds: `gap_intervals` intervals.
pub fn gap_threshold_secs(interval_secs: i64, gap_intervals: i64) -> i64 {
    interval_secs.saturating_mul(gap_intervals)
}

/// The gap between two consecutive readings.
pub fn gap_between(from: DateTime<Utc>, to: DateTime<Utc>, interval_secs: i64) -> Gap {
    let steps = (to - from).num_seconds() / interval_secs.max(1);
    Gap { from, to, missing_intervals: (steps - 1).max(0), ongoing: false }
}

/// The gap from the last reading until `now`, if it is longer than `threshold_secs`.
pub fn ongoing_gap(last: DateTime<Utc>, now: DateTime<Utc>, interval_secs: i64, threshold_secs: i64) -> Option<Gap> {
    let silence = (now - last).num_seconds();
    (silence > threshold_secs).then(|| Gap {
        from: last,
        to: now,
        missing_intervals: silence / interval_secs.max(1),
        ongoing: true,
    })
}

/// Out-of-range rejections over everything that came: stored readings and
/// those rejections; `None` when nothing came.
pub fn out_of_range_share(stored: i64, out_of_range: i64) -> Option<f64> {
    let total = stored + out_of_range;
    (total > 0).then(|| out_of_range as f64 / total as f64)
}

/// What the status is judged on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Facts {
    pub now: DateTime<Utc>,
    pub interval: Option<Interval>,
    pub last_reading: Option<DateTime<Utc>>,
    /// Completeness of the last full (UTC) day, if any was expected.
    pub last_full_day: Option<f64>,
    /// Today so far: readings and expected readings.
    pub today: (i64, i64),
    pub out_of_range_share: Option<f64>,
}

/// The seconds without a reading after which a datastream of `interval_secs` is silent.
pub fn silence_secs(interval_secs: i64) -> i64 {
    interval_secs.saturating_mul(SILENT_INTERVALS).max(MIN_SILENCE_SECS)
}

/// The status by the rules of this module's documentation.
pub fn status(facts: &Facts) -> Status {
    let (Some(interval), Some(last)) = (facts.interval, facts.last_reading) else {
        return Status::Unknown;
    };
    if (facts.now - last).num_seconds() > silence_secs(interval.secs) {
        return Status::Silent;
    }
    let below = |c: Option<f64>| c.is_some_and(|c| c < DEGRADED_COMPLETENESS);
    let (today_readings, today_expected) = facts.today;
    let today_low = today_expected >= MIN_EXPECTED_TODAY && below(completeness(today_readings, today_expected));
    let rejected = facts.out_of_range_share.is_some_and(|s| s > DEGRADED_OUT_OF_RANGE);
    if below(facts.last_full_day) || today_low || rejected {
        Status::Degraded
    } else {
        Status::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, h, m, 0).unwrap()
    }

    fn date(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
    }

    const MINUTE: Option<Interval> = Some(Interval { secs: 60, source: IntervalSource::Set });

    #[test]
    fn a_set_interval_wins_over_the_learned_one() {
        assert_eq!(expected_interval(Some(300), Some(61.0)), Some(Interval { secs: 300, source: IntervalSource::Set }));
        assert_eq!(expected_interval(None, Some(59.6)), Some(Interval { secs: 60, source: IntervalSource::Learned }));
        assert_eq!(expected_interval(None, Some(0.2)).map(|i| i.secs), Some(1), "at least a second");
        assert_eq!(expected_interval(None, None), None);
        assert_eq!(expected_interval(Some(0), Some(f64::NAN)), None);
    }

    #[test]
    fn expected_readings_cover_the_day_from_the_start_until_now() {
        let since = at(1, 0, 0);
        assert_eq!(expected_readings(date(28), since, at(30, 12, 0), 60), 1440, "a whole day");
        assert_eq!(expected_readings(date(30), since, at(30, 0, 10), 60), 10, "today until 00:10");
        assert_eq!(expected_readings(date(30), since, at(30, 0, 10) + Duration::seconds(30), 60), 11);
        assert_eq!(expected_readings(date(28), at(28, 12, 0), at(30, 12, 0), 60), 720, "registered at noon");
        assert_eq!(expected_readings(date(27), at(28, 12, 0), at(30, 12, 0), 60), 0, "before it existed");
        assert_eq!(expected_readings(date(28), since, at(30, 12, 0), 7), 12_343, "rounded up");
    }

    #[test]
    fn completeness_is_capped_and_absent_without_expectation() {
        assert_eq!(completeness(720, 1440), Some(0.5));
        assert_eq!(completeness(2000, 1440), Some(1.0));
        assert_eq!(completeness(5, 0), None);
    }

    #[test]
    fn days_list_every_day_with_its_counts() {
        let counts = [(date(29), 1440), (date(30), 300)];
        let days = days(date(28), date(30), &counts, at(28, 12, 0), at(30, 10, 0), MINUTE);
        assert_eq!(days.len(), 3);
        assert_eq!((days[0].readings, days[0].expected, days[0].completeness), (0, 720, Some(0.0)));
        assert_eq!((days[1].readings, days[1].expected, days[1].completeness), (1440, 1440, Some(1.0)));
        assert_eq!((days[2].readings, days[2].expected, days[2].completeness), (300, 600, Some(0.5)));
        let unknown = super::days(date(30), date(30), &counts, at(28, 0, 0), at(30, 10, 0), None);
        assert_eq!((unknown[0].expected, unknown[0].completeness), (0, None));
    }

    #[test]
    fn gaps_count_the_readings_missing_between_and_since() {
        assert_eq!(gap_between(at(30, 1, 0), at(30, 1, 10), 60).missing_intervals, 9);
        assert_eq!(gap_threshold_secs(60, 3), 180);
        let ongoing = ongoing_gap(at(30, 1, 0), at(30, 2, 0), 60, 180).unwrap();
        assert_eq!((ongoing.missing_intervals, ongoing.ongoing), (60, true));
        assert_eq!(ongoing_gap(at(30, 1, 0), at(30, 1, 3), 60, 180), None, "exactly the threshold is no gap");
    }

    #[test]
    fn out_of_range_share_is_of_everything_that_came() {
        assert_eq!(out_of_range_share(95, 5), Some(0.05));
        assert_eq!(out_of_range_share(0, 0), None);
    }

    fn healthy() -> Facts {
        Facts {
            now: at(30, 12, 0),
            interval: MINUTE,
            last_reading: Some(at(30, 11, 59)),
            last_full_day: Some(0.99),
            today: (715, 720),
            out_of_range_share: Some(0.0),
        }
    }

    #[test]
    fn status_follows_its_rules_in_order() {
        assert_eq!(status(&healthy()), Status::Ok);
        assert_eq!(status(&Facts { interval: None, ..healthy() }), Status::Unknown);
        assert_eq!(status(&Facts { last_reading: None, ..healthy() }), Status::Unknown);
        // Three minutes is not silence: at least an hour is.
        assert_eq!(status(&Facts { last_reading: Some(at(30, 11, 10)), ..healthy() }), Status::Ok);
        assert_eq!(status(&Facts { last_reading: Some(at(30, 10, 59)), ..healthy() }), Status::Silent);
        let hourly = Some(Interval { secs: 3600, source: IntervalSource::Learned });
        assert_eq!(
            status(&Facts { interval: hourly, last_reading: Some(at(30, 9, 30)), today: (12, 12), ..healthy() }),
            Status::Ok,
            "two and a half hours is not silent for an hourly sensor"
        );
        assert_eq!(status(&Facts { interval: hourly, last_reading: Some(at(30, 8, 59)), ..healthy() }), Status::Silent);
        assert_eq!(status(&Facts { last_full_day: Some(0.89), ..healthy() }), Status::Degraded);
        assert_eq!(status(&Facts { today: (600, 720), ..healthy() }), Status::Degraded);
        assert_eq!(status(&Facts { today: (5, 9), ..healthy() }), Status::Ok, "too early in the day to judge");
        assert_eq!(status(&Facts { out_of_range_share: Some(0.06), ..healthy() }), Status::Degraded);
        assert_eq!(status(&Facts { last_full_day: None, out_of_range_share: None, ..healthy() }), Status::Ok);
    }
}
