//! Fuzzes the API's query parsing (`hoheit_api::params`): time ranges with the
//! raw-range limit, bucket intervals, page sizes and cursors. The input is
//! split at `&` into the parameters. Must never panic; what parses must be
//! within its bounds, and a cursor must survive its own round trip.
#![no_main]

use chrono::Duration;
use hoheit_api::params::{self, TimeRange};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut fields = text.split('&');
    let from = fields.next();
    let to = fields.next();
    let interval = fields.next().unwrap_or("");
    let cursor = fields.next().unwrap_or("");
    let limit = fields.next().and_then(|l| l.parse::<i64>().ok());

    if let Ok(range) = TimeRange::parse(from, to, Duration::hours(24)) {
        assert!(range.from < range.to);
        if let Ok(bounded) = range.at_most_days(params::MAX_RAW_RANGE_DAYS) {
            assert!(bounded.to - bounded.from <= Duration::days(params::MAX_RAW_RANGE_DAYS));
        }
    }
    if let Ok(seconds) = params::interval(interval) {
        assert!((1..=366 * 86_400).contains(&seconds));
    }
    if let Ok(n) = params::limit(limit) {
        assert!((1..=params::MAX_LIMIT).contains(&n));
    }
    if let Ok(value) = params::decode_cursor('t', cursor) {
        assert_eq!(params::decode_cursor('t', &params::encode_cursor('t', value)).ok(), Some(value));
    }
});
