//! A batch of Kafka records decoded into rows, and its database write.

use std::collections::BTreeMap;

use hoheit_core::dead_letters::{self, NewDeadLetter, SourcePosition, StoredRejection};
use hoheit_core::domain::{DatastreamId, Micros, Reading};
use hoheit_core::observations;
use hoheit_core::rejection::RejectCode;
use hoheit_proto::v1::{DatastreamBatch, DeadLetter};
use prost::Message;
use sqlx::PgPool;

/// Which of Hoheit's topics a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Observations,
    DeadLetters,
}

/// Rows decoded from Kafka records, with the offsets they came from.
#[derive(Debug, Default)]
pub struct Batch {
    pub readings: Vec<Reading>,
    pub dead_letters: Vec<NewDeadLetter>,
    /// Highest offset seen per (topic, partition).
    pub offsets: BTreeMap<(String, i32), i64>,
    pub records: usize,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub readings_inserted: u64,
    pub dead_letters_inserted: u64,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Adds one record. A record that cannot be decoded (a poison message)
    /// becomes a dead letter itself instead of stopping the stream.
    pub fn add(&mut self, source: Source, position: SourcePosition, payload: &[u8]) {
        self.records += 1;
        let slot = self.offsets.entry((position.topic.clone(), position.partition)).or_insert(position.offset);
        *slot = (*slot).max(position.offset);
        match source {
            Source::Observations => match DatastreamBatch::decode(payload) {
                Ok(batch) if batch.time_unix_us.len() == batch.value.len() => {
                    let id = DatastreamId(batch.datastream_id);
                    self.readings.extend(batch.time_unix_us.iter().zip(&batch.value).map(|(&t, &value)| Reading {
                        datastream: id,
                        time: Micros(t),
                        value,
                    }));
                }
                Ok(_) => self.poison(position, payload, "observation record has different numbers of times and values"),
                Err(error) => self.poison(
                    position,
                    payload,
                    &format!("observation record is not a hoheit.v1.DatastreamBatch: {error}"),
                ),
            },
            Source::DeadLetters => match DeadLetter::decode(payload) {
                Ok(letter) => self.dead_letters.push(NewDeadLetter::from_proto(letter, position)),
                Err(error) => self.poison(
                    position,
                    payload,
                    &format!("dead-letter record is not a hoheit.v1.DeadLetter: {error}"),
                ),
            },
        }
    }

    fn poison(&mut self, position: SourcePosition, payload: &[u8], reason: &str) {
        tracing::warn!(topic = %position.topic, partition = position.partition, offset = position.offset, reason, "poison record kept as dead letter");
        self.dead_letters.push(NewDeadLetter {
            received: Micros::now(),
            org: String::new(),
            mqtt_topic: String::new(),
            payload: payload.to_vec(),
            rejections: vec![StoredRejection {
                reading_index: None,
                code: RejectCode::UndecodableRecord.as_str().to_owned(),
                reason: format!("Kafka record {}/{}@{}: {reason}", position.topic, position.partition, position.offset),
            }],
            source: position,
        });
    }

    /// Writes the batch in one transaction.
    pub async fn write(&self, pool: &PgPool) -> Result<Written, sqlx::Error> {
        let mut tx = pool.begin().await?;
        let readings_inserted = observations::insert(&mut tx, &self.readings).await?;
        let dead_letters_inserted = dead_letters::insert(&mut tx, &self.dead_letters).await?;
        tx.commit().await?;
        Ok(Written { readings_inserted, dead_letters_inserted })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: i64) -> SourcePosition {
        SourcePosition { topic: "hoheit.observations".into(), partition: 2, offset }
    }

    #[test]
    fn records_decode_into_readings_and_track_the_highest_offset() {
        let mut batch = Batch::default();
        let record =
            DatastreamBatch { datastream_id: 9, time_unix_us: vec![1, 2], value: vec![0.5, 1.5], received_unix_us: 3 };
        batch.add(Source::Observations, at(7), &record.encode_to_vec());
        batch.add(Source::Observations, at(5), &record.encode_to_vec());
        assert_eq!(batch.readings.len(), 4);
        assert_eq!(batch.readings[1], Reading { datastream: DatastreamId(9), time: Micros(2), value: 1.5 });
        assert_eq!(batch.offsets[&("hoheit.observations".to_owned(), 2)], 7);
        assert!(batch.dead_letters.is_empty());
    }

    #[test]
    fn a_poison_record_becomes_a_dead_letter() {
        let mut batch = Batch::default();
        batch.add(Source::Observations, at(1), b"\xff\xff not protobuf");
        let uneven =
            DatastreamBatch { datastream_id: 1, time_unix_us: vec![1, 2], value: vec![0.5], received_unix_us: 0 };
        batch.add(Source::Observations, at(2), &uneven.encode_to_vec());
        assert!(batch.readings.is_empty());
        assert_eq!(batch.dead_letters.len(), 2);
        assert_eq!(batch.dead_letters[0].rejections[0].code, "undecodable_record");
        assert!(batch.dead_letters[1].rejections[0].reason.contains("different numbers"));
        assert_eq!(batch.records, 2);
    }
}
