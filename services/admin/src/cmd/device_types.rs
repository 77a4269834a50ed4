//! `device-types list|show|create|update|delete`: an organisation's device
//! types. `create` and `update` read the type from a JSON file in the API's
//! shape (`{"org": "…", "slug": "…", "name": "…", "description": "…",
//! "properties": [{"property": "pm2_5", "name": "…", "unit": "ug/m3", "min": 0, "max": 1000}]}`;
//! `update` ignores `org`). An update gives every thing of the type the
//! datastreams it lacks.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use hoheit_domain::Slug;
use hoheit_store::audit::Actor;
use hoheit_store::device_types::{self, DeviceType, DeviceTypeUpdate, NewDeviceType};
use hoheit_store::registry;
use sqlx::PgPool;

use crate::output::{or_dash, Table};
use crate::{AdminError, Output};

#[derive(Debug, Subcommand)]
pub enum DeviceTypeCommand {
    /// List device types (of one organisation with --org).
    List(ListArgs),
    /// Show one type with its properties.
    Show(IdArgs),
    /// Create a type from a JSON file (its `org` names the organisation, or --org).
    Create(CreateArgs),
    /// Replace a type's name, description and properties from a JSON file; things get missing datastreams.
    Update(UpdateArgs),
    /// Delete a type that no thing has.
    Delete(IdArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, value_parser = super::org_slug)]
    pub org: Option<Slug>,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// The type's id (see `device-types list`).
    pub id: i64,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The type as JSON.
    pub file: PathBuf,
    /// The organisation (instead of the file's `org`).
    #[arg(long, value_parser = super::org_slug)]
    pub org: Option<Slug>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    pub id: i64,
    /// The type's new description as JSON.
    pub file: PathBuf,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, AdminError> {
    let text = std::fs::read(path).map_err(|e| AdminError::Input(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_slice(&text).map_err(|e| AdminError::Input(format!("{}: {e}", path.display())))
}

fn print_type(out: &mut Output<'_>, t: &DeviceType) -> Result<(), AdminError> {
    out.line(format!("device type {} ({}) of {}, id {}, {} thing(s)", t.slug, t.name, t.org, t.id, t.things))?;
    let mut table = Table::new(&["property", "name", "unit", "min", "max"]);
    for p in &t.properties {
        table.row([p.property.to_string(), p.name.clone(), p.unit.to_string(), or_dash(p.min), or_dash(p.max)]);
    }
    out.table(&table)
}

pub async fn run(
    pool: &PgPool,
    command: DeviceTypeCommand,
    actor: &Actor,
    out: &mut Output<'_>,
) -> Result<(), AdminError> {
    match command {
        DeviceTypeCommand::List(args) => {
            let org_id = match &args.org {
                Some(org) => Some(registry::organisation_id(pool, org).await?),
                None => None,
            };
            let list = device_types::list(pool, org_id).await?;
            out.show(&list, |out| {
                let mut table = Table::new(&["id", "organisation", "slug", "name", "properties", "things"]);
                for t in &list {
                    let properties: Vec<&str> = t.properties.iter().map(|p| p.property.as_str()).collect();
                    table.row([
                        t.id.to_string(),
                        t.org.to_string(),
                        t.slug.to_string(),
                        t.name.clone(),
                        properties.join(", "),
                        t.things.to_string(),
                    ]);
                }
                out.table(&table)
            })
        }
        DeviceTypeCommand::Show(args) => {
            let t = device_types::get(pool, args.id).await?;
            out.show(&t, |out| print_type(out, &t))
        }
        DeviceTypeCommand::Create(args) => {
            let new: NewDeviceType = read_json(&args.file)?;
            let org = args
                .org
                .or(new.org.clone())
                .ok_or_else(|| AdminError::Input("name the organisation: --org, or \"org\" in the file".into()))?;
            let t = device_types::create(pool, &org, &new, actor).await?;
            out.show(&t, |out| print_type(out, &t))
        }
        DeviceTypeCommand::Update(args) => {
            let mut value: serde_json::Value = read_json(&args.file)?;
            if let Some(object) = value.as_object_mut() {
                object.remove("org");
            }
            let update: DeviceTypeUpdate = serde_json::from_value(value)
                .map_err(|e| AdminError::Input(format!("{}: {e}", args.file.display())))?;
            let updated = device_types::update(pool, args.id, &update, actor).await?;
            out.show(&updated, |out| {
                print_type(out, &updated.device_type)?;
                out.line(format!("{} datastream(s) created for the type's things", updated.datastreams_created))
            })
        }
        DeviceTypeCommand::Delete(args) => {
            device_types::delete(pool, args.id, actor).await?;
            out.show(&serde_json::json!({"deleted": args.id}), |out| {
                out.line(format!("deleted device type {}", args.id))
            })
        }
    }
}
