//! The sensor.community (airrohr) firmware's "send to own API" body, pure:
//! `{"esp8266id": "…", "software_version": "…", "sensordatavalues":
//! [{"value_type": "SDS_P1", "value": "12.30"}, …]}` (values are strings)
//! into raw readings, each value type mapped to a Hoheit property and unit
//! by [`VALUE_TYPES`]. The firmware's housekeeping (`samples`, `min_micro`,
//! `max_micro`, `interval`, GPS date and time) is skipped; a value type not
//! in the table goes to the property of its own name in lower case (so a
//! newer sensor can be registered without a release), where an unregistered
//! one is an `unknown_datastream` dead letter like at every door.

use hoheit_domain::rejection::{RejectCode, Rejection};
use serde::Deserialize;

use crate::decode::{Decoded, Limits, RawReading};

/// Value type → (property, unit). Units are SenML symbols as Hoheit stores
/// them; pressure stays in Pa as the firmware sends it.
pub const VALUE_TYPES: &[(&str, &str, &str)] = &[
    // Particulate matter (µg/m³): SDS011, PMS1003…7003, HPM, SPS30, Tera NextPM.
    ("SDS_P1", "pm10", "ug/m3"),
    ("SDS_P2", "pm2_5", "ug/m3"),
    ("PMS_P0", "pm1", "ug/m3"),
    ("PMS_P1", "pm10", "ug/m3"),
    ("PMS_P2", "pm2_5", "ug/m3"),
    ("HPM_P1", "pm10", "ug/m3"),
    ("HPM_P2", "pm2_5", "ug/m3"),
    ("SPS30_P0", "pm1", "ug/m3"),
    ("SPS30_P2", "pm2_5", "ug/m3"),
    ("SPS30_P4", "pm4", "ug/m3"),
    ("SPS30_P1", "pm10", "ug/m3"),
    ("SPS30_N05", "pn0_5", "1/cm3"),
    ("SPS30_N1", "pn1", "1/cm3"),
    ("SPS30_N25", "pn2_5", "1/cm3"),
    ("SPS30_N4", "pn4", "1/cm3"),
    ("SPS30_N10", "pn10", "1/cm3"),
    ("SPS30_TS", "particle_size", "um"),
    ("NPM_P0", "pm1", "ug/m3"),
    ("NPM_P1", "pm10", "ug/m3"),
    ("NPM_P2", "pm2_5", "ug/m3"),
    ("NPM_N1", "pn1", "1/cm3"),
    ("NPM_N10", "pn10", "1/cm3"),
    ("NPM_N25", "pn2_5", "1/cm3"),
    // Temperature, humidity, pressure.
    ("temperature", "temperature", "Cel"),
    ("humidity", "humidity", "%RH"),
    ("BME280_temperature", "temperature", "Cel"),
    ("BME280_humidity", "humidity", "%RH"),
    ("BME280_pressure", "pressure", "Pa"),
    ("BMP280_temperature", "temperature", "Cel"),
    ("BMP280_pressure", "pressure", "Pa"),
    ("BMP_temperature", "temperature", "Cel"),
    ("BMP_pressure", "pressure", "Pa"),
    ("HTU21D_temperature", "temperature", "Cel"),
    ("HTU21D_humidity", "humidity", "%RH"),
    ("SHT3X_temperature", "temperature", "Cel"),
    ("SHT3X_humidity", "humidity", "%RH"),
    ("DS18B20_temperature", "temperature", "Cel"),
    ("SCD30_temperature", "temperature", "Cel"),
    ("SCD30_humidity", "humidity", "%RH"),
    ("SCD30_co2_ppm", "co2", "ppm"),
    // Noise (DNMS), dB(A).
    ("DNMS_noise_LAeq", "noise_laeq", "dB"),
    ("DNMS_noise_LA_min", "noise_la_min", "dB"),
    ("DNMS_noise_LA_max", "noise_la_max", "dB"),
    // Position and the WiFi signal.
    ("GPS_lat", "latitude", "lat"),
    ("GPS_lon", "longitude", "lon"),
    ("GPS_height", "altitude", "m"),
    ("signal", "signal", "dBm"),
];

/// The firmware's housekeeping values: not measurements, skipped silently.
pub const HOUSEKEEPING: &[&str] = &["samples", "min_micro", "max_micro", "interval", "GPS_date", "GPS_time"];

#[derive(Deserialize)]
struct Body {
    sensordatavalues: Vec<Value>,
}

#[derive(Deserialize)]
struct Value {
    value_type: String,
    value: serde_json::Value,
}

