//! `POST /v1/dead-letters/replay`: an organisation's dead letters through the
//! pipeline again, after its owner fixed the registry. Each selected dead
//! letter's payload is delivered as it first came (its door, its topic, the
//! raw bytes), marked as a replay: readings that now pass go to Kafka like
//! any others (stored once: the writer ignores a reading it already has),
//! what still fails comes back in the receipt instead of becoming a new dead
//! letter. Once Kafka confirmed every delivery, the rows are marked (when,
//! result, code) and the replay is audited, in one transaction; while Kafka
//! is away: `503`, nothing marked.
//!
//! Only the organisation's admins and data owners (API keys) and the
//! operator (its token; the API and `hoheit-admin` call here) may replay.

use std::str::FromStr;

use axum::body::Body as HttpBody;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use futures::stream::{self, StreamExt, TryStreamExt};
use hoheit_domain::door::{Door, Receipt};
use hoheit_domain::policy::Caller;
use hoheit_domain::replay::{ReplayFilter, ReplayReport, ReplayRequest, ReplayResult, ReplayedLetter};
use hoheit_domain::Slug;
use hoheit_store::audit::{Actor, AdminChange};
use hoheit_store::dead_letters::{self, ReplayCandidate, ReplayMark, Selection};
use serde::Serialize;

use super::{DoorError, Doors};
use crate::inbound::{Body, Inbound, Target};

/// Deliveries of one replay in the pipeline at once.
const IN_FLIGHT: usize = 64;

pub fn routes() -> Router<Doors> {
    Router::new().route("/v1/dead-letters/replay", post(replay))
}

async fn replay(State(doors): State<Doors>, headers: HeaderMap, body: HttpBody) -> Response {
    let answer = async {
        let writer = doors.writer(&headers).await?;
        doors.take_rate(&super::credential(&writer))?;
        let body = doors.body(body).await?;
        let request: ReplayRequest = serde_json::from_slice(&body)
            .map_err(|e| DoorError::BadRequest(format!("the body is not a replay request: {e}")))?;
        let filter = admit(&doors, &writer.caller, &request).await?;
        let candidates = select(&doors, &filter).await?;
        let ids: Vec<i64> = candidates.iter().map(|c| c.id).collect();
        let receipts = resend(&doors, candidates).await?;
        let report = mark(&doors, &writer.caller, request_id(&headers), &filter, &ids, &receipts).await?;
        Ok::<_, DoorError>(report)
    };
    match answer.await {
        Ok(report) => Json(report).into_response(),
        Err(error) => error.into_response(),
    }
}

/// The request's filter, if the caller may replay that organisation's dead
/// letters: `403` unless it is the operator or one of its admins or data owners.
async fn admit(doors: &Doors, caller: &Caller, request: &ReplayRequest) -> Result<ReplayFilter, DoorError> {
    let own = match caller {
        Caller::Principal(p) => {
            Some(Slug::parse("org", &p.org_slug).map_err(|e| DoorError::BadRequest(e.to_string()))?)
        }
        _ => None,
    };
    let filter = request.filter(own.as_ref()).map_err(|e| DoorError::BadRequest(e.to_string()))?;
    let org_id = doors.org_id(&filter.org).await?;
    if !caller.owns_data_of(org_id) {
        let who = match caller {
            Caller::Principal(p) if p.org_slug != filter.org.as_str() => {
                format!("you belong to {}, not {}", p.org_slug, filter.org)
            }
            Caller::Principal(p) => format!("your role is {}", p.role.as_str()),
            _ => "you are not signed in".to_owned(),
        };
        return Err(DoorError::NotDataOwner(format!(
            "only admins and data owners of {} (and the operator) may replay its dead letters; {who}",
            filter.org
        )));
    }
    Ok(filter)
}

