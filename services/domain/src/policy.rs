//! The access policy, in one place: every read path asks [`decide`].
//!
//! - `open`: anyone, without a key;
//! - `internal`: principals of the owner and of organisations of the same
//!   municipality ("Konzern Stadt"), or holders of a valid grant;
//! - `restricted`: the owner and holders of a valid grant;
//! - `personal`: the owner only, and only aggregates of the fixed 15-minute
//!   grid whose cells hold at least the dataset's minimum count (smaller cells
//!   are withheld and count in no larger bucket); never min/max.
//!
//! A grant allows reads within its validity, resolution (raw or aggregates of
//! at least N minutes) and history window; anything beyond is denied with the
//! limit that was hit. The platform operator (the bootstrap token of
//! municipal IT) may read everything but personal raw data.
//!
//! An allowed read carries a [`Release`]: what may leave. Aggregates under an
//! aggregate-only grant or of personal data lie on an epoch-aligned grid: the
//! interval must be a whole multiple of the grid (else the read is denied)
//! and [`Release::snap`] shrinks the range to whole, completed buckets. Every
//! released bucket is then a union of whole grid cells, so no difference of
//! two answers (other ranges, other widths) isolates less than one cell.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::ROLLUP_SECS;

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

        /// The stored text form (the store decodes its columns with it).
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
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
    /// `None` for datastreams not (yet) assigned to a dataset: they are read
    /// as an `internal` dataset of their thing's organisation, and no grant
    /// applies to them.
    pub id: Option<i64>,
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

/// What an allowed read may release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Raw readings, and aggregates of any interval over any range.
    Exact,
    /// Aggregates only, on the epoch-aligned grid of `grid_secs` (an
    /// aggregate-only grant of N minutes): whole multiples of the grid,
    /// whole and completed buckets.
    Grid { grid_secs: i64 },
    /// Personal data: aggregates of the fixed 15-minute grid (the rollup's
    /// cells) like [`Release::Grid`]; a cell of fewer than `min_count`
    /// readings is withheld and counts in no larger bucket, a bucket of fewer
    /// than `min_count` is withheld, and min/max are never released.
    Personal { min_count: i32 },
}

impl Release {
    /// What a read under `grant` may release.
    fn of_grant(grant: &GrantTerms) -> Release {
        match grant.min_interval_mins {
            Some(mins) => Release::Grid { grid_secs: i64::from(mins) * 60 },
            None => Release::Exact,
        }
    }

    /// The grid buckets must lie on, in seconds; `None`: no grid.
    pub fn grid_secs(self) -> Option<i64> {
        match self {
            Release::Exact => None,
            Release::Grid { grid_secs } => Some(grid_secs),
            Release::Personal { .. } => Some(ROLLUP_SECS),
        }
    }

    /// The minimum number of readings of a released cell and bucket (personal data).
    pub fn min_count(self) -> Option<i32> {
        match self {
            Release::Personal { min_count } => Some(min_count),
            _ => None,
        }
    }

    /// Why `request` does not fit the grid; `None` when it does.
    fn misfit(self, request: &ReadRequest) -> Option<String> {
        let grid = self.grid_secs()?;
        match request.resolution {
            Resolution::Raw => Some("raw readings are not released, only aggregates".into()),
            Resolution::Aggregate { interval_secs } if interval_secs <= 0 || interval_secs % grid != 0 => {
                let mins = grid / 60;
                Some(format!(
                    "the interval must be a whole multiple of {mins} minutes (buckets lie on the epoch-aligned {mins}-minute grid); {interval_secs} s is not"
                ))
            }
            Resolution::Aggregate { .. } => None,
        }
    }

