//! The writer service: consume → batch → write → store offsets.
//!
//! One write is in flight at a time. A writer with nothing in flight writes
//! what it has at once; records arriving while a write is in flight are
//! gathered (up to `batch_readings`) and written the moment it has committed.
//! So a lone record waits for no timer, and under load the batches grow by
//! themselves to what arrives during one write.
//!
//! After each database commit the batch's offsets are stored in the consumer
//! (a local call); librdkafka commits the stored offsets to Kafka every
//! [`OFFSET_COMMIT_INTERVAL_MS`], on a rebalance and when the writer stops.
//! A writer that dies loses at most that interval's commits: Kafka redelivers
//! those records and the idempotent write absorbs them.
//!
//! Each batch write has a span (`writer batch`, debug level: recorded when
//! traces are exported) linked to the sampled trace contexts of its records;
//! the consumer's librdkafka statistics feed the lag gauge ([`crate::lag`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use clap::Parser;
use futures::FutureExt;
use hoheit_kafka::{KafkaArgs, Topics};
use hoheit_runtime::config::{ConfigFileArg, DatabaseArgs};
use hoheit_runtime::ops::{self, Readiness};
use hoheit_runtime::telemetry::LogArgs;
use hoheit_store::db;
use hoheit_store::dead_letters::SourcePosition;
use opentelemetry::trace::TraceContextExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::batch::{Batch, Source};
use crate::lag::LagContext;
use crate::rejoin::StallWatch;

/// How often librdkafka commits the stored offsets. A synchronous commit after
/// every write cost each write cycle a round trip to Kafka (8–17 ms against
/// tansu at 5,000 readings/s, where it was a third of the cycle) and tansu a
/// request per write.
const OFFSET_COMMIT_INTERVAL_MS: u32 = 1_000;

/// Most links a batch span carries (the OpenTelemetry SDK's default limit);
/// every sampled record still gets its own `writer store` span.
const MAX_LINKS: usize = 128;

/// The writer's Kafka consumer, whose context turns statistics into the lag gauge.
pub(crate) type WriterConsumer = StreamConsumer<LagContext>;

/// Configuration of the writer service.
#[derive(Debug, Clone, Parser)]
#[command(name = "hoheit-writer", version, about = "Hoheit writer: Kafka → TimescaleDB, batched and idempotent")]
pub struct WriterConfig {
    #[command(flatten)]
    pub config_file: ConfigFileArg,
    /// Kafka consumer group; replicas in one group share the partitions.
    #[arg(long, env = "HOHEIT_WRITER_GROUP", default_value = "hoheit-writer")]
    pub group: String,
    /// Most readings gathered while a write is in flight (then the writer
    /// stops taking records until the write has committed).
    #[arg(long, env = "HOHEIT_WRITER_BATCH_READINGS", default_value_t = 20_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub batch_readings: usize,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "HOHEIT_WRITER_OPS_LISTEN", default_value = "127.0.0.1:9102")]
    pub ops_listen: SocketAddr,
    /// How often librdkafka reports statistics, from which the consumer-lag gauge comes (milliseconds).
    #[arg(long, env = "HOHEIT_WRITER_STATS_INTERVAL_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub stats_interval_ms: u64,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// A built writer service (tests build it on a random port and run it in-process).
pub struct Writer {
    config: WriterConfig,
    ops_listener: tokio::net::TcpListener,
    readiness: Readiness,
}

impl Writer {
    pub async fn build(config: WriterConfig) -> anyhow::Result<Self> {
        // Install the metrics recorder before anything records.
        let _ = hoheit_runtime::ops::metrics_handle();
        let ops_listener =
            ops::bind(config.ops_listen).await.with_context(|| format!("binding {}", config.ops_listen))?;
        Ok(Self { config, ops_listener, readiness: Readiness::default() })
    }

    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_listener.local_addr().expect("a bound listener has an address")
    }

    /// Runs until `shutdown` fires. Records gathered but not being written
    /// when it fires are dropped uncommitted (Kafka redelivers them); a batch
    /// being written is finished and committed first.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self { config, ops_listener, readiness } = self;
        readiness.set("database", false);
        readiness.set("kafka", false);
        let ops_task = tokio::spawn(ops::serve(ops_listener, readiness.clone(), shutdown.clone()));

