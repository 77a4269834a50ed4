//! `audit verify`: recomputes the audit log's hash chain and reports the
//! first broken link; exits 1 when the chain is broken, so monitoring and
//! scripts can act on it.

use clap::Subcommand;
use hoheit_store::audit;
use sqlx::PgPool;

use crate::{AdminError, Output};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every record's hash and link; exit 1 and name the first broken record if any.
    Verify,
}

pub async fn run(pool: &PgPool, command: AuditCommand, out: &mut Output<'_>) -> Result<(), AdminError> {
    match command {
        AuditCommand::Verify => {
            let v = audit::verify(pool).await?;
            match (v.first_broken_id, &v.problem) {
                (None, _) => {
                    out.show(&v, |out| out.line(format!("audit chain intact: {} records checked", v.records_checked)))
                }
                (Some(id), problem) => {
                    let problem = problem.clone().unwrap_or_else(|| "the link does not match".into());
                    out.show(&v, |out| {
                        out.line(format!(
                            "audit chain BROKEN at record {id}: {problem} ({} records before it are intact)",
                            v.records_checked
                        ))
                    })?;
                    Err(AdminError::AuditBroken { id, problem })
                }
            }
        }
    }
}
