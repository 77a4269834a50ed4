//! What the API keeps in memory to decide who may see what without reading
//! the registry on every request: the change counter that tells it to reload
//! (`access_version`, bumped by triggers on every table the decision depends
//! on, in the changing transaction), every grant, and the state of every
//! principal's credentials (disabled principals, revoked and expiring keys).
//! The datastreams' access facts themselves are `datasets::access_all`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use hoheit_domain::policy::GrantTerms;
use sqlx::{FromRow, PgPool};

/// The number of changes to the access facts so far: when it moved, reload.
pub async fn version(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT version FROM access_version").fetch_one(pool).await
}

/// Every grant, revoked and expired ones too (the policy tells them apart), by grantee organisation.
pub async fn grants_by_grantee(pool: &PgPool) -> Result<HashMap<i64, Vec<GrantTerms>>, sqlx::Error> {
    let mut by_org: HashMap<i64, Vec<GrantTerms>> = HashMap::new();
    for grant in crate::grants::all(pool).await? {
        by_org.entry(grant.grantee_org_id).or_default().push(grant);
    }
    Ok(by_org)
}

/// The state of an API key: when it was revoked (if) and when it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromRow)]
pub struct KeyState {
    pub revoked_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
}

/// Which principals are disabled and the state of every API key.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub disabled: HashSet<i64>,
    /// By key id.
    pub keys: HashMap<i64, KeyState>,
}

#[derive(FromRow)]
struct KeyRow {
    id: i64,
    #[sqlx(flatten)]
    state: KeyState,
}

/// The state of every principal's credentials.
pub async fn credentials(pool: &PgPool) -> Result<Credentials, sqlx::Error> {
    let disabled: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM principals WHERE disabled_at IS NOT NULL").fetch_all(pool).await?;
    let keys: Vec<KeyRow> = sqlx::query_as("SELECT id, revoked_at, expires_at FROM api_keys").fetch_all(pool).await?;
    Ok(Credentials {
        disabled: disabled.into_iter().collect(),
        keys: keys.into_iter().map(|k| (k.id, k.state)).collect(),
    })
}
