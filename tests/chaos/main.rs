//! `hoheit-chaos`: proves that nothing acknowledged is lost while things break.
//!
//! It starts its own PostgreSQL + TimescaleDB cluster, Mosquitto, tansu and
//! the ingest and writer binaries (own ports, own state under
//! `--state-dir`), registers datastreams, and publishes a fixed, seeded set of
//! readings with QoS 1 (each message retried until the broker's PUBACK; some
//! messages are invalid on purpose). Meanwhile it breaks one thing after the
//! other: SIGKILL ingest, SIGKILL writer, SIGKILL tansu, restart PostgreSQL
//! (immediate mode), restart Mosquitto. At the end it waits (bounded) until
//! the pipeline is quiet and compares the database with what the broker
//! acknowledged: every reading stored once with its exact value, every
//! invalid message in the dead letters with the expected reason.
//!
//! Run it with `deploy/local/hoheit chaos [READINGS]`. The exit code is 0
//! only when nothing is missing, duplicated or altered.

mod infra;
mod push;
mod workload;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hoheit_domain::Slug;
use hoheit_store::registry::{self, NewDatastream, NewOrganisation, NewThing};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;

use infra::Infra;
use workload::{Expect, Workload};

#[derive(Debug, Parser)]
#[command(
    name = "hoheit-chaos",
    about = "Fault-injection scenario: publish with QoS 1 while killing and restarting every part"
)]
struct Args {
    /// Valid readings to publish (invalid messages come on top).
    #[arg(long, default_value_t = 100_000)]
    readings: usize,
    /// Seed of the workload and of the pauses between faults.
    #[arg(long, default_value_t = 20_261_126)]
    seed: u64,
    /// Datastreams the readings are spread over.
    #[arg(long, default_value_t = 20)]
    things: usize,
    /// Publishing is paced to take about this long, so that the faults hit it.
    #[arg(long, default_value_t = 40)]
    publish_secs: u64,
    /// How long to wait at most, after the last publish, for the pipeline to settle.
    #[arg(long, default_value_t = 300)]
    settle_secs: u64,
    /// Parent directory of each run's state (a new `run-PID` directory inside).
    #[arg(long, default_value = ".hoheit/chaos")]
    state_dir: PathBuf,
    /// Directory holding the hoheit-ingest and hoheit-writer binaries.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// The tansu binary.
    #[arg(long, env = "HOHEIT_CHAOS_TANSU", default_value = "tansu")]
    tansu: PathBuf,
    /// Keep the run directory (data and logs) even when the run passes.
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    KillIngest,
    KillWriter,
    KillTansu,
    RestartPostgres,
    RestartMosquitto,
}

const FAULTS: [Fault; 5] =
    [Fault::KillIngest, Fault::KillWriter, Fault::KillTansu, Fault::RestartPostgres, Fault::RestartMosquitto];

impl Fault {
    fn label(self) -> &'static str {
        match self {
            Self::KillIngest => "SIGKILL ingest",
            Self::KillWriter => "SIGKILL writer",
            Self::KillTansu => "SIGKILL tansu",
            Self::RestartPostgres => "PostgreSQL restart -m immediate",
            Self::RestartMosquitto => "Mosquitto SIGTERM + start",
        }
    }
}

/// One injected fault and how long its target was away.
struct Injected {
    fault: Fault,
    at: Duration,
    downtime: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let run_dir = std::path::absolute(args.state_dir.join(format!("run-{}", std::process::id())))?;
    let bin_dir = std::path::absolute(&args.bin_dir)?;
    for bin in ["hoheit-ingest", "hoheit-writer"] {
        anyhow::ensure!(bin_dir.join(bin).is_file(), "{} is missing: build it first", bin_dir.join(bin).display());
    }
    let mut infra = Infra::new(run_dir.clone(), bin_dir, args.tansu.clone())?;
    println!("chaos: run directory {} (ports {:?})", run_dir.display(), infra.ports);
    let result = run(&args, &mut infra).await;
    infra.stop_all().await;
    match &result {
        Ok(true) if !args.keep => {
            let _ = std::fs::remove_dir_all(&run_dir);
        }
        _ => println!("chaos: state and logs kept in {}", run_dir.display()),
    }
    match result {
        Ok(true) => Ok(()),
        Ok(false) => anyhow::bail!("readings were lost, duplicated or altered (see above)"),
        Err(error) => Err(error),
    }
}

