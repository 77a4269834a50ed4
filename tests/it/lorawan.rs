//! LoRaWAN network servers as connectors, against the real brokers and
//! database, with the servers' own message shapes: ChirpStack v4's
//! `integration::UplinkEvent` built with the `chirpstack_api` crate and sent
//! in its JSON and protobuf encodings (HTTP integration and MQTT
//! integration), and The Things Stack's documented uplink example
//! (`tests/fixtures/tts/uplink.json`) as its webhook sends it. Readings read
//! back exactly; unknown devices and text fields are dead letters of the
//! connector's door; wrong secrets, readers and other organisations are
//! refused; while Kafka is away the webhook answers `503`.

use std::time::Duration;

use chirpstack_api::integration::{DeviceInfo, UplinkEvent};
use chirpstack_api::{gw, pbjson_types};
use hoheit_tests::{eventually, mqtt_host, mqtt_login, mqtt_port, ApiClient, Platform, Publisher};

use crate::admin_support;
use prost::Message;
use reqwest::StatusCode;
use serde_json::{json, Value};

const SECRET_HEADER: &str = "x-hoheit-connector-secret";

/// An uplink as ChirpStack v4 builds it: device `dev_eui`, decoded `object`,
/// received by two gateways (the better one at -57 dBm, 7.25 dB).
fn uplink_event(dev_eui: &str, seconds: i64, object: Value) -> UplinkEvent {
    let reception = |gateway: &str, rssi: i32, snr: f32| gw::UplinkRxInfo {
        gateway_id: gateway.into(),
        uplink_id: 4242,
        rssi,
        snr,
        channel: 2,
        ..Default::default()
    };
    UplinkEvent {
        deduplication_id: "3b8a1c9e-4a3f-4a5e-9a57-3c1d2e0f5a10".into(),
        time: Some(pbjson_types::Timestamp { seconds, nanos: 0 }),
        device_info: Some(DeviceInfo {
            tenant_id: "52f14cd4-c6f1-4fbd-8f87-4025e1d49242".into(),
            tenant_name: "Stadtwerke".into(),
            application_id: "ab5b4f1e-5ba1-4a1c-8f0f-1e0b5ac4c3a1".into(),
            application_name: "bodenfeuchte".into(),
            device_name: "boden-1".into(),
            dev_eui: dev_eui.into(),
            ..Default::default()
        }),
        dev_addr: "01fa2b3c".into(),
        dr: 5,
        f_cnt: 17,
        f_port: 2,
        data: vec![1, 2, 3],
        object: Some(serde_json::from_value(object).expect("a JSON object is a Struct")),
        rx_info: vec![reception("0016c001ff10a235", -101, -3.5), reception("0016c001ff10a236", -57, 7.25)],
        ..Default::default()
    }
}

/// 2026-11-20T00:00:00Z.
const T0: i64 = 1_795_132_800;

fn post(
    http: &reqwest::Client,
    url: String,
    secret: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    let request = http.post(url).header("content-type", content_type).body(body);
    match secret {
        Some(secret) => request.header(SECRET_HEADER, secret),
        None => request,
    }
}

async fn answer(request: reqwest::RequestBuilder) -> anyhow::Result<(StatusCode, Value)> {
    let (status, body, _) = hoheit_tests::answer(request).await?;
    Ok((status, body))
}

/// A thing of `org` carrying `dev_eui`, with a datastream per property.
async fn device(
    api: &ApiClient,
    org: &str,
    thing: &str,
    dev_eui: &str,
    properties: &[&str],
) -> anyhow::Result<Vec<i64>> {
    api.register(org, &format!("{thing}-probe"), "probe", None).await?;
    api.post_ok(
        "/v1/admin/things",
        json!({"org": org, "slug": thing, "name": thing, "latitude": 52.83, "longitude": 13.82, "external_id": dev_eui}),
    )
    .await?;
    let mut ids = Vec::new();
    for property in properties {
        ids.push(api.register(org, thing, property, None).await?);
    }
    Ok(ids)
}

