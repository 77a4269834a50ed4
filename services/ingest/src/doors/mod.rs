//! Ingest's HTTP doors: everything that is not Hoheit's own MQTT topics comes
//! in here and is handed, as an [`Inbound`], to the same pipeline as MQTT.
//!
//! - `push`: `POST /v1/push/{org}/{thing}[/{property}]` (JSON, SenML, protobuf);
//! - `airrohr`: `POST /v1/push/airrohr/{org}` (sensor.community firmware, a device token);
//! - `sta`: SensorThings create, `POST /sta/v1.1/Observations`,
//!   `…/Datastreams({id})/Observations` and `…/CreateObservations` (dataArray);
//! - `connectors`: the LoRaWAN network servers' webhooks, `POST
//!   /v1/connectors/{id}/chirpstack?event=up` and `POST /v1/connectors/{id}/tts`
//!   (a connector's secret instead of an API key);
//! - `replay`: `POST /v1/dead-letters/replay`, an organisation's dead letters
//!   through the pipeline again (its admins and data owners, the operator);
//!
//! What every door shares lives here: API keys (with a one-second cache, so
//! a revoked key or an ended supply grant stops writes within a second), a
//! rate per credential (`429`), the payload limit (`413`), and the answer
//! only after Kafka confirmed (`503` with `Retry-After` while it cannot).

mod airrohr;
mod connectors;
mod push;
mod replay;
mod sta;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body as HttpBody;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::Utc;
use hoheit_domain::policy::Caller;
use hoheit_domain::topic::TopicScheme;
use hoheit_domain::write::{self, WriteDenial};
use hoheit_domain::{DatastreamId, Slug};
use hoheit_runtime::ops::Readiness;
use hoheit_store::principals::{self, AuthError};
use hoheit_store::{device_tokens, registry, supply};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::decode::Limits;
use crate::inbound::{Inbound, Submission, Writer};
use crate::service::IngestConfig;
use hoheit_domain::door::Receipt;

/// How long an authenticated key (and its supply grants) is trusted without
/// asking the database again.
const KEY_TTL: Duration = Duration::from_secs(1);
/// How long a door waits for Kafka's confirmation before answering `503`.
const CONFIRM_WITHIN: Duration = Duration::from_secs(20);
/// What `Retry-After` says while Kafka is away.
const RETRY_AFTER_SECS: u64 = 5;

/// A key as last read: who it is (or why not), and when.
type KnownKey = (Result<Writer, DoorError>, Instant);

/// The state the HTTP doors share.
#[derive(Clone)]
pub struct Doors {
    shared: Arc<Shared>,
}

struct Shared {
    pool: PgPool,
    readiness: Readiness,
    /// The topic scheme (a replay selects a thing's dead letters by its topic).
    scheme: TopicScheme,
    submit: mpsc::Sender<Submission>,
    max_payload_bytes: usize,
    max_readings: usize,
    requests_per_second: u32,
    /// SHA-256 of the operator's token, if ingest knows it.
    operator: Option<[u8; 32]>,
    /// Presented key's SHA-256 → who it is (or why not), and when that was read.
    keys: Mutex<HashMap<[u8; 32], KnownKey>>,
    /// Organisation slug → id (ids never change).
    orgs: Mutex<HashMap<Slug, i64>>,
    /// Replays started (each is numbered).
    replays: AtomicU64,
    /// Per credential: tokens and when they were counted.
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    /// Connector id → the connector (or none), and when that was read.
    connectors: Mutex<HashMap<i64, (Option<hoheit_store::connectors::DoorConnector>, Instant)>>,
}

