//! Datasets: the catalogue a caller may see, grants on a dataset (for its
//! owner), streamed export (CSV or JSON Lines, any size; through the read
//! gate like every read) and erasure.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Json;
use futures::stream::BoxStream;
use futures::StreamExt;
use hoheit_domain::policy::{GrantTerms, Resolution};
use hoheit_domain::DatastreamId;
use hoheit_store::datasets::{self, Dataset, ExportRow};
use hoheit_store::dead_letters::DeadLettersErased;
use hoheit_store::observations::Bucket;
use hoheit_store::{grants, observations};
use serde::{Deserialize, Serialize};

use crate::access::{authorize_export, dataset_visibility, require_dataset_visible, require_or, Needs};
use crate::auth::Who;
use crate::error::ApiError;
use crate::extract::{ApiQuery, PathId};
use crate::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct DatasetList {
    datasets: Vec<Dataset>,
}

/// The datasets this caller may see: some read is allowed, it owns the
/// data, or its organisation holds a grant in force or still to come (a
/// revoked or expired grant shows nothing).
#[utoipa::path(get, operation_id = "datasets_list", path = "/datasets", tag = "datasets", security((), ("bearer" = [])),
    responses((status = 200, description = "the datasets this caller may see", body = DatasetList)))]
pub async fn list(State(state): State<AppState>, who: Who) -> Result<Json<DatasetList>, ApiError> {
    let mut visible = Vec::new();
    for dataset in datasets::list(&state.pool).await? {
        if dataset_visibility(&state, &who.caller, dataset.id).await?.shows_dataset() {
            visible.push(dataset);
        }
    }
    Ok(Json(DatasetList { datasets: visible }))
}

/// One dataset's metadata.
#[utoipa::path(get, operation_id = "datasets_get_one", path = "/datasets/{id}", tag = "datasets", security((), ("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "dataset id")),
    responses((status = 200, description = "the dataset", body = Dataset)))]
pub async fn get_one(State(state): State<AppState>, who: Who, PathId(id): PathId) -> Result<Json<Dataset>, ApiError> {
    let dataset = datasets::get(&state.pool, id).await?;
    require_dataset_visible(&state, &who, &dataset).await?;
    Ok(Json(dataset))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct GrantList {
    grants: Vec<GrantTerms>,
}

/// Who holds grants on a dataset: its owner's view.
#[utoipa::path(get, operation_id = "datasets_grants_on", path = "/datasets/{id}/grants", tag = "datasets", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "dataset id")),
    responses((status = 200, description = "the grants on the dataset", body = GrantList)))]
pub async fn grants_on(
    State(state): State<AppState>,
    who: Who,
    PathId(id): PathId,
) -> Result<Json<GrantList>, ApiError> {
    let dataset = datasets::get(&state.pool, id).await?;
    require_or(&who.caller, Needs::DataOwner(dataset.owner_org_id), || {
        "grants on a dataset are shown to its owner's admins and data owners".into()
    })?;
    Ok(Json(GrantList { grants: grants::on_dataset(&state.pool, id).await? }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `csv` or `jsonl` (default).
    #[param(pattern = "^(csv|jsonl)$")]
    format: Option<String>,
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

pub(crate) fn csv_line(row: &ExportRow) -> String {
    format!(
        "{},{},{},{},{},{}\n",
        row.datastream_id,
        csv_field(&row.thing),
        csv_field(&row.property),
        csv_field(row.unit.as_deref().unwrap_or("")),
        hoheit_domain::rfc3339::to_string(&row.time),
        row.value
    )
}

/// A dataset's metadata and what the policy releases of its data, streamed:
/// every reading, or for personal data (raw personal readings leave for
/// nobody, the operator and the owner included) the 15-minute aggregates
/// under the personal rule (cells of fewer than the dataset's minimum count
/// withheld, no min/max). `format=csv` (the data; the license in a header) or
/// `format=jsonl` (the dataset, its datastreams, then one line per reading or
/// bucket). For the owner's admins and data owners: no lock-in. Goes through
/// the read gate and is audited as one read.
#[utoipa::path(get, operation_id = "datasets_export", path = "/datasets/{id}/export", tag = "datasets", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "dataset id"), ExportQuery),
    responses((status = 200, description = "every reading (personal data: every released 15-minute aggregate), streamed; \
        the license in `x-hoheit-license`",
        headers(("x-hoheit-license" = String, description = "the dataset's license")),
        content((String = "text/csv"), (String = "application/jsonl")))))]
pub async fn export(
    State(state): State<AppState>,
    who: Who,
    PathId(id): PathId,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let format = query.format.as_deref().unwrap_or("jsonl");
    if !matches!(format, "csv" | "jsonl") {
        return Err(ApiError::BadRequest("format must be csv or jsonl".into()));
    }
    let dataset = datasets::get(&state.pool, id).await?;
    let permit = authorize_export(&state, &who, &dataset).await?;
    let csv = format == "csv";
    let streams = datasets::datastreams_of(&state.pool, id).await?;
    let resolution = permit.range.resolution;
    let (rows, lines) = match resolution {
        Resolution::Raw => (datasets::count_readings(&state.pool, id).await?, raw_lines(&state, id, csv)),
        Resolution::Aggregate { interval_secs } => {
            // Read once: the buckets counted for the audit record are the ones sent.
            let mut released = Vec::with_capacity(streams.len());
            for stream in &streams {
                let buckets =
                    observations::released_aggregates(&state.pool, stream_id(stream), &permit.range, permit.release)
                        .await?;
                released.push((stream.clone(), buckets));
            }
            let rows = released.iter().map(|(_, buckets)| buckets.len()).sum::<usize>();
            (rows as i64, aggregate_lines(released, interval_secs, csv))
        }
    };
    permit.finish(&state, rows as usize).await?;
    let (content_type, head) = if csv {
        let columns = match resolution {
            Resolution::Raw => "datastream_id,thing,property,unit,time,value\n",
            Resolution::Aggregate { .. } => "datastream_id,thing,property,unit,time,interval_seconds,avg,count\n",
        };
        ("text/csv; charset=utf-8", vec![columns.to_owned()])
    } else {
        let mut head = vec![format!("{}\n", serde_json::json!({"type": "dataset", "dataset": &dataset}))];
        for stream in streams {
            head.push(format!("{}\n", serde_json::json!({"type": "datastream", "datastream": stream})));
        }
        ("application/jsonl", head)
    };
    let body = Body::from_stream(futures::stream::iter(head.into_iter().map(Ok::<String, sqlx::Error>)).chain(lines));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}.{format}\"", dataset.slug)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&dataset.license) {
        headers.insert("x-hoheit-license", v);
    }
    Ok(response)
}

