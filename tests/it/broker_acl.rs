//! Broker ACLs against the real Mosquitto (2.0): the password and ACL files
//! that `hoheit-admin mqtt-config` generates from the registry let each API
//! key publish only into its own organisation's topics and the ingest user
//! read them all; wrong passwords and anonymous clients are refused; a
//! revoked key is refused once the files are regenerated and the broker has
//! reloaded them (SIGHUP). Reader keys publish nothing; a supplier's
//! publisher key publishes the things its supply grant covers until the
//! grant is revoked and the files rendered again.
//!
//! Each test starts its own `mosquitto` on a free loopback port with its own
//! configuration in a temporary directory, and kills exactly that process
//! when it ends (`kill_on_drop`).

use crate::admin_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use admin_support::{admin, admin_json};
use anyhow::{bail, Context};
use hoheit_tests::{eventually, Isolation};
use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, Publish, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Bound for anything that should take milliseconds; only a failure waits this long.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

pub(crate) fn mosquitto_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("HOHEIT_MOSQUITTO_BIN") {
        return bin.into();
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("mosquitto"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| "/usr/sbin/mosquitto".into())
}

pub(crate) fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// `UID:GID` of the `mosquitto` user, which the broker drops to when started as root.
fn mosquitto_owner() -> Option<String> {
    let id = |flag: &str| {
        let out = std::process::Command::new("id").args([flag, "mosquitto"]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    Some(format!("{}:{}", id("-u")?, id("-g")?))
}

/// A mosquitto process of this test.
struct Broker {
    child: tokio::process::Child,
    port: u16,
    log: PathBuf,
}

impl Broker {
    /// Starts mosquitto with the generated files in `files` and waits until it listens.
    async fn start(dir: &Path, files: &Path, run_as_root: bool) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let config = dir.join("mosquitto.conf");
        let log = dir.join("mosquitto.log");
        let mut text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\n\
             persistence false\nlog_dest stderr\nlog_type all\n",
            files.join("mosquitto.passwd").display(),
            files.join("mosquitto.acl").display()
        );
        if run_as_root {
            text.push_str("user root\n");
        }
        std::fs::write(&config, text)?;
        let child = tokio::process::Command::new(mosquitto_bin())
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(&log)?))
            .stderr(Stdio::from(std::fs::OpenOptions::new().append(true).open(&log)?))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} (HOHEIT_MOSQUITTO_BIN)", mosquitto_bin().display()))?;
        let mut broker = Self { child, port, log };
        eventually(PATIENCE, "mosquitto to listen", || {
            let exited = broker.child.try_wait();
            let port = broker.port;
            let log = broker.log.clone();
            async move {
                if let Some(status) = exited? {
                    bail!("mosquitto exited ({status}): {}", std::fs::read_to_string(log).unwrap_or_default());
                }
                Ok(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ()))
            }
        })
        .await?;
        Ok(broker)
    }

    /// Asks mosquitto to reload its configuration, password and ACL files.
    fn reload(&self) -> anyhow::Result<()> {
        let pid = self.child.id().context("mosquitto is not running")?;
        let status = std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill -HUP {pid} failed");
        Ok(())
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// An MQTT connection whose incoming packets arrive on a channel.
pub(crate) struct Session {
    client: AsyncClient,
    pub(crate) incoming: mpsc::UnboundedReceiver<Packet>,
    task: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects with the given credentials; the error is the broker's refusal, if any.
pub(crate) async fn connect(
    port: u16,
    credentials: Option<(&str, &str)>,
) -> anyhow::Result<Result<Session, ConnectionError>> {
    let mut options = MqttOptions::new(format!("acl-test-{}", uuid::Uuid::new_v4().simple()), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    if let Some((user, password)) = credentials {
        options.set_credentials(user, password);
    }
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let connected = tokio::time::timeout(PATIENCE, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .context("no CONNACK")?;
    if let Err(refused) = connected {
        return Ok(Err(refused));
    }
    let (tx, incoming) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(packet)) => {
                    if tx.send(packet).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    Ok(Ok(Session { client, incoming, task }))
}

pub(crate) async fn must_connect(port: u16, user: &str, password: &str) -> anyhow::Result<Session> {
    connect(port, Some((user, password))).await?.map_err(|e| anyhow::anyhow!("{user} could not connect: {e}"))
}

pub(crate) fn refusal(result: Result<Session, ConnectionError>) -> Option<ConnectReturnCode> {
    match result {
        Err(ConnectionError::ConnectionRefused(code)) => Some(code),
        _ => None,
    }
}

impl Session {
    pub(crate) async fn next_packet(&mut self) -> anyhow::Result<Packet> {
        tokio::time::timeout(PATIENCE, self.incoming.recv())
            .await
            .context("no packet from the broker")?
            .context("disconnected")
    }

    pub(crate) async fn subscribe(&mut self, filter: &str) -> anyhow::Result<()> {
        self.client.subscribe(filter, QoS::AtLeastOnce).await?;
        loop {
            if let Packet::SubAck(_) = self.next_packet().await? {
                return Ok(());
            }
        }
    }

    /// Publishes with QoS 1 and waits for the broker's PUBACK, so the broker
    /// has handled (delivered or dropped) the message before this returns.
    pub(crate) async fn publish(&mut self, topic: &str, payload: &str) -> anyhow::Result<()> {
        self.client.publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec()).await?;
        loop {
            if let Packet::PubAck(_) = self.next_packet().await? {
                return Ok(());
            }
        }
    }

    pub(crate) async fn next_message(&mut self) -> anyhow::Result<Publish> {
        loop {
            if let Packet::Publish(p) = self.next_packet().await? {
                return Ok(p);
            }
        }
    }
}

fn message(p: &Publish) -> (String, String) {
    (p.topic.clone(), String::from_utf8_lossy(&p.payload).into_owned())
}

/// Generates the files into `files` as the operator would.
/// The gateway user's password in these tests (the simulator's login in the set-ups).
const GATEWAY_PASSWORD: &str = "gateway-password-of-the-test";

async fn generate(db: &str, files: &Path, password: &str, owner: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let dir = files.to_str().context("temporary path is not UTF-8")?;
    let mut args = vec![
        "mqtt-config",
        "--out",
        dir,
        "--ingest-username",
        "hoheit-ingest",
        "--ingest-password",
        password,
        "--gateway-username",
        "hoheit-gateway",
        "--gateway-password",
        GATEWAY_PASSWORD,
    ];
    if let Some(owner) = owner {
        args.extend(["--owner", owner]);
    }
    admin_json(db, &args).await
}

#[tokio::test]
async fn a_key_publishes_only_into_its_own_organisations_topics_and_a_revoked_key_is_refused() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let _pool = isolation.create_database().await?;
    let db = isolation.database_url.as_str();

    let mut keys = Vec::new();
    for org in ["stadt-a", "stadt-b"] {
        admin(db, &["organisations", "create", org, "--name", &format!("Stadt {org}")]).await?;
        let name = format!("sensoren-{org}");
        admin(db, &["principals", "create", &name, "--org", org, "--kind", "service", "--role", "data_owner"]).await?;
        let key = admin_json(db, &["keys", "create", &name]).await?;
        keys.push((
            key["id"].as_i64().context("key id")?,
            key["mqtt_user"].as_str().context("mqtt user")?.to_owned(),
            key["key"].as_str().context("key")?.to_owned(),
        ));
    }
    let (a_id, a_user, a_key) = keys[0].clone();
    let (_, b_user, b_key) = keys[1].clone();

    // The broker drops root before it reads the files: give them to its user,
    // or, where there is none, let it stay root.
    let temp = tempfile::tempdir()?;
    let files = temp.path().join("files");
    std::fs::create_dir(&files)?;
    let root = running_as_root();
    let owner = if root { mosquitto_owner() } else { None };
    if owner.is_some() {
        std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(&files, std::fs::Permissions::from_mode(0o755))?;
    }
    let ingest_password = uuid::Uuid::new_v4().simple().to_string();
    let written = generate(db, &files, &ingest_password, owner.as_deref()).await?;
    assert_eq!(written["key_users"].as_array().map(Vec::len), Some(2), "{written}");
    for file in ["mosquitto.passwd", "mosquitto.acl"] {
        let mode = std::fs::metadata(files.join(file))?.mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    let broker = Broker::start(temp.path(), &files, root && owner.is_none()).await?;
    let port = broker.port;

    let mut ingest = must_connect(port, "hoheit-ingest", &ingest_password).await?;
    ingest.subscribe("hoheit/v1/#").await?;
    let mut a = must_connect(port, &a_user, &a_key).await?;

    a.publish("hoheit/v1/stadt-a/t/p", "own topic").await?;
    assert_eq!(message(&ingest.next_message().await?), ("hoheit/v1/stadt-a/t/p".into(), "own topic".into()));

    // The broker acknowledges the forged message (MQTT 3.1.1 has no way to
    // refuse a publish) but drops it: the next message ingest sees is the
    // one A published after it.
    a.publish("hoheit/v1/stadt-b/t/p", "forged").await?;
    a.publish("hoheit/v1/stadt-a/t/p", "after the forgery").await?;
    assert_eq!(message(&ingest.next_message().await?), ("hoheit/v1/stadt-a/t/p".into(), "after the forgery".into()));

    let mut b = must_connect(port, &b_user, &b_key).await?;
    b.publish("hoheit/v1/stadt-b/t/p", "b's own").await?;
    assert_eq!(message(&ingest.next_message().await?), ("hoheit/v1/stadt-b/t/p".into(), "b's own".into()));

    // The gateway publishes for every organisation.
    let mut gateway = must_connect(port, "hoheit-gateway", GATEWAY_PASSWORD).await?;
    gateway.publish("hoheit/v1/stadt-a/t/p", "via the gateway").await?;
    assert_eq!(message(&ingest.next_message().await?), ("hoheit/v1/stadt-a/t/p".into(), "via the gateway".into()));
    gateway.publish("hoheit/v1/stadt-b/t/p", "via the gateway").await?;
    assert_eq!(message(&ingest.next_message().await?), ("hoheit/v1/stadt-b/t/p".into(), "via the gateway".into()));
    drop(gateway);

    assert_eq!(refusal(connect(port, Some((&a_user, "not-the-key"))).await?), Some(ConnectReturnCode::NotAuthorized));
    assert_eq!(refusal(connect(port, Some((&a_user, &b_key))).await?), Some(ConnectReturnCode::NotAuthorized));
    assert_eq!(refusal(connect(port, None).await?), Some(ConnectReturnCode::NotAuthorized), "anonymous");

    drop(a);
    admin(db, &["keys", "revoke", &a_id.to_string()]).await?;
    let written = generate(db, &files, &ingest_password, owner.as_deref()).await?;
    assert_eq!(written["key_users"].as_array().map(Vec::len), Some(1), "{written}");
    broker.reload()?;
    // The reload is asynchronous: retry until the broker has applied it.
    eventually(PATIENCE, "the revoked key to be refused", || {
        let (user, key) = (a_user.clone(), a_key.clone());
        async move {
            let refused = refusal(connect(port, Some((&user, &key))).await?);
            Ok(refused.filter(|code| *code == ConnectReturnCode::NotAuthorized))
        }
    })
    .await?;

    // The keys that are still valid, and the ingest service's session, keep working.
    let mut b = must_connect(port, &b_user, &b_key).await?;
    b.publish("hoheit/v1/stadt-b/t/p", "after the reload").await?;
    let mut ingest = must_connect(port, "hoheit-ingest", &ingest_password).await?;
    ingest.subscribe("hoheit/v1/#").await?;
    b.publish("hoheit/v1/stadt-b/t/p", "to the new session").await?;
    assert_eq!(message(&ingest.next_message().await?), ("hoheit/v1/stadt-b/t/p".into(), "to the new session".into()));

    broker.stop().await;
    isolation.drop_database().await;
    Ok(())
}

/// The shared broker of the local set-up (and so of this test run) admits no
/// anonymous client, while the login the tests were given works.
#[tokio::test]
async fn the_local_broker_refuses_anonymous_clients() -> anyhow::Result<()> {
    let port = hoheit_tests::mqtt_port();
    assert_eq!(
        refusal(connect(port, None).await?),
        Some(ConnectReturnCode::NotAuthorized),
        "an anonymous client connected to the shared broker on 127.0.0.1:{port}"
    );
    let (user, password) = hoheit_tests::mqtt_login().context("HOHEIT_MQTT_USERNAME and _PASSWORD are not set")?;
    must_connect(port, &user, &password).await?;
    assert_eq!(
        refusal(connect(port, Some((&user, "not-the-password"))).await?),
        Some(ConnectReturnCode::NotAuthorized)
    );
    Ok(())
}

/// Registers a thing with one datastream `belegt` of `org` in the store.
async fn thing(pool: &sqlx::PgPool, org: &str, slug: &str) -> anyhow::Result<()> {
    use hoheit_domain::Slug;
    use hoheit_store::registry::{self, NewDatastream, NewThing};
    let (org, slug) = (Slug::parse("org", org)?, Slug::parse("thing", slug)?);
    let new_thing = NewThing {
        org: org.clone(),
        slug: slug.clone(),
        name: slug.to_string(),
        latitude: None,
        longitude: None,
        external_id: None,
        device_type: None,
    };
    registry::create_thing(pool, &new_thing).await?;
    let new_datastream = NewDatastream {
        org,
        thing: slug,
        property: Slug::parse("property", "belegt")?,
        name: "belegt".into(),
        unit: None,
        min: None,
        max: None,
    };
    registry::create_datastream(pool, &new_datastream).await?;
    Ok(())
}

/// A user's key, created with the CLI: (MQTT user, key).
async fn key_of(db: &str, org: &str, name: &str, role: &str) -> anyhow::Result<(String, String)> {
    admin(db, &["principals", "create", name, "--org", org, "--kind", "service", "--role", role]).await?;
    let key = admin_json(db, &["keys", "create", name]).await?;
    Ok((key["mqtt_user"].as_str().context("mqtt user")?.to_owned(), key["key"].as_str().context("key")?.to_owned()))
}

#[tokio::test]
async fn readers_publish_nothing_and_a_supplier_publishes_the_supplied_things_until_the_grant_is_revoked(
) -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let db = isolation.database_url.as_str();
    for org in ["stadt", "parkraum-gmbh"] {
        admin(db, &["organisations", "create", org, "--name", org]).await?;
    }
    for slug in ["parkhaus-1", "parkhaus-2"] {
        thing(&pool, "stadt", slug).await?;
    }
    admin(
        db,
        &[
            "datasets",
            "create",
            "parken",
            "--owner",
            "stadt",
            "--title",
            "Parkhausbelegung",
            "--steward-contact",
            "daten@stadt.example",
            "--classification",
            "restricted",
            "--license",
            "http://dcat-ap.de/def/licenses/dl-by-de/2.0",
            "--purpose",
            "Parkleitsystem",
            "--retention-days",
            "365",
        ],
    )
    .await?;
    admin(db, &["datasets", "assign", "parken", "--thing", "stadt/parkhaus-1", "--thing", "stadt/parkhaus-2"]).await?;
    let (reader_user, reader_key) = key_of(db, "stadt", "leser", "reader").await?;
    let (vendor_user, vendor_key) = key_of(db, "parkraum-gmbh", "zaehler", "publisher").await?;
    let grant = admin_json(
        db,
        &[
            "supply-grants",
            "add",
            "--dataset",
            "parken",
            "--supplier",
            "parkraum-gmbh",
            "--contract-ref",
            "PV-1",
            "--thing",
            "parkhaus-1",
        ],
    )
    .await?;
    let grant_id = grant["id"].as_i64().context("supply grant id")?;
    let listed = admin_json(db, &["supply-grants", "list", "--supplier", "parkraum-gmbh"]).await?;
    assert_eq!(listed[0]["thing_slugs"], serde_json::json!(["parkhaus-1"]), "{listed}");

    let temp = tempfile::tempdir()?;
    let files = temp.path().join("files");
    std::fs::create_dir(&files)?;
    let root = running_as_root();
    let owner = if root { mosquitto_owner() } else { None };
    if owner.is_some() {
        std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(&files, std::fs::Permissions::from_mode(0o755))?;
    }
    let ingest_password = uuid::Uuid::new_v4().simple().to_string();
    let written = generate(db, &files, &ingest_password, owner.as_deref()).await?;
    assert_eq!(written["supplied_things"], 1, "{written}");
    let acl = std::fs::read_to_string(files.join("mosquitto.acl"))?;
    let reader_rules: Vec<&str> =
        acl.lines().skip_while(|l| *l != format!("user {reader_user}")).skip(1).take_while(|l| !l.is_empty()).collect();
    assert!(reader_rules.iter().all(|l| !l.starts_with("topic")), "a reader writes nothing: {acl}");
    let broker = Broker::start(temp.path(), &files, root && owner.is_none()).await?;
    let port = broker.port;

    let mut ingest = must_connect(port, "hoheit-ingest", &ingest_password).await?;
    ingest.subscribe("hoheit/v1/#").await?;
    let supplied = "hoheit/v1/stadt/parkhaus-1/belegt";

    // The reader may connect, but the broker drops what it publishes, even into its own organisation.
    let mut reader = must_connect(port, &reader_user, &reader_key).await?;
    reader.publish(supplied, "from a reader").await?;
    reader.publish("hoheit/v1/stadt/parkhaus-2/belegt", "from a reader").await?;
    let mut vendor = must_connect(port, &vendor_user, &vendor_key).await?;
    vendor.publish(supplied, "supplied").await?;
    assert_eq!(message(&ingest.next_message().await?), (supplied.into(), "supplied".into()));
    // A thing of the town the grant does not cover, and the town's other topics: dropped.
    vendor.publish("hoheit/v1/stadt/parkhaus-2/belegt", "not supplied").await?;
    vendor.publish("hoheit/v1/stadt/other", "not supplied").await?;
    vendor.publish("hoheit/v1/parkraum-gmbh/eigen/belegt", "own").await?;
    assert_eq!(message(&ingest.next_message().await?), ("hoheit/v1/parkraum-gmbh/eigen/belegt".into(), "own".into()));
    drop(vendor);

    // Revoked and rendered again: the broker drops the supplier's publishes to the town's thing.
    admin(db, &["supply-grants", "revoke", &grant_id.to_string()]).await?;
    let written = generate(db, &files, &ingest_password, owner.as_deref()).await?;
    assert_eq!(written["supplied_things"], 0, "{written}");
    broker.reload()?;
    // The reload is asynchronous: publish until the broker drops the supplied topic.
    let deadline = std::time::Instant::now() + PATIENCE;
    for attempt in 0.. {
        anyhow::ensure!(std::time::Instant::now() < deadline, "the revoked supply grant's topic is still writable");
        let mut vendor = must_connect(port, &vendor_user, &vendor_key).await?;
        let marker = format!("marker {attempt}");
        vendor.publish(supplied, "after the revocation").await?;
        vendor.publish("hoheit/v1/parkraum-gmbh/eigen/belegt", &marker).await?;
        if message(&ingest.next_message().await?).1 == marker {
            break;
        }
        assert_eq!(message(&ingest.next_message().await?).1, marker);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    broker.stop().await;
    isolation.drop_database().await;
    Ok(())
}
