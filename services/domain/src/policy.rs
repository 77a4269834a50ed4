//! The access policy, in one place: every read path asks [`decide`] (an
//! export [`decide_export`]); what a caller may see of a dataset and its
//! datastreams without reading them is [`visibility`]. A denial carries a
//! [`DenyReason`]: a stable machine code ([`DenyCode`]) and the reason in words.
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

use chrono::{DateTime, Duration, TimeZone, Utc};
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
    /// `publisher`: a device's or gateway's service account, which writes
    /// readings and reads nothing but open data.
    Role { Admin => "admin", DataOwner => "data_owner", Reader => "reader", Publisher => "publisher" }
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

impl ReadRequest {
    /// A read over `[from, to)`; an open end reaches the end of the time axis
    /// (the years 1 and 9999): an export, a SensorThings query without bounds.
    pub fn spanning(resolution: Resolution, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> ReadRequest {
        let earliest = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).single().expect("year 1 exists");
        let latest = Utc.with_ymd_and_hms(9999, 12, 31, 0, 0, 0).single().expect("year 9999 exists");
        ReadRequest { resolution, from: from.unwrap_or(earliest), to: to.unwrap_or(latest) }
    }
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

    /// Whether `request` lies off the grid: raw readings, or an interval that
    /// is not a whole multiple of it. Always `false` without a grid.
    fn misfits(self, request: &ReadRequest) -> bool {
        let Some(grid) = self.grid_secs() else { return false };
        match request.resolution {
            Resolution::Raw => true,
            Resolution::Aggregate { interval_secs } => interval_secs <= 0 || interval_secs % grid != 0,
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

string_enum!(
    /// The stable machine code of a [`DenyReason`], one per variant: the
    /// `code` member of a denied request's problem+json answer.
    DenyCode {
        NotAuthenticated => "not_authenticated",
        NoGrant => "no_grant",
        GrantRevoked => "grant_revoked",
        GrantNotYetValid => "grant_not_yet_valid",
        GrantExpired => "grant_expired",
        RawNotGranted => "raw_not_granted",
        IntervalBelowGrant => "interval_below_grant",
        IntervalOffGrid => "interval_off_grid",
        OutsideGrantWindow => "outside_grant_window",
        PersonalRaw => "personal_raw",
        PersonalOffGrid => "personal_off_grid",
        PersonalNotOwner => "personal_not_owner",
        NotDataOwner => "not_data_owner",
        NotVisible => "not_visible",
        WriteOnly => "write_only",
    }
);

/// Why the policy denies: a stable [`DenyCode`] per variant
/// ([`DenyReason::code`]) and, as its `Display`, the reason a person can act
/// on (the limit that was hit, the grant, the dataset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyReason {
    /// An anonymous caller asks for data that is not open.
    NotAuthenticated {
        dataset: String,
        classification: Classification,
    },
    /// The caller's organisation holds no grant for the dataset.
    NoGrant {
        dataset: String,
        classification: Classification,
        org: String,
    },
    GrantRevoked {
        grant: i64,
        at: DateTime<Utc>,
    },
    GrantNotYetValid {
        grant: i64,
        from: DateTime<Utc>,
    },
    GrantExpired {
        grant: i64,
        at: DateTime<Utc>,
    },
    /// Raw readings under an aggregate-only grant.
    RawNotGranted {
        grant: i64,
        min_interval_mins: i32,
    },
    /// Aggregates finer than the grant allows.
    IntervalBelowGrant {
        grant: i64,
        min_interval_mins: i32,
        interval_secs: i64,
    },
    /// An interval that is not a whole multiple of the grant's grid.
    IntervalOffGrid {
        grant: i64,
        grid_secs: i64,
        interval_secs: i64,
    },
    /// A range that starts before the grant's history window.
    OutsideGrantWindow {
        grant: i64,
        days: i32,
        earliest: DateTime<Utc>,
        from: DateTime<Utc>,
    },
    /// Raw readings of personal data (they leave for nobody).
    PersonalRaw {
        dataset: String,
        min_count: i32,
    },
    /// Aggregates of personal data off the fixed 15-minute grid.
    PersonalOffGrid {
        dataset: String,
        interval_secs: i64,
    },
    /// Personal data, asked for by someone other than its owner.
    PersonalNotOwner {
        dataset: String,
    },
    /// An export by someone other than the owner's admins and data owners.
    NotDataOwner {
        owner: String,
        dataset: String,
    },
    /// Metadata of a dataset, or of one of its datastreams, that the caller
    /// may not see at all ([`Visibility::Hidden`]).
    NotVisible {
        dataset: String,
        classification: Classification,
        datastream: Option<crate::DatastreamId>,
    },
    /// A publisher key (write only) asks to read data that is not open.
    WriteOnly {
        dataset: String,
    },
}

impl DenyReason {
    pub fn code(&self) -> DenyCode {
        match self {
            DenyReason::NotAuthenticated { .. } => DenyCode::NotAuthenticated,
            DenyReason::NoGrant { .. } => DenyCode::NoGrant,
            DenyReason::GrantRevoked { .. } => DenyCode::GrantRevoked,
            DenyReason::GrantNotYetValid { .. } => DenyCode::GrantNotYetValid,
            DenyReason::GrantExpired { .. } => DenyCode::GrantExpired,
            DenyReason::RawNotGranted { .. } => DenyCode::RawNotGranted,
            DenyReason::IntervalBelowGrant { .. } => DenyCode::IntervalBelowGrant,
            DenyReason::IntervalOffGrid { .. } => DenyCode::IntervalOffGrid,
            DenyReason::OutsideGrantWindow { .. } => DenyCode::OutsideGrantWindow,
            DenyReason::PersonalRaw { .. } => DenyCode::PersonalRaw,
            DenyReason::PersonalOffGrid { .. } => DenyCode::PersonalOffGrid,
            DenyReason::PersonalNotOwner { .. } => DenyCode::PersonalNotOwner,
            DenyReason::NotDataOwner { .. } => DenyCode::NotDataOwner,
            DenyReason::NotVisible { .. } => DenyCode::NotVisible,
            DenyReason::WriteOnly { .. } => DenyCode::WriteOnly,
        }
    }
}

/// Why an interval lies off a grid of `grid_secs`.
fn off_grid(f: &mut fmt::Formatter<'_>, grid_secs: i64, interval_secs: i64) -> fmt::Result {
    let mins = grid_secs / 60;
    write!(
        f,
        "the interval must be a whole multiple of {mins} minutes (buckets lie on the epoch-aligned {mins}-minute grid); {interval_secs} s is not"
    )
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenyReason::NotAuthenticated { dataset, classification } => {
                write!(f, "dataset {dataset} is {classification}: present an API key or a bearer token")
            }
            DenyReason::NoGrant { dataset, classification, org } => {
                write!(f, "dataset {dataset} is {classification} and organisation {org} holds no grant for it")
            }
            DenyReason::GrantRevoked { grant, at } => write!(f, "grant {grant} was revoked at {}", at.to_rfc3339()),
            DenyReason::GrantNotYetValid { grant, from } => {
                write!(f, "grant {grant} is valid only from {}", from.to_rfc3339())
            }
            DenyReason::GrantExpired { grant, at } => write!(f, "grant {grant} expired at {}", at.to_rfc3339()),
            DenyReason::RawNotGranted { grant, min_interval_mins } => write!(
                f,
                "grant {grant} allows only aggregates of at least {min_interval_mins} minutes, not raw readings"
            ),
            DenyReason::IntervalBelowGrant { grant, min_interval_mins, interval_secs } => write!(
                f,
                "grant {grant} allows only aggregates of at least {min_interval_mins} minutes; {interval_secs} s is finer"
            ),
            DenyReason::IntervalOffGrid { grant, grid_secs, interval_secs } => {
                write!(f, "grant {grant}: ")?;
                off_grid(f, *grid_secs, *interval_secs)
            }
            DenyReason::OutsideGrantWindow { grant, days, earliest, from } => write!(
                f,
                "grant {grant} covers only the last {days} days (from {}); the request starts at {}",
                earliest.to_rfc3339(),
                from.to_rfc3339()
            ),
            DenyReason::PersonalRaw { dataset, min_count } => write!(
                f,
                "dataset {dataset} holds personal data: only aggregates of at least {min_count} readings per bucket are released"
            ),
            DenyReason::PersonalOffGrid { dataset, interval_secs } => {
                write!(f, "dataset {dataset} holds personal data: ")?;
                off_grid(f, ROLLUP_SECS, *interval_secs)
            }
            DenyReason::PersonalNotOwner { dataset } => {
                write!(f, "dataset {dataset} holds personal data: only its owner organisation may read it")
            }
            DenyReason::NotDataOwner { owner, dataset } => {
                write!(f, "only admins and data owners of {owner} may export dataset {dataset}")
            }
            DenyReason::NotVisible { dataset, datastream: Some(id), .. } => {
                write!(f, "datastream {id} belongs to dataset {dataset}, which this caller may not read")
            }
            DenyReason::NotVisible { dataset, classification, datastream: None } => {
                write!(f, "dataset {dataset} is {classification} and not shared with this caller")
            }
            DenyReason::WriteOnly { dataset } => write!(
                f,
                "publisher keys write readings and read only open data; dataset {dataset} is not open (use a reader key)"
            ),
        }
    }
}

