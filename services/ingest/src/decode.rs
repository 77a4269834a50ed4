//! Payload decoders: bytes in, raw readings out. No I/O, no registry: the
//! checks against the registry come after (see `check`).
//!
//! Which decoder runs depends on the topic and the first byte:
//! - a payload whose first non-whitespace byte is `{` or `[` is JSON: plain
//!   readings on a datastream topic, a SenML pack (RFC 8428) on a thing or an
//!   organisation topic;
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
    /// Device named by the payload (the device part of a SenML name, see
    /// [`split_senml_name`]), in lower case; `None` when the topic names the thing.
    pub device: Option<String>,
    /// Property named by the payload (SenML name, protobuf field); `None` when
    /// the topic names it (or, with a device, when its unit does).
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

/// The same limits for a body a door decoded itself (network servers,
/// SensorThings, airrohr): its payload's size and the number of readings.
pub fn check_decoded(payload: &[u8], decoded: &Decoded, limits: Limits) -> Result<(), Rejection> {
    if payload.len() > limits.max_payload_bytes {
        return Err(Rejection::message(
            RejectCode::PayloadTooLarge,
            format!("payload has {} bytes; the limit is {} bytes", payload.len(), limits.max_payload_bytes),
        ));
    }
    let count = decoded.readings.len() + decoded.rejections.len();
    if count > limits.max_readings {
        return Err(too_many(count, limits));
    }
    Ok(())
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
            device: None,
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
        // A boolean is stored as 1 or 0, as the other doors store theirs.
        let Some(v) = record.v.or(record.vb.map(|b| if b { 1.0 } else { 0.0 })) else {
            decoded.rejections.push(Rejection::reading(
                index,
                RejectCode::UnsupportedValue,
                format!(
                    "SenML record {index}: only numeric (v) and boolean (vb) values are supported, not strings (vs), data (vd) or sums (s)"
                ),
            ));
            continue;
        };
        let name = record.n.as_deref().unwrap_or("");
        if base_name.is_empty() && name.is_empty() {
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
        let (device, property) = split_senml_name(&base_name, name);
        decoded.readings.push(RawReading {
            index,
            device,
            property,
            time,
            // A base value is a numeric offset; it does not apply to booleans.
            value: if record.v.is_some() { base_value + v } else { v },
            unit: record.u.or_else(|| base_unit.clone()),
            optional: false,
        });
    }
    Ok(decoded)
}

