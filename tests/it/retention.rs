//! Retention on the observation hypertable (`datasets::retention_run`): a
//! chunk in which every reading is past its dataset's retention is dropped
//! whole; a chunk that also holds readings of a datastream without a dataset
//! or of a dataset kept longer loses only the expired readings, row by row;
//! the 15-minute rollup and the latest values follow; a second run finds
//! nothing left to do.

use hoheit_domain::{DatastreamId, Micros, Reading};
use hoheit_store::{datasets, observations};
use hoheit_tests::Isolation;
use sqlx::PgPool;

const DAY: i64 = 86_400_000_000;
const MINUTE: i64 = 60_000_000;

/// Organisation `stadt`, thing `pegel` with datastreams `a`, `b`, `c` in the
/// 7-day dataset `kurz`, `k` in no dataset and `l` in the 100-day dataset `lang`.
async fn town(pool: &PgPool) -> anyhow::Result<[i64; 5]> {
    let org: i64 = sqlx::query_scalar("INSERT INTO organisations (slug, name) VALUES ('stadt', 'Stadt') RETURNING id")
        .fetch_one(pool)
        .await?;
    let thing: i64 =
        sqlx::query_scalar("INSERT INTO things (org_id, slug, name) VALUES ($1, 'pegel', 'Pegel') RETURNING id")
            .bind(org)
            .fetch_one(pool)
            .await?;
    let mut streams = [0i64; 5];
    for (stream, property) in streams.iter_mut().zip(["a", "b", "c", "k", "l"]) {
        *stream =
            sqlx::query_scalar("INSERT INTO datastreams (thing_id, property, name) VALUES ($1, $2, $2) RETURNING id")
                .bind(thing)
                .bind(property)
                .fetch_one(pool)
                .await?;
    }
    for (slug, days, members) in
        [("kurz", 7, vec![streams[0], streams[1], streams[2]]), ("lang", 100, vec![streams[4]])]
    {
        let dataset: i64 = sqlx::query_scalar(
            "INSERT INTO datasets (slug, owner_org_id, title, steward_contact, classification, license, purpose, retention_days)
             VALUES ($1, $2, $1, 'umwelt@stadt.example', 'internal', 'intern', 'Hochwasserschutz', $3) RETURNING id",
        )
        .bind(slug)
        .bind(org)
        .bind(days)
        .fetch_one(pool)
        .await?;
        sqlx::query("UPDATE datastreams SET dataset_id = $1 WHERE id = ANY($2)")
            .bind(dataset)
            .bind(&members)
            .execute(pool)
            .await?;
    }
    Ok(streams)
}

/// Whether `observations` has a chunk that holds `time`.
async fn has_chunk_at(pool: &PgPool, time: i64) -> anyhow::Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM timescaledb_information.chunks
                        WHERE hypertable_name = 'observations'
                          AND range_start <= timestamptz 'epoch' + $1 * INTERVAL '1 microsecond'
                          AND range_end > timestamptz 'epoch' + $1 * INTERVAL '1 microsecond')",
    )
    .bind(time)
    .fetch_one(pool)
    .await?)
}

