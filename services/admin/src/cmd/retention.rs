//! `retention run`: removes readings older than their dataset's retention
//! (datastreams not assigned to a dataset are kept: no retention was stated
//! for them): whole expired chunks are dropped, the rest deleted row by row.
//! Meant for a daily timer or CronJob.

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
            let run = datasets::retention_run(pool).await?;
            let deleted = run.removed();
            tracing::info!(deleted, chunks_dropped = run.chunks_dropped, "retention enforced");
            let json = serde_json::json!({
                "deleted": deleted,
                "chunks_dropped": run.chunks_dropped,
                "readings_dropped": run.readings_dropped,
                "readings_deleted": run.readings_deleted,
            });
            out.show(&json, |out| {
                out.line(format!(
                    "deleted {deleted} reading(s) past their dataset's retention ({} in {} whole chunk(s) dropped, {} row by row)",
                    run.readings_dropped, run.chunks_dropped, run.readings_deleted
                ))
            })
        }
    }
}
