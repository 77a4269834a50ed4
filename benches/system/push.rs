//! HTTP push benchmark: single-reading and 500-reading JSON requests to the
//! release `hoheit-ingest`'s push door (`POST /v1/push/…`, answered `202`
//! only after Kafka confirmed), beside, in the same run, a bare axum handler
//! that only reads and parses the same bodies (the limit of HTTP and JSON on
//! this machine with this client), and the same single readings over MQTT
//! through the same ingest.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::http::StatusCode;
use bytes::Bytes;
use chrono::Utc;
use clap::Args;
use hoheit_domain::policy::Role;
use hoheit_domain::Slug;
use hoheit_store::audit::Actor;
use hoheit_store::principals::{self, KeyExpiry, KeyLifetime, NewPrincipal, PrincipalKind};
use serde_json::json;

use crate::harness::{
    free_port, mib, percent, scrape, thousands, verdict, wait_ready, with_ingest_resources, BenchDb, BenchTopics,
    Infra, Percentiles, Service, Table,
};
use crate::mqtt::{self, Client};

#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// Single-reading requests per run.
    #[arg(long, default_value_t = 40_000)]
    pub requests: usize,
    /// Batched requests per run.
    #[arg(long, default_value_t = 1_000)]
    pub batched_requests: usize,
    /// Readings per batched request.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Concurrent HTTP clients (connections). A request waits for Kafka's
    /// confirmation, so a door's rate is clients ÷ latency: 256 stand for a
    /// fleet of gateways (32 clients: 1,155 single readings/s at 27 ms).
    #[arg(long, default_value_t = 256)]
    pub clients: usize,
    /// Things registered (each with --properties datastreams).
    #[arg(long, default_value_t = 100)]
    pub things: usize,
    /// Datastreams per thing.
    #[arg(long, default_value_t = 10)]
    pub properties: usize,
}

/// A request: path suffix (`t{thing}/p{property}`) and JSON body.
type Request = (String, Bytes);

fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

fn requests(args: &PushArgs, batch: usize, count: usize, offset_us: i64) -> Arc<Vec<Request>> {
    let start = hoheit_domain::Micros::now().0 - 3_600_000_000 + offset_us;
    Arc::new(
        (0..count)
            .map(|r| {
                let (thing, property) = (r % args.things, (r / args.things) % args.properties);
                let body = if batch == 1 {
                    json!({"time": rfc3339(start + r as i64), "value": r as f64 * 0.5})
                } else {
                    let at = start + (r * batch) as i64;
                    json!((0..batch)
                        .map(|i| json!({"time": rfc3339(at + i as i64), "value": i as f64 * 0.25}))
                        .collect::<Vec<_>>())
                };
                (format!("t{thing}/p{property}"), Bytes::from(serde_json::to_vec(&body).unwrap_or_default()))
            })
            .collect(),
    )
}

/// Sends every request from `clients` concurrent connections; readings per
/// second until the last answer, and the latency percentiles.
async fn drive(
    base: &str,
    key: &str,
    clients: usize,
    work: Arc<Vec<Request>>,
    per: usize,
) -> anyhow::Result<(f64, Percentiles)> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (next, work, base, key) = (next.clone(), work.clone(), base.to_owned(), key.to_owned());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((suffix, body)) = work.get(i) else { break };
                let sent = Instant::now();
                let answer = http
                    .post(format!("{base}/v1/push/bench/{suffix}"))
                    .header("content-type", "application/json")
                    .header("x-api-key", &key)
                    .body(body.clone())
                    .send()
                    .await?;
                let status = answer.status();
                let text = answer.text().await?;
                if status != StatusCode::ACCEPTED {
                    bail!("request {i}: {status} {text}");
                }
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(((work.len() * per) as f64 / elapsed, Percentiles::of(&mut all)))
}

/// A bare axum handler: reads the body, parses it as JSON, answers `202`.
async fn bare_handler() -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/v1/push/{org}/{thing}/{property}",
        axum::routing::post(|body: Bytes| async move {
            match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(value) => {
                    let n = value.as_array().map_or(1, Vec::len);
                    (StatusCode::ACCEPTED, axum::Json(json!({"accepted": n, "rejected": 0, "rejections": []})))
                }
                Err(_) => (StatusCode::BAD_REQUEST, axum::Json(json!({}))),
            }
        }),
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((base, task))
}

async fn publisher_key(db: &BenchDb) -> anyhow::Result<String> {
    let actor =
        Actor { request_id: "bench".into(), principal_id: None, principal_name: "hoheit-bench".into(), org_id: None };
    let new = NewPrincipal {
        org: Slug::parse("org", "bench")?,
        name: Slug::parse("name", "bench-gateway")?,
        kind: PrincipalKind::Service,
        role: Role::Publisher,
        oidc_subject: None,
    };
    let principal = principals::create_principal(&db.pool, &new, &actor).await?;
    let expiry = KeyExpiry::within(None, KeyLifetime::days(30)?, Utc::now())?;
    Ok(principals::create_key(&db.pool, principal.id, expiry, &actor).await?.key)
}

pub async fn run(infra: &Infra, args: &PushArgs) -> anyhow::Result<Vec<Table>> {
    with_ingest_resources(infra, "push", async |id, client_id, db, topics| {
        measure(infra, args, id, client_id, db, topics).await
    })
    .await
}

