//! The registry: organisations, things and datastreams, with their SQL.
//!
//! Ingest looks datastreams up by their natural key ([`DatastreamKey`]); the
//! API creates and lists them; the operators' tool lists organisations,
//! changes an existing organisation's kind and parent (audited like every
//! administrative change) and finds the datastreams of a thing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgExecutor, PgPool};

use crate::audit::{self, Actor, AdminChange};
use hoheit_domain::policy::OrgKind;
use hoheit_domain::range::PlausibleRange;
use hoheit_domain::write::WriteTarget;
use hoheit_domain::{DatastreamId, DatastreamKey, Slug, Unit};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    Conflict(String),
    /// A change the object's current state does not allow (the sentence says why).
    #[error("{0}")]
    InUse(String),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

/// A stored value that does not parse. Stored values were validated on the
/// way in; a failure means the table was edited by hand, which deserves an
/// error rather than a panic.
fn stored<T, E: std::fmt::Display>(field: &'static str, parsed: Result<T, E>) -> Result<T, RegistryError> {
    parsed.map_err(|e| RegistryError::Invalid { field, reason: format!("stored value is not valid: {e}") })
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
    /// The device's identity outside Hoheit (LoRaWAN DevEUI, sensor.community
    /// `esp8266-<chip id>`, SenML base name), lower case.
    pub external_id: Option<String>,
    /// The device type (of the thing's organisation) whose datastreams the thing has.
    #[serde(rename = "type")]
    pub device_type: Option<Slug>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewThing {
    pub org: Slug,
    pub slug: Slug,
    pub name: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// The device's identity outside Hoheit: a LoRaWAN DevEUI
    /// (`70b3d57ed0001234`), a sensor.community chip (`esp8266-12345`), a SenML
    /// base name (`urn:dev:ow:10e2073a01080063`); stored in lower case.
    #[serde(default)]
    pub external_id: Option<String>,
    /// A device type of the organisation: the thing gets a datastream per property of the type.
    #[serde(default, rename = "type")]
    pub device_type: Option<Slug>,
}

/// A device's external id as stored: trimmed, lower case, 1 to 128 visible
/// ASCII characters (a SenML base name's trailing separator is dropped).
pub fn normalise_external_id(raw: &str) -> Result<String, RegistryError> {
    let id = raw.trim().trim_end_matches([':', '/', '.']).to_ascii_lowercase();
    if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RegistryError::Invalid {
            field: "external_id",
            reason: "must be 1 to 128 visible ASCII characters (a DevEUI, a chip id, a URN)".into(),
        });
    }
    Ok(id)
}

/// A datastream as the API lists it (a row of [`DATASTREAM_SELECT`]).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, FromRow)]
pub struct Datastream {
    #[sqlx(try_from = "i64")]
    pub id: DatastreamId,
    #[sqlx(try_from = "String")]
    pub org: Slug,
    #[sqlx(try_from = "String")]
    pub thing: Slug,
    #[sqlx(try_from = "String")]
    pub property: Slug,
    pub name: String,
    pub unit: Option<String>,
    /// Time of the newest stored reading, if any.
    pub latest_time: Option<DateTime<Utc>>,
    /// Value of the newest stored reading, if any.
    pub latest_value: Option<f64>,
    /// The datastream's own plausible range (absent: its type's, if any).
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Seconds between readings it is expected to report at (absent: learned
    /// from its readings; see `GET /v1/datastreams/{id}/quality`).
    pub expected_interval_secs: Option<i32>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDatastream {
    pub org: Slug,
    pub thing: Slug,
    pub property: Slug,
    pub name: String,
    pub unit: Option<Unit>,
    /// The plausible range: a reading outside is a dead letter `out_of_range`
    /// (absent: the range of the thing's type's property, if any).
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
}

/// What ingest needs to know about a datastream to check a reading.
#[derive(Debug, Clone, PartialEq)]
pub struct DatastreamRef {
    pub id: DatastreamId,
    pub unit: Option<Unit>,
    /// Whose it is: what a write into it is decided on.
    pub target: WriteTarget,
    /// The effective plausible range: the datastream's own, else its type's.
    pub range: PlausibleRange,
}

fn check_name(name: &str) -> Result<(), RegistryError> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(RegistryError::Invalid { field: "name", reason: "must be 1 to 200 characters".into() });
    }
    Ok(())
}

