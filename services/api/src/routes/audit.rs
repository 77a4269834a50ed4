//! The audit log for owners, its verification for the operator, and the
//! public transparency report (reads per dataset, and supply contracts) with
//! the chain's head.

use axum::extract::State;
use axum::Json;
use chrono::Duration;
use hoheit_store::audit::{self, AuditEntry, ChainHead, TransparencyLine, Verification};
use hoheit_store::supply::{self, TransparencySupply};
use serde::{Deserialize, Serialize};

use crate::access::{audit_scope, require_or, AuditScope, Needs};
use crate::auth::Who;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::params::{self, TimeRange};
use crate::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only the records of this dataset.
    dataset: Option<i64>,
    /// Start of the range (inclusive), RFC 3339.
    #[param(format = DateTime)]
    from: Option<String>,
    /// End of the range (exclusive), RFC 3339; default: now.
    #[param(format = DateTime)]
    to: Option<String>,
    /// Page size, 1 to 10,000; default 1,000.
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    records: Vec<AuditEntry>,
    next_cursor: Option<String>,
}

/// Audit records of the datasets the caller's organisation owns and the
/// administrative changes of the organisation (its admins and data owners),
/// or of everything (operator); default: the last 30 days.
#[utoipa::path(get, operation_id = "audit_list", path = "/audit", tag = "audit", security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, description = "one page of audit records", body = AuditPage)))]
pub async fn list(
    State(state): State<AppState>,
    who: Who,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let range = TimeRange::parse(query.from.as_deref(), query.to.as_deref(), Duration::days(30))?;
    let limit = params::limit(query.limit)?;
    let after = query.cursor.as_deref().map(|c| params::decode_cursor('a', c)).transpose()?.unwrap_or(0);
    let AuditScope { datasets, org } = audit_scope(&state, &who, query.dataset).await?;
    let records = audit::list(&state.pool, datasets.as_deref(), org, range.from, range.to, after, limit).await?;
    let next_cursor =
        (records.len() as i64 == limit).then(|| records.last().map(|r| params::encode_cursor('a', r.id))).flatten();
    Ok(Json(AuditPage { records, next_cursor }))
}

/// Recomputes the hash chain: the operator's check that nothing was altered.
#[utoipa::path(get, operation_id = "audit_verify", path = "/audit/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 200, description = "the result of the check", body = Verification)))]
pub async fn verify(State(state): State<AppState>, who: Who) -> Result<Json<Verification>, ApiError> {
    require_or(&who.caller, Needs::Operator, || "only the platform operator may verify the whole audit chain".into())?;
    Ok(Json(audit::verify(&state.pool).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TransparencyQuery {
    /// Start of the range (inclusive), RFC 3339.
    #[param(format = DateTime)]
    from: Option<String>,
    /// End of the range (exclusive), RFC 3339; default: now.
    #[param(format = DateTime)]
    to: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TransparencyReport {
    /// Per dataset and month: which organisations read it, how often, under which purpose and grant.
    lines: Vec<TransparencyLine>,
    /// Supply contracts: which organisation delivers readings into which dataset (they belong to
    /// the dataset's owner), under which contract, valid from and until, revoked when.
    supply_grants: Vec<TransparencySupply>,
    /// The newest record of the audit chain (absent while it is empty): keep it,
    /// and a later rewrite of the whole log shows as a different hash at this id.
    chain_head: Option<ChainHead>,
}

/// Public, no key needed; default: the last 365 days.
#[utoipa::path(get, operation_id = "audit_transparency", path = "/transparency", tag = "audit", security((), ("bearer" = [])),
    params(TransparencyQuery),
    responses((status = 200, description = "the report", body = TransparencyReport)))]
pub async fn transparency(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<TransparencyQuery>,
) -> Result<Json<TransparencyReport>, ApiError> {
    let range = TimeRange::parse(query.from.as_deref(), query.to.as_deref(), Duration::days(365))?;
    let lines = audit::transparency(&state.pool, range.from, range.to).await?;
    let supply_grants = supply::transparency(&state.pool, range.from, range.to).await?;
    Ok(Json(TransparencyReport { lines, supply_grants, chain_head: audit::head(&state.pool).await? }))
}
