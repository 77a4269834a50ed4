//! The access gate: the one place in the API that asks who may see, read or
//! change what. Every read path goes through it: `/v1` reads, SensorThings,
//! live values, exports and open-data downloads.
//!
//! - **Reads** ([`authorize`], [`authorize_datastream`], [`authorize_export`]):
//!   the policy decides (`hoheit_domain::policy`), a grant's own rate is
//!   charged before any query runs, and exactly one audit record is written
//!   per read, allowed or denied; an allowed read leaves with the policy's
//!   [`Release`] and the range it may release, and its data only after
//!   [`ReadPermit::finish`] wrote its record. A denial is answered 403 with the
//!   reason's stable code.
//! - **What a caller may see** without reading ([`CallerView`],
//!   [`dataset_visibility`], [`require_datastream_visible`]): the policy's
//!   [`Visibility`]; listings of latest values are audited through
//!   [`audit_latest_values`].
//! - **SensorThings' reads of observations** span datastreams and datasets:
//!   [`ObservationReads`] charges their grants before each query and writes
//!   one record per dataset at the end.
//! - **The owners' listings** ([`audit_scope`], [`dead_letters_scope`]) and
//!   **administrative permissions** ([`require`]): the operator, an
//!   organisation's admins, its admins and data owners.
//! - **Supply grants a supplier holds** ([`supplier_scope`]): its own.
//! - **Data quality** ([`authorize_quality`], [`quality_scope`]): a
//!   datastream's as a read of its day aggregates, its gaps only with raw
//!   reads; an organisation's list for its admins and data owners.
//! - **Alert rules** ([`authorize_rule`], [`rule_scope`], [`require_rule`]):
//!   a rule is a standing read the policy decides like a read at the rule's
//!   resolution; a principal manages its own rules, an organisation's admins
//!   its organisation's, the operator all.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hoheit_domain::policy::{
    self, Caller, DatasetAccess, Decision, DenyCode, DenyReason, GrantTerms, ReadRequest, Release, Resolution, Role,
    Via, Visibility,
};
use hoheit_domain::{DatastreamId, Slug};
use hoheit_store::alerts;
use hoheit_store::audit::AuditRecord;
use hoheit_store::datasets::{self, Dataset};
use hoheit_store::grant_rate;
use hoheit_store::grants;
use hoheit_store::registry;

use crate::access_cache::AccessSnapshot;
use crate::auth::Who;
use crate::error::ApiError;
use crate::AppState;

// ---- reads ----

/// An allowed read; [`ReadPermit::finish`] records how many rows it returned.
#[must_use = "a permitted read must be finished so that it is audited"]
pub struct ReadPermit {
    record: AuditRecord,
    /// What may leave: the route answers under this rule.
    pub release: Release,
    /// The request as it may be answered (`Release::snap`): the range to query.
    pub range: ReadRequest,
}

impl ReadPermit {
    /// Writes the audit record of the read; the data goes out only if it was written.
    pub async fn finish(mut self, state: &AppState, rows: usize) -> Result<(), ApiError> {
        self.record.rows_returned = rows as i64;
        state.audit.append(self.record).await?;
        Ok(())
    }
}

/// Decides a read of `datastream` (or of the whole dataset when `None`),
/// charges its grant's rate and audits a denial at once.
pub async fn authorize(
    state: &AppState,
    who: &Who,
    dataset: DatasetAccess,
    datastream: Option<DatastreamId>,
    action: &str,
    request: ReadRequest,
) -> Result<ReadPermit, ApiError> {
    let grants = grants_for(state, &who.caller, &dataset).await?;
    decide_read(state, who, &dataset, &grants, datastream, action, request, Utc::now()).await
}

/// The decision of [`authorize`] on access facts and grants already at hand.
#[allow(clippy::too_many_arguments)]
async fn decide_read(
    state: &AppState,
    who: &Who,
    dataset: &DatasetAccess,
    grants: &[GrantTerms],
    datastream: Option<DatastreamId>,
    action: &str,
    request: ReadRequest,
    now: DateTime<Utc>,
) -> Result<ReadPermit, ApiError> {
    let decision = policy::decide(&who.caller, dataset, grants, &request, now);
    let record = read_record(who, dataset, datastream, action, &request);
    admit(state, who, record, decision, &request, now).await
}

/// [`authorize`] for one datastream; with the permit its unit, read in the
/// same query as its access facts (`404` if it does not exist).
pub async fn authorize_datastream(
    state: &AppState,
    who: &Who,
    id: DatastreamId,
    action: &str,
    request: ReadRequest,
) -> Result<(ReadPermit, Option<String>), ApiError> {
    let target = datasets::read_target(&state.pool, id).await?;
    let permit = authorize(state, who, target.access, Some(id), action, request).await?;
    Ok((permit, target.unit))
}

