//! Things as an organisation's admins manage them: the listing with each
//! thing's type, datastream count, newest reading and open dead letters (one
//! query, however many things), and a change of a thing (name, position,
//! type, external id; a new type adds the datastreams the thing lacks and
//! drops none).

use chrono::{DateTime, Utc};
use hoheit_domain::Slug;
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgPool};

use crate::audit::{self, Actor, AdminChange};
use crate::device_types;
use crate::registry::{self, check_position, normalise_external_id, present, thing_conflict, RegistryError};

/// A thing in the administration's listing.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, FromRow)]
pub struct ThingSummary {
    pub id: i64,
    pub org: String,
    pub slug: String,
    pub name: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// The device type's slug.
    #[serde(rename = "type")]
    pub device_type: Option<String>,
    pub external_id: Option<String>,
    /// How many datastreams the thing has.
    pub datastreams: i64,
    /// The newest reading of any of its datastreams.
    pub last_reading_at: Option<DateTime<Utc>>,
    /// Dead letters addressed to the thing (its topics) that no replay has stored.
    pub dead_letters: i64,
}

/// Which dead letters still count as open: those no replay has stored.
const OPEN_DEAD_LETTER: &str = "dl.replay_result IS DISTINCT FROM 'stored'";

/// The things of organisation `org_id` (`None`: of all), by organisation and
/// slug. `topic_root` is the MQTT topic root (`hoheit/v1`): a dead letter is
/// the thing's when its topic is `{root}/{org}/{thing}` or below.
pub async fn list(pool: &PgPool, org_id: Option<i64>, topic_root: &str) -> Result<Vec<ThingSummary>, RegistryError> {
    let sql = format!(
        "WITH letters AS (
             SELECT dl.org, split_part(substr(dl.mqtt_topic, length($2) + length(dl.org) + 3), '/', 1) AS thing,
                    count(*) AS n
             FROM dead_letters dl
             WHERE ($1::bigint IS NULL OR dl.org = (SELECT slug FROM organisations WHERE id = $1))
               AND starts_with(dl.mqtt_topic, $2 || '/' || dl.org || '/') AND {OPEN_DEAD_LETTER}
             GROUP BY 1, 2
         ), streams AS (
             SELECT d.thing_id, count(*) AS n, max(latest.time) AS last_reading_at
             FROM datastreams d JOIN things t ON t.id = d.thing_id
             LEFT JOIN datastream_latest latest ON latest.datastream_id = d.id
             WHERE $1::bigint IS NULL OR t.org_id = $1
             GROUP BY d.thing_id
         )
         SELECT t.id, o.slug AS org, t.slug, t.name, t.latitude, t.longitude, dt.slug AS device_type, t.external_id,
                coalesce(s.n, 0) AS datastreams, s.last_reading_at, coalesce(l.n, 0) AS dead_letters
         FROM things t JOIN organisations o ON o.id = t.org_id
         LEFT JOIN device_types dt ON dt.id = t.device_type_id
         LEFT JOIN streams s ON s.thing_id = t.id
         LEFT JOIN letters l ON l.org = o.slug AND l.thing = t.slug
         WHERE $1::bigint IS NULL OR t.org_id = $1
         ORDER BY o.slug, t.slug"
    );
    Ok(sqlx::query_as(&sql).bind(org_id).bind(topic_root.trim_end_matches('/')).fetch_all(pool).await?)
}

/// The organisation a thing belongs to (for the permission check).
pub async fn org_of(pool: &PgPool, id: i64) -> Result<i64, RegistryError> {
    sqlx::query_scalar("SELECT org_id FROM things WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("thing {id}")))
}

/// A change of a thing; absent members stay, `null` clears a position, the
/// type or the external id.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThingPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>)]
    pub latitude: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>)]
    pub longitude: Option<Option<f64>>,
    /// A device type of the thing's organisation: the thing gets the datastreams it lacks (none is dropped).
    #[serde(default, rename = "type", deserialize_with = "present")]
    #[schema(value_type = Option<Slug>)]
    pub device_type: Option<Option<Slug>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
}

