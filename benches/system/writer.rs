//! Writer benchmark: N readings pre-loaded into Kafka as `ObservationRecord`s
//! in the partitions ingest would choose → rows stored per second by the release
//! `hoheit-writer`. Beside it, in the same run: the broker's own consume rate
//! for the same records (rdkafka, no database) and a binary COPY of the same
//! rows straight into a hypertable of the same shape (one connection, one
//! COPY). Then a second writer group re-reads everything (a full redelivery)
//! to measure the duplicate path and to show that nothing is stored twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use hoheit_benches::T0;
use hoheit_domain::{DatastreamId, Micros, Reading};
use hoheit_kafka::partition_of;
use hoheit_proto::v1::{DatastreamBatch, ObservationRecord};
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::Connection;

use crate::harness::{
    free_port, machine, mib, percent, run_id, scrape, thousands, verdict, wait_ready, BenchDb, BenchTopics, Infra,
    Service, Table,
};

#[derive(Debug, Clone, Args)]
pub struct WriterArgs {
    /// Readings pre-loaded into Kafka.
    #[arg(long, default_value_t = 2_000_000)]
    pub readings: usize,
    /// Readings per Kafka record (one datastream's batch per record).
    #[arg(long, default_value_t = 100)]
    pub per_record: usize,
    /// Datastreams the readings are spread over.
    #[arg(long, default_value_t = 1_000)]
    pub datastreams: usize,
    /// Partitions of the observations topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// The writer's --batch-readings (default: the writer's own default).
    #[arg(long)]
    pub batch_readings: Option<usize>,
    /// Skip the full redelivery (duplicate path) run.
    #[arg(long)]
    pub no_redelivery: bool,
}

/// The records of the run: one `DatastreamBatch` of `per_record` readings per
/// record, datastreams round-robin, one reading per second per datastream.
fn records(args: &WriterArgs) -> Vec<(i32, Vec<u8>, Vec<Reading>)> {
    let per = args.per_record.max(1);
    let datastreams = args.datastreams.max(1);
    let total = args.readings.div_ceil(per);
    (0..total)
        .map(|r| {
            let id = (r % datastreams) as i64 + 1;
            let round = (r / datastreams) as i64;
            let n = per.min(args.readings - r * per) as i64;
            let times: Vec<i64> = (0..n).map(|j| T0 + (round * per as i64 + j) * 1_000_000).collect();
            let values: Vec<f64> = (0..n).map(|j| (r as i64 * 7 + j) as f64 * 0.125).collect();
            let readings = times
                .iter()
                .zip(&values)
                .map(|(&t, &value)| Reading { datastream: DatastreamId(id), time: Micros(t), value })
                .collect();
            let batch = DatastreamBatch {
                datastream_id: id,
                time_unix_us: times,
                value: values,
                received_unix_us: T0,
                ..Default::default()
            };
            let record = ObservationRecord { batches: vec![batch] };
            (partition_of(id, args.partitions), record.encode_to_vec(), readings)
        })
        .collect()
}

/// Produces every record (idempotent producer, as ingest) and waits for all confirmations.
pub(crate) async fn produce(
    infra: &Infra,
    topic: &str,
    records: &[(i32, Vec<u8>, Vec<Reading>)],
) -> anyhow::Result<Duration> {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &infra.kafka_bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()?;
    let started = Instant::now();
    let mut pending: std::collections::VecDeque<DeliveryFuture> = Default::default();
    for (partition, value, _) in records {
        loop {
            match producer.send_result(FutureRecord::<(), _>::to(topic).partition(*partition).payload(value)) {
                Ok(delivery) => {
                    pending.push_back(delivery);
                    break;
                }
                Err((error, _)) => match pending.pop_front() {
                    Some(oldest) => {
                        oldest.await?.map_err(|(e, _)| anyhow::anyhow!("producing: {e}"))?;
                    }
                    None => bail!("producing: {error}"),
                },
            }
        }
    }
    for delivery in pending {
        delivery.await?.map_err(|(e, _)| anyhow::anyhow!("producing: {e}"))?;
    }
    Ok(started.elapsed())
}

/// The broker's own consume rate: every record of `topic`, assigned (no group
/// join), with the writer's consumer settings.
fn consume_all(topics: &BenchTopics, expected: usize) -> anyhow::Result<Duration> {
    let consumer: BaseConsumer = topics.args.consumer_config(&format!("bench-consume-{}", run_id())).create()?;
    let mut list = TopicPartitionList::new();
    for partition in 0..topics.args.partitions {
        list.add_partition_offset(&topics.observations(), partition, Offset::Beginning)?;
    }
    let started = Instant::now();
    consumer.assign(&list)?;
    let mut received = 0usize;
    let deadline = started + Duration::from_secs(600);
    while received < expected {
        if Instant::now() > deadline {
            bail!("the broker delivered only {received} of {expected} records in 600 s");
        }
        if let Some(message) = consumer.poll(Duration::from_millis(500)) {
            message.context("consuming")?;
            received += 1;
        }
    }
    Ok(started.elapsed())
}

