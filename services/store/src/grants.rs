//! Grants (contracts) from a dataset's owner to another organisation, with
//! their SQL. The terms are enforced by [`hoheit_domain::policy`]. Creating and
//! revoking a grant writes its audit record in the same transaction. The
//! operators' tool lists them with the names of dataset and grantee.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgExecutor, PgPool};

use crate::audit::{self, Actor, AdminChange};
use crate::registry::RegistryError;
use hoheit_domain::policy::GrantTerms;
use hoheit_domain::Slug;

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    pub dataset_id: i64,
    pub grantee: Slug,
    pub purpose: String,
    pub contract_ref: String,
    /// None: raw readings; else only aggregates of at least this many minutes.
    pub min_interval_mins: Option<i32>,
    /// None: the whole history; else the last N days.
    pub history_days: Option<i32>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: DateTime<Utc>,
    pub rate_per_minute: Option<i32>,
}

fn invalid(field: &'static str, reason: &str) -> RegistryError {
    RegistryError::Invalid { field, reason: reason.into() }
}

/// A grant's terms as stored ([`GrantTerms`] is the domain's and knows no SQL).
#[derive(FromRow)]
struct GrantRow {
    id: i64,
    dataset_id: i64,
    grantee_org_id: i64,
    purpose: String,
    contract_ref: String,
    min_interval_mins: Option<i32>,
    history_days: Option<i32>,
    valid_from: DateTime<Utc>,
    valid_until: DateTime<Utc>,
    rate_per_minute: i32,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<GrantRow> for GrantTerms {
    fn from(r: GrantRow) -> Self {
        GrantTerms {
            id: r.id,
            dataset_id: r.dataset_id,
            grantee_org_id: r.grantee_org_id,
            purpose: r.purpose,
            contract_ref: r.contract_ref,
            min_interval_mins: r.min_interval_mins,
            history_days: r.history_days,
            valid_from: r.valid_from,
            valid_until: r.valid_until,
            rate_per_minute: r.rate_per_minute,
            revoked_at: r.revoked_at,
        }
    }
}

/// The columns of a [`GrantRow`] of `grants g`.
macro_rules! grant_columns {
    () => {
        "g.id, g.dataset_id, g.grantee_org_id, g.purpose, g.contract_ref, g.min_interval_mins, g.history_days,
         g.valid_from, g.valid_until, g.rate_per_minute, g.revoked_at"
    };
}

/// Every grant's [`GrantRow`], for a `WHERE` to follow.
const GRANT_SELECT: &str = concat!("SELECT ", grant_columns!(), " FROM grants g");

fn all_terms(rows: Vec<GrantRow>) -> Vec<GrantTerms> {
    rows.into_iter().map(GrantTerms::from).collect()
}

/// Creates a grant on a dataset of the actor's choosing (the caller checked
/// that the actor may); audited as `grant.create`.
pub async fn create(pool: &PgPool, new: &NewGrant, actor: &Actor) -> Result<GrantTerms, RegistryError> {
    for (field, value) in [("purpose", &new.purpose), ("contract_ref", &new.contract_ref)] {
        if value.trim().is_empty() || value.chars().count() > 500 {
            return Err(invalid(field, "must be 1 to 500 characters"));
        }
    }
    let valid_from = new.valid_from.unwrap_or_else(Utc::now);
    if new.valid_until <= valid_from {
        return Err(invalid("valid_until", "must be after valid_from"));
    }
    for (field, value) in [
        ("min_interval_mins", new.min_interval_mins),
        ("history_days", new.history_days),
        ("rate_per_minute", new.rate_per_minute),
    ] {
        if value.is_some_and(|v| v <= 0) {
            return Err(invalid(field, "must be at least 1"));
        }
    }
    let mut tx = pool.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO grants (dataset_id, grantee_org_id, purpose, contract_ref, min_interval_mins, history_days,
                             valid_from, valid_until, rate_per_minute)
         SELECT ds.id, o.id, $3, $4, $5, $6, $7, $8, coalesce($9, 60)
         FROM datasets ds, organisations o WHERE ds.id = $1 AND ds.erased_at IS NULL AND o.slug = $2
         RETURNING id",
    )
    .bind(new.dataset_id)
    .bind(new.grantee.as_str())
    .bind(&new.purpose)
    .bind(&new.contract_ref)
    .bind(new.min_interval_mins)
    .bind(new.history_days)
    .bind(valid_from)
    .bind(new.valid_until)
    .bind(new.rate_per_minute)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| RegistryError::NotFound(format!("dataset {} or organisation {}", new.dataset_id, new.grantee)))?;
    let (grant, owner) = fetch(&mut *tx, id).await?;
    audit::record_change(
        &mut tx,
        actor,
        &change("grant.create", &grant, owner).states(None::<&GrantTerms>, Some(&grant)),
    )
    .await?;
    tx.commit().await?;
    Ok(grant)
}

