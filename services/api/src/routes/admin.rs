//! Administration: organisations, things, datastreams, principals and keys,
//! datasets and grants. Each handler checks who may do it: the operator
//! anything; an organisation's admins its principals and keys; its admins
//! and data owners its things, datastreams, datasets and grants. Every
//! change writes an audit record with the caller as [`Actor`] (in the
//! change's own transaction where `hoheit-store` makes it; right after it for
//! the registry's organisations, things and datastreams).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use hoheit_domain::policy::GrantTerms;
use hoheit_domain::DatastreamId;
use hoheit_store::audit::{self, Actor, AdminChange};
use hoheit_store::datasets::{self, Dataset, NewDataset};
use hoheit_store::device_tokens::{self, IssuedDeviceToken};
use hoheit_store::grants::{self, NewGrant};
use hoheit_store::principals::{self, IssuedKey, NewPrincipal, PrincipalView};
use hoheit_store::registry::{
    self, Datastream, DatastreamPatch, NewDatastream, NewOrganisation, NewThing, Organisation, Thing,
};
use serde::Deserialize;

use crate::access::{require, Needs};
use crate::auth::Who;
use crate::error::ApiError;
use crate::extract::{ApiJson, PathId};
use crate::openapi::ProblemDoc;
use crate::AppState;

/// The caller of `who` as the actor of an administrative change.
pub(crate) fn actor(who: &Who) -> Actor {
    let Who { caller, request_id } = who;
    let principal = caller.principal();
    Actor {
        request_id: request_id.0.clone(),
        principal_id: principal.map(|p| p.id),
        principal_name: caller.name().to_owned(),
        org_id: principal.map(|p| p.org_id),
    }
}

/// Audits a registry change that `hoheit-store` committed on its own.
async fn audit_created<T: serde::Serialize>(
    state: &AppState,
    who: &Who,
    kind: &str,
    id: i64,
    org_id: i64,
    created: &T,
) -> Result<(), ApiError> {
    let change = AdminChange::new(&format!("{kind}.create"), kind, id, org_id).states(None::<&T>, Some(created));
    audit::record_change_alone(&state.pool, &actor(who), &change).await?;
    Ok(())
}

#[utoipa::path(post, operation_id = "admin_create_organisation", path = "/admin/organisations", tag = "admin", security(("bearer" = [])),
    request_body = NewOrganisation,
    responses((status = 201, description = "created", body = Organisation)))]
pub async fn create_organisation(
    State(state): State<AppState>,
    who: Who,
    ApiJson(new): ApiJson<NewOrganisation>,
) -> Result<(StatusCode, Json<Organisation>), ApiError> {
    require(&who.caller, Needs::Operator)?;
    let org = registry::create_organisation(&state.pool, &new).await?;
    audit_created(&state, &who, "organisation", org.id, org.id, &org).await?;
    Ok((StatusCode::CREATED, Json(org)))
}

#[utoipa::path(post, operation_id = "admin_create_thing", path = "/admin/things", tag = "admin", security(("bearer" = [])),
    request_body = NewThing,
    responses((status = 201, description = "created", body = Thing)))]
pub async fn create_thing(
    State(state): State<AppState>,
    who: Who,
    ApiJson(new): ApiJson<NewThing>,
) -> Result<(StatusCode, Json<Thing>), ApiError> {
    let org_id = registry::organisation_id(&state.pool, &new.org).await?;
    require(&who.caller, Needs::DataOwner(org_id))?;
    let thing = registry::create_thing(&state.pool, &new).await?;
    audit_created(&state, &who, "thing", thing.id, org_id, &thing).await?;
    Ok((StatusCode::CREATED, Json(thing)))
}

#[utoipa::path(post, operation_id = "admin_create_datastream", path = "/admin/datastreams", tag = "admin", security(("bearer" = [])),
    request_body = NewDatastream,
    responses((status = 201, description = "created", body = Datastream)))]
pub async fn create_datastream(
    State(state): State<AppState>,
    who: Who,
    ApiJson(new): ApiJson<NewDatastream>,
) -> Result<(StatusCode, Json<Datastream>), ApiError> {
    let org_id = registry::organisation_id(&state.pool, &new.org).await?;
    require(&who.caller, Needs::DataOwner(org_id))?;
    let datastream = registry::create_datastream(&state.pool, &new).await?;
    audit_created(&state, &who, "datastream", datastream.id.0, org_id, &datastream).await?;
    Ok((StatusCode::CREATED, Json(datastream)))
}

