//! What every system benchmark needs: the local infrastructure's addresses,
//! a fresh database and Kafka topic prefix per run (dropped afterwards), the
//! release binaries of the services as child processes (so that their peak
//! RSS is their own), Prometheus scraping, percentiles and the printed tables.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hoheit_kafka::KafkaArgs;
use rdkafka::consumer::{BaseConsumer, Consumer};
use sqlx::{Connection, PgConnection, PgPool};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

/// Addresses of the local infrastructure (`deploy/local/hoheit env`), with the
/// same defaults as the services and the tests.
#[derive(Debug, Clone)]
pub struct Infra {
    pub admin_database_url: String,
    pub mqtt_host: String,
    pub mqtt_port: u16,
    /// `HOHEIT_MQTT_USERNAME`/`_PASSWORD`: the local broker admits no anonymous client.
    pub mqtt_login: Option<(String, String)>,
    pub kafka_bootstrap: String,
    /// The operator token the benchmark's API is started with.
    pub api_token: String,
    /// Where the release binaries of the services are.
    pub bin_dir: PathBuf,
}

impl Infra {
    /// Options of an MQTT client of the benchmarks, logged in where the broker wants it.
    pub fn mqtt_options(&self, client_id: impl Into<String>) -> rumqttc::MqttOptions {
        let mut options = rumqttc::MqttOptions::new(client_id, &self.mqtt_host, self.mqtt_port);
        if let Some((user, password)) = &self.mqtt_login {
            options.set_credentials(user, password);
        }
        options
    }

    pub fn from_env(bin_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let bin_dir = match bin_dir {
            Some(dir) => dir,
            None => std::env::current_exe()
                .context("locating hoheit-bench")?
                .parent()
                .context("hoheit-bench has no directory")?
                .to_path_buf(),
        };
        let token = env_or("HOHEIT_API_TOKEN", "");
        Ok(Self {
            admin_database_url: env_or("HOHEIT_DATABASE_URL", "postgres://hoheit:hoheit@127.0.0.1:5432/hoheit"),
            mqtt_host: env_or("HOHEIT_MQTT_HOST", "127.0.0.1"),
            mqtt_port: env_or("HOHEIT_MQTT_PORT", "1883").parse().context("HOHEIT_MQTT_PORT")?,
            mqtt_login: std::env::var("HOHEIT_MQTT_USERNAME").ok().zip(std::env::var("HOHEIT_MQTT_PASSWORD").ok()),
            kafka_bootstrap: env_or("HOHEIT_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            api_token: if token.len() >= 16 { token } else { format!("bench-{}", uuid::Uuid::new_v4().simple()) },
            bin_dir,
        })
    }

    /// The database URL of another database on the same server.
    pub fn database_url(&self, database: &str) -> String {
        let base = self.admin_database_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&self.admin_database_url);
        format!("{base}/{database}")
    }
}

/// What a run created and has not removed yet: removed by [`cleanup_leftovers`]
/// when the benchmark is interrupted (Ctrl-C, SIGTERM) or fails half-way.
/// (Kafka topics are not removed: see [`BenchTopics::keep`].)
#[derive(Debug, Clone, PartialEq)]
enum Leftover {
    Database(String),
    MqttSession(String),
}

static LEFTOVERS: std::sync::Mutex<Vec<Leftover>> = std::sync::Mutex::new(Vec::new());

fn remember(leftover: Leftover) {
    LEFTOVERS.lock().unwrap_or_else(|e| e.into_inner()).push(leftover);
}

fn forget(leftover: &Leftover) {
    LEFTOVERS.lock().unwrap_or_else(|e| e.into_inner()).retain(|l| l != leftover);
}

/// Removes whatever an interrupted run left behind: its databases and
/// persistent MQTT sessions.
pub async fn cleanup_leftovers(infra: &Infra) {
    let leftovers = std::mem::take(&mut *LEFTOVERS.lock().unwrap_or_else(|e| e.into_inner()));
    for leftover in leftovers {
        eprintln!("  cleaning up {leftover:?}");
        match leftover {
            Leftover::Database(name) => {
                if let Ok(mut admin) = PgConnection::connect(&infra.admin_database_url).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await;
                }
            }
            Leftover::MqttSession(client_id) => forget_mqtt_session(infra, &client_id).await,
        }
    }
}

