//! Hoheit's runtime plumbing, shared by every service binary: configuration
//! helpers ([`config`]), the MQTT broker arguments ([`mqtt`]), logging and
//! tracing with OpenTelemetry ([`telemetry`]), the health and metrics endpoint
//! of the background services ([`ops`]) and graceful shutdown ([`shutdown`]).
//! No domain logic, no SQL.

pub mod config;
pub mod mqtt;
pub mod ops;
pub mod shutdown;
pub mod telemetry;