/// Changes a datastream's name, unit or own plausible range (absent:
/// unchanged; `null`: cleared, so the type's range applies again). A unit
/// change is refused once the datastream holds readings.
#[utoipa::path(patch, operation_id = "admin_update_datastream", path = "/admin/datastreams/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "datastream id")),
    request_body = DatastreamPatch,
    responses(
        (status = 200, description = "the datastream", body = Datastream),
        (status = 409, description = "a unit change of a datastream that holds readings", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn update_datastream(
    State(state): State<AppState>,
    who: Who,
    PathId(id): PathId,
    ApiJson(patch): ApiJson<DatastreamPatch>,
) -> Result<Json<Datastream>, ApiError> {
    let id = DatastreamId(id);
    require(&who.caller, Needs::DataOwner(registry::org_of_datastream(&state.pool, id).await?))?;
    Ok(Json(registry::patch_datastream(&state.pool, id, &patch, &actor(&who)).await?))
}

#[utoipa::path(post, operation_id = "admin_create_principal", path = "/admin/principals", tag = "admin", security(("bearer" = [])),
    request_body = NewPrincipal,
    responses((status = 201, description = "created", body = PrincipalView)))]
pub async fn create_principal(
    State(state): State<AppState>,
    who: Who,
    ApiJson(new): ApiJson<NewPrincipal>,
) -> Result<(StatusCode, Json<PrincipalView>), ApiError> {
    require(&who.caller, Needs::Admin(registry::organisation_id(&state.pool, &new.org).await?))?;
    Ok((StatusCode::CREATED, Json(principals::create_principal(&state.pool, &new, &actor(&who)).await?)))
}

/// Issues a device token for a thing with an external id (its organisation's
/// admins and data owners): the password the device presents at its door
/// (airrohr: "send to own API", basic auth). Replaces the previous token; the
/// token is in this response only.
#[utoipa::path(post, operation_id = "admin_issue_device_token", path = "/admin/things/{id}/device-token", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "thing id")),
    responses(
        (status = 201, description = "the token, shown only in this response", body = IssuedDeviceToken),
        (status = 422, description = "the thing has no external id (the device its door names)", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn issue_device_token(
    State(state): State<AppState>,
    who: Who,
    PathId(thing): PathId,
) -> Result<(StatusCode, Json<IssuedDeviceToken>), ApiError> {
    require(&who.caller, Needs::DataOwner(device_tokens::org_of_thing(&state.pool, thing).await?))?;
    Ok((StatusCode::CREATED, Json(device_tokens::issue(&state.pool, thing, &actor(&who)).await?)))
}

/// Disables a principal: none of its keys or tokens is accepted any more (its organisation's admins).
#[utoipa::path(delete, operation_id = "admin_disable_principal", path = "/admin/principals/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "principal id")),
    responses((status = 200, description = "the principal, disabled", body = PrincipalView)))]
pub async fn disable_principal(
    State(state): State<AppState>,
    who: Who,
    PathId(principal): PathId,
) -> Result<Json<PrincipalView>, ApiError> {
    require(&who.caller, Needs::Admin(principals::org_of_principal(&state.pool, principal).await?))?;
    Ok(Json(principals::disable(&state.pool, principal, &actor(&who)).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// Default: one year from now (at most the maximum key lifetime, `HOHEIT_MAX_KEY_LIFETIME_DAYS`,
    /// default 397 days; a later time is refused).
    expires_at: Option<DateTime<Utc>>,
}

/// Issues a key for a principal; the key is in this response only.
#[utoipa::path(post, operation_id = "admin_create_key", path = "/admin/principals/{id}/keys", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "principal id")),
    request_body = NewKey,
    responses((status = 201, description = "the key, shown only in this response", body = IssuedKey)))]
