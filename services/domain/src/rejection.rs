//! Why Hoheit rejects a message or a reading: a stable code for machines and a
//! sentence for people. Every rejection ends up as a dead letter.

use std::fmt;

/// Stable reason codes; their string form is part of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectCode {
    InvalidTopic,
    PayloadTooLarge,
    TooManyReadings,
    MalformedPayload,
    EmptyPayload,
    UnknownDatastream,
    UnitMismatch,
    InvalidUnit,
    NonFiniteValue,
    UnsupportedValue,
    TimeInFuture,
    TimeOutOfRange,
    PropertyMismatch,
    MissingProperty,
    UndecodableRecord,
    /// A network server's or citizen sensor's device that no thing carries as its external id.
    UnknownDevice,
    /// A text (or other non-number, non-boolean) field of a decoded payload.
    NonNumericValue,
    /// The writer may not write into this datastream (e.g. outside its supply grant).
    WriteDenied,
    /// A reading names a device that is another thing than the one its topic addresses.
    DeviceMismatch,
    /// A value outside its datastream's plausible range (its own, or its type's).
    OutOfRange,
}

impl RejectCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::InvalidTopic => "invalid_topic",
            RejectCode::PayloadTooLarge => "payload_too_large",
            RejectCode::TooManyReadings => "too_many_readings",
            RejectCode::MalformedPayload => "malformed_payload",
            RejectCode::EmptyPayload => "empty_payload",
            RejectCode::UnknownDatastream => "unknown_datastream",
            RejectCode::UnitMismatch => "unit_mismatch",
            RejectCode::InvalidUnit => "invalid_unit",
            RejectCode::NonFiniteValue => "non_finite_value",
            RejectCode::UnsupportedValue => "unsupported_value",
            RejectCode::TimeInFuture => "time_in_future",
            RejectCode::TimeOutOfRange => "time_out_of_range",
            RejectCode::PropertyMismatch => "property_mismatch",
            RejectCode::MissingProperty => "missing_property",
            RejectCode::UndecodableRecord => "undecodable_record",
            RejectCode::UnknownDevice => "unknown_device",
            RejectCode::NonNumericValue => "non_numeric_value",
            RejectCode::WriteDenied => "write_denied",
            RejectCode::DeviceMismatch => "device_mismatch",
            RejectCode::OutOfRange => "out_of_range",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rejection: which reading (or the whole message), why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Index of the reading in the message; `None` for the whole message.
    pub reading_index: Option<usize>,
    pub code: RejectCode,
    pub reason: String,
}

impl Rejection {
    pub fn message(code: RejectCode, reason: impl Into<String>) -> Self {
        Self { reading_index: None, code, reason: reason.into() }
    }

    pub fn reading(index: usize, code: RejectCode, reason: impl Into<String>) -> Self {
        Self { reading_index: Some(index), code, reason: reason.into() }
    }

    pub fn to_proto(&self) -> hoheit_proto::v1::Rejection {
        hoheit_proto::v1::Rejection {
            reading_index: self.reading_index.map(|i| i32::try_from(i).unwrap_or(i32::MAX)).unwrap_or(-1),
            code: self.code.as_str().to_owned(),
            reason: self.reason.clone(),
        }
    }
}
