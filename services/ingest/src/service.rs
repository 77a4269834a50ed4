//! The ingest service: configuration, the MQTT loop, the Kafka producer and
//! the acknowledger that answers the broker once Kafka has confirmed.
//!
//! Messages that arrive together are gathered into shared Kafka records (see
//! `gather`): while the next message is already there, ingest keeps
//! gathering; when it would have to wait (or the gather is full), it hands
//! the records to the producer, provided fewer than [`SENDS_IN_FLIGHT`]
//! sends are unconfirmed; otherwise it gathers on until one is confirmed.
//! So batches grow with the load and with Kafka's answer time, and a lone
//! message is sent at once.
//!
//! Each MQTT message gets a span (`ingest message`, debug level: recorded when
//! traces are exported, free otherwise) that lasts from its arrival to its
//! acknowledgement; its W3C trace context travels with its readings in the
//! Kafka record, where the writer picks it up.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hoheit_domain::door::Door;
use hoheit_domain::topic;
use hoheit_domain::topic::TopicScheme;
use hoheit_kafka::{KafkaArgs, Topics, TraceFields};
use hoheit_runtime::config::{ConfigFileArg, DatabaseArgs};
use hoheit_runtime::mqtt::MqttArgs;
use hoheit_runtime::ops::{self, Readiness};
use hoheit_runtime::telemetry::LogArgs;
use hoheit_store::db;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::decode::{Decoded, Limits};
use crate::doors::{self, Doors};
use crate::gather::{Gather, Gathered, Record, RecordKind};
use crate::inbound::{Body, Inbound, NotConfirmed, Submission, Target};
use crate::integrations;
use crate::pipeline::{Outcome, Pipeline};
use crate::registry_cache::RegistryCache;
use crate::sta;
use hoheit_domain::door::Receipt;
use hoheit_domain::rejection::{RejectCode, Rejection};
use hoheit_domain::Micros;

/// Configuration of the ingest service.
#[derive(Debug, Clone, Parser)]
#[command(name = "hoheit-ingest", version, about = "Hoheit ingest: MQTT readings → checks → Kafka")]
pub struct IngestConfig {
    #[command(flatten)]
    pub config_file: ConfigFileArg,
    #[command(flatten)]
    pub mqtt: MqttArgs,
    /// MQTT client id; the broker keeps this client's session (and queues its messages) while it is away.
    #[arg(long, env = "HOHEIT_MQTT_CLIENT_ID", default_value = "hoheit-ingest")]
    pub mqtt_client_id: String,
    /// Root of the topic scheme.
    #[arg(long, env = "HOHEIT_MQTT_TOPIC_ROOT", default_value = topic::DEFAULT_ROOT)]
    pub topic_root: String,
    /// Prefix of SensorThings' MQTT create topics: an Observation published
    /// to `{prefix}/Datastreams({id})/Observations` is stored like a
    /// `POST …/Observations` (the broker's ACL decides who may publish there).
    #[arg(long, env = "HOHEIT_STA_MQTT_PREFIX", default_value = "v1.1")]
    pub sta_mqtt_prefix: String,
    /// Largest accepted MQTT payload in bytes; larger ones become dead letters.
    #[arg(long, env = "HOHEIT_INGEST_MAX_PAYLOAD_BYTES", default_value_t = 256 * 1024)]
    pub max_payload_bytes: usize,
    /// Most readings accepted in one message.
    #[arg(long, env = "HOHEIT_INGEST_MAX_READINGS", default_value_t = 10_000)]
    pub max_readings: usize,
    /// How many seconds a reading's time may be ahead of the platform clock.
    #[arg(long, env = "HOHEIT_INGEST_MAX_FUTURE_SECS", default_value_t = 300)]
    pub max_future_secs: i64,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "HOHEIT_INGEST_OPS_LISTEN", default_value = "127.0.0.1:9101")]
    pub ops_listen: SocketAddr,
    /// Address of the HTTP doors: `/v1/push/…`, SensorThings create, the
    /// network servers' webhooks, sensor.community devices.
    #[arg(long, env = "HOHEIT_INGEST_HTTP_LISTEN", default_value = "127.0.0.1:8081")]
    pub http_listen: SocketAddr,
    /// The operator's bootstrap token (the API's): it may write into every
    /// organisation through the HTTP doors, as it may administer them.
    #[arg(long, env = "HOHEIT_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<hoheit_runtime::config::Secret>,
    /// Requests per second one key (or device, or connector) may make to the
    /// HTTP doors; a burst of one second's worth is allowed. Beyond: `429`.
    #[arg(long, env = "HOHEIT_INGEST_HTTP_REQUESTS_PER_SECOND", default_value_t = 200)]
    pub http_requests_per_second: u32,
    /// The broker's dynamic security: reconciled with the registry every second (expiry,
    /// disabled principals, supply grants, datastreams).
    #[command(flatten)]
    pub broker: hoheit_broker::dynsec::DynsecArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// A built ingest service, ready to run (zero2prod's `Application` shape:
