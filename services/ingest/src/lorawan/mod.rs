//! LoRaWAN network servers' uplinks → readings, pure (no I/O): ChirpStack v4
//! (`chirpstack`: its JSON and protobuf `integration.UplinkEvent`) and The
//! Things Stack v3 (`tts`: its JSON `ApplicationUp`). Both doors (webhook and
//! MQTT integration) use these decoders.
//!
//! What an uplink turns into ([`readings`]): the decoded payload's numeric
//! fields, nested objects flattened (`{"battery": {"voltage": 3.6}}` →
//! `battery_voltage`), camelCase keys in snake case, booleans as 1/0; a
//! text (or null) field is a `non_numeric_value` rejection of its own. The
//! best gateway's `rssi` and `snr` come along as *optional* readings: stored
//! when the thing has such datastreams, silently left out otherwise (a radio
//! fact nobody registered is no error, unlike a payload field).

pub mod chirpstack;
pub mod tts;

use hoheit_domain::rejection::{RejectCode, Rejection};
use hoheit_domain::Micros;
use serde_json::Value;

use crate::decode::{Decoded, RawReading};

/// At most this many fields of one decoded payload (deeper or wider is a
/// malformed payload, not an attack surface).
const MAX_FIELDS: usize = 1_000;
const MAX_DEPTH: usize = 8;

/// One uplink, as far as Hoheit cares.
#[derive(Debug, Clone, PartialEq)]
pub struct Uplink {
    /// The DevEUI (lower-case hex), the thing's external id.
    pub dev_eui: String,
    /// The uplink's time; `None`: the receive time.
    pub time: Option<Micros>,
    /// The decoded payload (an object), absent when no codec is configured.
    pub object: Option<Value>,
    /// The best gateway's reception: (RSSI dBm, SNR dB).
    pub radio: Option<(f64, f64)>,
}

/// Why a network server's message is not an uplink Hoheit can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

/// The readings of an uplink (see the module doc).
pub fn readings(uplink: &Uplink) -> Decoded {
    let mut decoded = Decoded::default();
    let mut fields = Vec::new();
    match &uplink.object {
        Some(Value::Object(object)) => flatten("", object, 0, &mut fields),
        Some(Value::Null) | None => {}
        Some(_) => fields.push(("payload".to_owned(), Err("the decoded payload is not an object".to_owned()))),
    }
    if fields.len() > MAX_FIELDS {
        decoded.rejections.push(Rejection::message(
            RejectCode::TooManyReadings,
            format!("the decoded payload has {} fields; at most {MAX_FIELDS} are read", fields.len()),
        ));
        return decoded;
    }
    if fields.is_empty() && uplink.radio.is_none() {
        decoded.rejections.push(Rejection::message(
            RejectCode::EmptyPayload,
            "the uplink has no decoded payload; configure a payload codec (formatter) for the device in the network server",
        ));
        return decoded;
    }
    let named: Vec<String> = fields.iter().map(|(name, _)| name.clone()).collect();
    for (index, (property, value)) in fields.into_iter().enumerate() {
        match value {
            Ok(value) => decoded.readings.push(RawReading {
                index,
                device: None,
                property: Some(property),
                time: uplink.time,
                value,
                unit: None,
                optional: false,
            }),
            Err(what) => decoded.rejections.push(Rejection::reading(
                index,
                RejectCode::NonNumericValue,
                format!("field {property:?}: {what}; only numbers and booleans are readings"),
            )),
        }
    }
    if let Some((rssi, snr)) = uplink.radio {
        for (property, value) in [("rssi", rssi), ("snr", snr)] {
            if !named.iter().any(|n| n == property) {
                let index = decoded.readings.len() + decoded.rejections.len();
                decoded.readings.push(RawReading {
                    index,
                    device: None,
                    property: Some(property.to_owned()),
                    time: uplink.time,
                    value,
                    unit: None,
                    optional: true,
                });
            }
        }
    }
    decoded
}

type Field = (String, Result<f64, String>);

fn flatten(prefix: &str, object: &serde_json::Map<String, Value>, depth: usize, out: &mut Vec<Field>) {
    for (key, value) in object {
        if out.len() > MAX_FIELDS {
            return;
        }
        let name = if prefix.is_empty() { property_name(key) } else { format!("{prefix}_{}", property_name(key)) };
        match value {
            Value::Number(n) => out.push((name, n.as_f64().ok_or_else(|| format!("{n} is not a number")))),
            Value::Bool(b) => out.push((name, Ok(if *b { 1.0 } else { 0.0 }))),
            Value::Object(inner) if depth < MAX_DEPTH => flatten(&name, inner, depth + 1, out),
            Value::Array(items) if depth < MAX_DEPTH => {
                let indexed: serde_json::Map<String, Value> =
                    items.iter().enumerate().map(|(i, v)| (i.to_string(), v.clone())).collect();
                flatten(&name, &indexed, depth + 1, out);
            }
            Value::Object(_) | Value::Array(_) => {
                out.push((name, Err(format!("nested deeper than {MAX_DEPTH} levels"))))
            }
            Value::String(text) => {
                let shown: String = text.chars().take(64).collect();
                out.push((name, Err(format!("text {shown:?}"))))
            }
            Value::Null => out.push((name, Err("null".to_owned()))),
        }
    }
}

