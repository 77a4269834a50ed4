//! The observation hypertable: bulk, idempotent writes and the read queries.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Connection, FromRow, PgConnection, PgPool};

use hoheit_domain::policy::{ReadRequest, Release, Resolution};
use hoheit_domain::{DatastreamId, Micros, Reading};

/// Writes `readings` and returns the number of rows actually inserted. A
/// reading whose (datastream, time) is already stored is skipped, so
/// redelivered batches do not duplicate rows. The 15-minute rollup
/// (`observations_15m`) and each datastream's newest reading
/// (`datastream_latest`, see [`crate::latest`]) take exactly the inserted
/// readings, in the same transaction (a savepoint when the caller has one
/// open). A reading of a datastream that is not registered (any more: erased
/// meanwhile) is stored but has no latest row.
///
/// Fast path: one binary COPY under a savepoint, which costs about half of
/// an `INSERT … ON CONFLICT` on a hypertable (no conflict probe per row). A
/// batch that holds a duplicate itself, or meets a stored row (a redelivery
/// after a crash or rebalance: rare), takes the set-based
/// `INSERT … ON CONFLICT DO NOTHING` instead; the COPY is rolled back to the
/// savepoint first, so the caller's transaction stays usable.
pub async fn insert(conn: &mut PgConnection, readings: &[Reading]) -> Result<u64, sqlx::Error> {
    if readings.is_empty() {
        return Ok(0);
    }
    // Inside a transaction `begin` is a SAVEPOINT; on its own, a transaction.
    let mut tx = conn.begin().await?;
    let inserted = if has_duplicates(readings) {
        insert_skipping_stored(&mut tx, readings).await?
    } else {
        let mut data = Vec::new();
        encode_copy(readings, &mut data)?;
        let mut savepoint = tx.begin().await?;
        match copy_in(&mut savepoint, &data).await {
            Ok(rows) => {
                savepoint.commit().await?;
                add_to_rollup(&mut tx, readings).await?;
                add_to_latest(&mut tx, readings).await?;
                rows
            }
            Err(error) if is_unique_violation(&error) => {
                savepoint.rollback().await?;
                insert_skipping_stored(&mut tx, readings).await?
            }
            Err(error) => return Err(error),
        }
    };
    tx.commit().await?;
    Ok(inserted)
}

pub use hoheit_domain::ROLLUP_SECS;
const ROLLUP_MICROS: i64 = ROLLUP_SECS * 1_000_000;

