//! Alert rules as their owners manage them: create, change, delete, list
//! (alone or with their state, firing first), and each rule's events and
//! delivery log. Every change sets `updated_at = now()`, which the alerts
//! service polls to reload its rules, and is audited in its own transaction
//! (`alerts.rule_create`, `alerts.rule_update`, `alerts.rule_delete`,
//! `alerts.rule_rotate_secret`). A rule is made with its `alert_states` row
//! (`ok`); a change of what it watches (datastream, condition, resolution)
//! resets that row to `ok`. Who may see which rule, and whether its owner
//! may read the datastream at that resolution, the API's access gate decides.
//!
//! A rule's webhook secret is generated here, returned once to the caller
//! that made (or rotated) it and never read back by this module again.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hoheit_domain::alert::{self, Condition, Language, RuleSpec};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgConnection, PgPool, Postgres, Transaction};

use crate::audit::{self, Actor, AdminChange};
use crate::registry::RegistryError;

/// Who owns a rule: the principal who made it and its organisation (both
/// `None`: the operator's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub principal_id: Option<i64>,
    pub org_id: Option<i64>,
}

/// Which rules a caller sees (the access gate decides which applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every rule (the operator).
    All,
    /// The rules of an organisation (its admins).
    Organisation(i64),
    /// A principal's own rules.
    Principal(i64),
}

impl Scope {
    /// The organisation and principal a query filters on (`None`: any).
    fn filters(self) -> (Option<i64>, Option<i64>) {
        match self {
            Scope::All => (None, None),
            Scope::Organisation(org) => (Some(org), None),
            Scope::Principal(principal) => (None, Some(principal)),
        }
    }

    /// Whether a rule of `owner` lies in the scope.
    pub fn covers(self, owner: Owner) -> bool {
        match self {
            Scope::All => true,
            Scope::Organisation(org) => owner.org_id == Some(org),
            Scope::Principal(principal) => owner.principal_id == Some(principal),
        }
    }
}

/// The grant (if any) and dataset a rule stands on: a rule is a standing
/// read, recorded with its creation or change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Standing {
    pub dataset_id: Option<i64>,
    pub grant_id: Option<i64>,
}

/// A rule as the API checked it, to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDraft {
    pub datastream_id: i64,
    pub name: String,
    pub spec: RuleSpec,
    /// An `http` or `https` URL without credentials.
    pub webhook_url: Option<String>,
    /// Plausible, distinct addresses.
    pub emails: Vec<String>,
    pub language: Language,
    pub enabled: bool,
}

/// Where a rule's notifications are posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// `http` or `https`, at most 2,000 characters, no user name or password in it.
    #[schema(max_length = 2000, example = "https://leitstelle.stadt.example/hooks/hoheit")]
    pub url: String,
}

/// A rule's state: `ok`, `pending` (the condition holds, not yet long
/// enough), `firing`, `resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Ok,
    Pending,
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Ok => "ok",
            AlertStatus::Pending => "pending",
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }

    fn from_stored(name: &str) -> Option<AlertStatus> {
        [AlertStatus::Ok, AlertStatus::Pending, AlertStatus::Firing, AlertStatus::Resolved]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// Who owns a rule, as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RuleOwner {
    /// The principal who made it; `null`: the operator.
    pub principal: Option<i64>,
    /// Its organisation's slug; `null`: the operator.
    pub organisation: Option<String>,
}

/// A rule's state as the alerts service keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RuleState {
    pub status: AlertStatus,
    /// Pending: since when the condition holds; firing/resolved: when that began.
    pub since: Option<DateTime<Utc>>,
    pub fired_at: Option<DateTime<Utc>>,
    pub fired_value: Option<f64>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_value: Option<f64>,
    /// The newest value evaluated and its time.
    pub last_value: Option<f64>,
    pub last_reading_at: Option<DateTime<Utc>>,
}

