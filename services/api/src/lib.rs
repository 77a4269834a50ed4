//! Hoheit API: the registry, observations, aggregates and dead letters over
//! HTTP, on the database the writer fills.
//!
//! Every request is resolved to a caller ([`auth`]): anonymous, the platform
//! operator, or a principal (API key or OIDC token). Every data read goes
//! through the policy and the audit log ([`access`]). Errors are
//! problem+json with a reason. The OpenAPI document is generated from the
//! handlers ([`openapi`]) and served at `/openapi.json`, with an interactive
//! page at `/docs`.

mod access;
mod access_cache;
mod auth;
mod dashboard;
pub mod dcat;
pub mod error;
mod extract;
mod forward;
pub mod headers;
mod live_feed;
pub mod oidc;
pub mod openapi;
pub mod params;
pub mod public_url;
mod rate_limit;
mod routes;
mod serve;
mod sta;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use clap::Parser;
use hoheit_runtime::config::{ConfigFileArg, DatabaseArgs, Secret};
use hoheit_runtime::telemetry::LogArgs;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use serve::serve;
pub use serve::HEADER_READ_TIMEOUT;

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
    /// Directory of the dashboard's built assets (`npm run build` in services/dashboard), served at `/`.
    #[arg(long, env = "HOHEIT_API_DASHBOARD_DIR", default_value = "services/dashboard/dist")]
    pub dashboard_dir: std::path::PathBuf,
    /// OIDC client id of the dashboard (a public client of `HOHEIT_OIDC_ISSUER`, authorization code
    /// with PKCE, redirect URI: the dashboard's `/`); unset: the dashboard offers API keys only.
    #[arg(long, env = "HOHEIT_API_DASHBOARD_OIDC_CLIENT_ID")]
    pub dashboard_oidc_client_id: Option<String>,
    /// MQTT topic root the ingest service reads (its `--topic-root`): erasure finds a dataset's dead letters by topic.
    #[arg(long, env = "HOHEIT_MQTT_TOPIC_ROOT", default_value = hoheit_domain::topic::DEFAULT_ROOT)]
    pub topic_root: String,
    /// The URL clients reach the API at (http or https, no query; a path prefix is allowed), e.g.
    /// `https://daten.stadt.example`: every absolute link the API writes (SensorThings, DCAT catalog,
    /// downloads) starts with it, never with the request's `Host`. Unset: `http://` and the listen address.
    #[arg(long, env = "HOHEIT_API_PUBLIC_BASE_URL", value_parser = public_url::PublicBaseUrl::parse)]
    pub public_base_url: Option<public_url::PublicBaseUrl>,
    /// Longest a database query of the API may run (PostgreSQL's `statement_timeout`); a longer
    /// one is cancelled and answered 503 with the reason.
    #[arg(long, env = "HOHEIT_API_STATEMENT_TIMEOUT_MS", default_value_t = 5000)]
    pub statement_timeout_ms: u64,
    /// Anonymous requests that may read the database at once (the public's share of the pool; more
    /// get 503 with Retry-After). Default: half of `--database-max-connections`.
    #[arg(long, env = "HOHEIT_API_ANONYMOUS_CONCURRENCY")]
    pub anonymous_concurrency: Option<u32>,
    /// Failed authentications per minute from one client address; beyond them, every credential
    /// from that address gets 429 until the budget refills.
    #[arg(long, env = "HOHEIT_API_AUTH_FAILURES_PER_MINUTE", default_value_t = 20)]
    pub auth_failures_per_minute: u32,
    /// Ingest's HTTP doors: writes sent to the API (`/v1/push/…`, SensorThings create) go there.
    #[arg(long, env = "HOHEIT_INGEST_URL", default_value = "http://127.0.0.1:8081")]
    pub ingest_url: String,
    /// Longest lifetime of a new API key, in days (the admin CLI reads the same variable).
    #[arg(long, env = "HOHEIT_MAX_KEY_LIFETIME_DAYS", default_value_t = hoheit_store::principals::DEFAULT_MAX_KEY_LIFETIME_DAYS)]
    pub max_key_lifetime_days: u32,
    #[command(flatten)]
    pub oidc: oidc::OidcArgs,
    /// The broker's dynamic security: keys created and revoked here reach it before the answer.
    #[command(flatten)]
    pub broker: hoheit_broker::dynsec::DynsecArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Every audit record goes through here (group commit, see `audit::AuditLog`).
    pub audit: hoheit_store::audit::AuditLog,
    pub token: Arc<auth::TokenCheck>,
    pub oidc: Option<Arc<oidc::Oidc>>,
    pub limiter: Arc<rate_limit::RateLimiter>,
    pub rate_per_minute: u32,
    /// The dashboard's built assets, served for paths no route matched, and its sign-in settings.
    pub(crate) dashboard: Arc<dashboard::Settings>,
    /// Cancelled at shutdown: ends open live streams, so that shutdown need not wait for them.
    pub shutdown: CancellationToken,
    /// The MQTT topic scheme (matches dead letters to datastreams).
    pub topics: hoheit_domain::topic::TopicScheme,
    /// Where clients reach the API: the start of every absolute link it writes.
    pub public_base: public_url::PublicBaseUrl,
    /// The anonymous public's share of the database.
    pub anonymous_budget: Arc<rate_limit::AnonymousBudget>,
    /// Failed authentications per minute allowed from one client address.
    pub auth_failures_per_minute: u32,
    /// The longest lifetime of a new API key.
    pub max_key_lifetime: hoheit_store::principals::KeyLifetime,
    /// Ingest's HTTP doors, where writes are forwarded.
    pub ingest: Arc<forward::Ingest>,
    /// The broker's dynamic security, if configured: new keys' clients, revoked keys' removal.
    pub broker: Option<Arc<hoheit_broker::sync::BrokerSync>>,
    /// The access facts every request decides on, reloaded within a second of a change.
    pub(crate) access: Arc<access_cache::AccessCache>,
    /// The one change feed of latest values every live stream follows.
    pub(crate) live: Arc<live_feed::LiveFeed>,
}