fn stream_id(stream: &serde_json::Value) -> DatastreamId {
    DatastreamId(stream["id"].as_i64().unwrap_or_default())
}

type Lines = BoxStream<'static, Result<String, sqlx::Error>>;

/// Every reading of the dataset, one line each.
fn raw_lines(state: &AppState, dataset_id: i64, csv: bool) -> Lines {
    datasets::export_rows(&state.pool, dataset_id)
        .map(move |r| {
            r.map(|row| {
                if csv {
                    csv_line(&row)
                } else {
                    let line = serde_json::json!({"type": "observation", "datastream_id": row.datastream_id, "time": row.time, "value": row.value});
                    format!("{line}\n")
                }
            })
        })
        .boxed()
}

/// The released aggregates of each datastream (buckets of `interval` seconds), one line per bucket.
fn aggregate_lines(released: Vec<(serde_json::Value, Vec<Bucket>)>, interval: i64, csv: bool) -> Lines {
    let lines = released.into_iter().flat_map(move |(stream, buckets)| {
        let id = stream_id(&stream);
        let text = |key: &str| stream[key].as_str().unwrap_or_default().to_owned();
        let (thing, property, unit) = (csv_field(&text("thing")), csv_field(&text("property")), csv_field(&text("unit")));
        buckets.into_iter().map(move |b| {
            Ok(if csv {
                format!(
                    "{id},{thing},{property},{unit},{},{interval},{},{}\n",
                    hoheit_domain::rfc3339::to_string(&b.time),
                    b.avg,
                    b.count,
                    id = id.0
                )
            } else {
                let line = serde_json::json!({"type": "aggregate", "datastream_id": id.0,
                    "time": b.time, "interval_seconds": interval, "avg": b.avg, "min": b.min, "max": b.max, "count": b.count});
                format!("{line}\n")
            })
        })
    });
    futures::stream::iter(lines).boxed()
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Erased {
    dataset_id: i64,
    readings_deleted: u64,
    /// The dead letters whose raw payloads could hold the dataset's readings.
    dead_letters: DeadLettersErased,
}

/// Erases a dataset's readings, the raw payloads of its dead letters and its
/// datastreams: its owner's admins (or the operator); audited as the
/// administrative change `dataset.erase`.
#[utoipa::path(delete, operation_id = "datasets_erase", path = "/datasets/{id}", tag = "datasets", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "dataset id")),
    responses((status = 200, description = "the dataset is erased", body = Erased)))]
pub async fn erase(
    State(state): State<AppState>,
    who: Who,
    PathId(id): PathId,
) -> Result<(StatusCode, Json<Erased>), ApiError> {
    let dataset = datasets::get(&state.pool, id).await?;
    require_or(&who.caller, Needs::Admin(dataset.owner_org_id), || {
        format!("only admins of {} may erase dataset {}", dataset.owner, dataset.slug)
    })?;
    let erasure = datasets::erase(&state.pool, id, &state.topics, &super::admin::actor(&who)).await?;
    Ok((
        StatusCode::OK,
        Json(Erased { dataset_id: id, readings_deleted: erasure.readings, dead_letters: erasure.dead_letters }),
    ))
}
