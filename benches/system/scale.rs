//! Scale benchmark (issue 18): a database of its own grown to a town's size —
//! 300,000 registered datastreams and readings toward 300 million — measured
//! at three sizes (empty, 10% and 100% of the readings), each figure beside
//! the same run's raw limit:
//!
//! - the release `hoheit-writer` storing readings into the newest chunk, beside
//!   its own rate into the empty table;
//! - the release `hoheit-api`: one day of raw readings and one month of
//!   15-minute aggregates (1 client and 64), beside the same store queries
//!   straight on the database; the listings (`/v1/datastreams`, SensorThings
//!   `Datastreams`, `Things?$expand=Datastreams`, `Observations?$filter=…`) for
//!   the operator, a department's reader and a third party's reader with a
//!   grant;
//! - the bytes a reading takes: table, index and rollup separately.
//!
//! Before the growth, and again with the whole registry, the release
//! `hoheit-ingest` takes single-reading MQTT messages (rate, RSS). At the end,
//! retention removes the oldest tenth of the days while the writer writes.
//!
//! The readings are grown by a **bulk loader**, not through Kafka: it writes
//! the rows the writer would write, with the writer's own store function
//! (`hoheit_store::observations::insert`: binary COPY plus the 15-minute
//! rollup in the same transaction, and whatever else that function keeps) in
//! batches, oldest first, so chunks fill as in production. The registry is
//! grown by SQL (`generate_series`). The loader stops early when the disk
//! would keep less than `--min-free-gb`; the output says how far it got.
//! The database is dropped at the end unless `--keep`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use chrono::Utc;
use clap::Args;
use hoheit_domain::policy::Role;
use hoheit_domain::{DatastreamId, Micros, Reading, Slug};
use hoheit_kafka::partition_of;
use hoheit_proto::v1::{DatastreamBatch, ObservationRecord};
use hoheit_store::audit::Actor;
use hoheit_store::grants::{self, NewGrant};
use hoheit_store::principals::{self, KeyExpiry, KeyLifetime, NewPrincipal, PrincipalKind};
use hoheit_store::{datasets, observations, registry};
use prost::Message as _;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::api::{datetime, drive, http_call, ms, stamp, Measured};
use crate::harness::{
    api_flags, forget_mqtt_session, free_port, load, machine, mib, percent, remember_mqtt_session, run_id, scrape,
    thousands, verdict, wait_ready, BenchDb, BenchTopics, Infra, Percentiles, Service, Table,
};
use crate::mqtt::{self, Client};
use crate::writer::{self, WriterArgs};

/// The loader's clock: every hot datastream has a reading each tick.
const TICK_SECS: i64 = 10;
const TICK: i64 = TICK_SECS * 1_000_000;
const DAY: i64 = 86_400_000_000;
/// Datastreams per thing.
const PROPERTIES: usize = 10;
/// Things of the small registry the ingest comparison starts with (1,000 datastreams).
const SMALL_THINGS: usize = 100;
/// Datasets the municipality's datastreams are spread over.
const DATASETS: usize = 10;

#[derive(Debug, Clone, Args)]
pub struct ScaleArgs {
    /// Datastreams registered (5% of them a department's).
    #[arg(long, default_value_t = 300_000)]
    pub datastreams: usize,
    /// Readings the bulk loader writes (fewer if the disk would keep less than --min-free-gb).
    #[arg(long, default_value_t = 300_000_000)]
    pub readings: u64,
    /// Days the readings span, ending now (one chunk a day).
    #[arg(long, default_value_t = 30)]
    pub days: i64,
    /// Datastreams with a reading every 10 s (those the API is asked for); the rest: see --frequent.
    #[arg(long, default_value_t = 20)]
    pub hot: usize,
    /// Datastreams (after the hot ones) that carry most of the readings, a reading every minute or
    /// so; every other datastream has one a day.
    #[arg(long, default_value_t = 6_000)]
    pub frequent: usize,
    /// Disk space (GB, 10⁹ bytes) the loader leaves free on the database's file system.
    #[arg(long, default_value_t = 12)]
    pub min_free_gb: u64,
    /// Minutes the loader may take in all (both stages); then it stops and the run measures what
    /// is there, so that the whole benchmark ends within the hour. Readings that are the only
    /// ones of their datastream in a batch cost three rows each (the reading, its rollup row,
    /// its latest row): about 40,000 a second here, against 400,000 for frequent datastreams.
    #[arg(long, default_value_t = 35)]
    pub load_minutes: u64,
    /// Parallel loader connections.
    #[arg(long, default_value_t = 2)]
    pub loaders: usize,
    /// Readings per loader batch (one `observations::insert` each).
    #[arg(long, default_value_t = 200_000)]
    pub batch: usize,
    /// Readings per writer measurement (through Kafka and the release hoheit-writer).
    #[arg(long, default_value_t = 1_000_000)]
    pub writer_readings: usize,
    /// Seconds measured per API scenario and client count (after 2 s of warm-up).
    #[arg(long, default_value_t = 5)]
    pub secs: u64,
    /// Concurrent API clients.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Single-reading MQTT messages per ingest measurement.
    #[arg(long, default_value_t = 100_000)]
    pub ingest_messages: usize,
    /// Keep the database afterwards (its name is printed) instead of dropping it.
    #[arg(long)]
    pub keep: bool,
}

/// Who reads: the operator token, or an API key of a principal.
struct Callers {
    operator: String,
    department: String,
    third_party: String,
}

/// The registry the run grew: every datastream id in registration order.
struct Registry {
    ids: Vec<i64>,
    department_streams: usize,
}

