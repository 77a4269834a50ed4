//! Checks of decoded readings against the registry and the clock, and routing
//! of what passes: readings grouped per datastream (one Kafka record each),
//! everything else collected as rejections for one dead letter.

use std::collections::{BTreeMap, HashMap};

use hoheit_domain::rejection::{RejectCode, Rejection};
use hoheit_domain::topic::TopicAddress;
use hoheit_domain::write::WriteDenial;
use hoheit_domain::{DatastreamId, DatastreamKey, Micros, Slug};
use hoheit_store::registry::DatastreamRef;

use crate::decode::RawReading;

/// The things of the devices a delivery's readings name (by external id, in
/// lower case); `None` for a device that no thing of the organisation carries.
pub type Devices = HashMap<String, Option<Slug>>;

/// The datastream key a reading addresses, or why it addresses none.
/// `devices` answers for every device the readings name (see [`Devices`]).
pub fn key_of(address: &TopicAddress, reading: &RawReading, devices: &Devices) -> Result<DatastreamKey, Rejection> {
    let thing = thing_of(address, reading, devices)?;
    let property = match (address, reading.property.as_deref()) {
        (TopicAddress::Datastream { property, .. }, None) => property.clone(),
        (TopicAddress::Datastream { property, .. }, Some(named)) if named == property.as_str() => property.clone(),
        (TopicAddress::Datastream { property, .. }, Some(named)) => {
            return Err(Rejection::reading(
                reading.index,
                RejectCode::PropertyMismatch,
                format!("reading names property {named:?} but was published on the topic of {property:?}"),
            ));
        }
        (_, None) => property_of_unit(reading)?,
        (_, Some(named)) => Slug::parse("property", named).map_err(|e| {
            let org = address.org();
            Rejection::reading(reading.index, RejectCode::UnknownDatastream, format!("thing {org}/{thing}: {e}"))
        })?,
    };
    Ok(DatastreamKey { org: address.org().clone(), thing, property })
}

/// The thing a reading is of: the topic's, or on an organisation's topic the
/// one that carries the reading's device as its external id. A device that is
/// another registered thing than the topic's is refused; one that no thing
/// carries is the topic's thing (a sensor's own name for itself).
fn thing_of(address: &TopicAddress, reading: &RawReading, devices: &Devices) -> Result<Slug, Rejection> {
    let org = address.org();
    let registered = reading.device.as_deref().map(|device| (device, devices.get(device).cloned().flatten()));
    match (address.thing(), registered) {
        (Some(thing), None | Some((_, None))) => Ok(thing.clone()),
        (Some(thing), Some((_, Some(named)))) if &named == thing => Ok(named),
        (Some(thing), Some((device, Some(named)))) => Err(Rejection::reading(
            reading.index,
            RejectCode::DeviceMismatch,
            format!("reading names device {device:?}, which is thing {org}/{named}, but was published for {org}/{thing}"),
        )),
        (None, Some((_, Some(named)))) => Ok(named),
        (None, Some((device, None))) => Err(Rejection::reading(
            reading.index,
            RejectCode::UnknownDevice,
            format!("no thing of {org} has the external id {device:?}; register the device first"),
        )),
        (None, None) => Err(Rejection::reading(
            reading.index,
            RejectCode::UnknownDevice,
            "readings on an organisation's topic must name their device (a SenML base name such as \"urn:dev:ow:10e2073a01080063:\")",
        )),
    }
}

/// SenML units that say which quantity a record of a device is when its name
/// is the device alone (RFC 8428 §5.1.1, §5.1.3), and the property it goes to.
pub const UNIT_PROPERTIES: [(&str, &str); 11] = [
    ("Cel", "temperature"),
    ("%RH", "humidity"),
    ("Pa", "pressure"),
    ("hPa", "pressure"),
    ("lat", "latitude"),
    ("lon", "longitude"),
    ("%EL", "battery"),
    ("V", "voltage"),
    ("A", "current"),
    ("W", "power"),
    ("lx", "illuminance"),
];

/// The property of a reading that names only its device, from its unit.
fn property_of_unit(reading: &RawReading) -> Result<Slug, Rejection> {
    let missing = |why: String| Rejection::reading(reading.index, RejectCode::MissingProperty, why);
    let Some(device) = reading.device.as_deref() else {
        return Err(missing("readings on a thing topic must name their property".into()));
    };
    let unit = reading.unit.as_deref().unwrap_or_default();
    let property = UNIT_PROPERTIES.iter().find(|(u, _)| *u == unit).map(|(_, p)| *p).ok_or_else(|| {
        missing(format!(
            "reading names only its device {device:?} and its unit {unit:?} does not say which property it is; name it (n), or use one of the units {}",
            UNIT_PROPERTIES.iter().map(|(u, _)| *u).collect::<Vec<_>>().join(", ")
        ))
    })?;
    Slug::parse("property", property).map_err(|e| missing(e.to_string()))
}

