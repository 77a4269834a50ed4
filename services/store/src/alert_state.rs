//! The alerts service's tables: the enabled rules it evaluates, with their
//! state and what a notification names ([`watched_rules`]); the change marker
//! that tells it to reload them ([`rules_marker`]); one transaction per
//! evaluated batch ([`commit`]: changed states, the events with their
//! deliveries, the Kafka offsets, together); and the deliveries that are due
//! ([`due_deliveries`], [`record_attempt`]).
//!
//! A state or event is written only while its rule is unchanged since it was
//! loaded (the same `updated_at`): a rule the API changed meanwhile starts
//! from the state the API left, never from one evaluated under its old
//! condition.

use chrono::{DateTime, Utc};
use hoheit_domain::alert::{self, Bucket, Change, Condition, RuleSpec, State, Status};
use hoheit_domain::Micros;
use sqlx::{PgPool, Postgres, Transaction};

/// An enabled rule with its state and the names a notification shows.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WatchedRule {
    pub id: i64,
    pub datastream_id: i64,
    /// Who made the rule; `None`: the operator.
    pub principal_id: Option<i64>,
    pub name: String,
    pub kind: String,
    pub threshold: Option<f64>,
    pub for_secs: i32,
    pub hysteresis: f64,
    pub resolution_secs: i32,
    pub updated_at: DateTime<Utc>,
    pub status: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub fired_at: Option<DateTime<Utc>>,
    pub fired_value: Option<f64>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_value: Option<f64>,
    pub last_value: Option<f64>,
    pub last_reading_at: Option<DateTime<Utc>>,
    pub bucket_start: Option<DateTime<Utc>>,
    pub bucket_sum: Option<f64>,
    pub bucket_count: Option<i32>,
}

impl WatchedRule {
    /// The rule's checked spec; `None` for a stored rule that no longer
    /// passes the checks (it is not evaluated, and logged by the caller).
    pub fn spec(&self) -> Option<RuleSpec> {
        let condition = Condition::from_stored(&self.kind, self.threshold)?;
        let resolution = alert::resolution_from_secs(i64::from(self.resolution_secs));
        RuleSpec::new(condition, i64::from(self.for_secs), self.hysteresis, resolution).ok()
    }

    /// The stored state (a missing row is a fresh one); a silent rule without
    /// a reading counts from the rule's last change.
    pub fn state(&self) -> State {
        let micros = |t: Option<DateTime<Utc>>| t.map(Micros::from_datetime);
        let bucket = match (self.bucket_start, self.bucket_sum, self.bucket_count) {
            (Some(start), Some(sum), Some(count)) => {
                Some(Bucket { start: Micros::from_datetime(start), sum, count: i64::from(count) })
            }
            _ => None,
        };
        State {
            status: self.status.as_deref().and_then(Status::from_stored).unwrap_or(Status::Ok),
            since: micros(self.since),
            fired_at: micros(self.fired_at),
            fired_value: self.fired_value,
            resolved_at: micros(self.resolved_at),
            resolved_value: self.resolved_value,
            last_value: self.last_value,
            last_reading_at: micros(self.last_reading_at),
            bucket,
            watching_since: Micros::from_datetime(self.updated_at),
        }
    }
}

/// Every enabled rule with its state.
pub async fn watched_rules(pool: &PgPool) -> Result<Vec<WatchedRule>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.id, r.datastream_id, r.principal_id, r.name, r.kind, r.threshold, r.for_secs, r.hysteresis, r.resolution_secs,
                r.updated_at, s.status, s.since, s.fired_at, s.fired_value, s.resolved_at, s.resolved_value,
                s.last_value, s.last_reading_at, s.bucket_start, s.bucket_sum, s.bucket_count
         FROM alert_rules r LEFT JOIN alert_states s ON s.rule_id = r.id
         WHERE r.enabled
         ORDER BY r.id",
    )
    .fetch_all(pool)
    .await
}

/// What changes whenever a rule is created, changed or deleted: the number
/// of rules and the newest change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct RulesMarker {
    pub rules: i64,
    pub newest: Option<DateTime<Utc>>,
}

