//! The stalled consumer group watchdog: a writer that holds no partition
//! while records wait beyond the group's committed offsets, unchanged between
//! two checks, rejoins the group (a finding of the chaos scenario; see
//! ARCHITECTURE.md, "A consumer group makes progress").

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::{Interval, MissedTickBehavior};

use crate::service::WriterConsumer;

/// How often the writer checks, while it holds no partition, whether its group is stalled.
const STALL_CHECK_EVERY: Duration = Duration::from_secs(15);

/// Detects a consumer group in which nobody consumes: this writer holds no
/// partition, records are waiting beyond the group's committed offsets, and
/// those offsets did not move between two checks. The writer then rejoins the
/// group (unsubscribe, subscribe), which starts a new generation.
///
/// Why: tansu 0.6.0 keeps a member that died without leaving the group
/// (SIGKILL) as the group's leader; the next member gets an empty assignment
/// while its heartbeats succeed, and after the dead member's session expires
/// the group stays "formed" with no assignment, so nothing would be consumed
/// again. Apache Kafka rebalances instead; there this never fires except when
/// the group truly makes no progress, where a rejoin is harmless.
pub(crate) struct StallWatch {
    /// Committed offsets at the previous check, while unassigned.
    previous: Option<Vec<i64>>,
    /// When the next check is due.
    every: Interval,
}

impl StallWatch {
    /// A watch whose first check is due at once, then every [`STALL_CHECK_EVERY`].
    pub(crate) fn new() -> Self {
        let mut every = tokio::time::interval(STALL_CHECK_EVERY);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { previous: None, every }
    }

    /// Waits until the next check is due.
    pub(crate) async fn due(&mut self) {
        self.every.tick().await;
    }

    /// Rejoins the group if it is stalled (see the type's doc).
    pub(crate) async fn check(&mut self, consumer: &Arc<WriterConsumer>, topics: &[&str]) {
        let held = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        if held > 0 {
            self.previous = None;
            return;
        }
        let probe = consumer.clone();
        let topics_owned: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        let Ok(Ok((committed, pending))) =
            tokio::task::spawn_blocking(move || group_progress(&probe, &topics_owned)).await
        else {
            return; // the broker is away: nothing to judge
        };
        let stalled = pending && self.previous.as_ref() == Some(&committed);
        self.previous = Some(committed);
        if stalled {
            self.previous = None;
            metrics::counter!("hoheit_writer_group_rejoins_total").increment(1);
            tracing::warn!(
                "records are waiting but nobody in the consumer group consumes them and this writer holds no \
                 partition; rejoining the group"
            );
            consumer.unsubscribe();
            if let Err(error) = consumer.subscribe(topics) {
                tracing::error!(%error, "re-subscribing failed");
            }
        }
    }
}

/// The group's committed offset of every partition of `topics`, and whether
/// any partition holds records beyond it (blocking: librdkafka requests).
fn group_progress(
    consumer: &WriterConsumer,
    topics: &[String],
) -> Result<(Vec<i64>, bool), rdkafka::error::KafkaError> {
    let timeout = Duration::from_secs(5);
    let mut list = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for t in metadata.topics() {
            for p in t.partitions() {
                list.add_partition(t.name(), p.id());
            }
        }
    }
    let committed = consumer.committed_offsets(list, timeout)?;
    let (mut offsets, mut pending) = (Vec::new(), false);
    for element in committed.elements() {
        let (low, high) = consumer.fetch_watermarks(element.topic(), element.partition(), timeout)?;
        let at = match element.offset() {
            Offset::Offset(n) => n,
            _ => low,
        };
        pending |= high > at;
        offsets.push(at);
    }
    Ok((offsets, pending))
}
