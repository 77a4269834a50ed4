//! The organisations by name: public, as the transparency report and the
//! open-data catalogue already name them, so that a listing showing an
//! organisation's id or slug can show its name.

use axum::extract::State;
use axum::Json;
use hoheit_store::registry;
use serde::Serialize;

use crate::error::ApiError;
use crate::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct OrganisationName {
    id: i64,
    slug: String,
    name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OrganisationNames {
    organisations: Vec<OrganisationName>,
}

/// Every organisation's id, slug and name; no key needed.
#[utoipa::path(get, operation_id = "organisations_list", path = "/organisations", tag = "datasets", security((), ("bearer" = [])),
    responses((status = 200, description = "the organisations", body = OrganisationNames)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<OrganisationNames>, ApiError> {
    let organisations = registry::list_organisations(&state.pool)
        .await?
        .into_iter()
        .map(|o| OrganisationName { id: o.id, slug: o.slug.as_str().to_owned(), name: o.name })
        .collect();
    Ok(Json(OrganisationNames { organisations }))
}