/// Splits a resolved SenML name (base name + name) into the device it names
/// (an external id, in lower case) and the property:
/// - a base name ending in `:` or `/` is the device, the name the property
///   (`"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage"`, RFC 8428 §5.1.2);
/// - a device URN (RFC 9039, `urn:dev:{type}:{id}`) is the device, whatever
///   follows its next `:` the property; a URN alone names only the device
///   (§5.1.1, §5.1.3), whose property its unit then says (see `check`);
/// - any other name with a `/` or `:` is split at the last one
///   (`2001:db8::2/temperature`);
/// - a name without either is a property of the topic's thing.
pub fn split_senml_name(base_name: &str, name: &str) -> (Option<String>, Option<String>) {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let device = |s: &str| some(&s.to_ascii_lowercase());
    if let Some(base_device) = base_name.strip_suffix([':', '/']).filter(|d| !d.is_empty()) {
        return (device(base_device), some(name));
    }
    let full = format!("{base_name}{name}");
    if full.get(..8).is_some_and(|prefix| prefix.eq_ignore_ascii_case("urn:dev:")) {
        let mut parts = full.splitn(5, ':');
        let urn: Vec<&str> = parts.by_ref().take(4).collect();
        return (device(&urn.join(":")), parts.next().and_then(some));
    }
    match full.rsplit_once(['/', ':']) {
        Some((before, after)) => (device(before.trim_end_matches([':', '/'])), some(after)),
        None => (None, some(&full)),
    }
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
            device: None,
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
    fn a_body_its_door_decoded_keeps_the_limits_of_a_message() {
        let limits = Limits { max_payload_bytes: 10, max_readings: 2 };
        let reading = |index| RawReading {
            index,
            device: None,
            property: Some("p".into()),
            time: None,
            value: 1.0,
            unit: None,
            optional: false,
        };
        let two = Decoded { readings: vec![reading(0), reading(1)], rejections: Vec::new() };
        assert_eq!(check_decoded(b"{}", &two, limits), Ok(()));
        assert_eq!(check_decoded(&[b' '; 11], &two, limits).unwrap_err().code, RejectCode::PayloadTooLarge);
        let three = Decoded { readings: vec![reading(0), reading(1), reading(2)], rejections: Vec::new() };
        assert_eq!(check_decoded(b"{}", &three, limits).unwrap_err().code, RejectCode::TooManyReadings);
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

    /// RFC 8428 §5.1.1 to §5.1.6, verbatim (the streaming example of §5.1.2
    /// ends in "..." and is no JSON; §5.1.2's second pack names the device
    /// `…0108006`, one digit short, as the RFC does).
    const RFC8428_5_1_1: &str = include_str!("../../../tests/fixtures/senml/rfc8428-5.1.1.json");
    const RFC8428_5_1_2: &str = include_str!("../../../tests/fixtures/senml/rfc8428-5.1.2.json");
    const RFC8428_5_1_2_TIMED: &str = include_str!("../../../tests/fixtures/senml/rfc8428-5.1.2-timed.json");
    const RFC8428_5_1_3: &str = include_str!("../../../tests/fixtures/senml/rfc8428-5.1.3.json");
    const RFC8428_5_1_4: &str = include_str!("../../../tests/fixtures/senml/rfc8428-5.1.4.json");
    const RFC8428_5_1_5: &str = include_str!("../../../tests/fixtures/senml/rfc8428-5.1.5.json");
    const RFC8428_5_1_6: &str = include_str!("../../../tests/fixtures/senml/rfc8428-5.1.6.json");

    const DEVICE: &str = "urn:dev:ow:10e2073a01080063";

    /// (device, property, unit, value, time) of each decoded reading.
    type Row<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, f64, Option<i64>);

    fn rows(decoded: &Decoded) -> Vec<Row<'_>> {
        decoded
            .readings
            .iter()
            .map(|r| (r.device.as_deref(), r.property.as_deref(), r.unit.as_deref(), r.value, r.time.map(|t| t.0)))
            .collect()
    }

    #[test]
    fn rfc8428_single_data_point_names_only_the_device() {
        let d = senml(RFC8428_5_1_1).unwrap();
        assert_eq!(rows(&d), vec![(Some(DEVICE), None, Some("Cel"), 23.1, None)]);
    }

    #[test]
    fn rfc8428_multiple_data_points_split_the_base_name_into_device_and_property() {
        let d = senml(RFC8428_5_1_2).unwrap();
        assert_eq!(
            rows(&d),
            vec![
                (Some(DEVICE), Some("voltage"), Some("V"), 120.1, None),
                (Some(DEVICE), Some("current"), Some("A"), 1.2, None)
            ]
        );
        let timed = senml(RFC8428_5_1_2_TIMED).unwrap();
        assert!(timed.rejections.is_empty(), "{:?}", timed.rejections);
        let t0 = 1_276_020_076_001_000;
        let expected: Vec<Row> =
            std::iter::once((Some("urn:dev:ow:10e2073a0108006"), Some("voltage"), Some("V"), 120.1, Some(t0)))
                .chain([1.2, 1.3, 1.4, 1.5, 1.6, 1.7].into_iter().zip(-5i64..=0).map(|(v, dt)| {
                    (Some("urn:dev:ow:10e2073a0108006"), Some("current"), Some("A"), v, Some(t0 + dt * 1_000_000))
                }))
                .collect();
        assert_eq!(rows(&timed), expected);
    }

    #[test]
    fn rfc8428_multiple_measurements_and_their_resolved_form_read_the_same() {
        let packed = senml(RFC8428_5_1_3).unwrap();
        let resolved = senml(RFC8428_5_1_4).unwrap();
        assert!(packed.rejections.is_empty() && resolved.rejections.is_empty());
        assert_eq!(packed.readings.len(), 13);
        assert_eq!(rows(&packed), rows(&resolved), "§5.1.4 is §5.1.3 resolved");
        assert_eq!(rows(&packed)[0], (Some(DEVICE), None, Some("%RH"), 20.0, Some(1_320_067_464_000_000)));
        assert_eq!(rows(&packed)[9], (Some(DEVICE), None, Some("%EL"), 98.0, Some(1_320_067_614_000_000)));
    }

    #[test]
    fn rfc8428_multiple_data_types_store_booleans_as_one_or_zero_and_refuse_strings_and_data() {
        let d = senml(RFC8428_5_1_5).unwrap();
        assert_eq!(
            rows(&d),
            vec![(Some(DEVICE), Some("temp"), Some("Cel"), 23.1, None), (Some(DEVICE), Some("open"), None, 0.0, None)]
        );
        let refused: Vec<_> = d.rejections.iter().map(|r| (r.reading_index, r.code)).collect();
        assert_eq!(refused, vec![(Some(1), RejectCode::UnsupportedValue), (Some(3), RejectCode::UnsupportedValue)]);
        assert!(d.rejections[0].reason.contains("vs"), "{}", d.rejections[0].reason);
        let on = senml(r#"[{"n":"open","vb":true}]"#).unwrap();
        assert_eq!(on.readings[0].value, 1.0);
    }

    #[test]
    fn rfc8428_collection_of_resources_names_two_devices() {
        let d = senml(RFC8428_5_1_6).unwrap();
        let t = Some(1_320_078_429_000_000);
        assert_eq!(
            rows(&d),
            vec![
                (Some("2001:db8::2"), Some("temperature"), Some("Cel"), 25.2, t),
                (Some("2001:db8::2"), Some("humidity"), Some("%RH"), 30.0, t),
                (Some("2001:db8::1"), Some("temperature"), Some("Cel"), 12.3, t),
                (Some("2001:db8::1"), Some("humidity"), Some("%RH"), 67.0, t)
            ]
        );
    }

    #[test]
    fn senml_names_split_into_device_and_property() {
        let split = |bn: &str, n: &str| split_senml_name(bn, n);
        let own = |d: &str, p: &str| (Some(d.to_owned()), Some(p.to_owned()));
        assert_eq!(split("", "no2"), (None, Some("no2".into())), "a plain name is a property of the topic's thing");
        assert_eq!(split("air-", "no2"), (None, Some("air-no2".into())));
        assert_eq!(split("urn:dev:mac:0024BEFFFE804FF1:", "temp"), own("urn:dev:mac:0024befffe804ff1", "temp"));
        assert_eq!(split("", "urn:dev:ow:10e2073a01080063:voltage"), own(DEVICE, "voltage"));
        assert_eq!(split("esp8266-123/", ""), (Some("esp8266-123".into()), None));
        assert_eq!(split("gw/", "sensor-1/pm10"), own("gw", "sensor-1/pm10"), "the base name decides");
        assert_eq!(split("", "sensor-1:pm10"), own("sensor-1", "pm10"));
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
