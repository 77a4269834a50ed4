//! Hoheit alerts: evaluates the alert rules on the observations stream and
//! notifies their state changes by webhook and e-mail.
//!
//! Invariants:
//! - a rule's state, its state changes (events with their deliveries) and
//!   the Kafka offsets they were evaluated up to are committed in one
//!   transaction, so a restart resumes exactly where it stopped: no reading
//!   evaluated twice, none skipped, every state change once;
//! - a notification is sent only for a committed event ([`deliver`]);
//! - a rule runs only while its owner may read its datastream at its
//!   resolution, as the policy decides (the `access` module is the one place that asks);
//! - the writer is untouched: the service reads the topic on its own,
//!   never writes observations.

mod access;
pub mod deliver;
pub mod message;
mod rules;
mod service;

pub use rules::Rules;
pub use service::{Alerts, AlertsConfig};