/// A built API server (tests build it on port 0 and run it in-process).
pub struct Api {
    listener: tokio::net::TcpListener,
    router: Router,
    pool: PgPool,
    retention_every: Duration,
    access: Arc<access_cache::AccessCache>,
    live: Arc<live_feed::LiveFeed>,
}

impl Api {
    /// Connects to (and migrates) the database and binds the listener.
    pub async fn build(config: ApiConfig, shutdown: &CancellationToken) -> anyhow::Result<Self> {
        if config.token.expose().len() < 16 {
            anyhow::bail!("HOHEIT_API_TOKEN must be at least 16 characters");
        }
        // Install the metrics recorder before anything records.
        let _ = hoheit_runtime::ops::metrics_handle();
        let max_key_lifetime = hoheit_store::principals::KeyLifetime::days(config.max_key_lifetime_days)?;
        let bounds = hoheit_store::db::QueryBounds {
            statement_timeout: Duration::from_millis(config.statement_timeout_ms.max(1)),
        };
        let pool = hoheit_store::db::connect_bounded(
            config.database.url.expose(),
            config.database.max_connections,
            Some(bounds),
            shutdown,
        )
        .await?;
        let anonymous_concurrency =
            config.anonymous_concurrency.unwrap_or(config.database.max_connections / 2).max(1) as usize;
        let listener =
            tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
        let oidc = oidc::Oidc::new(&config.oidc).map(Arc::new);
        let public_base = match config.public_base_url {
            Some(base) => base,
            // The bound address, so that port 0 (tests) becomes the real port.
            None => public_url::PublicBaseUrl::for_listen(listener.local_addr().context("the listen address")?),
        };
        let broker = match config.broker.admin()? {
            Some(admin) => {
                let root = hoheit_broker::rules::TopicRoot::parse(&config.topic_root)?;
                Some(Arc::new(hoheit_broker::sync::BrokerSync::connect(&admin, root, "api")))
            }
            None => None,
        };
        let access = Arc::new(access_cache::AccessCache::load(&pool).await.context("loading the access facts")?);
        let live = Arc::new(live_feed::LiveFeed::start(&pool).await.context("starting the live feed")?);
        let state = AppState {
            access: access.clone(),
            live: live.clone(),
            broker,
            pool: pool.clone(),
            audit: hoheit_store::audit::AuditLog::start(pool.clone()),
            token: Arc::new(auth::TokenCheck::new(&config.token)),
            oidc,
            limiter: Arc::new(rate_limit::RateLimiter::default()),
            rate_per_minute: config.rate_per_minute.max(1),
            dashboard: Arc::new(dashboard::Settings::new(
                config.dashboard_dir,
                config.oidc.issuer.as_deref(),
                config.dashboard_oidc_client_id.as_deref(),
            )),
            shutdown: shutdown.clone(),
            topics: hoheit_domain::topic::TopicScheme::new(&config.topic_root),
            public_base,
            anonymous_budget: Arc::new(rate_limit::AnonymousBudget::new(anonymous_concurrency)),
            auth_failures_per_minute: config.auth_failures_per_minute.max(1),
            max_key_lifetime,
            ingest: Arc::new(forward::Ingest::new(&config.ingest_url)),
        };
        let retention_every = Duration::from_secs(config.retention_interval_secs.max(1));
        Ok(Self { listener, router: router(state), pool, retention_every, access, live })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "api listening");
        let retention = tokio::spawn(retention_job(self.pool.clone(), self.retention_every, shutdown.clone()));
        let chain_head = tokio::spawn(chain_head_job(self.pool.clone(), shutdown.clone()));
        let access =
            tokio::spawn(access_cache::refresher(self.access, self.live.clone(), self.pool.clone(), shutdown.clone()));
        let live = tokio::spawn(live_feed::follow(self.live, self.pool.clone(), shutdown.clone()));
        serve(self.listener, self.router, shutdown.clone()).await;
        shutdown.cancel();
        let _ = retention.await;
        let _ = chain_head.await;
        let _ = access.await;
        let _ = live.await;
        Ok(())
    }
}