impl std::error::Error for DenyReason {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; `release` says what may leave (see [`Release::snap`]).
    Allow {
        via: Via,
        release: Release,
    },
    Deny {
        reason: DenyReason,
    },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

fn deny(reason: DenyReason) -> Decision {
    Decision::Deny { reason }
}

/// What a caller may see of a dataset and its datastreams, from nothing to
/// everything; each level includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Visibility {
    /// Nothing, not even that it exists.
    Hidden,
    /// The dataset's metadata, not its datastreams: the caller's
    /// organisation holds a grant in force or still to come that allows no
    /// read of the last day now (not yet valid, no history, personal data).
    Metadata,
    /// The dataset and its datastreams, and some aggregates of the last day
    /// (daily ones, or on the grid of an aggregate-only grant); no raw
    /// readings, so no latest value.
    Aggregates,
    /// Everything: a raw read of the last hour would be allowed now, so the
    /// latest value is shown too.
    Raw,
}

impl Visibility {
    /// Whether the dataset is listed (`/v1/datasets`).
    pub fn shows_dataset(self) -> bool {
        self >= Visibility::Metadata
    }

    /// Whether its datastreams are listed (`/v1/datastreams`, live values, SensorThings).
    pub fn shows_datastreams(self) -> bool {
        self >= Visibility::Aggregates
    }