async fn run(args: &Args, infra: &mut Infra) -> anyhow::Result<bool> {
    let mut rng = StdRng::seed_from_u64(args.seed);
    let workload = Workload::generate(&mut rng, hoheit_domain::topic::DEFAULT_ROOT, args.readings, args.things);
    println!(
        "chaos: seed {}, {} messages: {} valid readings, {} invalid messages ({} readings in them)",
        args.seed,
        workload.messages.len(),
        workload.valid_readings(),
        workload.invalid_messages(),
        workload.invalid_readings()
    );

    infra.start_postgres().await.context("starting PostgreSQL")?;
    let pool = PgPool::connect(&infra.database_url()).await?;
    hoheit_store::db::migrate(&pool).await?;
    let ids = register(&pool, &workload.things).await?;
    let (push_ids, key) = push::register(&pool, &workload.things).await?;
    pool.close().await;
    // Over HTTP beside MQTT: a tenth as many readings, in requests of ten (own seed: the MQTT
    // workload and the faults stay those of the seed).
    let pushes = std::sync::Arc::new(push::Pushes::generate(
        &mut StdRng::seed_from_u64(args.seed.wrapping_add(1)),
        (args.readings / 10).max(10),
        args.things,
    ));
    println!("chaos: and {} readings pushed over HTTP in {} requests", pushes.readings(), pushes.requests.len());
    infra.start_mosquitto().await.context("starting Mosquitto")?;
    infra.start_tansu().await.context("starting tansu")?;
    // Ingest first: its persistent session must exist before anything is published.
    infra.start_ingest().await.context("starting ingest")?;
    infra.start_writer().await.context("starting writer")?;
    println!("chaos: infrastructure and services ready; publishing and injecting faults");

    let started = Instant::now();
    let rate = workload.messages.len() as f64 / args.publish_secs.max(1) as f64;
    let (progress_tx, progress) = tokio::sync::watch::channel(0usize);
    let messages = workload.messages.clone();
    let mqtt_port = infra.ports.mqtt;
    let mut publisher =
        tokio::spawn(async move { workload::publish_all("127.0.0.1", mqtt_port, &messages, rate, progress_tx).await });
    let mut pusher = tokio::spawn(push::push_all(
        infra.ports.ingest_http,
        key,
        workload.things.clone(),
        pushes.clone(),
        args.publish_secs,
    ));

    let mut injected = Vec::new();
    let mut crashes = Vec::new();
    let publish_report = loop {
        for fault in FAULTS {
            let pause = Duration::from_millis(rng.gen_range(1_000..3_000));
            tokio::time::sleep(pause).await;
            let at = started.elapsed();
            let downtime = inject(infra, fault, &mut rng).await.with_context(|| fault.label())?;
            println!(
                "chaos: {:>6.1}s  {:<32} back after {:>5.2}s   (published {}/{})",
                at.as_secs_f64(),
                fault.label(),
                downtime.as_secs_f64(),
                *progress.borrow(),
                workload.messages.len()
            );
            injected.push(Injected { fault, at, downtime });
            crashes.extend(check_alive(infra).await?);
        }
        if publisher.is_finished() && pusher.is_finished() {
            break (&mut publisher).await??;
        }
    };
    let push_report = (&mut pusher).await??;
    let mut answers: Vec<_> = push_report.answers.iter().collect();
    answers.sort();
    println!(
        "chaos: pusher done: {} readings answered 202, {} retries (answers by status, 0 = no answer: {:?})",
        push_report.accepted_readings, push_report.retries, answers
    );
    println!(
        "chaos: publisher done after {:.1}s: {} messages acknowledged, {} retries, {} connections",
        publish_report.elapsed.as_secs_f64(),
        publish_report.acked_messages,
        publish_report.retries,
        publish_report.reconnects
    );

    let pool = PgPool::connect(&infra.database_url()).await?;
    let mut expected = workload::expected_rows(&workload, &ids);
    expected.extend(push::expected_rows(&pushes, &push_ids));
    let settle_started = Instant::now();
    settle(&pool, &workload, expected.len(), Duration::from_secs(args.settle_secs)).await?;
    let settle_time = settle_started.elapsed();
    crashes.extend(check_alive(infra).await?);
    let rejoins = std::fs::read_to_string(infra.dir.join("hoheit-writer.log"))
        .map(|log| log.lines().filter(|l| l.contains("rejoining the group")).count())
        .unwrap_or(0);
    println!("chaos: the writer rejoined a stalled consumer group {rejoins} times (the tansu workaround, README)");
    let ok = verify(&pool, &workload, &expected, &injected, &crashes, settle_time).await?;
    pool.close().await;
    Ok(ok)
}

