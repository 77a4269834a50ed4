//! Mosquitto's dynamic security plugin (`mosquitto_dynamic_security.so`,
//! Mosquitto 2.0): its control protocol and its configuration file.
//!
//! The protocol: a client of the plugin's admin user publishes
//! `{"commands": [...]}` to `$CONTROL/dynamic-security/v1` and reads
//! `{"responses": [...]}` on `…/v1/response`, each answer carrying the
//! `correlationData` of its command and an `error` when it failed.
//! [`Control`] keeps one connection, correlates answers with requests and
//! gives up on a request after [`REQUEST_TIMEOUT`].
//!
//! The configuration file ([`render_config`]) is what the plugin reads at
//! start: clients with the PBKDF2-SHA512 hash of their password (the
//! registry's `$7$` hashes carry it), one role per user. 2.0.11's
//! `createClient` takes only a plaintext password, so a key that did not
//! reach a running broker (it was unreachable) gets there only through this
//! file.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoheit_runtime::config::Secret;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::rules::{BrokerUser, KeyUser, RuleError, ServiceUsers, TopicRoot, WriteScope, STA_CREATE_FILTER};

/// Where the plugin takes commands.
pub const CONTROL_TOPIC: &str = "$CONTROL/dynamic-security/v1";
/// Where it answers.
pub const RESPONSE_TOPIC: &str = "$CONTROL/dynamic-security/v1/response";
/// The longest a request waits for its answer (or for the connection).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The broker and its dynamic security admin user.
#[derive(Debug, Clone)]
pub struct BrokerAdmin {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Secret,
}

/// The services' broker admin settings; no user name: no dynamic security
/// (the broker's users then come from `hoheit-admin mqtt-config` files).
#[derive(Debug, Clone, clap::Args)]
pub struct DynsecArgs {
    /// Admin user of the broker's dynamic security plugin: keys created, revoked or expired reach
    /// the broker at once. Unset: no dynamic security (render `hoheit-admin mqtt-config` files).
    #[arg(long, env = "HOHEIT_BROKER_ADMIN_USERNAME")]
    pub broker_admin_username: Option<String>,
    /// Password of the broker admin user (prefer the environment variable to the flag).
    #[arg(long, env = "HOHEIT_BROKER_ADMIN_PASSWORD", hide_env_values = true)]
    pub broker_admin_password: Option<Secret>,
    /// The broker's host for the admin connection.
    #[arg(long, env = "HOHEIT_MQTT_HOST", default_value = "127.0.0.1")]
    pub broker_admin_host: String,
    /// The broker's port for the admin connection.
    #[arg(long, env = "HOHEIT_MQTT_PORT", default_value_t = 1883)]
    pub broker_admin_port: u16,
}

impl DynsecArgs {
    /// The admin login, if one is configured (a user without a password is an error).
    pub fn admin(&self) -> Result<Option<BrokerAdmin>, RuleError> {
        let Some(username) = self.broker_admin_username.clone().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let password = self.broker_admin_password.clone().filter(|p| !p.expose().is_empty()).ok_or_else(|| {
            RuleError("HOHEIT_BROKER_ADMIN_USERNAME is set but HOHEIT_BROKER_ADMIN_PASSWORD is empty".into())
        })?;
        Ok(Some(BrokerAdmin { host: self.broker_admin_host.clone(), port: self.broker_admin_port, username, password }))
    }
}

/// Why a request got no answer, or a command failed.
#[derive(Debug, thiserror::Error)]
pub enum DynsecError {
    #[error("the broker's dynamic security plugin did not answer within {0:?} (broker unreachable?)")]
    Unreachable(Duration),
    #[error("dynamic security command {command} failed: {error}")]
    Command { command: String, error: String },
    #[error("unexpected dynamic security answer: {0}")]
    Protocol(String),
}

/// One command's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub command: String,
    /// The plugin's reason, if the command failed.
    pub error: Option<String>,
    pub data: Value,
}