/// An alert rule with its state (never its webhook secret).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Rule {
    pub id: i64,
    /// The datastream watched.
    pub datastream: i64,
    pub name: String,
    pub condition: Condition,
    /// How long the condition must hold before the rule fires; a silent-sensor rule: how long without a reading.
    pub for_minutes: i64,
    /// How far back past the threshold a firing value must come to resolve.
    pub hysteresis: f64,
    /// The aggregate interval watched (`15m`, `1h`); `null`: raw readings.
    pub aggregate: Option<String>,
    pub webhook: Option<Webhook>,
    pub emails: Vec<String>,
    pub language: Language,
    pub enabled: bool,
    pub owner: RuleOwner,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub state: RuleState,
}

/// One state change of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow, utoipa::ToSchema)]
pub struct AlertEvent {
    pub id: i64,
    /// `firing` or `resolved`.
    #[schema(example = "firing")]
    pub state: String,
    /// When the rule fired or resolved (the reading's or bucket's time; silent rules: the time it noticed).
    pub at: DateTime<Utc>,
    /// The value that fired or resolved it (none for a silent sensor's firing).
    pub value: Option<f64>,
    /// When the alerts service recorded it.
    pub created_at: DateTime<Utc>,
}

/// One attempt to deliver a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow, utoipa::ToSchema)]
pub struct DeliveryAttempt {
    #[serde(skip)]
    pub delivery_id: i64,
    pub attempt: i32,
    pub at: DateTime<Utc>,
    /// `delivered`, `retry` or `failed`.
    #[schema(example = "retry")]
    pub outcome: String,
    /// The webhook's HTTP status, if it answered.
    pub http_status: Option<i32>,
    pub error: Option<String>,
}

/// One notification of an event to one target, with its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: i64,
    pub event: i64,
    /// `webhook` or `email`.
    #[schema(example = "webhook")]
    pub channel: String,
    /// The webhook's URL or the e-mail address.
    pub target: String,
    /// `pending`, `delivered` or `failed`.
    #[schema(example = "delivered")]
    pub status: String,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// Every attempt so far, oldest first.
    pub attempts: Vec<DeliveryAttempt>,
}

#[derive(FromRow)]
struct RuleRow {
    id: i64,
    datastream_id: i64,
    principal_id: Option<i64>,
    org_slug: Option<String>,
    name: String,
    kind: String,
    threshold: Option<f64>,
    for_secs: i32,
    hysteresis: f64,
    resolution_secs: i32,
    webhook_url: Option<String>,
    emails: Vec<String>,
    language: String,
    enabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    status: Option<String>,
    since: Option<DateTime<Utc>>,
    fired_at: Option<DateTime<Utc>>,
    fired_value: Option<f64>,
    resolved_at: Option<DateTime<Utc>>,
    resolved_value: Option<f64>,
    last_value: Option<f64>,
    last_reading_at: Option<DateTime<Utc>>,
}

impl TryFrom<RuleRow> for Rule {
    type Error = RegistryError;

    fn try_from(row: RuleRow) -> Result<Rule, RegistryError> {
        let stored = |field: &'static str| RegistryError::Invalid { field, reason: "stored value is not valid".into() };
        let condition = Condition::from_stored(&row.kind, row.threshold).ok_or_else(|| stored("condition"))?;
        let language = Language::from_stored(&row.language).ok_or_else(|| stored("language"))?;
        let status = match row.status.as_deref() {
            Some(name) => AlertStatus::from_stored(name).ok_or_else(|| stored("status"))?,
            None => AlertStatus::Ok,
        };
        Ok(Rule {
            id: row.id,
            datastream: row.datastream_id,
            name: row.name,
            condition,
            for_minutes: i64::from(row.for_secs) / 60,
            hysteresis: row.hysteresis,
            aggregate: alert::aggregate_label(alert::resolution_from_secs(i64::from(row.resolution_secs))),
            webhook: row.webhook_url.map(|url| Webhook { url }),
            emails: row.emails,
            language,
            enabled: row.enabled,
            owner: RuleOwner { principal: row.principal_id, organisation: row.org_slug },
            created_at: row.created_at,
            updated_at: row.updated_at,
            state: RuleState {
                status,
                since: row.since,
                fired_at: row.fired_at,
                fired_value: row.fired_value,
                resolved_at: row.resolved_at,
                resolved_value: row.resolved_value,
                last_value: row.last_value,
                last_reading_at: row.last_reading_at,
            },
        })
    }
}

