//! The audit log: every data read, allowed or denied, and every
//! administrative change, as an append-only, hash-chained record;
//! verification; the chain head; the owners' view and the public
//! transparency report.
//!
//! `hash = SHA-256(prev_hash || canonical JSON of the record)`, the first
//! record chaining to 32 zero bytes. Appends take a transaction-scoped
//! advisory lock so the chain stays linear across API replicas; a trigger
//! refuses UPDATE, DELETE and TRUNCATE.
//!
//! The canonical form of a read record is the JSON array of its 15 fields
//! ([`AuditRecord`]). An administrative change ([`AdminChange`], written by
//! [`record_change`] in the transaction of the change itself) is a row with
//! the same fields (who, the action, the dataset, datastream or grant
//! concerned) and five more: the object's kind and id, the organisation it
//! belongs to, and the object before and after as JSON. Its canonical form is
//! the read record's array followed by `"admin"` and those five, `before` and
//! `after` as the exact JSON text stored. Rows written before administrative
//! changes were audited have no such columns and keep their hash.
//!
//! Because the lock serialises appends including their commit, one record per
//! transaction caps audited reads at the rate of commits (~2,000/s here).
//! [`AuditLog`] is the API's way in: the records of concurrent requests that
//! arrive while a write is in progress share the next transaction (group
//! commit), and each request still gets its answer only after its record is
//! committed.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{FromRow, PgConnection, PgPool, Postgres, Transaction};
use tokio::sync::{mpsc, oneshot};

use hoheit_domain::Micros;

/// Advisory lock key of the audit chain ("audit" in ASCII).
const CHAIN_LOCK: i64 = 0x0061_7564_6974;

/// One audit record as written.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    pub request_id: String,
    pub principal_id: Option<i64>,
    pub principal_name: String,
    pub org_id: Option<i64>,
    pub grant_id: Option<i64>,
    pub dataset_id: Option<i64>,
    pub datastream_id: Option<i64>,
    /// What was read, e.g. "observations", "aggregates", "export".
    pub action: String,
    pub range_from: Option<DateTime<Utc>>,
    pub range_to: Option<DateTime<Utc>>,
    pub resolution: String,
    pub rows_returned: i64,
    pub allowed: bool,
    pub reason: String,
}

impl AuditRecord {
    /// The bytes the hash covers: a fixed field order, times in microseconds.
    fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(&self.canonical_fields()).unwrap_or_default()
    }

    fn canonical_fields(&self) -> Value {
        let micros = |t: Option<DateTime<Utc>>| t.map(|t| Micros::from_datetime(t).0);
        serde_json::json!([
            Micros::from_datetime(self.at).0,
            self.request_id,
            self.principal_id,
            self.principal_name,
            self.org_id,
            self.grant_id,
            self.dataset_id,
            self.datastream_id,
            self.action,
            micros(self.range_from),
            micros(self.range_to),
            self.resolution,
            self.rows_returned,
            if self.allowed { "allow" } else { "deny" },
            self.reason,
        ])
    }
}

fn chain(prev: &[u8], record: &AuditRecord) -> Vec<u8> {
    link(prev, &record.canonical())
}

fn link(prev: &[u8], canonical: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(canonical);
    hasher.finalize().to_vec()
}

fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    Micros::from_datetime(t).to_datetime().unwrap_or(t)
}

/// Appends one record to the chain, in a transaction of its own.
pub async fn append(pool: &PgPool, mut record: AuditRecord) -> Result<i64, sqlx::Error> {
    let ids = append_all(pool, std::slice::from_mut(&mut record)).await?;
    Ok(ids[0])
}

