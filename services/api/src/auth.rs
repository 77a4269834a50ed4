//! Who is asking: resolves the `Authorization` header to a [`Caller`] once per
//! request, and applies the per-credential rate limit.
//!
//! - no header: anonymous (open data only);
//! - `Bearer <bootstrap token>`: the platform operator (municipal IT);
//! - `Bearer hoh_…`: an API key of a principal;
//! - `Bearer <JWT>`: an OIDC token of the configured issuer, mapped to a
//!   principal by a claim.
//!
//! A credential that is presented but not valid is refused (401 with the
//! reason), never downgraded to anonymous. After too many refusals from one
//! client address within a minute, every credential from that address is
//! answered 429 (even a valid one) until the address's budget of failures
//! refills, so that guessing keys is slow and a guess cannot be confirmed;
//! other addresses and anonymous requests are not affected.
//!
//! Anonymous requests that read the database take a place in the public's
//! budget ([`crate::rate_limit::AnonymousBudget`]) or get 503.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hoheit_domain::policy::Caller;
use hoheit_runtime::config::Secret;
use hoheit_store::principals::{self, AuthError};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::rate_limit::RateKey;
use crate::AppState;

/// The operator's bootstrap token, kept only as a digest.
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

/// A per-request id, echoed in `x-request-id` and written to the audit log.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn denied(reason: &'static str, detail: String) -> Response {
    metrics::counter!("hoheit_api_auth_denied_total", "reason" => reason).increment(1);
    ApiError::Unauthorized(detail).into_response()
}

async fn resolve(state: &AppState, presented: &str) -> Result<Caller, Response> {
    if state.token.matches(presented) {
        return Ok(Caller::Operator);
    }
    if presented.starts_with(hoheit_store::connectors::SECRET_PREFIX) {
        // A connector's webhook secret is no API credential: the webhook,
        // forwarded to ingest, checks it. Here it grants nothing.
        return Ok(Caller::Anonymous);
    }
    if presented.starts_with("hoh_") {
        return match principals::authenticate_key(&state.pool, presented).await {
            Ok(principal) => Ok(Caller::Principal(principal)),
            Err(AuthError::Unavailable) => Err(ApiError::Unavailable.into_response()),
            Err(e @ AuthError::Expired(_)) => Err(denied("expired", e.to_string())),
            Err(e @ AuthError::Revoked(_)) => Err(denied("revoked", e.to_string())),
            Err(e) => Err(denied("invalid", e.to_string())),
        };
    }
    if presented.split('.').count() == 3 {
        let Some(oidc) = &state.oidc else {
            return Err(denied("invalid", "bearer tokens (JWT) are not accepted: no OIDC issuer is configured".into()));
        };
        let subject = oidc.subject(presented).await.map_err(|e| denied("invalid_jwt", e.to_string()))?;
        return match principals::by_oidc_subject(&state.pool, &subject).await {
            Ok(principal) => Ok(Caller::Principal(principal)),
            Err(AuthError::Unavailable) => Err(ApiError::Unavailable.into_response()),
            Err(e) => Err(denied("unknown_subject", e.to_string())),
        };
    }
    Err(denied("invalid", "the bearer token is not valid".into()))
}

/// Paths whose handlers read the database (the rest: health probes, the
/// OpenAPI document and its page, the dashboard's files).
const DATABASE_PREFIXES: [&str; 3] = ["/v1/", "/sta", "/opendata"];

fn reads_database(path: &str) -> bool {
    DATABASE_PREFIXES.iter().any(|p| path.starts_with(p))
}