/// tests build it on a random port and run it in-process).
pub struct Ingest {
    config: IngestConfig,
    ops_listener: tokio::net::TcpListener,
    http_listener: tokio::net::TcpListener,
    readiness: Readiness,
}

/// A delivery waiting for Kafka's confirmation before its door answers.
#[derive(Debug)]
struct Waiting {
    answer: Answer,
    /// The delivery's span; it ends when the delivery is answered.
    span: Span,
    received: Instant,
}

/// How a delivery is answered once Kafka confirmed its records.
#[derive(Debug)]
enum Answer {
    /// An MQTT message: the broker gets its PUBACK (only the packet id is kept).
    Mqtt(Publish),
    /// The other doors: the receipt goes back to the waiting request.
    Reply(oneshot::Sender<Result<Receipt, NotConfirmed>>, Receipt),
}

/// Most sends whose records Kafka has not confirmed yet. Each send puts at
/// most one record on a partition, and librdkafka's idempotent producer lets
/// at most five records of a partition be in flight: with more waiting, its
/// broker thread polls its socket without a timeout until one is confirmed
/// (a whole core at 5,000 single-reading messages/s against tansu, whose
/// answers take tens of milliseconds). Four keeps it below that window; what
/// arrives meanwhile is gathered into the next send.
const SENDS_IN_FLIGHT: usize = 4;

/// Messages sent together, and the deliveries of their records.
struct Pending {
    messages: Vec<Waiting>,
    deliveries: Vec<(RecordKind, DeliveryFuture)>,
    /// The send's place among [`SENDS_IN_FLIGHT`], freed once it is answered.
    _slot: OwnedSemaphorePermit,
}

impl Ingest {
    pub async fn build(config: IngestConfig) -> anyhow::Result<Self> {
        // Install the metrics recorder before anything records.
        let _ = hoheit_runtime::ops::metrics_handle();
        let ops_listener =
            ops::bind(config.ops_listen).await.with_context(|| format!("binding {}", config.ops_listen))?;
        let http_listener = tokio::net::TcpListener::bind(config.http_listen)
            .await
            .with_context(|| format!("binding {}", config.http_listen))?;
        Ok(Self { config, ops_listener, http_listener, readiness: Readiness::default() })
    }

    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_listener.local_addr().expect("a bound listener has an address")
    }

    /// The address of the HTTP doors (push, SensorThings create, network servers, airrohr).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_listener.local_addr().expect("a bound listener has an address")
    }

    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Runs until `shutdown` fires, then finishes in-flight messages: those
    /// confirmed by Kafka are acknowledged, the rest are left to the broker.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self { config, ops_listener, http_listener, readiness } = self;
        for condition in ["mqtt", "kafka", "database"] {
            readiness.set(condition, false);
        }
        let ops_task = tokio::spawn(ops::serve(ops_listener, readiness.clone(), shutdown.clone()));
        let pool = match db::connect(config.database.url.expose(), config.database.max_connections, &shutdown).await {
            Ok(pool) => pool,
            Err(db::DbError::Cancelled) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        readiness.set("database", true);
        let broker_task = match config.broker.admin()? {
            Some(admin) => {
                let root = hoheit_broker::rules::TopicRoot::parse(&config.topic_root)?;
                let sync = hoheit_broker::sync::BrokerSync::connect(&admin, root, &config.mqtt_client_id);
                Some(tokio::spawn(crate::broker_sync::run(sync, pool.clone(), shutdown.clone())))
            }
            None => None,
        };
        let (submit, submissions) = mpsc::channel::<Submission>(1024);
        let doors = Doors::new(&config, pool.clone(), readiness.clone(), submit.clone());
        let http_task = tokio::spawn(doors::serve(http_listener, doors, shutdown.clone()));
        let integrations_task = tokio::spawn(integrations::supervise(
            config.mqtt_client_id.clone(),
            pool.clone(),
            submit,
            shutdown.clone(),
        ));
        let Some(mut running) = Running::start(&config, pool, readiness, submissions, &shutdown).await? else {
            return Ok(());
        };
        running.event_loop(&shutdown).await?;
        running.drain().await;
        let _ = http_task.await;
        let _ = integrations_task.await;
        if let Some(task) = broker_task {
            let _ = task.await;
        }
        let _ = ops_task.await;
        // Hand the last messages' spans to the exporter (a no-op without it).
        let _ = tokio::task::spawn_blocking(hoheit_runtime::telemetry::flush).await;
        tracing::info!("ingest stopped");
        Ok(())
    }
}

