//! Datastreams, their observations (cursor-paged) and aggregates.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::Json;
use chrono::Duration;
use hoheit_core::domain::{DatastreamId, Micros};
use hoheit_core::observations::{self, Bucket, Observation};
use hoheit_core::registry::{self, Datastream};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::{ApiQuery, PathId};
use crate::params::{self, TimeRange};
use crate::AppState;

#[derive(Serialize)]
pub struct DatastreamList {
    datastreams: Vec<Datastream>,
}

pub async fn list(State(state): State<AppState>) -> Result<Json<DatastreamList>, ApiError> {
    Ok(Json(DatastreamList { datastreams: registry::list_datastreams(&state.pool).await? }))
}

pub async fn get_one(State(state): State<AppState>, PathId(id): PathId) -> Result<Json<Datastream>, ApiError> {
    Ok(Json(registry::get_datastream(&state.pool, DatastreamId(id)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservationsQuery {
    from: Option<String>,
    to: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Serialize)]
pub struct ObservationPage {
    datastream_id: DatastreamId,
    unit: Option<String>,
    observations: Vec<Observation>,
    /// Pass as `cursor` (with the same from/to) for the next page; absent on the last page.
    next_cursor: Option<String>,
}

/// Raw readings in `[from, to)` (default: the last 24 hours), oldest first.
pub async fn observations(
    State(state): State<AppState>,
    PathId(id): PathId,
    ApiQuery(query): ApiQuery<ObservationsQuery>,
) -> Result<(HeaderMap, Json<ObservationPage>), ApiError> {
    let range = TimeRange::parse(query.from.as_deref(), query.to.as_deref(), Duration::hours(24))?;
    let limit = params::limit(query.limit)?;
    let after = query.cursor.as_deref().map(|c| params::decode_cursor('t', c)).transpose()?.map(Micros);
    let stream = registry::get_datastream(&state.pool, DatastreamId(id)).await?;
    let rows = observations::range(&state.pool, stream.id, range.from, range.to, after, limit).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|last| params::encode_cursor('t', Micros::from_datetime(last.time).0)))
        .flatten();
    let mut headers = HeaderMap::new();
    if let Some(cursor) = &next_cursor {
        let link = format!(
            "</v1/datastreams/{id}/observations?from={}&to={}&limit={limit}&cursor={cursor}>; rel=\"next\"",
            range.from.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            range.to.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        );
        if let Ok(value) = HeaderValue::from_str(&link) {
            headers.insert(header::LINK, value);
        }
    }
    Ok((
        headers,
        Json(ObservationPage { datastream_id: stream.id, unit: stream.unit, observations: rows, next_cursor }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatesQuery {
    from: Option<String>,
    to: Option<String>,
    interval: Option<String>,
}

#[derive(Serialize)]
pub struct AggregatePage {
    datastream_id: DatastreamId,
    unit: Option<String>,
    interval_seconds: i64,
    buckets: Vec<Bucket>,
}

/// avg/min/max/count per bucket (default 15m) in `[from, to)` (default: the last 7 days).
pub async fn aggregates(
    State(state): State<AppState>,
    PathId(id): PathId,
    ApiQuery(query): ApiQuery<AggregatesQuery>,
) -> Result<Json<AggregatePage>, ApiError> {
    let range = TimeRange::parse(query.from.as_deref(), query.to.as_deref(), Duration::days(7))?;
    let interval_seconds = params::interval(query.interval.as_deref().unwrap_or("15m"))?;
    let buckets = (range.to - range.from).num_seconds() / interval_seconds;
    if buckets > params::MAX_BUCKETS {
        return Err(ApiError::BadRequest(format!(
            "the range holds {buckets} buckets of {interval_seconds} s; at most {} are allowed: choose a larger interval or a shorter range",
            params::MAX_BUCKETS
        )));
    }
    let stream = registry::get_datastream(&state.pool, DatastreamId(id)).await?;
    let buckets = observations::aggregates(&state.pool, stream.id, range.from, range.to, interval_seconds).await?;
    Ok(Json(AggregatePage { datastream_id: stream.id, unit: stream.unit, interval_seconds, buckets }))
}
