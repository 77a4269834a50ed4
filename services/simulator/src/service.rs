//! The simulator service: configuration, registration, the backfill and the
//! live loop, and the MQTT client that carries both (the HTTP doors' clients
//! are `http` and `devices`).
//!
//! Publishing never waits for an acknowledgement: `AsyncClient::publish` only
//! queues the message, and the event loop (polled in its own task) sends it and
//! counts the broker's PUBACKs. Back-pressure comes from rumqttc's in-flight
//! window and the bounded request queue. At shutdown the simulator stops
//! publishing, waits (bounded) until every queued message is acknowledged,
//! and disconnects.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Parser;
use hoheit_domain::topic::{self, TopicScheme};
use hoheit_runtime::config::{ConfigFileArg, Secret};
use hoheit_runtime::mqtt::MqttArgs;
use hoheit_runtime::telemetry::LogArgs;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::devices::DeviceDoor;
use crate::error::SimulatorError;
use crate::http::HttpDoor;
use crate::payloads::{self, Message, Tick};
use crate::register::{AdminClient, Registered};
use hoheit_town::{Kind, Thing, Town};

/// Most messages rumqttc sends before it waits for acknowledgements.
const MQTT_INFLIGHT: u16 = 500;
/// Messages queued between the publisher and the event loop.
const MQTT_QUEUE: usize = 4096;
/// How long shutdown waits for outstanding acknowledgements.
const ACK_WAIT: Duration = Duration::from_secs(10);
/// How far the live loop may fall behind its rate before it skips readings
/// instead of bursting them out all at once (e.g. after a broker outage).
const MAX_BACKLOG: Duration = Duration::from_secs(1);
/// Interval of the progress log line.
const PROGRESS_EVERY: Duration = Duration::from_secs(60);

/// Configuration of the simulator.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "hoheit-simulator",
    version,
    about = "Hoheit simulator: registers Eberswalde's demo sensors and publishes their readings through one of Hoheit's doors"
)]
pub struct SimulatorConfig {
    #[command(flatten)]
    pub config_file: ConfigFileArg,
    /// Base URL of the Hoheit API, where the town is registered.
    #[arg(long, env = "HOHEIT_SIMULATOR_API_URL", default_value = "http://127.0.0.1:8080")]
    pub api_url: String,
    /// Bearer token of the API.
    #[arg(long, env = "HOHEIT_API_TOKEN", hide_env_values = true)]
    pub api_token: Secret,
    /// Seconds to wait for the API's /readyz before giving up.
    #[arg(long, env = "HOHEIT_SIMULATOR_API_WAIT_SECS", default_value_t = 60)]
    pub api_wait_secs: u64,
    /// Optional readiness URL of ingest (e.g. http://127.0.0.1:9101/readyz): publishing
    /// waits for it (as long as for the API), so that the backfill is not published
    /// before ingest has ever subscribed, which the broker would drop.
    #[arg(long, env = "HOHEIT_SIMULATOR_INGEST_READY_URL")]
    pub ingest_ready_url: Option<String>,
    #[command(flatten)]
    pub mqtt: MqttArgs,
    /// Root of the topic scheme.
    #[arg(long, env = "HOHEIT_MQTT_TOPIC_ROOT", default_value = topic::DEFAULT_ROOT)]
    pub topic_root: String,
    /// Live readings per second, in total, spread over all datastreams.
    #[arg(long, env = "HOHEIT_SIMULATOR_RATE", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate: u32,
    /// Copies of every thing (1 = 11 things, 26 datastreams); more is load for benchmarks.
    #[arg(long, env = "HOHEIT_SIMULATOR_SCALE", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(Town::MAX_SCALE)))]
    pub scale: u32,
    /// Seed of the values; the same seed publishes the same history.
    #[arg(long, env = "HOHEIT_SIMULATOR_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Hours of history published at start, before the live readings (0: none).
    #[arg(long, env = "HOHEIT_SIMULATOR_BACKFILL_HOURS", default_value_t = 24, value_parser = clap::value_parser!(u32).range(0..=24 * 366))]
    pub backfill_hours: u32,
    /// The door the readings go through: Hoheit's MQTT topics; the HTTP push
    /// door or SensorThings create of the API (`--api-url`, with a publisher
    /// key per organisation that the simulator issues for itself); or as the
    /// devices themselves: a LoRaWAN network server's webhook (`chirpstack`,
    /// `tts`, with a connector per organisation) or the airrohr firmware
    /// (`airrohr`, with a device token per air station). The device doors carry
    /// only the things of their kind of device; the others are left out.
    #[arg(long, env = "HOHEIT_SIMULATOR_DOOR", value_enum, default_value_t = Door::Mqtt)]
    pub door: Door,
    /// Seconds of live publishing after the backfill (0: until SIGTERM).
    #[arg(long, env = "HOHEIT_SIMULATOR_DURATION_SECS", default_value_t = 0)]
    pub duration_secs: u64,
    #[command(flatten)]
    pub log: LogArgs,
}

