//! Alert rules: what a rule watches on one datastream ([`Condition`]), checked
//! once when it is made ([`RuleSpec::new`]), so that a stored rule can always
//! be evaluated. Whether the caller may watch that datastream at that
//! resolution is the policy's decision (a rule is a standing read), made by
//! the API's access gate.

use serde::{Deserialize, Serialize};

use crate::policy::Resolution;

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

#[cfg(test)]
mod tests {
    use super::*;

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
