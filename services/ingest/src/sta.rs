//! SensorThings create, the JSON (pure): an Observation as FROST-fed
//! connectors post it (`POST …/Observations`, MQTT
//! `v1.1/Datastreams({id})/Observations`) and the dataArray extension's
//! `CreateObservations`, decoded into readings of one datastream each; the
//! MQTT create topic; and the id a created observation gets, which is known
//! before it is stored (`'{datastream}-{µs}'`, as the API's SensorThings read
//! side writes it).
//!
//! The time of a reading is its `phenomenonTime` (an instant, or the start of
//! an interval), else its `resultTime`, else the time it was received. A
//! `result` is a number or a boolean (stored as 1 or 0); anything else is a
//! rejected reading (`non_numeric_value`).

use hoheit_domain::rejection::{RejectCode, Rejection};
use hoheit_domain::{DatastreamId, Micros};
use serde_json::{Map, Value};

use crate::decode::{parse_time, Decoded, RawReading};

/// Where SensorThings lives, on the API and on ingest's doors.
pub const STA_PATH: &str = "/sta/v1.1";

/// The `@iot.id` of the observation of `datastream` at `time`.
pub fn observation_id(datastream: DatastreamId, time: Micros) -> String {
    format!("{}-{}", datastream.0, time.0)
}

/// The path-absolute self link of that observation.
pub fn observation_path(datastream: DatastreamId, time: Micros) -> String {
    format!("{STA_PATH}/Observations('{}')", observation_id(datastream, time))
}

/// One Observation to create.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub datastream: DatastreamId,
    pub time: Micros,
    /// The reading, or why its result is not one (index 0).
    pub decoded: Decoded,
}

/// Reads one Observation entity. `datastream`: the one the path names
/// (`Datastreams(5)/Observations`, the MQTT topic); otherwise the body's
/// `Datastream` (`{"@iot.id": 5}`) or `Datastream@iot.id` names it. `Err`:
/// why the body is not an Observation (nothing to store).
pub fn observation(payload: &[u8], datastream: Option<DatastreamId>, received: Micros) -> Result<Observation, String> {
    let value: Value = serde_json::from_slice(payload).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Value::Object(entity) = value else {
        return Err("the body must be one Observation, a JSON object".into());
    };
    if entity.contains_key("MultiDatastream") || entity.contains_key("MultiDatastream@iot.id") {
        return Err("MultiDatastreams are not supported; create the observation in a Datastream".into());
    }
    let named = named_datastream(&entity)?;
    let datastream = match (datastream, named) {
        (Some(path), Some(body)) if path != body => {
            return Err(format!(
                "the path names Datastream {} but the body names Datastream {}; leave it out of the body",
                path.0, body.0
            ))
        }
        (Some(id), _) | (None, Some(id)) => id,
        (None, None) => {
            return Err(
                "name the Datastream: \"Datastream\": {\"@iot.id\": …}, or post to Datastreams({id})/Observations"
                    .into(),
            )
        }
    };
    let time = time_of(entity.get("phenomenonTime"), entity.get("resultTime"), received)?;
    let result = entity.get("result").ok_or("an Observation needs a \"result\"")?;
    Ok(Observation { datastream, time, decoded: reading(0, time, result) })
}

/// One Datastream's rows of a `CreateObservations` request.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub datastream: DatastreamId,
    /// The request's row numbers of this group (readings and rejections are indexed by them).
    pub rows: std::ops::Range<usize>,
    pub decoded: Decoded,
}

/// Reads a `CreateObservations` request: an array of
/// `{"Datastream": {"@iot.id": n}, "components": [...], "dataArray": [[...], ...]}`.
/// Rows are numbered through the whole request; a row that is not an
/// observation is a rejection of its own. `Err`: why the request is not one
/// (nothing to store).
pub fn data_array(payload: &[u8], received: Micros, max_rows: usize) -> Result<Vec<Group>, String> {
    let value: Value = serde_json::from_slice(payload).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Value::Array(items) = value else {
        return Err("CreateObservations takes a JSON array of {\"Datastream\", \"components\", \"dataArray\"}".into());
    };
    let mut groups = Vec::with_capacity(items.len());
    let mut next_row = 0;
    for (position, item) in items.iter().enumerate() {
        let Value::Object(item) = item else {
            return Err(format!("element {position} is not an object"));
        };
        if item.contains_key("MultiDatastream") {
            return Err(format!("element {position}: MultiDatastreams are not supported"));
        }
        let datastream = named_datastream(item)
            .map_err(|e| format!("element {position}: {e}"))?
            .ok_or_else(|| format!("element {position} names no Datastream (\"Datastream\": {{\"@iot.id\": …}})"))?;
        let components = components(item.get("components")).map_err(|e| format!("element {position}: {e}"))?;
        let Some(Value::Array(rows)) = item.get("dataArray") else {
            return Err(format!("element {position} has no \"dataArray\" array"));
        };
        if next_row + rows.len() > max_rows {
            return Err(format!("the request holds more than {max_rows} observations; split it"));
        }
        let first = next_row;
        let mut decoded = Decoded::default();
        for row in rows {
            let one = row_reading(next_row, row, &components, received);
            decoded.readings.extend(one.readings);
            decoded.rejections.extend(one.rejections);
            next_row += 1;
        }
        groups.push(Group { datastream, rows: first..next_row, decoded });
    }
    Ok(groups)
}