pub async fn rules_marker(pool: &PgPool) -> Result<RulesMarker, sqlx::Error> {
    sqlx::query_as("SELECT count(*) AS rules, max(updated_at) AS newest FROM alert_rules").fetch_one(pool).await
}

/// The next offset to read of each partition of `topic` stored so far.
pub async fn offsets(pool: &PgPool, topic: &str) -> Result<Vec<(i32, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT partition, next_offset FROM alert_offsets WHERE topic = $1 ORDER BY partition")
        .bind(topic)
        .fetch_all(pool)
        .await
}

/// A rule's state after evaluation, for the rule as loaded at `rule_updated_at`.
#[derive(Debug, Clone, Copy)]
pub struct StateUpdate {
    pub rule: i64,
    pub rule_updated_at: DateTime<Utc>,
    pub state: State,
}

/// A state change of a rule as loaded at `rule_updated_at`.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent {
    pub rule: i64,
    pub rule_updated_at: DateTime<Utc>,
    pub change: Change,
}

/// What one transaction commits.
#[derive(Debug, Default)]
pub struct Evaluated<'a> {
    pub states: Vec<StateUpdate>,
    pub events: Vec<NewEvent>,
    /// `(topic, partition, next offset)`.
    pub offsets: Vec<(&'a str, i32, i64)>,
}

/// Commits states, events with one pending delivery per webhook and e-mail
/// address, and offsets in one transaction; returns the number of
/// deliveries created.
pub async fn commit(pool: &PgPool, evaluated: &Evaluated<'_>) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    upsert_states(&mut tx, &evaluated.states).await?;
    let deliveries = insert_events(&mut tx, &evaluated.events).await?;
    upsert_offsets(&mut tx, &evaluated.offsets).await?;
    tx.commit().await?;
    Ok(deliveries)
}

fn time(micros: Option<Micros>) -> Option<DateTime<Utc>> {
    micros.and_then(Micros::to_datetime)
}

async fn upsert_states(tx: &mut Transaction<'_, Postgres>, states: &[StateUpdate]) -> Result<(), sqlx::Error> {
    if states.is_empty() {
        return Ok(());
    }
    let rules: Vec<i64> = states.iter().map(|s| s.rule).collect();
    let loaded: Vec<DateTime<Utc>> = states.iter().map(|s| s.rule_updated_at).collect();
    let status: Vec<&str> = states.iter().map(|s| s.state.status.as_str()).collect();
    let since: Vec<Option<DateTime<Utc>>> = states.iter().map(|s| time(s.state.since)).collect();
    let fired_at: Vec<Option<DateTime<Utc>>> = states.iter().map(|s| time(s.state.fired_at)).collect();
    let fired_value: Vec<Option<f64>> = states.iter().map(|s| s.state.fired_value).collect();
    let resolved_at: Vec<Option<DateTime<Utc>>> = states.iter().map(|s| time(s.state.resolved_at)).collect();
    let resolved_value: Vec<Option<f64>> = states.iter().map(|s| s.state.resolved_value).collect();
    let last_value: Vec<Option<f64>> = states.iter().map(|s| s.state.last_value).collect();
    let last_reading_at: Vec<Option<DateTime<Utc>>> = states.iter().map(|s| time(s.state.last_reading_at)).collect();
    let bucket_start: Vec<Option<DateTime<Utc>>> =
        states.iter().map(|s| time(s.state.bucket.map(|b| b.start))).collect();
    let bucket_sum: Vec<Option<f64>> = states.iter().map(|s| s.state.bucket.map(|b| b.sum)).collect();
    let bucket_count: Vec<Option<i32>> =
        states.iter().map(|s| s.state.bucket.map(|b| i32::try_from(b.count).unwrap_or(i32::MAX))).collect();
    sqlx::query(
        "INSERT INTO alert_states (rule_id, status, since, fired_at, fired_value, resolved_at, resolved_value,
                                   last_value, last_reading_at, bucket_start, bucket_sum, bucket_count, updated_at)
         SELECT u.rule_id, u.status, u.since, u.fired_at, u.fired_value, u.resolved_at, u.resolved_value,
                u.last_value, u.last_reading_at, u.bucket_start, u.bucket_sum, u.bucket_count, now()
         FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[], $4::timestamptz[], $5::timestamptz[],
                     $6::float8[], $7::timestamptz[], $8::float8[], $9::float8[], $10::timestamptz[],
                     $11::timestamptz[], $12::float8[], $13::int[])
              AS u(rule_id, loaded, status, since, fired_at, fired_value, resolved_at, resolved_value,
                   last_value, last_reading_at, bucket_start, bucket_sum, bucket_count)
         JOIN alert_rules r ON r.id = u.rule_id AND r.updated_at = u.loaded
         ON CONFLICT (rule_id) DO UPDATE SET
             status = EXCLUDED.status, since = EXCLUDED.since, fired_at = EXCLUDED.fired_at,
             fired_value = EXCLUDED.fired_value, resolved_at = EXCLUDED.resolved_at,
             resolved_value = EXCLUDED.resolved_value, last_value = EXCLUDED.last_value,
             last_reading_at = EXCLUDED.last_reading_at, bucket_start = EXCLUDED.bucket_start,
             bucket_sum = EXCLUDED.bucket_sum, bucket_count = EXCLUDED.bucket_count, updated_at = now()",
    )
    .bind(rules)
    .bind(loaded)
    .bind(status)
    .bind(since)
    .bind(fired_at)
    .bind(fired_value)
    .bind(resolved_at)
    .bind(resolved_value)
    .bind(last_value)
    .bind(last_reading_at)
    .bind(bucket_start)
    .bind(bucket_sum)
    .bind(bucket_count)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts the events and, from each event's rule, its deliveries.
