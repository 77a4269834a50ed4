//! Data sovereignty through the API against a real TimescaleDB: the
//! authorization matrix (every caller × classification × read endpoint),
//! grant limits, expired and revoked credentials, audit completeness and
//! tamper detection, rate limits, export and erasure.

use std::collections::HashMap;

use chrono::{Duration, Utc};
use hoheit_api::ApiConfig;
use hoheit_domain::{DatastreamId, Micros, Reading};
use hoheit_tests::{start_api, start_api_with, ApiClient, Isolation, Running};
use serde_json::{json, Value};

struct Town {
    isolation: Isolation,
    pool: sqlx::PgPool,
    api: ApiClient,
    running: Running,
    /// classification → datastream id
    streams: HashMap<&'static str, i64>,
    /// classification → dataset id
    datasets: HashMap<&'static str, i64>,
    /// caller name → API key
    keys: HashMap<&'static str, String>,
    grant: i64,
}

const CLASSES: [&str; 4] = ["open", "internal", "restricted", "personal"];

async fn town() -> Town {
    town_with(|_| {}).await
}

async fn town_with(configure: impl FnOnce(&mut ApiConfig)) -> Town {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await.unwrap();
    let (running, api) = start_api_with(&isolation, configure).await.unwrap();
    api.organisation("stadt", "municipality", None).await.unwrap();
    api.organisation("amt-verkehr", "department", Some("stadt")).await.unwrap();
    api.organisation("stadtwerke", "municipal_company", Some("stadt")).await.unwrap();
    api.organisation("movi", "third_party", None).await.unwrap();
    api.organisation("nachbarstadt", "municipality", None).await.unwrap();
    for partner in ["rohdaten-gmbh", "alt-gmbh", "ex-gmbh"] {
        api.organisation(partner, "third_party", None).await.unwrap();
    }
    let mut streams = HashMap::new();
    let mut datasets = HashMap::new();
    let now = Micros::now().0;
    for class in CLASSES {
        let id = api.register("stadt", "sensor-1", class, Some("count")).await.unwrap();
        let dataset = api
            .post_ok(
                "/v1/admin/datasets",
                json!({"slug": format!("ds-{class}"), "owner": "stadt", "title": format!("{class} data"), "steward_contact": "daten@stadt.example",
                       "classification": class, "license": "http://dcat-ap.de/def/licenses/dl-by-de/2.0", "purpose": "Verkehrsplanung",
                       "retention_days": 365, "min_bucket_count": 3}),
            )
            .await
            .unwrap();
        let dataset_id = dataset["id"].as_i64().unwrap();
        api.post_ok(&format!("/v1/admin/datasets/{dataset_id}/datastreams"), json!({"datastream_id": id}))
            .await
            .unwrap();
        // 6 readings in the first 15-minute bucket two hours ago, 2 in the next.
        let base = (now / 900_000_000 - 8) * 900_000_000;
        let times: Vec<i64> =
            (0..6).map(|i| base + i * 60_000_000).chain((0..2).map(|i| base + 900_000_000 + i * 60_000_000)).collect();
        let rows: Vec<Reading> =
            times.iter().map(|&t| Reading { datastream: DatastreamId(id), time: Micros(t), value: 1.0 }).collect();
        hoheit_store::observations::insert(&mut pool.acquire().await.unwrap(), &rows).await.unwrap();
        streams.insert(class, id);
        datasets.insert(class, dataset_id);
    }
    let grant = api
        .post_ok(
            "/v1/admin/grants",
            json!({"dataset_id": datasets["restricted"], "grantee": "movi", "purpose": "Verkehrsprognose", "contract_ref": "V-2026-17",
                   "min_interval_mins": 15, "history_days": 30, "valid_until": (Utc::now() + Duration::days(365)).to_rfc3339()}),
        )
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    // Third parties on the restricted dataset: raw readings, a grant that expired, one that was revoked.
    let now = Utc::now();
    let partner_grant = |grantee: &str, valid_from: chrono::DateTime<Utc>, valid_until: chrono::DateTime<Utc>| {
        json!({"dataset_id": datasets["restricted"], "grantee": grantee, "purpose": "Parkleitsystem", "contract_ref": format!("V-{grantee}"),
               "valid_from": valid_from.to_rfc3339(), "valid_until": valid_until.to_rfc3339()})
    };
    api.post_ok("/v1/admin/grants", partner_grant("rohdaten-gmbh", now, now + Duration::days(365))).await.unwrap();
    api.post_ok("/v1/admin/grants", partner_grant("alt-gmbh", now - Duration::days(60), now - Duration::days(1)))
        .await
        .unwrap();
    let revoked =
        api.post_ok("/v1/admin/grants", partner_grant("ex-gmbh", now, now + Duration::days(365))).await.unwrap();
    let revoke = api
        .http
        .delete(format!("{}/v1/admin/grants/{}", api.base, revoked["id"]))
        .bearer_auth(hoheit_tests::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    let mut keys = HashMap::new();
    for (name, org, role) in [
        ("owner", "stadt", "reader"),
        ("owner-admin", "stadt", "admin"),
        ("department", "amt-verkehr", "reader"),
        ("company", "stadtwerke", "reader"),
        ("third-party", "movi", "reader"),
        ("other-town", "nachbarstadt", "reader"),
        ("raw-partner", "rohdaten-gmbh", "reader"),
        ("expired-partner", "alt-gmbh", "reader"),
        ("revoked-partner", "ex-gmbh", "reader"),
    ] {
        keys.insert(name, api.principal_key(org, name, role).await.unwrap());
    }
    Town { isolation, pool, api, running, streams, datasets, keys, grant }
}

impl Town {
    fn key(&self, caller: &str) -> Option<String> {
        match caller {
            "anonymous" => None,
            "operator" => Some(hoheit_tests::TOKEN.to_owned()),
            name => Some(self.keys[name].clone()),
        }
    }

    async fn get(&self, caller: &str, path: &str, request_id: &str) -> (u16, Value) {
        let response =
            self.api.get_as(self.key(caller).as_deref(), path).header("x-request-id", request_id).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn stop(self) {
        self.running.stop().await.unwrap();
        self.pool.close().await;
        self.isolation.drop_database().await;
    }
}

fn range(hours: i64) -> String {
    let now = Utc::now();
    format!(
        "from={}&to={}",
        (now - Duration::hours(hours)).format("%Y-%m-%dT%H:%M:%SZ"),
        (now + Duration::minutes(1)).format("%Y-%m-%dT%H:%M:%SZ")
    )
}

/// Expected outcome per (caller, classification): (raw, 15-minute aggregates, metadata).
fn expected(caller: &str, class: &str) -> (bool, bool, bool) {
    match (class, caller) {
        ("open", _) => (true, true, true),
        ("personal", "operator" | "owner" | "owner-admin") => (false, true, true),
        ("personal", _) => (false, false, false),
        (_, "operator" | "owner" | "owner-admin") => (true, true, true),
        ("internal", "department" | "company") => (true, true, true),
        ("restricted", "third-party") => (false, true, true),
        ("restricted", "raw-partner") => (true, true, true),
        _ => (false, false, false),
    }
}

/// The stable code of `/v1`'s denial of a raw read by `caller` of `class` data; `None`: allowed.
fn raw_denial(caller: &str, class: &str) -> Option<&'static str> {
    match (class, caller) {
        ("open", _) => None,
        // Raw personal readings leave for nobody, whoever asks.
        ("personal", _) => Some("personal_raw"),
        (_, "operator" | "owner" | "owner-admin") => None,
        (_, "anonymous") => Some("not_authenticated"),
        ("internal", "department" | "company") => None,
        ("restricted", "third-party") => Some("raw_not_granted"),
        ("restricted", "raw-partner") => None,
        ("restricted", "expired-partner") => Some("grant_expired"),
        ("restricted", "revoked-partner") => Some("grant_revoked"),
        _ => Some("no_grant"),
    }
}

/// The number of audit records of a request and whether the first allowed it.
async fn audited(pool: &sqlx::PgPool, request_id: &str) -> (usize, Option<bool>) {
    let decisions: Vec<String> = sqlx::query_scalar("SELECT decision FROM audit_log WHERE request_id = $1 ORDER BY id")
        .bind(request_id)
        .fetch_all(pool)
        .await
        .unwrap();
    (decisions.len(), decisions.first().map(|d| d == "allow"))
}

fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The datastreams of a SensorThings page of observations (`@iot.id` is `<datastream>-<micros>`).
fn observed(page: &Value) -> std::collections::BTreeSet<i64> {
    page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["@iot.id"].as_str().unwrap().split('-').next().unwrap().parse().unwrap())
        .collect()
}