/// Departments and municipal companies name their municipality as parent,
/// the others have none.
fn check_parent(kind: OrgKind, parent: Option<&Slug>) -> Result<(), RegistryError> {
    let needs_parent = matches!(kind, OrgKind::Department | OrgKind::MunicipalCompany);
    if needs_parent != parent.is_some() {
        let reason = if needs_parent {
            "departments and municipal companies name their municipality as parent"
        } else {
            "only departments and municipal companies have a parent"
        };
        return Err(RegistryError::Invalid { field: "parent", reason: reason.into() });
    }
    Ok(())
}

/// The id of the municipality `parent`, if one is named.
async fn parent_id<'e>(executor: impl PgExecutor<'e>, parent: Option<&Slug>) -> Result<Option<i64>, RegistryError> {
    let Some(parent) = parent else { return Ok(None) };
    sqlx::query_scalar("SELECT id FROM organisations WHERE slug = $1 AND kind = 'municipality'")
        .bind(parent.as_str())
        .fetch_optional(executor)
        .await?
        .map(Some)
        .ok_or_else(|| RegistryError::NotFound(format!("municipality {parent}")))
}

pub async fn create_organisation(pool: &PgPool, new: &NewOrganisation) -> Result<Organisation, RegistryError> {
    check_name(&new.name)?;
    let kind = new.kind.unwrap_or(OrgKind::Municipality);
    check_parent(kind, new.parent.as_ref())?;
    let parent_id = parent_id(pool, new.parent.as_ref()).await?;
    let (id, created_at): (i64, DateTime<Utc>) = sqlx::query_as(
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
        id,
        slug: new.slug.clone(),
        name: new.name.clone(),
        kind,
        parent: new.parent.clone(),
        created_at,
    })
}

/// An organisation as stored, with its parent's slug.
#[derive(FromRow)]
struct OrganisationRow {
    id: i64,
    slug: String,
    name: String,
    #[sqlx(try_from = "String")]
    kind: OrgKind,
    parent: Option<String>,
    created_at: DateTime<Utc>,
}

const ORGANISATION_SELECT: &str = "SELECT o.id, o.slug, o.name, o.kind, p.slug AS parent, o.created_at
     FROM organisations o LEFT JOIN organisations p ON p.id = o.parent_id";

impl TryFrom<OrganisationRow> for Organisation {
    type Error = RegistryError;
    fn try_from(row: OrganisationRow) -> Result<Self, RegistryError> {
        Ok(Organisation {
            id: row.id,
            slug: stored("slug", Slug::parse("organisation", &row.slug))?,
            name: row.name,
            kind: row.kind,
            parent: row.parent.map(|p| stored("parent", Slug::parse("organisation", &p))).transpose()?,
            created_at: row.created_at,
        })
    }
}

/// Every organisation, ordered by id.
pub async fn list_organisations(pool: &PgPool) -> Result<Vec<Organisation>, RegistryError> {
    let rows: Vec<OrganisationRow> =
        sqlx::query_as(&format!("{ORGANISATION_SELECT} ORDER BY o.id")).fetch_all(pool).await?;
    rows.into_iter().map(Organisation::try_from).collect()
}

/// One organisation by slug, if it exists.
pub async fn organisation(pool: &PgPool, slug: &Slug) -> Result<Option<Organisation>, RegistryError> {
    let row: Option<OrganisationRow> = sqlx::query_as(&format!("{ORGANISATION_SELECT} WHERE o.slug = $1"))
        .bind(slug.as_str())
        .fetch_optional(pool)
        .await?;
    row.map(Organisation::try_from).transpose()
}