/// A door the simulator can publish through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Door {
    Mqtt,
    Http,
    /// SensorThings create: `POST /sta/v1.1/CreateObservations`.
    Sta,
    /// ChirpStack v4's HTTP integration: an `UplinkEvent` per tick of a LoRaWAN thing.
    Chirpstack,
    /// The Things Stack v3's webhook: an `ApplicationUp` per tick of a LoRaWAN thing.
    Tts,
    /// The sensor.community firmware's "send to own API": a post per tick of an
    /// air station, live only (the firmware sends no time).
    Airrohr,
}

/// What a run published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Datastreams registered (or found registered).
    pub datastreams: usize,
    /// Datastreams the door cannot carry, left out (a device door carries
    /// only its kind of device and the properties that device reports).
    pub off_door_datastreams: usize,
    pub backfill_readings: u64,
    pub backfill_messages: u64,
    pub live_readings: u64,
    pub live_messages: u64,
    /// Live readings left out because publishing fell more than a second behind the rate.
    pub skipped_readings: u64,
    /// Messages the broker acknowledged (QoS 1 PUBACK).
    pub acked_messages: u64,
    /// Messages still unacknowledged when the simulator gave up waiting.
    pub unacked_messages: u64,
}

impl RunSummary {
    pub fn readings(&self) -> u64 {
        self.backfill_readings + self.live_readings
    }

    pub fn messages(&self) -> u64 {
        self.backfill_messages + self.live_messages
    }
}

/// The times at which `kind` is backfilled for `hours` before `now`: every
/// point of its step grid (multiples of the step since the epoch) in
/// `(now - hours, now]`, oldest first. On the grid, a restart republishes
/// the same times, which ingest de-duplicates.
pub fn backfill_times(kind: Kind, now: DateTime<Utc>, hours: u32) -> Vec<DateTime<Utc>> {
    let step = kind.step_secs();
    let last = now.timestamp().div_euclid(step) * step;
    let count = i64::from(hours) * 3600 / step;
    (0..count).rev().filter_map(|back| DateTime::from_timestamp(last - back * step, 0)).collect()
}

/// A configured simulator (the town is built, nothing is connected yet).
pub struct Simulator {
    config: SimulatorConfig,
    town: Town,
    scheme: TopicScheme,
    admin: AdminClient,
}

impl Simulator {
    pub fn new(config: SimulatorConfig) -> Result<Self, SimulatorError> {
        let town =
            Town::eberswalde(config.scale).map_err(|e| SimulatorError::Config(format!("the town's slugs: {e}")))?;
        let scheme = TopicScheme::new(&config.topic_root);
        // MQTT refuses to publish to wildcards; say so now rather than at the first message.
        if scheme.root().is_empty() || scheme.root().contains(['+', '#', '\0']) {
            return Err(SimulatorError::Config(format!(
                "topic root {:?} must be non-empty and free of '+', '#' and NUL",
                config.topic_root
            )));
        }
        if config.rate == 0 {
            return Err(SimulatorError::Config("the rate must be at least 1 reading per second".into()));
        }
        let admin = AdminClient::new(&config.api_url, config.api_token.clone())?;
        Ok(Self { config, town, scheme, admin })
    }

    pub fn config(&self) -> &SimulatorConfig {
        &self.config
    }

    pub fn town(&self) -> &Town {
        &self.town
    }

    /// Waits for the API's /readyz, then registers every organisation, its
    /// device types and (one import per organisation) its things (existing
    /// ones are fine).
    pub async fn register(&self) -> Result<Registered, SimulatorError> {
        self.admin.wait_ready(Duration::from_secs(self.config.api_wait_secs)).await?;
        let registered = self.admin.register(&self.town).await?;
        tracing::info!(
            organisations = registered.organisations,
            device_types = registered.device_types,
            things = registered.things,
            datastreams = registered.datastreams.len(),
            created = registered.created,
            changed = registered.changed,
            existing = registered.existing,
            "town registered"
        );
        Ok(registered)
    }