/// Decides an export of the whole `dataset` (`policy::decide_export`: its
/// owner's admins and data owners, the policy's release), audited as one read.
pub async fn authorize_export(state: &AppState, who: &Who, dataset: &Dataset) -> Result<ReadPermit, ApiError> {
    let access = datasets::access(&state.pool, dataset.id).await?;
    let grants = grants_for(state, &who.caller, &access).await?;
    let now = Utc::now();
    let decision = policy::decide_export(&who.caller, &access, &dataset.owner, &grants, now);
    let request = policy::export_request(&access);
    let record = read_record(who, &access, None, "export", &request);
    admit(state, who, record, decision, &request, now).await
}

/// Turns a decision into a permit, or into a 403 whose audit record is written.
async fn admit(
    state: &AppState,
    who: &Who,
    mut record: AuditRecord,
    decision: Decision,
    request: &ReadRequest,
    now: DateTime<Utc>,
) -> Result<ReadPermit, ApiError> {
    match decision {
        Decision::Deny { reason } => {
            metrics::counter!("hoheit_api_policy_denied_total", "action" => record.action.clone()).increment(1);
            record.reason = reason.to_string();
            state.audit.append(record).await?;
            Err(reason.into())
        }
        Decision::Allow { via, release } => {
            if let Via::Grant(grant) = &via {
                charge_grant(state, who, grant).await?;
                record.grant_id = Some(grant.id);
            }
            let range = release.snap(request, now);
            record.range_from = Some(range.from);
            record.range_to = Some(range.to);
            record.allowed = true;
            record.reason = via.describe();
            Ok(ReadPermit { record, release, range })
        }
    }
}

/// Applies a grant's own rate limit: one budget per grant, shared by every
/// key of the grantee and every API replica (`hoheit_store::grant_rate`).
async fn charge_grant(state: &AppState, who: &Who, grant: &GrantTerms) -> Result<(), ApiError> {
    if who.caller.principal().is_none() {
        return Ok(());
    }
    match grant_rate::take(&state.pool, grant.id, grant.rate_per_minute).await? {
        Ok(()) => Ok(()),
        Err(retry_after) => {
            metrics::counter!("hoheit_api_grant_rate_limited_total").increment(1);
            Err(ApiError::RateLimited {
                detail: format!(
                    "grant {} allows {} requests per minute (all keys of the grantee together); retry in {retry_after} s",
                    grant.id, grant.rate_per_minute
                ),
                retry_after,
            })
        }
    }
}

/// Grants the caller's organisation holds on `dataset`.
async fn grants_for(state: &AppState, caller: &Caller, dataset: &DatasetAccess) -> Result<Vec<GrantTerms>, ApiError> {
    match (caller.principal(), dataset.id) {
        (Some(p), Some(dataset_id)) => Ok(grants::held(&state.pool, p.org_id, dataset_id).await?),
        _ => Ok(Vec::new()),
    }
}

/// An allowed read of a datastream's data quality ([`authorize_quality`]).
#[must_use = "a permitted read must be finished so that it is audited"]
pub struct QualityPermit {
    /// The read of its day aggregates: finish it before the answer leaves.
    pub permit: ReadPermit,
    /// Whether its raw timing (gaps, the last reading's time) may leave too:
    /// `Err` with the code a raw read of the same range is denied with.
    pub raw_timing: Result<(), DenyCode>,
}

