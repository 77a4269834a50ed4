//! Criterion micro benchmark of the writer's binary COPY encoder
//! (`hoheit_store::observations::encode_copy`): readings per second encoded
//! for a writer batch of 20,000 readings.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hoheit_benches::readings;

fn encoder(c: &mut Criterion) {
    let mut group = c.benchmark_group("copy_encode");
    let batch = readings(20_000, 1_000);
    group.throughput(Throughput::Elements(batch.len() as u64));
    let mut out = Vec::new();
    group.bench_function("binary_20000", |b| {
        b.iter(|| {
            out.clear();
            hoheit_store::observations::encode_copy(&batch, &mut out).expect("benchmark times are in range");
            assert_eq!(out.len(), 19 + batch.len() * hoheit_store::observations::COPY_ROW_BYTES + 2);
        })
    });
    group.finish();
}

criterion_group!(benches, encoder);
criterion_main!(benches);
