//! Criterion micro benchmarks of ingest's payload decoders: readings per
//! second for single readings and for batches of 500, per format.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hoheit_benches::{plain_json, protobuf, senml, T0};
use hoheit_domain::Micros;
use hoheit_ingest::decode::{decode, JsonKind, Limits};

fn decoders(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for n in [1usize, 500] {
        group.throughput(Throughput::Elements(n as u64));
        let cases = [
            ("json", plain_json(n), JsonKind::Plain),
            ("senml", senml(n), JsonKind::Senml),
            ("protobuf", protobuf(n), JsonKind::Senml),
        ];
        for (name, payload, kind) in cases {
            group.bench_with_input(BenchmarkId::new(name, n), &payload, |b, payload| {
                b.iter(|| {
                    let decoded = decode(payload, kind, Micros(T0), Limits::default());
                    assert!(decoded.is_ok_and(|d| d.readings.len() == n));
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, decoders);
criterion_main!(benches);
