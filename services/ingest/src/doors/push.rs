//! `POST /v1/push/{org}/{thing}/{property}` (a JSON reading or an array of
//! them, or an `ObservationBatch`) and `POST /v1/push/{org}/{thing}` (a SenML
//! pack or an `ObservationBatch`): Hoheit's MQTT topics as HTTP, for SCADA and
//! vendor systems that push. `202` with the receipt once Kafka confirmed.

use axum::body::Body as HttpBody;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hoheit_domain::door::Door;
use hoheit_domain::topic::TopicAddress;
use hoheit_domain::Slug;

use super::{DoorError, Doors};
use crate::decode::JsonKind;
use crate::inbound::{Body, Inbound, Target};

pub fn routes() -> Router<Doors> {
    Router::new()
        .route("/v1/push/{org}/{thing}/{property}", post(datastream))
        .route("/v1/push/{org}/{thing}", post(thing))
}

async fn datastream(
    State(doors): State<Doors>,
    Path((org, thing, property)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: HttpBody,
) -> Response {
    let address = (|| {
        Ok::<_, DoorError>(TopicAddress::Datastream {
            org: slug("organisation", &org)?,
            thing: slug("thing", &thing)?,
            property: slug("property", &property)?,
        })
    })();
    push(doors, address, &headers, body, JsonKind::Plain).await
}

async fn thing(
    State(doors): State<Doors>,
    Path((org, thing)): Path<(String, String)>,
    headers: HeaderMap,
    body: HttpBody,
) -> Response {
    let address = (|| {
        Ok::<_, DoorError>(TopicAddress::Thing { org: slug("organisation", &org)?, thing: slug("thing", &thing)? })
    })();
    push(doors, address, &headers, body, JsonKind::Senml).await
}

fn slug(kind: &'static str, value: &str) -> Result<Slug, DoorError> {
    Slug::parse(kind, value).map_err(|e| DoorError::BadRequest(e.to_string()))
}

async fn push(
    doors: Doors,
    address: Result<TopicAddress, DoorError>,
    headers: &HeaderMap,
    body: HttpBody,
    json: JsonKind,
) -> Response {
    let answer = async {
        let writer = doors.writer(headers).await?;
        let address = address?;
        doors.take_rate(&super::credential(&writer))?;
        doors.admit(&writer, address.org()).await?;
        let body_kind = body_kind(headers, json)?;
        let payload = doors.body(body).await?;
        let inbound = Inbound {
            door: Door::Http,
            target: Target::Address(address),
            body: body_kind,
            payload,
            writer: Some(writer),
        };
        doors.deliver(inbound).await
    };
    match answer.await {
        Ok(receipt) => (StatusCode::ACCEPTED, Json(receipt)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// How the body is read, from its content type; `415` for any other.
fn body_kind(headers: &HeaderMap, json: JsonKind) -> Result<Body, DoorError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default();
    match (content_type.as_str(), json) {
        ("application/json", kind) => Ok(Body::Json(kind)),
        ("application/senml+json", JsonKind::Senml) => Ok(Body::Json(JsonKind::Senml)),
        ("application/x-protobuf" | "application/protobuf", _) => Ok(Body::Protobuf),
        (other, JsonKind::Plain) => Err(DoorError::UnsupportedMediaType(format!(
            "content type {other:?} is not accepted here; send application/json (a reading or an array of readings) or application/x-protobuf (hoheit.v1.ObservationBatch)"
        ))),
        (other, JsonKind::Senml) => Err(DoorError::UnsupportedMediaType(format!(
            "content type {other:?} is not accepted here; send application/senml+json (a SenML pack) or application/x-protobuf (hoheit.v1.ObservationBatch)"
        ))),
    }
}
