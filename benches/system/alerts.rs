//! Alerts benchmark: the end-to-end benchmark's pipeline (publisher →
//! Mosquitto → `hoheit-ingest` → Kafka → `hoheit-writer` → TimescaleDB) at its
//! steady rate, with the release `hoheit-alerts` consuming the same topic in
//! its own group and evaluating 10,000 rules. Most rules never fire (they
//! cost evaluation, not notifications); a few probe rules on datastreams of
//! their own fire and resolve several times a second, each change sent to a
//! webhook receiver in this process, which takes each notification's latency
//! from its reading's time (the reading's publish time). The alerts
//! service's lag (records in the topic beyond the offsets it committed with
//! its states) and the writer's are sampled every second, its RSS throughout.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::routing::post;
use clap::Args;
use rumqttc::QoS;
use sqlx::PgPool;

use crate::harness::{
    free_port, mib, thousands, verdict, wait_ready, with_ingest_resources, BenchDb, BenchTopics, Infra, Percentiles,
    Service, Table,
};
use crate::mqtt::Client;

#[derive(Debug, Clone, Args)]
pub struct AlertsArgs {
    /// Readings per second (single-reading JSON messages; the end-to-end benchmark's steady rate).
    #[arg(long, default_value_t = 5_000)]
    pub alerts_rate: u64,
    /// Seconds of the run.
    #[arg(long, default_value_t = 60)]
    pub alerts_duration: u64,
    /// Rules evaluated (a few of them probes that fire).
    #[arg(long, default_value_t = 10_000)]
    pub rules: usize,
    /// Datastreams the readings and the quiet rules are spread over.
    #[arg(long, default_value_t = 2_000)]
    pub alerts_datastreams: usize,
    /// Probe datastreams, each with a rule that fires and resolves.
    #[arg(long, default_value_t = 10)]
    pub probes: usize,
    /// Milliseconds between two probe changes (each is one notification).
    #[arg(long, default_value_t = 250)]
    pub probe_every_ms: u64,
}

/// What the webhook receiver saw: per notification, its latency (ms) and when it arrived (s since start).
#[derive(Default)]
struct Received {
    latencies: Mutex<Vec<(f64, f64)>>,
}

/// Seconds since the start, alerts' lag, writer's lag (records), alerts' VmRSS (KiB).
type Sample = (f64, i64, i64, Option<u64>);

pub async fn run(infra: &Infra, args: &AlertsArgs) -> anyhow::Result<Vec<Table>> {
    with_ingest_resources(infra, "alerts", async |id, client_id, db, topics| {
        measure(infra, args, id, client_id, db, topics).await
    })
    .await
}

/// The quiet rules (never firing on the published values, which stay below
/// 10⁹) over the datastreams, every kind and resolution in turn; then one
/// probe rule per probe datastream (above 1,000 at once, a webhook).
async fn insert_rules(db: &BenchDb, quiet: &[i64], probes: &[i64], rules: usize, hook: &str) -> anyhow::Result<()> {
    let quiet_rules = rules.saturating_sub(probes.len()) as i64;
    sqlx::query(
        "INSERT INTO alert_rules (datastream_id, name, kind, threshold, for_secs, hysteresis, resolution_secs)
         SELECT ($1::bigint[])[1 + n % cardinality($1::bigint[])], 'quiet ' || n,
                (ARRAY['above', 'below', 'rate', 'above', 'silent'])[1 + n % 5],
                (ARRAY[1e12, -1e12, 1e12, 1e12, NULL])[1 + n % 5],
                (ARRAY[0, 600, 0, 0, 86400])[1 + n % 5], 0,
                (ARRAY[0, 0, 0, 900, 0])[1 + n % 5]
         FROM generate_series(0, $2 - 1) n",
    )
    .bind(quiet)
    .bind(quiet_rules)
    .execute(&db.pool)
    .await?;
    sqlx::query(
        "INSERT INTO alert_rules (datastream_id, name, kind, threshold, webhook_url, webhook_secret)
         SELECT id, 'probe ' || id, 'above', 1000, $2, 'bench-secret' FROM unnest($1::bigint[]) id",
    )
    .bind(probes)
    .bind(hook)
    .execute(&db.pool)
    .await?;
    sqlx::query("INSERT INTO alert_states (rule_id) SELECT id FROM alert_rules").execute(&db.pool).await?;
    Ok(())
}