/// Which datastream has a reading when: the hot ones every tick, then a
/// town's mix of the rest (see [`Layout::new`]).
struct Layout {
    start: i64,
    ticks: i64,
    /// The hot datastreams (the first tier, a reading every tick).
    hot: usize,
    /// Each tier's datastreams have a reading every `period` ticks
    /// (staggered by the datastream's index in its tier).
    tiers: Vec<Tier>,
}

struct Tier {
    ids: Vec<i64>,
    period: i64,
}

impl Tier {
    fn at(&self, tick: i64) -> impl Iterator<Item = i64> + '_ {
        let first = ((self.period - tick % self.period) % self.period) as usize;
        self.ids.iter().skip(first).step_by(self.period as usize).copied()
    }

    fn readings(&self, ticks: i64) -> u64 {
        (self.ids.len() as u64 * ticks as u64) / self.period as u64
    }
}

/// A sparse datastream's period: one reading a day (a water or heat meter's
/// daily count, a LoRaWAN device's battery).
const SPARSE_TICKS: i64 = DAY / TICK;

impl Layout {
    /// The readings the hot datastreams leave go, as in a town, mostly to
    /// `--frequent` datastreams (air, traffic, energy: a reading every minute
    /// or so), while every other datastream reports once a day. When
    /// the readings do not reach that mix, every non-hot datastream shares
    /// them evenly.
    fn new(args: &ScaleArgs, ids: &[i64], end: i64) -> Self {
        let ticks = args.days * DAY / TICK;
        let hot_n = args.hot.min(ids.len());
        let (hot, rest) = ids.split_at(hot_n);
        let remaining = (args.readings as i64 - hot_n as i64 * ticks).max(rest.len() as i64);
        let period_for = |n: usize, readings: i64| {
            let each = (readings as f64 / n.max(1) as f64).max(1.0);
            ((ticks as f64 / each).round() as i64).clamp(1, ticks)
        };
        let (frequent, sparse) = rest.split_at(args.frequent.min(rest.len()));
        let sparse_readings = sparse.len() as i64 * (ticks / SPARSE_TICKS);
        let mut tiers = vec![Tier { ids: hot.to_vec(), period: 1 }];
        if !frequent.is_empty() && remaining > sparse_readings + frequent.len() as i64 * (ticks / SPARSE_TICKS) {
            tiers
                .push(Tier { ids: frequent.to_vec(), period: period_for(frequent.len(), remaining - sparse_readings) });
            tiers.push(Tier { ids: sparse.to_vec(), period: SPARSE_TICKS.min(ticks) });
        } else {
            tiers.push(Tier { ids: rest.to_vec(), period: period_for(rest.len(), remaining) });
        }
        Self { start: end - ticks * TICK, ticks, hot: hot_n, tiers }
    }

    fn time(&self, tick: i64) -> i64 {
        self.start + tick * TICK
    }

    /// Readings in the whole layout (about: the last period may be cut short).
    fn total(&self) -> u64 {
        self.tiers.iter().map(|tier| tier.readings(self.ticks)).sum()
    }

    /// Readings of one tick, at most.
    fn per_tick(&self) -> usize {
        self.tiers.iter().map(|tier| tier.ids.len().div_ceil(tier.period as usize)).sum()
    }

    /// The tiers for the output: "20 every 10 s, 6,000 every 50 s, 293,980 every 86400 s".
    fn describe(&self) -> String {
        let tiers: Vec<String> = self
            .tiers
            .iter()
            .map(|tier| format!("{} every {} s", thousands(tier.ids.len() as f64), tier.period * TICK_SECS))
            .collect();
        tiers.join(", ")
    }

    fn push_tick(&self, tick: i64, out: &mut Vec<Reading>) {
        let time = Micros(self.time(tick));
        for id in self.tiers.iter().flat_map(|tier| tier.at(tick)) {
            let value = 20.0 + ((tick * 7 + id) % 1000) as f64 * 0.01;
            out.push(Reading { datastream: DatastreamId(id), time, value });
        }
    }
}

/// Free bytes on the file system of the database's data directory.
async fn free_bytes(pool: &PgPool) -> anyhow::Result<u64> {
    let dir: String =
        sqlx::query_scalar("SELECT current_setting('data_directory')").fetch_one(pool).await.unwrap_or("/".into());
    let out = std::process::Command::new("df").args(["-B1", "--output=avail", &dir]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().nth(1).and_then(|l| l.trim().parse().ok()).context("reading df's output")
}

fn gb(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// What the loader did in one call.
struct Loaded {
    readings: u64,
    took: Duration,
    next_tick: i64,
    /// Why the loader stopped before its target: "disk" or "time".
    stopped: Option<&'static str>,
}

/// Writes the layout's readings from `from_tick` until `until` readings were
/// written in all (or the layout ends, the disk is at its limit or `deadline`
/// passed), oldest first, in batches through `observations::insert` on
/// `loaders` connections.
async fn bulk_load(
    pool: &PgPool,
    args: &ScaleArgs,
    layout: &Arc<Layout>,
    from_tick: i64,
    written_before: u64,
    until: u64,
    deadline: Instant,
) -> anyhow::Result<Loaded> {
    let started = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Reading>>(args.loaders.max(1));
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut workers = Vec::new();
    for _ in 0..args.loaders.max(1) {
        let (pool, rx) = (pool.clone(), rx.clone());
        workers.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await?;
            let mut written = 0u64;
            loop {
                let batch = rx.lock().await.recv().await;
                let Some(batch) = batch else { return anyhow::Ok(written) };
                written += observations::insert(&mut conn, &batch).await?;
            }
        }));
    }
    let min_free = args.min_free_gb * 1_000_000_000;
    let mut queued = written_before;
    let mut tick = from_tick;
    let mut batch = Vec::with_capacity(args.batch + layout.per_tick());
    let mut batches = 0u64;
    let mut stopped = None;
    let mut last_report = Instant::now();
    while tick < layout.ticks && queued < until {
        layout.push_tick(tick, &mut batch);
        tick += 1;
        if batch.len() >= args.batch || tick == layout.ticks || queued + batch.len() as u64 >= until {
            queued += batch.len() as u64;
            let full = std::mem::replace(&mut batch, Vec::with_capacity(args.batch + layout.per_tick()));
            if tx.send(full).await.is_err() {
                break;
            }
            batches += 1;
            if batches.is_multiple_of(20) {
                let free = free_bytes(pool).await?;
                if free < min_free {
                    println!("  the disk keeps {} free (limit {}): the loader stops here", gb(free), gb(min_free));
                    stopped = Some("disk");
                    break;
                }
            }
            if Instant::now() >= deadline {
                println!("  the loader's {} minutes are up: it stops here", args.load_minutes);
                stopped = Some("time");
                break;
            }
            if last_report.elapsed() > Duration::from_secs(60) {
                last_report = Instant::now();
                let done = queued - written_before;
                println!(
                    "    … {} readings queued ({} readings/s), load average {}",
                    thousands(queued as f64),
                    thousands(done as f64 / started.elapsed().as_secs_f64()),
                    load()
                );
            }
        }
    }
    drop(tx);
    let mut written = 0;
    for worker in workers {
        written += worker.await??;
    }
    Ok(Loaded { readings: written, took: started.elapsed(), next_tick: tick, stopped })
}