/// Decides a read of datastream `id`'s data quality over `[from, to)`: `404`
/// if the caller may not see the datastream at all; otherwise a read of its
/// day aggregates (charged and audited like one, `403` with the policy's
/// code when denied), and its raw timing only if a raw read of the same
/// range would be allowed too.
pub async fn authorize_quality(
    state: &AppState,
    who: &Who,
    id: DatastreamId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<QualityPermit, ApiError> {
    let dataset = datasets::access_for_datastream(&state.pool, id).await?;
    let grants = grants_for(state, &who.caller, &dataset).await?;
    let now = Utc::now();
    if !policy::visibility(&who.caller, &dataset, &grants, now).shows_datastreams() {
        return Err(ApiError::NotFound(format!("datastream {id} not found")));
    }
    let request = ReadRequest { resolution: Resolution::Aggregate { interval_secs: DAY_SECS }, from, to };
    let raw = ReadRequest { resolution: Resolution::Raw, ..request };
    let raw_timing = match policy::decide(&who.caller, &dataset, &grants, &raw, now) {
        Decision::Allow { .. } => Ok(()),
        Decision::Deny { reason } => Err(reason.code()),
    };
    let permit = decide_read(state, who, &dataset, &grants, Some(id), "quality", request, now).await?;
    Ok(QualityPermit { permit, raw_timing })
}

/// A day in seconds: the resolution a datastream's quality is read at.
const DAY_SECS: i64 = 86_400;

// ---- audit records ----

/// An audit record of `who` doing `action`, denied and empty until the
/// caller fills in what was read; every audit record of the API starts here.
fn audit_record(who: &Who, action: &str) -> AuditRecord {
    let principal = who.caller.principal();
    AuditRecord {
        at: Utc::now(),
        request_id: who.request_id.0.clone(),
        principal_id: principal.map(|p| p.id),
        principal_name: who.caller.name().to_owned(),
        org_id: principal.map(|p| p.org_id),
        grant_id: None,
        dataset_id: None,
        datastream_id: None,
        action: action.to_owned(),
        range_from: None,
        range_to: None,
        resolution: String::new(),
        rows_returned: 0,
        allowed: false,
        reason: String::new(),
    }
}

/// The record of one read of `dataset` (one of its datastreams, or all of them).
fn read_record(
    who: &Who,
    dataset: &DatasetAccess,
    datastream: Option<DatastreamId>,
    action: &str,
    request: &ReadRequest,
) -> AuditRecord {
    AuditRecord {
        dataset_id: dataset.id,
        datastream_id: datastream.map(|d| d.0),
        range_from: Some(request.from),
        range_to: Some(request.to),
        resolution: request.resolution.to_string(),
        ..audit_record(who, action)
    }
}

/// Audits a read of latest values (`values` of them released, each of a
/// datastream the caller may read raw): one record per listing or live
/// stream, written before the values leave.
pub async fn audit_latest_values(state: &AppState, who: &Who, action: &str, values: usize) -> Result<(), ApiError> {
    let record = AuditRecord {
        resolution: "latest".into(),
        rows_returned: values as i64,
        allowed: true,
        reason: "latest values of the datastreams the caller may read raw".into(),
        ..audit_record(who, action)
    };
    state.audit.append(record).await?;
    Ok(())
}

// ---- what a caller may see ----

/// Which datastreams a query may touch, as the access gate decided it: every
/// one, those named, or those of some datasets and the datasets-less ones of
/// some organisations. The last says the same as the list of their ids
/// without binding 300,000 of them to every query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    All,
    Ids(Vec<i64>),
    Of {
        /// Every datastream of these datasets …
        datasets: Vec<i64>,
        /// … and those in no dataset whose thing belongs to one of these organisations.
        orgs: Vec<i64>,
    },
}

/// What one caller may see and read of every datastream: built for each
/// request on the process's shared access facts ([`crate::access_cache`]),
/// deciding once per dataset, not once per datastream.
pub struct CallerView {
    caller: Arc<Caller>,
    snapshot: Arc<AccessSnapshot>,
    grants: Vec<GrantTerms>,
    now: DateTime<Utc>,
    /// The policy's visibility of each group of the snapshot.
    visibility: Vec<Visibility>,
}

impl CallerView {
    /// The caller's view on the access facts as they are now (one read of their change counter).
    pub async fn load(state: &AppState, caller: &Arc<Caller>) -> Result<Self, ApiError> {
        Ok(Self::on(state.access.fresh(&state.pool).await?, caller))
    }

    /// The caller's view on `snapshot` (no query).
    pub fn on(snapshot: Arc<AccessSnapshot>, caller: &Arc<Caller>) -> Self {
        let grants = match caller.principal() {
            Some(p) => snapshot.grants_held(p.org_id).to_vec(),
            None => Vec::new(),
        };
        let now = Utc::now();
        let visibility =
            snapshot.groups().iter().map(|access| policy::visibility(caller, access, &grants, now)).collect();
        CallerView { caller: caller.clone(), snapshot, grants, now, visibility }
    }

    /// Whether this view lets the caller read raw exactly what `other` did:
    /// the same access facts, and each dataset's raw readability unchanged
    /// (a grant may have expired between the two).
    pub fn reads_raw_as(&self, other: &CallerView) -> bool {
        self.snapshot.version == other.snapshot.version
            && self
                .visibility
                .iter()
                .zip(&other.visibility)
                .all(|(a, b)| a.shows_latest_value() == b.shows_latest_value())
    }

    /// What the caller may see of `datastream` (hidden if it does not exist).
    pub fn visibility(&self, datastream: DatastreamId) -> Visibility {
        self.snapshot.group_of(datastream).map_or(Visibility::Hidden, |group| self.visibility[group])
    }

    /// The datastreams whose latest values this view shows and `now` does not:
    /// what a live stream withdraws when its caller's view changed.
    pub fn latest_values_withdrawn_in(&self, now: &CallerView) -> Vec<i64> {
        if !self.visibility.iter().any(|v| v.shows_latest_value()) {
            return Vec::new();
        }
        self.snapshot
            .datastreams_after(DatastreamId(i64::MIN))
            .filter(|(id, group)| {
                self.visibility[*group].shows_latest_value() && !now.visibility(*id).shows_latest_value()
            })
            .map(|(id, _)| id.0)
            .collect()
    }

    /// Whether the caller may see `datastream`'s metadata.
    pub fn shows(&self, datastream: DatastreamId) -> bool {
        self.visibility(datastream).shows_datastreams()
    }