pub async fn create_key(
    State(state): State<AppState>,
    who: Who,
    PathId(principal): PathId,
    ApiJson(new): ApiJson<NewKey>,
) -> Result<(StatusCode, Json<IssuedKey>), ApiError> {
    require(&who.caller, Needs::Admin(principals::org_of_principal(&state.pool, principal).await?))?;
    let expires = principals::KeyExpiry::within(new.expires_at, state.max_key_lifetime, Utc::now())?;
    let issued = principals::create_key(&state.pool, principal, expires, &actor(&who)).await?;
    if let Some(broker) = &state.broker {
        // The key works over HTTP either way; a broker that missed it is repaired from
        // `hoheit-admin mqtt-config --dynsec` (the failure is counted and logged, never the key).
        if let Err(e) = broker.key_created(&state.pool, &issued.view.lookup, &issued.key).await {
            tracing::warn!(user = %issued.view.lookup, error = %e, "a new key did not reach the broker");
        }
    }
    Ok((StatusCode::CREATED, Json(issued)))
}

/// Revokes a key: its organisation's admins, or the key's own principal.
#[utoipa::path(delete, operation_id = "admin_revoke_key", path = "/admin/keys/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "key id")),
    responses((status = 204, description = "revoked")))]
pub async fn revoke_key(State(state): State<AppState>, who: Who, PathId(key): PathId) -> Result<StatusCode, ApiError> {
    let own_key = who.caller.principal().is_some_and(|p| p.key_id == Some(key));
    if !own_key {
        require(&who.caller, Needs::Admin(principals::org_of_key(&state.pool, key).await?))?;
    }
    let revoked = principals::revoke_key(&state.pool, key, &actor(&who)).await?;
    if let Some(broker) = &state.broker {
        // Ingest's reconcile loop removes it within a second if this fails.
        if let Err(e) = broker.key_revoked(&revoked.lookup).await {
            tracing::warn!(user = %revoked.lookup, error = %e, "a revoked key's broker client was not removed yet");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, operation_id = "admin_create_dataset", path = "/admin/datasets", tag = "admin", security(("bearer" = [])),
    request_body = NewDataset,
    responses((status = 201, description = "created", body = Dataset)))]
pub async fn create_dataset(
    State(state): State<AppState>,
    who: Who,
    ApiJson(new): ApiJson<NewDataset>,
) -> Result<(StatusCode, Json<Dataset>), ApiError> {
    require(&who.caller, Needs::DataOwner(registry::organisation_id(&state.pool, &new.owner).await?))?;
    Ok((StatusCode::CREATED, Json(datasets::create(&state.pool, &new, &actor(&who)).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    datastream_id: i64,
}

/// Puts a datastream into a dataset (both of the caller's organisation).
#[utoipa::path(post, operation_id = "admin_assign_datastream", path = "/admin/datasets/{id}/datastreams", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "dataset id")),
    request_body = Assignment,
    responses((status = 204, description = "the datastream belongs to the dataset")))]
pub async fn assign_datastream(
    State(state): State<AppState>,
    who: Who,
    PathId(dataset): PathId,
    ApiJson(assignment): ApiJson<Assignment>,
) -> Result<StatusCode, ApiError> {
    let owner = datasets::get(&state.pool, dataset).await?.owner_org_id;
    require(&who.caller, Needs::DataOwner(owner))?;
    datasets::assign(&state.pool, dataset, DatastreamId(assignment.datastream_id), &actor(&who)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, operation_id = "admin_create_grant", path = "/admin/grants", tag = "admin", security(("bearer" = [])),
    request_body = NewGrant,
    responses((status = 201, description = "created", body = GrantTerms)))]
pub async fn create_grant(
    State(state): State<AppState>,
    who: Who,
    ApiJson(new): ApiJson<NewGrant>,
) -> Result<(StatusCode, Json<GrantTerms>), ApiError> {
    let owner = datasets::get(&state.pool, new.dataset_id).await?.owner_org_id;
    require(&who.caller, Needs::DataOwner(owner))?;
    Ok((StatusCode::CREATED, Json(grants::create(&state.pool, &new, &actor(&who)).await?)))
}

#[utoipa::path(delete, operation_id = "admin_revoke_grant", path = "/admin/grants/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "grant id")),
    responses((status = 204, description = "revoked")))]
pub async fn revoke_grant(
    State(state): State<AppState>,
    who: Who,
    PathId(grant): PathId,
) -> Result<StatusCode, ApiError> {
    let dataset = grants::get(&state.pool, grant).await?.dataset_id;
    require(&who.caller, Needs::DataOwner(datasets::get(&state.pool, dataset).await?.owner_org_id))?;
    grants::revoke(&state.pool, grant, &actor(&who)).await?;
    Ok(StatusCode::NO_CONTENT)
}
