//! What can go wrong before the simulator publishes: configuration and
//! registration. Each error names the resource and the API's reason, so the
//! log line alone says what to fix.

use crate::payloads::PayloadError;

#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    #[error("invalid configuration: {0}")]
    Config(String),
    /// `what` is "the API" or "ingest".
    #[error("{what} did not become ready within {waited_secs} s at {url} (last answer: {last})")]
    NotReady { what: String, url: String, waited_secs: u64, last: String },
    #[error("registering {resource} failed: HTTP {status}: {detail}")]
    Rejected { resource: String, status: u16, detail: String },
    #[error("registering {resource} failed: {reason}")]
    Unreachable { resource: String, reason: String },
    #[error(
        "datastream {datastream} is already registered {registered}, but the simulator publishes {expected:?}; \
         every reading would be rejected (remove the datastream or use a fresh database)"
    )]
    UnitMismatch {
        datastream: String,
        /// "with unit \"ppb\"" or "without a unit".
        registered: String,
        expected: String,
    },
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

/// A reqwest error with its causes ("error sending request: connection refused"),
/// since the top-level message alone rarely says what happened.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