/// Organisations, things, datastreams (the first 1,000 of them before the
/// ingest comparison, the rest after), datasets, a grant and the callers' keys.
async fn register_small(pool: &PgPool) -> anyhow::Result<()> {
    // Three statements: only the simple query protocol (`raw_sql`, no parameters) takes them at once.
    sqlx::raw_sql(
        "INSERT INTO organisations (slug, name, kind) VALUES ('bench', 'Benchmark town', 'municipality');
         INSERT INTO organisations (slug, name, kind, parent_id)
         SELECT 'bench-dept', 'Department of the benchmark town', 'department', id FROM organisations WHERE slug = 'bench';
         INSERT INTO organisations (slug, name, kind) VALUES ('bench-partner', 'A partner company', 'third_party')",
    )
    .execute(pool)
    .await?;
    add_things(pool, "bench", "t", 0, SMALL_THINGS).await
}

/// Things `{prefix}{from}`… of `org`, each with properties `p0`…`p9`.
async fn add_things(pool: &PgPool, org: &str, prefix: &str, from: usize, to: usize) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO things (org_id, slug, name)
         SELECT o.id, $2 || n, 'Thing ' || $2 || n FROM organisations o, generate_series($3::bigint, $4::bigint - 1) n
         WHERE o.slug = $1 ORDER BY n",
    )
    .bind(org)
    .bind(prefix)
    .bind(from as i64)
    .bind(to as i64)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO datastreams (thing_id, property, name)
         SELECT t.id, 'p' || p, t.slug || ' p' || p
         FROM things t JOIN organisations o ON o.id = t.org_id, generate_series(0, $4 - 1) p
         WHERE o.slug = $1 AND t.slug ~ ('^' || $2 || '[0-9]+$') AND substr(t.slug, length($2) + 1)::bigint >= $3
         ORDER BY substr(t.slug, length($2) + 1)::bigint, p",
    )
    .bind(org)
    .bind(prefix)
    .bind(from as i64)
    .bind(PROPERTIES as i32)
    .execute(pool)
    .await?;
    Ok(())
}

async fn register_rest(pool: &PgPool, args: &ScaleArgs, hot: usize) -> anyhow::Result<Registry> {
    let department = args.datastreams / 20;
    let municipality_things = (args.datastreams - department).div_ceil(PROPERTIES).max(SMALL_THINGS);
    add_things(pool, "bench", "t", SMALL_THINGS, municipality_things).await?;
    add_things(pool, "bench-dept", "d", 0, department.div_ceil(PROPERTIES)).await?;
    // Datasets: the municipality's datastreams spread over ten, the department's in one.
    for k in 0..DATASETS {
        create_dataset(pool, &format!("bench-ds{k}"), "bench").await?;
    }
    create_dataset(pool, "bench-dept-ds", "bench-dept").await?;
    // The hot datastreams (the first ones registered) are in bench-ds0, which the partner is granted.
    sqlx::query(
        "UPDATE datastreams d SET dataset_id = ds.id
         FROM things t, organisations o, datasets ds
         WHERE t.id = d.thing_id AND o.id = t.org_id AND o.slug = 'bench'
           AND ds.slug = 'bench-ds' || CASE WHEN d.id <= $1 THEN 0 ELSE d.id % $2 END",
    )
    .bind(hot as i64)
    .bind(DATASETS as i64)
    .execute(pool)
    .await?;
    sqlx::query(
        "UPDATE datastreams d SET dataset_id = (SELECT id FROM datasets WHERE slug = 'bench-dept-ds')
         FROM things t, organisations o WHERE t.id = d.thing_id AND o.id = t.org_id AND o.slug = 'bench-dept'",
    )
    .execute(pool)
    .await?;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM datastreams ORDER BY id").fetch_all(pool).await?;
    let department_streams: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM datastreams d JOIN things t ON t.id = d.thing_id
         JOIN organisations o ON o.id = t.org_id WHERE o.slug = 'bench-dept'",
    )
    .fetch_one(pool)
    .await?;
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(Registry { ids, department_streams: department_streams as usize })
}

async fn create_dataset(pool: &PgPool, slug: &str, owner: &str) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO datasets (slug, owner_org_id, title, steward_contact, classification, license, purpose, retention_days)
         SELECT $1, id, $1, 'bench@bench.example', 'internal', 'intern', 'benchmark', 3650 FROM organisations WHERE slug = $2",
    )
    .bind(slug)
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(())
}

