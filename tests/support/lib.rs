//! Test harness: each test gets its own database, Kafka topics, MQTT topic
//! root and consumer group on the real infrastructure (started by
//! `deploy/local/hoheit test`), and runs the services in-process.
//!
//! The infrastructure addresses come from the same `HOHEIT_*` variables the
//! services read, with the same local defaults.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use hoheit_alerts::{Alerts, AlertsConfig};
use hoheit_api::{Api, ApiConfig};
use hoheit_ingest::{Ingest, IngestConfig};
use hoheit_kafka::KafkaArgs;
use hoheit_runtime::config::{DatabaseArgs, DatabaseUrl, Secret};
use hoheit_runtime::mqtt::MqttArgs;
use hoheit_simulator::SimulatorConfig;
use hoheit_writer::{Writer, WriterConfig};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub mod identity_provider;
pub mod town;

pub const TOKEN: &str = "test-token-0123456789abcdef";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

pub fn admin_database_url() -> String {
    env_or("HOHEIT_DATABASE_URL", "postgres://hoheit:hoheit@127.0.0.1:5432/hoheit")
}

pub fn mqtt_host() -> String {
    env_or("HOHEIT_MQTT_HOST", "127.0.0.1")
}

pub fn mqtt_port() -> u16 {
    env_or("HOHEIT_MQTT_PORT", "1883").parse().unwrap_or(1883)
}

/// The MQTT login of the tests (`HOHEIT_MQTT_USERNAME`/`_PASSWORD`; the local set-up admits no
/// anonymous client and exports its development user), if any.
pub fn mqtt_login() -> Option<(String, String)> {
    Some((std::env::var("HOHEIT_MQTT_USERNAME").ok()?, std::env::var("HOHEIT_MQTT_PASSWORD").ok()?))
}

