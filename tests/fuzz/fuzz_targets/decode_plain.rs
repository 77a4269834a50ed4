//! Fuzzes `hoheit_ingest::decode::decode` as on a datastream topic: plain JSON
//! (`{"time","value"}` objects) and, for anything not starting with `{`/`[`,
//! protobuf `ObservationBatch`. Must never panic, and must honour the limits:
//! never more readings than `max_readings`.
#![no_main]

use hoheit_domain::Micros;
use hoheit_ingest::decode::{decode, JsonKind, Limits};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits { max_payload_bytes: 256 * 1024, max_readings: 10_000 };

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = decode(data, JsonKind::Plain, Micros(1_795_132_800_000_000), LIMITS) {
        assert!(decoded.readings.len() <= LIMITS.max_readings);
    }
});
