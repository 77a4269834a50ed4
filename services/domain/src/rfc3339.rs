//! Timestamps in JSON exactly as chrono's `Serialize` writes them (RFC 3339,
//! UTC as `Z`, a fraction of 0, 3, 6 or 9 digits: the fewest that keep the
//! value), written digit by digit instead of through `fmt`'s machinery.
//! Pages of raw readings are mostly timestamps: 8,640 of them per day of a
//! 10-second sensor.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::Serializer;

/// The longest text [`format`] writes: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const MAX_LEN: usize = 30;

/// `time` as chrono's `Serialize` writes it, into `out`; `None` for what
/// this fast path does not cover (years outside 0–9999, a leap second).
fn format(time: &DateTime<Utc>, out: &mut [u8; MAX_LEN]) -> Option<usize> {
    let naive = time.naive_utc();
    let year = u32::try_from(naive.year()).ok().filter(|year| *year <= 9999)?;
    let nanos = naive.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    digits(&mut out[0..4], year);
    out[4] = b'-';
    digits(&mut out[5..7], naive.month());
    out[7] = b'-';
    digits(&mut out[8..10], naive.day());
    out[10] = b'T';
    digits(&mut out[11..13], naive.hour());
    out[13] = b':';
    digits(&mut out[14..16], naive.minute());
    out[16] = b':';
    digits(&mut out[17..19], naive.second());
    let mut len = 19;
    let fraction = match nanos {
        0 => None,
        n if n % 1_000_000 == 0 => Some((n / 1_000_000, 3)),
        n if n % 1_000 == 0 => Some((n / 1_000, 6)),
        n => Some((n, 9)),
    };
    if let Some((value, width)) = fraction {
        out[len] = b'.';
        digits(&mut out[len + 1..len + 1 + width], value);
        len += 1 + width;
    }
    out[len] = b'Z';
    Some(len + 1)
}

/// Writes `value` as decimal digits filling `out`, zero-padded.
fn digits(out: &mut [u8], mut value: u32) {
    for place in out.iter_mut().rev() {
        *place = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Hands `time`'s text (chrono's, without quotes) to `use_text`: from a
/// buffer on the stack, or from chrono where [`format`] does not cover it.
fn with_text<R>(time: &DateTime<Utc>, use_text: impl FnOnce(&str) -> R) -> R {
    let mut out = [0u8; MAX_LEN];
    match format(time, &mut out) {
        // Only ASCII digits and separators were written.
        Some(len) => use_text(std::str::from_utf8(&out[..len]).unwrap_or_default()),
        None => use_text(&time.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
    }
}

/// `time` as chrono's `Serialize` writes it (without the quotes).
pub fn to_string(time: &DateTime<Utc>) -> String {
    with_text(time, str::to_owned)
}

/// `#[serde(serialize_with = "hoheit_domain::rfc3339::serialize")]`: the
/// same text as chrono's `Serialize`, faster.
pub fn serialize<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    with_text(time, |text| serializer.serialize_str(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[derive(serde::Serialize)]
    struct Fast(#[serde(serialize_with = "serialize")] DateTime<Utc>);

    fn assert_same(time: DateTime<Utc>) {
        let chrono = serde_json::to_string(&time).unwrap();
        let fast = serde_json::to_string(&Fast(time)).unwrap();
        assert_eq!(fast, chrono, "{time:?}");
        assert_eq!(format!("\"{}\"", to_string(&time)), chrono, "{time:?}");
    }

    #[test]
    fn writes_what_chrono_writes_for_every_fraction_width() {
        let base = Utc.with_ymd_and_hms(2026, 11, 30, 14, 16, 33).unwrap();
        for nanos in [0, 1, 7, 10, 999, 1_000, 120_000, 123_456_000, 100_000_000, 999_000_000, 999_999_999] {
            assert_same(base + chrono::Duration::nanoseconds(nanos));
        }
    }

    #[test]
    fn writes_what_chrono_writes_across_the_calendar() {
        // A prime step in microseconds walks every field through its range, leap days included.
        let mut time = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
        let step = chrono::Duration::microseconds(1_051_920_000_017);
        let mut checked = 0;
        while time < end {
            assert_same(time);
            assert_same(time.with_nanosecond(time.nanosecond() / 1_000_000 * 1_000_000).unwrap());
            time += step;
            checked += 1;
        }
        assert!(checked > 250_000, "{checked}");
        for (y, m, d) in [(2024, 2, 29), (2000, 2, 29), (1970, 1, 1), (9999, 12, 31), (0, 1, 1)] {
            assert_same(Utc.with_ymd_and_hms(y, m, d, 23, 59, 59).unwrap());
        }
    }

    #[test]
    fn falls_back_to_chrono_outside_four_digit_years() {
        for year in [-1, -4713, 10_000, 262_000] {
            let time = Utc.with_ymd_and_hms(year, 6, 1, 12, 0, 0).unwrap();
            let mut out = [0u8; MAX_LEN];
            assert_eq!(format(&time, &mut out), None);
            assert_same(time);
        }
    }
}