pub fn kafka_bootstrap() -> String {
    env_or("HOHEIT_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
}

/// Names that keep one test's traffic apart from every other test's.
#[derive(Debug, Clone)]
pub struct Isolation {
    pub id: String,
    pub database: String,
    pub database_url: String,
    pub topic_root: String,
    pub kafka_prefix: String,
}

impl Isolation {
    pub fn new() -> Self {
        hoheit_runtime::telemetry::init(&hoheit_runtime::telemetry::LogArgs {
            format: hoheit_runtime::telemetry::LogFormat::Text,
        });
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let database = format!("hoheit_test_{id}");
        let admin = admin_database_url();
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin.clone());
        Self {
            database_url: format!("{base}/{database}"),
            database,
            topic_root: format!("test-{id}/hoheit/v1"),
            kafka_prefix: format!("test-{id}"),
            id,
        }
    }

    /// Creates this test's database and applies the migrations.
    pub async fn create_database(&self) -> anyhow::Result<PgPool> {
        let mut admin =
            PgConnection::connect(&admin_database_url()).await.context("connecting to the admin database")?;
        // The name is generated above from hex digits only; identifiers cannot be bound.
        sqlx::query(&format!("CREATE DATABASE {}", self.database)).execute(&mut admin).await?;
        let pool = PgPool::connect(&self.database_url).await?;
        hoheit_store::db::migrate(&pool).await?;
        Ok(pool)
    }

    pub async fn drop_database(&self) {
        if let Ok(mut admin) = PgConnection::connect(&admin_database_url()).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database))
                .execute(&mut admin)
                .await;
        }
    }

    /// Kafka as this test's services use it: its own topic prefix, two partitions per topic.
    fn kafka(&self, defaults: KafkaArgs) -> KafkaArgs {
        KafkaArgs { bootstrap: kafka_bootstrap(), topic_prefix: self.kafka_prefix.clone(), partitions: 2, ..defaults }
    }

    /// This test's database.
    fn database(&self, defaults: DatabaseArgs) -> DatabaseArgs {
        DatabaseArgs { url: DatabaseUrl::from_str(&self.database_url).unwrap_or_else(|e| match e {}), ..defaults }
    }

    /// Ingest for this test: the service's defaults, on this test's MQTT root, client id, Kafka
    /// topics and database, its ops endpoint on a free port. The MQTT login is the environment's
    /// (`HOHEIT_MQTT_USERNAME`/`_PASSWORD`, as for [`mqtt_login`]).
    /// This test's prefix of SensorThings' MQTT create topics (beside its topic root, so that
    /// parallel tests on the shared broker do not see each other's creates).
    pub fn sta_mqtt_prefix(&self) -> String {
        format!("test-{}/v1.1", self.id)
    }

    pub fn ingest_config(&self) -> IngestConfig {
        let defaults: IngestConfig = defaults(&["hoheit-ingest"]);
        IngestConfig {
            mqtt: MqttArgs { mqtt_host: mqtt_host(), mqtt_port: mqtt_port(), ..defaults.mqtt },
            mqtt_client_id: format!("ingest-{}", self.id),
            topic_root: self.topic_root.clone(),
            sta_mqtt_prefix: self.sta_mqtt_prefix(),
            ops_listen: ANY_LOOPBACK_PORT,
            http_listen: ANY_LOOPBACK_PORT,
            api_token: Some(Secret::new(TOKEN)),
            kafka: self.kafka(defaults.kafka),
            database: self.database(defaults.database),
            ..defaults
        }
    }

    /// The writer for this test: its own consumer group, this test's topics and database, its
    /// ops endpoint on a free port.
    pub fn writer_config(&self) -> WriterConfig {
        let defaults: WriterConfig = defaults(&["hoheit-writer"]);
        WriterConfig {
            group: format!("writer-{}", self.id),
            ops_listen: ANY_LOOPBACK_PORT,
            kafka: self.kafka(defaults.kafka),
            database: self.database(defaults.database),
            ..defaults
        }
    }

    /// The alerts service for this test: its own consumer group, this test's topics and
    /// database, e-mail through `smtp_url` (if any), its ops endpoint on a free port.
    pub fn alerts_config(&self, smtp_url: Option<&str>) -> AlertsConfig {
        let defaults: AlertsConfig = defaults(&["hoheit-alerts"]);
        AlertsConfig {
            group: format!("alerts-{}", self.id),
            ops_listen: ANY_LOOPBACK_PORT,
            smtp_url: smtp_url.map(Secret::new),
            kafka: self.kafka(defaults.kafka),
            database: self.database(defaults.database),
            ..defaults
        }
    }

    /// The API for this test: the operator token [`TOKEN`], this test's database and MQTT root,
    /// listening on a free port.
    pub fn api_config(&self) -> ApiConfig {
        let defaults: ApiConfig = defaults(&["hoheit-api", "--token", TOKEN]);
        ApiConfig {
            listen: ANY_LOOPBACK_PORT,
            token: Secret::new(TOKEN),
            topic_root: self.topic_root.clone(),
            database: self.database(defaults.database),
            ..defaults
        }
    }

    /// The simulator against `api_url` (an API of this test, with [`TOKEN`]), publishing under
    /// this test's MQTT root (the MQTT login as for ingest).
    pub fn simulator_config(&self, api_url: &str) -> SimulatorConfig {
        let defaults: SimulatorConfig = defaults(&["hoheit-simulator", "--api-token", TOKEN]);
        SimulatorConfig {
            api_url: api_url.to_owned(),
            api_token: Secret::new(TOKEN),
            mqtt: MqttArgs { mqtt_host: mqtt_host(), mqtt_port: mqtt_port(), ..defaults.mqtt },
            topic_root: self.topic_root.clone(),
            ..defaults
        }
    }
}

/// Port 0 on loopback: the system picks a free port, which the service reports once bound.
const ANY_LOOPBACK_PORT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// A service's configuration as its binary starts with `argv` (its defaults, and the `HOHEIT_*`
/// variables of the environment); the callers above then set what the test decides. Parsing
/// rather than a literal keeps the defaults where the service declares them.
fn defaults<C: Parser>(argv: &[&str]) -> C {
    C::parse_from(argv)
}

impl Default for Isolation {
    fn default() -> Self {
        Self::new()
    }
}

/// A service running in-process until stopped.
pub struct Running {
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
    pub ops_url: String,
    /// Ingest's HTTP doors (`/v1/push/…`, …); empty for the other services.
    pub doors_url: String,
}

