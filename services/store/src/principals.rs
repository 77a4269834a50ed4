//! Principals (people and service accounts of an organisation) and their API
//! keys, with their SQL.
//!
//! A key looks like `hoh_<lookup>_<secret>`: `lookup` (16 hex digits) finds
//! the row, the secret (32 random bytes, base64url) is checked against its
//! SHA-256. The key is shown once and never stored. For MQTT sign-in the key
//! doubles as the password of user `hoh_<lookup>`; the broker's PBKDF2-SHA512
//! hash of it is kept for generating the broker's password file.
//!
//! Creating and disabling a principal, issuing and revoking a key each write
//! their audit record in the same transaction (metadata only: never a key or
//! a hash). [`still_valid`] re-checks a credential for long-lived requests.
//! The operators' tool lists principals and keys by name.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use sqlx::{FromRow, PgExecutor, PgPool};

use crate::audit::{self, Actor, AdminChange};
use crate::registry::RegistryError;
use hoheit_domain::policy::{OrgKind, Principal, Role};
use hoheit_domain::Slug;

const KEY_PREFIX: &str = "hoh_";

/// The longest lifetime of a new key unless configured otherwise
/// (`HOHEIT_MAX_KEY_LIFETIME_DAYS`): a year and a month's grace for rotation.
pub const DEFAULT_MAX_KEY_LIFETIME_DAYS: u32 = 397;

/// The lifetime of a key when none is asked for.
const DEFAULT_KEY_LIFETIME_DAYS: u32 = 365;

/// The longest a new key may live: between one day and a hundred years.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLifetime(u32);

impl KeyLifetime {
    pub fn days(days: u32) -> Result<Self, RegistryError> {
        if !(1..=36_500).contains(&days) {
            return Err(RegistryError::Invalid {
                field: "maximum key lifetime",
                reason: format!("{days} days is not between 1 and 36500"),
            });
        }
        Ok(Self(days))
    }

    fn duration(self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.0))
    }
}

impl Default for KeyLifetime {
    fn default() -> Self {
        Self(DEFAULT_MAX_KEY_LIFETIME_DAYS)
    }
}

/// When a new key expires: in the future, and no later than the maximum
/// lifetime from now. Every key is issued through one ([`create_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyExpiry(DateTime<Utc>);

impl KeyExpiry {
    /// `requested`, or a year (at most the maximum) from `now` when `None`.
    pub fn within(
        requested: Option<DateTime<Utc>>,
        max: KeyLifetime,
        now: DateTime<Utc>,
    ) -> Result<Self, RegistryError> {
        let latest = now + max.duration();
        let at =
            requested.unwrap_or_else(|| latest.min(now + chrono::Duration::days(DEFAULT_KEY_LIFETIME_DAYS.into())));
        if at <= now {
            return Err(RegistryError::Invalid { field: "expires_at", reason: "must be in the future".into() });
        }
        if at > latest {
            return Err(RegistryError::Invalid {
                field: "expires_at",
                reason: format!(
                    "{at} is beyond the maximum key lifetime of {} days (until {latest}); \
                     issue a shorter-lived key and rotate it",
                    max.0
                ),
            });
        }
        Ok(Self(at))
    }