/// SensorThings, live values, export and open data answer through the same
/// gate as `/v1`: for every caller and classification the same decision, the
/// same stable code on a denial, and one audit record per read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_path_answers_as_v1_does_for_every_caller() {
    let town = town().await;
    let callers = [
        "anonymous",
        "operator",
        "owner",
        "owner-admin",
        "department",
        "third-party",
        "raw-partner",
        "expired-partner",
        "revoked-partner",
    ];
    let since = (Utc::now() - Duration::hours(24)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let filter = enc(&format!("phenomenonTime ge {since}"));
    for caller in callers {
        for class in CLASSES {
            let (id, dataset) = (town.streams[class], town.datasets[class]);
            let (raw, _, meta) = expected(caller, class);
            let denial = raw_denial(caller, class);
            assert_eq!(denial.is_none(), raw, "{caller} on {class}: the two tables agree");

            // /v1: the reference.
            let v1 = format!("v1-{caller}-{class}");
            let (status, body) =
                town.get(caller, &format!("/v1/datastreams/{id}/observations?{}", range(24)), &v1).await;
            assert_eq!(status, if raw { 200 } else { 403 }, "{caller} /v1 raw on {class}: {body}");
            assert_eq!(body["code"].as_str(), denial, "{caller} /v1 raw on {class}: {body}");
            assert_eq!(audited(&town.pool, &v1).await, (1, Some(raw)), "{v1}");
            let (status, body) =
                town.get(caller, &format!("/v1/datastreams/{id}"), &format!("v1m-{caller}-{class}")).await;
            assert_eq!(status, if meta { 200 } else { 403 }, "{caller} /v1 metadata of {class}: {body}");
            assert_eq!(body["code"].as_str(), (!meta).then_some("not_visible"), "{body}");

            // SensorThings, the datastream's observations by path: the same decision and code;
            // a datastream the caller may not see does not exist there (404, nothing read).
            let sta = format!("sta-{caller}-{class}");
            let (status, body) =
                town.get(caller, &format!("/sta/v1.1/Datastreams({id})/Observations?$filter={filter}"), &sta).await;
            if !meta {
                assert_eq!(status, 404, "{caller} SensorThings on {class}: {body}");
                assert_eq!(audited(&town.pool, &sta).await, (0, None), "{sta}: no read");
            } else {
                assert_eq!(status, if raw { 200 } else { 403 }, "{caller} SensorThings on {class}: {body}");
                assert_eq!(body["code"].as_str(), denial, "{caller} SensorThings on {class}: {body}");
                assert_eq!(audited(&town.pool, &sta).await, (1, Some(raw)), "{sta}");
                if raw {
                    assert_eq!(body["value"].as_array().unwrap().len(), 8, "{body}");
                }
            }
            let (status, _) = town.get(caller, &format!("/sta/v1.1/Datastreams({id})"), "sta-meta").await;
            assert_eq!(status, if meta { 200 } else { 404 }, "{caller} SensorThings metadata of {class}");

            // Export: the owner's admins and data owners (and the operator), through the same gate.
            let export = format!("export-{caller}-{class}");
            let (status, body) =
                town.get(caller, &format!("/v1/datasets/{dataset}/export?format=jsonl"), &export).await;
            let exports = matches!(caller, "operator" | "owner-admin");
            assert_eq!(status, if exports { 200 } else { 403 }, "{caller} export of {class}: {body}");
            if !exports {
                assert_eq!(body["code"], "not_data_owner", "{body}");
            }
            assert_eq!(audited(&town.pool, &export).await, (1, Some(exports)), "{export}");

            // Open data: open datasets for everyone, audited; nothing else is offered.
            let download = format!("open-{caller}-{class}");
            let response = town
                .api
                .get_as(town.key(caller).as_deref(), &format!("/opendata/datasets/ds-{class}.csv"))
                .header("x-request-id", &download)
                .send()
                .await
                .unwrap();
            if class == "open" {
                assert_eq!(response.status(), 200, "{caller} download of {class}");
                assert_eq!(response.text().await.unwrap().lines().count(), 1 + 8);
                assert_eq!(audited(&town.pool, &download).await, (1, Some(true)), "{download}");
            } else {
                assert_eq!(response.status(), 404, "{caller} download of {class}");
                assert_eq!(audited(&town.pool, &download).await, (0, None), "{download}");
            }
        }

        let visible: std::collections::BTreeSet<i64> =
            CLASSES.iter().filter(|c| expected(caller, c).2).map(|c| town.streams[c]).collect();
        let readable: std::collections::BTreeSet<i64> =
            CLASSES.iter().filter(|c| expected(caller, c).0).map(|c| town.streams[c]).collect();

        // SensorThings collections and expansions hold exactly what /v1 lets the caller see and read.
        let (status, page) = town
            .get(caller, &format!("/sta/v1.1/Observations?$filter={filter}&$top=1000"), &format!("stac-{caller}"))
            .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(observed(&page), readable, "{caller}: SensorThings observations");
        let (status, page) = town
            .get(
                caller,
                &format!("/sta/v1.1/Datastreams?$expand=Observations($filter={filter};$top=100)"),
                &format!("stae-{caller}"),
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let mut listed = std::collections::BTreeSet::new();
        let mut expanded = std::collections::BTreeSet::new();
        for ds in page["value"].as_array().unwrap() {
            let id = ds["@iot.id"].as_i64().unwrap();
            listed.insert(id);
            if !ds["Observations"].as_array().unwrap().is_empty() {
                expanded.insert(id);
            }
        }
        assert_eq!(listed, visible, "{caller}: SensorThings datastreams");
        assert_eq!(expanded, readable, "{caller}: SensorThings expanded observations");

        // Live values: the datastreams /v1 shows, the latest value where it reads raw; audited once.
        let live = format!("live-{caller}");
        let (status, snapshot) = town.get(caller, "/v1/live", &live).await;
        assert_eq!(status, 200, "{snapshot}");
        let streams = snapshot["datastreams"].as_array().unwrap();
        let listed: std::collections::BTreeSet<i64> = streams.iter().map(|d| d["id"].as_i64().unwrap()).collect();
        let raw: std::collections::BTreeSet<i64> =
            streams.iter().filter(|d| d["raw"] == true).map(|d| d["id"].as_i64().unwrap()).collect();
        let valued: std::collections::BTreeSet<i64> =
            streams.iter().filter(|d| !d["latest_value"].is_null()).map(|d| d["id"].as_i64().unwrap()).collect();
        assert_eq!(listed, visible, "{caller}: live datastreams");
        assert_eq!((&raw, &valued), (&readable, &readable), "{caller}: live latest values");
        assert_eq!(audited(&town.pool, &live).await, (1, Some(true)), "{live}");
    }
    town.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_matrix_every_caller_classification_and_read_endpoint() {
    let town = town().await;
    let callers = ["anonymous", "operator", "owner", "department", "company", "third-party", "other-town"];
    let mut audited_reads = Vec::new();
    for caller in callers {
        for class in CLASSES {
            let id = town.streams[class];
            let (raw, agg, meta) = expected(caller, class);
            let cases = [
                ("raw", format!("/v1/datastreams/{id}/observations?{}", range(24)), raw),
                ("agg", format!("/v1/datastreams/{id}/aggregates?{}&interval=15m", range(24)), agg),
                ("meta", format!("/v1/datastreams/{id}"), meta),
            ];
            for (endpoint, path, allowed) in cases {
                let request_id = format!("m-{caller}-{class}-{endpoint}");
                let (status, body) = town.get(caller, &path, &request_id).await;
                let want = if allowed { 200 } else { 403 };
                assert_eq!(status, want, "{caller} {endpoint} on {class}: {body}");
                if !allowed {
                    assert!(!body["detail"].as_str().unwrap_or_default().is_empty(), "a denial says why: {body}");
                }
                if endpoint != "meta" {
                    audited_reads.push((request_id, allowed));
                }
            }
        }
        // The listing shows exactly the datastreams the caller may see.
        let (status, body) = town.get(caller, "/v1/datastreams", &format!("list-{caller}")).await;
        assert_eq!(status, 200);
        let mut listed: Vec<i64> =
            body["datastreams"].as_array().unwrap().iter().map(|d| d["id"].as_i64().unwrap()).collect();
        listed.sort();
        let mut visible: Vec<i64> = CLASSES.iter().filter(|c| expected(caller, c).2).map(|c| town.streams[c]).collect();
        visible.sort();
        assert_eq!(listed, visible, "{caller} sees exactly its datastreams (no BOLA through the listing)");
    }

    // Personal data: buckets of fewer than min_bucket_count (3) readings are withheld.
    let (_, body) = town
        .get(
            "owner",
            &format!("/v1/datastreams/{}/aggregates?{}&interval=15m", town.streams["personal"], range(24)),
            "p",
        )
        .await;
    let counts: Vec<i64> = body["buckets"].as_array().unwrap().iter().map(|b| b["count"].as_i64().unwrap()).collect();
    assert_eq!(counts, vec![6], "the bucket of 2 readings is withheld");

    // Audit completeness: every data read has exactly one record with the right decision.
    for (request_id, allowed) in &audited_reads {
        let decisions: Vec<String> = sqlx::query_scalar("SELECT decision FROM audit_log WHERE request_id = $1")
            .bind(request_id)
            .fetch_all(&town.pool)
            .await
            .unwrap();
        assert_eq!(decisions.len(), 1, "{request_id}: exactly one audit record");
        assert_eq!(decisions[0], if *allowed { "allow" } else { "deny" }, "{request_id}");
    }
    let (grant_id, rows_returned): (Option<i64>, i64) = sqlx::query_as(
        "SELECT grant_id, rows_returned FROM audit_log WHERE request_id = 'm-third-party-restricted-agg'",
    )
    .fetch_one(&town.pool)
    .await
    .unwrap();
    assert_eq!(grant_id, Some(town.grant), "the grant is recorded");
    assert_eq!(rows_returned, 2);

    // The public transparency report names the third party, its purpose and grant.
    let report: Value = town.api.get_as(None, "/v1/transparency").send().await.unwrap().json().await.unwrap();
    let lines: Vec<Value> = report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["accessor"] == "movi" && l["dataset"] == "ds-restricted")
        .cloned()
        .collect();
    let under_grant = lines.iter().find(|l| l["grant_id"] == town.grant).expect("a line for the grant");
    assert_eq!(under_grant["purpose"], "Verkehrsprognose");
    assert_eq!(under_grant["contract_ref"], "V-2026-17");
    assert_eq!(under_grant["accesses"], 1);
    let denied: i64 = lines.iter().map(|l| l["denied"].as_i64().unwrap()).sum();
    assert_eq!(denied, 1, "the raw attempt was denied and is counted");

    // Tampering with a stored record is detected, and the first broken link named.
    let (_, ok) = town.get("operator", "/v1/audit/verify", "v1").await;
    assert_eq!(ok["first_broken_id"], Value::Null, "{ok}");
    let victim: i64 = sqlx::query_scalar("SELECT id FROM audit_log WHERE request_id = 'm-third-party-restricted-agg'")
        .fetch_one(&town.pool)
        .await
        .unwrap();
    let blocked =
        sqlx::query("UPDATE audit_log SET rows_returned = 0 WHERE id = $1").bind(victim).execute(&town.pool).await;
    assert!(blocked.is_err(), "the audit log is append-only");
    let mut tx = town.pool.begin().await.unwrap();
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only").execute(&mut *tx).await.unwrap();
    sqlx::query("UPDATE audit_log SET rows_returned = 9999 WHERE id = $1")
        .bind(victim)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let (_, broken) = town.get("operator", "/v1/audit/verify", "v2").await;
    assert_eq!(broken["first_broken_id"], victim, "{broken}");
    town.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_limits_expired_and_revoked_credentials_are_refused_with_the_reason() {
    let town = town().await;
    let id = town.streams["restricted"];
    let now = Utc::now();
    let old = format!(
        "from={}&to={}",
        (now - Duration::days(40)).format("%Y-%m-%dT%H:%M:%SZ"),
        now.format("%Y-%m-%dT%H:%M:%SZ")
    );
    let cases = [
        (format!("/v1/datastreams/{id}/observations?{}", range(1)), "raw_not_granted"),
        (format!("/v1/datastreams/{id}/aggregates?{}&interval=5m", range(1)), "interval_below_grant"),
        (format!("/v1/datastreams/{id}/aggregates?{old}&interval=1h"), "outside_grant_window"),
    ];
    for (path, code) in cases {
        let (status, body) = town.get("third-party", &path, "g").await;
        assert_eq!(status, 403, "{path}");
        assert_eq!(body["code"], code, "{path}: {body}");
        assert!(!body["detail"].as_str().unwrap().is_empty(), "the reason in words too: {body}");
    }
    // Another organisation's dead letters are not shown (BOLA on a query parameter).
    let (status, _) = town.get("third-party", "/v1/dead-letters?org=stadt", "d").await;
    assert_eq!(status, 403);

    // Revoking the grant ends access, with the reason.
    let agg = format!("/v1/datastreams/{id}/aggregates?{}&interval=15m", range(1));
    assert_eq!(town.get("third-party", &agg, "a1").await.0, 200);
    let revoke = town
        .api
        .http
        .delete(format!("{}/v1/admin/grants/{}", town.api.base, town.grant))
        .bearer_auth(hoheit_tests::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    let (status, body) = town.get("third-party", &agg, "a2").await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "grant_revoked", "{body}");

    // An expired key and a revoked key are refused with 401 and the reason.
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE principal_id = (SELECT id FROM principals WHERE name = 'department')")
        .execute(&town.pool)
        .await
        .unwrap();
    let (status, body) = town.get("department", "/v1/datastreams", "e").await;
    assert_eq!(status, 401);
    assert!(body["detail"].as_str().unwrap().contains("expired"), "{body}");
    let key_id: i64 = sqlx::query_scalar(
        "SELECT k.id FROM api_keys k JOIN principals p ON p.id = k.principal_id WHERE p.name = 'company'",
    )
    .fetch_one(&town.pool)
    .await
    .unwrap();
    // A reader cannot revoke someone else's key; the organisation's admin can't either across organisations.
    let by_other = town
        .api
        .http
        .delete(format!("{}/v1/admin/keys/{key_id}", town.api.base))
        .bearer_auth(&town.keys["owner-admin"])
        .send()
        .await
        .unwrap();
    assert_eq!(by_other.status(), 403);
    let by_itself = town
        .api
        .http
        .delete(format!("{}/v1/admin/keys/{key_id}", town.api.base))
        .bearer_auth(&town.keys["company"])
        .send()
        .await
        .unwrap();
    assert_eq!(by_itself.status(), 204);
    let (status, body) = town.get("company", "/v1/datastreams", "r").await;
    assert_eq!(status, 401);
    assert!(body["detail"].as_str().unwrap().contains("revoked"), "{body}");
    let (status, _) = town.get("anonymous", "/v1/datastreams", "x").await;
    assert_eq!(status, 200, "no key at all is anonymous, not an error");
    let forged = town.api.get_as(Some("hoh_0123456789abcdef_forged"), "/v1/datastreams").send().await.unwrap();
    assert_eq!(forged.status(), 401);
    // Only admins of the owner may create principals or grants.
    let grant = json!({"dataset_id": town.datasets["restricted"], "grantee": "movi", "purpose": "x", "contract_ref": "y", "valid_until": (now + Duration::days(1)).to_rfc3339()});
    let by_reader = town
        .api
        .http
        .post(format!("{}/v1/admin/grants", town.api.base))
        .bearer_auth(&town.keys["owner"])
        .json(&grant)
        .send()
        .await
        .unwrap();
    assert_eq!(by_reader.status(), 403);
    let by_admin = town
        .api
        .http
        .post(format!("{}/v1/admin/grants", town.api.base))
        .bearer_auth(&town.keys["owner-admin"])
        .json(&grant)
        .send()
        .await
        .unwrap();
    assert_eq!(by_admin.status(), 201);
    town.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    let town = town_with(|api| api.rate_per_minute = 3).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..5 {
        let response = town
            .api
            .get_as(Some(&town.keys["owner"]), "/v1/datastreams")
            .header("x-request-id", format!("rl{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        }
    }
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    assert_eq!(statuses[3], 429);
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    // Another credential has its own budget.
    assert_eq!(town.get("department", "/v1/datastreams", "rl-other").await.0, 200);
    town.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_export_everything_streamed_and_erase_a_dataset() {
    let town = town().await;
    let dataset = town.datasets["restricted"];
    // Others may not export or erase.
    let (status, _) = town.get("third-party", &format!("/v1/datasets/{dataset}/export?format=csv"), "x1").await;
    assert_eq!(status, 403);
    let (status, _) = town.get("owner", &format!("/v1/datasets/{dataset}/export?format=csv"), "x2").await;
    assert_eq!(status, 403, "a reader of the owner may read but not export");
    let csv = town
        .api
        .get_as(Some(&town.keys["owner-admin"]), &format!("/v1/datasets/{dataset}/export?format=csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["x-hoheit-license"], "http://dcat-ap.de/def/licenses/dl-by-de/2.0");
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "datastream_id,thing,property,unit,time,value");
    assert_eq!(lines.len(), 1 + 8);
    assert!(
        lines[1].starts_with(&format!("{},sensor-1,restricted,count,", town.streams["restricted"])),
        "{}",
        lines[1]
    );
    let jsonl = town
        .api
        .get_as(Some(&town.keys["owner-admin"]), &format!("/v1/datasets/{dataset}/export?format=jsonl"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let records: Vec<Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records[0]["type"], "dataset");
    assert_eq!(records[0]["dataset"]["purpose"], "Verkehrsplanung");
    assert_eq!(records[1]["type"], "datastream");
    assert_eq!(records.iter().filter(|r| r["type"] == "observation").count(), 8);

    // Exports page through the database: many pages arrive complete and in order.
    let open = town.streams["open"];
    let start = Micros::now().0 - 100 * 86_400_000_000;
    let many: Vec<Reading> = (0..25_000)
        .map(|i| Reading { datastream: DatastreamId(open), time: Micros(start + i * 1_000_000), value: i as f64 })
        .collect();
    hoheit_store::observations::insert(&mut town.pool.acquire().await.unwrap(), &many).await.unwrap();
    let big = town
        .api
        .get_as(Some(&town.keys["owner-admin"]), &format!("/v1/datasets/{}/export?format=csv", town.datasets["open"]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let values: Vec<f64> = big.lines().skip(1).map(|l| l.rsplit(',').next().unwrap().parse().unwrap()).collect();
    assert_eq!(values.len(), 25_008);
    assert!(values[..25_000].iter().enumerate().all(|(i, v)| *v == i as f64), "oldest first, none lost or repeated");

    let erase_as = |key: &str| {
        town.api.http.delete(format!("{}/v1/datasets/{dataset}", town.api.base)).bearer_auth(key.to_owned()).send()
    };
    assert_eq!(erase_as(&town.keys["owner"]).await.unwrap().status(), 403, "a reader may not erase");
    let erased: Value = erase_as(&town.keys["owner-admin"]).await.unwrap().json().await.unwrap();
    assert_eq!(erased["readings_deleted"], 8);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM observations WHERE datastream_id = $1")
        .bind(town.streams["restricted"])
        .fetch_one(&town.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let rolled: i64 = sqlx::query_scalar("SELECT count(*) FROM observations_15m WHERE datastream_id = $1")
        .bind(town.streams["restricted"])
        .fetch_one(&town.pool)
        .await
        .unwrap();
    assert_eq!(rolled, 0, "erasure empties the 15-minute rollup too");
    let (status, _) = town.get("owner", &format!("/v1/datasets/{dataset}"), "y").await;
    assert_eq!(status, 404);
    let audit: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action IN ('export', 'dataset.erase') AND decision = 'allow'",
    )
    .fetch_one(&town.pool)
    .await
    .unwrap();
    assert_eq!(audit, 4, "three exports and one erasure are audited");
    let denied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'export' AND decision = 'deny'")
            .fetch_one(&town.pool)
            .await
            .unwrap();
    assert_eq!(denied, 2, "the refused export attempts are audited too");
    town.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_only_readings_past_their_datasets_retention() {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await.unwrap();
    let (running, api) = start_api(&isolation).await.unwrap();
    api.organisation("stadt", "municipality", None).await.unwrap();
    let kept_stream = api.register("stadt", "pegel", "level", None).await.unwrap();
    let short_stream = api.register("stadt", "pegel", "flow", None).await.unwrap();
    let dataset = api
        .post_ok(
            "/v1/admin/datasets",
            json!({"slug": "kurz", "owner": "stadt", "title": "Kurz", "steward_contact": "a@b.example", "classification": "internal",
                   "license": "intern", "purpose": "Hochwasserschutz", "retention_days": 7}),
        )
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    api.post_ok(&format!("/v1/admin/datasets/{dataset}/datastreams"), json!({"datastream_id": short_stream}))
        .await
        .unwrap();
    let now = Micros::now().0;
    let day = 86_400_000_000i64;
    let mut rows = Vec::new();
    for id in [kept_stream, short_stream] {
        for age in [1, 6, 8, 30] {
            rows.push(Reading { datastream: DatastreamId(id), time: Micros(now - age * day), value: age as f64 });
        }
    }
    // A minute either side of the cut-off: mostly in one 15-minute bucket, which the rollup must split right.
    let minute = 60_000_000;
    rows.push(Reading { datastream: DatastreamId(short_stream), time: Micros(now - 7 * day + minute), value: 6.99 });
    rows.push(Reading { datastream: DatastreamId(short_stream), time: Micros(now - 7 * day - minute), value: 7.01 });
    hoheit_store::observations::insert(&mut pool.acquire().await.unwrap(), &rows).await.unwrap();
    let deleted = hoheit_store::datasets::retention_run(&pool).await.unwrap().removed();
    assert_eq!(deleted, 3, "the 7 days + 1 minute, 8 and 30 days old readings of the 7-day dataset");
    let mismatches: i64 = sqlx::query_scalar(
        "WITH raw AS (SELECT datastream_id, time_bucket(INTERVAL '15 minutes', time, timestamptz 'epoch') AS bucket,
                             count(*) AS count, sum(value) AS sum FROM observations GROUP BY 1, 2)
         SELECT count(*) FROM raw FULL JOIN observations_15m r USING (datastream_id, bucket)
         WHERE raw.count IS DISTINCT FROM r.count OR raw.sum IS DISTINCT FROM r.sum",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(mismatches, 0, "the 15-minute rollup follows the retention");
    let left: Vec<(i64, f64)> =
        sqlx::query_as("SELECT datastream_id, value FROM observations ORDER BY 1, 2").fetch_all(&pool).await.unwrap();
    assert_eq!(
        left,
        vec![
            (kept_stream, 1.0),
            (kept_stream, 6.0),
            (kept_stream, 8.0),
            (kept_stream, 30.0),
            (short_stream, 1.0),
            (short_stream, 6.0),
            (short_stream, 6.99)
        ]
    );
    running.stop().await.unwrap();
    pool.close().await;
    isolation.drop_database().await;
}