/// Changes an existing organisation's kind and parent, with the rules of
/// [`create_organisation`]: departments and municipal companies name their
/// municipality as parent, the others have none. A municipality that others
/// name as parent cannot stop being one. Audited as `organisation.update`.
pub async fn set_organisation_kind(
    pool: &PgPool,
    slug: &Slug,
    kind: OrgKind,
    parent: Option<&Slug>,
    actor: &Actor,
) -> Result<Organisation, RegistryError> {
    check_parent(kind, parent)?;
    if parent == Some(slug) {
        return Err(RegistryError::Invalid {
            field: "parent",
            reason: "an organisation cannot be its own parent".into(),
        });
    }
    let mut tx = pool.begin().await?;
    let before: Organisation =
        sqlx::query_as::<_, OrganisationRow>(&format!("{ORGANISATION_SELECT} WHERE o.slug = $1 FOR UPDATE OF o"))
            .bind(slug.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("organisation {slug}")))?
            .try_into()?;
    let id = before.id;
    let parent_id = parent_id(&mut *tx, parent).await?;
    if kind != OrgKind::Municipality {
        let children: i64 = sqlx::query_scalar("SELECT count(*) FROM organisations WHERE parent_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
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
    let after: Organisation = sqlx::query_as::<_, OrganisationRow>(&format!("{ORGANISATION_SELECT} WHERE o.id = $1"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?
        .try_into()?;
    let change = AdminChange::new("organisation.update", "organisation", id, id);
    audit::record_change(&mut tx, actor, &change.states(Some(&before), Some(&after))).await?;
    tx.commit().await?;
    Ok(after)
}

/// Creates a thing; with a type, also the datastreams of the type's
/// properties (in one transaction).
pub async fn create_thing(pool: &PgPool, new: &NewThing) -> Result<Thing, RegistryError> {
    check_name(&new.name)?;
    check_position(new.latitude, new.longitude)?;
    let external_id = new.external_id.as_deref().map(normalise_external_id).transpose()?;
    let mut tx = pool.begin().await?;
    let org_id = organisation_id(&mut *tx, &new.org).await?;
    let type_id = match &new.device_type {
        Some(slug) => Some(crate::device_types::id_of(&mut *tx, org_id, slug).await?),
        None => None,
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO things (org_id, slug, name, latitude, longitude, external_id, device_type_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(org_id)
    .bind(new.slug.as_str())
    .bind(&new.name)
    .bind(new.latitude)
    .bind(new.longitude)
    .bind(&external_id)
    .bind(type_id)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| thing_conflict(e, &new.org, &new.slug, external_id.as_deref()))?;
    crate::device_types::add_missing_datastreams(&mut tx, &[id]).await?;
    tx.commit().await?;
    Ok(Thing {
        id,
        org: new.org.clone(),
        slug: new.slug.clone(),
        name: new.name.clone(),
        latitude: new.latitude,
        longitude: new.longitude,
        external_id,
        device_type: new.device_type.clone(),
    })
}

/// Latitude and longitude within their ranges.
pub(crate) fn check_position(latitude: Option<f64>, longitude: Option<f64>) -> Result<(), RegistryError> {
    if latitude.is_some_and(|v| !(-90.0..=90.0).contains(&v)) {
        return Err(RegistryError::Invalid { field: "latitude", reason: "must be between -90 and 90".into() });
    }
    if longitude.is_some_and(|v| !(-180.0..=180.0).contains(&v)) {
        return Err(RegistryError::Invalid { field: "longitude", reason: "must be between -180 and 180".into() });
    }
    Ok(())
}

/// A unique violation on things as the conflict it is.
pub(crate) fn thing_conflict(e: sqlx::Error, org: &Slug, slug: &Slug, external_id: Option<&str>) -> RegistryError {
    match (&e, external_id) {
        (sqlx::Error::Database(db), Some(external)) if db.constraint() == Some("things_external_id") => {
            RegistryError::Conflict(format!("a thing of {org} with external id {external}"))
        }
        _ if is_unique_violation(&e) => RegistryError::Conflict(format!("thing {org}/{slug}")),
        _ => e.into(),
    }
}

pub async fn create_datastream(pool: &PgPool, new: &NewDatastream) -> Result<Datastream, RegistryError> {
    check_name(&new.name)?;
    check_range(new.min, new.max)?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO datastreams (thing_id, property, name, unit, min, max)
         SELECT t.id, $3, $4, $5, $6, $7 FROM things t JOIN organisations o ON o.id = t.org_id
         WHERE o.slug = $1 AND t.slug = $2
         RETURNING id",
    )
    .bind(new.org.as_str())
    .bind(new.thing.as_str())
    .bind(new.property.as_str())
    .bind(&new.name)
    .bind(new.unit.as_ref().map(Unit::as_str))
    .bind(new.min)
    .bind(new.max)
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
        id: DatastreamId(id),
        org: new.org.clone(),
        thing: new.thing.clone(),
        property: new.property.clone(),
        name: new.name.clone(),
        unit: new.unit.as_ref().map(|u| u.as_str().to_owned()),
        latest_time: None,
        latest_value: None,
        min: new.min,
        max: new.max,
        expected_interval_secs: None,
    })
}

pub(crate) fn check_range(min: Option<f64>, max: Option<f64>) -> Result<PlausibleRange, RegistryError> {
    PlausibleRange::new(min, max).map_err(|e| RegistryError::Invalid { field: "range", reason: e.to_string() })
}

/// The columns of a [`Datastream`].
const DATASTREAM_SELECT: &str = "SELECT d.id, o.slug AS org, t.slug AS thing, d.property, d.name, d.unit,
        latest.time AS latest_time, latest.value AS latest_value, d.min, d.max,
        d.expected_interval_secs
     FROM datastreams d JOIN things t ON t.id = d.thing_id JOIN organisations o ON o.id = t.org_id
     LEFT JOIN datastream_latest latest ON latest.datastream_id = d.id";

/// Where a datastream is: its thing's name and position.
#[derive(FromRow)]
struct Place {
    id: i64,
    name: String,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// Where each datastream is: its thing's name and position (latitude,
/// longitude), by datastream id; one query for all of them.
pub async fn places(
    pool: &PgPool,
) -> Result<std::collections::HashMap<i64, (String, Option<f64>, Option<f64>)>, RegistryError> {
    let rows: Vec<Place> = sqlx::query_as(
        "SELECT d.id, t.name, t.latitude, t.longitude FROM datastreams d JOIN things t ON t.id = d.thing_id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|p| (p.id, (p.name, p.latitude, p.longitude))).collect())
}

/// Every datastream, ordered by id.
pub async fn list_datastreams(pool: &PgPool) -> Result<Vec<Datastream>, RegistryError> {
    Ok(sqlx::query_as(&format!("{DATASTREAM_SELECT} ORDER BY d.id")).fetch_all(pool).await?)
}

pub async fn get_datastream(pool: &PgPool, id: DatastreamId) -> Result<Datastream, RegistryError> {
    sqlx::query_as(&format!("{DATASTREAM_SELECT} WHERE d.id = $1"))
        .bind(id.0)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("datastream {id}")))
}

/// The ids of every datastream of a thing, ordered by id.
pub async fn datastreams_of_thing(pool: &PgPool, org: &Slug, thing: &Slug) -> Result<Vec<DatastreamId>, RegistryError> {
    let thing_id: i64 = sqlx::query_scalar(
        "SELECT t.id FROM things t JOIN organisations o ON o.id = t.org_id WHERE o.slug = $1 AND t.slug = $2",
    )
    .bind(org.as_str())
    .bind(thing.as_str())
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| RegistryError::NotFound(format!("thing {org}/{thing}")))?;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM datastreams WHERE thing_id = $1 ORDER BY id")
        .bind(thing_id)
        .fetch_all(pool)
        .await?;
    Ok(ids.into_iter().map(DatastreamId).collect())
}