/// Appends `records` to the chain in this order, in one transaction; their
/// ids. (Times are truncated to microseconds first, as the database keeps them.)
pub async fn append_all(pool: &PgPool, records: &mut [AuditRecord]) -> Result<Vec<i64>, sqlx::Error> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    for record in records.iter_mut() {
        record.at = truncate_to_micros(record.at);
        record.range_from = record.range_from.map(truncate_to_micros);
        record.range_to = record.range_to.map(truncate_to_micros);
    }
    let mut tx = pool.begin().await?;
    let mut prev = lock_chain(&mut tx).await?;
    let (mut prevs, mut hashes) = (Vec::with_capacity(records.len()), Vec::with_capacity(records.len()));
    for record in records.iter() {
        let hash = chain(&prev, record);
        prevs.push(std::mem::replace(&mut prev, hash.clone()));
        hashes.push(hash);
    }
    let column = |f: fn(&AuditRecord) -> Option<i64>| records.iter().map(f).collect::<Vec<_>>();
    let text = |f: fn(&AuditRecord) -> &str| records.iter().map(|r| f(r).to_owned()).collect::<Vec<_>>();
    let time = |f: fn(&AuditRecord) -> Option<DateTime<Utc>>| records.iter().map(f).collect::<Vec<_>>();
    // One statement for the whole group; rows are inserted (and get their
    // ids) in the order of the arrays, which is the order of the chain.
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO audit_log (at, request_id, principal_id, principal_name, org_id, grant_id, dataset_id, datastream_id,
                                action, range_from, range_to, resolution, rows_returned, decision, reason, prev_hash, hash)
         SELECT at, request_id, principal_id, principal_name, org_id, grant_id, dataset_id, datastream_id,
                action, range_from, range_to, resolution, rows_returned, decision, reason, prev_hash, hash
         FROM UNNEST($1::timestamptz[], $2::text[], $3::int8[], $4::text[], $5::int8[], $6::int8[], $7::int8[],
                     $8::int8[], $9::text[], $10::timestamptz[], $11::timestamptz[], $12::text[], $13::int8[],
                     $14::text[], $15::text[], $16::bytea[], $17::bytea[])
              WITH ORDINALITY AS r(at, request_id, principal_id, principal_name, org_id, grant_id, dataset_id,
                                   datastream_id, action, range_from, range_to, resolution, rows_returned,
                                   decision, reason, prev_hash, hash, n)
         ORDER BY n
         RETURNING id",
    )
    .bind(records.iter().map(|r| r.at).collect::<Vec<_>>())
    .bind(text(|r| &r.request_id))
    .bind(column(|r| r.principal_id))
    .bind(text(|r| &r.principal_name))
    .bind(column(|r| r.org_id))
    .bind(column(|r| r.grant_id))
    .bind(column(|r| r.dataset_id))
    .bind(column(|r| r.datastream_id))
    .bind(text(|r| &r.action))
    .bind(time(|r| r.range_from))
    .bind(time(|r| r.range_to))
    .bind(text(|r| &r.resolution))
    .bind(records.iter().map(|r| r.rows_returned).collect::<Vec<_>>())
    .bind(text(|r| if r.allowed { "allow" } else { "deny" }))
    .bind(text(|r| &r.reason))
    .bind(&prevs)
    .bind(&hashes)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut ids = ids;
    // RETURNING follows the insertion order in practice; sorting makes it certain.
    ids.sort_unstable();
    Ok(ids)
}

/// Takes the chain's lock for the rest of `tx` and returns the hash of the
/// newest record (32 zero bytes while the log is empty).
async fn lock_chain(tx: &mut PgConnection) -> Result<Vec<u8>, sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CHAIN_LOCK).execute(&mut *tx).await?;
    let prev: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetch_optional(&mut *tx).await?;
    Ok(prev.unwrap_or_else(|| vec![0; 32]))
}

/// Most records in one group transaction.
const MAX_GROUP: usize = 256;

type Waiter = (AuditRecord, oneshot::Sender<Result<i64, sqlx::Error>>);

