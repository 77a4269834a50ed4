//! Overload benchmark: single-reading JSON messages offered at twice the
//! highest rate the pipeline sustains end to end (30,000/s → 60,000/s) for
//! minutes, through Mosquitto → `hoheit-ingest` → Kafka → `hoheit-writer` →
//! TimescaleDB, with a registry of 300,000 datastreams that the readings go
//! to round-robin.
//!
//! The publishers count the broker's PUBACKs per message (QoS 1): the k-th
//! PUBLISH a client sends is its k-th message, and the packet id of its
//! PUBACK says which one was acknowledged. After the run they wait for every
//! outstanding acknowledgement; then the pipeline drains and the benchmark
//! reads every stored reading back: each acknowledged reading must be stored,
//! and stored once (a reading's datastream and time say which message it
//! was). Meanwhile, every second: ingest's and the writer's RSS and
//! readiness, the publishers' and ingest's acknowledgements, the rows
//! written, and the broker's own counters (`$SYS`, where the broker lets the
//! benchmark's user read them) and its log lines about dropped messages.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use futures::TryStreamExt as _;
use rumqttc::{AsyncClient, Event, Outgoing, Packet, QoS};

use crate::harness::{
    free_port, mib, rss_kib, run_id, thousands, verdict, wait_ready, with_ingest_resources, BenchDb, BenchTopics,
    Infra, Service, Table,
};

#[derive(Debug, Clone, Args)]
pub struct OverloadArgs {
    /// Readings per second offered (twice the highest rate sustained end to end, 30,000/s).
    #[arg(long, default_value_t = 60_000)]
    pub rate: u64,
    /// Minutes of overload.
    #[arg(long, default_value_t = 10)]
    pub minutes: u64,
    /// Datastreams registered (things of three properties each); the readings go to all of them in turn.
    #[arg(long, default_value_t = 300_000)]
    pub datastreams: usize,
    /// Concurrent MQTT publishers (the offered rate is split among them).
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Minutes the pipeline may take to store the backlog after the overload.
    #[arg(long, default_value_t = 30)]
    pub drain_minutes: u64,
    /// Mosquitto's log, searched for the lines about messages it dropped
    /// (default: the local set-up's `.hoheit/mosquitto/mosquitto.log`).
    #[arg(long, default_value = ".hoheit/mosquitto/mosquitto.log")]
    pub broker_log: std::path::PathBuf,
}

const PROPERTIES: usize = 3;
/// The time step between two readings of one datastream (µs).
const STEP_US: i64 = 1_000;

/// Which message a reading is: message `n` goes to datastream `n % D` with
/// time `base + (n / D) * STEP_US` and value `n`.
struct Plan {
    topics: Vec<String>,
    ids: Vec<i64>,
    base_us: i64,
}

