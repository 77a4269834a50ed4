//! API errors as RFC 9457 problem details (`application/problem+json`), each
//! with a reason a person can act on.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hoheit_domain::onboarding::RowError;
use hoheit_domain::policy::{DenyCode, DenyReason};
use hoheit_store::import::ImportError;
use hoheit_store::registry::RegistryError;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// The policy denied (403): the problem carries the reason's stable
    /// `code`; a `hint` (how to ask instead) follows the reason in `detail`.
    #[error("{reason}{}", .hint.map(|h| format!(". {h}")).unwrap_or_default())]
    Denied { reason: DenyReason, hint: Option<&'static str> },
    #[error("{0}")]
    TooManyRequests(String),
    /// Over a rate limit (429), with the seconds until it allows the next request.
    #[error("{detail}")]
    RateLimited { detail: String, retry_after: u64 },
    /// The API is busy for this kind of caller (503), e.g. the anonymous
    /// public's share of the database is in use; retry after the seconds given.
    #[error("{detail}")]
    Busy { detail: String, retry_after: u64 },
    /// The database cancelled the query: it ran longer than the statement timeout.
    #[error("the query ran longer than the API's statement timeout and was cancelled; ask for less at once (a shorter time range, a simpler $filter, fewer expansions)")]
    QueryTimeout,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    /// Rows of an import that cannot be taken (422), each with its line.
    #[error("{detail}")]
    Rows { detail: String, errors: Vec<RowError> },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A request body over the limit (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("the database is not available; try again shortly")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<DenyCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [RowError]>,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::Denied { .. } => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests(_) | ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Busy { .. } | ApiError::QueryTimeout => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) | ApiError::Rows { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Builds a problem+json response; also used for errors outside handlers.
pub fn problem(status: StatusCode, detail: String) -> Response {
    coded_problem(status, detail, None, None)
}

/// A problem+json response with the stable `code` of a policy denial.
fn coded_problem(status: StatusCode, detail: String, code: Option<DenyCode>, errors: Option<&[RowError]>) -> Response {
    let body = Problem {
        kind: "about:blank",
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail,
        code,
        errors,
    };
    let mut response = (status, serde_json::to_string(&body).unwrap_or_default()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = match &self {
            ApiError::Denied { reason, .. } => Some(reason.code()),
            _ => None,
        };
        let errors = match &self {
            ApiError::Rows { errors, .. } => Some(errors.as_slice()),
            _ => None,
        };
        let mut response = coded_problem(status, self.to_string(), code, errors);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ApiError::RateLimited { retry_after, .. } | ApiError::Busy { retry_after, .. } = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}

impl From<DenyReason> for ApiError {
    fn from(reason: DenyReason) -> Self {
        ApiError::Denied { reason, hint: None }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::warn!(%error, "database unavailable");
                ApiError::Unavailable
            }
            // 57014 query_canceled: the statement timeout (or a cancel after the client left).
            sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => {
                tracing::warn!(error = %db, "query cancelled");
                metrics::counter!("hoheit_api_query_cancelled_total").increment(1);
                ApiError::QueryTimeout
            }
            // PostgreSQL text cannot hold U+0000 (22021) nor characters the
            // database encoding lacks (22P05): the input is at fault, not the server.
            sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("22021" | "22P05")) => {
                ApiError::Unprocessable("text must not contain NUL characters (U+0000)".into())
            }
            error => {
                tracing::error!(%error, "database error");
                ApiError::Internal
            }
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            RegistryError::Conflict(what) => ApiError::Conflict(format!("{what} already exists")),
            RegistryError::InUse(why) => ApiError::Conflict(why),
            e @ RegistryError::Invalid { .. } => ApiError::Unprocessable(e.to_string()),
            RegistryError::Database(e) => e.into(),
        }
    }
}

impl From<ImportError> for ApiError {
    fn from(error: ImportError) -> Self {
        match error {
            ImportError::Rows(errors) => ApiError::Rows {
                detail: format!("{} row(s) cannot be imported (see errors); nothing was changed", errors.len()),
                errors,
            },
            ImportError::Registry(e) => e.into(),
        }
    }
}
