//! Hostile and oversized input: every limit, when exceeded, gives a clear
//! error (a problem+json with the limit, or a dead letter with the reason),
//! and no parameter lets SQL, paths or headers through.
//!
//! Against the real services: the API in-process on a fresh database, ingest
//! and writer on the real Mosquitto and tansu.

use std::time::Duration;

use hoheit_tests::{eventually, start_api, Isolation, Platform, Publisher, TOKEN};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Asserts a problem+json response with `status` whose detail contains `needle`.
async fn assert_problem(response: reqwest::Response, status: u16, needle: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(content_type.starts_with("application/problem+json"), "content type {content_type}");
    let body: Value = response.json().await.expect("a JSON problem");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(needle), "detail {detail:?} should contain {needle:?}");
    body
}

#[tokio::test]
async fn raw_observations_over_more_than_31_days_are_a_400_that_says_so() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    isolation.create_database().await?;
    let (api_running, api) = start_api(&isolation).await?;
    let id = api.register("limits", "pegel-1", "level", Some("cm")).await?;

    let path = format!("/v1/datastreams/{id}/observations?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:01Z");
    assert_problem(api.get(&path).send().await?, 400, "at most 31 days").await;
    let path = format!("/v1/datastreams/{id}/observations?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z");
    assert_eq!(api.get(&path).send().await?.status().as_u16(), 200, "exactly 31 days is allowed");
    // Page size: the maximum and one past it.
    let path = format!("/v1/datastreams/{id}/observations?limit=10001");
    assert_problem(api.get(&path).send().await?, 400, "between 1 and 10000").await;

    api_running.stop().await?;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test]
async fn a_body_over_64_kib_is_a_problem_413_with_the_limit() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    isolation.create_database().await?;
    let (api_running, api) = start_api(&isolation).await?;

    // Announced by Content-Length: refused before it is read.
    let big = json!({"slug": "big", "name": "x".repeat(100 * 1024)});
    assert_problem(api.post("/v1/admin/organisations", big).send().await?, 413, "64 KiB").await;

    // Chunked, without a length: refused when the limit is crossed while reading.
    let addr = api.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await?;
    let head = format!(
        "POST /v1/admin/organisations HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    let chunk = vec![b' '; 16 * 1024];
    for _ in 0..8 {
        let frame = [format!("{:x}\r\n", chunk.len()).into_bytes(), chunk.clone(), b"\r\n".to_vec()].concat();
        if stream.write_all(&frame).await.is_err() {
            break; // the server may close as soon as it has answered
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/problem+json") && answer.contains("64 KiB"), "{answer}");

    api_running.stop().await?;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test]
async fn no_parameter_lets_sql_or_paths_through() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let (api_running, api) = start_api(&isolation).await?;
    let id = api.register("inject", "pegel-1", "level", Some("cm")).await?;

    let hostile = [
        "' OR 1=1 --",
        "1; DROP TABLE observations; --",
        "1' UNION SELECT secret_hash FROM api_keys --",
        "$$; SELECT pg_sleep(10); $$",
        "%00",
        "../../../../etc/passwd",
        "\u{202e}1",
    ];
    for value in hostile {
        let v = urlencode(value);
        for path in [
            format!("/v1/datastreams/{id}/observations?from={v}"),
            format!("/v1/datastreams/{id}/observations?to={v}"),
            format!("/v1/datastreams/{id}/observations?limit={v}"),
            format!("/v1/datastreams/{id}/observations?cursor={v}"),
            format!("/v1/datastreams/{id}/aggregates?interval={v}"),
            format!("/v1/datastreams/{v}"),
            format!("/v1/datastreams/{v}/observations"),
            format!("/v1/dead-letters?org={v}"),
            format!("/v1/dead-letters?cursor={v}"),
            format!("/v1/datasets/{v}"),
            format!("/v1/audit?dataset={v}"),
            format!("/v1/transparency?from={v}"),
        ] {
            let response = api.get(&path).send().await?;
            let status = response.status().as_u16();
            let body = response.text().await?;
            assert!(matches!(status, 400 | 404 | 422), "{path}: {status} {body}");
            assert!(!body.contains("root:") && !body.to_lowercase().contains("syntax error"), "{path}: {body}");
        }
    }
    // Path traversal, encoded and not.
    for path in
        ["/v1/datastreams/..%2F..%2Fetc%2Fpasswd", "/v1/datastreams/%2e%2e/%2e%2e/etc/passwd", "/../../etc/passwd"]
    {
        let response = api.get(path).send().await?;
        let status = response.status().as_u16();
        let body = response.text().await?;
        assert!(matches!(status, 400 | 404), "{path}: {status} {body}");
        assert!(!body.contains("root:"), "{path}: {body}");
    }
    // Everything is still there.
    let datastreams: i64 = sqlx::query_scalar("SELECT count(*) FROM datastreams").fetch_one(&pool).await?;
    assert_eq!(datastreams, 1);
    sqlx::query("SELECT count(*) FROM observations").fetch_one(&pool).await?;

    api_running.stop().await?;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test]
async fn an_invalid_request_id_is_replaced_not_echoed() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    isolation.create_database().await?;
    let (api_running, api) = start_api(&isolation).await?;

    let echoed = |r: &reqwest::Response| r.headers().get("x-request-id").map(|v| v.to_str().unwrap_or("").to_owned());
    let good = api.get("/v1/datastreams").header("x-request-id", "abc-123").send().await?;
    assert_eq!(echoed(&good).as_deref(), Some("abc-123"), "a well-formed id is kept");
    for bad in ["abc<script>alert(1)</script>", "a b", "x;Set-Cookie=1", &"a".repeat(65), "é"] {
        let response = api.get("/v1/datastreams").header("x-request-id", bad).send().await?;
        let id = echoed(&response).expect("every response has a request id");
        assert_ne!(id, bad);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "a fresh id instead: {id}");
    }
    // A header that tries to start a new header line never gets through:
    // the server refuses the request outright.
    let addr = api.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await?;
    stream
        .write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nx-request-id: a\rSet-Cookie: x=1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.to_lowercase().contains("set-cookie"), "{answer}");

    api_running.stop().await?;
    isolation.drop_database().await;
    Ok(())
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The dead letter of the message published to `topic`, once the writer stored it.
async fn dead_letter_of(platform: &Platform, topic: &str) -> anyhow::Result<(String, String, i64)> {
    let pool = platform.pool.clone();
    let topic = topic.chars().take(1024).collect::<String>();
    eventually(Duration::from_secs(60), "the dead letter", || {
        let (pool, topic) = (pool.clone(), topic.clone());
        async move {
            let row: Option<(String, String, i64)> = sqlx::query_as(
                "SELECT reason_code, reason, length(payload)::bigint FROM dead_letters WHERE mqtt_topic = $1",
            )
            .bind(&topic)
            .fetch_optional(&pool)
            .await?;
            Ok(row)
        }
    })
    .await
}

