//! The alerts service end to end: readings published over MQTT go through
//! ingest and Kafka to the alerts service, whose notifications reach a real
//! webhook receiver (an axum server here) and a real SMTP server (Debian's
//! `python3-aiosmtpd`, storing what arrives in a Maildir that Python's own
//! `email` parser reads back). Rules are made with plain SQL: the rules API
//! is tested on its own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use hoheit_domain::Slug;
use hoheit_tests::{eventually, Platform, Publisher};
use serde_json::{json, Value};
use sha2::Sha256;
use sqlx::PgPool;

const ORG: &str = "umweltamt";
const SECRET: &str = "c2VjcmV0LW9mLXRoZS1ydWxlLWZvci10ZXN0cw";
/// Long enough for a notification to travel through every part of a busy test machine.
const WAIT: Duration = Duration::from_secs(120);

/// A rule as the tests make it.
struct NewRule<'a> {
    datastream: i64,
    /// Who made it; `None`: the operator.
    principal: Option<i64>,
    name: &'a str,
    kind: &'a str,
    threshold: Option<f64>,
    for_secs: i32,
    hysteresis: f64,
    webhook: Option<&'a str>,
    emails: &'a [&'a str],
    language: &'a str,
}

/// Inserts a rule and its `ok` state, as the rules API would.
async fn insert_rule(pool: &PgPool, rule: NewRule<'_>) -> anyhow::Result<i64> {
    let emails: Vec<String> = rule.emails.iter().map(|e| (*e).to_owned()).collect();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO alert_rules (datastream_id, name, kind, threshold, for_secs, hysteresis, webhook_url,
                                  webhook_secret, emails, language, principal_id, org_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                 (SELECT org_id FROM principals WHERE id = $11)) RETURNING id",
    )
    .bind(rule.datastream)
    .bind(rule.name)
    .bind(rule.kind)
    .bind(rule.threshold)
    .bind(rule.for_secs)
    .bind(rule.hysteresis)
    .bind(rule.webhook)
    .bind(rule.webhook.map(|_| SECRET))
    .bind(emails)
    .bind(rule.language)
    .bind(rule.principal)
    .fetch_one(pool)
    .await?;
    sqlx::query("INSERT INTO alert_states (rule_id, status) VALUES ($1, 'ok')").bind(id).execute(pool).await?;
    Ok(id)
}

/// A rule's events: `(kind, at, value)`, oldest first.
async fn events(pool: &PgPool, rule: i64) -> anyhow::Result<Vec<(i64, String, DateTime<Utc>, Option<f64>)>> {
    Ok(sqlx::query_as("SELECT id, kind, at, value FROM alert_events WHERE rule_id = $1 ORDER BY id")
        .bind(rule)
        .fetch_all(pool)
        .await?)
}

/// The number of a rule's deliveries, and of those delivered.
async fn deliveries(pool: &PgPool, rule: i64) -> anyhow::Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE d.status = 'delivered')
         FROM alert_deliveries d JOIN alert_events e ON e.id = d.event_id WHERE e.rule_id = $1",
    )
    .bind(rule)
    .fetch_one(pool)
    .await?)
}

/// Waits until the rule has `count` events and every delivery of them is delivered.
async fn all_delivered(pool: &PgPool, rule: i64, count: usize, per_event: i64) -> anyhow::Result<()> {
    eventually(WAIT, &format!("{count} events of rule {rule}, all delivered"), || async {
        let events = events(pool, rule).await?.len();
        let (made, delivered) = deliveries(pool, rule).await?;
        Ok((events == count && made == count as i64 * per_event && delivered == made).then_some(()))
    })
    .await
}

/// One webhook request as it arrived.
#[derive(Debug, Clone)]
struct Hook {
    event: String,
    signature: String,
    body: Bytes,
}

impl Hook {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a webhook body is JSON")
    }

    /// The signature checks out against the exact body bytes.
    fn signed(&self) -> bool {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(&self.body);
        self.signature == format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }
}

#[derive(Default)]
struct Received {
    hooks: Vec<Hook>,
    /// Answer this many requests with 500 first.
    failures_left: usize,
}

