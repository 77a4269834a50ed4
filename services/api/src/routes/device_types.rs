//! Device types (`/v1/admin/device-types`): an organisation's kinds of
//! sensor with their properties, units and plausible ranges. Its admins
//! manage them, the operator any organisation's; every change is audited by
//! `hoheit-store`. A type's change gives every thing of the type the
//! datastreams it lacks at once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hoheit_domain::policy::Caller;
use hoheit_domain::Slug;
use hoheit_store::device_types::{self, DeviceType, DeviceTypeUpdate, NewDeviceType, UpdatedDeviceType};
use serde::Serialize;

use crate::access::{require, Needs};
use crate::auth::Who;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, PathId};
use crate::openapi::ProblemDoc;
use crate::routes::admin::actor;
use crate::routes::things::{org_scope, OrgQuery};
use crate::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeviceTypes {
    pub device_types: Vec<DeviceType>,
}

/// The device types of an organisation (operator: of all when `org` is absent).
#[utoipa::path(get, operation_id = "device_types_list", path = "/admin/device-types", tag = "admin", security(("bearer" = [])),
    params(OrgQuery),
    responses((status = 200, description = "the types, by organisation and slug", body = DeviceTypes)))]
pub async fn list(
    State(state): State<AppState>,
    who: Who,
    ApiQuery(query): ApiQuery<OrgQuery>,
) -> Result<Json<DeviceTypes>, ApiError> {
    let org_id = org_scope(&state, &who, query.org.as_deref(), Needs::Admin).await?;
    Ok(Json(DeviceTypes { device_types: device_types::list(&state.pool, org_id).await? }))
}

/// Creates a device type. The operator names the organisation (`org`); an
/// admin's default is its own.
#[utoipa::path(post, operation_id = "device_types_create", path = "/admin/device-types", tag = "admin", security(("bearer" = [])),
    request_body = NewDeviceType,
    responses(
        (status = 201, description = "created", body = DeviceType),
        (status = 409, description = "the organisation has a type of that slug", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    who: Who,
    ApiJson(new): ApiJson<NewDeviceType>,
) -> Result<(StatusCode, Json<DeviceType>), ApiError> {
    let org = match (&new.org, &*who.caller) {
        (Some(org), _) => org.clone(),
        (None, Caller::Principal(p)) => Slug::parse("org", &p.org_slug).map_err(|_| ApiError::Internal)?,
        (None, _) => return Err(ApiError::Unprocessable("org: name the organisation of the type".into())),
    };
    require(&who.caller, Needs::Admin(hoheit_store::registry::organisation_id(&state.pool, &org).await?))?;
    Ok((StatusCode::CREATED, Json(device_types::create(&state.pool, &org, &new, &actor(&who)).await?)))
}

#[utoipa::path(get, operation_id = "device_types_get_one", path = "/admin/device-types/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "device type id")),
    responses((status = 200, description = "the type", body = DeviceType)))]
pub async fn get_one(
    State(state): State<AppState>,
    who: Who,
    PathId(id): PathId,
) -> Result<Json<DeviceType>, ApiError> {
    require(&who.caller, Needs::Admin(device_types::org_of(&state.pool, id).await?))?;
    Ok(Json(device_types::get(&state.pool, id).await?))
}

/// Changes a type: rename, change ranges, add properties. A property left
/// out is no longer part of the type; its datastreams and their data stay.
/// Every thing of the type gets the datastreams it lacks.
#[utoipa::path(put, operation_id = "device_types_update", path = "/admin/device-types/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "device type id")),
    request_body = DeviceTypeUpdate,
    responses(
        (status = 200, description = "the type, with the datastreams created", body = UpdatedDeviceType),
        (status = 409, description = "the organisation has another type of that slug", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    who: Who,
    PathId(id): PathId,
    ApiJson(update): ApiJson<DeviceTypeUpdate>,
) -> Result<Json<UpdatedDeviceType>, ApiError> {
    require(&who.caller, Needs::Admin(device_types::org_of(&state.pool, id).await?))?;
    Ok(Json(device_types::update(&state.pool, id, &update, &actor(&who)).await?))
}

/// Deletes a type that no thing has.
#[utoipa::path(delete, operation_id = "device_types_delete", path = "/admin/device-types/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "device type id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 409, description = "things have this type", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn delete(State(state): State<AppState>, who: Who, PathId(id): PathId) -> Result<StatusCode, ApiError> {
    require(&who.caller, Needs::Admin(device_types::org_of(&state.pool, id).await?))?;
    device_types::delete(&state.pool, id, &actor(&who)).await?;
    Ok(StatusCode::NO_CONTENT)
}
