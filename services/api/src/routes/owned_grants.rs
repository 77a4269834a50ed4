//! The grants on an organisation's datasets in one answer (`/v1/grants`): the
//! data owner's view lists every dataset with its grants, and with one request
//! per dataset that view cost as many round trips as the town has datasets.

use axum::extract::State;
use axum::Json;
use hoheit_domain::policy::GrantTerms;
use hoheit_store::grants;
use serde::{Deserialize, Serialize};

use crate::access::owned_grants_scope;
use crate::auth::Who;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OwnedGrantsQuery {
    /// The owning organisation's slug (a principal: its own, the default; the
    /// operator: any, default every organisation's).
    org: Option<String>,
}

/// Grants on the datasets of an organisation, ordered by dataset, then grant.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OwnedGrants {
    grants: Vec<GrantTerms>,
}

/// Every grant (revoked and expired ones included, as on one dataset's listing) on
/// the datasets an organisation owns: for its admins and data owners, and the operator.
#[utoipa::path(get, operation_id = "owned_grants_list", path = "/grants", tag = "datasets", security(("bearer" = [])),
    params(OwnedGrantsQuery),
    responses((status = 200, description = "the grants on the organisation's datasets", body = OwnedGrants)))]
pub async fn list(
    State(state): State<AppState>,
    who: Who,
    ApiQuery(query): ApiQuery<OwnedGrantsQuery>,
) -> Result<Json<OwnedGrants>, ApiError> {
    let asked = crate::params::org(query.org.as_deref())?;
    let org_id = owned_grants_scope(&state, &who, asked).await?;
    Ok(Json(OwnedGrants { grants: grants::on_datasets_of(&state.pool, org_id).await? }))
}
