//! Kafka topic names and client settings, in one place.
//!
//! Ingest produces with an idempotent producer (`acks=all`) and never gives up
//! on a message (`message.timeout.ms=0`): a reading either reaches Kafka or
//! its MQTT message stays unacknowledged and the broker redelivers it. The
//! writer consumes in a group with auto-commit off and commits offsets only
//! after the database commit.
//!
//! A record's trace context travels in its headers as W3C trace context
//! (`traceparent`, `tracestate`): [`trace_headers`] writes them, and
//! [`trace_context`] reads them back.

use std::time::Duration;

use clap::Args;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::types::RDKafkaErrorCode;

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
            // 20 ms (was 5): 32k instead of 27k single-reading messages/s through ingest (issue 6);
            // fewer, larger produce requests for the broker, 15 ms more latency.
            .set("linger.ms", "20")
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
            .set("fetch.wait.max.ms", "50")
            // Prefetch at most 8 MiB or 10,000 records per partition (defaults: 64 MiB, 100,000):
            // keeps the writer's RSS bounded under a backlog; a batch needs far less.
            .set("queued.max.messages.kbytes", "8192")
            .set("queued.min.messages", "10000");
        config
    }

    /// Creates Hoheit's topics if they do not exist yet.
    pub async fn ensure_topics(&self) -> Result<(), KafkaError> {
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
        Ok(())
    }
}

/// Hoheit's topic names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub observations: String,
    pub dead_letters: String,
}

/// Record headers that carry `cx`'s trace context, or `None` when `cx` holds
/// no valid span (tracing off): then records go out without headers.
pub fn trace_headers(cx: &opentelemetry::Context) -> Option<OwnedHeaders> {
    struct Carrier(Vec<(String, String)>);
    impl Injector for Carrier {
        fn set(&mut self, key: &str, value: String) {
            self.0.push((key.to_owned(), value));
        }
    }
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = Carrier(Vec::with_capacity(2));
    TraceContextPropagator::new().inject_context(cx, &mut carrier);
    let headers = carrier.0.iter().fold(OwnedHeaders::new_with_capacity(carrier.0.len()), |headers, (key, value)| {
        headers.insert(Header { key, value: Some(value.as_bytes()) })
    });
    Some(headers)
}

/// The trace context in a record's headers, if they hold a valid one; header
/// names are matched without regard to case, other headers are ignored.
pub fn trace_context<H: Headers>(headers: &H) -> Option<SpanContext> {
    struct Carrier<'a, H>(&'a H);
    impl<H: Headers> Extractor for Carrier<'_, H> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0
                .iter()
                .find(|h| h.key.eq_ignore_ascii_case(key))
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(v).ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|h| h.key).collect()
        }
    }
    let cx = TraceContextPropagator::new().extract(&Carrier(headers));
    let span_context = cx.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    #[test]
    fn a_trace_context_survives_the_record_headers() {
        let sent = SpanContext::new(
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            SpanId::from(0x00f0_67aa_0ba9_02b7),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let cx = opentelemetry::Context::new().with_remote_span_context(sent.clone());
        let headers = trace_headers(&cx).expect("a valid context gives headers");
        let traceparent = headers.iter().find(|h| h.key == "traceparent").and_then(|h| h.value).unwrap();
        assert_eq!(traceparent, b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let received = trace_context(&headers).expect("headers give a context back");
        assert_eq!((received.trace_id(), received.span_id()), (sent.trace_id(), sent.span_id()));
        assert!(received.is_sampled() && received.is_remote());
    }

    #[test]
    fn no_context_no_headers_and_bad_headers_no_context() {
        assert!(trace_headers(&opentelemetry::Context::new()).is_none());
        let bad = OwnedHeaders::new().insert(Header {
            key: "traceparent",
            value: Some(b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        });
        assert!(trace_context(&bad).is_none());
        let other = OwnedHeaders::new().insert(Header { key: "content-type", value: Some(b"application/x-protobuf") });
        assert!(trace_context(&other).is_none());
        let upper = OwnedHeaders::new().insert(Header {
            key: "Traceparent",
            value: Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
        });
        assert!(trace_context(&upper).is_some_and(|c| !c.is_sampled()));
    }
}
