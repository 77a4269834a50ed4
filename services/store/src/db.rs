//! The database connection pool and the schema migrations.
//!
//! Every service calls [`connect`] at start-up: it waits (with back-off) for
//! the database, then applies the embedded migrations, which take an advisory
//! lock so that replicas starting together do not race.
//!
//! The API connects with [`QueryBounds`] ([`connect_bounded`]): every query
//! of its pool ends at the statement timeout, and a query whose caller went
//! away (the HTTP client disconnected, so its handler was dropped mid-query)
//! is cancelled by the database. sqlx does not cancel a dropped query: it
//! keeps the connection and waits for the result when the connection is
//! released. The pool's release hook therefore gives a connection a short
//! grace to become idle and otherwise closes it; the server, which checks its
//! client socket during a query (`client_connection_check_interval`), then
//! cancels the query and frees the backend.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
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

/// How long the queries of a pool may run (the API's; the writer's batches
/// and the admin CLI are not bounded).
#[derive(Debug, Clone, Copy)]
pub struct QueryBounds {
    /// PostgreSQL's `statement_timeout` on every connection of the pool.
    pub statement_timeout: Duration,
}

/// How long a released connection may take to finish what it was doing
/// before it is taken for abandoned and closed.
const ABANDONED_QUERY_GRACE: Duration = Duration::from_millis(500);

/// How often the server checks, during a query, that the pool's connection
/// is still open (PostgreSQL 14 and later).
const CLIENT_CHECK_INTERVAL_MS: u32 = 1000;

/// Opens a pool to `url` and migrates the schema, retrying until the
/// database answers or `shutdown` fires.
pub async fn connect(url: &str, max_connections: u32, shutdown: &CancellationToken) -> Result<PgPool, DbError> {
    connect_bounded(url, max_connections, None, shutdown).await
}

/// [`connect`], with the queries of the pool bounded by `bounds`.
pub async fn connect_bounded(
    url: &str,
    max_connections: u32,
    bounds: Option<QueryBounds>,
    shutdown: &CancellationToken,
) -> Result<PgPool, DbError> {
    let options: PgConnectOptions = url.parse().map_err(DbError::InvalidUrl)?;
    let pool = PgPoolOptions::new().max_connections(max_connections).acquire_timeout(Duration::from_secs(5));
    let pool = match bounds {
        None => pool.connect_lazy_with(options.clone()),
        Some(bounds) => {
            pool.after_release(|conn, _| Box::pin(finished_in_time(conn))).connect_lazy_with(options.clone().options([
                ("statement_timeout", bounds.statement_timeout.as_millis().max(1).to_string()),
                ("client_connection_check_interval", CLIENT_CHECK_INTERVAL_MS.to_string()),
            ]))
        }
    };
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
    // Migrations on a connection of their own: no statement timeout applies to them.
    let mut conn = PgConnection::connect_with(&options).await.map_err(sqlx::migrate::MigrateError::from)?;
    sqlx::migrate!("./migrations").run_direct(&mut conn).await?;
    let _ = conn.close().await;
    Ok(pool)
}

/// The release hook of a bounded pool: keeps a connection that is idle (or
/// becomes so within the grace), closes one still busy with the query of a
/// request that is gone, so that the server cancels that query.
async fn finished_in_time(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    // `flush` waits until the connection is ready for the next query, without
    // a round trip when it already is (the usual case). It is hidden from
    // sqlx 0.8's documentation; `ping` would do the same at the cost of one
    // round trip per release.
    match tokio::time::timeout(ABANDONED_QUERY_GRACE, conn.flush()).await {
        Ok(result) => result.map(|()| true),
        Err(_) => {
            metrics::counter!("hoheit_db_abandoned_queries_total").increment(1);
            tracing::info!("a query outlived its request: closing its connection, so the database cancels it");
            Ok(false)
        }
    }
}

/// Lifts the statement timeout for the rest of the transaction on `conn`
/// (`SET LOCAL`: the pooled connection keeps its own afterwards). For the
/// few statements that are long by nature and not a caller's request to
/// bound: retention and erasure deleting readings.
pub async fn without_statement_timeout(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SET LOCAL statement_timeout = 0").execute(conn).await.map(|_| ())
}

/// Applies the migrations embedded from `services/store/migrations`.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    sqlx::migrate!("./migrations").run(pool).await
}

/// Whether the database answers a trivial query.
pub async fn is_reachable(pool: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}