    /// The access facts of `datastream`'s dataset, if it exists.
    fn access(&self, datastream: DatastreamId) -> Option<&DatasetAccess> {
        self.snapshot.group_of(datastream).map(|group| &self.snapshot.groups()[group])
    }

    /// The dataset `datastream` belongs to, if any.
    pub fn dataset_of(&self, datastream: DatastreamId) -> Option<i64> {
        self.access(datastream).and_then(|a| a.id)
    }

    /// Up to `limit` datastreams after `after` that the caller may see, in id
    /// order, with their visibility.
    pub fn visible_after(&self, after: DatastreamId, limit: usize) -> Vec<(DatastreamId, Visibility)> {
        self.snapshot
            .datastreams_after(after)
            .map(|(id, group)| (id, self.visibility[group]))
            .filter(|(_, visibility)| visibility.shows_datastreams())
            .take(limit)
            .collect()
    }

    /// The datastreams the caller may see (`request`: `None`) or whose
    /// readings the policy lets it read over `request`.
    pub fn reach(&self, request: Option<&ReadRequest>) -> Reach {
        let groups = self.snapshot.groups();
        let included: Vec<bool> = (0..groups.len())
            .map(|group| match request {
                None => self.visibility[group].shows_datastreams(),
                Some(request) => {
                    policy::decide(&self.caller, &groups[group], &self.grants, request, self.now).is_allowed()
                }
            })
            .collect();
        if matches!(*self.caller, Caller::Operator) && included.iter().all(|i| *i) {
            return Reach::All;
        }
        let (mut datasets, mut orgs) = (Vec::new(), Vec::new());
        for (access, _) in groups.iter().zip(&included).filter(|(_, included)| **included) {
            match access.id {
                Some(dataset) => datasets.push(dataset),
                None => orgs.push(access.owner_org_id),
            }
        }
        datasets.sort_unstable();
        orgs.sort_unstable();
        Reach::Of { datasets, orgs }
    }

    fn decide(&self, datastream: DatastreamId, request: &ReadRequest) -> Option<Decision> {
        let dataset = self.access(datastream)?;
        Some(policy::decide(&self.caller, dataset, &self.grants, request, self.now))
    }

    /// The way a read of `datastream` over `request` is allowed, if it is.
    fn via(&self, datastream: DatastreamId, request: &ReadRequest) -> Option<Via> {
        match self.decide(datastream, request)? {
            Decision::Allow { via, .. } => Some(via),
            Decision::Deny { .. } => None,
        }
    }

    /// The grants that let the caller read the datastreams of `reach` over `request`'s range, each once.
    fn grants_used(&self, reach: &Reach, request: &ReadRequest) -> Vec<GrantTerms> {
        let vias: Vec<Via> = match reach {
            Reach::Ids(ids) => ids.iter().filter_map(|id| self.via(DatastreamId(*id), request)).collect(),
            // A reach decided over the groups: the grants of the groups it holds, each once.
            Reach::All | Reach::Of { .. } => self
                .snapshot
                .groups()
                .iter()
                .filter_map(|access| match policy::decide(&self.caller, access, &self.grants, request, self.now) {
                    Decision::Allow { via, .. } => Some(via),
                    Decision::Deny { .. } => None,
                })
                .collect(),
        };
        let mut used: Vec<GrantTerms> = Vec::new();
        for via in vias {
            if let Via::Grant(grant) = via {
                if !used.iter().any(|g| g.id == grant.id) {
                    used.push(grant);
                }
            }
        }
        used
    }
}

/// What the caller may see of the dataset `dataset_id`.
pub async fn dataset_visibility(state: &AppState, caller: &Caller, dataset_id: i64) -> Result<Visibility, ApiError> {
    let access = datasets::access(&state.pool, dataset_id).await?;
    visibility_of(state, caller, &access).await
}

/// What the caller may see of `dataset`, under the grants its organisation holds on it.
async fn visibility_of(state: &AppState, caller: &Caller, dataset: &DatasetAccess) -> Result<Visibility, ApiError> {
    let grants = grants_for(state, caller, dataset).await?;
    Ok(policy::visibility(caller, dataset, &grants, Utc::now()))
}

/// 403 (`not_visible`) unless the caller may see `dataset`.
pub async fn require_dataset_visible(state: &AppState, who: &Who, dataset: &Dataset) -> Result<(), ApiError> {
    if dataset_visibility(state, &who.caller, dataset.id).await?.shows_dataset() {
        return Ok(());
    }
    Err(DenyReason::NotVisible {
        dataset: dataset.slug.clone(),
        classification: dataset.classification,
        datastream: None,
    }
    .into())
}