const RULE_SELECT: &str = "SELECT r.id, r.datastream_id, r.principal_id, o.slug AS org_slug, r.name, r.kind,
        r.threshold, r.for_secs, r.hysteresis, r.resolution_secs, r.webhook_url, r.emails, r.language, r.enabled,
        r.created_at, r.updated_at, s.status, s.since, s.fired_at, s.fired_value, s.resolved_at, s.resolved_value,
        s.last_value, s.last_reading_at
     FROM alert_rules r
     LEFT JOIN alert_states s ON s.rule_id = r.id
     LEFT JOIN organisations o ON o.id = r.org_id";

/// The filter of a scope and an optional datastream, as `$1`, `$2`, `$3`.
const SCOPE_WHERE: &str = "($1::bigint IS NULL OR r.org_id = $1)
       AND ($2::bigint IS NULL OR r.principal_id = $2)
       AND ($3::bigint IS NULL OR r.datastream_id = $3)";

fn not_found(id: i64) -> RegistryError {
    RegistryError::NotFound(format!("alert rule {id}"))
}

/// A new webhook secret: 32 random bytes, base64url without padding.
fn new_webhook_secret() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

async fn get_in(conn: &mut PgConnection, id: i64) -> Result<Rule, RegistryError> {
    sqlx::query_as::<_, RuleRow>(&format!("{RULE_SELECT} WHERE r.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| not_found(id))?
        .try_into()
}

/// One rule with its state.
pub async fn get(pool: &PgPool, id: i64) -> Result<Rule, RegistryError> {
    get_in(&mut *pool.acquire().await?, id).await
}

#[derive(FromRow)]
struct OwnerRow {
    principal_id: Option<i64>,
    org_id: Option<i64>,
}

/// Who owns rule `id` (for the access check).
pub async fn owner(pool: &PgPool, id: i64) -> Result<Owner, RegistryError> {
    let row: OwnerRow = sqlx::query_as("SELECT principal_id, org_id FROM alert_rules WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Owner { principal_id: row.principal_id, org_id: row.org_id })
}

/// The rules in `scope` (of one datastream, if given), by id.
pub async fn list(pool: &PgPool, scope: Scope, datastream: Option<i64>) -> Result<Vec<Rule>, RegistryError> {
    let (org, principal) = scope.filters();
    let rows: Vec<RuleRow> = sqlx::query_as(&format!("{RULE_SELECT} WHERE {SCOPE_WHERE} ORDER BY r.id"))
        .bind(org)
        .bind(principal)
        .bind(datastream)
        .fetch_all(pool)
        .await?;
    rows.into_iter().map(Rule::try_from).collect()
}

/// The rules in `scope` with their state (of one status, if given): firing
/// first, then pending, then the rest; within each the newest change first.
pub async fn with_state(pool: &PgPool, scope: Scope, status: Option<AlertStatus>) -> Result<Vec<Rule>, RegistryError> {
    let (org, principal) = scope.filters();
    let rows: Vec<RuleRow> = sqlx::query_as(&format!(
        "{RULE_SELECT} WHERE {SCOPE_WHERE} AND ($4::text IS NULL OR coalesce(s.status, 'ok') = $4)
         ORDER BY CASE coalesce(s.status, 'ok') WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END,
                  coalesce(s.since, r.updated_at) DESC, r.id DESC"
    ))
    .bind(org)
    .bind(principal)
    .bind(None::<i64>)
    .bind(status.map(AlertStatus::as_str))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(Rule::try_from).collect()
}

/// The organisation a change of a rule concerns: its owner's, or (an
/// operator's rule) that of the datastream's thing.
async fn concerned_org(
    tx: &mut Transaction<'_, Postgres>,
    owner: Owner,
    datastream: i64,
) -> Result<i64, RegistryError> {
    if let Some(org) = owner.org_id {
        return Ok(org);
    }
    sqlx::query_scalar("SELECT t.org_id FROM datastreams d JOIN things t ON t.id = d.thing_id WHERE d.id = $1")
        .bind(datastream)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("datastream {datastream}")))
}

/// A rule as its audit record shows it: without its state, which the alerts
/// service changes.
fn audited(rule: &Rule) -> serde_json::Value {
    let mut value = serde_json::to_value(rule).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("state");
    }
    value
}

