//! What can go wrong in a command, and the exit code each failure maps to:
//! 2 when the operator's input is at fault (a name that does not exist, a
//! value out of range, a conflict with what is registered), 1 for anything
//! else (database, files, a broken audit chain, a demo that found no town).

use std::path::PathBuf;

use hoheit_store::db::DbError;
use hoheit_store::registry::RegistryError;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The command line names or asks for something that cannot be done.
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot open the database: {0}")]
    Connect(DbError),
    #[error("the database refused the connection: {0}")]
    Refused(String),
    #[error("the database did not answer within {0} s (check HOHEIT_DATABASE_URL or --database-url)")]
    ConnectTimeout(u64),
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
    #[error("the audit chain is broken at record {id}: {problem}")]
    AuditBroken { id: i64, problem: String },
    /// Ingest (which replays dead letters) is unreachable or failed.
    #[error("{0}")]
    Ingest(String),
    /// The demo's precondition (the simulator's town) did not appear in time.
    #[error("{0}")]
    NotReady(String),
}

impl AdminError {
    /// The process exit code: 2 for bad input, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Input(_) => 2,
            AdminError::Registry(RegistryError::Database(_)) => 1,
            AdminError::Registry(_) => 2,
            _ => 1,
        }
    }

    /// The message on one line, whatever the underlying error printed.
    pub fn one_line(&self) -> String {
        self.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

impl From<hoheit_broker::rules::RuleError> for AdminError {
    fn from(error: hoheit_broker::rules::RuleError) -> Self {
        AdminError::Input(error.0)
    }
}

impl From<std::io::Error> for AdminError {
    fn from(error: std::io::Error) -> Self {
        AdminError::Output(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_errors_exit_2_and_the_rest_1() {
        assert_eq!(AdminError::Input("x".into()).exit_code(), 2);
        assert_eq!(AdminError::Registry(RegistryError::NotFound("organisation x".into())).exit_code(), 2);
        assert_eq!(AdminError::Registry(RegistryError::Conflict("principal y".into())).exit_code(), 2);
        assert_eq!(AdminError::Registry(RegistryError::Database(sqlx::Error::PoolClosed)).exit_code(), 1);
        assert_eq!(AdminError::AuditBroken { id: 3, problem: "changed".into() }.exit_code(), 1);
        assert_eq!(AdminError::ConnectTimeout(30).exit_code(), 1);
    }

    #[test]
    fn messages_are_one_line() {
        let e = AdminError::Input("first\nsecond  third".into());
        assert_eq!(e.one_line(), "first second third");
    }
}
