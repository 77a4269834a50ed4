//! Things as their organisation manages them (`/v1/admin/things`): the
//! listing (type, datastreams, newest reading, open dead letters), a change
//! of one thing, and bulk registration from a CSV or JSON file (`import`,
//! with a dry run that only reports). The organisation's admins and data
//! owners may, the operator for any organisation.

use axum::extract::{Request, State};
use axum::http::header;
use axum::Json;
use hoheit_domain::onboarding::{self, Refusal, MAX_ROWS};
use hoheit_domain::policy::Caller;
use hoheit_domain::Slug;
use hoheit_store::import::{self, ImportReport};
use hoheit_store::registry;
use hoheit_store::things::{self, PatchedThing, ThingPatch, ThingSummary};
use serde::{Deserialize, Serialize};

use crate::access::{require, Needs};
use crate::auth::Who;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, PathId};
use crate::openapi::ProblemDoc;
use crate::routes::admin::actor;
use crate::AppState;

/// The path of the import, whose body may be larger than other requests'.
pub const IMPORT_PATH: &str = "/v1/admin/things/import";

/// The largest import file.
pub const MAX_IMPORT_BYTES: usize = 16 * 1024 * 1024;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrgQuery {
    /// Organisation slug (operator: any, default all; a principal: its own, the default).
    pub org: Option<String>,
}

/// The organisation a listing is for (`None`: all, for the operator only),
/// after checking that the caller meets `needs` for it.
pub async fn org_scope(
    state: &AppState,
    who: &Who,
    org: Option<&str>,
    needs: fn(i64) -> Needs,
) -> Result<Option<i64>, ApiError> {
    let org_id = match (org, &*who.caller) {
        (Some(org), _) => {
            let org = Slug::parse("org", org).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            Some(registry::organisation_id(&state.pool, &org).await?)
        }
        (None, Caller::Operator) => None,
        (None, Caller::Principal(principal)) => Some(principal.org_id),
        (None, Caller::Anonymous) => {
            return Err(ApiError::Unauthorized("this is shown to the organisation's admins: present an API key".into()))
        }
    };
    match org_id {
        Some(org_id) => require(&who.caller, needs(org_id))?,
        None => require(&who.caller, Needs::Operator)?,
    }
    Ok(org_id)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Things {
    pub things: Vec<ThingSummary>,
}

/// The things of an organisation with their type, datastream count, newest
/// reading and the dead letters addressed to them that no replay stored.
#[utoipa::path(get, operation_id = "things_list", path = "/admin/things", tag = "admin", security(("bearer" = [])),
    params(OrgQuery),
    responses((status = 200, description = "the things, by organisation and slug", body = Things)))]
pub async fn list(
    State(state): State<AppState>,
    who: Who,
    ApiQuery(query): ApiQuery<OrgQuery>,
) -> Result<Json<Things>, ApiError> {
    let org_id = org_scope(&state, &who, query.org.as_deref(), Needs::DataOwner).await?;
    Ok(Json(Things { things: things::list(&state.pool, org_id, state.topics.root()).await? }))
}

/// Changes a thing: name, position, type, external id (absent: unchanged,
/// `null`: cleared). A new type adds the datastreams the thing lacks; none is dropped.
#[utoipa::path(patch, operation_id = "things_update", path = "/admin/things/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "thing id")),
    request_body = ThingPatch,
    responses(
        (status = 200, description = "the thing, with the datastreams created", body = PatchedThing),
        (status = 409, description = "another thing of the organisation has that external id", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    who: Who,
    PathId(id): PathId,
    ApiJson(patch): ApiJson<ThingPatch>,
) -> Result<Json<PatchedThing>, ApiError> {
    require(&who.caller, Needs::DataOwner(things::org_of(&state.pool, id).await?))?;
    Ok(Json(things::patch(&state.pool, id, &patch, &actor(&who)).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Organisation slug (the operator must name it; a principal's default is its own).
    pub org: Option<String>,
    /// Only report what would change.
    #[serde(default)]
    pub dry_run: bool,
}

/// Registers or updates the things of a file: CSV (`text/csv`, a header
/// row naming the columns `slug,name,latitude,longitude,type,external_id,dataset`,
/// `dev_eui`/`deveui`/`DevEUI` for the external id; an empty cell is "not
/// given") or JSON (an array of objects with those keys). A thing of a type
/// gets the type's datastreams; a `dataset` puts the thing's datastreams into
/// that dataset. Idempotent: an unchanged row writes nothing. One bad row
/// refuses the whole file (422, every bad row in `errors`); nothing changes.
#[utoipa::path(post, operation_id = "things_import", path = "/admin/things/import", tag = "admin", security(("bearer" = [])),
    params(ImportQuery),
    request_body(description = "the things, one per row (at most 100,000 rows, 16 MiB)",
        content((String = "text/csv"), (Vec<serde_json::Value> = "application/json"))),
    responses(
        (status = 200, description = "what was (or, in a dry run, would be) created and changed", body = ImportReport),
        (status = 413, description = "the file is larger than 16 MiB", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 415, description = "neither text/csv nor application/json", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "bad rows (each in `errors` with line, column and reason): nothing was changed", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn import(
    State(state): State<AppState>,
    who: Who,
    ApiQuery(query): ApiQuery<ImportQuery>,
    request: Request,
) -> Result<Json<ImportReport>, ApiError> {
    let org = match (query.org.as_deref(), &*who.caller) {
        (Some(org), _) => Slug::parse("org", org).map_err(|e| ApiError::BadRequest(e.to_string()))?,
        (None, Caller::Principal(p)) => Slug::parse("org", &p.org_slug).map_err(|_| ApiError::Internal)?,
        (None, _) => return Err(ApiError::BadRequest("org: name the organisation whose things these are".into())),
    };
    let org_id = registry::organisation_id(&state.pool, &org).await?;
    require(&who.caller, Needs::DataOwner(org_id))?;
    let json = match request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        Some(t) if t.starts_with("text/csv") => false,
        Some(t) if t.starts_with("application/json") => true,
        _ => return Err(ApiError::UnsupportedMediaType("send the file as text/csv or application/json".into())),
    };
    let body = axum::body::to_bytes(request.into_body(), MAX_IMPORT_BYTES).await.map_err(|_| {
        ApiError::PayloadTooLarge(format!("the file is larger than {} MiB; split it", MAX_IMPORT_BYTES >> 20))
    })?;
    let parsed = if json {
        onboarding::parse_json(&body)
    } else {
        let text =
            std::str::from_utf8(&body).map_err(|_| ApiError::Unprocessable("the CSV file is not UTF-8".into()))?;
        onboarding::parse_csv(text)
    }
    .map_err(|refusal| match refusal {
        Refusal::TooManyRows => ApiError::PayloadTooLarge(format!("more than {MAX_ROWS} rows; split the file")),
        Refusal::Rows(errors) => import::ImportError::Rows(errors).into(),
    })?;
    Ok(Json(import::import(&state.pool, org_id, &parsed, query.dry_run, &actor(&who)).await?))
}
