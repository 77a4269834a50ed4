//! One delivery in, what goes to Kafka out: resolve the address, decode,
//! check, route. Every door (MQTT, HTTP push, SensorThings, the network
//! servers, airrohr) goes through here, so the checks exist once. (The
//! service gathers the outcomes of several deliveries into records.)

use hoheit_domain::door::Door;
use hoheit_domain::rejection::{RejectCode, Rejection};
use hoheit_domain::topic::{TopicAddress, TopicScheme};
use hoheit_domain::Micros;
use hoheit_proto::v1::{DatastreamBatch, DeadLetter};
use hoheit_runtime::ops::Readiness;
use tokio_util::sync::CancellationToken;

use crate::check::{self, Clock, Devices};
use crate::decode::{self, Decoded, JsonKind, Limits};
use crate::inbound::{Body, Inbound, Target};
use crate::registry_cache::{RegistryCache, Stopped};

/// A dead letter carries at most this many individual reasons; the headline
/// says how many more there were. Keeps records far below Kafka's size limit.
const MAX_REASONS_PER_DEAD_LETTER: usize = 100;

/// What one delivery turns into: one batch per datastream it holds readings
/// of, and a dead letter when some (or all) were rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub door: Door,
    /// The organisation addressed (metrics label; empty when unknown).
    pub org: String,
    pub observations: Vec<DatastreamBatch>,
    pub dead_letter: Option<DeadLetter>,
    pub accepted: usize,
    /// Every rejection (the dead letter keeps the first 100).
    pub rejections: Vec<Rejection>,
}

impl Default for Outcome {
    fn default() -> Self {
        Self {
            door: Door::Mqtt,
            org: String::new(),
            observations: Vec::new(),
            dead_letter: None,
            accepted: 0,
            rejections: Vec::new(),
        }
    }
}

pub struct Pipeline {
    pub scheme: TopicScheme,
    pub limits: Limits,
    pub max_future_micros: i64,
    pub cache: RegistryCache,
}

/// Where a delivery was resolved to, or why it addresses nothing.
struct Resolved {
    address: Result<TopicAddress, Rejection>,
    /// The organisation and the address as dead letters show them.
    org: String,
    label: String,
}

impl Pipeline {
    /// Runs one delivery through the checks.
    pub async fn handle(
        &mut self,
        inbound: &Inbound,
        readiness: &Readiness,
        shutdown: &CancellationToken,
    ) -> Result<Outcome, Stopped> {
        let received = Micros::now();
        let resolved = self.resolve(inbound, readiness, shutdown).await?;
        let address = match resolved.address {
            Ok(address) => address,
            Err(rejection) => {
                return Ok(self.rejected(inbound, &resolved.org, &resolved.label, received, vec![rejection]))
            }
        };
        let decoded = match self.decode(inbound, &address, received) {
            Ok(decoded) => decoded,
            Err(rejection) => {
                return Ok(self.rejected(inbound, &resolved.org, &resolved.label, received, vec![rejection]))
            }
        };
        let devices = self.devices(&address, &decoded, readiness, shutdown).await?;
        for reading in &decoded.readings {
            if let Ok(key) = check::key_of(&address, reading, &devices) {
                self.cache.ensure(&key, readiness, shutdown).await?;
            }
        }
        let clock = Clock { received, max_future_micros: self.max_future_micros };
        let permit = |stream: &_| inbound.writer.as_ref().map_or(Ok(()), |writer| writer.permit(stream));
        let routed = check::route(&address, &decoded.readings, &devices, clock, |key| self.cache.get(key), permit);
        let observations = routed
            .batches
            .into_iter()
            .map(|(id, (time_unix_us, value))| DatastreamBatch {
                datastream_id: id.0,
                time_unix_us,
                value,
                received_unix_us: received.0,
                ..Default::default()
            })
            .collect();
        let mut rejections = decoded.rejections;
        rejections.extend(routed.rejections);
        rejections.sort_by_key(|r| r.reading_index);
        let mut outcome = if rejections.is_empty() {
            Outcome { door: inbound.door, org: resolved.org, ..Outcome::default() }
        } else {
            self.rejected(inbound, &resolved.org, &resolved.label, received, rejections)
        };
        outcome.observations = observations;
        outcome.accepted = routed.accepted;
        Ok(outcome)
    }

