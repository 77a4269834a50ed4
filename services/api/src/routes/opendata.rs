//! Open data without a key: the DCAT-AP.de catalog (Turtle, RDF/XML or
//! JSON-LD by content negotiation) and streamed CSV and JSON downloads of
//! each open dataset. Downloads go through the same read gate as the API
//! (`access::authorize`: policy and one audit record each); only datasets
//! classified `open` are offered here, whoever asks.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use hoheit_domain::policy::{ReadRequest, Resolution};
use hoheit_store::catalog;
use hoheit_store::datasets;

use crate::access::authorize;
use crate::auth::Who;
use crate::dcat::{self, CatalogFormat, CatalogPublisher};
use crate::error::ApiError;
use crate::routes::datasets::csv_line;
use crate::AppState;

/// The metadata at the head of a JSON download.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct DownloadHead {
    /// The dataset's slug.
    dataset: String,
    title: String,
    description: String,
    /// The owner organisation's slug.
    publisher: String,
    license: String,
    /// The dataset's IRI in the catalog.
    catalog: String,
    /// The dataset's datastreams: id, thing (slug, name, position), property, name, unit.
    datastreams: Vec<serde_json::Value>,
}

/// One reading in a JSON download.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct DownloadedReading {
    datastream_id: i64,
    thing: String,
    property: String,
    unit: Option<String>,
    time: DateTime<Utc>,
    value: f64,
}

/// A JSON download: the metadata, then every reading (streamed in this shape).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct OpenDataDownload {
    #[serde(flatten)]
    head: DownloadHead,
    observations: Vec<DownloadedReading>,
}

/// The catalog of open datasets (DCAT-AP.de 3.0), by the `Accept` header:
/// `text/turtle` (the default), `application/rdf+xml` or `application/ld+json`.
#[utoipa::path(get, operation_id = "opendata_catalog", path = "/opendata/catalog", tag = "opendata", security(()),
    responses(
        (status = 200, description = "the catalog",
            content((String = "text/turtle"), (String = "application/rdf+xml"), (String = "application/ld+json"))),
        (status = 406, description = "none of the catalog's formats is acceptable", body = crate::openapi::ProblemDoc,
            content_type = "application/problem+json"),
    ))]
pub async fn catalog(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|a| a.to_str().ok());
    let format = CatalogFormat::negotiate(accept).ok_or_else(|| {
        ApiError::NotAcceptable(
            "the catalog is offered as text/turtle, application/rdf+xml or application/ld+json".into(),
        )
    })?;
    let base = state.public_base.as_str();
    let entries = catalog::open_entries(&state.pool).await?;
    let publisher = match catalog::publisher(&state.pool).await? {
        Some((slug, name)) => CatalogPublisher { slug, name },
        None => CatalogPublisher { slug: "hoheit".into(), name: "Hoheit".into() },
    };
    let graph = dcat::catalog_graph(base, &publisher, &entries, Utc::now());
    let body = dcat::serialize(&graph, format).map_err(|error| {
        tracing::error!(%error, "catalog serialisation failed");
        ApiError::Internal
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(format.media_type())),
            (header::VARY, HeaderValue::from_static("accept")),
        ],
        body,
    )
        .into_response())
}

/// A streamed download of an open dataset: `{slug}.csv` (one reading a line)
/// or `{slug}.json` (the dataset's metadata and its readings). The license is
/// in `x-hoheit-license` and `Link: <…>; rel="license"`.
#[utoipa::path(get, operation_id = "opendata_download", path = "/opendata/datasets/{file}", tag = "opendata",
    security((), ("bearer" = [])),
    params(("file" = String, Path, pattern = "^[a-z0-9][a-z0-9_-]*\\.(csv|json)$",
        description = "the dataset's slug and `.csv` or `.json`")),
    responses((status = 200, description = "every reading of the open dataset, streamed",
        headers(("x-hoheit-license" = String, description = "the dataset's license"),
                ("link" = String, description = "`<license>; rel=\"license\"`")),
        content((String = "text/csv"), (OpenDataDownload = "application/json")))))]
pub async fn download(State(state): State<AppState>, who: Who, Path(file): Path<String>) -> Result<Response, ApiError> {
    let (slug, csv) = match (file.strip_suffix(".csv"), file.strip_suffix(".json")) {
        (Some(slug), _) => (slug, true),
        (_, Some(slug)) => (slug, false),
        _ => return Err(ApiError::NotFound("downloads are {slug}.csv or {slug}.json".into())),
    };
    let not_open = || {
        ApiError::NotFound(format!(
            "no open dataset {:?}; see /opendata/catalog",
            slug.chars().take(64).collect::<String>()
        ))
    };
    let dataset = catalog::open_dataset(&state.pool, slug).await?.ok_or_else(not_open)?;
    let access = datasets::access(&state.pool, dataset.id).await?;
    let request = ReadRequest { resolution: Resolution::Raw, from: DateTime::<Utc>::UNIX_EPOCH, to: Utc::now() };
    let permit = authorize(&state, &who, access, None, "opendata_download", request).await?;
    let rows = datasets::count_readings(&state.pool, dataset.id).await?;
    permit.finish(&state, rows as usize).await?;

    let base = &state.public_base;
    let lines = datasets::export_rows(&state.pool, dataset.id);
    let body = if csv {
        let head = futures::stream::once(async {
            Ok::<String, sqlx::Error>("datastream_id,thing,property,unit,time,value\n".into())
        });
        Body::from_stream(head.chain(lines.map(|r| r.map(|row| csv_line(&row)))))
    } else {
        let meta = DownloadHead {
            dataset: dataset.slug.clone(),
            title: dataset.title.clone(),
            description: dataset.description.clone(),
            publisher: dataset.owner.clone(),
            license: dataset.license.clone(),
            catalog: format!("{base}/opendata/datasets/{}", dataset.slug),
            datastreams: datasets::datastreams_of(&state.pool, dataset.id).await?,
        };
        // [`OpenDataDownload`] written piecewise: `{…metadata…, "observations": [`,
        // then one object per reading, then `]}`.
        let mut head = serde_json::to_string(&meta).map_err(|_| ApiError::Internal)?;
        head.pop();
        head.push_str(",\"observations\":[");
        let mut first = true;
        let readings = lines.map(move |r| {
            r.map(|row| {
                let item = DownloadedReading {
                    datastream_id: row.datastream_id,
                    thing: row.thing,
                    property: row.property,
                    unit: row.unit,
                    time: row.time,
                    value: row.value,
                };
                let separator = if std::mem::take(&mut first) { "" } else { "," };
                format!("{separator}{}\n", serde_json::to_string(&item).unwrap_or_default())
            })
        });
        let tail = futures::stream::once(async { Ok::<String, sqlx::Error>("]}\n".into()) });
        Body::from_stream(
            futures::stream::once(async move { Ok::<String, sqlx::Error>(head) }).chain(readings).chain(tail),
        )
    };
    let mut response = Response::new(body);
    let out = response.headers_mut();
    let content_type = if csv { "text/csv; charset=utf-8" } else { "application/json" };
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        out.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&dataset.license) {
        out.insert("x-hoheit-license", v);
    }
    if dataset.license.starts_with("http") {
        if let Ok(v) = HeaderValue::from_str(&format!("<{}>; rel=\"license\"", dataset.license)) {
            out.insert(header::LINK, v);
        }
    }
    Ok(response)
}
