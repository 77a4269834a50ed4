//! Device types: an organisation describes a kind of sensor once, its
//! properties with name, unit and plausible range, and every thing of that
//! type gets one datastream per property. A type only ever adds
//! datastreams: a property taken out of a type keeps its datastreams and
//! their data, and a datastream of a type follows the type's range unless it
//! has a range of its own. Every change is audited in its own transaction.

use std::collections::HashSet;

use hoheit_domain::range::PlausibleRange;
use hoheit_domain::{Slug, Unit};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgConnection, PgExecutor, PgPool, Postgres, Transaction};

use crate::audit::{self, Actor, AdminChange};
use crate::registry::RegistryError;

/// At most this many properties in a type.
const MAX_PROPERTIES: usize = 100;

/// One property of a device type: a datastream of each thing of the type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TypeProperty {
    /// The datastream's property (its topic's last segment), e.g. `pm2_5`.
    pub property: Slug,
    /// The datastream's name, e.g. `Feinstaub PM2.5`.
    pub name: String,
    /// The unit as SenML writes it (`ug/m3`, `Cel`, `%RH`).
    pub unit: Unit,
    /// The plausible range: a reading below `min` or above `max` is a dead letter `out_of_range`.
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
}

/// A device type as the administration shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeviceType {
    pub id: i64,
    pub org: Slug,
    pub slug: Slug,
    pub name: String,
    pub description: Option<String>,
    pub properties: Vec<TypeProperty>,
    /// How many things are of this type.
    pub things: i64,
}

/// A new device type. The operator names the organisation; an admin's
/// default is its own.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDeviceType {
    #[serde(default)]
    pub org: Option<Slug>,
    pub slug: Slug,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub properties: Vec<TypeProperty>,
}

/// A type's new description: properties may be added or changed; one left
/// out is no longer part of the type but keeps its datastreams and data.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceTypeUpdate {
    pub slug: Slug,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub properties: Vec<TypeProperty>,
}

/// A changed type, with the datastreams its things got at once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UpdatedDeviceType {
    #[serde(flatten)]
    pub device_type: DeviceType,
    /// Datastreams created for the type's things (the properties they lacked).
    pub datastreams_created: u64,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> RegistryError {
    RegistryError::Invalid { field, reason: reason.into() }
}

/// Name, description and properties as a type may hold them.
fn check(name: &str, description: Option<&str>, properties: &[TypeProperty]) -> Result<(), RegistryError> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(invalid("name", "must be 1 to 200 characters"));
    }
    if description.is_some_and(|d| d.chars().count() > 2000) {
        return Err(invalid("description", "must be at most 2000 characters"));
    }
    if properties.is_empty() || properties.len() > MAX_PROPERTIES {
        return Err(invalid("properties", format!("a type has 1 to {MAX_PROPERTIES} properties")));
    }
    let mut seen = HashSet::new();
    for p in properties {
        if !seen.insert(&p.property) {
            return Err(invalid("properties", format!("property {} is listed twice", p.property)));
        }
        if p.name.trim().is_empty() || p.name.chars().count() > 200 {
            return Err(invalid("properties", format!("the name of {} must be 1 to 200 characters", p.property)));
        }
        PlausibleRange::new(p.min, p.max)
            .map_err(|e| invalid("properties", format!("range of {}: {e}", p.property)))?;
    }
    Ok(())
}

#[derive(FromRow)]
struct TypeRow {
    id: i64,
    org: String,
    slug: String,
    name: String,
    description: Option<String>,
    things: i64,
}

#[derive(FromRow)]
struct PropertyRow {
    device_type_id: i64,
    property: String,
    name: String,
    unit: String,
    min: Option<f64>,
    max: Option<f64>,
}

const TYPE_SELECT: &str = "SELECT dt.id, o.slug AS org, dt.slug, dt.name, dt.description,
        (SELECT count(*) FROM things t WHERE t.device_type_id = dt.id) AS things
     FROM device_types dt JOIN organisations o ON o.id = dt.org_id";

