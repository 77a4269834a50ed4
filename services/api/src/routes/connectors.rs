//! Connectors: the LoRaWAN network servers (ChirpStack v4, The Things Stack
//! v3) that deliver an organisation's uplinks. Administered by the operator
//! or the organisation's admins (`/v1/admin/connectors`, audited by
//! `hoheit-store`); their webhooks (`/v1/connectors/{id}/…`) are forwarded to
//! ingest like the push door (see `crate::forward`), so a network server can
//! be pointed at the API's host.

use axum::extract::{OriginalUri, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use hoheit_domain::door::Receipt;
use hoheit_domain::policy::Caller;
use hoheit_domain::Slug;
use hoheit_store::connectors::{self, Connector, IssuedConnector, NewConnector};
use hoheit_store::registry;
use serde::Deserialize;

use crate::access::{require, Needs};
use crate::auth::Who;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, PathId};
use crate::openapi::ProblemDoc;
use crate::routes::admin::actor;
use crate::AppState;

/// Adds a connector; the webhook secret is in this response only (set it in
/// the network server as the header `X-Hoheit-Connector-Secret`, or as
/// `Authorization: Bearer …`, on the webhook `webhook_path`).
#[utoipa::path(post, operation_id = "connectors_create", path = "/admin/connectors", tag = "admin", security(("bearer" = [])),
    request_body = NewConnector,
    responses((status = 201, description = "created; the webhook secret is shown only now", body = IssuedConnector)))]
pub async fn create(
    State(state): State<AppState>,
    who: Who,
    ApiJson(new): ApiJson<NewConnector>,
) -> Result<(StatusCode, Json<IssuedConnector>), ApiError> {
    require(&who.caller, Needs::Admin(registry::organisation_id(&state.pool, &new.org).await?))?;
    Ok((StatusCode::CREATED, Json(connectors::create(&state.pool, &new, &actor(&who)).await?)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConnectorQuery {
    /// Organisation slug (operator: any, default all; an admin: its own, the default).
    org: Option<String>,
}

/// The connectors of an organisation (never a secret or password).
#[utoipa::path(get, operation_id = "connectors_list", path = "/admin/connectors", tag = "admin", security(("bearer" = [])),
    params(ConnectorQuery),
    responses((status = 200, description = "the connectors, by id", body = Vec<Connector>)))]
pub async fn list(
    State(state): State<AppState>,
    who: Who,
    ApiQuery(query): ApiQuery<ConnectorQuery>,
) -> Result<Json<Vec<Connector>>, ApiError> {
    let org_id = match (query.org.as_deref(), &*who.caller) {
        (Some(org), _) => {
            let org = Slug::parse("org", org).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            Some(registry::organisation_id(&state.pool, &org).await?)
        }
        (None, Caller::Operator) => None,
        (None, Caller::Principal(principal)) => Some(principal.org_id),
        (None, Caller::Anonymous) => {
            return Err(ApiError::Unauthorized("connectors are shown to their organisation's admins".into()))
        }
    };
    match org_id {
        Some(org_id) => require(&who.caller, Needs::Admin(org_id))?,
        None => require(&who.caller, Needs::Operator)?,
    }
    Ok(Json(connectors::list(&state.pool, org_id).await?))
}

/// Disables a connector: its webhook answers 403 and ingest ends its MQTT subscription.
#[utoipa::path(delete, operation_id = "connectors_disable", path = "/admin/connectors/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "connector id")),
    responses((status = 200, description = "the connector, disabled", body = Connector)))]
pub async fn disable(State(state): State<AppState>, who: Who, PathId(id): PathId) -> Result<Json<Connector>, ApiError> {
    require(&who.caller, Needs::Admin(connectors::org_of(&state.pool, id).await?))?;
    Ok(Json(connectors::disable(&state.pool, id, &actor(&who)).await?))
}

/// ChirpStack v4's HTTP integration (set its endpoint to this URL, with the
/// header `X-Hoheit-Connector-Secret`): an `UplinkEvent` as JSON
/// (`application/json`) or protobuf (`application/octet-stream`). Only
/// `event=up` carries readings; other events are answered `204`. The
/// decoded payload's (`object`) numeric fields go into the datastreams of
/// the connector organisation's thing whose external id is the DevEUI.
#[utoipa::path(post, operation_id = "connectors_chirpstack", path = "/connectors/{id}/chirpstack", tag = "ingest",
    params(("id" = i64, Path, description = "connector id"), ("event" = String, Query, description = "ChirpStack's event type: up, join, status, …")),
    request_body(description = "a ChirpStack integration event",
        content((serde_json::Value = "application/json"), (crate::forward::RawBody = "application/octet-stream"))),
    responses(
        (status = 202, description = "accepted and rejected readings (rejected ones, and unknown devices, are dead letters of the chirpstack door)", body = Receipt),
        (status = 204, description = "an event other than up: ignored"),
        (status = 400, description = "not an UplinkEvent (no DevEUI, malformed), or no event", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "no or a wrong connector secret", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "the connector is disabled (code: connector_disabled)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "the connector is a The Things Stack connector", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 413, description = "beyond the payload limit", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 415, description = "an unknown content type", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "over the connector's request rate (Retry-After)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "Kafka is away: nothing was accepted (Retry-After)", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn chirpstack(State(state): State<AppState>, OriginalUri(uri): OriginalUri, request: Request) -> Response {
    state.ingest.forward(&uri, request).await
}

/// The Things Stack v3's webhook (format JSON, with the additional header
/// `X-Hoheit-Connector-Secret`): uplink messages
/// (`uplink_message.decoded_payload`) carry readings, other messages are
/// answered `204`. The thing is the one whose external id is the DevEUI.
#[utoipa::path(post, operation_id = "connectors_tts", path = "/connectors/{id}/tts", tag = "ingest",
    params(("id" = i64, Path, description = "connector id")),
    request_body(description = "a The Things Stack ApplicationUp message", content((serde_json::Value = "application/json"))),
    responses(
        (status = 202, description = "accepted and rejected readings (rejected ones, and unknown devices, are dead letters of the tts door)", body = Receipt),
        (status = 204, description = "a message that is no uplink: ignored"),
        (status = 400, description = "not a message of The Things Stack", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "no or a wrong connector secret", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "the connector is disabled (code: connector_disabled)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "the connector is a ChirpStack connector", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 413, description = "beyond the payload limit", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 415, description = "not JSON", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "over the connector's request rate (Retry-After)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "Kafka is away: nothing was accepted (Retry-After)", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn tts(State(state): State<AppState>, OriginalUri(uri): OriginalUri, request: Request) -> Response {
    state.ingest.forward(&uri, request).await
}
