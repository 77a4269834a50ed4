//! The bearer-token check in front of every `/v1` route.
//!
//! Only the token's SHA-256 digest is kept in memory, and digests are
//! compared in constant time.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hoheit_core::config::Secret;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::AppState;

pub struct TokenCheck {
    digest: [u8; 32],
}

impl TokenCheck {
    pub fn new(token: &Secret) -> Self {
        Self { digest: Sha256::digest(token.expose().as_bytes()).into() }
    }

    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.iter().zip(self.digest.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

pub async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    match presented {
        None => {
            metrics::counter!("hoheit_api_auth_denied_total", "reason" => "missing").increment(1);
            ApiError::Unauthorized("this endpoint needs an Authorization: Bearer <token> header").into_response()
        }
        Some(token) if !state.token.matches(token.trim()) => {
            metrics::counter!("hoheit_api_auth_denied_total", "reason" => "invalid").increment(1);
            ApiError::Unauthorized("the bearer token is not valid").into_response()
        }
        Some(_) => next.run(request).await,
    }
}
