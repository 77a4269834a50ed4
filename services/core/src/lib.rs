//! Hoheit's shared library.
//!
//! Everything that more than one service needs lives here, each decision in
//! one module: the domain types that can only hold valid values ([`domain`]),
//! the MQTT topic scheme ([`topic`]), the reasons a reading is rejected
//! ([`rejection`]), the database and the SQL of each table ([`db`],
//! [`registry`], [`observations`], [`dead_letters`]), the open data catalog's
//! facts ([`catalog`]), Kafka topic names and
//! client settings ([`kafka`]), configuration helpers ([`config`]), logging
//! ([`telemetry`]), the health/metrics endpoint of the background services
//! ([`ops`]) and graceful shutdown ([`shutdown`]).

pub mod admin_queries;
pub mod audit;
pub mod catalog;
pub mod config;
pub mod datasets;
pub mod db;
pub mod dead_letters;
pub mod domain;
pub mod grant_rate;
pub mod grants;
pub mod kafka;
pub mod observations;
pub mod ops;
pub mod policy;
pub mod principals;
pub mod registry;
pub mod rejection;
pub mod shutdown;
pub mod telemetry;
pub mod topic;
