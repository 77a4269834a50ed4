//! A batch of Kafka records decoded into rows, and its database write.
//!
//! An observation record holds the readings of several MQTT messages, each
//! with its message's trace context (see `hoheit_kafka::TraceFields`).
//! The batch keeps the sampled ones: the write's statements get spans of
//! their own, and [`Batch::continue_traces`] ends each message's trace with a
//! span that lasts until the database commit.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use hoheit_domain::rejection::RejectCode;
use hoheit_domain::{DatastreamId, Micros, Reading};
use hoheit_kafka::TraceFields;
use hoheit_proto::v1::DeadLetter;
use hoheit_store::dead_letters::{self, NewDeadLetter, SourcePosition, StoredRejection};
use hoheit_store::observations;
use opentelemetry::trace::{Link, SpanContext, SpanId, SpanKind, TraceContextExt, TraceId, Tracer};
use opentelemetry::KeyValue;
use prost::Message;
use sqlx::PgPool;
use tracing::Instrument;

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
    /// Sampled trace contexts of the messages in the records, each once,
    /// with the number of readings that came with it.
    pub traces: Vec<(SpanContext, usize)>,
    trace_index: HashMap<(TraceId, SpanId), usize>,
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
    /// becomes a dead letter itself instead of stopping the stream; so does
    /// an observation record with any malformed batch (none of its readings
    /// are taken: the record is kept whole).
    pub fn add(&mut self, source: Source, position: SourcePosition, payload: &[u8]) {
        self.records += 1;
        let slot = self.offsets.entry((position.topic.clone(), position.partition)).or_insert(position.offset);
        *slot = (*slot).max(position.offset);
        match source {
            Source::Observations => match hoheit_proto::observation_batches(payload) {
                Ok(batches) if batches.iter().all(|b| b.time_unix_us.len() == b.value.len()) => {
                    for batch in batches {
                        let id = DatastreamId(batch.datastream_id);
                        self.readings.extend(batch.time_unix_us.iter().zip(&batch.value).map(|(&t, &value)| Reading {
                            datastream: id,
                            time: Micros(t),
                            value,
                        }));
                        self.keep_trace(&batch.traceparent, &batch.tracestate, batch.value.len());
                    }
                }
                Ok(_) => self.poison(
                    position,
                    payload,
                    "observation record has a batch with different numbers of times and values",
                ),
                Err(error) => self.poison(position, payload, &format!("observation record {error}")),
            },
            Source::DeadLetters => match DeadLetter::decode(payload) {
                Ok(letter) => {
                    self.keep_trace(&letter.traceparent, &letter.tracestate, 0);
                    self.dead_letters.push(NewDeadLetter::from_proto(letter, position));
                }
                Err(error) => self.poison(
                    position,
                    payload,
                    &format!("dead-letter record is not a hoheit.v1.DeadLetter: {error}"),
                ),
            },
        }
    }

    /// Counts `readings` for the trace context in the fields, if it is a
    /// sampled one (nothing would be exported for the others).
    fn keep_trace(&mut self, traceparent: &str, tracestate: &str, readings: usize) {
        let Some(trace) = TraceFields::span_context(traceparent, tracestate).filter(SpanContext::is_sampled) else {
            return;
        };
        match self.trace_index.get(&(trace.trace_id(), trace.span_id())) {
            Some(&i) => self.traces[i].1 += readings,
            None => {
                self.trace_index.insert((trace.trace_id(), trace.span_id()), self.traces.len());
                self.traces.push((trace, readings));
            }
        }
    }

    fn poison(&mut self, position: SourcePosition, payload: &[u8], reason: &str) {
        tracing::warn!(topic = %position.topic, partition = position.partition, offset = position.offset, reason, "poison record kept as dead letter");
        self.dead_letters.push(NewDeadLetter {
            received: Micros::now(),
            org: String::new(),
            mqtt_topic: String::new(),
            door: None,
            payload: payload.to_vec(),
            rejections: vec![StoredRejection {
                reading_index: None,
                code: RejectCode::UndecodableRecord.as_str().to_owned(),
                reason: format!("Kafka record {}/{}@{}: {reason}", position.topic, position.partition, position.offset),
            }],
            source: position,
        });
    }

    /// Writes the batch in one transaction; each statement has a span.
    pub async fn write(&self, pool: &PgPool) -> Result<Written, sqlx::Error> {
        let mut tx = pool.begin().await?;
        let readings_inserted = observations::insert(&mut tx, &self.readings)
            .instrument(tracing::debug_span!(
                "INSERT observations",
                otel.kind = "client",
                db.system.name = "postgresql",
                db.operation.name = "INSERT",
                db.collection.name = "observations",
                hoheit.rows = self.readings.len() as i64,
            ))
            .await?;
        let dead_letters_inserted = dead_letters::insert(&mut tx, &self.dead_letters)
            .instrument(tracing::debug_span!(
                "INSERT dead_letters",
                otel.kind = "client",
                db.system.name = "postgresql",
                db.operation.name = "INSERT",
                db.collection.name = "dead_letters",
                hoheit.rows = self.dead_letters.len() as i64,
            ))
            .await?;
        tx.commit()
            .instrument(tracing::debug_span!(
                "COMMIT",
                otel.kind = "client",
                db.system.name = "postgresql",
                db.operation.name = "COMMIT"
            ))
            .await?;
        Ok(Written { readings_inserted, dead_letters_inserted })
    }

    /// Ends the trace of every sampled message with a `writer store` span, a
    /// child of ingest's span of the message,
    /// from `started` (the write began) to `committed` (the database commit),
    /// linked to the batch's span `batch`. Nothing happens without tracing.
    pub fn continue_traces(&self, batch: &SpanContext, started: SystemTime, committed: SystemTime) {
        if self.traces.is_empty() || !hoheit_runtime::telemetry::tracing_active() {
            return;
        }
        let tracer = opentelemetry::global::tracer(hoheit_runtime::telemetry::TRACER_NAME);
        for (record, readings) in &self.traces {
            let parent = opentelemetry::Context::new().with_remote_span_context(record.clone());
            let links = if batch.is_valid() { vec![Link::with_context(batch.clone())] } else { Vec::new() };
            let mut span = tracer
                .span_builder("writer store")
                .with_kind(SpanKind::Consumer)
                .with_start_time(started)
                .with_links(links)
                .with_attributes([
                    KeyValue::new("messaging.system", "kafka"),
                    KeyValue::new("messaging.operation.type", "process"),
                    KeyValue::new("db.system.name", "postgresql"),
                    KeyValue::new("hoheit.readings", *readings as i64),
                ])
                .start_with_context(&tracer, &parent);
            opentelemetry::trace::Span::end_with_timestamp(&mut span, committed);
        }
    }
}

