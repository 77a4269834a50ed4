//! The devices' own payloads, pure: what a LoRaWAN network server forwards
//! for one uplink (ChirpStack v4's HTTP integration `UplinkEvent` in JSON,
//! The Things Stack v3's webhook `ApplicationUp`) and what a sensor.community
//! (airrohr) kit posts to "an own API". One tick of one thing each: a device
//! sends what it measured at one moment.
//!
//! Built with `serde_json` in the network servers' field names (ChirpStack:
//! protobuf's JSON mapping, camelCase; The Things Stack: snake_case), with
//! the fields ingest reads (`deviceInfo.devEui`, `time`, `object`, `rxInfo`;
//! `end_device_ids.dev_eui`, `uplink_message.decoded_payload`,
//! `received_at`, `rx_metadata`) and enough of the rest (tenant,
//! application, frame counter, radio settings) to look like the real thing.
//! Identifiers the network server would invent (UUIDs, DevAddr) are hashes
//! of the device, so that the same tick always gives the same bytes.
//!
//! The radio (RSSI, SNR) is reported like the network servers do; ingest
//! stores it only where a thing has `rssi`/`snr` datastreams, which the
//! demo town's things have not.

use serde_json::{json, Map, Value};

use crate::payloads::{json_number, rfc3339, PayloadError, Tick};
use hoheit_town::noise::{stable_hash, Noise};
use hoheit_town::Thing;

/// The LoRaWAN frame port the demo devices send their measurements on.
const F_PORT: u32 = 1;
/// The firmware version an airrohr kit reports (a release of 2024).
pub const AIRROHR_SOFTWARE: &str = "NRZ-2024-135";

/// Property → the airrohr firmware's value type (an SDS011 particulate
/// sensor and a BME280): the inverse of ingest's table for the properties
/// the demo's air stations have. Their NO2 has none: no sensor.community
/// kit measures it, so it is not sent over the airrohr door.
pub const AIRROHR_VALUE_TYPES: &[(&str, &str)] =
    &[("pm10", "SDS_P1"), ("pm2_5", "SDS_P2"), ("temperature", "BME280_temperature"), ("humidity", "BME280_humidity")];

/// The firmware's value type of `property`, if a kit measures it.
pub fn airrohr_value_type(property: &str) -> Option<&'static str> {
    AIRROHR_VALUE_TYPES.iter().find(|(p, _)| *p == property).map(|(_, t)| *t)
}

/// How many of `thing`'s properties the airrohr door carries.
pub fn airrohr_readings(thing: &Thing) -> usize {
    thing.properties().iter().filter(|p| airrohr_value_type(p.slug).is_some()).count()
}

/// The decoded payload of `tick`: one numeric field per property, named by
/// the property (what the device's payload codec in the network server gives).
fn decoded_payload(thing: &Thing, tick: &Tick) -> Result<Map<String, Value>, PayloadError> {
    let properties = thing.properties();
    if tick.values.len() != properties.len() {
        return Err(PayloadError::Shape {
            thing: thing.slug.to_string(),
            got: tick.values.len(),
            expected: properties.len(),
        });
    }
    properties
        .iter()
        .zip(&tick.values)
        .map(|(property, value)| Ok((property.slug.to_owned(), Value::Number(json_number(*value)?))))
        .collect()
}

/// A UUID-shaped identifier from two hashes.
fn uuid(high: u64, low: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xfff,
        (low >> 48) & 0xfff,
        low & 0xffff_ffff_ffff
    )
}

/// What the best gateway heard: (RSSI dBm, SNR dB), steady per device with a little noise.
fn radio(thing: &Thing, tick: &Tick) -> (i64, f64) {
    let noise = Noise::new(0, stable_hash(&thing.external_id));
    let rssi = -118.0 + 70.0 * noise.uniform(0) + 4.0 * (noise.uniform(tick.time.timestamp_micros()) - 0.5);
    let snr = -6.0 + 16.0 * noise.uniform(1) + (noise.stream("snr").uniform(tick.time.timestamp_micros()) - 0.5);
    (rssi.round() as i64, (snr * 4.0).round() / 4.0)
}

