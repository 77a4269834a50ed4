//! Datastreams, their observations (cursor-paged) and aggregates.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use hoheit_domain::license::License;
use hoheit_domain::policy::{Caller, Classification, ReadRequest, Resolution, Visibility};
use hoheit_domain::{DatastreamId, Micros};
use hoheit_store::datasets::{self, Dataset};
use hoheit_store::observations::{self, Bucket, Observation};
use hoheit_store::registry::{self, Datastream};
use serde::{Deserialize, Serialize};

use crate::access::{audit_latest_values, authorize_datastream, require_datastream_visible, CallerView};
use crate::auth::Who;
use crate::error::ApiError;
use crate::extract::{ApiQuery, PathId};
use crate::params::{self, TimeRange};
use crate::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct DatastreamList {
    datastreams: Vec<DatastreamView>,
    /// The next page (an absolute link); absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DatastreamsQuery {
    /// Page size, 1 to 10,000; default 1,000.
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<i64>,
    /// Only datastreams with a larger id: the last id of the previous page (the `next` link says it).
    #[param(minimum = 0)]
    after: Option<i64>,
}

/// A datastream with the terms of the dataset it belongs to, so that a
/// licensed consumer sees them beside the data.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DatastreamView {
    #[serde(flatten)]
    stream: Datastream,
    /// The dataset it belongs to; absent while it is in none (then it is the
    /// internal data of its thing's organisation).
    dataset: Option<DatasetTerms>,
}

/// What a reader needs to use a dataset's data: which dataset, whose, how
/// classified, under which license.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DatasetTerms {
    id: i64,
    slug: String,
    title: String,
    /// The owner organisation's slug.
    owner: String,
    #[schema(value_type = String, example = "open")]
    classification: Classification,
    license: License,
}

impl DatasetTerms {
    fn of(dataset: &Dataset) -> Self {
        DatasetTerms {
            id: dataset.id,
            slug: dataset.slug.clone(),
            title: dataset.title.clone(),
            owner: dataset.owner.clone(),
            classification: dataset.classification,
            license: License::of(&dataset.license),
        }
    }
}

/// The terms of every dataset, by id.
async fn terms_by_dataset(state: &AppState) -> Result<HashMap<i64, Dataset>, ApiError> {
    Ok(datasets::list(&state.pool).await?.into_iter().map(|d| (d.id, d)).collect())
}

/// The datastreams the caller may see, in id order and pages, with their dataset's terms; the
/// latest value only where it may read raw data.
#[utoipa::path(get, operation_id = "datastreams_list", path = "/datastreams", tag = "data", security((), ("bearer" = [])),
    params(DatastreamsQuery),
    responses((status = 200, description = "one page of the datastreams this caller may see; `next` links the next page",
        body = DatastreamList)))]
pub async fn list(
    State(state): State<AppState>,
    who: Who,
    ApiQuery(query): ApiQuery<DatastreamsQuery>,
) -> Result<Json<DatastreamList>, ApiError> {
    let limit = params::limit(query.limit)?;
    let after = match query.after {
        None => DatastreamId(0),
        Some(after) if after >= 0 => DatastreamId(after),
        Some(_) => return Err(ApiError::BadRequest("after must be a datastream id (0 or more)".into())),
    };
    let view = CallerView::load(&state, &who.caller).await?;
    // One more than the page: whether a next page follows.
    let mut page = view.visible_after(after, limit as usize + 1);
    let more = page.len() > limit as usize;
    page.truncate(limit as usize);
    let visible = with_latest_where_readable(&state, &view, &page).await?;
    let values = visible.iter().filter(|v| v.stream.latest_value.is_some()).count();
    audit_latest_values(&state, &who, "datastreams", values).await?;
    let next = match (more, page.last()) {
        (true, Some((last, _))) => Some(format!("{}/v1/datastreams?limit={limit}&after={last}", state.public_base)),
        _ => None,
    };
    let terms = terms_by_dataset(&state).await?;
    let datastreams = visible
        .into_iter()
        .map(|v| DatastreamView {
            dataset: v.dataset_id.and_then(|id| terms.get(&id)).map(DatasetTerms::of),
            stream: v.stream,
        })
        .collect();
    Ok(Json(DatastreamList { datastreams, next }))
}

