//! Kafka topic names and client settings, in one place.
//!
//! Ingest produces with an idempotent producer (`acks=all`) and never gives up
//! on a message (`message.timeout.ms=0`): a reading either reaches Kafka or
//! its MQTT message stays unacknowledged and the broker redelivers it. The
//! writer consumes in a group with auto-commit off and commits offsets only
//! after the database commit.
//!
//! An observation record holds several MQTT messages' readings, each
//! datastream in the partition [`partition_of`] gives it. Each message's
//! trace context travels with its readings inside the record, as W3C trace
//! context fields ([`TraceFields`]): one record, many traces.

use std::time::Duration;

use clap::Args;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;

/// Kafka settings shared by ingest and writer.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (host:port, comma separated).
    #[arg(long = "kafka-bootstrap", env = "HOHEIT_KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Prefix of Hoheit's topic names: `{prefix}.observations`, `{prefix}.dead-letters`.
    #[arg(long = "kafka-topic-prefix", env = "HOHEIT_KAFKA_TOPIC_PREFIX", default_value = "hoheit")]
    pub topic_prefix: String,
    /// Partitions of the topics when Hoheit creates them (the writer group's parallelism).
    #[arg(long = "kafka-partitions", env = "HOHEIT_KAFKA_PARTITIONS", default_value_t = 4)]
    pub partitions: i32,
    /// Replication factor of the topics when Hoheit creates them.
    #[arg(long = "kafka-replication", env = "HOHEIT_KAFKA_REPLICATION", default_value_t = 1)]
    pub replication: i32,
}

impl KafkaArgs {
    pub fn topics(&self) -> Topics {
        Topics {
            observations: format!("{}.observations", self.topic_prefix),
            dead_letters: format!("{}.dead-letters", self.topic_prefix),
        }
    }

    fn base_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap).set("client.id", "hoheit");
        config
    }

    /// Settings of ingest's producer.
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = self.base_config();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "0")
            // 5 ms. Issue 6 chose 20 (32k instead of 27k single-reading MQTT messages/s), before
            // ingest gathered messages into shared records itself; now an HTTP request waits for
            // its record, and 20 ms of linger were most of its latency. Push benchmark, 256
            // clients, 20 → 5 ms: single-reading requests 6,993 → 8,013/s (42% → 50% of a bare
            // handler), p50 34 → 29 ms; batches 747k → 1,126k readings/s; single readings over
            // MQTT in the same run 29,712 → 32,217/s.
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "100000")
            // At most 16 MiB queued (a full queue holds back ingest's MQTT loop): bounds ingest's RSS.
            .set("queue.buffering.max.kbytes", "16384");
        config
    }

    /// Settings of the writer's consumer in `group`.
    pub fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut config = self.base_config();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", "10000")
            // 10 ms (was 50). Apache Kafka answers a fetch as soon as a record arrives, so there the
            // wait only bounds an idle consumer's long poll. tansu 0.6.0 reads once and then sleeps
            // the whole wait before it answers, so a record waits ~1.5 waits for its writer.
            // `bench e2e`, 5,000 readings/s (2026-11-30): publish → queryable p50/p99 101/134 ms at 50,
            // 37/55 ms at 10; 30,000/s sustained at both. The price is tansu's: 31% → 49% of a core
            // at that rate, 8% → 29% beside an idle writer.
            .set("fetch.wait.max.ms", "10")
            // Prefetch at most 8 MiB or 10,000 records per partition (defaults: 64 MiB, 100,000):
            // keeps the writer's RSS bounded under a backlog; a batch needs far less.
            .set("queued.max.messages.kbytes", "8192")
            .set("queued.min.messages", "10000");
        config
    }

    /// Creates Hoheit's topics if they do not exist yet; returns the number
    /// of partitions of the observations topic as the broker has it (it may
    /// differ from `partitions` when the topic existed before).
    pub async fn ensure_topics(&self) -> Result<i32, KafkaError> {
        let admin: AdminClient<DefaultClientContext> = self.base_config().create()?;
        let topics = self.topics();
        let new_topics = [
            NewTopic::new(&topics.observations, self.partitions, TopicReplication::Fixed(self.replication)),
            NewTopic::new(&topics.dead_letters, self.partitions, TopicReplication::Fixed(self.replication)),
        ];
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics(&new_topics, &options).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(KafkaError::AdminOp(code))
                        .inspect_err(|_| tracing::error!(%topic, %code, "creating topic failed"));
                }
            }
        }
        let observations = topics.observations;
        let count = tokio::task::spawn_blocking(move || {
            let metadata = admin.inner().fetch_metadata(Some(&observations), Duration::from_secs(10))?;
            let count = metadata.topics().iter().find(|t| t.name() == observations).map_or(0, |t| t.partitions().len());
            Ok::<_, KafkaError>(count)
        })
        .await
        .map_err(|_| KafkaError::Canceled)??;
        match i32::try_from(count) {
            Ok(count) if count > 0 => Ok(count),
            // Just created, the broker may not list the partitions yet.
            _ => Err(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition)),
        }
    }

    /// [`Self::ensure_topics`] until it succeeds, backing off from 0.2 to 5 s
    /// (services start before Kafka does); `None` when `shutdown` fires first.
    pub async fn await_topics(&self, shutdown: &CancellationToken) -> Option<i32> {
        let mut delay = Duration::from_millis(200);
        loop {
            match self.ensure_topics().await {
                Ok(partitions) => return Some(partitions),
                Err(error) => tracing::warn!(%error, retry_in = ?delay, "Kafka not reachable yet"),
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.cancelled() => return None,
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

/// Hoheit's topic names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub observations: String,
    pub dead_letters: String,
}

/// A W3C trace context as it travels inside Hoheit's Kafka records (the
/// `traceparent` and `tracestate` fields of `DatastreamBatch` and
/// `DeadLetter`): empty strings when there is none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceFields {
    pub traceparent: String,
    pub tracestate: String,
}

impl TraceFields {
    /// The fields of `cx`'s span, or empty ones when `cx` holds no valid span
    /// (tracing off): then records carry nothing.
    pub fn of(cx: &opentelemetry::Context) -> Self {
        let mut fields = Self::default();
        if cx.span().span_context().is_valid() {
            TraceContextPropagator::new().inject_context(cx, &mut fields);
        }
        fields
    }

    /// The span context the fields hold, if they hold a valid one.
    pub fn span_context(traceparent: &str, tracestate: &str) -> Option<SpanContext> {
        struct Carrier<'a>(&'a str, &'a str);
        impl Extractor for Carrier<'_> {
            fn get(&self, key: &str) -> Option<&str> {
                match key {
                    "traceparent" if !self.0.is_empty() => Some(self.0),
                    "tracestate" if !self.1.is_empty() => Some(self.1),
                    _ => None,
                }
            }
            fn keys(&self) -> Vec<&str> {
                vec!["traceparent", "tracestate"]
            }
        }
        if traceparent.is_empty() {
            return None;
        }
        let cx = TraceContextPropagator::new().extract(&Carrier(traceparent, tracestate));
        let span_context = cx.span().span_context().clone();
        span_context.is_valid().then_some(span_context)
    }
}