    /// The address a delivery's target names, with the registry's help for
    /// devices and datastream ids.
    async fn resolve(
        &mut self,
        inbound: &Inbound,
        readiness: &Readiness,
        shutdown: &CancellationToken,
    ) -> Result<Resolved, Stopped> {
        let found = |address: TopicAddress, scheme: &TopicScheme| Resolved {
            org: address.org().to_string(),
            label: scheme.topic_of(&address),
            address: Ok(address),
        };
        Ok(match &inbound.target {
            Target::Topic(topic) => match self.scheme.parse(topic) {
                Ok(address) => Resolved { org: address.org().to_string(), label: topic.clone(), address: Ok(address) },
                Err(error) => Resolved {
                    org: self.scheme.org_segment(topic).unwrap_or_default().chars().take(64).collect(),
                    label: topic.chars().take(1024).collect(),
                    address: Err(Rejection::message(RejectCode::InvalidTopic, error.to_string())),
                },
            },
            Target::Address(address) => found(address.clone(), &self.scheme),
            Target::Device { org, device } => match self.cache.thing_of_device(org, device, readiness, shutdown).await?
            {
                Some(thing) => found(TopicAddress::Thing { org: org.clone(), thing }, &self.scheme),
                None => Resolved {
                    org: org.to_string(),
                    label: format!("{}/{org}/device/{}", inbound.door, device.chars().take(128).collect::<String>()),
                    address: Err(Rejection::message(
                        RejectCode::UnknownDevice,
                        format!("no thing of {org} has the external id {device:?}; register the device first"),
                    )),
                },
            },
            Target::Datastream(id) => match self.cache.key_of_id(*id, readiness, shutdown).await? {
                Some(key) => found(
                    TopicAddress::Datastream { org: key.org, thing: key.thing, property: key.property },
                    &self.scheme,
                ),
                None => Resolved {
                    org: String::new(),
                    label: format!("Datastreams({id})"),
                    address: Err(Rejection::message(
                        RejectCode::UnknownDatastream,
                        format!("no datastream {id} is registered"),
                    )),
                },
            },
        })
    }

    /// The things of the devices the readings name, looked up by external id.
    async fn devices(
        &mut self,
        address: &TopicAddress,
        decoded: &Decoded,
        readiness: &Readiness,
        shutdown: &CancellationToken,
    ) -> Result<Devices, Stopped> {
        let mut devices = Devices::new();
        for device in decoded.readings.iter().filter_map(|r| r.device.as_deref()) {
            if !devices.contains_key(device) {
                let thing = self.cache.thing_of_device(address.org(), device, readiness, shutdown).await?;
                devices.insert(device.to_owned(), thing);
            }
        }
        Ok(devices)
    }

    fn decode(&self, inbound: &Inbound, address: &TopicAddress, received: Micros) -> Result<Decoded, Rejection> {
        let implied = match address {
            TopicAddress::Datastream { .. } => JsonKind::Plain,
            TopicAddress::Thing { .. } | TopicAddress::Org { .. } => JsonKind::Senml,
        };
        match &inbound.body {
            Body::Sniff => decode::decode(&inbound.payload, implied, received, self.limits),
            Body::Json(kind) => decode::decode_json(&inbound.payload, *kind, received, self.limits),
            Body::Protobuf => decode::decode_protobuf_only(&inbound.payload, self.limits),
            Body::Decoded(decoded) => {
                decode::check_decoded(&inbound.payload, decoded, self.limits)?;
                Ok(decoded.clone())
            }
        }
    }

    fn rejected(
        &self,
        inbound: &Inbound,
        org: &str,
        label: &str,
        received: Micros,
        rejections: Vec<Rejection>,
    ) -> Outcome {
        let mut listed = rejections.clone();
        let total = listed.len();
        if total > MAX_REASONS_PER_DEAD_LETTER {
            listed.truncate(MAX_REASONS_PER_DEAD_LETTER);
            listed[0].reason = format!(
                "{} ({total} readings rejected; the first {MAX_REASONS_PER_DEAD_LETTER} reasons are listed)",
                listed[0].reason
            );
        }
        let letter = DeadLetter {
            org: org.chars().take(64).collect(),
            mqtt_topic: label.chars().take(1024).collect(),
            payload: inbound.payload.to_vec(),
            received_unix_us: received.0,
            rejections: listed.iter().map(Rejection::to_proto).collect(),
            door: inbound.door.as_str().to_owned(),
            ..Default::default()
        };
        Outcome {
            door: inbound.door,
            org: org.to_owned(),
            observations: Vec::new(),
            dead_letter: Some(letter),
            accepted: 0,
            rejections,
        }
    }
}