/// Binary COPY of `readings` into a fresh hypertable shaped like `observations`.
async fn raw_copy(db: &BenchDb, readings: &[Reading]) -> anyhow::Result<Duration> {
    for statement in [
        "CREATE TABLE bench_copy (datastream_id bigint NOT NULL, time timestamptz NOT NULL, value double precision NOT NULL)",
        "SELECT create_hypertable('bench_copy', by_range('time', INTERVAL '1 day'), create_default_indexes => false)",
        "CREATE UNIQUE INDEX bench_copy_datastream_time ON bench_copy (datastream_id, time DESC) INCLUDE (value)",
    ] {
        sqlx::query(statement).execute(&db.pool).await?;
    }
    let mut data = Vec::new();
    hoheit_store::observations::encode_copy(readings, &mut data)?;
    db.checkpoint().await?;
    let mut conn = db.pool.acquire().await?;
    let started = Instant::now();
    let mut tx = conn.begin().await?;
    let mut copy =
        tx.copy_in_raw("COPY bench_copy (datastream_id, time, value) FROM STDIN WITH (FORMAT binary)").await?;
    for chunk in data.chunks(1 << 20) {
        copy.send(chunk).await?;
    }
    let rows = copy.finish().await?;
    tx.commit().await?;
    let elapsed = started.elapsed();
    if rows as usize != readings.len() {
        bail!("COPY stored {rows} rows of {}", readings.len());
    }
    sqlx::query("DROP TABLE bench_copy").execute(&db.pool).await?;
    Ok(elapsed)
}

/// What one writer process did.
pub(crate) struct WriterRun {
    /// From process start to the last row.
    pub total: Duration,
    /// From the first written batch to the last row (start-up and group join excluded).
    pub steady_rate: f64,
    pub peak_rss_kib: Option<u64>,
    /// Share of the steady time spent in database writes (from the writer's histogram).
    pub db_busy: f64,
}

