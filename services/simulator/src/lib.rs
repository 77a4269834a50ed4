//! Hoheit simulator: registers a demo town (Eberswalde, Brandenburg) with the
//! admin API and publishes realistic readings of its sensors over MQTT.
//!
//! - the town itself (organisations, things, datastreams and the curves of
//!   their values) is `hoheit-town`, shared with `hoheit-admin demo`;
//! - [`payloads`]: the three payload formats ingest accepts (plain JSON,
//!   SenML, protobuf), each kind of thing using one of them;
//! - [`Simulator`]: registration, a repeatable backfill of the past hours,
//!   then live readings at a fixed total rate until shutdown, over MQTT,
//!   the HTTP push door or SensorThings create (`--door http|sta`, module
//!   `http`), or as the devices themselves (`--door chirpstack|tts|airrohr`,
//!   module `devices`, their payloads in [`uplinks`]).
//!
//! `main.rs` only parses the configuration and calls [`Simulator::run`], so
//! tests and benchmarks drive the simulator in-process.

mod devices;
mod error;
mod http;
pub mod payloads;
mod register;
mod service;
pub mod uplinks;

pub use error::SimulatorError;
pub use register::{Registered, RegisteredDatastream};
pub use service::{backfill_times, Door, RunSummary, Simulator, SimulatorConfig};
