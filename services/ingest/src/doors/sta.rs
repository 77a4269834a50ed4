//! SensorThings create, what FROST-fed connectors send:
//! `POST /sta/v1.1/Observations` (the body names its Datastream),
//! `POST /sta/v1.1/Datastreams({id})/Observations` and the dataArray
//! extension's `POST /sta/v1.1/CreateObservations`. The JSON is read by
//! [`crate::sta`]; each datastream's readings go to the pipeline as one
//! delivery. `201` once Kafka confirmed: a single create with `Location`
//! (`/sta/v1.1/Observations('{datastream}-{µs}')`, the id the read side
//! gives the stored observation), `CreateObservations` as FROST answers it, a
//! JSON array with the self link of each row or `"error <reason>"`.
//!
//! Only the owner organisation's writer roles (or a supplier under a supply
//! grant) write: an unknown datastream is `404`, any other writer `403`. A
//! single observation whose result is not a number or a boolean is a dead
//! letter (`non_numeric_value`) and answered `400`: nothing was stored.

use axum::body::Body as HttpBody;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use hoheit_domain::door::{Door, Receipt};
use hoheit_domain::{DatastreamId, Micros};

use super::{DoorError, Doors};
use crate::inbound::{Body, Inbound, Target, Writer};
use crate::sta::{self, Group};

pub fn routes() -> Router<Doors> {
    Router::new()
        .route("/sta/v1.1/Observations", post(observations))
        .route("/sta/v1.1/CreateObservations", post(create_observations))
        .route("/sta/v1.1/{*resource}", post(other))
}

async fn observations(State(doors): State<Doors>, headers: HeaderMap, body: HttpBody) -> Response {
    created(create(doors, &headers, body, None).await)
}

/// `Datastreams({id})/Observations`; any other path cannot be created in.
async fn other(
    State(doors): State<Doors>,
    Path(resource): Path<String>,
    headers: HeaderMap,
    body: HttpBody,
) -> Response {
    match datastream_of(&resource) {
        Some(id) => created(create(doors, &headers, body, Some(id)).await),
        None => DoorError::MethodNotAllowed {
            detail: format!(
                "SensorThings create is supported for Observations only (POST Observations, \
                 Datastreams({{id}})/Observations or CreateObservations), not for {resource:?}: \
                 things and datastreams are registered through /v1/admin"
            ),
            allow: "GET",
        }
        .into_response(),
    }
}

/// The datastream of `Datastreams({id})/Observations` (a trailing `/` allowed).
fn datastream_of(resource: &str) -> Option<DatastreamId> {
    let topic = format!("p/{}", resource.trim_end_matches('/'));
    sta::create_topic("p", &topic)
}