    /// The backfill messages of `thing` for the hours before `now`.
    pub fn backfill_messages(&self, thing: &Thing, now: DateTime<Utc>) -> Result<Vec<Message>, SimulatorError> {
        let ticks: Vec<Tick> = backfill_times(thing.kind(), now, self.config.backfill_hours)
            .into_iter()
            .map(|time| Tick::observe(thing, self.config.seed, time))
            .collect();
        Ok(payloads::encode(&self.scheme, thing, &ticks)?)
    }

    /// Registers, publishes the backfill, then live readings until `shutdown`
    /// fires or the duration is over; then waits (bounded) for the broker's
    /// acknowledgements and disconnects.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<RunSummary> {
        let mut summary = RunSummary::default();
        let registered = tokio::select! {
            registered = self.register() => registered?,
            _ = shutdown.cancelled() => return Ok(summary),
        };
        summary.datastreams = registered.datastreams.len();
        summary.off_door_datastreams =
            self.town.things.iter().map(|t| t.properties().len() - self.config.door.readings_of(t)).sum();
        if summary.off_door_datastreams > 0 {
            tracing::info!(
                door = ?self.config.door,
                left_out = summary.off_door_datastreams,
                "datastreams this door cannot carry are left out"
            );
        }
        if let Some(url) = self.config.ingest_ready_url.as_deref().filter(|u| !u.is_empty()) {
            let wait = self.admin.wait_for(url, "ingest", Duration::from_secs(self.config.api_wait_secs));
            tokio::select! {
                ready = wait => if let Err(error) = ready {
                    // Live readings are worth publishing anyway; only the backfill may be lost.
                    tracing::warn!(%error, "publishing without ingest's readiness");
                },
                _ = shutdown.cancelled() => return Ok(summary),
            }
        }

