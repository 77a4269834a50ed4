//! Payload decoders: bytes in, raw readings out. No I/O, no registry: the
//! checks against the registry come after (see `check`).
//!
//! Which decoder runs depends on the topic and the first byte:
//! - a payload whose first non-whitespace byte is `{` or `[` is JSON: plain
//!   readings on a datastream topic, a SenML pack (RFC 8428) on a thing topic;
//! - anything else is a protobuf `hoheit.v1.ObservationBatch`. Its encoding
//!   starts with the tag byte 0x0A and can never look like JSON.

use chrono::DateTime;
use hoheit_domain::rejection::{RejectCode, Rejection};
use hoheit_domain::Micros;
use prost::Message;
use serde::Deserialize;
use serde_json::value::RawValue;

/// One reading as the publisher stated it, before any registry check.
#[derive(Debug, Clone, PartialEq)]
pub struct RawReading {
    /// Position in the message (for dead-letter reasons).
    pub index: usize,
    /// Property named by the payload (SenML name, protobuf field); `None` when
    /// the topic names it.
    pub property: Option<String>,
    /// `None`: the time the platform received the message.
    pub time: Option<Micros>,
    pub value: f64,
    pub unit: Option<String>,
    /// Something a door adds beyond the payload (a network server's RSSI):
    /// left out, not dead-lettered, when its datastream is not registered.
    pub optional: bool,
}

/// The result of decoding one message: readings that decoded, and the
/// readings (or the whole message) that did not.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decoded {
    pub readings: Vec<RawReading>,
    pub rejections: Vec<Rejection>,
}

/// Limits on a single message.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_payload_bytes: usize,
    pub max_readings: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_payload_bytes: 256 * 1024, max_readings: 10_000 }
    }
}

/// Which payload format the topic implies for JSON payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    /// `{"time", "value"}` objects on a datastream topic.
    Plain,
    /// A SenML pack on a thing topic.
    Senml,
}

/// Decodes `payload`, JSON or protobuf by its first byte (MQTT says nothing
/// about it); `received` resolves missing and relative times.
pub fn decode(payload: &[u8], kind: JsonKind, received: Micros, limits: Limits) -> Result<Decoded, Rejection> {
    check_size(payload, limits)?;
    let first = payload.iter().copied().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'{') | Some(b'[') => decode_json(payload, kind, received, limits),
        _ => decode_protobuf(payload, limits),
    }
}

/// Decodes a payload known to be JSON of `kind` (a content type said so).
pub fn decode_json(payload: &[u8], kind: JsonKind, received: Micros, limits: Limits) -> Result<Decoded, Rejection> {
    check_size(payload, limits)?;
    match kind {
        JsonKind::Plain => decode_plain_json(payload, limits),
        JsonKind::Senml => decode_senml(payload, received, limits),
    }
}

/// Decodes a payload known to be a protobuf `ObservationBatch`.
pub fn decode_protobuf_only(payload: &[u8], limits: Limits) -> Result<Decoded, Rejection> {
    check_size(payload, limits)?;
    decode_protobuf(payload, limits)
}

fn check_size(payload: &[u8], limits: Limits) -> Result<(), Rejection> {
    if payload.len() > limits.max_payload_bytes {
        return Err(Rejection::message(
            RejectCode::PayloadTooLarge,
            format!("payload has {} bytes; the limit is {} bytes", payload.len(), limits.max_payload_bytes),
        ));
    }
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(Rejection::message(RejectCode::EmptyPayload, "payload is empty"));
    }
    Ok(())
}

fn too_many(count: usize, limits: Limits) -> Rejection {
    Rejection::message(
        RejectCode::TooManyReadings,
        format!("message holds {count} readings; the limit is {}", limits.max_readings),
    )
}