/// Where each value of a dataArray row goes.
struct Components {
    count: usize,
    result: usize,
    phenomenon_time: Option<usize>,
    result_time: Option<usize>,
}

fn components(value: Option<&Value>) -> Result<Components, String> {
    let Some(Value::Array(names)) = value else {
        return Err("\"components\" must be an array of property names".into());
    };
    let position = |wanted: &str| names.iter().position(|n| n.as_str() == Some(wanted));
    Ok(Components {
        count: names.len(),
        result: position("result").ok_or("\"components\" must include \"result\"")?,
        phenomenon_time: position("phenomenonTime"),
        result_time: position("resultTime"),
    })
}

fn row_reading(index: usize, row: &Value, components: &Components, received: Micros) -> Decoded {
    let malformed = |reason: String| Decoded {
        readings: Vec::new(),
        rejections: vec![Rejection::reading(index, RejectCode::MalformedPayload, reason)],
    };
    let Value::Array(values) = row else {
        return malformed(format!("row {index} is not an array"));
    };
    if values.len() != components.count {
        return malformed(format!("row {index} has {} values for {} components", values.len(), components.count));
    }
    let at = |i: Option<usize>| i.and_then(|i| values.get(i));
    match time_of(at(components.phenomenon_time), at(components.result_time), received) {
        Ok(time) => reading(index, time, &values[components.result]),
        Err(reason) => malformed(format!("row {index}: {reason}")),
    }
}

/// The Datastream an entity names, if it names one.
fn named_datastream(entity: &Map<String, Value>) -> Result<Option<DatastreamId>, String> {
    let id = match (entity.get("Datastream"), entity.get("Datastream@iot.id")) {
        (Some(Value::Object(nested)), _) => {
            nested.get("@iot.id").ok_or("\"Datastream\" must name an existing one by \"@iot.id\"")?
        }
        (Some(Value::Null) | None, Some(id)) => id,
        (Some(Value::Null) | None, None) => return Ok(None),
        (Some(_), _) => return Err("\"Datastream\" must be an object: {\"@iot.id\": …}".into()),
    };
    let parsed = match id {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    parsed.filter(|id| *id > 0).map(|id| Some(DatastreamId(id))).ok_or_else(|| format!("{id} is not a Datastream id"))
}

/// `phenomenonTime` (an instant, or the start of an interval), else
/// `resultTime`, else `received`.
fn time_of(phenomenon: Option<&Value>, result: Option<&Value>, received: Micros) -> Result<Micros, String> {
    match (phenomenon, result) {
        (Some(Value::String(text)), _) => {
            let start = text.split_once('/').map_or(text.as_str(), |(start, _)| start);
            parse_time(start).map_err(|e| format!("phenomenonTime: {e}"))
        }
        (Some(Value::Null) | None, Some(Value::String(text))) => {
            parse_time(text).map_err(|e| format!("resultTime: {e}"))
        }
        (Some(Value::Null) | None, Some(Value::Null) | None) => Ok(received),
        (Some(other), _) | (_, Some(other)) => Err(format!("{other} is not a time (an RFC 3339 string)")),
    }
}

/// The reading of one result, or why it is not one.
fn reading(index: usize, time: Micros, result: &Value) -> Decoded {
    let value = match result {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    };
    match value {
        Some(value) => Decoded {
            readings: vec![RawReading {
                index,
                device: None,
                property: None,
                time: Some(time),
                value,
                unit: None,
                optional: false,
            }],
            rejections: Vec::new(),
        },
        None => {
            let shown: String = result.to_string().chars().take(64).collect();
            Decoded {
                readings: Vec::new(),
                rejections: vec![Rejection::reading(
                    index,
                    RejectCode::NonNumericValue,
                    format!("result {shown} is not a number or a boolean; Hoheit stores numeric readings only"),
                )],
            }
        }
    }
}

/// The datastream an MQTT create topic names: `{prefix}/Datastreams({id})/Observations`.
pub fn create_topic(prefix: &str, topic: &str) -> Option<DatastreamId> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix("/Datastreams(")?;
    let (id, rest) = rest.split_once(')')?;
    if rest != "/Observations" || id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok().filter(|id| *id > 0).map(DatastreamId)
}