/// The types of `rows` with their properties (one query for all).
async fn with_properties<'e>(
    executor: impl PgExecutor<'e>,
    rows: Vec<TypeRow>,
) -> Result<Vec<DeviceType>, RegistryError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let properties: Vec<PropertyRow> = sqlx::query_as(
        "SELECT device_type_id, property, name, unit, min, max FROM device_type_properties
         WHERE device_type_id = ANY($1) ORDER BY device_type_id, position",
    )
    .bind(&ids)
    .fetch_all(executor)
    .await?;
    let stored = |field, e: hoheit_domain::SlugError| invalid(field, format!("stored value is not valid: {e}"));
    rows.into_iter()
        .map(|row| {
            let properties = properties
                .iter()
                .filter(|p| p.device_type_id == row.id)
                .map(|p| {
                    Ok(TypeProperty {
                        property: Slug::parse("property", &p.property).map_err(|e| stored("property", e))?,
                        name: p.name.clone(),
                        unit: Unit::parse(&p.unit).map_err(|e| invalid("unit", e.to_string()))?,
                        min: p.min,
                        max: p.max,
                    })
                })
                .collect::<Result<_, RegistryError>>()?;
            Ok(DeviceType {
                id: row.id,
                org: Slug::parse("organisation", &row.org).map_err(|e| stored("org", e))?,
                slug: Slug::parse("type", &row.slug).map_err(|e| stored("slug", e))?,
                name: row.name,
                description: row.description,
                properties,
                things: row.things,
            })
        })
        .collect()
}

/// The types of an organisation (`None`: of all), by organisation and slug.
pub async fn list(pool: &PgPool, org_id: Option<i64>) -> Result<Vec<DeviceType>, RegistryError> {
    let rows: Vec<TypeRow> =
        sqlx::query_as(&format!("{TYPE_SELECT} WHERE $1::bigint IS NULL OR dt.org_id = $1 ORDER BY o.slug, dt.slug"))
            .bind(org_id)
            .fetch_all(pool)
            .await?;
    with_properties(pool, rows).await
}

async fn get_in(conn: &mut PgConnection, id: i64) -> Result<DeviceType, RegistryError> {
    let row: TypeRow = sqlx::query_as(&format!("{TYPE_SELECT} WHERE dt.id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("device type {id}")))?;
    Ok(with_properties(conn, vec![row]).await?.remove(0))
}

pub async fn get(pool: &PgPool, id: i64) -> Result<DeviceType, RegistryError> {
    get_in(&mut *pool.acquire().await?, id).await
}

/// The organisation a type belongs to (for the permission check).
pub async fn org_of(pool: &PgPool, id: i64) -> Result<i64, RegistryError> {
    sqlx::query_scalar("SELECT org_id FROM device_types WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("device type {id}")))
}

/// The id of type `slug` of organisation `org_id`.
pub async fn id_of<'e>(executor: impl PgExecutor<'e>, org_id: i64, slug: &Slug) -> Result<i64, RegistryError> {
    sqlx::query_scalar("SELECT id FROM device_types WHERE org_id = $1 AND slug = $2")
        .bind(org_id)
        .bind(slug.as_str())
        .fetch_optional(executor)
        .await?
        .ok_or_else(|| invalid("type", format!("the organisation has no device type {slug}")))
}

/// Replaces the type's property list (the properties' datastreams stay).
async fn store_properties(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    properties: &[TypeProperty],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM device_type_properties WHERE device_type_id = $1").bind(id).execute(&mut **tx).await?;
    let column = |f: fn(&TypeProperty) -> String| properties.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO device_type_properties (device_type_id, property, name, unit, min, max, position)
         SELECT $1, p.property, p.name, p.unit, p.min, p.max, p.position
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::float8[], $6::float8[]) WITH ORDINALITY
              AS p (property, name, unit, min, max, position)",
    )
    .bind(id)
    .bind(column(|p| p.property.to_string()))
    .bind(column(|p| p.name.clone()))
    .bind(column(|p| p.unit.to_string()))
    .bind(properties.iter().map(|p| p.min).collect::<Vec<_>>())
    .bind(properties.iter().map(|p| p.max).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Gives each of `things` the datastreams of its type's properties it lacks
/// (named and with the unit of the property; the range follows the type);
/// never changes or drops one. Returns how many were created.
pub async fn add_missing_datastreams(tx: &mut Transaction<'_, Postgres>, things: &[i64]) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO datastreams (thing_id, property, name, unit)
         SELECT t.id, p.property, p.name, p.unit
         FROM things t JOIN device_type_properties p ON p.device_type_id = t.device_type_id
         WHERE t.id = ANY($1)
         ORDER BY t.id, p.position
         ON CONFLICT (thing_id, property) DO NOTHING",
    )
    .bind(things)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

fn conflict<'a>(org: &'a Slug, slug: &'a Slug) -> impl FnOnce(sqlx::Error) -> RegistryError + 'a {
    move |e| match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
            RegistryError::Conflict(format!("device type {org}/{slug}"))
        }
        _ => e.into(),
    }
}

