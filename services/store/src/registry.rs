//! The registry: organisations, things and datastreams, with their SQL.
//!
//! Ingest looks datastreams up by their natural key ([`DatastreamKey`]); the
//! API creates and lists them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row};

use hoheit_domain::policy::OrgKind;
use hoheit_domain::{DatastreamId, DatastreamKey, Slug, Unit};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Organisation {
    pub id: i64,
    pub slug: Slug,
    pub name: String,
    pub kind: OrgKind,
    /// The municipality a department or municipal company belongs to.
    pub parent: Option<Slug>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganisation {
    pub slug: Slug,
    pub name: String,
    /// Default: municipality.
    #[serde(default)]
    pub kind: Option<OrgKind>,
    /// Required for departments and municipal companies: their municipality.
    #[serde(default)]
    pub parent: Option<Slug>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Thing {
    pub id: i64,
    pub org: Slug,
    pub slug: Slug,
    pub name: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewThing {
    pub org: Slug,
    pub slug: Slug,
    pub name: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// A datastream as the API lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Datastream {
    pub id: DatastreamId,
    pub org: Slug,
    pub thing: Slug,
    pub property: Slug,
    pub name: String,
    pub unit: Option<String>,
    /// Time of the newest stored reading, if any.
    pub latest_time: Option<DateTime<Utc>>,
    /// Value of the newest stored reading, if any.
    pub latest_value: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDatastream {
    pub org: Slug,
    pub thing: Slug,
    pub property: Slug,
    pub name: String,
    pub unit: Option<Unit>,
}

/// What ingest needs to know about a datastream to check a reading.
#[derive(Debug, Clone, PartialEq)]
pub struct DatastreamRef {
    pub id: DatastreamId,
    pub unit: Option<Unit>,
}

fn check_name(name: &str) -> Result<(), RegistryError> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(RegistryError::Invalid { field: "name", reason: "must be 1 to 200 characters".into() });
    }
    Ok(())
}

pub async fn create_organisation(pool: &PgPool, new: &NewOrganisation) -> Result<Organisation, RegistryError> {
    check_name(&new.name)?;
    let kind = new.kind.unwrap_or(OrgKind::Municipality);
    let needs_parent = matches!(kind, OrgKind::Department | OrgKind::MunicipalCompany);
    if needs_parent != new.parent.is_some() {
        let reason = if needs_parent {
            "departments and municipal companies name their municipality as parent"
        } else {
            "only departments and municipal companies have a parent"
        };
        return Err(RegistryError::Invalid { field: "parent", reason: reason.into() });
    }
    let parent_id: Option<i64> = match &new.parent {
        None => None,
        Some(parent) => Some(
            sqlx::query("SELECT id FROM organisations WHERE slug = $1 AND kind = 'municipality'")
                .bind(parent.as_str())
                .fetch_optional(pool)
                .await?
                .ok_or_else(|| RegistryError::NotFound(format!("municipality {parent}")))?
                .get("id"),
        ),
    };
    let row = sqlx::query(
        "INSERT INTO organisations (slug, name, kind, parent_id) VALUES ($1, $2, $3, $4) RETURNING id, created_at",
    )
    .bind(new.slug.as_str())
    .bind(&new.name)
    .bind(kind.as_str())
    .bind(parent_id)
    .fetch_one(pool)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            RegistryError::Conflict(format!("organisation {}", new.slug))
        } else {
            e.into()
        }
    })?;
    Ok(Organisation {
        id: row.get("id"),
        slug: new.slug.clone(),
        name: new.name.clone(),
        kind,
        parent: new.parent.clone(),
        created_at: row.get("created_at"),
    })
}

pub async fn create_thing(pool: &PgPool, new: &NewThing) -> Result<Thing, RegistryError> {
    check_name(&new.name)?;
    if new.latitude.is_some_and(|v| !(-90.0..=90.0).contains(&v)) {
        return Err(RegistryError::Invalid { field: "latitude", reason: "must be between -90 and 90".into() });
    }
    if new.longitude.is_some_and(|v| !(-180.0..=180.0).contains(&v)) {
        return Err(RegistryError::Invalid { field: "longitude", reason: "must be between -180 and 180".into() });
    }
    let row = sqlx::query(
        "INSERT INTO things (org_id, slug, name, latitude, longitude)
         SELECT id, $2, $3, $4, $5 FROM organisations WHERE slug = $1
         RETURNING id",
    )
    .bind(new.org.as_str())
    .bind(new.slug.as_str())
    .bind(&new.name)
    .bind(new.latitude)
    .bind(new.longitude)
    .fetch_optional(pool)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            RegistryError::Conflict(format!("thing {}/{}", new.org, new.slug))
        } else {
            e.into()
        }
    })?
    .ok_or_else(|| RegistryError::NotFound(format!("organisation {}", new.org)))?;
    Ok(Thing {
        id: row.get("id"),
        org: new.org.clone(),
        slug: new.slug.clone(),
        name: new.name.clone(),
        latitude: new.latitude,
        longitude: new.longitude,
    })
}