async fn insert_events(tx: &mut Transaction<'_, Postgres>, events: &[NewEvent]) -> Result<u64, sqlx::Error> {
    if events.is_empty() {
        return Ok(0);
    }
    let rules: Vec<i64> = events.iter().map(|e| e.rule).collect();
    let loaded: Vec<DateTime<Utc>> = events.iter().map(|e| e.rule_updated_at).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.change.kind()).collect();
    let at: Vec<Option<DateTime<Utc>>> = events.iter().map(|e| e.change.at().to_datetime()).collect();
    let values: Vec<Option<f64>> = events.iter().map(|e| e.change.value()).collect();
    let inserted = sqlx::query(
        "WITH events AS (
             INSERT INTO alert_events (rule_id, kind, at, value)
             SELECT u.rule_id, u.kind, u.at, u.value
             FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[], $4::timestamptz[], $5::float8[])
                  WITH ORDINALITY AS u(rule_id, loaded, kind, at, value, n)
             JOIN alert_rules r ON r.id = u.rule_id AND r.updated_at = u.loaded
             ORDER BY u.n
             RETURNING id, rule_id
         )
         INSERT INTO alert_deliveries (event_id, channel, target)
         SELECT e.id, 'webhook', r.webhook_url FROM events e JOIN alert_rules r ON r.id = e.rule_id
         WHERE r.webhook_url IS NOT NULL
         UNION
         SELECT e.id, 'email', address FROM events e JOIN alert_rules r ON r.id = e.rule_id,
              unnest(r.emails) AS address",
    )
    .bind(rules)
    .bind(loaded)
    .bind(kinds)
    .bind(at)
    .bind(values)
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected())
}

