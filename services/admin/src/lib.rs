//! `hoheit-admin`: the operators' command-line tool. It talks to the database
//! directly through `hoheit-store` (the same SQL the API runs), so it works
//! before any API key exists and from a maintenance shell.
//!
//! - [`Cli`]: the command line (clap); `main.rs` only parses it and calls [`run`];
//! - [`cmd`]: one module per command group (organisations, principals, keys,
//!   datasets, grants, supply-grants, dead-letters, audit, retention, mqtt-config, demo);
//! - [`broker`]: what each key may publish and the Mosquitto files rendered from it
//!   (`hoheit-broker`'s rules, shared with the API and ingest);
//! - [`files`]: atomic, mode-0600 writes of secret-bearing files;
//! - [`output`]: tables for people, `--json` for scripts, on stdout;
//! - [`AdminError`]: one-line reasons and exit codes (2: bad input, 1: other).
//!
//! Every change a command makes is audited like the API's, with the actor
//! `hoheit-admin (USER)` (the operating-system user) and one request id per
//! command.
//!
//! Tests run commands in-process: `run(Cli::try_parse_from(args)?, &mut buffer)`.

pub use hoheit_broker::rules as broker;
pub mod cmd;
mod error;
pub mod files;
pub mod output;

use std::io::Write;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hoheit_runtime::config::{ConfigFileArg, DatabaseArgs};
use hoheit_store::audit::Actor;
use hoheit_store::db::DbError;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

pub use error::AdminError;
pub use output::Output;

/// The command line of `hoheit-admin`.
#[derive(Debug, Parser)]
#[command(
    name = "hoheit-admin",
    version,
    about = "Hoheit's command-line tool for operators: organisations, principals and keys, datasets, grants, \
             audit verification, retention, the MQTT broker's password and ACL files, and the demo municipality",
    after_help = "Exit codes: 0 done, 2 bad input (unknown name, invalid value, conflict), 1 any other failure.\n\
                  Every option is also an environment variable where shown; --config FILE reads KEY=VALUE lines."
)]
pub struct Cli {
    #[command(flatten)]
    pub config_file: ConfigFileArg,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Seconds to wait for the database before giving up.
    #[arg(long, env = "HOHEIT_ADMIN_CONNECT_TIMEOUT_SECS", default_value_t = 30)]
    pub connect_timeout_secs: u64,
    /// Print JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Organisations: the town, its departments and companies, third parties.
    #[command(subcommand, visible_alias = "orgs")]
    Organisations(cmd::organisations::OrganisationCommand),
    /// Principals: people and service accounts of an organisation, with a role.
    #[command(subcommand)]
    Principals(cmd::principals::PrincipalCommand),
    /// Things: the listing, bulk import from CSV or JSON, device tokens (airrohr).
    #[command(subcommand)]
    Things(cmd::things::ThingCommand),
    /// Device types: the properties, units and plausible ranges of a kind of sensor.
    #[command(subcommand)]
    DeviceTypes(cmd::device_types::DeviceTypeCommand),
    /// API keys of principals (also their MQTT passwords).
    #[command(subcommand)]
    Keys(cmd::keys::KeyCommand),
    /// Datasets: owner, classification, license, purpose, retention; their datastreams.
    #[command(subcommand)]
    Datasets(cmd::datasets::DatasetCommand),
    /// Grants (contracts) of a dataset to another organisation.
    #[command(subcommand)]
    Grants(cmd::grants::GrantCommand),
    /// Supply grants (supply contracts): a supplier's writer keys deliver readings into a dataset.
    #[command(subcommand)]
    SupplyGrants(cmd::supply_grants::SupplyGrantCommand),
    /// Connectors: LoRaWAN network servers (ChirpStack, The Things Stack) delivering an organisation's uplinks.
    #[command(subcommand)]
    Connectors(cmd::connectors::ConnectorCommand),
    /// Dead letters: rejected readings, and their replay after the registry was fixed.
    #[command(subcommand)]
    DeadLetters(cmd::dead_letters::DeadLetterCommand),
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(cmd::audit::AuditCommand),
    /// Retention: delete readings past each dataset's retention.
    #[command(subcommand)]
    Retention(cmd::retention::RetentionCommand),
    /// Write Mosquitto's password_file and acl_file from the registry's API keys.
    MqttConfig(cmd::mqtt_config::MqttConfigArgs),
    /// Turn the simulator's town into a believable municipality with principals, keys and grants.
    Demo(cmd::demo::DemoArgs),
}