    pub fn at(self) -> DateTime<Utc> {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    Person,
    Service,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Person => "person",
            PrincipalKind::Service => "service",
        }
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPrincipal {
    pub org: Slug,
    /// Unique name, e.g. "verkehr-dashboard" or a person's login.
    pub name: Slug,
    pub kind: PrincipalKind,
    pub role: Role,
    /// Subject (or mapped claim) of this principal's OIDC tokens.
    pub oidc_subject: Option<String>,
}

/// A principal as the administration shows it (a row of [`VIEW_SELECT`]).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, FromRow)]
pub struct PrincipalView {
    pub id: i64,
    pub org: String,
    pub name: String,
    pub kind: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub oidc_subject: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When the principal was disabled (it can no longer sign in); absent while active.
    pub disabled_at: Option<DateTime<Utc>>,
}

/// A key's metadata (never the key).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    pub id: i64,
    pub principal_id: i64,
    /// The MQTT user name of this key and the public part of it.
    pub lookup: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key's row as stored; the view adds the key prefix to `lookup`.
#[derive(FromRow)]
struct ApiKeyRow {
    id: i64,
    principal_id: i64,
    lookup: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRow> for ApiKeyView {
    fn from(row: ApiKeyRow) -> Self {
        ApiKeyView {
            id: row.id,
            principal_id: row.principal_id,
            lookup: format!("{KEY_PREFIX}{}", row.lookup),
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// What an insert returns: the new row's id and time, and the organisation
/// its audit record concerns.
#[derive(FromRow)]
struct Inserted {
    id: i64,
    org_id: i64,
    created_at: DateTime<Utc>,
}

/// A freshly created key: shown once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedKey {
    #[serde(flatten)]
    pub view: ApiKeyView,
    pub key: String,
}

/// Why a presented credential is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the API key is not valid")]
    Invalid,
    #[error("the API key expired at {0}")]
    Expired(DateTime<Utc>),
    #[error("the API key was revoked at {0}")]
    Revoked(DateTime<Utc>),
    #[error("the principal is disabled")]
    Disabled,
    #[error("no principal is mapped to this token's subject")]
    UnknownSubject,
    #[error("the credential could not be checked: the database is unavailable")]
    Unavailable,
}

fn unique_violation(error: sqlx::Error, what: String) -> RegistryError {
    match &error {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => RegistryError::Conflict(what),
        _ => error.into(),
    }
}

/// Registers a principal; audited as `principal.create`.
pub async fn create_principal(
    pool: &PgPool,
    new: &NewPrincipal,
    actor: &Actor,
) -> Result<PrincipalView, RegistryError> {
    let mut tx = pool.begin().await?;
    let inserted: Inserted = sqlx::query_as(
        "INSERT INTO principals (org_id, name, kind, role, oidc_subject)
         SELECT id, $2, $3, $4, $5 FROM organisations WHERE slug = $1
         RETURNING id, org_id, created_at",
    )
    .bind(new.org.as_str())
    .bind(new.name.as_str())
    .bind(new.kind.as_str())
    .bind(new.role.as_str())
    .bind(&new.oidc_subject)
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| unique_violation(e, format!("principal {} (or its OIDC subject)", new.name)))?
    .ok_or_else(|| RegistryError::NotFound(format!("organisation {}", new.org)))?;
    let view = PrincipalView {
        id: inserted.id,
        org: new.org.to_string(),
        name: new.name.to_string(),
        kind: new.kind.as_str().into(),
        role: new.role,
        oidc_subject: new.oidc_subject.clone(),
        created_at: inserted.created_at,
        disabled_at: None,
    };
    let change = AdminChange::new("principal.create", "principal", view.id, inserted.org_id);
    audit::record_change(&mut tx, actor, &change.states(None::<&PrincipalView>, Some(&view))).await?;
    tx.commit().await?;
    Ok(view)
}

/// The columns of a [`PrincipalView`], and the principal's `org_id`.
const VIEW_SELECT: &str = "SELECT p.id, o.slug AS org, p.org_id, p.name, p.kind, p.role, p.oidc_subject, p.created_at,
            p.disabled_at
     FROM principals p JOIN organisations o ON o.id = p.org_id";

/// A principal's view with its organisation's id.
#[derive(FromRow)]
struct ViewWithOrg {
    #[sqlx(flatten)]
    view: PrincipalView,
    org_id: i64,
}

/// A principal's view and organisation id.
async fn principal_view<'e>(executor: impl PgExecutor<'e>, id: i64) -> Result<(PrincipalView, i64), RegistryError> {
    let row: ViewWithOrg = sqlx::query_as(&format!("{VIEW_SELECT} WHERE p.id = $1"))
        .bind(id)
        .fetch_optional(executor)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("principal {id}")))?;
    Ok((row.view, row.org_id))
}

/// One principal by its (unique) name, if it exists.
pub async fn principal_by_name(pool: &PgPool, name: &Slug) -> Result<Option<PrincipalView>, RegistryError> {
    Ok(sqlx::query_as(&format!("{VIEW_SELECT} WHERE p.name = $1")).bind(name.as_str()).fetch_optional(pool).await?)
}

