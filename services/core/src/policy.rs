//! The access policy, in one place: every read path asks [`decide`].
//!
//! - `open`: anyone, without a key;
//! - `internal`: principals of the owner and of organisations of the same
//!   municipality ("Konzern Stadt"), or holders of a valid grant;
//! - `restricted`: the owner and holders of a valid grant;
//! - `personal`: the owner only, and only aggregates whose buckets hold at
//!   least the dataset's minimum count (smaller buckets are withheld).
//!
//! A grant allows reads within its validity, resolution (raw or aggregates of
//! at least N minutes) and history window; anything beyond is denied with the
//! limit that was hit, never silently trimmed. The platform operator (the
//! bootstrap token of municipal IT) may read everything but personal raw data.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "{other:?} is not one of: {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

string_enum!(
    /// How sensitive a dataset is.
    Classification { Open => "open", Internal => "internal", Restricted => "restricted", Personal => "personal" }
);

string_enum!(
    /// What kind of organisation this is.
    OrgKind { Municipality => "municipality", Department => "department", MunicipalCompany => "municipal_company", ThirdParty => "third_party" }
);

string_enum!(
    /// What a principal may do within its organisation.
    Role { Admin => "admin", DataOwner => "data_owner", Reader => "reader" }
);

/// An authenticated principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: i64,
    pub name: String,
    pub org_id: i64,
    pub org_slug: String,
    /// The municipality the organisation belongs to; `None` for third parties.
    pub municipality_id: Option<i64>,
    pub role: Role,
    /// The API key used, if any (rate limits are per credential).
    pub key_id: Option<i64>,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    /// The platform operator (municipal IT) with the bootstrap token.
    Operator,
    Principal(Principal),
}

impl Caller {
    pub fn name(&self) -> &str {
        match self {
            Caller::Anonymous => "anonymous",
            Caller::Operator => "operator",
            Caller::Principal(p) => &p.name,
        }
    }

    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Caller::Principal(p) => Some(p),
            _ => None,
        }
    }

    /// Whether the caller administers `org_id` (or everything).
    pub fn administers(&self, org_id: i64) -> bool {
        match self {
            Caller::Operator => true,
            Caller::Principal(p) => p.org_id == org_id && p.role == Role::Admin,
            Caller::Anonymous => false,
        }
    }

    /// Whether the caller may manage `org_id`'s data (owner or admin role).
    pub fn owns_data_of(&self, org_id: i64) -> bool {
        match self {
            Caller::Operator => true,
            Caller::Principal(p) => p.org_id == org_id && matches!(p.role, Role::Admin | Role::DataOwner),
            Caller::Anonymous => false,
        }
    }
}

/// What the policy needs to know about a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetAccess {
    pub id: i64,
    pub slug: String,
    pub owner_org_id: i64,
    pub owner_municipality_id: Option<i64>,
    pub classification: Classification,
    pub min_bucket_count: i32,
}

/// The terms of one grant (contract).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct GrantTerms {
    pub id: i64,
    pub dataset_id: i64,
    pub grantee_org_id: i64,
    pub purpose: String,
    pub contract_ref: String,
    pub min_interval_mins: Option<i32>,
    pub history_days: Option<i32>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub rate_per_minute: i32,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The resolution a read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Raw,
    Aggregate { interval_secs: i64 },
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resolution::Raw => f.write_str("raw"),
            Resolution::Aggregate { interval_secs } => write!(f, "aggregate:{interval_secs}s"),
        }
    }
}

/// One read: what resolution, which time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRequest {
    pub resolution: Resolution,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Why a read is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Open,
    Operator,
    Owner,
    SameMunicipality,
    Grant(GrantTerms),
}

impl Via {
    pub fn describe(&self) -> String {
        match self {
            Via::Open => "open data".into(),
            Via::Operator => "platform operator".into(),
            Via::Owner => "owner organisation".into(),
            Via::SameMunicipality => "organisation of the same municipality".into(),
            Via::Grant(g) => format!("grant {} ({})", g.id, g.contract_ref),
        }
    }

