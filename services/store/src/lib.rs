//! Hoheit's store: the database ([`db`]: pool, migrations) and the SQL of each
//! table beside its type: the registry ([`registry`]), observations and their
//! 15-minute rollup ([`observations`]), each datastream's newest reading and
//! the feed of its changes ([`latest`]), dead letters ([`dead_letters`]),
//! datasets with export and erasure ([`datasets`]), principals and API keys
//! ([`principals`]), grants ([`grants`]) and their shared rate ([`grant_rate`]),
//! the network servers' connectors ([`connectors`]), devices' own tokens
//! ([`device_tokens`]), the hash-chained audit log ([`audit`]), the open
//! data catalog's facts ([`catalog`]), what a datastream's data quality is
//! computed from ([`quality`]), alert rules as their owners manage them
//! ([`alerts`]) and the alerts service's states, events, deliveries and
//! offsets ([`alert_state`]), and the access facts the API caches with the
//! counter that says when to reload them ([`access_facts`]). The operators' listings live beside
//! their tables too.
//!
//! Every statement binds its parameters; decisions about who may read what
//! are the policy's (`hoheit_domain::policy`), never made here. Rows are read
//! into types (`#[derive(sqlx::FromRow)]`, `query_as`, `query_scalar`), never
//! column by column by name, so each statement and the type it fills sit
//! side by side.

pub mod access_facts;
pub mod alert_state;
pub mod alerts;
pub mod audit;
pub mod catalog;
pub mod connectors;
pub mod datasets;
pub mod db;
pub mod dead_letters;
pub mod device_tokens;
pub mod device_types;
pub mod grant_rate;
pub mod grants;
pub mod import;
pub mod latest;
pub mod observations;
pub mod principals;
pub mod quality;
pub mod registry;
pub mod supply;
pub mod things;