/// An event of the MQTT event loop, or why the connection broke.
type MqttEvent = Result<Event, rumqttc::ConnectionError>;

/// What the main loop handles next: an MQTT event or another door's delivery.
enum Input {
    Mqtt(MqttEvent),
    Door(Submission),
}

/// Ingest at work: the MQTT connection, the pipeline, the producing side and
/// the acknowledger task.
struct Running {
    readiness: Readiness,
    scheme: TopicScheme,
    /// SensorThings' MQTT create topics start with it.
    sta_prefix: String,
    pipeline: Pipeline,
    outbox: Outbox,
    client: AsyncClient,
    eventloop: EventLoop,
    /// Acks that did not fit into the request channel (see [`acknowledge`]).
    overflow_rx: mpsc::UnboundedReceiver<u16>,
    /// Deliveries of the other doors (HTTP, SensorThings, network servers).
    submissions: mpsc::Receiver<Submission>,
    acker: JoinHandle<()>,
    /// The wait before the next reconnection attempt.
    backoff: Duration,
    /// The replay whose deliveries came last (the registry was read afresh for it).
    replay: Option<u64>,
}

/// The producing side: the gathered messages, the Kafka producer, the
/// channel to the acknowledger and the places of unconfirmed sends.
struct Outbox {
    gather: Gather<Waiting>,
    producer: FutureProducer,
    topics: Topics,
    pending_tx: mpsc::Sender<Pending>,
    slots: Arc<Semaphore>,
}

