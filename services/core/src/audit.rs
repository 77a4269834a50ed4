//! The audit log: every data read, allowed or denied, as an append-only,
//! hash-chained record; verification; the owners' view and the public
//! transparency report.
//!
//! `hash = SHA-256(prev_hash || canonical JSON of the record)`, the first
//! record chaining to 32 zero bytes. Appends take a transaction-scoped
//! advisory lock so the chain stays linear across API replicas; a trigger
//! refuses UPDATE, DELETE and TRUNCATE.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};

use crate::domain::Micros;

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
        let micros = |t: Option<DateTime<Utc>>| t.map(|t| Micros::from_datetime(t).0);
        serde_json::to_vec(&serde_json::json!([
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
        ]))
        .unwrap_or_default()
    }
}

fn chain(prev: &[u8], record: &AuditRecord) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(record.canonical());
    hasher.finalize().to_vec()
}

fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    Micros::from_datetime(t).to_datetime().unwrap_or(t)
}

/// Appends one record to the chain.
pub async fn append(pool: &PgPool, mut record: AuditRecord) -> Result<i64, sqlx::Error> {
    record.at = truncate_to_micros(record.at);
    record.range_from = record.range_from.map(truncate_to_micros);
    record.range_to = record.range_to.map(truncate_to_micros);
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CHAIN_LOCK).execute(&mut *tx).await?;
    let prev: Vec<u8> = sqlx::query("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.get("hash"))
        .unwrap_or_else(|| vec![0; 32]);
    let hash = chain(&prev, &record);
    let id: i64 = sqlx::query(
        "INSERT INTO audit_log (at, request_id, principal_id, principal_name, org_id, grant_id, dataset_id, datastream_id,
                                action, range_from, range_to, resolution, rows_returned, decision, reason, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING id",
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
    .bind(record.range_from)
    .bind(record.range_to)
    .bind(&record.resolution)
    .bind(record.rows_returned)
    .bind(if record.allowed { "allow" } else { "deny" })
    .bind(&record.reason)
    .bind(&prev)
    .bind(&hash)
    .fetch_one(&mut *tx)
    .await?
    .get("id");
    tx.commit().await?;
    Ok(id)
}

fn record_from_row(r: &sqlx::postgres::PgRow) -> AuditRecord {
    AuditRecord {
        at: r.get("at"),
        request_id: r.get("request_id"),
        principal_id: r.get("principal_id"),
        principal_name: r.get("principal_name"),
        org_id: r.get("org_id"),
        grant_id: r.get("grant_id"),
        dataset_id: r.get("dataset_id"),
        datastream_id: r.get("datastream_id"),
        action: r.get("action"),
        range_from: r.get("range_from"),
        range_to: r.get("range_to"),
        resolution: r.get("resolution"),
        rows_returned: r.get("rows_returned"),
        allowed: r.get::<&str, _>("decision") == "allow",
        reason: r.get("reason"),
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
        let rows = sqlx::query("SELECT * FROM audit_log WHERE id > $1 ORDER BY id LIMIT 5000")
            .bind(after)
            .fetch_all(pool)
            .await?;
        if rows.is_empty() {
            return Ok(Verification { records_checked: checked, first_broken_id: None, problem: None });
        }
        for row in &rows {
            let id: i64 = row.get("id");
            let stored_prev: Vec<u8> = row.get("prev_hash");
            let stored_hash: Vec<u8> = row.get("hash");
            let broken = |problem: &str| Verification {
                records_checked: checked,
                first_broken_id: Some(id),
                problem: Some(problem.to_owned()),
            };
            if stored_prev != prev {
                return Ok(broken(
                    "its previous-hash does not match the record before it (a record was removed or inserted)",
                ));
            }
            if chain(&prev, &record_from_row(row)) != stored_hash {
                return Ok(broken("its content does not match its hash (the record was changed)"));
            }
            prev = stored_hash;
            checked += 1;
            after = id;
        }
    }
}

/// A stored record with its id, for owners.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(flatten)]
    pub record: AuditRecord,
}

/// Records about datasets in `dataset_ids` (None: all), oldest first.
pub async fn list(
    pool: &PgPool,
    dataset_ids: Option<&[i64]>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    after_id: i64,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM audit_log
         WHERE ($1::bigint[] IS NULL OR dataset_id = ANY($1)) AND at >= $2 AND at < $3 AND id > $4
         ORDER BY id LIMIT $5",
    )
    .bind(dataset_ids)
    .bind(from)
    .bind(to)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(|r| AuditEntry { id: r.get("id"), record: record_from_row(r) }).collect())
}

/// One line of the public transparency report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    let rows = sqlx::query(
        "SELECT ds.slug AS dataset, ds.title, ds.classification, to_char(date_trunc('month', a.at), 'YYYY-MM') AS month,
                coalesce(o.slug, 'public') AS accessor, coalesce(g.purpose, ds.purpose) AS purpose, g.id AS grant_id,
                g.contract_ref, count(*) FILTER (WHERE a.decision = 'allow') AS accesses,
                count(*) FILTER (WHERE a.decision = 'deny') AS denied
         FROM audit_log a JOIN datasets ds ON ds.id = a.dataset_id
         LEFT JOIN organisations o ON o.id = a.org_id LEFT JOIN grants g ON g.id = a.grant_id
         WHERE a.at >= $1 AND a.at < $2
         GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 4, 1, 5",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| TransparencyLine {
            dataset: r.get("dataset"),
            dataset_title: r.get("title"),
            classification: r.get("classification"),
            month: r.get("month"),
            accessor: r.get("accessor"),
            purpose: r.get("purpose"),
            grant_id: r.get("grant_id"),
            contract_ref: r.get("contract_ref"),
            accesses: r.get("accesses"),
            denied: r.get("denied"),
        })
        .collect())
}