/// Marks the persistent MQTT session of `client_id` for removal if the run
/// is interrupted; [`forget_mqtt_session`] removes it.
pub fn remember_mqtt_session(client_id: &str) {
    remember(Leftover::MqttSession(client_id.to_owned()));
}

/// A fresh id for the names of one run.
pub fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

/// A database of its own, migrated; dropped by [`BenchDb::drop`].
pub struct BenchDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
    admin_url: String,
}

impl BenchDb {
    pub async fn create(infra: &Infra, id: &str) -> anyhow::Result<Self> {
        let name = format!("hoheit_bench_{id}");
        let mut admin = PgConnection::connect(&infra.admin_database_url).await.with_context(|| {
            format!("connecting to {} (is `deploy/local/hoheit infra` up?)", infra.admin_database_url)
        })?;
        // The name is made of hex digits only; identifiers cannot be bound.
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await?;
        remember(Leftover::Database(name.clone()));
        let url = infra.database_url(&name);
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(16).connect(&url).await?;
        hoheit_store::db::migrate(&pool).await?;
        Ok(Self { name, url, pool, admin_url: infra.admin_database_url.clone() })
    }

    pub async fn drop(self) {
        forget(&Leftover::Database(self.name.clone()));
        self.pool.close().await;
        if let Ok(mut admin) = PgConnection::connect(&self.admin_url).await {
            let _ =
                sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&mut admin).await;
        }
    }

    /// Leaves the database in place (not removed when the run is interrupted either).
    pub fn keep(self) {
        forget(&Leftover::Database(self.name.clone()));
    }

    /// Flushes dirty pages now, so that a timed phase does not pay for the one before.
    pub async fn checkpoint(&self) -> anyhow::Result<()> {
        sqlx::query("CHECKPOINT").execute(&self.pool).await?;
        Ok(())
    }

    /// Registers organisation `bench`, `things` things `t0`, `t1`… with the
    /// properties `p0`, `p1`… each, without units. Returns the datastream ids
    /// by (thing, property), thing-major.
    pub async fn register(&self, things: usize, properties: usize) -> anyhow::Result<Vec<i64>> {
        sqlx::query("INSERT INTO organisations (slug, name) VALUES ('bench', 'Benchmark town')")
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO things (org_id, slug, name)
             SELECT o.id, 't' || n, 'Thing ' || n FROM organisations o, generate_series(0, $1 - 1) n
             WHERE o.slug = 'bench' ORDER BY n",
        )
        .bind(things as i64)
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "INSERT INTO datastreams (thing_id, property, name)
             SELECT t.id, 'p' || p, t.slug || ' p' || p FROM things t, generate_series(0, $1 - 1) p
             ORDER BY t.id, p",
        )
        .bind(properties as i64)
        .execute(&self.pool)
        .await?;
        let ids: Vec<(i64,)> = sqlx::query_as(
            "SELECT d.id FROM datastreams d JOIN things t ON t.id = d.thing_id
             ORDER BY substr(t.slug, 2)::int, substr(d.property, 2)::int",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }
}

/// Kafka topics under a prefix of their own (`bench-{run id}`).
pub struct BenchTopics {
    pub args: KafkaArgs,
}

impl BenchTopics {
    pub async fn create(infra: &Infra, id: &str, partitions: i32) -> anyhow::Result<Self> {
        let args = KafkaArgs {
            bootstrap: infra.kafka_bootstrap.clone(),
            topic_prefix: format!("bench-{id}"),
            partitions,
            replication: 1,
        };
        args.ensure_topics().await.with_context(|| format!("creating topics on {}", infra.kafka_bootstrap))?;
        Ok(Self { args })
    }

    pub fn observations(&self) -> String {
        self.args.topics().observations
    }

