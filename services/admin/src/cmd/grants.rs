//! `grants create|revoke|list`: contracts from a dataset's owner to another
//! organisation: scope (the dataset), finest resolution, history window,
//! validity, purpose, rate limit and contract reference. The API's policy
//! enforces them.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use hoheit_domain::policy::GrantTerms;
use hoheit_domain::Slug;
use hoheit_store::audit::Actor;
use hoheit_store::grants::{self, GrantListing, NewGrant};
use sqlx::PgPool;

use crate::output::{time, Table};
use crate::{AdminError, Output};

#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Grant an organisation access to a dataset.
    Create(CreateArgs),
    /// Revoke a grant by id.
    Revoke(RevokeArgs),
    /// List grants.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The dataset's slug.
    #[arg(long, value_parser = super::dataset_slug)]
    pub dataset: Slug,
    /// The organisation receiving access.
    #[arg(long, value_parser = super::org_slug)]
    pub grantee: Slug,
    /// What the grantee may use the data for.
    #[arg(long)]
    pub purpose: String,
    /// Reference of the contract (Nutzungsvereinbarung).
    #[arg(long)]
    pub contract_ref: String,
    /// Only aggregates of at least this many minutes (omit: raw readings allowed).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub min_interval_mins: Option<i32>,
    /// Only the last N days (omit: the whole history).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub history_days: Option<i32>,
    /// Start of validity, RFC 3339 (default: now).
    #[arg(long, value_parser = super::timestamp)]
    pub valid_from: Option<DateTime<Utc>>,
    /// End of validity, RFC 3339 (instead of --valid-days).
    #[arg(long, value_parser = super::timestamp, conflicts_with = "valid_days")]
    pub valid_until: Option<DateTime<Utc>>,
    /// Days of validity from now.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub valid_days: u32,
    /// Requests per minute per credential (default 60).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub rate_per_minute: Option<i32>,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The grant's id (see `grants list`).
    pub id: i64,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only grants on this dataset.
    #[arg(long, value_parser = super::dataset_slug)]
    pub dataset: Option<Slug>,
    /// Only grants held by this organisation.
    #[arg(long, value_parser = super::org_slug)]
    pub grantee: Option<Slug>,
}

/// "aggregates ≥ 15 min" or "raw".
pub fn resolution(g: &GrantTerms) -> String {
    match g.min_interval_mins {
        Some(m) => format!("aggregates >= {m} min"),
        None => "raw".into(),
    }
}

/// "last 30 days" or "all".
pub fn history(g: &GrantTerms) -> String {
    match g.history_days {
        Some(d) => format!("last {d} days"),
        None => "all".into(),
    }
}

fn state(g: &GrantTerms, now: DateTime<Utc>) -> String {
    match g.revoked_at {
        Some(at) => format!("revoked {}", time(at)),
        None if g.valid_until <= now => "expired".into(),
        None if g.valid_from > now => "not yet valid".into(),
        None => "active".into(),
    }
}

pub async fn run(pool: &PgPool, command: GrantCommand, actor: &Actor, out: &mut Output<'_>) -> Result<(), AdminError> {
    match command {
        GrantCommand::Create(a) => {
            let dataset = super::datasets::by_slug(pool, &a.dataset).await?;
            let valid_until = match a.valid_until {
                Some(at) => at,
                None => super::days_from_now(a.valid_days)?,
            };
            let new = NewGrant {
                dataset_id: dataset.id,
                grantee: a.grantee.clone(),
                purpose: a.purpose,
                contract_ref: a.contract_ref,
                min_interval_mins: a.min_interval_mins,
                history_days: a.history_days,
                valid_from: a.valid_from,
                valid_until,
                rate_per_minute: a.rate_per_minute,
            };
            let g = grants::create(pool, &new, actor).await?;
            out.show(&g, |out| {
                out.line(format!(
                    "created grant {} of dataset {} to {}: {}, {}, valid {} to {}, {} requests/min, contract {}",
                    g.id,
                    dataset.slug,
                    a.grantee,
                    resolution(&g),
                    history(&g),
                    time(g.valid_from),
                    time(g.valid_until),
                    g.rate_per_minute,
                    g.contract_ref
                ))
            })
        }
        GrantCommand::Revoke(a) => {
            grants::revoke(pool, a.id, actor).await?;
            out.show(&serde_json::json!({ "revoked": a.id }), |out| out.line(format!("revoked grant {}", a.id)))
        }
        GrantCommand::List(a) => {
            let dataset_id = match &a.dataset {
                Some(slug) => Some(super::datasets::by_slug(pool, slug).await?.id),
                None => None,
            };
            let list: Vec<GrantListing> = grants::list_grants(pool, dataset_id, a.grantee.as_ref()).await?;
            out.show(&list, |out| {
                let now = Utc::now();
                let mut table = Table::new(&[
                    "id",
                    "dataset",
                    "grantee",
                    "resolution",
                    "history",
                    "valid until",
                    "rate/min",
                    "state",
                    "contract",
                    "purpose",
                ]);
                for g in &list {
                    table.row([
                        g.terms.id.to_string(),
                        g.dataset.clone(),
                        g.grantee.clone(),
                        resolution(&g.terms),
                        history(&g.terms),
                        time(g.terms.valid_until),
                        g.terms.rate_per_minute.to_string(),
                        state(&g.terms, now),
                        g.terms.contract_ref.clone(),
                        g.terms.purpose.clone(),
                    ]);
                }
                out.table(&table)
            })
        }
    }
}