/// A reader principal of `org` with a key; returns the key.
async fn reader_key(pool: &PgPool, org: &str, name: &str) -> anyhow::Result<String> {
    let actor =
        Actor { request_id: "bench".into(), principal_id: None, principal_name: "hoheit-bench".into(), org_id: None };
    let new = NewPrincipal {
        org: Slug::parse("org", org)?,
        name: Slug::parse("name", name)?,
        kind: PrincipalKind::Service,
        role: Role::Reader,
        oidc_subject: None,
    };
    let principal = principals::create_principal(pool, &new, &actor).await?;
    let expiry = KeyExpiry::within(None, KeyLifetime::days(30)?, Utc::now())?;
    Ok(principals::create_key(pool, principal.id, expiry, &actor).await?.key)
}

async fn callers(pool: &PgPool, infra: &Infra) -> anyhow::Result<Callers> {
    let actor =
        Actor { request_id: "bench".into(), principal_id: None, principal_name: "hoheit-bench".into(), org_id: None };
    let dataset: i64 = sqlx::query_scalar("SELECT id FROM datasets WHERE slug = 'bench-ds0'").fetch_one(pool).await?;
    let grant = NewGrant {
        dataset_id: dataset,
        grantee: Slug::parse("org", "bench-partner")?,
        purpose: "benchmark".into(),
        contract_ref: "bench-1".into(),
        min_interval_mins: None,
        history_days: None,
        valid_from: None,
        valid_until: Utc::now() + chrono::Duration::days(365),
        // Far above what the benchmark asks (the default is 60 a minute): it measures speed, not the limit.
        rate_per_minute: Some(10_000_000),
    };
    grants::create(pool, &grant, &actor).await?;
    Ok(Callers {
        operator: infra.api_token.clone(),
        department: reader_key(pool, "bench-dept", "bench-dept-reader").await?,
        third_party: reader_key(pool, "bench-partner", "bench-partner-reader").await?,
    })
}

/// hoheit-ingest on the run's database: single-reading JSON messages to the
/// small registry's datastreams, published with QoS 1 by 4 publishers, until
/// ingest acknowledged all (Kafka confirmed). Returns (readings/s, RSS after
/// start-up in KiB, peak RSS in KiB, start-up time).
async fn ingest_run(
    infra: &Infra,
    db: &BenchDb,
    messages: usize,
) -> anyhow::Result<(f64, Option<u64>, Option<u64>, Duration)> {
    let id = run_id();
    let topics = BenchTopics::create(infra, &id, 4).await?;
    let client_id = format!("bench-ingest-{id}");
    remember_mqtt_session(&client_id);
    let root = format!("bench-{id}/hoheit/v1");
    let port = free_port()?;
    let flags: Vec<String> = vec![
        "--mqtt-host".into(),
        infra.mqtt_host.clone(),
        "--mqtt-port".into(),
        infra.mqtt_port.to_string(),
        "--mqtt-client-id".into(),
        client_id.clone(),
        "--topic-root".into(),
        root.clone(),
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
    let result = async {
        let started = Instant::now();
        let mut ingest = Service::spawn(infra, "hoheit-ingest", &flags)?;
        let http = reqwest::Client::new();
        wait_ready(&http, &format!("http://127.0.0.1:{port}/readyz"), &mut ingest, Duration::from_secs(300)).await?;
        let startup = started.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss_idle = ingest.peak_rss_kib();
        let now = Micros::now().0 - 60_000_000;
        let payloads: Vec<mqtt::Message> = (0..messages)
            .map(|m| {
                let (thing, property) = (m % SMALL_THINGS, (m / SMALL_THINGS) % PROPERTIES);
                let time = chrono::DateTime::from_timestamp_micros(now + m as i64)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                    .unwrap_or_default();
                let payload = serde_json::to_vec(&json!({"time": time, "value": m as f64 * 0.5})).unwrap_or_default();
                (format!("{root}/bench/t{thing}/p{property}"), Bytes::from(payload))
            })
            .collect();
        let metrics = format!("http://127.0.0.1:{port}/metrics");
        let name = "hoheit_ingest_messages_acknowledged_total";
        let mut publishers = Vec::new();
        for _ in 0..4 {
            publishers.push(Client::publisher(infra).await?);
        }
        let started = Instant::now();
        mqtt::publish_all(&publishers, Arc::new(payloads)).await?;
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            ingest.check_alive()?;
            let acknowledged = scrape(&http, &metrics, name).await.unwrap_or(0.0) as usize;
            if acknowledged >= messages {
                break;
            }
            if Instant::now() > deadline {
                bail!("ingest acknowledged {acknowledged} of {messages} messages in 600 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let rate = messages as f64 / started.elapsed().as_secs_f64();
        for publisher in publishers {
            publisher.disconnect().await;
        }
        let (peak, _) = ingest.stop(Duration::from_secs(40)).await?;
        anyhow::Ok((rate, rss_idle, peak, startup))
    }
    .await;
    forget_mqtt_session(infra, &client_id).await;
    topics.keep();
    result
}

/// The release hoheit-writer storing `n` readings of the first 1,000
/// datastreams, one a second each from `from` + 0.5 s (never a loader's
/// time), produced into topics of their own first. Returns the steady rate.
async fn writer_run(infra: &Infra, db: &BenchDb, ids: &[i64], from: i64, n: usize) -> anyhow::Result<f64> {
    let streams = ids.len().min(1_000);
    let per_record = 100usize;
    let partitions = 4;
    let records: Vec<(i32, Vec<u8>, Vec<Reading>)> = (0..n.div_ceil(per_record))
        .map(|r| {
            let id = ids[r % streams];
            let round = (r / streams) as i64;
            let count = per_record.min(n - r * per_record) as i64;
            let times: Vec<i64> =
                (0..count).map(|j| from + 500_000 + (round * per_record as i64 + j) * 1_000_000).collect();
            let values: Vec<f64> = (0..count).map(|j| (r as i64 + j) as f64 * 0.125).collect();
            let batch = DatastreamBatch {
                datastream_id: id,
                time_unix_us: times,
                value: values,
                received_unix_us: from,
                ..Default::default()
            };
            let record = ObservationRecord { batches: vec![batch] };
            (partition_of(id, partitions), record.encode_to_vec(), Vec::new())
        })
        .collect();
    let topics = BenchTopics::create(infra, &run_id(), partitions).await?;
    writer::produce(infra, &topics.observations(), &records).await?;
    let args = WriterArgs {
        readings: n,
        per_record,
        datastreams: streams,
        partitions,
        batch_readings: None,
        no_redelivery: true,
    };
    let group = format!("bench-scale-writer-{}", run_id());
    let run = writer::run_writer(infra, db, &topics, &args, &group, "hoheit_writer_readings_written_total", n).await;
    topics.keep();
    Ok(run?.steady_rate)
}

/// Bytes of `observations`, `observations_15m` and `datastream_latest`.
#[derive(Debug, Clone, Copy, Default)]
struct Sizes {
    table: i64,
    index: i64,
    rollup_table: i64,
    rollup_index: i64,
    rollup_rows: i64,
    latest: i64,
}

async fn sizes(pool: &PgPool) -> anyhow::Result<Sizes> {
    let (table, index): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT table_bytes + coalesce(toast_bytes, 0), index_bytes FROM hypertable_detailed_size('observations')",
    )
    .fetch_one(pool)
    .await?;
    let (rollup_table, rollup_index): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT table_bytes + coalesce(toast_bytes, 0), index_bytes FROM hypertable_detailed_size('observations_15m')",
    )
    .fetch_one(pool)
    .await?;
    let rollup_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM observations_15m").fetch_one(pool).await?;
    let latest: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('datastream_latest')").fetch_one(pool).await?;
    Ok(Sizes {
        table: table.unwrap_or(0),
        index: index.unwrap_or(0),
        rollup_table: rollup_table.unwrap_or(0),
        rollup_index: rollup_index.unwrap_or(0),
        rollup_rows,
        latest,
    })
}

/// Sequential calls of `call` (at least 3, then until `budget` is spent, at
/// most 200): their latencies in ms, and the first error.
async fn sample<F, Fut>(budget: Duration, call: F) -> (Percentiles, usize, Option<String>)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let mut latencies = Vec::new();
    let (mut errors, mut first_error) = (0, None);
    let mut i = 0;
    while i < 200 && (i < 3 || started.elapsed() < budget) {
        let at = Instant::now();
        match call(i).await {
            Ok(()) => latencies.push(at.elapsed().as_secs_f64() * 1000.0),
            Err(error) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{error:#}").chars().take(300).collect());
            }
        }
        i += 1;
    }
    (Percentiles::of(&mut latencies), errors, first_error)
}