/// Principals, of one organisation or all, ordered by id.
pub async fn list_principals(pool: &PgPool, org: Option<&Slug>) -> Result<Vec<PrincipalView>, RegistryError> {
    Ok(sqlx::query_as(&format!("{VIEW_SELECT} WHERE ($1::text IS NULL OR o.slug = $1) ORDER BY p.id"))
        .bind(org.map(Slug::as_str))
        .fetch_all(pool)
        .await?)
}

/// Disables a principal: none of its keys or tokens is accepted any more;
/// audited as `principal.disable`.
pub async fn disable(pool: &PgPool, principal_id: i64, actor: &Actor) -> Result<PrincipalView, RegistryError> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query("UPDATE principals SET disabled_at = now() WHERE id = $1 AND disabled_at IS NULL")
        .bind(principal_id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(RegistryError::NotFound(format!("active principal {principal_id}")));
    }
    let (after, org_id) = principal_view(&mut *tx, principal_id).await?;
    let before = PrincipalView { disabled_at: None, ..after.clone() };
    let change = AdminChange::new("principal.disable", "principal", principal_id, org_id);
    audit::record_change(&mut tx, actor, &change.states(Some(&before), Some(&after))).await?;
    tx.commit().await?;
    Ok(after)
}

/// The organisation id a principal belongs to.
pub async fn org_of_principal(pool: &PgPool, principal_id: i64) -> Result<i64, RegistryError> {
    sqlx::query_scalar("SELECT org_id FROM principals WHERE id = $1")
        .bind(principal_id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("principal {principal_id}")))
}

/// Mosquitto's password hash format: `$7$<iterations>$<salt>$<hash>`, PBKDF2-SHA512.
pub fn mosquitto_hash(password: &str) -> String {
    const ITERATIONS: u32 = 101;
    let mut salt = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut salt);
    let mut hash = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), &salt, ITERATIONS, &mut hash);
    format!("$7${ITERATIONS}${}${}", STANDARD.encode(salt), STANDARD.encode(hash))
}

/// Issues a new key for `principal_id`, valid until `expires` (within the
/// maximum key lifetime); audited as `key.issue` (with the key's metadata only).
pub async fn create_key(
    pool: &PgPool,
    principal_id: i64,
    expires: KeyExpiry,
    actor: &Actor,
) -> Result<IssuedKey, RegistryError> {
    let expires_at = expires.at();
    let mut lookup = [0u8; 8];
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut lookup);
    rand::thread_rng().fill_bytes(&mut secret);
    let lookup: String = lookup.iter().map(|b| format!("{b:02x}")).collect();
    let secret = URL_SAFE_NO_PAD.encode(secret);
    let key = format!("{KEY_PREFIX}{lookup}_{secret}");
    let secret_hash = Sha256::digest(secret.as_bytes()).to_vec();
    let mut tx = pool.begin().await?;
    let inserted: Inserted = sqlx::query_as(
        "INSERT INTO api_keys (principal_id, lookup, secret_hash, mqtt_hash, expires_at)
         SELECT id, $2, $3, $4, $5 FROM principals WHERE id = $1
         RETURNING id, created_at, (SELECT org_id FROM principals WHERE id = $1) AS org_id",
    )
    .bind(principal_id)
    .bind(&lookup)
    .bind(&secret_hash)
    .bind(mosquitto_hash(&key))
    .bind(expires_at)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| RegistryError::NotFound(format!("principal {principal_id}")))?;
    let view = ApiKeyView {
        id: inserted.id,
        principal_id,
        lookup: format!("{KEY_PREFIX}{lookup}"),
        created_at: inserted.created_at,
        expires_at,
        revoked_at: None,
    };
    let change = AdminChange::new("key.issue", "api_key", view.id, inserted.org_id);
    audit::record_change(&mut tx, actor, &change.states(None::<&ApiKeyView>, Some(&view))).await?;
    tx.commit().await?;
    Ok(IssuedKey { view, key })
}

