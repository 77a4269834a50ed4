//! OGC SensorThings API 1.1, read part (Sensing core), under `/sta/v1.1`;
//! creating observations is ingest's ([`write`] forwards it there).
//!
//! A request is answered in steps, one module each: [`path`] resolves the
//! resource path, [`options`] reads the query options (`$filter`/`$orderby`
//! parsed in [`expr`], the paths of FROST's clients made plain OData in
//! [`lambda`]), [`answer`] reads the page and its expansions
//! ([`fetch`]: SQL with bound parameters, [`sql`] translating the
//! expressions, over the entity model of [`model`]) and [`render`] writes
//! it. What the caller may see and read is decided by the API's access gate
//! (`crate::access`), which [`scope`] turns into the id arrays every query is
//! limited to: metadata of datastreams the caller may see, observations only
//! of datastreams it may read raw for the requested time range. Every read of
//! observations goes through the gate as on Hoheit's own API: decided, a read
//! under a grant charged against the grant's rate before its query runs, and
//! audited before the answer leaves.
//!
//! One request does bounded work: `$filter`/`$orderby` are limited in size and
//! navigations when the options are read, and a response in entities
//! ([`options::MAX_ENTITIES`]) before any query runs and again while it is
//! built. Links start with the configured public base URL, never with the
//! request's `Host`.

mod answer;
mod expr;
mod fetch;
mod lambda;
mod model;
mod options;
mod path;
mod render;
mod scope;
mod sql;
mod write;

pub use write::{__path_create, __path_delete, __path_replace, __path_update, create, delete, replace, update};

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};

use crate::access::{CallerView, ObservationReads};
use crate::auth::Who;
use crate::error::ApiError;
use crate::AppState;
use answer::Answer;
use options::Options;
use scope::Scope;

/// Where the service lives, below the API's base URL.
pub const STA_PATH: &str = crate::dcat::STA_PATH;

/// The service root: the entity sets and the conformance classes served.
#[utoipa::path(get, operation_id = "sta_root", path = "/sta/v1.1", tag = "sensorthings", security((), ("bearer" = [])),
    responses((status = 200, description = "the SensorThings service root: entity sets and conformance classes")))]
pub async fn root(State(state): State<AppState>) -> Json<Value> {
    let base = format!("{}{STA_PATH}", state.public_base);
    let value: Vec<Value> =
        model::ALL.iter().map(|e| json!({"name": e.plural(), "url": format!("{base}/{}", e.plural())})).collect();
    Json(json!({
        "value": value,
        "serverSettings": {
            "conformance": [
                "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
                "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
                "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
                "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array/data-array",
            ]
        }
    }))
}

/// The service root written with a trailing slash, as clients that join
/// paths to a base URL ask for it: the same answer as [`root`].
#[utoipa::path(get, operation_id = "sta_root_slash", path = "/sta/v1.1/", tag = "sensorthings", security((), ("bearer" = [])),
    responses((status = 200, description = "the SensorThings service root: entity sets and conformance classes")))]
pub async fn root_slash(state: State<AppState>) -> Json<Value> {
    root(state).await
}

/// Any resource path below the root: entity sets, entities by id
/// (`Things(1)`), navigation (`Datastreams(5)/Observations`), properties and
/// `$value`, `$ref`; with `$filter`, `$expand`, `$select`, `$orderby`,
/// `$top`, `$skip`, `$count` and `$resultFormat=dataArray`.
#[utoipa::path(get, operation_id = "sta_resource", path = "/sta/v1.1/{*resource}", tag = "sensorthings", security((), ("bearer" = [])),
    params(("resource" = String, Path, description = "resource path, e.g. `Things`, `Datastreams(5)/Observations`, `Things(1)/name/$value`")),
    responses(
        (status = 200, description = "the entity, collection or property"),
        (status = 400, description = "an unsupported or malformed path or query option, with the reason", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub async fn resource(
    State(state): State<AppState>,
    who: Who,
    Path(resource): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let base = format!("{}{STA_PATH}", state.public_base);
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let path = path::parse(&resource)?;
    let view = CallerView::load(&state, &who.caller).await?;
    let scope = Scope::new(&view);
    let target = path::resolve(&state, &scope, &path).await?;
    let options = Options::from_pairs(target.entity, &pairs).map_err(ApiError::BadRequest)?;
    let mut answer = Answer::new(&state, &scope, ObservationReads::new(&view, &who), base);
    let page = answer.read(&target, &options).await?;
    answer.audit().await?.respond(&target, page, &options, &pairs)
}