/// What the caller may see of `datastream`; 403 (`not_visible`) if not even its metadata.
pub async fn require_datastream_visible(
    state: &AppState,
    who: &Who,
    datastream: DatastreamId,
) -> Result<Visibility, ApiError> {
    let dataset = datasets::access_for_datastream(&state.pool, datastream).await?;
    let visibility = visibility_of(state, &who.caller, &dataset).await?;
    if visibility.shows_datastreams() {
        return Ok(visibility);
    }
    Err(DenyReason::NotVisible {
        dataset: dataset.slug,
        classification: dataset.classification,
        datastream: Some(datastream),
    }
    .into())
}

// ---- SensorThings: reads of observations across datastreams ----

/// The reads of observations one SensorThings request makes: one datastream
/// addressed by its path ([`ObservationReads::authorize_path`], decided and
/// explained like `/v1`), and collections and expansions over the caller's
/// view ([`ObservationReads::admit`]). Every grant read under is charged
/// once per request, before the first query that reads under it;
/// [`ObservationReads::finish`] writes one audit record per dataset whose
/// observations were returned or read under a grant.
pub struct ObservationReads<'a> {
    view: &'a CallerView,
    who: &'a Who,
    /// The datastream addressed by path, its permit and the rows its query returned.
    path: Option<(DatastreamId, ReadPermit, usize)>,
    /// Grants whose rate this request was charged.
    charged: HashSet<i64>,
    /// Per dataset, the grant a query read its observations under and the
    /// range: audited with the grant even if no row came back.
    granted: BTreeMap<i64, (GrantTerms, ReadRequest)>,
    /// Observations returned, per datastream, with the range decided.
    returned: BTreeMap<DatastreamId, (usize, ReadRequest)>,
    /// Whether a query returned no observation at all (audited when nothing else is).
    empty: Option<ReadRequest>,
}

/// The action SensorThings' reads of observations are audited as.
const STA_OBSERVATIONS: &str = "sta:observations";

impl<'a> ObservationReads<'a> {
    pub fn new(view: &'a CallerView, who: &'a Who) -> Self {
        ObservationReads {
            view,
            who,
            path: None,
            charged: HashSet::new(),
            granted: BTreeMap::new(),
            returned: BTreeMap::new(),
            empty: None,
        }
    }

    /// Decides a read of the one datastream a path addresses like
    /// [`authorize`] (charging its grant, auditing a denial), on the access
    /// facts and grants the request's view has already loaded.
    pub async fn authorize_path(
        &mut self,
        state: &AppState,
        datastream: DatastreamId,
        request: ReadRequest,
    ) -> Result<(), ApiError> {
        let view = self.view;
        let permit = match view.access(datastream) {
            Some(dataset) => {
                decide_read(
                    state,
                    self.who,
                    dataset,
                    &view.grants,
                    Some(datastream),
                    STA_OBSERVATIONS,
                    request,
                    view.now,
                )
                .await?
            }
            None => authorize_datastream(state, self.who, datastream, STA_OBSERVATIONS, request).await?.0,
        };
        self.charged.extend(self.view.grants_used(&Reach::Ids(vec![datastream.0]), &request).iter().map(|g| g.id));
        self.path = Some((datastream, permit, 0));
        Ok(())
    }

    /// Charges the rate of every grant under which a query of `readable`
    /// would read observations, before it runs, once per grant and request
    /// (a collection spans datastreams of several datasets and grants).
    pub async fn admit(&mut self, state: &AppState, readable: &Reach, request: &ReadRequest) -> Result<(), ApiError> {
        for grant in self.view.grants_used(readable, request) {
            if self.charged.insert(grant.id) {
                charge_grant(state, self.who, &grant).await?;
                self.granted.entry(grant.dataset_id).or_insert((grant, *request));
            }
        }
        Ok(())
    }

    /// One observation of `datastream` returned, read over `request`.
    pub fn observation_returned(&mut self, datastream: DatastreamId, request: &ReadRequest) {
        self.returned.entry(datastream).or_insert((0, *request)).0 += 1;
    }

    /// The request's own query of observations returned `rows` (after their
    /// expansions were counted): the path's read is audited by its permit
    /// alone; an empty answer is audited if nothing else is.
    pub fn answered(&mut self, rows: usize, request: &ReadRequest) {
        if let Some((datastream, _, returned)) = &mut self.path {
            self.returned.remove(datastream);
            *returned = rows;
        } else if rows == 0 {
            self.empty = Some(*request);
        }
    }

