//! SensorThings create against the real brokers and database: observations
//! created through each path (`Observations`, `Datastreams({id})/Observations`,
//! `CreateObservations`, the MQTT create topic, and the FROST Python client)
//! read back exactly, from Hoheit's API and at their `Location`; a text result
//! is a `400` and a dead letter of the `sta` door; unknown datastreams,
//! readers and other organisations are refused; updates and deletes are
//! `405`; while Kafka is away the door answers `503` and stores nothing.

use std::path::Path;
use std::time::Duration;

use crate::push::observations;
use hoheit_tests::{answer, eventually, tools_python, ApiClient, Platform, Publisher, TOKEN};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// 2026-11-20T00:00:00Z in microseconds.
const T0_US: i64 = 1_795_132_800_000_000;
const MINUTE_US: i64 = 60_000_000;

fn create(api: &ApiClient, base: &str, path: &str, key: Option<&str>, body: &Value) -> reqwest::RequestBuilder {
    let request = api.http.post(format!("{base}/sta/v1.1/{path}")).json(body);
    match key {
        Some(key) => request.bearer_auth(key),
        None => request,
    }
}

async fn stored(api: &ApiClient, id: i64, count: usize) -> anyhow::Result<Vec<(String, f64)>> {
    eventually(Duration::from_secs(30), "the created observations", || {
        let api = api.clone();
        async move { Ok(observations(&api, id).await.ok().filter(|o| o.len() >= count)) }
    })
    .await
}

async fn dead_letters(api: &ApiClient, count: usize) -> anyhow::Result<Vec<Value>> {
    eventually(Duration::from_secs(30), "the dead letters", || {
        let api = api.clone();
        async move {
            let body = api.get_json("/v1/dead-letters?org=stadt").await?;
            Ok(body["dead_letters"].as_array().filter(|l| l.len() >= count).cloned())
        }
    })
    .await
}

