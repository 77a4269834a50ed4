//! The observation write path against the real database: the fast path
//! (binary COPY) stores a batch, and a batch that meets stored rows or holds
//! a repeat falls back to skipping them, inside the caller's transaction.

use hoheit_core::domain::{DatastreamId, Micros, Reading};
use hoheit_core::observations;
use hoheit_tests::Isolation;
use sqlx::{Connection, Row};

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
    let in_tx: i64 = sqlx::query("SELECT count(*) FROM observations").fetch_one(&mut *tx).await?.get(0);
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

    let total: i64 = sqlx::query("SELECT count(*) FROM observations").fetch_one(&pool).await?.get(0);
    assert_eq!(total, 1_515);
    let value: f64 = sqlx::query("SELECT value FROM observations WHERE datastream_id = 1 AND time = $1")
        .bind(Micros(1_795_132_800_000_000 + 1_499 * 1_000_000).to_datetime())
        .fetch_one(&pool)
        .await?
        .get(0);
    assert_eq!(value, 1_499.0, "times and values survive the binary COPY exactly");
    drop(conn);
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}
