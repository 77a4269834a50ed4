//! End-to-end benchmark: a publisher at a steady rate of single-reading JSON
//! messages through Mosquitto → `hoheit-ingest` → Kafka → `hoheit-writer` →
//! TimescaleDB, each reading carrying its publish time as its `time`. A
//! poller asks the database every few milliseconds for rows newer than the
//! newest it saw per datastream (rows of one datastream become visible in
//! time order: one key, one partition, commits in offset order), so every
//! reading's publish-to-queryable latency is measured, with the poll interval
//! as resolution. Then a ramp of higher rates finds the highest rate whose
//! latency does not grow. Ingest's and writer's RSS is sampled throughout.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::Args;
use rumqttc::QoS;
use sqlx::PgPool;

use crate::harness::{
    free_port, metric_sum, mib, thousands, verdict, wait_ready, with_ingest_resources, BenchDb, BenchTopics, Infra,
    Percentiles, Service, Table,
};
use crate::mqtt::Client;

#[derive(Debug, Clone, Args)]
pub struct E2eArgs {
    /// Readings per second of the steady run (single-reading JSON messages).
    #[arg(long, default_value_t = 5_000)]
    pub rate: u64,
    /// Seconds of the steady run (the issue asks for a few minutes: e.g. --duration 300).
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Rates of the ramp after the steady run, comma separated (`--ramp` alone: no ramp).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "10000,15000,20000,30000")]
    pub ramp: Vec<u64>,
    /// Seconds of each ramp step.
    #[arg(long, default_value_t = 15)]
    pub step_secs: u64,
    /// Datastreams the readings are spread over.
    #[arg(long, default_value_t = 200)]
    pub e2e_datastreams: usize,
    /// Milliseconds between the poller's queries (the latency resolution).
    #[arg(long, default_value_t = 25)]
    pub poll_ms: u64,
}

/// Seconds since the start, VmRSS (KiB) of ingest and of the writer.
type RssSample = (f64, Option<u64>, Option<u64>);

/// What the poller saw: per reading, its time (µs) and its latency (ms).
#[derive(Default)]
struct Seen {
    rows: Mutex<Vec<(i64, f64)>>,
    count: AtomicU64,
}

/// Means from the services' own histograms: where a reading's time goes.
struct Parts {
    ingest_message_ms: f64,
    batches: f64,
    batch_readings: f64,
    write_ms: f64,
}

impl Parts {
    async fn scrape(http: &reqwest::Client, ingest_port: u16, writer_port: u16) -> Self {
        let text = |port: u16| async move {
            let url = format!("http://127.0.0.1:{port}/metrics");
            match http.get(&url).send().await {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            }
        };
        let (ingest, writer) = (text(ingest_port).await, text(writer_port).await);
        let mean = |text: &str, name: &str| {
            metric_sum(text, &format!("{name}_sum")) / metric_sum(text, &format!("{name}_count"))
        };
        Self {
            ingest_message_ms: 1000.0 * mean(&ingest, "hoheit_ingest_message_seconds"),
            batches: metric_sum(&writer, "hoheit_writer_batches_total"),
            batch_readings: mean(&writer, "hoheit_writer_batch_readings"),
            write_ms: 1000.0 * mean(&writer, "hoheit_writer_write_seconds"),
        }
    }
}

async fn poll(
    pool: PgPool,
    ids: Vec<i64>,
    from: DateTime<Utc>,
    every: Duration,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
) {
    let mut after: Vec<DateTime<Utc>> = vec![from; ids.len()];
    let index: std::collections::HashMap<i64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let at = Utc::now();
        // The bound on `time` (the oldest of the datastreams' positions) lets
        // the query read only the newest rows through the time index: without
        // it PostgreSQL joins the whole table, and the poller's own cost grew
        // with the table to a core of the two (42 ms a query after 30 s).
        let oldest = after.iter().min().copied().unwrap_or(from);
        let rows: Result<Vec<(i64, DateTime<Utc>)>, _> = sqlx::query_as(
            "SELECT o.datastream_id, o.time FROM observations o
             JOIN unnest($1::bigint[], $2::timestamptz[]) AS w(id, after)
               ON o.datastream_id = w.id AND o.time > w.after
             WHERE o.time > $3",
        )
        .bind(&ids)
        .bind(&after)
        .bind(oldest)
        // Planned with this bound each time (a generic plan would guess a third of the table).
        .persistent(false)
        .fetch_all(&pool)
        .await;
        match rows {
            Ok(rows) => {
                let mut out = seen.rows.lock().unwrap_or_else(|e| e.into_inner());
                for (id, time) in &rows {
                    let latency = (at - *time).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0;
                    out.push((time.timestamp_micros(), latency));
                    if let Some(&i) = index.get(id) {
                        after[i] = after[i].max(*time);
                    }
                }
                seen.count.fetch_add(rows.len() as u64, Ordering::Relaxed);
            }
            Err(error) => eprintln!("  poll failed: {error}"),
        }
        tokio::time::sleep(every.saturating_sub(started.elapsed())).await;
    }
}