/// Revokes an active key; audited as `key.revoke`; returns it as revoked.
/// (Permissions are checked by the caller, e.g. with [`org_of_key`].)
pub async fn revoke_key(pool: &PgPool, key_id: i64, actor: &Actor) -> Result<ApiKeyView, RegistryError> {
    let mut tx = pool.begin().await?;
    let row: KeyWithOrg = sqlx::query_as(
        "UPDATE api_keys k SET revoked_at = now() FROM principals p
         WHERE k.id = $1 AND k.revoked_at IS NULL AND p.id = k.principal_id
         RETURNING k.id, k.principal_id, k.lookup, k.created_at, k.expires_at, k.revoked_at, p.org_id",
    )
    .bind(key_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| RegistryError::NotFound(format!("active key {key_id}")))?;
    let after = ApiKeyView::from(row.key);
    let before = ApiKeyView { revoked_at: None, ..after.clone() };
    let change = AdminChange::new("key.revoke", "api_key", key_id, row.org_id);
    audit::record_change(&mut tx, actor, &change.states(Some(&before), Some(&after))).await?;
    tx.commit().await?;
    Ok(after)
}

/// The organisation that owns a key (through its principal).
pub async fn org_of_key(pool: &PgPool, key_id: i64) -> Result<i64, RegistryError> {
    sqlx::query_scalar("SELECT p.org_id FROM api_keys k JOIN principals p ON p.id = k.principal_id WHERE k.id = $1")
        .bind(key_id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("key {key_id}")))
}

/// One key's metadata (never the key): what `GET /v1/me` shows of the key in use.
pub async fn key_view(pool: &PgPool, key_id: i64) -> Result<ApiKeyView, RegistryError> {
    let row: ApiKeyRow = sqlx::query_as(
        "SELECT id, principal_id, lookup, created_at, expires_at, revoked_at FROM api_keys WHERE id = $1",
    )
    .bind(key_id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| RegistryError::NotFound(format!("key {key_id}")))?;
    Ok(row.into())
}

/// A key's row with the organisation of its principal.
#[derive(FromRow)]
struct KeyWithOrg {
    #[sqlx(flatten)]
    key: ApiKeyRow,
    org_id: i64,
}

/// A key's metadata with its principal and organisation (never the key).
#[derive(Debug, Clone, Serialize)]
pub struct KeyListing {
    #[serde(flatten)]
    pub key: ApiKeyView,
    pub principal: String,
    pub org: String,
}

/// A key's row with the names of its principal and organisation.
#[derive(FromRow)]
struct KeyListingRow {
    #[sqlx(flatten)]
    key: ApiKeyRow,
    principal: String,
    org: String,
}

/// API keys, of one principal and/or organisation or all, ordered by id.
pub async fn list_keys(
    pool: &PgPool,
    principal: Option<&Slug>,
    org: Option<&Slug>,
) -> Result<Vec<KeyListing>, sqlx::Error> {
    let rows: Vec<KeyListingRow> = sqlx::query_as(
        "SELECT k.id, k.principal_id, k.lookup, k.created_at, k.expires_at, k.revoked_at, p.name AS principal, o.slug AS org
         FROM api_keys k JOIN principals p ON p.id = k.principal_id JOIN organisations o ON o.id = p.org_id
         WHERE ($1::text IS NULL OR p.name = $1) AND ($2::text IS NULL OR o.slug = $2)
         ORDER BY k.id",
    )
    .bind(principal.map(Slug::as_str))
    .bind(org.map(Slug::as_str))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| KeyListing { key: r.key.into(), principal: r.principal, org: r.org }).collect())
}

/// What authentication needs of a principal and its organisation. The role
/// and the kind stay text here: a value that does not parse is an invalid
/// credential ([`AuthError::Invalid`]), not an unavailable database.
#[derive(FromRow)]
struct PrincipalRow {
    id: i64,
    name: String,
    role: String,
    disabled_at: Option<DateTime<Utc>>,
    org_id: i64,
    org_slug: String,
    org_kind: String,
    parent_id: Option<i64>,
}

const PRINCIPAL_SELECT: &str =
    "SELECT p.id, p.name, p.role, p.disabled_at, o.id AS org_id, o.slug AS org_slug, o.kind AS org_kind, o.parent_id
     FROM principals p JOIN organisations o ON o.id = p.org_id";

impl PrincipalRow {
    fn principal(self, key_id: Option<i64>) -> Result<Principal, AuthError> {
        if self.disabled_at.is_some() {
            return Err(AuthError::Disabled);
        }
        let kind: OrgKind = self.org_kind.parse().map_err(|_| AuthError::Invalid)?;
        Ok(Principal {
            id: self.id,
            name: self.name,
            org_id: self.org_id,
            org_slug: self.org_slug,
            municipality_id: municipality_of(self.org_id, kind, self.parent_id),
            role: self.role.parse().map_err(|_| AuthError::Invalid)?,
            key_id,
        })
    }
}

