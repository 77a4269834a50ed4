//! Hoheit's MQTT broker credentials, shared by the services that issue,
//! revoke and watch API keys (the API, `hoheit-admin`, ingest):
//!
//! - [`rules`]: what each key may publish (one set of rules, pure), and
//!   Mosquitto's password and ACL files rendered from it;
//! - [`dynsec`]: Mosquitto's dynamic security plugin: its control protocol
//!   (one connection, answers correlated with requests) and its
//!   configuration file;
//! - [`sync`]: the registry's keys onto the broker: at once when a key is
//!   created or revoked, and a reconcile loop for expiry, disabled
//!   principals, supply grants and new datastreams.
//!
//! A crate of its own because the API, the admin CLI and ingest all need it,
//! a service may not depend on another, and none of the existing libraries
//! fits: the store has no network, the runtime no SQL or domain rules.

pub mod dynsec;
pub mod rules;
pub mod sync;
