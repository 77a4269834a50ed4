//! Security headers on every response: no content sniffing, no framing, no
//! referrer, and a Content-Security-Policy for what the response is.
//!
//! API answers (JSON, CSV, RDF, problems) are data, never a page: their
//! policy allows nothing. The Swagger UI at `/docs` loads its scripts and
//! styles from this origin (it sets inline styles, and shows data: images)
//! and fetches the OpenAPI document from here too. The dashboard sets its
//! own policy (`dashboard.rs`: map tiles, the OIDC issuer), which is kept.
//! Responses to a credential are marked `no-store` in `auth.rs`.

use axum::http::{header, HeaderName, HeaderValue};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

/// The policy of every response that sets none of its own.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The policy of the Swagger UI page and its assets.
pub const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                            img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
                            base-uri 'self'; form-action 'self'";

/// Gives the routes of `docs` (the Swagger UI) their policy.
pub fn docs_policy<S: Clone + Send + Sync + 'static>(docs: Router<S>) -> Router<S> {
    docs.layer(SetResponseHeaderLayer::if_not_present(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CSP),
    ))
}

/// Adds the headers every response carries (where the handler set none).
pub fn on_every_response<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    let headers: [(HeaderName, &'static str); 4] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, API_CSP),
    ];
    headers.into_iter().fold(router, |router, (name, value)| {
        router.layer(SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value)))
    })
}