#[tokio::test]
async fn oversized_payloads_too_many_readings_and_long_topics_end_as_dead_letters_with_the_reason() -> anyhow::Result<()>
{
    let platform = Platform::start().await?;
    platform.api.register("grenzen", "pegel-1", "level", None).await?;
    let root = &platform.isolation.topic_root;
    let topic = format!("{root}/grenzen/pegel-1/level");

    let mut publisher = Publisher::connect("hostile").await?;
    // 300 KiB of one valid JSON reading, padded: over the 256 KiB payload limit.
    let oversized = format!("{{\"value\": 1.0, \"pad\": \"{}\"}}", "x".repeat(300 * 1024));
    let too_many: Vec<Value> = (0..10_001).map(|i| json!({"value": i})).collect();
    let long_topic = format!("{root}/grenzen/{}/level", "a".repeat(600));
    publisher
        .publish_all(vec![(topic.clone(), oversized.into_bytes()), (long_topic.clone(), br#"{"value": 1}"#.to_vec())])
        .await?;
    let (code, reason, stored) = dead_letter_of(&platform, &topic).await?;
    assert_eq!(code, "payload_too_large", "{reason}");
    assert!(reason.contains("262144") || reason.contains("256"), "the reason names the limit: {reason}");
    assert!(stored > 300 * 1024, "the raw payload is kept: {stored}");
    let (code, reason, _) = dead_letter_of(&platform, &long_topic).await?;
    assert_eq!(code, "invalid_topic", "{reason}");
    assert!(reason.contains("512"), "the reason names the limit: {reason}");

    // Readings per message, on a topic of its own so the dead letter is told apart.
    platform.api.register("grenzen", "pegel-2", "level", None).await?;
    let topic2 = format!("{root}/grenzen/pegel-2/level");
    publisher.publish_all(vec![(topic2.clone(), serde_json::to_vec(&too_many)?)]).await?;
    let (code, reason, _) = dead_letter_of(&platform, &topic2).await?;
    assert_eq!(code, "too_many_readings", "{reason}");
    assert!(reason.contains("10000") || reason.contains("10,000"), "the reason names the limit: {reason}");

    platform.stop().await
}

#[tokio::test]
async fn a_client_that_sends_its_headers_too_slowly_is_cut_off() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    isolation.create_database().await?;
    let (api_running, api) = start_api(&isolation).await?;
    let addr = api.base.trim_start_matches("http://").to_owned();

    let mut stream = tokio::net::TcpStream::connect(&addr).await?;
    stream.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ").as_bytes()).await?;
    // One byte a second, never finishing the head. The server must hang up
    // long before this loop runs out (its header read timeout is 10 s).
    let mut closed = false;
    for _ in 0..120 {
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => {} // e.g. a 408 before the close
            Err(_) => {}
        }
        if stream.write_all(b"a").await.is_err() {
            closed = true;
            break;
        }
    }
    assert!(closed, "the server kept a connection whose headers never finished");
    // Other clients are served as usual.
    assert!(api.get("/healthz").send().await?.status().is_success());

    api_running.stop().await?;
    isolation.drop_database().await;
    Ok(())
}
