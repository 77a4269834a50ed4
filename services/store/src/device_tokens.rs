//! Device tokens: a thing's own secret for the doors that authenticate a
//! device by its external id (the airrohr firmware's basic auth password).
//! Only the token's SHA-256 is stored; it is shown once, when it is issued.
//! Issuing replaces the previous token and is audited as `thing.device_token`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{FromRow, PgPool};

use crate::audit::{self, Actor, AdminChange};
use crate::registry::RegistryError;
use hoheit_domain::Slug;

/// Every device token starts with this, so that a leaked one is recognisable.
const TOKEN_PREFIX: &str = "hdt_";

/// The thing a token was issued for (what the audit record keeps).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, FromRow)]
pub struct DeviceTokenView {
    pub thing_id: i64,
    pub org: String,
    pub thing: String,
    /// The device's external id, as its door presents it (`esp8266-12345`).
    pub external_id: String,
}

/// A freshly issued token: in this answer only.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedDeviceToken {
    #[serde(flatten)]
    pub view: DeviceTokenView,
    /// The token, shown only now: the firmware's password (airrohr: "send to own API", password).
    pub token: String,
}

#[derive(FromRow)]
struct Issued {
    org_id: i64,
    #[sqlx(flatten)]
    view: DeviceTokenView,
}

/// The organisation of thing `thing_id` (for the caller's permission check).
pub async fn org_of_thing(pool: &PgPool, thing_id: i64) -> Result<i64, RegistryError> {
    sqlx::query_scalar("SELECT org_id FROM things WHERE id = $1")
        .bind(thing_id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("thing {thing_id}")))
}

/// The id of thing `thing` of `org` (the command line names things by slug).
pub async fn thing_id(pool: &PgPool, org: &Slug, thing: &Slug) -> Result<i64, RegistryError> {
    sqlx::query_scalar(
        "SELECT t.id FROM things t JOIN organisations o ON o.id = t.org_id WHERE o.slug = $1 AND t.slug = $2",
    )
    .bind(org.as_str())
    .bind(thing.as_str())
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| RegistryError::NotFound(format!("thing {org}/{thing}")))
}

/// Issues a new token for thing `thing_id`, replacing any earlier one.
/// The thing needs an external id: that is what its door presents.
pub async fn issue(pool: &PgPool, thing_id: i64, actor: &Actor) -> Result<IssuedDeviceToken, RegistryError> {
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
    let mut tx = pool.begin().await?;
    let external: Option<Option<String>> = sqlx::query_scalar("SELECT external_id FROM things WHERE id = $1")
        .bind(thing_id)
        .fetch_optional(&mut *tx)
        .await?;
    match external {
        None => return Err(RegistryError::NotFound(format!("thing {thing_id}"))),
        Some(None) => {
            return Err(RegistryError::Invalid {
                field: "external_id",
                reason: format!(
                    "thing {thing_id} has no external id; a device token belongs to a device (give the thing its chip id, e.g. esp8266-12345)"
                ),
            })
        }
        Some(Some(_)) => {}
    }
    let issued: Issued = sqlx::query_as(
        "UPDATE things t SET device_token_hash = $2 FROM organisations o
         WHERE t.id = $1 AND o.id = t.org_id
         RETURNING t.org_id, t.id AS thing_id, o.slug AS org, t.slug AS thing, t.external_id",
    )
    .bind(thing_id)
    .bind(Sha256::digest(token.as_bytes()).to_vec())
    .fetch_one(&mut *tx)
    .await?;
    let change = AdminChange::new("thing.device_token", "thing", thing_id, issued.org_id);
    audit::record_change(&mut tx, actor, &change.states(None::<&DeviceTokenView>, Some(&issued.view))).await?;
    tx.commit().await?;
    Ok(IssuedDeviceToken { view: issued.view, token })
}

/// A device as its door checks it: its thing and its token's hash.
#[derive(Debug, Clone, FromRow)]
pub struct DeviceCredential {
    #[sqlx(try_from = "String")]
    pub thing: Slug,
    pub token_hash: Option<Vec<u8>>,
}

impl DeviceCredential {
    /// Whether `presented` is the device's token (in constant time).
    pub fn accepts(&self, presented: &str) -> bool {
        let Some(stored) = self.token_hash.as_deref() else { return false };
        let digest = Sha256::digest(presented.as_bytes());
        stored.len() == digest.len() && stored.iter().zip(digest.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// The device of `org` whose external id is `external_id` (normalised as stored).
pub async fn device(pool: &PgPool, org: &Slug, external_id: &str) -> Result<Option<DeviceCredential>, sqlx::Error> {
    let Ok(external_id) = crate::registry::normalise_external_id(external_id) else { return Ok(None) };
    sqlx::query_as(
        "SELECT t.slug AS thing, t.device_token_hash AS token_hash FROM things t JOIN organisations o ON o.id = t.org_id
         WHERE o.slug = $1 AND t.external_id = $2",
    )
    .bind(org.as_str())
    .bind(&external_id)
    .fetch_optional(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_whose_hash_is_stored_is_accepted() {
        let token = "hdt_secret";
        let credential = DeviceCredential {
            thing: Slug::parse("thing", "feinstaub-1").unwrap(),
            token_hash: Some(Sha256::digest(token.as_bytes()).to_vec()),
        };
        assert!(credential.accepts(token));
        assert!(!credential.accepts("hdt_secreT"));
        assert!(!credential.accepts(""));
        assert!(
            !DeviceCredential { token_hash: None, ..credential }.accepts(token),
            "no token set: nothing is accepted"
        );
    }
}
