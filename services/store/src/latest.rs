//! Each datastream's newest reading (`datastream_latest`, kept by the writer
//! in the transaction that stores the reading) and the changes to it, which
//! one shared feed per API process follows instead of every live client
//! polling the database.
//!
//! A position in the feed is the `xmin` of a snapshot: every transaction
//! that had not finished when the snapshot was taken has an id at or above
//! it. Asking for the rows changed by transactions at or above the previous
//! position therefore misses nothing, whatever order the writers commit in;
//! a row may come twice (a reader keeps what it sent and skips repeats).

use chrono::{DateTime, Utc};
use hoheit_domain::DatastreamId;
use sqlx::{FromRow, PgPool};

/// Where a reader of changes stands: the `xmin` of the snapshot it last asked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeedPosition(i64);

/// A datastream's newest reading as changed.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct LatestReading {
    #[sqlx(try_from = "i64")]
    pub datastream_id: DatastreamId,
    pub time: DateTime<Utc>,
    pub value: f64,
}

/// The changes since a position, and the position to ask from next.
#[derive(Debug, Clone)]
pub struct Changes {
    pub readings: Vec<LatestReading>,
    pub next: FeedPosition,
}

/// The position now: the changes after it are those of transactions not finished yet.
pub async fn position(pool: &PgPool) -> Result<FeedPosition, sqlx::Error> {
    let xmin: i64 =
        sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").fetch_one(pool).await?;
    Ok(FeedPosition(xmin))
}

/// The newest readings changed by transactions at or after `since`, and the
/// position to ask from next time (taken first, so that a transaction
/// committing in between is asked for again rather than missed).
pub async fn changes_since(pool: &PgPool, since: FeedPosition) -> Result<Changes, sqlx::Error> {
    let next = position(pool).await?;
    let readings = sqlx::query_as(
        "SELECT datastream_id, time, value FROM datastream_latest
          WHERE changed_xid >= $1::text::xid8 ORDER BY datastream_id",
    )
    .bind(since.0.to_string())
    .fetch_all(pool)
    .await?;
    Ok(Changes { readings, next })
}

/// The newest reading of every datastream that has one.
pub async fn all(pool: &PgPool) -> Result<Vec<LatestReading>, sqlx::Error> {
    sqlx::query_as("SELECT datastream_id, time, value FROM datastream_latest ORDER BY datastream_id")
        .fetch_all(pool)
        .await
}