    /// Writes the audit records; the answer leaves only after this.
    pub async fn finish(self, state: &AppState) -> Result<(), ApiError> {
        if let Some((_, permit, rows)) = self.path {
            permit.finish(state, rows).await?;
        }
        // dataset (none: datastreams in no dataset) → (rows, range decided, a datastream read,
        // whether it was the only one)
        type Reads = (usize, ReadRequest, Option<DatastreamId>, bool);
        let mut per_dataset: BTreeMap<Option<i64>, Reads> = BTreeMap::new();
        for (ds, (rows, request)) in &self.returned {
            let dataset = self.view.dataset_of(*ds);
            let entry = per_dataset.entry(dataset).or_insert((0, *request, Some(*ds), true));
            entry.0 += rows;
            if entry.2 != Some(*ds) {
                entry.3 = false;
            }
        }
        // A grant's dataset queried without a row coming back is audited too: its rate was charged.
        for (dataset, (_, request)) in &self.granted {
            per_dataset.entry(Some(*dataset)).or_insert((0, *request, None, false));
        }
        if let Some(request) = self.empty {
            per_dataset.entry(None).or_insert((0, request, None, false));
        }
        // The record of an empty read (no dataset) is needed only if there is no other.
        if per_dataset.len() > 1 && per_dataset.get(&None).is_some_and(|(rows, ..)| *rows == 0) {
            per_dataset.remove(&None);
        }
        for (dataset, (rows, request, datastream, only)) in per_dataset {
            // The datastreams of one dataset share its access: any of them tells the way.
            let via = datastream
                .and_then(|ds| self.view.via(ds, &request))
                .or_else(|| dataset.and_then(|d| self.granted.get(&d)).map(|(grant, _)| Via::Grant(grant.clone())));
            let record = AuditRecord {
                grant_id: via.as_ref().and_then(|v| v.grant()).map(|g| g.id),
                dataset_id: dataset,
                datastream_id: datastream.filter(|d| d.0 != 0 && only).map(|d| d.0),
                range_from: Some(request.from),
                range_to: Some(request.to),
                resolution: "raw".into(),
                rows_returned: rows as i64,
                allowed: true,
                reason: via
                    .map(|v| v.describe())
                    .unwrap_or_else(|| "SensorThings observations of the caller's view".into()),
                ..audit_record(self.who, STA_OBSERVATIONS)
            };
            state.audit.append(record).await?;
        }
        Ok(())
    }
}

// ---- the owners' listings: audit log, dead letters ----

/// Which audit records a caller may list.
pub struct AuditScope {
    /// Records of these datasets only; `None`: all of them (the operator).
    pub datasets: Option<Vec<i64>>,
    /// Also the administrative changes of this organisation.
    pub org: Option<i64>,
}

/// The audit records `who` may list (of `dataset` only, if given): the
/// operator any; an organisation's admins and data owners those of the
/// datasets it owns and its own administrative changes.
pub async fn audit_scope(state: &AppState, who: &Who, dataset: Option<i64>) -> Result<AuditScope, ApiError> {
    let principal = match &*who.caller {
        Caller::Operator => return Ok(AuditScope { datasets: dataset.map(|d| vec![d]), org: None }),
        Caller::Anonymous => {
            return Err(ApiError::Unauthorized("the audit log is shown to data owners: present an API key".into()))
        }
        Caller::Principal(p) => p,
    };
    require_or(&who.caller, Needs::DataOwner(principal.org_id), || {
        "the audit log is shown to admins and data owners of a dataset's owner".into()
    })?;
    let owned: Vec<i64> = datasets::list(&state.pool)
        .await?
        .into_iter()
        .filter(|d| d.owner_org_id == principal.org_id)
        .map(|d| d.id)
        .collect();
    match dataset {
        Some(d) if owned.contains(&d) => Ok(AuditScope { datasets: Some(vec![d]), org: None }),
        Some(d) => Err(ApiError::Forbidden(format!(
            "the audit log of dataset {d} is shown to its owner's admins and data owners"
        ))),
        None => Ok(AuditScope { datasets: Some(owned), org: Some(principal.org_id) }),
    }
}

/// The organisation whose dead letters `who` may list (`asked`, or its own
/// by default): a principal its own organisation's, the operator any
/// (`None`: all of them).
pub fn dead_letters_scope(who: &Who, asked: Option<Slug>) -> Result<Option<Slug>, ApiError> {
    match &*who.caller {
        Caller::Operator => Ok(asked),
        Caller::Anonymous => {
            Err(ApiError::Unauthorized("dead letters are shown to their owner organisation: present an API key".into()))
        }
        Caller::Principal(p) => match asked {
            None => Ok(Some(Slug::parse("org", &p.org_slug).map_err(|_| ApiError::Internal)?)),
            Some(asked) if asked.as_str() == p.org_slug => Ok(Some(asked)),
            Some(asked) => Err(ApiError::Forbidden(format!(
                "dead letters of {asked} are shown only to that organisation; you belong to {}",
                p.org_slug
            ))),
        },
    }
}