/// The tables the stages fill.
struct Report {
    sizes: Table,
    writer: Table,
    reads: Table,
    listings: Table,
    writer_empty: Option<f64>,
    /// The last stage's writer rate.
    writer_last: f64,
}

fn p_count(p: &Percentiles, errors: usize) -> String {
    let mut out = format!("{} (n={})", ms(p), p.count);
    if errors > 0 {
        out.push_str(&format!(", {errors} errors"));
    }
    out
}

/// Everything measured at one size: sizes, the writer into the newest chunk,
/// the API's reads and listings beside the SQL.
#[allow(clippy::too_many_arguments)]
async fn stage(
    infra: &Infra,
    args: &ScaleArgs,
    db: &BenchDb,
    registry: &Registry,
    callers: &Callers,
    label: &str,
    readings: u64,
    position: i64,
    report: &mut Report,
) -> anyhow::Result<u64> {
    println!("\n  -- stage {label}: {} readings stored, load average {}", thousands(readings as f64), load());
    sqlx::query("VACUUM ANALYZE observations").execute(&db.pool).await?;
    sqlx::query("VACUUM ANALYZE observations_15m").execute(&db.pool).await?;
    let s = sizes(&db.pool).await?;
    let per = |bytes: i64| if readings > 0 { format!("{:.1}", bytes as f64 / readings as f64) } else { "—".into() };
    println!(
        "  observations {} table + {} index, rollup {} + {} ({} rows), latest {}; free disk {}",
        gb(s.table as u64),
        gb(s.index as u64),
        gb(s.rollup_table as u64),
        gb(s.rollup_index as u64),
        thousands(s.rollup_rows as f64),
        gb(s.latest as u64),
        gb(free_bytes(&db.pool).await?)
    );
    report.sizes.row(vec![
        label.into(),
        thousands(readings as f64),
        format!("{} / {}", gb(s.table as u64), gb(s.index as u64)),
        format!("{} / {}", per(s.table), per(s.index)),
        format!(
            "{} / {} ({} rows)",
            gb(s.rollup_table as u64),
            gb(s.rollup_index as u64),
            thousands(s.rollup_rows as f64)
        ),
        per(s.rollup_table + s.rollup_index),
        format!("{:.1} MB", s.latest as f64 / 1e6),
        load(),
    ]);

    // The writer into the newest chunk.
    let rate = writer_run(infra, db, &registry.ids, position, args.writer_readings).await?;
    let written = args.writer_readings as u64;
    let empty = *report.writer_empty.get_or_insert(rate);
    report.writer_last = rate;
    println!(
        "  hoheit-writer into the newest chunk: {} readings/s ({} of empty)",
        thousands(rate),
        percent(rate, empty)
    );
    let is_empty = readings == 0;
    report.writer.row(vec![
        label.into(),
        thousands(rate),
        percent(rate, empty),
        if is_empty { "".into() } else { "≥ 90% of empty".into() },
        if is_empty { "".into() } else { verdict(rate >= 0.9 * empty).into() },
        load(),
    ]);
    sqlx::query("ANALYZE observations").execute(&db.pool).await?;

    // The API.
    let port = free_port()?;
    let mut flags = api_flags(infra, port, &db.url);
    flags.extend([
        // The per-credential limit (600 a minute) would answer the benchmark's callers 429.
        "--rate-per-minute".into(),
        "10000000".into(),
    ]);
    let mut api = Service::spawn(infra, "hoheit-api", &flags)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .timeout(Duration::from_secs(300))
        .build()?;
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&http, &format!("{base}/readyz"), &mut api, Duration::from_secs(120)).await?;
    let sql_pool = PgPoolOptions::new().max_connections(8).connect(&db.url).await?;

    // Windows end at the newest loaded reading (the writer's readings come after it).
    let end = position;
    let day_from = end - DAY + 1;
    let to = end + 1;
    let month_to = (end / 900_000_000 + 1) * 900_000_000;
    let month_from = month_to - 30 * DAY;
    let hot: Vec<i64> = registry.ids[..args.hot.min(registry.ids.len()).max(1)].to_vec();
    let (day_from_t, to_t, month_from_t, month_to_t) =
        (datetime(day_from)?, datetime(to)?, datetime(month_from)?, datetime(month_to)?);
    let day_rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM observations WHERE datastream_id = $1 AND time >= $2 AND time < $3")
            .bind(hot[0])
            .bind(day_from_t)
            .bind(to_t)
            .fetch_one(&db.pool)
            .await?;
    let month_buckets =
        observations::aggregates(&sql_pool, DatastreamId(hot[0]), month_from_t, month_to_t, 900).await?.len();
    for (name, raw) in [
        (format!("1 day of raw readings ({day_rows} rows)"), true),
        (format!("1 month of 15-minute aggregates ({month_buckets} buckets)"), false),
    ] {
        let paths: Vec<String> = hot
            .iter()
            .map(|id| match raw {
                true => {
                    format!("/v1/datastreams/{id}/observations?from={}&to={}&limit=10000", stamp(day_from), stamp(to))
                }
                false => format!(
                    "/v1/datastreams/{id}/aggregates?from={}&to={}&interval=15m",
                    stamp(month_from),
                    stamp(month_to)
                ),
            })
            .collect();
        let call = http_call(http.clone(), base.clone(), callers.operator.clone(), Arc::new(paths), false);
        if let Err(error) = call(0).await {
            bail!("{name}: {error}");
        }
        let sql_call = {
            let (pool, hot) = (sql_pool.clone(), Arc::new(hot.clone()));
            move |i: usize| {
                let (pool, hot) = (pool.clone(), hot.clone());
                async move {
                    let id = DatastreamId(hot[i % hot.len()]);
                    if raw {
                        observations::range(&pool, id, day_from_t, to_t, None, 10_000).await?;
                    } else {
                        observations::aggregates(&pool, id, month_from_t, month_to_t, 900).await?;
                    }
                    anyhow::Ok(())
                }
            }
        };
        let single = drive(1, args.secs, call.clone()).await;
        let sql_single = drive(1, args.secs, sql_call.clone()).await;
        let loaded = drive(args.concurrency, args.secs, call).await;
        let sql_loaded = drive(args.concurrency, args.secs, sql_call).await;
        api.check_alive()?;
        let errors = single.errors + loaded.errors;
        println!(
            "  {name}: API 1 client {} ms, SQL {} ms; {} clients API {:.0} req/s, SQL {:.0} req/s ({})",
            ms(&single.latency),
            ms(&sql_single.latency),
            args.concurrency,
            loaded.per_second,
            sql_loaded.per_second,
            percent(loaded.per_second, sql_loaded.per_second)
        );
        print_error(&single, &loaded);
        let met = single.latency.p99 <= 25.0 && loaded.per_second >= 0.8 * sql_loaded.per_second && errors == 0;
        report.reads.row(vec![
            label.into(),
            name.clone(),
            ms(&single.latency),
            ms(&sql_single.latency),
            if errors > 0 {
                format!("{:.0} ({errors} errors)", loaded.per_second)
            } else {
                format!("{:.0}", loaded.per_second)
            },
            format!("{:.0}", sql_loaded.per_second),
            percent(loaded.per_second, sql_loaded.per_second),
            verdict(met).into(),
            load(),
        ]);
    }

    // Listings, one client, for three callers.
    let hour_ago = stamp(end - 3_600_000_000);
    let listings = [
        ("/v1/datastreams (first page)", "/v1/datastreams?limit=1000".to_owned()),
        ("STA Datastreams?$top=100", "/sta/v1.1/Datastreams?$top=100".to_owned()),
        ("STA Things?$expand=Datastreams", "/sta/v1.1/Things?$expand=Datastreams".to_owned()),
        (
            "STA Observations?$filter=phenomenonTime ge (1 h ago)",
            format!("/sta/v1.1/Observations?$filter=phenomenonTime%20ge%20{}", hour_ago.replace('+', "%2B")),
        ),
    ];
    let budget = Duration::from_secs(args.secs);
    for (caller, token) in [
        ("operator", &callers.operator),
        ("department", &callers.department),
        ("third party (grant)", &callers.third_party),
    ] {
        for (name, path) in &listings {
            let call = http_call(http.clone(), base.clone(), token.clone(), Arc::new(vec![path.clone()]), false);
            let (p, errors, first_error) = sample(budget, call).await;
            api.check_alive()?;
            println!("  {caller}, {name}: {} ms (n={}, {errors} errors)", ms(&p), p.count);
            if let Some(error) = first_error {
                println!("    first error: {error}");
            }
            report.listings.row(vec![
                label.into(),
                caller.into(),
                (*name).into(),
                p_count(&p, errors),
                verdict(p.p99 <= 50.0 && errors == 0).into(),
                load(),
            ]);
        }
    }
    // The same listing's SQL alone (the operator's whole registry with latest values).
    let (p, errors, _) = sample(budget, |_| {
        let pool = sql_pool.clone();
        async move {
            registry::list_datastreams(&pool).await?;
            anyhow::Ok(())
        }
    })
    .await;
    println!("  SQL alone, registry::list_datastreams (every datastream): {} ms (n={})", ms(&p), p.count);
    report.listings.row(vec![
        label.into(),
        "SQL alone".into(),
        "registry::list_datastreams (all, with latest values)".into(),
        p_count(&p, errors),
        "".into(),
        load(),
    ]);
    sql_pool.close().await;
    let (peak, _) = api.stop(Duration::from_secs(30)).await?;
    println!("  hoheit-api peak RSS {}", mib(peak));
    Ok(written)
}