/// Starts a writer in `group` and waits until counter `metric` reaches `expected`.
pub(crate) async fn run_writer(
    infra: &Infra,
    db: &BenchDb,
    topics: &BenchTopics,
    args: &WriterArgs,
    group: &str,
    metric: &str,
    expected: usize,
) -> anyhow::Result<WriterRun> {
    let port = free_port()?;
    let mut flags: Vec<String> = vec![
        "--group".into(),
        group.into(),
        "--kafka-bootstrap".into(),
        topics.args.bootstrap.clone(),
        "--kafka-topic-prefix".into(),
        topics.args.topic_prefix.clone(),
        "--kafka-partitions".into(),
        topics.args.partitions.to_string(),
        "--database-url".into(),
        db.url.clone(),
        "--ops-listen".into(),
        format!("127.0.0.1:{port}"),
    ];
    if let Some(batch) = args.batch_readings {
        flags.extend(["--batch-readings".into(), batch.to_string()]);
    }
    db.checkpoint().await?;
    let started = Instant::now();
    let mut writer = Service::spawn(infra, "hoheit-writer", &flags)?;
    let http = reqwest::Client::new();
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    wait_ready(&http, &format!("http://127.0.0.1:{port}/readyz"), &mut writer, Duration::from_secs(60)).await?;
    let mut first: Option<(Instant, f64)> = None;
    let deadline = started + Duration::from_secs(120 + expected as u64 / 5_000);
    let done = loop {
        writer.check_alive()?;
        let written = scrape(&http, &metrics, metric).await.unwrap_or(0.0);
        let now = Instant::now();
        if written > 0.0 && first.is_none() {
            first = Some((now, written));
        }
        if written as usize >= expected {
            break now;
        }
        if now > deadline {
            bail!("the writer stored {written} of {expected} readings in {:?}", now - started);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let busy = scrape(&http, &metrics, "hoheit_writer_write_seconds_sum").await.unwrap_or(f64::NAN);
    let (first_at, first_rows) = first.unwrap_or((started, 0.0));
    let steady = done.saturating_duration_since(first_at).as_secs_f64();
    let steady_rate = if steady > 0.0 { (expected as f64 - first_rows) / steady } else { f64::NAN };
    let (peak_rss_kib, _) = writer.stop(Duration::from_secs(30)).await?;
    Ok(WriterRun { total: done - started, steady_rate, peak_rss_kib, db_busy: busy / steady })
}

pub async fn run(infra: &Infra, args: &WriterArgs) -> anyhow::Result<Vec<Table>> {
    let id = run_id();
    println!("\n== writer benchmark ({}) — {}", id, machine());
    let db = BenchDb::create(infra, &id).await?;
    let topics = match BenchTopics::create(infra, &id, args.partitions).await {
        Ok(topics) => topics,
        Err(error) => {
            db.drop().await;
            return Err(error);
        }
    };
    let result = measure(infra, args, &db, &topics).await;
    topics.keep();
    db.drop().await;
    result
}

async fn measure(infra: &Infra, args: &WriterArgs, db: &BenchDb, topics: &BenchTopics) -> anyhow::Result<Vec<Table>> {
    let records = Arc::new(records(args));
    let readings: Vec<Reading> = records.iter().flat_map(|(_, _, r)| r.iter().copied()).collect();
    let n = readings.len();
    let bytes: usize = records.iter().map(|(_, v, _)| v.len()).sum();
    println!(
        "  {} readings in {} records of {} ({} datastreams, {} partitions, {:.1} MB of record values)",
        thousands(n as f64),
        thousands(records.len() as f64),
        args.per_record,
        args.datastreams,
        args.partitions,
        bytes as f64 / 1e6
    );

    let produced = produce(infra, &topics.observations(), &records).await?;
    println!(
        "  produced in {:.2} s ({} records/s)",
        produced.as_secs_f64(),
        thousands(records.len() as f64 / produced.as_secs_f64())
    );
    let in_topic = topics.observation_records()?;
    if in_topic as usize != records.len() {
        bail!("the topic holds {in_topic} records, {} were produced", records.len());
    }

    let consumed = {
        let topics_args = topics.args.clone();
        let expected = records.len();
        tokio::task::spawn_blocking(move || consume_all(&BenchTopics { args: topics_args }, expected)).await??
    };
    let consume_rate = n as f64 / consumed.as_secs_f64();
    println!("  broker consume: {:.2} s, {} readings/s", consumed.as_secs_f64(), thousands(consume_rate));

    let copied = raw_copy(db, &readings).await?;
    let copy_rate = n as f64 / copied.as_secs_f64();
    println!("  raw binary COPY: {:.2} s, {} readings/s", copied.as_secs_f64(), thousands(copy_rate));
    drop(readings);

    let group = format!("bench-writer-{}", run_id());
    let first = run_writer(infra, db, topics, args, &group, "hoheit_writer_readings_written_total", n).await?;
    println!(
        "  hoheit-writer: {:.2} s from start, {} readings/s steady, {:.0}% of it in database writes, peak RSS {}",
        first.total.as_secs_f64(),
        thousands(first.steady_rate),
        100.0 * first.db_busy,
        mib(first.peak_rss_kib)
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM observations").fetch_one(&db.pool).await?;
    if stored as usize != n {
        bail!("observations holds {stored} rows after the writer, expected {n}");
    }

    let redelivery = if args.no_redelivery {
        None
    } else {
        let group = format!("bench-redeliver-{}", run_id());
        let run = run_writer(infra, db, topics, args, &group, "hoheit_writer_duplicates_skipped_total", n).await?;
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM observations").fetch_one(&db.pool).await?;
        if stored as usize != n {
            bail!("observations holds {stored} rows after the redelivery, expected {n}: duplicates were stored");
        }
        println!(
            "  full redelivery: {} readings/s skipped, still {} rows",
            thousands(run.steady_rate),
            thousands(stored as f64)
        );
        Some(run)
    };

    let mut table = Table::new(
        format!(
            "writer: {} readings, {} per record, {} datastreams, {} partitions",
            thousands(n as f64),
            args.per_record,
            args.datastreams,
            args.partitions
        ),
        &["measure", "readings/s", "ratio", "target", "verdict"],
    );
    table.row(vec![
        "broker consume (rdkafka, no database)".into(),
        thousands(consume_rate),
        "".into(),
        "".into(),
        "".into(),
    ]);
    table.row(vec![
        "raw binary COPY into the hypertable (1 connection)".into(),
        thousands(copy_rate),
        "100%".into(),
        "".into(),
        "".into(),
    ]);
    let met = first.steady_rate >= 0.7 * copy_rate && first.steady_rate >= 150_000.0;
    table.row(vec![
        "hoheit-writer, steady (first batch → last row)".into(),
        thousands(first.steady_rate),
        format!(
            "{} of COPY, {} of consume",
            percent(first.steady_rate, copy_rate),
            percent(first.steady_rate, consume_rate)
        ),
        "≥ 70% of COPY and ≥ 150,000/s".into(),
        verdict(met).into(),
    ]);
    table.row(vec![
        "hoheit-writer, from process start".into(),
        thousands(n as f64 / first.total.as_secs_f64()),
        percent(n as f64 / first.total.as_secs_f64(), copy_rate),
        "".into(),
        "".into(),
    ]);
    if let Some(run) = &redelivery {
        table.row(vec![
            "full redelivery (every reading a duplicate; none stored)".into(),
            thousands(run.steady_rate),
            percent(run.steady_rate, copy_rate),
            "no duplicates".into(),
            "met".into(),
        ]);
    }
    let peak = first.peak_rss_kib.max(redelivery.as_ref().and_then(|r| r.peak_rss_kib));
    table.row(vec![
        "hoheit-writer peak RSS (VmHWM)".into(),
        mib(peak),
        "".into(),
        "≤ 64 MiB".into(),
        verdict(peak.is_some_and(|k| k <= 64 * 1024)).into(),
    ]);
    Ok(vec![table])
}
