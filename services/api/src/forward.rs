//! Writes are ingest's: the API keeps no Kafka client. What a client sends to
//! a write path of the API (`/v1/push/…`, the connectors' webhooks, SensorThings create, dead-letter replay) is forwarded
//! as it came (method, path, query, body, content type, credential) to
//! ingest's HTTP doors, and ingest's answer goes back unchanged. So clients
//! have one base URL for reading and writing, and who may write is decided
//! in one place (ingest asks `hoheit_domain::write`).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::error::problem;

/// The largest body the API reads to forward (it holds it in memory while
/// ingest answers): sixteen times ingest's default payload limit, whose own
/// `413` answers every body between.
const MAX_FORWARDED_BYTES: usize = 4 * 1024 * 1024;

/// Headers that travel to ingest, and back.
const REQUEST_HEADERS: [HeaderName; 6] = [
    header::CONTENT_TYPE,
    header::AUTHORIZATION,
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("x-hoheit-connector-secret"),
    // The airrohr firmware's device and pin.
    HeaderName::from_static("x-sensor"),
    HeaderName::from_static("x-pin"),
];
const RESPONSE_HEADERS: [HeaderName; 4] =
    [header::CONTENT_TYPE, header::RETRY_AFTER, header::LOCATION, header::WWW_AUTHENTICATE];

/// Ingest's HTTP doors as the API reaches them.
#[derive(Debug, Clone)]
pub struct Ingest {
    base: String,
    http: reqwest::Client,
}

impl Ingest {
    pub fn new(base: &str) -> Self {
        Self { base: base.trim_end_matches('/').to_owned(), http: reqwest::Client::new() }
    }

    /// Forwards `request` to the same path of ingest's doors (`uri`: the
    /// request's as the client sent it, before any router nesting).
    pub async fn forward(&self, uri: &Uri, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
        let Ok(body) = axum::body::to_bytes(body, MAX_FORWARDED_BYTES).await else {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {MAX_FORWARDED_BYTES} bytes; split it"),
            );
        };
        self.send(parts.method, path, &parts.headers, None, body).await
    }

    /// Sends a request the API has read (and decided) already to `path` of
    /// ingest's doors, with the client's credential and the request's id.
    pub async fn send_read(
        &self,
        path: &str,
        headers: &HeaderMap,
        request_id: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.send(Method::POST, path, headers, Some(request_id), body).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &HeaderMap,
        request_id: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let mut outgoing = self.http.request(method, format!("{}{path}", self.base)).body(body);
        for name in &REQUEST_HEADERS {
            if let Some(value) = headers.get(name) {
                outgoing = outgoing.header(name, value);
            }
        }
        if let Some(id) = request_id {
            outgoing = outgoing.header("x-request-id", id);
        }
        let answer = match outgoing.send().await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(%error, "ingest's HTTP doors are unreachable");
                let mut response = problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the ingest service is unreachable; nothing was accepted, retry later".into(),
                );
                response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
                return response;
            }
        };
        let status = answer.status();
        let headers: Vec<_> = RESPONSE_HEADERS
            .iter()
            .filter_map(|name| answer.headers().get(name).map(|value| (name.clone(), value.clone())))
            .collect();
        let body = answer.bytes().await.unwrap_or_default();
        let mut response = (status, Body::from(body)).into_response();
        for (name, value) in headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// A body of raw bytes (a protobuf `ObservationBatch`, a ChirpStack uplink
/// in its protobuf encoding), as the OpenAPI document names it.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct RawBody(#[allow(dead_code)] Vec<u8>);
