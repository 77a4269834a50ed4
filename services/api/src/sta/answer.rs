//! Answering a resolved SensorThings request, in three steps: [`Answer::read`]
//! (the page of entities and their expansions; every read of observations
//! decided and its grants charged by the access gate before its query runs),
//! [`Answer::audit`] (the gate writes the audit records) and [`Answer::write`]
//! (`render::Writer::respond`: the entity, property, reference or page with
//! `@iot.count` and `@iot.nextLink`). A response is bounded in entities before any query runs
//! and again while it is built.

use std::collections::HashMap;

use hoheit_domain::policy::ReadRequest;
use hoheit_domain::DatastreamId;

use super::fetch::{Fetched, Parents, Query};
use super::model::Entity;
use super::options::{Expand, Options, MAX_ENTITIES};
use super::path::{not_found, Target};
use super::render::Writer;
use super::scope::{read_request, Scope};
use super::sql::{Reach, View};
use crate::access::ObservationReads;
use crate::error::ApiError;
use crate::AppState;

/// Added to the reason when the policy denies a read of one datastream whose time was not bounded.
const TIME_HINT: &str = "SensorThings: restrict the time with $filter, e.g. phenomenonTime ge 2026-11-01T00:00:00Z";

/// One request's answer while it is built.
pub struct Answer<'a> {
    state: &'a AppState,
    scope: &'a Scope<'a>,
    reads: ObservationReads<'a>,
    writer: Writer,
    /// Entities fetched so far; each is written at least once, so this never
    /// passes [`MAX_ENTITIES`] in a response that keeps the bound.
    fetched: u64,
}

/// What [`Answer::read`] found.
pub struct Page {
    pub rows: Vec<Fetched>,
    /// The page size the bound allowed.
    pub size: i64,
    /// Whether a next page follows.
    pub more: bool,
    /// `@iot.count`, when asked for.
    pub count: Option<i64>,
}

/// A response beyond [`MAX_ENTITIES`], found while building it (the bound
/// checked before building, `Options::page_size`, normally prevents this).
fn too_many_entities() -> ApiError {
    ApiError::BadRequest(format!(
        "the response would hold more than {MAX_ENTITIES} entities; lower $top inside $expand or expand fewer levels"
    ))
}

impl<'a> Answer<'a> {
    pub fn new(state: &'a AppState, scope: &'a Scope<'a>, reads: ObservationReads<'a>, base: String) -> Self {
        Answer { state, scope, reads, writer: Writer { base }, fetched: 0 }
    }

    /// Reads the page `target` and `options` ask for, with its expansions.
    pub async fn read(&mut self, target: &Target, options: &Options) -> Result<Page, ApiError> {
        let top = if target.single { 1 } else { options.top() };
        // The bound of the response, before any query: pages small enough
        // that the expansion cannot pass it, or 400 if one entity can.
        let size = options.page_size(target.entity, top).map_err(ApiError::BadRequest)?;
        let request = read_request(options);
        let view = self.admit(target, options, &request).await?;
        let query = Query { entity: target.entity, view: &view, conditions: &target.conditions, options };
        let mut rows = query.fetch(&self.state.pool, None, size + 1).await?;
        // `$top=0` asks for the count alone: no next page to follow.
        let more = size > 0 && rows.len() as i64 > size;
        rows.truncate(size as usize);
        self.fetched += rows.len() as u64;
        let count = if options.count && !target.single { Some(query.count(&self.state.pool).await?) } else { None };
        self.expand(target.entity, &mut rows, &options.expand, &request).await?;
        if target.entity == Entity::Observations {
            for row in &rows {
                if let Some(ds) = row.keys.get("datastream_id") {
                    self.reads.observation_returned(DatastreamId(*ds), &request);
                }
            }
            self.reads.answered(rows.len(), &request);
        }
        Ok(Page { rows, size, more, count })
    }

