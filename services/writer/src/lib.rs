//! Hoheit writer: consumes observations and dead letters from Kafka and
//! writes them to TimescaleDB in batches.
//!
//! Invariants:
//! - a batch is written in one database transaction, with set-based
//!   statements (never a statement per reading);
//! - writes are idempotent: a redelivered reading (same datastream and time)
//!   or dead letter (same Kafka position) is not stored twice;
//! - Kafka offsets are committed only after the database commit, so a crash
//!   anywhere means redelivery, never loss.

mod batch;
pub mod lag;
mod rejoin;
mod service;

pub use batch::{Batch, Source};
pub use service::{Writer, WriterConfig};
