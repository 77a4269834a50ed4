//! Extractors whose rejections are problem+json with the reason, instead of
//! axum's plain-text defaults.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Query string parameters.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::BadRequest(format!("invalid query parameters: {}", e.body_text())))
    }
}

/// A JSON request body.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::Json::<T>::from_request(req, state).await.map(|j| ApiJson(j.0)).map_err(|e| match e {
            axum::extract::rejection::JsonRejection::JsonDataError(e) => ApiError::Unprocessable(e.body_text()),
            e if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(body_too_large()),
            e => ApiError::BadRequest(e.body_text()),
        })
    }
}

/// The reason of a 413: what the limit is.
pub fn body_too_large() -> String {
    format!("the request body is larger than {} KiB; send less per request", crate::MAX_BODY_BYTES / 1024)
}

/// A numeric id in the path.
pub struct PathId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        raw.parse::<i64>().ok().filter(|id| *id > 0).map(PathId).ok_or_else(|| {
            ApiError::BadRequest(format!("id {:?} is not a positive integer", raw.chars().take(40).collect::<String>()))
        })
    }
}