/// A datastream's natural key, unit and owner as stored.
#[derive(FromRow)]
struct KeyRow {
    id: i64,
    unit: Option<String>,
    org: String,
    thing: String,
    property: String,
    org_id: i64,
    thing_id: i64,
    dataset_id: Option<i64>,
    range_min: Option<f64>,
    range_max: Option<f64>,
}

impl KeyRow {
    fn reference(&self) -> DatastreamRef {
        DatastreamRef {
            id: DatastreamId(self.id),
            unit: self.unit.as_deref().and_then(|u| Unit::parse(u).ok()),
            target: WriteTarget { org_id: self.org_id, dataset_id: self.dataset_id, thing_id: self.thing_id },
            // A stored range was checked on the way in; one edited by hand into nonsense checks nothing.
            range: PlausibleRange::new(self.range_min, self.range_max).unwrap_or_default(),
        }
    }

    /// `None` if a stored slug does not parse (the table was edited by hand).
    fn key(&self) -> Option<DatastreamKey> {
        Some(DatastreamKey {
            org: Slug::parse("organisation", &self.org).ok()?,
            thing: Slug::parse("thing", &self.thing).ok()?,
            property: Slug::parse("property", &self.property).ok()?,
        })
    }
}

/// The effective range is the datastream's own when it has one, else the
/// range of its thing's type's property of the same name.
const KEY_SELECT: &str = "SELECT d.id, d.unit, o.slug AS org, t.slug AS thing, d.property,
            t.org_id, t.id AS thing_id, d.dataset_id,
            CASE WHEN d.min IS NULL AND d.max IS NULL THEN tp.min ELSE d.min END AS range_min,
            CASE WHEN d.min IS NULL AND d.max IS NULL THEN tp.max ELSE d.max END AS range_max
     FROM datastreams d JOIN things t ON t.id = d.thing_id JOIN organisations o ON o.id = t.org_id
     LEFT JOIN device_type_properties tp ON tp.device_type_id = t.device_type_id AND tp.property = d.property";

