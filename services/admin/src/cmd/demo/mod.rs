//! `demo`: turns the simulator's Eberswalde into a believable municipality.
//!
//! The simulator registers two organisations (the town and its Stadtwerke,
//! both as plain municipalities), 11 things and 26 datastreams. On top of
//! that the demo sets up, idempotently (create or get; it never duplicates):
//!
//! - "Konzern Stadt": the town as municipality; the Stadtwerke as its
//!   municipal company; the Tiefbau- und Verkehrsamt and the Umweltamt as its
//!   departments; Movi Mobility GmbH as a third party;
//! - four datasets with steward, classification, license, purpose, retention
//!   and theme: traffic counts (restricted), air quality and the canal gauge
//!   (open, Datenlizenz Deutschland), parking (internal, Stadtwerke), with the
//!   simulator's datastreams assigned;
//! - principals: an admin per organisation, a reader per department, a
//!   service account of the mobility company;
//! - grants: Movi may read 15-minute traffic aggregates of the last 30 days
//!   for a year; the Tiefbau- und Verkehrsamt may read the raw traffic counts
//!   (the town owns the counters, so its own traffic department needs a grant
//!   too: `restricted` means owner and grant holders only);
//! - alert rules: the Tiefbauamt on the Finowkanal's warning mark (the
//!   simulator's gauge rises past it now and then), the Umweltamt on the NO2
//!   hourly mean, the Stadtwerke on a car park that stops reporting.
//!
//! Keys cannot be shown twice, so every run issues a new key per principal
//! and prints them (and writes them, mode 0600, to `--keys-file`); keys of
//! earlier runs stay valid until they expire or are revoked.
//!
//! The command in steps: [`plan`] says what the municipality consists of
//! (pure data, checked by unit tests), [`apply`] creates or finds it in the
//! database through `hoheit-store`, [`print`] shows the [`report`] of what
//! happened, and this module runs them in order.

mod apply;
mod plan;
mod print;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use hoheit_store::audit::Actor;
use hoheit_town::Town;
use sqlx::PgPool;

use apply::{ensure_dataset, ensure_grant, ensure_org, ensure_principal, ensure_rule, wait_for_town};
pub use plan::MOVI_CONTRACT;
use plan::{DATASETS, GRANTS, ORGANISATIONS, PRINCIPALS, RULES};
pub use print::keys_file;
use print::{examples, print};
pub use report::{
    Change, DatasetOutcome, DemoReport, Example, GrantOutcome, OrgOutcome, PrincipalOutcome, RuleOutcome,
};

use crate::{files, AdminError, Output};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Also write the principals and their new keys to this file (mode 0600).
    #[arg(long)]
    pub keys_file: Option<PathBuf>,
    /// Seconds to wait for the simulator to register its town.
    #[arg(long, default_value_t = 120)]
    pub wait_secs: u64,
    /// Days the issued keys are valid.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub key_days: u32,
    /// The simulator's --scale (copies of every thing) whose datastreams to wait for and assign.
    #[arg(long, env = "HOHEIT_SIMULATOR_SCALE", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(Town::MAX_SCALE)))]
    pub scale: u32,
    /// Base URL of the API, for the example requests printed at the end.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub api_url: String,
    /// With the broker's dynamic security configured, the new keys reach the broker at once.
    #[command(flatten)]
    pub broker: super::keys::BrokerArgs,
}

pub async fn run(pool: &PgPool, args: DemoArgs, actor: &Actor, out: &mut Output<'_>) -> Result<(), AdminError> {
    // Check the keys file's directory first: keys are issued only once.
    if let Some(path) = &args.keys_file {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        if !dir.is_dir() {
            return Err(AdminError::Input(format!("--keys-file: directory {} does not exist", dir.display())));
        }
    }
    let sync = args.broker.sync()?;
    let mut report = set_up(pool, &args, actor).await?;
    if let Some(sync) = sync {
        for principal in &mut report.principals {
            let key = &mut principal.key;
            key.broker = Some(super::keys::broker_outcome(
                sync.key_created(pool, &key.mqtt_user, &key.key).await,
                &key.mqtt_user,
            ));
        }
    }
    // Printed before the file is written, so the keys are not lost if writing fails.
    out.show(&report, |out| print(out, &report))?;
    if let Some(path) = &args.keys_file {
        files::write_private(path, keys_file(&report).as_bytes(), None)?;
    }
    Ok(())
}

/// Builds the demo municipality and issues the keys; writes nothing but the database.
pub async fn set_up(pool: &PgPool, args: &DemoArgs, actor: &Actor) -> Result<DemoReport, AdminError> {
    let town = Town::eberswalde(args.scale).map_err(|e| AdminError::Input(format!("the simulator's town: {e}")))?;
    let ids = wait_for_town(pool, &town, Duration::from_secs(args.wait_secs)).await?;

    let mut organisations = Vec::new();
    for plan in ORGANISATIONS {
        organisations.push(ensure_org(pool, plan, actor).await?);
    }
    let mut datasets = Vec::new();
    for plan in DATASETS {
        datasets.push(ensure_dataset(pool, plan, &town, &ids, actor).await?);
    }
    let mut grants = Vec::new();
    for plan in GRANTS {
        grants.push(ensure_grant(pool, plan, actor).await?);
    }
    let expires_at = super::days_from_now(args.key_days)?;
    let mut principals = Vec::new();
    for plan in PRINCIPALS {
        principals.push(ensure_principal(pool, plan, expires_at, actor).await?);
    }
    let mut rules = Vec::new();
    for plan in RULES {
        rules.push(ensure_rule(pool, plan, &ids, actor).await?);
    }
    let examples = examples(&args.api_url, &town, &ids, &principals);
    Ok(DemoReport {
        things: town.things.len(),
        datastreams: town.datastream_count(),
        organisations,
        datasets,
        grants,
        principals,
        rules,
        keys_file: args.keys_file.clone(),
        examples,
    })
}