/// A thing's columns as stored.
#[derive(Debug, Clone, Serialize, FromRow)]
struct ThingRow {
    org_id: i64,
    org: String,
    slug: String,
    name: String,
    latitude: Option<f64>,
    longitude: Option<f64>,
    device_type_id: Option<i64>,
    external_id: Option<String>,
}

/// A changed thing, with the datastreams its (new) type added.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PatchedThing {
    #[serde(flatten)]
    pub thing: registry::Thing,
    pub datastreams_created: u64,
}

/// Changes a thing; audited as `thing.update` in the same transaction.
pub async fn patch(pool: &PgPool, id: i64, patch: &ThingPatch, actor: &Actor) -> Result<PatchedThing, RegistryError> {
    let mut tx = pool.begin().await?;
    let select =
        "SELECT t.org_id, o.slug AS org, t.slug, t.name, t.latitude, t.longitude, t.device_type_id, t.external_id
                  FROM things t JOIN organisations o ON o.id = t.org_id WHERE t.id = $1";
    let before: ThingRow = sqlx::query_as(&format!("{select} FOR UPDATE OF t"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("thing {id}")))?;
    let mut after = before.clone();
    if let Some(name) = &patch.name {
        if name.trim().is_empty() || name.chars().count() > 200 {
            return Err(RegistryError::Invalid { field: "name", reason: "must be 1 to 200 characters".into() });
        }
        after.name = name.clone();
    }
    after.latitude = patch.latitude.unwrap_or(before.latitude);
    after.longitude = patch.longitude.unwrap_or(before.longitude);
    check_position(after.latitude, after.longitude)?;
    if let Some(external) = &patch.external_id {
        after.external_id = external.as_deref().map(normalise_external_id).transpose()?;
    }
    let mut type_slug = None;
    if let Some(device_type) = &patch.device_type {
        after.device_type_id = match device_type {
            Some(slug) => Some(device_types::id_of(&mut *tx, before.org_id, slug).await?),
            None => None,
        };
        type_slug = device_type.clone();
    }
    let (org, slug) = (parse("org", &before.org)?, parse("slug", &before.slug)?);
    sqlx::query(
        "UPDATE things SET name = $2, latitude = $3, longitude = $4, device_type_id = $5, external_id = $6 WHERE id = $1",
    )
    .bind(id)
    .bind(&after.name)
    .bind(after.latitude)
    .bind(after.longitude)
    .bind(after.device_type_id)
    .bind(&after.external_id)
    .execute(&mut *tx)
    .await
    .map_err(|e| thing_conflict(e, &org, &slug, after.external_id.as_deref()))?;
    let datastreams_created = device_types::add_missing_datastreams(&mut tx, &[id]).await?;
    if patch.device_type.is_none() {
        let current: Option<String> = sqlx::query_scalar("SELECT slug FROM device_types WHERE id = $1")
            .bind(after.device_type_id)
            .fetch_optional(&mut *tx)
            .await?;
        type_slug = current.map(|s| parse("type", &s)).transpose()?;
    }
    let change = AdminChange::new("thing.update", "thing", id, before.org_id).states(Some(&before), Some(&after));
    audit::record_change(&mut tx, actor, &change).await?;
    tx.commit().await?;
    let thing = registry::Thing {
        id,
        org,
        slug,
        name: after.name,
        latitude: after.latitude,
        longitude: after.longitude,
        external_id: after.external_id,
        device_type: type_slug,
    };
    Ok(PatchedThing { thing, datastreams_created })
}

fn parse(field: &'static str, stored: &str) -> Result<Slug, RegistryError> {
    Slug::parse("slug", stored)
        .map_err(|e| RegistryError::Invalid { field, reason: format!("stored value is not valid: {e}") })
}