/// Appends the records of concurrent callers with group commit: one task
/// writes, and every record that arrives while it writes goes into its next
/// transaction (at most 256). Cheap to clone; the task ends when the last
/// clone is dropped.
#[derive(Debug, Clone)]
pub struct AuditLog {
    waiting: mpsc::Sender<Waiter>,
}

impl AuditLog {
    /// Starts the writing task (needs a Tokio runtime).
    pub fn start(pool: PgPool) -> Self {
        let (waiting, received) = mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(write_groups(pool, received));
        Self { waiting }
    }

    /// Appends `record`; returns once it is committed, with its id.
    pub async fn append(&self, record: AuditRecord) -> Result<i64, sqlx::Error> {
        let (done, answer) = oneshot::channel();
        self.waiting.send((record, done)).await.map_err(|_| sqlx::Error::PoolClosed)?;
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

async fn write_groups(pool: PgPool, mut received: mpsc::Receiver<Waiter>) {
    let mut group: Vec<Waiter> = Vec::with_capacity(MAX_GROUP);
    while received.recv_many(&mut group, MAX_GROUP).await > 0 {
        let (mut records, waiters): (Vec<AuditRecord>, Vec<_>) = group.drain(..).unzip();
        metrics::histogram!("hoheit_audit_group_records").record(records.len() as f64);
        match append_all(&pool, &mut records).await {
            Ok(ids) => {
                for (waiter, id) in waiters.into_iter().zip(ids) {
                    let _ = waiter.send(Ok(id));
                }
            }
            // A record the database refuses (e.g. text it cannot store) must
            // not fail the others: each is tried alone.
            Err(sqlx::Error::Database(_)) if records.len() > 1 => {
                for (record, waiter) in records.into_iter().zip(waiters) {
                    let _ = waiter.send(append(&pool, record).await);
                }
            }
            Err(error) => {
                for waiter in waiters {
                    let _ = waiter.send(Err(shared(&error)));
                }
            }
        }
    }
}

/// An error for each caller of a failed group, of the same kind (the API
/// answers 503 to an unavailable database and 500 to the rest).
fn shared(error: &sqlx::Error) -> sqlx::Error {
    match error {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

/// Who made an administrative change: a caller of the API, or an operator
/// at the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The API's request id, or `cli-…` for a command.
    pub request_id: String,
    pub principal_id: Option<i64>,
    /// The principal's name, "operator", or `hoheit-admin (USER)`.
    pub principal_name: String,
    /// The actor's organisation (none for the operator and the command line).
    pub org_id: Option<i64>,
}

impl Actor {
    /// The operators' command-line tool, run by the operating-system user
    /// `user`; one request id per command.
    pub fn command_line(user: &str) -> Self {
        let id: u64 = rand::random();
        Self {
            request_id: format!("cli-{id:016x}"),
            principal_id: None,
            principal_name: format!("hoheit-admin ({user})"),
            org_id: None,
        }
    }
}

/// One administrative change: what was done to which object of which
/// organisation, and the object before and after (never a secret or a hash).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AdminChange {
    /// E.g. `grant.create`, `key.revoke`, `principal.disable`, `dataset.assign`, `dataset.erase`
    /// (shown as the record's `action`).
    #[serde(skip)]
    pub action: String,
    /// `organisation`, `thing`, `datastream`, `principal`, `api_key`, `dataset` or `grant`.
    pub object_kind: String,
    pub object_id: i64,
    /// The organisation the object belongs to: its admins and data owners see the record.
    pub concerns_org_id: i64,
    #[serde(skip)]
    pub dataset_id: Option<i64>,
    #[serde(skip)]
    pub datastream_id: Option<i64>,
    #[serde(skip)]
    pub grant_id: Option<i64>,
    /// The object before the change; absent when it was created.
    pub before: Option<Value>,
    /// The object after the change; absent when it was deleted.
    pub after: Option<Value>,
}

impl AdminChange {
    /// A change of `kind` `id` of organisation `org`, without before and after yet.
    pub fn new(action: &str, kind: &str, id: i64, org: i64) -> Self {
        Self {
            action: action.to_owned(),
            object_kind: kind.to_owned(),
            object_id: id,
            concerns_org_id: org,
            dataset_id: None,
            datastream_id: None,
            grant_id: None,
            before: None,
            after: None,
        }
    }

    /// Before and after, as JSON of a serialisable view of the object.
    pub fn states(mut self, before: Option<&impl Serialize>, after: Option<&impl Serialize>) -> Self {
        self.before = before.and_then(|b| serde_json::to_value(b).ok());
        self.after = after.and_then(|a| serde_json::to_value(a).ok());
        self
    }
}

/// The administrative part of a stored row, `before` and `after` as their
/// stored text (the hash covers exactly that text).
struct StoredChange {
    object_kind: String,
    object_id: i64,
    concerns_org_id: i64,
    before: Option<String>,
    after: Option<String>,
}

impl StoredChange {
    fn of(change: &AdminChange) -> Self {
        Self {
            object_kind: change.object_kind.clone(),
            object_id: change.object_id,
            concerns_org_id: change.concerns_org_id,
            before: change.before.as_ref().map(Value::to_string),
            after: change.after.as_ref().map(Value::to_string),
        }
    }

    /// The change of a stored row; `None` for a read record.
    fn of_row(r: &AuditRow) -> Option<Self> {
        Some(Self {
            object_kind: r.object_kind.clone()?,
            object_id: r.object_id?,
            concerns_org_id: r.concerns_org_id?,
            before: r.before_text.clone(),
            after: r.after_text.clone(),
        })
    }

    /// The record's canonical fields, then `"admin"` and the five of the change.
    fn canonical(&self, record: &AuditRecord) -> Vec<u8> {
        let mut fields = match record.canonical_fields() {
            Value::Array(fields) => fields,
            _ => Vec::new(),
        };
        fields.extend([
            Value::from("admin"),
            Value::from(self.object_kind.as_str()),
            Value::from(self.object_id),
            Value::from(self.concerns_org_id),
            Value::from(self.before.clone()),
            Value::from(self.after.clone()),
        ]);
        serde_json::to_vec(&fields).unwrap_or_default()
    }
}

/// Appends the audit record of an administrative change inside `tx`, the
/// transaction that makes the change: neither is committed without the
/// other. Call it last in the transaction: it takes the chain's lock, which
/// is held until the commit.
pub async fn record_change(
    tx: &mut Transaction<'_, Postgres>,
    actor: &Actor,
    change: &AdminChange,
) -> Result<i64, sqlx::Error> {
    let record = AuditRecord {
        at: truncate_to_micros(Utc::now()),
        request_id: actor.request_id.clone(),
        principal_id: actor.principal_id,
        principal_name: actor.principal_name.clone(),
        org_id: actor.org_id,
        grant_id: change.grant_id,
        dataset_id: change.dataset_id,
        datastream_id: change.datastream_id,
        action: change.action.clone(),
        range_from: None,
        range_to: None,
        resolution: String::new(),
        rows_returned: 0,
        allowed: true,
        reason: "administrative change".into(),
    };
    let stored = StoredChange::of(change);
    let prev = lock_chain(tx).await?;
    let hash = link(&prev, &stored.canonical(&record));
    sqlx::query_scalar(
        "INSERT INTO audit_log (at, request_id, principal_id, principal_name, org_id, grant_id, dataset_id, datastream_id,
                                action, range_from, range_to, resolution, rows_returned, decision, reason, prev_hash, hash,
                                object_kind, object_id, concerns_org_id, before, after)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL, '', 0, 'allow', $10, $11, $12, $13, $14, $15,
                 $16::json, $17::json)
         RETURNING id",
    )
    .bind(record.at)
    .bind(&record.request_id)
    .bind(record.principal_id)
    .bind(&record.principal_name)
    .bind(record.org_id)
    .bind(record.grant_id)
    .bind(record.dataset_id)
    .bind(record.datastream_id)
    .bind(&record.action)
    .bind(&record.reason)
    .bind(&prev)
    .bind(&hash)
    .bind(&stored.object_kind)
    .bind(stored.object_id)
    .bind(stored.concerns_org_id)
    .bind(&stored.before)
    .bind(&stored.after)
    .fetch_one(&mut **tx)
    .await
}

