//! What the data quality of a datastream is computed from
//! (`hoheit_domain::quality`): its set interval and the median gap of its
//! recent readings, readings per day, gaps between readings, and the
//! readings dead-lettered for it by reason. Every statement reads one
//! datastream's readings over a bounded range through the
//! `(datastream_id, time)` index: per-day counts with `time_bucket`, gaps
//! with a `lag()` window over that range only.
//!
//! Dead letters name no datastream id; a rejected reading belongs to a
//! datastream when its dead letter came on that datastream's topic (the
//! HTTP doors record the topic of the address they wrote to), or when the
//! rejection's reason names the datastream (`datastream {org}/{thing}/{property}`,
//! as ingest's checks of a thing's or an organisation's readings write it:
//! out of range, wrong unit, not allowed to write). Only the reasons a dead
//! letter lists are counted (ingest lists the first 100 of a message).

use chrono::{DateTime, Utc};
use hoheit_domain::{DatastreamId, Slug};
use sqlx::{FromRow, PgPool};

use crate::registry::RegistryError;

/// A datastream's identity and interval facts.
#[derive(Debug, Clone, FromRow)]
pub struct QualityFacts {
    #[sqlx(try_from = "i64")]
    pub id: DatastreamId,
    #[sqlx(try_from = "String")]
    pub org: Slug,
    #[sqlx(try_from = "String")]
    pub thing: Slug,
    #[sqlx(try_from = "String")]
    pub property: Slug,
    pub expected_interval_secs: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub last_reading_at: Option<DateTime<Utc>>,
    /// The median gap between readings since `learn_from`; only when no interval is set.
    pub median_gap_secs: Option<f64>,
}

impl QualityFacts {
    /// `org/thing/property`: how topics end and reasons name it.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.org, self.thing, self.property)
    }
}

const FACTS_SELECT: &str =
    "SELECT d.id, o.slug AS org, t.slug AS thing, d.property, d.expected_interval_secs, d.created_at,
        (SELECT l.time FROM datastream_latest l WHERE l.datastream_id = d.id) AS last_reading_at,
        CASE WHEN d.expected_interval_secs IS NULL THEN (
            SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY g.gap)
            FROM (SELECT extract(epoch FROM ob.time - lag(ob.time) OVER (ORDER BY ob.time))::float8 AS gap
                  FROM observations ob WHERE ob.datastream_id = d.id AND ob.time >= $2 AND ob.time < $3) g
            WHERE g.gap IS NOT NULL)
        END AS median_gap_secs
     FROM datastreams d JOIN things t ON t.id = d.thing_id JOIN organisations o ON o.id = t.org_id";

/// The facts of datastream `id`, learning its interval (if none is set) from
/// the readings in `[learn_from, now)`.
pub async fn facts(
    pool: &PgPool,
    id: DatastreamId,
    learn_from: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<QualityFacts, RegistryError> {
    sqlx::query_as(&format!("{FACTS_SELECT} WHERE d.id = $1"))
        .bind(id.0)
        .bind(learn_from)
        .bind(now)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("datastream {id}")))
}

/// The facts of every datastream of the organisation `org_id`, in id order.
pub async fn facts_of_organisation(
    pool: &PgPool,
    org_id: i64,
    learn_from: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<QualityFacts>, RegistryError> {
    Ok(sqlx::query_as(&format!("{FACTS_SELECT} WHERE t.org_id = $1 ORDER BY d.id"))
        .bind(org_id)
        .bind(learn_from)
        .bind(now)
        .fetch_all(pool)
        .await?)
}

/// Readings of one UTC day.
#[derive(Debug, Clone, FromRow)]
pub struct DayCount {
    pub day: DateTime<Utc>,
    pub readings: i64,
    /// The day's first reading.
    pub first: DateTime<Utc>,
}

/// Readings per UTC day of datastream `id` in `[from, to)`, oldest first (days without any are absent).
pub async fn day_counts(
    pool: &PgPool,
    id: DatastreamId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DayCount>, sqlx::Error> {
    sqlx::query_as(
        "SELECT time_bucket(INTERVAL '1 day', time, timestamptz 'epoch') AS day, count(*) AS readings, min(time) AS first
         FROM observations WHERE datastream_id = $1 AND time >= $2 AND time < $3
         GROUP BY 1 ORDER BY 1",
    )
    .bind(id.0)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}

/// Two consecutive readings further apart than asked.
#[derive(Debug, Clone, FromRow)]
pub struct GapRow {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Gaps between consecutive readings of datastream `id` in `[from, to)`
/// longer than `longer_than_secs`, oldest first, at most `limit`.
pub async fn gaps(
    pool: &PgPool,
    id: DatastreamId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    longer_than_secs: i64,
    limit: i64,
) -> Result<Vec<GapRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.prev AS from, s.time AS to
         FROM (SELECT time, lag(time) OVER (ORDER BY time) AS prev
               FROM observations WHERE datastream_id = $1 AND time >= $2 AND time < $3) s
         WHERE s.time - s.prev > make_interval(secs => $4::float8)
         ORDER BY s.time LIMIT $5",
    )
    .bind(id.0)
    .bind(from)
    .bind(to)
    .bind(longer_than_secs as f64)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Rejected readings of one reason, counted since `asked_from` and since `recent_from`.
#[derive(Debug, Clone, FromRow)]
pub struct RejectedCount {
    pub reason: String,
    pub asked: i64,
    pub recent: i64,
}

/// The readings dead-lettered for `facts`' datastream, whose MQTT topic is
/// `topic` (see the module documentation), received before `to`, by reason code, counted since
/// `asked_from` and since `recent_from` (the earlier of them bounds the
/// scan), the most frequent first; reasons without any are left out.
pub async fn rejected(
    pool: &PgPool,
    facts: &QualityFacts,
    topic: &str,
    asked_from: DateTime<Utc>,
    recent_from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<RejectedCount>, sqlx::Error> {
    sqlx::query_as(
        "SELECT coalesce(r.value->>'code', 'unknown') AS reason, count(*) FILTER (WHERE dl.received_at >= $6) AS asked,
                count(*) FILTER (WHERE dl.received_at >= $5) AS recent
         FROM dead_letters dl CROSS JOIN LATERAL jsonb_array_elements(dl.rejections) r
         WHERE dl.org = $1 AND dl.received_at >= $3 AND dl.received_at < $4
           AND (dl.mqtt_topic = $7 OR (r.value->>'reason') ~ ('datastream ' || $2 || '([^a-z0-9_/-]|$)'))
         GROUP BY 1 ORDER BY 2 DESC, 1",
    )
    .bind(facts.org.as_str())
    .bind(facts.key())
    .bind(asked_from.min(recent_from))
    .bind(to)
    .bind(recent_from)
    .bind(asked_from)
    .bind(topic)
    .fetch_all(pool)
    .await
}