fn created(answer: Result<(DatastreamId, Micros), DoorError>) -> Response {
    match answer {
        Ok((datastream, time)) => {
            let mut response = StatusCode::CREATED.into_response();
            if let Ok(location) = HeaderValue::from_str(&sta::observation_path(datastream, time)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Err(error) => error.into_response(),
    }
}

/// Checks and delivers one Observation; its datastream and time name it.
async fn create(
    doors: Doors,
    headers: &HeaderMap,
    body: HttpBody,
    datastream: Option<DatastreamId>,
) -> Result<(DatastreamId, Micros), DoorError> {
    let (writer, payload) = admitted_body(&doors, headers, body).await?;
    let observation = sta::observation(&payload, datastream, Micros::now()).map_err(DoorError::BadRequest)?;
    doors.admit_datastream(&writer, observation.datastream).await?;
    let receipt = deliver(&doors, &writer, observation.datastream, observation.decoded, payload).await?;
    if receipt.accepted == 0 {
        let first = receipt.rejections.into_iter().next();
        return Err(DoorError::Rejected {
            code: first.as_ref().map_or_else(|| "rejected".to_owned(), |r| r.code.clone()),
            detail: first.map_or_else(
                || "the observation was rejected; see your dead letters".to_owned(),
                |r| format!("{} (nothing was stored; the dead letter has the code {})", r.reason, r.code),
            ),
        });
    }
    Ok((observation.datastream, observation.time))
}

/// `CreateObservations`: checks every datastream first (a refusal stores
/// nothing), then delivers each datastream's rows.
async fn create_observations(State(doors): State<Doors>, headers: HeaderMap, body: HttpBody) -> Response {
    let answer = async {
        let (writer, payload) = admitted_body(&doors, &headers, body).await?;
        let groups = sta::data_array(&payload, Micros::now(), doors.max_readings()).map_err(DoorError::BadRequest)?;
        let rows = groups.last().map_or(0, |g| g.rows.end);
        let mut links = vec![String::new(); rows];
        let mut known = Vec::with_capacity(groups.len());
        for group in &groups {
            match doors.admit_datastream(&writer, group.datastream).await {
                Ok(()) => known.push(true),
                Err(DoorError::NotFound(reason)) => {
                    links[group.rows.clone()].fill(format!("error {reason}"));
                    known.push(false);
                }
                Err(other) => return Err(other),
            }
        }
        for (group, known) in groups.into_iter().zip(known) {
            if known && !group.rows.is_empty() {
                let rows = group.rows.clone();
                let receipt =
                    deliver(&doors, &writer, group.datastream, group.decoded.clone(), payload.clone()).await?;
                links[rows].clone_from_slice(&row_links(&group, &receipt));
            }
        }
        Ok(links)
    };
    match answer.await {
        Ok(links) => (StatusCode::CREATED, Json(links)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// Each row of `group`: its self link, or `"error <reason>"` as FROST writes a failed row.
fn row_links(group: &Group, receipt: &Receipt) -> Vec<String> {
    let first = group.rows.start;
    let mut links = vec!["error the observation was rejected; see your dead letters".to_owned(); group.rows.len()];
    for reading in &group.decoded.readings {
        if let (Some(time), Some(link)) = (reading.time, links.get_mut(reading.index - first)) {
            *link = sta::observation_path(group.datastream, time);
        }
    }
    for rejection in &receipt.rejections {
        let error = format!("error {}: {}", rejection.code, rejection.reason);
        match rejection.index.and_then(|i| i.checked_sub(first)) {
            Some(row) => {
                if let Some(link) = links.get_mut(row) {
                    *link = error;
                }
            }
            None => links.fill(error.clone()),
        }
    }
    links
}

/// The writer (`401`), its rate (`429`), the content type (`415`) and the
/// body (`413`).
async fn admitted_body(doors: &Doors, headers: &HeaderMap, body: HttpBody) -> Result<(Writer, Bytes), DoorError> {
    let writer = doors.writer(headers).await?;
    doors.take_rate(&super::credential(&writer))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    if let Some(other) = content_type.filter(|t| t != "application/json") {
        return Err(DoorError::UnsupportedMediaType(format!(
            "content type {other:?} is not accepted here; SensorThings entities are application/json"
        )));
    }
    Ok((writer, doors.body(body).await?))
}

async fn deliver(
    doors: &Doors,
    writer: &Writer,
    datastream: DatastreamId,
    decoded: crate::decode::Decoded,
    payload: Bytes,
) -> Result<Receipt, DoorError> {
    doors
        .deliver(Inbound {
            door: Door::Sta,
            target: Target::Datastream(datastream),
            body: Body::Decoded(decoded),
            payload,
            writer: Some(writer.clone()),
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoheit_domain::door::ReceiptRejection;

    #[test]
    fn only_a_datastreams_observations_can_be_created_in() {
        assert_eq!(datastream_of("Datastreams(5)/Observations"), Some(DatastreamId(5)));
        assert_eq!(datastream_of("Datastreams(5)/Observations/"), Some(DatastreamId(5)));
        assert_eq!(datastream_of("Things(5)/Observations"), None);
        assert_eq!(datastream_of("Things"), None);
    }

    #[test]
    fn each_row_is_its_link_or_an_error_as_frost_writes_it() {
        let body = br#"[{"Datastream": {"@iot.id": 3}, "components": ["phenomenonTime", "result"],
            "dataArray": [["1970-01-01T00:00:00.000001Z", 1], ["1970-01-01T00:00:00.000002Z", "x"], ["1970-01-01T00:00:00.000003Z", 3]]}]"#;
        let group = sta::data_array(body, Micros(0), 10).unwrap().remove(0);
        let receipt = Receipt {
            accepted: 1,
            rejected: 2,
            rejections: vec![
                ReceiptRejection { index: Some(1), code: "non_numeric_value".into(), reason: "text".into() },
                ReceiptRejection { index: Some(2), code: "time_out_of_range".into(), reason: "old".into() },
            ],
        };
        assert_eq!(
            row_links(&group, &receipt),
            ["/sta/v1.1/Observations('3-1')", "error non_numeric_value: text", "error time_out_of_range: old"]
        );
    }
}
