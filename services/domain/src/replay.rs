//! Dead-letter replay: an owner who fixed the registry (registered a missing
//! datastream, corrected a unit) sends its organisation's dead letters through
//! the checks again. This module holds what a replay asks for
//! ([`ReplayRequest`], parsed into a [`ReplayFilter`] that can only hold valid
//! values) and what it answers ([`ReplayReport`]); the API, ingest (which
//! replays) and `hoheit-admin` share these shapes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Slug;

/// Most dead letters one replay takes on.
pub const MAX_LIMIT: i64 = 10_000;
/// Dead letters one replay takes on when the request does not say.
pub const DEFAULT_LIMIT: i64 = 1_000;

/// Which dead letters to replay, as a client sends it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The organisation (slug) whose dead letters are replayed: the operator must name one; a principal
    /// may name only its own, the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Only dead letters with this reason code (their latest: a replayed one's new code), e.g. `unknown_datastream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Only dead letters addressed to this thing (slug) or one of its datastreams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thing: Option<String>,
    /// Only dead letters received at or after this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub from: Option<String>,
    /// Only dead letters received before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub to: Option<String>,
    /// At most this many dead letters, oldest first (1 to 10,000; default 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
    /// Also dead letters whose last replay stored them (default: skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_replayed: Option<bool>,
}

/// A replay request checked: every field valid, the organisation decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayFilter {
    pub org: Slug,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Slug>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thing: Option<Slug>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    pub limit: i64,
    pub include_replayed: bool,
}

/// Why a replay request cannot be carried out as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayRequestError {
    #[error("{0}")]
    Invalid(String),
    #[error("name the organisation whose dead letters to replay (org)")]
    NoOrganisation,
}

impl ReplayRequest {
    /// Checks the request; `own` is the caller's organisation (none for the
    /// operator), taken when the request names none. Whether the caller may
    /// replay that organisation's dead letters is not decided here.
    pub fn filter(&self, own: Option<&Slug>) -> Result<ReplayFilter, ReplayRequestError> {
        let invalid = |e: crate::SlugError| ReplayRequestError::Invalid(e.to_string());
        let org = match (&self.org, own) {
            (Some(org), _) => Slug::parse("org", org).map_err(invalid)?,
            (None, Some(own)) => own.clone(),
            (None, None) => return Err(ReplayRequestError::NoOrganisation),
        };
        let reason = self.reason.as_deref().map(|r| Slug::parse("reason", r)).transpose().map_err(invalid)?;
        let thing = self.thing.as_deref().map(|t| Slug::parse("thing", t)).transpose().map_err(invalid)?;
        let from = self.from.as_deref().map(|t| time("from", t)).transpose()?;
        let to = self.to.as_deref().map(|t| time("to", t)).transpose()?;
        if let (Some(from), Some(to)) = (from, to) {
            if from >= to {
                return Err(ReplayRequestError::Invalid("from must be before to".into()));
            }
        }
        let limit = match self.limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
            Some(_) => return Err(ReplayRequestError::Invalid(format!("limit must be between 1 and {MAX_LIMIT}"))),
        };
        Ok(ReplayFilter {
            org,
            reason,
            thing,
            from,
            to,
            limit,
            include_replayed: self.include_replayed.unwrap_or(false),
        })
    }
}

fn time(name: &str, text: &str) -> Result<DateTime<Utc>, ReplayRequestError> {
    DateTime::parse_from_rfc3339(text).map(|t| t.to_utc()).map_err(|_| {
        ReplayRequestError::Invalid(format!("{name} must be an RFC 3339 time such as 2026-11-25T10:00:00Z"))
    })
}

/// What became of a replayed dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayResult {
    /// Every reading of the payload passed and is stored (once).
    Stored,
    /// Some readings passed and are stored; the others still fail.
    Partial,
    /// Nothing passed: the payload (or each of its readings) still fails.
    Rejected,
}

