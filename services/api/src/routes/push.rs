//! The HTTP push door as the API documents and serves it: requests are
//! forwarded to ingest (see `crate::forward`), which decides who may write,
//! checks every reading like an MQTT message and answers once Kafka
//! confirmed.

use axum::extract::{OriginalUri, Request, State};
use axum::response::Response;
use hoheit_domain::door::Receipt;

use crate::openapi::ProblemDoc;
use crate::AppState;

/// Readings of one datastream: a JSON reading `{"time", "value", "unit"}` (time
/// and unit optional) or an array of them (`application/json`), or a
/// `hoheit.v1.ObservationBatch` (`application/x-protobuf`). Needs an API key of
/// a writer role (`publisher`, `data_owner`, `admin`) of the organisation, or
/// of a supplier under a supply grant. Answered once Kafka confirmed every
/// record: what `202` counts as accepted is stored exactly once.
#[utoipa::path(post, operation_id = "push_datastream", path = "/push/{org}/{thing}/{property}", tag = "ingest",
    security(("bearer" = [])),
    params(("org" = String, Path), ("thing" = String, Path), ("property" = String, Path)),
    request_body(description = "a reading, an array of readings, or an ObservationBatch",
        content((serde_json::Value = "application/json"), (crate::forward::RawBody = "application/x-protobuf"))),
    responses(
        (status = 202, description = "accepted and rejected readings (the rejected ones are dead letters with their codes)", body = Receipt),
        (status = 400, description = "an invalid organisation, thing or property", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "no valid API key", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "a reader key, or another organisation's datastream (code: read_only_role, foreign_organisation, supply_grant_…)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 413, description = "beyond the payload limit", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 415, description = "an unknown content type", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "over the key's request rate (Retry-After)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "Kafka is away: nothing was accepted (Retry-After)", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn datastream(State(state): State<AppState>, OriginalUri(uri): OriginalUri, request: Request) -> Response {
    state.ingest.forward(&uri, request).await
}

/// Readings of a thing that name their properties: a SenML pack
/// (`application/senml+json`, RFC 8428) or a `hoheit.v1.ObservationBatch`
/// (`application/x-protobuf`). Otherwise as the datastream push.
#[utoipa::path(post, operation_id = "push_thing", path = "/push/{org}/{thing}", tag = "ingest",
    security(("bearer" = [])),
    params(("org" = String, Path), ("thing" = String, Path)),
    request_body(description = "a SenML pack or an ObservationBatch",
        content((serde_json::Value = "application/senml+json"), (crate::forward::RawBody = "application/x-protobuf"))),
    responses(
        (status = 202, description = "accepted and rejected readings (the rejected ones are dead letters with their codes)", body = Receipt),
        (status = 400, description = "an invalid organisation or thing", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "no valid API key", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "a reader key, or another organisation's thing", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 413, description = "beyond the payload limit", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 415, description = "an unknown content type", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "over the key's request rate (Retry-After)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "Kafka is away: nothing was accepted (Retry-After)", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn thing(State(state): State<AppState>, OriginalUri(uri): OriginalUri, request: Request) -> Response {
    state.ingest.forward(&uri, request).await
}

/// The sensor.community (airrohr) firmware's "send to own API": `X-Sensor:
/// esp8266-<chip id>` names the device, the thing of the organisation whose
/// external id it is; the device's token (`POST
/// /v1/admin/things/{id}/device-token`) is the password of HTTP basic auth
/// (or `Authorization: Bearer`). The body is the firmware's JSON
/// (`{"esp8266id", "software_version", "sensordatavalues": [{"value_type",
/// "value"}]}`, values as strings); each value type goes to its property
/// (`SDS_P1` → `pm10` in ug/m3, `SDS_P2` → `pm2_5`, `BME280_temperature` →
/// `temperature` in Cel, `BME280_pressure` → `pressure` in Pa, `signal` in
/// dBm, …); the firmware's housekeeping (`samples`, `min_micro`, `max_micro`,
/// `interval`) is skipped. A value that is no number is a dead letter
/// (`non_numeric_value`, door `airrohr`).
#[utoipa::path(post, operation_id = "push_airrohr", path = "/push/airrohr/{org}", tag = "ingest",
    security(("basic" = [])),
    params(("org" = String, Path),
        ("X-Sensor" = String, Header, description = "esp8266-<chip id>: the thing's external id")),
    request_body(description = "the airrohr firmware's JSON", content((serde_json::Value = "application/json"))),
    responses(
        (status = 202, description = "accepted and rejected readings (the rejected ones are dead letters with their codes)", body = Receipt),
        (status = 400, description = "an invalid organisation, or no X-Sensor header", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "no token, a wrong token, or a device that is not registered with a token (no dead letter)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 413, description = "beyond the payload limit", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "over the device's request rate (Retry-After)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "Kafka is away: nothing was accepted (Retry-After)", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn airrohr(State(state): State<AppState>, OriginalUri(uri): OriginalUri, request: Request) -> Response {
    state.ingest.forward(&uri, request).await
}