/// A webhook endpoint on loopback that records every request.
struct Receiver {
    url: String,
    received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(failures: usize) -> anyhow::Result<Receiver> {
        async fn hook(State(received): State<Arc<Mutex<Received>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let mut received = received.lock().unwrap();
            received.hooks.push(Hook { event: header("hoheit-event"), signature: header("hoheit-signature"), body });
            if received.failures_left > 0 {
                received.failures_left -= 1;
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::NO_CONTENT
            }
        }
        let received = Arc::new(Mutex::new(Received { hooks: Vec::new(), failures_left: failures }));
        let app = axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { url, received, task })
    }

    fn hooks(&self) -> Vec<Hook> {
        self.received.lock().unwrap().hooks.clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Debian's Python, which has `python3-aiosmtpd` (another `python3` may come first on `PATH`).
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// A real SMTP server (aiosmtpd) on a free loopback port, keeping mail in a Maildir.
struct Smtp {
    url: String,
    maildir: tempfile::TempDir,
    child: tokio::process::Child,
}

/// One e-mail as Python's `email` package reads it.
#[derive(Debug, serde::Deserialize)]
struct Mail {
    to: String,
    subject: String,
    message_id: String,
    text: String,
}

impl Smtp {
    async fn start() -> anyhow::Result<Smtp> {
        let port = free_port()?;
        let maildir = tempfile::tempdir()?;
        // aiosmtpd's Mailbox handler expects the Maildir's folders to exist.
        for folder in ["new", "cur", "tmp"] {
            std::fs::create_dir(maildir.path().join(folder))?;
        }
        let child = tokio::process::Command::new(DEBIAN_PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting aiosmtpd (Debian: apt-get install python3-aiosmtpd)")?;
        eventually(Duration::from_secs(30), "the SMTP server to listen", || async {
            Ok(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ()))
        })
        .await?;
        Ok(Smtp { url: format!("smtp://127.0.0.1:{port}"), maildir, child })
    }

    /// Every mail that arrived, decoded by Python's standard library.
    async fn mails(&self) -> anyhow::Result<Vec<Mail>> {
        let script = r#"
import email, email.policy, json, mailbox, sys
box = mailbox.Maildir(sys.argv[1], factory=None, create=False)
mails = []
for key in sorted(box.keys()):
    message = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
    mails.append({"to": str(message["To"]), "subject": str(message["Subject"]),
                  "message_id": str(message["Message-ID"]), "text": message.get_content()})
print(json.dumps(mails))
"#;
        let output =
            tokio::process::Command::new("python3").args(["-c", script]).arg(self.maildir.path()).output().await?;
        anyhow::ensure!(output.status.success(), "reading the Maildir: {}", String::from_utf8_lossy(&output.stderr));
        Ok(serde_json::from_slice(&output.stdout)?)
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Publishes `(time, value)` readings to a datastream as one JSON array (one
/// message keeps them in order).
async fn publish(
    platform: &Platform,
    publisher: &mut Publisher,
    thing: &str,
    property: &str,
    readings: &[(DateTime<Utc>, f64)],
) -> anyhow::Result<()> {
    let slug = |s: &str| Slug::parse("test", s).unwrap();
    let topic = platform.scheme.datastream_topic(&slug(ORG), &slug(thing), &slug(property));
    let body: Vec<Value> = readings.iter().map(|(t, v)| json!({"time": rfc3339(*t), "value": v})).collect();
    publisher.publish_all(vec![(topic, serde_json::to_vec(&body)?)]).await
}

/// The whole second `secs` after `base`.
fn at(base: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
    base + chrono::Duration::seconds(secs)
}

/// Now, whole seconds, ten minutes ago: readings of a threshold rule come from the past.
fn past_base() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp() - 600, 0).unwrap()
}

#[tokio::test]
async fn a_threshold_rule_fires_once_after_its_duration_and_resolves_once_with_signed_webhooks_and_german_mail(
) -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let no2 = platform.api.register(ORG, "luft-1", "no2", Some("ug/m3")).await?;
    let receiver = Receiver::start(0).await?;
    let smtp = Smtp::start().await?;
    let rule = insert_rule(
        &platform.pool,
        NewRule {
            principal: None,
            datastream: no2,
            name: "NO2 über 100",
            kind: "above",
            threshold: Some(100.0),
            for_secs: 60,
            hysteresis: 5.0,
            webhook: Some(&receiver.url),
            emails: &["umwelt@eberswalde.example"],
            language: "de",
        },
    )
    .await?;
    let alerts = hoheit_tests::start_alerts(&platform.isolation, Some(&smtp.url)).await?;

    let base = past_base();
    let mut publisher = Publisher::connect("alerts-threshold").await?;
    // Above from 20 s on; held 60 s at 80 s; 97 is within the hysteresis; 90 resolves; 150 after
    // that is pending again, not firing (it would need 60 s more).
    let readings: Vec<(DateTime<Utc>, f64)> = [
        (0, 50.0),
        (20, 120.0),
        (40, 130.0),
        (60, 101.0),
        (80, 140.0),
        (100, 150.0),
        (120, 97.0),
        (140, 90.0),
        (160, 150.0),
    ]
    .iter()
    .map(|&(s, v)| (at(base, s), v))
    .collect();
    publish(&platform, &mut publisher, "luft-1", "no2", &readings).await?;

    all_delivered(&platform.pool, rule, 2, 2).await?;
    let stored = events(&platform.pool, rule).await?;
    let changes: Vec<(&str, DateTime<Utc>, Option<f64>)> =
        stored.iter().map(|(_, kind, at, value)| (kind.as_str(), *at, *value)).collect();
    assert_eq!(changes, [("firing", at(base, 80), Some(140.0)), ("resolved", at(base, 140), Some(90.0))]);
    let state: (String,) = sqlx::query_as("SELECT status FROM alert_states WHERE rule_id = $1")
        .bind(rule)
        .fetch_one(&platform.pool)
        .await?;
    assert_eq!(state.0, "pending", "150 after the resolution starts a new duration");

    // One signed webhook per change, named by its event.
    let hooks = receiver.hooks();
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    for (hook, (id, kind, _, value)) in hooks.iter().zip(&stored) {
        assert!(hook.signed(), "the signature matches the body: {hook:?}");
        assert_eq!(hook.event, id.to_string());
        let body = hook.json();
        assert_eq!(body["event"]["id"], json!(id));
        assert_eq!(body["event"]["state"], json!(kind));
        assert_eq!(body["event"]["value"], json!(value));
        assert_eq!(
            body["rule"],
            json!({"id": rule, "name": "NO2 über 100", "condition": {"kind": "above", "threshold": 100.0},
                                        "for_minutes": 1, "hysteresis": 5.0, "aggregate": null})
        );
        assert_eq!(
            body["datastream"],
            json!({"id": no2, "thing": "luft-1", "property": "no2", "unit": "ug/m3", "organisation": ORG})
        );
    }

    // One German e-mail per change, its Message-ID from the event.
    let mails = smtp.mails().await?;
    assert_eq!(mails.len(), 2, "{mails:?}");
    let mut subjects: Vec<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
    subjects.sort();
    assert_eq!(subjects, ["[Hoheit] Alarm aufgehoben: NO2 über 100", "[Hoheit] Alarm ausgelöst: NO2 über 100"]);
    for mail in &mails {
        assert_eq!(mail.to, "umwelt@eberswalde.example");
        let (id, kind, ..) = stored
            .iter()
            .find(|(id, ..)| mail.message_id.starts_with(&format!("<alert-event-{id}@")))
            .with_context(|| format!("a Message-ID of an event: {}", mail.message_id))?;
        assert_eq!(mail.subject.contains("ausgelöst"), kind == "firing", "{mail:?} for event {id}");
        assert!(mail.text.contains("Bedingung: über 100 ug/m3 für mindestens 1 min"), "{}", mail.text);
        assert!(mail.text.contains(&format!("Datenstrom: {ORG} / luft-1 / no2 (Nr. {no2})")), "{}", mail.text);
    }

    alerts.stop().await?;
    smtp.stop().await;
    platform.stop().await
}

#[tokio::test]
async fn a_silent_rule_fires_when_publishing_stops_and_resolves_when_it_resumes() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let level = platform.api.register(ORG, "pegel-finow", "level", Some("cm")).await?;
    let receiver = Receiver::start(0).await?;
    let smtp = Smtp::start().await?;
    let rule = insert_rule(
        &platform.pool,
        NewRule {
            principal: None,
            datastream: level,
            name: "Pegel still",
            kind: "silent",
            threshold: None,
            for_secs: 60,
            hysteresis: 0.0,
            webhook: Some(&receiver.url),
            emails: &["tiefbau@eberswalde.example"],
            language: "en",
        },
    )
    .await?;
    let alerts = hoheit_tests::start_alerts(&platform.isolation, Some(&smtp.url)).await?;

    let mut publisher = Publisher::connect("alerts-silent").await?;
    let last = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    publish(&platform, &mut publisher, "pegel-finow", "level", &[(last, 120.0)]).await?;
    // Nothing more is published: the rule fires from time, a minute after that reading.
    all_delivered(&platform.pool, rule, 1, 2).await?;
    let fired = events(&platform.pool, rule).await?;
    assert_eq!((fired[0].1.as_str(), fired[0].2, fired[0].3), ("firing", at(last, 60), None));

    let resumed = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    publish(&platform, &mut publisher, "pegel-finow", "level", &[(resumed, 121.5)]).await?;
    all_delivered(&platform.pool, rule, 2, 2).await?;
    let stored = events(&platform.pool, rule).await?;
    assert_eq!((stored[1].1.as_str(), stored[1].2, stored[1].3), ("resolved", resumed, Some(121.5)));

    let states: Vec<String> =
        receiver.hooks().iter().map(|h| h.json()["event"]["state"].as_str().unwrap().to_owned()).collect();
    assert_eq!(states, ["firing", "resolved"]);
    assert!(receiver.hooks().iter().all(Hook::signed));
    let mut subjects: Vec<String> = smtp.mails().await?.into_iter().map(|m| m.subject).collect();
    subjects.sort();
    assert_eq!(subjects, ["[Hoheit] Alert firing: Pegel still", "[Hoheit] Resolved: Pegel still"]);

    alerts.stop().await?;
    smtp.stop().await;
    platform.stop().await
}