/// What checking a presented key needs of its row.
#[derive(FromRow)]
struct KeySecret {
    id: i64,
    secret_hash: Vec<u8>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

/// The municipality an organisation belongs to ("Konzern Stadt").
pub fn municipality_of(org_id: i64, kind: OrgKind, parent_id: Option<i64>) -> Option<i64> {
    match kind {
        OrgKind::Municipality => Some(org_id),
        OrgKind::Department | OrgKind::MunicipalCompany => parent_id,
        OrgKind::ThirdParty => None,
    }
}

/// Authenticates a presented API key.
pub async fn authenticate_key(pool: &PgPool, presented: &str) -> Result<Principal, AuthError> {
    let rest = presented.strip_prefix(KEY_PREFIX).ok_or(AuthError::Invalid)?;
    let (lookup, secret) = rest.split_once('_').ok_or(AuthError::Invalid)?;
    if lookup.len() != 16 || !lookup.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AuthError::Invalid);
    }
    let row: Option<PrincipalRow> = sqlx::query_as(&format!(
        "{PRINCIPAL_SELECT} JOIN api_keys k ON k.principal_id = p.id
         WHERE k.lookup = $1"
    ))
    .bind(lookup)
    .fetch_optional(pool)
    .await
    .map_err(|_| AuthError::Unavailable)?;
    let Some(row) = row else { return Err(AuthError::Invalid) };
    let key: KeySecret =
        sqlx::query_as("SELECT id, secret_hash, expires_at, revoked_at FROM api_keys WHERE lookup = $1")
            .bind(lookup)
            .fetch_one(pool)
            .await
            .map_err(|_| AuthError::Unavailable)?;
    let stored = &key.secret_hash;
    let presented_hash = Sha256::digest(secret.as_bytes());
    let same = stored.len() == presented_hash.len()
        && stored.iter().zip(presented_hash.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !same {
        return Err(AuthError::Invalid);
    }
    if let Some(at) = key.revoked_at {
        return Err(AuthError::Revoked(at));
    }
    if key.expires_at <= Utc::now() {
        return Err(AuthError::Expired(key.expires_at));
    }
    row.principal(Some(key.id))
}

/// What [`still_valid`] re-reads of a principal and its key.
#[derive(FromRow)]
struct CredentialState {
    disabled_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
}

/// Whether a credential accepted earlier is still good: the principal is not
/// disabled and, for an API key, the key is neither revoked nor expired. A
/// long-lived request (the live stream) asks this on every tick.
pub async fn still_valid(pool: &PgPool, principal: &Principal) -> Result<(), AuthError> {
    let state: CredentialState = sqlx::query_as(
        "SELECT p.disabled_at, k.revoked_at, k.expires_at
         FROM principals p LEFT JOIN api_keys k ON k.id = $2 AND k.principal_id = p.id
         WHERE p.id = $1",
    )
    .bind(principal.id)
    .bind(principal.key_id)
    .fetch_optional(pool)
    .await
    .map_err(|_| AuthError::Unavailable)?
    .ok_or(AuthError::Invalid)?;
    if state.disabled_at.is_some() {
        return Err(AuthError::Disabled);
    }
    if principal.key_id.is_some() {
        if let Some(at) = state.revoked_at {
            return Err(AuthError::Revoked(at));
        }
        match state.expires_at {
            None => return Err(AuthError::Invalid),
            Some(expires) if expires <= Utc::now() => return Err(AuthError::Expired(expires)),
            Some(_) => {}
        }
    }
    Ok(())
}

