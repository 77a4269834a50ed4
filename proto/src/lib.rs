//! Hoheit's wire types, generated from `proto/hoheit/v1/*.proto` by prost.
//!
//! `ObservationBatch` is what sensors may publish over MQTT;
//! `ObservationRecord` (of `DatastreamBatch`es) and `DeadLetter` are the
//! records that ingest writes to Kafka and the writer reads back.

pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/hoheit.v1.rs"));
}

pub use prost::Message;