#[tokio::test]
async fn a_failing_webhook_is_retried_and_its_delivery_log_shows_the_attempts() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let temp = platform.api.register(ORG, "luft-2", "temp", Some("Cel")).await?;
    let receiver = Receiver::start(2).await?;
    let rule = insert_rule(
        &platform.pool,
        NewRule {
            principal: None,
            datastream: temp,
            name: "Hitze",
            kind: "above",
            threshold: Some(30.0),
            for_secs: 0,
            hysteresis: 0.0,
            webhook: Some(&receiver.url),
            emails: &[],
            language: "de",
        },
    )
    .await?;
    let alerts = hoheit_tests::start_alerts(&platform.isolation, None).await?;
    let mut publisher = Publisher::connect("alerts-retry").await?;
    publish(&platform, &mut publisher, "luft-2", "temp", &[(past_base(), 35.0)]).await?;

    all_delivered(&platform.pool, rule, 1, 1).await?;
    let attempts: Vec<(i32, String, Option<i32>, Option<String>)> = sqlx::query_as(
        "SELECT a.attempt, a.outcome, a.http_status, a.error FROM alert_delivery_attempts a
         JOIN alert_deliveries d ON d.id = a.delivery_id JOIN alert_events e ON e.id = d.event_id
         WHERE e.rule_id = $1 ORDER BY a.attempt",
    )
    .bind(rule)
    .fetch_all(&platform.pool)
    .await?;
    let log: Vec<(i32, &str, Option<i32>)> = attempts.iter().map(|(n, o, s, _)| (*n, o.as_str(), *s)).collect();
    assert_eq!(log, [(1, "retry", Some(500)), (2, "retry", Some(500)), (3, "delivered", Some(204))]);
    assert!(attempts[0].3.as_deref().is_some_and(|e| e.contains("500")), "{attempts:?}");
    let times: Vec<(DateTime<Utc>,)> = sqlx::query_as(
        "SELECT a.at FROM alert_delivery_attempts a JOIN alert_deliveries d ON d.id = a.delivery_id
         JOIN alert_events e ON e.id = d.event_id WHERE e.rule_id = $1 ORDER BY a.attempt",
    )
    .bind(rule)
    .fetch_all(&platform.pool)
    .await?;
    // The back-off: at least 1 s before the second attempt, 2 s before the third.
    assert!(times[1].0 - times[0].0 >= chrono::Duration::seconds(1), "{times:?}");
    assert!(times[2].0 - times[1].0 >= chrono::Duration::seconds(2), "{times:?}");
    let hooks = receiver.hooks();
    assert_eq!(hooks.len(), 3);
    assert!(hooks.iter().all(|h| h.event == hooks[0].event && h.body == hooks[0].body && h.signed()));

    alerts.stop().await?;
    platform.stop().await
}