/// Whether `who` may replay `org`'s dead letters: the operator any
/// organisation's, its admins and data owners their own (`403` with the
/// reason for a reader, a publisher or another organisation's principal).
pub async fn require_replay(state: &AppState, who: &Who, org: &Slug) -> Result<(), ApiError> {
    match &*who.caller {
        Caller::Anonymous => {
            return Err(ApiError::Unauthorized(
                "dead letters are replayed by their organisation's admins and data owners: present an API key".into(),
            ))
        }
        Caller::Principal(p) if p.org_slug != org.as_str() => {
            return Err(ApiError::Forbidden(format!(
            "dead letters of {org} are replayed only by that organisation's admins and data owners; you belong to {}",
            p.org_slug
        )))
        }
        _ => {}
    }
    let org_id = registry::organisation_id(&state.pool, org).await?;
    require_or(&who.caller, Needs::DataOwner(org_id), || {
        let role = who.caller.principal().map_or("none", |p| p.role.as_str());
        format!(
            "only admins and data owners of {org} (and the operator) may replay its dead letters; your role is {role}"
        )
    })
}

/// The organisation whose datastreams' quality `who` may list: its admins
/// and data owners their own, the operator any (`401` anonymous, `403` others).
pub async fn quality_scope(state: &AppState, who: &Who, org: &Slug) -> Result<i64, ApiError> {
    match &*who.caller {
        Caller::Anonymous => {
            return Err(ApiError::Unauthorized(
                "an organisation's data quality is shown to its admins and data owners: present an API key".into(),
            ))
        }
        Caller::Principal(p) if p.org_slug != org.as_str() => {
            return Err(ApiError::Forbidden(format!(
            "the data quality of {org} is shown only to that organisation's admins and data owners; you belong to {}",
            p.org_slug
        )))
        }
        _ => {}
    }
    let org_id = registry::organisation_id(&state.pool, org).await?;
    require_or(&who.caller, Needs::DataOwner(org_id), || {
        let role = who.caller.principal().map_or("none", |p| p.role.as_str());
        format!("the data quality of {org} is shown to its admins and data owners; your role is {role}")
    })?;
    Ok(org_id)
}

// ---- administrative permissions ----

/// What an administrative action asks of its caller (the operator meets every need).
#[derive(Debug, Clone, Copy)]
pub enum Needs {
    /// The platform operator.
    Operator,
    /// An admin of the organisation.
    Admin(i64),
    /// An admin or data owner of the organisation.
    DataOwner(i64),
}

impl Needs {
    fn met_by(self, caller: &Caller) -> bool {
        match self {
            Needs::Operator => matches!(caller, Caller::Operator),
            Needs::Admin(org_id) => caller.administers(org_id),
            Needs::DataOwner(org_id) => caller.owns_data_of(org_id),
        }
    }

    fn who(self) -> &'static str {
        match self {
            Needs::Operator => "the platform operator",
            Needs::Admin(_) => "an admin of the organisation",
            Needs::DataOwner(_) => "an admin or data owner of the organisation",
        }
    }
}

/// 403 ("only … may do this") unless the caller meets `needs`.
pub fn require(caller: &Caller, needs: Needs) -> Result<(), ApiError> {
    require_or(caller, needs, || format!("only {} may do this", needs.who()))
}

/// [`require`] with the refusal's own words.
pub fn require_or(caller: &Caller, needs: Needs, refusal: impl FnOnce() -> String) -> Result<(), ApiError> {
    if needs.met_by(caller) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(refusal()))
    }
}

/// The supplier whose supply grants `who` may list: a principal its own
/// organisation's, the operator every supplier's (`None`).
pub fn supplier_scope(who: &Who) -> Result<Option<Slug>, ApiError> {
    match &*who.caller {
        Caller::Operator => Ok(None),
        Caller::Anonymous => Err(ApiError::Unauthorized(
            "supply grants are shown to the organisations holding them: present an API key".into(),
        )),
        Caller::Principal(p) => Ok(Some(Slug::parse("org", &p.org_slug).map_err(|_| ApiError::Internal)?)),
    }
}

// ---- alert rules ----

/// Who owns the rules `who` makes: a principal and its organisation, or the
/// operator (neither); 401 for anonymous callers.
pub fn rule_owner(who: &Who) -> Result<alerts::Owner, ApiError> {
    match &*who.caller {
        Caller::Anonymous => Err(rules_need_a_key()),
        Caller::Operator => Ok(alerts::Owner { principal_id: None, org_id: None }),
        Caller::Principal(p) => Ok(alerts::Owner { principal_id: Some(p.id), org_id: Some(p.org_id) }),
    }
}

/// The rules `who` sees and manages: the operator all, an organisation's
/// admins their organisation's, anyone else its own; 401 for anonymous callers.
pub fn rule_scope(who: &Who) -> Result<alerts::Scope, ApiError> {
    match &*who.caller {
        Caller::Anonymous => Err(rules_need_a_key()),
        Caller::Operator => Ok(alerts::Scope::All),
        Caller::Principal(p) if p.role == Role::Admin => Ok(alerts::Scope::Organisation(p.org_id)),
        Caller::Principal(p) => Ok(alerts::Scope::Principal(p.id)),
    }
}

