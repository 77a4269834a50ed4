//! Dead letters: rejected messages with their reasons, and their replay
//! (decided here, carried out by ingest: the API keeps no Kafka client).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hoheit_domain::replay::{ReplayReport, ReplayRequest, ReplayResult};
use hoheit_domain::Slug;
use hoheit_store::dead_letters::{self, Selection};
use serde::{Deserialize, Serialize};

use crate::access::{dead_letters_scope, require_replay};
use crate::auth::Who;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::openapi::ProblemDoc;
use crate::params::{self, TimeRange};
use crate::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterQuery {
    /// Organisation slug (operator: any; a principal: its own, the default).
    org: Option<String>,
    /// Start of the range (inclusive), RFC 3339.
    #[param(format = DateTime)]
    from: Option<String>,
    /// End of the range (exclusive), RFC 3339; default: now.
    #[param(format = DateTime)]
    to: Option<String>,
    /// Page size, 1 to 10,000; default 1,000.
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only dead letters with this reason code (their latest: a replayed one's new code).
    reason: Option<String>,
    /// Only dead letters addressed to this thing (slug) or one of its datastreams.
    thing: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeadLetterView {
    id: i64,
    received_at: DateTime<Utc>,
    org: String,
    /// Where it was addressed: the MQTT topic, or for the other doors the
    /// topic of the datastream or thing they addressed (or what identified it).
    mqtt_topic: String,
    /// The door it came in by; absent for a Kafka record that did not decode.
    #[schema(value_type = Option<hoheit_domain::door::Door>)]
    door: Option<String>,
    reason_code: String,
    reason: String,
    rejections: serde_json::Value,
    /// The raw payload, base64.
    payload_base64: String,
    /// The payload as text, when it is UTF-8.
    payload_text: Option<String>,
    /// When it was last replayed; null: never.
    replayed_at: Option<DateTime<Utc>>,
    /// What its last replay did; null: never replayed.
    replay_result: Option<ReplayResult>,
    /// The code its last replay still failed with (`partial`, `rejected`).
    replay_reason_code: Option<String>,
    /// How often it was replayed.
    replay_count: i32,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeadLetterPage {
    dead_letters: Vec<DeadLetterView>,
    next_cursor: Option<String>,
}

/// Dead letters received in `[from, to)` (default: the last 7 days), oldest first.
#[utoipa::path(get, operation_id = "dead_letters_list", path = "/dead-letters", tag = "data", security(("bearer" = [])),
    params(DeadLetterQuery),
    responses((status = 200, description = "one page of dead letters", body = DeadLetterPage)))]
pub async fn list(
    State(state): State<AppState>,
    who: Who,
    ApiQuery(query): ApiQuery<DeadLetterQuery>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let asked = crate::params::org(query.org.as_deref())?;
    let org = dead_letters_scope(&who, asked)?;
    let range = TimeRange::parse(query.from.as_deref(), query.to.as_deref(), Duration::days(7))?;
    let limit = params::limit(query.limit)?;
    let after = query.cursor.as_deref().map(|c| params::decode_cursor('d', c)).transpose()?.unwrap_or(0);
    let slug = |kind, value: &Option<String>| {
        value.as_deref().map(|v| Slug::parse(kind, v)).transpose().map_err(|e| ApiError::BadRequest(e.to_string()))
    };
    let (reason, thing) = (slug("reason", &query.reason)?, slug("thing", &query.thing)?);
    let thing_topic = match (&org, &thing) {
        (Some(org), Some(thing)) => Some(state.topics.thing_topic(org, thing)),
        (None, Some(_)) => {
            return Err(ApiError::BadRequest("a thing is named within an organisation: give org too".into()))
        }
        _ => None,
    };
    let selection = Selection {
        org: org.as_ref(),
        reason: reason.as_ref(),
        thing_topic,
        from: Some(range.from),
        to: Some(range.to),
    };
    let rows = dead_letters::list(&state.pool, &selection, after, limit).await?;
    let next_cursor =
        (rows.len() as i64 == limit).then(|| rows.last().map(|r| params::encode_cursor('d', r.id))).flatten();
    let dead_letters = rows
        .into_iter()
        .map(|r| DeadLetterView {
            id: r.id,
            received_at: r.received_at,
            org: r.org,
            mqtt_topic: r.mqtt_topic,
            door: r.door,
            reason_code: r.reason_code,
            reason: r.reason,
            rejections: r.rejections,
            payload_base64: STANDARD.encode(&r.payload),
            payload_text: String::from_utf8(r.payload).ok(),
            replayed_at: r.replayed_at,
            replay_result: r.replay_result.as_deref().and_then(ReplayResult::parse),
            replay_reason_code: r.replay_reason_code,
            replay_count: r.replay_count,
        })
        .collect();
    Ok(Json(DeadLetterPage { dead_letters, next_cursor }))
}

/// Replays an organisation's dead letters after its registry was fixed (a
/// missing datastream registered, a unit corrected): each selected payload
/// goes through the same checks again and through Kafka like any reading.
/// Readings that now pass are stored once (a second replay stores nothing
/// twice); what still fails stays a dead letter (no new one), marked with the
/// result and its code. Answered once Kafka confirmed the replayed readings
/// and the dead letters are marked; audited. Only dead letters of Hoheit's
/// MQTT topics and the HTTP push are replayed (`door` `mqtt` or `http`).
/// For the organisation's admins and data owners (API keys) and the operator.
#[utoipa::path(post, operation_id = "dead_letters_replay", path = "/dead-letters/replay", tag = "data",
    security(("bearer" = [])),
    request_body = ReplayRequest,
    responses(
        (status = 200, description = "what became of each selected dead letter", body = ReplayReport),
        (status = 400, description = "an invalid filter", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "no valid API key (an OIDC token is not enough: ingest, which replays, takes API keys)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "not an admin or data owner of the organisation (a reader, a publisher, another organisation)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "no such organisation", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "over the key's request rate (Retry-After)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "Kafka (or ingest) is away: no dead letter was marked (Retry-After)", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn replay(
    State(state): State<AppState>,
    who: Who,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ReplayRequest>,
) -> Result<Response, ApiError> {
    let own =
        who.caller.principal().map(|p| Slug::parse("org", &p.org_slug)).transpose().map_err(|_| ApiError::Internal)?;
    let filter = request.filter(own.as_ref()).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    require_replay(&state, &who, &filter.org).await?;
    if who.caller.principal().is_some_and(|p| p.key_id.is_none()) {
        return Err(ApiError::Unauthorized(
            "ingest replays on the caller's API key, as it takes every write: present an API key, not an OIDC token"
                .into(),
        ));
    }
    // Ingest replays in the organisation the API decided on.
    let decided = ReplayRequest { org: Some(filter.org.to_string()), ..request };
    let body = serde_json::to_vec(&decided).map_err(|_| ApiError::Internal)?;
    Ok(state.ingest.send_read("/v1/dead-letters/replay", &headers, &who.request_id.0, body).await)
}