pub async fn create_datastream(pool: &PgPool, new: &NewDatastream) -> Result<Datastream, RegistryError> {
    check_name(&new.name)?;
    let row = sqlx::query(
        "INSERT INTO datastreams (thing_id, property, name, unit)
         SELECT t.id, $3, $4, $5 FROM things t JOIN organisations o ON o.id = t.org_id
         WHERE o.slug = $1 AND t.slug = $2
         RETURNING id",
    )
    .bind(new.org.as_str())
    .bind(new.thing.as_str())
    .bind(new.property.as_str())
    .bind(&new.name)
    .bind(new.unit.as_ref().map(Unit::as_str))
    .fetch_optional(pool)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            RegistryError::Conflict(format!("datastream {}/{}/{}", new.org, new.thing, new.property))
        } else {
            e.into()
        }
    })?
    .ok_or_else(|| RegistryError::NotFound(format!("thing {}/{}", new.org, new.thing)))?;
    Ok(Datastream {
        id: DatastreamId(row.get("id")),
        org: new.org.clone(),
        thing: new.thing.clone(),
        property: new.property.clone(),
        name: new.name.clone(),
        unit: new.unit.as_ref().map(|u| u.as_str().to_owned()),
        latest_time: None,
        latest_value: None,
    })
}

const DATASTREAM_SELECT: &str = "SELECT d.id, o.slug AS org, t.slug AS thing, d.property, d.name, d.unit,
        latest.time AS latest_time, latest.value AS latest_value
     FROM datastreams d JOIN things t ON t.id = d.thing_id JOIN organisations o ON o.id = t.org_id
     LEFT JOIN LATERAL (
        SELECT ob.time, ob.value FROM observations ob WHERE ob.datastream_id = d.id ORDER BY ob.time DESC LIMIT 1
     ) latest ON true";

fn datastream_from_row(row: &sqlx::postgres::PgRow) -> Result<Datastream, RegistryError> {
    // Stored slugs were validated on the way in; a failure here means the
    // table was edited by hand, which deserves an error rather than a panic.
    let slug = |column: &'static str| -> Result<Slug, RegistryError> {
        Slug::parse(column, row.get::<&str, _>(column))
            .map_err(|e| RegistryError::Invalid { field: column, reason: e.to_string() })
    };
    Ok(Datastream {
        id: DatastreamId(row.get("id")),
        org: slug("org")?,
        thing: slug("thing")?,
        property: slug("property")?,
        name: row.get("name"),
        unit: row.get("unit"),
        latest_time: row.get("latest_time"),
        latest_value: row.get("latest_value"),
    })
}

/// Every datastream, ordered by id.
/// Where each datastream is: its thing's name and position (latitude,
/// longitude), by datastream id; one query for all of them.
pub async fn places(
    pool: &PgPool,
) -> Result<std::collections::HashMap<i64, (String, Option<f64>, Option<f64>)>, RegistryError> {
    let rows = sqlx::query(
        "SELECT d.id, t.name, t.latitude, t.longitude FROM datastreams d JOIN things t ON t.id = d.thing_id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(|r| (r.get("id"), (r.get("name"), r.get("latitude"), r.get("longitude")))).collect())
}

pub async fn list_datastreams(pool: &PgPool) -> Result<Vec<Datastream>, RegistryError> {
    let rows = sqlx::query(&format!("{DATASTREAM_SELECT} ORDER BY d.id")).fetch_all(pool).await?;
    rows.iter().map(datastream_from_row).collect()
}

pub async fn get_datastream(pool: &PgPool, id: DatastreamId) -> Result<Datastream, RegistryError> {
    let row = sqlx::query(&format!("{DATASTREAM_SELECT} WHERE d.id = $1"))
        .bind(id.0)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("datastream {id}")))?;
    datastream_from_row(&row)
}

/// Looks one datastream up by its natural key.
pub async fn lookup(pool: &PgPool, key: &DatastreamKey) -> Result<Option<DatastreamRef>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT d.id, d.unit FROM datastreams d JOIN things t ON t.id = d.thing_id
         JOIN organisations o ON o.id = t.org_id
         WHERE o.slug = $1 AND t.slug = $2 AND d.property = $3",
    )
    .bind(key.org.as_str())
    .bind(key.thing.as_str())
    .bind(key.property.as_str())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| DatastreamRef {
        id: DatastreamId(row.get("id")),
        unit: row.get::<Option<&str>, _>("unit").and_then(|u| Unit::parse(u).ok()),
    }))
}

/// Every datastream's key and reference, for warming ingest's cache.
pub async fn load_all(pool: &PgPool) -> Result<Vec<(DatastreamKey, DatastreamRef)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT d.id, d.unit, o.slug AS org, t.slug AS thing, d.property FROM datastreams d
         JOIN things t ON t.id = d.thing_id JOIN organisations o ON o.id = t.org_id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let key = DatastreamKey {
                org: Slug::parse("organisation", row.get("org")).ok()?,
                thing: Slug::parse("thing", row.get("thing")).ok()?,
                property: Slug::parse("property", row.get("property")).ok()?,
            };
            let unit = row.get::<Option<&str>, _>("unit").and_then(|u| Unit::parse(u).ok());
            Some((key, DatastreamRef { id: DatastreamId(row.get("id")), unit }))
        })
        .collect())
}

/// An organisation's id and kind by slug.
pub async fn organisation_id(pool: &PgPool, slug: &Slug) -> Result<i64, RegistryError> {
    sqlx::query("SELECT id FROM organisations WHERE slug = $1")
        .bind(slug.as_str())
        .fetch_optional(pool)
        .await?
        .map(|r| r.get("id"))
        .ok_or_else(|| RegistryError::NotFound(format!("organisation {slug}")))
}

/// The organisation that owns a thing's datastream (through the thing).
pub async fn datastream_org(pool: &PgPool, id: DatastreamId) -> Result<i64, RegistryError> {
    sqlx::query("SELECT t.org_id FROM datastreams d JOIN things t ON t.id = d.thing_id WHERE d.id = $1")
        .bind(id.0)
        .fetch_optional(pool)
        .await?
        .map(|r| r.get("org_id"))
        .ok_or_else(|| RegistryError::NotFound(format!("datastream {id}")))
}
