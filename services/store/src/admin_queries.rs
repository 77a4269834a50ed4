//! Queries for the operators' command-line tool (`hoheit-admin`): listings
//! and look-ups by name across organisations, principals, keys, datasets and
//! grants, and the one change the demo set-up needs (an existing
//! organisation's kind and parent, audited like every administrative change).
//!
//! Creating and changing the registry stays in the modules beside each table
//! ([`crate::registry`], [`crate::principals`], [`crate::datasets`],
//! [`crate::grants`]); this module only adds what the API does not need.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};

use crate::audit::{self, Actor, AdminChange};
use crate::datasets::{self, Dataset};
use crate::principals::{ApiKeyView, PrincipalView};
use crate::registry::{Organisation, RegistryError};
use hoheit_domain::policy::{GrantTerms, OrgKind};
use hoheit_domain::{DatastreamId, Slug};

fn stored<T, E: std::fmt::Display>(field: &'static str, parsed: Result<T, E>) -> Result<T, RegistryError> {
    // Stored values were validated on the way in; a failure means the table
    // was edited by hand, which deserves an error rather than a panic.
    parsed.map_err(|e| RegistryError::Invalid { field, reason: format!("stored value is not valid: {e}") })
}

const ORGANISATION_SELECT: &str = "SELECT o.id, o.slug, o.name, o.kind, p.slug AS parent, o.created_at
     FROM organisations o LEFT JOIN organisations p ON p.id = o.parent_id";

fn organisation_from_row(row: &sqlx::postgres::PgRow) -> Result<Organisation, RegistryError> {
    Ok(Organisation {
        id: row.get("id"),
        slug: stored("slug", Slug::parse("organisation", row.get("slug")))?,
        name: row.get("name"),
        kind: stored("kind", row.get::<&str, _>("kind").parse::<OrgKind>())?,
        parent: row
            .get::<Option<&str>, _>("parent")
            .map(|p| stored("parent", Slug::parse("organisation", p)))
            .transpose()?,
        created_at: row.get("created_at"),
    })
}

/// Every organisation, ordered by id.
pub async fn list_organisations(pool: &PgPool) -> Result<Vec<Organisation>, RegistryError> {
    let rows = sqlx::query(&format!("{ORGANISATION_SELECT} ORDER BY o.id")).fetch_all(pool).await?;
    rows.iter().map(organisation_from_row).collect()
}

/// One organisation by slug, if it exists.
pub async fn organisation(pool: &PgPool, slug: &Slug) -> Result<Option<Organisation>, RegistryError> {
    let row = sqlx::query(&format!("{ORGANISATION_SELECT} WHERE o.slug = $1"))
        .bind(slug.as_str())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(organisation_from_row).transpose()
}

/// Changes an existing organisation's kind and parent, with the rules of
/// [`crate::registry::create_organisation`]: departments and municipal
/// companies name their municipality as parent, the others have none. A
/// municipality that others name as parent cannot stop being one. Audited
/// as `organisation.update`.
pub async fn set_organisation_kind(
    pool: &PgPool,
    slug: &Slug,
    kind: OrgKind,
    parent: Option<&Slug>,
    actor: &Actor,
) -> Result<Organisation, RegistryError> {
    let needs_parent = matches!(kind, OrgKind::Department | OrgKind::MunicipalCompany);
    if needs_parent != parent.is_some() {
        let reason = if needs_parent {
            "departments and municipal companies name their municipality as parent"
        } else {
            "only departments and municipal companies have a parent"
        };
        return Err(RegistryError::Invalid { field: "parent", reason: reason.into() });
    }
    if parent == Some(slug) {
        return Err(RegistryError::Invalid {
            field: "parent",
            reason: "an organisation cannot be its own parent".into(),
        });
    }
    let mut tx = pool.begin().await?;
    let before = sqlx::query(&format!("{ORGANISATION_SELECT} WHERE o.slug = $1 FOR UPDATE OF o"))
        .bind(slug.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("organisation {slug}")))?;
    let before = organisation_from_row(&before)?;
    let id = before.id;
    let parent_id: Option<i64> = match parent {
        None => None,
        Some(parent) => Some(
            sqlx::query("SELECT id FROM organisations WHERE slug = $1 AND kind = 'municipality'")
                .bind(parent.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| RegistryError::NotFound(format!("municipality {parent}")))?
                .get("id"),
        ),
    };
    if kind != OrgKind::Municipality {
        let children: i64 = sqlx::query("SELECT count(*) FROM organisations WHERE parent_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        if children > 0 {
            return Err(RegistryError::Invalid {
                field: "kind",
                reason: format!("{slug} is the parent of {children} organisation(s) and must stay a municipality"),
            });
        }
    }
    sqlx::query("UPDATE organisations SET kind = $2, parent_id = $3 WHERE id = $1")
        .bind(id)
        .bind(kind.as_str())
        .bind(parent_id)
        .execute(&mut *tx)
        .await?;
    let after = sqlx::query(&format!("{ORGANISATION_SELECT} WHERE o.id = $1")).bind(id).fetch_one(&mut *tx).await?;
    let after = organisation_from_row(&after)?;
    let change = AdminChange::new("organisation.update", "organisation", id, id);
    audit::record_change(&mut tx, actor, &change.states(Some(&before), Some(&after))).await?;
    tx.commit().await?;
    Ok(after)
}

const PRINCIPAL_SELECT: &str = "SELECT p.id, o.slug AS org, p.name, p.kind, p.role, p.oidc_subject, p.created_at,
            p.disabled_at
     FROM principals p JOIN organisations o ON o.id = p.org_id";