    /// The part of `request` that may be released at `now`: on a grid, the
    /// range shrinks to the whole buckets of the interval (epoch-aligned)
    /// that lie within it and have ended by `now` (a bucket still filling
    /// would give away each new reading by difference); an empty range
    /// (`from == to`) when none does.
    pub fn snap(self, request: &ReadRequest, now: DateTime<Utc>) -> ReadRequest {
        let (Some(_), Resolution::Aggregate { interval_secs }) = (self.grid_secs(), request.resolution) else {
            return *request;
        };
        let step = interval_secs.saturating_mul(1_000_000).max(1);
        let from = ceil_to(request.from, step);
        let to = floor_to(request.to.min(now), step);
        match (from, to) {
            (Some(from), Some(to)) if from < to => ReadRequest { from, to, ..*request },
            (from, _) => {
                let at = from.unwrap_or(request.from);
                ReadRequest { from: at, to: at, ..*request }
            }
        }
    }
}

/// `t` rounded down to a multiple of `step_micros` since the epoch.
fn floor_to(t: DateTime<Utc>, step_micros: i64) -> Option<DateTime<Utc>> {
    let micros = t.timestamp_micros();
    DateTime::from_timestamp_micros(micros.div_euclid(step_micros).checked_mul(step_micros)?)
}

