//! A small seeded municipality for the standards tests (OpenAPI fuzzing,
//! the open data catalog): a town with a department and a third party, two
//! things with coordinates, an open traffic dataset (with readings), an open
//! environment dataset and an internal one, and an API key of the department.

use anyhow::Context;
use hoheit_domain::{DatastreamId, Micros, Reading};
use serde_json::json;
use sqlx::PgPool;

use crate::ApiClient;

/// What [`small_town`] created.
pub struct SmallTown {
    /// Dataset ids: `verkehr` (open, traffic), `luft` (open, environment), `intern` (internal).
    pub verkehr: i64,
    pub luft: i64,
    pub intern: i64,
    /// Datastream ids: traffic counts (in `verkehr`), temperature (in `luft`), load (in `intern`).
    pub counts: i64,
    pub temperature: i64,
    pub load: i64,
    /// Readings stored in the traffic datastream.
    pub readings: usize,
    /// An API key of a reader of the department.
    pub department_key: String,
}

async fn dataset(
    api: &ApiClient,
    slug: &str,
    class: &str,
    theme: &str,
    title: &str,
    license: &str,
) -> anyhow::Result<i64> {
    let body = api
        .post_ok(
            "/v1/admin/datasets",
            json!({"slug": slug, "owner": "stadt", "title": title,
                   "description": format!("{title}: Messwerte der Stadt, laufend aktualisiert."),
                   "steward_contact": "opendata@stadt.example", "classification": class, "license": license,
                   "purpose": "Verkehrs- und Umweltplanung", "retention_days": 3650, "theme": theme}),
        )
        .await?;
    body["id"].as_i64().context("dataset id")
}

/// Seeds the town through the API (as the operator) and readings through the database.
pub async fn small_town(api: &ApiClient, pool: &PgPool) -> anyhow::Result<SmallTown> {
    api.organisation("stadt", "municipality", None).await?;
    api.organisation("amt-verkehr", "department", Some("stadt")).await?;
    api.organisation("movi", "third_party", None).await?;
    for (slug, lat, lon) in [("zaehler-1", 52.8301, 13.8203), ("zaehler-2", 52.8402, 13.8451)] {
        api.post_ok(
            "/v1/admin/things",
            json!({"org": "stadt", "slug": slug, "name": format!("Zählstelle {slug}"), "latitude": lat, "longitude": lon}),
        )
        .await?;
    }
    let stream = |thing: &str, property: &str, unit: &str| json!({"org": "stadt", "thing": thing, "property": property, "name": format!("{property} at {thing}"), "unit": unit});
    let counts = api.post_ok("/v1/admin/datastreams", stream("zaehler-1", "vehicles", "count")).await?["id"]
        .as_i64()
        .context("id")?;
    let counts2 = api.post_ok("/v1/admin/datastreams", stream("zaehler-2", "vehicles", "count")).await?["id"]
        .as_i64()
        .context("id")?;
    let temperature = api.post_ok("/v1/admin/datastreams", stream("zaehler-2", "temperature", "Cel")).await?["id"]
        .as_i64()
        .context("id")?;
    let load =
        api.post_ok("/v1/admin/datastreams", stream("zaehler-1", "load", "%")).await?["id"].as_i64().context("id")?;
    let by = "http://dcat-ap.de/def/licenses/dl-by-de/2.0";
    let zero = "http://dcat-ap.de/def/licenses/dl-zero-de/2.0";
    let verkehr = dataset(api, "verkehrszaehlung", "open", "transport", "Verkehrszählung", by).await?;
    let luft = dataset(api, "lufttemperatur", "open", "environment", "Lufttemperatur", zero).await?;
    let intern = dataset(api, "netzlast", "internal", "energy", "Netzlast", by).await?;
    for (dataset, stream) in [(verkehr, counts), (verkehr, counts2), (luft, temperature), (intern, load)] {
        api.post_ok(&format!("/v1/admin/datasets/{dataset}/datastreams"), json!({"datastream_id": stream})).await?;
    }
    // 48 readings, one every 15 minutes, ending an hour ago.
    let end = (Micros::now().0 / 900_000_000 - 4) * 900_000_000;
    let rows: Vec<Reading> = (0..48)
        .map(|i| Reading {
            datastream: DatastreamId(counts),
            time: Micros(end - i * 900_000_000),
            value: (i % 7) as f64,
        })
        .chain((0..4).map(|i| Reading {
            datastream: DatastreamId(temperature),
            time: Micros(end - i * 3_600_000_000),
            value: 4.5 + i as f64,
        }))
        .chain((0..4).map(|i| Reading {
            datastream: DatastreamId(load),
            time: Micros(end - i * 900_000_000),
            value: 61.0,
        }))
        .collect();
    hoheit_store::observations::insert(&mut *pool.acquire().await?, &rows).await?;
    let department_key = api.principal_key("amt-verkehr", "verkehr-dashboard", "reader").await?;
    Ok(SmallTown { verkehr, luft, intern, counts, temperature, load, readings: 48, department_key })
}
