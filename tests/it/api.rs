//! The API against a real TimescaleDB: authentication, registry
//! administration, cursor paging, aggregates and problem+json errors.

use chrono::{DateTime, TimeZone, Utc};
use hoheit_domain::{DatastreamId, Micros, Reading};
use hoheit_tests::{start_api, ApiClient, Isolation, TOKEN};
use serde_json::{json, Value};

const T0: i64 = 1_795_132_800_000_000; // 2026-11-20T00:00:00Z

fn rfc3339(micros: i64) -> String {
    Utc.timestamp_micros(micros).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(!body["detail"].as_str().unwrap_or_default().is_empty(), "a reason: {body}");
    body
}

struct Setup {
    isolation: Isolation,
    pool: sqlx::PgPool,
    api: ApiClient,
    running: hoheit_tests::Running,
}

async fn setup() -> Setup {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await.unwrap();
    let (running, api) = start_api(&isolation).await.unwrap();
    Setup { isolation, pool, api, running }
}

impl Setup {
    async fn teardown(self) {
        self.running.stop().await.unwrap();
        self.pool.close().await;
        self.isolation.drop_database().await;
    }

    async fn insert(&self, id: i64, readings: &[(i64, f64)]) {
        let rows: Vec<Reading> = readings
            .iter()
            .map(|&(t, v)| Reading { datastream: DatastreamId(id), time: Micros(t), value: v })
            .collect();
        let mut conn = self.pool.acquire().await.unwrap();
        hoheit_store::observations::insert(&mut conn, &rows).await.unwrap();
    }
}

