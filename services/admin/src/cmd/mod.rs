//! One module per command group, and the parsers that turn command-line
//! words into domain types at the edge (slugs, kinds, roles, times), so that
//! clap reports a bad value with its reason before anything runs.

pub mod audit;
pub mod connectors;
pub mod datasets;
pub mod dead_letters;
pub mod demo;
pub mod device_types;
pub mod grants;
pub mod keys;
pub mod mqtt_config;
pub mod organisations;
pub mod principals;
pub mod retention;
pub mod supply_grants;
pub mod things;

use chrono::{DateTime, Utc};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use hoheit_domain::policy::{Classification, OrgKind, Role};
use hoheit_domain::{Slug, SlugError};
use hoheit_store::principals::PrincipalKind;

pub fn org_slug(value: &str) -> Result<Slug, SlugError> {
    Slug::parse("organisation", value)
}

pub fn principal_name(value: &str) -> Result<Slug, SlugError> {
    Slug::parse("principal name", value)
}

pub fn dataset_slug(value: &str) -> Result<Slug, SlugError> {
    Slug::parse("dataset", value)
}

/// A thing as `ORG/THING`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThingRef {
    pub org: Slug,
    pub thing: Slug,
}

pub fn thing_ref(value: &str) -> Result<ThingRef, String> {
    let (org, thing) = value.split_once('/').ok_or_else(|| format!("{value:?} is not ORG/THING"))?;
    Ok(ThingRef {
        org: Slug::parse("organisation", org).map_err(|e| e.to_string())?,
        thing: Slug::parse("thing", thing).map_err(|e| e.to_string())?,
    })
}

/// An RFC 3339 time, e.g. 2026-12-31T23:59:59Z.
pub fn timestamp(value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{value:?} is not an RFC 3339 time such as 2026-12-31T23:59:59Z: {e}"))
}

pub fn org_kind() -> impl TypedValueParser<Value = OrgKind> {
    PossibleValuesParser::new(OrgKind::ALL.iter().map(|k| k.as_str())).try_map(|s| s.parse::<OrgKind>())
}

pub fn role() -> impl TypedValueParser<Value = Role> {
    PossibleValuesParser::new(Role::ALL.iter().map(|r| r.as_str())).try_map(|s| s.parse::<Role>())
}

pub fn classification() -> impl TypedValueParser<Value = Classification> {
    PossibleValuesParser::new(Classification::ALL.iter().map(|c| c.as_str())).try_map(|s| s.parse::<Classification>())
}

pub fn principal_kind() -> impl TypedValueParser<Value = PrincipalKind> {
    PossibleValuesParser::new(["person", "service"]).try_map(|s| match s.as_str() {
        "person" => Ok(PrincipalKind::Person),
        "service" => Ok(PrincipalKind::Service),
        other => Err(format!("{other:?} is not one of: person, service")),
    })
}

/// `now + days`, refusing what chrono cannot represent.
pub fn days_from_now(days: u32) -> Result<DateTime<Utc>, crate::AdminError> {
    Utc::now()
        .checked_add_signed(chrono::Duration::days(i64::from(days)))
        .ok_or_else(|| crate::AdminError::Input(format!("{days} days from now is out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thing_references_and_times_parse_at_the_edge() {
        let t = thing_ref("stadt-eberswalde/pegel-1").unwrap();
        assert_eq!((t.org.as_str(), t.thing.as_str()), ("stadt-eberswalde", "pegel-1"));
        assert!(thing_ref("stadt-eberswalde").unwrap_err().contains("ORG/THING"));
        assert!(thing_ref("Stadt/x").is_err());
        assert!(timestamp("2026-12-31T23:59:59+01:00").is_ok());
        assert!(timestamp("tomorrow").unwrap_err().contains("RFC 3339"));
    }
}