/// Records of the observations topic (`records`: the sum of its high
/// watermarks) beyond the offsets the alerts service committed with its states.
async fn alerts_lag(pool: &PgPool, topic: &str, records: i64) -> anyhow::Result<i64> {
    let committed: Option<i64> =
        sqlx::query_scalar("SELECT sum(next_offset)::bigint FROM alert_offsets WHERE topic = $1")
            .bind(topic)
            .fetch_one(pool)
            .await
            .context("reading the alerts service's offsets")?;
    Ok(records - committed.unwrap_or(0))
}

/// Readings published but not yet stored by the writer: its backlog, beside the alerts service's.
async fn writer_backlog(pool: &PgPool, published: u64) -> anyhow::Result<i64> {
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM observations").fetch_one(pool).await?;
    Ok(published as i64 - stored)
}

async fn measure(
    infra: &Infra,
    args: &AlertsArgs,
    id: &str,
    client_id: &str,
    db: &BenchDb,
    topics: &BenchTopics,
) -> anyhow::Result<Vec<Table>> {
    let properties = 10;
    let things = args.alerts_datastreams.div_ceil(properties).max(1);
    let probe_things = args.probes.div_ceil(properties).max(1);
    let ids = db.register(things + probe_things, properties).await?;
    let (quiet, probes) = ids.split_at(things * properties);
    let probes = &probes[..args.probes];
    let root = format!("bench-{id}/hoheit/v1");
    let topic_of = |index: usize| format!("{root}/bench/t{}/p{}", index / properties, index % properties);
    let quiet_topics: Vec<String> = (0..quiet.len()).map(topic_of).collect();
    let probe_topics: Vec<String> = (quiet.len()..quiet.len() + probes.len()).map(topic_of).collect();

    // The webhook receiver.
    let received = Arc::new(Received::default());
    let started = Instant::now();
    let hook_port = free_port()?;
    let receiver = {
        let received = received.clone();
        let app = axum::Router::new().route(
            "/hook",
            post(move |body: axum::body::Bytes| {
                let received = received.clone();
                async move {
                    let now = chrono::Utc::now();
                    let at = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| chrono::DateTime::parse_from_rfc3339(v["event"]["at"].as_str()?).ok());
                    if let Some(at) = at {
                        let latency =
                            (now - at.with_timezone(&chrono::Utc)).num_microseconds().unwrap_or(0) as f64 / 1e3;
                        received
                            .latencies
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((latency, started.elapsed().as_secs_f64()));
                    }
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], hook_port))).await?;
        tokio::spawn(async move { axum::serve(listener, app).await })
    };
    insert_rules(db, quiet, probes, args.rules, &format!("http://127.0.0.1:{hook_port}/hook")).await?;
    let rules: i64 = sqlx::query_scalar("SELECT count(*) FROM alert_rules").fetch_one(&db.pool).await?;

    let kafka_flags = [
        "--kafka-bootstrap".to_owned(),
        topics.args.bootstrap.clone(),
        "--kafka-topic-prefix".into(),
        topics.args.topic_prefix.clone(),
        "--kafka-partitions".into(),
        topics.args.partitions.to_string(),
        "--database-url".into(),
        db.url.clone(),
    ];
    let (ingest_port, writer_port, alerts_port) = (free_port()?, free_port()?, free_port()?);
    let mut ingest_flags: Vec<String> = vec![
        "--mqtt-host".into(),
        infra.mqtt_host.clone(),
        "--mqtt-port".into(),
        infra.mqtt_port.to_string(),
        "--mqtt-client-id".into(),
        client_id.into(),
        "--topic-root".into(),
        root.clone(),
        "--ops-listen".into(),
        format!("127.0.0.1:{ingest_port}"),
    ];
    ingest_flags.extend(kafka_flags.iter().cloned());
    let mut writer_flags: Vec<String> =
        vec!["--group".into(), format!("bench-writer-{id}"), "--ops-listen".into(), format!("127.0.0.1:{writer_port}")];
    writer_flags.extend(kafka_flags.iter().cloned());
    let mut alerts_flags: Vec<String> =
        vec!["--group".into(), format!("bench-alerts-{id}"), "--ops-listen".into(), format!("127.0.0.1:{alerts_port}")];
    alerts_flags.extend(kafka_flags.iter().cloned());
    let http = reqwest::Client::new();
    let mut writer = Service::spawn(infra, "hoheit-writer", &writer_flags)?;
    wait_ready(&http, &format!("http://127.0.0.1:{writer_port}/readyz"), &mut writer, Duration::from_secs(60)).await?;
    let mut alerts = Service::spawn(infra, "hoheit-alerts", &alerts_flags)?;
    wait_ready(&http, &format!("http://127.0.0.1:{alerts_port}/readyz"), &mut alerts, Duration::from_secs(60)).await?;
    let mut ingest = Service::spawn(infra, "hoheit-ingest", &ingest_flags)?;
    wait_ready(&http, &format!("http://127.0.0.1:{ingest_port}/readyz"), &mut ingest, Duration::from_secs(60)).await?;
    let publisher = Client::publisher(infra).await?;

    // Warm-up: one probe change must come back as a notification before the clock starts.
    let mut last = vec![0i64; quiet_topics.len()];
    let mut probe_last = vec![0i64; probe_topics.len()];
    let mut published = 0u64;
    let publish_one = |client: &Client, topic: String, last: &mut i64, value: f64| {
        let time = hoheit_domain::Micros::now().0.max(*last + 1);
        *last = time;
        let stamp = chrono::DateTime::from_timestamp_micros(time)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            .unwrap_or_default();
        let client = client.client.clone();
        async move {
            client.publish(topic, QoS::AtLeastOnce, false, format!(r#"{{"time":"{stamp}","value":{value}}}"#)).await
        }
    };
    let warm_deadline = Instant::now() + Duration::from_secs(60);
    let mut high = true;
    while received.latencies.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
        if Instant::now() > warm_deadline {
            bail!("no notification came back within 60 s of the warm-up (see {})", alerts.log_tail(20));
        }
        publish_one(&publisher, probe_topics[0].clone(), &mut probe_last[0], if high { 2000.0 } else { 0.0 }).await?;
        published += 1;
        high = !high;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Every probe low, so that each later change is a state change.
    for (i, topic) in probe_topics.iter().enumerate() {
        publish_one(&publisher, topic.clone(), &mut probe_last[i], 0.0).await?;
        published += 1;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    received.latencies.lock().unwrap_or_else(|e| e.into_inner()).clear();

    println!(
        "  {} rules ({} probes), {} readings/s for {} s over {} datastreams",
        thousands(rules as f64),
        probes.len(),
        thousands(args.alerts_rate as f64),
        args.alerts_duration,
        quiet.len()
    );
    // Samples of lag and RSS every second.
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let sampling = Arc::new(AtomicBool::new(true));
    let published_so_far = Arc::new(std::sync::atomic::AtomicU64::new(published));
    let sampler = {
        let (samples, sampling, published_so_far) = (samples.clone(), sampling.clone(), published_so_far.clone());
        let (pool, alerts_pid) = (db.pool.clone(), alerts.pid());
        let topics = BenchTopics { args: topics.args.clone() };
        tokio::spawn(async move {
            let clock = Instant::now();
            while sampling.load(Ordering::Relaxed) {
                let records = tokio::task::block_in_place(|| topics.observation_records()).unwrap_or(0);
                let lag = alerts_lag(&pool, &topics.observations(), records).await.unwrap_or(-1);
                let backlog = writer_backlog(&pool, published_so_far.load(Ordering::Relaxed)).await.unwrap_or(-1);
                let rss = crate::harness::rss_kib(alerts_pid);
                samples.lock().unwrap_or_else(|e| e.into_inner()).push((
                    clock.elapsed().as_secs_f64(),
                    lag,
                    backlog,
                    rss,
                ));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            topics.keep();
        })
    };

    // The run: quiet readings at the rate, a probe change every probe_every_ms.
    let run_started = Instant::now();
    let total = args.alerts_rate * args.alerts_duration;
    let (mut sent, mut next, mut changes) = (0u64, 0usize, 0u64);
    // Readings per datastream id, for the rule evaluations they must cause.
    let mut per_datastream: std::collections::HashMap<i64, u64> = std::collections::HashMap::new();
    let mut next_probe = Instant::now();
    let mut probe_high = vec![false; probe_topics.len()];
    while sent < total {
        let due = ((run_started.elapsed().as_secs_f64() * args.alerts_rate as f64) as u64).min(total);
        while sent < due {
            let ds = next % quiet_topics.len();
            publish_one(&publisher, quiet_topics[ds].clone(), &mut last[ds], (next % 1000) as f64).await?;
            *per_datastream.entry(quiet[ds]).or_default() += 1;
            next += 1;
            sent += 1;
        }
        if Instant::now() >= next_probe {
            let p = (changes as usize) % probe_topics.len();
            probe_high[p] = !probe_high[p];
            publish_one(
                &publisher,
                probe_topics[p].clone(),
                &mut probe_last[p],
                if probe_high[p] { 2000.0 } else { 0.0 },
            )
            .await?;
            changes += 1;
            *per_datastream.entry(probes[p]).or_default() += 1;
            published += 1;
            next_probe += Duration::from_millis(args.probe_every_ms);
        }
        published_so_far.store(published + sent, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let achieved = sent as f64 / run_started.elapsed().as_secs_f64();
    published += sent;
    published_so_far.store(published, Ordering::Relaxed);

    // Drain: every change notified, the alerts service and the writer caught up.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let notified = received.latencies.lock().unwrap_or_else(|e| e.into_inner()).len() as u64;
        let records = tokio::task::block_in_place(|| topics.observation_records())?;
        let lag = alerts_lag(&db.pool, &topics.observations(), records).await?;
        let backlog = writer_backlog(&db.pool, published).await?;
        if notified >= changes && lag == 0 && backlog == 0 {
            break;
        }
        if Instant::now() > deadline {
            println!("  after 120 s: {notified} of {changes} notifications, alerts lag {lag} records, writer {backlog} readings behind");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    alerts.check_alive()?;
    writer.check_alive()?;
    ingest.check_alive()?;
    drop(publisher);
    let evaluated = crate::harness::scrape(
        &http,
        &format!("http://127.0.0.1:{alerts_port}/metrics"),
        "hoheit_alerts_evaluated_readings_total",
    )
    .await
    .unwrap_or(f64::NAN);
    let (ingest_peak, _) = ingest.stop(Duration::from_secs(40)).await?;
    let (writer_peak, _) = writer.stop(Duration::from_secs(40)).await?;
    let (alerts_peak, _) = alerts.stop(Duration::from_secs(40)).await?;
    receiver.abort();

    let rules_per_datastream: Vec<(i64, i64)> =
        sqlx::query_as("SELECT datastream_id, count(*) FROM alert_rules GROUP BY datastream_id")
            .fetch_all(&db.pool)
            .await?;
    let expected_evaluations: u64 = rules_per_datastream
        .iter()
        .map(|(id, rules)| per_datastream.get(id).copied().unwrap_or(0) * *rules as u64)
        .sum();
    let notifications = received.latencies.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut latencies: Vec<f64> = notifications.iter().map(|(l, _)| *l).collect();
    let latency = Percentiles::of(&mut latencies);
    let stored_events: i64 = sqlx::query_scalar("SELECT count(*) FROM alert_events").fetch_one(&db.pool).await?;
    let samples = samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let window = |from: f64, to: f64, pick: fn(&Sample) -> i64| {
        samples.iter().filter(|s| s.0 >= from && s.0 < to).map(pick).max().unwrap_or(0)
    };
    let span = args.alerts_duration as f64;
    let (lag_first, lag_last) = (window(0.0, 10.0, |s| s.1), window(span - 10.0, span, |s| s.1));
    let lag_max = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let (writer_first, writer_last) = (window(0.0, 10.0, |s| s.2), window(span - 10.0, span, |s| s.2));
    let rss_early = samples.iter().find(|s| s.0 >= 5.0).and_then(|s| s.3);
    let rss_late = samples.iter().rev().find(|s| s.0 <= span).and_then(|s| s.3);
    let lag_flat = lag_last <= lag_first.max(1) * 2 + 2_000;

    println!(
        "  published {} at {} readings/s; {} of {} probe changes notified, p50 {:.0} p99 {:.0} max {:.0} ms",
        thousands(sent as f64),
        thousands(achieved),
        notifications.len(),
        changes,
        latency.p50,
        latency.p99,
        latency.max
    );
    let mut summary = Table::new(
        format!(
            "alerts: {} rules, {} readings/s for {} s over {} datastreams (+{} probes)",
            thousands(rules as f64),
            thousands(args.alerts_rate as f64),
            args.alerts_duration,
            quiet.len(),
            probes.len()
        ),
        &["measure", "value", "target", "verdict"],
    );
    summary.row(vec![
        "published (achieved rate)".into(),
        format!("{} readings/s", thousands(achieved)),
        "".into(),
        "".into(),
    ]);
    summary.row(vec![
        "rule evaluations (each reading by each rule of its datastream)".into(),
        thousands(evaluated),
        format!("≥ {} (the run's readings × their rules)", thousands(expected_evaluations as f64)),
        verdict(evaluated >= expected_evaluations as f64).into(),
    ]);
    summary.row(vec![
        "alerts lag, records: max of first → last 10 s; max".into(),
        format!("{} → {}; max {}", thousands(lag_first as f64), thousands(lag_last as f64), thousands(lag_max as f64)),
        "flat".into(),
        verdict(lag_flat).into(),
    ]);
    summary.row(vec![
        "beside: writer's backlog, readings: first → last 10 s".into(),
        format!("{} → {}", thousands(writer_first as f64), thousands(writer_last as f64)),
        "".into(),
        "".into(),
    ]);
    summary.row(vec![
        "notifications: received / probe changes / events stored".into(),
        format!("{} / {} / {}", notifications.len(), changes, stored_events),
        "one per change".into(),
        verdict(notifications.len() as u64 == changes).into(),
    ]);
    summary.row(vec![
        "publish → webhook p50 / p99 / max".into(),
        format!("{:.0} / {:.0} / {:.0} ms", latency.p50, latency.p99, latency.max),
        "p99 ≤ 2 s".into(),
        verdict(latency.count > 0 && latency.p99 <= 2000.0).into(),
    ]);
    summary.row(vec![
        "hoheit-alerts RSS at 5 s → end; peak".into(),
        format!("{} → {}; peak {}", mib(rss_early), mib(rss_late), mib(alerts_peak)),
        "≤ 64 MiB".into(),
        verdict(alerts_peak.is_some_and(|k| k <= 64 * 1024)).into(),
    ]);
    summary.row(vec![
        "beside: hoheit-ingest / hoheit-writer peak RSS".into(),
        format!("{} / {}", mib(ingest_peak), mib(writer_peak)),
        "".into(),
        "".into(),
    ]);
    Ok(vec![summary])
}