async fn upsert_offsets(tx: &mut Transaction<'_, Postgres>, offsets: &[(&str, i32, i64)]) -> Result<(), sqlx::Error> {
    if offsets.is_empty() {
        return Ok(());
    }
    let topics: Vec<&str> = offsets.iter().map(|o| o.0).collect();
    let partitions: Vec<i32> = offsets.iter().map(|o| o.1).collect();
    let next: Vec<i64> = offsets.iter().map(|o| o.2).collect();
    sqlx::query(
        "INSERT INTO alert_offsets (topic, partition, next_offset)
         SELECT * FROM UNNEST($1::text[], $2::int[], $3::bigint[])
         ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
    )
    .bind(topics)
    .bind(partitions)
    .bind(next)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A delivery that is due, with what its notification says.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    pub id: i64,
    pub channel: String,
    pub target: String,
    pub attempts: i32,
    pub event_id: i64,
    pub event_kind: String,
    pub event_at: DateTime<Utc>,
    pub event_value: Option<f64>,
    pub rule_id: i64,
    pub rule_name: String,
    pub rule_kind: String,
    pub threshold: Option<f64>,
    pub for_secs: i32,
    pub hysteresis: f64,
    pub resolution_secs: i32,
    pub webhook_secret: Option<String>,
    pub language: String,
    pub datastream_id: i64,
    pub thing: String,
    pub property: String,
    pub unit: Option<String>,
    pub organisation: String,
}

/// Up to `limit` deliveries due now, locked in `tx` (other deliverers skip
/// them) until their attempts are recorded. A rule's notifications reach each
/// target in the order of its state changes: a delivery is due only when no
/// earlier one of the same rule to the same target is still pending.
pub async fn due_deliveries(tx: &mut Transaction<'_, Postgres>, limit: i64) -> Result<Vec<DueDelivery>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.id, d.channel, d.target, d.attempts, e.id AS event_id, e.kind AS event_kind, e.at AS event_at,
                e.value AS event_value, r.id AS rule_id, r.name AS rule_name, r.kind AS rule_kind, r.threshold,
                r.for_secs, r.hysteresis, r.resolution_secs, r.webhook_secret, r.language,
                ds.id AS datastream_id, t.slug AS thing, ds.property, ds.unit, o.slug AS organisation
         FROM alert_deliveries d
         JOIN alert_events e ON e.id = d.event_id
         JOIN alert_rules r ON r.id = e.rule_id
         JOIN datastreams ds ON ds.id = r.datastream_id
         JOIN things t ON t.id = ds.thing_id
         JOIN organisations o ON o.id = t.org_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= now()
           -- In order per rule and target: a resolution waits until its firing is delivered (or given up).
           AND NOT EXISTS (
               SELECT 1 FROM alert_deliveries p JOIN alert_events pe ON pe.id = p.event_id
               WHERE pe.rule_id = e.rule_id AND p.channel = d.channel AND p.target = d.target
                 AND p.status = 'pending' AND p.event_id < d.event_id)
         ORDER BY d.next_attempt_at, d.id
         LIMIT $1
         FOR UPDATE OF d SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

/// The earliest time a pending delivery is due, if any is pending.
pub async fn next_due(pool: &PgPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar("SELECT min(next_attempt_at) FROM alert_deliveries WHERE status = 'pending'")
        .fetch_one(pool)
        .await
}

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Try again at this time.
    Retry(DateTime<Utc>),
    /// No attempt left.
    Failed,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retry(_) => "retry",
            Outcome::Failed => "failed",
        }
    }
}

/// Records attempt number `attempt` of `delivery` and its outcome.
pub async fn record_attempt(
    tx: &mut Transaction<'_, Postgres>,
    delivery: i64,
    attempt: i32,
    outcome: Outcome,
    http_status: Option<i32>,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    let (status, next) = match outcome {
        Outcome::Delivered => ("delivered", None),
        Outcome::Retry(at) => ("pending", Some(at)),
        Outcome::Failed => ("failed", None),
    };
    sqlx::query(
        "UPDATE alert_deliveries
         SET attempts = $2, status = $3, next_attempt_at = coalesce($4, next_attempt_at),
             delivered_at = CASE WHEN $3 = 'delivered' THEN now() END
         WHERE id = $1",
    )
    .bind(delivery)
    .bind(attempt)
    .bind(status)
    .bind(next)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO alert_delivery_attempts (delivery_id, attempt, outcome, http_status, error)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(delivery)
    .bind(attempt)
    .bind(outcome.as_str())
    .bind(http_status)
    .bind(error)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