/// The frame counter: the number of the device's reporting step (a device
/// counts its uplinks; the step number is what it would have reached).
fn frame_counter(thing: &Thing, tick: &Tick) -> u64 {
    (tick.time.timestamp().max(0) / thing.kind().step_secs()) as u64 % (1 << 32)
}

fn dev_addr(thing: &Thing) -> String {
    format!("{:08x}", stable_hash(&format!("devaddr:{}", thing.external_id)) as u32 & 0x01ff_ffff)
}

/// ChirpStack v4's `integration.UplinkEvent` as its HTTP integration posts
/// it (`?event=up`, JSON marshaler).
pub fn chirpstack_uplink(thing: &Thing, tick: &Tick) -> Result<Vec<u8>, PayloadError> {
    let object = decoded_payload(thing, tick)?;
    let (rssi, snr) = radio(thing, tick);
    let micros = tick.time.timestamp_micros();
    let device = stable_hash(&thing.external_id);
    let org = stable_hash(thing.org.as_str());
    let event = json!({
        "deduplicationId": uuid(device ^ micros as u64, stable_hash(&micros.to_string())),
        "time": rfc3339(tick.time),
        "deviceInfo": {
            "tenantId": uuid(org, stable_hash("tenant")),
            "tenantName": thing.org,
            "applicationId": uuid(org, stable_hash("application")),
            "applicationName": "Hoheit",
            "deviceProfileId": uuid(org, stable_hash(thing.kind().type_slug())),
            "deviceProfileName": thing.kind().type_name(),
            "deviceName": thing.slug,
            "devEui": thing.external_id,
            "deviceClassEnabled": "CLASS_A",
            "tags": {},
        },
        "devAddr": dev_addr(thing),
        "adr": true,
        "dr": 5,
        "fCnt": frame_counter(thing, tick),
        "fPort": F_PORT,
        "confirmed": false,
        "object": object,
        "rxInfo": [{
            "gatewayId": "02ebe5fffe000001",
            "uplinkId": device as u32,
            "gwTime": rfc3339(tick.time),
            "rssi": rssi,
            "snr": snr,
            "channel": 0,
            "location": {},
            "context": "AAAAAA==",
            "crcStatus": "CRC_OK",
        }],
        "txInfo": {
            "frequency": 868_100_000,
            "modulation": {"lora": {"bandwidth": 125_000, "spreadingFactor": 7, "codeRate": "CR_4_5"}},
        },
    });
    Ok(serde_json::to_vec(&event)?)
}

/// The Things Stack v3's `ApplicationUp` with an `uplink_message`, as its
/// webhook (format JSON) posts it.
pub fn tts_uplink(thing: &Thing, tick: &Tick) -> Result<Vec<u8>, PayloadError> {
    let object = decoded_payload(thing, tick)?;
    let (rssi, snr) = radio(thing, tick);
    let at = rfc3339(tick.time);
    let eui = thing.external_id.to_ascii_uppercase();
    // Application ids are at most 36 characters.
    let application: String = thing.org.as_str().chars().take(36).collect();
    let message = json!({
        "end_device_ids": {
            "device_id": format!("eui-{}", thing.external_id),
            "application_ids": {"application_id": application},
            "dev_eui": eui,
            "join_eui": "0000000000000000",
            "dev_addr": dev_addr(thing).to_ascii_uppercase(),
        },
        "correlation_ids": [format!("as:up:{}", uuid(stable_hash(&eui), tick.time.timestamp_micros() as u64))],
        "received_at": at,
        "uplink_message": {
            "f_port": F_PORT,
            "f_cnt": frame_counter(thing, tick),
            "decoded_payload": object,
            "rx_metadata": [{
                "gateway_ids": {"gateway_id": "eberswalde-gw-1", "eui": "02EBE5FFFE000001"},
                "time": at,
                "rssi": rssi,
                "channel_rssi": rssi,
                "snr": snr,
            }],
            "settings": {
                "data_rate": {"lora": {"bandwidth": 125_000, "spreading_factor": 7, "coding_rate": "4/5"}},
                "frequency": "868100000",
            },
            "received_at": at,
        },
    });
    Ok(serde_json::to_vec(&message)?)
}