/// Adds freshly inserted `readings` to the rollup: one upsert of their
/// (datastream, bucket) groups, in that order, as every write path takes
/// them: two writes that share quarter hours (two writers during a
/// rebalance, parallel loaders) then lock the shared rows in the same order
/// and one waits for the other instead of deadlocking.
async fn add_to_rollup(conn: &mut PgConnection, readings: &[Reading]) -> Result<(), sqlx::Error> {
    let mut groups: std::collections::BTreeMap<(i64, i64), (f64, i64, f64, f64)> = std::collections::BTreeMap::new();
    for r in readings {
        let bucket = r.time.0.div_euclid(ROLLUP_MICROS) * ROLLUP_MICROS;
        let g = groups.entry((r.datastream.0, bucket)).or_insert((0.0, 0, f64::INFINITY, f64::NEG_INFINITY));
        g.0 += r.value;
        g.1 += 1;
        g.2 = g.2.min(r.value);
        g.3 = g.3.max(r.value);
    }
    let mut ids = Vec::with_capacity(groups.len());
    let mut buckets = Vec::with_capacity(groups.len());
    let (mut sums, mut counts, mut mins, mut maxs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((id, bucket), (sum, count, min, max)) in groups {
        ids.push(id);
        buckets.push(bucket);
        sums.push(sum);
        counts.push(count);
        mins.push(min);
        maxs.push(max);
    }
    sqlx::query(
        "INSERT INTO observations_15m AS r (datastream_id, bucket, sum, count, min, max)
         SELECT d, timestamptz 'epoch' + b * interval '1 microsecond', s, c, mi, ma
         FROM UNNEST($1::bigint[], $2::bigint[], $3::float8[], $4::bigint[], $5::float8[], $6::float8[])
              AS u(d, b, s, c, mi, ma)
         ORDER BY d, b
         ON CONFLICT (datastream_id, bucket) DO UPDATE
         SET sum = r.sum + excluded.sum, count = r.count + excluded.count,
             min = least(r.min, excluded.min), max = greatest(r.max, excluded.max)",
    )
    .bind(&ids)
    .bind(&buckets)
    .bind(&sums)
    .bind(&counts)
    .bind(&mins)
    .bind(&maxs)
    .execute(conn)
    .await?;
    Ok(())
}

/// Makes `datastream_latest` take the newest of freshly inserted `readings`
/// (no (datastream, time) twice among them) where it is newer than the row
/// there: one upsert of one row per datastream, in datastream order (so two
/// writers' transactions lock the rows in the same order).
async fn add_to_latest(conn: &mut PgConnection, readings: &[Reading]) -> Result<(), sqlx::Error> {
    let mut newest: std::collections::BTreeMap<i64, (i64, f64)> = std::collections::BTreeMap::new();
    for r in readings {
        let slot = newest.entry(r.datastream.0).or_insert((r.time.0, r.value));
        if r.time.0 > slot.0 {
            *slot = (r.time.0, r.value);
        }
    }
    let mut ids = Vec::with_capacity(newest.len());
    let mut times = Vec::with_capacity(newest.len());
    let mut values = Vec::with_capacity(newest.len());
    for (id, (time, value)) in newest {
        ids.push(id);
        times.push(time);
        values.push(value);
    }
    sqlx::query(&format!(
        "INSERT INTO datastream_latest AS l (datastream_id, time, value)
         SELECT u.d, timestamptz 'epoch' + u.t * interval '1 microsecond', u.v
         FROM UNNEST($1::bigint[], $2::bigint[], $3::float8[]) AS u(d, t, v)
         WHERE EXISTS (SELECT 1 FROM datastreams ds WHERE ds.id = u.d)
         ORDER BY u.d
         {LATEST_UPSERT}"
    ))
    .bind(&ids)
    .bind(&times)
    .bind(&values)
    .execute(conn)
    .await?;
    Ok(())
}

/// How a newer reading replaces a datastream's latest row (and an older one does not).
const LATEST_UPSERT: &str = "ON CONFLICT (datastream_id) DO UPDATE
         SET time = excluded.time, value = excluded.value, changed_xid = pg_current_xact_id()
         WHERE excluded.time > l.time";

/// Rebuilds the rollup and each datastream's latest reading from the raw rows
/// (after a bulk load that bypassed [`insert`]).
pub async fn rebuild_rollup(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("TRUNCATE observations_15m").execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO observations_15m (datastream_id, bucket, sum, count, min, max)
         SELECT datastream_id, time_bucket(INTERVAL '15 minutes', time, timestamptz 'epoch'),
                sum(value), count(*), min(value), max(value)
         FROM observations GROUP BY 1, 2",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM datastream_latest").execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO datastream_latest (datastream_id, time, value)
         SELECT d.id, newest.time, newest.value FROM datastreams d
         CROSS JOIN LATERAL (
             SELECT o.time, o.value FROM observations o WHERE o.datastream_id = d.id ORDER BY o.time DESC LIMIT 1
         ) newest",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Whether a (datastream, time) pair occurs twice in `readings`.
fn has_duplicates(readings: &[Reading]) -> bool {
    let mut keys: Vec<(i64, i64)> = readings.iter().map(|r| (r.datastream.0, r.time.0)).collect();
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

async fn copy_in(conn: &mut PgConnection, data: &[u8]) -> Result<u64, sqlx::Error> {
    let mut copy =
        conn.copy_in_raw("COPY observations (datastream_id, time, value) FROM STDIN WITH (FORMAT binary)").await?;
    copy.send(data).await?;
    copy.finish().await
}

/// The slow path: one statement that skips every reading already stored
/// (and repeats within `readings`).
async fn insert_skipping_stored(conn: &mut PgConnection, readings: &[Reading]) -> Result<u64, sqlx::Error> {
    let mut ids = Vec::with_capacity(readings.len());
    let mut times = Vec::with_capacity(readings.len());
    let mut values = Vec::with_capacity(readings.len());
    for r in readings {
        ids.push(r.datastream.0);
        times.push(r.time.0);
        values.push(r.value);
    }
    // Times travel as microseconds and are converted in SQL, which keeps the
    // exact value (no float seconds on the way).
    // The rollup and the latest rows take only the rows actually inserted (RETURNING).
    let inserted: i64 = sqlx::query_scalar(&format!(
        "WITH inserted AS (
             INSERT INTO observations (datastream_id, time, value)
             SELECT d, timestamptz 'epoch' + t * interval '1 microsecond', v
             FROM UNNEST($1::bigint[], $2::bigint[], $3::float8[]) AS u(d, t, v)
             ON CONFLICT DO NOTHING
             RETURNING datastream_id, time, value
         ), rolled AS (
             INSERT INTO observations_15m AS r (datastream_id, bucket, sum, count, min, max)
             SELECT datastream_id, time_bucket(INTERVAL '15 minutes', time, timestamptz 'epoch'),
                    sum(value), count(*), min(value), max(value)
             FROM inserted GROUP BY 1, 2 ORDER BY 1, 2
             ON CONFLICT (datastream_id, bucket) DO UPDATE
             SET sum = r.sum + excluded.sum, count = r.count + excluded.count,
                 min = least(r.min, excluded.min), max = greatest(r.max, excluded.max)
         ), latest AS (
             INSERT INTO datastream_latest AS l (datastream_id, time, value)
             SELECT DISTINCT ON (i.datastream_id) i.datastream_id, i.time, i.value
             FROM inserted i WHERE EXISTS (SELECT 1 FROM datastreams ds WHERE ds.id = i.datastream_id)
             ORDER BY i.datastream_id, i.time DESC
             {LATEST_UPSERT}
         )
         SELECT count(*) FROM inserted"
    ))
    .bind(&ids)
    .bind(&times)
    .bind(&values)
    .fetch_one(conn)
    .await?;
    Ok(inserted as u64)
}

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01T00:00:00Z).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Signature, flags and header-extension length of PostgreSQL's binary COPY format.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Bytes of one row: field count, then three 8-byte fields with their lengths.
pub const COPY_ROW_BYTES: usize = 2 + 3 * (4 + 8);

