//! `keys create|revoke|list`: API keys of principals. A new key is printed
//! once, to stdout, and never logged or stored (the database keeps hashes);
//! listings show metadata only. The key is also the principal's MQTT
//! password (user `hoh_<lookup>`): with the broker's dynamic security admin
//! configured (`HOHEIT_BROKER_ADMIN_USERNAME`/`_PASSWORD`) it is on the broker
//! before the command ends, and a revoked key's client is gone (a broker
//! that cannot be reached is reported in the output, the key stays issued);
//! without it, once `mqtt-config` has run and the broker reloaded.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use hoheit_broker::dynsec::DynsecArgs;
use hoheit_broker::rules::TopicRoot;
use hoheit_broker::sync::BrokerSync;
use hoheit_domain::topic;
use hoheit_domain::Slug;
use hoheit_store::audit::Actor;
use hoheit_store::principals::{self, KeyExpiry, KeyLifetime};
use serde::Serialize;
use sqlx::PgPool;

use crate::output::{time, Table};
use crate::{AdminError, Output};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Issue a new API key for a principal; the key is shown once.
    Create(CreateArgs),
    /// Revoke a key by id (without dynamic security: regenerate the broker files to end its MQTT access).
    Revoke(RevokeArgs),
    /// List keys (metadata only, never the keys).
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The principal's name.
    #[arg(value_parser = super::principal_name)]
    pub principal: Slug,
    /// Days until the key expires.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub expires_in_days: u32,
    /// Expiry as an RFC 3339 time (instead of --expires-in-days).
    #[arg(long, value_parser = super::timestamp, conflicts_with = "expires_in_days")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Longest lifetime of a new key, in days (the API reads the same variable).
    #[arg(long, env = "HOHEIT_MAX_KEY_LIFETIME_DAYS", default_value_t = principals::DEFAULT_MAX_KEY_LIFETIME_DAYS)]
    pub max_key_lifetime_days: u32,
    #[command(flatten)]
    pub broker: BrokerArgs,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The key's id (see `keys list`).
    pub id: i64,
    #[command(flatten)]
    pub broker: BrokerArgs,
}

/// The broker's dynamic security, if configured, and the topic root keys publish under.
#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    #[command(flatten)]
    pub dynsec: DynsecArgs,
    /// Root of the topic scheme (what a key's broker role lets it publish to).
    #[arg(long, env = "HOHEIT_MQTT_TOPIC_ROOT", default_value = topic::DEFAULT_ROOT)]
    pub topic_root: String,
}

impl BrokerArgs {
    pub(crate) fn sync(&self) -> Result<Option<BrokerSync>, AdminError> {
        let Some(admin) = self.dynsec.admin()? else { return Ok(None) };
        Ok(Some(BrokerSync::connect(&admin, TopicRoot::parse(&self.topic_root)?, "admin")))
    }
}

/// What became of a key on the broker: `synced`, or why not (`null`: no dynamic security).
pub(crate) fn broker_outcome(result: Result<(), hoheit_broker::sync::SyncError>, user: &str) -> String {
    match result {
        Ok(()) => "synced".into(),
        Err(e) => {
            tracing::warn!(user, error = %e, "the broker was not updated; see `hoheit-admin mqtt-config --dynsec`");
            format!("not synced: {e}")
        }
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only keys of this principal.
    #[arg(long, value_parser = super::principal_name)]
    pub principal: Option<Slug>,
    /// Only keys of principals of this organisation.
    #[arg(long, value_parser = super::org_slug)]
    pub org: Option<Slug>,
}

/// A freshly issued key, as printed (once).
#[derive(Debug, Clone, Serialize)]
pub struct NewKey {
    pub id: i64,
    pub principal: String,
    pub org: String,
    /// The MQTT user name of this key (its public part).
    pub mqtt_user: String,
    pub expires_at: DateTime<Utc>,
    pub key: String,
    /// The key's client on the broker's dynamic security: `synced` or why not; absent without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
}

/// Issues a key for the principal called `name`.
pub async fn issue(pool: &PgPool, name: &Slug, expires_at: KeyExpiry, actor: &Actor) -> Result<NewKey, AdminError> {
    let principal = principals::principal_by_name(pool, name)
        .await?
        .ok_or_else(|| AdminError::Input(format!("principal {name} not found")))?;
    let issued = principals::create_key(pool, principal.id, expires_at, actor).await?;
    Ok(NewKey {
        id: issued.view.id,
        principal: principal.name,
        org: principal.org,
        mqtt_user: issued.view.lookup,
        expires_at: issued.view.expires_at,
        key: issued.key,
        broker: None,
    })
}

pub async fn run(pool: &PgPool, command: KeyCommand, actor: &Actor, out: &mut Output<'_>) -> Result<(), AdminError> {
    match command {
        KeyCommand::Create(args) => {
            let expires_at = match args.expires_at {
                Some(at) => at,
                None => super::days_from_now(args.expires_in_days)?,
            };
            let lifetime = KeyLifetime::days(args.max_key_lifetime_days)?;
            let expires_at = KeyExpiry::within(Some(expires_at), lifetime, Utc::now())?;
            let sync = args.broker.sync()?;
            let mut key = issue(pool, &args.principal, expires_at, actor).await?;
            if let Some(sync) = sync {
                key.broker =
                    Some(broker_outcome(sync.key_created(pool, &key.mqtt_user, &key.key).await, &key.mqtt_user));
            }
            out.show(&key, |out| {
                out.line(format!(
                    "API key {} of {} ({}), valid until {}; MQTT user {}. Shown once, store it now:",
                    key.id,
                    key.principal,
                    key.org,
                    time(key.expires_at),
                    key.mqtt_user
                ))?;
                if let Some(broker) = &key.broker {
                    out.line(format!("broker: {broker}"))?;
                }
                out.line(&key.key)
            })
        }
        KeyCommand::Revoke(args) => {
            let sync = args.broker.sync()?;
            let revoked = principals::revoke_key(pool, args.id, actor).await?;
            let broker = match sync {
                Some(sync) => Some(broker_outcome(sync.key_revoked(&revoked.lookup).await, &revoked.lookup)),
                None => None,
            };
            let result = serde_json::json!({ "revoked": args.id, "broker": broker });
            out.show(&result, |out| match &broker {
                Some(broker) => out.line(format!("revoked key {}; broker: {broker}", args.id)),
                None => out.line(format!(
                    "revoked key {}; run `hoheit-admin mqtt-config` and reload the broker to end its MQTT access",
                    args.id
                )),
            })
        }
        KeyCommand::List(args) => {
            let keys = principals::list_keys(pool, args.principal.as_ref(), args.org.as_ref()).await?;
            out.show(&keys, |out| {
                let now = Utc::now();
                let mut table =
                    Table::new(&["id", "principal", "organisation", "mqtt user", "created", "expires", "state"]);
                for k in &keys {
                    let state = match k.key.revoked_at {
                        Some(at) => format!("revoked {}", time(at)),
                        None if k.key.expires_at <= now => "expired".into(),
                        None => "active".into(),
                    };
                    table.row([
                        k.key.id.to_string(),
                        k.principal.clone(),
                        k.org.clone(),
                        k.key.lookup.clone(),
                        time(k.key.created_at),
                        time(k.key.expires_at),
                        state,
                    ]);
                }
                out.table(&table)
            })
        }
    }
}