    /// Whether a datastream's latest value is shown.
    pub fn shows_latest_value(self) -> bool {
        self == Visibility::Raw
    }
}

/// What the caller is to the dataset before any grant or request is looked at.
enum Standing<'c> {
    /// Reads under a rule of its own.
    Reads(Via),
    /// A principal that may read only under a grant of its organisation.
    NeedsGrant(&'c Principal),
    Refused(DenyReason),
}

fn standing<'c>(caller: &'c Caller, dataset: &DatasetAccess) -> Standing<'c> {
    let principal = match caller {
        Caller::Operator => return Standing::Reads(Via::Operator),
        _ if dataset.classification == Classification::Open => return Standing::Reads(Via::Open),
        Caller::Anonymous => {
            return Standing::Refused(DenyReason::NotAuthenticated {
                dataset: dataset.slug.clone(),
                classification: dataset.classification,
            });
        }
        Caller::Principal(p) if p.role == Role::Publisher => {
            return Standing::Refused(DenyReason::WriteOnly { dataset: dataset.slug.clone() });
        }
        Caller::Principal(p) => p,
    };
    if principal.org_id == dataset.owner_org_id {
        return Standing::Reads(Via::Owner);
    }
    if dataset.classification == Classification::Personal {
        return Standing::Refused(DenyReason::PersonalNotOwner { dataset: dataset.slug.clone() });
    }
    if dataset.classification == Classification::Internal
        && principal.municipality_id.is_some()
        && principal.municipality_id == dataset.owner_municipality_id
    {
        return Standing::Reads(Via::SameMunicipality);
    }
    Standing::NeedsGrant(principal)
}

/// The grants among `grants` that `principal`'s organisation holds on `dataset`.
fn grants_on<'g>(
    principal: &Principal,
    dataset: &DatasetAccess,
    grants: &'g [GrantTerms],
) -> impl Iterator<Item = &'g GrantTerms> {
    let (org, dataset) = (principal.org_id, dataset.id);
    grants.iter().filter(move |g| g.grantee_org_id == org && Some(g.dataset_id) == dataset)
}

