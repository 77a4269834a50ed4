//! Registry administration: organisations, things and datastreams.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hoheit_core::registry::{self, Datastream, NewDatastream, NewOrganisation, NewThing, Organisation, Thing};

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::AppState;

pub async fn create_organisation(
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewOrganisation>,
) -> Result<(StatusCode, Json<Organisation>), ApiError> {
    Ok((StatusCode::CREATED, Json(registry::create_organisation(&state.pool, &new).await?)))
}

pub async fn create_thing(
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewThing>,
) -> Result<(StatusCode, Json<Thing>), ApiError> {
    Ok((StatusCode::CREATED, Json(registry::create_thing(&state.pool, &new).await?)))
}

pub async fn create_datastream(
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewDatastream>,
) -> Result<(StatusCode, Json<Datastream>), ApiError> {
    Ok((StatusCode::CREATED, Json(registry::create_datastream(&state.pool, &new).await?)))
}