/// 404 unless rule `id` lies in `who`'s [`rule_scope`]: someone else's rule
/// is not shown to exist.
pub async fn require_rule(state: &AppState, who: &Who, id: i64) -> Result<(), ApiError> {
    let scope = rule_scope(who)?;
    if scope.covers(alerts::owner(&state.pool, id).await?) {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("alert rule {id} not found")))
    }
}

fn rules_need_a_key() -> ApiError {
    ApiError::Unauthorized("alert rules belong to a principal: present an API key".into())
}

/// Decides whether `who` may watch `datastream` at `resolution` with a rule
/// (`action`: its creation or change): a rule is a standing read, so the
/// policy decides as for a read of that resolution over its last interval
/// up to now. An invisible or unknown datastream is 404; a denial is 403
/// with the policy's reason and code, audited like a denied read. An allowed
/// rule charges nothing to a grant's rate: its creation's own audit record
/// names the grant it stands on.
pub async fn authorize_rule(
    state: &AppState,
    who: &Who,
    datastream: DatastreamId,
    resolution: Resolution,
    action: &str,
) -> Result<alerts::Standing, ApiError> {
    rule_owner(who)?;
    let dataset = datasets::access_for_datastream(&state.pool, datastream).await?;
    let grants = grants_for(state, &who.caller, &dataset).await?;
    let now = Utc::now();
    if !policy::visibility(&who.caller, &dataset, &grants, now).shows_datastreams() {
        return Err(ApiError::NotFound(format!("datastream {datastream} not found")));
    }
    let span = match resolution {
        Resolution::Raw => RULE_RAW_SPAN_SECS,
        Resolution::Aggregate { interval_secs } => interval_secs,
    };
    let request = ReadRequest { resolution, from: now - chrono::Duration::seconds(span), to: now };
    match policy::decide(&who.caller, &dataset, &grants, &request, now) {
        // Personal data leaves only as buckets of at least the dataset's minimum count; an
        // alert's value is one bucket (or one reading) as it comes, which cannot promise that.
        Decision::Allow { release: Release::Personal { min_count }, .. } => {
            let reason = format!(
                "dataset {} holds personal data, released only as 15-minute aggregates of at least {min_count} \
                 readings per bucket; an alert would send single values as they come, so there are no alert \
                 rules on personal data",
                dataset.slug
            );
            metrics::counter!("hoheit_api_policy_denied_total", "action" => action.to_owned()).increment(1);
            let record = AuditRecord {
                reason: reason.clone(),
                ..read_record(who, &dataset, Some(datastream), action, &request)
            };
            state.audit.append(record).await?;
            Err(ApiError::Forbidden(reason))
        }
        Decision::Allow { via, .. } => {
            Ok(alerts::Standing { dataset_id: dataset.id, grant_id: via.grant().map(|g| g.id) })
        }
        Decision::Deny { reason } => {
            metrics::counter!("hoheit_api_policy_denied_total", "action" => action.to_owned()).increment(1);
            let record = AuditRecord {
                reason: reason.to_string(),
                ..read_record(who, &dataset, Some(datastream), action, &request)
            };
            state.audit.append(record).await?;
            Err(reason.into())
        }
    }
}

/// The range a raw rule is decided over: the last minute up to now.
const RULE_RAW_SPAN_SECS: i64 = 60;

// ---- grants on an organisation's datasets ----

/// The organisation whose datasets' grants `who` may list (`asked`, or its own by
/// default): its admins and data owners their own, the operator any (`None`: every
/// organisation's); `401` anonymous, `403` with the reason for anyone else. The same
/// rule as one dataset's grants (`/v1/datasets/{id}/grants`), for all of them at once.
pub async fn owned_grants_scope(state: &AppState, who: &Who, asked: Option<Slug>) -> Result<Option<i64>, ApiError> {
    let org = match (&*who.caller, asked) {
        (Caller::Anonymous, _) => {
            return Err(ApiError::Unauthorized(
                "grants on a dataset are shown to its owner's admins and data owners: present an API key".into(),
            ))
        }
        (Caller::Operator, None) => return Ok(None),
        (Caller::Operator, Some(asked)) => asked,
        (Caller::Principal(p), None) => Slug::parse("org", &p.org_slug).map_err(|_| ApiError::Internal)?,
        (Caller::Principal(p), Some(asked)) if asked.as_str() == p.org_slug => asked,
        (Caller::Principal(p), Some(asked)) => {
            return Err(ApiError::Forbidden(format!(
                "grants on the datasets of {asked} are shown only to that organisation's admins and data owners; you belong to {}",
                p.org_slug
            )))
        }
    };
    let org_id = registry::organisation_id(&state.pool, &org).await?;
    require_or(&who.caller, Needs::DataOwner(org_id), || {
        let role = who.caller.principal().map_or("none", |p| p.role.as_str());
        format!("grants on the datasets of {org} are shown to its admins and data owners; your role is {role}")
    })?;
    Ok(Some(org_id))
}
