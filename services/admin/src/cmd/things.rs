//! `things device-token`: issues a thing's device token, the password its
//! device presents at its door (the airrohr firmware's "send to own API").
//! The token is printed once, to stdout, and never logged or stored (the
//! database keeps its SHA-256); issuing again replaces it.
//!
//! `things list` and `things import FILE --org SLUG [--dry-run]`: bulk
//! registration from a CSV or JSON file, the same import as the API's
//! (`hoheit-store`'s), printing each row's change.

use clap::{Args, Subcommand};
use hoheit_domain::{Slug, SlugError};
use hoheit_store::audit::Actor;
use std::path::PathBuf;

use hoheit_domain::onboarding::{self, Refusal, RowError};
use hoheit_store::device_tokens;
use hoheit_store::import::{self, Action, ImportError, ImportReport};
use hoheit_store::{registry, things};
use sqlx::PgPool;

use crate::output::{or_dash, time, Table};
use crate::{AdminError, Output};

#[derive(Debug, Subcommand)]
pub enum ThingCommand {
    /// Issue a device token for a thing with an external id; shown once, replaces the previous one.
    DeviceToken(DeviceTokenArgs),
    /// List an organisation's things (all when --org is absent) with type, datastreams, newest reading, dead letters.
    List(ListArgs),
    /// Register or update things from a CSV or JSON file (columns slug,name,latitude,longitude,type,external_id,dataset).
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, value_parser = super::org_slug)]
    pub org: Option<Slug>,
    /// The MQTT topic root the dead letters' topics start with.
    #[arg(long, env = "HOHEIT_TOPIC_ROOT", default_value = hoheit_domain::topic::DEFAULT_ROOT)]
    pub topic_root: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file: CSV with a header row, or a JSON array of objects.
    pub file: PathBuf,
    /// The organisation whose things these are.
    #[arg(long, value_parser = super::org_slug)]
    pub org: Slug,
    /// Only print what would be created or changed.
    #[arg(long)]
    pub dry_run: bool,
    /// The file's format (default: from its extension, .json or else CSV).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

#[derive(Debug, Args)]
pub struct DeviceTokenArgs {
    /// The thing's organisation.
    #[arg(value_parser = super::org_slug)]
    pub org: Slug,
    /// The thing's slug.
    #[arg(value_parser = thing_slug)]
    pub thing: Slug,
}

fn thing_slug(value: &str) -> Result<Slug, SlugError> {
    Slug::parse("thing", value)
}

pub async fn run(pool: &PgPool, command: ThingCommand, actor: &Actor, out: &mut Output<'_>) -> Result<(), AdminError> {
    match command {
        ThingCommand::DeviceToken(args) => {
            let id = device_tokens::thing_id(pool, &args.org, &args.thing).await?;
            let issued = device_tokens::issue(pool, id, actor).await?;
            out.show(&issued, |out| {
                out.line(format!(
                    "device token of {}/{} (device {}). Shown once, store it now (airrohr: \"send to own API\", password):",
                    issued.view.org, issued.view.thing, issued.view.external_id
                ))?;
                out.line(&issued.token)
            })
        }
        ThingCommand::List(args) => {
            let org_id = match &args.org {
                Some(org) => Some(registry::organisation_id(pool, org).await?),
                None => None,
            };
            let list = things::list(pool, org_id, &args.topic_root).await?;
            out.show(&list, |out| {
                let mut table = Table::new(&[
                    "id",
                    "organisation",
                    "slug",
                    "name",
                    "type",
                    "external id",
                    "datastreams",
                    "last reading",
                    "dead letters",
                ]);
                for t in &list {
                    table.row([
                        t.id.to_string(),
                        t.org.clone(),
                        t.slug.clone(),
                        t.name.clone(),
                        or_dash(t.device_type.as_ref()),
                        or_dash(t.external_id.as_ref()),
                        t.datastreams.to_string(),
                        t.last_reading_at.map_or_else(|| "-".to_owned(), time),
                        t.dead_letters.to_string(),
                    ]);
                }
                out.table(&table)
            })
        }
        ThingCommand::Import(args) => import_file(pool, args, actor, out).await,
    }
}

async fn import_file(pool: &PgPool, args: ImportArgs, actor: &Actor, out: &mut Output<'_>) -> Result<(), AdminError> {
    let body = std::fs::read(&args.file)
        .map_err(|e| AdminError::Input(format!("cannot read {}: {e}", args.file.display())))?;
    let format = args.format.unwrap_or(match args.file.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("json") => Format::Json,
        _ => Format::Csv,
    });
    let parsed = match format {
        Format::Json => onboarding::parse_json(&body),
        Format::Csv => {
            let text = std::str::from_utf8(&body).map_err(|_| AdminError::Input("the CSV file is not UTF-8".into()))?;
            onboarding::parse_csv(text)
        }
    };
    let org_id = registry::organisation_id(pool, &args.org).await?;
    let result = match parsed {
        Ok(parsed) => import::import(pool, org_id, &parsed, args.dry_run, actor).await,
        Err(Refusal::TooManyRows) => return Err(AdminError::Input(Refusal::TooManyRows.to_string())),
        Err(Refusal::Rows(errors)) => Err(ImportError::Rows(errors)),
    };
    match result {
        Ok(report) => out.show(&report, |out| print_report(out, &report)),
        Err(ImportError::Rows(errors)) => {
            let n = errors.len();
            out.show(&serde_json::json!({ "errors": errors }), |out| print_errors(out, &errors))?;
            Err(AdminError::Input(format!("{n} row(s) cannot be imported; nothing was changed")))
        }
        Err(ImportError::Registry(e)) => Err(e.into()),
    }
}

fn print_report(out: &mut Output<'_>, report: &ImportReport) -> Result<(), AdminError> {
    for change in report.changes.iter().filter(|c| c.action != Action::Unchanged) {
        let verb = if change.action == Action::Create { "create" } else { "change" };
        let mut line = format!("line {:>5}  {verb} {}", change.line, change.slug);
        if !change.fields.is_empty() {
            line.push_str(&format!("  fields: {}", change.fields.join(", ")));
        }
        if !change.datastreams.is_empty() {
            let names: Vec<&str> = change.datastreams.iter().map(Slug::as_str).collect();
            line.push_str(&format!("  new datastreams: {}", names.join(", ")));
        }
        out.line(line)?;
    }
    let would = if report.dry_run { "would be " } else { "" };
    out.line(format!(
        "{} thing(s) {would}created, {} {would}changed, {} unchanged; {} datastream(s) {would}created{}",
        report.things_created,
        report.things_changed,
        report.things_unchanged,
        report.datastreams_created,
        if report.dry_run { " (dry run: nothing was written)" } else { "" }
    ))
}

fn print_errors(out: &mut Output<'_>, errors: &[RowError]) -> Result<(), AdminError> {
    for e in errors {
        let column = e.column.as_deref().map(|c| format!(" ({c})")).unwrap_or_default();
        out.line(format!("line {:>5}{column}: {}", e.line, e.reason))?;
    }
    Ok(())
}