/// Registers the organisation, one thing per name and its datastream; returns the datastream ids.
async fn register(pool: &PgPool, things: &[String]) -> anyhow::Result<Vec<i64>> {
    let org = Slug::parse("organisation", workload::ORG)?;
    registry::create_organisation(
        pool,
        &NewOrganisation { slug: org.clone(), name: "Chaos".into(), kind: None, parent: None },
    )
    .await?;
    let mut ids = Vec::new();
    for name in things {
        let thing = Slug::parse("thing", name)?;
        registry::create_thing(
            pool,
            &NewThing {
                org: org.clone(),
                slug: thing.clone(),
                name: name.clone(),
                latitude: None,
                longitude: None,
                external_id: None,
                device_type: None,
            },
        )
        .await?;
        let datastream = registry::create_datastream(
            pool,
            &NewDatastream {
                org: org.clone(),
                thing,
                property: Slug::parse("property", workload::PROPERTY)?,
                name: format!("{} at {name}", workload::PROPERTY),
                unit: None,
                min: None,
                max: None,
            },
        )
        .await?;
        ids.push(datastream.id.0);
    }
    Ok(ids)
}

/// Breaks one thing and brings it back; returns the time until it was back.
async fn inject(infra: &mut Infra, fault: Fault, rng: &mut StdRng) -> anyhow::Result<Duration> {
    let away = Duration::from_millis(rng.gen_range(300..2_000));
    let began = Instant::now();
    match fault {
        Fault::KillIngest => {
            if let Some(mut child) = infra.ingest.take() {
                infra::kill(&mut child).await?;
            }
            tokio::time::sleep(away).await;
            infra.start_ingest().await?;
        }
        Fault::KillWriter => {
            if let Some(mut child) = infra.writer.take() {
                infra::kill(&mut child).await?;
            }
            tokio::time::sleep(away).await;
            infra.start_writer().await?;
        }
        Fault::KillTansu => {
            if let Some(mut child) = infra.tansu.take() {
                infra::kill(&mut child).await?;
            }
            tokio::time::sleep(away).await;
            infra.start_tansu().await?;
        }
        Fault::RestartPostgres => infra.restart_postgres()?,
        Fault::RestartMosquitto => infra.restart_mosquitto().await?,
    }
    Ok(began.elapsed())
}

/// Ingest and writer must survive every fault by themselves: one that exited
/// is reported (a finding) and started again so the scenario can go on.
async fn check_alive(infra: &mut Infra) -> anyhow::Result<Vec<String>> {
    let mut crashed = Vec::new();
    if let Some(status) = infra.ingest.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
        crashed.push(format!("hoheit-ingest exited by itself ({status})"));
        infra.start_ingest().await?;
    }
    if let Some(status) = infra.writer.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
        crashed.push(format!("hoheit-writer exited by itself ({status})"));
        infra.start_writer().await?;
    }
    for line in &crashed {
        println!("chaos: FINDING: {line}");
    }
    Ok(crashed)
}