pub(crate) fn parse_time(text: &str) -> Result<Micros, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| Micros::from_datetime(t.to_utc()))
        .map_err(|e| format!("time {text:?} is not an RFC 3339 timestamp ({e})"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainReading {
    time: Option<String>,
    value: f64,
    unit: Option<String>,
}

fn malformed(what: &str, error: impl std::fmt::Display) -> Rejection {
    Rejection::message(RejectCode::MalformedPayload, format!("{what}: {error}"))
}

/// Splits a JSON object or array into its elements without building a DOM,
/// so that each element is then deserialized from its own text (which keeps
/// serde's detection of duplicate keys).
fn json_elements(payload: &[u8], limits: Limits, allow_object: bool) -> Result<Vec<&RawValue>, Rejection> {
    let text = std::str::from_utf8(payload).map_err(|e| malformed("payload is not valid UTF-8", e))?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') && allow_object {
        let one: &RawValue = serde_json::from_str(text).map_err(|e| malformed("payload is not valid JSON", e))?;
        return Ok(vec![one]);
    }
    let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| malformed("payload is not valid JSON", e))?;
    if items.len() > limits.max_readings {
        return Err(too_many(items.len(), limits));
    }
    Ok(items)
}

/// `{"time": "...", "value": 1.5}` or an array of such objects.
fn decode_plain_json(payload: &[u8], limits: Limits) -> Result<Decoded, Rejection> {
    let expected = "expected {\"time\": RFC 3339 string (optional), \"value\": number, \"unit\": string (optional)} or an array of them";
    let items = json_elements(payload, limits, true)?;
    let mut decoded = Decoded::default();
    for (index, item) in items.into_iter().enumerate() {
        let reading: PlainReading = match serde_json::from_str(item.get()) {
            Ok(r) => r,
            Err(e) => {
                decoded.rejections.push(Rejection::reading(
                    index,
                    RejectCode::MalformedPayload,
                    format!("reading {index}: {e}; {expected}"),
                ));
                continue;
            }
        };
        let time = match reading.time.as_deref().map(parse_time).transpose() {
            Ok(t) => t,
            Err(reason) => {
                decoded.rejections.push(Rejection::reading(index, RejectCode::MalformedPayload, reason));
                continue;
            }
        };
        decoded.readings.push(RawReading {
            index,
            property: None,
            time,
            value: reading.value,
            unit: reading.unit,
            optional: false,
        });
    }
    Ok(decoded)
}