/// Records a change of `rule` (before and after) in `tx`, last.
async fn record(
    tx: &mut Transaction<'_, Postgres>,
    action: &str,
    owner: Owner,
    standing: Standing,
    before: Option<&Rule>,
    after: Option<&Rule>,
    actor: &Actor,
) -> Result<(), RegistryError> {
    let rule = after.or(before).expect("a change has a rule before or after it");
    let org = concerned_org(tx, owner, rule.datastream).await?;
    let mut change = AdminChange::new(action, "alert_rule", rule.id, org)
        .states(before.map(audited).as_ref(), after.map(audited).as_ref());
    change.dataset_id = standing.dataset_id;
    change.datastream_id = Some(rule.datastream);
    change.grant_id = standing.grant_id;
    audit::record_change(tx, actor, &change).await?;
    Ok(())
}

/// Stores a new rule of `owner` with its state `ok`; returns it and, if it
/// has a webhook, the webhook's secret (shown this once). Audited as
/// `alerts.rule_create`, with the grant the rule stands on.
pub async fn create(
    pool: &PgPool,
    owner: Owner,
    draft: &RuleDraft,
    standing: Standing,
    actor: &Actor,
) -> Result<(Rule, Option<String>), RegistryError> {
    let secret = draft.webhook_url.as_ref().map(|_| new_webhook_secret());
    let mut tx = pool.begin().await?;
    let spec = &draft.spec;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO alert_rules (datastream_id, principal_id, org_id, name, kind, threshold, for_secs, hysteresis,
                                  resolution_secs, webhook_url, webhook_secret, emails, language, enabled)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
    )
    .bind(draft.datastream_id)
    .bind(owner.principal_id)
    .bind(owner.org_id)
    .bind(&draft.name)
    .bind(spec.condition().kind())
    .bind(spec.condition().threshold())
    .bind(stored_secs(spec.for_secs())?)
    .bind(spec.hysteresis())
    .bind(stored_secs(spec.resolution_secs())?)
    .bind(&draft.webhook_url)
    .bind(&secret)
    .bind(&draft.emails)
    .bind(draft.language.as_str())
    .bind(draft.enabled)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO alert_states (rule_id, status) VALUES ($1, 'ok')").bind(id).execute(&mut *tx).await?;
    let created = get_in(&mut tx, id).await?;
    record(&mut tx, "alerts.rule_create", owner, standing, None, Some(&created), actor).await?;
    tx.commit().await?;
    Ok((created, secret))
}

/// Seconds as the schema stores them (a checked spec always fits).
fn stored_secs(secs: i64) -> Result<i32, RegistryError> {
    i32::try_from(secs).map_err(|_| RegistryError::Invalid { field: "for_minutes", reason: "too long".into() })
}

#[derive(FromRow)]
struct Watched {
    datastream_id: i64,
    kind: String,
    threshold: Option<f64>,
    resolution_secs: i32,
    has_secret: bool,
}