impl Doors {
    pub fn new(config: &IngestConfig, pool: PgPool, readiness: Readiness, submit: mpsc::Sender<Submission>) -> Self {
        Self {
            shared: Arc::new(Shared {
                pool,
                readiness,
                scheme: TopicScheme::new(&config.topic_root),
                submit,
                max_payload_bytes: config.max_payload_bytes,
                max_readings: config.max_readings,
                requests_per_second: config.http_requests_per_second.max(1),
                operator: config
                    .api_token
                    .as_ref()
                    .filter(|t| !t.expose().is_empty())
                    .map(|t| Sha256::digest(t.expose().as_bytes()).into()),
                keys: Mutex::new(HashMap::new()),
                orgs: Mutex::new(HashMap::new()),
                replays: AtomicU64::new(0),
                buckets: Mutex::new(HashMap::new()),
                connectors: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The writer behind the request's API key (`X-API-Key` or `Authorization: Bearer`).
    pub async fn writer(&self, headers: &HeaderMap) -> Result<Writer, DoorError> {
        let presented = presented_key(headers).ok_or_else(|| {
            DoorError::Unauthorized("present an API key of a writer role (X-API-Key or Authorization: Bearer)".into())
        })?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if let Some(operator) = &self.shared.operator {
            if digest.iter().zip(operator.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0 {
                return Ok(Writer { caller: Caller::Operator, supplies: Vec::new() });
            }
        }
        if let Some((known, at)) = self.shared.keys.lock().ok().and_then(|keys| keys.get(&digest).cloned()) {
            if at.elapsed() < KEY_TTL {
                return known;
            }
        }
        let found = self.authenticate(&presented).await;
        if !matches!(found, Err(DoorError::Unavailable(_))) {
            if let Ok(mut keys) = self.shared.keys.lock() {
                if keys.len() > 100_000 {
                    keys.retain(|_, (_, at)| at.elapsed() < KEY_TTL);
                }
                keys.insert(digest, (found.clone(), Instant::now()));
            }
        }
        found
    }

    async fn authenticate(&self, presented: &str) -> Result<Writer, DoorError> {
        let principal = match principals::authenticate_key(&self.shared.pool, presented).await {
            Ok(principal) => principal,
            Err(AuthError::Unavailable) => return Err(DoorError::Unavailable("the registry is unreachable".into())),
            Err(error) => return Err(DoorError::Unauthorized(error.to_string())),
        };
        let supplies = supply::held_by(&self.shared.pool, principal.org_id)
            .await
            .map_err(|_| DoorError::Unavailable("the registry is unreachable".into()))?;
        Ok(Writer { caller: Caller::Principal(principal), supplies })
    }

    /// Checks a device's own token (the doors of devices, e.g. airrohr):
    /// `401` for an unknown device, one without a token, or a wrong token.
    pub async fn authenticate_device(&self, org: &Slug, device: &str, token: &str) -> Result<(), DoorError> {
        let found = device_tokens::device(&self.shared.pool, org, device)
            .await
            .map_err(|_| DoorError::Unavailable("the registry is unreachable".into()))?;
        match found {
            Some(credential) if credential.accepts(token) => Ok(()),
            _ => Err(DoorError::Unauthorized(format!(
                "device {device} is not a thing of {org} with a device token, or the token is wrong: register the thing with external_id {device:?} and set its token (POST /v1/admin/things/{{id}}/device-token)"
            ))),
        }
    }

    /// The decoders' limits (for the doors that decode themselves).
    pub fn limits(&self) -> Limits {
        Limits { max_payload_bytes: self.shared.max_payload_bytes, max_readings: self.shared.max_readings }
    }

    /// Refuses (`403`) a writer that may not write into `org` at all.
    pub async fn admit(&self, writer: &Writer, org: &Slug) -> Result<(), DoorError> {
        let org_id = self.org_id(org).await?;
        write::may_write_into(&writer.caller, org_id, &writer.supplies, Utc::now()).map_err(DoorError::Forbidden)
    }

    /// Refuses a write into datastream `id` unless it exists (`404`) and
    /// `writer` may write into it (`403`).
    pub async fn admit_datastream(&self, writer: &Writer, id: DatastreamId) -> Result<(), DoorError> {
        let found = registry::lookup_id(&self.shared.pool, id)
            .await
            .map_err(|_| DoorError::Unavailable("the registry is unreachable".into()))?;
        let Some((key, stream)) = found else {
            return Err(DoorError::NotFound(format!("no Datastream {id} is registered")));
        };
        self.admit(writer, &key.org).await?;
        writer.permit(&stream).map_err(DoorError::Forbidden)
    }

    /// Most readings one request may hold.
    pub fn max_readings(&self) -> usize {
        self.shared.max_readings
    }

    async fn org_id(&self, org: &Slug) -> Result<i64, DoorError> {
        if let Some(id) = self.shared.orgs.lock().ok().and_then(|orgs| orgs.get(org).copied()) {
            return Ok(id);
        }
        match registry::organisation_id(&self.shared.pool, org).await {
            Ok(id) => {
                if let Ok(mut orgs) = self.shared.orgs.lock() {
                    orgs.insert(org.clone(), id);
                }
                Ok(id)
            }
            Err(registry::RegistryError::NotFound(what)) => {
                Err(DoorError::NotFound(format!("{what} is not registered")))
            }
            Err(_) => Err(DoorError::Unavailable("the registry is unreachable".into())),
        }
    }

    /// Takes one request from `credential`'s budget (`429` when it is spent).
    pub fn take_rate(&self, credential: &str) -> Result<(), DoorError> {
        let rate = f64::from(self.shared.requests_per_second);
        let Ok(mut buckets) = self.shared.buckets.lock() else { return Ok(()) };
        if buckets.len() > 100_000 {
            buckets.retain(|_, (_, at)| at.elapsed() < Duration::from_secs(1));
        }
        let (tokens, at) = buckets.entry(credential.to_owned()).or_insert((rate, Instant::now()));
        *tokens = (*tokens + at.elapsed().as_secs_f64() * rate).min(rate);
        *at = Instant::now();
        if *tokens < 1.0 {
            let wait = ((1.0 - *tokens) / rate).ceil().max(1.0) as u64;
            return Err(DoorError::TooManyRequests(wait));
        }
        *tokens -= 1.0;
        Ok(())
    }

    /// Reads a request body up to the payload limit (`413` beyond it).
    pub async fn body(&self, body: HttpBody) -> Result<bytes::Bytes, DoorError> {
        let limit = self.shared.max_payload_bytes;
        axum::body::to_bytes(body, limit).await.map_err(|_| {
            DoorError::TooLarge(format!("the body is larger than the payload limit of {limit} bytes; split it"))
        })
    }

    /// Hands a delivery to the pipeline and waits until Kafka confirmed
    /// every record it went into; `503` while Kafka is away.
    pub async fn deliver(&self, inbound: Inbound) -> Result<Receipt, DoorError> {
        self.submit(inbound, None).await
    }

    /// A new replay's number (see [`Doors::deliver_replay`]).
    pub fn next_replay(&self) -> u64 {
        self.shared.replays.fetch_add(1, Ordering::Relaxed)
    }

    /// [`Doors::deliver`] for a dead letter sent through again by replay
    /// `replay`: its rejections come back in the receipt and make no new
    /// dead letter.
    pub async fn deliver_replay(&self, inbound: Inbound, replay: u64) -> Result<Receipt, DoorError> {
        self.submit(inbound, Some(replay)).await
    }

    async fn submit(&self, inbound: Inbound, replay: Option<u64>) -> Result<Receipt, DoorError> {
        let unavailable =
            || DoorError::Unavailable("Kafka is not confirming; nothing was accepted, retry later".into());
        if !self.shared.readiness.holds("kafka") {
            return Err(unavailable());
        }
        let (reply, answer) = oneshot::channel();
        let submitted = async {
            self.shared.submit.send(Submission { inbound, reply, replay }).await.ok()?;
            answer.await.ok()?.ok()
        };
        // The wait covers the queue too: while the pipeline is stuck (Kafka's
        // queue full), a request is answered 503 rather than held open.
        tokio::time::timeout(CONFIRM_WITHIN, submitted).await.ok().flatten().ok_or_else(unavailable)
    }
}

/// What a writer's request rate is counted on: its key.
pub fn credential(writer: &Writer) -> String {
    writer.caller.principal().and_then(|p| p.key_id).map_or_else(String::new, |id| format!("key:{id}"))
}

/// The API key a request presents.
fn presented_key(headers: &HeaderMap) -> Option<String> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim().to_owned());
    }
    let authorization = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

/// Why a door refuses a request; answered as problem+json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoorError {
    BadRequest(String),
    /// A rejected reading: nothing was stored; its dead letter has the code.
    Rejected {
        code: String,
        detail: String,
    },
    Unauthorized(String),
    Forbidden(WriteDenial),
    /// A disabled connector (`403`, code `connector_disabled`).
    Disabled(String),
    /// Not an admin or data owner of the organisation (`403`, code `not_data_owner`).
    NotDataOwner(String),
    NotFound(String),
    /// A method the resource does not support, with the methods it does.
    MethodNotAllowed {
        detail: String,
        allow: &'static str,
    },
    TooLarge(String),
    UnsupportedMediaType(String),
    /// Seconds until a request is allowed again.
    TooManyRequests(u64),
    Unavailable(String),
}

/// An RFC 9457 problem, as the API writes them.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
    /// A stable code, for refusals of a write (`read_only_role`, `foreign_organisation`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
}

impl IntoResponse for DoorError {
    fn into_response(self) -> Response {
        let mut retry_after = None;
        let mut allow = None;
        let (status, detail, code) = match self {
            DoorError::BadRequest(detail) => (StatusCode::BAD_REQUEST, detail, None),
            DoorError::Rejected { code, detail } => (StatusCode::BAD_REQUEST, detail, Some(code)),
            DoorError::Unauthorized(detail) => (StatusCode::UNAUTHORIZED, detail, Some("not_authenticated".to_owned())),
            DoorError::Forbidden(denial) => (StatusCode::FORBIDDEN, denial.to_string(), Some(denial.code().to_owned())),
            DoorError::Disabled(detail) => (StatusCode::FORBIDDEN, detail, Some("connector_disabled".to_owned())),
            DoorError::NotDataOwner(detail) => (StatusCode::FORBIDDEN, detail, Some("not_data_owner".to_owned())),
            DoorError::NotFound(detail) => (StatusCode::NOT_FOUND, detail, None),
            DoorError::MethodNotAllowed { detail, allow: methods } => {
                allow = Some(methods);
                (StatusCode::METHOD_NOT_ALLOWED, detail, None)
            }
            DoorError::TooLarge(detail) => (StatusCode::PAYLOAD_TOO_LARGE, detail, None),
            DoorError::UnsupportedMediaType(detail) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, detail, None),
            DoorError::TooManyRequests(secs) => {
                retry_after = Some(secs);
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("this credential's request rate is spent; retry in {secs} s"),
                    None,
                )
            }
            DoorError::Unavailable(detail) => {
                retry_after = Some(RETRY_AFTER_SECS);
                (StatusCode::SERVICE_UNAVAILABLE, detail, None)
            }
        };
        let problem = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            code,
        };
        let mut response = (status, axum::Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(methods) = allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(methods));
        }
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The HTTP doors' router.
pub fn router(doors: Doors) -> Router {
    Router::new()
        .merge(push::routes())
        .merge(airrohr::routes())
        .merge(sta::routes())
        .merge(connectors::routes())
        .merge(replay::routes())
        .with_state(doors)
}

/// Serves the HTTP doors until shutdown.
pub async fn serve(listener: tokio::net::TcpListener, doors: Doors, shutdown: CancellationToken) {
    let address: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?address, "HTTP doors listening");
    let app = router(doors).layer(axum::extract::DefaultBodyLimit::disable());
    if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await {
        tracing::error!(%error, "the HTTP doors stopped");
    }
}
