//! Kafka consumer lag of the writer, from librdkafka's statistics.
//!
//! librdkafka reports, every `statistics.interval.ms`, the state of each
//! partition the consumer holds. The lag that matters here is the number of
//! records not yet in the database: the high watermark minus the committed
//! offset, since the writer stores offsets only after the database commit
//! (and librdkafka commits them within a second). It is
//! exported as the gauge `hoheit_writer_kafka_consumer_lag{topic, partition}`;
//! a partition that moved to another writer after a rebalance is set to 0,
//! so that summing over all writers gives the group's lag.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::{ClientContext, TopicPartitionList};
use serde::Deserialize;

/// The lag of one partition this consumer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// Records after the committed offset.
    pub lag: i64,
}

#[derive(Deserialize)]
struct Statistics {
    #[serde(default)]
    topics: BTreeMap<String, TopicStatistics>,
}

#[derive(Deserialize)]
struct TopicStatistics {
    #[serde(default)]
    partitions: BTreeMap<String, PartitionStatistics>,
}

#[derive(Deserialize)]
struct PartitionStatistics {
    partition: i32,
    #[serde(default)]
    desired: bool,
    #[serde(default = "unknown")]
    lo_offset: i64,
    #[serde(default = "unknown")]
    hi_offset: i64,
    #[serde(default = "unknown")]
    committed_offset: i64,
    #[serde(default = "unknown")]
    consumer_lag: i64,
}

fn unknown() -> i64 {
    -1
}

/// The lag of every partition assigned to this consumer that librdkafka can
/// tell, from one statistics JSON document. Partition -1 (librdkafka's
/// internal one) and partitions not assigned are left out.
pub fn consumer_lag(statistics: &[u8]) -> Result<Vec<PartitionLag>, serde_json::Error> {
    let statistics: Statistics = serde_json::from_slice(statistics)?;
    let mut lags = Vec::new();
    for (topic, stats) in statistics.topics {
        for partition in stats.partitions.into_values() {
            if partition.partition < 0 || !partition.desired {
                continue;
            }
            let lag = if partition.consumer_lag >= 0 {
                partition.consumer_lag
            } else if partition.committed_offset < 0 && partition.hi_offset >= 0 {
                // Nothing committed yet: everything retained is still to be written.
                partition.hi_offset - partition.lo_offset.max(0)
            } else {
                continue;
            };
            lags.push(PartitionLag { topic: topic.clone(), partition: partition.partition, lag: lag.max(0) });
        }
    }
    Ok(lags)
}

/// The writer consumer's librdkafka context: turns statistics into gauges.
#[derive(Default)]
pub struct LagContext {
    /// Partitions reported last time, to zero those that went away.
    reported: Mutex<BTreeSet<(String, i32)>>,
}

impl LagContext {
    fn record(&self, lags: Vec<PartitionLag>) {
        let now: BTreeSet<(String, i32)> = lags.iter().map(|l| (l.topic.clone(), l.partition)).collect();
        for lag in lags {
            metrics::gauge!("hoheit_writer_kafka_consumer_lag", "topic" => lag.topic, "partition" => lag.partition.to_string())
                .set(lag.lag as f64);
        }
        let Ok(mut reported) = self.reported.lock() else { return };
        for (topic, partition) in reported.difference(&now) {
            metrics::gauge!("hoheit_writer_kafka_consumer_lag", "topic" => topic.clone(), "partition" => partition.to_string())
                .set(0.0);
        }
        *reported = now;
    }
}

impl ClientContext for LagContext {
    fn stats_raw(&self, statistics: &[u8]) {
        match consumer_lag(statistics) {
            Ok(lags) => self.record(lags),
            Err(error) => tracing::debug!(%error, "cannot read librdkafka statistics"),
        }
    }
}

impl ConsumerContext for LagContext {
    /// librdkafka's periodic commit of the stored offsets: a failure means
    /// those records are written again after a restart or rebalance.
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            // Nothing was stored since the last commit.
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => {
                metrics::counter!("hoheit_writer_commit_errors_total").increment(1);
                tracing::warn!(%error, "committing offsets failed; the records will be redelivered");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_read_for_assigned_partitions_only() {
        let json = br#"{
            "name": "hoheit#consumer-1", "type": "consumer", "ts": 1,
            "topics": {
                "hoheit.observations": {"topic": "hoheit.observations", "partitions": {
                    "0": {"partition": 0, "desired": true, "lo_offset": 0, "hi_offset": 120, "committed_offset": 100, "consumer_lag": 20},
                    "1": {"partition": 1, "desired": true, "lo_offset": 5, "hi_offset": 50, "committed_offset": -1001, "consumer_lag": -1},
                    "2": {"partition": 2, "desired": false, "lo_offset": 0, "hi_offset": 7, "committed_offset": 1, "consumer_lag": 6},
                    "3": {"partition": 3, "desired": true, "lo_offset": -1001, "hi_offset": -1001, "committed_offset": -1001, "consumer_lag": -1},
                    "-1": {"partition": -1, "desired": false, "consumer_lag": -1}
                }},
                "hoheit.dead-letters": {"topic": "hoheit.dead-letters", "partitions": {
                    "0": {"partition": 0, "desired": true, "lo_offset": 0, "hi_offset": 3, "committed_offset": 3, "consumer_lag": 0}
                }}
            }
        }"#;
        let lags = consumer_lag(json).unwrap();
        let lag = |topic: &str, partition: i32| {
            lags.iter().find(|l| l.topic == topic && l.partition == partition).map(|l| l.lag)
        };
        assert_eq!(lag("hoheit.observations", 0), Some(20));
        assert_eq!(lag("hoheit.observations", 1), Some(45), "nothing committed: all retained records");
        assert_eq!(lag("hoheit.observations", 2), None, "not assigned to this writer");
        assert_eq!(lag("hoheit.observations", 3), None, "nothing known yet");
        assert_eq!(lag("hoheit.dead-letters", 0), Some(0));
        assert_eq!(lags.len(), 3);
    }

    #[test]
    fn statistics_without_topics_give_no_lag() {
        assert!(consumer_lag(br#"{"name": "c", "type": "consumer"}"#).unwrap().is_empty());
        assert!(consumer_lag(b"not json").is_err());
    }
}