/// [`record_change`] in a transaction of its own, for a change that was
/// committed by code that cannot take part in a transaction.
pub async fn record_change_alone(pool: &PgPool, actor: &Actor, change: &AdminChange) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let id = record_change(&mut tx, actor, change).await?;
    tx.commit().await?;
    Ok(id)
}

/// A stored row of `audit_log`: every column, `before` and `after` as their
/// stored text (the hash covers exactly that text).
#[derive(FromRow)]
struct AuditRow {
    id: i64,
    at: DateTime<Utc>,
    request_id: String,
    principal_id: Option<i64>,
    principal_name: String,
    org_id: Option<i64>,
    grant_id: Option<i64>,
    dataset_id: Option<i64>,
    datastream_id: Option<i64>,
    action: String,
    range_from: Option<DateTime<Utc>>,
    range_to: Option<DateTime<Utc>>,
    resolution: String,
    rows_returned: i64,
    decision: String,
    reason: String,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
    object_kind: Option<String>,
    object_id: Option<i64>,
    concerns_org_id: Option<i64>,
    before_text: Option<String>,
    after_text: Option<String>,
}

/// The columns of an [`AuditRow`].
const AUDIT_SELECT: &str = "SELECT id, at, request_id, principal_id, principal_name, org_id, grant_id, dataset_id,
            datastream_id, action, range_from, range_to, resolution, rows_returned, decision, reason, prev_hash, hash,
            object_kind, object_id, concerns_org_id, before::text AS before_text, after::text AS after_text
     FROM audit_log";

