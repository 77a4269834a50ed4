//! Supply grants (supply contracts): the owner of a dataset lets a supplier's
//! writer keys deliver readings into it. The terms are decided by
//! [`hoheit_domain::write`]; ingest reads the grants a supplier holds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgExecutor, PgPool, Postgres, Transaction};

use crate::audit::{self, Actor, AdminChange};
use crate::registry::RegistryError;
use hoheit_domain::write::SupplyTerms;
use hoheit_domain::Slug;

/// A supply grant's terms as stored.
#[derive(FromRow)]
struct SupplyRow {
    id: i64,
    dataset_id: i64,
    owner_org_id: i64,
    supplier_org_id: i64,
    contract_ref: String,
    things: Option<Vec<i64>>,
    valid_from: DateTime<Utc>,
    valid_until: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<SupplyRow> for SupplyTerms {
    fn from(r: SupplyRow) -> Self {
        SupplyTerms {
            id: r.id,
            dataset_id: r.dataset_id,
            owner_org_id: r.owner_org_id,
            supplier_org_id: r.supplier_org_id,
            contract_ref: r.contract_ref,
            things: r.things,
            valid_from: r.valid_from,
            valid_until: r.valid_until,
            revoked_at: r.revoked_at,
        }
    }
}

/// The columns of a [`SupplyRow`] of `supply_grants s JOIN datasets d`.
macro_rules! supply_columns {
    () => {
        "s.id, s.dataset_id, d.owner_org_id, s.supplier_org_id, s.contract_ref, s.things,
         s.valid_from, s.valid_until, s.revoked_at"
    };
}

/// Every supply grant's [`SupplyRow`], for a `WHERE` to follow.
const SUPPLY_SELECT: &str =
    concat!("SELECT ", supply_columns!(), " FROM supply_grants s JOIN datasets d ON d.id = s.dataset_id");

/// Every supply grant `supplier_org_id` holds (ended ones included: they say why a write is refused).
pub async fn held_by(pool: &PgPool, supplier_org_id: i64) -> Result<Vec<SupplyTerms>, sqlx::Error> {
    let rows: Vec<SupplyRow> = sqlx::query_as(&format!("{SUPPLY_SELECT} WHERE s.supplier_org_id = $1 ORDER BY s.id"))
        .bind(supplier_org_id)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(SupplyTerms::from).collect())
}

/// A thing named in a supply grant: its slug (within the dataset's owner) or its id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ThingRef {
    Id(i64),
    Slug(Slug),
}

/// A supply grant as the owner asks for it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSupplyGrant {
    pub dataset_id: i64,
    /// The organisation whose writer keys deliver the readings.
    pub supplier: Slug,
    /// Reference of the supply contract.
    pub contract_ref: String,
    /// The things of the dataset the supplier may write for (slugs or ids);
    /// absent: every thing of the dataset.
    pub things: Option<Vec<ThingRef>>,
    /// Default: now.
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: DateTime<Utc>,
}

fn invalid(field: &'static str, reason: &str) -> RegistryError {
    RegistryError::Invalid { field, reason: reason.into() }
}

/// A dataset that may be supplied into, with its owner.
#[derive(FromRow)]
struct SuppliedDataset {
    owner_org_id: i64,
}

/// A thing of a dataset (one of its datastreams belongs to it).
#[derive(FromRow)]
struct DatasetThing {
    id: i64,
    slug: String,
}

