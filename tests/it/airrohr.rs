//! The sensor.community (airrohr) door against the real brokers and database:
//! a request shaped like the firmware's "send to own API" (the body in
//! `tests/fixtures/airrohr/`, `X-Sensor`, the device token as basic auth
//! password) reads back exactly; a value that is no number is a dead letter
//! of the airrohr door; a wrong token, an unknown device, another
//! organisation and an API key instead of the device's token are refused
//! with 401 and leave no dead letter; only the thing's organisation (or the
//! operator's command line) may issue its token.

use std::time::Duration;

use hoheit_tests::{eventually, ApiClient, Platform};
use reqwest::StatusCode;
use serde_json::{json, Value};

const FIRMWARE_BODY: &str = include_str!("../fixtures/airrohr/nrz-2020-133-sds011-bme280.json");
const CHIP: &str = "esp8266-15793365";

/// The firmware's request: JSON, `X-Sensor`, basic auth with the configured user and password.
fn firmware(
    http: &reqwest::Client,
    base: &str,
    org: &str,
    sensor: &str,
    password: Option<&str>,
    body: &str,
) -> reqwest::RequestBuilder {
    let request = http
        .post(format!("{base}/v1/push/airrohr/{org}"))
        .header("content-type", "application/json")
        .header("x-sensor", sensor)
        .body(body.to_owned());
    match password {
        Some(password) => request.basic_auth("hoheit", Some(password)),
        None => request,
    }
}

async fn answer(request: reqwest::RequestBuilder) -> anyhow::Result<(StatusCode, Value)> {
    let (status, body, _) = hoheit_tests::answer(request).await?;
    Ok((status, body))
}

/// Registers the chip's thing in `stadt` with the datastreams of the fixture; (thing id, datastream ids).
async fn register(api: &ApiClient) -> anyhow::Result<(i64, Vec<i64>)> {
    api.organisation("stadt", "municipality", None).await?;
    let thing = api
        .post_ok(
            "/v1/admin/things",
            json!({"org": "stadt", "slug": "feinstaub-1", "name": "Feinstaub Schule", "latitude": 52.83, "longitude": 13.82, "external_id": "ESP8266-15793365"}),
        )
        .await?;
    let mut ids = Vec::new();
    for (property, unit) in [
        ("pm10", "ug/m3"),
        ("pm2_5", "ug/m3"),
        ("temperature", "Cel"),
        ("pressure", "Pa"),
        ("humidity", "%RH"),
        ("signal", "dBm"),
    ] {
        ids.push(api.register("stadt", "feinstaub-1", property, Some(unit)).await?);
    }
    Ok((thing["id"].as_i64().unwrap_or_default(), ids))
}

async fn issue_token(api: &ApiClient, thing: i64) -> anyhow::Result<String> {
    let issued = api.post_ok(&format!("/v1/admin/things/{thing}/device-token"), json!({})).await?;
    assert_eq!(issued["external_id"], CHIP, "{issued}");
    Ok(issued["token"].as_str().unwrap_or_default().to_owned())
}

