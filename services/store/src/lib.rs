//! Hoheit's store: the database ([`db`]: pool, migrations) and the SQL of each
//! table beside its type: the registry ([`registry`]), observations and their
//! 15-minute rollup ([`observations`]), dead letters ([`dead_letters`]),
//! datasets with export and erasure ([`datasets`]), principals and API keys
//! ([`principals`]), grants ([`grants`]) and their shared rate ([`grant_rate`]),
//! the hash-chained audit log ([`audit`]), the open data catalog's facts
//! ([`catalog`]), and the operators' listings ([`admin_queries`]).
//!
//! Every statement binds its parameters; decisions about who may read what
//! are the policy's (`hoheit_domain::policy`), never made here.

pub mod admin_queries;
pub mod audit;
pub mod catalog;
pub mod datasets;
pub mod db;
pub mod dead_letters;
pub mod grant_rate;
pub mod grants;
pub mod observations;
pub mod principals;
pub mod registry;
