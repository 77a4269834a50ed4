//! The deployment files, checked without a container engine or a cluster:
//!
//! - `deploy/compose/compose.yaml` validates against the compose-spec JSON
//!   schema and agrees with `deploy/hoheit.env`, the Dockerfile, Prometheus,
//!   Mosquitto and the Grafana dashboard (`deploy/check/check_deploy.py compose`);
//! - the Helm chart lints, and renders objects that validate against the
//!   Kubernetes JSON schemas and hang together, for the default values and for
//!   `ci/external-values.yaml` (`deploy/check/check_deploy.py helm`);
//! - the local set-up and the services' own defaults use the ports and names
//!   of `deploy/hoheit.env`, the one place they are kept;
//! - no Mosquitto that a set-up ships (local, compose, chart) admits anonymous
//!   clients: each reads the password and ACL files `hoheit-admin mqtt-config`
//!   writes, and ingest and the simulator log in as different users (both
//!   checkers).
//!
//! The checkers need helm and a Python environment with PyYAML, jsonschema and
//! kubernetes-validate in `$HOHEIT_TOOLS_DIR` (default `/opt/hoheit-tools`),
//! which `deploy/local/hoheit tools` (and so `deploy/local/hoheit test`) installs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use clap::CommandFactory;
use hoheit_alerts::AlertsConfig;
use hoheit_api::ApiConfig;
use hoheit_ingest::IngestConfig;
use hoheit_simulator::SimulatorConfig;
use hoheit_writer::WriterConfig;

use hoheit_tests::repo;

/// `deploy/hoheit.env` as a map.
fn shared_env() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo().join("deploy/hoheit.env")).expect("deploy/hoheit.env");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (key, value) = l.split_once('=').unwrap_or_else(|| panic!("not KEY=VALUE: {l}"));
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

fn tools_dir() -> PathBuf {
    let dir = std::env::var_os("HOHEIT_TOOLS_DIR").map(PathBuf::from).unwrap_or_else(|| "/opt/hoheit-tools".into());
    assert!(
        dir.join("bin/helm").is_file() && dir.join("venv/bin/python").is_file(),
        "the deployment checkers are not installed in {}: run `deploy/local/hoheit tools` (as root)",
        dir.display()
    );
    dir
}

/// Runs `check_deploy.py WHAT` and fails with its report unless it found nothing.
fn run_checker(what: &str) {
    let tools = tools_dir();
    let output = Command::new(tools.join("venv/bin/python"))
        .arg(repo().join("deploy/check/check_deploy.py"))
        .arg(what)
        .env("HELM", tools.join("bin/helm"))
        .output()
        .expect("running check_deploy.py");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "check_deploy.py {what} found problems:\n{report}");
    assert!(report.contains(&format!("check_deploy {what}: 0 problem(s)")), "unexpected report:\n{report}");
}

#[test]
fn the_compose_file_is_valid_and_agrees_with_the_shared_environment() {
    run_checker("compose");
}

#[test]
fn the_chart_renders_valid_kubernetes_objects_for_default_and_external_values() {
    run_checker("helm");
}

#[test]
fn the_local_set_up_takes_its_ports_and_names_from_the_shared_file() {
    let shared = shared_env();
    // A clean environment, so that only deploy/hoheit.env can supply the values;
    // a token given, so that the script writes no token file.
    let output = Command::new("bash")
        .arg(repo().join("deploy/local/hoheit"))
        .arg("env")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOHEIT_API_TOKEN", "token-for-the-env-test-0123456789")
        .output()
        .expect("running deploy/local/hoheit env");
    assert!(output.status.success(), "hoheit env failed: {}", String::from_utf8_lossy(&output.stderr));
    let printed: BTreeMap<String, String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let get = |key: &str| shared[key].as_str();
    let expected = [
        ("HOHEIT_MQTT_HOST", "127.0.0.1".to_owned()),
        ("HOHEIT_MQTT_PORT", get("HOHEIT_MQTT_PORT").to_owned()),
        ("HOHEIT_KAFKA_BOOTSTRAP", format!("127.0.0.1:{}", get("HOHEIT_KAFKA_PORT"))),
        ("HOHEIT_API_LISTEN", format!("127.0.0.1:{}", get("HOHEIT_API_PORT"))),
        ("HOHEIT_INGEST_OPS_LISTEN", format!("127.0.0.1:{}", get("HOHEIT_INGEST_OPS_PORT"))),
        ("HOHEIT_INGEST_HTTP_LISTEN", format!("127.0.0.1:{}", get("HOHEIT_INGEST_HTTP_PORT"))),
        ("HOHEIT_INGEST_URL", format!("http://127.0.0.1:{}", get("HOHEIT_INGEST_HTTP_PORT"))),
        ("HOHEIT_WRITER_OPS_LISTEN", format!("127.0.0.1:{}", get("HOHEIT_WRITER_OPS_PORT"))),
        (
            "HOHEIT_DATABASE_URL",
            format!(
                "postgres://{user}:{user}@127.0.0.1:{}/{}",
                get("HOHEIT_PG_PORT"),
                get("HOHEIT_DATABASE_NAME"),
                user = get("HOHEIT_DATABASE_USER")
            ),
        ),
        ("HOHEIT_MQTT_TOPIC_ROOT", get("HOHEIT_MQTT_TOPIC_ROOT").to_owned()),
        ("HOHEIT_MQTT_CLIENT_ID", get("HOHEIT_MQTT_CLIENT_ID").to_owned()),
        ("HOHEIT_KAFKA_TOPIC_PREFIX", get("HOHEIT_KAFKA_TOPIC_PREFIX").to_owned()),
        ("HOHEIT_WRITER_GROUP", get("HOHEIT_WRITER_GROUP").to_owned()),
        ("HOHEIT_ALERTS_OPS_LISTEN", format!("127.0.0.1:{}", get("HOHEIT_ALERTS_OPS_PORT"))),
        ("HOHEIT_ALERTS_GROUP", get("HOHEIT_ALERTS_GROUP").to_owned()),
        ("HOHEIT_API_TOKEN", "token-for-the-env-test-0123456789".to_owned()),
    ];
    for (key, value) in expected {
        assert_eq!(printed.get(key), Some(&value), "{key} printed by `hoheit env`");
    }
}

