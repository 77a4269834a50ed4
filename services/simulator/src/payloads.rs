//! Payload encoding: a thing's readings → MQTT messages in the format its
//! kind uses (see [`Format`]).
//!
//! - plain JSON on the datastream topic: `{"time": RFC 3339, "value": n}`, an
//!   array of them for a batch;
//! - SenML on the thing topic: one pack, the first record of each tick
//!   carrying the time as `bt` (epoch seconds), records named by property,
//!   units exactly as registered;
//! - protobuf `ObservationBatch` on the thing topic, property and unit per reading.
//!
//! Every reading carries its time: the platform's receive time would make a
//! republished backfill look like new readings. Batches are cut at
//! [`MAX_READINGS_PER_MESSAGE`], far below ingest's limits (10 000 readings,
//! 256 KiB), and far below the MQTT packet size the client allows.

use chrono::{DateTime, SecondsFormat, Utc};
use hoheit_domain::topic::TopicScheme;
use hoheit_proto::v1::{ObservationBatch, SensorReading};
use prost::Message as _;
use serde::Serialize;

use hoheit_town::{Format, Property, Thing};

/// Most readings put into one message.
pub const MAX_READINGS_PER_MESSAGE: usize = 500;

/// The values of all of a thing's properties at one time (ordered like
/// [`Thing::properties`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub time: DateTime<Utc>,
    pub values: Vec<f64>,
}

impl Tick {
    /// Observes `thing` at `time`.
    pub fn observe(thing: &Thing, seed: u64, time: DateTime<Utc>) -> Self {
        Self { time, values: thing.observe(seed, time) }
    }
}

/// One MQTT message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    /// How many readings the payload holds.
    pub readings: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("cannot encode a JSON payload: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{thing}: a tick has {got} values for {expected} properties")]
    Shape { thing: String, got: usize, expected: usize },
    /// JSON has no NaN or infinity (serde_json would silently write `null`).
    #[error("value {0} is not a finite number")]
    NonFinite(f64),
}

/// A JSON number for `value`: whole numbers without a fraction (`57`, not
/// `57.0`), as a person writing a counter's payload would.
pub(crate) fn json_number(value: f64) -> Result<serde_json::Number, PayloadError> {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        Ok(serde_json::Number::from(value as i64))
    } else {
        serde_json::Number::from_f64(value).ok_or(PayloadError::NonFinite(value))
    }
}

/// Encodes `ticks` (oldest first) of `thing` as messages, at most
/// [`MAX_READINGS_PER_MESSAGE`] readings each.
pub fn encode(scheme: &TopicScheme, thing: &Thing, ticks: &[Tick]) -> Result<Vec<Message>, PayloadError> {
    let properties = thing.properties();
    if let Some(bad) = ticks.iter().find(|t| t.values.len() != properties.len()) {
        return Err(PayloadError::Shape {
            thing: thing.slug.to_string(),
            got: bad.values.len(),
            expected: properties.len(),
        });
    }
    let mut messages = Vec::new();
    match thing.kind().format() {
        Format::PlainJson => {
            for (index, property) in properties.iter().enumerate() {
                let topic = datastream_topic(scheme, thing, property);
                for chunk in ticks.chunks(MAX_READINGS_PER_MESSAGE) {
                    messages.push(Message {
                        topic: topic.clone(),
                        payload: plain_json(chunk, index)?,
                        readings: chunk.len(),
                    });
                }
            }
        }
        Format::Senml | Format::Protobuf => {
            let topic = scheme.thing_topic(&thing.org, &thing.slug);
            let per_message = (MAX_READINGS_PER_MESSAGE / properties.len().max(1)).max(1);
            for chunk in ticks.chunks(per_message) {
                let payload = match thing.kind().format() {
                    Format::Senml => senml_pack(properties, chunk)?,
                    _ => observation_batch(properties, chunk),
                };
                messages.push(Message { topic: topic.clone(), payload, readings: chunk.len() * properties.len() });
            }
        }
    }
    Ok(messages)
}

fn datastream_topic(scheme: &TopicScheme, thing: &Thing, property: &Property) -> String {
    // Property slugs are constants that the town's tests check; building the
    // topic from text avoids re-validating them for every message.
    format!("{}/{}/{}/{}", scheme.root(), thing.org, thing.slug, property.slug)
}

/// `ticks` of `thing` as one SensorThings `CreateObservations` body (FROST's
/// dataArray extension): one entry per property, its datastream id from
/// `ids` (ordered like the thing's properties). The topic is the thing's, so
/// that the door knows the organisation.
pub fn sta_create(scheme: &TopicScheme, thing: &Thing, ticks: &[Tick], ids: &[i64]) -> Result<Message, PayloadError> {
    let properties = thing.properties();
    if ids.len() != properties.len() {
        return Err(PayloadError::Shape { thing: thing.slug.to_string(), got: ids.len(), expected: properties.len() });
    }
    let mut body = Vec::with_capacity(ids.len());
    for (index, id) in ids.iter().enumerate() {
        let mut rows = Vec::with_capacity(ticks.len());
        for tick in ticks {
            let value = tick.values.get(index).copied().unwrap_or(f64::NAN);
            rows.push(serde_json::json!([rfc3339(tick.time), json_number(value)?]));
        }
        body.push(serde_json::json!({
            "Datastream": {"@iot.id": id},
            "components": ["phenomenonTime", "result"],
            "dataArray": rows,
        }));
    }
    Ok(Message {
        topic: scheme.thing_topic(&thing.org, &thing.slug),
        payload: serde_json::to_vec(&body)?,
        readings: ticks.len() * properties.len(),
    })
}