/// The MQTT subscription of the create topics under `prefix`.
pub fn create_subscription(prefix: &str) -> String {
    format!("{prefix}/+/Observations")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECEIVED: Micros = Micros(1_700_000_000_000_000);

    fn value_of(decoded: &Decoded) -> Option<(Option<Micros>, f64)> {
        decoded.readings.first().map(|r| (r.time, r.value))
    }

    #[test]
    fn an_observation_names_its_datastream_nested_or_flat() {
        let nested =
            br#"{"result": 21.5, "phenomenonTime": "2026-01-02T03:04:05.123456Z", "Datastream": {"@iot.id": 7}}"#;
        let created = observation(nested, None, RECEIVED).unwrap();
        assert_eq!(created.datastream, DatastreamId(7));
        assert_eq!(created.time, Micros(1_767_323_045_123_456));
        assert_eq!(value_of(&created.decoded), Some((Some(created.time), 21.5)));
        let flat = br#"{"result": 1, "Datastream@iot.id": 8}"#;
        assert_eq!(observation(flat, None, RECEIVED).unwrap().datastream, DatastreamId(8));
    }

    #[test]
    fn the_path_names_the_datastream_and_a_different_one_in_the_body_is_refused() {
        let body = br#"{"result": 3}"#;
        assert_eq!(observation(body, Some(DatastreamId(4)), RECEIVED).unwrap().datastream, DatastreamId(4));
        let same = br#"{"result": 3, "Datastream": {"@iot.id": 4}}"#;
        assert!(observation(same, Some(DatastreamId(4)), RECEIVED).is_ok());
        let other = br#"{"result": 3, "Datastream": {"@iot.id": 5}}"#;
        assert!(observation(other, Some(DatastreamId(4)), RECEIVED).unwrap_err().contains("names Datastream 4"));
        assert!(observation(body, None, RECEIVED).unwrap_err().contains("name the Datastream"));
    }

    #[test]
    fn the_time_is_the_phenomenon_time_or_its_start_else_the_result_time_else_received() {
        let interval = br#"{"result": 1, "phenomenonTime": "2026-01-02T00:00:00Z/2026-01-02T01:00:00Z", "resultTime": "2026-01-03T00:00:00Z"}"#;
        assert_eq!(observation(interval, Some(DatastreamId(1)), RECEIVED).unwrap().time, Micros(1_767_312_000_000_000));
        let result_time = br#"{"result": 1, "phenomenonTime": null, "resultTime": "2026-01-03T00:00:00Z"}"#;
        assert_eq!(
            observation(result_time, Some(DatastreamId(1)), RECEIVED).unwrap().time,
            Micros(1_767_398_400_000_000)
        );
        let none = br#"{"result": 1}"#;
        let created = observation(none, Some(DatastreamId(1)), RECEIVED).unwrap();
        assert_eq!(value_of(&created.decoded), Some((Some(RECEIVED), 1.0)));
        let bad = br#"{"result": 1, "phenomenonTime": "yesterday"}"#;
        assert!(observation(bad, Some(DatastreamId(1)), RECEIVED).unwrap_err().contains("phenomenonTime"));
    }

    #[test]
    fn booleans_are_one_and_zero_and_text_is_a_non_numeric_rejection() {
        let yes = observation(br#"{"result": true}"#, Some(DatastreamId(1)), RECEIVED).unwrap();
        assert_eq!(value_of(&yes.decoded).map(|(_, v)| v), Some(1.0));
        let no = observation(br#"{"result": false}"#, Some(DatastreamId(1)), RECEIVED).unwrap();
        assert_eq!(value_of(&no.decoded).map(|(_, v)| v), Some(0.0));
        for text in [&br#"{"result": "21.5"}"#[..], br#"{"result": {"a": 1}}"#, br#"{"result": null}"#] {
            let created = observation(text, Some(DatastreamId(1)), RECEIVED).unwrap();
            assert!(created.decoded.readings.is_empty());
            assert_eq!(created.decoded.rejections[0].code, RejectCode::NonNumericValue);
        }
    }

    #[test]
    fn what_is_not_an_observation_says_why() {
        for (body, says) in [
            (&b"nope"[..], "not JSON"),
            (b"[1]", "JSON object"),
            (br#"{"Datastream": {"@iot.id": 1}}"#, "\"result\""),
            (br#"{"result": 1, "Datastream": {"@iot.id": "x"}}"#, "not a Datastream id"),
            (br#"{"result": 1, "Datastream": 5}"#, "must be an object"),
            (br#"{"result": 1, "MultiDatastream": {"@iot.id": 1}}"#, "MultiDatastreams"),
        ] {
            let error = observation(body, None, RECEIVED).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
    }

    #[test]
    fn a_data_array_numbers_its_rows_through_the_request() {
        let body = br#"[
            {"Datastream": {"@iot.id": 1}, "components": ["phenomenonTime", "result", "FeatureOfInterest/id"],
             "dataArray@iot.count": 2,
             "dataArray": [["2026-01-02T00:00:00Z", 20, 1], ["2026-01-02T00:01:00Z", true, 1]]},
            {"Datastream": {"@iot.id": 2}, "components": ["result", "resultTime"],
             "dataArray": [["warm", "2026-01-02T00:00:00Z"], [5], [6.5, "2026-01-02T00:02:00Z"], [7, "later"]]}
        ]"#;
        let groups = data_array(body, RECEIVED, 100).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!((groups[0].datastream, groups[0].rows.clone()), (DatastreamId(1), 0..2));
        let values: Vec<_> = groups[0].decoded.readings.iter().map(|r| (r.index, r.value)).collect();
        assert_eq!(values, [(0, 20.0), (1, 1.0)]);
        assert_eq!((groups[1].datastream, groups[1].rows.clone()), (DatastreamId(2), 2..6));
        let accepted: Vec<_> = groups[1].decoded.readings.iter().map(|r| (r.index, r.value)).collect();
        assert_eq!(accepted, [(4, 6.5)]);
        let rejected: Vec<_> = groups[1].decoded.rejections.iter().map(|r| (r.reading_index, r.code)).collect();
        assert_eq!(
            rejected,
            [
                (Some(2), RejectCode::NonNumericValue),
                (Some(3), RejectCode::MalformedPayload),
                (Some(5), RejectCode::MalformedPayload)
            ]
        );
    }

    #[test]
    fn a_data_array_that_is_not_one_says_why() {
        for (body, says) in [
            (&br#"{"a": 1}"#[..], "JSON array"),
            (br#"[{"components": ["result"], "dataArray": []}]"#, "names no Datastream"),
            (br#"[{"Datastream": {"@iot.id": 1}, "components": ["phenomenonTime"], "dataArray": []}]"#, "\"result\""),
            (br#"[{"Datastream": {"@iot.id": 1}, "components": ["result"]}]"#, "dataArray"),
            (
                br#"[{"Datastream": {"@iot.id": 1}, "components": ["result"], "dataArray": [[1], [2], [3]]}]"#,
                "more than 2",
            ),
        ] {
            let error = data_array(body, RECEIVED, 2).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
    }

    #[test]
    fn the_create_topic_names_a_datastream() {
        assert_eq!(create_topic("v1.1", "v1.1/Datastreams(12)/Observations"), Some(DatastreamId(12)));
        for topic in [
            "v1.1/Datastreams(x)/Observations",
            "v1.1/Datastreams()/Observations",
            "v1.1/Datastreams(0)/Observations",
            "v1.1/Things(1)/Observations",
            "v1.1/Datastreams(1)/Observations/x",
            "v1.0/Datastreams(1)/Observations",
        ] {
            assert_eq!(create_topic("v1.1", topic), None, "{topic}");
        }
        assert_eq!(create_subscription("t/v1.1"), "t/v1.1/+/Observations");
    }

    #[test]
    fn the_id_and_location_match_the_read_side() {
        assert_eq!(observation_id(DatastreamId(5), Micros(1_700_000_000_000_001)), "5-1700000000000001");
        assert_eq!(observation_path(DatastreamId(5), Micros(17)), "/sta/v1.1/Observations('5-17')");
    }
}
