//! The outcomes of several MQTT messages gathered into Kafka records.
//!
//! Ingest turns what one message holds into `DatastreamBatch`es (see
//! `pipeline`), and gathers those of the messages that arrive together into
//! one `ObservationRecord` per partition: a single-reading message then no
//! longer costs the broker and the producer one record each. Each batch keeps
//! its message's trace context; a dead letter stays one record per message.
//! The messages wait with their records and are acknowledged once Kafka has
//! confirmed all of them.

use hoheit_kafka::{partition_of, TraceFields};
use hoheit_proto::v1::{DatastreamBatch, DeadLetter, ObservationRecord};
use prost::Message;

use crate::pipeline::Outcome;

/// Gathered messages are sent at the latest when they reach this many…
pub const MAX_MESSAGES: usize = 2_000;
/// …or about this many encoded bytes. A record stays below Kafka's default
/// limit of 1 MB: this plus one message's batches (a 256 KiB payload holds at
/// most 10,000 readings, ~160 KB encoded).
pub const MAX_BYTES: usize = 512 * 1024;

/// Which of Hoheit's topics a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Observation,
    DeadLetter,
}

impl RecordKind {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Observation => "observations",
            Self::DeadLetter => "dead_letters",
        }
    }
}

/// A Kafka record to produce. Observations go to the partition ingest chose
/// and have no key; dead letters are keyed by organisation.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: RecordKind,
    pub partition: Option<i32>,
    pub key: Option<String>,
    pub value: Vec<u8>,
}

/// The records of gathered messages, and the messages (`M`: what the
/// acknowledgement needs) in arrival order.
#[derive(Debug)]
pub struct Gathered<M> {
    pub records: Vec<Record>,
    pub messages: Vec<M>,
}

/// Messages gathered since the last [`Gather::take`].
#[derive(Debug)]
pub struct Gather<M> {
    partitions: i32,
    /// Batches per partition of the observations topic, in arrival order.
    observations: Vec<Vec<DatastreamBatch>>,
    dead_letters: Vec<DeadLetter>,
    messages: Vec<M>,
    bytes: usize,
}

