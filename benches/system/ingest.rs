//! Ingest benchmark: MQTT publishers (single-reading JSON; batched SenML and
//! protobuf) → readings per second confirmed in Kafka by the release
//! `hoheit-ingest` (an MQTT message counts once ingest acknowledged it, which
//! it does only after Kafka confirmed all of its records). Beside each, in
//! the same run: the MQTT broker's own QoS 1 rate with the same publishers
//! and payloads and a plain subscriber instead of ingest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use clap::Args;
use hoheit_proto::v1::{ObservationBatch, SensorReading};
use prost::Message as _;
use serde_json::json;

use crate::harness::{
    free_port, mib, percent, scrape, thousands, verdict, wait_ready, with_ingest_resources, BenchDb, BenchTopics,
    Infra, Service, Table,
};
use crate::mqtt::{self, Client, Message};

#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// Single-reading JSON messages per run.
    #[arg(long, default_value_t = 200_000)]
    pub messages: usize,
    /// Batched messages per run (SenML and protobuf each).
    #[arg(long, default_value_t = 10_000)]
    pub batched_messages: usize,
    /// Readings per batched message.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Concurrent MQTT publishers.
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Things registered (each with --properties datastreams).
    #[arg(long, default_value_t = 100)]
    pub things: usize,
    /// Datastreams per thing.
    #[arg(long, default_value_t = 10)]
    pub properties: usize,
}

/// One payload format under test.
struct Load {
    name: &'static str,
    readings_per_message: usize,
    /// Topic suffixes (`org/thing[/property]`) and payloads.
    messages: Vec<(String, Bytes)>,
}

fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

fn loads(args: &IngestArgs) -> Vec<Load> {
    let now = hoheit_domain::Micros::now().0 - 60_000_000;
    let single = (0..args.messages)
        .map(|m| {
            let (thing, property) = (m % args.things, (m / args.things) % args.properties);
            let payload = serde_json::to_vec(&json!({"time": rfc3339(now + m as i64), "value": m as f64 * 0.5}))
                .unwrap_or_default();
            (format!("bench/t{thing}/p{property}"), Bytes::from(payload))
        })
        .collect();
    let n = args.batch_size;
    let senml = (0..args.batched_messages)
        .map(|m| {
            let base = (now / 1_000_000) as f64 - 600.0;
            let mut pack = vec![json!({"bn": "", "bt": base, "n": "p0", "t": 0.0, "v": m as f64})];
            pack.extend((1..n).map(
                |i| json!({"n": format!("p{}", i % args.properties), "t": i as f64 * 0.001, "v": i as f64 * 0.25}),
            ));
            (format!("bench/t{}", m % args.things), Bytes::from(serde_json::to_vec(&pack).unwrap_or_default()))
        })
        .collect();
    let protobuf = (0..args.batched_messages)
        .map(|m| {
            let readings = (0..n)
                .map(|i| SensorReading {
                    property: format!("p{}", i % args.properties),
                    time_unix_us: Some(now - 600_000_000 + i as i64 * 1_000),
                    value: i as f64 * 0.25,
                    unit: String::new(),
                })
                .collect();
            (format!("bench/t{}", m % args.things), Bytes::from(ObservationBatch { readings }.encode_to_vec()))
        })
        .collect();
    vec![
        Load { name: "single-reading JSON", readings_per_message: 1, messages: single },
        Load { name: "SenML packs", readings_per_message: n, messages: senml },
        Load { name: "protobuf batches", readings_per_message: n, messages: protobuf },
    ]
}

fn with_root(root: &str, messages: &[(String, Bytes)]) -> Arc<Vec<Message>> {
    Arc::new(messages.iter().map(|(suffix, payload)| (format!("{root}/{suffix}"), payload.clone())).collect())
}