/// A visible datastream and whether the caller may read it raw.
pub(crate) struct Visible {
    pub stream: Datastream,
    pub dataset_id: Option<i64>,
    pub raw: bool,
}

/// The datastreams `page` names (visible to the caller), the latest value only where it may read raw data.
async fn with_latest_where_readable(
    state: &AppState,
    view: &CallerView,
    page: &[(DatastreamId, Visibility)],
) -> Result<Vec<Visible>, ApiError> {
    let ids: Vec<DatastreamId> = page.iter().map(|(id, _)| *id).collect();
    let streams = registry::datastreams_by_ids(&state.pool, &ids).await?;
    Ok(streams.into_iter().filter_map(|stream| seen_as(view, stream)).collect())
}

/// `stream` as the caller may see it: `None` if hidden, without its latest value unless readable raw.
fn seen_as(view: &CallerView, mut stream: Datastream) -> Option<Visible> {
    let visibility = view.visibility(stream.id);
    let raw = visibility.shows_latest_value();
    if !raw {
        stream.latest_time = None;
        stream.latest_value = None;
    }
    let dataset_id = view.dataset_of(stream.id);
    visibility.shows_datastreams().then_some(Visible { stream, dataset_id, raw })
}

/// Every datastream the caller may see (the policy's `Visibility`), the
/// latest value only where it may read raw data: the rule of the listing and
/// of the live values.
pub(crate) async fn visible(state: &AppState, caller: &Arc<Caller>) -> Result<Vec<Visible>, ApiError> {
    let view = CallerView::load(state, caller).await?;
    Ok(registry::list_datastreams(&state.pool).await?.into_iter().filter_map(|stream| seen_as(&view, stream)).collect())
}

/// One datastream with its dataset's terms; its latest value only where the caller may read raw data.
#[utoipa::path(get, operation_id = "datastreams_get_one", path = "/datastreams/{id}", tag = "data", security((), ("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "datastream id")),
    responses((status = 200, description = "the datastream", body = DatastreamView)))]
pub async fn get_one(
    State(state): State<AppState>,
    who: Who,
    PathId(id): PathId,
) -> Result<Json<DatastreamView>, ApiError> {
    let id = DatastreamId(id);
    let visibility = require_datastream_visible(&state, &who, id).await?;
    let mut stream = registry::get_datastream(&state.pool, id).await?;
    if !visibility.shows_latest_value() {
        stream.latest_time = None;
        stream.latest_value = None;
    }
    let dataset = match datasets::access_for_datastream(&state.pool, id).await?.id {
        Some(dataset_id) => Some(DatasetTerms::of(&datasets::get(&state.pool, dataset_id).await?)),
        None => None,
    };
    Ok(Json(DatastreamView { stream, dataset }))
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
    let (permit, unit) = authorize_datastream(&state, &who, DatastreamId(id), "observations", request).await?;
    let rows =
        observations::range(&state.pool, DatastreamId(id), permit.range.from, permit.range.to, after, limit).await?;
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
    Ok((headers, Json(ObservationPage { datastream_id: DatastreamId(id), unit, observations: rows, next_cursor })))
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
    let (permit, unit) = authorize_datastream(&state, &who, DatastreamId(id), "aggregates", request).await?;
    let (release, answered) = (permit.release, permit.range);
    let buckets = observations::released_aggregates(&state.pool, DatastreamId(id), &answered, release).await?;
    permit.finish(&state, buckets.len()).await?;
    Ok(Json(AggregatePage {
        datastream_id: DatastreamId(id),
        unit,
        interval_seconds,
        from: answered.from,
        to: answered.to,
        buckets,
    }))
}
