//! Fuzzes `hoheit_ingest::decode::decode` as on a thing topic: SenML JSON
//! packs (base name, base time, relative times, base values) and protobuf for
//! non-JSON input. Must never panic (e.g. on time overflow) and must honour
//! the readings limit.
#![no_main]

use hoheit_domain::Micros;
use hoheit_ingest::decode::{decode, JsonKind, Limits};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits { max_payload_bytes: 256 * 1024, max_readings: 10_000 };

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = decode(data, JsonKind::Senml, Micros(1_795_132_800_000_000), LIMITS) {
        assert!(decoded.readings.len() <= LIMITS.max_readings);
    }
});
