//! Who may write readings into a datastream, whichever door they come through
//! (MQTT's broker ACL renders the same rule; HTTP, SensorThings and the
//! network-server doors ask [`decide_write`] for every datastream a request
//! writes into).
//!
//! Writing is not reading: a key that writes reads nothing by writing, and a
//! write is not in the read audit. Readings belong to the organisation that
//! owns the datastream from the first byte, whoever delivered them.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::policy::{Caller, Role};

/// What a write is aimed at: the datastream's owner, dataset and thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteTarget {
    pub org_id: i64,
    pub dataset_id: Option<i64>,
    pub thing_id: i64,
}

/// The terms of one supply grant: the organisation owning `dataset_id` lets
/// `supplier_org_id`'s writer keys deliver readings into it (all its things,
/// or only `things`) between `valid_from` and `valid_until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SupplyTerms {
    pub id: i64,
    pub dataset_id: i64,
    /// The dataset's owner, whom the readings belong to.
    pub owner_org_id: i64,
    pub supplier_org_id: i64,
    pub contract_ref: String,
    /// `None`: every thing of the dataset.
    pub things: Option<Vec<i64>>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl SupplyTerms {
    /// Whether the grant lets its supplier write at `now` (at all).
    pub fn in_force(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.valid_from <= now && now < self.valid_until
    }
}

/// Why a write is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteVia {
    /// The operator, or a writer role of the owning organisation.
    Owner,
    /// A writer role of a supplier, under this supply grant.
    Supply(i64),
}

/// Why a write is refused; [`WriteDenial::code`] is stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteDenial {
    NotAuthenticated,
    /// `reader` keys read; they never write.
    ReadOnlyRole,
    /// Another organisation's datastream, and no supply grant for it.
    ForeignOrganisation,
    SupplyRevoked {
        grant: i64,
        at: DateTime<Utc>,
    },
    SupplyNotYetValid {
        grant: i64,
        from: DateTime<Utc>,
    },
    SupplyExpired {
        grant: i64,
        at: DateTime<Utc>,
    },
    /// The supply grant covers other things of the dataset.
    ThingNotSupplied {
        grant: i64,
    },
}

impl WriteDenial {
    pub fn code(&self) -> &'static str {
        match self {
            WriteDenial::NotAuthenticated => "not_authenticated",
            WriteDenial::ReadOnlyRole => "read_only_role",
            WriteDenial::ForeignOrganisation => "foreign_organisation",
            WriteDenial::SupplyRevoked { .. } => "supply_grant_revoked",
            WriteDenial::SupplyNotYetValid { .. } => "supply_grant_not_yet_valid",
            WriteDenial::SupplyExpired { .. } => "supply_grant_expired",
            WriteDenial::ThingNotSupplied { .. } => "thing_not_supplied",
        }
    }
}

impl fmt::Display for WriteDenial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteDenial::NotAuthenticated => f.write_str("writing readings needs an API key of a writer role"),
            WriteDenial::ReadOnlyRole => {
                f.write_str("reader keys may not write readings; use a publisher (or data owner, admin) key")
            }
            WriteDenial::ForeignOrganisation => f.write_str(
                "this key's organisation may not write into another organisation's datastreams (no supply grant covers them)",
            ),
            WriteDenial::SupplyRevoked { grant, at } => write!(f, "supply grant {grant} was revoked at {}", at.to_rfc3339()),
            WriteDenial::SupplyNotYetValid { grant, from } => {
                write!(f, "supply grant {grant} is valid only from {}", from.to_rfc3339())
            }
            WriteDenial::SupplyExpired { grant, at } => write!(f, "supply grant {grant} ended at {}", at.to_rfc3339()),
            WriteDenial::ThingNotSupplied { grant } => {
                write!(f, "supply grant {grant} does not cover this thing of the dataset")
            }
        }
    }
}

impl std::error::Error for WriteDenial {}

