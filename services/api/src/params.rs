//! Parsing of the query parameters shared by the read endpoints: time
//! ranges, bucket intervals, page sizes and cursors.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};

use crate::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 1000;
pub const MAX_LIMIT: i64 = 10_000;
/// At most this many buckets in one aggregate response.
pub const MAX_BUCKETS: i64 = 100_000;
/// The longest `[from, to)` one request for raw observations may span (issue 5:
/// every limit gives a clear error); longer spans are paged by range or read as aggregates.
pub const MAX_RAW_RANGE_DAYS: i64 = 31;

/// A half-open time range `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .map_err(|_| ApiError::BadRequest(format!("{name} must be an RFC 3339 time such as 2026-11-25T10:00:00Z")))
}

impl TimeRange {
    /// `to` defaults to now, `from` to `to` minus `default_span`.
    pub fn parse(from: Option<&str>, to: Option<&str>, default_span: Duration) -> Result<Self, ApiError> {
        let to = match to {
            Some(text) => parse_time("to", text)?,
            None => Utc::now(),
        };
        let from = match from {
            Some(text) => parse_time("from", text)?,
            None => to - default_span,
        };
        if from >= to {
            return Err(ApiError::BadRequest("from must be before to".into()));
        }
        Ok(Self { from, to })
    }

    /// The range itself if it spans at most `days` days, else a 400 that says so.
    pub fn at_most_days(self, days: i64) -> Result<Self, ApiError> {
        if self.to - self.from > Duration::days(days) {
            return Err(ApiError::BadRequest(format!(
                "from and to are {} days apart; raw observations can be requested for at most {days} days at a \
                 time: split the range, or use /aggregates",
                (self.to - self.from).num_days()
            )));
        }
        Ok(self)
    }
}

/// A page size between 1 and [`MAX_LIMIT`].
/// An optional `org` query parameter as a slug (`400` with the reason when it is not one).
pub fn org(value: Option<&str>) -> Result<Option<hoheit_domain::Slug>, ApiError> {
    value.map(|o| hoheit_domain::Slug::parse("org", o)).transpose().map_err(|e| ApiError::BadRequest(e.to_string()))
}

pub fn limit(value: Option<i64>) -> Result<i64, ApiError> {
    match value {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::BadRequest(format!("limit must be between 1 and {MAX_LIMIT}"))),
    }
}

/// A bucket width such as `30s`, `15m`, `1h`, `1d`, in seconds.
pub fn interval(text: &str) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "interval {:?} must be a number followed by s, m, h or d, e.g. 15m",
            text.chars().take(20).collect::<String>()
        ))
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| bad())?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let seconds = number.checked_mul(factor).ok_or_else(bad)?;
    if !(1..=366 * 86_400).contains(&seconds) {
        return Err(ApiError::BadRequest("interval must be between 1s and 366d".into()));
    }
    Ok(seconds)
}

/// An opaque paging cursor wrapping one integer (a time in microseconds or an id).
pub fn encode_cursor(kind: char, value: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{value}"))
}

pub fn decode_cursor(kind: char, cursor: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::BadRequest("cursor is not valid; use the next_cursor of a previous response".into());
    let bytes = URL_SAFE_NO_PAD.decode(cursor.as_bytes()).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (k, value) = text.split_once(':').ok_or_else(bad)?;
    if k.len() != 1 || !k.starts_with(kind) {
        return Err(bad());
    }
    value.parse().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_with_units_and_bounds() {
        assert_eq!(interval("15m").unwrap(), 900);
        assert_eq!(interval("1h").unwrap(), 3600);
        assert_eq!(interval("2d").unwrap(), 172_800);
        for bad in ["", "m", "15", "15x", "0s", "-1m", "1.5h", "999999999999999999d", "400d"] {
            assert!(interval(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ranges_default_and_must_be_ordered() {
        let r = TimeRange::parse(Some("2026-11-25T10:00:00Z"), Some("2026-11-25T11:00:00+01:00"), Duration::hours(1));
        assert!(matches!(r, Err(ApiError::BadRequest(_))), "equal bounds are an empty range");
        let r = TimeRange::parse(None, Some("2026-11-25T10:00:00Z"), Duration::hours(24)).unwrap();
        assert_eq!(r.to - r.from, Duration::hours(24));
        assert!(TimeRange::parse(Some("yesterday"), None, Duration::hours(1)).is_err());
    }

    #[test]
    fn raw_ranges_are_bounded() {
        let r =
            TimeRange::parse(Some("2026-01-01T00:00:00Z"), Some("2026-02-01T00:00:00Z"), Duration::hours(1)).unwrap();
        assert_eq!(r.at_most_days(31).unwrap(), r, "exactly 31 days is allowed");
        let r =
            TimeRange::parse(Some("2026-01-01T00:00:00Z"), Some("2026-02-01T00:00:01Z"), Duration::hours(1)).unwrap();
        let Err(ApiError::BadRequest(reason)) = r.at_most_days(31) else { panic!("longer than 31 days") };
        assert!(reason.contains("at most 31 days"), "{reason}");
    }

    #[test]
    fn cursors_round_trip_and_reject_tampering() {
        let c = encode_cursor('t', 1_795_600_800_123_456);
        assert_eq!(decode_cursor('t', &c).unwrap(), 1_795_600_800_123_456);
        assert!(decode_cursor('i', &c).is_err(), "a cursor of another kind");
        assert!(decode_cursor('t', "not a cursor!").is_err());
        assert!(decode_cursor('t', "' OR 1=1 --").is_err());
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(MAX_LIMIT + 1)).is_err());
    }
}