/// Looks one datastream up by its natural key.
pub async fn lookup(pool: &PgPool, key: &DatastreamKey) -> Result<Option<DatastreamRef>, sqlx::Error> {
    let row: Option<KeyRow> =
        sqlx::query_as(&format!("{KEY_SELECT} WHERE o.slug = $1 AND t.slug = $2 AND d.property = $3"))
            .bind(key.org.as_str())
            .bind(key.thing.as_str())
            .bind(key.property.as_str())
            .fetch_optional(pool)
            .await?;
    Ok(row.as_ref().map(KeyRow::reference))
}

/// Looks one datastream up by its id (SensorThings addresses datastreams so).
pub async fn lookup_id(pool: &PgPool, id: DatastreamId) -> Result<Option<(DatastreamKey, DatastreamRef)>, sqlx::Error> {
    let row: Option<KeyRow> =
        sqlx::query_as(&format!("{KEY_SELECT} WHERE d.id = $1")).bind(id.0).fetch_optional(pool).await?;
    Ok(row.and_then(|row| Some((row.key()?, row.reference()))))
}

/// The slug of the thing of `org` whose external id is `external_id`
/// (normalised as stored).
pub async fn thing_by_external_id(pool: &PgPool, org: &Slug, external_id: &str) -> Result<Option<Slug>, sqlx::Error> {
    let Ok(external_id) = normalise_external_id(external_id) else { return Ok(None) };
    let slug: Option<String> = sqlx::query_scalar(
        "SELECT t.slug FROM things t JOIN organisations o ON o.id = t.org_id
         WHERE o.slug = $1 AND t.external_id = $2",
    )
    .bind(org.as_str())
    .bind(&external_id)
    .fetch_optional(pool)
    .await?;
    Ok(slug.and_then(|s| Slug::parse("thing", &s).ok()))
}