/// `t` rounded up to a multiple of `step_micros` since the epoch.
fn ceil_to(t: DateTime<Utc>, step_micros: i64) -> Option<DateTime<Utc>> {
    let down = floor_to(t, step_micros)?;
    if down == t {
        Some(t)
    } else {
        down.checked_add_signed(Duration::microseconds(step_micros))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; `release` says what may leave (see [`Release::snap`]).
    Allow {
        via: Via,
        release: Release,
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

/// What an export of `dataset` reads: raw readings, or for personal data the
/// 15-minute grid (raw personal data leaves for nobody).
pub fn export_resolution(dataset: &DatasetAccess) -> Resolution {
    match dataset.classification {
        Classification::Personal => Resolution::Aggregate { interval_secs: ROLLUP_SECS },
        _ => Resolution::Raw,
    }
}

/// Whether the caller may read some aggregates of the dataset's last day:
/// daily ones, or those of a grant's own grid (which a day need not be a
/// multiple of). The rule for showing metadata.
pub fn may_read_aggregates(
    caller: &Caller,
    dataset: &DatasetAccess,
    grants: &[GrantTerms],
    now: DateTime<Utc>,
) -> bool {
    let last_day = |interval_secs| ReadRequest {
        resolution: Resolution::Aggregate { interval_secs },
        from: now - Duration::days(1),
        to: now,
    };
    decide(caller, dataset, grants, &last_day(86_400), now).is_allowed()
        || grants
            .iter()
            .filter_map(|g| g.min_interval_mins)
            .any(|mins| decide(caller, dataset, grants, &last_day(i64::from(mins) * 60), now).is_allowed())
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
    if personal && request.resolution == Resolution::Raw {
        return deny(format!(
            "dataset {} holds personal data: only aggregates of at least {} readings per bucket are released",
            dataset.slug, dataset.min_bucket_count
        ));
    }
    // Who may read personal data reads it under the personal rule.
    let allow = |via: Via| {
        if !personal {
            return Decision::Allow { via, release: Release::Exact };
        }
        let release = Release::Personal { min_count: dataset.min_bucket_count };
        match release.misfit(request) {
            Some(why) => deny(format!("dataset {} holds personal data: {why}", dataset.slug)),
            None => Decision::Allow { via, release },
        }
    };
    let principal = match caller {
        Caller::Operator => return allow(Via::Operator),
        _ if dataset.classification == Classification::Open => return allow(Via::Open),
        Caller::Anonymous => {
            return deny(format!(
                "dataset {} is {}: present an API key or a bearer token",
                dataset.slug, dataset.classification
            ));
        }
        Caller::Principal(p) => p,
    };
    if principal.org_id == dataset.owner_org_id {
        return allow(Via::Owner);
    }
    if personal {
        return deny(format!("dataset {} holds personal data: only its owner organisation may read it", dataset.slug));
    }
    if dataset.classification == Classification::Internal
        && principal.municipality_id.is_some()
        && principal.municipality_id == dataset.owner_municipality_id
    {
        return allow(Via::SameMunicipality);
    }
    let mut reason = None;
    let mut allowing = Vec::new();
    for grant in grants.iter().filter(|g| g.grantee_org_id == principal.org_id && Some(g.dataset_id) == dataset.id) {
        match check_grant(grant, request, now) {
            Ok(()) => allowing.push(grant),
            Err(why) => reason = reason.or(Some(why)),
        }
    }
    // Of several grants that allow the read, the one with the finest resolution decides what leaves.
    if let Some(grant) = allowing.into_iter().min_by_key(|g| g.min_interval_mins.unwrap_or(0)) {
        return Decision::Allow { via: Via::Grant(grant.clone()), release: Release::of_grant(grant) };
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
        if let Some(why) = Release::of_grant(grant).misfit(request) {
            return Err(format!("grant {id}: {why}"));
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
            id: Some(7),
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
    fn no_grant_opens_datastreams_outside_any_dataset() {
        let unassigned = DatasetAccess { id: None, ..dataset(Classification::Internal) };
        let decision = decide(&principal(9, None), &unassigned, &[grant(9)], &read(AGG_15, 1), now());
        assert!(matches!(decision, Decision::Deny { ref reason } if reason.contains("holds no grant")), "{decision:?}");
        assert!(decide(&principal(1, Some(1)), &unassigned, &[], &read(Resolution::Raw, 1), now()).is_allowed());
    }

    #[test]
    fn personal_data_is_owner_only_and_aggregate_only() {
        let ds = dataset(Classification::Personal);
        let raw = decide(&principal(1, Some(1)), &ds, &[], &read(Resolution::Raw, 1), now());
        assert!(matches!(raw, Decision::Deny { ref reason } if reason.contains("personal")));
        let agg = decide(&principal(1, Some(1)), &ds, &[], &read(AGG_15, 1), now());
        assert_eq!(agg, Decision::Allow { via: Via::Owner, release: Release::Personal { min_count: 5 } });
        assert!(!decide(&principal(2, Some(1)), &ds, &[], &read(AGG_15, 1), now()).is_allowed());
        assert!(!decide(&principal(9, None), &ds, &[grant(9)], &read(AGG_15, 1), now()).is_allowed());
        assert_eq!(
            decide(&Caller::Operator, &ds, &[], &read(Resolution::Aggregate { interval_secs: 3600 }, 1), now()),
            Decision::Allow { via: Via::Operator, release: Release::Personal { min_count: 5 } }
        );
    }

    #[test]
    fn personal_aggregates_lie_on_the_fixed_15_minute_grid_without_extremes() {
        let ds = dataset(Classification::Personal);
        for caller in [principal(1, Some(1)), Caller::Operator] {
            for secs in [60, 600, 960, 1_000, 86_400 + 60] {
                match decide(&caller, &ds, &[], &read(Resolution::Aggregate { interval_secs: secs }, 1), now()) {
                    Decision::Deny { reason } => {
                        assert!(
                            reason.contains("personal") && reason.contains("whole multiple of 15 minutes"),
                            "{reason}"
                        )
                    }
                    allowed => panic!("{secs} s should be off the 15-minute grid: {allowed:?}"),
                }
            }
        }
        let release = Release::Personal { min_count: 5 };
        assert_eq!(release.grid_secs(), Some(900));
        assert_eq!(release.min_count(), Some(5));
        assert_eq!(Release::Grid { grid_secs: 900 }.min_count(), None);
    }

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, h, m, s).unwrap()
    }

    #[test]
    fn a_grid_release_keeps_only_whole_completed_buckets() {
        let grid = Release::Grid { grid_secs: 900 };
        let agg =
            |interval_secs, from, to| ReadRequest { resolution: Resolution::Aggregate { interval_secs }, from, to };
        // The attack: a "bucket" of one microsecond.
        let tiny = grid.snap(&agg(900, at(10, 0, 0), at(10, 0, 0) + Duration::microseconds(1)), now());
        assert_eq!(tiny.from, tiny.to, "nothing whole remains: {tiny:?}");
        // from rounds up, to rounds down, on the interval's grid.
        let snapped = grid.snap(&agg(900, at(10, 7, 0), at(11, 52, 0)), now());
        assert_eq!((snapped.from, snapped.to), (at(10, 15, 0), at(11, 45, 0)));
        let hourly = grid.snap(&agg(3600, at(10, 7, 0), at(11, 52, 0)), now());
        assert_eq!((hourly.from, hourly.to), (at(11, 0, 0), at(11, 0, 0)), "no whole hour in 10:07 to 11:52");
        // A bucket still filling is not released.
        let late = grid.snap(&agg(900, at(11, 0, 0), at(13, 0, 0)), at(11, 40, 0));
        assert_eq!((late.from, late.to), (at(11, 0, 0), at(11, 30, 0)));
        // Every boundary of every width allowed lies on the grid: differences of answers are whole cells.
        for interval in [900, 1800, 2700, 3600, 86_400] {
            for offset in [0, 1, 59, 450, 899, 901, 3599] {
                let from = at(0, 0, 0) + Duration::seconds(offset);
                let r = grid.snap(&agg(interval, from, from + Duration::hours(30)), now() + Duration::days(2));
                for t in [r.from, r.to] {
                    assert_eq!(t.timestamp_micros() % 900_000_000, 0, "{interval} s from {from}: {t}");
                    assert_eq!(t.timestamp_micros() % (interval * 1_000_000), 0, "whole buckets of the interval");
                }
                assert!(r.from >= from && r.to <= from + Duration::hours(30), "within the range asked for");
            }
        }
        let raw = ReadRequest { resolution: Resolution::Raw, from: at(10, 7, 0), to: at(10, 8, 0) };
        assert_eq!(Release::Exact.snap(&raw, now()), raw, "exact reads are not touched");
        let exact = agg(900, at(10, 7, 0), at(10, 8, 0));
        assert_eq!(Release::Exact.snap(&exact, now()), exact);
    }

    #[test]
    fn metadata_is_visible_to_a_grantee_whose_grid_does_not_divide_a_day() {
        let ds = dataset(Classification::Restricted);
        let seven = GrantTerms { min_interval_mins: Some(7), ..grant(9) };
        let third = principal(9, None);
        assert!(!decide(
            &third,
            &ds,
            std::slice::from_ref(&seven),
            &read(Resolution::Aggregate { interval_secs: 86_400 }, 1),
            now()
        )
        .is_allowed());
        assert!(may_read_aggregates(&third, &ds, &[seven], now()));
        assert!(!may_read_aggregates(&third, &ds, &[], now()));
    }

    #[test]
    fn of_several_grants_the_finest_decides_what_leaves() {
        let ds = dataset(Classification::Restricted);
        let third = principal(9, None);
        let raw = GrantTerms { id: 4, min_interval_mins: None, ..grant(9) };
        match decide(&third, &ds, &[grant(9), raw], &read(AGG_15, 1), now()) {
            Decision::Allow { via: Via::Grant(g), release: Release::Exact } => assert_eq!(g.id, 4),
            other => panic!("the raw grant should decide: {other:?}"),
        }
        assert_eq!(
            decide(&third, &ds, &[grant(9)], &read(AGG_15, 1), now()),
            Decision::Allow { via: Via::Grant(grant(9)), release: Release::Grid { grid_secs: 900 } }
        );
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
            (g.clone(), read(Resolution::Aggregate { interval_secs: 960 }, 1), "whole multiple of 15 minutes"),
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