fn change(action: &str, grant: &GrantTerms, owner: i64) -> AdminChange {
    AdminChange {
        dataset_id: Some(grant.dataset_id),
        grant_id: Some(grant.id),
        ..AdminChange::new(action, "grant", grant.id, owner)
    }
}

/// A grant with the organisation that owns its dataset.
#[derive(FromRow)]
struct GrantWithOwner {
    #[sqlx(flatten)]
    grant: GrantRow,
    owner_org_id: i64,
}

/// A grant and the organisation that owns its dataset.
async fn fetch<'e>(executor: impl PgExecutor<'e>, id: i64) -> Result<(GrantTerms, i64), RegistryError> {
    let row: GrantWithOwner = sqlx::query_as(concat!(
        "SELECT ",
        grant_columns!(),
        ", ds.owner_org_id FROM grants g JOIN datasets ds ON ds.id = g.dataset_id WHERE g.id = $1"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await?
    .ok_or_else(|| RegistryError::NotFound(format!("grant {id}")))?;
    Ok((row.grant.into(), row.owner_org_id))
}

pub async fn get(pool: &PgPool, id: i64) -> Result<GrantTerms, RegistryError> {
    sqlx::query_as::<_, GrantRow>(&format!("{GRANT_SELECT} WHERE g.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(GrantTerms::from)
        .ok_or_else(|| RegistryError::NotFound(format!("grant {id}")))
}

/// Revokes an active grant; audited as `grant.revoke`.
pub async fn revoke(pool: &PgPool, id: i64, actor: &Actor) -> Result<(), RegistryError> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query("UPDATE grants SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(RegistryError::NotFound(format!("active grant {id}")));
    }
    let (after, owner) = fetch(&mut *tx, id).await?;
    let before = GrantTerms { revoked_at: None, ..after.clone() };
    audit::record_change(&mut tx, actor, &change("grant.revoke", &after, owner).states(Some(&before), Some(&after)))
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Grants held by organisation `org_id` on dataset `dataset_id` (all states:
/// the policy explains why a revoked or expired one does not apply).
pub async fn held(pool: &PgPool, org_id: i64, dataset_id: i64) -> Result<Vec<GrantTerms>, sqlx::Error> {
    let rows =
        sqlx::query_as(&format!("{GRANT_SELECT} WHERE g.grantee_org_id = $1 AND g.dataset_id = $2 ORDER BY g.id"))
            .bind(org_id)
            .bind(dataset_id)
            .fetch_all(pool)
            .await?;
    Ok(all_terms(rows))
}

/// Every grant on a dataset (for its owner).
pub async fn on_dataset(pool: &PgPool, dataset_id: i64) -> Result<Vec<GrantTerms>, sqlx::Error> {
    let rows = sqlx::query_as(&format!("{GRANT_SELECT} WHERE g.dataset_id = $1 ORDER BY g.id"))
        .bind(dataset_id)
        .fetch_all(pool)
        .await?;
    Ok(all_terms(rows))
}

/// Every grant held by an organisation (for the grantee).
pub async fn held_by(pool: &PgPool, org_id: i64) -> Result<Vec<GrantTerms>, sqlx::Error> {
    let rows = sqlx::query_as(&format!("{GRANT_SELECT} WHERE g.grantee_org_id = $1 ORDER BY g.id"))
        .bind(org_id)
        .fetch_all(pool)
        .await?;
    Ok(all_terms(rows))
}

/// A grant with the names of its dataset and grantee.
#[derive(Debug, Clone, Serialize)]
pub struct GrantListing {
    #[serde(flatten)]
    pub terms: GrantTerms,
    pub dataset: String,
    pub grantee: String,
    pub created_at: DateTime<Utc>,
}

/// A [`GrantRow`] with the names of its dataset and grantee.
#[derive(FromRow)]
struct GrantListingRow {
    #[sqlx(flatten)]
    grant: GrantRow,
    dataset: String,
    grantee: String,
    created_at: DateTime<Utc>,
}

/// Grants, on one dataset and/or held by one organisation or all, ordered by id.
pub async fn list_grants(
    pool: &PgPool,
    dataset_id: Option<i64>,
    grantee: Option<&Slug>,
) -> Result<Vec<GrantListing>, sqlx::Error> {
    let rows: Vec<GrantListingRow> = sqlx::query_as(concat!(
        "SELECT ",
        grant_columns!(),
        ", g.created_at, ds.slug AS dataset, o.slug AS grantee
         FROM grants g JOIN datasets ds ON ds.id = g.dataset_id JOIN organisations o ON o.id = g.grantee_org_id
         WHERE ($1::bigint IS NULL OR g.dataset_id = $1) AND ($2::text IS NULL OR o.slug = $2)
         ORDER BY g.id"
    ))
    .bind(dataset_id)
    .bind(grantee.map(Slug::as_str))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| GrantListing {
            terms: r.grant.into(),
            dataset: r.dataset,
            grantee: r.grantee,
            created_at: r.created_at,
        })
        .collect())
}

/// A grant as its holder sees it: the terms, the dataset and its owner by
/// name, and how much of it is in use.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HeldGrant {
    #[serde(flatten)]
    pub terms: GrantTerms,
    pub dataset_slug: String,
    pub dataset_title: String,
    /// The dataset's owner (who granted it): slug and name.
    pub owner_slug: String,
    pub owner_name: String,
    #[serde(rename = "use")]
    pub use_: GrantUse,
}

/// The use of a grant, from the audit log and its rate bucket.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GrantUse {
    /// Reads allowed under the grant in the last 24 hours, and the rows they returned.
    pub reads_last_day: i64,
    pub rows_last_day: i64,
    /// Reads allowed under the grant in the last 30 days.
    pub reads_last_30_days: i64,
    /// Reads refused under the grant in the last 30 days (over its rate, beyond its terms).
    pub refused_last_30_days: i64,
    /// Reads the rate limit allows at once right now (the grant's bucket; a full
    /// bucket holds `rate_per_minute`).
    pub reads_available_now: i64,
}

#[derive(FromRow)]
struct HeldGrantRow {
    #[sqlx(flatten)]
    grant: GrantRow,
    dataset_slug: String,
    dataset_title: String,
    owner_slug: String,
    owner_name: String,
    reads_last_day: i64,
    rows_last_day: i64,
    reads_last_30_days: i64,
    refused_last_30_days: i64,
    tokens: Option<f64>,
}

/// Every grant an organisation holds, with names and use, ordered by id.
pub async fn held_with_use(pool: &PgPool, org_id: i64) -> Result<Vec<HeldGrant>, sqlx::Error> {
    let rows: Vec<HeldGrantRow> = sqlx::query_as(concat!(
        "SELECT ",
        grant_columns!(),
        ", ds.slug AS dataset_slug, ds.title AS dataset_title, o.slug AS owner_slug, o.name AS owner_name,
           u.reads_last_day, u.rows_last_day, u.reads_last_30_days, u.refused_last_30_days,
           LEAST(g.rate_per_minute, b.tokens + EXTRACT(EPOCH FROM now() - b.at) * g.rate_per_minute / 60)::float8
               AS tokens
         FROM grants g
         JOIN datasets ds ON ds.id = g.dataset_id
         JOIN organisations o ON o.id = ds.owner_org_id
         LEFT JOIN grant_rate b ON b.grant_id = g.id
         CROSS JOIN LATERAL (
             SELECT count(*) FILTER (WHERE a.decision = 'allow' AND a.at > now() - interval '1 day') AS reads_last_day,
                    COALESCE(sum(a.rows_returned) FILTER (WHERE a.decision = 'allow' AND a.at > now() - interval '1 day'), 0)::bigint
                        AS rows_last_day,
                    count(*) FILTER (WHERE a.decision = 'allow') AS reads_last_30_days,
                    count(*) FILTER (WHERE a.decision = 'deny') AS refused_last_30_days
             FROM audit_log a
             WHERE a.grant_id = g.id AND a.object_kind IS NULL AND a.at > now() - interval '30 days'
         ) u
         WHERE g.grantee_org_id = $1
         ORDER BY g.id"
    ))
    .bind(org_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let rate = r.grant.rate_per_minute;
            HeldGrant {
                terms: r.grant.into(),
                dataset_slug: r.dataset_slug,
                dataset_title: r.dataset_title,
                owner_slug: r.owner_slug,
                owner_name: r.owner_name,
                use_: GrantUse {
                    reads_last_day: r.reads_last_day,
                    rows_last_day: r.rows_last_day,
                    reads_last_30_days: r.reads_last_30_days,
                    refused_last_30_days: r.refused_last_30_days,
                    // No bucket yet: nothing used, the bucket is full.
                    reads_available_now: r.tokens.map_or(i64::from(rate), |t| t.floor().max(0.0) as i64),
                },
            }
        })
        .collect())
}

/// Every grant, ordered by id (the API's cached access facts).
pub async fn all(pool: &PgPool) -> Result<Vec<GrantTerms>, sqlx::Error> {
    let rows = sqlx::query_as(&format!("{GRANT_SELECT} ORDER BY g.id")).fetch_all(pool).await?;
    Ok(all_terms(rows))
}

/// Every grant on the datasets `owner_org_id` owns (`None`: on every dataset), for the
/// owners' view: one query instead of one per dataset.
pub async fn on_datasets_of(pool: &PgPool, owner_org_id: Option<i64>) -> Result<Vec<GrantTerms>, sqlx::Error> {
    let rows = sqlx::query_as(&format!(
        "{GRANT_SELECT} JOIN datasets d ON d.id = g.dataset_id
         WHERE $1::bigint IS NULL OR d.owner_org_id = $1
         ORDER BY g.dataset_id, g.id"
    ))
    .bind(owner_org_id)
    .fetch_all(pool)
    .await?;
    Ok(all_terms(rows))
}
