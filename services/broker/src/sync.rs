//! Keeps the broker's dynamic security clients in step with the registry.
//!
//! - [`BrokerSync::key_created`]: a new key becomes the client `hoh_<lookup>`
//!   (the key as its password) with a role of the same name whose ACLs are
//!   [`crate::rules::key_topics`], before the caller answers;
//! - [`BrokerSync::key_revoked`]: its client and role are deleted (the
//!   plugin disconnects a connected client of a deleted client);
//! - [`BrokerSync::reconcile`], run every second by one long-running service:
//!   deletes the clients of keys that are no longer usable (expired, of a
//!   disabled principal, revoked elsewhere) and sets each usable key's role
//!   ACLs to what the registry grants now (supply grants starting or ending,
//!   datastreams added). It touches only `hoh_*` users its own registry
//!   knows: other registries may share the broker. Every step tolerates
//!   "already exists"/"not found", so replicas running it at once agree.
//!   The full comparison (every key's topics, which include one SensorThings
//!   topic per datastream of its organisation: 300,000 for a large town)
//!   runs only when a cheap fingerprint of its inputs moved (keys, datastream
//!   ownership per organisation, supply grants in force) and at least every
//!   [`FULL_EVERY`]; in between a round is a few small queries.
//!
//! The plugin stores only hashes and 2.0's `createClient` takes a plaintext
//! password, so a usable key without a client (created while the broker was
//! unreachable) cannot be repaired from here: it is logged once and counted,
//! and `hoheit-admin mqtt-config --dynsec` renders a configuration that has it.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use hoheit_store::{principals, registry, supply};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::dynsec::{publish_acl, BrokerAdmin, Control, DynsecError};
use crate::rules::{key_topics, KeyUser, RuleError, TopicRoot, WriteScope, KEY_USER_PREFIX};