impl AuditRow {
    fn record(&self) -> AuditRecord {
        AuditRecord {
            at: self.at,
            request_id: self.request_id.clone(),
            principal_id: self.principal_id,
            principal_name: self.principal_name.clone(),
            org_id: self.org_id,
            grant_id: self.grant_id,
            dataset_id: self.dataset_id,
            datastream_id: self.datastream_id,
            action: self.action.clone(),
            range_from: self.range_from,
            range_to: self.range_to,
            resolution: self.resolution.clone(),
            rows_returned: self.rows_returned,
            allowed: self.decision == "allow",
            reason: self.reason.clone(),
        }
    }

    /// The hash the row must have, from its content and the previous hash.
    fn expected_hash(&self, prev: &[u8]) -> Vec<u8> {
        let record = self.record();
        match StoredChange::of_row(self) {
            Some(change) => link(prev, &change.canonical(&record)),
            None => chain(prev, &record),
        }
    }
}

/// Result of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Verification {
    pub records_checked: i64,
    /// Id of the first record whose link or content does not match.
    pub first_broken_id: Option<i64>,
    pub problem: Option<String>,
}

/// Recomputes every link, oldest first, and reports the first broken one.
pub async fn verify(pool: &PgPool) -> Result<Verification, sqlx::Error> {
    let mut prev = vec![0u8; 32];
    let mut after = 0i64;
    let mut checked = 0i64;
    loop {
        let rows: Vec<AuditRow> = sqlx::query_as(&format!("{AUDIT_SELECT} WHERE id > $1 ORDER BY id LIMIT 5000"))
            .bind(after)
            .fetch_all(pool)
            .await?;
        if rows.is_empty() {
            return Ok(Verification { records_checked: checked, first_broken_id: None, problem: None });
        }
        for row in rows {
            let broken = |problem: &str| Verification {
                records_checked: checked,
                first_broken_id: Some(row.id),
                problem: Some(problem.to_owned()),
            };
            if row.prev_hash != prev {
                return Ok(broken(
                    "its previous-hash does not match the record before it (a record was removed or inserted)",
                ));
            }
            if row.expected_hash(&prev) != row.hash {
                return Ok(broken("its content does not match its hash (the record was changed)"));
            }
            prev = row.hash;
            checked += 1;
            after = row.id;
        }
    }
}

