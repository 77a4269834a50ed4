//! The chaos scenario's own infrastructure: a PostgreSQL cluster (initdb in
//! the run directory), Mosquitto (persistence on), tansu (its own sqlite
//! file) and the ingest and writer binaries, each on its own loopback port,
//! each started as a child process and stopped by its pid, never by name.
//! Nothing here touches the shared local infrastructure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Ports of one run.
#[derive(Debug, Clone)]
pub struct Ports {
    pub pg: u16,
    pub mqtt: u16,
    pub kafka: u16,
    pub ingest_ops: u16,
    /// Ingest's HTTP doors.
    pub ingest_http: u16,
    pub writer_ops: u16,
}

impl Ports {
    pub fn pick() -> anyhow::Result<Self> {
        Ok(Self {
            pg: free_port()?,
            mqtt: free_port()?,
            kafka: free_port()?,
            ingest_ops: free_port()?,
            ingest_http: free_port()?,
            writer_ops: free_port()?,
        })
    }
}

/// Everything a run started; dropping it kills what is still running.
pub struct Infra {
    pub dir: PathBuf,
    pub ports: Ports,
    bin_dir: PathBuf,
    tansu_bin: PathBuf,
    as_root: bool,
    pg_started: bool,
    pub mosquitto: Option<Child>,
    pub tansu: Option<Child>,
    pub ingest: Option<Child>,
    pub writer: Option<Child>,
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<std::fs::File> {
    Ok(std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("{name}.log")))?)
}

async fn port_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
}