    /// The view of the target's query, its reads of observations decided
    /// and their grants charged before it runs.
    async fn admit(&mut self, target: &Target, options: &Options, request: &ReadRequest) -> Result<View, ApiError> {
        let mut view = self.scope.of(target.entity, Some(request));
        // Observations of one datastream, addressed by path: the gate decides and
        // explains a denial (403 with the reason), as on Hoheit's own API.
        if let Some(datastream) = target.observed_datastream() {
            if !self.scope.shows(datastream.0) {
                return Err(not_found(target));
            }
            let unbounded = options.filter.is_none() || request.from.timestamp() < 0;
            self.reads.authorize_path(self.state, datastream, *request).await.map_err(|e| match e {
                ApiError::Denied { reason, hint: None } if unbounded => {
                    ApiError::Denied { reason, hint: Some(TIME_HINT) }
                }
                other => other,
            })?;
            view.readable = Reach::Ids(vec![datastream.0]);
        }
        self.reads.admit(self.state, &view.readable, request).await?;
        Ok(view)
    }

    /// Fills the `$expand`ed navigations of `rows`, recursively.
    fn expand<'s>(
        &'s mut self,
        entity: Entity,
        rows: &'s mut [Fetched],
        expands: &'s [Expand],
        outer: &'s ReadRequest,
    ) -> futures::future::BoxFuture<'s, Result<(), ApiError>> {
        Box::pin(async move {
            for expand in expands {
                let Some(nav) = entity.navigation(&expand.navigation) else { continue };
                let mut keys: Vec<i64> = rows.iter().filter_map(|r| r.keys.get(nav.source_column).copied()).collect();
                keys.sort_unstable();
                keys.dedup();
                let request = if nav.target == Entity::Observations { read_request(&expand.options) } else { *outer };
                let view = self.scope.of(nav.target, Some(&request));
                self.reads.admit(self.state, &view.readable, &request).await?;
                let limit = if nav.single { 1 } else { expand.options.top() };
                let mut children = if keys.is_empty() {
                    Vec::new()
                } else {
                    let query = Query { entity: nav.target, view: &view, conditions: &[], options: &expand.options };
                    let left = MAX_ENTITIES.saturating_sub(self.fetched);
                    query
                        .fetch(&self.state.pool, Some(Parents { column: nav.target_column, keys, left }), limit)
                        .await?
                };
                self.fetched += children.len() as u64;
                if self.fetched > MAX_ENTITIES {
                    return Err(too_many_entities());
                }
                self.expand(nav.target, &mut children, &expand.options.expand, &request).await?;
                if nav.target == Entity::Observations {
                    for child in &children {
                        if let Some(ds) = child.keys.get("datastream_id") {
                            self.reads.observation_returned(DatastreamId(*ds), &request);
                        }
                    }
                }
                // Each parent key's navigation, written once (its one entity, or the array
                // of its children), and the entities it writes.
                let mut by_parent: HashMap<i64, (Vec<u8>, u64)> = HashMap::new();
                for child in children {
                    let (text, entities) = by_parent.entry(child.parent.unwrap_or_default()).or_default();
                    *entities += child.entities;
                    if !nav.single {
                        text.push(if text.is_empty() { b'[' } else { b',' });
                    }
                    self.writer.render_into(text, nav.target, child, &expand.options);
                }
                if !nav.single {
                    by_parent.values_mut().for_each(|(text, _)| text.push(b']'));
                }
                // Every parent gets its own copy: count the copies before making them.
                let found = |row: &Fetched| row.keys.get(nav.source_column).and_then(|k| by_parent.get(k));
                let written: u64 = rows.iter().map(|r| r.entities + found(r).map_or(0, |(_, n)| *n)).sum();
                if written > MAX_ENTITIES {
                    return Err(too_many_entities());
                }
                let none: &[u8] = if nav.single { b"null" } else { b"[]" };
                for row in rows.iter_mut() {
                    let (text, entities) = found(row).map_or((none, 0), |(text, n)| (text.as_slice(), *n));
                    row.entities += entities;
                    row.expanded.push((nav.name, text.to_vec()));
                }
            }
            Ok(())
        })
    }

    /// Writes the audit records of the reads (nothing has left yet); then
    /// the response can be written.
    pub async fn audit(self) -> Result<Writer, ApiError> {
        self.reads.finish(self.state).await?;
        Ok(self.writer)
    }
}