impl Plan {
    fn message(&self, n: u64) -> (&str, String) {
        let d = self.topics.len() as u64;
        let time = self.base_us + (n / d) as i64 * STEP_US;
        let stamp = chrono::DateTime::from_timestamp_micros(time)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        (&self.topics[(n % d) as usize], format!(r#"{{"time":"{stamp}","value":{n}}}"#))
    }

    /// The message a stored reading was, if it is one of this plan's.
    fn number(&self, index: &std::collections::HashMap<i64, u64>, datastream: i64, time_us: i64) -> Option<u64> {
        let d = *index.get(&datastream)?;
        let offset = time_us - self.base_us;
        if offset < 0 || offset % STEP_US != 0 {
            return None;
        }
        Some((offset / STEP_US) as u64 * self.topics.len() as u64 + d)
    }
}

/// A set of message numbers below a bound.
#[derive(Clone, Default)]
struct Bits(Vec<u64>);

impl Bits {
    /// Sets bit `n`; whether it was set before.
    fn set(&mut self, n: u64) -> bool {
        let (word, bit) = ((n / 64) as usize, 1u64 << (n % 64));
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        let before = self.0[word] & bit != 0;
        self.0[word] |= bit;
        before
    }

    fn get(&self, n: u64) -> bool {
        self.0.get((n / 64) as usize).is_some_and(|w| w & (1u64 << (n % 64)) != 0)
    }

    fn count(&self) -> u64 {
        self.0.iter().map(|w| w.count_ones() as u64).sum()
    }
}

/// What one publisher's connection saw.
#[derive(Default)]
struct Acks {
    /// Message numbers acknowledged by the broker.
    acked: Bits,
    /// PUBACKs for no message in flight, and PUBLISHes sent again (after a
    /// reconnect): either makes the count unreliable, so the run fails.
    anomalies: u64,
    disconnects: u64,
}

/// A QoS 1 publisher that knows which of its messages were acknowledged.
struct Publisher {
    client: AsyncClient,
    sent: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
    stop: tokio::sync::oneshot::Sender<()>,
    events: tokio::task::JoinHandle<Acks>,
}

impl Publisher {
    /// Publisher `p` of `count` sends messages `p`, `p + count`, `p + 2 count`, …
    async fn connect(infra: &Infra, p: u64, count: u64) -> anyhow::Result<Self> {
        let mut options = infra.mqtt_options(format!("bench-overload-{}-{p}", run_id()));
        options.set_keep_alive(Duration::from_secs(30));
        options.set_clean_session(true);
        options.set_inflight(1000);
        let (client, mut eventloop) = AsyncClient::new(options, 4096);
        let (sent, acked) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
        let counter = acked.clone();
        let events = tokio::spawn(async move {
            let mut acks = Acks::default();
            let mut in_flight: Vec<Option<u64>> = vec![None; usize::from(u16::MAX) + 1];
            let (mut next, mut connected) = (0u64, Some(connected_tx));
            loop {
                let event = tokio::select! {
                    _ = &mut stopped => return acks,
                    event = eventloop.poll() => event,
                };
                // As ingest: a broker that answers is alive, also while its PINGRESP waits behind the PUBACKs.
                hoheit_ingest::note_liveness(&mut eventloop.state, &event);
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(c) = connected.take() {
                            let _ = c.send(());
                        }
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        let slot = &mut in_flight[usize::from(pkid)];
                        if slot.is_some() {
                            acks.anomalies += 1;
                        }
                        *slot = Some(p + next * count);
                        next += 1;
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => match in_flight[usize::from(ack.pkid)].take() {
                        Some(n) => {
                            acks.acked.set(n);
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        None => acks.anomalies += 1,
                    },
                    Ok(_) => {}
                    Err(_) => {
                        acks.disconnects += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), connected_rx)
            .await
            .context("MQTT connect timed out")?
            .context("MQTT event loop ended")?;
        Ok(Self { client, sent, acked, stop, events })
    }

    /// Publishes this publisher's share of messages below `total` at `rate` per second until `until`.
    async fn run(
        client: AsyncClient,
        sent: Arc<AtomicU64>,
        plan: Arc<Plan>,
        (p, count): (u64, u64),
        rate: f64,
        until: Instant,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut k = 0u64;
        while Instant::now() < until {
            let due = (started.elapsed().as_secs_f64() * rate) as u64;
            // The broker throttles a publisher it cannot keep up with: stop at `until` even when behind.
            while k < due && Instant::now() < until {
                let (topic, payload) = plan.message(p + k * count);
                client.publish(topic, QoS::AtLeastOnce, false, payload).await?;
                k += 1;
                sent.store(k, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }

    /// Waits up to `timeout` for the outstanding acknowledgements, then disconnects.
    async fn finish(self, timeout: Duration) -> anyhow::Result<Acks> {
        let deadline = Instant::now() + timeout;
        while self.acked.load(Ordering::Relaxed) < self.sent.load(Ordering::Relaxed) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = self.stop.send(());
        Ok(self.events.await?)
    }
}

/// One second of the run.
#[derive(Clone, Copy, Default)]
struct Sample {
    secs: f64,
    sent: u64,
    acked_by_broker: u64,
    acked_by_ingest: f64,
    written: f64,
    ingest_rss: Option<u64>,
    writer_rss: Option<u64>,
    ingest_ready: bool,
    writer_ready: bool,
    /// `$SYS/broker/store/messages/count` and `…/publish/messages/dropped`.
    broker_stored: Option<f64>,
    broker_dropped: Option<f64>,
}

/// The broker's `$SYS` counters as last seen (empty if the broker does not let us read them).
#[derive(Default)]
struct BrokerStats {
    stored: Option<f64>,
    dropped: Option<f64>,
    heap: Option<f64>,
}

async fn watch_broker(infra: &Infra, stats: Arc<Mutex<BrokerStats>>) -> anyhow::Result<AsyncClient> {
    let mut options = infra.mqtt_options(format!("bench-overload-sys-{}", run_id()));
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    client.subscribe("$SYS/broker/store/messages/count", QoS::AtMostOnce).await?;
    client.subscribe("$SYS/broker/publish/messages/dropped", QoS::AtMostOnce).await?;
    client.subscribe("$SYS/broker/heap/current", QoS::AtMostOnce).await?;
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(message))) => {
                    let value = std::str::from_utf8(&message.payload).ok().and_then(|v| v.trim().parse().ok());
                    let mut stats = stats.lock().unwrap_or_else(|e| e.into_inner());
                    match message.topic.as_str() {
                        "$SYS/broker/store/messages/count" => stats.stored = value,
                        "$SYS/broker/publish/messages/dropped" => stats.dropped = value,
                        "$SYS/broker/heap/current" => stats.heap = value,
                        _ => {}
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    });
    Ok(client)
}

/// The lines of the broker's log from byte `from` on that mention `client_id`.
fn broker_log_lines(path: &std::path::Path, from: u64, client_id: &str) -> Vec<String> {
    use std::io::{Read, Seek};
    let Ok(mut file) = std::fs::File::open(path) else { return Vec::new() };
    let mut text = String::new();
    if file.seek(std::io::SeekFrom::Start(from)).is_err() || file.read_to_string(&mut text).is_err() {
        return Vec::new();
    }
    text.lines().filter(|l| l.contains(client_id)).map(str::to_owned).collect()
}

pub async fn run(infra: &Infra, args: &OverloadArgs) -> anyhow::Result<Vec<Table>> {
    with_ingest_resources(infra, "overload", async |id, client_id, db, topics| {
        measure(infra, args, id, client_id, db, topics).await
    })
    .await
}

fn services(
    infra: &Infra,
    id: &str,
    client_id: &str,
    root: &str,
    db: &BenchDb,
    topics: &BenchTopics,
) -> anyhow::Result<(Service, u16, Service, u16)> {
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
    let (ingest_port, writer_port) = (free_port()?, free_port()?);
    let mut ingest_flags: Vec<String> = vec![
        "--mqtt-host".into(),
        infra.mqtt_host.clone(),
        "--mqtt-port".into(),
        infra.mqtt_port.to_string(),
        "--mqtt-client-id".into(),
        client_id.into(),
        "--topic-root".into(),
        root.into(),
        "--ops-listen".into(),
        format!("127.0.0.1:{ingest_port}"),
    ];
    ingest_flags.extend(kafka_flags.iter().cloned());
    let mut writer_flags: Vec<String> =
        vec!["--group".into(), format!("bench-writer-{id}"), "--ops-listen".into(), format!("127.0.0.1:{writer_port}")];
    writer_flags.extend(kafka_flags.iter().cloned());
    let writer = Service::spawn(infra, "hoheit-writer", &writer_flags)?;
    let ingest = Service::spawn(infra, "hoheit-ingest", &ingest_flags)?;
    Ok((ingest, ingest_port, writer, writer_port))
}

/// Waits until ingest's registry snapshot holds `expected` datastreams; the seconds its load took.
pub async fn snapshot_loaded(http: &reqwest::Client, metrics: &str, expected: usize) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    loop {
        let text = http.get(metrics).send().await?.text().await?;
        let held = crate::harness::metric_sum(&text, "hoheit_ingest_registry_datastreams");
        if held as usize >= expected {
            return Ok((
                started.elapsed().as_secs_f64(),
                crate::harness::metric_sum(&text, "hoheit_ingest_registry_load_seconds"),
            ));
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("ingest's registry snapshot holds {held} of {expected} datastreams after 300 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn measure(
    infra: &Infra,
    args: &OverloadArgs,
    id: &str,
    client_id: &str,
    db: &BenchDb,
    topics: &BenchTopics,
) -> anyhow::Result<Vec<Table>> {
    let things = args.datastreams.div_ceil(PROPERTIES).max(1);
    let registering = Instant::now();
    let ids = db.register(things, PROPERTIES).await?;
    println!(
        "  registered {} datastreams in {:.1} s",
        thousands(ids.len() as f64),
        registering.elapsed().as_secs_f64()
    );
    let root = format!("bench-{id}/hoheit/v1");
    let plan = Arc::new(Plan {
        topics: (0..things)
            .flat_map(|t| (0..PROPERTIES).map(move |p| (t, p)))
            .map(|(t, p)| format!("{root}/bench/t{t}/p{p}"))
            .collect(),
        ids: ids.clone(),
        base_us: hoheit_domain::Micros::now().0 - 86_400_000_000,
    });

    let log_from = std::fs::metadata(&args.broker_log).map(|m| m.len()).unwrap_or(0);
    let http = reqwest::Client::new();
    let (mut ingest, ingest_port, mut writer, writer_port) = services(infra, id, client_id, &root, db, topics)?;
    let ingest_ops = format!("http://127.0.0.1:{ingest_port}");
    let writer_ops = format!("http://127.0.0.1:{writer_port}");
    wait_ready(&http, &format!("{writer_ops}/readyz"), &mut writer, Duration::from_secs(60)).await?;
    wait_ready(&http, &format!("{ingest_ops}/readyz"), &mut ingest, Duration::from_secs(60)).await?;
    let (waited, load_secs) = snapshot_loaded(&http, &format!("{ingest_ops}/metrics"), ids.len()).await?;
    let idle_rss = rss_kib(ingest.pid());
    println!(
        "  ingest's registry snapshot: {} datastreams, loaded in {load_secs:.2} s ({waited:.1} s after ready); ingest RSS {}",
        thousands(ids.len() as f64),
        mib(idle_rss)
    );

    let broker = Arc::new(Mutex::new(BrokerStats::default()));
    let sys_client = watch_broker(infra, broker.clone()).await.ok();

    let count = args.publishers.max(1) as u64;
    let mut publishers = Vec::new();
    for p in 0..count {
        publishers.push(Publisher::connect(infra, p, count).await?);
    }
    let duration = Duration::from_secs(args.minutes * 60);
    println!(
        "  overload: {} readings/s offered for {} min by {count} QoS 1 publishers over {} datastreams",
        thousands(args.rate as f64),
        args.minutes,
        thousands(ids.len() as f64)
    );

    // Sampling, every second, until told to stop.
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let sampling = Arc::new(AtomicBool::new(true));
    let started = Instant::now();
    let sampler = {
        let (samples, sampling, broker, http) = (samples.clone(), sampling.clone(), broker.clone(), http.clone());
        let counters: Vec<(Arc<AtomicU64>, Arc<AtomicU64>)> =
            publishers.iter().map(|p| (p.sent.clone(), p.acked.clone())).collect();
        let (ingest_pid, writer_pid) = (ingest.pid(), writer.pid());
        let (ingest_ops, writer_ops) = (ingest_ops.clone(), writer_ops.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                let scrape = async |url: String, name: &str| {
                    let text = http.get(url).timeout(Duration::from_secs(2)).send().await.ok()?.text().await.ok()?;
                    Some(crate::harness::metric_sum(&text, name))
                };
                let ready = async |url: String| {
                    http.get(url).timeout(Duration::from_secs(2)).send().await.is_ok_and(|r| r.status().is_success())
                };
                let (broker_stored, broker_dropped) = {
                    let b = broker.lock().unwrap_or_else(|e| e.into_inner());
                    (b.stored, b.dropped)
                };
                let sample = Sample {
                    secs: started.elapsed().as_secs_f64(),
                    sent: counters.iter().map(|(s, _)| s.load(Ordering::Relaxed)).sum(),
                    acked_by_broker: counters.iter().map(|(_, a)| a.load(Ordering::Relaxed)).sum(),
                    acked_by_ingest: scrape(
                        format!("{ingest_ops}/metrics"),
                        "hoheit_ingest_messages_acknowledged_total",
                    )
                    .await
                    .unwrap_or(f64::NAN),
                    written: scrape(format!("{writer_ops}/metrics"), "hoheit_writer_readings_written_total")
                        .await
                        .unwrap_or(f64::NAN),
                    ingest_rss: rss_kib(ingest_pid),
                    writer_rss: rss_kib(writer_pid),
                    ingest_ready: ready(format!("{ingest_ops}/readyz")).await,
                    writer_ready: ready(format!("{writer_ops}/readyz")).await,
                    broker_stored,
                    broker_dropped,
                };
                {
                    let mut samples = samples.lock().unwrap_or_else(|e| e.into_inner());
                    if samples.len() % 30 == 29 {
                        println!(
                        "  {:>4.0} s: sent {}, acknowledged by the broker {}, by ingest {}, written {}, broker holds {}",
                        sample.secs,
                        thousands(sample.sent as f64),
                        thousands(sample.acked_by_broker as f64),
                        thousands(sample.acked_by_ingest),
                        thousands(sample.written),
                        sample.broker_stored.map_or("?".into(), thousands),
                    );
                    }
                    samples.push(sample);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    // The overload.
    let until = Instant::now() + duration;
    let rate = args.rate as f64 / count as f64;
    let tasks: Vec<_> = publishers
        .iter()
        .enumerate()
        .map(|(p, publisher)| {
            tokio::spawn(Publisher::run(
                publisher.client.clone(),
                publisher.sent.clone(),
                plan.clone(),
                (p as u64, count),
                rate,
                until,
            ))
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let published_secs = started.elapsed().as_secs_f64();
    let sent: u64 = publishers.iter().map(|p| p.sent.load(Ordering::Relaxed)).sum();
    let mut acked = Bits::default();
    let (mut acked_count, mut anomalies, mut disconnects) = (0u64, 0u64, 0u64);
    for publisher in publishers {
        let acks = publisher.finish(Duration::from_secs(120)).await?;
        anomalies += acks.anomalies;
        disconnects += acks.disconnects;
        for (w, word) in acks.acked.0.iter().enumerate() {
            if *word != 0 {
                if acked.0.len() <= w {
                    acked.0.resize(w + 1, 0);
                }
                acked.0[w] |= word;
            }
        }
        acked_count += acks.acked.count();
    }
    println!(
        "  published {} in {published_secs:.0} s ({} readings/s); {} acknowledged by the broker",
        thousands(sent as f64),
        thousands(sent as f64 / published_secs),
        thousands(acked_count as f64)
    );

    // Drain: until the database holds every acknowledged reading or stops growing for two minutes.
    let drain_started = Instant::now();
    let mut last = (0i64, Instant::now());
    let stored = loop {
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM observations").fetch_one(&db.pool).await?;
        if stored as u64 >= acked_count {
            break stored;
        }
        if stored != last.0 {
            last = (stored, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(120) {
            println!("  the database stopped growing at {} readings", thousands(stored as f64));
            break stored;
        }
        if drain_started.elapsed() > Duration::from_secs(args.drain_minutes * 60) {
            println!("  drain deadline reached at {} readings", thousands(stored as f64));
            break stored;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let drain_secs = drain_started.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    if let Some(client) = sys_client {
        let _ = client.disconnect().await;
    }
    ingest.check_alive()?;
    writer.check_alive()?;
    let duplicates_skipped =
        crate::harness::scrape(&http, &format!("{writer_ops}/metrics"), "hoheit_writer_duplicates_skipped_total")
            .await
            .unwrap_or(f64::NAN);
    let dead_letters =
        crate::harness::scrape(&http, &format!("{ingest_ops}/metrics"), "hoheit_ingest_dead_letters_total")
            .await
            .unwrap_or(f64::NAN);
    let (ingest_peak, _) = ingest.stop(Duration::from_secs(40)).await?;
    let (writer_peak, _) = writer.stop(Duration::from_secs(40)).await?;

    // Every stored reading back: which message it was.
    let check_started = Instant::now();
    let index: std::collections::HashMap<i64, u64> =
        plan.ids.iter().enumerate().map(|(d, id)| (*id, d as u64)).collect();
    let mut seen = Bits::default();
    let (mut twice, mut foreign) = (0u64, 0u64);
    let mut rows =
        sqlx::query_as::<_, (i64, chrono::DateTime<chrono::Utc>)>("SELECT datastream_id, time FROM observations")
            .fetch(&db.pool);
    while let Some((datastream, time)) = rows.try_next().await? {
        match plan.number(&index, datastream, time.timestamp_micros()) {
            Some(n) => twice += u64::from(seen.set(n)),
            None => foreign += 1,
        }
    }
    drop(rows);
    let mut missing = 0u64;
    for (w, word) in acked.0.iter().enumerate() {
        let lost = word & !seen.0.get(w).copied().unwrap_or(0);
        missing += lost.count_ones() as u64;
    }
    let stored_unacked = (0..sent).filter(|&n| seen.get(n) && !acked.get(n)).count();
    println!(
        "  checked {} stored readings in {:.0} s: {} acknowledged readings missing, {} stored twice, {} not ours",
        thousands(stored as f64),
        check_started.elapsed().as_secs_f64(),
        thousands(missing as f64),
        twice,
        foreign
    );
    let dropped_lines = broker_log_lines(&args.broker_log, log_from, client_id);
    for line in dropped_lines.iter().take(5) {
        println!("  broker log: {line}");
    }

    let samples = samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    tables(
        args,
        &samples,
        Outcome {
            datastreams: ids.len(),
            load_secs,
            idle_rss,
            published_secs,
            sent,
            acked: acked_count,
            anomalies,
            disconnects,
            stored: stored as u64,
            missing,
            twice,
            foreign,
            stored_unacked: stored_unacked as u64,
            duplicates_skipped,
            dead_letters,
            drain_secs,
            ingest_peak,
            writer_peak,
            broker_log: dropped_lines,
        },
    )
}

struct Outcome {
    datastreams: usize,
    load_secs: f64,
    idle_rss: Option<u64>,
    published_secs: f64,
    sent: u64,
    acked: u64,
    anomalies: u64,
    disconnects: u64,
    stored: u64,
    missing: u64,
    twice: u64,
    foreign: u64,
    stored_unacked: u64,
    duplicates_skipped: f64,
    dead_letters: f64,
    drain_secs: f64,
    ingest_peak: Option<u64>,
    writer_peak: Option<u64>,
    broker_log: Vec<String>,
}

fn per_second(a: f64, b: f64, secs: f64) -> String {
    if secs <= 0.0 || a.is_nan() || b.is_nan() {
        return "–".into();
    }
    thousands((b - a) / secs)
}

fn tables(args: &OverloadArgs, samples: &[Sample], o: Outcome) -> anyhow::Result<Vec<Table>> {
    let mut minutes = Table::new(
        format!("overload: {} readings/s offered, per minute", thousands(args.rate as f64)),
        &[
            "minute",
            "published/s",
            "PUBACKed/s",
            "ingest acked/s",
            "written/s",
            "behind in the broker (end)",
            "behind in Kafka (end)",
            "ingest RSS (max)",
            "writer RSS (max)",
            "ready (ingest/writer)",
            "broker $SYS stored / dropped",
        ],
    );
    let minute_count = samples.last().map_or(0, |s| (s.secs / 60.0).ceil() as usize);
    for m in 0..minute_count {
        let window: Vec<&Sample> =
            samples.iter().filter(|s| s.secs >= m as f64 * 60.0 && s.secs < (m + 1) as f64 * 60.0).collect();
        let (Some(first), Some(last)) = (window.first(), window.last()) else { continue };
        let secs = last.secs - first.secs;
        let max = |pick: fn(&Sample) -> Option<u64>| window.iter().filter_map(|s| pick(s)).max();
        let all_ready = |pick: fn(&Sample) -> bool| if window.iter().all(|s| pick(s)) { "yes" } else { "NO" };
        minutes.row(vec![
            format!("{}", m + 1),
            per_second(first.sent as f64, last.sent as f64, secs),
            per_second(first.acked_by_broker as f64, last.acked_by_broker as f64, secs),
            per_second(first.acked_by_ingest, last.acked_by_ingest, secs),
            per_second(first.written, last.written, secs),
            thousands((last.acked_by_broker as f64 - last.acked_by_ingest).max(0.0)),
            thousands((last.acked_by_ingest - last.written).max(0.0)),
            mib(max(|s| s.ingest_rss)),
            mib(max(|s| s.writer_rss)),
            format!("{}/{}", all_ready(|s| s.ingest_ready), all_ready(|s| s.writer_ready)),
            format!(
                "{} / {}",
                last.broker_stored.map_or("–".into(), thousands),
                last.broker_dropped.map_or("–".into(), thousands)
            ),
        ]);
    }
    let end = |pick: fn(&Sample) -> Option<u64>| samples.iter().rev().find_map(pick);
    let max = |pick: fn(&Sample) -> Option<u64>| samples.iter().filter_map(pick).max();
    let mut summary = Table::new(
        format!(
            "overload: {} readings/s offered for {} min, {} datastreams registered, {} publishers (QoS 1, PUBACKs counted per message)",
            thousands(args.rate as f64),
            args.minutes,
            thousands(o.datastreams as f64),
            args.publishers
        ),
        &["measure", "value", "target", "verdict"],
    );
    let exact = o.missing == 0 && o.twice == 0 && o.foreign == 0 && o.anomalies == 0 && o.disconnects == 0;
    summary.row(vec![
        "ingest's registry snapshot: load time; ingest RSS when loaded".into(),
        format!("{:.2} s; {}", o.load_secs, mib(o.idle_rss)),
        "".into(),
        "".into(),
    ]);
    summary.row(vec![
        "published (achieved rate); PUBACKed by the broker".into(),
        format!(
            "{} ({} readings/s); {}",
            thousands(o.sent as f64),
            thousands(o.sent as f64 / o.published_secs),
            thousands(o.acked as f64)
        ),
        format!("{} readings/s offered", thousands(args.rate as f64)),
        "".into(),
    ]);
    summary.row(vec![
        "time to store the backlog after the overload".into(),
        format!("{:.0} s", o.drain_secs),
        "".into(),
        "".into(),
    ]);
    summary.row(vec![
        "acknowledged readings stored: missing / twice / not ours / stored without PUBACK".into(),
        format!(
            "{} of {} stored; {} / {} / {} / {}",
            thousands(o.stored as f64),
            thousands(o.acked as f64),
            thousands(o.missing as f64),
            o.twice,
            o.foreign,
            o.stored_unacked
        ),
        "every acknowledged reading exactly once".into(),
        verdict(exact).into(),
    ]);
    summary.row(vec![
        "publisher anomalies (unknown PUBACKs, resends) / disconnects".into(),
        format!("{} / {}", o.anomalies, o.disconnects),
        "0 / 0".into(),
        verdict(o.anomalies == 0 && o.disconnects == 0).into(),
    ]);
    summary.row(vec![
        "writer: duplicates skipped (redeliveries); ingest: dead letters".into(),
        format!("{}; {}", o.duplicates_skipped, o.dead_letters),
        "".into(),
        "".into(),
    ]);
    summary.row(vec![
        "hoheit-ingest RSS max / end; peak (VmHWM)".into(),
        format!("{} / {}; {}", mib(max(|s| s.ingest_rss)), mib(end(|s| s.ingest_rss)), mib(o.ingest_peak)),
        "≤ 64 MiB".into(),
        verdict(o.ingest_peak.is_some_and(|k| k <= 64 * 1024)).into(),
    ]);
    summary.row(vec![
        "hoheit-writer RSS max / end; peak (VmHWM)".into(),
        format!("{} / {}; {}", mib(max(|s| s.writer_rss)), mib(end(|s| s.writer_rss)), mib(o.writer_peak)),
        "≤ 64 MiB".into(),
        verdict(o.writer_peak.is_some_and(|k| k <= 64 * 1024)).into(),
    ]);
    summary.row(vec![
        "broker log lines about ingest's session (dropped messages etc.)".into(),
        format!("{}", o.broker_log.len()),
        "".into(),
        "".into(),
    ]);
    Ok(vec![summary, minutes])
}
