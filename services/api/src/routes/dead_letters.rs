//! Dead letters: rejected messages with their reasons.

use axum::extract::State;
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hoheit_domain::Slug;
use hoheit_store::dead_letters;
use serde::{Deserialize, Serialize};

use crate::access::dead_letters_scope;
use crate::auth::Who;
use crate::error::ApiError;
use crate::extract::ApiQuery;
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
    let asked = query
        .org
        .as_deref()
        .map(|o| Slug::parse("org", o))
        .transpose()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let org = dead_letters_scope(&who, asked)?;
    let range = TimeRange::parse(query.from.as_deref(), query.to.as_deref(), Duration::days(7))?;
    let limit = params::limit(query.limit)?;
    let after = query.cursor.as_deref().map(|c| params::decode_cursor('d', c)).transpose()?.unwrap_or(0);
    let rows = dead_letters::list(&state.pool, org.as_ref(), range.from, range.to, after, limit).await?;
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
        })
        .collect();
    Ok(Json(DeadLetterPage { dead_letters, next_cursor }))
}