/// Waits until `count()` reaches `expected`; the time it did.
async fn wait_count(
    what: &str,
    expected: u64,
    timeout: Duration,
    mut count: impl AsyncFnMut() -> u64,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        let now_count = count().await;
        if now_count >= expected {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("{what}: {now_count} of {expected} after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn publishers(infra: &Infra, n: usize) -> anyhow::Result<Vec<Client>> {
    let mut out = Vec::new();
    for _ in 0..n.max(1) {
        out.push(Client::publisher(infra).await?);
    }
    Ok(out)
}

async fn disconnect(clients: Vec<Client>) {
    for client in clients {
        client.disconnect().await;
    }
}

/// The broker alone: same publishers and payloads, a plain QoS 1 subscriber.
async fn broker_rate(infra: &Infra, args: &IngestArgs, root: &str, load: &Load) -> anyhow::Result<f64> {
    let subscriber = Client::subscriber(infra, &format!("{root}/#")).await?;
    let pubs = publishers(infra, args.publishers).await?;
    let messages = with_root(root, &load.messages);
    let n = messages.len() as u64;
    let started = Instant::now();
    mqtt::publish_all(&pubs, messages).await?;
    let done = wait_count("plain subscriber", n, Duration::from_secs(600), async || subscriber.count()).await?;
    disconnect(pubs).await;
    subscriber.disconnect().await;
    Ok((n as usize * load.readings_per_message) as f64 / (done - started).as_secs_f64())
}

/// Through ingest: until ingest acknowledged every message (Kafka confirmed).
async fn ingest_rate(infra: &Infra, args: &IngestArgs, root: &str, metrics: &str, load: &Load) -> anyhow::Result<f64> {
    let http = reqwest::Client::new();
    let name = "hoheit_ingest_messages_acknowledged_total";
    let before = scrape(&http, metrics, name).await? as u64;
    let pubs = publishers(infra, args.publishers).await?;
    let messages = with_root(root, &load.messages);
    let n = messages.len() as u64;
    let started = Instant::now();
    mqtt::publish_all(&pubs, messages).await?;
    let done = wait_count("ingest acknowledgements", before + n, Duration::from_secs(900), async || {
        scrape(&http, metrics, name).await.map(|v| v as u64).unwrap_or(0)
    })
    .await?;
    disconnect(pubs).await;
    Ok((n as usize * load.readings_per_message) as f64 / (done - started).as_secs_f64())
}

pub async fn run(infra: &Infra, args: &IngestArgs) -> anyhow::Result<Vec<Table>> {
    with_ingest_resources(infra, "ingest", async |id, client_id, db, topics| {
        measure(infra, args, id, client_id, db, topics).await
    })
    .await
}

async fn measure(
    infra: &Infra,
    args: &IngestArgs,
    id: &str,
    client_id: &str,
    db: &BenchDb,
    topics: &BenchTopics,
) -> anyhow::Result<Vec<Table>> {
    db.register(args.things, args.properties).await?;
    let loads = loads(args);
    let hoheit_root = format!("bench-{id}/hoheit/v1");
    let broker_root = format!("bench-{id}/broker/v1");

    let port = free_port()?;
    let flags: Vec<String> = vec![
        "--mqtt-host".into(),
        infra.mqtt_host.clone(),
        "--mqtt-port".into(),
        infra.mqtt_port.to_string(),
        "--mqtt-client-id".into(),
        client_id.into(),
        "--topic-root".into(),
        hoheit_root.clone(),
        "--ops-listen".into(),
        format!("127.0.0.1:{port}"),
        "--database-url".into(),
        db.url.clone(),
        "--kafka-bootstrap".into(),
        topics.args.bootstrap.clone(),
        "--kafka-topic-prefix".into(),
        topics.args.topic_prefix.clone(),
        "--kafka-partitions".into(),
        topics.args.partitions.to_string(),
    ];
    let mut ingest = Service::spawn(infra, "hoheit-ingest", &flags)?;
    let http = reqwest::Client::new();
    wait_ready(&http, &format!("http://127.0.0.1:{port}/readyz"), &mut ingest, Duration::from_secs(60)).await?;
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    // Measured with the whole registry in ingest's snapshot (it loads in the background).
    let (_, load_secs) = crate::overload::snapshot_loaded(&http, &metrics, args.things * args.properties).await?;
    println!(
        "  ingest's registry snapshot: {} datastreams loaded in {load_secs:.2} s",
        thousands((args.things * args.properties) as f64)
    );

    let mut table = Table::new(
        format!("ingest: {} publishers, {} datastreams", args.publishers, args.things * args.properties),
        &[
            "payload",
            "messages",
            "broker alone (readings/s)",
            "hoheit-ingest (readings/s)",
            "ratio",
            "target",
            "verdict",
        ],
    );
    let mut expected_readings = 0;
    for load in &loads {
        let broker = broker_rate(infra, args, &broker_root, load).await?;
        ingest.check_alive()?;
        let through = ingest_rate(infra, args, &hoheit_root, &metrics, load).await?;
        expected_readings += load.messages.len() * load.readings_per_message;
        println!(
            "  {}: broker alone {} readings/s, through ingest {} readings/s ({})",
            load.name,
            thousands(broker),
            thousands(through),
            percent(through, broker)
        );
        let (target, met) = if load.readings_per_message == 1 {
            ("≥ 80% of the broker", through >= 0.8 * broker)
        } else {
            ("≥ 200,000 readings/s", through >= 200_000.0)
        };
        table.row(vec![
            format!("{} ({} per message)", load.name, load.readings_per_message),
            thousands(load.messages.len() as f64),
            thousands(broker),
            thousands(through),
            percent(through, broker),
            target.into(),
            verdict(met).into(),
        ]);
    }
    let rejected = scrape(&http, &metrics, "hoheit_ingest_dead_letters_total").await?;
    let (records, in_kafka) = topics.observation_readings()?;
    if rejected > 0.0 || in_kafka as usize != expected_readings {
        bail!("Kafka holds {in_kafka} readings from ingest (expected {expected_readings}) and {rejected} dead letters");
    }
    let (peak, _) = ingest.stop(Duration::from_secs(40)).await?;
    println!(
        "  Kafka holds the expected {} readings in {} records; hoheit-ingest peak RSS {}",
        thousands(in_kafka as f64),
        thousands(records as f64),
        mib(peak)
    );
    table.row(vec![
        "hoheit-ingest peak RSS (VmHWM)".into(),
        "".into(),
        "".into(),
        mib(peak),
        "".into(),
        "≤ 64 MiB".into(),
        verdict(peak.is_some_and(|k| k <= 64 * 1024)).into(),
    ]);
    Ok(vec![table])
}
