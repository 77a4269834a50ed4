//! Live dashboards benchmark: many `GET /v1/live` event streams open on one
//! release `hoheit-api` process while readings arrive.
//!
//! A registry of `--datastreams` is written by SQL; a loader stores readings
//! at `--rate` per second through the writer's own store function
//! (`hoheit_store::observations::insert`, which keeps `datastream_latest`), so
//! the API's change feed has something to carry. Two phases of `--secs` each:
//! one stream open, then `--clients` streams. For each: the API process's CPU
//! (from `/proc`), its RSS, the database's transactions per second beside the
//! loader's own (from `pg_stat_database`), the API's feed queries
//! (`hoheit_live_feed_queries_total`), and the `latest` events and values the
//! clients received. The target of the issue: no per-client polling of the
//! database, so the queries per second must not grow with the clients.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use hoheit_domain::{DatastreamId, Micros, Reading};

use crate::harness::{
    api_flags, free_port, metric_sum, mib, rss_kib, run_id, thousands, verdict, wait_ready, BenchDb, Infra, Service,
    Table,
};

#[derive(Debug, Clone, Args)]
pub struct LiveArgs {
    /// Live streams open in the second phase.
    #[arg(long, default_value_t = 200)]
    pub clients: usize,
    /// Datastreams registered (things of ten properties), all visible to the operator's streams.
    #[arg(long, default_value_t = 10_000)]
    pub datastreams: usize,
    /// Readings per second stored meanwhile (spread over every datastream in turn).
    #[arg(long, default_value_t = 1_000)]
    pub rate: u64,
    /// Seconds measured per phase (after the streams opened).
    #[arg(long, default_value_t = 30)]
    pub secs: u64,
}

const PROPERTIES: usize = 10;

/// What one phase measured.
struct Phase {
    clients: usize,
    cpu_percent: f64,
    rss_kib: Option<u64>,
    db_xacts_per_sec: f64,
    loader_xacts_per_sec: f64,
    feed_queries_per_sec: f64,
    events_per_client_sec: f64,
    values_per_sec: f64,
    streams_open: f64,
}

/// The counters a phase reads before and after its seconds.
struct Counters {
    metrics: String,
    cpu_ticks: u64,
    db_xacts: i64,
    loader_xacts: u64,
    latest_events: u64,
    values: u64,
}

impl Counters {
    async fn read(
        http: &reqwest::Client,
        metrics_url: &str,
        api: &Service,
        db: &BenchDb,
        loader_xacts: &AtomicU64,
        received: &Received,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            metrics: http.get(metrics_url).send().await?.text().await?,
            cpu_ticks: cpu_ticks(api.pid())?,
            db_xacts: db_xacts(db).await?,
            loader_xacts: loader_xacts.load(Ordering::Relaxed),
            latest_events: received.latest_events.load(Ordering::Relaxed),
            values: received.values.load(Ordering::Relaxed),
        })
    }
}

/// Counts of what every client received.
#[derive(Default)]
struct Received {
    latest_events: AtomicU64,
    values: AtomicU64,
    bytes: AtomicU64,
}

pub async fn run(infra: &Infra, args: &LiveArgs) -> anyhow::Result<Vec<Table>> {
    let id = run_id();
    let db = BenchDb::create(infra, &id).await?;
    let outcome = measure(infra, args, &db).await;
    db.drop().await;
    outcome
}