/// The airrohr firmware's "send to own API" body: the values of the
/// properties a kit measures, as strings with two decimals as the firmware
/// formats them, and its housekeeping. `None` when `thing` has none of them.
/// The body carries no time: ingest stamps the readings when they arrive.
pub fn airrohr_body(thing: &Thing, tick: &Tick) -> Result<Option<(Vec<u8>, usize)>, PayloadError> {
    let object = decoded_payload(thing, tick)?;
    let mut values = Vec::new();
    for property in thing.properties() {
        let (Some(value_type), Some(value)) = (airrohr_value_type(property.slug), object.get(property.slug)) else {
            continue;
        };
        let value = value.as_f64().ok_or(PayloadError::NonFinite(f64::NAN))?;
        values.push(json!({"value_type": value_type, "value": format!("{value:.2}")}));
    }
    if values.is_empty() {
        return Ok(None);
    }
    let readings = values.len();
    let chip = thing.external_id.strip_prefix("esp8266-").unwrap_or(&thing.external_id);
    values.push(json!({"value_type": "samples", "value": "5023441"}));
    values.push(json!({"value_type": "interval", "value": "145000"}));
    let body = json!({"esp8266id": chip, "software_version": AIRROHR_SOFTWARE, "sensordatavalues": values});
    Ok(Some((serde_json::to_vec(&body)?, readings)))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use hoheit_town::{Device, Kind, Town};

    fn tick(thing: &Thing) -> Tick {
        Tick::observe(thing, 42, chrono::Utc.with_ymd_and_hms(2025, 11, 25, 10, 0, 0).unwrap())
    }

    #[test]
    fn uplinks_carry_the_dev_eui_the_time_and_every_property() {
        let town = Town::eberswalde(1).unwrap();
        let thing = town.things.iter().find(|t| t.kind() == Kind::ParkingGarage).unwrap();
        assert_eq!(thing.device(), Device::Lorawan);
        let tick = tick(thing);
        let event: Value = serde_json::from_slice(&chirpstack_uplink(thing, &tick).unwrap()).unwrap();
        assert_eq!(event["deviceInfo"]["devEui"], thing.external_id.as_str());
        assert_eq!(event["time"], "2025-11-25T10:00:00Z");
        assert_eq!(event["object"]["occupancy"], json!(json_number(tick.values[0]).unwrap()));
        assert_eq!(event["object"]["free"], json!(json_number(tick.values[1]).unwrap()));
        let up: Value = serde_json::from_slice(&tts_uplink(thing, &tick).unwrap()).unwrap();
        assert_eq!(up["end_device_ids"]["dev_eui"], thing.external_id.to_ascii_uppercase());
        assert_eq!(up["uplink_message"]["received_at"], "2025-11-25T10:00:00Z");
        assert_eq!(up["uplink_message"]["decoded_payload"], event["object"]);
        assert_eq!(chirpstack_uplink(thing, &tick).unwrap(), chirpstack_uplink(thing, &tick).unwrap(), "pure");
    }

    #[test]
    fn an_airrohr_body_has_the_kits_value_types_as_strings_and_no_no2() {
        let town = Town::eberswalde(1).unwrap();
        let station = town.things.iter().find(|t| t.kind() == Kind::AirStation).unwrap();
        let tick = tick(station);
        let (body, readings) = airrohr_body(station, &tick).unwrap().unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(readings, 4);
        assert_eq!(readings, airrohr_readings(station));
        assert_eq!(body["esp8266id"], station.external_id.trim_start_matches("esp8266-"));
        let values = body["sensordatavalues"].as_array().unwrap();
        assert_eq!(values[0], json!({"value_type": "SDS_P1", "value": format!("{:.2}", tick.values[1])}));
        assert!(values.iter().all(|v| v["value"].is_string() && v["value_type"] != "no2"), "{body}");
        let counter = town.things.iter().find(|t| t.kind() == Kind::TrafficCounter).unwrap();
        assert_eq!(airrohr_body(counter, &super::tests::tick(counter)).unwrap(), None);
    }
}