/// RFC 3339 in UTC, with as many fraction digits as needed (none on the backfill grid).
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[derive(Serialize)]
struct PlainReading {
    time: String,
    value: serde_json::Number,
}

/// Plain JSON readings of property `index`: one object, or an array for several.
pub fn plain_json(ticks: &[Tick], index: usize) -> Result<Vec<u8>, PayloadError> {
    let readings = ticks
        .iter()
        .filter_map(|t| t.values.get(index).map(|v| (t.time, *v)))
        .map(|(time, value)| Ok(PlainReading { time: rfc3339(time), value: json_number(value)? }))
        .collect::<Result<Vec<_>, PayloadError>>()?;
    Ok(match readings.as_slice() {
        [one] => serde_json::to_vec(one)?,
        many => serde_json::to_vec(many)?,
    })
}

#[derive(Serialize)]
struct SenmlRecord<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    bn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bt: Option<serde_json::Number>,
    n: &'a str,
    u: &'a str,
    v: serde_json::Number,
}

/// SenML base time: epoch seconds with the microseconds as fraction (an f64
/// holds them exactly enough for ingest to round back to the same microsecond).
pub fn senml_seconds(time: DateTime<Utc>) -> f64 {
    time.timestamp_micros() as f64 / 1e6
}

/// A SenML pack: `bn` "" on the first record (the names are the properties
/// themselves), `bt` on the first record of every tick.
pub fn senml_pack(properties: &[Property], ticks: &[Tick]) -> Result<Vec<u8>, PayloadError> {
    let mut records = Vec::with_capacity(ticks.len() * properties.len());
    for tick in ticks {
        for (index, (property, value)) in properties.iter().zip(&tick.values).enumerate() {
            records.push(SenmlRecord {
                bn: records.is_empty().then_some(""),
                bt: if index == 0 { Some(json_number(senml_seconds(tick.time))?) } else { None },
                n: property.slug,
                u: property.unit,
                v: json_number(*value)?,
            });
        }
    }
    Ok(serde_json::to_vec(&records)?)
}

/// A protobuf `ObservationBatch` with property, time and unit on every reading.
pub fn observation_batch(properties: &[Property], ticks: &[Tick]) -> Vec<u8> {
    let readings = ticks
        .iter()
        .flat_map(|tick| {
            properties.iter().zip(&tick.values).map(|(property, value)| SensorReading {
                property: property.slug.to_owned(),
                time_unix_us: Some(tick.time.timestamp_micros()),
                value: *value,
                unit: property.unit.to_owned(),
            })
        })
        .collect();
    ObservationBatch { readings }.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use hoheit_town::{Kind, Town};

    #[test]
    fn formats_are_the_ones_each_kind_should_use() {
        let town = Town::eberswalde(1).unwrap();
        let scheme = TopicScheme::default();
        let time = Utc.with_ymd_and_hms(2025, 11, 25, 10, 0, 0).unwrap();
        for thing in &town.things {
            let message = &encode(&scheme, thing, &[Tick::observe(thing, 1, time)]).unwrap()[0];
            let text = String::from_utf8_lossy(&message.payload);
            match thing.kind() {
                Kind::TrafficCounter | Kind::RiverGauge => {
                    assert!(text.starts_with(r#"{"time":"2025-11-25T10:00:00Z","value":"#), "{text}");
                    assert_eq!(
                        message.topic,
                        format!("hoheit/v1/{}/{}/{}", thing.org, thing.slug, thing.properties()[0].slug)
                    );
                }
                Kind::AirStation => {
                    assert!(text.starts_with(r#"[{"bn":"","bt":1764064800,"n":"no2","u":"ug/m3","v":"#), "{text}");
                    assert_eq!(message.topic, format!("hoheit/v1/{}/{}", thing.org, thing.slug));
                }
                Kind::ParkingGarage => {
                    assert_eq!(message.payload.first(), Some(&0x0A), "protobuf, not JSON");
                    let batch = ObservationBatch::decode(message.payload.as_slice()).unwrap();
                    let props: Vec<_> = batch.readings.iter().map(|r| (r.property.as_str(), r.unit.as_str())).collect();
                    assert_eq!(props, vec![("occupancy", "%"), ("free", "count")]);
                }
            }
        }
    }

    #[test]
    fn whole_numbers_have_no_fraction_and_nan_is_refused() {
        let time = Utc.with_ymd_and_hms(2025, 11, 25, 10, 0, 0).unwrap();
        let json = plain_json(&[Tick { time, values: vec![57.0] }], 0).unwrap();
        assert_eq!(String::from_utf8(json).unwrap(), r#"{"time":"2025-11-25T10:00:00Z","value":57}"#);
        let json = plain_json(&[Tick { time, values: vec![-2.5] }], 0).unwrap();
        assert!(String::from_utf8(json).unwrap().ends_with(r#""value":-2.5}"#));
        assert!(matches!(plain_json(&[Tick { time, values: vec![f64::NAN] }], 0), Err(PayloadError::NonFinite(_))));
        let pack = senml_pack(Kind::RiverGauge.properties(), &[Tick { time, values: vec![f64::INFINITY] }]);
        assert!(matches!(pack, Err(PayloadError::NonFinite(_))));
    }

    #[test]
    fn wrongly_shaped_ticks_are_an_error_not_a_panic() {
        let town = Town::eberswalde(1).unwrap();
        let tick = Tick { time: Utc::now(), values: vec![1.0] };
        assert!(matches!(encode(&TopicScheme::default(), &town.things[4], &[tick]), Err(PayloadError::Shape { .. })));
    }
}