/// The property and unit of a value type (`None` for housekeeping).
pub fn property_of(value_type: &str) -> Option<(String, Option<&'static str>)> {
    if HOUSEKEEPING.contains(&value_type) {
        return None;
    }
    Some(match VALUE_TYPES.iter().find(|(t, _, _)| *t == value_type) {
        Some((_, property, unit)) => ((*property).to_owned(), Some(*unit)),
        None => (value_type.to_ascii_lowercase(), None),
    })
}

/// Decodes a body; a body that is not the firmware's JSON is one message-level
/// rejection (a dead letter), a value that is not a number one per reading.
pub fn decode(payload: &[u8], limits: Limits) -> Decoded {
    let mut decoded = Decoded::default();
    let body: Body = match serde_json::from_slice(payload) {
        Ok(body) => body,
        Err(e) => {
            decoded.rejections.push(Rejection::message(
                RejectCode::MalformedPayload,
                format!("not the airrohr firmware's JSON ({{\"sensordatavalues\": [{{\"value_type\", \"value\"}}, …]}}): {e}"),
            ));
            return decoded;
        }
    };
    if body.sensordatavalues.len() > limits.max_readings {
        decoded.rejections.push(Rejection::message(
            RejectCode::TooManyReadings,
            format!("{} values; the limit is {}", body.sensordatavalues.len(), limits.max_readings),
        ));
        return decoded;
    }
    for (index, value) in body.sensordatavalues.into_iter().enumerate() {
        let Some((property, unit)) = property_of(&value.value_type) else { continue };
        let number = match &value.value {
            serde_json::Value::String(text) => text.trim().parse::<f64>().ok(),
            serde_json::Value::Number(number) => number.as_f64(),
            _ => None,
        };
        let Some(number) = number else {
            decoded.rejections.push(Rejection::reading(
                index,
                RejectCode::NonNumericValue,
                format!("{} has the value {}, which is not a number", value.value_type, value.value),
            ));
            continue;
        };
        decoded.readings.push(RawReading {
            index,
            device: None,
            property: Some(property),
            time: None,
            value: number,
            unit: unit.map(str::to_owned),
            optional: false,
        });
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body as the firmware's "send to own API" sends it (see tests/fixtures/airrohr/).
    const BODY: &str = include_str!("../../../tests/fixtures/airrohr/nrz-2020-133-sds011-bme280.json");

    fn rows(decoded: &Decoded) -> Vec<(&str, f64, Option<&str>)> {
        decoded
            .readings
            .iter()
            .map(|r| (r.property.as_deref().unwrap_or_default(), r.value, r.unit.as_deref()))
            .collect()
    }

    #[test]
    fn a_firmware_body_reads_its_values_with_units_and_skips_housekeeping() {
        let decoded = decode(BODY.as_bytes(), Limits::default());
        assert!(decoded.rejections.is_empty(), "{:?}", decoded.rejections);
        assert_eq!(
            rows(&decoded),
            vec![
                ("pm10", 12.3, Some("ug/m3")),
                ("pm2_5", 7.45, Some("ug/m3")),
                ("temperature", 21.37, Some("Cel")),
                ("pressure", 99733.28, Some("Pa")),
                ("humidity", 44.37, Some("%RH")),
                ("signal", -70.0, Some("dBm")),
            ]
        );
    }

    #[test]
    fn every_mapped_property_is_a_slug_and_every_unit_a_unit() {
        for (value_type, property, unit) in VALUE_TYPES {
            assert!(hoheit_domain::Slug::parse("property", property).is_ok(), "{value_type}");
            assert!(hoheit_domain::Unit::parse(unit).is_ok(), "{value_type}");
        }
    }

    #[test]
    fn a_value_that_is_no_number_is_rejected_alone_and_unknown_types_keep_their_name() {
        let body = r#"{"sensordatavalues":[{"value_type":"SDS_P1","value":"n/a"},{"value_type":"SDS_P2","value":"3.5"},
            {"value_type":"XYZ_Ozone","value":"41"},{"value_type":"samples","value":"x"}]}"#;
        let decoded = decode(body.as_bytes(), Limits::default());
        assert_eq!(rows(&decoded), vec![("pm2_5", 3.5, Some("ug/m3")), ("xyz_ozone", 41.0, None)]);
        assert_eq!(decoded.rejections.len(), 1);
        assert_eq!(
            (decoded.rejections[0].reading_index, decoded.rejections[0].code),
            (Some(0), RejectCode::NonNumericValue)
        );
        assert!(decoded.rejections[0].reason.contains("SDS_P1"), "{}", decoded.rejections[0].reason);
    }

    #[test]
    fn a_body_that_is_not_the_firmwares_is_one_rejection() {
        for body in ["", "[]", r#"{"sensordatavalues": {}}"#, "{"] {
            let decoded = decode(body.as_bytes(), Limits::default());
            assert!(decoded.readings.is_empty());
            assert_eq!(decoded.rejections[0].code, RejectCode::MalformedPayload, "{body}");
        }
    }
}