/// Resolves a presented credential, counting refusals against the client's
/// address: 429 once the address has used up its failures of the minute.
async fn resolve_counted(state: &AppState, presented: &str, peer: Option<IpAddr>) -> Result<Caller, Response> {
    let key = RateKey::FailedAuth(peer);
    let per_minute = state.auth_failures_per_minute;
    if let Err(retry_after) = state.limiter.peek(key, per_minute) {
        metrics::counter!("hoheit_api_auth_blocked_total").increment(1);
        return Err(ApiError::RateLimited {
            detail: format!(
                "too many failed authentications from this address (at most {per_minute} a minute); retry in {retry_after} s"
            ),
            retry_after,
        }
        .into_response());
    }
    let resolved = resolve(state, presented).await;
    if matches!(&resolved, Err(r) if r.status() == StatusCode::UNAUTHORIZED) {
        // Takes the failure's token; the next attempt finds the bucket empty.
        let _ = state.limiter.check(key, per_minute);
    }
    resolved
}

/// Paths whose `Authorization` is a device's own token (basic auth, as the
/// airrohr firmware sends it), not a caller of the API: the API forwards it
/// untouched and ingest's door checks it; the request counts as anonymous here.
fn carries_device_token(path: &str) -> bool {
    path.starts_with("/v1/push/airrohr/")
}

/// Middleware: resolves the caller, applies the rate limit and the anonymous
/// budget, sets the request id, and marks answers to a credential uncacheable.
pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let authorization = match carries_device_token(request.uri().path()) {
        true => None,
        false => request.headers().get(header::AUTHORIZATION),
    };
    let presented = match authorization.map(|v| v.to_str()) {
        None => None,
        Some(Ok(value)) => match value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) {
            Some(token) => Some(token.trim().to_owned()),
            None => return denied("invalid", "the Authorization header must be `Bearer <token>`".into()),
        },
        Some(Err(_)) => return denied("invalid", "the Authorization header is not valid text".into()),
    };
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let credential = presented.is_some();
    let caller = match presented {
        None => Caller::Anonymous,
        Some(token) => match resolve_counted(&state, &token, peer).await {
            Ok(caller) => caller,
            Err(response) => return no_store(response),
        },
    };
    let key = match &caller {
        Caller::Operator => None,
        Caller::Principal(p) => Some(match p.key_id {
            Some(key) => RateKey::Key(key),
            None => RateKey::Principal(p.id),
        }),
        Caller::Anonymous => Some(RateKey::Anonymous(peer)),
    };
    if let Some(key) = key {
        if let Err(retry_after) = state.limiter.check(key, state.rate_per_minute) {
            metrics::counter!("hoheit_api_rate_limited_total").increment(1);
            let mut response = ApiError::TooManyRequests(format!(
                "rate limit of {} requests per minute for this credential reached; retry in {retry_after} s",
                state.rate_per_minute
            ))
            .into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            return if credential { no_store(response) } else { response };
        }
    }
    let public_place = match &caller {
        Caller::Anonymous if reads_database(request.uri().path()) => match state.anonymous_budget.try_enter() {
            Some(place) => Some(place),
            None => {
                metrics::counter!("hoheit_api_anonymous_busy_total").increment(1);
                return ApiError::Busy {
                    detail: format!(
                        "the public's share of the database ({} requests at once) is in use; retry shortly, \
                         or use an API key",
                        state.anonymous_budget.size()
                    ),
                    retry_after: 1,
                }
                .into_response();
            }
        },
        _ => None,
    };
    request.extensions_mut().insert(Arc::new(caller));
    request.extensions_mut().insert(RequestId(request_id.clone()));
    let mut response = next.run(request).await;
    if let Some(place) = public_place {
        response = crate::rate_limit::hold_until_sent(response, place);
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    if credential {
        response = no_store(response);
    }
    response
}

/// An answer to a request with a credential is for that credential only:
/// no cache may keep it.
fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The caller of this request and the request's id (set by [`authenticate`]).
pub struct Who {
    pub caller: Arc<Caller>,
    pub request_id: RequestId,
}

impl<S: Send + Sync> FromRequestParts<S> for Who {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let caller = parts.extensions.get::<Arc<Caller>>().cloned().ok_or(ApiError::Internal)?;
        let request_id = parts.extensions.get::<RequestId>().cloned().ok_or(ApiError::Internal)?;
        Ok(Who { caller, request_id })
    }
}