/// A payload key as a property slug: camelCase to snake case, lower case,
/// anything outside `[a-z0-9_-]` as `_` (the check rejects what still is no
/// slug, e.g. too long, as an unknown datastream).
pub fn property_name(key: &str) -> String {
    let mut name = String::with_capacity(key.len() + 4);
    let mut previous_lower = false;
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            if previous_lower {
                name.push('_');
            }
            name.push(c.to_ascii_lowercase());
            previous_lower = false;
        } else if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
            previous_lower = true;
        } else {
            name.push(if c == '-' { '-' } else { '_' });
            previous_lower = false;
        }
    }
    name
}

/// A DevEUI as the registry keeps external ids: hex, lower case, no separators.
pub fn dev_eui(raw: &str) -> Result<String, Unreadable> {
    let eui: String = raw.chars().filter(|c| !matches!(c, '-' | ':' | ' ')).collect::<String>().to_ascii_lowercase();
    if eui.len() != 16 || !eui.bytes().all(|b| b.is_ascii_hexdigit()) {
        let shown: String = raw.chars().take(40).collect();
        return Err(Unreadable(format!("DevEUI {shown:?} is not 16 hexadecimal digits")));
    }
    Ok(eui)
}

/// The best of several receptions (highest RSSI, then SNR).
fn best(receptions: impl Iterator<Item = (f64, f64)>) -> Option<(f64, f64)> {
    receptions
        .filter(|(rssi, snr)| rssi.is_finite() && snr.is_finite())
        .max_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)))
}

fn time(text: &str) -> Result<Micros, Unreadable> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| Micros::from_datetime(t.to_utc()))
        .map_err(|e| Unreadable(format!("time {text:?} is not an RFC 3339 timestamp ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn uplink(object: Value, radio: Option<(f64, f64)>) -> Uplink {
        Uplink { dev_eui: "0004a30b001c0530".into(), time: Some(Micros(7)), object: Some(object), radio }
    }

    fn named(decoded: &Decoded) -> Vec<(String, f64, bool)> {
        decoded.readings.iter().map(|r| (r.property.clone().unwrap_or_default(), r.value, r.optional)).collect()
    }

    #[test]
    fn numeric_fields_are_readings_nested_objects_flattened_booleans_one_and_zero() {
        let decoded = readings(&uplink(
            json!({"temperature": 21.5, "battery": {"voltage": 3.6, "low": false}, "doorOpen": true, "counts": [4, 5]}),
            None,
        ));
        assert!(decoded.rejections.is_empty(), "{:?}", decoded.rejections);
        let mut got = named(&decoded);
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            [
                ("battery_low".into(), 0.0, false),
                ("battery_voltage".into(), 3.6, false),
                ("counts_0".into(), 4.0, false),
                ("counts_1".into(), 5.0, false),
                ("door_open".into(), 1.0, false),
                ("temperature".into(), 21.5, false),
            ]
        );
        assert!(decoded.readings.iter().all(|r| r.time == Some(Micros(7))));
    }

    #[test]
    fn a_text_field_is_a_non_numeric_rejection_and_the_rest_still_counts() {
        let decoded = readings(&uplink(json!({"status": "ok", "level": 3}), None));
        assert_eq!(named(&decoded), [("level".into(), 3.0, false)]);
        assert_eq!(decoded.rejections.len(), 1);
        assert_eq!(decoded.rejections[0].code, RejectCode::NonNumericValue);
        assert!(decoded.rejections[0].reason.contains("status"), "{}", decoded.rejections[0].reason);
    }

    #[test]
    fn radio_readings_are_optional_and_a_payload_field_of_the_same_name_wins() {
        let decoded = readings(&uplink(json!({"rssi": 1}), Some((-35.0, 5.0))));
        assert_eq!(named(&decoded), [("rssi".into(), 1.0, false), ("snr".into(), 5.0, true)]);
        assert_eq!(best([(-90.0, 3.0), (-35.0, 5.0), (-35.0, 7.5)].into_iter()), Some((-35.0, 7.5)));
    }

    #[test]
    fn an_uplink_without_a_decoded_payload_or_radio_is_rejected_whole() {
        let decoded = readings(&Uplink { dev_eui: "x".into(), time: None, object: None, radio: None });
        assert_eq!(decoded.rejections[0].code, RejectCode::EmptyPayload);
        assert_eq!(decoded.rejections[0].reading_index, None);
    }

    #[test]
    fn dev_euis_are_normalised_or_refused() {
        assert_eq!(dev_eui("0004A30B001C0530").unwrap(), "0004a30b001c0530");
        assert_eq!(dev_eui("00-04-a3-0b-00-1c-05-30").unwrap(), "0004a30b001c0530");
        assert!(dev_eui("0004A30B001C053").is_err());
        assert!(dev_eui("zz04A30B001C0530").is_err());
    }

    #[test]
    fn property_names_are_slugs() {
        assert_eq!(property_name("batteryVoltage"), "battery_voltage");
        assert_eq!(property_name("PM2.5"), "pm2_5");
        assert_eq!(property_name("co2-ppm"), "co2-ppm");
    }
}
