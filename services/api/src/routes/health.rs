//! Liveness, readiness, metrics and the problem+json 404.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::error::problem;
use crate::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, operation_id = "health_healthz", path = "/healthz", tag = "ops", security(()),
    responses((status = 200, description = "alive", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    hoheit_runtime::ops::healthz().await
}

/// Readiness: 200 when the database answers, 503 otherwise.
#[utoipa::path(get, operation_id = "health_readyz", path = "/readyz", tag = "ops", security(()),
    responses(
        (status = 200, description = "the database answers", body = String, content_type = "text/plain"),
        (status = 503, description = "the database does not answer", body = String, content_type = "text/plain"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    if hoheit_store::db::is_reachable(&state.pool).await {
        (StatusCode::OK, "database=ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database=down\n").into_response()
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, operation_id = "health_metrics", path = "/metrics", tag = "ops", security(()),
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain")))]
pub async fn metrics() -> Response {
    hoheit_runtime::ops::metrics().await.into_response()
}

pub async fn not_found(uri: Uri) -> Response {
    let path: String = uri.path().chars().take(200).collect();
    problem(StatusCode::NOT_FOUND, format!("no resource at {path}; see /v1/datastreams or /docs"))
}
