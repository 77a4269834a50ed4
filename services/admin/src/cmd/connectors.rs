//! `connectors add|list|disable`: the LoRaWAN network servers (ChirpStack v4,
//! The Things Stack v3) that deliver an organisation's uplinks, by webhook
//! (the secret is printed once) and optionally through their MQTT
//! integration, which ingest subscribes to (the broker password preferably from
//! `HOHEIT_CONNECTOR_MQTT_PASSWORD`, out of the shell history).

use clap::{Args, Subcommand};
use hoheit_domain::Slug;
use hoheit_store::audit::Actor;
use hoheit_store::connectors::{self, ConnectorKind, NewConnector};
use hoheit_store::registry;
use sqlx::PgPool;

use crate::output::{or_dash, time, Table};
use crate::{AdminError, Output};

#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// Add a connector; prints its webhook path and secret (shown only now).
    Add(AddArgs),
    /// List connectors (never a secret).
    List(ListArgs),
    /// Disable a connector: its webhook is refused, its MQTT subscription ends.
    Disable(DisableArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// A name within the organisation, e.g. "chirpstack-stadtwerke".
    #[arg(value_parser = connector_slug)]
    pub slug: Slug,
    /// The organisation whose things the network server's devices are.
    #[arg(long, value_parser = super::org_slug)]
    pub org: Slug,
    /// chirpstack (v4) or tts (The Things Stack v3).
    #[arg(long, value_parser = kind)]
    pub kind: ConnectorKind,
    /// The network server's MQTT broker (mqtt://host:port or mqtts://host:port) for its MQTT integration.
    #[arg(long, requires = "application")]
    pub mqtt_url: Option<String>,
    #[arg(long, requires = "mqtt_url")]
    pub mqtt_username: Option<String>,
    /// The broker password; better from the environment, out of the shell history.
    #[arg(long, env = "HOHEIT_CONNECTOR_MQTT_PASSWORD", hide_env_values = true)]
    pub mqtt_password: Option<String>,
    /// ChirpStack: the application id; The Things Stack: app@tenant.
    #[arg(long, requires = "mqtt_url")]
    pub application: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only connectors of this organisation.
    #[arg(long, value_parser = super::org_slug)]
    pub org: Option<Slug>,
}

#[derive(Debug, Args)]
pub struct DisableArgs {
    /// The connector's id (see `connectors list`).
    pub id: i64,
}

fn connector_slug(value: &str) -> Result<Slug, hoheit_domain::SlugError> {
    Slug::parse("connector", value)
}

fn kind(value: &str) -> Result<ConnectorKind, String> {
    ConnectorKind::parse(value).map_err(|e| e.to_string())
}

pub async fn run(
    pool: &PgPool,
    command: ConnectorCommand,
    actor: &Actor,
    out: &mut Output<'_>,
) -> Result<(), AdminError> {
    match command {
        ConnectorCommand::Add(args) => {
            let new = NewConnector {
                org: args.org,
                slug: args.slug,
                kind: args.kind,
                mqtt_password: args.mqtt_password.filter(|_| args.mqtt_url.is_some()),
                mqtt_url: args.mqtt_url,
                mqtt_username: args.mqtt_username,
                application: args.application,
            };
            let issued = connectors::create(pool, &new, actor).await?;
            out.show(&issued, |out| {
                let c = &issued.connector;
                out.line(format!("added {} connector {} of {}, id {}", c.kind, c.slug, c.org, c.id))?;
                out.line(format!("webhook path:   {}", c.webhook_path))?;
                out.line(format!("webhook secret: {} (shown only now)", issued.webhook_secret))?;
                out.line("send it as the header X-Hoheit-Connector-Secret (or Authorization: Bearer)")
            })
        }
        ConnectorCommand::List(args) => {
            let org_id = match &args.org {
                Some(org) => Some(registry::organisation_id(pool, org).await?),
                None => None,
            };
            let list = connectors::list(pool, org_id).await?;
            out.show(&list, |out| {
                let mut table = Table::new(&[
                    "id",
                    "slug",
                    "organisation",
                    "kind",
                    "webhook",
                    "mqtt",
                    "application",
                    "created",
                    "disabled",
                ]);
                for c in &list {
                    table.row([
                        c.id.to_string(),
                        c.slug.clone(),
                        c.org.clone(),
                        c.kind.to_string(),
                        c.webhook_path.clone(),
                        or_dash(c.mqtt_url.as_ref()),
                        or_dash(c.application.as_ref()),
                        time(c.created_at),
                        c.disabled_at.map_or_else(|| "-".to_owned(), time),
                    ]);
                }
                out.table(&table)
            })
        }
        ConnectorCommand::Disable(args) => {
            let c = connectors::disable(pool, args.id, actor).await?;
            out.show(&c, |out| {
                out.line(format!("disabled connector {} ({}) of {}: its webhook is refused", c.id, c.slug, c.org))
            })
        }
    }
}
