//! Onboarding a fleet of sensors (issue 16): device types, bulk import from
//! CSV and JSON, plausible ranges. Against the real database (and, for the
//! ranges, the real broker, Kafka and pipeline): an import creates exactly
//! the things and datastreams it reports, a second import of the same file
//! changes nothing, a dry run writes nothing, a file with bad rows changes
//! nothing and names every bad line, a type's update adds datastreams and
//! drops none, a reading outside its type's or its datastream's range is a
//! dead letter `out_of_range`, and only an organisation's admins and data
//! owners (and the operator) may do any of it, by API or `hoheit-admin`.

use std::time::Duration;

use hoheit_tests::{answer, eventually, start_api, ApiClient, Isolation, Platform, Publisher};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::admin_support::{admin, run_admin};

/// A Decentlab DL-PM air-quality sensor: particulate matter and temperature.
fn dl_pm(org: Option<&str>) -> Value {
    json!({
        "org": org,
        "slug": "dl-pm",
        "name": "Decentlab DL-PM",
        "description": "LoRaWAN particulate matter sensor",
        "properties": [
            {"property": "pm1", "name": "PM1", "unit": "ug/m3", "min": 0, "max": 1000},
            {"property": "pm2_5", "name": "PM2.5", "unit": "ug/m3", "min": 0, "max": 1000},
            {"property": "pm10", "name": "PM10", "unit": "ug/m3", "min": 0, "max": 1000},
            {"property": "temperature", "name": "Lufttemperatur", "unit": "Cel", "min": -40, "max": 85},
        ],
    })
}

/// `n` rows of DL-PM sensors along a line through the town.
fn fleet_csv(n: usize) -> String {
    let mut csv = String::from("slug,name,latitude,longitude,type,DevEUI,dataset\n");
    for i in 0..n {
        csv.push_str(&format!(
            "pm-{i:04},\"Luftmessung {i}, Eberswalde\",{:.5},{:.5},dl-pm,70B3D57ED00{i:05X},luft\n",
            52.80 + i as f64 * 0.0001,
            13.80 + i as f64 * 0.0001
        ));
    }
    csv
}

async fn import(
    api: &ApiClient,
    key: Option<&str>,
    query: &str,
    content_type: &str,
    body: String,
) -> anyhow::Result<(StatusCode, Value)> {
    let request = api
        .http
        .post(format!("{}/v1/admin/things/import?{query}", api.base))
        .header("content-type", content_type)
        .body(body);
    let request = match key {
        Some(key) => request.bearer_auth(key),
        None => request.bearer_auth(hoheit_tests::TOKEN),
    };
    let (status, body, _) = answer(request).await?;
    Ok((status, body))
}

/// An organisation with the DL-PM type and an internal dataset `luft`.
async fn stadtwerk(api: &ApiClient) -> anyhow::Result<Value> {
    api.organisation("stadtwerk", "municipality", None).await?;
    api.post_ok(
        "/v1/admin/datasets",
        json!({"slug": "luft", "owner": "stadtwerk", "title": "Luftqualität", "steward_contact": "daten@stadtwerk.example",
               "classification": "internal", "license": "internal", "purpose": "Luftreinhalteplanung", "retention_days": 365}),
    )
    .await?;
    api.post_ok("/v1/admin/device-types", dl_pm(Some("stadtwerk"))).await
}