fn principal_from_row(row: &sqlx::postgres::PgRow) -> Result<PrincipalView, RegistryError> {
    Ok(PrincipalView {
        id: row.get("id"),
        org: row.get("org"),
        name: row.get("name"),
        kind: row.get("kind"),
        role: stored("role", row.get::<&str, _>("role").parse())?,
        oidc_subject: row.get("oidc_subject"),
        created_at: row.get("created_at"),
        disabled_at: row.get("disabled_at"),
    })
}

/// One principal by its (unique) name, if it exists.
pub async fn principal_by_name(pool: &PgPool, name: &Slug) -> Result<Option<PrincipalView>, RegistryError> {
    let row =
        sqlx::query(&format!("{PRINCIPAL_SELECT} WHERE p.name = $1")).bind(name.as_str()).fetch_optional(pool).await?;
    row.as_ref().map(principal_from_row).transpose()
}

/// Principals, of one organisation or all, ordered by id.
pub async fn list_principals(pool: &PgPool, org: Option<&Slug>) -> Result<Vec<PrincipalView>, RegistryError> {
    let rows = sqlx::query(&format!("{PRINCIPAL_SELECT} WHERE ($1::text IS NULL OR o.slug = $1) ORDER BY p.id"))
        .bind(org.map(Slug::as_str))
        .fetch_all(pool)
        .await?;
    rows.iter().map(principal_from_row).collect()
}

/// A key's metadata with its principal and organisation (never the key).
#[derive(Debug, Clone, Serialize)]
pub struct KeyListing {
    #[serde(flatten)]
    pub key: ApiKeyView,
    pub principal: String,
    pub org: String,
}

/// API keys, of one principal and/or organisation or all, ordered by id.
pub async fn list_keys(
    pool: &PgPool,
    principal: Option<&Slug>,
    org: Option<&Slug>,
) -> Result<Vec<KeyListing>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT k.id, k.principal_id, k.lookup, k.created_at, k.expires_at, k.revoked_at, p.name AS principal, o.slug AS org
         FROM api_keys k JOIN principals p ON p.id = k.principal_id JOIN organisations o ON o.id = p.org_id
         WHERE ($1::text IS NULL OR p.name = $1) AND ($2::text IS NULL OR o.slug = $2)
         ORDER BY k.id",
    )
    .bind(principal.map(Slug::as_str))
    .bind(org.map(Slug::as_str))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| KeyListing {
            key: ApiKeyView {
                id: r.get("id"),
                principal_id: r.get("principal_id"),
                lookup: format!("hoh_{}", r.get::<&str, _>("lookup")),
                created_at: r.get("created_at"),
                expires_at: r.get("expires_at"),
                revoked_at: r.get("revoked_at"),
            },
            principal: r.get("principal"),
            org: r.get("org"),
        })
        .collect())
}

/// One (not erased) dataset by slug, if it exists.
pub async fn dataset_by_slug(pool: &PgPool, slug: &Slug) -> Result<Option<Dataset>, RegistryError> {
    let id: Option<i64> = sqlx::query("SELECT id FROM datasets WHERE slug = $1 AND erased_at IS NULL")
        .bind(slug.as_str())
        .fetch_optional(pool)
        .await?
        .map(|r| r.get("id"));
    match id {
        Some(id) => datasets::get(pool, id).await.map(Some),
        None => Ok(None),
    }
}

/// The ids of every datastream of a thing, ordered by id.
pub async fn datastreams_of_thing(pool: &PgPool, org: &Slug, thing: &Slug) -> Result<Vec<DatastreamId>, RegistryError> {
    let thing_id: i64 = sqlx::query(
        "SELECT t.id FROM things t JOIN organisations o ON o.id = t.org_id WHERE o.slug = $1 AND t.slug = $2",
    )
    .bind(org.as_str())
    .bind(thing.as_str())
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| RegistryError::NotFound(format!("thing {org}/{thing}")))?
    .get("id");
    let rows = sqlx::query("SELECT id FROM datastreams WHERE thing_id = $1 ORDER BY id")
        .bind(thing_id)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(|r| DatastreamId(r.get("id"))).collect())
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

/// Grants, on one dataset and/or held by one organisation or all, ordered by id.
pub async fn list_grants(
    pool: &PgPool,
    dataset_id: Option<i64>,
    grantee: Option<&Slug>,
) -> Result<Vec<GrantListing>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT g.*, ds.slug AS dataset, o.slug AS grantee
         FROM grants g JOIN datasets ds ON ds.id = g.dataset_id JOIN organisations o ON o.id = g.grantee_org_id
         WHERE ($1::bigint IS NULL OR g.dataset_id = $1) AND ($2::text IS NULL OR o.slug = $2)
         ORDER BY g.id",
    )
    .bind(dataset_id)
    .bind(grantee.map(Slug::as_str))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| GrantListing {
            terms: GrantTerms {
                id: r.get("id"),
                dataset_id: r.get("dataset_id"),
                grantee_org_id: r.get("grantee_org_id"),
                purpose: r.get("purpose"),
                contract_ref: r.get("contract_ref"),
                min_interval_mins: r.get("min_interval_mins"),
                history_days: r.get("history_days"),
                valid_from: r.get("valid_from"),
                valid_until: r.get("valid_until"),
                rate_per_minute: r.get("rate_per_minute"),
                revoked_at: r.get("revoked_at"),
            },
            dataset: r.get("dataset"),
            grantee: r.get("grantee"),
            created_at: r.get("created_at"),
        })
        .collect())
}