async fn measure(infra: &Infra, args: &LiveArgs, db: &BenchDb) -> anyhow::Result<Vec<Table>> {
    println!(
        "\n== live dashboards: {} streams, {} datastreams, {} readings/s stored meanwhile",
        args.clients,
        thousands(args.datastreams as f64),
        thousands(args.rate as f64)
    );
    let ids = db.register(args.datastreams.div_ceil(PROPERTIES), PROPERTIES).await?;
    let port = free_port()?;
    let mut api = Service::spawn(infra, "hoheit-api", &api_flags(infra, port, &db.url))?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.clients + 8).build()?;
    wait_ready(&http, &format!("{base}/readyz"), &mut api, Duration::from_secs(60)).await?;

    // The loader: the writer's store function, once a second a batch of `rate` readings.
    let loading = Arc::new(AtomicBool::new(true));
    let loader_xacts = Arc::new(AtomicU64::new(0));
    let loader = {
        let (pool, ids, loading, xacts, rate) =
            (db.pool.clone(), ids.clone(), loading.clone(), loader_xacts.clone(), args.rate);
        tokio::spawn(async move {
            let mut next = 0usize;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while loading.load(Ordering::Relaxed) {
                tick.tick().await;
                let now = Micros::now().0;
                let readings: Vec<Reading> = (0..rate)
                    .map(|i| {
                        let id = ids[(next + i as usize) % ids.len()];
                        Reading { datastream: DatastreamId(id), time: Micros(now + i as i64), value: i as f64 }
                    })
                    .collect();
                next = (next + rate as usize) % ids.len();
                let Ok(mut conn) = pool.acquire().await else { continue };
                match hoheit_store::observations::insert(&mut conn, &readings).await {
                    Ok(_) => {
                        xacts.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => eprintln!("  loader: {error}"),
                }
            }
        })
    };

    let mut phases = Vec::new();
    for clients in [1, args.clients] {
        phases.push(phase(&http, &base, infra, db, &api, clients, args.secs, &loader_xacts).await?);
    }
    loading.store(false, Ordering::Relaxed);
    let _ = loader.await;
    api.check_alive()?;
    let (peak, _) = api.stop(Duration::from_secs(30)).await?;

    let mut table = Table::new(
        format!(
            "live dashboards: one hoheit-api process, {} datastreams (operator's streams see all), {} readings/s stored, {} s per phase",
            thousands(ids.len() as f64),
            thousands(args.rate as f64),
            args.secs
        ),
        &[
            "streams",
            "API CPU",
            "API RSS (end)",
            "DB transactions/s (all / the loader's)",
            "feed queries/s",
            "latest events per stream/s",
            "values delivered/s",
        ],
    );
    for p in &phases {
        table.row(vec![
            format!("{} ({} open)", p.clients, p.streams_open),
            format!("{:.0}% of a core", p.cpu_percent),
            mib(p.rss_kib),
            format!("{:.1} / {:.1}", p.db_xacts_per_sec, p.loader_xacts_per_sec),
            format!("{:.2}", p.feed_queries_per_sec),
            format!("{:.2}", p.events_per_client_sec),
            thousands(p.values_per_sec),
        ]);
    }
    let (one, many) = (&phases[0], &phases[1]);
    // The API's own transactions: all of the database's minus the loader's.
    let api_one = (one.db_xacts_per_sec - one.loader_xacts_per_sec).max(0.0);
    let api_many = (many.db_xacts_per_sec - many.loader_xacts_per_sec).max(0.0);
    let flat = api_many <= api_one + 2.0 && many.feed_queries_per_sec <= one.feed_queries_per_sec + 0.5;
    let mut summary = Table::new(
        format!("live dashboards: {} streams on one process", args.clients),
        &["measure", "value", "target", "verdict"],
    );
    summary.row(vec![
        "the API's database transactions/s, 1 stream → many".into(),
        format!(
            "{api_one:.1} → {api_many:.1} (feed queries {:.2} → {:.2}/s)",
            one.feed_queries_per_sec, many.feed_queries_per_sec
        ),
        "no per-client polling (does not grow with the streams)".into(),
        verdict(flat).into(),
    ]);
    summary.row(vec![
        "hoheit-api CPU and RSS with all streams".into(),
        format!("{:.0}% of a core, {} (peak {})", many.cpu_percent, mib(many.rss_kib), mib(peak)),
        "".into(),
        "".into(),
    ]);
    println!("  hoheit-api peak RSS {}", mib(peak));
    Ok(vec![summary, table])
}

