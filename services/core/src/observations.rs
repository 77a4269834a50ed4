//! The observation hypertable: bulk, idempotent writes and the read queries.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};

use crate::domain::{DatastreamId, Micros, Reading};

/// Writes `readings` in one statement. A reading whose (datastream, time) is
/// already stored is skipped, so redelivered batches do not duplicate rows.
/// Returns the number of rows actually inserted.
pub async fn insert(conn: &mut PgConnection, readings: &[Reading]) -> Result<u64, sqlx::Error> {
    if readings.is_empty() {
        return Ok(0);
    }
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

#[derive(Debug, Clone, Serialize, PartialEq)]
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

#[derive(Debug, Clone, Serialize, PartialEq)]
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
