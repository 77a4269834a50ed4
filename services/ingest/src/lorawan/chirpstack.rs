//! ChirpStack v4's `integration.UplinkEvent`, in both of its encodings: the
//! JSON marshaler (protobuf JSON mapping: camelCase names, `time` as RFC 3339,
//! `object` as plain JSON) and the protobuf marshaler. Only the fields Hoheit
//! reads are declared (field numbers from ChirpStack's `integration.proto`);
//! prost and serde skip the rest. This keeps ingest free of `protoc`, which
//! the `chirpstack_api` crate's build needs; the tests in `tests/it/lorawan.rs`
//! encode real `chirpstack_api::integration::UplinkEvent`s to prove both
//! decoders read what ChirpStack sends.

use hoheit_domain::Micros;
use prost::Message;
use serde::Deserialize;
use serde_json::Value;

use super::{best, dev_eui, time, Unreadable, Uplink};

/// The JSON encoding (`marshaler=json`, and the HTTP integration's default).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonUplink {
    time: Option<String>,
    device_info: Option<JsonDevice>,
    object: Option<Value>,
    #[serde(default)]
    rx_info: Option<Vec<JsonReception>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonDevice {
    dev_eui: Option<String>,
}

#[derive(Deserialize)]
struct JsonReception {
    rssi: Option<f64>,
    snr: Option<f64>,
}

/// Reads a JSON `UplinkEvent`.
pub fn from_json(payload: &[u8]) -> Result<Uplink, Unreadable> {
    let event: JsonUplink = serde_json::from_slice(payload)
        .map_err(|e| Unreadable(format!("not a ChirpStack UplinkEvent in JSON: {e}")))?;
    let eui = event.device_info.and_then(|d| d.dev_eui).unwrap_or_default();
    Ok(Uplink {
        dev_eui: dev_eui(&eui)?,
        time: event.time.as_deref().map(time).transpose()?,
        object: event.object,
        radio: best(
            event
                .rx_info
                .unwrap_or_default()
                .into_iter()
                .map(|r| (r.rssi.unwrap_or(f64::NAN), r.snr.unwrap_or(f64::NAN))),
        ),
    })
}

/// The protobuf fields of `integration.UplinkEvent` that Hoheit reads.
#[derive(Clone, PartialEq, Message)]
struct ProtoUplink {
    #[prost(message, optional, tag = "2")]
    time: Option<prost_types::Timestamp>,
    #[prost(message, optional, tag = "3")]
    device_info: Option<ProtoDevice>,
    #[prost(message, optional, tag = "11")]
    object: Option<prost_types::Struct>,
    #[prost(message, repeated, tag = "12")]
    rx_info: Vec<ProtoReception>,
}

/// `integration.DeviceInfo`.
#[derive(Clone, PartialEq, Message)]
struct ProtoDevice {
    #[prost(string, tag = "8")]
    dev_eui: String,
}

/// `gw.UplinkRxInfo`.
#[derive(Clone, PartialEq, Message)]
struct ProtoReception {
    #[prost(int32, tag = "6")]
    rssi: i32,
    #[prost(float, tag = "7")]
    snr: f32,
}

/// Reads a protobuf `UplinkEvent` (`marshaler=protobuf`).
pub fn from_protobuf(payload: &[u8]) -> Result<Uplink, Unreadable> {
    let event = ProtoUplink::decode(payload)
        .map_err(|e| Unreadable(format!("not a ChirpStack UplinkEvent in protobuf: {e}")))?;
    let time = event
        .time
        .map(|t| {
            let micros = t.seconds.checked_mul(1_000_000).and_then(|s| s.checked_add(i64::from(t.nanos) / 1_000));
            micros.map(Micros).ok_or_else(|| Unreadable("the uplink's time is out of range".into()))
        })
        .transpose()?;
    Ok(Uplink {
        dev_eui: dev_eui(&event.device_info.map(|d| d.dev_eui).unwrap_or_default())?,
        time,
        object: event.object.map(|s| struct_json(&s, 0)),
        radio: best(event.rx_info.iter().map(|r| (f64::from(r.rssi), f64::from(r.snr)))),
    })
}

/// A protobuf `Struct` as the JSON it stands for.
fn struct_json(object: &prost_types::Struct, depth: usize) -> Value {
    Value::Object(object.fields.iter().map(|(k, v)| (k.clone(), value_json(v, depth + 1))).collect())
}

fn value_json(value: &prost_types::Value, depth: usize) -> Value {
    use prost_types::value::Kind;
    if depth > 16 {
        return Value::Null;
    }
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::StructValue(s)) => struct_json(s, depth),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(|v| value_json(v, depth + 1)).collect()),
    }
}

/// Reads an `UplinkEvent` in either encoding: JSON starts with `{`, a
/// protobuf `UplinkEvent` never does (its first tag byte is 0x0a..0x7a, not `{` = 0x7b).
pub fn sniff(payload: &[u8]) -> Result<Uplink, Unreadable> {
    match payload.iter().copied().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => from_json(payload),
        _ => from_protobuf(payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_uplink_names_device_time_object_and_best_gateway() {
        let json = br#"{"deduplicationId":"x","time":"2026-11-20T00:00:00.5Z","deviceInfo":{"devEui":"0102030405060708","tags":{}},
            "object":{"t":1.5},"rxInfo":[{"gatewayId":"a","rssi":-100,"snr":2.0},{"gatewayId":"b","rssi":-60,"snr":-1.5}]}"#;
        let uplink = from_json(json).unwrap();
        assert_eq!(uplink.dev_eui, "0102030405060708");
        assert_eq!(uplink.time, Some(Micros(1_795_132_800_500_000)));
        assert_eq!(uplink.object, Some(serde_json::json!({"t": 1.5})));
        assert_eq!(uplink.radio, Some((-60.0, -1.5)));
    }

    #[test]
    fn what_is_not_an_uplink_is_unreadable_not_a_panic() {
        assert!(from_json(b"{\"deviceInfo\":{}}").is_err(), "no DevEUI");
        assert!(from_json(b"{").is_err());
        assert!(from_protobuf(&[0xff, 0xff, 0xff]).is_err());
        assert!(sniff(b"").is_err(), "an empty event has no DevEUI");
    }
}