/// Creates a type of organisation `org`; audited as `device_type.create`.
pub async fn create(
    pool: &PgPool,
    org: &Slug,
    new: &NewDeviceType,
    actor: &Actor,
) -> Result<DeviceType, RegistryError> {
    check(&new.name, new.description.as_deref(), &new.properties)?;
    let mut tx = pool.begin().await?;
    let (id, org_id): (i64, i64) = sqlx::query_as(
        "INSERT INTO device_types (org_id, slug, name, description)
         SELECT id, $2, $3, $4 FROM organisations WHERE slug = $1 RETURNING id, org_id",
    )
    .bind(org.as_str())
    .bind(new.slug.as_str())
    .bind(&new.name)
    .bind(&new.description)
    .fetch_optional(&mut *tx)
    .await
    .map_err(conflict(org, &new.slug))?
    .ok_or_else(|| RegistryError::NotFound(format!("organisation {org}")))?;
    store_properties(&mut tx, id, &new.properties).await?;
    let created = get_in(&mut tx, id).await?;
    let change = AdminChange::new("device_type.create", "device_type", id, org_id);
    audit::record_change(&mut tx, actor, &change.states(None::<&DeviceType>, Some(&created))).await?;
    tx.commit().await?;
    Ok(created)
}

/// Renames a type, changes its ranges, adds properties; every thing of the
/// type gets its missing datastreams in the same transaction. Audited as
/// `device_type.update`.
pub async fn update(
    pool: &PgPool,
    id: i64,
    update: &DeviceTypeUpdate,
    actor: &Actor,
) -> Result<UpdatedDeviceType, RegistryError> {
    check(&update.name, update.description.as_deref(), &update.properties)?;
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT id FROM device_types WHERE id = $1 FOR UPDATE").bind(id).execute(&mut *tx).await?;
    let before = get_in(&mut tx, id).await?;
    sqlx::query("UPDATE device_types SET slug = $2, name = $3, description = $4 WHERE id = $1")
        .bind(id)
        .bind(update.slug.as_str())
        .bind(&update.name)
        .bind(&update.description)
        .execute(&mut *tx)
        .await
        .map_err(conflict(&before.org, &update.slug))?;
    store_properties(&mut tx, id, &update.properties).await?;
    let things: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM things WHERE device_type_id = $1").bind(id).fetch_all(&mut *tx).await?;
    let datastreams_created = add_missing_datastreams(&mut tx, &things).await?;
    let after = get_in(&mut tx, id).await?;
    let org_id = org_of_in(&mut tx, id).await?;
    let change = AdminChange::new("device_type.update", "device_type", id, org_id);
    audit::record_change(&mut tx, actor, &change.states(Some(&before), Some(&after))).await?;
    tx.commit().await?;
    Ok(UpdatedDeviceType { device_type: after, datastreams_created })
}

async fn org_of_in(tx: &mut Transaction<'_, Postgres>, id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT org_id FROM device_types WHERE id = $1").bind(id).fetch_one(&mut **tx).await
}

/// Deletes a type no thing uses (`Conflict` while things do); audited as
/// `device_type.delete`.
pub async fn delete(pool: &PgPool, id: i64, actor: &Actor) -> Result<(), RegistryError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT id FROM device_types WHERE id = $1 FOR UPDATE").bind(id).execute(&mut *tx).await?;
    let before = get_in(&mut tx, id).await?;
    if before.things > 0 {
        return Err(RegistryError::InUse(format!(
            "device type {}/{} is the type of {} thing(s); give them another type first",
            before.org, before.slug, before.things
        )));
    }
    let org_id = org_of_in(&mut tx, id).await?;
    sqlx::query("DELETE FROM device_types WHERE id = $1").bind(id).execute(&mut *tx).await?;
    let change = AdminChange::new("device_type.delete", "device_type", id, org_id);
    audit::record_change(&mut tx, actor, &change.states(Some(&before), None::<&DeviceType>)).await?;
    tx.commit().await?;
    Ok(())
}
