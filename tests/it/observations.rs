//! The observation write path against the real database: the fast path
//! (binary COPY) stores a batch, and a batch that meets stored rows or holds
//! a repeat falls back to skipping them, inside the caller's transaction.

use hoheit_domain::{DatastreamId, Micros, Reading};
use hoheit_store::observations;
use hoheit_tests::Isolation;
use sqlx::Connection;

fn readings(datastream: i64, from: i64, n: i64) -> Vec<Reading> {
    (from..from + n)
        .map(|i| Reading {
            datastream: DatastreamId(datastream),
            time: Micros(1_795_132_800_000_000 + i * 1_000_000),
            value: i as f64,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_and_repeated_readings_are_stored_once_and_the_transaction_stays_usable() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let mut conn = pool.acquire().await?;

    let mut tx = conn.begin().await?;
    assert_eq!(observations::insert(&mut tx, &readings(1, 0, 1_000)).await?, 1_000, "a fresh batch is copied");
    tx.commit().await?;

    // Half of this batch is stored already: the COPY fails, the fallback skips those.
    let mut tx = conn.begin().await?;
    assert_eq!(observations::insert(&mut tx, &readings(1, 500, 1_000)).await?, 500);
    let in_tx: i64 = sqlx::query_scalar("SELECT count(*) FROM observations").fetch_one(&mut *tx).await?;
    assert_eq!(in_tx, 1_500, "the transaction is usable after the fallback");
    tx.commit().await?;

    // A batch that repeats a reading of its own.
    let mut repeated = readings(2, 0, 10);
    repeated.push(repeated[3]);
    let mut tx = conn.begin().await?;
    assert_eq!(observations::insert(&mut tx, &repeated).await?, 10);
    tx.commit().await?;

    // Without a transaction of the caller's, too.
    assert_eq!(observations::insert(&mut conn, &readings(3, 0, 5)).await?, 5);
    assert_eq!(observations::insert(&mut conn, &readings(3, 0, 5)).await?, 0);

    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM observations").fetch_one(&pool).await?;
    assert_eq!(total, 1_515);
    let value: f64 = sqlx::query_scalar("SELECT value FROM observations WHERE datastream_id = 1 AND time = $1")
        .bind(Micros(1_795_132_800_000_000 + 1_499 * 1_000_000).to_datetime())
        .fetch_one(&pool)
        .await?;
    assert_eq!(value, 1_499.0, "times and values survive the binary COPY exactly");
    drop(conn);
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

/// The rollup as the raw rows say it should be.
async fn rollup_matches_raw(pool: &sqlx::PgPool) -> anyhow::Result<i64> {
    let mismatches: i64 = sqlx::query_scalar(
        "WITH raw AS (
             SELECT datastream_id, time_bucket(INTERVAL '15 minutes', time, timestamptz 'epoch') AS bucket,
                    sum(value) AS sum, count(*) AS count, min(value) AS min, max(value) AS max
             FROM observations GROUP BY 1, 2)
         SELECT count(*) FROM raw FULL JOIN observations_15m r USING (datastream_id, bucket)
         WHERE raw.count IS DISTINCT FROM r.count OR raw.sum IS DISTINCT FROM r.sum
            OR raw.min IS DISTINCT FROM r.min OR raw.max IS DISTINCT FROM r.max",
    )
    .fetch_one(pool)
    .await?;
    let buckets: i64 = sqlx::query_scalar("SELECT count(*) FROM observations_15m").fetch_one(pool).await?;
    anyhow::ensure!(mismatches == 0, "{mismatches} rollup buckets differ from the raw rows");
    Ok(buckets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollup_counts_every_stored_reading_once_and_serves_aligned_aggregates() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let mut conn = pool.acquire().await?;
    // Readings every 7 s over ~3 hours (buckets cut across batches), by COPY.
    let every_7s = |ds: i64, from: i64, n: i64| -> Vec<Reading> {
        (from..from + n)
            .map(|i| Reading {
                datastream: DatastreamId(ds),
                time: Micros(1_795_132_800_000_000 + i * 7_000_000),
                value: (i % 13) as f64 - 4.5,
            })
            .collect()
    };
    assert_eq!(observations::insert(&mut conn, &every_7s(1, 0, 800)).await?, 800);
    assert_eq!(observations::insert(&mut conn, &every_7s(1, 800, 800)).await?, 800);
    // A redelivery overlapping stored rows (fallback path): only the new half counts.
    assert_eq!(observations::insert(&mut conn, &every_7s(1, 1_200, 800)).await?, 400);
    // A full redelivery adds nothing.
    assert_eq!(observations::insert(&mut conn, &every_7s(1, 0, 800)).await?, 0);
    // A batch that repeats a reading of its own; and a rolled-back transaction leaves no trace.
    let mut repeated = every_7s(2, 0, 300);
    repeated.push(repeated[10]);
    assert_eq!(observations::insert(&mut conn, &repeated).await?, 300);
    let mut tx = conn.begin().await?;
    observations::insert(&mut tx, &every_7s(3, 0, 100)).await?;
    tx.rollback().await?;
    let buckets = rollup_matches_raw(&pool).await?;
    assert_eq!(buckets, 19, "2,000 readings of datastream 1 over 3.9 h, 300 of datastream 2 over 35 min");

    // Aligned ranges read the rollup, unaligned ones the raw rows: the same figures.
    let start = Micros(1_795_132_800_000_000).to_datetime().unwrap();
    let end = start + chrono::Duration::hours(4);
    for interval in [900, 3_600] {
        let from_rollup = observations::aggregates(&pool, DatastreamId(1), start, end, interval).await?;
        let from_raw =
            observations::aggregates(&pool, DatastreamId(1), start, end + chrono::Duration::microseconds(1), interval)
                .await?;
        assert_eq!(from_rollup.len(), from_raw.len());
        for (a, b) in from_rollup.iter().zip(&from_raw) {
            assert_eq!((a.time, a.count, a.min, a.max), (b.time, b.count, b.min, b.max));
            assert!((a.avg - b.avg).abs() < 1e-9, "{a:?} vs {b:?}");
        }
        let total: i64 = from_rollup.iter().map(|b| b.count).sum();
        assert_eq!(total, 2_000, "every stored reading of datastream 1, once");
    }
    drop(conn);
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}