        let mut mqtt = match self.config.door {
            Door::Mqtt => Sink::Mqtt(Mqtt::connect(&self.config)),
            Door::Http | Door::Sta => {
                let mut orgs: Vec<String> = self.town.things.iter().map(|t| t.org.to_string()).collect();
                orgs.sort();
                orgs.dedup();
                let token = self.config.api_token.expose();
                let mut door = HttpDoor::connect(&self.config.api_url, token, self.scheme.root(), &orgs).await?;
                if self.config.door == Door::Sta {
                    door.use_sensorthings(token).await?;
                }
                Sink::Http(door)
            }
            Door::Chirpstack | Door::Tts | Door::Airrohr => Sink::Device(
                DeviceDoor::connect(self.config.door, &self.admin, &self.config.api_url, &self.scheme, &self.town)
                    .await?,
            ),
        };
        let published = async {
            self.backfill(&mut mqtt, &shutdown, &mut summary).await?;
            self.live(&mut mqtt, &shutdown, &mut summary).await
        }
        .await;
        let (acked, unacked) = mqtt.finish().await;
        summary.acked_messages = acked;
        summary.unacked_messages = unacked;
        published?;
        tracing::info!(?summary, "simulator finished");
        Ok(summary)
    }

    async fn backfill(
        &self,
        mqtt: &mut Sink,
        shutdown: &CancellationToken,
        summary: &mut RunSummary,
    ) -> anyhow::Result<()> {
        if self.config.backfill_hours == 0 {
            return Ok(());
        }
        if !self.config.door.carries_time() {
            tracing::info!(door = ?self.config.door, "no backfill: the door's payloads carry no time");
            return Ok(());
        }
        let started = Instant::now();
        let now = Utc::now();
        for thing in &self.town.things {
            let ticks: Vec<Tick> = backfill_times(thing.kind(), now, self.config.backfill_hours)
                .into_iter()
                .map(|time| Tick::observe(thing, self.config.seed, time))
                .collect();
            for message in mqtt.encode(&self.scheme, thing, &ticks)? {
                let readings = message.readings as u64;
                if !mqtt.publish(message, shutdown).await? {
                    return Ok(());
                }
                summary.backfill_readings += readings;
                summary.backfill_messages += 1;
            }
        }
        tracing::info!(
            hours = self.config.backfill_hours,
            readings = summary.backfill_readings,
            messages = summary.backfill_messages,
            elapsed = ?started.elapsed(),
            "backfill queued"
        );
        Ok(())
    }

    /// Publishes the things in turn, one tick each, as fast as `rate` readings
    /// per second allow; every thing's ticks have strictly increasing times,
    /// so no reading is a duplicate of another.
    async fn live(
        &self,
        mqtt: &mut Sink,
        shutdown: &CancellationToken,
        summary: &mut RunSummary,
    ) -> anyhow::Result<()> {
        let things = &self.town.things;
        if things.is_empty() {
            return Ok(());
        }
        let rate = f64::from(self.config.rate);
        let per_thing = self.town.datastream_count() as f64 / things.len() as f64;
        // Wake about once per thing due, but at least every 100 ms and at most every millisecond.
        let period = Duration::from_secs_f64((per_thing / rate).clamp(0.001, 0.1));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let started = Instant::now();
        let deadline =
            (self.config.duration_secs > 0).then(|| started + Duration::from_secs(self.config.duration_secs));
        let max_backlog = (rate * MAX_BACKLOG.as_secs_f64()).ceil() as u64;
        let mut last_time = vec![i64::MIN; things.len()];
        let mut cursor = 0;
        // Readings the rate has allowed so far, including skipped ones.
        let mut accounted: u64 = 0;
        let mut next_progress = started + PROGRESS_EVERY;
        let mut skip_warned: Option<Instant> = None;
        tracing::info!(
            rate = self.config.rate,
            things = things.len(),
            datastreams = self.town.datastream_count(),
            "publishing live readings"
        );

        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = sleep_until(deadline) => break,
                _ = ticker.tick() => {}
            }
            let due = (started.elapsed().as_secs_f64() * rate) as u64;
            if due > accounted + max_backlog {
                let skip = due - max_backlog - accounted;
                summary.skipped_readings += skip;
                accounted += skip;
                // Once per 10 s at most: when the broker is slow this happens on every tick.
                if skip_warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                    skip_warned = Some(Instant::now());
                    tracing::warn!(
                        skipped_so_far = summary.skipped_readings,
                        "publishing fell behind the rate (is the broker slow?); skipping readings"
                    );
                }
            }
            while accounted < due {
                if shutdown.is_cancelled() || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let thing = &things[cursor];
                // Strictly increasing per thing, even when the clock is coarse or steps back.
                let micros = Utc::now().timestamp_micros().max(last_time[cursor].saturating_add(1));
                last_time[cursor] = micros;
                let Some(time) = DateTime::from_timestamp_micros(micros) else {
                    anyhow::bail!("the clock is out of range");
                };
                let tick = Tick::observe(thing, self.config.seed, time);
                for message in mqtt.encode(&self.scheme, thing, std::slice::from_ref(&tick))? {
                    let readings = message.readings as u64;
                    if !mqtt.publish(message, shutdown).await? {
                        return Ok(());
                    }
                    summary.live_readings += readings;
                    summary.live_messages += 1;
                }
                accounted += thing.properties().len() as u64;
                cursor = (cursor + 1) % things.len();
            }
            if Instant::now() >= next_progress {
                next_progress += PROGRESS_EVERY;
                tracing::info!(
                    live_readings = summary.live_readings,
                    readings_per_sec = (summary.live_readings as f64 / started.elapsed().as_secs_f64()).round(),
                    acked = mqtt.acked(),
                    queued = mqtt.enqueued(),
                    "progress"
                );
            }
        }
        Ok(())
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Where the messages go: the MQTT broker, the HTTP push door (or
/// SensorThings create), or a device door.
enum Sink {
    Mqtt(Mqtt),
    Http(HttpDoor),
    Device(DeviceDoor),
}

impl Sink {
    /// `ticks` of `thing` as the door's messages.
    fn encode(&self, scheme: &TopicScheme, thing: &Thing, ticks: &[Tick]) -> anyhow::Result<Vec<Message>> {
        match self {
            Sink::Http(http) if http.sta_ids.is_some() => {
                let properties: Vec<&str> = thing.properties().iter().map(|p| p.slug).collect();
                let ids = http.ids_of(thing.org.as_str(), thing.slug.as_str(), &properties)?;
                let per_message = (payloads::MAX_READINGS_PER_MESSAGE / properties.len().max(1)).max(1);
                ticks.chunks(per_message).map(|chunk| Ok(payloads::sta_create(scheme, thing, chunk, &ids)?)).collect()
            }
            Sink::Device(door) => door.encode(scheme, thing, ticks),
            _ => Ok(payloads::encode(scheme, thing, ticks)?),
        }
    }

    /// Publishes (MQTT: queues) `message`; `false` when shutdown interrupted.
    async fn publish(&mut self, message: Message, shutdown: &CancellationToken) -> anyhow::Result<bool> {
        match self {
            Sink::Mqtt(mqtt) => mqtt.publish(message, shutdown).await,
            Sink::Http(http) => tokio::select! {
                biased;
                _ = shutdown.cancelled() => Ok(false),
                pushed = http.push(&message) => pushed.map(|()| true),
            },
            Sink::Device(door) => tokio::select! {
                biased;
                _ = shutdown.cancelled() => Ok(false),
                pushed = door.push(&message) => pushed.map(|()| true),
            },
        }
    }

    fn acked(&self) -> u64 {
        match self {
            Sink::Mqtt(mqtt) => mqtt.acked(),
            Sink::Http(http) => http.acked,
            Sink::Device(door) => door.acked,
        }
    }

    fn enqueued(&self) -> u64 {
        match self {
            Sink::Mqtt(mqtt) => mqtt.enqueued,
            Sink::Http(http) => http.sent,
            Sink::Device(door) => door.sent,
        }
    }

    /// (acknowledged, unacknowledged) at the end.
    async fn finish(self) -> (u64, u64) {
        match self {
            Sink::Mqtt(mqtt) => mqtt.finish().await,
            Sink::Http(http) => (http.acked, http.sent - http.acked),
            Sink::Device(door) => (door.acked, door.sent - door.acked),
        }
    }
}

/// The MQTT client and its event loop task.
struct Mqtt {
    client: AsyncClient,
    /// Messages handed to the client.
    enqueued: u64,
    /// PUBACKs received, counted by the event loop task.
    acked: Arc<AtomicU64>,
    /// Whether the event loop has a connection to the broker.
    connected: Arc<AtomicBool>,
    driver: JoinHandle<()>,
    stop: CancellationToken,
}

impl Mqtt {
    fn connect(config: &SimulatorConfig) -> Self {
        // A fresh id per run: with a clean session nothing is left behind, and
        // two simulators never kick each other off the broker.
        let client_id = format!("hoheit-simulator-{:08x}", rand::random::<u32>());
        let mut options = MqttOptions::new(&client_id, &config.mqtt.mqtt_host, config.mqtt.mqtt_port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_clean_session(true);
        options.set_inflight(MQTT_INFLIGHT);
        // rumqttc's default limit (10 KiB) is below the backfill batches; an
        // oversized packet would drop the connection.
        options.set_max_packet_size(1024 * 1024, 1024 * 1024);
        if let Some((user, password)) = config.mqtt.credentials() {
            options.set_credentials(user, password);
        }
        let (client, eventloop) = AsyncClient::new(options, MQTT_QUEUE);
        let acked = Arc::new(AtomicU64::new(0));
        let connected = Arc::new(AtomicBool::new(false));
        let stop = CancellationToken::new();
        let broker = config.mqtt.broker();
        tracing::info!(%client_id, %broker, "connecting to the MQTT broker");
        let driver = tokio::spawn(drive(eventloop, acked.clone(), connected.clone(), stop.clone(), broker));
        Self { client, enqueued: 0, acked, connected, driver, stop }
    }

    fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Queues `message` (QoS 1); `false` when shutdown interrupted the wait for queue space.
    async fn publish(&mut self, message: Message, shutdown: &CancellationToken) -> anyhow::Result<bool> {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => Ok(false),
            sent = self.client.publish(message.topic, QoS::AtLeastOnce, false, message.payload) => {
                sent.context("the MQTT client stopped")?;
                self.enqueued += 1;
                Ok(true)
            }
        }
    }

    /// Waits (bounded) for the acknowledgements of everything queued, then
    /// disconnects. Returns (acknowledged, still unacknowledged).
    async fn finish(self) -> (u64, u64) {
        let Self { client, enqueued, acked, connected, mut driver, stop } = self;
        let outstanding = || enqueued.saturating_sub(acked.load(Ordering::Relaxed));
        let is_connected = || connected.load(Ordering::Relaxed) && !driver.is_finished();
        let deadline = Instant::now() + ACK_WAIT;
        // Without a connection nothing more will be acknowledged: don't wait for it.
        while outstanding() > 0 && Instant::now() < deadline && is_connected() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let unacked = outstanding();
        if unacked > 0 {
            tracing::warn!(
                unacked,
                connected = is_connected(),
                "the broker did not acknowledge every message; they may be lost"
            );
        }
        let mut stopped = false;
        if is_connected() {
            // The disconnect is queued behind anything still unsent; give it a moment.
            let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect()).await;
            stopped = tokio::time::timeout(Duration::from_secs(2), &mut driver).await.is_ok();
        }
        if !stopped {
            stop.cancel();
            let _ = driver.await;
        }
        (acked.load(Ordering::Relaxed).min(enqueued), unacked)
    }
}

