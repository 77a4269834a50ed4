//! The API's limits against a real database: a grant's contracted rate holds
//! across keys and replicas, queries end at the statement timeout and when
//! their client leaves, the anonymous public has a share of the database of
//! its own, failed authentications are limited per address, keys cannot be
//! issued beyond the maximum lifetime, and every response carries the
//! security headers.
//!
//! A request is kept "in flight" without timing: the test takes a lock on a
//! table the request reads, and waits until the database shows the API's
//! query waiting for it.

use crate::admin_support;

use std::time::Duration;

use chrono::{Duration as Days, DurationRound, Utc};
use hoheit_api::ApiConfig;
use hoheit_domain::{DatastreamId, Micros, Reading};
use hoheit_tests::{eventually, start_api_with, ApiClient, Isolation, Running};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Setup {
    isolation: Isolation,
    pool: PgPool,
    running: Vec<Running>,
}

impl Setup {
    async fn new() -> Self {
        let isolation = Isolation::new();
        let pool = isolation.create_database().await.unwrap();
        Self { isolation, pool, running: Vec::new() }
    }

    /// Starts one more API replica on this test's database.
    async fn api(&mut self, configure: impl FnOnce(&mut ApiConfig)) -> ApiClient {
        let (running, api) = start_api_with(&self.isolation, configure).await.unwrap();
        self.running.push(running);
        api
    }

    /// A connection of the test's own, e.g. to hold a lock.
    async fn connection(&self) -> PgConnection {
        PgConnection::connect(&self.isolation.database_url).await.unwrap()
    }

    /// Queries of the API's requests waiting for a lock in this test's
    /// database. The API's retention job (it runs at start, and deletes the
    /// latest rows of expired readings joined with `datastreams`) may be
    /// waiting on the same lock when the machine is slow: it is not a request.
    async fn waiting_for_lock(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()
               AND ltrim(query, E' \n') NOT ILIKE 'delete%'",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    async fn wait_until_waiting(&self, n: i64) {
        eventually(Duration::from_secs(20), "the API's query waiting for the lock", || async {
            Ok((self.waiting_for_lock().await == n).then_some(()))
        })
        .await
        .unwrap();
    }

    async fn stop(self) {
        for running in self.running {
            running.stop().await.unwrap();
        }
        self.pool.close().await;
        self.isolation.drop_database().await;
    }
}