/// (datastream, bucket) groups where the rollup and the raw readings disagree.
async fn rollup_mismatches(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "WITH raw AS (SELECT datastream_id, time_bucket(INTERVAL '15 minutes', time, timestamptz 'epoch') AS bucket,
                             count(*) AS count, sum(value) AS sum, min(value) AS min, max(value) AS max
                      FROM observations GROUP BY 1, 2)
         SELECT count(*) FROM raw FULL JOIN observations_15m r USING (datastream_id, bucket)
         WHERE raw.count IS DISTINCT FROM r.count OR raw.sum IS DISTINCT FROM r.sum
            OR raw.min IS DISTINCT FROM r.min OR raw.max IS DISTINCT FROM r.max",
    )
    .fetch_one(pool)
    .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_expired_chunks_are_dropped_and_partial_ones_deleted_row_by_row() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let [a, b, c, k, l] = town(&pool).await?;
    let now = Micros::now().0;
    let at =
        |stream: i64, time: i64, value: f64| Reading { datastream: DatastreamId(stream), time: Micros(time), value };
    let (old, middle, young, recent) = (now - 30 * DAY, now - 20 * DAY, now - 10 * DAY, now - DAY);
    let mut rows = vec![
        // A chunk of the 7-day dataset's readings only: dropped whole.
        at(a, old, 30.0),
        at(b, old, 30.5),
        at(c, old, 31.0),
        // With a datastream that has no dataset (kept forever): a's reading deleted, k's kept.
        at(a, middle, 20.0),
        at(k, middle, 20.5),
        // With a datastream of the 100-day dataset: a's reading deleted, l's kept.
        at(a, young, 10.0),
        at(l, young, 10.5),
        // Newer than any cut-off.
        at(a, recent, 1.0),
        at(b, recent, 1.5),
        at(k, recent, 2.0),
        at(l, recent, 2.5),
        // A minute either side of the 7-day cut-off: whichever chunk(s) they fall in, only the older goes.
        at(b, now - 7 * DAY - MINUTE, 7.01),
        at(b, now - 7 * DAY + MINUTE, 6.99),
    ];
    // A second reading in the old chunk's bucket, so that the rollup has a bucket of two there.
    rows.push(at(a, old + MINUTE, 29.0));
    observations::insert(&mut *pool.acquire().await?, &rows).await?;
    // The newest reading of each datastream, as the writer keeps it (c's is in the dropped chunk).
    for (stream, time) in [(a, recent), (b, recent), (c, old), (k, recent), (l, recent)] {
        sqlx::query(
            "INSERT INTO datastream_latest (datastream_id, time, value)
             VALUES ($1, timestamptz 'epoch' + $2 * INTERVAL '1 microsecond', 0)
             ON CONFLICT (datastream_id) DO UPDATE SET time = excluded.time, value = excluded.value",
        )
        .bind(stream)
        .bind(time)
        .execute(&pool)
        .await?;
    }
    assert_eq!(rollup_mismatches(&pool).await?, 0, "the rollup before the run");
    for time in [old, middle, young] {
        assert!(has_chunk_at(&pool, time).await?, "a chunk at {time} before the run");
    }

    let run = datasets::retention_run(&pool).await?;
    assert!(run.chunks_dropped >= 1, "{run:?}");
    assert_eq!(run.removed(), 7, "4 in the old chunk, a's two in the kept chunks, b's past the cut-off: {run:?}");
    assert!(run.readings_dropped >= 4 && run.readings_deleted >= 2, "{run:?}");
    assert!(!has_chunk_at(&pool, old).await?, "the chunk of expired readings only is dropped");
    assert!(has_chunk_at(&pool, middle).await?, "the chunk with a datastream without a dataset stays");
    assert!(has_chunk_at(&pool, young).await?, "the chunk with a datastream kept 100 days stays");

    let left: Vec<(i64, f64)> =
        sqlx::query_as("SELECT datastream_id, value FROM observations ORDER BY 1, 2").fetch_all(&pool).await?;
    let mut expected: Vec<(i64, f64)> = vec![(a, 1.0), (b, 1.5), (b, 6.99), (k, 2.0), (k, 20.5), (l, 2.5), (l, 10.5)];
    expected.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.total_cmp(&y.1)));
    assert_eq!(left, expected);
    assert_eq!(rollup_mismatches(&pool).await?, 0, "the 15-minute rollup follows the retention");
    let latest: Vec<i64> =
        sqlx::query_scalar("SELECT datastream_id FROM datastream_latest ORDER BY 1").fetch_all(&pool).await?;
    assert_eq!(latest, vec![a, b, k, l], "c's newest reading is past its retention: its latest value goes");

    let again = datasets::retention_run(&pool).await?;
    assert_eq!(again, datasets::Retention::default(), "nothing left to remove");

    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_of_only_unassigned_datastreams_is_never_dropped() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let [a, _, _, k, _] = town(&pool).await?;
    let old = Micros::now().0 - 400 * DAY;
    let rows = [
        Reading { datastream: DatastreamId(k), time: Micros(old), value: 1.0 },
        Reading { datastream: DatastreamId(a), time: Micros(old + MINUTE), value: 2.0 },
    ];
    observations::insert(&mut *pool.acquire().await?, &rows).await?;
    let run = datasets::retention_run(&pool).await?;
    assert_eq!(run, datasets::Retention { readings_deleted: 1, ..Default::default() });
    assert!(has_chunk_at(&pool, old).await?);
    let left: Vec<i64> = sqlx::query_scalar("SELECT datastream_id FROM observations").fetch_all(&pool).await?;
    assert_eq!(left, vec![k]);
    assert_eq!(rollup_mismatches(&pool).await?, 0);
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_locked_by_a_reader_is_left_for_the_next_run_instead_of_queueing_behind_it() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let [a, b, ..] = town(&pool).await?;
    let now = Micros::now().0;
    let (old, older) = (now - 30 * DAY, now - 60 * DAY);
    let rows = [
        Reading { datastream: DatastreamId(a), time: Micros(old), value: 1.0 },
        Reading { datastream: DatastreamId(b), time: Micros(older), value: 2.0 },
    ];
    observations::insert(&mut *pool.acquire().await?, &rows).await?;

    // A long read of the 30-day-old chunk, still open: dropping that chunk needs it exclusively.
    let mut reader = pool.begin().await?;
    let seen: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM observations WHERE time >= timestamptz 'epoch' + ($1 - 3600000000) * INTERVAL '1 microsecond'
                                             AND time < timestamptz 'epoch' + ($1 + 3600000000) * INTERVAL '1 microsecond'",
    )
    .bind(old)
    .fetch_one(&mut *reader)
    .await?;
    assert_eq!(seen, 1);

    let run = datasets::retention_run(&pool).await?;
    assert_eq!(run.chunks_skipped, 1, "{run:?}");
    assert_eq!(run.chunks_dropped, 1, "the chunk nobody reads is dropped meanwhile: {run:?}");
    assert!(has_chunk_at(&pool, old).await?, "the locked chunk stays");
    assert!(!has_chunk_at(&pool, older).await?);
    // The writer goes on meanwhile: the reader holds no lock it needs, and no drop waits in its way.
    let fresh = [Reading { datastream: DatastreamId(a), time: Micros(now), value: 3.0 }];
    observations::insert(&mut *pool.acquire().await?, &fresh).await?;

    reader.commit().await?;
    let next = datasets::retention_run(&pool).await?;
    assert_eq!((next.chunks_dropped, next.chunks_skipped), (1, 0), "the next run drops it: {next:?}");
    assert!(!has_chunk_at(&pool, old).await?);
    let left: Vec<f64> = sqlx::query_scalar("SELECT value FROM observations").fetch_all(&pool).await?;
    assert_eq!(left, vec![3.0]);
    assert_eq!(rollup_mismatches(&pool).await?, 0);

    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}
