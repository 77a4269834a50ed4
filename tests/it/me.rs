//! A caller's own access (`/v1/me`, `/v1/me/grants`, `/v1/me/reads`), the
//! organisations by name, and the terms beside the data in `/v1/datastreams`:
//! tried as the demo's third party would, through the real API on a real database.

use hoheit_tests::town::small_town;
use hoheit_tests::Isolation;
use serde_json::{json, Value};

async fn json_as(api: &hoheit_tests::ApiClient, key: Option<&str>, path: &str) -> (u16, Value) {
    let response = api.get_as(key, path).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_licensee_sees_who_it_is_its_contracts_their_use_and_its_own_reads() {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await.unwrap();
    let (running, api) = hoheit_tests::start_api(&isolation).await.unwrap();
    let town = small_town(&api, &pool).await.unwrap();
    let grant = api
        .post_ok(
            "/v1/admin/grants",
            json!({"dataset_id": town.intern, "grantee": "movi", "purpose": "Lastprognose",
                   "contract_ref": "V-2026-17", "min_interval_mins": 15, "history_days": 30,
                   "valid_until": "2030-01-01T00:00:00Z", "rate_per_minute": 30}),
        )
        .await
        .unwrap();
    let movi = api.principal_key("movi", "movi-app", "reader").await.unwrap();

    // Who am I.
    let (status, me) = json_as(&api, Some(&movi), "/v1/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["name"], "movi-app");
    assert_eq!(me["role"], "reader");
    assert_eq!(me["operator"], false);
    assert_eq!(me["organisation"]["slug"], "movi");
    assert_eq!(me["signed_in_with"], "api_key");
    assert!(me["key"]["expires_at"].as_str().is_some_and(|t| t > "2026"), "{me}");
    assert!(movi.starts_with(me["key"]["lookup"].as_str().unwrap()), "the key's public part: {me}");
    let (status, operator) = json_as(&api, Some(hoheit_tests::TOKEN), "/v1/me").await;
    assert_eq!(
        (status, &operator["operator"], &operator["signed_in_with"]),
        (200, &json!(true), &json!("operator_token"))
    );
    let (status, problem) = json_as(&api, None, "/v1/me").await;
    assert_eq!(status, 401, "{problem}");
    assert!(problem["detail"].as_str().is_some_and(|d| d.contains("credential")), "{problem}");

    // What my contract allows, before any use.
    let (status, held) = json_as(&api, Some(&movi), "/v1/me/grants").await;
    assert_eq!(status, 200, "{held}");
    let grants = held["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 1, "{held}");
    let g = &grants[0];
    assert_eq!(g["id"], grant["id"]);
    assert_eq!((&g["dataset_slug"], &g["dataset_title"]), (&json!("netzlast"), &json!("Netzlast")));
    assert_eq!(g["owner_slug"], "stadt");
    assert_eq!((&g["purpose"], &g["contract_ref"]), (&json!("Lastprognose"), &json!("V-2026-17")));
    assert_eq!(
        (&g["min_interval_mins"], &g["history_days"], &g["rate_per_minute"]),
        (&json!(15), &json!(30), &json!(30))
    );
    assert_eq!(g["status"], "active");
    assert_eq!((&g["use"]["reads_last_day"], &g["use"]["reads_available_now"]), (&json!(0), &json!(30)));

    // One read under the grant, one refused (raw readings are beyond its terms).
    let aggregates = format!("/v1/datastreams/{}/aggregates?interval=15m", town.load);
    let (status, body) = json_as(&api, Some(&movi), &aggregates).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = json_as(&api, Some(&movi), &format!("/v1/datastreams/{}/observations", town.load)).await;
    assert_eq!(status, 403);
    let (_, held) = json_as(&api, Some(&movi), "/v1/me/grants").await;
    let used = &held["grants"][0]["use"];
    assert_eq!(used["reads_last_day"], 1, "{held}");
    assert!(used["reads_available_now"].as_i64().unwrap() < 30, "the read took from the rate: {held}");

    // My own read log: the allowed read with its grant; the department's reads are not in it.
    let (_, department_read) = json_as(&api, Some(&town.department_key), "/v1/datastreams").await;
    assert!(department_read["datastreams"].is_array());
    let (status, reads) = json_as(&api, Some(&movi), "/v1/me/reads").await;
    assert_eq!(status, 200, "{reads}");
    let records = reads["records"].as_array().unwrap();
    assert!(!records.is_empty(), "{reads}");
    assert!(records.iter().all(|r| r["principal_name"] == "movi-app"), "only its own: {reads}");
    assert!(
        records.iter().any(|r| r["action"] == "aggregates" && r["grant_id"] == grant["id"] && r["allowed"] == true),
        "{reads}"
    );
    let (status, _) = json_as(&api, None, "/v1/me/reads").await;
    assert_eq!(status, 401);
    // The operator's own reads, and only those.
    let (status, _) = json_as(&api, Some(hoheit_tests::TOKEN), &aggregates).await;
    assert_eq!(status, 200);
    let (status, reads) = json_as(&api, Some(hoheit_tests::TOKEN), "/v1/me/reads").await;
    assert_eq!(status, 200, "{reads}");
    let records = reads["records"].as_array().unwrap();
    assert!(records.iter().any(|r| r["action"] == "aggregates"), "{reads}");
    assert!(records.iter().all(|r| r["principal_name"] == "operator" && r["org_id"].is_null()), "{reads}");
    let (status, none) = json_as(&api, Some(&town.department_key), "/v1/me/grants").await;
    assert_eq!((status, none["grants"].as_array().map(Vec::len)), (200, Some(0)), "the department holds no grant");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn readers_see_dataset_classification_and_license_beside_the_data_and_organisations_by_name() {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await.unwrap();
    let (running, api) = hoheit_tests::start_api(&isolation).await.unwrap();
    let town = small_town(&api, &pool).await.unwrap();

    let (status, list) = json_as(&api, None, "/v1/datastreams").await;
    assert_eq!(status, 200, "{list}");
    let counts = list["datastreams"].as_array().unwrap().iter().find(|d| d["id"] == town.counts).unwrap();
    let dataset = &counts["dataset"];
    assert_eq!((&dataset["id"], &dataset["slug"]), (&json!(town.verkehr), &json!("verkehrszaehlung")));
    assert_eq!((&dataset["classification"], &dataset["owner"]), (&json!("open"), &json!("stadt")));
    assert_eq!(dataset["license"]["name"], "Datenlizenz Deutschland – Namensnennung 2.0");
    assert_eq!(dataset["license"]["uri"], "http://dcat-ap.de/def/licenses/dl-by-de/2.0");

    let (status, one) = json_as(&api, None, &format!("/v1/datastreams/{}", town.temperature)).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["dataset"]["slug"], "lufttemperatur");
    assert_eq!(one["dataset"]["license"]["name"], "Datenlizenz Deutschland – Zero 2.0");

    let (status, orgs) = json_as(&api, None, "/v1/organisations").await;
    assert_eq!(status, 200, "{orgs}");
    let movi = orgs["organisations"].as_array().unwrap().iter().find(|o| o["slug"] == "movi").unwrap();
    assert!(movi["id"].as_i64().is_some() && movi["name"].as_str().is_some_and(|n| !n.is_empty()), "{orgs}");
    running.stop().await.unwrap();
}