/// The ids of `named` among the things of `dataset_id`, sorted and unique.
async fn resolve_things(
    tx: &mut Transaction<'_, Postgres>,
    dataset_id: i64,
    named: &[ThingRef],
) -> Result<Vec<i64>, RegistryError> {
    if named.is_empty() {
        return Err(invalid("things", "must name at least one thing; omit it to cover every thing of the dataset"));
    }
    let things: Vec<DatasetThing> = sqlx::query_as(
        "SELECT DISTINCT t.id, t.slug FROM things t JOIN datastreams d ON d.thing_id = t.id
         WHERE d.dataset_id = $1 ORDER BY t.id",
    )
    .bind(dataset_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut ids = Vec::with_capacity(named.len());
    for thing in named {
        let found = things.iter().find(|t| match thing {
            ThingRef::Id(id) => t.id == *id,
            ThingRef::Slug(slug) => t.slug == slug.as_str(),
        });
        match found {
            Some(t) => ids.push(t.id),
            None => {
                let name = match thing {
                    ThingRef::Id(id) => format!("thing {id}"),
                    ThingRef::Slug(slug) => format!("thing {slug}"),
                };
                return Err(RegistryError::Invalid {
                    field: "things",
                    reason: format!("{name} has no datastream in dataset {dataset_id}"),
                });
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Creates a supply grant on a dataset (the caller checked that the actor
/// may speak for its owner); audited as `supply_grant.create`.
pub async fn create(pool: &PgPool, new: &NewSupplyGrant, actor: &Actor) -> Result<SupplyTerms, RegistryError> {
    let contract_ref = new.contract_ref.trim();
    if contract_ref.is_empty() || contract_ref.chars().count() > 200 {
        return Err(invalid("contract_ref", "must be 1 to 200 characters"));
    }
    let valid_from = new.valid_from.unwrap_or_else(Utc::now);
    if new.valid_until <= valid_from {
        return Err(invalid("valid_until", "must be after valid_from"));
    }
    let mut tx = pool.begin().await?;
    let dataset: SuppliedDataset =
        sqlx::query_as("SELECT owner_org_id FROM datasets WHERE id = $1 AND erased_at IS NULL")
            .bind(new.dataset_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("dataset {}", new.dataset_id)))?;
    let supplier: i64 = sqlx::query_scalar("SELECT id FROM organisations WHERE slug = $1")
        .bind(new.supplier.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("organisation {}", new.supplier)))?;
    if supplier == dataset.owner_org_id {
        return Err(invalid(
            "supplier",
            "is the dataset's owner, whose writer keys write into its datastreams without a supply grant",
        ));
    }
    let things = match &new.things {
        Some(named) => Some(resolve_things(&mut tx, new.dataset_id, named).await?),
        None => None,
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO supply_grants (dataset_id, supplier_org_id, contract_ref, things, valid_from, valid_until)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(new.dataset_id)
    .bind(supplier)
    .bind(contract_ref)
    .bind(things)
    .bind(valid_from)
    .bind(new.valid_until)
    .fetch_one(&mut *tx)
    .await?;
    let grant = fetch(&mut *tx, id).await?;
    audit::record_change(
        &mut tx,
        actor,
        &change("supply_grant.create", &grant).states(None::<&SupplyTerms>, Some(&grant)),
    )
    .await?;
    tx.commit().await?;
    Ok(grant)
}

fn change(action: &str, grant: &SupplyTerms) -> AdminChange {
    AdminChange {
        dataset_id: Some(grant.dataset_id),
        ..AdminChange::new(action, "supply_grant", grant.id, grant.owner_org_id)
    }
}

async fn fetch<'e>(executor: impl PgExecutor<'e>, id: i64) -> Result<SupplyTerms, RegistryError> {
    sqlx::query_as::<_, SupplyRow>(&format!("{SUPPLY_SELECT} WHERE s.id = $1"))
        .bind(id)
        .fetch_optional(executor)
        .await?
        .map(SupplyTerms::from)
        .ok_or_else(|| RegistryError::NotFound(format!("supply grant {id}")))
}

/// One supply grant.
pub async fn get(pool: &PgPool, id: i64) -> Result<SupplyTerms, RegistryError> {
    fetch(pool, id).await
}

/// Revokes a supply grant that is not revoked yet; audited as `supply_grant.revoke`.
/// The supplier's writes stop at once (ingest re-reads its grants every second;
/// the broker's ACL when it is rendered again).
pub async fn revoke(pool: &PgPool, id: i64, actor: &Actor) -> Result<SupplyTerms, RegistryError> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query("UPDATE supply_grants SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(RegistryError::NotFound(format!("active supply grant {id}")));
    }
    let after = fetch(&mut *tx, id).await?;
    let before = SupplyTerms { revoked_at: None, ..after.clone() };
    audit::record_change(&mut tx, actor, &change("supply_grant.revoke", &after).states(Some(&before), Some(&after)))
        .await?;
    tx.commit().await?;
    Ok(after)
}

/// Every supply grant on a dataset (for its owner).
pub async fn on_dataset(pool: &PgPool, dataset_id: i64) -> Result<Vec<SupplyTerms>, sqlx::Error> {
    let rows: Vec<SupplyRow> = sqlx::query_as(&format!("{SUPPLY_SELECT} WHERE s.dataset_id = $1 ORDER BY s.id"))
        .bind(dataset_id)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(SupplyTerms::from).collect())
}

/// A supply grant with the names of its dataset, owner, supplier and things.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SupplyListing {
    #[serde(flatten)]
    pub terms: SupplyTerms,
    pub dataset: String,
    pub owner: String,
    pub supplier: String,
    /// The slugs of `things`; absent: every thing of the dataset.
    pub thing_slugs: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
}

/// A [`SupplyRow`] with names.
#[derive(FromRow)]
struct SupplyListingRow {
    #[sqlx(flatten)]
    grant: SupplyRow,
    dataset: String,
    owner: String,
    supplier: String,
    thing_slugs: Option<Vec<String>>,
    created_at: DateTime<Utc>,
}

/// Supply grants on one dataset and/or held by one organisation, or all, ordered by id.
pub async fn list(
    pool: &PgPool,
    dataset_id: Option<i64>,
    supplier: Option<&Slug>,
) -> Result<Vec<SupplyListing>, sqlx::Error> {
    let rows: Vec<SupplyListingRow> = sqlx::query_as(concat!(
        "SELECT ",
        supply_columns!(),
        ", s.created_at, d.slug AS dataset, owner.slug AS owner, sup.slug AS supplier,
            (SELECT array_agg(t.slug ORDER BY t.id) FROM things t WHERE t.id = ANY(s.things)) AS thing_slugs
         FROM supply_grants s JOIN datasets d ON d.id = s.dataset_id
         JOIN organisations owner ON owner.id = d.owner_org_id JOIN organisations sup ON sup.id = s.supplier_org_id
         WHERE ($1::bigint IS NULL OR s.dataset_id = $1) AND ($2::text IS NULL OR sup.slug = $2)
         ORDER BY s.id"
    ))
    .bind(dataset_id)
    .bind(supplier.map(Slug::as_str))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| SupplyListing {
            terms: r.grant.into(),
            dataset: r.dataset,
            owner: r.owner,
            supplier: r.supplier,
            thing_slugs: r.thing_slugs,
            created_at: r.created_at,
        })
        .collect())
}

