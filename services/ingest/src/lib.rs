//! Hoheit ingest: subscribes to the MQTT topic scheme, decodes and checks
//! every message, and writes accepted readings and dead letters to Kafka.
//!
//! Data flow: MQTT publish → [`decode`] → [`check`] (against the registry
//! cache) → gathered with the messages that arrived together into Kafka
//! records (one per partition) → acknowledgement. A QoS 1 message is
//! acknowledged to the broker only after Kafka has confirmed every record it
//! was sent in, so if ingest dies the broker redelivers and nothing is lost.

pub mod airrohr;
mod broker_sync;
pub mod check;
pub mod decode;
mod doors;
mod gather;
pub mod inbound;
pub mod integrations;
pub mod lorawan;
mod pipeline;
mod registry_cache;
mod service;
pub mod sta;

pub use service::{note_liveness, Ingest, IngestConfig};
