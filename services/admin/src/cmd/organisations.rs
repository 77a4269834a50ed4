//! `organisations create|list`: the town, its departments and municipal
//! companies ("Konzern Stadt"), and third parties. A new organisation is
//! audited right after the registry created it.

use clap::{Args, Subcommand};
use hoheit_domain::policy::OrgKind;
use hoheit_domain::Slug;
use hoheit_store::audit::{self, Actor, AdminChange};
use hoheit_store::registry::{self, NewOrganisation, Organisation};
use sqlx::PgPool;

use crate::output::{or_dash, Table};
use crate::{AdminError, Output};

#[derive(Debug, Subcommand)]
pub enum OrganisationCommand {
    /// Register an organisation.
    Create(CreateArgs),
    /// List every organisation.
    List,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Slug: a-z, 0-9, '-', '_' (it appears in MQTT topics and URLs).
    #[arg(value_parser = super::org_slug)]
    pub slug: Slug,
    /// Display name, e.g. "Tiefbau- und Verkehrsamt".
    #[arg(long)]
    pub name: String,
    /// What kind of organisation this is.
    #[arg(long, value_parser = super::org_kind(), default_value = "municipality")]
    pub kind: OrgKind,
    /// The municipality a department or municipal company belongs to.
    #[arg(long, value_parser = super::org_slug)]
    pub parent: Option<Slug>,
}

/// Creates an organisation and audits it as `organisation.create`.
pub async fn create(pool: &PgPool, new: &NewOrganisation, actor: &Actor) -> Result<Organisation, AdminError> {
    let org = registry::create_organisation(pool, new).await?;
    let change = AdminChange::new("organisation.create", "organisation", org.id, org.id);
    audit::record_change_alone(pool, actor, &change.states(None::<&Organisation>, Some(&org))).await?;
    Ok(org)
}

pub async fn run(
    pool: &PgPool,
    command: OrganisationCommand,
    actor: &Actor,
    out: &mut Output<'_>,
) -> Result<(), AdminError> {
    match command {
        OrganisationCommand::Create(args) => {
            let new = NewOrganisation { slug: args.slug, name: args.name, kind: Some(args.kind), parent: args.parent };
            let org = create(pool, &new, actor).await?;
            out.show(&org, |out| {
                let parent = org.parent.as_ref().map(|p| format!(" of {p}")).unwrap_or_default();
                out.line(format!("created organisation {} ({}{parent}), id {}", org.slug, org.kind, org.id))
            })
        }
        OrganisationCommand::List => {
            let orgs = registry::list_organisations(pool).await?;
            out.show(&orgs, |out| {
                let mut table = Table::new(&["id", "slug", "kind", "parent", "name"]);
                for o in &orgs {
                    table.row([
                        o.id.to_string(),
                        o.slug.to_string(),
                        o.kind.to_string(),
                        or_dash(o.parent.as_ref()),
                        o.name.clone(),
                    ]);
                }
                out.table(&table)
            })
        }
    }
}