impl Running {
    /// Connects to the database and Kafka, builds the pipeline, creates the
    /// MQTT client (it connects on the first poll) and starts the
    /// acknowledger; `None` if shutdown came first.
    async fn start(
        config: &IngestConfig,
        pool: PgPool,
        readiness: Readiness,
        submissions: mpsc::Receiver<Submission>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<Self>> {
        // Read once: partitions added to the topic later stay unused until ingest restarts.
        let Some(partitions) = config.kafka.await_topics(shutdown).await else {
            return Ok(None);
        };
        readiness.set("kafka", true);
        let producer: FutureProducer =
            config.kafka.producer_config().create().context("creating the Kafka producer")?;
        let topics = config.kafka.topics();
        let gather = Gather::<Waiting>::new(partitions);

        let scheme = TopicScheme::new(&config.topic_root);
        let pipeline = Pipeline {
            scheme: scheme.clone(),
            limits: Limits { max_payload_bytes: config.max_payload_bytes, max_readings: config.max_readings },
            max_future_micros: config.max_future_secs.saturating_mul(1_000_000),
            cache: RegistryCache::new(pool),
        };

        // The request channel carries acks, and wakes the event loop for them
        // when no message arrives. Under load the event loop serves it far
        // slower than it reads (one request per poll, only when no read is
        // due) and Mosquitto does not hold back meanwhile, so acks that find it
        // full take the overflow channel straight into the write buffer, in
        // order: late acks make Mosquitto search its in-flight list (linear).
        let (client, eventloop) = AsyncClient::new(mqtt_options(config), 64);
        let (pending_tx, pending_rx) = mpsc::channel::<Pending>(4096);
        let (overflow_tx, overflow_rx) = mpsc::unbounded_channel::<u16>();
        let acker = tokio::spawn(acknowledge(client.clone(), overflow_tx, pending_rx, readiness.clone()));

        tracing::info!(subscription = %scheme.subscription(), sta = %sta::create_subscription(&config.sta_mqtt_prefix), broker = %config.mqtt.broker(), "ingest running");
        Ok(Some(Self {
            readiness,
            scheme,
            sta_prefix: config.sta_mqtt_prefix.trim_end_matches('/').to_owned(),
            pipeline,
            outbox: Outbox { gather, producer, topics, pending_tx, slots: Arc::new(Semaphore::new(SENDS_IN_FLIGHT)) },
            client,
            eventloop,
            overflow_rx,
            submissions,
            acker,
            backoff: Duration::from_millis(200),
            replay: None,
        }))
    }

    /// Handles MQTT events until shutdown (or until the pipeline stops).
    async fn event_loop(&mut self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        while let Some(input) = self.next_event(shutdown).await? {
            let event = match input {
                Input::Mqtt(event) => {
                    note_liveness(&mut self.eventloop.state, &event);
                    event
                }
                Input::Door(submission) => {
                    if !self.submission(submission, shutdown).await? {
                        break;
                    }
                    continue;
                }
            };
            let go_on = match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    self.subscribe();
                    true
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    self.readiness.set("mqtt", true);
                    true
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => self.message(publish, shutdown).await?,
                Ok(_) => true,
                Err(error) => self.reconnect_after(error, shutdown).await,
            };
            if !go_on {
                break;
            }
        }
        Ok(())
    }