#[allow(clippy::too_many_arguments)]
async fn phase(
    http: &reqwest::Client,
    base: &str,
    infra: &Infra,
    db: &BenchDb,
    api: &Service,
    clients: usize,
    secs: u64,
    loader_xacts: &AtomicU64,
) -> anyhow::Result<Phase> {
    let received = Arc::new(Received::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut streams = Vec::with_capacity(clients);
    for _ in 0..clients {
        let response = http
            .get(format!("{base}/v1/live"))
            .bearer_auth(&infra.api_token)
            .header("accept", "text/event-stream")
            .send()
            .await?
            .error_for_status()
            .context("opening a live stream")?;
        let (received, stop) = (received.clone(), stop.clone());
        streams.push(tokio::spawn(async move {
            let mut response = response;
            let mut pending = String::new();
            let mut snapshot_seen = false;
            while !stop.load(Ordering::Relaxed) {
                let chunk = match tokio::time::timeout(Duration::from_millis(500), response.chunk()).await {
                    Ok(Ok(Some(chunk))) => chunk,
                    Ok(Ok(None)) | Ok(Err(_)) => break, // the stream ended
                    Err(_) => continue,                 // nothing within 500 ms: look at `stop` again
                };
                pending.push_str(&String::from_utf8_lossy(&chunk));
                // Events end with a blank line.
                while let Some(end) = pending.find("\n\n") {
                    let event: String = pending.drain(..end + 2).collect();
                    if event.starts_with("event: snapshot") || event.contains("\nevent: snapshot") {
                        snapshot_seen = true;
                    } else if snapshot_seen && event.contains("event: latest") {
                        received.latest_events.fetch_add(1, Ordering::Relaxed);
                        received.values.fetch_add(event.matches("\"datastream_id\"").count() as u64, Ordering::Relaxed);
                        received.bytes.fetch_add(event.len() as u64, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // Let the snapshots go out, then measure.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics_url = format!("{base}/metrics");
    let before = Counters::read(http, &metrics_url, api, db, loader_xacts, &received).await?;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let after = Counters::read(http, &metrics_url, api, db, loader_xacts, &received).await?;
    let rss_kib = rss_kib(api.pid());
    stop.store(true, Ordering::Relaxed);
    for stream in streams {
        let _ = stream.await;
    }
    let ticks_per_sec = clock_ticks_per_sec();
    let feed = metric_sum(&after.metrics, "hoheit_live_feed_queries_total")
        - metric_sum(&before.metrics, "hoheit_live_feed_queries_total");
    let phase = Phase {
        clients,
        cpu_percent: 100.0 * (after.cpu_ticks - before.cpu_ticks) as f64 / ticks_per_sec / elapsed,
        rss_kib,
        db_xacts_per_sec: (after.db_xacts - before.db_xacts) as f64 / elapsed,
        loader_xacts_per_sec: (after.loader_xacts - before.loader_xacts) as f64 / elapsed,
        feed_queries_per_sec: feed / elapsed,
        events_per_client_sec: (after.latest_events - before.latest_events) as f64 / clients as f64 / elapsed,
        values_per_sec: (after.values - before.values) as f64 / elapsed,
        streams_open: metric_sum(&after.metrics, "hoheit_live_streams"),
    };
    println!(
        "  {} streams: API {:.0}% of a core, RSS {}, database {:.1} transactions/s (the loader's {:.1}), feed queries {:.2}/s, \
         {:.2} latest events per stream/s, {} values/s delivered",
        clients,
        phase.cpu_percent,
        mib(phase.rss_kib),
        phase.db_xacts_per_sec,
        phase.loader_xacts_per_sec,
        phase.feed_queries_per_sec,
        phase.events_per_client_sec,
        thousands(phase.values_per_sec)
    );
    Ok(phase)
}

/// The database's committed and rolled-back transactions so far (every backend's, from the statistics).
async fn db_xacts(db: &BenchDb) -> anyhow::Result<i64> {
    // The statistics are flushed by each backend at most once a second; a fresh snapshot each call.
    sqlx::query("SELECT pg_stat_clear_snapshot()").execute(&db.pool).await?;
    let n: i64 = sqlx::query_scalar(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&db.pool)
    .await?;
    Ok(n)
}

/// User plus system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("unreadable /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 on Linux if that fails).
fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}
