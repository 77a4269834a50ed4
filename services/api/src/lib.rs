//! Hoheit API: the registry, observations, aggregates and dead letters over
//! HTTP, on the database the writer fills.
//!
//! Every `/v1` route requires the bearer token from the configuration (until
//! per-principal access control replaces it); errors are problem+json.

mod auth;
pub mod error;
mod extract;
pub mod params;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
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
    /// Bearer token that every /v1 request must present.
    #[arg(long, env = "HOHEIT_API_TOKEN")]
    pub token: Secret,
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
}

/// A built API server (tests build it on port 0 and run it in-process).
pub struct Api {
    listener: tokio::net::TcpListener,
    router: Router,
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
        let state = AppState { pool, token: Arc::new(auth::TokenCheck::new(&config.token)) };
        Ok(Self { listener, router: router(state) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "api listening");
        axum::serve(self.listener, self.router).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
        Ok(())
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
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_token));
    Router::new()
        .route("/healthz", get(hoheit_core::ops::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(hoheit_core::ops::metrics))
        .nest("/v1", v1)
        .fallback(routes::health::not_found)
        .layer(middleware::from_fn(record_request))
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
