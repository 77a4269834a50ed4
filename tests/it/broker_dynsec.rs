//! Broker credentials at once, against the real Mosquitto with its dynamic
//! security plugin: the broker starts from the configuration that
//! `hoheit-admin mqtt-config --dynsec` renders (with the local set-up's
//! `deploy/local/mosquitto.conf.in`), on which a key issued before works; the
//! API and ingest then keep it in step with the registry: a key created
//! through the API publishes at once (its reading is stored through ingest,
//! Kafka and the writer), a datastream registered later reaches its role
//! within a second, a revoked or expired key and the keys
//! of a disabled principal are disconnected and refused, a reader key
//! publishes nothing, anonymous clients and wrong passwords are refused; a
//! supply grant opens the owner's thing to the supplier's key within a
//! second, and its revocation closes it again.
//!
//! Each test starts its own `mosquitto` on a free loopback port with its own
//! state in a temporary directory and kills exactly that process at the end.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context};
use hoheit_broker::dynsec::DynsecArgs;
use hoheit_runtime::config::Secret;
use hoheit_runtime::mqtt::MqttArgs;
use hoheit_tests::{eventually, repo, start_api_with, start_ingest_with, start_writer, Isolation, TOKEN};
use serde_json::json;

use crate::admin_support::admin_json;
use crate::broker_acl::{connect, mosquitto_bin, must_connect, refusal, running_as_root, Session, PATIENCE};

const ADMIN_USER: &str = "hoheit-broker-admin";
const ADMIN_PASSWORD: &str = "broker-admin-password-of-the-test";
const INGEST_USER: &str = "hoheit-ingest";
const INGEST_PASSWORD: &str = "ingest-password-of-the-test";
const DEV_USER: &str = "hoheit-dev";
const DEV_PASSWORD: &str = "dev-password-of-the-test";

/// Mosquitto's dynamic security plugin (`HOHEIT_MOSQUITTO_DYNSEC_PLUGIN`, or Debian's).
fn dynsec_plugin() -> anyhow::Result<PathBuf> {
    if let Some(plugin) = std::env::var_os("HOHEIT_MOSQUITTO_DYNSEC_PLUGIN") {
        return Ok(plugin.into());
    }
    let lib = Path::new("/usr/lib");
    let mut candidates = vec![lib.join("mosquitto_dynamic_security.so")];
    for entry in std::fs::read_dir(lib)?.flatten() {
        candidates.push(entry.path().join("mosquitto_dynamic_security.so"));
    }
    candidates.into_iter().find(|p| p.is_file()).context("mosquitto_dynamic_security.so not found")
}

