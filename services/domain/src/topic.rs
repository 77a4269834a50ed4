//! The MQTT topic scheme, in one place.
//!
//! - `{root}/{org}/{thing}/{property}`: readings of one datastream (JSON or protobuf);
//! - `{root}/{org}/{thing}`: a SenML pack (or protobuf batch) whose records name the properties;
//! - `{root}/{org}`: a SenML pack of a gateway whose records name their devices
//!   (a base name such as `urn:dev:ow:10e2073a01080063:`): each device is the
//!   thing that carries it as its external id.
//!
//! `root` is `hoheit/v1` in every deployment; it is a parameter only so that
//! several isolated Hoheit instances (the test suite) can share one broker.

use crate::{Slug, SlugError};

/// The root every deployment uses.
pub const DEFAULT_ROOT: &str = "hoheit/v1";

/// Topics longer than this are rejected before they are looked at.
pub const MAX_TOPIC_LEN: usize = 512;

/// Where a message was published, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicAddress {
    /// One datastream: `{root}/{org}/{thing}/{property}`.
    Datastream { org: Slug, thing: Slug, property: Slug },
    /// A thing: `{root}/{org}/{thing}`; readings name their properties.
    Thing { org: Slug, thing: Slug },
    /// An organisation: `{root}/{org}`; readings name their devices and properties.
    Org { org: Slug },
}

impl TopicAddress {
    pub fn org(&self) -> &Slug {
        match self {
            TopicAddress::Datastream { org, .. } | TopicAddress::Thing { org, .. } | TopicAddress::Org { org } => org,
        }
    }

    /// The thing addressed; `None` on an organisation's topic, where each reading names its device.
    pub fn thing(&self) -> Option<&Slug> {
        match self {
            TopicAddress::Datastream { thing, .. } | TopicAddress::Thing { thing, .. } => Some(thing),
            TopicAddress::Org { .. } => None,
        }
    }
}

/// Why a topic is not one of Hoheit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic is longer than {MAX_TOPIC_LEN} bytes")]
    TooLong,
    #[error("topic does not start with {root:?}")]
    WrongRoot { root: String },
    #[error("topic must be {root}/{{org}}, {root}/{{org}}/{{thing}} or {root}/{{org}}/{{thing}}/{{property}}")]
    WrongShape { root: String },
    #[error(transparent)]
    Segment(#[from] SlugError),
}

/// The topic scheme under one root.
#[derive(Debug, Clone)]
pub struct TopicScheme {
    root: String,
}

impl Default for TopicScheme {
    fn default() -> Self {
        Self::new(DEFAULT_ROOT)
    }
}

impl TopicScheme {
    pub fn new(root: &str) -> Self {
        Self { root: root.trim_end_matches('/').to_owned() }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// The subscription filter covering every Hoheit topic.
    pub fn subscription(&self) -> String {
        format!("{}/#", self.root)
    }

    pub fn datastream_topic(&self, org: &Slug, thing: &Slug, property: &Slug) -> String {
        format!("{}/{org}/{thing}/{property}", self.root)
    }

    pub fn thing_topic(&self, org: &Slug, thing: &Slug) -> String {
        format!("{}/{org}/{thing}", self.root)
    }

    pub fn org_topic(&self, org: &Slug) -> String {
        format!("{}/{org}", self.root)
    }

    /// The topic of an address (what the other doors' dead letters show).
    pub fn topic_of(&self, address: &TopicAddress) -> String {
        match address {
            TopicAddress::Datastream { org, thing, property } => self.datastream_topic(org, thing, property),
            TopicAddress::Thing { org, thing } => self.thing_topic(org, thing),
            TopicAddress::Org { org } => self.org_topic(org),
        }
    }

    /// The organisation segment of a topic, even when the rest is malformed,
    /// so that a dead letter can still be shown to its owner.
    pub fn org_segment<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let rest = topic.strip_prefix(&self.root)?.strip_prefix('/')?;
        rest.split('/').next().filter(|s| !s.is_empty())
    }

    pub fn parse(&self, topic: &str) -> Result<TopicAddress, TopicError> {
        if topic.len() > MAX_TOPIC_LEN {
            return Err(TopicError::TooLong);
        }
        let rest = topic
            .strip_prefix(&self.root)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| TopicError::WrongRoot { root: self.root.clone() })?;
        let segments: Vec<&str> = rest.split('/').collect();
        match segments.as_slice() {
            [org] => Ok(TopicAddress::Org { org: Slug::parse("organisation", org)? }),
            [org, thing] => {
                Ok(TopicAddress::Thing { org: Slug::parse("organisation", org)?, thing: Slug::parse("thing", thing)? })
            }
            [org, thing, property] => Ok(TopicAddress::Datastream {
                org: Slug::parse("organisation", org)?,
                thing: Slug::parse("thing", thing)?,
                property: Slug::parse("property", property)?,
            }),
            _ => Err(TopicError::WrongShape { root: self.root.clone() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slug(s: &str) -> Slug {
        Slug::parse("test", s).unwrap()
    }

    #[test]
    fn parses_datastream_and_thing_topics() {
        let scheme = TopicScheme::default();
        assert_eq!(
            scheme.parse("hoheit/v1/stadtwerke/pegel-1/wasserstand").unwrap(),
            TopicAddress::Datastream { org: slug("stadtwerke"), thing: slug("pegel-1"), property: slug("wasserstand") }
        );
        assert_eq!(
            scheme.parse("hoheit/v1/stadtwerke/pegel-1").unwrap(),
            TopicAddress::Thing { org: slug("stadtwerke"), thing: slug("pegel-1") }
        );
        let org = scheme.parse("hoheit/v1/stadtwerke").unwrap();
        assert_eq!(org, TopicAddress::Org { org: slug("stadtwerke") });
        assert_eq!((org.thing(), scheme.topic_of(&org).as_str()), (None, "hoheit/v1/stadtwerke"));
    }

    #[test]
    fn rejects_other_roots_shapes_and_segments() {
        let scheme = TopicScheme::default();
        assert!(matches!(scheme.parse("other/v1/a/b"), Err(TopicError::WrongRoot { .. })));
        assert!(matches!(scheme.parse("hoheit/v1/a/"), Err(TopicError::Segment(_))));
        assert!(matches!(scheme.parse("hoheit/v1/a/b/c/d"), Err(TopicError::WrongShape { .. })));
        assert!(matches!(scheme.parse("hoheit/v1/A/b"), Err(TopicError::Segment(_))));
        assert!(matches!(scheme.parse(&format!("hoheit/v1/{}", "a".repeat(600))), Err(TopicError::TooLong)));
    }

    #[test]
    fn builds_topics_that_parse_back() {
        let scheme = TopicScheme::new("t-42/hoheit/v1/");
        let topic = scheme.datastream_topic(&slug("o"), &slug("t"), &slug("p"));
        assert_eq!(topic, "t-42/hoheit/v1/o/t/p");
        assert!(scheme.parse(&topic).is_ok());
        assert_eq!(scheme.subscription(), "t-42/hoheit/v1/#");
        assert_eq!(scheme.org_segment("t-42/hoheit/v1/o/T/x/y"), Some("o"));
    }
}