    /// The next MQTT event; `None` at shutdown. While the next event is
    /// already there, gathering goes on; before waiting for one, what is
    /// gathered is sent as soon as a send's place is free (the poll stays
    /// pending meanwhile, and an event that comes first is gathered too).
    async fn next_event(&mut self, shutdown: &CancellationToken) -> anyhow::Result<Option<Input>> {
        write_overflowing_acks(&mut self.eventloop, &mut self.overflow_rx);
        let poll = self.eventloop.poll();
        tokio::pin!(poll);
        let submissions = &mut self.submissions;
        if !self.outbox.gather.is_empty() {
            let ready = std::future::poll_fn(|cx| {
                if let Poll::Ready(event) = poll.as_mut().poll(cx) {
                    return Poll::Ready(Some(Input::Mqtt(event)));
                }
                match submissions.poll_recv(cx) {
                    Poll::Ready(Some(submission)) => Poll::Ready(Some(Input::Door(submission))),
                    _ => Poll::Ready(None),
                }
            })
            .await;
            if ready.is_some() {
                return Ok(ready);
            }
            let slots = self.outbox.slots.clone();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(None),
                event = &mut poll => return Ok(Some(Input::Mqtt(event))),
                Some(submission) = submissions.recv() => return Ok(Some(Input::Door(submission))),
                slot = slots.acquire_owned() => {
                    let slot = slot.context("the send places are never closed")?;
                    if !self.outbox.send_in(slot, shutdown).await? {
                        return Ok(None);
                    }
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => Ok(None),
            event = &mut poll => Ok(Some(Input::Mqtt(event))),
            Some(submission) = self.submissions.recv() => Ok(Some(Input::Door(submission))),
        }
    }

    /// On (re)connection: subscribes, ahead of the acks in the request
    /// channel (whose room the event loop frees).
    fn subscribe(&mut self) {
        self.backoff = Duration::from_millis(200);
        let subscribe = rumqttc::Subscribe::new_many([
            rumqttc::SubscribeFilter::new(self.scheme.subscription(), QoS::AtLeastOnce),
            rumqttc::SubscribeFilter::new(sta::create_subscription(&self.sta_prefix), QoS::AtLeastOnce),
        ]);
        self.eventloop.pending.push_front(rumqttc::Request::Subscribe(subscribe));
    }

    /// Runs one message through the pipeline and gathers its records, sending
    /// them when the gather is full. `Ok(false)` when shutdown interrupts.
    async fn message(&mut self, publish: Publish, shutdown: &CancellationToken) -> anyhow::Result<bool> {
        let received = Instant::now();
        let inbound = self.inbound(&publish);
        let span = message_span(inbound.door.as_str(), &publish.topic, publish.payload.len());
        let handled = self.pipeline.handle(&inbound, &self.readiness, shutdown).instrument(span.clone()).await;
        let Ok(outcome) = handled else {
            return Ok(false);
        };
        // From here on only the packet id matters (for the ack): the payload need not wait for Kafka.
        let publish = Publish { payload: Default::default(), ..publish };
        self.gather(outcome, Waiting { answer: Answer::Mqtt(publish), span, received }, shutdown).await
    }

    /// What an MQTT message is: a SensorThings create (an Observation on
    /// `{sta prefix}/Datastreams({id})/Observations`) or Hoheit's own topics.
    fn inbound(&self, publish: &Publish) -> Inbound {
        let payload = publish.payload.clone();
        let Some(rest) = publish.topic.strip_prefix(&self.sta_prefix).filter(|rest| rest.starts_with('/')) else {
            return Inbound {
                door: Door::Mqtt,
                target: Target::Topic(publish.topic.clone()),
                body: Body::Sniff,
                payload,
                writer: None,
            };
        };
        let Some(datastream) = sta::create_topic("", rest) else {
            return Inbound {
                door: Door::Sta,
                target: Target::Topic(publish.topic.clone()),
                body: Body::Sniff,
                payload,
                writer: None,
            };
        };
        let decoded = if payload.len() > self.pipeline.limits.max_payload_bytes {
            let reason = format!(
                "payload has {} bytes; the limit is {} bytes",
                payload.len(),
                self.pipeline.limits.max_payload_bytes
            );
            Decoded { readings: Vec::new(), rejections: vec![Rejection::message(RejectCode::PayloadTooLarge, reason)] }
        } else {
            match sta::observation(&payload, Some(datastream), Micros::now()) {
                Ok(observation) => observation.decoded,
                Err(reason) => Decoded {
                    readings: Vec::new(),
                    rejections: vec![Rejection::message(RejectCode::MalformedPayload, reason)],
                },
            }
        };
        Inbound {
            door: Door::Sta,
            target: Target::Datastream(datastream),
            body: Body::Decoded(decoded),
            payload,
            writer: None,
        }
    }

    /// Runs one delivery of another door through the pipeline, like an MQTT
    /// message; its receipt goes back once Kafka confirmed its records.
    async fn submission(&mut self, submission: Submission, shutdown: &CancellationToken) -> anyhow::Result<bool> {
        let received = Instant::now();
        let Submission { inbound, reply, replay } = submission;
        let label = match &inbound.target {
            Target::Topic(topic) => topic.clone(),
            other => format!("{other:?}"),
        };
        let span = message_span(inbound.door.as_str(), &label, inbound.payload.len());
        if replay.is_some_and(|number| self.replay != Some(number)) {
            if self.pipeline.cache.refresh(&self.readiness, shutdown).await.is_err() {
                return Ok(false);
            }
            self.replay = replay;
        }
        let handled = self.pipeline.handle(&inbound, &self.readiness, shutdown).instrument(span.clone()).await;
        let Ok(mut outcome) = handled else {
            return Ok(false);
        };
        if replay.is_some() {
            outcome.dead_letter = None;
        }
        let receipt = Receipt::new(outcome.accepted, &outcome.rejections);
        self.gather(outcome, Waiting { answer: Answer::Reply(reply, receipt), span, received }, shutdown).await
    }

    /// Gathers a delivery's outcome, sending what is gathered when full.
    async fn gather(
        &mut self,
        outcome: Outcome,
        waiting: Waiting,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<bool> {
        record_metrics(&outcome);
        waiting.span.record("hoheit.readings.accepted", outcome.accepted as i64);
        waiting.span.record("hoheit.readings.rejected", outcome.rejections.len() as i64);
        let trace = TraceFields::of(&waiting.span.context());
        self.outbox.gather.add(outcome, &trace, waiting);
        if self.outbox.gather.is_full() {
            return self.outbox.send(shutdown).await;
        }
        Ok(true)
    }

    /// After a connection error: waits (with growing back-off) before the
    /// event loop reconnects; `false` when shutdown comes first.
    async fn reconnect_after(&mut self, error: rumqttc::ConnectionError, shutdown: &CancellationToken) -> bool {
        self.readiness.set("mqtt", false);
        tracing::warn!(%error, retry_in = ?self.backoff, "MQTT connection lost; reconnecting");
        tokio::select! {
            _ = tokio::time::sleep(self.backoff) => {}
            _ = shutdown.cancelled() => return false,
        }
        self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
        true
    }

    /// Shutdown: lets the acknowledger finish what Kafka confirms, while the
    /// event loop keeps running to carry the acks out, then disconnects.
    /// Messages gathered but not sent, and those that arrive now, are not
    /// acknowledged; the broker keeps them for the next start.
    async fn drain(self) {
        let Self { outbox, client, mut eventloop, mut overflow_rx, mut acker, .. } = self;
        drop(outbox.pending_tx);
        let deadline = tokio::time::sleep(Duration::from_secs(30));
        tokio::pin!(deadline);
        loop {
            write_overflowing_acks(&mut eventloop, &mut overflow_rx);
            tokio::select! {
                _ = &mut acker => break,
                _ = &mut deadline => {
                    tracing::warn!("Kafka did not confirm every in-flight message in time; the broker will redeliver them");
                    break;
                }
                event = eventloop.poll() => if event.is_err() { tokio::time::sleep(Duration::from_millis(100)).await },
            }
        }
        disconnect(&client, &mut eventloop).await;
    }
}

impl Outbox {
    /// Waits for a send's place, then sends (see [`Self::send_in`]).
    async fn send(&mut self, shutdown: &CancellationToken) -> anyhow::Result<bool> {
        let slot = tokio::select! {
            slot = self.slots.clone().acquire_owned() => slot.context("the send places are never closed")?,
            _ = shutdown.cancelled() => return Ok(false),
        };
        self.send_in(slot, shutdown).await
    }

    /// Hands the gathered records to the producer and their messages to the
    /// acknowledger, which frees `slot` once Kafka answered. `Ok(false)` when
    /// shutdown interrupts (the messages stay unacknowledged, the broker
    /// redelivers them).
    async fn send_in(&mut self, slot: OwnedSemaphorePermit, shutdown: &CancellationToken) -> anyhow::Result<bool> {
        let Gathered { records, messages } = self.gather.take();
        let Some(deliveries) = produce(&self.producer, &self.topics, records, shutdown).await else {
            return Ok(false);
        };
        tokio::select! {
            sent = self.pending_tx.send(Pending { messages, deliveries, _slot: slot }) => {
                if sent.is_err() {
                    anyhow::bail!("the acknowledger stopped");
                }
                Ok(true)
            }
            _ = shutdown.cancelled() => Ok(false),
        }
    }
}

/// Disconnects from the broker, polling (at most 2 s) until the DISCONNECT is out.
async fn disconnect(client: &AsyncClient, eventloop: &mut EventLoop) {
    let _ = client.disconnect().await;
    let flush_deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < flush_deadline {
        match tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await {
            Ok(Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))) | Ok(Err(_)) => break,
            _ => {}
        }
    }
}

