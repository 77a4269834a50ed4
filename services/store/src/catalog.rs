//! What the open data catalog (DCAT-AP.de) says about each open dataset,
//! with its SQL: the dataset's metadata, its owner organisation, the
//! bounding box of its things and the time of its first and last reading.
//!
//! Only datasets classified `open` are listed here; the catalog is public.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};

use crate::datasets::{self, Dataset};
use crate::registry::RegistryError;
use hoheit_domain::policy::Classification;

/// A bounding box in WGS 84 degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    pub min_lon: f64,
    pub min_lat: f64,
    pub max_lon: f64,
    pub max_lat: f64,
}

/// One open dataset as the catalog describes it.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub dataset: Dataset,
    /// Name of the owner organisation (the publisher).
    pub owner_name: String,
    /// The things' positions; `None` when no thing has a position.
    pub bbox: Option<BoundingBox>,
    /// First and last reading; `None` when there are none.
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    /// Observed properties and thing names (keywords).
    pub properties: Vec<String>,
}

/// Every open dataset with its catalog facts, ordered by id.
pub async fn open_entries(pool: &PgPool) -> Result<Vec<CatalogEntry>, RegistryError> {
    let mut out = Vec::new();
    for dataset in datasets::list(pool).await? {
        if dataset.classification == Classification::Open {
            out.push(entry(pool, dataset).await?);
        }
    }
    Ok(out)
}

/// The open dataset with this slug, if there is one.
pub async fn open_dataset(pool: &PgPool, slug: &str) -> Result<Option<Dataset>, RegistryError> {
    Ok(datasets::list(pool).await?.into_iter().find(|d| d.slug == slug && d.classification == Classification::Open))
}

/// The publisher's name and the extent of the things' positions.
#[derive(FromRow)]
struct OwnerAndExtent {
    owner_name: String,
    min_lon: Option<f64>,
    min_lat: Option<f64>,
    max_lon: Option<f64>,
    max_lat: Option<f64>,
}

/// The times of the first and the last reading.
#[derive(FromRow)]
struct Span {
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

async fn entry(pool: &PgPool, dataset: Dataset) -> Result<CatalogEntry, RegistryError> {
    let row: OwnerAndExtent = sqlx::query_as(
        "SELECT o.name AS owner_name,
                (SELECT min(t.longitude) FROM things t JOIN datastreams d ON d.thing_id = t.id WHERE d.dataset_id = $1) AS min_lon,
                (SELECT min(t.latitude) FROM things t JOIN datastreams d ON d.thing_id = t.id WHERE d.dataset_id = $1) AS min_lat,
                (SELECT max(t.longitude) FROM things t JOIN datastreams d ON d.thing_id = t.id WHERE d.dataset_id = $1) AS max_lon,
                (SELECT max(t.latitude) FROM things t JOIN datastreams d ON d.thing_id = t.id WHERE d.dataset_id = $1) AS max_lat
         FROM organisations o WHERE o.id = $2",
    )
    .bind(dataset.id)
    .bind(dataset.owner_org_id)
    .fetch_one(pool)
    .await?;
    let bbox = match (row.min_lon, row.min_lat, row.max_lon, row.max_lat) {
        (Some(min_lon), Some(min_lat), Some(max_lon), Some(max_lat)) => {
            Some(BoundingBox { min_lon, min_lat, max_lon, max_lat })
        }
        _ => None,
    };
    // Per datastream, so the first reading is one probe of the (datastream_id,
    // time) index; the last is the datastream's latest row.
    let span: Span = sqlx::query_as(
        "SELECT min(f.first) AS first, max(l.time) AS last FROM datastreams d
            CROSS JOIN LATERAL (SELECT (SELECT time FROM observations o WHERE o.datastream_id = d.id ORDER BY time LIMIT 1) AS first) f
            LEFT JOIN datastream_latest l ON l.datastream_id = d.id
         WHERE d.dataset_id = $1",
    )
    .bind(dataset.id)
    .fetch_one(pool)
    .await?;
    let properties: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT d.property AS word FROM datastreams d WHERE d.dataset_id = $1
         UNION SELECT DISTINCT t.name FROM things t JOIN datastreams d ON d.thing_id = t.id WHERE d.dataset_id = $1
         ORDER BY 1",
    )
    .bind(dataset.id)
    .fetch_all(pool)
    .await?;
    Ok(CatalogEntry { owner_name: row.owner_name, bbox, first: span.first, last: span.last, properties, dataset })
}

/// The catalog's publisher: the (first) municipality on the platform, as (slug, name).
pub async fn publisher(pool: &PgPool) -> Result<Option<(String, String)>, RegistryError> {
    Ok(sqlx::query_as("SELECT slug, name FROM organisations WHERE kind = 'municipality' ORDER BY id LIMIT 1")
        .fetch_optional(pool)
        .await?)
}