/// Deletes readings past their dataset's retention, periodically. Several
/// replicas running it at once is harmless: the delete is idempotent.
async fn retention_job(pool: PgPool, every: Duration, shutdown: CancellationToken) {
    loop {
        match hoheit_store::datasets::retention_run(&pool).await {
            Ok(run) => {
                metrics::counter!("hoheit_api_retention_chunks_skipped_total").increment(run.chunks_skipped);
                let deleted = run.removed();
                if deleted > 0 {
                    metrics::counter!("hoheit_api_retention_deleted_total").increment(deleted);
                    tracing::info!(deleted, "retention: readings past their dataset's retention deleted");
                }
            }
            Err(error) => tracing::warn!(%error, "retention run failed; retrying next time"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// How often the audit chain's head is logged (besides at start).
const CHAIN_HEAD_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// Logs the audit chain's head (newest id and hash) at start and daily: an
/// anchor outside the database, so that a rewrite of the whole audit table
/// shows as a logged head that no longer matches.
async fn chain_head_job(pool: PgPool, shutdown: CancellationToken) {
    loop {
        match hoheit_store::audit::head(&pool).await {
            Ok(Some(head)) => {
                tracing::info!(id = head.id, hash = %head.hash, at = %head.at, "audit chain head");
            }
            Ok(None) => tracing::info!("audit chain head: the audit log is empty"),
            Err(error) => tracing::warn!(%error, "reading the audit chain head failed; retrying next time"),
        }
        tokio::select! {
            _ = tokio::time::sleep(CHAIN_HEAD_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Every route with its documentation: a route is registered only through
/// `routes!`, which takes the handler's `#[utoipa::path]` into the
/// OpenAPI document, so the document cannot miss a route.
pub fn documented_routes() -> OpenApiRouter<AppState> {
    use routes::{
        admin, alerts, audit, connectors, datasets, datastreams, dead_letters, device_types, health, live, me,
        opendata, organisations, owned_grants, push, quality, supply, things,
    };
    let v1 = OpenApiRouter::new()
        .routes(routes!(datastreams::list))
        .routes(routes!(datastreams::get_one))
        .routes(routes!(datastreams::observations))
        .routes(routes!(datastreams::aggregates))
        .routes(routes!(quality::datastream))
        .routes(routes!(quality::organisation))
        .routes(routes!(live::stream))
        .routes(routes!(dead_letters::list))
        .routes(routes!(dead_letters::replay))
        .routes(routes!(push::datastream))
        .routes(routes!(push::thing))
        .routes(routes!(connectors::chirpstack))
        .routes(routes!(connectors::tts))
        .routes(routes!(connectors::create, connectors::list))
        .routes(routes!(connectors::disable))
        .routes(routes!(push::airrohr))
        .routes(routes!(admin::create_organisation))
        .routes(routes!(admin::create_thing, things::list))
        .routes(routes!(things::update))
        .routes(routes!(things::import))
        .routes(routes!(device_types::list, device_types::create))
        .routes(routes!(device_types::get_one, device_types::update, device_types::delete))
        .routes(routes!(admin::issue_device_token))
        .routes(routes!(admin::create_datastream))
        .routes(routes!(admin::update_datastream))
        .routes(routes!(admin::create_principal))
        .routes(routes!(admin::disable_principal))
        .routes(routes!(admin::create_key))
        .routes(routes!(admin::revoke_key))
        .routes(routes!(admin::create_dataset))
        .routes(routes!(admin::assign_datastream))
        .routes(routes!(admin::create_grant))
        .routes(routes!(admin::revoke_grant))
        .routes(routes!(supply::create))
        .routes(routes!(supply::revoke))
        .routes(routes!(supply::on_dataset))
        .routes(routes!(supply::held))
        .routes(routes!(datasets::list))
        .routes(routes!(organisations::list))
        .routes(routes!(me::get))
        .routes(routes!(me::grants))
        .routes(routes!(me::reads))
        .routes(routes!(datasets::get_one, datasets::erase))
        .routes(routes!(datasets::grants_on))
        .routes(routes!(owned_grants::list))
        .routes(routes!(datasets::export))
        .routes(routes!(audit::list))
        .routes(routes!(audit::verify))
        .routes(routes!(audit::transparency))
        .routes(routes!(alerts::create, alerts::list))
        .routes(routes!(alerts::get_one, alerts::update, alerts::delete))
        .routes(routes!(alerts::rotate_secret))
        .routes(routes!(alerts::alerts))
        .routes(routes!(alerts::events))
        .routes(routes!(alerts::deliveries));
    let mut all = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(opendata::catalog))
        .routes(routes!(opendata::download))
        .routes(routes!(sta::root))
        .routes(routes!(sta::root_slash))
        .routes(routes!(sta::resource))
        .routes(routes!(sta::create))
        .routes(routes!(sta::replace))
        .routes(routes!(sta::update))
        .routes(routes!(sta::delete))
        .nest("/v1", v1);
    openapi::add_problem_responses(all.get_openapi_mut());
    all
}

/// The OpenAPI document of [`router`] (also served at `/openapi.json`).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    documented_routes().into_openapi()
}

/// All routes with their middleware, the OpenAPI document and its interactive page.
pub fn router(state: AppState) -> Router {
    let (routes, document) = documented_routes().split_for_parts();
    let docs = SwaggerUi::new(openapi::DOCS_PATH).url(openapi::OPENAPI_PATH, document);
    let app = routes
        .merge(headers::docs_policy(Router::from(docs)))
        .fallback(dashboard::serve)
        .layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(middleware::from_fn(record_request))
        .layer(hoheit_runtime::telemetry::http_trace_layer())
        .layer(middleware::from_fn(limit_body))
        .layer(middleware::map_response(body_limit_as_problem))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)));
    headers::on_every_response(app).with_state(state)
}

/// The largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The body limit of a request: [`MAX_BODY_BYTES`], an import file's
/// larger one on its path.
fn body_limit(path: &str) -> usize {
    if path == routes::things::IMPORT_PATH {
        routes::things::MAX_IMPORT_BYTES
    } else {
        MAX_BODY_BYTES
    }
}

/// Refuses a body announced larger than its path's limit at once and cuts
/// off one that turns out larger while it is read.
async fn limit_body(request: Request, next: Next) -> Response {
    let limit = body_limit(request.uri().path());
    let announced =
        request.headers().get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        let detail = format!("the request body is larger than {} KiB; send less per request", limit / 1024);
        let mut refused = error::problem(axum::http::StatusCode::PAYLOAD_TOO_LARGE, detail);
        // The body stays unread, so the connection cannot carry another request: say so, or a
        // client may send its next request on a connection the server is closing.
        refused.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        return refused;
    }
    next.run(request.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limit)))).await
}

/// The body limit layer answers an announced oversized body with a bare 413;
/// give it the problem+json form with the limit, like every other error.
async fn body_limit_as_problem(response: Response) -> Response {
    let is_problem = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if response.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE && !is_problem {
        return error::problem(axum::http::StatusCode::PAYLOAD_TOO_LARGE, extract::body_too_large());
    }
    response
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