/// Takes any packet from the broker as the answer to a pending PINGREQ.
/// rumqttc gives a connection up when a keep-alive passes without the
/// PINGRESP; under overload that answer can take longer than any keep-alive:
/// the broker, at a full core, reads ingest's socket no faster than each
/// publisher's, so the PINGREQ waits there behind up to hundreds of
/// thousands of PUBACKs. Each such reconnection made the broker send its
/// whole in-flight window again (3.67 million duplicates in seven minutes).
/// A broker that keeps sending is alive; one that falls silent still fails
/// the next keep-alive.
pub fn note_liveness(state: &mut rumqttc::MqttState, event: &Result<Event, rumqttc::ConnectionError>) {
    if let Ok(Event::Incoming(_)) = event {
        state.await_pingresp = false;
    }
}

/// The MQTT options of ingest: a persistent session with manual acks.
fn mqtt_options(config: &IngestConfig) -> MqttOptions {
    let mut options = MqttOptions::new(&config.mqtt_client_id, &config.mqtt.mqtt_host, config.mqtt.mqtt_port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(false);
    options.set_manual_acks(true);
    // Accept far larger packets than the payload limit, so an oversized
    // message becomes a dead letter instead of a dropped connection.
    options.set_max_packet_size(64 * 1024 * 1024, 1024 * 1024);
    if let Some((user, password)) = config.mqtt.credentials() {
        options.set_credentials(user, password);
    }
    options
}

/// The span of one delivery (OpenTelemetry messaging conventions).
fn message_span(door: &'static str, destination: &str, size: usize) -> Span {
    tracing::debug_span!(
        "ingest message",
        otel.kind = "consumer",
        otel.status_code = Empty,
        messaging.system = "mqtt",
        hoheit.door = door,
        messaging.operation.type = "process",
        messaging.destination.name = %destination,
        messaging.message.body.size = size as i64,
        hoheit.readings.accepted = Empty,
        hoheit.readings.rejected = Empty,
    )
}

fn record_metrics(outcome: &Outcome) {
    metrics::counter!("hoheit_ingest_messages_total").increment(1);
    metrics::counter!("hoheit_ingest_readings_accepted_total").increment(outcome.accepted as u64);
    for rejection in &outcome.rejections {
        metrics::counter!("hoheit_ingest_readings_rejected_total", "reason" => rejection.code.as_str()).increment(1);
    }
    // Per door and organisation: who delivers how much through which door.
    let (door, org) = (outcome.door.as_str(), outcome.org.clone());
    metrics::counter!("hoheit_ingest_door_readings_total", "door" => door, "org" => org.clone(), "result" => "accepted")
        .increment(outcome.accepted as u64);
    if !outcome.rejections.is_empty() {
        metrics::counter!("hoheit_ingest_door_readings_total", "door" => door, "org" => org, "result" => "rejected")
            .increment(outcome.rejections.len() as u64);
    }
    if outcome.dead_letter.is_some() {
        metrics::counter!("hoheit_ingest_dead_letters_total").increment(1);
    }
}

/// Hands every record to the producer, waiting while its queue is full
/// (back-pressure up to the MQTT in-flight window). `None` when shutdown
/// interrupts the wait, or the producer refuses a record for good.
async fn produce(
    producer: &FutureProducer,
    topics: &Topics,
    records: Vec<Record>,
    shutdown: &CancellationToken,
) -> Option<Vec<(RecordKind, DeliveryFuture)>> {
    let mut deliveries = Vec::with_capacity(records.len());
    for Record { kind, partition, key, value } in &records {
        let topic = match kind {
            RecordKind::Observation => topics.observations.as_str(),
            RecordKind::DeadLetter => topics.dead_letters.as_str(),
        };
        loop {
            let mut record = FutureRecord::<str, _>::to(topic).payload(value);
            if let Some(partition) = partition {
                record = record.partition(*partition);
            }
            if let Some(key) = key {
                record = record.key(key);
            }
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push((*kind, delivery));
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                        _ = shutdown.cancelled() => return None,
                    }
                }
                Err((error, _)) => {
                    // Not retryable (e.g. a record over the size limit): leave the
                    // message unacknowledged and say so loudly.
                    metrics::counter!("hoheit_ingest_kafka_errors_total", "topic" => kind.as_str()).increment(1);
                    tracing::error!(%error, %topic, "Kafka refused a record");
                    return None;
                }
            }
        }
    }
    Some(deliveries)
}

