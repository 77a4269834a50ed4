//! The Things Stack v3's `ApplicationUp` as JSON (webhooks and the MQTT
//! integration send the same): only uplink messages (`uplink_message`) carry
//! readings; join accepts, downlink events and the rest are no uplinks.
//! The device is `end_device_ids.dev_eui` (an ABP device without one is known
//! by its `device_id`); the time is `uplink_message.received_at`, else the
//! message's `received_at`; RSSI/SNR from the best of `rx_metadata`.

use serde::Deserialize;
use serde_json::Value;

use super::{best, dev_eui, time, Unreadable, Uplink};

#[derive(Deserialize)]
struct ApplicationUp {
    end_device_ids: Option<DeviceIds>,
    received_at: Option<String>,
    uplink_message: Option<UplinkMessage>,
}

#[derive(Deserialize)]
struct DeviceIds {
    device_id: Option<String>,
    dev_eui: Option<String>,
}

#[derive(Deserialize)]
struct UplinkMessage {
    decoded_payload: Option<Value>,
    #[serde(default)]
    rx_metadata: Option<Vec<Reception>>,
    received_at: Option<String>,
}

#[derive(Deserialize)]
struct Reception {
    rssi: Option<f64>,
    channel_rssi: Option<f64>,
    snr: Option<f64>,
}

/// Reads an `ApplicationUp`; `Ok(None)` for a message that is no uplink.
pub fn from_json(payload: &[u8]) -> Result<Option<Uplink>, Unreadable> {
    let up: ApplicationUp = serde_json::from_slice(payload)
        .map_err(|e| Unreadable(format!("not a The Things Stack message in JSON: {e}")))?;
    let Some(message) = up.uplink_message else { return Ok(None) };
    let ids = up.end_device_ids.ok_or_else(|| Unreadable("the uplink has no end_device_ids".into()))?;
    let device = match (ids.dev_eui, ids.device_id) {
        (Some(eui), _) => dev_eui(&eui)?,
        (None, Some(id)) if !id.is_empty() && id.len() <= 128 => id.to_ascii_lowercase(),
        _ => return Err(Unreadable("the uplink names neither end_device_ids.dev_eui nor device_id".into())),
    };
    let at = message.received_at.or(up.received_at);
    Ok(Some(Uplink {
        dev_eui: device,
        time: at.as_deref().map(time).transpose()?,
        object: message.decoded_payload,
        radio: best(
            message
                .rx_metadata
                .unwrap_or_default()
                .into_iter()
                // Empty fields are omitted by The Things Stack: a missing SNR is 0 dB.
                .map(|r| (r.rssi.or(r.channel_rssi).unwrap_or(f64::NAN), r.snr.unwrap_or(0.0))),
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoheit_domain::Micros;

    #[test]
    fn the_documented_uplink_example_reads_as_documented() {
        let example = include_bytes!("../../../../tests/fixtures/tts/uplink.json");
        let uplink = from_json(example).unwrap().unwrap();
        assert_eq!(uplink.dev_eui, "0004a30b001c0530");
        assert_eq!(uplink.object, Some(serde_json::json!({"temperature": 1.0, "luminosity": 0.64})));
        assert_eq!(uplink.radio, Some((-35.0, 5.0)));
        // 2020-02-12T15:15:45.789585559Z, truncated to microseconds.
        assert_eq!(uplink.time, Some(Micros(1_581_520_545_789_585)));
    }

    #[test]
    fn other_messages_are_no_uplinks_and_garbage_is_unreadable() {
        let join = br#"{"end_device_ids":{"device_id":"dev1"},"join_accept":{"session_key_id":"x"}}"#;
        assert_eq!(from_json(join).unwrap(), None);
        assert!(from_json(b"[1]").is_err());
        assert!(from_json(br#"{"uplink_message":{}}"#).is_err(), "no device");
    }
}