impl ReplayResult {
    /// The result of a payload of which `accepted` readings passed and `rejected` failed.
    pub fn of(accepted: usize, rejected: usize) -> Self {
        match (accepted, rejected) {
            (_, 0) => ReplayResult::Stored,
            (0, _) => ReplayResult::Rejected,
            _ => ReplayResult::Partial,
        }
    }

    /// The result a stored name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        [ReplayResult::Stored, ReplayResult::Partial, ReplayResult::Rejected].into_iter().find(|r| r.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReplayResult::Stored => "stored",
            ReplayResult::Partial => "partial",
            ReplayResult::Rejected => "rejected",
        }
    }
}

/// One replayed dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplayedLetter {
    /// The dead letter's id (as `GET /v1/dead-letters` lists it).
    pub id: i64,
    pub result: ReplayResult,
    /// The code it still fails with (the first rejected reading's); null when stored.
    pub reason_code: Option<String>,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplayReport {
    /// Dead letters the filter selected (and replayed).
    pub selected: usize,
    /// Of them, those whose readings all passed.
    pub stored: usize,
    /// Of them, those with readings that still fail (`partial` or `rejected`); they stay dead letters.
    pub still_rejected: usize,
    /// Readings that passed and were confirmed by Kafka (each stored once: one already stored is not stored again).
    pub readings_stored: usize,
    pub dead_letters: Vec<ReplayedLetter>,
}

impl ReplayReport {
    /// The report of the replayed dead letters, with the readings that passed.
    pub fn new(dead_letters: Vec<ReplayedLetter>, readings_stored: usize) -> Self {
        let stored = dead_letters.iter().filter(|l| l.result == ReplayResult::Stored).count();
        Self {
            selected: dead_letters.len(),
            stored,
            still_rejected: dead_letters.len() - stored,
            readings_stored,
            dead_letters,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slug(s: &str) -> Slug {
        Slug::parse("org", s).unwrap()
    }

    #[test]
    fn a_principal_replays_its_own_organisation_by_default() {
        let filter = ReplayRequest::default().filter(Some(&slug("stadtwerk"))).unwrap();
        assert_eq!(filter.org, slug("stadtwerk"));
        assert_eq!(filter.limit, DEFAULT_LIMIT);
        assert!(!filter.include_replayed);
    }

    #[test]
    fn the_operator_names_the_organisation() {
        assert_eq!(ReplayRequest::default().filter(None), Err(ReplayRequestError::NoOrganisation));
    }

    #[test]
    fn invalid_fields_are_refused_with_their_reason() {
        let cases = [
            (ReplayRequest { limit: Some(0), ..Default::default() }, "limit"),
            (ReplayRequest { limit: Some(10_001), ..Default::default() }, "limit"),
            (ReplayRequest { thing: Some("A/B".into()), ..Default::default() }, "thing"),
            (ReplayRequest { from: Some("yesterday".into()), ..Default::default() }, "from"),
            (
                ReplayRequest {
                    from: Some("2026-11-30T10:00:00Z".into()),
                    to: Some("2026-11-30T09:00:00Z".into()),
                    ..Default::default()
                },
                "before",
            ),
        ];
        for (request, word) in cases {
            let error = request.filter(Some(&slug("x"))).unwrap_err().to_string();
            assert!(error.contains(word), "{error}");
        }
    }

    #[test]
    fn results_follow_what_passed() {
        assert_eq!(ReplayResult::of(3, 0), ReplayResult::Stored);
        assert_eq!(ReplayResult::of(2, 1), ReplayResult::Partial);
        assert_eq!(ReplayResult::of(0, 1), ReplayResult::Rejected);
        let report = ReplayReport::new(
            vec![
                ReplayedLetter { id: 1, result: ReplayResult::Stored, reason_code: None },
                ReplayedLetter { id: 2, result: ReplayResult::Rejected, reason_code: Some("x".into()) },
            ],
            4,
        );
        assert_eq!((report.selected, report.stored, report.still_rejected), (2, 1, 1));
    }
}