/// Waits until every expected reading and dead letter is in the database, or
/// nothing has changed for a minute, or `limit` has passed.
async fn settle(pool: &PgPool, workload: &Workload, expected_rows: usize, limit: Duration) -> anyhow::Result<()> {
    let invalid = workload.invalid_messages() as i64;
    let started = Instant::now();
    let mut last = (-1i64, -1i64);
    let mut last_change = Instant::now();
    loop {
        let counts: Result<(i64, i64), _> = sqlx::query_as(
            "SELECT (SELECT count(*) FROM observations), (SELECT count(DISTINCT (mqtt_topic, payload)) FROM dead_letters)",
        )
        .fetch_one(pool)
        .await;
        if let Ok(counts) = counts {
            if counts.0 >= expected_rows as i64 && counts.1 >= invalid {
                return Ok(());
            }
            if counts != last {
                last = counts;
                last_change = Instant::now();
            }
        }
        if last_change.elapsed() > Duration::from_secs(60) || started.elapsed() > limit {
            println!("chaos: not settled (observations {}, dead letters {}); comparing what is there", last.0, last.1);
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Compares the database with the workload and prints the figures.
async fn verify(
    pool: &PgPool,
    workload: &Workload,
    expected: &HashMap<(i64, i64), f64>,
    injected: &[Injected],
    crashes: &[String],
    settle_time: Duration,
) -> anyhow::Result<bool> {
    let rows: Vec<(i64, chrono::DateTime<chrono::Utc>, f64)> =
        sqlx::query_as("SELECT datastream_id, time, value FROM observations").fetch_all(pool).await?;
    let mut seen: HashSet<(i64, i64)> = HashSet::with_capacity(rows.len());
    let (mut duplicates, mut unexpected, mut altered) = (0usize, 0usize, 0usize);
    for &(datastream, time, value) in &rows {
        let key = (datastream, time.timestamp_micros());
        if !seen.insert(key) {
            duplicates += 1;
        }
        match expected.get(&key) {
            None => unexpected += 1,
            Some(v) if v.to_bits() != value.to_bits() => altered += 1,
            Some(_) => {}
        }
    }
    let missing = expected.keys().filter(|k| !seen.contains(k)).count();

    let letters: Vec<(String, Vec<u8>, String)> =
        sqlx::query_as("SELECT mqtt_topic, payload, reason_code FROM dead_letters").fetch_all(pool).await?;
    let letter_rows = letters.len();
    let mut by_message: HashMap<(String, Vec<u8>), Vec<String>> = HashMap::new();
    for (topic, payload, reason_code) in letters {
        by_message.entry((topic, payload)).or_default().push(reason_code);
    }
    let (mut letters_missing, mut wrong_reason, mut letter_copies) = (0usize, 0usize, 0usize);
    for message in workload.messages.iter() {
        let Expect::DeadLetter(code) = message.expect else { continue };
        match by_message.get(&(message.topic.clone(), message.payload.clone())) {
            None => letters_missing += 1,
            Some(codes) => {
                letter_copies += codes.len() - 1;
                wrong_reason += codes.iter().filter(|c| c.as_str() != code).count();
            }
        }
    }
    let stray_letters = by_message.len() + letters_missing - workload.invalid_messages();

    println!();
    println!("chaos: ---------------------------------------------------------------- figures");
    println!("  published (acknowledged by the broker): {} messages", workload.messages.len());
    println!("  valid readings acknowledged (PUBACK, 202): {}", expected.len());
    println!("  readings stored:                        {}", rows.len());
    println!("  missing:                                {missing}");
    println!("  duplicates (rows):                      {duplicates}");
    println!("  stored but never published:             {unexpected}");
    println!("  stored with a different value:          {altered}");
    println!(
        "  invalid messages / readings:            {} / {}",
        workload.invalid_messages(),
        workload.invalid_readings()
    );
    println!("  dead-letter rows:                       {}", letter_rows);
    println!("  invalid messages without a dead letter: {letters_missing}");
    println!("  dead letters with a wrong reason:       {wrong_reason}");
    println!("  dead letters for valid messages:        {stray_letters}");
    println!("  redelivered dead-letter copies:         {letter_copies} (dead letters are at-least-once)");
    println!("  settled after the last publish in:      {:.1}s", settle_time.as_secs_f64());
    println!("  faults:");
    for i in injected {
        println!(
            "    at {:>6.1}s  {:<32} downtime {:>5.2}s",
            i.at.as_secs_f64(),
            i.fault.label(),
            i.downtime.as_secs_f64()
        );
    }
    for c in crashes {
        println!("  FINDING: {c}");
    }
    let ok = missing == 0
        && duplicates == 0
        && unexpected == 0
        && altered == 0
        && letters_missing == 0
        && wrong_reason == 0
        && stray_letters == 0
        && crashes.is_empty();
    println!("chaos: {}", if ok { "PASS: nothing lost, nothing duplicated" } else { "FAIL" });
    Ok(ok)
}