/// Publishes single-reading JSON at `rate` for `secs`; each reading's time is
/// its publish time (strictly increasing per datastream). Returns the
/// readings published and the achieved rate.
async fn publish(
    client: &Client,
    topics: &[String],
    last: &mut [i64],
    next: &mut usize,
    rate: u64,
    secs: u64,
) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let total = rate * secs;
    let mut sent = 0u64;
    while sent < total {
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while sent < due {
            let ds = *next % topics.len();
            let time = hoheit_domain::Micros::now().0.max(last[ds] + 1);
            last[ds] = time;
            let stamp = chrono::DateTime::from_timestamp_micros(time)
                .context("clock out of range")?
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let payload = format!(r#"{{"time":"{stamp}","value":{}}}"#, *next);
            client.client.publish(topics[ds].as_str(), QoS::AtLeastOnce, false, payload).await?;
            *next += 1;
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok((sent, sent as f64 / started.elapsed().as_secs_f64()))
}

/// Waits until the poller has seen `expected` rows; false after `timeout`.
async fn drain(seen: &Seen, expected: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while seen.count.load(Ordering::Relaxed) < expected {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Latencies (ms) of the rows with times in `[from, to)` µs.
fn latencies(seen: &Seen, from: i64, to: i64) -> Vec<f64> {
    let rows = seen.rows.lock().unwrap_or_else(|e| e.into_inner());
    rows.iter().filter(|(t, _)| (from..to).contains(t)).map(|(_, l)| *l).collect()
}

/// Flat: the RSS grew by at most 4 MiB from 5 s into the steady run to its end.
fn flat(early_kib: Option<u64>, late_kib: Option<u64>) -> bool {
    matches!((early_kib, late_kib), (Some(early), Some(late)) if late <= early + 4 * 1024)
}

fn ms(value: f64) -> String {
    format!("{value:.0} ms")
}

pub async fn run(infra: &Infra, args: &E2eArgs) -> anyhow::Result<Vec<Table>> {
    with_ingest_resources(infra, "end-to-end", async |id, client_id, db, topics| {
        measure(infra, args, id, client_id, db, topics).await
    })
    .await
}

async fn measure(
    infra: &Infra,
    args: &E2eArgs,
    id: &str,
    client_id: &str,
    db: &BenchDb,
    topics: &BenchTopics,
) -> anyhow::Result<Vec<Table>> {
    let properties = 10;
    let things = args.e2e_datastreams.div_ceil(properties).max(1);
    let ids = db.register(things, properties).await?;
    let root = format!("bench-{id}/hoheit/v1");
    let mqtt_topics: Vec<String> = (0..things)
        .flat_map(|t| (0..properties).map(move |p| (t, p)))
        .map(|(t, p)| format!("{root}/bench/t{t}/p{p}"))
        .collect();

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
        root.clone(),
        "--ops-listen".into(),
        format!("127.0.0.1:{ingest_port}"),
    ];
    ingest_flags.extend(kafka_flags.iter().cloned());
    let mut writer_flags: Vec<String> =
        vec!["--group".into(), format!("bench-writer-{id}"), "--ops-listen".into(), format!("127.0.0.1:{writer_port}")];
    writer_flags.extend(kafka_flags.iter().cloned());
    let http = reqwest::Client::new();
    let mut writer = Service::spawn(infra, "hoheit-writer", &writer_flags)?;
    wait_ready(&http, &format!("http://127.0.0.1:{writer_port}/readyz"), &mut writer, Duration::from_secs(60)).await?;
    let mut ingest = Service::spawn(infra, "hoheit-ingest", &ingest_flags)?;
    wait_ready(&http, &format!("http://127.0.0.1:{ingest_port}/readyz"), &mut ingest, Duration::from_secs(60)).await?;

    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let poller = tokio::spawn(poll(
        db.pool.clone(),
        ids.clone(),
        Utc::now() - chrono::Duration::seconds(1),
        Duration::from_millis(args.poll_ms),
        seen.clone(),
        stop.clone(),
    ));
    let publisher = Client::publisher(infra).await?;
    // The writer's consumer joins its group a moment after /readyz; a warm-up
    // reading makes sure the whole path is live before the clock starts.
    let mut last = vec![0i64; mqtt_topics.len()];
    let mut next = 0usize;
    publish(&publisher, &mqtt_topics, &mut last, &mut next, 1, 1).await?;
    if !drain(&seen, 1, Duration::from_secs(60)).await {
        bail!("the warm-up reading did not arrive within 60 s");
    }
    let mut published = 1u64;

    // Steady run, with RSS samples every second.
    println!(
        "  steady: {} readings/s for {} s over {} datastreams",
        thousands(args.rate as f64),
        args.duration,
        ids.len()
    );
    let rss_samples = Arc::new(Mutex::new(Vec::<RssSample>::new()));
    let (ingest_pid, writer_pid) = (ingest.pid(), writer.pid());
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (samples, sampling) = (rss_samples.clone(), sampling.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            while sampling.load(Ordering::Relaxed) {
                let rss = crate::harness::rss_kib;
                samples.lock().unwrap_or_else(|e| e.into_inner()).push((
                    started.elapsed().as_secs_f64(),
                    rss(ingest_pid),
                    rss(writer_pid),
                ));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let steady_from = hoheit_domain::Micros::now().0;
    let (sent, achieved) = publish(&publisher, &mqtt_topics, &mut last, &mut next, args.rate, args.duration).await?;
    let steady_to = hoheit_domain::Micros::now().0 + 1;
    published += sent;
    let arrived = drain(&seen, published, Duration::from_secs(120)).await;
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    ingest.check_alive()?;
    writer.check_alive()?;
    let mut all = latencies(&seen, steady_from, steady_to);
    let steady = Percentiles::of(&mut all);
    let parts = Parts::scrape(&http, ingest_port, writer_port).await;
    println!(
        "  published {} at {} readings/s; latency p50 {} p99 {} max {} ({} of {} seen{})",
        thousands(sent as f64),
        thousands(achieved),
        ms(steady.p50),
        ms(steady.p99),
        ms(steady.max),
        thousands(steady.count as f64),
        thousands(sent as f64),
        if arrived { "" } else { "; NOT ALL ARRIVED" }
    );

    println!(
        "  where the time goes (means over the warm-up and steady run): ingest MQTT → Kafka confirmed {}; \
         writer: {} batches of {} readings, transaction {}",
        ms(parts.ingest_message_ms),
        thousands(parts.batches),
        thousands(parts.batch_readings),
        ms(parts.write_ms),
    );

    // Windows of 10 s: does the latency grow?
    let mut windows = Table::new(
        format!("end to end, steady {} readings/s: latency per 10 s window", thousands(args.rate as f64)),
        &["window", "readings", "p50", "p99", "max"],
    );
    let window = 10_000_000i64;
    let mut medians = Vec::new();
    let mut start = steady_from;
    while start < steady_to {
        // A tail shorter than a window joins the last one.
        let end = if start + 2 * window > steady_to { steady_to } else { start + window };
        let mut samples = latencies(&seen, start, end);
        let p = Percentiles::of(&mut samples);
        if p.count > 0 {
            medians.push(p.p50);
            windows.row(vec![
                format!("{}–{} s", (start - steady_from) / 1_000_000, (end - steady_from + 500_000) / 1_000_000),
                thousands(p.count as f64),
                ms(p.p50),
                ms(p.p99),
                ms(p.max),
            ]);
        }
        start = end;
    }
    let first = medians.first().copied().unwrap_or(0.0);
    let last_median = medians.last().copied().unwrap_or(0.0);
    let growing = last_median > 2.0 * first && last_median - first > 100.0;

    // Ramp: the highest rate whose latency stays flat.
    let mut ramp_table = Table::new(
        format!("end to end, ramp: {} s per step", args.step_secs),
        &["rate (readings/s)", "published/s", "p50", "p99 (2nd half)", "max", "all arrived", "sustained"],
    );
    let mut highest = if arrived && !growing && steady.p99 <= 1000.0 { Some(args.rate) } else { None };
    for &rate in &args.ramp {
        let from = hoheit_domain::Micros::now().0;
        let (sent, achieved) = publish(&publisher, &mqtt_topics, &mut last, &mut next, rate, args.step_secs).await?;
        let to = hoheit_domain::Micros::now().0 + 1;
        published += sent;
        let arrived = drain(&seen, published, Duration::from_secs(60)).await;
        let p = Percentiles::of(&mut latencies(&seen, from, to));
        let second_half = Percentiles::of(&mut latencies(&seen, (from + to) / 2, to));
        let sustained = arrived && achieved >= 0.95 * rate as f64 && second_half.p99 <= 1000.0;
        println!(
            "  ramp {} readings/s: published {}/s, p50 {} p99(2nd half) {} max {}, {}",
            thousands(rate as f64),
            thousands(achieved),
            ms(p.p50),
            ms(second_half.p99),
            ms(p.max),
            if sustained { "sustained" } else { "not sustained" }
        );
        ramp_table.row(vec![
            thousands(rate as f64),
            thousands(achieved),
            ms(p.p50),
            ms(second_half.p99),
            ms(p.max),
            if arrived { "yes".into() } else { "no".into() },
            if sustained { "yes".into() } else { "no".into() },
        ]);
        if !sustained {
            if !arrived {
                // Let the backlog drain before the checks below.
                drain(&seen, published, Duration::from_secs(300)).await;
            }
            break;
        }
        highest = Some(rate);
    }

    stop.store(true, Ordering::Relaxed);
    let _ = poller.await;
    drop(publisher);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM observations").fetch_one(&db.pool).await?;
    let (ingest_peak, _) = ingest.stop(Duration::from_secs(40)).await?;
    let (writer_peak, _) = writer.stop(Duration::from_secs(40)).await?;
    if stored as u64 != published {
        bail!("published {published} readings, the database holds {stored}");
    }
    println!("  all {} published readings stored exactly once", thousands(stored as f64));

    let samples = rss_samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let rss_at = |pick: fn(&RssSample) -> Option<u64>, late: bool| {
        let mut it = samples.iter().filter(|s| s.0 >= 5.0);
        if late {
            it.next_back().and_then(pick)
        } else {
            it.next().and_then(pick)
        }
    };
    let mut summary = Table::new(
        format!(
            "end to end: {} readings/s for {} s, {} datastreams, poll every {} ms",
            thousands(args.rate as f64),
            args.duration,
            ids.len(),
            args.poll_ms
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
        "publish → queryable p50 / p99 / max".into(),
        format!("{} / {} / {}", ms(steady.p50), ms(steady.p99), ms(steady.max)),
        "p99 ≤ 1 s".into(),
        verdict(steady.p99 <= 1000.0 && arrived).into(),
    ]);
    summary.row(vec![
        "latency trend (p50 first → last 10 s window)".into(),
        format!("{} → {}", ms(first), ms(last_median)),
        "no growth".into(),
        verdict(!growing).into(),
    ]);
    summary.row(vec![
        "highest rate sustained (ramp, single-reading JSON)".into(),
        highest.map(|r| format!("≥ {} readings/s", thousands(r as f64))).unwrap_or_else(|| "none".into()),
        "".into(),
        "".into(),
    ]);
    summary.row(vec![
        "hoheit-ingest RSS at 5 s → end of steady run; peak".into(),
        format!("{} → {}; peak {}", mib(rss_at(|s| s.1, false)), mib(rss_at(|s| s.1, true)), mib(ingest_peak)),
        "≤ 64 MiB, flat (+≤ 4 MiB)".into(),
        verdict(ingest_peak.is_some_and(|k| k <= 64 * 1024) && flat(rss_at(|s| s.1, false), rss_at(|s| s.1, true)))
            .into(),
    ]);
    summary.row(vec![
        "hoheit-writer RSS at 5 s → end of steady run; peak".into(),
        format!("{} → {}; peak {}", mib(rss_at(|s| s.2, false)), mib(rss_at(|s| s.2, true)), mib(writer_peak)),
        "≤ 64 MiB, flat (+≤ 4 MiB)".into(),
        verdict(writer_peak.is_some_and(|k| k <= 64 * 1024) && flat(rss_at(|s| s.2, false), rss_at(|s| s.2, true)))
            .into(),
    ]);
    let mut tables = vec![summary, windows];
    if !args.ramp.is_empty() {
        tables.push(ramp_table);
    }
    Ok(tables)
}
