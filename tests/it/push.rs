//! The HTTP push door against the real brokers and database: readings pushed
//! through the API (which forwards to ingest) read back exactly; bad ones are
//! dead letters with their codes and the door; readers and other
//! organisations are refused; while Kafka is away the door answers `503` and
//! accepts nothing.

use std::time::Duration;

use hoheit_proto::v1::{ObservationBatch, SensorReading};
use hoheit_tests::{answer, eventually, start_ingest_with, ApiClient, Isolation, Platform};
use prost::Message;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// 2026-11-20T00:00:00Z.
const T0: &str = "2026-11-20T00:00:00Z";

/// A push request with `key` (none: anonymous).
fn push(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    key: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    let request = http.post(format!("{base}{path}")).header("content-type", content_type).body(body);
    match key {
        Some(key) => request.header("x-api-key", key),
        None => request,
    }
}

pub(crate) async fn observations(api: &ApiClient, id: i64) -> anyhow::Result<Vec<(String, f64)>> {
    api.all_observations(id, "2026-11-19T00:00:00Z", "2026-11-21T00:00:00Z", 1000).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_pushed_over_http_read_back_exactly_and_bad_ones_are_dead_letters_of_the_http_door(
) -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    let no2 = api.register("stadt", "luft-1", "no2", Some("ug/m3")).await?;
    let temp = api.register("stadt", "luft-1", "temp", Some("Cel")).await?;
    let publisher = api.principal_key("stadt", "gateway-1", "publisher").await?;
    let http = reqwest::Client::new();

    // One reading, through the API's path (forwarded to ingest).
    let one = json!({"time": T0, "value": 41.5}).to_string().into_bytes();
    let (status, receipt, _) =
        answer(push(&http, &api.base, "/v1/push/stadt/luft-1/no2", Some(&publisher), "application/json", one)).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    assert_eq!(receipt, json!({"accepted": 1, "rejected": 0, "rejections": []}));

    // An array with one wrong unit, straight to ingest's door: one in, one out, with its code.
    let array = json!([
        {"time": "2026-11-20T00:01:00Z", "value": 42.25, "unit": "ug/m3"},
        {"time": "2026-11-20T00:02:00Z", "value": 43.0, "unit": "ppm"},
    ]);
    let (status, receipt, _) = answer(push(
        &http,
        &platform.doors,
        "/v1/push/stadt/luft-1/no2",
        Some(&publisher),
        "application/json",
        array.to_string().into_bytes(),
    ))
    .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    assert_eq!((receipt["accepted"].as_u64(), receipt["rejected"].as_u64()), (Some(1), Some(1)), "{receipt}");
    assert_eq!(receipt["rejections"][0]["code"], "unit_mismatch");
    assert_eq!(receipt["rejections"][0]["index"], 1);

    // SenML on the thing's path, and a protobuf batch.
    let senml = json!([{"bn": "", "bt": 1_795_132_980, "n": "temp", "u": "Cel", "v": 3.5}, {"n": "no2", "v": 44.0}]);
    let (status, receipt, _) = answer(push(
        &http,
        &api.base,
        "/v1/push/stadt/luft-1",
        Some(&publisher),
        "application/senml+json",
        senml.to_string().into_bytes(),
    ))
    .await?;
    assert_eq!((status, receipt["accepted"].as_u64()), (StatusCode::ACCEPTED, Some(2)), "{receipt}");
    let batch = ObservationBatch {
        readings: vec![SensorReading {
            property: "temp".into(),
            time_unix_us: Some(1_795_133_040_000_000),
            value: 4.25,
            unit: String::new(),
        }],
    };
    let (status, receipt, _) = answer(push(
        &http,
        &api.base,
        "/v1/push/stadt/luft-1",
        Some(&publisher),
        "application/x-protobuf",
        batch.encode_to_vec(),
    ))
    .await?;
    assert_eq!((status, receipt["accepted"].as_u64()), (StatusCode::ACCEPTED, Some(1)), "{receipt}");

    // What 202 counted is stored, exactly; the API reads it back at once after 202 plus the writer's batch.
    let no2_stored = eventually(Duration::from_secs(30), "three no2 readings", || {
        let api = api.clone();
        async move { Ok(observations(&api, no2).await.ok().filter(|o| o.len() == 3)) }
    })
    .await?;
    let values: Vec<f64> = no2_stored.iter().map(|(_, v)| *v).collect();
    assert_eq!(values, [41.5, 42.25, 44.0]);
    assert_eq!(no2_stored[0].0, "2026-11-20T00:00:00Z");
    let temps = eventually(Duration::from_secs(30), "two temperatures", || {
        let api = api.clone();
        async move { Ok(observations(&api, temp).await.ok().filter(|o| o.len() == 2)) }
    })
    .await?;
    assert_eq!(temps.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [3.5, 4.25]);

    // The rejected reading is a dead letter of the http door, with the raw payload.
    let letter = eventually(Duration::from_secs(30), "the dead letter", || {
        let api = api.clone();
        async move {
            let body = api.get_json("/v1/dead-letters?org=stadt").await?;
            Ok(body["dead_letters"].as_array().and_then(|l| l.first().cloned()))
        }
    })
    .await?;
    assert_eq!(letter["door"], "http");

    // Writes are counted per door and organisation (they are not in the read audit).
    let metrics = reqwest::get(format!("{}/metrics", platform.ingest_ops())).await?.text().await?;
    let count = |result: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("hoheit_ingest_door_readings_total{")
                    && l.contains("door=\"http\"")
                    && l.contains("org=\"stadt\"")
                    && l.contains(&format!("result=\"{result}\""))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    assert_eq!((count("accepted"), count("rejected")), (Some(5.0), Some(1.0)), "{metrics}");
    let audit = api.get_json("/v1/audit").await?;
    assert!(
        audit["records"].as_array().is_none_or(|r| r.iter().all(|r| r["principal_name"] != "gateway-1")),
        "a write is no read: {audit}"
    );
    assert_eq!(letter["reason_code"], "unit_mismatch");
    assert_eq!(letter["mqtt_topic"], format!("{}/stadt/luft-1/no2", platform.isolation.topic_root));
    assert_eq!(serde_json::from_str::<Value>(letter["payload_text"].as_str().unwrap_or_default())?, array);
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_door_refuses_readers_strangers_and_what_it_cannot_read() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    let no2 = api.register("stadt", "luft-1", "no2", Some("ug/m3")).await?;
    api.organisation("fremd", "third_party", None).await?;
    let reader = api.principal_key("stadt", "leser", "reader").await?;
    let stranger = api.principal_key("fremd", "fremd-gateway", "publisher").await?;
    let publisher = api.principal_key("stadt", "gateway-1", "publisher").await?;
    let http = reqwest::Client::new();
    let reading = || json!({"time": T0, "value": 1.0}).to_string().into_bytes();
    let path = "/v1/push/stadt/luft-1/no2";

    let (status, problem, headers) = answer(push(&http, &api.base, path, None, "application/json", reading())).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert_eq!(headers["content-type"], "application/problem+json");
    let (status, problem, _) =
        answer(push(&http, &api.base, path, Some(&reader), "application/json", reading())).await?;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("read_only_role")), "{problem}");
    let (status, problem, _) =
        answer(push(&http, &api.base, path, Some(&stranger), "application/json", reading())).await?;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("foreign_organisation")), "{problem}");
    let (status, problem, _) = answer(push(&http, &api.base, path, Some(&publisher), "text/plain", reading())).await?;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{problem}");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("application/json"), "{problem}");
    let huge = vec![b' '; 300 * 1024];
    let (status, problem, _) = answer(push(&http, &api.base, path, Some(&publisher), "application/json", huge)).await?;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{problem}");
    let (status, _, _) =
        answer(push(&http, &api.base, "/v1/push/Stadt!/x/y", Some(&publisher), "application/json", reading())).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A publisher key writes and reads nothing that is not open.
    let (status, _, _) = answer(
        http.get(format!(
            "{}/v1/datastreams/{no2}/observations?from=2026-11-19T00:00:00Z&to=2026-11-21T00:00:00Z",
            api.base
        ))
        .header("x-api-key", &publisher),
    )
    .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The operator's token writes into every organisation (as it administers them).
    let (status, receipt, _) = answer(
        http.post(format!("{}{path}", api.base))
            .bearer_auth(hoheit_tests::TOKEN)
            .header("content-type", "application/json")
            .body(json!({"time": "2026-11-20T01:00:00Z", "value": 2.0}).to_string()),
    )
    .await?;
    assert_eq!((status, receipt["accepted"].as_u64()), (StatusCode::ACCEPTED, Some(1)), "{receipt}");

    // Nothing of the refused requests was stored or dead-lettered.
    let stored = eventually(Duration::from_secs(30), "the operator's reading", || {
        let api = api.clone();
        async move { Ok(observations(&api, no2).await.ok().filter(|o| !o.is_empty())) }
    })
    .await?;
    assert_eq!(stored, [("2026-11-20T01:00:00Z".to_owned(), 2.0)], "only the operator's reading");
    let letters = api.get_json("/v1/dead-letters?org=stadt").await?;
    assert_eq!(letters["dead_letters"], json!([]), "refused requests leave no dead letters");
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_gets_429_with_retry_after() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let _pool = isolation.create_database().await?;
    let ingest = start_ingest_with(&isolation, |ingest| ingest.http_requests_per_second = 2).await?;
    let (api_running, api) = hoheit_tests::start_api(&isolation).await?;
    api.register("stadt", "luft-1", "no2", Some("ug/m3")).await?;
    let publisher = api.principal_key("stadt", "gateway-1", "publisher").await?;
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let body = json!({"value": 1.0}).to_string().into_bytes();
        let (status, _, headers) = answer(push(
            &http,
            &ingest.doors_url,
            "/v1/push/stadt/luft-1/no2",
            Some(&publisher),
            "application/json",
            body,
        ))
        .await?;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(headers.contains_key("retry-after"));
        }
        statuses.push(status);
    }
    assert!(
        statuses.contains(&StatusCode::ACCEPTED) && statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    api_running.stop().await?;
    ingest.stop().await?;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_kafka_is_away_the_door_answers_503_and_accepts_nothing_then_accepts_after_restart() -> anyhow::Result<()>
{
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    let no2 = api.register("stadt", "luft-1", "no2", Some("ug/m3")).await?;
    let publisher = api.principal_key("stadt", "gateway-1", "publisher").await?;
    let http = reqwest::Client::new();

    // A second ingest whose Kafka is away (nothing listens at its bootstrap address).
    let unreachable = spawn_ingest_without_kafka(&platform.isolation).await?;
    let body = json!({"time": T0, "value": 7.0}).to_string().into_bytes();
    let (status, problem, headers) = answer(push(
        &http,
        &unreachable.doors_url,
        "/v1/push/stadt/luft-1/no2",
        Some(&publisher),
        "application/json",
        body.clone(),
    ))
    .await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert!(headers.contains_key("retry-after"));
    assert!(problem["detail"].as_str().unwrap_or_default().contains("Kafka"), "{problem}");
    unreachable.shutdown.cancel();

    // The running ingest (Kafka back) accepts the same request; it is stored once.
    let (status, receipt, _) =
        answer(push(&http, &platform.doors, "/v1/push/stadt/luft-1/no2", Some(&publisher), "application/json", body))
            .await?;
    assert_eq!((status, receipt["accepted"].as_u64()), (StatusCode::ACCEPTED, Some(1)), "{receipt}");
    let stored = eventually(Duration::from_secs(30), "the reading", || {
        let api = api.clone();
        async move { Ok(observations(&api, no2).await.ok().filter(|o| !o.is_empty())) }
    })
    .await?;
    assert_eq!(stored, [("2026-11-20T00:00:00Z".to_owned(), 7.0)]);
    platform.stop().await
}

/// Ingest on this test's database whose Kafka bootstrap is a closed port: it
/// never becomes ready, but its HTTP doors answer.
pub(crate) async fn spawn_ingest_without_kafka(isolation: &Isolation) -> anyhow::Result<hoheit_tests::Running> {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut config = isolation.ingest_config();
    config.kafka.bootstrap = closed.to_string();
    config.mqtt_client_id = format!("{}-nokafka", config.mqtt_client_id);
    let ingest = hoheit_ingest::Ingest::build(config).await?;
    let ops_url = format!("http://{}", ingest.ops_addr());
    let doors_url = format!("http://{}", ingest.http_addr());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(ingest.run(shutdown.clone()));
    Ok(hoheit_tests::Running { shutdown, task, ops_url, doors_url })
}
