//! The integration tests, one module per area of the platform, in one test
//! binary: each area used to be a binary of its own that linked the whole
//! workspace and librdkafka again. The harness is the `hoheit_tests` library
//! (`tests/support/`); nextest still runs every test in a process of its own,
//! which the process-wide state of `metrics` and `tracing` relies on.

mod access;
mod access_cache;
mod admin;
mod admin_audit;
mod admin_support;
mod airrohr;
mod alert_rules;
mod alerts;
mod api;
mod broker_acl;
mod broker_dynsec;
mod dashboard;
mod deploy;
mod hostile;
mod ingest;
mod leaks_data;
mod limits;
mod live_feed;
mod lorawan;
mod me;
mod metrics;
mod observations;
mod oidc;
mod onboarding;
mod openapi;
mod opendata;
mod pipeline;
mod push;
mod quality;
mod registry_cache;
mod replay;
mod retention;
mod senml;
mod simulator;
mod sta;
mod sta_create;
mod supply;
mod tracing;
mod writer;
