//! The dead-letter table: rejected messages kept with their reasons, so their
//! owners can see what was not accepted and why; which of them a replay
//! takes and what it did to them; and what an erasure removes of them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgConnection, PgPool};

use hoheit_domain::replay::ReplayResult;
use hoheit_domain::topic::TopicScheme;
use hoheit_domain::{Micros, Slug};

use crate::audit::{self, Actor, AdminChange};

/// Where the writer read a dead letter from; makes storing it idempotent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePosition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// One rejected reading (or the whole message when `reading_index` is None).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StoredRejection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reading_index: Option<i32>,
    pub code: String,
    pub reason: String,
}

/// A dead letter on its way into the table.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeadLetter {
    pub received: Micros,
    pub org: String,
    pub mqtt_topic: String,
    /// `None` for a record that did not decode (its door is unknown).
    pub door: Option<String>,
    pub payload: Vec<u8>,
    pub rejections: Vec<StoredRejection>,
    pub source: SourcePosition,
}

impl NewDeadLetter {
    /// Converts a Kafka dead-letter record; `None` if it has no rejection.
    pub fn from_proto(record: hoheit_proto::v1::DeadLetter, source: SourcePosition) -> Self {
        let mut rejections: Vec<StoredRejection> = record
            .rejections
            .into_iter()
            .map(|r| StoredRejection {
                reading_index: (r.reading_index >= 0).then_some(r.reading_index),
                code: r.code,
                reason: r.reason,
            })
            .collect();
        if rejections.is_empty() {
            rejections.push(StoredRejection {
                reading_index: None,
                code: "unknown".into(),
                reason: "the dead-letter record carried no reason".into(),
            });
        }
        Self {
            received: Micros(record.received_unix_us),
            org: record.org,
            mqtt_topic: record.mqtt_topic,
            door: Some(if record.door.is_empty() { "mqtt".into() } else { record.door.chars().take(32).collect() }),
            payload: record.payload,
            rejections,
            source,
        }
    }

    /// Headline reason: the first rejection, with a count of the others.
    fn headline(&self) -> (String, String) {
        let first = &self.rejections[0];
        let reason = match self.rejections.len() {
            1 => first.reason.clone(),
            n => format!("{} (and {} more rejected readings)", first.reason, n - 1),
        };
        (first.code.clone(), reason)
    }
}

/// Stores dead letters in one statement; records already stored (same
/// source position) are skipped. Returns the number inserted.
pub async fn insert(conn: &mut PgConnection, letters: &[NewDeadLetter]) -> Result<u64, sqlx::Error> {
    if letters.is_empty() {
        return Ok(0);
    }
    let n = letters.len();
    let (mut received, mut orgs, mut topics, mut codes, mut reasons, mut rejections, mut payloads) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut source_topics, mut partitions, mut offsets, mut doors) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for letter in letters {
        let (code, reason) = letter.headline();
        received.push(letter.received.0);
        orgs.push(letter.org.as_str());
        topics.push(letter.mqtt_topic.as_str());
        codes.push(code);
        reasons.push(reason);
        rejections.push(serde_json::to_string(&letter.rejections).unwrap_or_else(|_| "[]".into()));
        payloads.push(letter.payload.as_slice());
        source_topics.push(letter.source.topic.as_str());
        partitions.push(letter.source.partition);
        offsets.push(letter.source.offset);
        doors.push(letter.door.as_deref());
    }
    let result = sqlx::query(
        "INSERT INTO dead_letters (received_at, org, mqtt_topic, reason_code, reason, rejections, payload,
                                   source_topic, source_partition, source_offset, door)
         SELECT timestamptz 'epoch' + r * interval '1 microsecond', o, m, c, re, j::jsonb, p, st, sp, so, d
         FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[],
                     $8::text[], $9::int[], $10::bigint[], $11::text[]) AS u(r, o, m, c, re, j, p, st, sp, so, d)
         ON CONFLICT DO NOTHING",
    )
    .bind(&received)
    .bind(&orgs)
    .bind(&topics)
    .bind(&codes)
    .bind(&reasons)
    .bind(&rejections)
    .bind(&payloads)
    .bind(&source_topics)
    .bind(&partitions)
    .bind(&offsets)
    .bind(&doors)
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