    /// Records in the observations topic (sum of the partitions' high watermarks).
    pub fn observation_records(&self) -> anyhow::Result<i64> {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.args.bootstrap)
            .set("group.id", "hoheit-bench-probe")
            .create()?;
        let topic = self.observations();
        let mut total = 0;
        for partition in 0..self.args.partitions {
            let (low, high) = consumer.fetch_watermarks(&topic, partition, Duration::from_secs(10))?;
            total += high - low;
        }
        Ok(total)
    }

    /// Records and readings in the observations topic, read from the
    /// beginning of every partition.
    pub fn observation_readings(&self) -> anyhow::Result<(i64, i64)> {
        use prost::Message as _;
        use rdkafka::Message as _;
        let total = self.observation_records()?;
        let consumer: BaseConsumer = self.args.consumer_config(&format!("hoheit-bench-count-{}", run_id())).create()?;
        let mut list = rdkafka::TopicPartitionList::new();
        for partition in 0..self.args.partitions {
            list.add_partition_offset(&self.observations(), partition, rdkafka::Offset::Beginning)?;
        }
        consumer.assign(&list)?;
        let (mut records, mut readings) = (0i64, 0i64);
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        while records < total {
            anyhow::ensure!(std::time::Instant::now() < deadline, "read back {records} of {total} records in 300 s");
            let Some(message) = consumer.poll(Duration::from_millis(500)) else { continue };
            let record = hoheit_proto::v1::ObservationRecord::decode(message?.payload().unwrap_or_default())?;
            records += 1;
            readings += record.batches.iter().map(|b| b.value.len() as i64).sum::<i64>();
        }
        Ok((records, readings))
    }

    /// Kafka topics are left in place, under their unique prefix. Deleting
    /// them is not safe on the local broker: tansu 0.6.0 answers a
    /// DeleteTopics request by deleting every topic of the cluster (its
    /// `topic_delete_by.sql` filters by cluster only), and DeleteRecords is
    /// not implemented there. `deploy/local/hoheit bench` therefore runs the
    /// benchmarks against a broker of their own and removes it afterwards.
    pub fn keep(self) {}
}