/// A stored record with its id, for owners.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(flatten)]
    pub record: AuditRecord,
    /// For an administrative change: the object, its organisation, and the object before and after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<AdminChange>,
}

fn entry_from_row(r: &AuditRow) -> AuditEntry {
    let record = r.record();
    let change = StoredChange::of_row(r).map(|c| AdminChange {
        action: record.action.clone(),
        object_kind: c.object_kind,
        object_id: c.object_id,
        concerns_org_id: c.concerns_org_id,
        dataset_id: record.dataset_id,
        datastream_id: record.datastream_id,
        grant_id: record.grant_id,
        before: c.before.and_then(|t| serde_json::from_str(&t).ok()),
        after: c.after.and_then(|t| serde_json::from_str(&t).ok()),
    });
    AuditEntry { id: r.id, record, change }
}

/// Records oldest first: with neither `dataset_ids` nor `org_id` all of
/// them; else the records about datasets in `dataset_ids` and the
/// administrative changes of organisation `org_id`.
pub async fn list(
    pool: &PgPool,
    dataset_ids: Option<&[i64]>,
    org_id: Option<i64>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    after_id: i64,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let rows: Vec<AuditRow> = sqlx::query_as(&format!(
        "{AUDIT_SELECT}
         WHERE (($1::bigint[] IS NULL AND $6::bigint IS NULL) OR dataset_id = ANY($1) OR concerns_org_id = $6)
           AND at >= $2 AND at < $3 AND id > $4
         ORDER BY id LIMIT $5"
    ))
    .bind(dataset_ids)
    .bind(from)
    .bind(to)
    .bind(after_id)
    .bind(limit)
    .bind(org_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(entry_from_row).collect())
}

/// The newest record of the chain: publishing it (transparency report,
/// logs) lets anyone who kept it detect a rewrite of the whole table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChainHead {
    /// Id (sequence number) of the newest record.
    pub id: i64,
    pub at: DateTime<Utc>,
    /// Its hash, hex.
    pub hash: String,
}

