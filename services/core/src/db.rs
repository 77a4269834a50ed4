//! The database connection pool and the schema migrations.
//!
//! Every service calls [`connect`] at start-up: it waits (with back-off) for
//! the database, then applies the embedded migrations, which take an advisory
//! lock so that replicas starting together do not race.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database URL is not valid: {0}")]
    InvalidUrl(sqlx::Error),
    #[error("applying migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stopped while waiting for the database")]
    Cancelled,
}

/// Opens a pool to `url` and migrates the schema, retrying until the
/// database answers or `shutdown` fires.
pub async fn connect(url: &str, max_connections: u32, shutdown: &CancellationToken) -> Result<PgPool, DbError> {
    let options: PgConnectOptions = url.parse().map_err(DbError::InvalidUrl)?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options);
    let mut delay = Duration::from_millis(200);
    loop {
        match sqlx::query("SELECT 1").execute(&pool).await {
            Ok(_) => break,
            Err(error) => {
                tracing::warn!(%error, retry_in = ?delay, "database not reachable yet");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return Err(DbError::Cancelled),
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    migrate(&pool).await?;
    Ok(pool)
}

/// Applies the migrations embedded from `services/core/migrations`.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    sqlx::migrate!("./migrations").run(pool).await
}

/// Whether the database answers a trivial query.
pub async fn is_reachable(pool: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}