/// What the caller may see of `dataset` at `now`; `grants` are the grants
/// held by the caller's organisation (others are ignored). The levels are
/// those of [`decide`]: [`Visibility::Raw`] exactly when a raw read of the
/// last hour would be allowed, at least [`Visibility::Aggregates`] when some
/// aggregate read of the last day would be (daily, or on a grant's grid,
/// which a day need not be a multiple of), at least
/// [`Visibility::Metadata`] while the caller's organisation holds a grant on
/// it that is neither revoked nor expired (it may not have started yet).
/// The owner's admins and data owners and the operator read it anyway.
pub fn visibility(caller: &Caller, dataset: &DatasetAccess, grants: &[GrantTerms], now: DateTime<Utc>) -> Visibility {
    let under_grants = || {
        caller
            .principal()
            .and_then(|p| grants_on(p, dataset, grants).map(|g| grant_visibility(g, now)).max())
            .unwrap_or(Visibility::Hidden)
    };
    match standing(caller, dataset) {
        // Raw personal readings leave for nobody; aggregates of a day lie on the 15-minute grid.
        Standing::Reads(_) if dataset.classification == Classification::Personal => Visibility::Aggregates,
        Standing::Reads(_) => Visibility::Raw,
        Standing::NeedsGrant(_) => under_grants(),
        Standing::Refused(DenyReason::WriteOnly { .. }) => Visibility::Hidden,
        // A grant on personal data lets its holder read nothing, but shows the dataset.
        Standing::Refused(_) => under_grants().min(Visibility::Metadata),
    }
}

/// What a grant shows at `now`: see [`visibility`].
fn grant_visibility(grant: &GrantTerms, now: DateTime<Utc>) -> Visibility {
    if grant.revoked_at.is_some() || now >= grant.valid_until {
        return Visibility::Hidden;
    }
    // A grant in force reaches the last hour and the last day when its history is at least a day.
    if now < grant.valid_from || grant.history_days.is_some_and(|days| days < 1) {
        return Visibility::Metadata;
    }
    match grant.min_interval_mins {
        None => Visibility::Raw,
        Some(mins) if mins >= 1 => Visibility::Aggregates,
        Some(_) => Visibility::Metadata,
    }
}

/// What an export of `dataset` reads: every raw reading, or for personal
/// data the 15-minute grid (raw personal data leaves for nobody).
pub fn export_request(dataset: &DatasetAccess) -> ReadRequest {
    let resolution = match dataset.classification {
        Classification::Personal => Resolution::Aggregate { interval_secs: ROLLUP_SECS },
        _ => Resolution::Raw,
    };
    ReadRequest::spanning(resolution, None, None)
}

/// Decides an export of `dataset` (owned by the organisation `owner`): for
/// the owner's admins and data owners and the operator only (no lock-in),
/// and then like any read of [`export_request`].
pub fn decide_export(
    caller: &Caller,
    dataset: &DatasetAccess,
    owner: &str,
    grants: &[GrantTerms],
    now: DateTime<Utc>,
) -> Decision {
    if !caller.owns_data_of(dataset.owner_org_id) {
        return deny(DenyReason::NotDataOwner { owner: owner.to_owned(), dataset: dataset.slug.clone() });
    }
    decide(caller, dataset, grants, &export_request(dataset), now)
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
        return deny(DenyReason::PersonalRaw { dataset: dataset.slug.clone(), min_count: dataset.min_bucket_count });
    }
    match standing(caller, dataset) {
        // Who may read personal data reads it under the personal rule.
        Standing::Reads(via) if personal => {
            let release = Release::Personal { min_count: dataset.min_bucket_count };
            match request.resolution {
                Resolution::Aggregate { interval_secs } if release.misfits(request) => {
                    deny(DenyReason::PersonalOffGrid { dataset: dataset.slug.clone(), interval_secs })
                }
                _ => Decision::Allow { via, release },
            }
        }
        Standing::Reads(via) => Decision::Allow { via, release: Release::Exact },
        Standing::Refused(reason) => deny(reason),
        Standing::NeedsGrant(principal) => decide_by_grants(principal, dataset, grants, request, now),
    }
}