    pub fn grant(&self) -> Option<&GrantTerms> {
        match self {
            Via::Grant(g) => Some(g),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; aggregate buckets with fewer readings than `min_bucket_count` must be withheld.
    Allow {
        via: Via,
        min_bucket_count: Option<i32>,
    },
    Deny {
        reason: String,
    },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

fn deny(reason: impl Into<String>) -> Decision {
    Decision::Deny { reason: reason.into() }
}

/// Decides one read of `dataset` by `caller`; `grants` are the grants held by
/// the caller's organisation (others are ignored).
pub fn decide(
    caller: &Caller,
    dataset: &DatasetAccess,
    grants: &[GrantTerms],
    request: &ReadRequest,
    now: DateTime<Utc>,
) -> Decision {
    let personal = dataset.classification == Classification::Personal;
    let personal_min = personal.then_some(dataset.min_bucket_count);
    if personal && request.resolution == Resolution::Raw {
        return deny(format!(
            "dataset {} holds personal data: only aggregates of at least {} readings per bucket are released",
            dataset.slug, dataset.min_bucket_count
        ));
    }
    let principal = match caller {
        Caller::Operator => return Decision::Allow { via: Via::Operator, min_bucket_count: personal_min },
        _ if dataset.classification == Classification::Open => {
            return Decision::Allow { via: Via::Open, min_bucket_count: None }
        }
        Caller::Anonymous => {
            return deny(format!(
                "dataset {} is {}: present an API key or a bearer token",
                dataset.slug, dataset.classification
            ));
        }
        Caller::Principal(p) => p,
    };
    if principal.org_id == dataset.owner_org_id {
        return Decision::Allow { via: Via::Owner, min_bucket_count: personal_min };
    }
    if personal {
        return deny(format!("dataset {} holds personal data: only its owner organisation may read it", dataset.slug));
    }
    if dataset.classification == Classification::Internal
        && principal.municipality_id.is_some()
        && principal.municipality_id == dataset.owner_municipality_id
    {
        return Decision::Allow { via: Via::SameMunicipality, min_bucket_count: None };
    }
    let mut reason = None;
    for grant in grants.iter().filter(|g| g.grantee_org_id == principal.org_id && g.dataset_id == dataset.id) {
        match check_grant(grant, request, now) {
            Ok(()) => return Decision::Allow { via: Via::Grant(grant.clone()), min_bucket_count: None },
            Err(why) => reason = reason.or(Some(why)),
        }
    }
    deny(reason.unwrap_or_else(|| {
        format!(
            "dataset {} is {} and organisation {} holds no grant for it",
            dataset.slug, dataset.classification, principal.org_slug
        )
    }))
}

fn check_grant(grant: &GrantTerms, request: &ReadRequest, now: DateTime<Utc>) -> Result<(), String> {
    let id = grant.id;
    if let Some(at) = grant.revoked_at {
        return Err(format!("grant {id} was revoked at {}", at.to_rfc3339()));
    }
    if now < grant.valid_from {
        return Err(format!("grant {id} is valid only from {}", grant.valid_from.to_rfc3339()));
    }
    if now >= grant.valid_until {
        return Err(format!("grant {id} expired at {}", grant.valid_until.to_rfc3339()));
    }
    if let Some(mins) = grant.min_interval_mins {
        match request.resolution {
            Resolution::Raw => {
                return Err(format!("grant {id} allows only aggregates of at least {mins} minutes, not raw readings"));
            }
            Resolution::Aggregate { interval_secs } if interval_secs < i64::from(mins) * 60 => {
                return Err(format!(
                    "grant {id} allows only aggregates of at least {mins} minutes; {interval_secs} s is finer"
                ));
            }
            Resolution::Aggregate { .. } => {}
        }
    }
    if let Some(days) = grant.history_days {
        let earliest = now - Duration::days(i64::from(days));
        if request.from < earliest {
            return Err(format!(
                "grant {id} covers only the last {days} days (from {}); the request starts at {}",
                earliest.to_rfc3339(),
                request.from.to_rfc3339()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
    }

    fn dataset(classification: Classification) -> DatasetAccess {
        DatasetAccess {
            id: 7,
            slug: "verkehr".into(),
            owner_org_id: 1,
            owner_municipality_id: Some(1),
            classification,
            min_bucket_count: 5,
        }
    }

    fn principal(org_id: i64, municipality_id: Option<i64>) -> Caller {
        Caller::Principal(Principal {
            id: 10 + org_id,
            name: format!("p{org_id}"),
            org_id,
            org_slug: format!("org-{org_id}"),
            municipality_id,
            role: Role::Reader,
            key_id: None,
        })
    }

    fn grant(org_id: i64) -> GrantTerms {
        GrantTerms {
            id: 3,
            dataset_id: 7,
            grantee_org_id: org_id,
            purpose: "Verkehrsprognose".into(),
            contract_ref: "V-2026-01".into(),
            min_interval_mins: Some(15),
            history_days: Some(30),
            valid_from: now() - Duration::days(10),
            valid_until: now() + Duration::days(10),
            rate_per_minute: 60,
            revoked_at: None,
        }
    }

    fn read(resolution: Resolution, days_back: i64) -> ReadRequest {
        ReadRequest { resolution, from: now() - Duration::days(days_back), to: now() }
    }

    const AGG_15: Resolution = Resolution::Aggregate { interval_secs: 900 };

    #[test]
    fn classification_matrix_without_grants() {
        let owner = principal(1, Some(1));
        let department = principal(2, Some(1));
        let third = principal(9, None);
        let cases = [
            (Classification::Open, Caller::Anonymous, true),
            (Classification::Open, third.clone(), true),
            (Classification::Internal, Caller::Anonymous, false),
            (Classification::Internal, owner.clone(), true),
            (Classification::Internal, department.clone(), true),
            (Classification::Internal, third.clone(), false),
            (Classification::Restricted, owner.clone(), true),
            (Classification::Restricted, department.clone(), false),
            (Classification::Restricted, third.clone(), false),
            (Classification::Restricted, Caller::Operator, true),
        ];
        for (classification, caller, allowed) in cases {
            let decision = decide(&caller, &dataset(classification), &[], &read(Resolution::Raw, 1), now());
            assert_eq!(decision.is_allowed(), allowed, "{classification} by {}: {decision:?}", caller.name());
        }
    }

    #[test]
    fn personal_data_is_owner_only_and_aggregate_only() {
        let ds = dataset(Classification::Personal);
        let raw = decide(&principal(1, Some(1)), &ds, &[], &read(Resolution::Raw, 1), now());
        assert!(matches!(raw, Decision::Deny { ref reason } if reason.contains("personal")));
        let agg = decide(&principal(1, Some(1)), &ds, &[], &read(AGG_15, 1), now());
        assert_eq!(agg, Decision::Allow { via: Via::Owner, min_bucket_count: Some(5) });
        assert!(!decide(&principal(2, Some(1)), &ds, &[], &read(AGG_15, 1), now()).is_allowed());
        assert!(!decide(&principal(9, None), &ds, &[grant(9)], &read(AGG_15, 1), now()).is_allowed());
    }

    #[test]
    fn grants_allow_within_their_terms_and_say_which_limit_was_hit() {
        let ds = dataset(Classification::Restricted);
        let third = principal(9, None);
        let g = grant(9);
        assert!(matches!(
            decide(&third, &ds, std::slice::from_ref(&g), &read(AGG_15, 29), now()),
            Decision::Allow { via: Via::Grant(_), .. }
        ));
        let cases = [
            (g.clone(), read(Resolution::Raw, 1), "not raw readings"),
            (g.clone(), read(Resolution::Aggregate { interval_secs: 300 }, 1), "finer"),
            (g.clone(), read(AGG_15, 31), "last 30 days"),
            (GrantTerms { revoked_at: Some(now() - Duration::days(1)), ..g.clone() }, read(AGG_15, 1), "revoked"),
            (GrantTerms { valid_until: now() - Duration::seconds(1), ..g.clone() }, read(AGG_15, 1), "expired"),
            (GrantTerms { valid_from: now() + Duration::days(1), ..g.clone() }, read(AGG_15, 1), "valid only from"),
            (GrantTerms { grantee_org_id: 8, ..g.clone() }, read(AGG_15, 1), "holds no grant"),
            (GrantTerms { dataset_id: 8, ..g.clone() }, read(AGG_15, 1), "holds no grant"),
        ];
        for (grant, request, needle) in cases {
            match decide(&third, &ds, &[grant], &request, now()) {
                Decision::Deny { reason } => assert!(reason.contains(needle), "{reason:?} should mention {needle:?}"),
                allowed => panic!("expected a denial mentioning {needle:?}, got {allowed:?}"),
            }
        }
        let raw_grant = GrantTerms { min_interval_mins: None, history_days: None, ..g };
        assert!(decide(&third, &ds, &[raw_grant], &read(Resolution::Raw, 365), now()).is_allowed());
    }

    #[test]
    fn string_forms_round_trip() {
        for c in Classification::ALL {
            assert_eq!(c.as_str().parse::<Classification>().unwrap(), *c);
        }
        assert!("secret".parse::<Classification>().unwrap_err().contains("open, internal"));
        assert_eq!("third_party".parse::<OrgKind>().unwrap(), OrgKind::ThirdParty);
        assert_eq!("data_owner".parse::<Role>().unwrap(), Role::DataOwner);
    }
}