/// Whether `caller` may write into organisation `org_id` at all (before any
/// datastream is known): its own, or one whose dataset it holds a supply
/// grant in force on. A door answers `403` when not; [`decide_write`] then
/// decides each datastream.
pub fn may_write_into(
    caller: &Caller,
    org_id: i64,
    supplies: &[SupplyTerms],
    now: DateTime<Utc>,
) -> Result<(), WriteDenial> {
    let principal = match caller {
        Caller::Operator => return Ok(()),
        Caller::Anonymous => return Err(WriteDenial::NotAuthenticated),
        Caller::Principal(p) => p,
    };
    if principal.role == Role::Reader {
        return Err(WriteDenial::ReadOnlyRole);
    }
    if principal.org_id == org_id {
        return Ok(());
    }
    let mut theirs = supplies.iter().filter(|s| s.supplier_org_id == principal.org_id && s.owner_org_id == org_id);
    if theirs.clone().any(|s| s.in_force(now)) {
        return Ok(());
    }
    match theirs.next() {
        Some(s) if s.revoked_at.is_some() => {
            Err(WriteDenial::SupplyRevoked { grant: s.id, at: s.revoked_at.unwrap_or(now) })
        }
        Some(s) if now < s.valid_from => Err(WriteDenial::SupplyNotYetValid { grant: s.id, from: s.valid_from }),
        Some(s) => Err(WriteDenial::SupplyExpired { grant: s.id, at: s.valid_until }),
        None => Err(WriteDenial::ForeignOrganisation),
    }
}

