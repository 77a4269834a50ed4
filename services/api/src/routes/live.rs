//! Live latest values for dashboards: `GET /v1/live`.
//!
//! With `Accept: text/event-stream` it is a server-sent event stream: first a
//! `snapshot` event (the datastreams the caller may see, with their thing's
//! position and dataset, and the latest value where the caller may read raw
//! data), then every few seconds a `latest` event with the values that
//! changed. Without it the answer is the snapshot as JSON. Both follow the
//! same policy as `GET /v1/datastreams` (the policy's visibility, through the
//! access gate, re-evaluated on every tick, so an expiring grant stops the
//! values), and each request writes one audit record through the gate, when
//! it opens, not one per event.
//! A stream ends after [`MAX_STREAM`] and at shutdown; the client
//! reconnects, which presents its credential again. Before every tick the
//! credential is checked again (principal disabled, API key revoked or
//! expired): a stream whose credential is no longer good sends an `end`
//! event with the reason and closes, within one tick.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use hoheit_domain::policy::Caller;
use hoheit_store::registry;
use serde::Serialize;

use super::datastreams::{visible, Visible};
use crate::access::audit_latest_values;
use crate::auth::Who;
use crate::error::ApiError;
use crate::AppState;

/// Time between two `latest` events.
pub const EVERY: Duration = Duration::from_secs(3);
/// How long one stream lasts before the client must reconnect.
pub const MAX_STREAM: Duration = Duration::from_secs(15 * 60);

/// A datastream as a dashboard shows it: where, in which dataset, and its latest value.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LiveDatastream {
    id: i64,
    org: String,
    thing: String,
    /// The thing's name.
    thing_name: Option<String>,
    property: String,
    name: String,
    unit: Option<String>,
    /// The dataset it belongs to; absent for a datastream in none (internal to its organisation).
    dataset_id: Option<i64>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    /// Whether the caller may read raw readings (and so sees the latest value).
    raw: bool,
    latest_time: Option<DateTime<Utc>>,
    latest_value: Option<f64>,
}

/// The datastreams the caller may see: the answer without streaming and the stream's first event.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LiveSnapshot {
    datastreams: Vec<LiveDatastream>,
    /// Seconds between the stream's `latest` events.
    interval_seconds: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LiveValue {
    datastream_id: i64,
    time: DateTime<Utc>,
    value: f64,
}

/// A `latest` event: new latest values, and datastreams whose values the caller may no longer read.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LiveUpdate {
    values: Vec<LiveValue>,
    withdrawn: Vec<i64>,
}

/// Adds the things' names and positions.
async fn snapshot(state: &AppState, visible: Vec<Visible>) -> Result<LiveSnapshot, ApiError> {
    let mut places = registry::places(&state.pool).await?;
    let datastreams = visible
        .into_iter()
        .map(|v| {
            let (thing_name, latitude, longitude) = match places.remove(&v.stream.id.0) {
                Some((name, latitude, longitude)) => (Some(name), latitude, longitude),
                None => (None, None, None),
            };
            LiveDatastream {
                id: v.stream.id.0,
                org: v.stream.org.as_str().to_owned(),
                thing: v.stream.thing.as_str().to_owned(),
                thing_name,
                property: v.stream.property.as_str().to_owned(),
                name: v.stream.name,
                unit: v.stream.unit,
                dataset_id: v.dataset_id,
                latitude,
                longitude,
                raw: v.raw,
                latest_time: v.stream.latest_time,
                latest_value: v.stream.latest_value,
            }
        })
        .collect();
    Ok(LiveSnapshot { datastreams, interval_seconds: EVERY.as_secs() })
}

/// Latest values of the datastreams the caller may see, as JSON or, with
/// `Accept: text/event-stream`, as a live stream (`snapshot`, then `latest`
/// events every 3 s, for at most 15 minutes; then reconnect).
#[utoipa::path(get, operation_id = "live_stream", path = "/live", tag = "data", security((), ("bearer" = [])),
    responses((status = 200, description = "the snapshot (JSON), or with `Accept: text/event-stream` the stream: \
        a `snapshot` event (LiveSnapshot), then `latest` events (LiveUpdate); an `end` event with the reason \
        when the credential is revoked, expires or its principal is disabled",
        content((LiveSnapshot = "application/json"), (String = "text/event-stream")))))]
pub async fn stream(State(state): State<AppState>, who: Who, headers: HeaderMap) -> Result<Response, ApiError> {
    let streaming = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"));
    let first = snapshot(&state, visible(&state, &who.caller).await?).await?;
    let values = first.datastreams.iter().filter(|d| d.latest_value.is_some()).count();
    let action = if streaming { "live_stream" } else { "live" };
    audit_latest_values(&state, &who, action, values).await?;
    if !streaming {
        return Ok(Json(first).into_response());
    }
    let seen: HashMap<i64, DateTime<Utc>> =
        first.datastreams.iter().filter_map(|d| Some((d.id, d.latest_time?))).collect();
    let opening = Event::default().event("snapshot").json_data(&first).map_err(|_| ApiError::Internal)?;
    let ticks = futures::stream::unfold(
        Some((state, who.caller.clone(), seen, Instant::now())),
        |open: Option<Ticking>| async move {
            let (state, caller, mut seen, opened) = open?;
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                // Shutting down: end the stream, the client reconnects to another replica or later.
                _ = state.shutdown.cancelled() => return None,
            }
            if opened.elapsed() >= MAX_STREAM {
                return None;
            }
            if let Some(reason) = credential_ended(&state, &caller) {
                return Some((Ok::<_, Infallible>(Event::default().event("end").data(reason)), None));
            }
            let event = match visible(&state, &caller).await {
                Ok(now) => {
                    let update = changes(&mut seen, &now);
                    Event::default().event("latest").json_data(&update).unwrap_or_default()
                }
                // The database is away for a moment: say so and keep the stream.
                Err(error) => Event::default().event("problem").data(error.to_string()),
            };
            Some((Ok::<_, Infallible>(event), Some((state, caller, seen, opened))))
        },
    );
    let events = futures::stream::once(async move { Ok::<_, Infallible>(opening) }).chain(ticks);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

/// A stream between two ticks: the state, the caller, the latest times sent, when it opened.
type Ticking = (AppState, Arc<Caller>, HashMap<i64, DateTime<Utc>>, Instant);

/// Why the stream must end, if the caller's credential is no longer good, on
/// the process's cached credential states (kept within a second of the
/// database): the operator's token and anonymous callers have nothing to revoke.
fn credential_ended(state: &AppState, caller: &Caller) -> Option<String> {
    let principal = caller.principal()?;
    state.access.current().credential_ended(principal, Utc::now()).map(|ended| ended.to_string())
}

/// What changed since the last event: new latest values, and datastreams no longer readable raw.
fn changes(seen: &mut HashMap<i64, DateTime<Utc>>, now: &[Visible]) -> LiveUpdate {
    let mut values = Vec::new();
    let mut readable = BTreeSet::new();
    for v in now.iter().filter(|v| v.raw) {
        readable.insert(v.stream.id.0);
        if let (Some(time), Some(value)) = (v.stream.latest_time, v.stream.latest_value) {
            if seen.get(&v.stream.id.0) != Some(&time) {
                seen.insert(v.stream.id.0, time);
                values.push(LiveValue { datastream_id: v.stream.id.0, time, value });
            }
        }
    }
    let withdrawn: Vec<i64> = seen.keys().copied().filter(|id| !readable.contains(id)).collect();
    for id in &withdrawn {
        seen.remove(id);
    }
    LiveUpdate { values, withdrawn }
}