/// Counter of broker sync operations by `operation` and `outcome` (`ok`, `failed`).
pub const OPERATIONS_METRIC: &str = "hoheit_broker_sync_operations_total";

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Broker(#[from] DynsecError),
    #[error("reading the registry: {0}")]
    Registry(#[from] sqlx::Error),
    #[error(transparent)]
    Rules(#[from] RuleError),
}

fn count<T, E>(operation: &'static str, result: &Result<T, E>) {
    let outcome = if result.is_ok() { "ok" } else { "failed" };
    metrics::counter!(OPERATIONS_METRIC, "operation" => operation, "outcome" => outcome).increment(1);
}

/// What the registry wants on the broker.
#[derive(Debug, Default)]
pub struct Desired {
    /// Usable keys: user → the topics it may publish to.
    pub keys: BTreeMap<String, BTreeSet<String>>,
    /// Every key user the registry knows, usable or not.
    pub known: BTreeSet<String>,
}

/// Reads the usable keys, their write scope and every known key user.
pub async fn desired(pool: &PgPool, root: &TopicRoot) -> Result<Desired, SyncError> {
    let keys = principals::mqtt_credentials(pool)
        .await?
        .into_iter()
        .map(KeyUser::from_credential)
        .collect::<Result<Vec<_>, _>>()?;
    let scope = WriteScope::from_registry(
        registry::datastream_owners(pool).await?,
        supply::supplied_datastreams(pool, Utc::now()).await?,
    )?;
    let known = principals::known_key_users(pool).await?.into_iter().collect();
    let keys = keys.iter().map(|k| (k.user.name.clone(), key_topics(root, k, &scope).into_iter().collect())).collect();
    Ok(Desired { keys, known })
}

/// The longest a reconcile trusts an unchanged fingerprint: a change the
/// fingerprint cannot see (the broker edited by hand, two datastreams
/// swapping datasets) is repaired within this.
pub const FULL_EVERY: Duration = Duration::from_secs(60);

/// A hash of everything [`desired`] is computed from, read with a few small
/// queries (per organisation a count and sums of its datastreams, not the
/// datastreams themselves).
pub async fn fingerprint(pool: &PgPool) -> Result<u64, SyncError> {
    let mut hasher = DefaultHasher::new();
    for credential in principals::mqtt_credentials(pool).await? {
        (credential.user, credential.hash, credential.org, credential.role).hash(&mut hasher);
    }
    principals::known_key_users(pool).await?.hash(&mut hasher);
    registry::datastream_ownership_digest(pool).await?.hash(&mut hasher);
    supply::grants_in_force(pool, Utc::now()).await?.hash(&mut hasher);
    Ok(hasher.finish())
}

/// What one reconcile changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Clients deleted (keys no longer usable).
    pub deleted: usize,
    /// ACL entries added or removed, roles created or attached.
    pub changed: usize,
    /// Usable keys without a client on the broker.
    pub missing: usize,
}

/// The dynamic security control of one service, with the topic root its keys publish under.
pub struct BrokerSync {
    control: Control,
    root: TopicRoot,
    /// Usable keys without a client that were already reported.
    reported_missing: Mutex<BTreeSet<String>>,
    /// The fingerprint of the last full reconcile that succeeded, and when it ran.
    last_full: Mutex<Option<(u64, Instant)>>,
}

impl BrokerSync {
    pub fn connect(admin: &BrokerAdmin, root: TopicRoot, purpose: &str) -> Self {
        Self {
            control: Control::connect(admin, purpose),
            root,
            reported_missing: Mutex::default(),
            last_full: Mutex::default(),
        }
    }

    /// Puts a new key on the broker: its role, then its client in that role.
    pub async fn key_created(&self, pool: &PgPool, user: &str, key: &str) -> Result<(), SyncError> {
        let result = self.create(pool, user, key).await;
        count("create", &result);
        result
    }

    async fn create(&self, pool: &PgPool, user: &str, key: &str) -> Result<(), SyncError> {
        let desired = desired(pool, &self.root).await?;
        // Not usable (e.g. its principal is disabled): nothing belongs on the broker.
        let Some(topics) = desired.keys.get(user) else { return Ok(()) };
        let acls: Vec<Value> = topics.iter().map(|t| publish_acl(t)).collect();
        let answers = self
            .control
            .execute(vec![
                json!({ "command": "createRole", "rolename": user, "acls": acls }),
                json!({ "command": "createClient", "username": user, "password": key, "roles": [{ "rolename": user }] }),
            ])
            .await?;
        for answer in answers {
            answer.ok()?;
        }
        Ok(())
    }

    /// Removes a key's client (disconnecting it) and its role.
    pub async fn key_revoked(&self, user: &str) -> Result<(), SyncError> {
        let result = self.delete(user).await;
        count("delete", &result);
        result
    }

    async fn delete(&self, user: &str) -> Result<(), SyncError> {
        let answers = self
            .control
            .execute(vec![
                json!({ "command": "deleteClient", "username": user }),
                json!({ "command": "deleteRole", "rolename": user }),
            ])
            .await?;
        for answer in answers {
            answer.ok_or_done()?;
        }
        Ok(())
    }

    /// Brings the broker's clients and roles of this registry's keys to what the registry wants.
    pub async fn reconcile(&self, pool: &PgPool) -> Result<Reconciled, SyncError> {
        let result = self.reconcile_once(pool).await;
        count("reconcile", &result);
        result
    }

    async fn reconcile_once(&self, pool: &PgPool) -> Result<Reconciled, SyncError> {
        // Read before the full state: a change in between makes the next round a full one.
        let fingerprint = fingerprint(pool).await?;
        let unchanged = self
            .last_full
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|(last, at)| last == fingerprint && at.elapsed() < FULL_EVERY);
        if unchanged {
            return Ok(Reconciled::default());
        }
        let done = self.reconcile_fully(pool).await?;
        *self.last_full.lock().unwrap_or_else(|e| e.into_inner()) = Some((fingerprint, Instant::now()));
        Ok(done)
    }

    async fn reconcile_fully(&self, pool: &PgPool) -> Result<Reconciled, SyncError> {
        let desired = desired(pool, &self.root).await?;
        let mut answers = self
            .control
            .execute(vec![
                json!({ "command": "listClients", "verbose": true }),
                json!({ "command": "listRoles", "verbose": true }),
            ])
            .await?
            .into_iter();
        let clients = clients_of(&answers.next().ok_or_else(no_answer)?.ok()?.data);
        let roles = roles_of(&answers.next().ok_or_else(no_answer)?.ok()?.data);
        let (commands, mut done) = plan(&desired, &clients, &roles);
        let missing: BTreeSet<String> =
            desired.keys.keys().filter(|user| !clients.contains_key(*user)).cloned().collect();
        done.missing = missing.len();
        {
            let mut reported = self.reported_missing.lock().unwrap_or_else(|e| e.into_inner());
            for user in missing.difference(&reported) {
                tracing::warn!(
                    user = %user,
                    "a usable key has no client on the broker (created while it was unreachable?); \
                     render `hoheit-admin mqtt-config --dynsec` and restart the broker with it"
                );
            }
            *reported = missing;
        }
        for answer in self.control.execute(commands).await? {
            answer.ok_or_done()?;
        }
        if done.deleted > 0 || done.changed > 0 {
            tracing::info!(
                deleted = done.deleted,
                changed = done.changed,
                "broker clients reconciled with the registry"
            );
        }
        Ok(done)
    }
}

fn no_answer() -> SyncError {
    SyncError::Broker(DynsecError::Protocol("a listing without an answer".into()))
}

