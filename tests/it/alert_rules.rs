//! The alert rules API against a real TimescaleDB: rules are made, listed,
//! changed and deleted by their owners (an organisation's admins see its
//! rules, the operator all, anyone else gets 404); a rule is a standing read
//! the policy decides at the rule's resolution (an aggregate-only third
//! party may watch 15-minute averages, never raw readings); bad rules are
//! refused with their reason; the webhook secret is shown once; the alerts
//! listing puts firing rules first; events and deliveries are listed newest
//! first. States, events and deliveries are written by the alerts service,
//! so these tests set them through SQL.

use chrono::{Duration, Utc};
use hoheit_tests::{answer, start_api, ApiClient, Isolation, Running, TOKEN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

struct Town {
    isolation: Isolation,
    pool: PgPool,
    api: ApiClient,
    running: Running,
    /// Datastream of the internal dataset of `stadt`.
    internal: i64,
    /// Datastream of the restricted dataset `movi` holds a 15-minute aggregate-only grant on.
    restricted: i64,
    grant: i64,
    /// API keys: `owner` (reader of stadt), `colleague` (reader of stadt),
    /// `admin` (admin of stadt), `movi` (reader of the third party), `neighbour` (reader of another town),
    /// `operator` (the bootstrap token).
    keys: std::collections::HashMap<&'static str, String>,
}

impl Town {
    async fn stop(self) {
        self.running.stop().await.unwrap();
        self.isolation.drop_database().await;
    }

    /// Sends `body` (if any) to `path` with `key` (`None`: anonymous, `Some(TOKEN)`: the operator).
    async fn call(&self, key: Option<&str>, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.api.http.request(method, format!("{}{path}", self.api.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let (status, body, _) = answer(request).await.unwrap();
        (status, body)
    }

    fn key(&self, name: &str) -> Option<&str> {
        Some(self.keys[name].as_str())
    }

    /// Creates a rule as `key`, which must succeed; the answer.
    async fn rule(&self, key: &str, body: Value) -> Value {
        let (status, created) = self.call(self.key(key), Method::POST, "/v1/alerts/rules", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created
    }
}

async fn town() -> Town {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await.unwrap();
    let (running, api) = start_api(&isolation).await.unwrap();
    api.organisation("stadt", "municipality", None).await.unwrap();
    api.organisation("movi", "third_party", None).await.unwrap();
    api.organisation("nachbarstadt", "municipality", None).await.unwrap();
    let mut streams = Vec::new();
    for class in ["internal", "restricted"] {
        let id = api.register("stadt", "pegel-1", &format!("level-{class}"), Some("cm")).await.unwrap();
        let dataset = api
            .post_ok(
                "/v1/admin/datasets",
                json!({"slug": format!("pegel-{class}"), "owner": "stadt", "title": "Pegel", "steward_contact": "daten@stadt.example",
                       "classification": class, "license": "http://dcat-ap.de/def/licenses/dl-by-de/2.0",
                       "purpose": "Hochwasserschutz", "retention_days": 365}),
            )
            .await
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        api.post_ok(&format!("/v1/admin/datasets/{dataset}/datastreams"), json!({"datastream_id": id})).await.unwrap();
        streams.push((id, dataset));
    }
    let grant = api
        .post_ok(
            "/v1/admin/grants",
            json!({"dataset_id": streams[1].1, "grantee": "movi", "purpose": "Hochwasserwarnung", "contract_ref": "V-2026-31",
                   "min_interval_mins": 15, "history_days": 30, "valid_until": (Utc::now() + Duration::days(365)).to_rfc3339()}),
        )
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let mut keys = std::collections::HashMap::new();
    for (name, org, role) in [
        ("owner", "stadt", "reader"),
        ("colleague", "stadt", "reader"),
        ("admin", "stadt", "admin"),
        ("movi", "movi", "reader"),
        ("neighbour", "nachbarstadt", "reader"),
    ] {
        keys.insert(name, api.principal_key(org, name, role).await.unwrap());
    }
    keys.insert("operator", TOKEN.to_owned());
    Town { isolation, pool, api, running, internal: streams[0].0, restricted: streams[1].0, grant, keys }
}

fn above(datastream: i64, name: &str) -> Value {
    json!({"datastream": datastream, "name": name, "condition": {"kind": "above", "threshold": 200},
           "for_minutes": 60, "hysteresis": 10})
}

/// The audit log's actions on alert rules, oldest first.
async fn rule_audit(pool: &PgPool) -> Vec<(String, String, Option<i64>, Option<i64>)> {
    sqlx::query_as(
        "SELECT action, decision, datastream_id, grant_id FROM audit_log WHERE action LIKE 'alerts.%' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_rule_is_created_listed_changed_and_deleted() {
    let town = town().await;
    let mut body = above(town.internal, "Pegel über Warnmarke");
    body["aggregate"] = json!("15m");
    body["emails"] = json!(["leitstelle@stadt.example"]);
    body["language"] = json!("en");
    let (status, created) = town.call(town.key("owner"), Method::POST, "/v1/alerts/rules", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["datastream"], town.internal);
    assert_eq!(created["condition"], json!({"kind": "above", "threshold": 200.0}));
    assert_eq!(created["for_minutes"], 60);
    assert_eq!(created["hysteresis"], 10.0);
    assert_eq!(created["aggregate"], "15m");
    assert_eq!(created["webhook"], Value::Null);
    assert_eq!(created["emails"], json!(["leitstelle@stadt.example"]));
    assert_eq!(created["language"], "en");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["owner"]["organisation"], "stadt");
    assert_eq!(created["state"]["status"], "ok");
    assert!(created.get("webhook_secret").is_none(), "no webhook, no secret: {created}");

    // The state row exists from the start, for the alerts service.
    let status: String = sqlx::query_scalar("SELECT status FROM alert_states WHERE rule_id = $1")
        .bind(id)
        .fetch_one(&town.pool)
        .await
        .unwrap();
    assert_eq!(status, "ok");

    let (status, one) = town.call(town.key("owner"), Method::GET, &format!("/v1/alerts/rules/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one, created);
    let (_, listed) = town
        .call(town.key("owner"), Method::GET, &format!("/v1/alerts/rules?datastream={}", town.internal), None)
        .await;
    assert_eq!(listed["rules"], json!([created]));
    let (_, other_stream) = town
        .call(town.key("owner"), Method::GET, &format!("/v1/alerts/rules?datastream={}", town.restricted), None)
        .await;
    assert_eq!(other_stream["rules"], json!([]));

    // A change of name keeps the state; a change of condition resets it (and bumps updated_at for the service).
    sqlx::query("UPDATE alert_states SET status = 'firing', since = now(), fired_at = now(), fired_value = 250 WHERE rule_id = $1")
        .bind(id)
        .execute(&town.pool)
        .await
        .unwrap();
    let path = format!("/v1/alerts/rules/{id}");
    let (status, renamed) =
        town.call(town.key("owner"), Method::PATCH, &path, Some(json!({"name": "Warnmarke", "enabled": false}))).await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "Warnmarke");
    assert_eq!(renamed["enabled"], false);
    assert_eq!(renamed["aggregate"], "15m", "members left out stay");
    assert_eq!(renamed["state"]["status"], "firing");
    assert_eq!(renamed["state"]["fired_value"], 250.0);
    let time = |rule: &Value| rule["updated_at"].as_str().unwrap().parse::<chrono::DateTime<Utc>>().unwrap();
    assert!(time(&renamed) > time(&created), "a change tells the alerts service to reload");
    let (status, changed) = town
        .call(
            town.key("owner"),
            Method::PATCH,
            &path,
            Some(json!({"condition": {"kind": "below", "threshold": 20}, "aggregate": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["condition"], json!({"kind": "below", "threshold": 20.0}));
    assert_eq!(changed["aggregate"], Value::Null);
    assert_eq!(changed["state"]["status"], "ok");
    assert_eq!(changed["state"]["fired_at"], Value::Null);
    assert_eq!(changed["state"]["fired_value"], Value::Null);

    let (status, _) = town.call(town.key("owner"), Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, gone) = town.call(town.key("owner"), Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{gone}");
    let states: i64 = sqlx::query_scalar("SELECT count(*) FROM alert_states").fetch_one(&town.pool).await.unwrap();
    assert_eq!(states, 0);

    let actions: Vec<String> = rule_audit(&town.pool).await.into_iter().map(|(action, ..)| action).collect();
    assert_eq!(actions, ["alerts.rule_create", "alerts.rule_update", "alerts.rule_update", "alerts.rule_delete"]);
    let verified = town.api.get_json("/v1/audit/verify").await.unwrap();
    assert_eq!(verified["problem"], Value::Null, "the audit chain holds: {verified}");
    town.stop().await;
}

#[tokio::test]
async fn the_webhook_secret_is_shown_once() {
    let town = town().await;
    let mut body = above(town.internal, "Pegel");
    body["webhook"] = json!({"url": "https://leitstelle.stadt.example/hooks/pegel"});
    let created = town.rule("owner", body).await;
    let id = created["id"].as_i64().unwrap();
    let secret = created["webhook_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43, "32 bytes in base64url without padding: {secret}");
    assert!(secret.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{secret}");
    let stored = || async {
        sqlx::query_scalar::<_, Option<String>>("SELECT webhook_secret FROM alert_rules WHERE id = $1")
            .bind(id)
            .fetch_one(&town.pool)
            .await
            .unwrap()
    };
    assert_eq!(stored().await.as_deref(), Some(secret.as_str()));

    // Never again: not in the rule, the listings, nor the audit log.
    let path = format!("/v1/alerts/rules/{id}");
    for shown in [path.clone(), "/v1/alerts/rules".into(), "/v1/alerts".into()] {
        let (status, body) = town.call(town.key("owner"), Method::GET, &shown, None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!body.to_string().contains(&secret), "{shown} shows the secret");
        assert!(!body.to_string().contains("webhook_secret"), "{shown}: {body}");
    }
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE after::text LIKE '%' || $1 || '%'")
        .bind(&secret)
        .fetch_one(&town.pool)
        .await
        .unwrap();
    assert_eq!(audited, 0);

    // A new URL keeps the secret; no webhook drops it; a webhook again gets a new one, shown once.
    let (status, moved) = town
        .call(town.key("owner"), Method::PATCH, &path, Some(json!({"webhook": {"url": "http://10.1.2.3:8080/hook"}})))
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert!(moved.get("webhook_secret").is_none(), "{moved}");
    assert_eq!(stored().await.as_deref(), Some(secret.as_str()));
    let (_, dropped) = town.call(town.key("owner"), Method::PATCH, &path, Some(json!({"webhook": null}))).await;
    assert_eq!(dropped["webhook"], Value::Null);
    assert_eq!(stored().await, None);
    let (_, again) = town
        .call(town.key("owner"), Method::PATCH, &path, Some(json!({"webhook": {"url": "https://hooks.example/b"}})))
        .await;
    let second = again["webhook_secret"].as_str().unwrap().to_owned();
    assert_ne!(second, secret);
    assert_eq!(stored().await.as_deref(), Some(second.as_str()));

    let (status, rotated) = town.call(town.key("owner"), Method::POST, &format!("{path}/rotate-secret"), None).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let third = rotated["webhook_secret"].as_str().unwrap();
    assert_ne!(third, second);
    assert_eq!(stored().await.as_deref(), Some(third));

    // A rule without a webhook has no secret to rotate.
    let plain = town.rule("owner", above(town.internal, "ohne Webhook")).await;
    let (status, problem) = town
        .call(town.key("owner"), Method::POST, &format!("/v1/alerts/rules/{}/rotate-secret", plain["id"]), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problem["detail"].as_str().unwrap().contains("has no webhook"), "{problem}");
    town.stop().await;
}

#[tokio::test]
async fn invalid_rules_are_refused_with_their_reason() {
    let town = town().await;
    let base = above(town.internal, "Pegel");
    let with = |member: &str, value: Value| {
        let mut body = base.clone();
        body[member] = value;
        body
    };
    let long_url = format!("https://hooks.example/{}", "a".repeat(2000));
    let many: Vec<String> = (0..21).map(|i| format!("p{i}@stadt.example")).collect();
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (with("webhook", json!({"url": "ftp://hooks.example/x"})), StatusCode::UNPROCESSABLE_ENTITY, "http or https"),
        (
            with("webhook", json!({"url": "https://user:pw@hooks.example/x"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "user name or password",
        ),
        (with("webhook", json!({"url": long_url})), StatusCode::UNPROCESSABLE_ENTITY, "at most 2000 characters"),
        (with("webhook", json!({"url": "no url"})), StatusCode::UNPROCESSABLE_ENTITY, "is not a URL"),
        (with("emails", json!(["leitstelle"])), StatusCode::UNPROCESSABLE_ENTITY, "is not an e-mail address"),
        (with("emails", json!(["a@b.de", "a@b.de"])), StatusCode::UNPROCESSABLE_ENTITY, "listed twice"),
        (with("emails", json!(many)), StatusCode::UNPROCESSABLE_ENTITY, "at most 20 addresses"),
        (with("language", json!("fr")), StatusCode::UNPROCESSABLE_ENTITY, "language"),
        (with("name", json!("   ")), StatusCode::UNPROCESSABLE_ENTITY, "name: must be 1 to 200 characters"),
        (
            with("for_minutes", json!(10081)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "for_minutes: must be between 0 and 10080",
        ),
        (
            with("hysteresis", json!(-1)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "hysteresis must be a finite number of at least 0",
        ),
        (with("aggregate", json!("30s")), StatusCode::UNPROCESSABLE_ENTITY, "aggregate interval must be between 60 s"),
        (
            with("aggregate", json!("viertelstunde")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "a number followed by s, m, h or d",
        ),
        (
            with("condition", json!({"kind": "rate", "per_minute": 0})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "greater than 0",
        ),
        (with("condition", json!({"kind": "above"})), StatusCode::UNPROCESSABLE_ENTITY, "threshold"),
        (with("condition", json!({"kind": "silent"})), StatusCode::UNPROCESSABLE_ENTITY, "it takes no hysteresis"),
        (
            json!({"datastream": town.internal, "name": "still", "condition": {"kind": "silent"}, "for_minutes": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "at least 60 s without a reading",
        ),
        (
            json!({"datastream": town.internal, "name": "still", "condition": {"kind": "silent"}, "for_minutes": 30, "aggregate": "15m"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "watches raw readings arriving",
        ),
        (with("colour", json!("red")), StatusCode::UNPROCESSABLE_ENTITY, "unknown field"),
        (with("datastream", json!(999_999)), StatusCode::NOT_FOUND, "datastream 999999"),
    ];
    for (body, expected, reason) in cases {
        let (status, answer) = town.call(town.key("owner"), Method::POST, "/v1/alerts/rules", Some(body.clone())).await;
        assert_eq!(status, expected, "{body}: {answer}");
        let detail = answer["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(reason), "{body}: {detail:?} lacks {reason:?}");
    }
    let rules: i64 = sqlx::query_scalar("SELECT count(*) FROM alert_rules").fetch_one(&town.pool).await.unwrap();
    assert_eq!(rules, 0);
    town.stop().await;
}

#[tokio::test]
async fn an_aggregate_only_third_party_watches_only_what_it_may_read() {
    let town = town().await;
    let rule = |aggregate: Value| {
        let mut body = above(town.restricted, "Pegel Prognose");
        body["aggregate"] = aggregate;
        body
    };
    let (status, raw) = town.call(town.key("movi"), Method::POST, "/v1/alerts/rules", Some(rule(Value::Null))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{raw}");
    assert_eq!(raw["code"], "raw_not_granted");
    assert!(raw["detail"].as_str().unwrap().contains(&format!("grant {}", town.grant)), "{raw}");

    let (status, fine) = town.call(town.key("movi"), Method::POST, "/v1/alerts/rules", Some(rule(json!("5m")))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{fine}");
    assert_eq!(fine["code"], "interval_below_grant");

    let (status, off_grid) =
        town.call(town.key("movi"), Method::POST, "/v1/alerts/rules", Some(rule(json!("20m")))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{off_grid}");
    assert_eq!(off_grid["code"], "interval_off_grid");

    let quarter = town.rule("movi", rule(json!("15m"))).await;
    assert_eq!(quarter["aggregate"], "15m");
    assert_eq!(quarter["owner"]["organisation"], "movi");
    let hourly = town.rule("movi", rule(json!("1h"))).await;

    // Changing a rule asks again: down to raw readings is refused, and the rule stays as it was.
    let path = format!("/v1/alerts/rules/{}", hourly["id"]);
    let (status, refused) = town.call(town.key("movi"), Method::PATCH, &path, Some(json!({"aggregate": null}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["code"], "raw_not_granted");
    let (_, kept) = town.call(town.key("movi"), Method::GET, &path, None).await;
    assert_eq!(kept["aggregate"], "1h");

    // A rule is a standing read: its creation is audited with the grant, nothing charged to the grant's rate.
    let audit = rule_audit(&town.pool).await;
    let outcome: Vec<(&str, &str)> = audit.iter().map(|(a, d, ..)| (a.as_str(), d.as_str())).collect();
    assert_eq!(
        outcome,
        [
            ("alerts.rule_create", "deny"),
            ("alerts.rule_create", "deny"),
            ("alerts.rule_create", "deny"),
            ("alerts.rule_create", "allow"),
            ("alerts.rule_create", "allow"),
            ("alerts.rule_update", "deny"),
        ]
    );
    for (_, _, datastream, grant) in audit.iter().filter(|(_, d, ..)| d == "allow") {
        assert_eq!(*datastream, Some(town.restricted));
        assert_eq!(*grant, Some(town.grant));
    }
    let charged: i64 = sqlx::query_scalar("SELECT count(*) FROM grant_rate WHERE grant_id = $1")
        .bind(town.grant)
        .fetch_one(&town.pool)
        .await
        .unwrap();
    assert_eq!(charged, 0);

    // The owner's own staff watch raw readings of the same datastream.
    town.rule("owner", rule(Value::Null)).await;
    town.stop().await;
}

#[tokio::test]
async fn someone_elses_rule_is_not_found() {
    let town = town().await;
    let mine = town.rule("owner", above(town.internal, "meine Regel")).await;
    let id = mine["id"].as_i64().unwrap();
    let path = format!("/v1/alerts/rules/{id}");
    let operators = town.rule("operator", above(town.internal, "Betrieb")).await;
    assert_eq!(operators["owner"], json!({"principal": null, "organisation": null}));

    for stranger in ["colleague", "neighbour", "movi"] {
        for (method, suffix, body) in [
            (Method::GET, "", None),
            (Method::PATCH, "", Some(json!({"name": "übernommen"}))),
            (Method::DELETE, "", None),
            (Method::GET, "/events", None),
            (Method::GET, "/deliveries", None),
            (Method::POST, "/rotate-secret", None),
        ] {
            let (status, problem) =
                town.call(town.key(stranger), method.clone(), &format!("{path}{suffix}"), body).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{stranger} {method} {suffix}: {problem}");
        }
        let (_, listed) = town.call(town.key(stranger), Method::GET, "/v1/alerts/rules", None).await;
        assert_eq!(listed["rules"], json!([]), "{stranger}");
        let (_, alerts) = town.call(town.key(stranger), Method::GET, "/v1/alerts", None).await;
        assert_eq!(alerts["alerts"], json!([]), "{stranger}");
    }
    // Another town's principal does not even see the internal datastream: 404, as if it did not exist.
    let (status, hidden) =
        town.call(town.key("neighbour"), Method::POST, "/v1/alerts/rules", Some(above(town.internal, "fremd"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{hidden}");

    // The organisation's admin sees and manages it; the operator sees every rule.
    let (_, listed) = town.call(town.key("admin"), Method::GET, "/v1/alerts/rules", None).await;
    let ids: Vec<i64> = listed["rules"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [id]);
    let (status, renamed) =
        town.call(town.key("admin"), Method::PATCH, &path, Some(json!({"name": "vom Admin"}))).await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["owner"]["principal"], mine["owner"]["principal"], "the owner stays");
    let (_, all) = town.call(Some(TOKEN), Method::GET, "/v1/alerts/rules", None).await;
    assert_eq!(all["rules"].as_array().unwrap().len(), 2);
    let (status, _) = town.call(town.key("admin"), Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    town.stop().await;
}

#[tokio::test]
async fn anonymous_callers_are_refused() {
    let town = town().await;
    let rule = town.rule("owner", above(town.internal, "Pegel")).await;
    let one = format!("/v1/alerts/rules/{}", rule["id"]);
    for (method, path, body) in [
        (Method::POST, "/v1/alerts/rules".to_owned(), Some(above(town.internal, "anonym"))),
        (Method::GET, "/v1/alerts/rules".to_owned(), None),
        (Method::GET, "/v1/alerts".to_owned(), None),
        (Method::GET, one.clone(), None),
        (Method::PATCH, one.clone(), Some(json!({"name": "x"}))),
        (Method::DELETE, one.clone(), None),
        (Method::GET, format!("{one}/events"), None),
    ] {
        let (status, problem) = town.call(None, method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {problem}");
        assert!(problem["detail"].as_str().unwrap().contains("API key"), "{problem}");
    }
    town.stop().await;
}

#[tokio::test]
async fn alerts_are_listed_firing_first_then_pending_newest_change_first() {
    let town = town().await;
    let mut ids = std::collections::HashMap::new();
    for name in ["ruhig", "alt-feuer", "neu-feuer", "wartet", "behoben"] {
        ids.insert(name, town.rule("owner", above(town.internal, name)).await["id"].as_i64().unwrap());
    }
    for (name, status, minutes_ago) in
        [("alt-feuer", "firing", 30), ("neu-feuer", "firing", 5), ("wartet", "pending", 1), ("behoben", "resolved", 2)]
    {
        sqlx::query(
            "UPDATE alert_states SET status = $2, since = now() - make_interval(mins => $3) WHERE rule_id = $1",
        )
        .bind(ids[name])
        .bind(status)
        .bind(minutes_ago)
        .execute(&town.pool)
        .await
        .unwrap();
    }
    let names = |body: &Value| -> Vec<String> {
        body["alerts"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect()
    };
    let (status, all) = town.call(town.key("owner"), Method::GET, "/v1/alerts", None).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    // "ruhig" changed when it was made (now), "behoben" two minutes ago.
    assert_eq!(names(&all), ["neu-feuer", "alt-feuer", "wartet", "ruhig", "behoben"]);
    assert_eq!(all["alerts"][0]["state"]["status"], "firing");
    let (_, firing) = town.call(town.key("owner"), Method::GET, "/v1/alerts?status=firing", None).await;
    assert_eq!(names(&firing), ["neu-feuer", "alt-feuer"]);
    let (status, problem) = town.call(town.key("owner"), Method::GET, "/v1/alerts?status=burning", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    town.stop().await;
}

#[tokio::test]
async fn events_and_deliveries_are_listed_newest_first() {
    let town = town().await;
    let mut body = above(town.internal, "Pegel");
    body["webhook"] = json!({"url": "https://hooks.example/pegel"});
    body["emails"] = json!(["leitstelle@stadt.example"]);
    let rule = town.rule("owner", body).await;
    let id = rule["id"].as_i64().unwrap();
    let mut events = Vec::new();
    for (kind, minutes_ago, value) in [("firing", 20, 250.0), ("resolved", 10, 180.0), ("firing", 1, 260.0)] {
        let event: i64 = sqlx::query_scalar(
            "INSERT INTO alert_events (rule_id, kind, at, value) VALUES ($1, $2, now() - make_interval(mins => $3), $4) RETURNING id",
        )
        .bind(id)
        .bind(kind)
        .bind(minutes_ago)
        .bind(value)
        .fetch_one(&town.pool)
        .await
        .unwrap();
        events.push(event);
    }
    // The first firing's webhook failed once, then got through; its e-mail went at once.
    let webhook: i64 = sqlx::query_scalar(
        "INSERT INTO alert_deliveries (event_id, channel, target, status, attempts, delivered_at)
         VALUES ($1, 'webhook', 'https://hooks.example/pegel', 'delivered', 2, now()) RETURNING id",
    )
    .bind(events[0])
    .fetch_one(&town.pool)
    .await
    .unwrap();
    let email: i64 = sqlx::query_scalar(
        "INSERT INTO alert_deliveries (event_id, channel, target, status, attempts, delivered_at)
         VALUES ($1, 'email', 'leitstelle@stadt.example', 'delivered', 1, now()) RETURNING id",
    )
    .bind(events[0])
    .fetch_one(&town.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO alert_delivery_attempts (delivery_id, attempt, outcome, http_status, error)
         VALUES ($1, 1, 'retry', 503, 'the endpoint answered 503'), ($1, 2, 'delivered', 204, NULL),
                ($2, 1, 'delivered', NULL, NULL)",
    )
    .bind(webhook)
    .bind(email)
    .execute(&town.pool)
    .await
    .unwrap();

    let path = format!("/v1/alerts/rules/{id}");
    let (status, listed) = town.call(town.key("owner"), Method::GET, &format!("{path}/events"), None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let got: Vec<(i64, String)> = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_i64().unwrap(), e["state"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(got, [(events[2], "firing".into()), (events[1], "resolved".into()), (events[0], "firing".into())]);
    assert_eq!(listed["events"][1]["value"], 180.0);
    let (_, page) =
        town.call(town.key("owner"), Method::GET, &format!("{path}/events?limit=1&before={}", events[2]), None).await;
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    assert_eq!(page["events"][0]["id"], events[1]);
    let (status, _) = town.call(town.key("owner"), Method::GET, &format!("{path}/events?limit=0"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, log) = town.call(town.key("owner"), Method::GET, &format!("{path}/deliveries"), None).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let deliveries = log["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2);
    assert_eq!(deliveries[0]["id"], email, "newest first");
    assert_eq!(deliveries[0]["channel"], "email");
    assert_eq!(deliveries[0]["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(deliveries[1]["id"], webhook);
    assert_eq!(deliveries[1]["event"], events[0]);
    assert_eq!(deliveries[1]["status"], "delivered");
    let attempts = deliveries[1]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["outcome"], "retry");
    assert_eq!(attempts[0]["http_status"], 503);
    assert_eq!(attempts[0]["error"], "the endpoint answered 503");
    assert_eq!(attempts[1]["outcome"], "delivered");
    assert_eq!(attempts[1]["http_status"], 204);
    let (_, older) =
        town.call(town.key("owner"), Method::GET, &format!("{path}/deliveries?before={email}"), None).await;
    assert_eq!(older["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(older["deliveries"][0]["id"], webhook);
    town.stop().await;
}

#[tokio::test]
async fn no_rule_watches_personal_data() {
    let town = town().await;
    let id = town.api.register("stadt", "zaehler-1", "besucher", Some("count")).await.unwrap();
    let dataset = town
        .api
        .post_ok(
            "/v1/admin/datasets",
            json!({"slug": "besucher", "owner": "stadt", "title": "Besucher", "steward_contact": "daten@stadt.example",
                   "classification": "personal", "license": "http://dcat-ap.de/def/licenses/dl-by-de/2.0",
                   "purpose": "Auslastung", "retention_days": 30}),
        )
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    town.api.post_ok(&format!("/v1/admin/datasets/{dataset}/datastreams"), json!({"datastream_id": id})).await.unwrap();
    // Even the owner's admin and the operator, who may read its 15-minute aggregates: an alert
    // would send single buckets below the dataset's minimum count.
    for who in ["admin", "operator"] {
        for aggregate in [json!("15m"), json!("1h")] {
            let body = json!({"datastream": id, "name": "voll", "condition": {"kind": "above", "threshold": 100},
                              "aggregate": aggregate});
            let (status, problem) = town.call(town.key(who), Method::POST, "/v1/alerts/rules", Some(body)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{who} {aggregate}: {problem}");
            assert!(problem["detail"].as_str().unwrap_or_default().contains("personal data"), "{problem}");
        }
        let (status, problem) =
            town.call(town.key(who), Method::POST, "/v1/alerts/rules", Some(above(id, "roh"))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{who} raw: {problem}");
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM alert_rules").fetch_one(&town.pool).await.unwrap();
    assert_eq!(stored, 0);
    let refused: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action LIKE 'alerts.%' AND decision = 'deny' AND datastream_id = $1",
    )
    .bind(id)
    .fetch_one(&town.pool)
    .await
    .unwrap();
    assert_eq!(refused, 6, "every refusal is audited");
    town.stop().await;
}
