//! The built-in dashboard: serves the browser app's built assets
//! (`services/dashboard/dist`, built with npm) at `/`, with a single-page-app
//! fallback to `index.html`.
//!
//! It is the router's fallback, so every API route wins over it; paths under
//! the API's own prefixes (`/v1`, `/sta`, `/opendata`, …) that no route
//! matched stay a problem+json 404 instead of becoming the app's page. When
//! the assets were not built, `/` answers a 404 problem that says how to
//! build them (and the start-up log says so once). A browser navigating to a
//! path that is no file gets the app's page (single-page app); other clients
//! get the 404 problem.
//!
//! `/config.json` tells the app how to offer OIDC sign-in (authorization
//! code with PKCE, a public client of the API's configured issuer); the page's
//! Content-Security-Policy then admits that issuer's origin for the token
//! exchange, and nothing else.

use std::path::PathBuf;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use crate::error::problem;
use crate::AppState;

/// Path prefixes that belong to the API: never answered with the app's page.
const API_PREFIXES: [&str; 8] =
    ["/v1", "/sta", "/opendata", "/openapi.json", "/docs", "/healthz", "/readyz", "/metrics"];

/// What the dashboard serves and how it offers sign-in.
pub struct Settings {
    dir: PathBuf,
    /// The OIDC issuer and the dashboard's client id, when both are configured.
    oidc: Option<(String, String)>,
    /// The page's Content-Security-Policy.
    csp: HeaderValue,
}

impl Settings {
    /// Logs where the dashboard comes from, or that it is not built.
    pub fn new(dir: PathBuf, issuer: Option<&str>, client_id: Option<&str>) -> Self {
        if dir.join("index.html").is_file() {
            tracing::info!(dir = %dir.display(), "serving the dashboard at /");
        } else {
            tracing::warn!(dir = %dir.display(), "the dashboard is not built (no index.html): `/` answers 404; run `npm ci && npm run build` in services/dashboard or `deploy/local/hoheit up`");
        }
        let oidc = match (issuer, client_id) {
            (Some(issuer), Some(client)) => Some((issuer.trim_end_matches('/').to_owned(), client.to_owned())),
            _ => None,
        };
        // The issuer's origin (scheme://host:port) serves discovery and the token endpoint.
        let issuer_origin = oidc
            .as_ref()
            .and_then(|(issuer, _)| reqwest::Url::parse(issuer).ok())
            .map(|url| url.origin().ascii_serialization())
            .filter(|origin| origin != "null")
            .unwrap_or_default();
        // Everything from this origin, map tiles from any host (the tile URL is configurable), no frames.
        let csp = format!(
            "default-src 'self'; img-src 'self' data: blob: https: http:; style-src 'self' 'unsafe-inline'; \
             connect-src 'self' {issuer_origin}; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
        );
        let csp = HeaderValue::from_str(csp.trim()).unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
        Self { dir, oidc, csp }
    }
}

/// `/config.json`: what the app needs to know of this deployment.
fn config(settings: &Settings) -> Response {
    let oidc = settings
        .oidc
        .as_ref()
        .map(|(issuer, client_id)| serde_json::json!({"issuer": issuer, "client_id": client_id, "scope": "openid"}));
    let mut response = axum::Json(serde_json::json!({ "oidc": oidc })).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Answers a request no API route matched: the dashboard's file, its page
/// (single-page app), or a problem+json 404 for the API's own paths.
pub async fn serve(State(state): State<AppState>, request: Request) -> Response {
    let uri = request.uri().clone();
    let path = uri.path();
    let is_api = API_PREFIXES.iter().any(|p| path == *p || path.starts_with(&format!("{p}/")));
    if is_api || !matches!(*request.method(), Method::GET | Method::HEAD) {
        return crate::routes::health::not_found(uri).await;
    }
    if path == "/config.json" {
        return config(&state.dashboard);
    }
    let dir = state.dashboard.dir.as_path();
    let index = dir.join("index.html");
    if !tokio::fs::try_exists(&index).await.unwrap_or(false) {
        return problem(
            StatusCode::NOT_FOUND,
            format!(
                "the dashboard is not built: {} is missing; run `npm ci && npm run build` in services/dashboard \
                 (deploy/local/hoheit up does) or set HOHEIT_API_DASHBOARD_DIR; the API is at /v1 and /docs",
                index.display()
            ),
        );
    }
    let hashed_asset = path.starts_with("/assets/");
    // Single-page app: a browser navigating to a path that is no file gets the page; anything
    // else (a script, a probe for /etc/passwd) gets the 404 problem.
    let navigation = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    let head = request.method() == Method::HEAD;
    let mut response = match ServeDir::new(dir).oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    };
    if response.status() == StatusCode::NOT_FOUND {
        if !navigation {
            return crate::routes::health::not_found(uri).await;
        }
        let page = Request::builder()
            .method(if head { Method::HEAD } else { Method::GET })
            .body(axum::body::Body::empty())
            .expect("a GET with an empty body is a valid request");
        response = match ServeFile::new(index).oneshot(page).await {
            Ok(response) => response.into_response(),
            Err(never) => match never {},
        };
    }
    // Vite names the bundles by their content hash: cache them for good,
    // but always revalidate the page that names them.
    let cache =
        if hashed_asset && response.status().is_success() { "public, max-age=31536000, immutable" } else { "no-cache" };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::CONTENT_SECURITY_POLICY, state.dashboard.csp.clone());
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}
