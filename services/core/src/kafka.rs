//! Kafka topic names and client settings, in one place.
//!
//! Ingest produces with an idempotent producer (`acks=all`) and never gives up
//! on a message (`message.timeout.ms=0`): a reading either reaches Kafka or
//! its MQTT message stays unacknowledged and the broker redelivers it. The
//! writer consumes in a group with auto-commit off and commits offsets only
//! after the database commit.

use std::time::Duration;

use clap::Args;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
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
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "100000")
            .set("queue.buffering.max.kbytes", "65536");
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
            .set("fetch.wait.max.ms", "50");
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
