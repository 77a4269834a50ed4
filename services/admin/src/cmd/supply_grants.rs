//! `supply-grants add|list|revoke`: supply contracts. The owner of a dataset
//! lets a supplier's writer keys deliver readings into it (all its things or
//! the ones named), for the contract's validity; the readings belong to the
//! owner. Ingest enforces them on every door; `mqtt-config` renders the
//! broker rights of the grants in force.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use hoheit_domain::write::SupplyTerms;
use hoheit_domain::Slug;
use hoheit_store::audit::Actor;
use hoheit_store::supply::{self, NewSupplyGrant, SupplyListing, ThingRef};
use sqlx::PgPool;

use crate::output::{time, Table};
use crate::{AdminError, Output};

#[derive(Debug, Subcommand)]
pub enum SupplyGrantCommand {
    /// Let a supplier's writer keys deliver readings into a dataset.
    Add(AddArgs),
    /// List supply grants.
    List(ListArgs),
    /// Revoke a supply grant by id: the supplier's writes stop at once
    /// (run `mqtt-config` again for the broker).
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The dataset's slug.
    #[arg(long, value_parser = super::dataset_slug)]
    pub dataset: Slug,
    /// The organisation delivering the readings.
    #[arg(long, value_parser = super::org_slug)]
    pub supplier: Slug,
    /// Reference of the supply contract.
    #[arg(long)]
    pub contract_ref: String,
    /// A thing of the dataset the supplier may write for (repeat; omit: every thing of the dataset).
    #[arg(long = "thing", value_parser = thing_slug)]
    pub things: Vec<Slug>,
    /// Start of validity, RFC 3339 (default: now).
    #[arg(long, value_parser = super::timestamp)]
    pub valid_from: Option<DateTime<Utc>>,
    /// End of validity, RFC 3339 (instead of --valid-days).
    #[arg(long, value_parser = super::timestamp, conflicts_with = "valid_days")]
    pub valid_until: Option<DateTime<Utc>>,
    /// Days of validity from now.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub valid_days: u32,
}

fn thing_slug(value: &str) -> Result<Slug, hoheit_domain::SlugError> {
    Slug::parse("thing", value)
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The supply grant's id (see `supply-grants list`).
    pub id: i64,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only supply grants on this dataset.
    #[arg(long, value_parser = super::dataset_slug)]
    pub dataset: Option<Slug>,
    /// Only supply grants held by this organisation.
    #[arg(long, value_parser = super::org_slug)]
    pub supplier: Option<Slug>,
}

fn state(g: &SupplyTerms, now: DateTime<Utc>) -> String {
    match g.revoked_at {
        Some(at) => format!("revoked {}", time(at)),
        None if g.valid_until <= now => "expired".into(),
        None if g.valid_from > now => "not yet valid".into(),
        None => "active".into(),
    }
}

fn things(names: &Option<Vec<String>>) -> String {
    names.as_ref().map(|n| n.join(",")).unwrap_or_else(|| "all".into())
}

pub async fn run(
    pool: &PgPool,
    command: SupplyGrantCommand,
    actor: &Actor,
    out: &mut Output<'_>,
) -> Result<(), AdminError> {
    match command {
        SupplyGrantCommand::Add(a) => {
            let dataset = super::datasets::by_slug(pool, &a.dataset).await?;
            let valid_until = match a.valid_until {
                Some(at) => at,
                None => super::days_from_now(a.valid_days)?,
            };
            let named = (!a.things.is_empty()).then(|| a.things.iter().cloned().map(ThingRef::Slug).collect());
            let new = NewSupplyGrant {
                dataset_id: dataset.id,
                supplier: a.supplier.clone(),
                contract_ref: a.contract_ref,
                things: named,
                valid_from: a.valid_from,
                valid_until,
            };
            let g = supply::create(pool, &new, actor).await?;
            out.show(&g, |out| {
                let things = if a.things.is_empty() {
                    "every thing".to_owned()
                } else {
                    a.things.iter().map(Slug::as_str).collect::<Vec<_>>().join(", ")
                };
                out.line(format!(
                    "created supply grant {}: {} writes into dataset {} ({things}), valid {} to {}, contract {}",
                    g.id,
                    a.supplier,
                    dataset.slug,
                    time(g.valid_from),
                    time(g.valid_until),
                    g.contract_ref
                ))
            })
        }
        SupplyGrantCommand::Revoke(a) => {
            supply::revoke(pool, a.id, actor).await?;
            out.show(&serde_json::json!({ "revoked": a.id }), |out| {
                out.line(format!("revoked supply grant {}; run mqtt-config again for the broker", a.id))
            })
        }
        SupplyGrantCommand::List(a) => {
            let dataset_id = match &a.dataset {
                Some(slug) => Some(super::datasets::by_slug(pool, slug).await?.id),
                None => None,
            };
            let list: Vec<SupplyListing> = supply::list(pool, dataset_id, a.supplier.as_ref()).await?;
            out.show(&list, |out| {
                let now = Utc::now();
                let mut table =
                    Table::new(&["id", "dataset", "owner", "supplier", "things", "valid until", "state", "contract"]);
                for g in &list {
                    table.row([
                        g.terms.id.to_string(),
                        g.dataset.clone(),
                        g.owner.clone(),
                        g.supplier.clone(),
                        things(&g.thing_slugs),
                        time(g.terms.valid_until),
                        state(&g.terms, now),
                        g.terms.contract_ref.clone(),
                    ]);
                }
                out.table(&table)
            })
        }
    }
}