#[tokio::test]
async fn anonymous_callers_see_no_non_open_data_and_wrong_tokens_are_refused() {
    let s = setup().await;
    let http = reqwest::Client::new();
    s.api.register("stadt", "luft-1", "no2", Some("ug/m3")).await.unwrap();
    let anonymous: Value =
        http.get(format!("{}/v1/datastreams", s.api.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(anonymous["datastreams"], json!([]), "an unassigned datastream is internal, not public");
    let admin = http
        .post(format!("{}/v1/admin/organisations", s.api.base))
        .json(&json!({"slug": "x", "name": "x"}))
        .send()
        .await
        .unwrap();
    problem(admin, 403).await;
    let wrong =
        http.get(format!("{}/v1/datastreams", s.api.base)).bearer_auth(format!("{TOKEN}x")).send().await.unwrap();
    problem(wrong, 401).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = http.get(format!("{}{path}", s.api.base)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let metrics = http.get(format!("{}/metrics", s.api.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("hoheit_api_auth_denied_total"), "{metrics}");
    s.teardown().await;
}

#[tokio::test]
async fn registry_admin_creates_lists_and_rejects_duplicates_and_bad_slugs() {
    let s = setup().await;
    let id = s.api.register("stadt", "luft-1", "no2", Some("ug/m3")).await.unwrap();
    let list = s.api.get_json("/v1/datastreams").await.unwrap();
    let streams = list["datastreams"].as_array().unwrap();
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0]["id"], id);
    assert_eq!(streams[0]["org"], "stadt");
    assert_eq!(streams[0]["thing"], "luft-1");
    assert_eq!(streams[0]["property"], "no2");
    assert_eq!(streams[0]["unit"], "ug/m3");
    assert_eq!(streams[0]["latest_time"], Value::Null);

    let again = s
        .api
        .post("/v1/admin/datastreams", json!({"org": "stadt", "thing": "luft-1", "property": "no2", "name": "x"}))
        .send()
        .await
        .unwrap();
    problem(again, 409).await;
    let bad = s.api.post("/v1/admin/organisations", json!({"slug": "Stadt/#", "name": "x"})).send().await.unwrap();
    let body = problem(bad, 422).await;
    assert!(body["detail"].as_str().unwrap().contains("a-z"), "{body}");
    let orphan =
        s.api.post("/v1/admin/things", json!({"org": "nobody", "slug": "t", "name": "x"})).send().await.unwrap();
    problem(orphan, 404).await;
    let not_json = s
        .api
        .http
        .post(format!("{}/v1/admin/organisations", s.api.base))
        .bearer_auth(TOKEN)
        .body("{")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    problem(not_json, 400).await;

    s.insert(id, &[(T0, 1.0), (T0 + 5, 2.0)]).await;
    let one = s.api.get_json(&format!("/v1/datastreams/{id}")).await.unwrap();
    assert_eq!(one["latest_time"], rfc3339(T0 + 5));
    assert_eq!(one["latest_value"], 2.0);
    s.teardown().await;
}

#[tokio::test]
async fn observations_page_with_cursors_without_gaps_or_repeats() {
    let s = setup().await;
    let id = s.api.register("stadt", "pegel", "level", Some("cm")).await.unwrap();
    let readings: Vec<(i64, f64)> = (0..2_345).map(|i| (T0 + i * 1_000_001, i as f64 * 0.5)).collect();
    s.insert(id, &readings).await;
    // Re-inserting is idempotent.
    s.insert(id, &readings[..100]).await;

    let got = s.api.all_observations(id, &rfc3339(T0), &rfc3339(T0 + 10_000_000_000), 1000).await.unwrap();
    let got: Vec<(i64, f64)> =
        got.iter().map(|(t, v)| (DateTime::parse_from_rfc3339(t).unwrap().timestamp_micros(), *v)).collect();
    assert_eq!(got, readings);

    // The range is half-open and respected.
    let path =
        format!("/v1/datastreams/{id}/observations?from={}&to={}", rfc3339(T0 + 1_000_001), rfc3339(T0 + 3_000_003));
    let body = s.api.get_json(&path).await.unwrap();
    let times: Vec<&str> =
        body["observations"].as_array().unwrap().iter().map(|o| o["time"].as_str().unwrap()).collect();
    assert_eq!(times.len(), 2);
    assert_eq!(body["next_cursor"], Value::Null);
    assert_eq!(body["unit"], "cm");

    let response = s
        .api
        .get(&format!(
            "/v1/datastreams/{id}/observations?from={}&to={}&limit=10",
            rfc3339(T0),
            rfc3339(T0 + 100_000_000)
        ))
        .send()
        .await
        .unwrap();
    assert!(response.headers()["link"].to_str().unwrap().contains("rel=\"next\""));
    s.teardown().await;
}

#[tokio::test]
async fn aggregates_compute_avg_min_max_count_per_bucket() {
    let s = setup().await;
    let id = s.api.register("stadt", "zaehler", "vehicles", Some("count")).await.unwrap();
    // Two 15-minute buckets: values 1..=3 in the first, 10 and 20 in the second.
    s.insert(
        id,
        &[
            (T0, 1.0),
            (T0 + 60_000_000, 2.0),
            (T0 + 899_999_999, 3.0),
            (T0 + 900_000_000, 10.0),
            (T0 + 1_000_000_000, 20.0),
        ],
    )
    .await;
    let body = s
        .api
        .get_json(&format!(
            "/v1/datastreams/{id}/aggregates?from={}&to={}&interval=15m",
            rfc3339(T0),
            rfc3339(T0 + 3_600_000_000)
        ))
        .await
        .unwrap();
    assert_eq!(body["interval_seconds"], 900);
    assert_eq!(body["unit"], "count");
    assert_eq!(body["datastream_id"], id);
    let buckets = body["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2);
    assert_eq!(buckets[0], json!({"time": "2026-11-20T00:00:00Z", "avg": 2.0, "min": 1.0, "max": 3.0, "count": 3}));
    assert_eq!(buckets[1], json!({"time": "2026-11-20T00:15:00Z", "avg": 15.0, "min": 10.0, "max": 20.0, "count": 2}));
    s.teardown().await;
}

#[tokio::test]
async fn bad_parameters_get_problem_details_with_the_reason() {
    let s = setup().await;
    let id = s.api.register("stadt", "zaehler", "vehicles", None).await.unwrap();
    let cases = [
        (format!("/v1/datastreams/{id}/observations?from=yesterday"), 400, "RFC 3339"),
        (format!("/v1/datastreams/{id}/observations?limit=0"), 400, "limit"),
        (format!("/v1/datastreams/{id}/observations?limit=abc"), 400, "limit"),
        (format!("/v1/datastreams/{id}/observations?cursor=%27%20OR%201%3D1"), 400, "cursor"),
        (format!("/v1/datastreams/{id}/observations?colour=red"), 400, "colour"),
        (format!("/v1/datastreams/{id}/aggregates?interval=7x"), 400, "interval"),
        (format!("/v1/datastreams/{id}/aggregates?interval=1s&from=2020-01-01T00:00:00Z"), 400, "buckets"),
        ("/v1/datastreams/abc/observations".to_owned(), 400, "positive integer"),
        ("/v1/datastreams/999999/observations".to_owned(), 404, "datastream 999999"),
        ("/v1/datastreams/999999/aggregates".to_owned(), 404, "datastream 999999"),
        ("/v1/dead-letters?org=%27;DROP%20TABLE".to_owned(), 400, "org"),
        ("/v1/nothing-here".to_owned(), 404, "no resource"),
    ];
    for (path, status, needle) in cases {
        let body = problem(s.api.get(&path).send().await.unwrap(), status).await;
        assert!(body["detail"].as_str().unwrap().contains(needle), "{path}: {body}");
    }
    // The database survived the injection attempts.
    assert_eq!(s.api.get_json("/v1/datastreams").await.unwrap()["datastreams"].as_array().unwrap().len(), 1);
    s.teardown().await;
}
