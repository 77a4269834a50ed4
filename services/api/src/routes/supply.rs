//! Supply grants (supply contracts): the owner of a dataset lets a supplier's
//! writer keys deliver readings into it through any door. The dataset owner's
//! admins and data owners (and the operator) create, revoke and list them;
//! a supplier lists the ones its organisation holds. Creating and revoking
//! write their audit record in the change's transaction (`hoheit-store`).
//! Supplying is not reading: the supplier reads the readings back only under
//! a read grant.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hoheit_domain::write::SupplyTerms;
use hoheit_store::datasets;
use hoheit_store::supply::{self, NewSupplyGrant, SupplyListing};
use serde::Serialize;

use crate::access::{require, require_or, supplier_scope, Needs};
use crate::auth::Who;
use crate::error::ApiError;
use crate::extract::{ApiJson, PathId};
use crate::routes::admin::actor;
use crate::AppState;

/// Lets a supplier's writer keys deliver readings into a dataset (its owner's
/// admins and data owners, or the operator).
#[utoipa::path(post, operation_id = "supply_create", path = "/admin/supply-grants", tag = "admin", security(("bearer" = [])),
    request_body = NewSupplyGrant,
    responses((status = 201, description = "created", body = SupplyTerms)))]
pub async fn create(
    State(state): State<AppState>,
    who: Who,
    ApiJson(new): ApiJson<NewSupplyGrant>,
) -> Result<(StatusCode, Json<SupplyTerms>), ApiError> {
    let owner = datasets::get(&state.pool, new.dataset_id).await?.owner_org_id;
    require(&who.caller, Needs::DataOwner(owner))?;
    Ok((StatusCode::CREATED, Json(supply::create(&state.pool, &new, &actor(&who)).await?)))
}

/// Ends a supply grant at once: the supplier's writes are refused from the next second on.
#[utoipa::path(delete, operation_id = "supply_revoke", path = "/admin/supply-grants/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "supply grant id")),
    responses((status = 204, description = "revoked")))]
pub async fn revoke(State(state): State<AppState>, who: Who, PathId(id): PathId) -> Result<StatusCode, ApiError> {
    let grant = supply::get(&state.pool, id).await?;
    require(&who.caller, Needs::DataOwner(grant.owner_org_id))?;
    supply::revoke(&state.pool, id, &actor(&who)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SupplyGrantList {
    supply_grants: Vec<SupplyTerms>,
}

/// Who supplies readings into a dataset: its owner's view.
#[utoipa::path(get, operation_id = "supply_on_dataset", path = "/datasets/{id}/supply-grants", tag = "datasets", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "dataset id")),
    responses((status = 200, description = "the supply grants on the dataset", body = SupplyGrantList)))]
pub async fn on_dataset(
    State(state): State<AppState>,
    who: Who,
    PathId(id): PathId,
) -> Result<Json<SupplyGrantList>, ApiError> {
    let dataset = datasets::get(&state.pool, id).await?;
    require_or(&who.caller, Needs::DataOwner(dataset.owner_org_id), || {
        "supply grants on a dataset are shown to its owner's admins and data owners".into()
    })?;
    Ok(Json(SupplyGrantList { supply_grants: supply::on_dataset(&state.pool, id).await? }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct HeldSupplyGrants {
    supply_grants: Vec<SupplyListing>,
}

/// The supply grants the caller's organisation holds (every one for the operator).
#[utoipa::path(get, operation_id = "supply_held", path = "/supply-grants", tag = "datasets", security(("bearer" = [])),
    responses((status = 200, description = "the supply grants held", body = HeldSupplyGrants)))]
pub async fn held(State(state): State<AppState>, who: Who) -> Result<Json<HeldSupplyGrants>, ApiError> {
    let supplier = supplier_scope(&who)?;
    Ok(Json(HeldSupplyGrants { supply_grants: supply::list(&state.pool, None, supplier.as_ref()).await? }))
}
