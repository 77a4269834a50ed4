//! `datasets create|list|assign`: the unit of ownership, classification,
//! license, purpose and retention, and which datastreams belong to it. A
//! datastream can only join a dataset of the organisation that owns its thing.

use clap::{Args, Subcommand};
use hoheit_domain::policy::Classification;
use hoheit_domain::{DatastreamId, Slug};
use hoheit_store::audit::Actor;
use hoheit_store::datasets::{self, Dataset, NewDataset};
use hoheit_store::registry;
use sqlx::PgPool;

use super::ThingRef;
use crate::output::Table;
use crate::{AdminError, Output};

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Register a dataset.
    Create(CreateArgs),
    /// List every dataset.
    List,
    /// Put datastreams into a dataset (by id, or every datastream of a thing).
    Assign(AssignArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Slug of the dataset, e.g. "verkehrszaehlungen".
    #[arg(value_parser = super::dataset_slug)]
    pub slug: Slug,
    /// The owner organisation (it must own the things whose datastreams join).
    #[arg(long, value_parser = super::org_slug)]
    pub owner: Slug,
    #[arg(long)]
    pub title: String,
    #[arg(long, default_value = "")]
    pub description: String,
    /// Contact of the data steward (an e-mail address or a function mailbox).
    #[arg(long)]
    pub steward_contact: String,
    #[arg(long, value_parser = super::classification())]
    pub classification: Classification,
    /// For open data a dcat-ap.de license URI, e.g. http://dcat-ap.de/def/licenses/dl-by-de/2.0
    #[arg(long)]
    pub license: String,
    /// Zweckbindung: what the data is collected and used for.
    #[arg(long)]
    pub purpose: String,
    /// Days readings are kept (`retention run` deletes older ones).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub retention_days: i32,
    /// Theme, e.g. http://publications.europa.eu/resource/authority/data-theme/TRAN
    #[arg(long, default_value = "")]
    pub theme: String,
    /// For personal data: aggregate buckets with fewer readings are withheld (default 5).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub min_bucket_count: Option<i32>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["datastreams", "thing"])))]
pub struct AssignArgs {
    /// The dataset's slug.
    #[arg(value_parser = super::dataset_slug)]
    pub dataset: Slug,
    /// Datastream ids.
    pub datastreams: Vec<i64>,
    /// Every datastream of this thing, as ORG/THING (repeatable).
    #[arg(long, value_parser = super::thing_ref)]
    pub thing: Vec<ThingRef>,
}

/// The dataset called `slug`, or an input error.
pub async fn by_slug(pool: &PgPool, slug: &Slug) -> Result<Dataset, AdminError> {
    datasets::by_slug(pool, slug).await?.ok_or_else(|| AdminError::Input(format!("dataset {slug} not found")))
}

pub async fn run(
    pool: &PgPool,
    command: DatasetCommand,
    actor: &Actor,
    out: &mut Output<'_>,
) -> Result<(), AdminError> {
    match command {
        DatasetCommand::Create(a) => {
            let new = NewDataset {
                slug: a.slug,
                owner: a.owner,
                title: a.title,
                description: a.description,
                steward_contact: a.steward_contact,
                classification: a.classification,
                license: a.license,
                purpose: a.purpose,
                retention_days: a.retention_days,
                theme: a.theme,
                min_bucket_count: a.min_bucket_count,
            };
            let ds = datasets::create(pool, &new, actor).await?;
            out.show(&ds, |out| {
                out.line(format!(
                    "created dataset {} ({}, owner {}, retention {} days), id {}; add datastreams with: \
                     hoheit-admin datasets assign {} --thing ORG/THING",
                    ds.slug, ds.classification, ds.owner, ds.retention_days, ds.id, ds.slug
                ))
            })
        }
        DatasetCommand::List => {
            let list = datasets::list(pool).await?;
            out.show(&list, |out| {
                let mut table =
                    Table::new(&["id", "slug", "owner", "classification", "retention", "steward", "license", "title"]);
                for d in &list {
                    table.row([
                        d.id.to_string(),
                        d.slug.clone(),
                        d.owner.clone(),
                        d.classification.to_string(),
                        format!("{} d", d.retention_days),
                        d.steward_contact.clone(),
                        d.license.clone(),
                        d.title.clone(),
                    ]);
                }
                out.table(&table)
            })
        }
        DatasetCommand::Assign(a) => {
            let ds = by_slug(pool, &a.dataset).await?;
            let mut ids: Vec<DatastreamId> = a.datastreams.iter().copied().map(DatastreamId).collect();
            for thing in &a.thing {
                let of_thing = registry::datastreams_of_thing(pool, &thing.org, &thing.thing).await?;
                if of_thing.is_empty() {
                    return Err(AdminError::Input(format!("thing {}/{} has no datastreams", thing.org, thing.thing)));
                }
                ids.extend(of_thing);
            }
            ids.sort();
            ids.dedup();
            for id in &ids {
                datasets::assign(pool, ds.id, *id, actor).await?;
            }
            let result = serde_json::json!({ "dataset": ds.slug, "dataset_id": ds.id, "assigned": ids });
            out.show(&result, |out| {
                let list: Vec<String> = ids.iter().map(ToString::to_string).collect();
                out.line(format!("assigned {} datastream(s) to dataset {}: {}", ids.len(), ds.slug, list.join(", ")))
            })
        }
    }
}
