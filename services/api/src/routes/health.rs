//! Readiness and the problem+json 404.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::error::problem;
use crate::AppState;

/// 200 when the database answers, 503 otherwise.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if hoheit_core::db::is_reachable(&state.pool).await {
        (StatusCode::OK, "database=ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database=down\n").into_response()
    }
}

pub async fn not_found(uri: Uri) -> Response {
    let path: String = uri.path().chars().take(200).collect();
    problem(StatusCode::NOT_FOUND, format!("no resource at {path}; see /v1/datastreams"))
}