/// A mosquitto of this test, configured as the local set-up configures its own.
struct Broker {
    child: tokio::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// Renders the plugin's configuration from the registry (`mqtt-config --dynsec`), the
    /// development user's password and ACL files, and the local set-up's mosquitto.conf; starts it.
    async fn start(db: &str, root: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let auth = dir.path().join("auth");
        std::fs::create_dir(&auth)?;
        let dynsec = auth.join("dynamic-security.json");
        admin_json(
            db,
            &[
                "mqtt-config",
                "--dynsec",
                dynsec.to_str().context("temporary path is not UTF-8")?,
                "--topic-root",
                root,
                "--ingest-username",
                INGEST_USER,
                "--ingest-password",
                INGEST_PASSWORD,
                "--admin-username",
                ADMIN_USER,
                "--admin-password",
                ADMIN_PASSWORD,
            ],
        )
        .await?;
        let status = std::process::Command::new("mosquitto_passwd")
            .arg("-c")
            .arg("-b")
            .arg(auth.join("mosquitto.passwd"))
            .args([DEV_USER, DEV_PASSWORD])
            .status()?;
        anyhow::ensure!(status.success(), "mosquitto_passwd failed");
        std::fs::write(auth.join("mosquitto.acl"), format!("user {DEV_USER}\ntopic readwrite #\n"))?;

        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let template = std::fs::read_to_string(repo().join("deploy/local/mosquitto.conf.in"))?;
        let mut config = template
            .replace("@MOSQ_DIR@", dir.path().to_str().context("temporary path is not UTF-8")?)
            .replace("@MQTT_PORT@", &port.to_string())
            .replace("@DYNSEC_PLUGIN@", dynsec_plugin()?.to_str().context("plugin path is not UTF-8")?);
        if running_as_root() {
            config.push_str("user root\n");
        }
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(&conf, config)?;
        let child = tokio::process::Command::new(mosquitto_bin())
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting mosquitto")?;
        let mut broker = Self { child, port, _dir: dir };
        let log = broker._dir.path().join("mosquitto.log");
        eventually(PATIENCE, "mosquitto to listen", || {
            let exited = broker.child.try_wait();
            let log = log.clone();
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

    fn dynsec_args(&self) -> DynsecArgs {
        DynsecArgs {
            broker_admin_username: Some(ADMIN_USER.into()),
            broker_admin_password: Some(Secret::new(ADMIN_PASSWORD)),
            broker_admin_host: "127.0.0.1".into(),
            broker_admin_port: self.port,
        }
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Waits until the broker closes the session.
async fn disconnected(session: &mut Session) -> anyhow::Result<()> {
    tokio::time::timeout(PATIENCE, async { while session.incoming.recv().await.is_some() {} })
        .await
        .context("the broker did not disconnect the client")
}

/// Issues a key through the API for a new principal of `org`; returns (key id, principal id, user, key).
async fn api_key(
    api: &hoheit_tests::ApiClient,
    org: &str,
    name: &str,
    role: &str,
) -> anyhow::Result<(i64, i64, String, String)> {
    let principal =
        api.post_ok("/v1/admin/principals", json!({"org": org, "name": name, "kind": "service", "role": role})).await?;
    let principal = principal["id"].as_i64().context("principal id")?;
    let issued = api.post_ok(&format!("/v1/admin/principals/{principal}/keys"), json!({})).await?;
    Ok((
        issued["id"].as_i64().context("key id")?,
        principal,
        issued["lookup"].as_str().context("lookup")?.to_owned(),
        issued["key"].as_str().context("key")?.to_owned(),
    ))
}

#[tokio::test]
async fn keys_reach_the_broker_at_once_and_revoked_expired_or_disabled_ones_are_disconnected() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let db = isolation.database_url.as_str();
    let root = isolation.topic_root.as_str();

    // A key issued before the broker started (no dynamic security configured for the CLI here).
    admin_json(db, &["organisations", "create", "stadt", "--name", "Stadt"]).await?;
    let old_principal = admin_json(
        db,
        &["principals", "create", "altgeraet", "--org", "stadt", "--kind", "service", "--role", "publisher"],
    )
    .await?;
    let old = admin_json(db, &["keys", "create", "altgeraet"]).await?;
    let (old_user, old_key) = (old["mqtt_user"].as_str().context("user")?, old["key"].as_str().context("key")?);

    let broker = Broker::start(db, root).await?;
    let port = broker.port;
    let mut watcher = must_connect(port, DEV_USER, DEV_PASSWORD).await?;
    watcher.subscribe(&format!("{root}/#")).await?;

    // The rendered configuration holds the key from before.
    let mut old_session = must_connect(port, old_user, old_key).await?;
    old_session.publish(&format!("{root}/stadt/alt/temperature"), "from-before").await?;
    assert_eq!(String::from_utf8_lossy(&watcher.next_message().await?.payload), "from-before");

    // Anonymous clients and wrong passwords are refused.
    assert!(refusal(connect(port, None).await?).is_some(), "an anonymous client was admitted");
    assert!(refusal(connect(port, Some((old_user, "wrong"))).await?).is_some(), "a wrong password was admitted");
    assert!(refusal(connect(port, Some((ADMIN_USER, "wrong"))).await?).is_some());

    let (api_running, api) = start_api_with(&isolation, |c| c.broker = broker.dynsec_args()).await?;
    let ingest = start_ingest_with(&isolation, |c| {
        c.mqtt = MqttArgs {
            mqtt_host: "127.0.0.1".into(),
            mqtt_port: port,
            mqtt_username: Some(INGEST_USER.into()),
            mqtt_password: Some(Secret::new(INGEST_PASSWORD)),
        };
        c.sta_mqtt_prefix = "v1.1".into();
        c.broker = broker.dynsec_args();
    })
    .await?;
    let writer = start_writer(&isolation).await?;
    let level = api.register("stadt", "pegel-1", "level", Some("m")).await?;
    // Registering a datastream changes the roles of the organisation's writer keys, which makes
    // Mosquitto 2.0 disconnect their clients: wait until ingest has done it for the old key.
    disconnected(&mut old_session).await?;

    // A key created through the API publishes as soon as the answer is there, and its reading is
    // stored through the pipeline (ingest, Kafka, writer).
    let (key_id, _, user, key) = api_key(&api, "stadt", "gateway-a", "publisher").await?;
    let mut session = must_connect(port, &user, &key).await?;
    let topic = format!("{root}/stadt/pegel-1/level");
    let reading = r#"{"value": 1.25, "unit": "m"}"#;
    session.publish(&topic, reading).await?;
    assert_eq!(String::from_utf8_lossy(&watcher.next_message().await?.payload), reading);
    eventually(PATIENCE, "the reading in the database", || {
        let pool = pool.clone();
        async move {
            let stored: i64 =
                sqlx::query_scalar("SELECT count(*) FROM observations WHERE datastream_id = $1 AND value = 1.25")
                    .bind(level)
                    .fetch_one(&pool)
                    .await?;
            Ok((stored == 1).then_some(()))
        }
    })
    .await?;
    // … only below its own organisation.
    session.publish(&format!("{root}/andere/pegel-1/level"), "foreign").await?;

    // A reader key connects but publishes nothing (Mosquitto acknowledges and drops it).
    let (_, _, reader_user, reader_key) = api_key(&api, "stadt", "leser", "reader").await?;
    let mut reader = must_connect(port, &reader_user, &reader_key).await?;
    reader.publish(&topic, "from-reader").await?;
    session.publish(&topic, "after-reader").await?;
    assert_eq!(
        String::from_utf8_lossy(&watcher.next_message().await?.payload),
        "after-reader",
        "the foreign topic or the reader's publish got through"
    );

    // A datastream registered later: the key may publish to its SensorThings topic within a
    // second (ingest's reconcile adds it to the key's role).
    let datastream = api.register("stadt", "pegel-1", "flow", Some("m3/s")).await?;
    let sta_topic = format!("v1.1/Datastreams({datastream})/Observations");
    watcher.subscribe("v1.1/#").await?;
    let started = std::time::Instant::now();
    let mut delivered = false;
    while !delivered {
        anyhow::ensure!(started.elapsed() < PATIENCE, "the new datastream's topic never reached the key's role");
        session.publish(&sta_topic, r#"{"result": 1.5}"#).await?;
        session.publish(&topic, "marker").await?;
        loop {
            let message = watcher.next_message().await?;
            delivered |= message.topic == sta_topic;
            if message.payload.as_ref() == b"marker" {
                break;
            }
        }
        if !delivered {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    // Mosquitto 2.0 disconnects the clients of a role whose ACLs change (they reconnect): new
    // sessions, so that what follows sees only the disconnections it causes.
    let mut session = must_connect(port, &user, &key).await?;
    let mut old_session = must_connect(port, old_user, old_key).await?;

    // Revoked through the API: disconnected, and refused from then on.
    let revoked = api.http.delete(format!("{}/v1/admin/keys/{key_id}", api.base)).bearer_auth(TOKEN).send().await?;
    assert_eq!(revoked.status(), 204);
    disconnected(&mut session).await?;
    assert!(refusal(connect(port, Some((&user, &key))).await?).is_some(), "a revoked key was admitted");

    // Expired (its time has come): ingest's reconcile removes it.
    let (_, _, expiring_user, expiring_key) = api_key(&api, "stadt", "kurzzeit", "publisher").await?;
    let mut expiring = must_connect(port, &expiring_user, &expiring_key).await?;
    let lookup = expiring_user.strip_prefix("hoh_").context("key user")?;
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE lookup = $1")
        .bind(lookup)
        .execute(&pool)
        .await?;
    disconnected(&mut expiring).await?;
    assert!(refusal(connect(port, Some((&expiring_user, &expiring_key))).await?).is_some(), "an expired key");

    // A disabled principal's keys (the one from before the broker started included) go too.
    let old_id = old_principal["id"].as_i64().context("principal id")?;
    let disabled =
        api.http.delete(format!("{}/v1/admin/principals/{old_id}", api.base)).bearer_auth(TOKEN).send().await?;
    assert_eq!(disabled.status(), 200);
    disconnected(&mut old_session).await?;
    assert!(refusal(connect(port, Some((old_user, old_key))).await?).is_some(), "a disabled principal's key");

    writer.stop().await?;
    ingest.stop().await?;
    api_running.stop().await?;
    broker.stop().await;
    isolation.drop_database().await;
    Ok(())
}

/// Publishes `probe` on `topic` and a marker on `marker_topic` (which the key may always write);
/// true if the probe reached the watcher before the marker. An error: the session is gone
/// (Mosquitto disconnects the clients of a role whose rules change).
async fn probe_delivered(
    session: &mut Session,
    watcher: &mut Session,
    topic: &str,
    marker_topic: &str,
) -> anyhow::Result<bool> {
    session.publish(topic, r#"{"value": 1}"#).await?;
    session.publish(marker_topic, "marker").await?;
    let mut delivered = false;
    loop {
        let message = watcher.next_message().await?;
        delivered |= message.topic == topic;
        if message.topic == marker_topic {
            return Ok(delivered);
        }
    }
}

/// Probes until the probe's delivery is `wanted`, reconnecting when the broker dropped the session.
async fn until_delivery_is(
    wanted: bool,
    port: u16,
    (user, key): (&str, &str),
    watcher: &mut Session,
    topic: &str,
    marker_topic: &str,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut session = must_connect(port, user, key).await?;
    loop {
        anyhow::ensure!(
            started.elapsed() < PATIENCE,
            "{topic} never became {}",
            if wanted { "writable" } else { "closed" }
        );
        match probe_delivered(&mut session, watcher, topic, marker_topic).await {
            Ok(delivered) if delivered == wanted => return Ok(()),
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            Err(_) => session = must_connect(port, user, key).await?,
        }
    }
}

#[tokio::test]
async fn a_supply_grant_opens_the_owners_thing_to_the_suppliers_key_within_a_second_and_its_end_closes_it(
) -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let _pool = isolation.create_database().await?;
    let db = isolation.database_url.as_str();
    let root = isolation.topic_root.clone();
    let broker = Broker::start(db, &root).await?;
    let port = broker.port;
    let (api_running, api) = start_api_with(&isolation, |c| c.broker = broker.dynsec_args()).await?;
    let ingest = start_ingest_with(&isolation, |c| {
        c.mqtt = MqttArgs {
            mqtt_host: "127.0.0.1".into(),
            mqtt_port: port,
            mqtt_username: Some(INGEST_USER.into()),
            mqtt_password: Some(Secret::new(INGEST_PASSWORD)),
        };
        c.sta_mqtt_prefix = "v1.1".into();
        c.broker = broker.dynsec_args();
    })
    .await?;

    api.organisation("parkraum-gmbh", "third_party", None).await?;
    api.register("stadt", "parkhaus-1", "occupancy", None).await?;
    admin_json(
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
    admin_json(db, &["datasets", "assign", "parken", "--thing", "stadt/parkhaus-1"]).await?;
    let (_, _, vendor_user, vendor_key) = api_key(&api, "parkraum-gmbh", "zaehler", "publisher").await?;
    let mut watcher = must_connect(port, DEV_USER, DEV_PASSWORD).await?;
    watcher.subscribe(&format!("{root}/#")).await?;
    let owners_thing = format!("{root}/stadt/parkhaus-1/occupancy");
    let own = format!("{root}/parkraum-gmbh/zaehler/marker");
    let vendor = (vendor_user.as_str(), vendor_key.as_str());

    // Without a grant the vendor's key cannot write the town's thing.
    let mut session = must_connect(port, vendor.0, vendor.1).await?;
    assert!(!probe_delivered(&mut session, &mut watcher, &owners_thing, &own).await?, "written without a grant");

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
    until_delivery_is(true, port, vendor, &mut watcher, &owners_thing, &own).await?;

    let grant_id = grant["id"].as_i64().context("supply grant id")?.to_string();
    admin_json(db, &["supply-grants", "revoke", &grant_id]).await?;
    until_delivery_is(false, port, vendor, &mut watcher, &owners_thing, &own).await?;

    ingest.stop().await?;
    api_running.stop().await?;
    broker.stop().await;
    isolation.drop_database().await;
    Ok(())
}
