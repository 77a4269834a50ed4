//! One MQTT message in, what goes to Kafka out: decode, check, route.
//! (The service gathers the outcomes of several messages into records.)

use hoheit_domain::rejection::{RejectCode, Rejection};
use hoheit_domain::topic::{TopicAddress, TopicScheme};
use hoheit_domain::Micros;
use hoheit_proto::v1::{DatastreamBatch, DeadLetter};
use hoheit_runtime::ops::Readiness;
use tokio_util::sync::CancellationToken;

use crate::check::{self, Clock};
use crate::decode::{self, JsonKind, Limits};
use crate::registry_cache::{RegistryCache, Stopped};

/// A dead letter carries at most this many individual reasons; the headline
/// says how many more there were. Keeps records far below Kafka's size limit.
const MAX_REASONS_PER_DEAD_LETTER: usize = 100;

/// What one MQTT message turns into: one batch per datastream it holds
/// readings of, and a dead letter when some (or all) were rejected.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    pub observations: Vec<DatastreamBatch>,
    pub dead_letter: Option<DeadLetter>,
    pub accepted: usize,
    pub rejected: Vec<RejectCode>,
}

pub struct Pipeline {
    pub scheme: TopicScheme,
    pub limits: Limits,
    pub max_future_micros: i64,
    pub cache: RegistryCache,
}

impl Pipeline {
    pub async fn handle(
        &mut self,
        topic: &str,
        payload: &[u8],
        readiness: &Readiness,
        shutdown: &CancellationToken,
    ) -> Result<Outcome, Stopped> {
        let received = Micros::now();
        let address = match self.scheme.parse(topic) {
            Ok(address) => address,
            Err(error) => {
                let rejection = Rejection::message(RejectCode::InvalidTopic, error.to_string());
                return Ok(self.rejected(topic, payload, received, vec![rejection]));
            }
        };
        let kind = match address {
            TopicAddress::Datastream { .. } => JsonKind::Plain,
            TopicAddress::Thing { .. } => JsonKind::Senml,
        };
        let decoded = match decode::decode(payload, kind, received, self.limits) {
            Ok(decoded) => decoded,
            Err(rejection) => return Ok(self.rejected(topic, payload, received, vec![rejection])),
        };
        for reading in &decoded.readings {
            if let Ok(key) = check::key_of(&address, reading) {
                self.cache.ensure(&key, readiness, shutdown).await?;
            }
        }
        let clock = Clock { received, max_future_micros: self.max_future_micros };
        let routed = check::route(&address, &decoded.readings, clock, |key| self.cache.get(key));
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
            Outcome::default()
        } else {
            self.rejected(topic, payload, received, rejections)
        };
        outcome.observations = observations;
        outcome.accepted = routed.accepted;
        Ok(outcome)
    }

    fn rejected(&self, topic: &str, payload: &[u8], received: Micros, mut rejections: Vec<Rejection>) -> Outcome {
        let rejected = rejections.iter().map(|r| r.code).collect();
        let total = rejections.len();
        if total > MAX_REASONS_PER_DEAD_LETTER {
            rejections.truncate(MAX_REASONS_PER_DEAD_LETTER);
            rejections[0].reason = format!(
                "{} ({total} readings rejected; the first {MAX_REASONS_PER_DEAD_LETTER} reasons are listed)",
                rejections[0].reason
            );
        }
        let org = self.scheme.org_segment(topic).unwrap_or_default().chars().take(64).collect::<String>();
        let letter = DeadLetter {
            org,
            mqtt_topic: topic.chars().take(1024).collect(),
            payload: payload.to_vec(),
            received_unix_us: received.0,
            rejections: rejections.iter().map(Rejection::to_proto).collect(),
            ..Default::default()
        };
        Outcome { observations: Vec::new(), dead_letter: Some(letter), accepted: 0, rejected }
    }
}