/// Puts the acks that did not fit into the request channel straight into the
/// connection's write buffer; the event loop's next read or request sends
/// them. (Never called while a poll is in progress: the loop owns the state.)
fn write_overflowing_acks(eventloop: &mut rumqttc::EventLoop, overflow: &mut mpsc::UnboundedReceiver<u16>) {
    while let Ok(pkid) = overflow.try_recv() {
        if let Err(error) = eventloop.state.handle_outgoing_packet(rumqttc::Request::PubAck(rumqttc::PubAck::new(pkid)))
        {
            tracing::warn!(%error, "could not write an MQTT acknowledgement; the broker will redeliver");
        }
    }
}

/// Acknowledges MQTT messages, in arrival order, once Kafka has confirmed
/// all the records they were sent in. It never waits for room in the MQTT request channel:
/// the event loop that drains it runs in the main loop, which may itself be
/// waiting for this task (`pending` full) — acks that do not fit go to
/// `overflow`, which the main loop writes out (a deadlock under load before).
async fn acknowledge(
    client: AsyncClient,
    overflow: mpsc::UnboundedSender<u16>,
    mut pending: mpsc::Receiver<Pending>,
    readiness: Readiness,
) {
    while let Some(Pending { messages, deliveries, _slot }) = pending.recv().await {
        let mut confirmed = true;
        for (kind, mut delivery) in deliveries {
            let result = match tokio::time::timeout(Duration::from_secs(5), &mut delivery).await {
                Ok(result) => result,
                Err(_) => {
                    readiness.set("kafka", false);
                    tracing::warn!("Kafka has not confirmed a record for 5 s; waiting");
                    delivery.await
                }
            };
            match result {
                Ok(Ok(_)) => {
                    metrics::counter!("hoheit_ingest_kafka_records_total", "topic" => kind.as_str()).increment(1);
                }
                Ok(Err((error, _))) => {
                    metrics::counter!("hoheit_ingest_kafka_errors_total", "topic" => kind.as_str()).increment(1);
                    tracing::error!(%error, messages = messages.len(), "Kafka rejected a record; its MQTT messages stay unacknowledged");
                    confirmed = false;
                }
                Err(_) => confirmed = false,
            }
        }
        if confirmed {
            readiness.set("kafka", true);
        }
        for Waiting { answer, span, received } in messages {
            if !confirmed {
                span.record("otel.status_code", "ERROR");
                if let Answer::Reply(reply, _) = answer {
                    let _ = reply.send(Err(NotConfirmed));
                }
                continue;
            }
            match answer {
                Answer::Mqtt(publish) => {
                    if publish.qos == QoS::AtLeastOnce && client.try_ack(&publish).is_err() {
                        let _ = overflow.send(publish.pkid);
                    }
                }
                Answer::Reply(reply, receipt) => {
                    let _ = reply.send(Ok(receipt));
                }
            }
            metrics::counter!("hoheit_ingest_messages_acknowledged_total").increment(1);
            metrics::histogram!("hoheit_ingest_message_seconds").record(received.elapsed().as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::{MqttState, Request};

    fn pinged() -> MqttState {
        let mut state = MqttState::new(100, true, 1024 * 1024);
        state.handle_outgoing_packet(Request::PingReq(rumqttc::PingReq)).expect("the first ping goes out");
        state
    }

    #[test]
    fn a_broker_that_keeps_sending_counts_as_alive_without_its_pingresp() {
        let mut state = pinged();
        let publish = Publish::new("hoheit/v1/a/b/c", QoS::AtLeastOnce, "{}");
        note_liveness(&mut state, &Ok(Event::Incoming(Packet::Publish(publish))));
        assert!(state.handle_outgoing_packet(Request::PingReq(rumqttc::PingReq)).is_ok());
    }

    #[test]
    fn a_silent_broker_still_fails_the_next_keep_alive() {
        let mut state = pinged();
        // Our own outgoing packets prove nothing about the broker.
        note_liveness(&mut state, &Ok(Event::Outgoing(rumqttc::Outgoing::PubAck(7))));
        let next = state.handle_outgoing_packet(Request::PingReq(rumqttc::PingReq));
        assert!(matches!(next, Err(rumqttc::StateError::AwaitPingResp)), "{next:?}");
    }
}