impl Injector for TraceFields {
    fn set(&mut self, key: &str, value: String) {
        match key {
            "traceparent" => self.traceparent = value,
            "tracestate" => self.tracestate = value,
            _ => {}
        }
    }
}

/// The partition of Hoheit's observations topic that holds `datastream`'s
/// readings, among `partitions` (ingest chooses it, so that one record can
/// carry several datastreams of one partition). A fixed mix of the id
/// (splitmix64's finaliser) spreads consecutive ids evenly.
pub fn partition_of(datastream: i64, partitions: i32) -> i32 {
    let mut x = datastream as u64;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x % partitions.max(1) as u64) as i32
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    #[test]
    fn a_trace_context_survives_the_record_fields() {
        let sent = SpanContext::new(
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            SpanId::from(0x00f0_67aa_0ba9_02b7),
            TraceFlags::SAMPLED,
            false,
            TraceState::from_key_value([("hoheit", "1")]).unwrap(),
        );
        let cx = opentelemetry::Context::new().with_remote_span_context(sent.clone());
        let fields = TraceFields::of(&cx);
        assert_eq!(fields.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(fields.tracestate, "hoheit=1");
        let received = TraceFields::span_context(&fields.traceparent, &fields.tracestate).expect("a context back");
        assert_eq!((received.trace_id(), received.span_id()), (sent.trace_id(), sent.span_id()));
        assert!(received.is_sampled() && received.is_remote());
        assert_eq!(received.trace_state().get("hoheit"), Some("1"));
    }

    #[test]
    fn no_context_no_fields_and_bad_fields_no_context() {
        assert_eq!(TraceFields::of(&opentelemetry::Context::new()), TraceFields::default());
        assert!(TraceFields::span_context("", "").is_none());
        assert!(TraceFields::span_context("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "").is_none());
        assert!(TraceFields::span_context("not a traceparent", "a=b").is_none());
        let unsampled = TraceFields::span_context("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "");
        assert!(unsampled.is_some_and(|c| !c.is_sampled()));
    }

    #[test]
    fn datastreams_spread_evenly_over_partitions_and_stay_put() {
        let mut counts = [0usize; 4];
        for id in 1..=10_000 {
            let p = partition_of(id, 4);
            assert_eq!(p, partition_of(id, 4));
            counts[p as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (2_300..=2_700).contains(&c)), "{counts:?}");
        assert_eq!(partition_of(7, 1), 0);
        assert_eq!(partition_of(7, 0), 0, "a missing partition count never divides by zero");
        assert!((0..12).contains(&partition_of(i64::MIN, 12)));
    }
}