/// Every datastream's key and reference, for warming ingest's cache.
pub async fn load_all(pool: &PgPool) -> Result<Vec<(DatastreamKey, DatastreamRef)>, sqlx::Error> {
    let rows: Vec<KeyRow> = sqlx::query_as(KEY_SELECT).fetch_all(pool).await?;
    Ok(rows.iter().filter_map(|row| Some((row.key()?, row.reference()))).collect())
}

/// An organisation's id by slug.
/// A datastream's id with the slug of the organisation owning it.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct OwnedDatastream {
    pub org: String,
    pub datastream_id: i64,
}

/// Every datastream's id with its organisation (for the broker's ACL).
pub async fn datastream_owners(pool: &PgPool) -> Result<Vec<OwnedDatastream>, sqlx::Error> {
    sqlx::query_as(
        "SELECT o.slug AS org, d.id AS datastream_id FROM datastreams d
         JOIN things t ON t.id = d.thing_id JOIN organisations o ON o.id = t.org_id ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
}

pub async fn organisation_id<'e>(executor: impl PgExecutor<'e>, slug: &Slug) -> Result<i64, RegistryError> {
    sqlx::query_scalar("SELECT id FROM organisations WHERE slug = $1")
        .bind(slug.as_str())
        .fetch_optional(executor)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("organisation {slug}")))
}

/// `Some(value)` for a member that is present, `null` included, so that a
/// patch tells "leave it" (absent) from "clear it" (`null`).
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A change of a datastream; absent members stay as they are, `null`
/// clears the unit or a bound.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatastreamPatch {
    #[serde(default)]
    pub name: Option<String>,
    /// Refused (409) once the datastream holds readings: they were checked against the old unit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Unit>)]
    pub unit: Option<Option<Unit>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>)]
    pub min: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>)]
    pub max: Option<Option<f64>>,
    /// Seconds between readings it is expected to report at; `null`: learned from its readings.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>, minimum = 1)]
    pub expected_interval_secs: Option<Option<i32>>,
}

/// The columns a patch may change, as stored.
#[derive(FromRow)]
struct DatastreamColumns {
    name: String,
    unit: Option<String>,
    min: Option<f64>,
    max: Option<f64>,
    expected_interval_secs: Option<i32>,
    org_id: i64,
}

/// Changes a datastream's name, unit or own range; audited as
/// `datastream.update`. A unit change of a datastream that holds readings is
/// refused (`InUse`).
pub async fn patch_datastream(
    pool: &PgPool,
    id: DatastreamId,
    patch: &DatastreamPatch,
    actor: &Actor,
) -> Result<Datastream, RegistryError> {
    if let Some(name) = &patch.name {
        check_name(name)?;
    }
    let mut tx = pool.begin().await?;
    let before: DatastreamColumns = sqlx::query_as(
        "SELECT d.name, d.unit, d.min, d.max, d.expected_interval_secs, t.org_id FROM datastreams d JOIN things t ON t.id = d.thing_id
         WHERE d.id = $1 FOR UPDATE OF d",
    )
    .bind(id.0)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| RegistryError::NotFound(format!("datastream {id}")))?;
    let unit = match &patch.unit {
        Some(unit) => unit.as_ref().map(|u| u.as_str().to_owned()),
        None => before.unit.clone(),
    };
    if unit != before.unit {
        let has_readings: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM observations WHERE datastream_id = $1)")
                .bind(id.0)
                .fetch_one(&mut *tx)
                .await?;
        if has_readings {
            return Err(RegistryError::InUse(format!(
                "datastream {id} holds readings in {:?}; its unit cannot change (register a new datastream for the new unit)",
                before.unit.as_deref().unwrap_or("no unit")
            )));
        }
    }
    let min = patch.min.unwrap_or(before.min);
    let max = patch.max.unwrap_or(before.max);
    check_range(min, max)?;
    let interval = patch.expected_interval_secs.unwrap_or(before.expected_interval_secs);
    if interval.is_some_and(|secs| secs < 1) {
        return Err(RegistryError::Invalid {
            field: "expected_interval_secs",
            reason: "must be at least 1 second (null: learned from the readings)".into(),
        });
    }
    let name = patch.name.clone().unwrap_or_else(|| before.name.clone());
    sqlx::query(
        "UPDATE datastreams SET name = $2, unit = $3, min = $4, max = $5, expected_interval_secs = $6 WHERE id = $1",
    )
    .bind(id.0)
    .bind(&name)
    .bind(&unit)
    .bind(min)
    .bind(max)
    .bind(interval)
    .execute(&mut *tx)
    .await?;
    let after: Datastream =
        sqlx::query_as(&format!("{DATASTREAM_SELECT} WHERE d.id = $1")).bind(id.0).fetch_one(&mut *tx).await?;
    let states = serde_json::json!({"name": before.name, "unit": before.unit, "min": before.min, "max": before.max,
        "expected_interval_secs": before.expected_interval_secs});
    let after_states = serde_json::json!({"name": name, "unit": unit, "min": min, "max": max,
        "expected_interval_secs": interval});
    let mut change = AdminChange::new("datastream.update", "datastream", id.0, before.org_id)
        .states(Some(&states), Some(&after_states));
    change.datastream_id = Some(id.0);
    audit::record_change(&mut tx, actor, &change).await?;
    tx.commit().await?;
    Ok(after)
}