/// How far ahead of the platform's clock a reading may be.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub received: Micros,
    pub max_future_micros: i64,
}

/// Checks one reading whose datastream is known (`stream` is `None` when it is
/// not registered).
pub fn check(
    key: &DatastreamKey,
    stream: Option<&DatastreamRef>,
    reading: &RawReading,
    clock: Clock,
    permit: impl Fn(&DatastreamRef) -> Result<(), WriteDenial>,
) -> Result<(DatastreamId, Micros, f64), Rejection> {
    let i = reading.index;
    let Some(stream) = stream else {
        return Err(Rejection::reading(
            i,
            RejectCode::UnknownDatastream,
            format!("no datastream {key} is registered; register it before publishing"),
        ));
    };
    if let Err(denial) = permit(stream) {
        return Err(Rejection::reading(i, RejectCode::WriteDenied, format!("datastream {key}: {denial}")));
    }
    if !reading.value.is_finite() {
        return Err(Rejection::reading(
            i,
            RejectCode::NonFiniteValue,
            format!("value {} is not a finite number", reading.value),
        ));
    }
    if let Some(unit) = reading.unit.as_deref() {
        match &stream.unit {
            Some(expected) if expected.as_str() == unit => {}
            Some(expected) => {
                return Err(Rejection::reading(
                    i,
                    RejectCode::UnitMismatch,
                    format!("unit {unit:?} does not match the datastream's unit {:?}", expected.as_str()),
                ));
            }
            None => {
                return Err(Rejection::reading(
                    i,
                    RejectCode::UnitMismatch,
                    format!("unit {unit:?} given, but datastream {key} has no unit"),
                ));
            }
        }
    }
    if !stream.range.contains(reading.value) {
        return Err(Rejection::reading(
            i,
            RejectCode::OutOfRange,
            format!(
                "value {} is outside the plausible range of datastream {key} ({}); fix the sensor, or the range if it is wrong",
                reading.value, stream.range
            ),
        ));
    }
    let time = reading.time.unwrap_or(clock.received);
    if time.to_datetime().is_none() {
        return Err(Rejection::reading(i, RejectCode::TimeOutOfRange, "time is out of the representable range"));
    }
    if time.0 > clock.received.0.saturating_add(clock.max_future_micros) {
        let ahead = (time.0 - clock.received.0) / 1_000_000;
        return Err(Rejection::reading(
            i,
            RejectCode::TimeInFuture,
            format!(
                "time is {ahead} s ahead of the platform clock; at most {} s are accepted",
                clock.max_future_micros / 1_000_000
            ),
        ));
    }
    Ok((stream.id, time, reading.value))
}

/// Readings of one message that passed, grouped per datastream in message order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Routed {
    pub batches: BTreeMap<DatastreamId, (Vec<i64>, Vec<f64>)>,
    pub rejections: Vec<Rejection>,
    pub accepted: usize,
}