/// Sends a GET over a raw connection and leaves it open, unread: the request
/// stays in flight until the connection is dropped.
async fn raw_get(api: &ApiClient, path: &str) -> tokio::net::TcpStream {
    let address = api.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: application/json\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// A restricted dataset of the town with one datastream and readings, granted
/// to the third party `movi` as 15-minute aggregates at `rate` reads per
/// minute; returns the datastream id.
async fn granted_datastream(api: &ApiClient, pool: &PgPool, rate: i64) -> i64 {
    api.organisation("stadt", "municipality", None).await.unwrap();
    api.organisation("movi", "third_party", None).await.unwrap();
    let id = api.register("stadt", "zaehler-1", "vehicles", Some("count")).await.unwrap();
    let dataset = api
        .post_ok(
            "/v1/admin/datasets",
            json!({"slug": "verkehr", "owner": "stadt", "title": "Verkehr", "steward_contact": "daten@stadt.example",
                   "classification": "restricted", "license": "http://dcat-ap.de/def/licenses/dl-by-de/2.0",
                   "purpose": "Verkehrsplanung", "retention_days": 365}),
        )
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    api.post_ok(&format!("/v1/admin/datasets/{dataset}/datastreams"), json!({"datastream_id": id})).await.unwrap();
    let now = Micros::now().0;
    let rows: Vec<Reading> = (1..=8)
        .map(|i| Reading { datastream: DatastreamId(id), time: Micros(now - i * 600_000_000), value: i as f64 })
        .collect();
    hoheit_store::observations::insert(&mut pool.acquire().await.unwrap(), &rows).await.unwrap();
    api.post_ok(
        "/v1/admin/grants",
        json!({"dataset_id": dataset, "grantee": "movi", "purpose": "Verkehrsprognose", "contract_ref": "V-2026-17",
               "min_interval_mins": 15, "history_days": 30, "rate_per_minute": rate,
               "valid_until": (Utc::now() + Days::days(365)).to_rfc3339()}),
    )
    .await
    .unwrap();
    id
}

/// Whole 15-minute buckets of the last two hours.
fn aligned_range() -> String {
    let to = Utc::now().duration_trunc(Days::minutes(15)).unwrap();
    let from = to - Days::hours(2);
    format!("from={}&to={}", from.format("%Y-%m-%dT%H:%M:%SZ"), to.format("%Y-%m-%dT%H:%M:%SZ"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grants_rate_holds_across_all_keys_of_the_grantee_and_all_replicas() {
    let mut setup = Setup::new().await;
    let replica_a = setup.api(|_| {}).await;
    let replica_b = setup.api(|_| {}).await;
    // Two reads a minute: a token comes back every 30 s, far longer than the test takes.
    let id = granted_datastream(&replica_a, &setup.pool, 2).await;
    let mut keys = Vec::new();
    for name in ["prognose-1", "prognose-2", "prognose-3"] {
        keys.push(replica_a.principal_key("movi", name, "reader").await.unwrap());
    }
    let path = format!("/v1/datastreams/{id}/aggregates?interval=15m&{}", aligned_range());
    let mut outcomes = Vec::new();
    for i in 0..12 {
        let replica = [&replica_a, &replica_b][i % 2];
        let response = replica.get_as(Some(&keys[i % 3]), &path).send().await.unwrap();
        let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        outcomes.push((status, retry_after, body["detail"].as_str().unwrap_or_default().to_owned()));
    }
    let statuses: Vec<u16> = outcomes.iter().map(|o| o.0).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 2, "exactly the grant's 2 reads: {outcomes:?}");
    assert_eq!(&statuses[..2], &[200, 200], "{outcomes:?}");
    assert!(statuses[2..].iter().all(|s| *s == 429), "then 429 from both replicas and all keys: {outcomes:?}");
    for (_, retry_after, detail) in &outcomes[2..] {
        let retry_after = retry_after.expect("429 says when to retry");
        assert!((1..=30).contains(&retry_after), "the next of 2 tokens a minute is at most 30 s away: {retry_after}");
        assert!(detail.contains("all keys of the grantee together"), "{detail}");
    }
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_the_statement_timeout_is_cancelled_and_answered_503() {
    let mut setup = Setup::new().await;
    let api = setup.api(|api| api.statement_timeout_ms = 300).await;
    api.organisation("stadt", "municipality", None).await.unwrap();
    // The datastream list waits for the lock far beyond the timeout.
    let mut lock = setup.connection().await;
    sqlx::query("BEGIN").execute(&mut lock).await.unwrap();
    sqlx::query("LOCK TABLE datastreams IN ACCESS EXCLUSIVE MODE").execute(&mut lock).await.unwrap();
    let response = api.get_as(None, "/v1/datastreams").send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("statement timeout"), "{body}");
    assert_eq!(setup.waiting_for_lock().await, 0, "the query is gone from the database");
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    // The pool is fine afterwards.
    assert_eq!(api.get_as(None, "/v1/datastreams").send().await.unwrap().status(), 200);
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_is_cancelled_when_its_client_disconnects() {
    let mut setup = Setup::new().await;
    // A timeout far beyond the test: only the cancel can end the query.
    let api = setup.api(|api| api.statement_timeout_ms = 600_000).await;
    api.organisation("stadt", "municipality", None).await.unwrap();
    let mut lock = setup.connection().await;
    sqlx::query("BEGIN").execute(&mut lock).await.unwrap();
    sqlx::query("LOCK TABLE datastreams IN ACCESS EXCLUSIVE MODE").execute(&mut lock).await.unwrap();
    let client = raw_get(&api, "/v1/datastreams").await;
    setup.wait_until_waiting(1).await;
    drop(client);
    // The lock is still held: only a cancel takes the query away.
    setup.wait_until_waiting(0).await;
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    assert_eq!(api.get_as(None, "/v1/datastreams").send().await.unwrap().status(), 200);
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anonymous_public_cannot_take_the_principals_connections() {
    let mut setup = Setup::new().await;
    let api = setup
        .api(|api| {
            api.anonymous_concurrency = Some(1);
            api.statement_timeout_ms = 600_000;
        })
        .await;
    api.organisation("stadt", "municipality", None).await.unwrap();
    let key = api.principal_key("stadt", "planung", "reader").await.unwrap();
    let mut lock = setup.connection().await;
    sqlx::query("BEGIN").execute(&mut lock).await.unwrap();
    sqlx::query("LOCK TABLE datastreams IN ACCESS EXCLUSIVE MODE").execute(&mut lock).await.unwrap();
    // One anonymous request holds the public's only place.
    let mut first = raw_get(&api, "/v1/datastreams").await;
    setup.wait_until_waiting(1).await;

    let second = api.get_as(None, "/v1/datasets").send().await.unwrap();
    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["retry-after"], "1");
    let body: Value = second.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("public's share of the database"), "{body}");
    // A principal still gets through, and the public's requests that need no database too.
    assert_eq!(api.get_as(Some(&key), "/v1/datasets").send().await.unwrap().status(), 200);
    assert_eq!(api.get_as(None, "/healthz").send().await.unwrap().status(), 200);

    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    let mut answer = [0u8; 12];
    first.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200", "the first request got its answer");
    drop(first);
    eventually(Duration::from_secs(20), "the public's place free again", || async {
        Ok((api.get_as(None, "/v1/datasets").send().await?.status() == 200).then_some(()))
    })
    .await
    .unwrap();
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_are_limited_per_client_address() {
    let mut setup = Setup::new().await;
    let api = setup.api(|api| api.auth_failures_per_minute = 3).await;
    api.organisation("stadt", "municipality", None).await.unwrap();
    let key = api.principal_key("stadt", "planung", "reader").await.unwrap();
    let attacker = api.clone();
    // Another client: connects from another loopback address.
    let other = ApiClient {
        base: api.base.clone(),
        http: reqwest::Client::builder()
            .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap(),
    };
    let forged = "hoh_0123456789abcdef_not-the-secret";
    for _ in 0..3 {
        assert_eq!(attacker.get_as(Some(forged), "/v1/datasets").send().await.unwrap().status(), 401);
    }
    let blocked = attacker.get_as(Some(forged), "/v1/datasets").send().await.unwrap();
    assert_eq!(blocked.status(), 429);
    let retry_after: u64 = blocked.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry_after), "a failure comes back every 20 s: {retry_after}");
    // Even the right key is not checked from that address for now: a guess cannot be confirmed.
    assert_eq!(attacker.get_as(Some(&key), "/v1/datasets").send().await.unwrap().status(), 429);
    // Anonymous requests and other addresses are not affected.
    assert_eq!(attacker.get_as(None, "/v1/datasets").send().await.unwrap().status(), 200);
    assert_eq!(other.get_as(Some(&key), "/v1/datasets").send().await.unwrap().status(), 200);
    assert_eq!(other.get_as(Some(forged), "/v1/datasets").send().await.unwrap().status(), 401);
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_cannot_be_issued_beyond_the_maximum_lifetime() {
    let mut setup = Setup::new().await;
    let api = setup.api(|api| api.max_key_lifetime_days = 30).await;
    api.organisation("stadt", "municipality", None).await.unwrap();
    let principal = api
        .post_ok(
            "/v1/admin/principals",
            json!({"org": "stadt", "name": "planung", "kind": "service", "role": "reader"}),
        )
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let path = format!("/v1/admin/principals/{principal}/keys");
    for too_late in ["9999-12-31T00:00:00Z".to_owned(), (Utc::now() + Days::days(31)).to_rfc3339()] {
        let response = api.post(&path, json!({"expires_at": too_late})).send().await.unwrap();
        assert_eq!(response.status(), 422, "{too_late}");
        let body: Value = response.json().await.unwrap();
        assert!(body["detail"].as_str().unwrap().contains("maximum key lifetime of 30 days"), "{body}");
    }
    let within = api.post_ok(&path, json!({"expires_at": (Utc::now() + Days::days(29)).to_rfc3339()})).await.unwrap();
    assert!(within["key"].is_string());
    // Without a time: a year, but never beyond the maximum.
    let default = api.post_ok(&path, json!({})).await.unwrap();
    let expires: chrono::DateTime<Utc> = default["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(expires <= Utc::now() + Days::days(30), "{expires}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE expires_at > now() + interval '30 days'")
        .fetch_one(&setup.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0, "no key beyond the maximum was stored");

    // The operators' CLI issues through the same rule, with the same setting.
    let url = setup.isolation.database_url.clone();
    let year_9999 = ["keys", "create", "planung", "--expires-at", "9999-12-31T00:00:00Z"];
    let (_, refused) = admin_support::run_admin(&url, &year_9999).await;
    let refused = refused.unwrap_err().to_string();
    assert!(refused.contains("maximum key lifetime of 397 days"), "{refused}");
    let (_, refused) = admin_support::run_admin(
        &url,
        &["keys", "create", "planung", "--expires-in-days", "31", "--max-key-lifetime-days", "30"],
    )
    .await;
    assert!(refused.unwrap_err().to_string().contains("maximum key lifetime of 30 days"));
    let issued =
        admin_support::admin_json(&url, &["keys", "create", "planung", "--expires-in-days", "365"]).await.unwrap();
    assert!(issued["key"].is_string(), "{issued}");
    assert!(admin_support::admin(&url, &["keys", "list"]).await.is_ok());
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let mut setup = Setup::new().await;
    let api = setup.api(|_| {}).await;
    api.organisation("stadt", "municipality", None).await.unwrap();
    let key = api.principal_key("stadt", "planung", "reader").await.unwrap();
    let common = |response: &reqwest::Response| {
        let h = response.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{}", response.url());
        assert_eq!(h["x-frame-options"], "DENY", "{}", response.url());
        assert_eq!(h["referrer-policy"], "no-referrer", "{}", response.url());
        h["content-security-policy"].to_str().unwrap().to_owned()
    };
    // Data for a credential: nothing may run or frame it, no cache may keep it.
    let data = api.get_as(Some(&key), "/v1/datasets").send().await.unwrap();
    assert_eq!(data.status(), 200);
    assert_eq!(common(&data), "default-src 'none'; frame-ancestors 'none'");
    assert_eq!(data.headers()["cache-control"], "no-store");
    // Errors too, and a refused credential.
    let problem = api.get_as(None, "/v1/no-such-thing").send().await.unwrap();
    assert_eq!(common(&problem), "default-src 'none'; frame-ancestors 'none'");
    let refused = api.get_as(Some("hoh_0123456789abcdef_nope"), "/v1/datasets").send().await.unwrap();
    assert_eq!(refused.status(), 401);
    common(&refused);
    assert_eq!(refused.headers()["cache-control"], "no-store");
    // The Swagger UI page and its scripts come from this origin.
    let docs = api.get_as(None, "/docs/").send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let csp = common(&docs);
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let script = api.get_as(None, "/docs/swagger-initializer.js").send().await.unwrap();
    assert_eq!(script.status(), 200);
    common(&script);
    // The dashboard keeps its own policy (map tiles, the OIDC issuer).
    let page = api.get_as(None, "/").header("accept", "text/html").send().await.unwrap();
    let csp = common(&page);
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    setup.stop().await;
}
