//! Payload and reading generators shared by Hoheit's benchmarks: the
//! criterion micro benchmarks (`decode.rs`, `copy.rs`) and the system
//! benchmarks of `hoheit-bench` (`system/`).

use hoheit_domain::{DatastreamId, Micros, Reading};
use hoheit_proto::v1::{ObservationBatch, SensorReading};
use prost::Message;
use serde_json::json;

/// 2026-11-20T00:00:00Z in microseconds.
pub const T0: i64 = 1_795_132_800_000_000;

/// A plain JSON array of `n` readings.
pub fn plain_json(n: usize) -> Vec<u8> {
    let readings: Vec<_> = (0..n as i64)
        .map(|i| json!({"time": format!("2026-11-20T00:{:02}:{:02}.{:06}Z", (i / 60) % 60, i % 60, i), "value": i as f64 * 0.5}))
        .collect();
    serde_json::to_vec(&readings).unwrap_or_default()
}

/// A SenML pack of `n` records with a base time and relative offsets.
pub fn senml(n: usize) -> Vec<u8> {
    let mut pack = vec![json!({"bn": "", "bt": T0 / 1_000_000, "bu": "ug/m3"})];
    pack.extend((0..n as i64).map(|i| json!({"n": "no2", "t": i, "v": 10.0 + i as f64 * 0.25})));
    serde_json::to_vec(&pack).unwrap_or_default()
}

/// A protobuf ObservationBatch of `n` readings.
pub fn protobuf(n: usize) -> Vec<u8> {
    let readings = (0..n as i64)
        .map(|i| SensorReading {
            property: "no2".into(),
            time_unix_us: Some(T0 + i),
            value: i as f64,
            unit: String::new(),
        })
        .collect();
    ObservationBatch { readings }.encode_to_vec()
}

/// `n` readings spread round-robin over `datastreams` datastreams (ids from
/// 1), one per second per datastream from [`T0`]: no (datastream, time) twice.
pub fn readings(n: usize, datastreams: usize) -> Vec<Reading> {
    let datastreams = datastreams.max(1) as i64;
    (0..n as i64)
        .map(|i| Reading {
            datastream: DatastreamId(i % datastreams + 1),
            time: Micros(T0 + (i / datastreams) * 1_000_000),
            value: (i % 1000) as f64 * 0.25,
        })
        .collect()
}