/// Whether `caller` may write into `target` at `now`; `supplies` are the
/// supply grants held by the caller's organisation (others are ignored).
pub fn decide_write(
    caller: &Caller,
    target: &WriteTarget,
    supplies: &[SupplyTerms],
    now: DateTime<Utc>,
) -> Result<WriteVia, WriteDenial> {
    let principal = match caller {
        Caller::Operator => return Ok(WriteVia::Owner),
        Caller::Anonymous => return Err(WriteDenial::NotAuthenticated),
        Caller::Principal(p) => p,
    };
    if principal.role == Role::Reader {
        return Err(WriteDenial::ReadOnlyRole);
    }
    if principal.org_id == target.org_id {
        return Ok(WriteVia::Owner);
    }
    let mut reason = None;
    let on_dataset =
        supplies.iter().filter(|s| s.supplier_org_id == principal.org_id && Some(s.dataset_id) == target.dataset_id);
    for supply in on_dataset {
        let why = match supply {
            s if s.revoked_at.is_some() => WriteDenial::SupplyRevoked { grant: s.id, at: s.revoked_at.unwrap_or(now) },
            s if now < s.valid_from => WriteDenial::SupplyNotYetValid { grant: s.id, from: s.valid_from },
            s if now >= s.valid_until => WriteDenial::SupplyExpired { grant: s.id, at: s.valid_until },
            s if s.things.as_ref().is_some_and(|things| !things.contains(&target.thing_id)) => {
                WriteDenial::ThingNotSupplied { grant: s.id }
            }
            s => return Ok(WriteVia::Supply(s.id)),
        };
        reason = reason.or(Some(why));
    }
    Err(reason.unwrap_or(WriteDenial::ForeignOrganisation))
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::policy::Principal;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
    }

    fn key(org_id: i64, role: Role) -> Caller {
        Caller::Principal(Principal {
            id: 1,
            name: "k".into(),
            org_id,
            org_slug: format!("org{org_id}"),
            municipality_id: None,
            role,
            key_id: Some(1),
        })
    }

    fn supply(things: Option<Vec<i64>>) -> SupplyTerms {
        SupplyTerms {
            id: 9,
            dataset_id: 7,
            owner_org_id: 1,
            supplier_org_id: 2,
            contract_ref: "V-2026-1".into(),
            things,
            valid_from: now() - Duration::days(1),
            valid_until: now() + Duration::days(1),
            revoked_at: None,
        }
    }

    const TARGET: WriteTarget = WriteTarget { org_id: 1, dataset_id: Some(7), thing_id: 3 };

    #[test]
    fn the_owners_writer_roles_and_the_operator_write_and_readers_never() {
        for role in [Role::Admin, Role::DataOwner, Role::Publisher] {
            assert_eq!(decide_write(&key(1, role), &TARGET, &[], now()), Ok(WriteVia::Owner), "{role}");
        }
        assert_eq!(decide_write(&Caller::Operator, &TARGET, &[], now()), Ok(WriteVia::Owner));
        assert_eq!(decide_write(&key(1, Role::Reader), &TARGET, &[], now()), Err(WriteDenial::ReadOnlyRole));
        assert_eq!(decide_write(&Caller::Anonymous, &TARGET, &[], now()), Err(WriteDenial::NotAuthenticated));
        assert_eq!(decide_write(&key(2, Role::Publisher), &TARGET, &[], now()), Err(WriteDenial::ForeignOrganisation));
    }

    #[test]
    fn a_supply_grant_lets_its_supplier_write_while_in_force_and_only_its_things() {
        let publisher = key(2, Role::Publisher);
        assert_eq!(decide_write(&publisher, &TARGET, &[supply(None)], now()), Ok(WriteVia::Supply(9)));
        assert_eq!(decide_write(&publisher, &TARGET, &[supply(Some(vec![3, 4]))], now()), Ok(WriteVia::Supply(9)));
        assert_eq!(
            decide_write(&publisher, &TARGET, &[supply(Some(vec![4]))], now()),
            Err(WriteDenial::ThingNotSupplied { grant: 9 })
        );
        let ended = SupplyTerms { valid_until: now(), ..supply(None) };
        assert_eq!(
            decide_write(&publisher, &TARGET, &[ended], now()),
            Err(WriteDenial::SupplyExpired { grant: 9, at: now() })
        );
        let revoked = SupplyTerms { revoked_at: Some(now()), ..supply(None) };
        assert_eq!(decide_write(&publisher, &TARGET, &[revoked], now()).unwrap_err().code(), "supply_grant_revoked");
        let later = SupplyTerms { valid_from: now() + Duration::hours(1), ..supply(None) };
        assert_eq!(
            decide_write(&publisher, &TARGET, &[later], now()).unwrap_err().code(),
            "supply_grant_not_yet_valid"
        );
        // Another dataset, another supplier, or a reader of the supplier: no.
        let other_dataset = WriteTarget { dataset_id: Some(8), ..TARGET };
        assert_eq!(
            decide_write(&publisher, &other_dataset, &[supply(None)], now()),
            Err(WriteDenial::ForeignOrganisation)
        );
        let unassigned = WriteTarget { dataset_id: None, ..TARGET };
        assert_eq!(
            decide_write(&publisher, &unassigned, &[supply(None)], now()),
            Err(WriteDenial::ForeignOrganisation)
        );
        assert_eq!(
            decide_write(&key(3, Role::Publisher), &TARGET, &[supply(None)], now()),
            Err(WriteDenial::ForeignOrganisation)
        );
        assert_eq!(
            decide_write(&key(2, Role::Reader), &TARGET, &[supply(None)], now()),
            Err(WriteDenial::ReadOnlyRole)
        );
        // An ended grant beside one in force: the one in force decides.
        let both = [SupplyTerms { id: 8, revoked_at: Some(now()), ..supply(None) }, supply(None)];
        assert_eq!(decide_write(&publisher, &TARGET, &both, now()), Ok(WriteVia::Supply(9)));
    }

    #[test]
    fn an_organisation_is_open_to_its_own_writers_and_its_suppliers_in_force() {
        let publisher = key(2, Role::Publisher);
        assert_eq!(may_write_into(&key(1, Role::Publisher), 1, &[], now()), Ok(()));
        assert_eq!(may_write_into(&key(1, Role::Reader), 1, &[], now()), Err(WriteDenial::ReadOnlyRole));
        assert_eq!(may_write_into(&publisher, 1, &[], now()), Err(WriteDenial::ForeignOrganisation));
        assert_eq!(may_write_into(&publisher, 1, &[supply(None)], now()), Ok(()));
        assert_eq!(may_write_into(&publisher, 5, &[supply(None)], now()), Err(WriteDenial::ForeignOrganisation));
        let ended = SupplyTerms { valid_until: now() - Duration::hours(1), ..supply(None) };
        assert_eq!(may_write_into(&publisher, 1, &[ended], now()).unwrap_err().code(), "supply_grant_expired");
        assert_eq!(may_write_into(&Caller::Operator, 1, &[], now()), Ok(()));
        assert_eq!(may_write_into(&Caller::Anonymous, 1, &[], now()), Err(WriteDenial::NotAuthenticated));
    }
}
