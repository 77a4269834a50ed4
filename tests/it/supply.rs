//! Supply grants (supply contracts) against the real brokers and database: a
//! town lets a vendor's publisher keys deliver readings for some things of a
//! dataset over HTTP; the readings are the town's (the vendor reads them only
//! under a read grant); things outside the grant are rejected with
//! `write_denied`; revoking or the grant's end stops the vendor within about
//! a second; creation and revocation are audited and the transparency report
//! lists the contract.

use std::time::Duration;

use chrono::Utc;
use hoheit_tests::{eventually, ApiClient, Platform, TOKEN};
use reqwest::StatusCode;
use serde_json::{json, Value};

const T0: &str = "2026-11-20T00:00:00Z";
const RANGE: &str = "from=2026-11-19T00:00:00Z&to=2026-11-21T00:00:00Z";

/// Pushes one reading with `key` through the API; (status, JSON body).
async fn push(api: &ApiClient, key: &str, path: &str, value: f64) -> anyhow::Result<(StatusCode, Value)> {
    let response = api
        .http
        .post(format!("{}{path}", api.base))
        .header("x-api-key", key)
        .json(&json!({"time": T0, "value": value}))
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

/// Waits (up to 5 s) until pushing answers `code`, as ingest re-reads a key's grants every second.
async fn refused_with(api: &ApiClient, key: &str, path: &str, code: &str) -> anyhow::Result<Value> {
    eventually(Duration::from_secs(5), &format!("push to be refused with {code}"), || async {
        let (status, problem) = push(api, key, path, 1.0).await?;
        Ok((status == StatusCode::FORBIDDEN && problem["code"] == code).then_some(problem))
    })
    .await
}

async fn send(request: reqwest::RequestBuilder) -> anyhow::Result<(StatusCode, Value)> {
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

/// A restricted dataset of `stadt` with the given datastreams; its id.
async fn dataset(api: &ApiClient, slug: &str, datastreams: &[i64]) -> anyhow::Result<i64> {
    let dataset = api
        .post_ok(
            "/v1/admin/datasets",
            json!({"slug": slug, "owner": "stadt", "title": "Parkhausbelegung", "steward_contact": "daten@stadt.example",
                   "classification": "restricted", "license": "http://dcat-ap.de/def/licenses/dl-by-de/2.0",
                   "purpose": "Parkleitsystem", "retention_days": 365, "min_bucket_count": 3}),
        )
        .await?;
    let id = dataset["id"].as_i64().unwrap_or_default();
    for datastream in datastreams {
        api.post_ok(&format!("/v1/admin/datasets/{id}/datastreams"), json!({"datastream_id": datastream})).await?;
    }
    Ok(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_supplies_readings_that_belong_to_the_town_and_stops_when_the_grant_is_revoked() -> anyhow::Result<()>
{
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    let p1 = api.register("stadt", "parkhaus-1", "belegt", Some("count")).await?;
    let p2 = api.register("stadt", "parkhaus-2", "belegt", Some("count")).await?;
    api.organisation("parkraum-gmbh", "third_party", None).await?;
    let dataset_id = dataset(&api, "parken", &[p1, p2]).await?;
    let vendor = api.principal_key("parkraum-gmbh", "zaehler-1", "publisher").await?;
    let vendor_reader = api.principal_key("parkraum-gmbh", "auswertung", "reader").await?;
    let town_admin = api.principal_key("stadt", "datenverwaltung", "data_owner").await?;

    let (status, problem) = push(&api, &vendor, "/v1/push/stadt/parkhaus-1/belegt", 1.0).await?;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("foreign_organisation")), "{problem}");

    // Who may grant, and what a grant may name.
    let until = (Utc::now() + chrono::Duration::days(365)).to_rfc3339();
    let grant = |supplier: &str, things: Value| json!({"dataset_id": dataset_id, "supplier": supplier, "contract_ref": "PV-2026-3", "things": things, "valid_until": until});
    let (status, _) = send(
        api.http
            .post(format!("{}/v1/admin/supply-grants", api.base))
            .bearer_auth(&vendor_reader)
            .json(&grant("parkraum-gmbh", Value::Null)),
    )
    .await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "the supplier cannot grant itself");
    for (supplier, things) in
        [("stadt", Value::Null), ("parkraum-gmbh", json!(["parkhaus-9"])), ("parkraum-gmbh", json!([]))]
    {
        let (status, problem) = send(api.post("/v1/admin/supply-grants", grant(supplier, things.clone()))).await?;
        assert!(status.is_client_error() && status != StatusCode::FORBIDDEN, "{supplier} {things}: {status} {problem}");
    }
    let (status, created) = send(
        api.http
            .post(format!("{}/v1/admin/supply-grants", api.base))
            .bearer_auth(&town_admin)
            .json(&grant("parkraum-gmbh", json!(["parkhaus-1"]))),
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let grant_id = created["id"].as_i64().unwrap_or_default();
    let thing_1: i64 =
        sqlx::query_scalar("SELECT id FROM things WHERE slug = 'parkhaus-1'").fetch_one(&platform.pool).await?;
    assert_eq!(created["things"], json!([thing_1]), "{created}");

    // The vendor writes into the town's datastream (once ingest has re-read its grants).
    let receipt = eventually(Duration::from_secs(5), "the vendor's push to be accepted", || async {
        let (status, receipt) = push(&api, &vendor, "/v1/push/stadt/parkhaus-1/belegt", 17.0).await?;
        Ok((status == StatusCode::ACCEPTED).then_some(receipt))
    })
    .await?;
    assert_eq!(receipt, json!({"accepted": 1, "rejected": 0, "rejections": []}));
    eventually(Duration::from_secs(30), "the supplied reading in the town's datastream", || async {
        let stored = api.all_observations(p1, "2026-11-19T00:00:00Z", "2026-11-21T00:00:00Z", 100).await?;
        Ok((stored == [("2026-11-20T00:00:00Z".to_owned(), 17.0)]).then_some(()))
    })
    .await?;

    // A thing of the dataset the grant does not name: the reading is rejected with its code.
    let (status, receipt) = push(&api, &vendor, "/v1/push/stadt/parkhaus-2/belegt", 3.0).await?;
    assert_eq!((status, receipt["rejected"].as_u64()), (StatusCode::ACCEPTED, Some(1)), "{receipt}");
    assert_eq!(receipt["rejections"][0]["code"], "write_denied", "{receipt}");

    // The readings are the town's: the vendor reads them only under a read grant.
    let path = format!("/v1/datastreams/{p1}/observations?{RANGE}");
    for key in [&vendor, &vendor_reader] {
        let (status, body) = send(api.get_as(Some(key), &path)).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    api.post_ok(
        "/v1/admin/grants",
        json!({"dataset_id": dataset_id, "grantee": "parkraum-gmbh", "purpose": "Abrechnung", "contract_ref": "PV-2026-3",
               "valid_until": until}),
    )
    .await?;
    let (status, body) = send(api.get_as(Some(&vendor_reader), &path)).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["observations"][0]["value"], 17.0, "{body}");

    // Listings: the owner's per dataset, the supplier's own, the operator's all.
    let (status, on_dataset) =
        send(api.get_as(Some(&town_admin), &format!("/v1/datasets/{dataset_id}/supply-grants"))).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(on_dataset["supply_grants"][0]["id"], grant_id, "{on_dataset}");
    let (status, _) = send(api.get_as(Some(&vendor), &format!("/v1/datasets/{dataset_id}/supply-grants"))).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, held) = send(api.get_as(Some(&vendor), "/v1/supply-grants")).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(held["supply_grants"][0]["owner"], "stadt", "{held}");
    assert_eq!(held["supply_grants"][0]["thing_slugs"], json!(["parkhaus-1"]), "{held}");
    let (_, theirs) = send(api.get_as(Some(&town_admin), "/v1/supply-grants")).await?;
    assert_eq!(theirs["supply_grants"], json!([]), "the town holds none: {theirs}");
    let (status, _) = send(api.get_as(None, "/v1/supply-grants")).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The transparency report lists the contract.
    let report = api.get_json("/v1/transparency").await?;
    let listed = &report["supply_grants"][0];
    assert_eq!(
        (&listed["supplier"], &listed["owner"], &listed["dataset"], &listed["contract_ref"], &listed["things"]),
        (&json!("parkraum-gmbh"), &json!("stadt"), &json!("parken"), &json!("PV-2026-3"), &json!(["parkhaus-1"])),
        "{report}"
    );

    // Revoked: refused within about a second; only the owner's side may revoke.
    let revoke = |key: &str| {
        api.http.delete(format!("{}/v1/admin/supply-grants/{grant_id}", api.base)).bearer_auth(key.to_owned())
    };
    assert_eq!(send(revoke(&vendor)).await?.0, StatusCode::FORBIDDEN);
    assert_eq!(send(revoke(&town_admin)).await?.0, StatusCode::NO_CONTENT);
    assert_eq!(send(revoke(TOKEN)).await?.0, StatusCode::NOT_FOUND, "already revoked");
    let started = std::time::Instant::now();
    refused_with(&api, &vendor, "/v1/push/stadt/parkhaus-1/belegt", "supply_grant_revoked").await?;
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    let report = api.get_json("/v1/transparency").await?;
    assert!(report["supply_grants"][0]["revoked_at"].is_string(), "{report}");

    // Both changes are in the audit log, with the grant before and after.
    let audit = api.get_json("/v1/audit").await?;
    let actions: Vec<&str> = audit["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["change"]["object_kind"] == "supply_grant" && r["change"]["object_id"] == grant_id)
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert_eq!(actions, ["supply_grant.create", "supply_grant.revoke"], "{audit}");

    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supply_grant_that_ends_stops_the_suppliers_writes() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    let p1 = api.register("stadt", "zaehlstelle-1", "fahrzeuge", Some("count")).await?;
    api.organisation("scooter-ag", "third_party", None).await?;
    let dataset_id = dataset(&api, "verkehr", &[p1]).await?;
    let vendor = api.principal_key("scooter-ag", "flotte", "publisher").await?;
    let until = Utc::now() + chrono::Duration::seconds(4);
    api.post_ok(
        "/v1/admin/supply-grants",
        json!({"dataset_id": dataset_id, "supplier": "scooter-ag", "contract_ref": "SV-1", "valid_until": until.to_rfc3339()}),
    )
    .await?;
    let (status, receipt) = push(&api, &vendor, "/v1/push/stadt/zaehlstelle-1/fahrzeuge", 5.0).await?;
    assert_eq!((status, receipt["accepted"].as_u64()), (StatusCode::ACCEPTED, Some(1)), "{receipt}");
    tokio::time::sleep((until - Utc::now()).to_std().unwrap_or_default()).await;
    let started = std::time::Instant::now();
    refused_with(&api, &vendor, "/v1/push/stadt/zaehlstelle-1/fahrzeuge", "supply_grant_expired").await?;
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    platform.stop().await
}