impl<M> Gather<M> {
    /// Gathers for an observations topic of `partitions` partitions.
    pub fn new(partitions: i32) -> Self {
        let partitions = partitions.max(1);
        Self {
            partitions,
            observations: vec![Vec::new(); partitions as usize],
            dead_letters: Vec::new(),
            messages: Vec::new(),
            bytes: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Whether what is gathered should be sent now.
    pub fn is_full(&self) -> bool {
        self.messages.len() >= MAX_MESSAGES || self.bytes >= MAX_BYTES
    }

    /// Adds one message's outcome, its trace context, and the message.
    pub fn add(&mut self, outcome: Outcome, trace: &TraceFields, message: M) {
        for mut batch in outcome.observations {
            batch.traceparent.clone_from(&trace.traceparent);
            batch.tracestate.clone_from(&trace.tracestate);
            self.bytes += batch.encoded_len() + 8;
            let partition = partition_of(batch.datastream_id, self.partitions) as usize;
            self.observations[partition].push(batch);
        }
        if let Some(mut letter) = outcome.dead_letter {
            letter.traceparent.clone_from(&trace.traceparent);
            letter.tracestate.clone_from(&trace.tracestate);
            self.bytes += letter.encoded_len();
            self.dead_letters.push(letter);
        }
        self.messages.push(message);
    }

    /// The records of everything gathered (one observation record per
    /// partition that has readings, one record per dead letter), and the
    /// messages; the gather is empty afterwards.
    pub fn take(&mut self) -> Gathered<M> {
        let mut records = Vec::new();
        for (partition, batches) in self.observations.iter_mut().enumerate() {
            if batches.is_empty() {
                continue;
            }
            let record = ObservationRecord { batches: std::mem::take(batches) };
            records.push(Record {
                kind: RecordKind::Observation,
                partition: Some(partition as i32),
                key: None,
                value: record.encode_to_vec(),
            });
        }
        records.extend(self.dead_letters.drain(..).map(|letter| Record {
            kind: RecordKind::DeadLetter,
            partition: None,
            key: Some(letter.org.clone()),
            value: letter.encode_to_vec(),
        }));
        self.bytes = 0;
        Gathered { records, messages: std::mem::take(&mut self.messages) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(datastream_id: i64, values: &[f64]) -> DatastreamBatch {
        DatastreamBatch {
            datastream_id,
            time_unix_us: (0..values.len() as i64).collect(),
            value: values.to_vec(),
            received_unix_us: 7,
            ..Default::default()
        }
    }

    fn trace(n: u8) -> TraceFields {
        TraceFields { traceparent: format!("00-{:032x}-{:016x}-01", n, n), tracestate: String::new() }
    }

    fn observations(records: &[Record]) -> Vec<(i32, ObservationRecord)> {
        records
            .iter()
            .filter(|r| r.kind == RecordKind::Observation)
            .map(|r| (r.partition.unwrap(), ObservationRecord::decode(r.value.as_slice()).unwrap()))
            .collect()
    }

    #[test]
    fn messages_share_one_record_per_partition_in_arrival_order() {
        let mut gather = Gather::new(4);
        assert!(gather.is_empty());
        // 12 single-reading messages over 3 datastreams, then one with two datastreams.
        for i in 0..12 {
            let outcome =
                Outcome { observations: vec![batch(1 + i % 3, &[i as f64])], accepted: 1, ..Default::default() };
            gather.add(outcome, &trace(i as u8 + 1), i);
        }
        let both =
            Outcome { observations: vec![batch(1, &[100.0]), batch(2, &[200.0])], accepted: 2, ..Default::default() };
        gather.add(both, &TraceFields::default(), 12);
        assert!(!gather.is_empty() && !gather.is_full());

        let Gathered { records, messages } = gather.take();
        assert_eq!(messages, (0..=12).collect::<Vec<_>>());
        assert!(gather.is_empty());
        let records = observations(&records);
        let partitions: Vec<i32> = records.iter().map(|(p, _)| *p).collect();
        let mut expected: Vec<i32> = [1, 2, 3].iter().map(|&id| partition_of(id, 4)).collect();
        expected.sort();
        expected.dedup();
        assert_eq!(partitions, expected, "one record per partition that has readings, none for the others");

        for id in 1..=3 {
            let (_, record) = records.iter().find(|(p, _)| *p == partition_of(id, 4)).unwrap();
            let mine: Vec<&DatastreamBatch> = record.batches.iter().filter(|b| b.datastream_id == id).collect();
            let values: Vec<f64> = mine.iter().flat_map(|b| b.value.clone()).collect();
            let mut expected: Vec<f64> = (0..12).filter(|i| 1 + i % 3 == id).map(|i| i as f64).collect();
            expected.extend(match id {
                1 => Some(100.0),
                2 => Some(200.0),
                _ => None,
            });
            assert_eq!(values, expected, "datastream {id}: every reading, in arrival order");
            // Each message's batch carries that message's trace context (none for the untraced one).
            for b in &mine {
                match b.value[0] as u8 {
                    v @ 0..12 => assert_eq!(b.traceparent, trace(v + 1).traceparent),
                    _ => assert!(b.traceparent.is_empty()),
                }
            }
        }
        let next = gather.take();
        assert!(next.records.is_empty() && next.messages.is_empty(), "take leaves nothing behind");
    }

    #[test]
    fn dead_letters_stay_one_record_each_keyed_by_organisation() {
        let mut gather = Gather::new(2);
        let letter =
            |org: &str| DeadLetter { org: org.into(), mqtt_topic: format!("hoheit/v1/{org}/x"), ..Default::default() };
        gather.add(Outcome { dead_letter: Some(letter("stadt")), ..Default::default() }, &trace(9), "a");
        let partly = Outcome {
            observations: vec![batch(5, &[1.0])],
            dead_letter: Some(letter("werke")),
            accepted: 1,
            ..Default::default()
        };
        gather.add(partly, &TraceFields::default(), "b");
        let Gathered { records, messages } = gather.take();
        assert_eq!(messages, ["a", "b"]);
        let letters: Vec<(Option<String>, DeadLetter)> = records
            .iter()
            .filter(|r| r.kind == RecordKind::DeadLetter)
            .map(|r| (r.key.clone(), DeadLetter::decode(r.value.as_slice()).unwrap()))
            .collect();
        assert_eq!(letters.len(), 2);
        assert_eq!(letters[0].0.as_deref(), Some("stadt"));
        assert_eq!(letters[0].1.traceparent, trace(9).traceparent);
        assert_eq!(letters[1].0.as_deref(), Some("werke"));
        assert!(letters[1].1.traceparent.is_empty());
        assert_eq!(observations(&records).len(), 1);
        assert!(records.iter().filter(|r| r.kind == RecordKind::DeadLetter).all(|r| r.partition.is_none()));
    }

    #[test]
    fn a_gather_is_full_at_its_message_or_byte_limit_and_records_stay_under_a_megabyte() {
        let mut gather = Gather::new(1);
        for i in 0..MAX_MESSAGES - 1 {
            gather.add(Outcome { observations: vec![batch(1, &[1.0])], ..Default::default() }, &trace(1), i);
        }
        assert!(!gather.is_full());
        gather.add(Outcome { observations: vec![batch(1, &[1.0])], ..Default::default() }, &trace(1), 0);
        assert!(gather.is_full(), "full at {MAX_MESSAGES} messages");
        gather.take();

        // Largest messages (10,000 readings each) into one partition, until full.
        let big = batch(1, &vec![1.5; 10_000]);
        let mut n = 0;
        while !gather.is_full() {
            gather.add(Outcome { observations: vec![big.clone()], ..Default::default() }, &trace(2), n);
            n += 1;
        }
        assert!(n < MAX_MESSAGES, "full by bytes after {n} messages");
        let Gathered { records, .. } = gather.take();
        assert_eq!(records.len(), 1);
        assert!(records[0].value.len() < 1_000_000, "record of {} bytes", records[0].value.len());
    }
}
