//! `things device-token`: issues a thing's device token, the password its
//! device presents at its door (the airrohr firmware's "send to own API").
//! The token is printed once, to stdout, and never logged or stored (the
//! database keeps its SHA-256); issuing again replaces it.

use clap::{Args, Subcommand};
use hoheit_domain::{Slug, SlugError};
use hoheit_store::audit::Actor;
use hoheit_store::device_tokens;
use sqlx::PgPool;

use crate::{AdminError, Output};

#[derive(Debug, Subcommand)]
pub enum ThingCommand {
    /// Issue a device token for a thing with an external id; shown once, replaces the previous one.
    DeviceToken(DeviceTokenArgs),
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
    }
}