/// One datastream a supplier may write into under a supply grant in force.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct SuppliedDatastream {
    pub supplier: String,
    /// The dataset's owner, whose topics the supplier writes.
    pub owner: String,
    pub thing: String,
    pub datastream_id: i64,
}

/// Every datastream that supply grants in force at `now` let a supplier
/// write into (for the broker's ACL).
pub async fn supplied_datastreams(pool: &PgPool, now: DateTime<Utc>) -> Result<Vec<SuppliedDatastream>, sqlx::Error> {
    sqlx::query_as(
        "SELECT DISTINCT sup.slug AS supplier, owner.slug AS owner, t.slug AS thing, ds.id AS datastream_id
         FROM supply_grants s JOIN datasets d ON d.id = s.dataset_id
         JOIN organisations owner ON owner.id = d.owner_org_id JOIN organisations sup ON sup.id = s.supplier_org_id
         JOIN datastreams ds ON ds.dataset_id = s.dataset_id JOIN things t ON t.id = ds.thing_id
         WHERE s.revoked_at IS NULL AND s.valid_from <= $1 AND s.valid_until > $1 AND d.erased_at IS NULL
           AND (s.things IS NULL OR t.id = ANY(s.things))
         ORDER BY 1, 2, 3, 4",
    )
    .bind(now)
    .fetch_all(pool)
    .await
}

/// One supply grant in the public transparency report: who supplies what
/// into which dataset under which contract.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, FromRow)]
pub struct TransparencySupply {
    pub supply_grant_id: i64,
    pub dataset: String,
    pub dataset_title: String,
    /// The dataset's owner, whom the readings belong to.
    pub owner: String,
    pub supplier: String,
    pub contract_ref: String,
    /// The things supplied; absent: every thing of the dataset.
    pub things: Option<Vec<String>>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Supply grants created in `[from, to)` or in force at some time of it, by id.
pub async fn transparency(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<TransparencySupply>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.id AS supply_grant_id, d.slug AS dataset, d.title AS dataset_title, owner.slug AS owner,
                sup.slug AS supplier, s.contract_ref,
                (SELECT array_agg(t.slug ORDER BY t.id) FROM things t WHERE t.id = ANY(s.things)) AS things,
                s.valid_from, s.valid_until, s.revoked_at
         FROM supply_grants s JOIN datasets d ON d.id = s.dataset_id
         JOIN organisations owner ON owner.id = d.owner_org_id JOIN organisations sup ON sup.id = s.supplier_org_id
         WHERE (s.created_at >= $1 AND s.created_at < $2)
            OR (s.valid_from < $2 AND s.valid_until > $1 AND coalesce(s.revoked_at, 'infinity') > $1)
         ORDER BY s.id",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}

/// The supply grants in force at `now` (id and things), a few rows: with
/// [`crate::registry::datastream_ownership_digest`] the fingerprint of what
/// [`supplied_datastreams`] would answer.
pub async fn grants_in_force(pool: &PgPool, now: DateTime<Utc>) -> Result<Vec<(i64, Option<Vec<i64>>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.id, s.things FROM supply_grants s JOIN datasets d ON d.id = s.dataset_id
         WHERE s.revoked_at IS NULL AND s.valid_from <= $1 AND s.valid_until > $1 AND d.erased_at IS NULL
         ORDER BY s.id",
    )
    .bind(now)
    .fetch_all(pool)
    .await
}