/// Polls the event loop: counts PUBACKs, reconnects with a bounded back-off,
/// and ends after the disconnect has gone out (or when told to stop).
async fn drive(
    mut eventloop: EventLoop,
    acked: Arc<AtomicU64>,
    connected: Arc<AtomicBool>,
    stop: CancellationToken,
    broker: String,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let event = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!(%broker, "connected to the MQTT broker");
                connected.store(true, Ordering::Relaxed);
                backoff = Duration::from_millis(200);
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(rumqttc::ConnectionError::RequestsDone) => return,
            Err(error) => {
                connected.store(false, Ordering::Relaxed);
                tracing::warn!(%broker, %error, retry_in = ?backoff, "MQTT connection failed; reconnecting");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn config(args: &[&str]) -> SimulatorConfig {
        let mut all = vec!["hoheit-simulator", "--api-token", "0123456789abcdef"];
        all.extend_from_slice(args);
        SimulatorConfig::try_parse_from(all).unwrap()
    }

    #[test]
    fn defaults_match_the_local_set_up() {
        // Only meaningful when the environment does not override them.
        let overridden = [
            "HOHEIT_SIMULATOR_RATE",
            "HOHEIT_SIMULATOR_SCALE",
            "HOHEIT_SIMULATOR_SEED",
            "HOHEIT_SIMULATOR_BACKFILL_HOURS",
        ];
        if overridden.iter().any(|v| std::env::var_os(v).is_some()) {
            return;
        }
        let c = config(&[]);
        assert_eq!((c.rate, c.scale, c.seed, c.backfill_hours, c.duration_secs), (20, 1, 42, 24, 0));
        assert!(!format!("{c:?}").contains("0123456789abcdef"), "the token is masked");
        assert!(SimulatorConfig::try_parse_from(["hoheit-simulator", "--api-token", "x", "--rate", "0"]).is_err());
        assert!(SimulatorConfig::try_parse_from(["hoheit-simulator", "--api-token", "x", "--scale", "0"]).is_err());
    }

    #[test]
    fn backfill_times_lie_on_the_grid_in_the_past() {
        let now = Utc.with_ymd_and_hms(2025, 11, 25, 10, 7, 31).unwrap();
        let traffic = backfill_times(Kind::TrafficCounter, now, 24);
        assert_eq!(traffic.len(), 288);
        assert_eq!(traffic.last(), Some(&Utc.with_ymd_and_hms(2025, 11, 25, 10, 5, 0).unwrap()));
        assert_eq!(traffic.first(), Some(&Utc.with_ymd_and_hms(2025, 11, 24, 10, 10, 0).unwrap()));
        assert!(traffic.windows(2).all(|w| (w[1] - w[0]).num_seconds() == 300));
        let air = backfill_times(Kind::AirStation, now, 24);
        assert_eq!(air.len(), 144);
        assert!(air.iter().all(|t| t.timestamp() % 600 == 0 && *t <= now && *t > now - chrono::Duration::hours(24)));
        assert!(backfill_times(Kind::RiverGauge, now, 0).is_empty());
    }

    #[test]
    fn a_restart_republishes_the_same_backfill() {
        let simulator = Simulator::new(config(&["--backfill-hours", "3"])).unwrap();
        let now = Utc.with_ymd_and_hms(2025, 11, 25, 10, 7, 31).unwrap();
        let later = now + chrono::Duration::seconds(90); // same 5-minute slot
        for thing in &simulator.town().things {
            assert_eq!(
                simulator.backfill_messages(thing, now).unwrap(),
                simulator.backfill_messages(thing, later).unwrap(),
                "{}",
                thing.slug
            );
        }
        let other_seed = Simulator::new(config(&["--backfill-hours", "3", "--seed", "7"])).unwrap();
        let thing = &simulator.town().things[0];
        assert_ne!(simulator.backfill_messages(thing, now).unwrap(), other_seed.backfill_messages(thing, now).unwrap());
    }

    #[test]
    fn default_backfill_is_a_day_of_every_datastream() {
        let simulator = Simulator::new(config(&["--backfill-hours", "24", "--scale", "1"])).unwrap();
        let now = Utc::now();
        let (mut readings, mut messages) = (0, 0);
        for thing in &simulator.town().things {
            let batch = simulator.backfill_messages(thing, now).unwrap();
            messages += batch.len();
            readings += batch.iter().map(|m| m.readings).sum::<usize>();
        }
        // 4 counters × 288 + (3 × 5 + 3 × 2 + 1) datastreams × 144.
        assert_eq!(readings, 4 * 288 + 22 * 144);
        assert_eq!(messages, 4 + 3 * 2 + 3 + 1);
    }

    /// A minimal MQTT 3.1.1 broker for one client: answers CONNECT and
    /// PINGREQ, acknowledges every QoS 1 PUBLISH, and returns what was
    /// published once the client disconnects.
    async fn fake_broker(listener: tokio::net::TcpListener) -> std::io::Result<Vec<(String, Vec<u8>)>> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await?;
        let mut published = Vec::new();
        loop {
            let first = socket.read_u8().await?;
            let (mut length, mut shift) = (0usize, 0);
            loop {
                let byte = socket.read_u8().await?;
                length |= usize::from(byte & 0x7f) << shift;
                if byte & 0x80 == 0 {
                    break;
                }
                shift += 7;
            }
            let mut body = vec![0; length];
            socket.read_exact(&mut body).await?;
            match first >> 4 {
                1 => socket.write_all(&[0x20, 2, 0, 0]).await?,
                3 => {
                    let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
                    let topic = String::from_utf8_lossy(&body[2..2 + topic_len]).into_owned();
                    let mut rest = &body[2 + topic_len..];
                    if (first >> 1) & 3 > 0 {
                        socket.write_all(&[0x40, 2, rest[0], rest[1]]).await?;
                        rest = &rest[2..];
                    }
                    published.push((topic, rest.to_vec()));
                }
                12 => socket.write_all(&[0xD0, 0]).await?,
                14 => return Ok(published),
                _ => {}
            }
        }
    }

    #[tokio::test]
    async fn publishes_backfill_and_live_then_waits_for_every_ack_and_disconnects() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let broker = tokio::spawn(fake_broker(listener));
        let args = ["--mqtt-host", "127.0.0.1", "--mqtt-port", &port, "--topic-root", "t/hoheit/v1"];
        let simulator = Simulator::new(config(
            &[&args[..], &["--backfill-hours", "2", "--rate", "500", "--duration-secs", "1"]].concat(),
        ))
        .unwrap();
        let (shutdown, mut summary) = (CancellationToken::new(), RunSummary::default());
        let mut mqtt = Sink::Mqtt(Mqtt::connect(simulator.config()));
        simulator.backfill(&mut mqtt, &shutdown, &mut summary).await.unwrap();
        simulator.live(&mut mqtt, &shutdown, &mut summary).await.unwrap();
        let (acked, unacked) = mqtt.finish().await;

        assert_eq!(summary.backfill_readings, 4 * 24 + 22 * 12, "two hours of every datastream");
        assert!((450..=560).contains(&summary.live_readings), "about 500 live readings: {summary:?}");
        assert_eq!((acked, unacked), (summary.messages(), 0));
        let published = broker.await.unwrap().unwrap();
        assert_eq!(published.len() as u64, summary.messages());
        // That each format decodes as ingest reads it is tests/it/simulator.rs's
        // (payloads_as_ingest_reads_them, and the demo town through the real pipeline).
    }

    #[test]
    fn run_can_be_spawned() {
        // Tests and benchmarks run the simulator with tokio::spawn.
        fn assert_send<T: Send + 'static>(_: &T) {}
        let simulator = Simulator::new(config(&[])).unwrap();
        let run = simulator.run(CancellationToken::new());
        assert_send(&run);
    }

    #[test]
    fn invalid_configuration_is_reported_not_panicked() {
        assert!(matches!(Simulator::new(config(&["--topic-root", "a/+/b"])), Err(SimulatorError::Config(_))));
        assert!(matches!(Simulator::new(config(&["--api-url", "localhost:8080"])), Err(SimulatorError::Config(_))));
    }
}
