//! SensorThings create as the API documents and serves it: `POST`s below
//! `/sta/v1.1` are forwarded to ingest's SensorThings door (see
//! `crate::forward`), which decides who may write and answers once Kafka
//! confirmed; its path-absolute links (`Location`, `CreateObservations`' self
//! links) are made absolute with the public base here. Updates and deletes
//! are not supported: readings are immutable.

use axum::body::Body;
use axum::extract::{OriginalUri, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::problem;
use crate::openapi::ProblemDoc;
use crate::AppState;

/// Creates observations (SensorThings create, what FROST-fed connectors
/// send): `Observations` with the Datastream in the body
/// (`{"result": 21.5, "phenomenonTime": "…", "Datastream": {"@iot.id": 5}}`),
/// `Datastreams({id})/Observations`, or the dataArray extension's
/// `CreateObservations` (`[{"Datastream": {"@iot.id": 5}, "components":
/// ["phenomenonTime", "result"], "dataArray": [[…], …]}]`). The time is the
/// `phenomenonTime` (an interval's start), else the `resultTime`, else the
/// time received; the `result` a number or a boolean (stored as 1 or 0).
/// Needs an API key of a writer role of the datastream's organisation (or of
/// a supplier under a supply grant). `201` once Kafka confirmed: with the
/// `Location` of the observation (its id `'{datastream}-{µs}'`), for
/// `CreateObservations` a JSON array with each row's self link or
/// `"error <reason>"`. Other entities cannot be created here.
#[utoipa::path(post, operation_id = "sta_create", path = "/sta/v1.1/{*resource}", tag = "sensorthings",
    security(("bearer" = [])),
    params(("resource" = String, Path, description = "`Observations`, `Datastreams({id})/Observations` or `CreateObservations`")),
    request_body(description = "an Observation, or for CreateObservations an array of dataArray documents",
        content((serde_json::Value = "application/json"))),
    responses(
        (status = 201, description = "stored once (`Location`: the observation); CreateObservations: each row's self link or \"error <reason>\"", body = Vec<String>),
        (status = 400, description = "not an Observation, or a result that is not a number or a boolean (code non_numeric_value: a dead letter, nothing stored)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "no valid API key", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "a reader key, or another organisation's datastream (code: read_only_role, foreign_organisation, …)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "no such datastream", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 405, description = "only observations can be created", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 413, description = "beyond the payload limit", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 415, description = "not application/json", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "over the key's request rate (Retry-After)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "Kafka is away: nothing was accepted (Retry-After)", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn create(State(state): State<AppState>, OriginalUri(uri): OriginalUri, request: Request) -> Response {
    let answer = state.ingest.forward(&uri, request).await;
    absolute_links(&state.public_base.to_string(), answer).await
}

/// Ingest's path-absolute links, absolute with the public base.
async fn absolute_links(base: &str, response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let absolute = |link: &str| if link.starts_with('/') { format!("{base}{link}") } else { link.to_owned() };
    if let Some(location) = parts.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) {
        if let Ok(value) = HeaderValue::from_str(&absolute(location)) {
            parts.headers.insert(header::LOCATION, value);
        }
    }
    if parts.status != StatusCode::CREATED {
        return Response::from_parts(parts, body);
    }
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let body = match serde_json::from_slice::<Vec<String>>(&bytes) {
        Ok(links) => {
            let links: Vec<String> = links.iter().map(|l| absolute(l)).collect();
            Body::from(serde_json::to_vec(&links).unwrap_or_default())
        }
        Err(_) => Body::from(bytes),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, body)
}

/// Replacing an entity (`PUT`) is not supported: readings are immutable.
#[utoipa::path(put, operation_id = "sta_replace", path = "/sta/v1.1/{*resource}", tag = "sensorthings",
    security(("bearer" = [])), params(("resource" = String, Path)),
    responses((status = 405, description = "updates and deletes are not supported (with `Allow`)", body = ProblemDoc, content_type = "application/problem+json")))]
pub async fn replace(Path(resource): Path<String>) -> Response {
    unsupported(&resource)
}

/// Updating an entity (`PATCH`) is not supported: readings are immutable.
#[utoipa::path(patch, operation_id = "sta_update", path = "/sta/v1.1/{*resource}", tag = "sensorthings",
    security(("bearer" = [])), params(("resource" = String, Path)),
    responses((status = 405, description = "updates and deletes are not supported (with `Allow`)", body = ProblemDoc, content_type = "application/problem+json")))]
pub async fn update(Path(resource): Path<String>) -> Response {
    unsupported(&resource)
}

/// Deleting an entity is not supported: readings are immutable (a dataset's
/// owner erases data through `/v1/datasets/{id}`).
#[utoipa::path(delete, operation_id = "sta_delete", path = "/sta/v1.1/{*resource}", tag = "sensorthings",
    security(("bearer" = [])), params(("resource" = String, Path)),
    responses((status = 405, description = "updates and deletes are not supported (with `Allow`)", body = ProblemDoc, content_type = "application/problem+json")))]
pub async fn delete(Path(resource): Path<String>) -> Response {
    unsupported(&resource)
}

fn unsupported(resource: &str) -> Response {
    let mut response = problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "SensorThings updates and deletes are not supported: readings are immutable; \
         create observations with POST (Observations, Datastreams({id})/Observations, CreateObservations), \
         and register things and datastreams through /v1/admin"
            .into(),
    );
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allowed(resource)));
    response.into_response()
}

/// The methods a SensorThings resource path supports.
fn allowed(resource: &str) -> &'static str {
    let resource = resource.trim_end_matches('/');
    if resource == "CreateObservations" {
        "POST"
    } else if resource == "Observations" || resource.ends_with(")/Observations") {
        "GET, POST"
    } else {
        "GET"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collection_of_observations_allows_post_and_the_rest_get() {
        assert_eq!(allowed("Observations"), "GET, POST");
        assert_eq!(allowed("Datastreams(5)/Observations"), "GET, POST");
        assert_eq!(allowed("CreateObservations"), "POST");
        assert_eq!(allowed("Observations('5-17')"), "GET");
        assert_eq!(allowed("Things(1)"), "GET");
    }

    #[tokio::test]
    async fn ingest_links_become_absolute() {
        let response = (
            StatusCode::CREATED,
            [(header::LOCATION, "/sta/v1.1/Observations('5-17')")],
            r#"["/sta/v1.1/Observations('5-18')", "error no Datastream 9 is registered"]"#,
        )
            .into_response();
        let response = absolute_links("https://daten.example", response).await;
        assert_eq!(response.headers()[header::LOCATION], "https://daten.example/sta/v1.1/Observations('5-17')");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let links: Vec<String> = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            links,
            ["https://daten.example/sta/v1.1/Observations('5-18')", "error no Datastream 9 is registered"]
        );
    }
}
