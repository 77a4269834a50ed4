//! The network servers' webhooks: `POST /v1/connectors/{id}/chirpstack?event=up`
//! (ChirpStack v4's HTTP integration, JSON or protobuf) and `POST
//! /v1/connectors/{id}/tts` (The Things Stack v3's webhook, JSON). A call
//! presents the connector's secret (`X-Hoheit-Connector-Secret` or
//! `Authorization: Bearer`); what it delivers belongs to the connector's
//! organisation, whose thing carries the DevEUI. Events that are no uplinks
//! are answered `204` and ignored; an uplink `202` once Kafka confirmed.

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Body as HttpBody;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hoheit_domain::door::Door;
use hoheit_store::connectors::{self, ConnectorKind, DoorConnector};

use super::{DoorError, Doors, KEY_TTL};
use crate::inbound::{Body, Inbound, Target};
use crate::lorawan::{self, chirpstack, tts, Uplink};

/// The header a network server sends the connector's secret in.
pub const SECRET_HEADER: &str = "x-hoheit-connector-secret";

pub fn routes() -> Router<Doors> {
    Router::new()
        .route("/v1/connectors/{id}/chirpstack", post(chirpstack_event))
        .route("/v1/connectors/{id}/tts", post(tts_message))
}

async fn chirpstack_event(
    State(doors): State<Doors>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: HttpBody,
) -> Response {
    let answer = async {
        let connector = doors.connector(&id, &headers, ConnectorKind::Chirpstack).await?;
        match query.get("event").map(String::as_str) {
            Some("up") => {}
            Some(_) => return Ok(None),
            None => {
                return Err(DoorError::BadRequest("expected ?event=up (ChirpStack's HTTP integration sends it)".into()))
            }
        }
        let payload = doors.body(body).await?;
        let uplink = match content_type(&headers).as_str() {
            "application/json" => chirpstack::from_json(&payload),
            "application/octet-stream" | "application/x-protobuf" | "application/protobuf" => {
                chirpstack::from_protobuf(&payload)
            }
            "" => chirpstack::sniff(&payload),
            other => {
                return Err(DoorError::UnsupportedMediaType(format!(
                    "content type {other:?} is not accepted here; ChirpStack sends application/json or application/octet-stream (protobuf)"
                )))
            }
        }
        .map_err(|e| DoorError::BadRequest(e.to_string()))?;
        deliver(&doors, &connector, Door::Chirpstack, uplink, payload).await.map(Some)
    };
    respond(answer.await)
}

async fn tts_message(
    State(doors): State<Doors>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: HttpBody,
) -> Response {
    let answer = async {
        let connector = doors.connector(&id, &headers, ConnectorKind::Tts).await?;
        match content_type(&headers).as_str() {
            "application/json" | "" => {}
            other => {
                return Err(DoorError::UnsupportedMediaType(format!(
                    "content type {other:?} is not accepted here; set the webhook's format to JSON"
                )))
            }
        }
        let payload = doors.body(body).await?;
        match tts::from_json(&payload).map_err(|e| DoorError::BadRequest(e.to_string()))? {
            Some(uplink) => deliver(&doors, &connector, Door::Tts, uplink, payload).await.map(Some),
            None => Ok(None),
        }
    };
    respond(answer.await)
}

/// Hands an uplink to the pipeline, as its connector's organisation.
async fn deliver(
    doors: &Doors,
    connector: &DoorConnector,
    door: Door,
    uplink: Uplink,
    payload: bytes::Bytes,
) -> Result<hoheit_domain::door::Receipt, DoorError> {
    let inbound = Inbound {
        door,
        target: Target::Device { org: connector.org.clone(), device: uplink.dev_eui.clone() },
        body: Body::Decoded(lorawan::readings(&uplink)),
        payload,
        writer: None,
    };
    doors.deliver(inbound).await
}

fn respond(answer: Result<Option<hoheit_domain::door::Receipt>, DoorError>) -> Response {
    match answer {
        Ok(Some(receipt)) => (StatusCode::ACCEPTED, Json(receipt)).into_response(),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error.into_response(),
    }
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The secret a webhook call presents.
fn presented_secret(headers: &HeaderMap) -> Option<String> {
    if let Some(secret) = headers.get(SECRET_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(secret.trim().to_owned());
    }
    let authorization = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

impl Doors {
    /// The connector a webhook call names, if the call presents its secret
    /// (`401` otherwise, `403` when it is disabled, `404` for the other kind's path).
    async fn connector(&self, id: &str, headers: &HeaderMap, kind: ConnectorKind) -> Result<DoorConnector, DoorError> {
        let refused = || {
            DoorError::Unauthorized(format!(
                "present the connector's webhook secret in {SECRET_HEADER} (or Authorization: Bearer)"
            ))
        };
        let presented = presented_secret(headers).ok_or_else(refused)?;
        let id: i64 = id.parse().map_err(|_| DoorError::NotFound(format!("{id:?} is not a connector id")))?;
        let connector = self.known_connector(id).await?.ok_or_else(refused)?;
        if !connector.verifies(&presented) {
            return Err(refused());
        }
        if connector.disabled_at.is_some() {
            return Err(DoorError::Disabled(format!("connector {id} is disabled")));
        }
        if connector.kind != kind {
            return Err(DoorError::NotFound(format!(
                "connector {id} is a {} connector; its webhook is {}",
                connector.kind,
                connector.kind.webhook_path(id)
            )));
        }
        self.take_rate(&format!("connector:{id}"))?;
        Ok(connector)
    }

    /// A connector as last read (at most a second ago, so disabling takes effect at once).
    async fn known_connector(&self, id: i64) -> Result<Option<DoorConnector>, DoorError> {
        let cached = self.shared.connectors.lock().ok().and_then(|known| known.get(&id).cloned());
        if let Some((connector, at)) = cached {
            if at.elapsed() < KEY_TTL {
                return Ok(connector);
            }
        }
        let found = connectors::for_door(&self.shared.pool, id)
            .await
            .map_err(|_| DoorError::Unavailable("the registry is unreachable".into()))?;
        if let Ok(mut known) = self.shared.connectors.lock() {
            if known.len() > 10_000 {
                known.retain(|_, (_, at)| at.elapsed() < KEY_TTL);
            }
            known.insert(id, (found.clone(), Instant::now()));
        }
        Ok(found)
    }
}
