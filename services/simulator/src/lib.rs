//! Hoheit simulator: registers a demo town (Eberswalde, Brandenburg) with the
//! admin API and publishes realistic readings of its sensors over MQTT.
//!
//! - [`town`]: the organisations, things and datastreams, and the curves of
//!   their values (traffic with rush hours, air quality and weather, parking
//!   garages, a canal gauge): pure functions of seed, thing and time;
//! - [`noise`]: the deterministic noise behind the curves;
//! - [`payloads`]: the three payload formats ingest accepts (plain JSON,
//!   SenML, protobuf), each kind of thing using one of them;
//! - [`Simulator`]: registration, a repeatable backfill of the past hours,
//!   then live readings at a fixed total rate until shutdown.
//!
//! `main.rs` only parses the configuration and calls [`Simulator::run`], so
//! tests and benchmarks drive the simulator in-process.

mod error;
pub mod noise;
pub mod payloads;
mod register;
mod service;
pub mod town;

pub use error::SimulatorError;
pub use register::{Registered, RegisteredDatastream};
pub use service::{backfill_times, RunSummary, Simulator, SimulatorConfig};