/// A stored dead letter as the API shows it.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct DeadLetter {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub org: String,
    pub mqtt_topic: String,
    /// The door it came in by: `mqtt`, `http`, `sta`, `chirpstack`, `tts`,
    /// `airrohr`; `None` for a Kafka record that did not decode.
    pub door: Option<String>,
    pub reason_code: String,
    pub reason: String,
    pub rejections: serde_json::Value,
    pub payload: Vec<u8>,
    /// When it was last replayed (`None`: never).
    pub replayed_at: Option<DateTime<Utc>>,
    /// `stored`, `partial` or `rejected`: what its last replay did.
    pub replay_result: Option<String>,
    /// The code its last replay still failed with.
    pub replay_reason_code: Option<String>,
    pub replay_count: i32,
}

/// Which of an organisation's dead letters a listing or a replay takes:
/// by reason code (the latest: a replayed one's new code), by thing (its
/// topic or a datastream's under it) and by time received.
#[derive(Debug, Clone, Default)]
pub struct Selection<'a> {
    /// `None`: every organisation (the operator's listing).
    pub org: Option<&'a Slug>,
    pub reason: Option<&'a Slug>,
    /// The thing's topic (`TopicScheme::thing_topic`).
    pub thing_topic: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// The condition of a [`Selection`] on parameters `$1` to `$5`.
const SELECTED: &str = "($1::text IS NULL OR org = $1)
      AND ($2::text IS NULL OR coalesce(replay_reason_code, reason_code) = $2)
      AND ($3::text IS NULL OR mqtt_topic = $3 OR starts_with(mqtt_topic, $3 || '/'))
      AND ($4::timestamptz IS NULL OR received_at >= $4)
      AND ($5::timestamptz IS NULL OR received_at < $5)";

/// Dead letters of `selection`, oldest first, with ids greater than
/// `after_id` (paging).
pub async fn list(
    pool: &PgPool,
    selection: &Selection<'_>,
    after_id: i64,
    limit: i64,
) -> Result<Vec<DeadLetter>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT id, received_at, org, mqtt_topic, door, reason_code, reason, rejections, payload,
                replayed_at, replay_result, replay_reason_code, replay_count
         FROM dead_letters
         WHERE {SELECTED} AND id > $6
         ORDER BY id LIMIT $7"
    ))
    .bind(selection.org.map(Slug::as_str))
    .bind(selection.reason.map(Slug::as_str))
    .bind(selection.thing_topic.as_deref())
    .bind(selection.from)
    .bind(selection.to)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The doors whose dead letters can be replayed: those addressed by a topic
/// of Hoheit's scheme (MQTT and the HTTP push), which the pipeline reads again
/// from the topic and the raw payload alone.
pub const REPLAYABLE_DOORS: [&str; 2] = ["mqtt", "http"];

/// A dead letter to replay: where it was addressed and what it carried.
#[derive(Debug, Clone, FromRow)]
pub struct ReplayCandidate {
    pub id: i64,
    pub door: String,
    pub mqtt_topic: String,
    pub payload: Vec<u8>,
}

/// The dead letters of `selection` a replay takes, oldest first, at most
/// `limit`: of the replayable doors, with a payload (an erasure removes
/// it), and unless `include_replayed`, not those whose last replay stored them.
pub async fn replay_candidates(
    pool: &PgPool,
    selection: &Selection<'_>,
    include_replayed: bool,
    limit: i64,
) -> Result<Vec<ReplayCandidate>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT id, door, mqtt_topic, payload
         FROM dead_letters
         WHERE {SELECTED} AND door = ANY($6) AND length(payload) > 0
           AND ($7 OR replay_result IS DISTINCT FROM 'stored')
         ORDER BY id LIMIT $8"
    ))
    .bind(selection.org.map(Slug::as_str))
    .bind(selection.reason.map(Slug::as_str))
    .bind(selection.thing_topic.as_deref())
    .bind(selection.from)
    .bind(selection.to)
    .bind(&REPLAYABLE_DOORS[..])
    .bind(include_replayed)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// What a replay did to one dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayMark {
    pub id: i64,
    pub result: ReplayResult,
    pub reason_code: Option<String>,
}

