//! `retention run`: deletes readings older than their dataset's retention
//! (datastreams not assigned to a dataset are kept: no retention was stated
//! for them). Meant for a daily timer or CronJob.

use clap::Subcommand;
use hoheit_store::datasets;
use sqlx::PgPool;

use crate::{AdminError, Output};

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Delete every reading past its dataset's retention now.
    Run,
}

pub async fn run(pool: &PgPool, command: RetentionCommand, out: &mut Output<'_>) -> Result<(), AdminError> {
    match command {
        RetentionCommand::Run => {
            let deleted = datasets::enforce_retention(pool).await?;
            tracing::info!(deleted, "retention enforced");
            out.show(&serde_json::json!({ "deleted": deleted }), |out| {
                out.line(format!("deleted {deleted} reading(s) past their dataset's retention"))
            })
        }
    }
}