/// The default value of argument `id` of a service's configuration.
fn default_of(command: &clap::Command, id: &str) -> String {
    command
        .get_arguments()
        .find(|a| a.get_id() == id)
        .and_then(|a| a.get_default_values().first())
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_else(|| panic!("{} has no default for {id}", command.get_name()))
}

#[test]
fn the_services_built_in_defaults_are_those_of_the_shared_file() {
    let shared = shared_env();
    let port_of = |address: String| address.rsplit_once(':').map(|(_, p)| p.to_owned()).unwrap_or_default();
    let ingest = IngestConfig::command();
    assert_eq!(default_of(&ingest, "mqtt_port"), shared["HOHEIT_MQTT_PORT"]);
    assert_eq!(default_of(&ingest, "mqtt_client_id"), shared["HOHEIT_MQTT_CLIENT_ID"]);
    assert_eq!(default_of(&ingest, "topic_root"), shared["HOHEIT_MQTT_TOPIC_ROOT"]);
    assert_eq!(default_of(&ingest, "topic_prefix"), shared["HOHEIT_KAFKA_TOPIC_PREFIX"]);
    assert_eq!(port_of(default_of(&ingest, "bootstrap")), shared["HOHEIT_KAFKA_PORT"]);
    assert_eq!(port_of(default_of(&ingest, "ops_listen")), shared["HOHEIT_INGEST_OPS_PORT"]);
    assert_eq!(port_of(default_of(&ingest, "http_listen")), shared["HOHEIT_INGEST_HTTP_PORT"]);
    let database = default_of(&ingest, "url");
    let expected_db = format!("@127.0.0.1:{}/{}", shared["HOHEIT_PG_PORT"], shared["HOHEIT_DATABASE_NAME"]);
    assert!(database.ends_with(&expected_db), "database default {database} vs {expected_db}");
    let writer = WriterConfig::command();
    assert_eq!(default_of(&writer, "group"), shared["HOHEIT_WRITER_GROUP"]);
    assert_eq!(port_of(default_of(&writer, "ops_listen")), shared["HOHEIT_WRITER_OPS_PORT"]);
    let alerts = AlertsConfig::command();
    assert_eq!(default_of(&alerts, "group"), shared["HOHEIT_ALERTS_GROUP"]);
    assert_eq!(port_of(default_of(&alerts, "ops_listen")), shared["HOHEIT_ALERTS_OPS_PORT"]);
    let api = ApiConfig::command();
    assert_eq!(port_of(default_of(&api, "listen")), shared["HOHEIT_API_PORT"]);
    assert_eq!(port_of(default_of(&api, "ingest_url")), shared["HOHEIT_INGEST_HTTP_PORT"]);
    assert_eq!(default_of(&api, "topic_root"), shared["HOHEIT_MQTT_TOPIC_ROOT"]);
    let simulator = SimulatorConfig::command();
    assert_eq!(default_of(&simulator, "topic_root"), shared["HOHEIT_MQTT_TOPIC_ROOT"]);
    assert_eq!(port_of(default_of(&simulator, "api_url")), shared["HOHEIT_API_PORT"]);
}