        let pool = match db::connect(config.database.url.expose(), config.database.max_connections, &shutdown).await {
            Ok(pool) => pool,
            Err(db::DbError::Cancelled) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        readiness.set("database", true);
        let Some(mut consuming) = Consuming::subscribe(&config, readiness, &shutdown).await? else {
            return Ok(());
        };
        consuming.batches(&pool, &shutdown).await;
        let _ = ops_task.await;
        // Hand the last batches' spans to the exporter (a no-op without it).
        let _ = tokio::task::spawn_blocking(hoheit_runtime::telemetry::flush).await;
        tracing::info!("writer stopped");
        Ok(())
    }
}

/// The subscribed consumer and what the batch loop needs around it.
struct Consuming {
    consumer: Arc<WriterConsumer>,
    topics: Topics,
    readiness: Readiness,
    /// Most readings gathered while a write is in flight.
    batch_readings: usize,
    stall_watch: StallWatch,
}

impl Consuming {
    /// Waits for the topics, creates the consumer and subscribes to both
    /// topics; `None` if shutdown came first.
    async fn subscribe(
        config: &WriterConfig,
        readiness: Readiness,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<Self>> {
        if config.kafka.await_topics(shutdown).await.is_none() {
            return Ok(None);
        }
        let topics = config.kafka.topics();
        let consumer: Arc<WriterConsumer> = Arc::new(
            config
                .kafka
                .consumer_config(&config.group)
                .set("enable.auto.commit", "true")
                .set("auto.commit.interval.ms", OFFSET_COMMIT_INTERVAL_MS.to_string())
                .set("statistics.interval.ms", config.stats_interval_ms.to_string())
                .create_with_context(LagContext::default())
                .context("creating the Kafka consumer")?,
        );
        consumer.subscribe(&[&topics.observations, &topics.dead_letters]).context("subscribing")?;
        readiness.set("kafka", true);
        tracing::info!(group = %config.group, observations = %topics.observations, dead_letters = %topics.dead_letters, "writer running");
        Ok(Some(Self {
            consumer,
            topics,
            readiness,
            batch_readings: config.batch_readings,
            stall_watch: StallWatch::new(),
        }))
    }

    /// Consumes, writes and commits until shutdown: a write starts as soon
    /// as none is in flight and records are gathered; while one is, the
    /// records that arrive are gathered for the next (at most
    /// `batch_readings`, then consuming pauses). The write and the storing
    /// of its offsets run as one task, so offsets are stored in order and
    /// only after the database commit. While waiting, checks now and then
    /// whether the consumer group is stalled.
    async fn batches(&mut self, pool: &PgPool, shutdown: &CancellationToken) {
        let mut gathered = Batch::default();
        let mut in_flight: Option<JoinHandle<bool>> = None;
        loop {
            if in_flight.is_none() && !gathered.is_empty() {
                let batch = std::mem::take(&mut gathered);
                let (pool, consumer, readiness, shutdown) =
                    (pool.clone(), self.consumer.clone(), self.readiness.clone(), shutdown.clone());
                in_flight = Some(tokio::spawn(async move {
                    write_and_store(&pool, &consumer, &batch, &readiness, &shutdown).await
                }));
            }
            let room = gathered.readings.len() < self.batch_readings;
            tokio::select! {
                // A write that ended is seen first: the next one starts at once.
                biased;
                done = async { in_flight.as_mut().expect("guarded by is_some").await }, if in_flight.is_some() => {
                    in_flight = None;
                    match done {
                        Ok(true) => {}
                        Ok(false) => return, // shutdown interrupted the write: nothing committed
                        Err(error) => {
                            tracing::error!(%error, "the write task failed; stopping (Kafka redelivers what is not committed)");
                            return;
                        }
                    }
                }
                _ = shutdown.cancelled() => {
                    if let Some(write) = in_flight {
                        let _ = write.await;
                    }
                    return;
                }
                received = self.consumer.recv(), if room => match received {
                    Ok(message) => {
                        self.add(&mut gathered, &message);
                        self.take_ready(&mut gathered).await;
                    }
                    Err(error) => self.consume_failed(error).await,
                },
                _ = self.stall_watch.due() => {
                    let topics = [self.topics.observations.as_str(), self.topics.dead_letters.as_str()];
                    self.stall_watch.check(&self.consumer, &topics).await;
                }
            }
        }
    }

    /// Adds the records the consumer holds already (without waiting for
    /// more), up to `batch_readings`: a backlog is written in full batches
    /// from the first write on.
    async fn take_ready(&self, gathered: &mut Batch) {
        while gathered.readings.len() < self.batch_readings {
            match self.consumer.recv().now_or_never() {
                Some(Ok(message)) => self.add(gathered, &message),
                Some(Err(error)) => return self.consume_failed(error).await,
                None => return,
            }
        }
    }

    /// Adds one Kafka record to `batch`.
    fn add(&self, batch: &mut Batch, message: &BorrowedMessage<'_>) {
        self.readiness.set("kafka", true);
        let source =
            if message.topic() == self.topics.observations { Source::Observations } else { Source::DeadLetters };
        let position = SourcePosition {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        };
        batch.add(source, position, message.payload().unwrap_or_default());
    }

    /// Reports a consume error and pauses before the next attempt.
    async fn consume_failed(&self, error: KafkaError) {
        self.readiness.set("kafka", false);
        tracing::warn!(%error, "Kafka consume error");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes `batch`, then stores its offsets for the next commit; `false` if
/// shutdown interrupted the write (nothing stored).
async fn write_and_store(
    pool: &PgPool,
    consumer: &Arc<WriterConsumer>,
    batch: &Batch,
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> bool {
    if !write_until_done(pool, batch, readiness, shutdown).await {
        return false;
    }
    store_offsets(consumer, batch);
    true
}

/// The span of one batch write, linked to its records' sampled trace contexts.
fn batch_span(batch: &Batch) -> tracing::Span {
    let span = tracing::debug_span!(
        "writer batch",
        otel.kind = "consumer",
        otel.status_code = Empty,
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.batch.message_count = batch.records as i64,
        hoheit.readings = batch.readings.len() as i64,
        hoheit.readings.inserted = Empty,
        hoheit.dead_letters = batch.dead_letters.len() as i64,
        hoheit.traces = batch.traces.len() as i64,
        hoheit.attempts = Empty,
    );
    if !span.is_disabled() {
        for (record, _) in batch.traces.iter().take(MAX_LINKS) {
            span.add_link(record.clone());
        }
    }
    span
}

/// Writes `batch`, retrying with back-off while the database is away.
/// `false` if shutdown came first (nothing committed: Kafka redelivers).
async fn write_until_done(pool: &PgPool, batch: &Batch, readiness: &Readiness, shutdown: &CancellationToken) -> bool {
    let span = batch_span(batch);
    let began = SystemTime::now();
    let mut delay = Duration::from_millis(100);
    let mut attempts = 0u32;
    loop {
        let started = Instant::now();
        attempts += 1;
        match batch.write(pool).instrument(span.clone()).await {
            Ok(written) => {
                readiness.set("database", true);
                span.record("hoheit.readings.inserted", written.readings_inserted as i64);
                span.record("hoheit.attempts", i64::from(attempts));
                batch.continue_traces(span.context().span().span_context(), began, SystemTime::now());
                metrics::histogram!("hoheit_writer_write_seconds").record(started.elapsed().as_secs_f64());
                metrics::histogram!("hoheit_writer_batch_readings").record(batch.readings.len() as f64);
                metrics::histogram!("hoheit_writer_batch_records").record(batch.records as f64);
                metrics::counter!("hoheit_writer_batches_total").increment(1);
                metrics::counter!("hoheit_writer_readings_written_total").increment(written.readings_inserted);
                metrics::counter!("hoheit_writer_duplicates_skipped_total")
                    .increment(batch.readings.len() as u64 - written.readings_inserted);
                metrics::counter!("hoheit_writer_dead_letters_written_total").increment(written.dead_letters_inserted);
                tracing::debug!(
                    readings = batch.readings.len(),
                    inserted = written.readings_inserted,
                    dead_letters = written.dead_letters_inserted,
                    "batch written"
                );
                return true;
            }
            Err(error) => {
                readiness.set("database", false);
                metrics::counter!("hoheit_writer_write_errors_total").increment(1);
                tracing::warn!(parent: &span, %error, retry_in = ?delay, readings = batch.readings.len(), "writing a batch failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => {
                        span.record("otel.status_code", "ERROR");
                        span.record("hoheit.attempts", i64::from(attempts));
                        return false;
                    }
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Stores the offsets after the batch for librdkafka's next commit.
fn store_offsets(consumer: &WriterConsumer, batch: &Batch) {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in &batch.offsets {
        if let Err(error) = list.add_partition_offset(topic, *partition, Offset::Offset(offset + 1)) {
            tracing::warn!(%error, "cannot build the offset list");
            return;
        }
    }
    // After a rebalance the partition may belong to another writer now; it
    // re-reads from the last commit and the idempotent write absorbs it.
    if let Err(error) = consumer.store_offsets(&list) {
        metrics::counter!("hoheit_writer_commit_errors_total").increment(1);
        tracing::warn!(%error, "storing offsets failed; the records will be redelivered");
    }
}
