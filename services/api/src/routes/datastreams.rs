//! Datastreams, their observations (cursor-paged) and aggregates.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use hoheit_domain::policy::{decide, may_read_aggregates, Caller, DatasetAccess, GrantTerms, ReadRequest, Resolution};
use hoheit_domain::{DatastreamId, Micros};
use hoheit_store::audit::AuditRecord;
use hoheit_store::datasets;
use hoheit_store::observations::{self, Bucket, Observation};
use hoheit_store::registry::{self, Datastream};
use serde::{Deserialize, Serialize};

use crate::access::{audit_record, authorize_datastream, grants_for, grants_held};
use crate::auth::Who;
use crate::error::ApiError;
use crate::extract::{ApiQuery, PathId};
use crate::params::{self, TimeRange};
use crate::AppState;

/// What a caller may see of a datastream: its metadata (some read is
/// allowed) and its latest value (a raw read of the last hour is allowed).
pub(crate) fn visibility(caller: &Caller, dataset: &DatasetAccess, grants: &[GrantTerms]) -> (bool, bool) {
    let now = chrono::Utc::now();
    let hour = ReadRequest { resolution: Resolution::Raw, from: now - Duration::hours(1), to: now };
    let raw = decide(caller, dataset, grants, &hour, now).is_allowed();
    (raw || may_read_aggregates(caller, dataset, grants, now), raw)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DatastreamList {
    datastreams: Vec<Datastream>,
}

/// The datastreams the caller may see; the latest value only where it may read raw data.
#[utoipa::path(get, operation_id = "datastreams_list", path = "/datastreams", tag = "data", security((), ("bearer" = [])),
    responses((status = 200, description = "the datastreams this caller may see", body = DatastreamList)))]
pub async fn list(State(state): State<AppState>, who: Who) -> Result<Json<DatastreamList>, ApiError> {
    let datastreams: Vec<Datastream> = visible(&state, &who.0).await?.into_iter().map(|v| v.stream).collect();
    let values = datastreams.iter().filter(|d| d.latest_value.is_some()).count();
    state.audit.append(latest_values_read(&who, "datastreams", values)).await?;
    Ok(Json(DatastreamList { datastreams }))
}

/// A visible datastream and whether the caller may read it raw.
pub(crate) struct Visible {
    pub stream: Datastream,
    pub dataset_id: Option<i64>,
    pub raw: bool,
}

/// The datastreams the caller may see (some read is allowed), the latest
/// value only where it may read raw data: the rule of this list and of the
/// live values.
pub(crate) async fn visible(state: &AppState, caller: &Caller) -> Result<Vec<Visible>, ApiError> {
    let access: HashMap<DatastreamId, DatasetAccess> = datasets::access_all(&state.pool).await?.into_iter().collect();
    let held = grants_held(state, caller).await?;
    Ok(registry::list_datastreams(&state.pool)
        .await?
        .into_iter()
        .filter_map(|mut stream| {
            let dataset = access.get(&stream.id)?;
            let (meta, raw) = visibility(caller, dataset, &held);
            if !raw {
                stream.latest_time = None;
                stream.latest_value = None;
            }
            meta.then_some(Visible { stream, dataset_id: dataset.id, raw })
        })
        .collect())
}

/// The audit record of a read of latest values (`values` of them released).
pub(crate) fn latest_values_read(who: &Who, action: &str, values: usize) -> AuditRecord {
    AuditRecord {
        resolution: "latest".into(),
        rows_returned: values as i64,
        allowed: true,
        reason: "latest values of the datastreams the caller may read raw".into(),
        ..audit_record(who, action)
    }
}

/// One datastream; its latest value only where the caller may read raw data.
#[utoipa::path(get, operation_id = "datastreams_get_one", path = "/datastreams/{id}", tag = "data", security((), ("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "datastream id")),
    responses((status = 200, description = "the datastream", body = Datastream)))]
