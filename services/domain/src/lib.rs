//! Hoheit's domain: the types that can only hold valid values, the MQTT topic
//! scheme ([`topic`]), the doors readings come in by ([`door`]), the reasons a
//! reading is rejected ([`rejection`]), dead-letter replay ([`replay`]), alert rules ([`alert`]), data quality
//! ([`quality`]), the access policy ([`policy`]: the one
//! place that decides what a caller may see and read) and who may write
//! ([`write`]). Pure: no I/O, no async, no database.
//!
//! Parse, don't validate. A slug (organisation, thing, property) is what appears in MQTT topics and
//! URLs, so it is restricted to lower-case ASCII letters, digits, `-` and `_`,
//! 1 to 64 characters, starting with a letter or digit. That keeps topics
//! free of wildcards and separators and makes every id safe to print.

use std::fmt;

pub mod alert;
pub mod door;
pub mod license;
pub mod onboarding;
pub mod policy;
pub mod quality;
pub mod range;
pub mod rejection;
pub mod replay;
pub mod rfc3339;
pub mod topic;
pub mod write;

/// Width of the 15-minute rollup's buckets: the finest grid on which
/// aggregates of personal data are released, and the cells the rollup stores.
pub const ROLLUP_SECS: i64 = 900;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// Why a slug is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlugError {
    #[error("{kind} must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} is longer than {max} characters", max = Slug::MAX_LEN)]
    TooLong { kind: &'static str },
    #[error("{kind} {value:?} may only hold a-z, 0-9, '-' and '_' and must start with a letter or digit")]
    InvalidCharacters { kind: &'static str, value: String },
}

/// A validated identifier segment (see the module doc for the rules).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    pub const MAX_LEN: usize = 64;

    /// Parses `value` as a slug; `kind` names it in the error ("organisation").
    pub fn parse(kind: &'static str, value: &str) -> Result<Self, SlugError> {
        if value.is_empty() {
            return Err(SlugError::Empty { kind });
        }
        if value.len() > Self::MAX_LEN {
            return Err(SlugError::TooLong { kind });
        }
        let bytes = value.as_bytes();
        let valid_char = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_';
        if !bytes[0].is_ascii_alphanumeric() || !bytes.iter().all(valid_char) {
            return Err(SlugError::InvalidCharacters {
                kind,
                // Bounded above, so safe to echo back.
                value: value.to_owned(),
            });
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The stored text form (the store decodes its columns with it).
impl TryFrom<String> for Slug {
    type Error = SlugError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Slug::parse("identifier", &value)
    }
}

impl<'de> Deserialize<'de> for Slug {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Slug::parse("identifier", &raw).map_err(serde::de::Error::custom)
    }
}

/// The natural key of a datastream: which organisation's thing, which property.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DatastreamKey {
    pub org: Slug,
    pub thing: Slug,
    pub property: Slug,
}

impl fmt::Display for DatastreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.org, self.thing, self.property)
    }
}

/// Database id of a datastream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DatastreamId(pub i64);

impl From<i64> for DatastreamId {
    fn from(id: i64) -> Self {
        Self(id)
    }
}

impl utoipa::PartialSchema for Slug {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some("^[a-z0-9][a-z0-9_-]*$"))
            .min_length(Some(1))
            .max_length(Some(Self::MAX_LEN))
            .description(Some("lower-case letters, digits, `-` and `_`; starts with a letter or digit"))
            .into()
    }
}

impl utoipa::ToSchema for Slug {}

impl utoipa::PartialSchema for DatastreamId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::Integer)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
            .minimum(Some(1))
            .into()
    }
}

impl utoipa::ToSchema for DatastreamId {}

impl fmt::Display for DatastreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A unit symbol as SenML writes them ("Cel", "%RH", "ug/m3", "count").
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Unit(String);

/// Why a unit symbol is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unit must be 1 to 32 printable ASCII characters without spaces")]
pub struct UnitError;

impl Unit {
    pub fn parse(value: &str) -> Result<Self, UnitError> {
        let ok = !value.is_empty() && value.len() <= 32 && value.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(UnitError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl utoipa::PartialSchema for Unit {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some("^[!-~]+$"))
            .min_length(Some(1))
            .max_length(Some(32))
            .description(Some("a unit symbol as SenML writes them, e.g. Cel, %RH, ug/m3"))
            .into()
    }
}

impl utoipa::ToSchema for Unit {}

impl<'de> Deserialize<'de> for Unit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Unit::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A point in time with the database's precision: microseconds since the Unix
/// epoch, UTC. Finer input is truncated toward the past.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Micros(pub i64);

impl Micros {
    pub fn now() -> Self {
        Self::from_datetime(Utc::now())
    }

    pub fn from_datetime(time: DateTime<Utc>) -> Self {
        Self(time.timestamp_micros())
    }

    /// The time as a chrono value; `None` outside chrono's range.
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        Utc.timestamp_micros(self.0).single()
    }
}

/// One reading that passed every check: it belongs to a known datastream and
/// has a finite value and a plausible time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub datastream: DatastreamId,
    pub time: Micros,
    pub value: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_accepts_lowercase_digits_dash_underscore() {
        assert_eq!(Slug::parse("thing", "pegel-finow_2").unwrap().as_str(), "pegel-finow_2");
    }

    #[test]
    fn slug_rejects_wildcards_separators_and_case() {
        for bad in ["", "+", "#", "a/b", "Upper", "-lead", "ä", &"x".repeat(65)] {
            assert!(Slug::parse("thing", bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn unit_rejects_spaces_and_empty() {
        assert!(Unit::parse("ug/m3").is_ok());
        assert!(Unit::parse("").is_err());
        assert!(Unit::parse("deg C").is_err());
    }

    #[test]
    fn micros_round_trip_through_datetime() {
        let t = Micros(1_764_064_800_123_456);
        assert_eq!(Micros::from_datetime(t.to_datetime().unwrap()), t);
    }
}