/// Connects (and migrates), runs one command, writes its result to `out`.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), AdminError> {
    let pool = connect(&cli.database, cli.connect_timeout_secs).await?;
    let mut output = Output::new(out, cli.json);
    let actor = Actor::command_line(&operating_system_user());
    let result = match cli.command {
        Command::Organisations(c) => cmd::organisations::run(&pool, c, &actor, &mut output).await,
        Command::Principals(c) => cmd::principals::run(&pool, c, &actor, &mut output).await,
        Command::Keys(c) => cmd::keys::run(&pool, c, &actor, &mut output).await,
        Command::Things(c) => cmd::things::run(&pool, c, &actor, &mut output).await,
        Command::DeviceTypes(c) => cmd::device_types::run(&pool, c, &actor, &mut output).await,
        Command::Datasets(c) => cmd::datasets::run(&pool, c, &actor, &mut output).await,
        Command::Grants(c) => cmd::grants::run(&pool, c, &actor, &mut output).await,
        Command::SupplyGrants(c) => cmd::supply_grants::run(&pool, c, &actor, &mut output).await,
        Command::Connectors(c) => cmd::connectors::run(&pool, c, &actor, &mut output).await,
        Command::DeadLetters(c) => cmd::dead_letters::run(&pool, c, &mut output).await,
        Command::Audit(c) => cmd::audit::run(&pool, c, &mut output).await,
        Command::Retention(c) => cmd::retention::run(&pool, c, &mut output).await,
        Command::MqttConfig(args) => cmd::mqtt_config::run(&pool, args, &mut output).await,
        Command::Demo(args) => cmd::demo::run(&pool, args, &actor, &mut output).await,
    };
    pool.close().await;
    result
}

/// Who runs the command, for the audit log: `$USER` or `$LOGNAME`.
fn operating_system_user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown user".into())
}

/// [`hoheit_store::db::connect`] (which waits for the database and applies the
/// migrations), bounded: an operator's command should fail, not hang.
async fn connect(database: &DatabaseArgs, timeout_secs: u64) -> Result<PgPool, AdminError> {
    let options: PgConnectOptions =
        database.url.expose().parse().map_err(|e| AdminError::Input(format!("the database URL is not valid: {e}")))?;
    // A database that answers but refuses (wrong password, no such database)
    // will not change its mind: say so at once instead of retrying.
    match PgConnection::connect_with(&options).await {
        Ok(connection) => {
            let _ = connection.close().await;
        }
        Err(sqlx::Error::Database(refusal)) => {
            return Err(AdminError::Refused(refusal.message().to_owned()));
        }
        Err(_) => {} // not reachable (yet): wait below
    }
    let give_up = CancellationToken::new();
    let timer = tokio::spawn({
        let give_up = give_up.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(timeout_secs)).await;
            give_up.cancel();
        }
    });
    let connected = hoheit_store::db::connect(database.url.expose(), database.max_connections, &give_up).await;
    timer.abort();
    connected.map_err(|error| match error {
        DbError::Cancelled => AdminError::ConnectTimeout(timeout_secs),
        DbError::InvalidUrl(e) => AdminError::Input(format!("the database URL is not valid: {e}")),
        other => AdminError::Connect(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn json_is_accepted_after_the_subcommand() {
        let cli = Cli::try_parse_from(["hoheit-admin", "organisations", "list", "--json"]).unwrap();
        assert!(cli.json);
    }
}