/// Replaces rule `id` with `draft`. A changed datastream, condition or
/// resolution resets its state to `ok`; a webhook keeps its secret, and a
/// rule that had none gets one, returned this once. Audited as
/// `alerts.rule_update`.
pub async fn update(
    pool: &PgPool,
    id: i64,
    draft: &RuleDraft,
    standing: Standing,
    actor: &Actor,
) -> Result<(Rule, Option<String>), RegistryError> {
    let mut tx = pool.begin().await?;
    let watched: Watched = sqlx::query_as(
        "SELECT datastream_id, kind, threshold, resolution_secs, webhook_secret IS NOT NULL AS has_secret
         FROM alert_rules WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| not_found(id))?;
    let before = get_in(&mut tx, id).await?;
    let owner = owner_in(&mut tx, id).await?;
    let spec = &draft.spec;
    let new_secret = match (&draft.webhook_url, watched.has_secret) {
        (Some(_), false) => Some(new_webhook_secret()),
        _ => None,
    };
    sqlx::query(
        "UPDATE alert_rules SET datastream_id = $2, name = $3, kind = $4, threshold = $5, for_secs = $6,
                hysteresis = $7, resolution_secs = $8, webhook_url = $9,
                webhook_secret = CASE WHEN $9::text IS NULL THEN NULL ELSE coalesce($10, webhook_secret) END,
                emails = $11, language = $12, enabled = $13, updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(draft.datastream_id)
    .bind(&draft.name)
    .bind(spec.condition().kind())
    .bind(spec.condition().threshold())
    .bind(stored_secs(spec.for_secs())?)
    .bind(spec.hysteresis())
    .bind(stored_secs(spec.resolution_secs())?)
    .bind(&draft.webhook_url)
    .bind(&new_secret)
    .bind(&draft.emails)
    .bind(draft.language.as_str())
    .bind(draft.enabled)
    .execute(&mut *tx)
    .await?;
    let rewatched = watched.datastream_id != draft.datastream_id
        || watched.kind != spec.condition().kind()
        || watched.threshold != spec.condition().threshold()
        || i64::from(watched.resolution_secs) != spec.resolution_secs();
    if rewatched {
        reset_state(&mut tx, id).await?;
    }
    let after = get_in(&mut tx, id).await?;
    record(&mut tx, "alerts.rule_update", owner, standing, Some(&before), Some(&after), actor).await?;
    tx.commit().await?;
    Ok((after, new_secret))
}

/// The state of a rule that watches something else now: `ok`, nothing else.
async fn reset_state(tx: &mut Transaction<'_, Postgres>, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO alert_states (rule_id, status) VALUES ($1, 'ok')
         ON CONFLICT (rule_id) DO UPDATE SET status = 'ok', since = NULL, fired_at = NULL, fired_value = NULL,
             resolved_at = NULL, resolved_value = NULL, last_value = NULL, last_reading_at = NULL,
             bucket_start = NULL, bucket_sum = NULL, bucket_count = NULL, updated_at = now()",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn owner_in(tx: &mut Transaction<'_, Postgres>, id: i64) -> Result<Owner, RegistryError> {
    let row: OwnerRow = sqlx::query_as("SELECT principal_id, org_id FROM alert_rules WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Owner { principal_id: row.principal_id, org_id: row.org_id })
}

/// Gives rule `id`'s webhook a new secret and returns it (this once);
/// `Invalid` if the rule has no webhook. Audited as `alerts.rule_rotate_secret`.
pub async fn rotate_secret(pool: &PgPool, id: i64, actor: &Actor) -> Result<String, RegistryError> {
    let secret = new_webhook_secret();
    let mut tx = pool.begin().await?;
    let before = get_in(&mut tx, id).await?;
    if before.webhook.is_none() {
        return Err(RegistryError::Invalid {
            field: "webhook",
            reason: format!("alert rule {id} has no webhook, so it has no secret; give it a webhook first"),
        });
    }
    sqlx::query("UPDATE alert_rules SET webhook_secret = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(&secret)
        .execute(&mut *tx)
        .await?;
    let owner = owner_in(&mut tx, id).await?;
    let after = get_in(&mut tx, id).await?;
    record(&mut tx, "alerts.rule_rotate_secret", owner, Standing::default(), Some(&before), Some(&after), actor)
        .await?;
    tx.commit().await?;
    Ok(secret)
}

/// Deletes rule `id` with its state, events and deliveries. Audited as `alerts.rule_delete`.
pub async fn delete(pool: &PgPool, id: i64, actor: &Actor) -> Result<(), RegistryError> {
    let mut tx = pool.begin().await?;
    let before = get_in(&mut tx, id).await?;
    let owner = owner_in(&mut tx, id).await?;
    sqlx::query("DELETE FROM alert_rules WHERE id = $1").bind(id).execute(&mut *tx).await?;
    record(&mut tx, "alerts.rule_delete", owner, Standing::default(), Some(&before), None, actor).await?;
    tx.commit().await?;
    Ok(())
}

/// Rule `id`'s events, newest first: at most `limit`, older than event `before` if given.
pub async fn events(pool: &PgPool, id: i64, limit: i64, before: Option<i64>) -> Result<Vec<AlertEvent>, RegistryError> {
    Ok(sqlx::query_as(
        "SELECT id, kind AS state, at, value, created_at FROM alert_events
         WHERE rule_id = $1 AND ($3::bigint IS NULL OR id < $3) ORDER BY id DESC LIMIT $2",
    )
    .bind(id)
    .bind(limit)
    .bind(before)
    .fetch_all(pool)
    .await?)
}

#[derive(FromRow)]
struct DeliveryRow {
    id: i64,
    event_id: i64,
    channel: String,
    target: String,
    status: String,
    next_attempt_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
}

/// Rule `id`'s delivery log, newest delivery first, each with its attempts:
/// at most `limit` deliveries, older than delivery `before` if given.
pub async fn deliveries(
    pool: &PgPool,
    id: i64,
    limit: i64,
    before: Option<i64>,
) -> Result<Vec<Delivery>, RegistryError> {
    let rows: Vec<DeliveryRow> = sqlx::query_as(
        "SELECT d.id, d.event_id, d.channel, d.target, d.status, d.next_attempt_at, d.delivered_at
         FROM alert_deliveries d JOIN alert_events e ON e.id = d.event_id
         WHERE e.rule_id = $1 AND ($3::bigint IS NULL OR d.id < $3) ORDER BY d.id DESC LIMIT $2",
    )
    .bind(id)
    .bind(limit)
    .bind(before)
    .fetch_all(pool)
    .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut attempts: Vec<DeliveryAttempt> = sqlx::query_as(
        "SELECT delivery_id, attempt, at, outcome, http_status, error FROM alert_delivery_attempts
         WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let (mine, rest): (Vec<_>, Vec<_>) = attempts.drain(..).partition(|a| a.delivery_id == row.id);
            attempts = rest;
            Delivery {
                id: row.id,
                event: row.event_id,
                channel: row.channel,
                target: row.target,
                status: row.status,
                next_attempt_at: row.next_attempt_at,
                delivered_at: row.delivered_at,
                attempts: mine,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_secret_is_32_random_bytes_in_base64url() {
        let secret = new_webhook_secret();
        assert_eq!(URL_SAFE_NO_PAD.decode(&secret).unwrap().len(), 32);
        assert!(!secret.contains('='));
        assert_ne!(secret, new_webhook_secret());
    }

    #[test]
    fn a_scope_covers_its_own_rules_only() {
        let mine = Owner { principal_id: Some(7), org_id: Some(3) };
        let operators = Owner { principal_id: None, org_id: None };
        assert!(Scope::All.covers(operators));
        assert!(Scope::Organisation(3).covers(mine));
        assert!(!Scope::Organisation(4).covers(mine));
        assert!(!Scope::Organisation(3).covers(operators));
        assert!(Scope::Principal(7).covers(mine));
        assert!(!Scope::Principal(8).covers(mine));
    }

    #[test]
    fn statuses_round_trip() {
        for status in [AlertStatus::Ok, AlertStatus::Pending, AlertStatus::Firing, AlertStatus::Resolved] {
            assert_eq!(AlertStatus::from_stored(status.as_str()), Some(status));
        }
    }
}