/// A read that only a grant can allow: of the grants that allow it, the one
/// with the finest resolution decides what leaves; if none does, the first
/// grant's reason, or that there is no grant.
fn decide_by_grants(
    principal: &Principal,
    dataset: &DatasetAccess,
    grants: &[GrantTerms],
    request: &ReadRequest,
    now: DateTime<Utc>,
) -> Decision {
    let mut reason = None;
    let mut allowing = Vec::new();
    for grant in grants_on(principal, dataset, grants) {
        match check_grant(grant, request, now) {
            Ok(()) => allowing.push(grant),
            Err(why) => reason = reason.or(Some(why)),
        }
    }
    if let Some(grant) = allowing.into_iter().min_by_key(|g| g.min_interval_mins.unwrap_or(0)) {
        return Decision::Allow { via: Via::Grant(grant.clone()), release: Release::of_grant(grant) };
    }
    deny(reason.unwrap_or_else(|| DenyReason::NoGrant {
        dataset: dataset.slug.clone(),
        classification: dataset.classification,
        org: principal.org_slug.clone(),
    }))
}

/// Where a grant stands at a time: the one rule of the policy and of what a
/// grantee is shown of its grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantStanding {
    InForce,
    Revoked(DateTime<Utc>),
    NotYetValid,
    Expired,
}

impl GrantTerms {
    pub fn standing(&self, now: DateTime<Utc>) -> GrantStanding {
        if let Some(at) = self.revoked_at {
            GrantStanding::Revoked(at)
        } else if now < self.valid_from {
            GrantStanding::NotYetValid
        } else if now >= self.valid_until {
            GrantStanding::Expired
        } else {
            GrantStanding::InForce
        }
    }
}