/// `listClients` (verbose): user → its roles.
fn clients_of(data: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut clients = BTreeMap::new();
    for client in data.get("clients").and_then(Value::as_array).into_iter().flatten() {
        let Some(name) = client.get("username").and_then(Value::as_str) else { continue };
        let roles = client
            .get("roles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("rolename").and_then(Value::as_str).map(str::to_owned))
            .collect();
        clients.insert(name.to_owned(), roles);
    }
    clients
}

/// `listRoles` (verbose): role → the topics its ACLs let publish.
fn roles_of(data: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut roles = BTreeMap::new();
    for role in data.get("roles").and_then(Value::as_array).into_iter().flatten() {
        let Some(name) = role.get("rolename").and_then(Value::as_str) else { continue };
        let topics = role
            .get("acls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|a| a.get("acltype").and_then(Value::as_str) == Some("publishClientSend"))
            .filter_map(|a| a.get("topic").and_then(Value::as_str).map(str::to_owned))
            .collect();
        roles.insert(name.to_owned(), topics);
    }
    roles
}

/// The commands that bring the broker's state (`clients`, `roles`) to `desired`.
fn plan(
    desired: &Desired,
    clients: &BTreeMap<String, BTreeSet<String>>,
    roles: &BTreeMap<String, BTreeSet<String>>,
) -> (Vec<Value>, Reconciled) {
    let mut commands = Vec::new();
    let mut done = Reconciled::default();
    let ours = |name: &&String| name.starts_with(KEY_USER_PREFIX) && desired.known.contains(*name);
    for user in clients.keys().filter(ours).filter(|u| !desired.keys.contains_key(*u)) {
        commands.push(json!({ "command": "deleteClient", "username": user }));
        done.deleted += 1;
    }
    for role in roles.keys().filter(ours).filter(|r| !desired.keys.contains_key(*r)) {
        commands.push(json!({ "command": "deleteRole", "rolename": role }));
    }
    for (user, topics) in &desired.keys {
        let Some(client_roles) = clients.get(user) else { continue };
        match roles.get(user) {
            None => {
                let acls: Vec<Value> = topics.iter().map(|t| publish_acl(t)).collect();
                commands.push(json!({ "command": "createRole", "rolename": user, "acls": acls }));
                done.changed += 1;
            }
            Some(present) => {
                for topic in topics.difference(present) {
                    let mut acl = publish_acl(topic);
                    acl["command"] = json!("addRoleACL");
                    acl["rolename"] = json!(user);
                    commands.push(acl);
                    done.changed += 1;
                }
                for topic in present.difference(topics) {
                    commands.push(json!({
                        "command": "removeRoleACL", "rolename": user, "acltype": "publishClientSend", "topic": topic,
                    }));
                    done.changed += 1;
                }
            }
        }
        if !client_roles.contains(user) {
            commands.push(json!({ "command": "addClientRole", "username": user, "rolename": user }));
            done.changed += 1;
        }
    }
    (commands, done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_plan_deletes_unusable_keys_of_this_registry_only_and_fixes_roles() {
        let desired = Desired {
            keys: [("hoh_a".to_owned(), set(&["r/stadt/#", "v1.1/Datastreams(1)/Observations"]))].into(),
            known: set(&["hoh_a", "hoh_revoked"]),
        };
        let clients: BTreeMap<String, BTreeSet<String>> = [
            ("hoh_a".to_owned(), set(&[])),
            ("hoh_revoked".to_owned(), set(&["hoh_revoked"])),
            ("hoh_other_registry".to_owned(), set(&["hoh_other_registry"])),
            ("admin".to_owned(), set(&["admin"])),
        ]
        .into();
        let roles: BTreeMap<String, BTreeSet<String>> = [
            ("hoh_a".to_owned(), set(&["r/stadt/#", "r/ended/#"])),
            ("hoh_revoked".to_owned(), set(&["r/x/#"])),
            ("hoh_other_registry".to_owned(), set(&["r/y/#"])),
        ]
        .into();
        let (commands, done) = plan(&desired, &clients, &roles);
        let summary: Vec<String> = commands
            .iter()
            .map(|c| {
                let name = c.get("username").or_else(|| c.get("rolename")).and_then(Value::as_str).unwrap_or_default();
                let topic = c.get("topic").and_then(Value::as_str).unwrap_or_default();
                format!("{} {name} {topic}", c["command"].as_str().unwrap()).trim().to_owned()
            })
            .collect();
        assert_eq!(
            summary,
            [
                "deleteClient hoh_revoked",
                "deleteRole hoh_revoked",
                "addRoleACL hoh_a v1.1/Datastreams(1)/Observations",
                "removeRoleACL hoh_a r/ended/#",
                "addClientRole hoh_a",
            ]
        );
        assert_eq!(done, Reconciled { deleted: 1, changed: 3, missing: 0 });
    }

    #[test]
    fn a_missing_role_is_created_with_the_keys_topics() {
        let desired = Desired { keys: [("hoh_a".to_owned(), set(&["r/stadt/#"]))].into(), known: set(&["hoh_a"]) };
        let clients = [("hoh_a".to_owned(), set(&["hoh_a"]))].into();
        let (commands, _) = plan(&desired, &clients, &BTreeMap::new());
        assert_eq!(
            commands,
            [json!({ "command": "createRole", "rolename": "hoh_a", "acls": [publish_acl("r/stadt/#")] })]
        );
    }
}