/// The organisation a datastream belongs to (for the permission check).
pub async fn org_of_datastream(pool: &PgPool, id: DatastreamId) -> Result<i64, RegistryError> {
    sqlx::query_scalar("SELECT t.org_id FROM datastreams d JOIN things t ON t.id = d.thing_id WHERE d.id = $1")
        .bind(id.0)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("datastream {id}")))
}

/// The datastreams `ids` (those that exist), ordered by id: one page of a listing.
pub async fn datastreams_by_ids(pool: &PgPool, ids: &[DatastreamId]) -> Result<Vec<Datastream>, RegistryError> {
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    Ok(sqlx::query_as(&format!("{DATASTREAM_SELECT} WHERE d.id = ANY($1) ORDER BY d.id"))
        .bind(ids)
        .fetch_all(pool)
        .await?)
}

/// [`KEY_SELECT`] in byte order of organisation, thing and property slug.
static STREAM_ALL_SELECT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(r#"{KEY_SELECT} ORDER BY o.slug COLLATE "C", t.slug COLLATE "C", d.property COLLATE "C""#)
});

/// Every datastream's key and reference as a stream, ordered by organisation,
/// thing and property slug in byte order (slugs are ASCII, so this is also
/// `str`'s order): ingest builds its compact cache from it row by row instead
/// of holding 300,000 decoded rows at once. Rows whose stored slugs do not
/// parse are left out (as by [`load_all`]).
pub fn stream_all(
    pool: &PgPool,
) -> impl futures::Stream<Item = Result<(DatastreamKey, DatastreamRef), sqlx::Error>> + Send + '_ {
    use futures::StreamExt as _;
    sqlx::query_as::<_, KeyRow>(STREAM_ALL_SELECT.as_str()).fetch(pool).filter_map(|row| async move {
        match row {
            Ok(row) => Some(Ok((row.key()?, row.reference()))),
            Err(error) => Some(Err(error)),
        }
    })
}

/// How many datastreams are registered (to size ingest's cache before loading it).
pub async fn datastream_count(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM datastreams").fetch_one(pool).await
}

/// Per organisation: its number of datastreams and the sums of their ids and
/// of their datasets' ids. A cheap fingerprint of who owns which datastream
/// (a few rows, however many datastreams): the broker's reconcile compares
/// the ACLs in full only when it moved.
pub async fn datastream_ownership_digest(pool: &PgPool) -> Result<Vec<(String, i64, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT o.slug, count(*), sum(d.id)::bigint, coalesce(sum(d.dataset_id), 0)::bigint
         FROM datastreams d JOIN things t ON t.id = d.thing_id JOIN organisations o ON o.id = t.org_id
         GROUP BY o.slug ORDER BY 1",
    )
    .fetch_all(pool)
    .await
}