fn link(api: &ApiClient, datastream: i64, micros: i64) -> String {
    format!("{}/sta/v1.1/Observations('{datastream}-{micros}')", api.base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observations_created_by_each_path_read_back_exactly_and_at_their_location() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    let no2 = api.register("stadt", "luft-1", "no2", Some("ug/m3")).await?;
    let door = api.register("stadt", "tor-1", "open", None).await?;
    let publisher = api.principal_key("stadt", "frost-connector", "publisher").await?;
    let key = Some(publisher.as_str());

    // The Datastream nested in the body.
    let body = json!({"result": 41.5, "phenomenonTime": "2026-11-20T00:00:00Z", "Datastream": {"@iot.id": no2}});
    let (status, problem, headers) = answer(create(&api, &api.base, "Observations", key, &body)).await?;
    assert_eq!(status, StatusCode::CREATED, "{problem}");
    let location = headers["location"].to_str()?.to_owned();
    assert_eq!(location, link(&api, no2, T0_US));

    // In the Datastream's collection, an interval (its start is the time).
    let body = json!({"result": 42.25, "phenomenonTime": "2026-11-20T00:01:00Z/2026-11-20T00:02:00Z"});
    let (status, problem, headers) =
        answer(create(&api, &api.base, &format!("Datastreams({no2})/Observations"), key, &body)).await?;
    assert_eq!(status, StatusCode::CREATED, "{problem}");
    assert_eq!(headers["location"], link(&api, no2, T0_US + MINUTE_US).as_str());

    // `Datastream@iot.id` and only a resultTime, straight to ingest's door: a path-absolute Location.
    let body = json!({"result": 42.5, "resultTime": "2026-11-20T00:02:00Z", "Datastream@iot.id": no2});
    let (status, problem, headers) = answer(create(&api, &platform.doors, "Observations", key, &body)).await?;
    assert_eq!(status, StatusCode::CREATED, "{problem}");
    assert_eq!(headers["location"], format!("/sta/v1.1/Observations('{no2}-{}')", T0_US + 2 * MINUTE_US).as_str());

    // The dataArray extension: a link per row, FROST's "error …" for a row that failed.
    let body = json!([
        {"Datastream": {"@iot.id": no2}, "components": ["phenomenonTime", "result"],
         "dataArray@iot.count": 2, "dataArray": [["2026-11-20T00:03:00Z", 43], ["2026-11-20T00:04:00Z", "high"]]},
        {"Datastream": {"@iot.id": door}, "components": ["result", "phenomenonTime"],
         "dataArray": [[true, "2026-11-20T00:00:00Z"], [false, "2026-11-20T00:01:00Z"]]},
        {"Datastream": {"@iot.id": 987_654}, "components": ["result"], "dataArray": [[1]]}
    ]);
    let (status, links, _) = answer(create(&api, &api.base, "CreateObservations", key, &body)).await?;
    assert_eq!(status, StatusCode::CREATED, "{links}");
    let links: Vec<String> = serde_json::from_value(links)?;
    assert_eq!(links[0], link(&api, no2, T0_US + 3 * MINUTE_US));
    assert!(links[1].starts_with("error non_numeric_value"), "{links:?}");
    assert_eq!(links[2..4], [link(&api, door, T0_US), link(&api, door, T0_US + MINUTE_US)]);
    assert_eq!(links[4], "error no Datastream 987654 is registered");

    // Stored exactly; booleans as 1 and 0.
    let values: Vec<f64> = stored(&api, no2, 4).await?.iter().map(|(_, v)| *v).collect();
    assert_eq!(values, [41.5, 42.25, 42.5, 43.0]);
    assert_eq!(
        stored(&api, door, 2).await?,
        [("2026-11-20T00:00:00Z".to_owned(), 1.0), ("2026-11-20T00:01:00Z".to_owned(), 0.0)]
    );

    // GET on the Location is the observation.
    let (status, observation, _) = answer(api.http.get(&location).bearer_auth(TOKEN)).await?;
    assert_eq!(status, StatusCode::OK, "{observation}");
    assert_eq!(observation["@iot.id"], format!("{no2}-{T0_US}"));
    assert_eq!(observation["result"], 41.5);
    assert_eq!(observation["@iot.selfLink"], location.as_str());

    // The failed row is a dead letter of the sta door with its code.
    let letters = dead_letters(&api, 1).await?;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(
        (letters[0]["door"].as_str(), letters[0]["reason_code"].as_str()),
        (Some("sta"), Some("non_numeric_value"))
    );
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_result_is_refused_and_a_dead_letter_and_strangers_readers_and_updates_are_refused() -> anyhow::Result<()>
{
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    let no2 = api.register("stadt", "luft-1", "no2", Some("ug/m3")).await?;
    api.organisation("fremd", "third_party", None).await?;
    let reader = api.principal_key("stadt", "leser", "reader").await?;
    let stranger = api.principal_key("fremd", "fremd-connector", "publisher").await?;
    let publisher = api.principal_key("stadt", "frost-connector", "publisher").await?;
    let reading = json!({"result": 1.0, "phenomenonTime": "2026-11-20T00:00:00Z", "Datastream": {"@iot.id": no2}});

    // A text result: nothing stored, 400 with the code; its dead letter keeps the payload.
    let text = json!({"result": "high", "Datastream": {"@iot.id": no2}});
    let (status, problem, headers) = answer(create(&api, &api.base, "Observations", Some(&publisher), &text)).await?;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("non_numeric_value")), "{problem}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("not a number or a boolean"), "{problem}");
    let letters = dead_letters(&api, 1).await?;
    assert_eq!(
        (letters[0]["door"].as_str(), letters[0]["reason_code"].as_str()),
        (Some("sta"), Some("non_numeric_value"))
    );
    assert_eq!(serde_json::from_str::<Value>(letters[0]["payload_text"].as_str().unwrap_or_default())?, text);

    // Not an Observation at all: 400 with the reason.
    let (status, problem, _) =
        answer(create(&api, &api.base, "Observations", Some(&publisher), &json!({"result": 1}))).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("Datastream"), "{problem}");

    // Unknown datastream, no key, a reader, another organisation's publisher.
    let (status, problem, _) =
        answer(create(&api, &api.base, "Datastreams(987654)/Observations", Some(&publisher), &json!({"result": 1})))
            .await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    let (status, _, _) = answer(create(&api, &api.base, "Observations", None, &reading)).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, problem, _) = answer(create(&api, &api.base, "Observations", Some(&reader), &reading)).await?;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("read_only_role")), "{problem}");
    let (status, problem, _) = answer(create(&api, &api.base, "Observations", Some(&stranger), &reading)).await?;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("foreign_organisation")), "{problem}");
    let array = json!([{"Datastream": {"@iot.id": no2}, "components": ["result"], "dataArray": [[1]]}]);
    let (status, problem, _) = answer(create(&api, &api.base, "CreateObservations", Some(&stranger), &array)).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");

    // Updates and deletes: 405 with a sentence and Allow; creating other entities: 405.
    let observation = format!("{}/sta/v1.1/Observations('{no2}-{T0_US}')", api.base);
    for method in [reqwest::Method::PATCH, reqwest::Method::PUT, reqwest::Method::DELETE] {
        let request =
            api.http.request(method.clone(), &observation).bearer_auth(&publisher).json(&json!({"result": 2}));
        let (status, problem, headers) = answer(request).await?;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {problem}");
        assert_eq!(headers["allow"], "GET");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert!(problem["detail"].as_str().unwrap_or_default().contains("updates and deletes are not supported"));
    }
    let request =
        api.http.delete(format!("{}/sta/v1.1/Datastreams({no2})/Observations", api.base)).bearer_auth(&publisher);
    let (status, _, headers) = answer(request).await?;
    assert_eq!((status, headers["allow"].to_str()?), (StatusCode::METHOD_NOT_ALLOWED, "GET, POST"));
    let (status, problem, _) =
        answer(create(&api, &api.base, "Things", Some(&publisher), &json!({"name": "x", "description": "y"}))).await?;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{problem}");

    // Nothing of it was stored, and only the text result is a dead letter.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(observations(&api, no2).await?.is_empty());
    assert_eq!(dead_letters(&api, 1).await?.len(), 1);
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observations_published_to_the_mqtt_create_topic_are_stored_and_bad_ones_are_dead_letters() -> anyhow::Result<()>
{
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    let no2 = api.register("stadt", "luft-1", "no2", Some("ug/m3")).await?;
    let prefix = platform.isolation.sta_mqtt_prefix();
    let mut publisher = Publisher::connect(&platform.isolation.id).await?;
    let topic = format!("{prefix}/Datastreams({no2})/Observations");
    publisher
        .publish_all(vec![
            (topic.clone(), json!({"result": 12.5, "phenomenonTime": "2026-11-20T00:00:00Z"}).to_string().into_bytes()),
            (topic.clone(), json!({"result": true, "phenomenonTime": "2026-11-20T00:01:00Z"}).to_string().into_bytes()),
            (
                topic.clone(),
                json!({"result": "high", "phenomenonTime": "2026-11-20T00:02:00Z"}).to_string().into_bytes(),
            ),
        ])
        .await?;
    assert_eq!(
        stored(&api, no2, 2).await?,
        [("2026-11-20T00:00:00Z".to_owned(), 12.5), ("2026-11-20T00:01:00Z".to_owned(), 1.0)]
    );
    let letters = dead_letters(&api, 1).await?;
    assert_eq!(
        (letters[0]["door"].as_str(), letters[0]["reason_code"].as_str()),
        (Some("sta"), Some("non_numeric_value"))
    );
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_kafka_is_away_a_create_is_503_and_nothing_is_stored() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    let no2 = api.register("stadt", "luft-1", "no2", Some("ug/m3")).await?;
    let publisher = api.principal_key("stadt", "frost-connector", "publisher").await?;
    let unreachable = super::push::spawn_ingest_without_kafka(&platform.isolation).await?;
    let body = json!({"result": 7.0, "phenomenonTime": "2026-11-20T00:00:00Z", "Datastream": {"@iot.id": no2}});
    let (status, problem, headers) =
        answer(create(&api, &unreachable.doors_url, "Observations", Some(&publisher), &body)).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert!(headers.contains_key("retry-after"));
    let array = json!([{"Datastream": {"@iot.id": no2}, "components": ["result"], "dataArray": [[1]]}]);
    let (status, problem, _) =
        answer(create(&api, &unreachable.doors_url, "CreateObservations", Some(&publisher), &array)).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    unreachable.shutdown.cancel();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(observations(&api, no2).await?.is_empty());
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frost_python_client_creates_observations_that_read_back_exactly() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    let no2 = api.register("stadt", "luft-1", "no2", Some("ug/m3")).await?;
    let publisher = api.principal_key("stadt", "frost-connector", "publisher").await?;
    // A publisher writes but reads nothing that is not open: the client reads back with a reader's key.
    let reader = api.principal_key("stadt", "leser", "reader").await?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/sta_client_create.py");
    let output = tokio::process::Command::new(tools_python())
        .arg(script)
        .arg(format!("{}/sta/v1.1", api.base))
        .arg(no2.to_string())
        .env("HOHEIT_KEY", &publisher)
        .env("HOHEIT_READ_KEY", &reader)
        .output()
        .await?;
    assert!(output.status.success(), "frost-sta-client failed: {}", String::from_utf8_lossy(&output.stderr));
    let seen: Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(seen["created_id"], format!("{no2}-{T0_US}"));
    assert_eq!(
        seen["array_links"],
        json!([link(&api, no2, T0_US + MINUTE_US), link(&api, no2, T0_US + 2 * MINUTE_US)])
    );
    // The client found the created observation by the id it was given (after the writer stored it).
    assert_eq!(seen["found"], json!({"id": format!("{no2}-{T0_US}"), "result": 21.5}));
    let stored = stored(&api, no2, 3).await?;
    assert_eq!(
        stored,
        [
            ("2026-11-20T00:00:00Z".to_owned(), 21.5),
            ("2026-11-20T00:01:00Z".to_owned(), 22.25),
            ("2026-11-20T00:02:00Z".to_owned(), 1.0)
        ]
    );
    platform.stop().await
}
