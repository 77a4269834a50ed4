//! Live latest values for dashboards: `GET /v1/live`.
//!
//! With `Accept: text/event-stream` it is a server-sent event stream: first a
//! `snapshot` event (the datastreams the caller may see, with their thing's
//! position and dataset, and the latest value where the caller may read raw
//! data), then every second a `latest` event with the values that changed.
//! Without it the answer is the snapshot as JSON. Both follow the same policy
//! as `GET /v1/datastreams` (the policy's visibility, through the access
//! gate, re-evaluated on every tick on the process's cached access facts, so
//! a revoked or expiring grant stops the values within a second), and each
//! request writes one audit record through the gate, when it opens, not one
//! per event.
//!
//! The values come from the process's one change feed ([`crate::live_feed`]):
//! a stream reads the database only for its snapshot, never per tick. A
//! datastream that becomes readable while a stream is open shows with its
//! next reading (the next reconnect's snapshot has its current value).
//! A stream ends after [`MAX_STREAM`] and at shutdown; the client
//! reconnects, which presents its credential again. Before every tick the
//! credential is checked again on the cached facts (principal disabled, API
//! key revoked or expired): a stream whose credential is no longer good
//! sends an `end` event with the reason and closes, within a tick or two.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use hoheit_domain::policy::Caller;
use hoheit_store::latest::{self, LatestReading};
use hoheit_store::registry;
use serde::Serialize;
use tokio::sync::broadcast;

use super::datastreams::{visible, Visible};
use crate::access::{audit_latest_values, CallerView};
use crate::auth::Who;
use crate::error::ApiError;
use crate::live_feed::{Tick, EVERY};
use crate::AppState;

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
/// events every second, for at most 15 minutes; then reconnect).
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
    // Subscribed before the first values are read: the feed's next tick holds whatever commits after them.
    let ticks = streaming.then(|| state.live.subscribe());
    let first = snapshot(&state, visible(&state, &who.caller).await?).await?;
    let values = first.datastreams.iter().filter(|d| d.latest_value.is_some()).count();
    let action = if streaming { "live_stream" } else { "live" };
    audit_latest_values(&state, &who, action, values).await?;
    let Some(ticks) = ticks else {
        return Ok(Json(first).into_response());
    };
    let opening = Event::default().event("snapshot").json_data(&first).map_err(|_| ApiError::Internal)?;
    let open = Stream {
        view: CallerView::on(state.access.current(), &who.caller),
        state,
        caller: who.caller.clone(),
        closes: tokio::time::Instant::now() + MAX_STREAM,
        ticks,
        _open: OpenStream::count(),
    };
    let ticks = futures::stream::unfold(Some(open), |open: Option<Stream>| async move { open?.tick().await });
    let events = futures::stream::once(async move { Ok::<_, Infallible>(opening) }).chain(ticks);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

/// Counts an open stream in `hoheit_live_streams` while it lives.
struct OpenStream;

impl OpenStream {
    fn count() -> Self {
        metrics::gauge!("hoheit_live_streams").increment(1.0);
        OpenStream
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        metrics::gauge!("hoheit_live_streams").decrement(1.0);
    }
}

/// A stream between two ticks.
struct Stream {
    state: AppState,
    caller: Arc<Caller>,
    /// The caller's view the last tick decided on.
    view: CallerView,
    closes: tokio::time::Instant,
    ticks: broadcast::Receiver<Tick>,
    _open: OpenStream,
}

impl Stream {
    /// The next event, or `None` when the stream ends.
    async fn tick(mut self) -> Option<(Result<Event, Infallible>, Option<Stream>)> {
        let tick = tokio::select! {
            tick = self.ticks.recv() => tick,
            // Shutting down: end the stream, the client reconnects to another replica or later.
            _ = self.state.shutdown.cancelled() => return None,
            _ = tokio::time::sleep_until(self.closes) => return None,
        };
        let readings = match tick {
            Ok(readings) => readings,
            // Fell behind the feed: read the latest values anew and send what differs.
            Err(broadcast::error::RecvError::Lagged(_)) => match latest::all(&self.state.pool).await {
                Ok(all) => Arc::new(all),
                Err(_) => return Some((Ok(problem(ApiError::Unavailable)), Some(self))),
            },
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        let snapshot = self.state.access.current();
        if let Some(ended) = self.caller.principal().and_then(|p| snapshot.credential_ended(p, Utc::now())) {
            return Some((Ok(Event::default().event("end").data(ended.to_string())), None));
        }
        let view = CallerView::on(snapshot, &self.caller);
        let update = self.changes(&view, &readings);
        self.view = view;
        Some((Ok(Event::default().event("latest").json_data(&update).unwrap_or_default()), Some(self)))
    }

    /// What changed since the last event: the new latest values the caller
    /// may read raw, and the datastreams whose values it may no longer read
    /// raw (looked for only when the view changed). A stream keeps nothing per
    /// datastream (it kept the time sent of each, 200 streams of 10,000
    /// datastreams: 90 MiB), so the first tick may repeat a value its snapshot
    /// held, which a client takes as the same latest value.
    fn changes(&self, view: &CallerView, readings: &[LatestReading]) -> LiveUpdate {
        let withdrawn =
            if view.reads_raw_as(&self.view) { Vec::new() } else { self.view.latest_values_withdrawn_in(view) };
        let values = readings
            .iter()
            .filter(|reading| view.visibility(reading.datastream_id).shows_latest_value())
            .map(|reading| LiveValue {
                datastream_id: reading.datastream_id.0,
                time: reading.time,
                value: reading.value,
            })
            .collect();
        LiveUpdate { values, withdrawn }
    }
}

/// The database is away for a moment: say so and keep the stream.
fn problem(error: ApiError) -> Event {
    Event::default().event("problem").data(error.to_string())
}