/// The debug binary of the alerts service, built if it is missing or stale (with the tests'
/// package in the build, as `deploy/local/hoheit chaos` does, so its dependencies are the ones
/// the tests' build compiled).
fn alerts_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/debug/deps/it-… → target/debug
    let profile_dir = exe.parent().and_then(Path::parent).context("the test binary's directory")?;
    let target_dir = profile_dir.parent().context("the target directory")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "-p", "hoheit-alerts", "-p", "hoheit-tests", "--bin", "hoheit-alerts"])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(hoheit_tests::repo())
        .status()
        .context("building hoheit-alerts")?;
    anyhow::ensure!(status.success(), "building hoheit-alerts failed");
    Ok(profile_dir.join("hoheit-alerts"))
}

/// The alerts service as a child process of this test's configuration.
async fn spawn_alerts(binary: &Path, platform: &Platform, ops_port: u16) -> anyhow::Result<tokio::process::Child> {
    let isolation = &platform.isolation;
    let child = tokio::process::Command::new(binary)
        .env("HOHEIT_DATABASE_URL", &isolation.database_url)
        .env("HOHEIT_KAFKA_BOOTSTRAP", hoheit_tests::kafka_bootstrap())
        .env("HOHEIT_KAFKA_TOPIC_PREFIX", &isolation.kafka_prefix)
        .env("HOHEIT_KAFKA_PARTITIONS", "2")
        .env("HOHEIT_ALERTS_GROUP", format!("alerts-{}", isolation.id))
        .env("HOHEIT_ALERTS_OPS_LISTEN", format!("127.0.0.1:{ops_port}"))
        .env_remove("HOHEIT_SMTP_URL")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    hoheit_tests::wait_ready(&format!("http://127.0.0.1:{ops_port}/readyz"), Duration::from_secs(60)).await?;
    Ok(child)
}