fn print_error(single: &Measured, loaded: &Measured) {
    if let Some(error) = loaded.first_error.as_ref().or(single.first_error.as_ref()) {
        println!("    first error: {}", error.chars().take(300).collect::<String>());
    }
}

pub async fn run(infra: &Infra, args: &ScaleArgs) -> anyhow::Result<Vec<Table>> {
    let id = run_id();
    println!("\n== scale benchmark ({id}) — {}", machine());
    let db = BenchDb::create(infra, &id).await?;
    let result = measure(infra, args, &db).await;
    if args.keep {
        println!("  keeping database {} (--keep)", db.name);
        db.keep();
    } else {
        db.drop().await;
    }
    result
}

async fn measure(infra: &Infra, args: &ScaleArgs, db: &BenchDb) -> anyhow::Result<Vec<Table>> {
    let free_at_start = free_bytes(&db.pool).await?;
    println!(
        "  {} datastreams, readings toward {} over {} days; free disk {} (the loader keeps {} GB)",
        thousands(args.datastreams as f64),
        thousands(args.readings as f64),
        args.days,
        gb(free_at_start),
        args.min_free_gb
    );

    // Ingest with the small registry, then grow the registry and measure again.
    register_small(&db.pool).await?;
    let mut ingest_table = Table::new(
        format!(
            "scale: hoheit-ingest, {} single-reading JSON messages (4 publishers)",
            thousands(args.ingest_messages as f64)
        ),
        &["registry", "start-up to ready", "readings/s", "ratio", "RSS when ready", "peak RSS", "load average"],
    );
    let small = ingest_run(infra, db, args.ingest_messages).await?;
    println!(
        "  hoheit-ingest, 1,000 datastreams: {} readings/s, RSS {} when ready, peak {}",
        thousands(small.0),
        mib(small.1),
        mib(small.2)
    );
    ingest_table.row(vec![
        "1,000 datastreams".into(),
        format!("{:.1} s", small.3.as_secs_f64()),
        thousands(small.0),
        "100%".into(),
        mib(small.1),
        mib(small.2),
        load(),
    ]);

    let started = Instant::now();
    let registry = register_rest(&db.pool, args, args.hot).await?;
    println!(
        "  registered {} datastreams ({} of the department) by SQL in {:.1} s",
        thousands(registry.ids.len() as f64),
        thousands(registry.department_streams as f64),
        started.elapsed().as_secs_f64()
    );
    let callers = callers(&db.pool, infra).await?;
    let large = ingest_run(infra, db, args.ingest_messages).await?;
    println!(
        "  hoheit-ingest, {} datastreams: {} readings/s, RSS {} when ready, peak {}",
        thousands(registry.ids.len() as f64),
        thousands(large.0),
        mib(large.1),
        mib(large.2)
    );
    ingest_table.row(vec![
        format!("{} datastreams", thousands(registry.ids.len() as f64)),
        format!("{:.1} s", large.3.as_secs_f64()),
        thousands(large.0),
        percent(large.0, small.0),
        mib(large.1),
        mib(large.2),
        load(),
    ]);

    let end = Micros::now().0 / TICK * TICK;
    let layout = Arc::new(Layout::new(args, &registry.ids, end));
    let target = layout.total().min(args.readings.max(1));
    println!(
        "  layout: datastreams {} (the first {} hot), {} days: {} readings in all, loading {}",
        layout.describe(),
        layout.hot,
        args.days,
        thousands(layout.total() as f64),
        thousands(target as f64)
    );
    let mut report = Report {
        sizes: Table::new(
            format!(
                "scale: size of the tables, {} datastreams (bulk loader: the writer's store function, in batches of {})",
                thousands(registry.ids.len() as f64),
                thousands(args.batch as f64)
            ),
            &[
                "stage",
                "readings",
                "observations table / index",
                "bytes per reading, table / index",
                "rollup table / index",
                "rollup bytes per reading",
                "datastream_latest",
                "load average",
            ],
        ),
        writer: Table::new(
            format!(
                "scale: hoheit-writer into the newest chunk ({} readings, 1,000 datastreams, through Kafka)",
                thousands(args.writer_readings as f64)
            ),
            &["stage", "readings/s (steady)", "vs empty", "target", "verdict", "load average"],
        ),
        reads: Table::new(
            format!("scale: API reads of the {} hot datastreams, operator token", layout.hot),
            &[
                "stage",
                "request",
                "API 1 client p50/p99/max ms",
                "SQL alone 1 client p50/p99/max ms",
                &format!("API {} clients req/s", args.concurrency),
                &format!("SQL alone {} clients req/s", args.concurrency),
                "ratio",
                "target: p99 ≤ 25 ms, ≥ 80% of SQL",
                "load average",
            ],
        ),
        listings: Table::new(
            format!("scale: listings with {} datastreams, 1 client", thousands(registry.ids.len() as f64)),
            &["stage", "caller", "request", "p50/p99/max ms", "target p99 ≤ 50 ms", "load average"],
        ),
        writer_empty: None,
        writer_last: 0.0,
    };
    let mut load_table = Table::new(
        "scale: bulk loader (observations::insert: COPY + rollup, marked: not through Kafka)".to_owned(),
        &["to stage", "readings", "seconds", "readings/s", "free disk after", "load average"],
    );

    // Readings stored: by the loader, and in all (the writer's runs add theirs).
    let (mut loaded_total, mut stored) = (0u64, 0u64);
    let mut tick = 0i64;
    stored += stage(infra, args, db, &registry, &callers, "empty", 0, layout.time(0), &mut report).await?;
    let mut stopped = None;
    let deadline = Instant::now() + Duration::from_secs(args.load_minutes * 60);
    for (label, share) in [("10%", 0.1), ("100%", 1.0)] {
        if stopped.is_some() {
            break;
        }
        let until = (target as f64 * share) as u64;
        println!("\n  loading to {label} ({} readings)…", thousands(until as f64));
        let loaded = bulk_load(&db.pool, args, &layout, tick, loaded_total, until, deadline).await?;
        tick = loaded.next_tick;
        loaded_total += loaded.readings;
        stored += loaded.readings;
        stopped = loaded.stopped;
        let rate = loaded.readings as f64 / loaded.took.as_secs_f64();
        println!(
            "  loaded {} readings in {:.0} s ({} readings/s), {} stored",
            thousands(loaded.readings as f64),
            loaded.took.as_secs_f64(),
            thousands(rate),
            thousands(stored as f64)
        );
        load_table.row(vec![
            format!("{label}{}", stopped.map(|why| format!(" (stopped: {why})")).unwrap_or_default()),
            thousands(loaded.readings as f64),
            format!("{:.0}", loaded.took.as_secs_f64()),
            thousands(rate),
            gb(free_bytes(&db.pool).await?),
            load(),
        ]);
        let position = layout.time(tick.max(1) - 1);
        stored += stage(infra, args, db, &registry, &callers, label, stored, position, &mut report).await?;
    }

    // Retention of the oldest tenth of the days, while the writer writes into the newest chunk.
    let expire_days = (args.days / 10).max(1);
    let keep_days = (args.days - expire_days).max(1) as i32;
    sqlx::query("UPDATE datasets SET retention_days = $1").bind(keep_days).execute(&db.pool).await?;
    println!("\n  retention: every dataset keeps {keep_days} days; run while the writer writes");
    // Retention cuts at its own now(); what it must have removed is what was past retention when it
    // started (the check runs later, when the cut-off has moved on by the writer's run).
    let retention_started: chrono::DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&db.pool).await?;
    let retention = {
        let pool = db.pool.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let run = datasets::retention_run(&pool).await?;
            anyhow::Ok((run, started.elapsed()))
        })
    };
    let position = layout.time(tick.max(1) - 1) + 3_600_000_000;
    let meanwhile = writer_run(infra, db, &registry.ids, position, args.writer_readings).await?;
    let (run, took) = retention.await??;
    // Every dataset has the same retention: only the chunks before its cut-off are counted.
    let after: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM observations o JOIN datastreams d ON d.id = o.datastream_id JOIN datasets ds ON ds.id = d.dataset_id
         WHERE o.time < $2 - make_interval(days => $1) AND o.time < $2 - make_interval(days => ds.retention_days)",
    )
    .bind(keep_days)
    .bind(retention_started)
    .fetch_one(&db.pool)
    .await?;
    println!(
        "  retention: {:.1} s; {} chunks dropped ({} readings), {} readings deleted row by row; {} past retention left; writer meanwhile {} readings/s",
        took.as_secs_f64(),
        run.chunks_dropped,
        thousands(run.readings_dropped as f64),
        thousands(run.readings_deleted as f64),
        after,
        thousands(meanwhile)
    );
    let last_writer = report.writer_last;
    let mut retention_table = Table::new(
        format!("scale: retention of the oldest {expire_days} of {} days, writer writing meanwhile", args.days),
        &["measure", "value", "target", "verdict"],
    );
    retention_table.row(vec!["time".into(), format!("{:.1} s", took.as_secs_f64()), "".into(), "".into()]);
    retention_table.row(vec![
        "whole chunks dropped (readings)".into(),
        format!("{} ({})", run.chunks_dropped, thousands(run.readings_dropped as f64)),
        "".into(),
        "".into(),
    ]);
    retention_table.row(vec![
        "readings deleted row by row (the chunk the cut-off falls in)".into(),
        thousands(run.readings_deleted as f64),
        "".into(),
        "".into(),
    ]);
    retention_table.row(vec![
        "readings past retention afterwards".into(),
        after.to_string(),
        "0".into(),
        verdict(after == 0).into(),
    ]);
    retention_table.row(vec![
        "hoheit-writer meanwhile (readings/s)".into(),
        format!(
            "{} ({} of the last stage's {})",
            thousands(meanwhile),
            percent(meanwhile, last_writer),
            thousands(last_writer)
        ),
        "≥ 90%".into(),
        verdict(meanwhile >= 0.9 * last_writer).into(),
    ]);
    println!("  free disk at the end {} (at the start {})", gb(free_bytes(&db.pool).await?), gb(free_at_start));
    Ok(vec![ingest_table, load_table, report.sizes, report.writer, report.reads, report.listings, retention_table])
}