impl Answer {
    /// Success, or an error that only says the wanted state is there already
    /// (another replica was first): "already exists", "not found" on deletes.
    pub fn ok_or_done(self) -> Result<Self, DynsecError> {
        match &self.error {
            None => Ok(self),
            Some(e) if e.contains("already exists") || e.contains("not found") => Ok(self),
            Some(e) => Err(DynsecError::Command { command: self.command.clone(), error: e.clone() }),
        }
    }

    pub fn ok(self) -> Result<Self, DynsecError> {
        match &self.error {
            None => Ok(self),
            Some(e) => Err(DynsecError::Command { command: self.command.clone(), error: e.clone() }),
        }
    }
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Answer>>>>;

/// One connection to the plugin, shared by every request of a service.
pub struct Control {
    client: AsyncClient,
    pending: Pending,
    subscribed: watch::Receiver<bool>,
    prefix: String,
    next: AtomicU64,
    task: JoinHandle<()>,
}

impl Drop for Control {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Control {
    /// Connects in the background (and again after a loss); requests wait for the connection.
    /// `purpose` names the client id (`hoheit-dynsec-{purpose}-…`).
    pub fn connect(admin: &BrokerAdmin, purpose: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let prefix = format!("{}-{nanos:x}", std::process::id());
        let mut options = MqttOptions::new(format!("hoheit-dynsec-{purpose}-{prefix}"), &admin.host, admin.port);
        options.set_credentials(&admin.username, admin.password.expose());
        options.set_keep_alive(Duration::from_secs(30));
        options.set_clean_session(true);
        // listRoles answers with every role: large on a busy broker.
        options.set_max_packet_size(64 * 1024 * 1024, 64 * 1024 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let pending: Pending = Arc::default();
        let (ready, subscribed) = watch::channel(false);
        let task = tokio::spawn({
            let (client, pending) = (client.clone(), pending.clone());
            let broker = format!("{}:{}", admin.host, admin.port);
            async move {
                let mut logged = false;
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            logged = false;
                            if client.try_subscribe(RESPONSE_TOPIC, QoS::AtLeastOnce).is_err() {
                                tracing::warn!("dynamic security: could not queue the response subscription");
                            }
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            let _ = ready.send(true);
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) if p.topic == RESPONSE_TOPIC => {
                            dispatch(&pending, &p.payload);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            let _ = ready.send(false);
                            if !logged {
                                tracing::warn!(%broker, error = %e, "dynamic security: broker connection lost; retrying");
                                logged = true;
                            }
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            }
        });
        Self { client, pending, subscribed, prefix, next: AtomicU64::new(0), task }
    }

    /// Sends the commands in one message and returns their answers in order.
    pub async fn execute(&self, commands: Vec<Value>) -> Result<Vec<Answer>, DynsecError> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        let mut subscribed = self.subscribed.clone();
        tokio::time::timeout_at(deadline, subscribed.wait_for(|s| *s))
            .await
            .map_err(|_| DynsecError::Unreachable(REQUEST_TIMEOUT))?
            .map_err(|_| DynsecError::Unreachable(REQUEST_TIMEOUT))?;
        let mut waiting = Vec::with_capacity(commands.len());
        let mut batch = Vec::with_capacity(commands.len());
        for mut command in commands {
            let id = format!("{}-{}", self.prefix, self.next.fetch_add(1, Ordering::Relaxed));
            let (tx, rx) = oneshot::channel();
            self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), tx);
            if let Some(object) = command.as_object_mut() {
                object.insert("correlationData".into(), Value::String(id.clone()));
            }
            batch.push(command);
            waiting.push((id, rx));
        }
        let body = serde_json::to_vec(&json!({ "commands": batch })).unwrap_or_default();
        let sent = self.client.publish(CONTROL_TOPIC, QoS::AtLeastOnce, false, body).await;
        let mut answers = Vec::with_capacity(waiting.len());
        let mut failed = sent.is_err();
        for (id, rx) in waiting {
            if failed {
                self.forget(&id);
                continue;
            }
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(answer)) => answers.push(answer),
                _ => {
                    failed = true;
                    self.forget(&id);
                }
            }
        }
        if failed {
            return Err(DynsecError::Unreachable(REQUEST_TIMEOUT));
        }
        Ok(answers)
    }

    fn forget(&self, id: &str) {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

/// Hands each answer of a response message to the request waiting for it.
fn dispatch(pending: &Pending, payload: &[u8]) {
    let Ok(message) = serde_json::from_slice::<Value>(payload) else {
        tracing::warn!("dynamic security: an answer that is not JSON");
        return;
    };
    for response in message.get("responses").and_then(Value::as_array).into_iter().flatten() {
        let Some(id) = response.get("correlationData").and_then(Value::as_str) else { continue };
        let Some(tx) = pending.lock().unwrap_or_else(|e| e.into_inner()).remove(id) else { continue };
        let _ = tx.send(Answer {
            command: response.get("command").and_then(Value::as_str).unwrap_or_default().to_owned(),
            error: response.get("error").and_then(Value::as_str).map(str::to_owned),
            data: response.get("data").cloned().unwrap_or(Value::Null),
        });
    }
}

/// A role's ACL entry that lets its clients publish to `topic`.
pub fn publish_acl(topic: &str) -> Value {
    json!({ "acltype": "publishClientSend", "topic": topic, "priority": 0, "allow": true })
}

fn subscribe_acl(topic: &str) -> Value {
    json!({ "acltype": "subscribePattern", "topic": topic, "priority": 0, "allow": true })
}

/// The plugin's client entry of a user with a `$7$` hash, in a role of its own name.
fn client_entry(user: &BrokerUser, text: &str) -> Result<Value, RuleError> {
    let mut parts = user.hash.split('$');
    let (Some(""), Some("7"), Some(iterations), Some(salt), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RuleError(format!("the password hash of {} is not in Mosquitto's $7$ format", user.name)));
    };
    let iterations: u32 = iterations
        .parse()
        .map_err(|_| RuleError(format!("the password hash of {} has no iteration count", user.name)))?;
    Ok(json!({
        "username": user.name,
        "textname": text,
        "password": hash,
        "salt": salt,
        "iterations": iterations,
        "roles": [{ "rolename": user.name }],
    }))
}