/// A release binary of a service, started by the benchmark with a clean
/// environment (no `HOHEIT_*` or `OTEL_*` from the caller) and every setting
/// as a flag; killed if dropped while running.
pub struct Service {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Service {
    pub fn spawn(infra: &Infra, name: &str, args: &[String]) -> anyhow::Result<Self> {
        let bin = infra.bin_dir.join(name);
        if !bin.is_file() {
            bail!("{} is missing: build the services first (cargo build --release --bins)", bin.display());
        }
        let log = std::env::temp_dir().join(format!("hoheit-bench-{name}-{}.log", run_id()));
        let file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(&bin);
        command.args(args).env_clear().env("RUST_LOG", "warn");
        // The broker admits no anonymous clients: the services log in as the benchmark does.
        if let Some((user, password)) = &infra.mqtt_login {
            command.env("HOHEIT_MQTT_USERNAME", user).env("HOHEIT_MQTT_PASSWORD", password);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Self { name: name.to_owned(), child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Peak resident set size so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.status_kib("VmHWM:")
    }

    /// Fails with the log's tail if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}); last log lines:\n{}", self.name, self.log_tail(20));
        }
        Ok(())
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, then up to `grace` for a graceful stop, then SIGKILL. Returns
    /// the peak RSS (KiB) read just before the signal.
    pub async fn stop(mut self, grace: Duration) -> anyhow::Result<(Option<u64>, ExitStatus)> {
        let peak = self.peak_rss_kib();
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = self.child.try_wait()? {
                let _ = std::fs::remove_file(&self.log);
                return Ok((peak, status));
            }
            if Instant::now() > deadline {
                self.child.kill()?;
                let status = self.child.wait()?;
                eprintln!("  note: {} did not stop within {grace:?}; killed. Log: {}", self.name, self.log.display());
                return Ok((peak, status));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The resident set (VmRSS, KiB) of process `pid` now.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// The flags of a release `hoheit-api` on loopback `port` with the operator token and `database_url`.
pub fn api_flags(infra: &Infra, port: u16, database_url: &str) -> Vec<String> {
    vec![
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--token".into(),
        infra.api_token.clone(),
        "--database-url".into(),
        database_url.to_owned(),
    ]
}

/// A free loopback port (bound and released; good enough on a quiet machine).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until `url` answers 200.
pub async fn wait_ready(
    http: &reqwest::Client,
    url: &str,
    service: &mut Service,
    timeout: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        service.check_alive()?;
        if let Ok(response) = http.get(url).send().await {
            if response.status().is_success() {
                return Ok(());
            }
        }
        if started.elapsed() > timeout {
            bail!("{url} not ready after {timeout:?}; last log lines:\n{}", service.log_tail(20));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sum of every series of counter `name` in a Prometheus exposition.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{')))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Scrapes `url` and sums counter `name`.
pub async fn scrape(http: &reqwest::Client, url: &str, name: &str) -> anyhow::Result<f64> {
    let text = http.get(url).send().await?.text().await?;
    Ok(metric_sum(&text, name))
}

/// Percentiles of a set of samples (any unit).
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(samples: &mut [f64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
        Self { count: samples.len(), p50: at(0.50), p99: at(0.99), max: samples[samples.len() - 1] }
    }
}

/// `1234567.8` → `1,234,568`.
pub fn thousands(value: f64) -> String {
    let n = value.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let groups: Vec<&str> =
        digits.as_bytes().rchunks(3).rev().map(|g| std::str::from_utf8(g).unwrap_or_default()).collect();
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", groups.join(","))
}

pub fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.1} MiB", k as f64 / 1024.0)).unwrap_or_else(|| "n/a".into())
}

pub fn percent(part: f64, whole: f64) -> String {
    if whole > 0.0 {
        format!("{:.0}%", 100.0 * part / whole)
    } else {
        "n/a".into()
    }
}

pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

/// A markdown table, printed as the benchmark's result.
pub struct Table {
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(title: impl Into<String>, header: &[&str]) -> Self {
        Self { title: title.into(), header: header.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut out = format!("\n#### {}\n\n", self.title);
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        out.push_str(&line(&self.header));
        out.push_str(&line(&self.header.iter().map(|_| "---".to_owned()).collect::<Vec<_>>()));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

/// nproc, CPU model, RAM and the load average, for the head of every result.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let ram_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let mut out = String::new();
    let _ = write!(out, "{cpus} CPUs ({model}), {ram_gib:.0} GiB RAM, load average {}", load());
    out
}

/// The 1/5/15-minute load average.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Forgets the persistent MQTT session of `client_id` (connect with a clean
/// session, then disconnect), so the broker stops queueing for it.
pub async fn forget_mqtt_session(infra: &Infra, client_id: &str) {
    forget(&Leftover::MqttSession(client_id.to_owned()));
    let mut options = infra.mqtt_options(client_id);
    options.set_clean_session(true);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    let done = async {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    let _ = client.disconnect().await;
                }
                Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), done).await;
}

/// Runs `measure(run id, ingest's MQTT client id, database, topics)` on
/// resources of its own for a benchmark that runs hoheit-ingest (`name` is
/// printed), and removes them afterwards whatever `measure` returned (the
/// topics are kept: see [`BenchTopics::keep`]).
pub async fn with_ingest_resources<T>(
    infra: &Infra,
    name: &str,
    measure: impl AsyncFnOnce(&str, &str, &BenchDb, &BenchTopics) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let id = run_id();
    println!("\n== {name} benchmark ({}) — {}", id, machine());
    let db = BenchDb::create(infra, &id).await?;
    let topics = match BenchTopics::create(infra, &id, 4).await {
        Ok(topics) => topics,
        Err(error) => {
            db.drop().await;
            return Err(error);
        }
    };
    let client_id = format!("bench-ingest-{id}");
    remember_mqtt_session(&client_id);
    let result = measure(&id, &client_id, &db, &topics).await;
    forget_mqtt_session(infra, &client_id).await;
    topics.keep();
    db.drop().await;
    result
}