async fn select(doors: &Doors, filter: &ReplayFilter) -> Result<Vec<ReplayCandidate>, DoorError> {
    let selection = Selection {
        org: Some(&filter.org),
        reason: filter.reason.as_ref(),
        thing_topic: filter.thing.as_ref().map(|thing| doors.shared.scheme.thing_topic(&filter.org, thing)),
        from: filter.from,
        to: filter.to,
    };
    dead_letters::replay_candidates(&doors.shared.pool, &selection, filter.include_replayed, filter.limit)
        .await
        .map_err(|_| DoorError::Unavailable("the dead letters cannot be read; nothing was replayed".into()))
}

/// Delivers every candidate again, as it first came; all or nothing
/// confirmed (`503` when Kafka does not confirm one).
async fn resend(doors: &Doors, candidates: Vec<ReplayCandidate>) -> Result<Vec<Receipt>, DoorError> {
    let inbounds: Vec<Inbound> = candidates
        .into_iter()
        .map(|candidate| Inbound {
            door: Door::from_str(&candidate.door).unwrap_or(Door::Mqtt),
            target: Target::Topic(candidate.mqtt_topic),
            body: Body::Sniff,
            payload: candidate.payload.into(),
            // The caller may replay the organisation's dead letters, and a
            // dead letter only ever addresses its own organisation.
            writer: None,
        })
        .collect();
    let replay = doors.next_replay();
    stream::iter(inbounds)
        .map(|inbound| {
            let doors = doors.clone();
            async move { doors.deliver_replay(inbound, replay).await }
        })
        .buffered(IN_FLIGHT)
        .try_collect()
        .await
        .map_err(|error| match error {
            DoorError::Unavailable(_) => DoorError::Unavailable(
                "Kafka is not confirming; no dead letter was marked as replayed, retry later".into(),
            ),
            other => other,
        })
}

/// The replay as its audit record shows it.
#[derive(Serialize)]
struct Audited<'a> {
    filter: &'a ReplayFilter,
    selected: usize,
    stored: usize,
    still_rejected: usize,
    readings_stored: usize,
}

/// Marks the rows with their results and audits the replay (one transaction).
async fn mark(
    doors: &Doors,
    caller: &Caller,
    request_id: String,
    filter: &ReplayFilter,
    ids: &[i64],
    receipts: &[Receipt],
) -> Result<ReplayReport, DoorError> {
    let letters: Vec<ReplayedLetter> = ids
        .iter()
        .zip(receipts)
        .map(|(&id, receipt)| {
            let result = ReplayResult::of(receipt.accepted, receipt.rejected);
            ReplayedLetter {
                id,
                result,
                reason_code: match result {
                    ReplayResult::Stored => None,
                    _ => receipt.rejections.first().map(|r| r.code.clone()),
                },
            }
        })
        .collect();
    let readings = receipts.iter().map(|r| r.accepted).sum();
    let report = ReplayReport::new(letters, readings);
    let marks: Vec<ReplayMark> = report
        .dead_letters
        .iter()
        .map(|l| ReplayMark { id: l.id, result: l.result, reason_code: l.reason_code.clone() })
        .collect();
    let org_id = doors.org_id(&filter.org).await?;
    let audited = Audited {
        filter,
        selected: report.selected,
        stored: report.stored,
        still_rejected: report.still_rejected,
        readings_stored: report.readings_stored,
    };
    let change = AdminChange::new("dead_letters.replay", "organisation", org_id, org_id)
        .states(None::<&Audited>, Some(&audited));
    dead_letters::record_replay(&doors.shared.pool, &marks, &actor(caller, request_id), &change).await.map_err(
        |_| {
            DoorError::Unavailable(
                "the replay's results could not be recorded; its readings are stored (once), replay again to mark them"
                    .into(),
            )
        },
    )?;
    Ok(report)
}

fn actor(caller: &Caller, request_id: String) -> Actor {
    match caller {
        Caller::Principal(p) => {
            Actor { request_id, principal_id: Some(p.id), principal_name: p.name.clone(), org_id: Some(p.org_id) }
        }
        _ => Actor { request_id, principal_id: None, principal_name: "operator".into(), org_id: None },
    }
}

/// The API's request id when it forwarded the request, else one of ingest's.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map_or_else(|| format!("ingest-replay-{}", Utc::now().timestamp_micros()), str::to_owned)
}