async fn values(api: &ApiClient, id: i64, count: usize) -> anyhow::Result<Vec<f64>> {
    let now = chrono::Utc::now();
    let (from, to) = ((now - chrono::Duration::days(1)).to_rfc3339(), (now + chrono::Duration::days(1)).to_rfc3339());
    eventually(Duration::from_secs(30), &format!("{count} readings of datastream {id}"), || {
        let (api, from, to) = (api.clone(), from.clone(), to.clone());
        async move {
            let stored = api.all_observations(id, &from, &to, 1000).await?;
            Ok((stored.len() >= count).then(|| stored.iter().map(|(_, v)| *v).collect()))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firmware_request_reads_back_exactly_and_a_value_that_is_no_number_is_a_dead_letter() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    let (thing, ids) = register(&api).await?;
    let token = issue_token(&api, thing).await?;
    let http = reqwest::Client::new();

    // The firmware's body through the API (forwarded to ingest with X-Sensor and basic auth).
    let (status, receipt) = answer(firmware(&http, &api.base, "stadt", CHIP, Some(&token), FIRMWARE_BODY)).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    assert_eq!(receipt, json!({"accepted": 6, "rejected": 0, "rejections": []}), "housekeeping is skipped silently");
    let expected = [12.3, 7.45, 21.37, 99733.28, 44.37, -70.0];
    for (id, value) in ids.iter().zip(expected) {
        assert_eq!(values(&api, *id, 1).await?, [value], "datastream {id}");
    }

    // A token from the command line replaces the API's; Bearer works too (straight at ingest's door);
    // a value that is no number is a dead letter of the airrohr door.
    let issued = crate::admin_support::admin_json(
        &platform.isolation.database_url,
        &["things", "device-token", "stadt", "feinstaub-1"],
    )
    .await?;
    assert_eq!(issued["external_id"], CHIP, "{issued}");
    let (status, _) = answer(firmware(&http, &platform.doors, "stadt", CHIP, Some(&token), FIRMWARE_BODY)).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the API's token was replaced");
    let token = issued["token"].as_str().unwrap_or_default().to_owned();
    let bad = r#"{"esp8266id": "15793365", "software_version": "NRZ-2020-133", "sensordatavalues":[{"value_type":"SDS_P1","value":"nan-ish"},{"value_type":"SDS_P2","value":"8.10"}]}"#;
    let (status, receipt) = answer(
        http.post(format!("{}/v1/push/airrohr/stadt", platform.doors))
            .header("x-sensor", CHIP)
            .bearer_auth(&token)
            .body(bad),
    )
    .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    assert_eq!((receipt["accepted"].as_u64(), receipt["rejected"].as_u64()), (Some(1), Some(1)), "{receipt}");
    assert_eq!(receipt["rejections"][0]["code"], "non_numeric_value");
    assert_eq!(values(&api, ids[1], 2).await?, [7.45, 8.1]);
    let letter = eventually(Duration::from_secs(30), "the dead letter", || {
        let api = api.clone();
        async move {
            let body = api.get_json("/v1/dead-letters?org=stadt").await?;
            Ok(body["dead_letters"].as_array().and_then(|l| l.first().cloned()))
        }
    })
    .await?;
    assert_eq!(
        (letter["door"].as_str(), letter["reason_code"].as_str()),
        (Some("airrohr"), Some("non_numeric_value")),
        "{letter}"
    );
    assert_eq!(letter["payload_text"], bad);
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_unknown_devices_other_organisations_and_api_keys_are_refused() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    let (thing, ids) = register(&api).await?;
    api.organisation("fremd", "third_party", None).await?;
    let reader = api.principal_key("stadt", "leser", "reader").await?;
    let publisher = api.principal_key("stadt", "gateway-1", "publisher").await?;
    let foreign_owner = api.principal_key("fremd", "fremd-owner", "data_owner").await?;
    let http = reqwest::Client::new();

    // Before a token is issued, nothing is accepted, not even an empty password.
    let (status, problem) = answer(firmware(&http, &api.base, "stadt", CHIP, Some("anything"), FIRMWARE_BODY)).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    // Only the thing's organisation issues its token.
    for key in [&reader, &publisher, &foreign_owner] {
        let response = http
            .post(format!("{}/v1/admin/things/{thing}/device-token", api.base))
            .header("x-api-key", key)
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    let token = issue_token(&api, thing).await?;
    let old = token.clone();
    let token = issue_token(&api, thing).await?;
    assert_ne!(old, token, "issuing replaces the token");

    for (org, sensor, password, why) in [
        ("stadt", CHIP, Some(old.as_str()), "the replaced token"),
        ("stadt", CHIP, Some("hdt_wrong"), "a wrong token"),
        ("stadt", CHIP, None, "no token"),
        ("stadt", CHIP, Some(reader.as_str()), "a reader's API key"),
        ("stadt", CHIP, Some(publisher.as_str()), "a publisher's API key"),
        ("stadt", "esp8266-99999999", Some(token.as_str()), "an unknown device"),
        ("fremd", CHIP, Some(token.as_str()), "another organisation"),
    ] {
        let (status, problem) = answer(firmware(&http, &api.base, org, sensor, password, FIRMWARE_BODY)).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {problem}");
        assert!(problem["detail"].as_str().unwrap_or_default().contains("device token"), "{why}: {problem}");
    }
    let (status, problem) = answer(
        http.post(format!("{}/v1/push/airrohr/stadt", api.base)).basic_auth("x", Some(&token)).body(FIRMWARE_BODY),
    )
    .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no X-Sensor: {problem}");

    // Nothing of the refused requests was stored or dead-lettered.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now = chrono::Utc::now();
    let stored = api
        .all_observations(
            ids[0],
            &(now - chrono::Duration::days(1)).to_rfc3339(),
            &(now + chrono::Duration::days(1)).to_rfc3339(),
            10,
        )
        .await?;
    assert!(stored.is_empty(), "{stored:?}");
    for org in ["stadt", "fremd"] {
        let letters = api.get_json(&format!("/v1/dead-letters?org={org}")).await?;
        assert_eq!(letters["dead_letters"], json!([]), "refused requests leave no dead letters");
    }
    platform.stop().await
}