async fn count(pool: &PgPool, sql: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

/// Things, datastreams, datastreams in the dataset `luft`, audit records.
async fn registry_counts(pool: &PgPool) -> anyhow::Result<[i64; 4]> {
    Ok([
        count(pool, "SELECT count(*) FROM things").await?,
        count(pool, "SELECT count(*) FROM datastreams").await?,
        count(pool, "SELECT count(*) FROM datastreams d JOIN datasets s ON s.id = d.dataset_id WHERE s.slug = 'luft'")
            .await?,
        count(pool, "SELECT count(*) FROM audit_log").await?,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_of_500_things_creates_their_datastreams_and_a_second_import_changes_nothing() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let (running, api) = start_api(&isolation).await?;
    let device_type = stadtwerk(&api).await?;
    assert_eq!(device_type["properties"].as_array().map(Vec::len), Some(4), "{device_type}");
    let csv = fleet_csv(500);

    let (status, report) = import(&api, None, "org=stadtwerk", "text/csv", csv.clone()).await?;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (
            &report["things_created"],
            &report["things_changed"],
            &report["things_unchanged"],
            &report["datastreams_created"]
        ),
        (&json!(500), &json!(0), &json!(0), &json!(2000)),
        "{}",
        report["changes"][0]
    );
    assert_eq!(report["changes"][0]["line"], 2);
    assert_eq!(report["changes"][0]["action"], "create");
    assert_eq!(report["changes"][0]["datastreams"], json!(["pm1", "pm2_5", "pm10", "temperature"]));
    let [things, datastreams, in_dataset, audit] = registry_counts(&pool).await?;
    assert_eq!((things, datastreams, in_dataset), (500, 2000, 2000));
    let imports = count(&pool, "SELECT count(*) FROM audit_log WHERE action = 'thing.import'").await?;
    assert_eq!(imports, 1, "one audit record for the whole import");

    let listing = api.get_json("/v1/admin/things?org=stadtwerk").await?;
    let listed = listing["things"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 500);
    assert_eq!(listed[7]["slug"], "pm-0007");
    assert_eq!(listed[7]["name"], "Luftmessung 7, Eberswalde");
    assert_eq!(listed[7]["type"], "dl-pm");
    assert_eq!(listed[7]["external_id"], "70b3d57ed0000007", "stored in lower case");
    assert_eq!((&listed[7]["datastreams"], &listed[7]["dead_letters"]), (&json!(4), &json!(0)));
    assert_eq!(listed[7]["last_reading_at"], Value::Null);

    let (status, again) = import(&api, None, "org=stadtwerk", "text/csv", csv).await?;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        (&again["things_created"], &again["things_changed"], &again["things_unchanged"], &again["datastreams_created"]),
        (&json!(0), &json!(0), &json!(500), &json!(0))
    );
    assert!(again["changes"].as_array().unwrap().iter().all(|c| c["action"] == "unchanged"));
    assert_eq!(registry_counts(&pool).await?, [things, datastreams, in_dataset, audit], "nothing was written");

    running.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reports_what_would_change_and_writes_nothing() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let (running, api) = start_api(&isolation).await?;
    stadtwerk(&api).await?;
    api.post_ok(
        "/v1/admin/things",
        json!({"org": "stadtwerk", "slug": "alt", "name": "Alter Name", "latitude": 52.8, "longitude": 13.8}),
    )
    .await?;
    let before = registry_counts(&pool).await?;
    let rows = json!([
        {"slug": "alt", "name": "Neuer Name", "type": "dl-pm"},
        {"slug": "neu", "name": "Neu", "latitude": 52.81, "longitude": 13.81, "dev_eui": "70B3D57ED0009999"},
    ]);
    let (status, report) =
        import(&api, None, "org=stadtwerk&dry_run=true", "application/json", rows.to_string()).await?;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["dry_run"], true);
    assert_eq!(
        report["changes"],
        json!([
            {"line": 1, "slug": "alt", "action": "change", "fields": ["name", "type"], "datastreams": ["pm1", "pm2_5", "pm10", "temperature"]},
            {"line": 2, "slug": "neu", "action": "create", "fields": ["name", "latitude", "longitude", "external_id"], "datastreams": []},
        ])
    );
    assert_eq!(
        (&report["things_created"], &report["things_changed"], &report["datastreams_created"]),
        (&json!(1), &json!(1), &json!(4))
    );
    assert_eq!(registry_counts(&pool).await?, before, "a dry run writes nothing");

    let (status, applied) = import(&api, None, "org=stadtwerk", "application/json", rows.to_string()).await?;
    assert_eq!(status, StatusCode::OK, "{applied}");
    assert_eq!(applied["changes"], report["changes"], "the real run does what the dry run said");
    let thing = api.get_json("/v1/admin/things?org=stadtwerk").await?;
    assert_eq!(thing["things"][0]["name"], "Neuer Name");
    assert_eq!(thing["things"][0]["latitude"], 52.8, "a coordinate not given is kept");

    running.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_with_bad_rows_changes_nothing_and_names_every_bad_line() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let (running, api) = start_api(&isolation).await?;
    stadtwerk(&api).await?;
    api.post_ok(
        "/v1/admin/things",
        json!({"org": "stadtwerk", "slug": "vorhanden", "name": "Vorhanden", "external_id": "AA01"}),
    )
    .await?;
    let before = registry_counts(&pool).await?;
    let csv = "slug,name,latitude,longitude,type,dev_eui,dataset\n\
               gut-1,Gut,52.8,13.8,dl-pm,,luft\n\
               gut-2,Gut,52.8,13.8,unbekannt,,\n\
               gut-3,,52.8,13.8,,,\n\
               gut-4,Weit weg,95,13.8,,,\n\
               gut-1,Doppelt,,,,,\n\
               gut-5,Fremde DevEUI,,,,aa01,\n\
               gut-6,Kein Datensatz,,,,,wasser\n\
               gut-7,Gut,52.8,13.8,dl-pm,,\n";
    let (status, problem) = import(&api, None, "org=stadtwerk", "text/csv", csv.into()).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let named: Vec<(i64, String)> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_i64().unwrap(), e["column"].as_str().unwrap_or("-").to_owned()))
        .collect();
    let expected = [(3, "type"), (4, "name"), (5, "latitude"), (6, "slug"), (7, "external_id"), (8, "dataset")];
    assert_eq!(named, expected.map(|(l, c)| (l, c.to_owned())), "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("nothing was changed"), "{problem}");
    assert_eq!(registry_counts(&pool).await?, before, "nothing changed");

    let (status, _) = import(&api, None, "org=stadtwerk", "application/xml", "<things/>".into()).await?;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    running.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_update_gives_its_things_the_missing_datastreams_and_drops_none() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let (running, api) = start_api(&isolation).await?;
    let device_type = stadtwerk(&api).await?;
    let id = device_type["id"].as_i64().unwrap();
    for slug in ["pm-a", "pm-b"] {
        let thing = api
            .post_ok("/v1/admin/things", json!({"org": "stadtwerk", "slug": slug, "name": slug, "type": "dl-pm"}))
            .await?;
        assert_eq!(thing["type"], "dl-pm");
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM datastreams").await?, 8);

    // pm1 leaves the type, humidity joins it, pm10's range narrows.
    let mut changed = dl_pm(None);
    let object = changed.as_object_mut().unwrap();
    object.remove("org");
    object["name"] = json!("Decentlab DL-PM (v2)");
    object["properties"] = json!([
        {"property": "pm2_5", "name": "PM2.5", "unit": "ug/m3", "min": 0, "max": 1000},
        {"property": "pm10", "name": "PM10", "unit": "ug/m3", "min": 0, "max": 500},
        {"property": "temperature", "name": "Lufttemperatur", "unit": "Cel", "min": -40, "max": 85},
        {"property": "humidity", "name": "Luftfeuchte", "unit": "%RH", "min": 0, "max": 100},
    ]);
    let response = api
        .http
        .put(format!("{}/v1/admin/device-types/{id}", api.base))
        .bearer_auth(hoheit_tests::TOKEN)
        .json(&changed);
    let (status, updated, _) = answer(response).await?;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["datastreams_created"], 2, "humidity for both things");
    assert_eq!(updated["things"], 2);
    assert_eq!(updated["name"], "Decentlab DL-PM (v2)");
    let properties: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT property FROM datastreams ORDER BY 1").fetch_all(&pool).await?;
    assert_eq!(properties, ["humidity", "pm1", "pm10", "pm2_5", "temperature"], "pm1 keeps its datastreams");
    assert_eq!(count(&pool, "SELECT count(*) FROM datastreams").await?, 10);

    // A type in use cannot be deleted.
    let delete = api.http.delete(format!("{}/v1/admin/device-types/{id}", api.base)).bearer_auth(hoheit_tests::TOKEN);
    let (status, problem, _) = answer(delete).await?;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    // A thing changed to the type gets its datastreams; one without a type keeps its own.
    let plain = api.post_ok("/v1/admin/things", json!({"org": "stadtwerk", "slug": "plain", "name": "Plain"})).await?;
    let patch = api
        .http
        .patch(format!("{}/v1/admin/things/{}", api.base, plain["id"]))
        .bearer_auth(hoheit_tests::TOKEN)
        .json(&json!({"type": "dl-pm", "external_id": "70B3D57ED0001234"}));
    let (status, patched, _) = answer(patch).await?;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        (&patched["datastreams_created"], &patched["type"], &patched["external_id"]),
        (&json!(4), &json!("dl-pm"), &json!("70b3d57ed0001234"))
    );

    running.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_outside_the_types_or_the_datastreams_range_are_dead_letters_out_of_range() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let api = &platform.api;
    stadtwerk(api).await?;
    api.post_ok("/v1/admin/things", json!({"org": "stadtwerk", "slug": "pm-1", "name": "PM 1", "type": "dl-pm"}))
        .await?;
    // A datastream of its own with its own range.
    api.post_ok("/v1/admin/things", json!({"org": "stadtwerk", "slug": "pegel", "name": "Pegel"})).await?;
    let level = api
        .post_ok("/v1/admin/datastreams", json!({"org": "stadtwerk", "thing": "pegel", "property": "level", "name": "Pegel", "unit": "cm", "min": 0, "max": 400}))
        .await?;
    let things = api.get_json("/v1/admin/things?org=stadtwerk").await?;
    let pm10: i64 = sqlx::query_scalar("SELECT d.id FROM datastreams d JOIN things t ON t.id = d.thing_id WHERE t.slug = 'pm-1' AND d.property = 'pm10'")
        .fetch_one(&platform.pool)
        .await?;
    assert_eq!(things["things"][0]["datastreams"], 1);

    let topic = |thing: &str, property: &str| format!("{}/stadtwerk/{thing}/{property}", platform.scheme.root());
    let message = |value: f64, unit: &str| json!({"value": value, "unit": unit}).to_string().into_bytes();
    let mut publisher = Publisher::connect("ranges").await?;
    publisher
        .publish_all(vec![
            (topic("pm-1", "pm10"), message(1500.0, "ug/m3")),
            (topic("pm-1", "pm10"), message(12.5, "ug/m3")),
            (topic("pegel", "level"), message(-3.0, "cm")),
            (topic("pegel", "level"), message(120.0, "cm")),
        ])
        .await?;

    let letters = eventually(Duration::from_secs(30), "two out_of_range dead letters", || async {
        let body = api.get_json("/v1/dead-letters?org=stadtwerk").await?;
        let letters = body["dead_letters"].as_array().cloned().unwrap_or_default();
        Ok((letters.len() >= 2).then_some(letters))
    })
    .await?;
    assert_eq!(letters.len(), 2, "{letters:?}");
    for letter in &letters {
        assert_eq!(letter["reason_code"], "out_of_range", "{letter}");
    }
    assert!(
        letters.iter().any(|l| l["reason"].as_str().unwrap().contains("0 to 1000")),
        "the type's range: {letters:?}"
    );
    assert!(
        letters.iter().any(|l| l["reason"].as_str().unwrap().contains("0 to 400")),
        "the datastream's range: {letters:?}"
    );

    let now = chrono::Utc::now();
    let (from, to) = ((now - chrono::Duration::hours(1)).to_rfc3339(), (now + chrono::Duration::hours(1)).to_rfc3339());
    for (id, value) in [(pm10, 12.5), (level["id"].as_i64().unwrap(), 120.0)] {
        let stored = eventually(Duration::from_secs(30), "the in-range reading", || async {
            let stored = api.all_observations(id, &from, &to, 100).await?;
            Ok((!stored.is_empty()).then_some(stored))
        })
        .await?;
        assert_eq!(stored.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [value]);
    }
    let listing = api.get_json("/v1/admin/things?org=stadtwerk").await?;
    assert_eq!(listing["things"][1]["slug"], "pm-1");
    assert_eq!(listing["things"][1]["dead_letters"], 1);
    assert!(listing["things"][1]["last_reading_at"].is_string(), "{listing}");

    // A unit change of a datastream that holds readings is refused.
    let patch = api
        .http
        .patch(format!("{}/v1/admin/datastreams/{}", api.base, level["id"]))
        .bearer_auth(hoheit_tests::TOKEN)
        .json(&json!({"unit": "m"}));
    let (status, problem, _) = answer(patch).await?;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_organisations_admins_and_data_owners_onboard_and_the_cli_imports_the_same_way() -> anyhow::Result<()>
{
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let (running, api) = start_api(&isolation).await?;
    stadtwerk(&api).await?;
    api.organisation("andere", "municipality", None).await?;
    let reader = api.principal_key("stadtwerk", "leser", "reader").await?;
    let publisher = api.principal_key("stadtwerk", "sensor", "publisher").await?;
    let foreign_admin = api.principal_key("andere", "fremder-admin", "admin").await?;
    let owner = api.principal_key("stadtwerk", "eigentuemer", "data_owner").await?;
    let admin_key = api.principal_key("stadtwerk", "admin", "admin").await?;

    for key in [&reader, &publisher, &foreign_admin] {
        let (status, problem) = import(&api, Some(key), "org=stadtwerk", "text/csv", fleet_csv(2)).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
        let (status, _, _) = answer(api.get_as(Some(key), "/v1/admin/things?org=stadtwerk")).await?;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let create = api.http.post(format!("{}/v1/admin/device-types", api.base)).bearer_auth(key).json(&json!({
            "org": "stadtwerk", "slug": "x", "name": "X", "properties": [{"property": "x", "name": "X", "unit": "Cel"}]
        }));
        assert_eq!(answer(create).await?.0, StatusCode::FORBIDDEN);
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM things").await?, 0);

    // A data owner imports for its organisation without naming it; an admin manages types.
    let (status, report) = import(&api, Some(&owner), "", "text/csv", fleet_csv(2)).await?;
    assert_eq!((status, &report["things_created"]), (StatusCode::OK, &json!(2)), "{report}");
    let (status, listed, _) = answer(api.get_as(Some(&admin_key), "/v1/admin/device-types")).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["device_types"][0]["things"], 2, "{listed}");

    // The operator's tool runs the same import against the same database.
    let dir = std::env::temp_dir().join(format!("hoheit-import-{}", isolation.id));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("things.csv");
    std::fs::write(&file, fleet_csv(5))?;
    let db = isolation.database_url.as_str();
    let path = file.to_str().unwrap();
    let dry = admin(db, &["things", "import", path, "--org", "stadtwerk", "--dry-run"]).await?;
    assert!(
        dry.contains("3 thing(s) would be created, 0 would be changed, 2 unchanged; 12 datastream(s) would be created"),
        "{dry}"
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM things").await?, 2);
    let done = admin(db, &["things", "import", path, "--org", "stadtwerk"]).await?;
    assert!(done.contains("line     6  create pm-0004"), "{done}");
    assert_eq!(count(&pool, "SELECT count(*) FROM things").await?, 5);
    std::fs::write(&file, "slug,name\nok,Gut\n,Ohne Slug\n")?;
    let (out, result) = run_admin(db, &["things", "import", path, "--org", "stadtwerk"]).await;
    assert!(result.is_err() && out.contains("line     3 (slug): slug is missing"), "{out}");
    let types = admin(db, &["device-types", "list", "--org", "stadtwerk"]).await?;
    assert!(types.contains("pm1, pm2_5, pm10, temperature"), "{types}");
    std::fs::remove_dir_all(&dir)?;

    running.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}
