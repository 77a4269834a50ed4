//! Request handlers, one module per resource.

pub mod admin;
pub mod alerts;
pub mod audit;
pub mod connectors;
pub mod datasets;
pub mod datastreams;
pub mod dead_letters;
pub mod device_types;
pub mod health;
pub mod live;
pub mod me;
pub mod opendata;
pub mod organisations;
pub mod owned_grants;
pub mod push;
pub mod quality;
pub mod supply;
pub mod things;