#[cfg(test)]
mod tests {
    use hoheit_proto::v1::{DatastreamBatch, ObservationRecord};

    use super::*;

    fn at(offset: i64) -> SourcePosition {
        SourcePosition { topic: "hoheit.observations".into(), partition: 2, offset }
    }

    fn segment(datastream_id: i64, traceparent: &str) -> DatastreamBatch {
        DatastreamBatch {
            datastream_id,
            time_unix_us: vec![1, 2],
            value: vec![0.5, 1.5],
            received_unix_us: 3,
            traceparent: traceparent.into(),
            ..Default::default()
        }
    }

    fn record(batches: Vec<DatastreamBatch>) -> Vec<u8> {
        ObservationRecord { batches }.encode_to_vec()
    }

    #[test]
    fn records_decode_into_readings_and_track_the_highest_offset() {
        let mut batch = Batch::default();
        batch.add(Source::Observations, at(7), &record(vec![segment(9, ""), segment(4, "")]));
        batch.add(Source::Observations, at(5), &record(vec![segment(9, "")]));
        assert_eq!(batch.readings.len(), 6);
        assert_eq!(batch.readings[1], Reading { datastream: DatastreamId(9), time: Micros(2), value: 1.5 });
        assert_eq!(batch.readings[2], Reading { datastream: DatastreamId(4), time: Micros(1), value: 0.5 });
        assert_eq!(batch.offsets[&("hoheit.observations".to_owned(), 2)], 7);
        assert_eq!(batch.records, 2);
        assert!(batch.dead_letters.is_empty());
    }

