//! Which rules may be evaluated: a rule is a standing read of its datastream
//! at the rule's resolution by the principal who made it, so it is evaluated
//! only while the policy would let that principal read the datastream so now
//! (`hoheit_domain::policy::decide`, the decision the API's reads get). A
//! rule whose grant was revoked or ran out, or whose principal was disabled,
//! is skipped until that changes; the operator's rules always run. This is
//! the one module of the service that asks the policy (*tidy: access-gate*).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hoheit_domain::alert;
use hoheit_domain::policy::{self, Caller, DatasetAccess, Decision, GrantTerms, Principal, ReadRequest};
use hoheit_domain::DatastreamId;
use hoheit_store::alert_state::WatchedRule;
use hoheit_store::principals::{self, AuthError};
use hoheit_store::registry::RegistryError;
use hoheit_store::{datasets, grants};
use sqlx::PgPool;

/// Why the rules' standing could not be checked (the previous rules stay).
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Registry(#[from] RegistryError),
    #[error("{0}")]
    Auth(#[from] AuthError),
}

/// The rules of `rows` whose owners may read their datastreams at their
/// resolutions at `now`; each rule left out is logged with the policy's reason.
pub async fn evaluable(
    pool: &PgPool,
    rows: Vec<WatchedRule>,
    now: DateTime<Utc>,
) -> Result<Vec<WatchedRule>, AccessError> {
    let mut facts = Facts::default();
    let mut kept = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(principal_id) = row.principal_id else {
            kept.push(row);
            continue;
        };
        let Some(principal) = facts.principal(pool, principal_id).await? else {
            tracing::info!(rule = row.id, principal = principal_id, "rule skipped: its principal is disabled or gone");
            continue;
        };
        let Some(dataset) = facts.dataset(pool, row.datastream_id).await? else { continue };
        let held = facts.grants(pool, principal.org_id, dataset.id).await?;
        let resolution = alert::resolution_from_secs(i64::from(row.resolution_secs));
        let request = ReadRequest::spanning(resolution, Some(now), None);
        match policy::decide(&Caller::Principal(principal), &dataset, &held, &request, now) {
            Decision::Allow { .. } => kept.push(row),
            Decision::Deny { reason } => {
                tracing::info!(rule = row.id, principal = principal_id, %reason, "rule skipped: its owner may not read the datastream so");
            }
        }
    }
    Ok(kept)
}

/// What the decisions need, each read once per check.
#[derive(Default)]
struct Facts {
    principals: HashMap<i64, Option<Principal>>,
    datasets: HashMap<i64, Option<DatasetAccess>>,
    grants: HashMap<(i64, i64), Vec<GrantTerms>>,
}

impl Facts {
    /// The principal as the policy sees it; `None` when disabled or unknown.
    async fn principal(&mut self, pool: &PgPool, id: i64) -> Result<Option<Principal>, AccessError> {
        if let Some(known) = self.principals.get(&id) {
            return Ok(known.clone());
        }
        let principal = match principals::by_id(pool, id).await {
            Ok(principal) => Some(principal),
            Err(AuthError::Disabled | AuthError::Invalid) => None,
            Err(error) => return Err(error.into()),
        };
        self.principals.insert(id, principal.clone());
        Ok(principal)
    }

    async fn dataset(&mut self, pool: &PgPool, datastream: i64) -> Result<Option<DatasetAccess>, AccessError> {
        if let Some(known) = self.datasets.get(&datastream) {
            return Ok(known.clone());
        }
        let dataset = match datasets::access_for_datastream(pool, DatastreamId(datastream)).await {
            Ok(dataset) => Some(dataset),
            Err(RegistryError::NotFound(_)) => None,
            Err(error) => return Err(error.into()),
        };
        self.datasets.insert(datastream, dataset.clone());
        Ok(dataset)
    }

    /// The grants organisation `org` holds on the dataset (none for a datastream outside any).
    async fn grants(&mut self, pool: &PgPool, org: i64, dataset: Option<i64>) -> Result<Vec<GrantTerms>, AccessError> {
        let Some(dataset) = dataset else { return Ok(Vec::new()) };
        if let Some(known) = self.grants.get(&(org, dataset)) {
            return Ok(known.clone());
        }
        let held = grants::held(pool, org, dataset).await?;
        self.grants.insert((org, dataset), held.clone());
        Ok(held)
    }
}