impl Infra {
    pub fn new(dir: PathBuf, bin_dir: PathBuf, tansu_bin: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            dir,
            ports: Ports::pick()?,
            bin_dir,
            tansu_bin,
            as_root: is_root(),
            pg_started: false,
            mosquitto: None,
            tansu: None,
            ingest: None,
            writer: None,
        })
    }

    pub fn database_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/hoheit", self.ports.pg)
    }

    fn pg_data(&self) -> PathBuf {
        self.dir.join("pg")
    }

    /// A PostgreSQL tool, run as user postgres when we are root (PostgreSQL refuses root).
    fn pg_command(&self, tool: &str) -> std::process::Command {
        let path = format!("{PG_BIN}/{tool}");
        let mut command = if self.as_root {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--", &path]);
            c
        } else {
            std::process::Command::new(path)
        };
        command.current_dir("/");
        command
    }

    fn run_pg(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let log = log_file(&self.dir, "postgres-ctl")?;
        let status = self
            .pg_command(tool)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .with_context(|| format!("running {tool}"))?;
        if !status.success() {
            bail!("{tool} {args:?} failed ({status}); see {}/postgres-ctl.log", self.dir.display());
        }
        Ok(())
    }

    /// initdb, configure (loopback, own port and socket, TimescaleDB), start, create the database.
    pub async fn start_postgres(&mut self) -> anyhow::Result<()> {
        let data = self.pg_data();
        if self.as_root {
            let status = std::process::Command::new("chown").arg("postgres:postgres").arg(&self.dir).status()?;
            anyhow::ensure!(status.success(), "chown of {} failed", self.dir.display());
        }
        let data_s = data.to_string_lossy().into_owned();
        self.run_pg("initdb", &["-D", &data_s, "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "--auth=trust"])?;
        let conf = format!(
            "\n# hoheit-chaos\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             shared_preload_libraries = 'timescaledb'\ntimescaledb.telemetry_level = off\n\
             synchronous_commit = on\nfsync = on\nmax_connections = 50\n",
            self.ports.pg, data_s
        );
        let mut file = std::fs::OpenOptions::new().append(true).open(data.join("postgresql.conf"))?;
        std::io::Write::write_all(&mut file, conf.as_bytes())?;
        self.pg_ctl(&["start"])?;
        self.pg_started = true;
        let mut admin = connect_retry(&format!("postgres://postgres@127.0.0.1:{}/postgres", self.ports.pg)).await?;
        sqlx::query("CREATE DATABASE hoheit").execute(&mut admin).await?;
        Ok(())
    }

    fn pg_ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let data = self.pg_data().to_string_lossy().into_owned();
        let log = self.dir.join("postgres.log").to_string_lossy().into_owned();
        let mut all = vec![args[0], "-D", &data, "-l", &log, "-w", "-t", "120", "-s"];
        all.extend_from_slice(&args[1..]);
        self.run_pg("pg_ctl", &all)
    }

    /// `pg_ctl restart -m immediate`: no checkpoint, crash recovery on start.
    pub fn restart_postgres(&self) -> anyhow::Result<()> {
        self.pg_ctl(&["restart", "-m", "immediate"])
    }

    fn mosquitto_dir(&self) -> PathBuf {
        self.dir.join("mosquitto")
    }

    pub async fn start_mosquitto(&mut self) -> anyhow::Result<()> {
        let dir = self.mosquitto_dir();
        let conf = dir.join("mosquitto.conf");
        if !conf.exists() {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(
                &conf,
                format!(
                    "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {dir}/\n\
                     autosave_interval 1\nmax_queued_messages 1000000\nmax_queued_bytes 0\nmax_inflight_messages 1000\n\
                     max_packet_size 16777216\nlog_dest file {dir}/mosquitto.log\nlog_type error\nlog_type warning\n\
                     log_type notice\nconnection_messages true\n",
                    port = self.ports.mqtt,
                    dir = dir.display()
                ),
            )?;
            if self.as_root {
                // Started as root, mosquitto drops to user mosquitto, which must own its state.
                let status =
                    std::process::Command::new("chown").arg("-R").arg("mosquitto:mosquitto").arg(&dir).status()?;
                anyhow::ensure!(status.success(), "chown of {} failed", dir.display());
            }
        }
        let log = log_file(&self.dir, "mosquitto-stdout")?;
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting mosquitto")?;
        self.mosquitto = Some(child);
        wait_until("mosquitto", Duration::from_secs(30), || port_open(self.ports.mqtt)).await
    }

    /// SIGTERM (mosquitto saves its persistence file on the way out), wait, start again.
    pub async fn restart_mosquitto(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.mosquitto.take() {
            terminate(&mut child, Duration::from_secs(30)).await?;
        }
        self.start_mosquitto().await
    }

    pub async fn start_tansu(&mut self) -> anyhow::Result<()> {
        let dir = self.dir.join("tansu");
        std::fs::create_dir_all(&dir)?;
        let listener = format!("tcp://127.0.0.1:{}", self.ports.kafka);
        let log = log_file(&self.dir, "tansu")?;
        // tansu reads CLUSTER_ID, LISTENER_URL, ... from the environment: give it a clean one.
        let child = Command::new(&self.tansu_bin)
            .args(["broker", "--cluster-id", "hoheit-chaos", "--storage-engine", "sqlite://tansu/tansu.db"])
            .args(["--listener-url", &listener, "--advertised-listener-url", &listener])
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting tansu")?;
        self.tansu = Some(child);
        wait_until("tansu", Duration::from_secs(30), || port_open(self.ports.kafka)).await
    }

    fn service_command(&self, name: &str) -> anyhow::Result<Command> {
        let log = log_file(&self.dir, name)?;
        let mut command = Command::new(self.bin_dir.join(name));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("HOHEIT_DATABASE_URL", self.database_url())
            .env("HOHEIT_MQTT_HOST", "127.0.0.1")
            .env("HOHEIT_MQTT_PORT", self.ports.mqtt.to_string())
            .env("HOHEIT_MQTT_CLIENT_ID", "hoheit-ingest-chaos")
            .env("HOHEIT_KAFKA_BOOTSTRAP", format!("127.0.0.1:{}", self.ports.kafka))
            .env("HOHEIT_INGEST_OPS_LISTEN", format!("127.0.0.1:{}", self.ports.ingest_ops))
            .env("HOHEIT_INGEST_HTTP_LISTEN", format!("127.0.0.1:{}", self.ports.ingest_http))
            .env("HOHEIT_INGEST_HTTP_REQUESTS_PER_SECOND", "100000")
            .env("HOHEIT_WRITER_OPS_LISTEN", format!("127.0.0.1:{}", self.ports.writer_ops))
            .env("HOHEIT_WRITER_GROUP", "hoheit-writer-chaos")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        Ok(command)
    }

    pub async fn start_ingest(&mut self) -> anyhow::Result<()> {
        self.ingest = Some(self.service_command("hoheit-ingest")?.spawn().context("starting hoheit-ingest")?);
        wait_ready(self.ports.ingest_ops, Duration::from_secs(120)).await
    }

    pub async fn start_writer(&mut self) -> anyhow::Result<()> {
        self.writer = Some(self.service_command("hoheit-writer")?.spawn().context("starting hoheit-writer")?);
        wait_ready(self.ports.writer_ops, Duration::from_secs(120)).await
    }

    /// Stops everything: ingest and writer gracefully (SIGTERM), the rest as
    /// fast as possible. Each by the child handle it was started with.
    pub async fn stop_all(&mut self) {
        for child in [self.ingest.take(), self.writer.take()].into_iter().flatten() {
            let mut child = child;
            let _ = terminate(&mut child, Duration::from_secs(40)).await;
        }
        for child in [self.tansu.take(), self.mosquitto.take()].into_iter().flatten() {
            let mut child = child;
            let _ = terminate(&mut child, Duration::from_secs(30)).await;
        }
        self.stop_postgres();
    }

    fn stop_postgres(&mut self) {
        if self.pg_started {
            self.pg_started = false;
            if let Err(error) = self.pg_ctl(&["stop", "-m", "fast"]) {
                eprintln!("chaos: stopping PostgreSQL: {error:#}; trying immediate");
                let _ = self.pg_ctl(&["stop", "-m", "immediate"]);
            }
        }
    }
}

impl Drop for Infra {
    fn drop(&mut self) {
        // Children kill themselves on drop (kill_on_drop); PostgreSQL runs detached under pg_ctl.
        self.stop_postgres();
    }
}

/// SIGKILL by the child's handle, and reap it.
pub async fn kill(child: &mut Child) -> anyhow::Result<()> {
    child.kill().await.context("SIGKILL")
}

/// SIGTERM by pid, wait up to `grace`, then SIGKILL.
pub async fn terminate(child: &mut Child, grace: Duration) -> anyhow::Result<()> {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            return Ok(());
        }
        eprintln!("chaos: pid {pid} ignored SIGTERM for {grace:?}; SIGKILL");
    }
    kill(child).await
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        if started.elapsed() > timeout {
            bail!("{what} not ready after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Waits until a service's /readyz answers 200.
pub async fn wait_ready(port: u16, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let url = format!("http://127.0.0.1:{port}/readyz");
    wait_until(&url.clone(), timeout, || {
        let request = client.get(&url).send();
        async move { request.await.is_ok_and(|r| r.status().is_success()) }
    })
    .await
}

async fn connect_retry(url: &str) -> anyhow::Result<sqlx::PgConnection> {
    use sqlx::Connection;
    let started = Instant::now();
    loop {
        match sqlx::PgConnection::connect(url).await {
            Ok(c) => return Ok(c),
            Err(e) if started.elapsed() > Duration::from_secs(60) => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
