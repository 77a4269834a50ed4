//! Criterion micro benchmark of the API's largest answer: one day of a
//! 10-second sensor's raw readings (8,640) as JSON, with the timestamps
//! written by chrono's `Serialize` and by `hoheit_domain::rfc3339` (what
//! `hoheit_store::observations::Observation` uses).

use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hoheit_store::observations::Observation;

/// The same reading with chrono's own serialisation of its time.
#[derive(serde::Serialize)]
struct ChronoObservation {
    time: DateTime<Utc>,
    value: f64,
}

fn day_page(c: &mut Criterion) {
    let start = Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap() + Duration::microseconds(123_456);
    let fast: Vec<Observation> = (0..8_640)
        .map(|i| Observation { time: start + Duration::seconds(10 * i), value: 17.25 + (i % 100) as f64 / 8.0 })
        .collect();
    let chrono: Vec<ChronoObservation> =
        fast.iter().map(|o| ChronoObservation { time: o.time, value: o.value }).collect();
    assert_eq!(serde_json::to_vec(&fast).unwrap(), serde_json::to_vec(&chrono).unwrap());

    let mut group = c.benchmark_group("json_day_of_readings");
    group.throughput(Throughput::Elements(fast.len() as u64));
    let mut out = Vec::with_capacity(512 * 1024);
    group.bench_function("chrono_serialize", |b| {
        b.iter(|| {
            out.clear();
            serde_json::to_writer(&mut out, &chrono).unwrap();
        })
    });
    group.bench_function("rfc3339_serialize", |b| {
        b.iter(|| {
            out.clear();
            serde_json::to_writer(&mut out, &fast).unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, day_page);
criterion_main!(benches);