    #[test]
    fn sampled_trace_contexts_are_kept_once_with_their_readings() {
        let sampled = "00-00000000000000000000000000000007-0000000000000001-01";
        let other = "00-00000000000000000000000000000007-0000000000000003-01";
        let unsampled = "00-00000000000000000000000000000007-0000000000000002-00";
        let mut batch = Batch::default();
        batch.add(Source::Observations, at(1), &record(vec![segment(9, sampled), segment(8, other), segment(7, "")]));
        batch.add(Source::Observations, at(2), &record(vec![segment(9, sampled), segment(6, unsampled)]));
        let letter = DeadLetter { org: "stadt".into(), traceparent: other.into(), ..Default::default() };
        batch.add(Source::DeadLetters, at(3), &letter.encode_to_vec());
        assert_eq!(batch.records, 3);
        let kept: Vec<(SpanId, usize)> = batch.traces.iter().map(|(c, n)| (c.span_id(), *n)).collect();
        assert_eq!(
            kept,
            [(SpanId::from(1), 4), (SpanId::from(3), 2)],
            "sampled contexts, once each, with their readings"
        );
    }

    #[test]
    fn records_of_the_previous_format_are_still_read() {
        let mut batch = Batch::default();
        // Before ingest gathered messages, a record was one bare DatastreamBatch.
        batch.add(Source::Observations, at(1), &segment(9, "").encode_to_vec());
        batch.add(Source::Observations, at(2), &record(vec![segment(4, "")]));
        let stored: Vec<(i64, i64)> = batch.readings.iter().map(|r| (r.datastream.0, r.time.0)).collect();
        assert_eq!(stored, [(9, 1), (9, 2), (4, 1), (4, 2)]);
        assert!(batch.dead_letters.is_empty());

        // Neither format: an empty record, and an id-less bare batch, are refused, not dropped.
        batch.add(Source::Observations, at(3), b"");
        batch.add(Source::Observations, at(4), &segment(0, "").encode_to_vec());
        assert_eq!(batch.readings.len(), 4);
        let reasons: Vec<&str> = batch.dead_letters.iter().map(|d| d.rejections[0].reason.as_str()).collect();
        assert!(reasons[0].contains("holds no datastream batch"), "{reasons:?}");
        assert!(reasons[1].contains("holds no datastream batch"), "{reasons:?}");
    }

    #[test]
    fn a_poison_record_becomes_a_dead_letter() {
        let mut batch = Batch::default();
        batch.add(Source::Observations, at(1), b"\xff\xff not protobuf");
        let uneven =
            DatastreamBatch { datastream_id: 1, time_unix_us: vec![1, 2], value: vec![0.5], ..Default::default() };
        let payload = record(vec![segment(2, ""), uneven]);
        batch.add(Source::Observations, at(2), &payload);
        assert!(batch.readings.is_empty(), "no reading of a record with a malformed batch is taken");
        assert_eq!(batch.dead_letters.len(), 2);
        assert_eq!(batch.dead_letters[0].rejections[0].code, "undecodable_record");
        assert!(batch.dead_letters[1].rejections[0].reason.contains("different numbers"));
        assert_eq!(batch.dead_letters[1].payload, payload, "the record is kept whole");
        assert_eq!(batch.records, 2);
    }
}
