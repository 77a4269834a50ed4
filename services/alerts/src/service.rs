//! The alerts service: read the observations topic from the stored offsets,
//! evaluate each batch with the rules of its readings' datastreams, commit
//! states, events, deliveries and offsets in one transaction, then tell the
//! deliverer. Once a second: reload the rules if they changed and let the
//! silent rules check the clock.
//!
//! Partitions are assigned by hand, not through a consumer group: the
//! position that counts is the one in `alert_offsets`, committed with the
//! states it produced, so a restart (even after SIGKILL) evaluates every
//! reading exactly once. The offsets are committed to Kafka afterwards too,
//! only so that the group's lag can be watched like the writer's.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hoheit_domain::Micros;
use hoheit_kafka::KafkaArgs;
use hoheit_runtime::config::{ConfigFileArg, DatabaseArgs, Secret};
use hoheit_runtime::ops::{self, Readiness};
use hoheit_runtime::telemetry::LogArgs;
use hoheit_store::alert_state::{self, Evaluated, RulesMarker};
use hoheit_store::db;
use lettre::message::Mailbox;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::access;
use crate::deliver::Deliverer;
use crate::rules::Rules;

/// Configuration of the alerts service.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "hoheit-alerts",
    version,
    about = "Hoheit alerts: rules on the observations stream, notified by webhook and e-mail"
)]
pub struct AlertsConfig {
    #[command(flatten)]
    pub config_file: ConfigFileArg,
    /// Kafka consumer group under which the offsets are also committed to Kafka (for lag monitoring).
    #[arg(long, env = "HOHEIT_ALERTS_GROUP", default_value = "hoheit-alerts")]
    pub group: String,
    /// A batch is evaluated and committed when it holds this many records...
    #[arg(long, env = "HOHEIT_ALERTS_BATCH_RECORDS", default_value_t = 1_000)]
    pub batch_records: usize,
    /// ...or when this many milliseconds have passed.
    #[arg(long, env = "HOHEIT_ALERTS_BATCH_WAIT_MS", default_value_t = 100)]
    pub batch_wait_ms: u64,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "HOHEIT_ALERTS_OPS_LISTEN", default_value = "127.0.0.1:9103")]
    pub ops_listen: SocketAddr,
    /// The SMTP server of e-mail notifications, as a URL: `smtp://host:port` (plain or STARTTLS
    /// when offered), `smtps://user:password@host:465` (TLS); none (or empty): e-mail deliveries fail.
    #[arg(long, env = "HOHEIT_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<Secret>,
    /// The sender of e-mail notifications.
    #[arg(long, env = "HOHEIT_ALERTS_FROM", default_value = "Hoheit <alerts@hoheit.localhost>")]
    pub from: Mailbox,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// A built alerts service (tests build it on a random port and run it in-process).
pub struct Alerts {
    config: AlertsConfig,
    ops_listener: tokio::net::TcpListener,
    readiness: Readiness,
}

impl Alerts {
    pub async fn build(config: AlertsConfig) -> anyhow::Result<Self> {
        let _ = ops::metrics_handle();
        let ops_listener =
            ops::bind(config.ops_listen).await.with_context(|| format!("binding {}", config.ops_listen))?;
        Ok(Self { config, ops_listener, readiness: Readiness::default() })
    }

    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_listener.local_addr().expect("a bound listener has an address")
    }

    /// Runs until `shutdown` fires. A batch being collected then is dropped
    /// uncommitted (it is read again from the stored offsets); one being
    /// committed is finished first.
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
        let wake = Arc::new(Notify::new());
        let deliverer = Deliverer::new(
            pool.clone(),
            // An empty URL (compose's `${HOHEIT_SMTP_URL:-}` when none is set) is no SMTP server.
            config.smtp_url.as_ref().map(Secret::expose).filter(|url| !url.is_empty()),
            config.from.clone(),
            wake.clone(),
        )?;
        let deliver_task = tokio::spawn(deliverer.run(shutdown.clone()));
        if let Some(mut evaluating) = Evaluating::start(&config, pool, wake, readiness, &shutdown).await? {
            evaluating.run(&shutdown).await;
        }
        let _ = deliver_task.await;
        let _ = ops_task.await;
        tracing::info!("alerts stopped");
        Ok(())
    }
}

/// The assigned consumer, the rules and the positions they have evaluated up to.
struct Evaluating {
    pool: PgPool,
    consumer: Arc<BaseConsumer>,
    topic: String,
    rules: Rules,
    marker: RulesMarker,
    /// When the rules' owners' access was last checked.
    checked: Instant,
    /// The next offset to read per partition, as committed.
    positions: BTreeMap<i32, i64>,
    wake: Arc<Notify>,
    readiness: Readiness,
    batch_records: usize,
    batch_wait: Duration,
    /// Ticks so far (the newest values of raw threshold rules are written every 10th).
    ticks: u64,
}

