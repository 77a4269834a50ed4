//! Hoheit API: the registry, observations, aggregates and dead letters over
//! HTTP, on the database the writer fills.
//!
//! Every request is resolved to a caller ([`auth`]): anonymous, the platform
//! operator, or a principal (API key or OIDC token). Every data read goes
//! through the policy and the audit log ([`access`]). Errors are
//! problem+json with a reason.

mod access;
mod auth;
pub mod error;
mod extract;
pub mod oidc;
pub mod params;
mod rate_limit;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use clap::Parser;
use hoheit_core::config::{ConfigFileArg, DatabaseArgs, Secret};
use hoheit_core::telemetry::LogArgs;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// Configuration of the API service.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "hoheit-api",
    version,
    about = "Hoheit API: registry, observations, aggregates and dead letters over HTTP"
)]
pub struct ApiConfig {
    #[command(flatten)]
    pub config_file: ConfigFileArg,
    /// Address to listen on.
    #[arg(long, env = "HOHEIT_API_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Bootstrap token of the platform operator (municipal IT): full administration.
    #[arg(long, env = "HOHEIT_API_TOKEN", hide_env_values = true)]
    pub token: Secret,
    /// Requests per minute per credential (API key, OIDC principal, anonymous client address).
    #[arg(long, env = "HOHEIT_API_RATE_PER_MINUTE", default_value_t = 600)]
    pub rate_per_minute: u32,
    /// Seconds between runs of the retention job (deletes readings past each dataset's retention).
    #[arg(long, env = "HOHEIT_API_RETENTION_INTERVAL_SECS", default_value_t = 3600)]
    pub retention_interval_secs: u64,
    #[command(flatten)]
    pub oidc: oidc::OidcArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub token: Arc<auth::TokenCheck>,
    pub oidc: Option<Arc<oidc::Oidc>>,
    pub limiter: Arc<rate_limit::RateLimiter>,
    pub rate_per_minute: u32,
}

/// A built API server (tests build it on port 0 and run it in-process).
pub struct Api {
    listener: tokio::net::TcpListener,
    router: Router,
    pool: PgPool,
    retention_every: Duration,
}

impl Api {
    /// Connects to (and migrates) the database and binds the listener.
    pub async fn build(config: ApiConfig, shutdown: &CancellationToken) -> anyhow::Result<Self> {
        if config.token.expose().len() < 16 {
            anyhow::bail!("HOHEIT_API_TOKEN must be at least 16 characters");
        }
        // Install the metrics recorder before anything records.
        let _ = hoheit_core::ops::metrics_handle();
        let pool =
            hoheit_core::db::connect(config.database.url.expose(), config.database.max_connections, shutdown).await?;
        let listener =
            tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
        let oidc = oidc::Oidc::new(&config.oidc).map(Arc::new);
        let state = AppState {
            pool: pool.clone(),
            token: Arc::new(auth::TokenCheck::new(&config.token)),
            oidc,
            limiter: Arc::new(rate_limit::RateLimiter::default()),
            rate_per_minute: config.rate_per_minute.max(1),
        };
        let retention_every = Duration::from_secs(config.retention_interval_secs.max(1));
        Ok(Self { listener, router: router(state), pool, retention_every })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "api listening");
        let retention = tokio::spawn(retention_job(self.pool.clone(), self.retention_every, shutdown.clone()));
        let app = self.router.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned()).await?;
        shutdown.cancel();
        let _ = retention.await;
        Ok(())
    }
}

/// Deletes readings past their dataset's retention, periodically. Several
/// replicas running it at once is harmless: the delete is idempotent.
async fn retention_job(pool: PgPool, every: Duration, shutdown: CancellationToken) {
    loop {
        match hoheit_core::datasets::enforce_retention(&pool).await {
            Ok(0) => {}
            Ok(deleted) => {
                metrics::counter!("hoheit_api_retention_deleted_total").increment(deleted);
                tracing::info!(deleted, "retention: readings past their dataset's retention deleted");
            }
            Err(error) => tracing::warn!(%error, "retention run failed; retrying next time"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// All routes with their middleware.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/datastreams", get(routes::datastreams::list))
        .route("/datastreams/{id}", get(routes::datastreams::get_one))
        .route("/datastreams/{id}/observations", get(routes::datastreams::observations))
        .route("/datastreams/{id}/aggregates", get(routes::datastreams::aggregates))
        .route("/dead-letters", get(routes::dead_letters::list))
        .route("/admin/organisations", post(routes::admin::create_organisation))
        .route("/admin/things", post(routes::admin::create_thing))
        .route("/admin/datastreams", post(routes::admin::create_datastream))
        .route("/admin/principals", post(routes::admin::create_principal))
        .route("/admin/principals/{id}/keys", post(routes::admin::create_key))
        .route("/admin/keys/{id}", delete(routes::admin::revoke_key))
        .route("/admin/datasets", post(routes::admin::create_dataset))
        .route("/admin/datasets/{id}/datastreams", post(routes::admin::assign_datastream))
        .route("/admin/grants", post(routes::admin::create_grant))
        .route("/admin/grants/{id}", delete(routes::admin::revoke_grant))
        .route("/datasets", get(routes::datasets::list))
        .route("/datasets/{id}", get(routes::datasets::get_one).delete(routes::datasets::erase))
        .route("/datasets/{id}/grants", get(routes::datasets::grants_on))
        .route("/datasets/{id}/export", get(routes::datasets::export))
        .route("/audit", get(routes::audit::list))
        .route("/audit/verify", get(routes::audit::verify))
        .route("/transparency", get(routes::audit::transparency));
    Router::new()
        .route("/healthz", get(hoheit_core::ops::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(hoheit_core::ops::metrics))
        .nest("/v1", v1)
        .fallback(routes::health::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(middleware::from_fn(record_request))
        .layer(hoheit_core::telemetry::http_trace_layer())
        .layer(RequestBodyLimitLayer::new(64 * 1024))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)))
        .with_state(state)
}

/// Counts requests and their latency by route and status.
async fn record_request(request: Request, next: Next) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("hoheit_api_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status).increment(1);
    metrics::histogram!("hoheit_api_request_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}