#[tokio::test]
async fn the_alerts_service_killed_mid_stream_and_restarted_sends_no_duplicate_and_misses_no_change(
) -> anyhow::Result<()> {
    let binary = alerts_binary()?;
    let platform = Platform::start().await?;
    let pegel = platform.api.register(ORG, "pegel-ragoese", "level", Some("cm")).await?;
    let receiver = Receiver::start(0).await?;
    let rule = insert_rule(
        &platform.pool,
        NewRule {
            principal: None,
            datastream: pegel,
            name: "Pegel Warnmarke",
            kind: "above",
            threshold: Some(100.0),
            for_secs: 0,
            hysteresis: 0.0,
            webhook: Some(&receiver.url),
            emails: &[],
            language: "de",
        },
    )
    .await?;
    let ops_port = free_port()?;
    let mut alerts = spawn_alerts(&binary, &platform, ops_port).await?;

    // Every reading changes the state: above, below, above, ...
    let base = DateTime::from_timestamp(Utc::now().timestamp() - 3_600, 0).unwrap();
    let readings: Vec<(DateTime<Utc>, f64)> =
        (0..300).map(|i| (at(base, i), if i % 2 == 0 { 150.0 } else { 50.0 })).collect();
    let mut publisher = Publisher::connect("alerts-restart").await?;
    let chunks: Vec<&[(DateTime<Utc>, f64)]> = readings.chunks(10).collect();
    for (n, chunk) in chunks.iter().enumerate() {
        publish(&platform, &mut publisher, "pegel-ragoese", "level", chunk).await?;
        if n == 10 {
            // Mid-stream, once the service has evaluated something: SIGKILL, nothing flushed.
            eventually(WAIT, "the first state changes", || async {
                Ok((!events(&platform.pool, rule).await?.is_empty()).then_some(()))
            })
            .await?;
            alerts.start_kill()?;
            alerts.wait().await?;
        }
        if n == 20 {
            alerts = spawn_alerts(&binary, &platform, ops_port).await?;
        }
    }

    all_delivered(&platform.pool, rule, readings.len(), 1).await?;
    // Every reading's change, once, in order.
    let stored = events(&platform.pool, rule).await?;
    let expected: Vec<(&str, DateTime<Utc>)> =
        readings.iter().map(|&(t, v)| (if v > 100.0 { "firing" } else { "resolved" }, t)).collect();
    let changes: Vec<(&str, DateTime<Utc>)> = stored.iter().map(|(_, kind, at, _)| (kind.as_str(), *at)).collect();
    assert_eq!(changes, expected);
    // Counted at the receiver by Hoheit-Event and by state: one notification per change. (A send
    // cut off by the kill before its attempt was recorded is sent again with the same event id and
    // body, which the receiver's de-duplication by Hoheit-Event absorbs.)
    let hooks = receiver.hooks();
    let mut by_event: BTreeMap<String, Vec<&Hook>> = BTreeMap::new();
    for hook in &hooks {
        assert!(hook.signed());
        by_event.entry(hook.event.clone()).or_default().push(hook);
    }
    assert_eq!(by_event.len(), readings.len(), "one event id per state change");
    assert!(
        by_event.values().all(|same| same.iter().all(|h| h.body == same[0].body)),
        "a repeat is the same notification"
    );
    let notified: BTreeSet<(String, String)> = by_event
        .values()
        .map(|same| {
            let body = same[0].json();
            (body["event"]["state"].as_str().unwrap().to_owned(), body["event"]["at"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(notified.len(), readings.len(), "no state change notified under two event ids");
    let firing = notified.iter().filter(|(state, _)| state == "firing").count();
    assert_eq!(firing, readings.len() / 2);

    alerts.start_kill()?;
    alerts.wait().await?;
    platform.stop().await
}

/// A rule as the tests make most: above `threshold` at once, a webhook to `url`, no e-mail.
fn above<'a>(datastream: i64, principal: Option<i64>, name: &'a str, url: &'a str) -> NewRule<'a> {
    NewRule {
        datastream,
        principal,
        name,
        kind: "above",
        threshold: Some(10.0),
        for_secs: 0,
        hysteresis: 0.0,
        webhook: Some(url),
        emails: &[],
        language: "en",
    }
}

#[tokio::test]
async fn a_rule_whose_owner_may_no_longer_read_the_datastream_is_skipped() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let temp = platform.api.register(ORG, "luft-3", "temp", Some("Cel")).await?;
    platform.api.organisation("datenhaus", "third_party", None).await?;
    let principal = |org: &'static str, name: &'static str| {
        let api = platform.api.clone();
        async move {
            let body = api
                .post_ok("/v1/admin/principals", json!({"org": org, "name": name, "kind": "service", "role": "reader"}))
                .await?;
            body["id"].as_i64().context("principal id")
        }
    };
    let colleague = principal(ORG, "umwelt-app").await?;
    let disabled = principal(ORG, "alte-app").await?;
    let outsider = principal("datenhaus", "datenhaus-app").await?;
    sqlx::query("UPDATE principals SET disabled_at = now() WHERE id = $1")
        .bind(disabled)
        .execute(&platform.pool)
        .await?;
    let receiver = Receiver::start(0).await?;
    let url = receiver.url.as_str();
    let operators = insert_rule(&platform.pool, above(temp, None, "operator", url)).await?;
    let colleagues = insert_rule(&platform.pool, above(temp, Some(colleague), "colleague", url)).await?;
    let disableds = insert_rule(&platform.pool, above(temp, Some(disabled), "disabled", url)).await?;
    // A third party without a grant on the datastream (as after its grant was revoked).
    let outsiders = insert_rule(&platform.pool, above(temp, Some(outsider), "outsider", url)).await?;
    let alerts = hoheit_tests::start_alerts(&platform.isolation, None).await?;

    let mut publisher = Publisher::connect("alerts-access").await?;
    publish(&platform, &mut publisher, "luft-3", "temp", &[(past_base(), 20.0)]).await?;
    // The same reading reached every rule: the ones that may read fired with it, the others did not.
    all_delivered(&platform.pool, operators, 1, 1).await?;
    all_delivered(&platform.pool, colleagues, 1, 1).await?;
    assert!(events(&platform.pool, disableds).await?.is_empty(), "a disabled principal's rule is skipped");
    assert!(events(&platform.pool, outsiders).await?.is_empty(), "a rule without a grant is skipped");
    let names: BTreeSet<String> =
        receiver.hooks().iter().map(|h| h.json()["rule"]["name"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(names, BTreeSet::from(["colleague".to_owned(), "operator".to_owned()]));

    alerts.stop().await?;
    platform.stop().await
}