/// Appends `readings` to `out` as PostgreSQL binary COPY data for the
/// columns `(datastream_id, time, value)`, header and trailer included.
/// A time outside what PostgreSQL can store is an error, not a wrong row.
pub fn encode_copy(readings: &[Reading], out: &mut Vec<u8>) -> Result<(), sqlx::Error> {
    out.reserve(COPY_HEADER.len() + readings.len() * COPY_ROW_BYTES + 2);
    out.extend_from_slice(COPY_HEADER);
    for r in readings {
        let time = r.time.0.checked_sub(PG_EPOCH_MICROS).ok_or_else(|| {
            sqlx::Error::Encode(format!("reading time {} µs is outside PostgreSQL's range", r.time.0).into())
        })?;
        out.extend_from_slice(&3i16.to_be_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&r.datastream.0.to_be_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&time.to_be_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&r.value.to_bits().to_be_bytes());
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    Ok(())
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema, FromRow)]
pub struct Observation {
    #[serde(serialize_with = "hoheit_domain::rfc3339::serialize")]
    pub time: DateTime<Utc>,
    pub value: f64,
}

/// Readings of one datastream in `[from, to)`, oldest first, strictly after
/// `after` when paging.
pub async fn range(
    pool: &PgPool,
    datastream: DatastreamId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    after: Option<Micros>,
    limit: i64,
) -> Result<Vec<Observation>, sqlx::Error> {
    let from = match after.and_then(Micros::to_datetime) {
        Some(cursor) if cursor >= from => cursor + chrono::Duration::microseconds(1),
        _ => from,
    };
    sqlx::query_as(
        "SELECT time, value FROM observations
         WHERE datastream_id = $1 AND time >= $2 AND time < $3
         ORDER BY time ASC LIMIT $4",
    )
    .bind(datastream.0)
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// One aggregate; its queries name the time column `bucket` (as an output
/// alias, `time` would be the readings' column in `GROUP BY`).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema, FromRow)]
pub struct Bucket {
    #[sqlx(rename = "bucket")]
    #[serde(serialize_with = "hoheit_domain::rfc3339::serialize")]
    pub time: DateTime<Utc>,
    pub avg: f64,
    /// Absent for personal data: an extreme is one person's reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Absent for personal data: an extreme is one person's reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    pub count: i64,
}

/// The aggregates a read may release: `request` as the policy's `release`
/// snapped it ([`Release::snap`]), personal data under its rule
/// ([`personal_aggregates`]), everything else exactly ([`aggregates`]).
pub async fn released_aggregates(
    pool: &PgPool,
    datastream: DatastreamId,
    request: &ReadRequest,
    release: Release,
) -> Result<Vec<Bucket>, sqlx::Error> {
    let Resolution::Aggregate { interval_secs } = request.resolution else {
        return Err(sqlx::Error::Protocol("aggregates asked for with a raw read request".into()));
    };
    match release.min_count() {
        Some(min_count) => {
            personal_aggregates(pool, datastream, request.from, request.to, interval_secs, min_count).await
        }
        None => aggregates(pool, datastream, request.from, request.to, interval_secs).await,
    }
}

/// Average, minimum, maximum and count per `time_bucket` of `interval_secs`,
/// buckets aligned to the Unix epoch, oldest first. From the 15-minute rollup
/// when the interval is a multiple of 15 minutes and the range starts and
/// ends on 15-minute boundaries (then the result is the same), else from the
/// raw readings.
pub async fn aggregates(
    pool: &PgPool,
    datastream: DatastreamId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    interval_secs: i64,
) -> Result<Vec<Bucket>, sqlx::Error> {
    let sql = if interval_secs % ROLLUP_SECS == 0 && on_rollup_grid(from) && on_rollup_grid(to) {
        "SELECT time_bucket(make_interval(secs => $4::float8), bucket, timestamptz 'epoch') AS bucket,
                sum(sum) / sum(count) AS avg, min(min) AS min, max(max) AS max, sum(count)::bigint AS count
         FROM observations_15m
         WHERE datastream_id = $1 AND bucket >= $2 AND bucket < $3
         GROUP BY 1 ORDER BY 1"
    } else {
        AGGREGATES_RAW
    };
    sqlx::query_as(sql).bind(datastream.0).bind(from).bind(to).bind(interval_secs as f64).fetch_all(pool).await
}

fn on_rollup_grid(t: DateTime<Utc>) -> bool {
    t.timestamp_subsec_micros() == 0 && t.timestamp().rem_euclid(ROLLUP_SECS) == 0
}

/// Personal data's aggregates, built from the 15-minute rollup only: a cell
/// of fewer than `min_count` readings is left out (it counts in no bucket),
/// a bucket of fewer than `min_count` readings is withheld, and there is no
/// minimum or maximum. So every released bucket is a sum of released cells,
/// and a difference of two answers is a sum of released cells too.
/// `from`, `to` and `interval_secs` lie on the 15-minute grid
/// ([`Release::snap`] makes them so); a range off it is narrowed to it.
pub async fn personal_aggregates(
    pool: &PgPool,
    datastream: DatastreamId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    interval_secs: i64,
    min_count: i32,
) -> Result<Vec<Bucket>, sqlx::Error> {
    if interval_secs <= 0 || interval_secs % ROLLUP_SECS != 0 {
        return Err(sqlx::Error::Protocol(format!(
            "personal aggregates need an interval on the 15-minute grid, not {interval_secs} s"
        )));
    }
    // No minimum or maximum: an extreme is one person's reading.
    sqlx::query_as(
        "SELECT time_bucket(make_interval(secs => $4::float8), bucket, timestamptz 'epoch') AS bucket,
                sum(sum) / sum(count) AS avg, NULL::float8 AS min, NULL::float8 AS max, sum(count)::bigint AS count
         FROM observations_15m
         WHERE datastream_id = $1 AND bucket >= $2 AND bucket + INTERVAL '15 minutes' <= $3 AND count >= $5
         GROUP BY 1 HAVING sum(count) >= $5 ORDER BY 1",
    )
    .bind(datastream.0)
    .bind(from)
    .bind(to)
    .bind(interval_secs as f64)
    .bind(i64::from(min_count))
    .fetch_all(pool)
    .await
}

/// Aggregates from the raw readings.
const AGGREGATES_RAW: &str =
    "SELECT time_bucket(make_interval(secs => $4::float8), time, timestamptz 'epoch') AS bucket,
            avg(value) AS avg, min(value) AS min, max(value) AS max, count(*) AS count
     FROM observations
     WHERE datastream_id = $1 AND time >= $2 AND time < $3
     GROUP BY bucket ORDER BY bucket";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_data_has_header_rows_and_trailer_in_postgres_binary_format() {
        let reading = Reading { datastream: DatastreamId(7), time: Micros(PG_EPOCH_MICROS + 1), value: 1.5 };
        let mut out = Vec::new();
        encode_copy(&[reading, reading], &mut out).expect("times in range");
        assert_eq!(out.len(), COPY_HEADER.len() + 2 * COPY_ROW_BYTES + 2);
        assert!(out.starts_with(b"PGCOPY\n\xff\r\n\0"));
        let row = &out[COPY_HEADER.len()..COPY_HEADER.len() + COPY_ROW_BYTES];
        assert_eq!(&row[..2], &[0, 3]);
        assert_eq!(&row[2..6], &[0, 0, 0, 8]);
        assert_eq!(&row[6..14], &7i64.to_be_bytes());
        assert_eq!(&row[18..26], &1i64.to_be_bytes(), "microseconds since 2000-01-01");
        assert_eq!(&row[30..38], &1.5f64.to_bits().to_be_bytes());
        assert_eq!(&out[out.len() - 2..], &[0xff, 0xff]);
    }

    #[test]
    fn a_time_postgres_cannot_hold_is_an_error() {
        let reading = Reading { datastream: DatastreamId(1), time: Micros(i64::MIN), value: 0.0 };
        assert!(encode_copy(&[reading], &mut Vec::new()).is_err());
    }
}
