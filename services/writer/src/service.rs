//! The writer service: consume → batch → write → commit offsets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hoheit_core::config::{ConfigFileArg, DatabaseArgs};
use hoheit_core::db;
use hoheit_core::dead_letters::SourcePosition;
use hoheit_core::kafka::KafkaArgs;
use hoheit_core::ops::{self, Readiness};
use hoheit_core::telemetry::LogArgs;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::batch::{Batch, Source};

/// Configuration of the writer service.
#[derive(Debug, Clone, Parser)]
#[command(name = "hoheit-writer", version, about = "Hoheit writer: Kafka → TimescaleDB, batched and idempotent")]
pub struct WriterConfig {
    #[command(flatten)]
    pub config_file: ConfigFileArg,
    /// Kafka consumer group; replicas in one group share the partitions.
    #[arg(long, env = "HOHEIT_WRITER_GROUP", default_value = "hoheit-writer")]
    pub group: String,
    /// A batch is written when it holds this many readings...
    #[arg(long, env = "HOHEIT_WRITER_BATCH_READINGS", default_value_t = 20_000)]
    pub batch_readings: usize,
    /// ...or when its first record is this many milliseconds old.
    #[arg(long, env = "HOHEIT_WRITER_BATCH_WAIT_MS", default_value_t = 200)]
    pub batch_wait_ms: u64,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "HOHEIT_WRITER_OPS_LISTEN", default_value = "127.0.0.1:9102")]
    pub ops_listen: SocketAddr,
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
        let _ = hoheit_core::ops::metrics_handle();
        let ops_listener =
            ops::bind(config.ops_listen).await.with_context(|| format!("binding {}", config.ops_listen))?;
        Ok(Self { config, ops_listener, readiness: Readiness::default() })
    }

    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_listener.local_addr().expect("a bound listener has an address")
    }

    /// Runs until `shutdown` fires. A batch being collected when it fires is
    /// dropped uncommitted (Kafka redelivers it); a batch being written is
    /// finished and committed first.
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
        let mut delay = Duration::from_millis(200);
        while let Err(error) = config.kafka.ensure_topics().await {
            tracing::warn!(%error, retry_in = ?delay, "Kafka not reachable yet");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        let topics = config.kafka.topics();
        let consumer: Arc<StreamConsumer> =
            Arc::new(config.kafka.consumer_config(&config.group).create().context("creating the Kafka consumer")?);
        consumer.subscribe(&[&topics.observations, &topics.dead_letters]).context("subscribing")?;
        readiness.set("kafka", true);
        tracing::info!(group = %config.group, observations = %topics.observations, dead_letters = %topics.dead_letters, "writer running");

        let max_wait = Duration::from_millis(config.batch_wait_ms);
        'batches: loop {
            let mut batch = Batch::default();
            let mut deadline: Option<tokio::time::Instant> = None;
            while batch.readings.len() < config.batch_readings {
                let wait = async {
                    match deadline {
                        Some(at) => tokio::time::timeout_at(at, consumer.recv()).await.ok(),
                        None => Some(consumer.recv().await),
                    }
                };
                let received = tokio::select! {
                    _ = shutdown.cancelled() => break 'batches,
                    received = wait => received,
                };
                let Some(received) = received else { break }; // batch time is up
                match received {
                    Ok(message) => {
                        readiness.set("kafka", true);
                        let source = if message.topic() == topics.observations {
                            Source::Observations
                        } else {
                            Source::DeadLetters
                        };
                        let position = SourcePosition {
                            topic: message.topic().to_owned(),
                            partition: message.partition(),
                            offset: message.offset(),
                        };
                        batch.add(source, position, message.payload().unwrap_or_default());
                        deadline.get_or_insert_with(|| tokio::time::Instant::now() + max_wait);
                    }
                    Err(error) => {
                        readiness.set("kafka", false);
                        tracing::warn!(%error, "Kafka consume error");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            if batch.is_empty() {
                continue;
            }
            if !write_until_done(&pool, &batch, &readiness, &shutdown).await {
                break;
            }
            commit(&consumer, &batch).await;
        }
        let _ = ops_task.await;
        tracing::info!("writer stopped");
        Ok(())
    }
}

/// Writes `batch`, retrying with back-off while the database is away.
/// `false` if shutdown came first (nothing committed: Kafka redelivers).
async fn write_until_done(pool: &PgPool, batch: &Batch, readiness: &Readiness, shutdown: &CancellationToken) -> bool {
    let mut delay = Duration::from_millis(100);
    loop {
        let started = Instant::now();
        match batch.write(pool).await {
            Ok(written) => {
                readiness.set("database", true);
                metrics::histogram!("hoheit_writer_write_seconds").record(started.elapsed().as_secs_f64());
                metrics::histogram!("hoheit_writer_batch_readings").record(batch.readings.len() as f64);
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
                tracing::warn!(%error, retry_in = ?delay, readings = batch.readings.len(), "writing a batch failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return false,
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Commits the offsets after the batch (synchronously, off the async threads).
async fn commit(consumer: &Arc<StreamConsumer>, batch: &Batch) {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in &batch.offsets {
        if let Err(error) = list.add_partition_offset(topic, *partition, Offset::Offset(offset + 1)) {
            tracing::warn!(%error, "cannot build the offset list");
            return;
        }
    }
    let consumer = consumer.clone();
    let result = tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync)).await;
    match result {
        Ok(Ok(())) => {}
        // After a rebalance the partition may belong to another writer now; it
        // re-reads from the last commit and the idempotent write absorbs it.
        Ok(Err(error)) => tracing::warn!(%error, "committing offsets failed; the records will be redelivered"),
        Err(error) => tracing::warn!(%error, "commit task failed"),
    }
}