/// One SenML record (RFC 8428, JSON labels). Unknown labels ending in `_`
/// must be understood, so they are rejected; others are ignored (RFC 8428 §4.4).
#[derive(Deserialize, Default)]
struct SenmlRecord {
    bn: Option<String>,
    bt: Option<f64>,
    bu: Option<String>,
    bv: Option<f64>,
    bs: Option<f64>,
    bver: Option<i64>,
    n: Option<String>,
    u: Option<String>,
    v: Option<f64>,
    vs: Option<String>,
    vb: Option<bool>,
    vd: Option<String>,
    s: Option<f64>,
    t: Option<f64>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

/// SenML times below 2^28 seconds are relative to now (RFC 8428 §4.5.3).
const SENML_RELATIVE_LIMIT: f64 = 268_435_456.0;

fn senml_time(seconds: f64, received: Micros) -> Option<Micros> {
    if !seconds.is_finite() {
        return None;
    }
    let micros = if seconds < SENML_RELATIVE_LIMIT { received.0 as f64 + seconds * 1e6 } else { seconds * 1e6 };
    (micros.abs() < 9.0e15).then(|| Micros(micros.round() as i64))
}

/// A SenML pack: base values apply to the records that follow until changed.
fn decode_senml(payload: &[u8], received: Micros, limits: Limits) -> Result<Decoded, Rejection> {
    if payload.iter().copied().find(|b| !b.is_ascii_whitespace()) != Some(b'[') {
        return Err(malformed("SenML pack must be a JSON array of records", "found a single object"));
    }
    let items = json_elements(payload, limits, false)?;
    let mut decoded = Decoded::default();
    let (mut base_name, mut base_time, mut base_unit, mut base_value, mut version) =
        (String::new(), 0.0, None::<String>, 0.0, None::<i64>);
    for (index, item) in items.into_iter().enumerate() {
        let record: SenmlRecord = serde_json::from_str(item.get())
            .map_err(|e| malformed(&format!("SenML record {index} is malformed"), e))?;
        if let Some(label) = record.other.keys().find(|k| k.ends_with('_')) {
            return Err(Rejection::message(
                RejectCode::MalformedPayload,
                format!("SenML record {index} uses the must-understand label {label:?}, which Hoheit does not support"),
            ));
        }
        if let Some(v) = record.bver {
            if version.is_some_and(|current| current != v) {
                return Err(Rejection::message(
                    RejectCode::MalformedPayload,
                    format!("SenML record {index} changes the base version to {v}; a pack has one version"),
                ));
            }
            version = Some(v);
        }
        if record.bs.is_some() {
            return Err(Rejection::message(
                RejectCode::UnsupportedValue,
                "SenML base sums (bs) are not supported; send values (v)",
            ));
        }
        if let Some(bn) = record.bn {
            base_name = bn;
        }
        if let Some(bt) = record.bt {
            base_time = bt;
        }
        if let Some(bu) = record.bu {
            base_unit = Some(bu);
        }
        if let Some(bv) = record.bv {
            base_value = bv;
        }
        let has_value = record.v.is_some()
            || record.vs.is_some()
            || record.vb.is_some()
            || record.vd.is_some()
            || record.s.is_some();
        if !has_value {
            if record.n.is_some() {
                decoded.rejections.push(Rejection::reading(
                    index,
                    RejectCode::MalformedPayload,
                    format!("SenML record {index} has a name but no value"),
                ));
            }
            // A record of base fields only.
            continue;
        }
        let Some(v) = record.v else {
            decoded.rejections.push(Rejection::reading(
                index,
                RejectCode::UnsupportedValue,
                format!(
                    "SenML record {index}: only numeric values (v) are supported, not strings, booleans, data or sums"
                ),
            ));
            continue;
        };
        let name = format!("{base_name}{}", record.n.as_deref().unwrap_or(""));
        if name.is_empty() {
            decoded.rejections.push(Rejection::reading(
                index,
                RejectCode::MissingProperty,
                format!("SenML record {index} has no name (n or bn)"),
            ));
            continue;
        }
        let time = match record.t.map(|t| base_time + t).or((base_time != 0.0).then_some(base_time)) {
            None => None,
            Some(seconds) => match senml_time(seconds, received) {
                Some(t) => Some(t),
                None => {
                    decoded.rejections.push(Rejection::reading(
                        index,
                        RejectCode::TimeOutOfRange,
                        format!("SenML record {index} has time {seconds} s, out of range"),
                    ));
                    continue;
                }
            },
        };
        decoded.readings.push(RawReading {
            index,
            property: Some(name),
            time,
            value: base_value + v,
            unit: record.u.or_else(|| base_unit.clone()),
            optional: false,
        });
    }
    Ok(decoded)
}

fn decode_protobuf(payload: &[u8], limits: Limits) -> Result<Decoded, Rejection> {
    let batch = hoheit_proto::v1::ObservationBatch::decode(payload).map_err(|e| {
        malformed("payload is neither JSON (starting with '{' or '[') nor a protobuf hoheit.v1.ObservationBatch", e)
    })?;
    if batch.readings.len() > limits.max_readings {
        return Err(too_many(batch.readings.len(), limits));
    }
    let readings = batch
        .readings
        .into_iter()
        .enumerate()
        .map(|(index, r)| RawReading {
            index,
            property: (!r.property.is_empty()).then_some(r.property),
            time: r.time_unix_us.map(Micros),
            value: r.value,
            unit: (!r.unit.is_empty()).then_some(r.unit),
            optional: false,
        })
        .collect();
    Ok(Decoded { readings, rejections: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Micros = Micros(1_764_064_800_000_000); // 2025-11-25T10:00:00Z

    fn plain(payload: &str) -> Result<Decoded, Rejection> {
        decode(payload.as_bytes(), JsonKind::Plain, NOW, Limits::default())
    }

    fn senml(payload: &str) -> Result<Decoded, Rejection> {
        decode(payload.as_bytes(), JsonKind::Senml, NOW, Limits::default())
    }

    #[test]
    fn plain_json_object_and_array() {
        let one = plain(r#"{"time": "2026-11-25T10:00:00.123456Z", "value": 21.5}"#).unwrap();
        assert_eq!(one.readings.len(), 1);
        assert_eq!(one.readings[0].time, Some(Micros(1_795_600_800_123_456)));
        assert_eq!(one.readings[0].value, 21.5);
        let many =
            plain(r#"[{"value": 1}, {"time": "2026-11-25T11:00:00+01:00", "value": -2.25, "unit": "Cel"}]"#).unwrap();
        assert_eq!(many.readings.len(), 2);
        assert_eq!(many.readings[0].time, None, "missing time means receive time");
        assert_eq!(many.readings[1].time, Some(Micros(1_795_600_800_000_000)), "offsets are converted to UTC");
        assert_eq!(many.readings[1].unit.as_deref(), Some("Cel"));
    }

    #[test]
    fn malformed_json_is_rejected_with_reason() {
        let err = plain(r#"{"time": "2026-11-25T10:00:00Z", "value": 21.5"#).unwrap_err();
        assert_eq!(err.code, RejectCode::MalformedPayload);
        assert!(err.reason.contains("not valid JSON"), "{}", err.reason);
        assert_eq!(plain("42").unwrap_err().code, RejectCode::MalformedPayload);
    }

    #[test]
    fn bad_readings_in_an_array_are_rejected_one_by_one() {
        let d = plain(
            r#"[{"value": 1}, {"value": "x"}, {"time": "yesterday", "value": 2}, {"value": 3, "colour": "red"}]"#,
        )
        .unwrap();
        assert_eq!(d.readings.len(), 1);
        let indexes: Vec<_> = d.rejections.iter().map(|r| r.reading_index).collect();
        assert_eq!(indexes, vec![Some(1), Some(2), Some(3)]);
        assert!(d.rejections[1].reason.contains("RFC 3339"));
    }

    #[test]
    fn nan_and_infinity_are_not_json_numbers() {
        for payload in [r#"{"value": NaN}"#, r#"{"value": Infinity}"#, r#"{"value": 1e999}"#] {
            let code = match plain(payload) {
                Err(message) => message.code,
                Ok(decoded) => {
                    assert!(decoded.readings.is_empty(), "{payload} must not decode");
                    decoded.rejections[0].code
                }
            };
            assert_eq!(code, RejectCode::MalformedPayload, "{payload}");
        }
    }

    #[test]
    fn empty_and_oversized_payloads() {
        assert_eq!(plain("").unwrap_err().code, RejectCode::EmptyPayload);
        let limits = Limits { max_payload_bytes: 64, max_readings: 3 };
        let big = format!(r#"{{"value": 1, "unit": "{}"}}"#, "x".repeat(100));
        assert_eq!(decode(big.as_bytes(), JsonKind::Plain, NOW, limits).unwrap_err().code, RejectCode::PayloadTooLarge);
        let many = r#"[{"value":1},{"value":2},{"value":3},{"value":4}]"#;
        assert_eq!(
            decode(many.as_bytes(), JsonKind::Plain, NOW, limits).unwrap_err().code,
            RejectCode::TooManyReadings
        );
    }

    #[test]
    fn senml_resolves_base_name_time_unit_and_value() {
        let d = senml(
            r#"[{"bn": "air-", "bt": 1795600800, "bu": "ug/m3", "bv": 1, "n": "no2", "v": 20},
                {"n": "pm10", "t": 1.5, "v": 10},
                {"n": "temp", "u": "Cel", "t": -60, "v": 3.5}]"#,
        )
        .unwrap();
        assert!(d.rejections.is_empty(), "{:?}", d.rejections);
        let r = &d.readings;
        assert_eq!(r[0].property.as_deref(), Some("air-no2"));
        assert_eq!(
            (r[0].time, r[0].value, r[0].unit.as_deref()),
            (Some(Micros(1_795_600_800_000_000)), 21.0, Some("ug/m3"))
        );
        assert_eq!(r[1].time, Some(Micros(1_795_600_801_500_000)));
        assert_eq!((r[2].unit.as_deref(), r[2].value), (Some("Cel"), 4.5));
        assert_eq!(r[2].time, Some(Micros(1_795_600_740_000_000)));
    }

    #[test]
    fn senml_relative_times_are_relative_to_receipt() {
        let d = senml(r#"[{"n": "a", "t": -10, "v": 1}, {"n": "b", "v": 2}]"#).unwrap();
        assert_eq!(d.readings[0].time, Some(Micros(NOW.0 - 10_000_000)));
        assert_eq!(d.readings[1].time, None, "no time at all means receive time");
    }

    #[test]
    fn senml_conflicting_base_values_reject_the_pack() {
        let duplicate = senml(r#"[{"bn": "a", "bn": "b", "n": "x", "v": 1}]"#).unwrap_err();
        assert_eq!(duplicate.code, RejectCode::MalformedPayload);
        assert!(duplicate.reason.contains("duplicate"), "{}", duplicate.reason);
        let versions = senml(r#"[{"bver": 10, "n": "x", "v": 1}, {"bver": 11, "n": "y", "v": 2}]"#).unwrap_err();
        assert!(versions.reason.contains("base version"), "{}", versions.reason);
        let must_understand = senml(r#"[{"n": "x", "v": 1, "foo_": 3}]"#).unwrap_err();
        assert!(must_understand.reason.contains("foo_"));
    }

    #[test]
    fn senml_non_numeric_and_nameless_records_are_rejected_individually() {
        let d = senml(r#"[{"n": "ok", "v": 1}, {"n": "s", "vs": "on"}, {"v": 3}, {"n": "novalue"}]"#).unwrap();
        assert_eq!(d.readings.len(), 1);
        let codes: Vec<_> = d.rejections.iter().map(|r| r.code).collect();
        assert_eq!(
            codes,
            vec![RejectCode::UnsupportedValue, RejectCode::MissingProperty, RejectCode::MalformedPayload]
        );
        assert_eq!(senml(r#"{"n": "x", "v": 1}"#).unwrap_err().code, RejectCode::MalformedPayload);
    }

    #[test]
    fn protobuf_batches_decode_and_garbage_is_explained() {
        let batch = hoheit_proto::v1::ObservationBatch {
            readings: vec![
                hoheit_proto::v1::SensorReading {
                    property: "no2".into(),
                    time_unix_us: Some(7),
                    value: 1.5,
                    unit: String::new(),
                },
                hoheit_proto::v1::SensorReading {
                    property: String::new(),
                    time_unix_us: None,
                    value: f64::NAN,
                    unit: "Cel".into(),
                },
            ],
        };
        let d = decode(&batch.encode_to_vec(), JsonKind::Senml, NOW, Limits::default()).unwrap();
        assert_eq!(d.readings[0].property.as_deref(), Some("no2"));
        assert_eq!(d.readings[0].time, Some(Micros(7)));
        assert_eq!(d.readings[1].property, None);
        assert!(d.readings[1].value.is_nan(), "NaN is decoded here and rejected by the checks");
        let err = decode(&[0xff, 0x00, 0x13], JsonKind::Plain, NOW, Limits::default()).unwrap_err();
        assert_eq!(err.code, RejectCode::MalformedPayload);
        assert!(err.reason.contains("protobuf"));
    }
}