impl Evaluating {
    /// Loads the rules and the stored offsets and assigns the partitions;
    /// `None` if shutdown came first.
    async fn start(
        config: &AlertsConfig,
        pool: PgPool,
        wake: Arc<Notify>,
        readiness: Readiness,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<Evaluating>> {
        let Some(partitions) = config.kafka.await_topics(shutdown).await else { return Ok(None) };
        let topic = config.kafka.topics().observations;
        let consumer: Arc<BaseConsumer> =
            Arc::new(config.kafka.consumer_config(&config.group).create().context("creating the Kafka consumer")?);
        let marker = alert_state::rules_marker(&pool).await?;
        let rules = load_rules(&pool).await?;
        let positions = start_positions(&pool, &consumer, &topic, partitions).await?;
        let mut assignment = TopicPartitionList::new();
        for (&partition, &offset) in &positions {
            assignment.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
        }
        consumer.assign(&assignment).context("assigning the partitions")?;
        readiness.set("kafka", true);
        tracing::info!(%topic, partitions, rules = rules.len(), ?positions, "alerts running");
        Ok(Some(Evaluating {
            pool,
            consumer,
            topic,
            rules,
            marker,
            checked: Instant::now(),
            positions,
            wake,
            readiness,
            batch_records: config.batch_records,
            batch_wait: Duration::from_millis(config.batch_wait_ms),
            ticks: 0,
        }))
    }

    /// Batches and ticks until shutdown.
    async fn run(&mut self, shutdown: &CancellationToken) {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let Some(records) = self.collect(shutdown).await else { return };
            if records > 0 && !self.commit(true, shutdown).await {
                return;
            }
            if tokio::time::timeout(Duration::ZERO, ticker.tick()).await.is_ok() && !self.tick(shutdown).await {
                return;
            }
        }
    }

