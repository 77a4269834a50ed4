//! The read gate every data path goes through: it asks the policy
//! (`hoheit_domain::policy::decide`), applies a grant's own rate limit, and
//! writes exactly one audit record per read, allowed or denied. An allowed
//! read leaves with the policy's [`Release`] and the range it may release
//! (whole buckets of the grid, for aggregate-only grants and personal data).

use chrono::Utc;
use hoheit_domain::policy::{Caller, DatasetAccess, Decision, GrantTerms, ReadRequest, Release, Via};
use hoheit_domain::DatastreamId;
use hoheit_store::audit::AuditRecord;
use hoheit_store::datasets;
use hoheit_store::grant_rate;
use hoheit_store::grants;

use crate::auth::Who;
use crate::error::ApiError;
use crate::AppState;

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

/// Grants the caller's organisation holds on `dataset`.
pub async fn grants_for(
    state: &AppState,
    caller: &Caller,
    dataset: &DatasetAccess,
) -> Result<Vec<GrantTerms>, ApiError> {
    match (caller.principal(), dataset.id) {
        (Some(p), Some(dataset_id)) => Ok(grants::held(&state.pool, p.org_id, dataset_id).await?),
        _ => Ok(Vec::new()),
    }
}

/// An audit record of `who` doing `action`, denied and empty until the
/// caller fills in what was read; every audit record of the API starts here.
pub fn audit_record(who: &Who, action: &str) -> AuditRecord {
    let Who(caller, request_id) = who;
    let principal = caller.principal();
    AuditRecord {
        at: Utc::now(),
        request_id: request_id.0.clone(),
        principal_id: principal.map(|p| p.id),
        principal_name: caller.name().to_owned(),
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

fn record(
    who: &Who,
    dataset: &DatasetAccess,
    datastream: Option<DatastreamId>,
    action: &str,
    request: Option<&ReadRequest>,
) -> AuditRecord {
    AuditRecord {
        dataset_id: dataset.id,
        datastream_id: datastream.map(|d| d.0),
        range_from: request.map(|r| r.from),
        range_to: request.map(|r| r.to),
        resolution: request.map(|r| r.resolution.to_string()).unwrap_or_else(|| "export".into()),
        ..audit_record(who, action)
    }
}

/// Applies a grant's own rate limit: one budget per grant, shared by every
/// key of the grantee and every API replica (`hoheit_store::grant_rate`).
pub async fn check_grant_rate(state: &AppState, who: &Who, grant: &GrantTerms) -> Result<(), ApiError> {
    if who.0.principal().is_none() {
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

/// Every grant the caller's organisation holds (none for anonymous callers and the operator).
pub async fn grants_held(state: &AppState, caller: &Caller) -> Result<Vec<GrantTerms>, ApiError> {
    match caller.principal() {
        Some(p) => Ok(grants::held_by(&state.pool, p.org_id).await?),
        None => Ok(Vec::new()),
    }
}

/// Decides a read of `datastream` (or of the whole dataset when `None`) and
/// audits a denial at once.
pub async fn authorize(
    state: &AppState,
    who: &Who,
    dataset: DatasetAccess,
    datastream: Option<DatastreamId>,
    action: &str,
    request: ReadRequest,
) -> Result<ReadPermit, ApiError> {
    let grants = grants_for(state, &who.0, &dataset).await?;
    let now = Utc::now();
    let decision = hoheit_domain::policy::decide(&who.0, &dataset, &grants, &request, now);
    let mut rec = record(who, &dataset, datastream, action, Some(&request));
    match decision {
        Decision::Deny { reason } => {
            metrics::counter!("hoheit_api_policy_denied_total", "action" => action.to_owned()).increment(1);
            rec.reason = reason.clone();
            state.audit.append(rec).await?;
            Err(ApiError::Forbidden(reason))
        }
        Decision::Allow { via, release } => {
            if let Via::Grant(grant) = &via {
                check_grant_rate(state, who, grant).await?;
                rec.grant_id = Some(grant.id);
            }
            let range = release.snap(&request, now);
            rec.range_from = Some(range.from);
            rec.range_to = Some(range.to);
            rec.allowed = true;
            rec.reason = via.describe();
            Ok(ReadPermit { record: rec, release, range })
        }
    }
}

/// [`authorize`] for one datastream.
pub async fn authorize_datastream(
    state: &AppState,
    who: &Who,
    id: DatastreamId,
    action: &str,
    request: ReadRequest,
) -> Result<ReadPermit, ApiError> {
    let dataset = datasets::access_for_datastream(&state.pool, id).await?;
    authorize(state, who, dataset, Some(id), action, request).await
}