pub async fn get_one(
    State(state): State<AppState>,
    who: Who,
    PathId(id): PathId,
) -> Result<Json<Datastream>, ApiError> {
    let id = DatastreamId(id);
    let dataset = datasets::access_for_datastream(&state.pool, id).await?;
    let grants = grants_for(&state, &who.0, &dataset).await?;
    let (meta, raw) = visibility(&who.0, &dataset, &grants);
    if !meta {
        return Err(ApiError::Forbidden(format!(
            "datastream {id} belongs to dataset {}, which this caller may not read",
            dataset.slug
        )));
    }
    let mut stream = registry::get_datastream(&state.pool, id).await?;
    if !raw {
        stream.latest_time = None;
        stream.latest_value = None;
    }
    Ok(Json(stream))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ObservationsQuery {
    /// Start of the range (inclusive), RFC 3339; default: `to` minus 24 hours.
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
pub struct ObservationPage {
    datastream_id: DatastreamId,
    unit: Option<String>,
    observations: Vec<Observation>,
    /// Pass as `cursor` (with the same from/to) for the next page; absent on the last page.
    next_cursor: Option<String>,
}

/// Raw readings in `[from, to)` (default: the last 24 hours), oldest first.
#[utoipa::path(get, operation_id = "datastreams_observations", path = "/datastreams/{id}/observations", tag = "data", security((), ("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "datastream id"), ObservationsQuery),
    responses((status = 200, description = "one page of readings; `Link: rel=\"next\"` when there are more",
        body = ObservationPage, headers(("link" = String, description = "the next page")))))]
pub async fn observations(
    State(state): State<AppState>,
    who: Who,
    PathId(id): PathId,
    ApiQuery(query): ApiQuery<ObservationsQuery>,
) -> Result<(HeaderMap, Json<ObservationPage>), ApiError> {
    let range = TimeRange::parse(query.from.as_deref(), query.to.as_deref(), Duration::hours(24))?
        .at_most_days(params::MAX_RAW_RANGE_DAYS)?;
    let limit = params::limit(query.limit)?;
    let after = query.cursor.as_deref().map(|c| params::decode_cursor('t', c)).transpose()?.map(Micros);
    let request = ReadRequest { resolution: Resolution::Raw, from: range.from, to: range.to };
    let permit = authorize_datastream(&state, &who, DatastreamId(id), "observations", request).await?;
    let stream = registry::get_datastream(&state.pool, DatastreamId(id)).await?;
    let rows = observations::range(&state.pool, stream.id, permit.range.from, permit.range.to, after, limit).await?;
    permit.finish(&state, rows.len()).await?;
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

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AggregatesQuery {
    /// Start of the range (inclusive), RFC 3339; default: `to` minus 7 days.
    #[param(format = DateTime)]
    from: Option<String>,
    /// End of the range (exclusive), RFC 3339; default: now.
    #[param(format = DateTime)]
    to: Option<String>,
    /// Bucket width: a number and `s`, `m`, `h` or `d` (1s to 366d); default `15m`.
    #[param(pattern = "^[0-9]+[smhd]$")]
    interval: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AggregatePage {
    datastream_id: DatastreamId,
    unit: Option<String>,
    interval_seconds: i64,
    /// Start of the range answered: `from`, or for aggregate-only grants and
    /// personal data `from` rounded up to the interval's epoch-aligned grid.
    from: DateTime<Utc>,
    /// End of the range answered: `to`, or for aggregate-only grants and
    /// personal data `to` (at most now) rounded down to that grid; equal to
    /// `from` when no whole bucket remains.
    to: DateTime<Utc>,
    buckets: Vec<Bucket>,
}

/// avg/min/max/count per bucket (default 15m) in `[from, to)` (default: the last 7 days).
///
/// Under an aggregate-only grant of N minutes the interval must be a whole
/// multiple of N minutes and only whole, ended buckets of the epoch-aligned
/// grid are answered. Personal data: the same on the 15-minute grid, from
/// 15-minute cells of at least the dataset's minimum count only (smaller
/// cells count nowhere), buckets below the minimum withheld, no min/max.
#[utoipa::path(get, operation_id = "datastreams_aggregates", path = "/datastreams/{id}/aggregates", tag = "data", security((), ("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "datastream id"), AggregatesQuery),
    responses((status = 200, description = "the buckets", body = AggregatePage)))]
pub async fn aggregates(
    State(state): State<AppState>,
    who: Who,
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
    let request = ReadRequest {
        resolution: Resolution::Aggregate { interval_secs: interval_seconds },
        from: range.from,
        to: range.to,
    };
    let permit = authorize_datastream(&state, &who, DatastreamId(id), "aggregates", request).await?;
    let stream = registry::get_datastream(&state.pool, DatastreamId(id)).await?;
    let (release, answered) = (permit.release, permit.range);
    let buckets = observations::released_aggregates(&state.pool, stream.id, &answered, release).await?;
    permit.finish(&state, buckets.len()).await?;
    Ok(Json(AggregatePage {
        datastream_id: stream.id,
        unit: stream.unit,
        interval_seconds,
        from: answered.from,
        to: answered.to,
        buckets,
    }))
}