/// Checks every reading and groups the accepted ones; `lookup` answers from
/// the registry cache (which the caller has filled for these keys), `permit`
/// says whether the writer may write into a datastream (see
/// `hoheit_domain::write`; the MQTT door's broker ACL decided before).
pub fn route(
    address: &TopicAddress,
    readings: &[RawReading],
    devices: &Devices,
    clock: Clock,
    mut lookup: impl FnMut(&DatastreamKey) -> Option<DatastreamRef>,
    permit: impl Fn(&DatastreamRef) -> Result<(), WriteDenial>,
) -> Routed {
    let mut routed = Routed::default();
    for reading in readings {
        let key = key_of(address, reading, devices);
        let stream = key.as_ref().ok().and_then(&mut lookup);
        if reading.optional && stream.is_none() {
            continue;
        }
        let outcome = key.and_then(|key| check(&key, stream.as_ref(), reading, clock, &permit));
        match outcome {
            Ok((id, time, value)) => {
                let (times, values) = routed.batches.entry(id).or_default();
                times.push(time.0);
                values.push(value);
                routed.accepted += 1;
            }
            Err(rejection) => routed.rejections.push(rejection),
        }
    }
    routed
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoheit_domain::write::WriteTarget;
    use hoheit_domain::Unit;

    fn slug(s: &str) -> Slug {
        Slug::parse("t", s).unwrap()
    }

    fn reading(index: usize, property: Option<&str>, value: f64, unit: Option<&str>, time: Option<i64>) -> RawReading {
        RawReading {
            index,
            device: None,
            property: property.map(str::to_owned),
            time: time.map(Micros),
            value,
            unit: unit.map(str::to_owned),
            optional: false,
        }
    }

    use hoheit_domain::range::PlausibleRange;

    const TARGET: WriteTarget = WriteTarget { org_id: 1, dataset_id: None, thing_id: 1 };

    fn anyone(_: &DatastreamRef) -> Result<(), WriteDenial> {
        Ok(())
    }

    const CLOCK: Clock = Clock { received: Micros(1_000_000_000_000_000), max_future_micros: 300_000_000 };

    fn registry(key: &DatastreamKey) -> Option<DatastreamRef> {
        match key.property.as_str() {
            "no2" => Some(DatastreamRef {
                id: DatastreamId(1),
                unit: Some(Unit::parse("ug/m3").unwrap()),
                target: TARGET,
                range: PlausibleRange::new(Some(0.0), Some(1000.0)).unwrap(),
            }),
            "count" => Some(DatastreamRef {
                id: DatastreamId(2),
                unit: None,
                target: TARGET,
                range: PlausibleRange::default(),
            }),
            _ => None,
        }
    }

    #[test]
    fn an_optional_reading_without_its_datastream_is_left_out_not_rejected() {
        let thing = TopicAddress::Thing { org: slug("stadt"), thing: slug("luft-1") };
        let rssi = RawReading { optional: true, ..reading(1, Some("rssi"), -35.0, None, Some(5)) };
        let count = RawReading { optional: true, ..reading(2, Some("count"), 1.0, None, Some(5)) };
        let routed = route(
            &thing,
            &[reading(0, Some("no2"), 20.0, None, Some(5)), rssi, count],
            &Devices::new(),
            CLOCK,
            registry,
            anyone,
        );
        assert!(routed.rejections.is_empty(), "{:?}", routed.rejections);
        assert_eq!(routed.accepted, 2, "no2 and the registered optional count");
        let missing =
            route(&thing, &[reading(0, Some("rssi"), -35.0, None, Some(5))], &Devices::new(), CLOCK, registry, anyone);
        assert_eq!(missing.rejections[0].code, RejectCode::UnknownDatastream, "a payload field is not optional");
    }

    #[test]
    fn accepted_readings_are_grouped_per_datastream_in_order() {
        let thing = TopicAddress::Thing { org: slug("stadt"), thing: slug("luft-1") };
        let readings = [
            reading(0, Some("no2"), 20.0, Some("ug/m3"), Some(5)),
            reading(1, Some("count"), 3.0, None, None),
            reading(2, Some("no2"), 21.0, None, Some(6)),
        ];
        let routed = route(&thing, &readings, &Devices::new(), CLOCK, registry, anyone);
        assert!(routed.rejections.is_empty(), "{:?}", routed.rejections);
        assert_eq!(routed.batches[&DatastreamId(1)], (vec![5, 6], vec![20.0, 21.0]));
        assert_eq!(routed.batches[&DatastreamId(2)], (vec![CLOCK.received.0], vec![3.0]), "no time means receive time");
    }

    #[test]
    fn every_failing_check_has_its_own_code() {
        let thing = TopicAddress::Thing { org: slug("stadt"), thing: slug("luft-1") };
        let readings = [
            reading(0, Some("pm10"), 1.0, None, None),
            reading(1, Some("no2"), f64::NAN, None, None),
            reading(2, Some("no2"), f64::INFINITY, None, None),
            reading(3, Some("no2"), 1.0, Some("ppm"), None),
            reading(4, Some("count"), 1.0, Some("Cel"), None),
            reading(5, Some("no2"), 1.0, None, Some(CLOCK.received.0 + 301_000_000)),
            reading(6, None, 1.0, None, None),
            reading(7, Some("Bad Name"), 1.0, None, None),
            reading(8, Some("no2"), 1000.5, None, None),
        ];
        let routed = route(&thing, &readings, &Devices::new(), CLOCK, registry, anyone);
        let codes: Vec<_> = routed.rejections.iter().map(|r| (r.reading_index, r.code)).collect();
        assert_eq!(
            codes,
            vec![
                (Some(0), RejectCode::UnknownDatastream),
                (Some(1), RejectCode::NonFiniteValue),
                (Some(2), RejectCode::NonFiniteValue),
                (Some(3), RejectCode::UnitMismatch),
                (Some(4), RejectCode::UnitMismatch),
                (Some(5), RejectCode::TimeInFuture),
                (Some(6), RejectCode::MissingProperty),
                (Some(7), RejectCode::UnknownDatastream),
                (Some(8), RejectCode::OutOfRange),
            ]
        );
        assert!(routed.rejections[3].reason.contains("ug/m3"));
        assert_eq!(routed.accepted, 0);
    }

    #[test]
    fn datastream_topics_fix_the_property() {
        let topic = TopicAddress::Datastream { org: slug("stadt"), thing: slug("luft-1"), property: slug("no2") };
        let ok = route(
            &topic,
            &[reading(0, None, 1.0, None, Some(1)), reading(1, Some("no2"), 2.0, None, Some(2))],
            &Devices::new(),
            CLOCK,
            registry,
            anyone,
        );
        assert_eq!(ok.accepted, 2);
        let mismatch =
            route(&topic, &[reading(0, Some("count"), 1.0, None, None)], &Devices::new(), CLOCK, registry, anyone);
        assert_eq!(mismatch.rejections[0].code, RejectCode::PropertyMismatch);
    }

    fn of_device(index: usize, device: &str, property: Option<&str>, unit: Option<&str>) -> RawReading {
        RawReading { device: Some(device.to_owned()), ..reading(index, property, 1.0, unit, None) }
    }

    #[test]
    fn a_device_selects_the_thing_that_carries_it_on_an_organisation_topic() {
        let org = TopicAddress::Org { org: slug("stadt") };
        let devices: Devices =
            [("urn:dev:ow:1".to_owned(), Some(slug("luft-1"))), ("urn:dev:ow:2".to_owned(), None)].into();
        let key = |r: &RawReading| key_of(&org, r, &devices);
        let found = key(&of_device(0, "urn:dev:ow:1", Some("no2"), None)).unwrap();
        assert_eq!((found.thing.as_str(), found.property.as_str()), ("luft-1", "no2"));
        assert_eq!(key(&of_device(1, "urn:dev:ow:2", Some("no2"), None)).unwrap_err().code, RejectCode::UnknownDevice);
        assert_eq!(key(&reading(2, Some("no2"), 1.0, None, None)).unwrap_err().code, RejectCode::UnknownDevice);
    }

    #[test]
    fn on_a_thing_topic_a_device_may_not_be_another_thing() {
        let topic = TopicAddress::Thing { org: slug("stadt"), thing: slug("luft-1") };
        let devices: Devices =
            [("urn:dev:ow:1".to_owned(), Some(slug("luft-1"))), ("urn:dev:ow:9".to_owned(), Some(slug("pegel")))]
                .into();
        let key = |r: &RawReading| key_of(&topic, r, &devices);
        assert_eq!(key(&of_device(0, "urn:dev:ow:1", Some("no2"), None)).unwrap().thing.as_str(), "luft-1");
        assert_eq!(
            key(&of_device(1, "urn:dev:unknown", Some("no2"), None)).unwrap().thing.as_str(),
            "luft-1",
            "a device no thing carries is the sensor's own name for the topic's thing"
        );
        let other = key(&of_device(2, "urn:dev:ow:9", Some("no2"), None)).unwrap_err();
        assert_eq!(other.code, RejectCode::DeviceMismatch);
        assert!(other.reason.contains("stadt/pegel"), "{}", other.reason);
    }

    #[test]
    fn a_reading_that_names_only_its_device_goes_to_the_property_of_its_unit() {
        let topic = TopicAddress::Thing { org: slug("stadt"), thing: slug("luft-1") };
        let devices = Devices::new();
        let property = |unit| key_of(&topic, &of_device(0, "urn:dev:ow:1", None, unit), &devices);
        assert_eq!(property(Some("Cel")).unwrap().property.as_str(), "temperature");
        assert_eq!(property(Some("%RH")).unwrap().property.as_str(), "humidity");
        assert_eq!(property(Some("%EL")).unwrap().property.as_str(), "battery");
        let unknown = property(Some("furlong")).unwrap_err();
        assert_eq!(unknown.code, RejectCode::MissingProperty);
        assert!(unknown.reason.contains("%RH"), "the reason lists the units: {}", unknown.reason);
        assert_eq!(property(None).unwrap_err().code, RejectCode::MissingProperty);
    }

    #[test]
    fn a_reading_the_writer_may_not_write_is_rejected_with_the_reason() {
        let topic = TopicAddress::Thing { org: slug("stadt"), thing: slug("luft-1") };
        let readings = [reading(0, Some("no2"), 1.0, None, None), reading(1, Some("count"), 2.0, None, None)];
        let only_no2 = |stream: &DatastreamRef| {
            if stream.id == DatastreamId(1) {
                Ok(())
            } else {
                Err(WriteDenial::ThingNotSupplied { grant: 4 })
            }
        };
        let routed = route(&topic, &readings, &Devices::new(), CLOCK, registry, only_no2);
        assert_eq!(routed.accepted, 1);
        assert_eq!(routed.rejections.len(), 1);
        assert_eq!((routed.rejections[0].reading_index, routed.rejections[0].code), (Some(1), RejectCode::WriteDenied));
        assert!(routed.rejections[0].reason.contains("supply grant 4"), "{}", routed.rejections[0].reason);
    }
}