impl Running {
    /// Stops the service gracefully and returns its result.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(40), self.task).await.context("service did not stop in time")??
    }

    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        wait_ready(&format!("{}/readyz", self.ops_url), timeout).await
    }
}

pub async fn wait_ready(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < timeout {
        match client.get(url).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = r.text().await.unwrap_or_default(),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{url} not ready after {timeout:?}: {last}")
}

pub async fn start_ingest(isolation: &Isolation) -> anyhow::Result<Running> {
    start_ingest_with(isolation, |_| {}).await
}

/// Starts ingest with settings of the test's own on top of [`Isolation::ingest_config`].
pub async fn start_ingest_with(
    isolation: &Isolation,
    configure: impl FnOnce(&mut IngestConfig),
) -> anyhow::Result<Running> {
    let mut config = isolation.ingest_config();
    configure(&mut config);
    let ingest = Ingest::build(config).await?;
    let ops_url = format!("http://{}", ingest.ops_addr());
    let doors_url = format!("http://{}", ingest.http_addr());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(ingest.run(shutdown.clone()));
    let running = Running { shutdown, task, ops_url, doors_url };
    running.wait_ready(Duration::from_secs(60)).await?;
    Ok(running)
}

pub async fn start_writer(isolation: &Isolation) -> anyhow::Result<Running> {
    let writer = Writer::build(isolation.writer_config()).await?;
    let ops_url = format!("http://{}", writer.ops_addr());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(writer.run(shutdown.clone()));
    let running = Running { shutdown, task, ops_url, doors_url: String::new() };
    running.wait_ready(Duration::from_secs(60)).await?;
    Ok(running)
}

/// Starts the alerts service in-process (e-mail through `smtp_url`, if any) and waits until it
/// is ready: its partitions are assigned from then on, so nothing published later is missed.
pub async fn start_alerts(isolation: &Isolation, smtp_url: Option<&str>) -> anyhow::Result<Running> {
    let alerts = Alerts::build(isolation.alerts_config(smtp_url)).await?;
    let ops_url = format!("http://{}", alerts.ops_addr());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(alerts.run(shutdown.clone()));
    let running = Running { shutdown, task, ops_url, doors_url: String::new() };
    running.wait_ready(Duration::from_secs(60)).await?;
    Ok(running)
}

pub async fn start_api(isolation: &Isolation) -> anyhow::Result<(Running, ApiClient)> {
    start_api_with(isolation, |_| {}).await
}

/// Starts the API with settings of the test's own on top of [`Isolation::api_config`], e.g.
/// `start_api_with(&isolation, |api| api.rate_per_minute = 5)`.
pub async fn start_api_with(
    isolation: &Isolation,
    configure: impl FnOnce(&mut ApiConfig),
) -> anyhow::Result<(Running, ApiClient)> {
    let mut config = isolation.api_config();
    configure(&mut config);
    let shutdown = CancellationToken::new();
    let api = Api::build(config, &shutdown).await?;
    let base = format!("http://{}", api.local_addr());
    let task = tokio::spawn(api.run(shutdown.clone()));
    Ok((Running { shutdown, task, ops_url: base.clone(), doors_url: String::new() }, ApiClient::new(base)))
}

/// An HTTP client of the API that presents the test token.
#[derive(Clone)]
pub struct ApiClient {
    pub base: String,
    pub http: reqwest::Client,
}

impl ApiClient {
    pub fn new(base: String) -> Self {
        Self { base, http: reqwest::Client::new() }
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.base)).bearer_auth(TOKEN)
    }

    /// A GET with another credential (`None`: anonymous).
    pub fn get_as(&self, credential: Option<&str>, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.get(format!("{}{path}", self.base));
        match credential {
            Some(c) => request.bearer_auth(c),
            None => request,
        }
    }

    /// POST as the operator that must succeed (201/200/204); returns the JSON body (or null).
    pub async fn post_ok(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self.post(path, body).send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("POST {path}: {status}: {text}");
        }
        Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? })
    }

    /// Creates an organisation (operator).
    pub async fn organisation(&self, slug: &str, kind: &str, parent: Option<&str>) -> anyhow::Result<Value> {
        self.post_ok(
            "/v1/admin/organisations",
            json!({"slug": slug, "name": format!("Org {slug}"), "kind": kind, "parent": parent}),
        )
        .await
    }

    /// Creates a principal of `org` with `role` and returns a fresh API key for it.
    pub async fn principal_key(&self, org: &str, name: &str, role: &str) -> anyhow::Result<String> {
        let principal = self
            .post_ok("/v1/admin/principals", json!({"org": org, "name": name, "kind": "service", "role": role}))
            .await?;
        let id = principal["id"].as_i64().context("principal id")?;
        let key = self.post_ok(&format!("/v1/admin/principals/{id}/keys"), json!({})).await?;
        Ok(key["key"].as_str().context("key in response")?.to_owned())
    }

    pub fn post(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.base)).bearer_auth(TOKEN).json(&body)
    }

    /// GET that must succeed; returns the JSON body.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.get(path).send().await?;
        let status = response.status();
        let body = response.text().await?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    /// Registers organisation, thing and datastream (tolerating ones that
    /// exist) and returns the datastream id.
    pub async fn register(&self, org: &str, thing: &str, property: &str, unit: Option<&str>) -> anyhow::Result<i64> {
        for (path, body) in [
            ("/v1/admin/organisations", json!({"slug": org, "name": format!("Org {org}")})),
            (
                "/v1/admin/things",
                json!({"org": org, "slug": thing, "name": format!("Thing {thing}"), "latitude": 52.83, "longitude": 13.82}),
            ),
        ] {
            let response = self.post(path, body).send().await?;
            if !(response.status().is_success() || response.status() == reqwest::StatusCode::CONFLICT) {
                bail!("POST {path}: {} {}", response.status(), response.text().await?);
            }
        }
        let response = self
            .post("/v1/admin/datastreams", json!({"org": org, "thing": thing, "property": property, "name": format!("{property} at {thing}"), "unit": unit}))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("registering datastream: {} {}", response.status(), response.text().await?);
        }
        let body: Value = response.json().await?;
        body["id"].as_i64().context("datastream id in response")
    }

    /// Every observation of a datastream in `[from, to)`, following cursors.
    pub async fn all_observations(
        &self,
        id: i64,
        from: &str,
        to: &str,
        page: usize,
    ) -> anyhow::Result<Vec<(String, f64)>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/datastreams/{id}/observations?from={from}&to={to}&limit={page}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let body = self.get_json(&path.replace('+', "%2B")).await?;
            for o in body["observations"].as_array().context("observations array")? {
                out.push((o["time"].as_str().unwrap_or_default().to_owned(), o["value"].as_f64().unwrap_or(f64::NAN)));
            }
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(out),
            }
        }
    }
}