fn check_grant(grant: &GrantTerms, request: &ReadRequest, now: DateTime<Utc>) -> Result<(), DenyReason> {
    let id = grant.id;
    match grant.standing(now) {
        GrantStanding::Revoked(at) => return Err(DenyReason::GrantRevoked { grant: id, at }),
        GrantStanding::NotYetValid => return Err(DenyReason::GrantNotYetValid { grant: id, from: grant.valid_from }),
        GrantStanding::Expired => return Err(DenyReason::GrantExpired { grant: id, at: grant.valid_until }),
        GrantStanding::InForce => {}
    }
    if let Some(mins) = grant.min_interval_mins {
        let interval_secs = match request.resolution {
            Resolution::Raw => return Err(DenyReason::RawNotGranted { grant: id, min_interval_mins: mins }),
            Resolution::Aggregate { interval_secs } => interval_secs,
        };
        if interval_secs < i64::from(mins) * 60 {
            return Err(DenyReason::IntervalBelowGrant { grant: id, min_interval_mins: mins, interval_secs });
        }
        let release = Release::of_grant(grant);
        if release.misfits(request) {
            let grid_secs = release.grid_secs().unwrap_or_default();
            return Err(DenyReason::IntervalOffGrid { grant: id, grid_secs, interval_secs });
        }
    }
    if let Some(days) = grant.history_days {
        let earliest = now - Duration::days(i64::from(days));
        if request.from < earliest {
            return Err(DenyReason::OutsideGrantWindow { grant: id, days, earliest, from: request.from });
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
        assert!(matches!(decision, Decision::Deny { reason: DenyReason::NoGrant { .. } }), "{decision:?}");
        assert!(decide(&principal(1, Some(1)), &unassigned, &[], &read(Resolution::Raw, 1), now()).is_allowed());
    }

    #[test]
    fn personal_data_is_owner_only_and_aggregate_only() {
        let ds = dataset(Classification::Personal);
        let raw = decide(&principal(1, Some(1)), &ds, &[], &read(Resolution::Raw, 1), now());
        assert!(matches!(raw, Decision::Deny { ref reason } if reason.code() == DenyCode::PersonalRaw), "{raw:?}");
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
                    Decision::Deny { reason: DenyReason::PersonalOffGrid { dataset, interval_secs } } => {
                        assert_eq!((dataset.as_str(), interval_secs), ("verkehr", secs))
                    }
                    other => panic!("{secs} s should be off the 15-minute grid: {other:?}"),
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
        assert_eq!(visibility(&third, &ds, &[seven], now()), Visibility::Aggregates);
        assert_eq!(visibility(&third, &ds, &[], now()), Visibility::Hidden);
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
            (g.clone(), read(Resolution::Raw, 1), DenyCode::RawNotGranted),
            (g.clone(), read(Resolution::Aggregate { interval_secs: 300 }, 1), DenyCode::IntervalBelowGrant),
            (g.clone(), read(Resolution::Aggregate { interval_secs: 960 }, 1), DenyCode::IntervalOffGrid),
            (g.clone(), read(AGG_15, 31), DenyCode::OutsideGrantWindow),
            (
                GrantTerms { revoked_at: Some(now() - Duration::days(1)), ..g.clone() },
                read(AGG_15, 1),
                DenyCode::GrantRevoked,
            ),
            (
                GrantTerms { valid_until: now() - Duration::seconds(1), ..g.clone() },
                read(AGG_15, 1),
                DenyCode::GrantExpired,
            ),
            (
                GrantTerms { valid_from: now() + Duration::days(1), ..g.clone() },
                read(AGG_15, 1),
                DenyCode::GrantNotYetValid,
            ),
            (GrantTerms { grantee_org_id: 8, ..g.clone() }, read(AGG_15, 1), DenyCode::NoGrant),
            (GrantTerms { dataset_id: 8, ..g.clone() }, read(AGG_15, 1), DenyCode::NoGrant),
        ];
        for (grant, request, code) in cases {
            match decide(&third, &ds, &[grant], &request, now()) {
                Decision::Deny { reason } => assert_eq!(reason.code(), code, "{reason}"),
                allowed => panic!("expected a denial {code}, got {allowed:?}"),
            }
        }
        let raw_grant = GrantTerms { min_interval_mins: None, history_days: None, ..g };
        assert!(decide(&third, &ds, &[raw_grant], &read(Resolution::Raw, 365), now()).is_allowed());
    }

    /// What the API made of the policy before [`visibility`]: it probed
    /// [`decide`] with a raw read of the last hour and aggregate reads of the
    /// last day, and showed datasets to holders of a live grant and to owners.
    /// (dataset listed, datastreams listed, latest value shown)
    fn probed(caller: &Caller, dataset: &DatasetAccess, held: &[GrantTerms]) -> (bool, bool, bool) {
        let now = now();
        let hour = ReadRequest { resolution: Resolution::Raw, from: now - Duration::hours(1), to: now };
        let day = |interval_secs| ReadRequest {
            resolution: Resolution::Aggregate { interval_secs },
            from: now - Duration::days(1),
            to: now,
        };
        let allowed = |request: &ReadRequest| decide(caller, dataset, held, request, now).is_allowed();
        let raw = allowed(&hour);
        let daily = allowed(&day(86_400));
        let on_a_grid = held.iter().filter_map(|g| g.min_interval_mins).any(|m| allowed(&day(i64::from(m) * 60)));
        // (`held` were the grants of the caller's organisation on this dataset: none for anonymous callers and the operator)
        let org = caller.principal().map(|p| p.org_id);
        let live = held
            .iter()
            .filter(|g| Some(g.grantee_org_id) == org && Some(g.dataset_id) == dataset.id)
            .any(|g| g.revoked_at.is_none() && now < g.valid_until);
        (daily || live || caller.owns_data_of(dataset.owner_org_id), raw || daily || on_a_grid, raw)
    }

    #[test]
    fn visibility_is_what_a_read_of_the_recent_past_would_get() {
        let admin = |org_id, municipality_id| match principal(org_id, municipality_id) {
            Caller::Principal(p) => Caller::Principal(Principal { role: Role::Admin, ..p }),
            other => other,
        };
        let callers = [
            Caller::Anonymous,
            Caller::Operator,
            principal(1, Some(1)),
            admin(1, Some(1)),
            principal(2, Some(1)),
            admin(2, Some(1)),
            principal(3, Some(3)),
            principal(9, None),
        ];
        let terms = |org_id| {
            let g = grant(org_id);
            let raw = GrantTerms { min_interval_mins: None, ..g.clone() };
            vec![
                vec![],
                vec![g.clone()],
                vec![raw.clone()],
                vec![GrantTerms { min_interval_mins: Some(7), ..g.clone() }],
                vec![GrantTerms { history_days: Some(1), ..raw.clone() }],
                vec![GrantTerms { revoked_at: Some(now() - Duration::hours(1)), ..raw.clone() }],
                vec![GrantTerms { valid_until: now() - Duration::seconds(1), ..raw.clone() }],
                vec![GrantTerms { valid_until: now(), ..g.clone() }],
                vec![GrantTerms { valid_from: now() + Duration::days(1), ..raw.clone() }],
                vec![GrantTerms { dataset_id: 8, ..raw.clone() }],
                vec![GrantTerms { dataset_id: 8, min_interval_mins: Some(7), ..g.clone() }, g.clone()],
                vec![GrantTerms { revoked_at: Some(now()), ..raw.clone() }, g.clone()],
                vec![GrantTerms { grantee_org_id: 8, ..raw }],
            ]
        };
        for classification in Classification::ALL {
            let ds = dataset(*classification);
            for caller in &callers {
                let org = caller.principal().map_or(0, |p| p.org_id);
                for held in terms(org) {
                    let seen = visibility(caller, &ds, &held, now());
                    let got = (seen.shows_dataset(), seen.shows_datastreams(), seen.shows_latest_value());
                    assert_eq!(
                        got,
                        probed(caller, &ds, &held),
                        "{classification} by {caller:?} holding {held:?}: {seen:?}"
                    );
                }
            }
        }
    }

    fn publisher(org_id: i64) -> Caller {
        let Caller::Principal(p) = principal(org_id, Some(1)) else { unreachable!() };
        Caller::Principal(Principal { role: Role::Publisher, ..p })
    }

    #[test]
    fn publishers_read_open_data_only_even_of_their_own_organisation() {
        for classification in [Classification::Internal, Classification::Restricted, Classification::Personal] {
            let ds = dataset(classification);
            assert_eq!(visibility(&publisher(1), &ds, &[], now()), Visibility::Hidden, "{classification}");
            let held = [GrantTerms { grantee_org_id: 1, min_interval_mins: None, history_days: None, ..grant(1) }];
            assert_eq!(visibility(&publisher(1), &ds, &held, now()), Visibility::Hidden, "{classification}");
            let request = read(AGG_15, 1);
            assert!(!decide(&publisher(1), &ds, &held, &request, now()).is_allowed(), "{classification}");
        }
        let open = dataset(Classification::Open);
        assert_eq!(visibility(&publisher(1), &open, &[], now()), Visibility::Raw);
    }

    #[test]
    fn exports_are_for_the_owners_admins_and_data_owners() {
        let ds = dataset(Classification::Restricted);
        let reader = principal(1, Some(1));
        match decide_export(&reader, &ds, "stadt", &[], now()) {
            Decision::Deny { reason } => {
                assert_eq!(reason.code(), DenyCode::NotDataOwner);
                assert_eq!(reason.to_string(), "only admins and data owners of stadt may export dataset verkehr");
            }
            allowed => panic!("a reader may not export: {allowed:?}"),
        }
        let Caller::Principal(p) = reader else { unreachable!() };
        let owner = Caller::Principal(Principal { role: Role::DataOwner, ..p });
        assert_eq!(
            decide_export(&owner, &ds, "stadt", &[], now()),
            Decision::Allow { via: Via::Owner, release: Release::Exact }
        );
        let personal = dataset(Classification::Personal);
        assert_eq!(export_request(&personal).resolution, Resolution::Aggregate { interval_secs: ROLLUP_SECS });
        assert!(matches!(
            decide_export(&Caller::Operator, &personal, "stadt", &[], now()),
            Decision::Allow { release: Release::Personal { .. }, .. }
        ));
        let third = principal(9, None);
        let raw = GrantTerms { min_interval_mins: None, history_days: None, ..grant(9) };
        assert!(!decide_export(&third, &ds, "stadt", &[raw], now()).is_allowed(), "a grant is no ownership");
    }

    #[test]
    fn every_denial_has_a_stable_code_and_reads_as_before() {
        let ds = dataset(Classification::Restricted);
        let third = principal(9, None);
        let g = grant(9);
        let deny = |caller: &Caller, ds: &DatasetAccess, grants: &[GrantTerms], request: ReadRequest| match decide(
            caller,
            ds,
            grants,
            &request,
            now(),
        ) {
            Decision::Deny { reason } => reason,
            allowed => panic!("{request:?} should be denied: {allowed:?}"),
        };
        let personal = dataset(Classification::Personal);
        let reasons = [
            (deny(&Caller::Anonymous, &ds, &[], read(AGG_15, 1)), "dataset verkehr is restricted: present an API key or a bearer token"),
            (deny(&third, &ds, &[], read(AGG_15, 1)), "dataset verkehr is restricted and organisation org-9 holds no grant for it"),
            (
                deny(&third, &ds, &[GrantTerms { revoked_at: Some(now()), ..g.clone() }], read(AGG_15, 1)),
                "grant 3 was revoked at 2026-11-25T12:00:00+00:00",
            ),
            (
                deny(&third, &ds, &[GrantTerms { valid_from: now() + Duration::days(1), ..g.clone() }], read(AGG_15, 1)),
                "grant 3 is valid only from 2026-11-26T12:00:00+00:00",
            ),
            (
                deny(&third, &ds, &[GrantTerms { valid_until: now(), ..g.clone() }], read(AGG_15, 1)),
                "grant 3 expired at 2026-11-25T12:00:00+00:00",
            ),
            (
                deny(&third, &ds, std::slice::from_ref(&g), read(Resolution::Raw, 1)),
                "grant 3 allows only aggregates of at least 15 minutes, not raw readings",
            ),
            (
                deny(&third, &ds, std::slice::from_ref(&g), read(Resolution::Aggregate { interval_secs: 300 }, 1)),
                "grant 3 allows only aggregates of at least 15 minutes; 300 s is finer",
            ),
            (
                deny(&third, &ds, std::slice::from_ref(&g), read(Resolution::Aggregate { interval_secs: 960 }, 1)),
                "grant 3: the interval must be a whole multiple of 15 minutes (buckets lie on the epoch-aligned 15-minute grid); 960 s is not",
            ),
            (
                deny(&third, &ds, std::slice::from_ref(&g), read(AGG_15, 31)),
                "grant 3 covers only the last 30 days (from 2026-10-26T12:00:00+00:00); the request starts at 2026-10-25T12:00:00+00:00",
            ),
            (
                deny(&Caller::Operator, &personal, &[], read(Resolution::Raw, 1)),
                "dataset verkehr holds personal data: only aggregates of at least 5 readings per bucket are released",
            ),
            (
                deny(&Caller::Operator, &personal, &[], read(Resolution::Aggregate { interval_secs: 600 }, 1)),
                "dataset verkehr holds personal data: the interval must be a whole multiple of 15 minutes (buckets lie on the epoch-aligned 15-minute grid); 600 s is not",
            ),
            (
                deny(&principal(2, Some(1)), &personal, &[], read(AGG_15, 1)),
                "dataset verkehr holds personal data: only its owner organisation may read it",
            ),
            (
                DenyReason::NotDataOwner { owner: "stadt".into(), dataset: "verkehr".into() },
                "only admins and data owners of stadt may export dataset verkehr",
            ),
            (
                DenyReason::NotVisible { dataset: "verkehr".into(), classification: Classification::Restricted, datastream: None },
                "dataset verkehr is restricted and not shared with this caller",
            ),
            (
                DenyReason::NotVisible {
                    dataset: "verkehr".into(),
                    classification: Classification::Restricted,
                    datastream: Some(crate::DatastreamId(4)),
                },
                "datastream 4 belongs to dataset verkehr, which this caller may not read",
            ),
            (
                deny(&publisher(1), &ds, &[], read(AGG_15, 1)),
                "publisher keys write readings and read only open data; dataset verkehr is not open (use a reader key)",
            ),
        ];
        let mut codes: Vec<DenyCode> = Vec::new();
        for (reason, text) in &reasons {
            assert_eq!(reason.to_string(), *text, "{:?}", reason.code());
            if !codes.contains(&reason.code()) {
                codes.push(reason.code());
            }
        }
        assert_eq!(codes, DenyCode::ALL, "every code occurs, in the order of the enum");
        for code in DenyCode::ALL {
            assert!(code.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{code}");
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(code.as_str()));
        }
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