/// Marks the replayed dead letters (when, result, code, one more replay) and
/// appends the replay's audit record, in one transaction.
pub async fn record_replay(
    pool: &PgPool,
    marks: &[ReplayMark],
    actor: &Actor,
    change: &AdminChange,
) -> Result<(), sqlx::Error> {
    let ids: Vec<i64> = marks.iter().map(|m| m.id).collect();
    let results: Vec<&str> = marks.iter().map(|m| m.result.as_str()).collect();
    let codes: Vec<Option<&str>> = marks.iter().map(|m| m.reason_code.as_deref()).collect();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE dead_letters dl
         SET replayed_at = now(), replay_result = u.result, replay_reason_code = u.code,
             replay_count = dl.replay_count + 1
         FROM UNNEST($1::bigint[], $2::text[], $3::text[]) AS u(id, result, code)
         WHERE dl.id = u.id",
    )
    .bind(&ids)
    .bind(&results)
    .bind(&codes)
    .execute(&mut *tx)
    .await?;
    audit::record_change(&mut tx, actor, change).await?;
    tx.commit().await
}

/// What an erasure removed of the dead letters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeadLettersErased {
    /// Dead letters of the dataset's datastreams (their topics) and of things whose datastreams all belong to it.
    pub deleted: u64,
    /// Dead letters of a thing with datastreams in this and other datasets: their payload (which may hold
    /// readings of both) is removed, their reasons stay for the other datasets' owner.
    pub payloads_removed: u64,
}

/// Removes the raw payloads of a dataset being erased from the dead letters,
/// matched exactly by topic under `scheme` (the dead letters carry no
/// datastream): a datastream's topic `{root}/{org}/{thing}/{property}`, and a
/// thing's topic `{root}/{org}/{thing}`, which may carry readings of every
/// datastream of the thing. Runs inside the erasure's transaction, before its
/// datastreams are deleted.
pub async fn erase_for_dataset(
    conn: &mut PgConnection,
    dataset_id: i64,
    scheme: &TopicScheme,
) -> Result<DeadLettersErased, sqlx::Error> {
    let deleted = sqlx::query(
        "WITH things_of AS (
             SELECT t.id, o.slug AS org, t.slug AS thing,
                    bool_and(d.dataset_id IS NOT DISTINCT FROM $1) AS only_this
             FROM things t JOIN organisations o ON o.id = t.org_id JOIN datastreams d ON d.thing_id = t.id
             WHERE t.id IN (SELECT thing_id FROM datastreams WHERE dataset_id = $1)
             GROUP BY t.id, o.slug, t.slug
         ), topics AS (
             SELECT o.slug AS org, $2 || '/' || o.slug || '/' || t.slug || '/' || d.property AS topic
             FROM datastreams d JOIN things t ON t.id = d.thing_id JOIN organisations o ON o.id = t.org_id
             WHERE d.dataset_id = $1
             UNION
             SELECT org, $2 || '/' || org || '/' || thing FROM things_of WHERE only_this
         )
         DELETE FROM dead_letters dl USING topics
         WHERE dl.org = topics.org AND dl.mqtt_topic = topics.topic",
    )
    .bind(dataset_id)
    .bind(scheme.root())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let payloads_removed = sqlx::query(
        "WITH shared AS (
             SELECT o.slug AS org, $2 || '/' || o.slug || '/' || t.slug AS topic
             FROM things t JOIN organisations o ON o.id = t.org_id JOIN datastreams d ON d.thing_id = t.id
             WHERE t.id IN (SELECT thing_id FROM datastreams WHERE dataset_id = $1)
             GROUP BY o.slug, t.slug
             HAVING NOT bool_and(d.dataset_id IS NOT DISTINCT FROM $1)
         )
         UPDATE dead_letters dl
         SET payload = ''::bytea,
             reason = dl.reason || ' (payload removed: it may hold readings of erased dataset ' || $1::bigint::text || ')'
         FROM shared
         WHERE dl.org = shared.org AND dl.mqtt_topic = shared.topic AND length(dl.payload) > 0",
    )
    .bind(dataset_id)
    .bind(scheme.root())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(DeadLettersErased { deleted, payloads_removed })
}