/// Sends `request` and returns its status, its body as JSON (a string when it
/// is not JSON) and its headers.
pub async fn answer(
    request: reqwest::RequestBuilder,
) -> anyhow::Result<(reqwest::StatusCode, Value, reqwest::header::HeaderMap)> {
    let response = request.send().await?;
    let (status, headers) = (response.status(), response.headers().clone());
    let text = response.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text)), headers))
}

/// An MQTT publisher that waits for the broker's PUBACKs.
pub struct Publisher {
    client: AsyncClient,
    acks: tokio::sync::mpsc::UnboundedReceiver<()>,
    task: JoinHandle<()>,
}

impl Publisher {
    pub async fn connect(id: &str) -> anyhow::Result<Self> {
        let mut options =
            MqttOptions::new(format!("pub-{id}-{}", uuid::Uuid::new_v4().simple()), mqtt_host(), mqtt_port());
        if let Some((user, password)) = mqtt_login() {
            options.set_credentials(user, password);
        }
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(64 * 1024 * 1024, 64 * 1024 * 1024);
        options.set_inflight(1000);
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        let (tx, acks) = tokio::sync::mpsc::unbounded_channel();
        let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut connected = Some(connected_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(c) = connected.take() {
                            let _ = c.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        let _ = tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), connected_rx).await.context("MQTT connect timed out")??;
        Ok(Self { client, acks, task })
    }

