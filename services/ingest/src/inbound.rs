//! What a door hands to the pipeline: the bytes, where they are addressed,
//! how they are to be decoded, and who wrote them; and what the door gets
//! back once Kafka has confirmed (the HTTP doors' equivalent of a PUBACK).

use bytes::Bytes;
use chrono::Utc;
use hoheit_domain::door::{Door, Receipt};
use hoheit_domain::policy::Caller;
use hoheit_domain::topic::TopicAddress;
use hoheit_domain::write::{self, SupplyTerms, WriteDenial};
use hoheit_domain::{DatastreamId, Slug};
use hoheit_store::registry::DatastreamRef;
use tokio::sync::oneshot;

use crate::decode::{Decoded, JsonKind};

/// Where a delivery is addressed.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// An MQTT topic, parsed by the pipeline (Hoheit's scheme).
    Topic(String),
    /// A datastream or a thing named by the door (HTTP push).
    Address(TopicAddress),
    /// A device known by its external id (DevEUI, chip id) in an organisation.
    Device { org: Slug, device: String },
    /// A datastream by id (SensorThings).
    Datastream(DatastreamId),
}

/// How the payload is read.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// JSON or protobuf by the first byte (MQTT, where nothing says which).
    Sniff,
    /// JSON: plain readings or a SenML pack (said by a content type).
    Json(JsonKind),
    /// A protobuf `hoheit.v1.ObservationBatch`.
    Protobuf,
    /// Already decoded by the door (network servers, SensorThings, airrohr);
    /// the payload is kept for dead letters.
    Decoded(Decoded),
}

/// Who delivers, for the doors that know it: each datastream a reading goes
/// into is decided by [`hoheit_domain::write::decide_write`].
#[derive(Debug, Clone)]
pub struct Writer {
    pub caller: Caller,
    /// The supply grants the caller's organisation holds.
    pub supplies: Vec<SupplyTerms>,
}

impl Writer {
    pub fn permit(&self, stream: &DatastreamRef) -> Result<(), WriteDenial> {
        write::decide_write(&self.caller, &stream.target, &self.supplies, Utc::now()).map(|_| ())
    }
}

/// One delivery through a door.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub door: Door,
    pub target: Target,
    pub body: Body,
    pub payload: Bytes,
    /// `None`: the door decided who may write before (the broker's ACL, a
    /// connector's secret that belongs to its organisation).
    pub writer: Option<Writer>,
}

/// Kafka did not confirm every record of the delivery; nothing is promised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotConfirmed;

/// A delivery on its way to the pipeline, with where the answer goes.
#[derive(Debug)]
pub struct Submission {
    pub inbound: Inbound,
    pub reply: oneshot::Sender<Result<Receipt, NotConfirmed>>,
    /// A dead letter sent through again, by the replay of this number: what
    /// still fails is reported in the receipt only (its row records the
    /// result), never a new dead letter; the registry is read afresh once per replay.
    pub replay: Option<u64>,
}
