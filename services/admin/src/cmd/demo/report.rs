//! What a demo run did: per organisation, dataset, grant and principal
//! whether it was created, updated or found unchanged, the keys issued, and
//! the example requests (printed, or serialised with `--json`).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use hoheit_domain::policy::{Classification, OrgKind, Role};
use hoheit_domain::DatastreamId;
use serde::Serialize;

use crate::cmd::keys::NewKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Created,
    Updated,
    Unchanged,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OrgOutcome {
    pub slug: String,
    pub name: String,
    pub kind: OrgKind,
    pub parent: Option<String>,
    pub change: Change,
    /// Kind (and parent) before an update.
    pub was: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatasetOutcome {
    pub id: i64,
    pub slug: String,
    pub owner: String,
    pub classification: Classification,
    pub license: String,
    pub retention_days: i32,
    pub datastreams: Vec<DatastreamId>,
    pub change: Change,
}

#[derive(Debug, Clone, Serialize)]
pub struct GrantOutcome {
    pub id: i64,
    pub dataset: String,
    pub grantee: String,
    pub min_interval_mins: Option<i32>,
    pub history_days: Option<i32>,
    pub valid_until: DateTime<Utc>,
    pub rate_per_minute: i32,
    pub contract_ref: String,
    pub purpose: String,
    pub change: Change,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrincipalOutcome {
    pub name: String,
    pub org: String,
    pub role: Role,
    pub kind: &'static str,
    pub change: Change,
    /// The key issued on this run (shown once).
    pub key: NewKey,
}

/// An alert rule of the demo (the alerts view shows it, firing or not).
#[derive(Debug, Clone, Serialize)]
pub struct RuleOutcome {
    pub name: String,
    pub owner: String,
    pub datastream: String,
    pub change: Change,
}

/// A request that shows the policy, with the outcome to expect.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub who: String,
    pub expect: String,
    pub curl: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    pub things: usize,
    pub datastreams: usize,
    pub organisations: Vec<OrgOutcome>,
    pub datasets: Vec<DatasetOutcome>,
    pub grants: Vec<GrantOutcome>,
    pub principals: Vec<PrincipalOutcome>,
    pub rules: Vec<RuleOutcome>,
    pub keys_file: Option<PathBuf>,
    pub examples: Vec<Example>,
}
