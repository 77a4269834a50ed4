//! The observation hypertable: bulk, idempotent writes and the read queries.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool, Row};

use crate::domain::{DatastreamId, Micros, Reading};

/// Writes `readings` and returns the number of rows actually inserted. A
/// reading whose (datastream, time) is already stored is skipped, so
/// redelivered batches do not duplicate rows.
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
    if has_duplicates(readings) {
        return insert_skipping_stored(conn, readings).await;
    }
    let mut data = Vec::new();
    encode_copy(readings, &mut data)?;
    // Inside a transaction `begin` is a SAVEPOINT; on its own, a transaction.
    let mut savepoint = conn.begin().await?;
    let copied = copy_in(&mut savepoint, &data).await;
    match copied {
        Ok(rows) => {
            savepoint.commit().await?;
            Ok(rows)
        }
        Err(error) if is_unique_violation(&error) => {
            savepoint.rollback().await?;
            insert_skipping_stored(conn, readings).await
        }
        Err(error) => Err(error),
    }
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
    let result = sqlx::query(
        "INSERT INTO observations (datastream_id, time, value)
         SELECT d, timestamptz 'epoch' + t * interval '1 microsecond', v
         FROM UNNEST($1::bigint[], $2::bigint[], $3::float8[]) AS u(d, t, v)
         ON CONFLICT DO NOTHING",
    )
    .bind(&ids)
    .bind(&times)
    .bind(&values)
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
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

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Observation {
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
    let rows = sqlx::query(
        "SELECT time, value FROM observations
         WHERE datastream_id = $1 AND time >= $2 AND time < $3
         ORDER BY time ASC LIMIT $4",
    )
    .bind(datastream.0)
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(|r| Observation { time: r.get("time"), value: r.get("value") }).collect())
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Bucket {
    pub time: DateTime<Utc>,
    pub avg: f64,
    pub min: f64,
    pub max: f64,
    pub count: i64,
}

/// Average, minimum, maximum and count per `time_bucket` of `interval_secs`,
/// buckets aligned to the Unix epoch, oldest first.
pub async fn aggregates(
    pool: &PgPool,
    datastream: DatastreamId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    interval_secs: i64,
) -> Result<Vec<Bucket>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT time_bucket(make_interval(secs => $4::float8), time, timestamptz 'epoch') AS bucket,
                avg(value) AS avg, min(value) AS min, max(value) AS max, count(*) AS count
         FROM observations
         WHERE datastream_id = $1 AND time >= $2 AND time < $3
         GROUP BY bucket ORDER BY bucket",
    )
    .bind(datastream.0)
    .bind(from)
    .bind(to)
    .bind(interval_secs as f64)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Bucket {
            time: r.get("bucket"),
            avg: r.get("avg"),
            min: r.get("min"),
            max: r.get("max"),
            count: r.get("count"),
        })
        .collect())
}

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