/// The roles' ACLs of the broker's service users.
pub fn admin_acls() -> Vec<Value> {
    vec![
        publish_acl("$CONTROL/dynamic-security/#"),
        json!({ "acltype": "publishClientReceive", "topic": "$CONTROL/dynamic-security/#", "priority": 0, "allow": true }),
        subscribe_acl("$CONTROL/dynamic-security/#"),
    ]
}

/// Ingest reads every organisation's topics and SensorThings' create topics.
pub fn ingest_acls(root: &TopicRoot) -> Vec<Value> {
    vec![subscribe_acl(&format!("{}/#", root.as_str())), subscribe_acl(STA_CREATE_FILTER)]
}

/// The gateway writes every organisation's topics.
pub fn gateway_acls(root: &TopicRoot) -> Vec<Value> {
    vec![publish_acl(&format!("{}/#", root.as_str()))]
}

/// The plugin's whole configuration file: the admin user (control topic
/// only), ingest (reads), the optional gateway (writes every organisation)
/// and every usable key with a role of its own name whose ACLs are
/// [`crate::rules::key_topics`]. Everything not allowed is denied, except
/// receiving what a client may subscribe to.
pub fn render_config(
    root: &TopicRoot,
    admin: &BrokerUser,
    services: &ServiceUsers,
    keys: &[KeyUser],
    scope: &WriteScope,
) -> Result<String, RuleError> {
    let mut clients = vec![
        client_entry(admin, "dynamic security admin (control topic only)")?,
        client_entry(&services.ingest, "the ingest service (reads)")?,
    ];
    let mut roles = vec![
        json!({ "rolename": admin.name, "acls": admin_acls() }),
        json!({ "rolename": services.ingest.name, "acls": ingest_acls(root) }),
    ];
    if let Some(gateway) = &services.gateway {
        clients.push(client_entry(gateway, "the gateway (writes every organisation)")?);
        roles.push(json!({ "rolename": gateway.name, "acls": gateway_acls(root) }));
    }
    for key in keys {
        clients.push(client_entry(&key.user, &format!("a {} key of {}", key.role, key.org))?);
        let acls: Vec<Value> = crate::rules::key_topics(root, key, scope).iter().map(|t| publish_acl(t)).collect();
        roles.push(json!({ "rolename": key.user.name, "acls": acls }));
    }
    let config = json!({
        "clients": clients,
        "groups": [],
        "roles": roles,
        "defaultACLAccess": {
            "publishClientSend": false,
            "publishClientReceive": true,
            "subscribe": false,
            "unsubscribe": true,
        },
    });
    Ok(serde_json::to_string_pretty(&config).unwrap_or_default() + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoheit_store::principals::MqttCredential;

    fn user(name: &str) -> BrokerUser {
        BrokerUser { name: name.into(), hash: "$7$101$c2FsdHNhbHRzYWx0$aGFzaA==".into() }
    }

    #[test]
    fn the_config_holds_each_user_with_its_hash_and_a_role_of_its_own() {
        let root = TopicRoot::parse("hoheit/v1").unwrap();
        let key = KeyUser::from_credential(MqttCredential {
            user: "hoh_0123456789abcdef".into(),
            hash: "$7$101$c2FsdHNhbHRzYWx0$aGFzaA==".into(),
            org: "stadt".into(),
            role: "publisher".into(),
        })
        .unwrap();
        let services = ServiceUsers { ingest: user("hoheit-ingest"), gateway: None };
        let text = render_config(&root, &user("hoheit-admin"), &services, &[key], &WriteScope::default()).unwrap();
        let config: Value = serde_json::from_str(&text).unwrap();
        let names: Vec<&str> =
            config["clients"].as_array().unwrap().iter().map(|c| c["username"].as_str().unwrap()).collect();
        assert_eq!(names, ["hoheit-admin", "hoheit-ingest", "hoh_0123456789abcdef"]);
        let key_client = &config["clients"][2];
        assert_eq!(key_client["salt"], "c2FsdHNhbHRzYWx0");
        assert_eq!(key_client["password"], "aGFzaA==");
        assert_eq!(key_client["iterations"], 101);
        assert_eq!(config["roles"][2]["acls"], json!([publish_acl("hoheit/v1/stadt/#")]));
        assert_eq!(config["defaultACLAccess"]["publishClientSend"], false);
    }

    #[test]
    fn hashes_not_in_the_broker_format_are_refused() {
        for hash in ["plain", "$6$101$a$b", "$7$many$a$b", "$7$101$a$b$c"] {
            assert!(client_entry(&BrokerUser { name: "x".into(), hash: hash.into() }, "x").is_err(), "{hash}");
        }
    }

    #[test]
    fn answers_reach_their_requests_by_correlation_data() {
        let pending: Pending = Arc::default();
        let (tx, mut rx) = oneshot::channel();
        pending.lock().unwrap().insert("p-1".into(), tx);
        dispatch(
            &pending,
            br#"{"responses":[{"command":"x","correlationData":"other"},{"command":"deleteClient","error":"Client not found","correlationData":"p-1"}]}"#,
        );
        let answer = rx.try_recv().unwrap();
        assert_eq!(answer.error.as_deref(), Some("Client not found"));
        assert!(answer.clone().ok().is_err());
        assert!(answer.ok_or_done().is_ok());
        assert!(pending.lock().unwrap().is_empty());
    }
}
