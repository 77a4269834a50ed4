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

/// Two writes at once that share quarter hours (two writers while partitions
/// move, or parallel loaders) lock the shared rollup and latest rows in the
/// same order: one waits for the other, neither fails with a deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_sharing_quarter_hours_wait_for_each_other_and_do_not_deadlock() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let ids = register(&pool, 300).await?;
    const ROUNDS: i64 = 12;
    // Writer `w` stores every datastream's readings at seconds 2k + w of each round's quarter hour,
    // in its own transaction per round; both writers start each round together.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let writers: Vec<_> = (0..2i64)
        .map(|w| {
            let (pool, ids, barrier) = (pool.clone(), ids.clone(), barrier.clone());
            tokio::spawn(async move {
                let mut conn = pool.acquire().await?;
                for round in 0..ROUNDS {
                    let mut batch = Vec::new();
                    // Each writer lists the datastreams in an order of its own.
                    let order: Vec<i64> = if w == 0 { ids.clone() } else { ids.iter().rev().copied().collect() };
                    for &id in &order {
                        for k in 0..5 {
                            batch.push(at(id, round * 900 + 2 * k + w, (round * 10 + k) as f64));
                        }
                    }
                    barrier.wait().await;
                    let mut tx = conn.begin().await?;
                    observations::insert(&mut tx, &batch).await?;
                    tx.commit().await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM observations").fetch_one(&pool).await?;
    assert_eq!(stored, 2 * ROUNDS * 300 * 5, "every reading of both writers");
    assert_eq!(rollup_matches_raw(&pool).await?, ROUNDS * 300, "one rollup row per datastream and quarter hour");
    assert_eq!(latest_rows(&pool).await?, newest_raw(&pool).await?);
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

/// Registers `n` datastreams (one organisation, one thing) by SQL; their ids, in order.
async fn register(pool: &sqlx::PgPool, n: i64) -> anyhow::Result<Vec<i64>> {
    sqlx::query("INSERT INTO organisations (slug, name) VALUES ('stadt', 'Stadt')").execute(pool).await?;
    sqlx::query("INSERT INTO things (org_id, slug, name) SELECT id, 'pegel', 'Pegel' FROM organisations")
        .execute(pool)
        .await?;
    Ok(sqlx::query_scalar(
        "INSERT INTO datastreams (thing_id, property, name)
         SELECT t.id, 'p' || p, 'P ' || p FROM things t, generate_series(1, $1) p ORDER BY p RETURNING id",
    )
    .bind(n)
    .fetch_all(pool)
    .await?)
}

/// `datastream_latest` as a map: datastream → (time µs, value).
async fn latest_rows(pool: &sqlx::PgPool) -> anyhow::Result<std::collections::BTreeMap<i64, (i64, f64)>> {
    let rows: Vec<(i64, i64, f64)> = sqlx::query_as(
        "SELECT datastream_id, (extract(epoch FROM time) * 1000000)::bigint, value FROM datastream_latest",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(id, t, v)| (id, (t, v))).collect())
}

/// Each datastream's newest stored reading, as the raw rows say.
async fn newest_raw(pool: &sqlx::PgPool) -> anyhow::Result<std::collections::BTreeMap<i64, (i64, f64)>> {
    let rows: Vec<(i64, i64, f64)> = sqlx::query_as(
        "SELECT DISTINCT ON (datastream_id) datastream_id, (extract(epoch FROM time) * 1000000)::bigint, value
         FROM observations ORDER BY datastream_id, time DESC",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(id, t, v)| (id, (t, v))).collect())
}

fn at(datastream: i64, second: i64, value: f64) -> Reading {
    Reading { datastream: DatastreamId(datastream), time: Micros(1_795_132_800_000_000 + second * 1_000_000), value }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_row_of_a_datastream_is_its_newest_inserted_reading_on_every_write_path() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let ids = register(&pool, 3).await?;
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let mut conn = pool.acquire().await?;
    let micros = |second: i64| 1_795_132_800_000_000 + second * 1_000_000;

    // COPY path: the newest of each datastream in the batch, whatever its place in it.
    let batch = vec![at(a, 10, 1.0), at(a, 30, 3.0), at(a, 20, 2.0), at(b, 5, 50.0)];
    assert_eq!(observations::insert(&mut conn, &batch).await?, 4);
    let latest = latest_rows(&pool).await?;
    assert_eq!(latest.get(&a), Some(&(micros(30), 3.0)));
    assert_eq!(latest.get(&b), Some(&(micros(5), 50.0)));
    assert_eq!(latest.get(&c), None, "no reading, no latest row");

    // A reading older than the latest, arriving later, does not replace it; a newer one does.
    assert_eq!(observations::insert(&mut conn, &[at(a, 25, 2.5), at(b, 6, 60.0)]).await?, 2);
    let latest = latest_rows(&pool).await?;
    assert_eq!(latest.get(&a), Some(&(micros(30), 3.0)), "an older reading arriving later");
    assert_eq!(latest.get(&b), Some(&(micros(6), 60.0)));

    // Fallback path (the batch meets a stored row): only rows actually inserted
    // count; a redelivered reading with another value changes nothing.
    let redelivered = vec![at(a, 30, 99.0), at(a, 40, 4.0), at(c, 1, 7.0), at(b, 6, 66.0)];
    assert_eq!(observations::insert(&mut conn, &redelivered).await?, 2);
    let latest = latest_rows(&pool).await?;
    assert_eq!(latest.get(&a), Some(&(micros(40), 4.0)));
    assert_eq!(latest.get(&b), Some(&(micros(6), 60.0)), "the stored reading's value, not the redelivered one");
    assert_eq!(latest.get(&c), Some(&(micros(1), 7.0)));

    // Fallback path for a batch that repeats a reading of its own: the first one is stored and is the latest.
    assert_eq!(observations::insert(&mut conn, &[at(c, 9, 9.0), at(c, 9, 9.5)]).await?, 1);
    assert_eq!(latest_rows(&pool).await?.get(&c), Some(&(micros(9), 9.0)));
    let stored: f64 = sqlx::query_scalar("SELECT value FROM observations WHERE datastream_id = $1 AND time = $2")
        .bind(c)
        .bind(Micros(micros(9)).to_datetime())
        .fetch_one(&pool)
        .await?;
    assert_eq!(stored, 9.0);

    // A rolled-back write leaves the latest rows as they were; a reading of an
    // unregistered datastream is stored without a latest row.
    let mut tx = conn.begin().await?;
    observations::insert(&mut tx, &[at(a, 100, 100.0)]).await?;
    tx.rollback().await?;
    assert_eq!(observations::insert(&mut conn, &[at(c + 1_000, 1, 1.0)]).await?, 1);
    assert_eq!(
        latest_rows(&pool).await?,
        newest_raw(&pool).await?.into_iter().filter(|(id, _)| ids.contains(id)).collect()
    );

    // The registry's listing reads it.
    let listed = hoheit_store::registry::get_datastream(&pool, DatastreamId(a)).await?;
    assert_eq!((listed.latest_time.map(|t| t.timestamp_micros()), listed.latest_value), (Some(micros(40)), Some(4.0)));

    // A write marks exactly the rows it changed with its transaction (what
    // the API's change feed follows); the feed from before the write finds them.
    let xids = |pool: sqlx::PgPool| async move {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT datastream_id, changed_xid::text FROM datastream_latest").fetch_all(&pool).await?;
        anyhow::Ok(rows.into_iter().collect::<std::collections::BTreeMap<_, _>>())
    };
    let (before, feed_from) = (xids(pool.clone()).await?, hoheit_store::latest::position(&pool).await?);
    assert_eq!(observations::insert(&mut conn, &[at(a, 50, 5.0), at(b, 1, 0.5)]).await?, 2);
    let after = xids(pool.clone()).await?;
    assert_ne!(before[&a], after[&a], "a's newer reading changed its row");
    assert_eq!((&before[&b], &before[&c]), (&after[&b], &after[&c]), "b's older reading changed nothing");
    let changes = hoheit_store::latest::changes_since(&pool, feed_from).await?;
    assert!(changes.readings.iter().any(|r| r.datastream_id == DatastreamId(a) && r.value == 5.0));

    drop(conn);
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_dataset_removes_its_latest_rows_and_no_others() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let ids = register(&pool, 2).await?;
    let (erased, kept) = (ids[0], ids[1]);
    let dataset: i64 = sqlx::query_scalar(
        "INSERT INTO datasets (slug, owner_org_id, title, steward_contact, classification, license, purpose, retention_days)
         SELECT 'pegel', id, 'Pegel', 'a@b.example', 'internal', 'intern', 'Hochwasserschutz', 30 FROM organisations
         RETURNING id",
    )
    .fetch_one(&pool)
    .await?;
    sqlx::query("UPDATE datastreams SET dataset_id = $1 WHERE id = $2")
        .bind(dataset)
        .bind(erased)
        .execute(&pool)
        .await?;
    let mut conn = pool.acquire().await?;
    observations::insert(&mut conn, &[at(erased, 1, 1.0), at(erased, 2, 2.0), at(kept, 3, 3.0)]).await?;
    drop(conn);
    assert_eq!(latest_rows(&pool).await?.len(), 2);

    let erasure = hoheit_store::datasets::erase(
        &pool,
        dataset,
        &hoheit_domain::topic::TopicScheme::default(),
        &hoheit_store::audit::Actor::command_line("test"),
    )
    .await?;
    assert_eq!(erasure.readings, 2);
    let latest = latest_rows(&pool).await?;
    assert_eq!(latest.keys().copied().collect::<Vec<_>>(), [kept], "the erased datastream's latest value is gone");
    assert_eq!(latest, newest_raw(&pool).await?);

    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}