async fn connector(api: &ApiClient, body: Value) -> anyhow::Result<(i64, String, String)> {
    let created = api.post_ok("/v1/admin/connectors", body).await?;
    Ok((
        created["id"].as_i64().unwrap_or_default(),
        created["webhook_path"].as_str().unwrap_or_default().to_owned(),
        created["webhook_secret"].as_str().unwrap_or_default().to_owned(),
    ))
}

async fn values(api: &ApiClient, id: i64, count: usize, from: &str, to: &str) -> anyhow::Result<Vec<(String, f64)>> {
    eventually(Duration::from_secs(30), &format!("{count} readings of datastream {id}"), || {
        let api = api.clone();
        let (from, to) = (from.to_owned(), to.to_owned());
        async move { Ok(api.all_observations(id, &from, &to, 1000).await.ok().filter(|o| o.len() >= count)) }
    })
    .await
}

async fn dead_letters(api: &ApiClient, org: &str, count: usize) -> anyhow::Result<Vec<Value>> {
    eventually(Duration::from_secs(30), &format!("{count} dead letters of {org}"), || {
        let api = api.clone();
        let path = format!("/v1/dead-letters?org={org}");
        async move {
            let body = api.get_json(&path).await?;
            Ok(body["dead_letters"].as_array().filter(|l| l.len() >= count).cloned())
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chirpstack_uplinks_over_http_in_json_and_protobuf_read_back_exactly_and_bad_ones_are_dead_letters(
) -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    let ids =
        device(&api, "stadt", "boden-1", "0102030405060708", &["temperature", "battery_voltage", "door_open", "rssi"])
            .await?;
    let (temperature, battery, door, rssi) = (ids[0], ids[1], ids[2], ids[3]);
    let (_, path, secret) =
        connector(&api, json!({"org": "stadt", "slug": "chirpstack", "kind": "chirpstack"})).await?;
    assert!(secret.len() > 20 && path.ends_with("/chirpstack"), "{path}");
    let http = reqwest::Client::new();
    let object = |t: f64| json!({"temperature": t, "battery": {"voltage": 3.6}, "doorOpen": true});

    // JSON, as ChirpStack's JSON marshaler writes it (the crate's own serializer), through the API.
    let json_event = serde_json::to_vec(&uplink_event("0102030405060708", T0, object(21.5)))?;
    let up = format!("{}{path}?event=up", api.base);
    let (status, receipt) = answer(post(&http, up.clone(), Some(&secret), "application/json", json_event)).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    assert_eq!(receipt, json!({"accepted": 4, "rejected": 0, "rejections": []}), "no snr datastream: left out");

    // Protobuf, as ChirpStack's HTTP integration sends it, straight to ingest's door.
    let proto_event = uplink_event("0102030405060708", T0 + 60, object(21.75)).encode_to_vec();
    let door_up = format!("{}{path}?event=up", platform.doors);
    let (status, receipt) =
        answer(post(&http, door_up, Some(&secret), "application/octet-stream", proto_event)).await?;
    assert_eq!((status, receipt["accepted"].as_u64()), (StatusCode::ACCEPTED, Some(4)), "{receipt}");

    // Other events are answered and ignored.
    let (status, _) = answer(post(
        &http,
        format!("{}{path}?event=join", api.base),
        Some(&secret),
        "application/json",
        b"{}".to_vec(),
    ))
    .await?;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // An unknown DevEUI and a text field: dead letters of the chirpstack door.
    let stranger = serde_json::to_vec(&uplink_event("A1A2A3A4A5A6A7A8", T0, object(30.0)))?;
    let (status, receipt) = answer(post(&http, up.clone(), Some(&secret), "application/json", stranger)).await?;
    assert_eq!((status, receipt["rejections"][0]["code"].as_str()), (StatusCode::ACCEPTED, Some("unknown_device")));
    let text =
        serde_json::to_vec(&uplink_event("0102030405060708", T0 + 120, json!({"temperature": 22.0, "status": "ok"})))?;
    let (status, receipt) = answer(post(&http, up.clone(), Some(&secret), "application/json", text)).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    assert_eq!((receipt["accepted"].as_u64(), receipt["rejected"].as_u64()), (Some(2), Some(1)), "{receipt}");
    assert_eq!(receipt["rejections"][0]["code"], "non_numeric_value");

    // What 202 counted reads back exactly, at the uplinks' times.
    let (from, to) = ("2026-11-19T00:00:00Z", "2026-11-21T00:00:00Z");
    assert_eq!(
        values(&api, temperature, 3, from, to).await?,
        [
            ("2026-11-20T00:00:00Z".to_owned(), 21.5),
            ("2026-11-20T00:01:00Z".to_owned(), 21.75),
            ("2026-11-20T00:02:00Z".to_owned(), 22.0)
        ]
    );
    assert_eq!(values(&api, battery, 2, from, to).await?.iter().map(|v| v.1).collect::<Vec<_>>(), [3.6, 3.6]);
    assert_eq!(values(&api, door, 2, from, to).await?.iter().map(|v| v.1).collect::<Vec<_>>(), [1.0, 1.0]);
    assert_eq!(
        values(&api, rssi, 3, from, to).await?.iter().map(|v| v.1).collect::<Vec<_>>(),
        [-57.0, -57.0, -57.0],
        "the best gateway's RSSI"
    );
    let letters = dead_letters(&api, "stadt", 2).await?;
    let mut codes: Vec<(&str, &str)> =
        letters.iter().map(|l| (l["door"].as_str().unwrap_or(""), l["reason_code"].as_str().unwrap_or(""))).collect();
    codes.sort();
    assert_eq!(codes, [("chirpstack", "non_numeric_value"), ("chirpstack", "unknown_device")]);
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_things_stack_webhook_reads_the_documented_uplink_example() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    let ids = device(&api, "stadt", "dev1", "0004A30B001C0530", &["temperature", "luminosity", "rssi", "snr"]).await?;
    let (_, path, secret) = connector(&api, json!({"org": "stadt", "slug": "tts", "kind": "tts"})).await?;
    let example = std::fs::read(hoheit_tests::repo().join("tests/fixtures/tts/uplink.json"))?;
    let http = reqwest::Client::new();
    let url = format!("{}{path}", api.base);
    let bearer = |body: Vec<u8>| {
        http.post(url.clone()).header("content-type", "application/json").bearer_auth(&secret).body(body)
    };

    let (status, receipt) = answer(bearer(example.clone())).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    assert_eq!(receipt, json!({"accepted": 4, "rejected": 0, "rejections": []}));
    let (from, to) = ("2020-02-12T00:00:00Z", "2020-02-13T00:00:00Z");
    let at = "2020-02-12T15:15:45.789585Z".to_owned();
    for (id, expected) in ids.iter().zip([1.0, 0.64, -35.0, 5.0]) {
        assert_eq!(values(&api, *id, 1, from, to).await?, [(at.clone(), expected)], "datastream {id}");
    }

    // Another device and a text field: dead letters of the tts door.
    let mut message: Value = serde_json::from_slice(&example)?;
    message["end_device_ids"]["dev_eui"] = json!("70B3D57ED0000001");
    let (status, receipt) = answer(bearer(serde_json::to_vec(&message)?)).await?;
    assert_eq!((status, receipt["rejections"][0]["code"].as_str()), (StatusCode::ACCEPTED, Some("unknown_device")));
    let mut message: Value = serde_json::from_slice(&example)?;
    message["uplink_message"]["decoded_payload"]["label"] = json!("warm");
    let (status, receipt) = answer(bearer(serde_json::to_vec(&message)?)).await?;
    assert_eq!((status, receipt["rejections"][0]["code"].as_str()), (StatusCode::ACCEPTED, Some("non_numeric_value")));

    // A message that is no uplink is answered and ignored; a wrong secret and the other kind's path are refused.
    let join = json!({"end_device_ids": {"device_id": "dev1", "dev_eui": "0004A30B001C0530"}, "join_accept": {"session_key_id": "AXBSH1Pk6Z0G166"}});
    let (status, _) = answer(bearer(serde_json::to_vec(&join)?)).await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, problem) =
        answer(post(&http, url.clone(), Some("hcs_wrong"), "application/json", example.clone())).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    let wrong_kind = format!("{}{}?event=up", api.base, path.replace("/tts", "/chirpstack"));
    let (status, _) = answer(post(&http, wrong_kind, Some(&secret), "application/json", example)).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let letters = dead_letters(&api, "stadt", 2).await?;
    assert!(letters.iter().all(|l| l["door"] == "tts"), "{letters:?}");
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_belong_to_their_organisation_and_refuse_readers_strangers_and_wrong_secrets() -> anyhow::Result<()>
{
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    let ids = device(&api, "stadt", "boden-1", "0102030405060708", &["temperature"]).await?;
    let foreign = device(&api, "fremd", "fremd-1", "1112131415161718", &["temperature"]).await?;
    let admin = api.principal_key("stadt", "stadt-admin", "admin").await?;
    let reader = api.principal_key("stadt", "leser", "reader").await?;
    let stranger = api.principal_key("fremd", "fremd-admin", "admin").await?;
    let http = reqwest::Client::new();
    let create = |key: &str| {
        http.post(format!("{}/v1/admin/connectors", api.base))
            .bearer_auth(key)
            .json(&json!({"org": "stadt", "slug": "cs", "kind": "chirpstack"}))
    };

    // Only the organisation's admins (and the operator) add connectors; the secret is shown once.
    assert_eq!(create(&reader).send().await?.status(), StatusCode::FORBIDDEN);
    assert_eq!(create(&stranger).send().await?.status(), StatusCode::FORBIDDEN);
    let (status, created) = answer(create(&admin)).await?;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (id, secret) =
        (created["id"].as_i64().unwrap_or_default(), created["webhook_secret"].as_str().unwrap_or("").to_owned());
    let (status, listed) = answer(http.get(format!("{}/v1/admin/connectors", api.base)).bearer_auth(&admin)).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert!(!listed.to_string().contains(&secret) && listed[0].get("webhook_secret").is_none(), "{listed}");
    let (status, _) =
        answer(http.get(format!("{}/v1/admin/connectors?org=stadt", api.base)).bearer_auth(&stranger)).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A webhook call needs the connector's secret: none, an API key or a wrong one is 401.
    let up = format!("{}/v1/connectors/{id}/chirpstack?event=up", api.base);
    let event =
        || serde_json::to_vec(&uplink_event("0102030405060708", T0, json!({"temperature": 5.0}))).unwrap_or_default();
    for credential in [None, Some(reader.as_str()), Some(admin.as_str()), Some("hcs_guess")] {
        let (status, problem) = answer(post(&http, up.clone(), credential, "application/json", event())).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{credential:?}: {problem}");
    }
    // Another organisation's device is unknown to this connector: nothing reaches it.
    let theirs = serde_json::to_vec(&uplink_event("1112131415161718", T0, json!({"temperature": 6.0})))?;
    let (status, receipt) = answer(post(&http, up.clone(), Some(&secret), "application/json", theirs)).await?;
    assert_eq!((status, receipt["rejections"][0]["code"].as_str()), (StatusCode::ACCEPTED, Some("unknown_device")));
    let (status, receipt) = answer(post(&http, up.clone(), Some(&secret), "application/json", event())).await?;
    assert_eq!((status, receipt["accepted"].as_u64()), (StatusCode::ACCEPTED, Some(1)), "{receipt}");
    values(&api, ids[0], 1, "2026-11-19T00:00:00Z", "2026-11-21T00:00:00Z").await?;
    assert!(api.all_observations(foreign[0], "2026-11-19T00:00:00Z", "2026-11-21T00:00:00Z", 10).await?.is_empty());

    // A stranger cannot disable it; its admin can, after which the webhook is 403.
    let disable = |key: &str| http.delete(format!("{}/v1/admin/connectors/{id}", api.base)).bearer_auth(key.to_owned());
    assert_eq!(disable(&stranger).send().await?.status(), StatusCode::FORBIDDEN);
    let (status, disabled) = answer(disable(&admin)).await?;
    assert_eq!(status, StatusCode::OK, "{disabled}");
    assert!(disabled["disabled_at"].is_string(), "{disabled}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, problem) = answer(post(&http, up, Some(&secret), "application/json", event())).await?;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("connector_disabled")), "{problem}");

    // Both changes are in the audit log, without the secret.
    let audit = api.get_json("/v1/audit").await?.to_string();
    assert!(audit.contains("connector.create") && audit.contains("connector.disable"), "{audit}");
    assert!(!audit.contains(&secret));
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chirpstack_mqtt_integration_delivers_the_uplinks_published_on_the_network_servers_broker() -> anyhow::Result<()>
{
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    let ids = device(&api, "stadt", "boden-1", "0102030405060708", &["temperature", "rssi", "snr"]).await?;
    // The local Mosquitto stands in for ChirpStack's broker; a unique application per test.
    let application = format!("ab5b4f1e-{}", platform.isolation.id);
    let (user, password) = mqtt_login().unwrap_or_default();
    connector(
        &api,
        json!({"org": "stadt", "slug": "cs-mqtt", "kind": "chirpstack",
               "mqtt_url": format!("mqtt://{}:{}", mqtt_host(), mqtt_port()),
               "mqtt_username": user, "mqtt_password": password, "application": application}),
    )
    .await?;
    let listed = api.get_json("/v1/admin/connectors?org=stadt").await?.to_string();
    assert!(!listed.contains("mqtt_password") && (password.is_empty() || !listed.contains(&password)), "{listed}");
    let topic = |eui: &str| format!("application/{application}/device/{eui}/event/up");
    let mut publisher = Publisher::connect(&platform.isolation.id).await?;

    // ChirpStack's JSON marshaler; published again until ingest has subscribed (a repeat is the same reading).
    let json_event = serde_json::to_vec(&uplink_event("0102030405060708", T0, json!({"temperature": 18.5})))?;
    let (from, to) = ("2026-11-19T00:00:00Z", "2026-11-21T00:00:00Z");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        publisher.publish_all(vec![(topic("0102030405060708"), json_event.clone())]).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if !api.all_observations(ids[0], from, to, 10).await?.is_empty() {
            break;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "the MQTT integration delivered nothing within 60 s");
    }

    // The protobuf marshaler, and an unknown device.
    let proto_event = uplink_event("0102030405060708", T0 + 60, json!({"temperature": 18.75})).encode_to_vec();
    let stranger = uplink_event("A1A2A3A4A5A6A7A8", T0, json!({"temperature": 1.0})).encode_to_vec();
    publisher
        .publish_all(vec![(topic("0102030405060708"), proto_event), (topic("a1a2a3a4a5a6a7a8"), stranger)])
        .await?;
    assert_eq!(
        values(&api, ids[0], 2, from, to).await?,
        [("2026-11-20T00:00:00Z".to_owned(), 18.5), ("2026-11-20T00:01:00Z".to_owned(), 18.75)]
    );
    assert_eq!(values(&api, ids[1], 2, from, to).await?.iter().map(|v| v.1).collect::<Vec<_>>(), [-57.0, -57.0]);
    assert_eq!(values(&api, ids[2], 2, from, to).await?.iter().map(|v| v.1).collect::<Vec<_>>(), [7.25, 7.25]);
    let letters = dead_letters(&api, "stadt", 1).await?;
    assert_eq!(
        (letters[0]["door"].as_str(), letters[0]["reason_code"].as_str()),
        (Some("chirpstack"), Some("unknown_device"))
    );
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_things_stack_mqtt_integration_delivers_the_documented_uplink() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    let ids = device(&api, "stadt", "dev1", "0004A30B001C0530", &["temperature", "luminosity"]).await?;
    let application = format!("app-{}@ttn", platform.isolation.id);
    let (user, password) = mqtt_login().unwrap_or_default();
    connector(
        &api,
        json!({"org": "stadt", "slug": "tts-mqtt", "kind": "tts",
               "mqtt_url": format!("mqtt://{}:{}", mqtt_host(), mqtt_port()),
               "mqtt_username": user, "mqtt_password": password, "application": application}),
    )
    .await?;
    let example = std::fs::read(hoheit_tests::repo().join("tests/fixtures/tts/uplink.json"))?;
    let topic = format!("v3/{application}/devices/dev1/up");
    let mut publisher = Publisher::connect(&platform.isolation.id).await?;
    let (from, to) = ("2020-02-12T00:00:00Z", "2020-02-13T00:00:00Z");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        publisher.publish_all(vec![(topic.clone(), example.clone())]).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if !api.all_observations(ids[1], from, to, 10).await?.is_empty() {
            break;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "the MQTT integration delivered nothing within 60 s");
    }
    let at = "2020-02-12T15:15:45.789585Z".to_owned();
    assert_eq!(values(&api, ids[0], 1, from, to).await?, [(at.clone(), 1.0)], "a repeated uplink is stored once");
    assert_eq!(values(&api, ids[1], 1, from, to).await?, [(at, 0.64)]);
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_kafka_is_away_a_webhook_answers_503() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    device(&api, "stadt", "boden-1", "0102030405060708", &["temperature"]).await?;
    let (_, path, secret) = connector(&api, json!({"org": "stadt", "slug": "cs", "kind": "chirpstack"})).await?;
    let unreachable = crate::push::spawn_ingest_without_kafka(&platform.isolation).await?;
    let event = serde_json::to_vec(&uplink_event("0102030405060708", T0, json!({"temperature": 5.0})))?;
    let url = format!("{}{path}?event=up", unreachable.doors_url);
    let (status, problem) =
        answer(post(&reqwest::Client::new(), url, Some(&secret), "application/json", event)).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    unreachable.shutdown.cancel();
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hoheit_admin_adds_lists_and_disables_connectors() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    platform.api.register("stadt", "probe", "probe", None).await?;
    let url = platform.isolation.database_url.clone();
    let added =
        admin_support::admin_json(&url, &["connectors", "add", "tts-stadt", "--org", "stadt", "--kind", "tts"]).await?;
    let secret = added["webhook_secret"].as_str().unwrap_or_default().to_owned();
    assert!(secret.starts_with("hcs_"), "{added}");
    let id = added["id"].as_i64().unwrap_or_default().to_string();
    let listed = admin_support::admin(&url, &["connectors", "list", "--org", "stadt"]).await?;
    assert!(listed.contains("tts-stadt") && listed.contains(&format!("/v1/connectors/{id}/tts")), "{listed}");
    assert!(!listed.contains(&secret));
    let (_, refused) = admin_support::run_admin(
        &url,
        &[
            "connectors",
            "add",
            "x",
            "--org",
            "stadt",
            "--kind",
            "tts",
            "--mqtt-url",
            "mqtt://h:1883",
            "--application",
            "no-tenant",
        ],
    )
    .await;
    assert!(refused.is_err(), "The Things Stack's application is app@tenant");
    admin_support::admin(&url, &["connectors", "disable", &id]).await?;
    let listed = admin_support::admin_json(&url, &["connectors", "list"]).await?;
    assert!(listed[0]["disabled_at"].is_string(), "{listed}");
    platform.stop().await
}