    /// Publishes every message with QoS 1 and waits until all are acknowledged.
    pub async fn publish_all(&mut self, messages: Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
        let n = messages.len();
        let client = self.client.clone();
        let sender = tokio::spawn(async move {
            for (topic, payload) in messages {
                client.publish(topic, QoS::AtLeastOnce, false, payload).await?;
            }
            anyhow::Ok(())
        });
        for _ in 0..n {
            tokio::time::timeout(Duration::from_secs(30), self.acks.recv()).await.context("PUBACK timed out")?;
        }
        sender.await??;
        Ok(())
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `check` until it returns `Some`, or fails after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if started.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The whole platform for one test: API, ingest and writer on real infrastructure.
pub struct Platform {
    pub isolation: Isolation,
    pub pool: PgPool,
    pub api: ApiClient,
    pub scheme: hoheit_domain::topic::TopicScheme,
    /// Ingest's HTTP doors (the API forwards its write paths there).
    pub doors: String,
    services: Vec<Running>,
}

impl Platform {
    pub async fn start() -> anyhow::Result<Self> {
        let isolation = Isolation::new();
        let pool = isolation.create_database().await?;
        let ingest = start_ingest(&isolation).await?;
        let doors = ingest.doors_url.clone();
        let (api_running, api) = start_api_with(&isolation, |api| api.ingest_url = doors.clone()).await?;
        let writer = start_writer(&isolation).await?;
        let scheme = hoheit_domain::topic::TopicScheme::new(&isolation.topic_root);
        Ok(Self { isolation, pool, api, scheme, doors, services: vec![ingest, writer, api_running] })
    }

    /// Ingest's operations endpoint (`/metrics`, `/readyz`).
    pub fn ingest_ops(&self) -> &str {
        &self.services[0].ops_url
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        for service in self.services {
            service.stop().await?;
        }
        self.pool.close().await;
        self.isolation.drop_database().await;
        Ok(())
    }
}

/// A record read back from Kafka.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub key: Option<String>,
    pub partition: i32,
    pub payload: Vec<u8>,
}

/// Reads records from `topic` from the beginning, in a group of its own,
/// until `done` says what was read is complete (or `timeout` passes: an error).
pub async fn consume_until(
    topic: &str,
    timeout: Duration,
    done: impl Fn(&[Consumed]) -> bool,
) -> anyhow::Result<Vec<Consumed>> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::Message;
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4().simple()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(&out) {
        let message = match tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .with_context(|| format!("{} records arrived on {topic}, not all that were expected", out.len()))?
        {
            Ok(message) => message,
            // Transient (e.g. a connection the broker closed); librdkafka reconnects.
            Err(_) => continue,
        };
        out.push(Consumed {
            key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            partition: message.partition(),
            payload: message.payload().unwrap_or_default().to_vec(),
        });
    }
    Ok(out)
}

/// Reads `count` records from `topic` from the beginning.
pub async fn consume(topic: &str, count: usize, timeout: Duration) -> anyhow::Result<Vec<Consumed>> {
    consume_until(topic, timeout, |read| read.len() >= count).await
}

/// An idempotent producer for feeding the writer directly.
pub fn producer() -> anyhow::Result<rdkafka::producer::FutureProducer> {
    Ok(rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()?)
}

/// Produces `records` (key, value) to `topic` and waits for every confirmation.
pub async fn produce(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    records: &[(String, Vec<u8>)],
) -> anyhow::Result<()> {
    for (key, value) in records {
        producer
            .send(rdkafka::producer::FutureRecord::to(topic).key(key).payload(value), Duration::from_secs(30))
            .await
            .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
    }
    Ok(())
}

/// The repository's root directory.
pub fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the repository").to_owned()
}

/// The Python of the test tools' venv (`$HOHEIT_TOOLS_DIR`, default
/// `/opt/hoheit-tools`), installed by `deploy/local/hoheit tools`.
pub fn tools_python() -> std::path::PathBuf {
    let dir = std::env::var_os("HOHEIT_TOOLS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/opt/hoheit-tools".into());
    let python = dir.join("venv/bin/python");
    assert!(
        python.is_file(),
        "the Python test tools are not installed in {}: run `deploy/local/hoheit tools`",
        dir.display()
    );
    python
}