    /// Reads records for up to the batch time (or until the batch is full)
    /// and evaluates their readings; the number of records, `None` at shutdown.
    async fn collect(&mut self, shutdown: &CancellationToken) -> Option<usize> {
        let deadline = tokio::time::Instant::now() + self.batch_wait;
        let mut records = 0;
        while records < self.batch_records {
            let consumer = self.consumer.clone();
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            // librdkafka's poll blocks: off the async threads, at most until the deadline.
            let polled = tokio::select! {
                _ = shutdown.cancelled() => return None,
                polled = tokio::task::spawn_blocking(move || {
                    consumer.poll(left).map(|m| m.map(|m| (m.partition(), m.offset(), m.payload().map(<[u8]>::to_vec))))
                }) => polled,
            };
            match polled {
                Ok(Some(Ok((partition, offset, payload)))) => {
                    self.readiness.set("kafka", true);
                    records += 1;
                    self.positions.insert(partition, offset + 1);
                    self.evaluate(partition, offset, payload.as_deref().unwrap_or_default());
                }
                Ok(Some(Err(error))) => {
                    self.readiness.set("kafka", false);
                    tracing::warn!(%error, "Kafka consume error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(None) => break,
                Err(error) => tracing::warn!(%error, "polling task failed"),
            }
        }
        Some(records)
    }

    /// Evaluates the readings of one record; a record that is not an
    /// observation record is skipped here (the writer keeps it as a dead letter).
    fn evaluate(&mut self, partition: i32, offset: i64, payload: &[u8]) {
        match hoheit_proto::observation_batches(payload) {
            Ok(batches) => {
                let mut evaluated = 0u64;
                for batch in batches.iter().filter(|b| b.time_unix_us.len() == b.value.len()) {
                    for (&time, &value) in batch.time_unix_us.iter().zip(&batch.value) {
                        evaluated += self.rules.observe(batch.datastream_id, Micros(time), value) as u64;
                    }
                }
                metrics::counter!("hoheit_alerts_evaluated_readings_total").increment(evaluated);
            }
            Err(reason) => tracing::warn!(partition, offset, %reason, "skipping an undecodable observation record"),
        }
    }

    /// Commits what evaluation changed (and, after a batch, the offsets) in
    /// one transaction, retrying while the database is away; `false` if
    /// shutdown came first (nothing committed: the batch is read again).
    async fn commit(&mut self, with_offsets: bool, shutdown: &CancellationToken) -> bool {
        let (states, events) = self.rules.take();
        let offsets = if with_offsets {
            self.positions.iter().map(|(&partition, &next)| (self.topic.as_str(), partition, next)).collect()
        } else {
            Vec::new()
        };
        let evaluated = Evaluated { states, events, offsets };
        if evaluated.states.is_empty() && evaluated.events.is_empty() && evaluated.offsets.is_empty() {
            return true;
        }
        let mut delay = Duration::from_millis(100);
        loop {
            match alert_state::commit(&self.pool, &evaluated).await {
                Ok(deliveries) => {
                    self.readiness.set("database", true);
                    metrics::counter!("hoheit_alerts_state_changes_total").increment(evaluated.events.len() as u64);
                    for event in &evaluated.events {
                        tracing::info!(
                            rule = event.rule,
                            state = event.change.kind(),
                            at = event.change.at().0,
                            "state change"
                        );
                    }
                    if deliveries > 0 {
                        self.wake.notify_one();
                    }
                    break;
                }
                Err(error) => {
                    self.readiness.set("database", false);
                    tracing::warn!(%error, retry_in = ?delay, "committing evaluated states failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled() => return false,
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        if with_offsets {
            self.commit_to_kafka().await;
        }
        true
    }

    /// The committed positions in Kafka too (lag monitoring only: the
    /// service starts from `alert_offsets`).
    async fn commit_to_kafka(&self) {
        let mut list = TopicPartitionList::new();
        for (&partition, &next) in &self.positions {
            if list.add_partition_offset(&self.topic, partition, Offset::Offset(next)).is_err() {
                return;
            }
        }
        let consumer = self.consumer.clone();
        // Asynchronous: these offsets are for lag monitoring only (the database holds the real ones),
        // so the loop does not wait for the broker.
        match tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Async)).await {
            Ok(Err(error)) => tracing::debug!(%error, "committing offsets to Kafka failed"),
            Err(error) => tracing::warn!(%error, "commit task failed"),
            Ok(Ok(())) => {}
        }
    }

    /// Once a second: the rules reloaded if they changed, silent rules
    /// against the clock, the lag gauge.
    async fn tick(&mut self, shutdown: &CancellationToken) -> bool {
        if let Err(error) = self.reload_if_changed().await {
            tracing::warn!(%error, "reloading the rules failed");
        }
        // The newest values of raw threshold rules (shown, not evaluated on) every 10 s.
        self.ticks += 1;
        if self.ticks.is_multiple_of(10) {
            self.rules.flush_informational();
        }
        self.rules.tick(Micros::now());
        let committed = self.commit(false, shutdown).await;
        self.report_lag().await;
        committed
    }

    /// Reloads the rules when they changed, and every [`RECHECK`] anyway
    /// (a grant may have run out). Everything evaluated so far is committed,
    /// so the stored states are the current ones: reloading takes them as
    /// they are, with a changed rule's state as the API left it.
    async fn reload_if_changed(&mut self) -> anyhow::Result<()> {
        let marker = alert_state::rules_marker(&self.pool).await?;
        if marker != self.marker || self.checked.elapsed() >= RECHECK {
            self.rules = load_rules(&self.pool).await?;
            self.marker = marker;
            self.checked = Instant::now();
            tracing::debug!(rules = self.rules.len(), "rules reloaded");
        }
        Ok(())
    }

    async fn report_lag(&self) {
        let consumer = self.consumer.clone();
        let topic = self.topic.clone();
        let positions = self.positions.clone();
        let lags = tokio::task::spawn_blocking(move || {
            positions
                .iter()
                .filter_map(|(&partition, &next)| {
                    let (_, high) = consumer.fetch_watermarks(&topic, partition, Duration::from_millis(500)).ok()?;
                    Some((partition, (high - next).max(0)))
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (partition, lag) in lags {
            metrics::gauge!("hoheit_alerts_kafka_consumer_lag", "partition" => partition.to_string()).set(lag as f64);
        }
    }
}

/// How often the rules' owners' access is checked again without a change of the rules.
const RECHECK: Duration = Duration::from_secs(60);

/// The enabled rules whose owners may read their datastreams now.
async fn load_rules(pool: &PgPool) -> anyhow::Result<Rules> {
    let rows = alert_state::watched_rules(pool).await?;
    Ok(Rules::new(access::evaluable(pool, rows, chrono::Utc::now()).await?))
}

/// Where each partition starts: its stored offset, or else its end now,
/// stored at once so that a restart before the first record starts there too
/// (and so that nothing published once the service is ready is missed).
async fn start_positions(
    pool: &PgPool,
    consumer: &Arc<BaseConsumer>,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let mut positions: BTreeMap<i32, i64> = alert_state::offsets(pool, topic).await?.into_iter().collect();
    let missing: Vec<i32> = (0..partitions).filter(|p| !positions.contains_key(p)).collect();
    if missing.is_empty() {
        return Ok(positions);
    }
    let consumer = consumer.clone();
    let name = topic.to_owned();
    let ends = tokio::task::spawn_blocking(move || {
        missing
            .into_iter()
            .map(|partition| {
                let (_, high) = consumer.fetch_watermarks(&name, partition, Duration::from_secs(10))?;
                Ok((partition, high))
            })
            .collect::<Result<Vec<_>, rdkafka::error::KafkaError>>()
    })
    .await?
    .context("reading the ends of the partitions")?;
    let offsets = ends.iter().map(|&(partition, high)| (topic, partition, high)).collect();
    alert_state::commit(pool, &Evaluated { offsets, ..Evaluated::default() }).await?;
    positions.extend(ends);
    Ok(positions)
}