/// The principal `id` as the policy sees it, without a key: what a standing
/// read of its own (an alert rule) is decided for. `AuthError::Disabled` for
/// a disabled principal, `AuthError::Invalid` for an unknown one.
pub async fn by_id(pool: &PgPool, id: i64) -> Result<Principal, AuthError> {
    let row: PrincipalRow = sqlx::query_as(&format!("{PRINCIPAL_SELECT} WHERE p.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(|_| AuthError::Unavailable)?
        .ok_or(AuthError::Invalid)?;
    row.principal(None)
}

/// The principal mapped to an OIDC subject.
pub async fn by_oidc_subject(pool: &PgPool, subject: &str) -> Result<Principal, AuthError> {
    let row: PrincipalRow = sqlx::query_as(&format!("{PRINCIPAL_SELECT} WHERE p.oidc_subject = $1"))
        .bind(subject)
        .fetch_optional(pool)
        .await
        .map_err(|_| AuthError::Unavailable)?
        .ok_or(AuthError::UnknownSubject)?;
    row.principal(None)
}

/// A usable key's broker credentials as stored.
#[derive(FromRow)]
struct MqttCredentialRow {
    lookup: String,
    mqtt_hash: String,
    slug: String,
    role: String,
}

/// A usable key's broker credentials: its MQTT user, the broker's hash of
/// the key, its organisation and its principal's role (which decides what
/// it may write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttCredential {
    pub user: String,
    pub hash: String,
    pub org: String,
    pub role: String,
}

/// MQTT credentials of every usable key.
pub async fn mqtt_credentials(pool: &PgPool) -> Result<Vec<MqttCredential>, sqlx::Error> {
    let rows: Vec<MqttCredentialRow> = sqlx::query_as(
        "SELECT k.lookup, k.mqtt_hash, o.slug, p.role FROM api_keys k
         JOIN principals p ON p.id = k.principal_id JOIN organisations o ON o.id = p.org_id
         WHERE k.revoked_at IS NULL AND k.expires_at > now() AND p.disabled_at IS NULL
         ORDER BY k.id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| MqttCredential {
            user: format!("{KEY_PREFIX}{}", r.lookup),
            hash: r.mqtt_hash,
            org: r.slug,
            role: r.role,
        })
        .collect())
}

/// The MQTT users of every key the registry knows, usable or not (revoked,
/// expired, of a disabled principal): the broker clients this registry may
/// remove.
pub async fn known_key_users(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    let lookups: Vec<String> = sqlx::query_scalar("SELECT lookup FROM api_keys ORDER BY id").fetch_all(pool).await?;
    Ok(lookups.into_iter().map(|l| format!("{KEY_PREFIX}{l}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mosquitto_hashes_have_the_broker_format_and_a_fresh_salt() {
        let a = mosquitto_hash("hoh_0123456789abcdef_secret");
        let b = mosquitto_hash("hoh_0123456789abcdef_secret");
        let parts: Vec<&str> = a.split('$').collect();
        assert_eq!(parts[..3], ["", "7", "101"]);
        assert_eq!(STANDARD.decode(parts[3]).unwrap().len(), 12);
        assert_eq!(STANDARD.decode(parts[4]).unwrap().len(), 64);
        assert_ne!(a, b, "salted");
    }

    #[test]
    fn key_expiry_is_in_the_future_and_within_the_maximum_lifetime() {
        let now = Utc::now();
        let max = KeyLifetime::days(30).unwrap();
        let day = chrono::Duration::days(1);
        assert_eq!(KeyExpiry::within(None, max, now).unwrap().at(), now + day * 30, "default capped at the maximum");
        assert_eq!(
            KeyExpiry::within(None, KeyLifetime::default(), now).unwrap().at(),
            now + day * 365,
            "a year by default"
        );
        assert!(KeyExpiry::within(Some(now + day * 30), max, now).is_ok());
        let beyond = KeyExpiry::within(Some(now + day * 31), max, now).unwrap_err();
        assert!(beyond.to_string().contains("maximum key lifetime of 30 days"), "{beyond}");
        assert!(KeyExpiry::within(Some(now - day), max, now).is_err(), "in the past");
        let year_9999 = "9999-12-31T00:00:00Z".parse().unwrap();
        assert!(KeyExpiry::within(Some(year_9999), KeyLifetime::default(), now).is_err());
        assert!(KeyLifetime::days(0).is_err());
    }

    #[test]
    fn municipality_membership() {
        assert_eq!(municipality_of(1, OrgKind::Municipality, None), Some(1));
        assert_eq!(municipality_of(2, OrgKind::Department, Some(1)), Some(1));
        assert_eq!(municipality_of(3, OrgKind::MunicipalCompany, Some(1)), Some(1));
        assert_eq!(municipality_of(4, OrgKind::ThirdParty, Some(1)), None, "a third party is never part of the town");
    }
}
