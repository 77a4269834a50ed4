//! Hoheit's wire types, generated from `proto/hoheit/v1/*.proto` by prost.
//!
//! `ObservationBatch` is what sensors may publish over MQTT;
//! `ObservationRecord` (of `DatastreamBatch`es) and `DeadLetter` are the
//! records that ingest writes to Kafka and the writer reads back.

pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/hoheit.v1.rs"));
}

pub use prost::Message;

/// The datastream batches of an observation record as ingest writes it to
/// Kafka. A record of the format before ingest gathered messages (one bare
/// `DatastreamBatch`) is read too, so that an upgrade reads the backlog the
/// previous version left in Kafka. The two cannot be mistaken for each other:
/// field 1 is a message in one and a number (the datastream id, never 0) in
/// the other. A record that holds no batch at all is refused (the reason
/// reads after "observation record"), so nothing is dropped silently.
pub fn observation_batches(payload: &[u8]) -> Result<Vec<v1::DatastreamBatch>, String> {
    match v1::ObservationRecord::decode(payload) {
        Ok(record) if !record.batches.is_empty() => Ok(record.batches),
        Ok(_) => Err("holds no datastream batch".into()),
        Err(error) => match v1::DatastreamBatch::decode(payload) {
            Ok(batch) if batch.datastream_id != 0 => Ok(vec![batch]),
            _ => Err(format!("is not a hoheit.v1.ObservationRecord: {error}")),
        },
    }
}