async fn measure(
    infra: &Infra,
    args: &PushArgs,
    id: &str,
    client_id: &str,
    db: &BenchDb,
    topics: &BenchTopics,
) -> anyhow::Result<Vec<Table>> {
    db.register(args.things, args.properties).await?;
    let key = publisher_key(db).await?;
    let root = format!("bench-{id}/hoheit/v1");
    let (ops, doors) = (free_port()?, free_port()?);
    let flags: Vec<String> = [
        ("--mqtt-host", infra.mqtt_host.clone()),
        ("--mqtt-port", infra.mqtt_port.to_string()),
        ("--mqtt-client-id", client_id.into()),
        ("--topic-root", root.clone()),
        ("--ops-listen", format!("127.0.0.1:{ops}")),
        ("--http-listen", format!("127.0.0.1:{doors}")),
        ("--http-requests-per-second", "100000000".into()),
        ("--database-url", db.url.clone()),
        ("--kafka-bootstrap", topics.args.bootstrap.clone()),
        ("--kafka-topic-prefix", topics.args.topic_prefix.clone()),
        ("--kafka-partitions", topics.args.partitions.to_string()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_owned(), value])
    .collect();
    let mut ingest = Service::spawn(infra, "hoheit-ingest", &flags)?;
    let http = reqwest::Client::new();
    wait_ready(&http, &format!("http://127.0.0.1:{ops}/readyz"), &mut ingest, Duration::from_secs(60)).await?;
    let metrics = format!("http://127.0.0.1:{ops}/metrics");
    let ingest_base = format!("http://127.0.0.1:{doors}");
    let (bare_base, bare) = bare_handler().await?;

    let mut table = Table::new(
        format!("HTTP push: {} clients, {} datastreams", args.clients, args.things * args.properties),
        &[
            "load",
            "requests",
            "bare axum handler (readings/s)",
            "hoheit-ingest push (readings/s)",
            "ratio",
            "push p50 / p99",
            "target",
            "verdict",
        ],
    );
    let loads =
        [("single readings", 1, args.requests, 0), ("batches", args.batch_size, args.batched_requests, 1_000_000_000)];
    let mut expected = 0;
    for (name, per, count, offset) in loads {
        let work = requests(args, per, count, offset);
        let (bare_rate, _) = drive(&bare_base, &key, args.clients, work.clone(), per).await?;
        ingest.check_alive()?;
        let (rate, latency) = drive(&ingest_base, &key, args.clients, work, per).await?;
        expected += count * per;
        println!(
            "  {name} ({per} per request): bare handler {} readings/s, push {} readings/s ({}), p50 {:.1} ms p99 {:.1} ms",
            thousands(bare_rate),
            thousands(rate),
            percent(rate, bare_rate),
            latency.p50,
            latency.p99
        );
        let (target, met) = if per == 1 {
            ("≥ 50% of the bare handler", rate >= 0.5 * bare_rate)
        } else {
            ("≥ 200,000 readings/s", rate >= 200_000.0)
        };
        table.row(vec![
            format!("{name} ({per} per request)"),
            thousands(count as f64),
            thousands(bare_rate),
            thousands(rate),
            percent(rate, bare_rate),
            format!("{:.1} / {:.1} ms", latency.p50, latency.p99),
            target.into(),
            verdict(met).into(),
        ]);
    }
    bare.abort();

    // The same single readings over MQTT through the same ingest (QoS 1, acknowledged after Kafka).
    let name = "hoheit_ingest_messages_acknowledged_total";
    let before = scrape(&http, &metrics, name).await? as u64;
    let mut publishers = Vec::new();
    for _ in 0..4 {
        publishers.push(Client::publisher(infra).await?);
    }
    let singles = requests(args, 1, args.requests, 2_000_000_000);
    let messages: Vec<mqtt::Message> =
        singles.iter().map(|(suffix, body)| (format!("{root}/bench/{suffix}"), body.clone())).collect();
    let started = Instant::now();
    mqtt::publish_all(&publishers, Arc::new(messages)).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while (scrape(&http, &metrics, name).await? as u64) < before + args.requests as u64 {
        if Instant::now() > deadline {
            bail!("ingest did not acknowledge every MQTT message in time");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mqtt_rate = args.requests as f64 / started.elapsed().as_secs_f64();
    for publisher in publishers {
        publisher.disconnect().await;
    }
    expected += args.requests;
    println!("  the same single readings over MQTT (4 publishers): {} readings/s", thousands(mqtt_rate));
    table.row(vec![
        "single readings over MQTT (4 publishers, same ingest)".into(),
        thousands(args.requests as f64),
        "".into(),
        thousands(mqtt_rate),
        "".into(),
        "".into(),
        "".into(),
        "".into(),
    ]);

    let (_, in_kafka) = topics.observation_readings()?;
    if in_kafka as usize != expected {
        bail!("Kafka holds {in_kafka} readings from ingest (expected {expected})");
    }
    let (peak, _) = ingest.stop(Duration::from_secs(40)).await.context("stopping ingest")?;
    println!(
        "  Kafka holds the expected {} readings; hoheit-ingest peak RSS {}",
        thousands(in_kafka as f64),
        mib(peak)
    );
    table.row(vec![
        "hoheit-ingest peak RSS (VmHWM)".into(),
        "".into(),
        "".into(),
        mib(peak),
        "".into(),
        "".into(),
        "≤ 64 MiB".into(),
        verdict(peak.is_some_and(|k| k <= 64 * 1024)).into(),
    ]);
    Ok(vec![table])
}