/// The chain's newest record; `None` while the log is empty.
pub async fn head(pool: &PgPool) -> Result<Option<ChainHead>, sqlx::Error> {
    let row: Option<(i64, DateTime<Utc>, Vec<u8>)> =
        sqlx::query_as("SELECT id, at, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetch_optional(pool).await?;
    Ok(row.map(|(id, at, hash)| ChainHead { id, at, hash: hash.iter().map(|b| format!("{b:02x}")).collect() }))
}

/// One line of the public transparency report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, FromRow)]
pub struct TransparencyLine {
    pub dataset: String,
    pub dataset_title: String,
    pub classification: String,
    pub month: String,
    /// The organisation that read the data; "public" for anonymous reads of open data.
    pub accessor: String,
    pub purpose: String,
    pub grant_id: Option<i64>,
    pub contract_ref: Option<String>,
    pub accesses: i64,
    pub denied: i64,
}

/// Per dataset and month: who accessed it, how often, under which purpose and grant.
pub async fn transparency(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<TransparencyLine>, sqlx::Error> {
    sqlx::query_as(
        "SELECT ds.slug AS dataset, ds.title AS dataset_title, ds.classification, to_char(date_trunc('month', a.at), 'YYYY-MM') AS month,
                coalesce(o.slug, 'public') AS accessor, coalesce(g.purpose, ds.purpose) AS purpose, g.id AS grant_id,
                g.contract_ref, count(*) FILTER (WHERE a.decision = 'allow') AS accesses,
                count(*) FILTER (WHERE a.decision = 'deny') AS denied
         FROM audit_log a JOIN datasets ds ON ds.id = a.dataset_id
         LEFT JOIN organisations o ON o.id = a.org_id LEFT JOIN grants g ON g.id = a.grant_id
         WHERE a.at >= $1 AND a.at < $2 AND a.object_kind IS NULL
         GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 4, 1, 5",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}

/// Whose read records: an organisation's (of one of its principals only, if
/// given), or the platform operator's.
#[derive(Debug, Clone, Copy)]
pub enum Reader {
    Organisation { org_id: i64, principal_id: Option<i64> },
    Operator,
}

/// A reader's own read records in `[from, to)`, oldest first: a caller's own
/// read log. Administrative changes are not in it.
pub async fn reads_of(
    pool: &PgPool,
    reader: Reader,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    after_id: i64,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    // Two fixed conditions (not one with a CASE), so that an organisation's
    // reads use their index; the operator's records carry no organisation.
    let (whose, org_id, principal_id) = match reader {
        Reader::Organisation { org_id, principal_id } => {
            ("org_id = $1 AND ($2::bigint IS NULL OR principal_id = $2)", Some(org_id), principal_id)
        }
        Reader::Operator => (
            "org_id IS NULL AND principal_id IS NULL AND principal_name = 'operator' AND $1::bigint IS NULL
             AND $2::bigint IS NULL",
            None,
            None,
        ),
    };
    let rows: Vec<AuditRow> = sqlx::query_as(&format!(
        "{AUDIT_SELECT}
         WHERE object_kind IS NULL AND {whose} AND at >= $3 AND at < $4 AND id > $5
         ORDER BY id LIMIT $6"
    ))
    .bind(org_id)
    .bind(principal_id)
    .bind(from)
    .bind(to)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(entry_from_row).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn read() -> AuditRecord {
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        AuditRecord {
            at,
            request_id: "r-1".into(),
            principal_id: Some(7),
            principal_name: "leser".into(),
            org_id: Some(3),
            grant_id: None,
            dataset_id: Some(11),
            datastream_id: Some(42),
            action: "aggregates".into(),
            range_from: Some(at),
            range_to: None,
            resolution: "aggregate:900s".into(),
            rows_returned: 96,
            allowed: true,
            reason: "owner organisation".into(),
        }
    }

    #[test]
    fn a_read_records_canonical_form_is_what_existing_hashes_cover() {
        // Changing this breaks the verification of every stored read record.
        assert_eq!(
            String::from_utf8(read().canonical()).unwrap(),
            r#"[1767323045000000,"r-1",7,"leser",3,null,11,42,"aggregates",1767323045000000,null,"aggregate:900s",96,"allow","owner organisation"]"#
        );
    }

    #[test]
    fn an_administrative_records_canonical_form_appends_the_change_with_before_and_after_as_text() {
        let change = AdminChange::new("grant.revoke", "grant", 5, 3)
            .states(Some(&serde_json::json!({"revoked_at": null})), Some(&serde_json::json!({"revoked_at": "x"})));
        let stored = StoredChange::of(&change);
        let plain = String::from_utf8(read().canonical()).unwrap();
        let admin = String::from_utf8(stored.canonical(&read())).unwrap();
        assert_eq!(
            admin,
            format!(
                r#"{},"admin","grant",5,3,"{{\"revoked_at\":null}}","{{\"revoked_at\":\"x\"}}"]"#,
                plain.strip_suffix(']').unwrap()
            )
        );
        let created = StoredChange::of(&AdminChange::new("grant.create", "grant", 5, 3));
        assert!(String::from_utf8(created.canonical(&read())).unwrap().ends_with(r#"5,3,null,null]"#));
    }
}
