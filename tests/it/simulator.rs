//! The simulator against the whole platform: it registers the demo town,
//! and every reading it publishes (history and live) through every door
//! (MQTT, push, SensorThings, ChirpStack, The Things Stack, airrohr) is
//! stored, none rejected.

use std::time::Duration;

use anyhow::Context;
use hoheit_simulator::{Door, Simulator, SimulatorConfig};
use hoheit_tests::{eventually, Platform};
use hoheit_town::{Device, Town, STADT, STADTWERKE};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_town_is_registered_and_everything_it_publishes_is_stored() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let config = SimulatorConfig {
        rate: 200,
        backfill_hours: 2,
        duration_secs: 3,
        ..platform.isolation.simulator_config(&platform.api.base)
    };
    let summary = Simulator::new(config.clone())?.run(CancellationToken::new()).await?;
    assert_eq!(summary.datastreams, 26);
    assert_eq!(summary.unacked_messages, 0);
    assert!(summary.live_readings >= 200, "about 3 s at 200 readings/s: {summary:?}");
    let published = (summary.backfill_readings + summary.live_readings) as i64;

    let pool = platform.pool.clone();
    eventually(Duration::from_secs(60), "every published reading stored", || {
        let pool = pool.clone();
        async move {
            let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM observations").fetch_one(&pool).await?;
            Ok((stored >= published).then_some(()))
        }
    })
    .await?;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM observations").fetch_one(&pool).await?;
    assert_eq!(stored, published);
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters").fetch_one(&pool).await?;
    assert_eq!(dead, 0, "the simulator's payloads are all valid");

    let list = platform.api.get_json("/v1/datastreams").await?;
    let streams = list["datastreams"].as_array().unwrap();
    assert_eq!(streams.len(), 26);
    assert!(streams.iter().all(|s| s["latest_time"].is_string()), "every datastream has live data");

    // Registered through device types and an import: every thing carries its kind's type ...
    let town = Town::eberswalde(1)?;
    let things = |platform: &Platform| {
        let api = platform.api.clone();
        async move {
            let mut all = Vec::new();
            for org in [STADT, STADTWERKE] {
                let listed = api.get_json(&format!("/v1/admin/things?org={org}")).await?;
                all.extend(listed["things"].as_array().cloned().unwrap_or_default().into_iter().map(|t| {
                    (
                        t["org"].clone(),
                        t["slug"].clone(),
                        t["name"].clone(),
                        t["type"].clone(),
                        t["datastreams"].clone(),
                        t["external_id"].clone(),
                    )
                }));
            }
            anyhow::Ok(all)
        }
    };
    let before = things(&platform).await?;
    assert_eq!(before.len(), town.things.len());
    for thing in &town.things {
        let listed = before.iter().find(|t| t.0 == thing.org.as_str() && t.1 == thing.slug.as_str());
        let (_, _, _, kind, datastreams, external_id) = listed.with_context(|| format!("{} listed", thing.slug))?;
        assert_eq!(*kind, thing.kind().type_slug(), "{}", thing.slug);
        assert_eq!(*external_id, thing.external_id.as_str(), "{}: its device's id", thing.slug);
        assert_eq!(datastreams, &json!(thing.properties().len()), "{}", thing.slug);
    }
    let types = platform.api.get_json(&format!("/v1/admin/device-types?org={STADT}")).await?;
    assert_eq!(types["device_types"].as_array().map(Vec::len), Some(3), "{types}");

    // ... and a second registration changes nothing.
    let again = Simulator::new(config)?.register().await?;
    assert_eq!((again.created, again.changed), (0, 0), "{again:?}");
    assert_eq!(again.existing, 2 + 4 + town.things.len(), "organisations, types, things: {again:?}");
    assert_eq!(things(&platform).await?, before);
    let stored_again: i64 = sqlx::query_scalar("SELECT count(*) FROM datastreams").fetch_one(&pool).await?;
    assert_eq!(stored_again, 26);
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_http_push_door_everything_the_simulator_sends_is_stored() -> anyhow::Result<()> {
    everything_sent_through_is_stored(Door::Http).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_sensorthings_create_everything_the_simulator_sends_is_stored() -> anyhow::Result<()> {
    everything_sent_through_is_stored(Door::Sta).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_chirpstacks_http_integration_everything_the_simulator_sends_is_stored() -> anyhow::Result<()> {
    everything_sent_through_is_stored(Door::Chirpstack).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_things_stacks_webhook_everything_the_simulator_sends_is_stored() -> anyhow::Result<()> {
    everything_sent_through_is_stored(Door::Tts).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_airrohr_door_everything_the_simulator_sends_is_stored() -> anyhow::Result<()> {
    everything_sent_through_is_stored(Door::Airrohr).await
}

/// Runs the simulator through `door`: every reading it sends is stored once,
/// none dead-lettered; a device door carries exactly its kind of device's
/// datastreams. Then a second run: its registration changes nothing, and
/// what it sends is stored once more.
async fn everything_sent_through_is_stored(door: Door) -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let config = SimulatorConfig {
        rate: 100,
        backfill_hours: 1,
        duration_secs: 2,
        door,
        ..platform.isolation.simulator_config(&platform.api.base)
    };
    let summary = Simulator::new(config.clone())?.run(CancellationToken::new()).await?;
    assert_eq!(summary.unacked_messages, 0, "{summary:?}");
    assert_eq!(summary.acked_messages, summary.messages(), "every request answered 202 (201): {summary:?}");
    let published = summary.readings() as i64;
    assert!(summary.live_readings > 0, "{summary:?}");
    let pool = platform.pool.clone();
    let stored = eventually(Duration::from_secs(60), "every pushed reading stored", || {
        let pool = pool.clone();
        async move {
            let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM observations").fetch_one(&pool).await?;
            Ok((stored >= published).then_some(stored))
        }
    })
    .await?;
    assert_eq!(stored, published, "202 means stored, once");
    let doors: Vec<String> = sqlx::query_scalar("SELECT DISTINCT door FROM dead_letters").fetch_all(&pool).await?;
    assert!(doors.is_empty(), "no dead letters: {doors:?}");

    // What the door carries: everything (Hoheit's doors) or its devices' datastreams, each with readings.
    let town = Town::eberswalde(1)?;
    let carried: usize = town.things.iter().map(|t| door.readings_of(t)).sum();
    assert_eq!(summary.off_door_datastreams, town.datastream_count() - carried, "{summary:?}");
    let filled: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT datastream_id) FROM observations").fetch_one(&pool).await?;
    assert_eq!(filled, carried as i64, "every datastream the door carries has readings, no other");
    match door.device() {
        Some(Device::Lorawan) => assert_eq!(carried, 4 + 3 * 2 + 1, "counters, garages, gauge"),
        Some(Device::Airrohr) => {
            assert_eq!(carried, 3 * 4, "the air stations without NO2");
            assert_eq!(summary.backfill_readings, 0, "the firmware sends no time: no history");
        }
        None => assert_eq!(carried, 26),
    }

    // A second run: registration changes nothing; the new readings are stored once.
    let again = Simulator::new(config.clone())?.register().await?;
    assert_eq!((again.created, again.changed), (0, 0), "{again:?}");
    let config = SimulatorConfig { backfill_hours: 0, duration_secs: 1, ..config };
    let second = Simulator::new(config)?.run(CancellationToken::new()).await?;
    assert_eq!((second.unacked_messages, second.acked_messages), (0, second.messages()), "{second:?}");
    assert!(second.live_readings > 0, "{second:?}");
    let published = published + second.live_readings as i64;
    let stored = eventually(Duration::from_secs(60), "the second run's readings stored", || {
        let pool = pool.clone();
        async move {
            let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM observations").fetch_one(&pool).await?;
            Ok((stored >= published).then_some(stored))
        }
    })
    .await?;
    assert_eq!(stored, published, "once");
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters").fetch_one(&pool).await?;
    assert_eq!(dead, 0);

    // LoRaWAN: one active simulator connector per organisation; the first run's (whose secret is gone) disabled.
    if door.device() == Some(Device::Lorawan) {
        let connectors = platform.api.get_json("/v1/admin/connectors").await?;
        let connectors = connectors.as_array().context("the connector list")?;
        for org in [STADT, STADTWERKE] {
            let of_org: Vec<_> = connectors.iter().filter(|c| c["org"] == org).collect();
            assert_eq!(of_org.len(), 2, "{connectors:?}");
            assert_eq!(of_org.iter().filter(|c| c["disabled_at"].is_null()).count(), 1, "{connectors:?}");
        }
    }
    platform.stop().await
}

// The simulator's payloads as ingest reads them: its own decoder and checks, so
// that the two services agree on every format without depending on each other.

mod payloads_as_ingest_reads_them {
    use std::collections::HashMap;

    use chrono::{TimeZone, Utc};
    use hoheit_domain::topic::{TopicAddress, TopicScheme};
    use hoheit_domain::write::WriteTarget;
    use hoheit_domain::{DatastreamId, DatastreamKey, Micros, Unit};
    use hoheit_ingest::check::{self, Clock};
    use hoheit_ingest::decode::{self, JsonKind, Limits};
    use hoheit_simulator::payloads::{encode, senml_pack, Message, Tick, MAX_READINGS_PER_MESSAGE};
    use hoheit_store::registry::DatastreamRef;
    use hoheit_town::{Kind, Town};

    /// The registry as the simulator registers it: every datastream with its unit.
    fn registry(town: &Town) -> HashMap<DatastreamKey, DatastreamRef> {
        town.datastreams()
            .enumerate()
            .map(|(i, (thing, property))| {
                let key = DatastreamKey {
                    org: thing.org.clone(),
                    thing: thing.slug.clone(),
                    property: hoheit_domain::Slug::parse("property", property.slug).unwrap(),
                };
                let target = WriteTarget { org_id: 1, dataset_id: None, thing_id: i as i64 + 1 };
                (
                    key,
                    DatastreamRef {
                        id: DatastreamId(i as i64 + 1),
                        unit: Some(Unit::parse(property.unit).unwrap()),
                        target,
                        range: Default::default(),
                    },
                )
            })
            .collect()
    }

    /// Runs a message through ingest's own decoder and checks, as ingest
    /// would; returns the accepted (datastream, time, value) triples.
    fn ingest(
        scheme: &TopicScheme,
        registry: &HashMap<DatastreamKey, DatastreamRef>,
        message: &Message,
        now: Micros,
    ) -> Vec<(DatastreamId, i64, f64)> {
        let address = scheme.parse(&message.topic).unwrap_or_else(|e| panic!("{}: {e}", message.topic));
        let kind = match address {
            TopicAddress::Datastream { .. } => JsonKind::Plain,
            TopicAddress::Thing { .. } | TopicAddress::Org { .. } => JsonKind::Senml,
        };
        let decoded = decode::decode(&message.payload, kind, now, Limits::default())
            .unwrap_or_else(|e| panic!("{}: {e:?}", message.topic));
        assert!(decoded.rejections.is_empty(), "{}: {:?}", message.topic, decoded.rejections);
        assert!(decoded.readings.iter().all(|r| r.time.is_some()), "every reading carries its time");
        let clock = Clock { received: now, max_future_micros: 300_000_000 };
        let routed = check::route(
            &address,
            &decoded.readings,
            &Default::default(),
            clock,
            |key| registry.get(key).cloned(),
            |_| Ok(()),
        );
        assert!(routed.rejections.is_empty(), "{}: {:?}", message.topic, routed.rejections);
        assert_eq!(routed.accepted, message.readings);
        let mut out = Vec::new();
        for (id, (times, values)) in routed.batches {
            out.extend(times.into_iter().zip(values).map(|(t, v)| (id, t, v)));
        }
        out
    }

    #[test]
    fn every_format_passes_ingests_decoder_and_checks() {
        let town = Town::eberswalde(2).unwrap();
        let registry = registry(&town);
        let scheme = TopicScheme::new("t-1/hoheit/v1");
        // A live tick with microseconds, which SenML carries as a fraction of seconds.
        let time = Utc.timestamp_micros(1_764_064_812_345_678).unwrap();
        let now = Micros(time.timestamp_micros() + 1_000);
        for thing in &town.things {
            let tick = Tick::observe(thing, 42, time);
            let messages = encode(&scheme, thing, std::slice::from_ref(&tick)).unwrap();
            let accepted: Vec<_> = messages.iter().flat_map(|m| ingest(&scheme, &registry, m, now)).collect();
            assert_eq!(accepted.len(), thing.properties().len(), "{}", thing.slug);
            for (property, value) in thing.properties().iter().zip(&tick.values) {
                let key = DatastreamKey {
                    org: thing.org.clone(),
                    thing: thing.slug.clone(),
                    property: hoheit_domain::Slug::parse("property", property.slug).unwrap(),
                };
                let id = registry[&key].id;
                assert!(accepted.contains(&(id, time.timestamp_micros(), *value)), "{key}: {accepted:?}");
            }
            // Plain-JSON things have one property; the others put all of them in one message.
            assert_eq!(messages.len(), 1, "{}", thing.slug);
        }
    }

    #[test]
    fn backfill_batches_are_cut_and_decode_to_every_reading() {
        let town = Town::eberswalde(1).unwrap();
        let registry = registry(&town);
        let scheme = TopicScheme::default();
        let start = Utc.with_ymd_and_hms(2025, 11, 24, 0, 0, 0).unwrap();
        let now = Micros(start.timestamp_micros() + 8 * 86_400_000_000);
        for thing in &town.things {
            // A week at the natural step.
            let step = thing.kind().step_secs();
            let ticks: Vec<Tick> = (0..7 * 86_400 / step)
                .map(|i| Tick::observe(thing, 42, start + chrono::Duration::seconds(i * step)))
                .collect();
            let messages = encode(&scheme, thing, &ticks).unwrap();
            let total: usize = messages.iter().map(|m| m.readings).sum();
            assert_eq!(total, ticks.len() * thing.properties().len());
            assert!(
                messages.iter().all(|m| m.readings <= MAX_READINGS_PER_MESSAGE && m.payload.len() < 64 * 1024),
                "{}",
                thing.slug
            );
            let mut accepted: Vec<_> = messages.iter().flat_map(|m| ingest(&scheme, &registry, m, now)).collect();
            accepted.sort_by_key(|(id, t, _)| (*id, *t));
            accepted.dedup_by_key(|(id, t, _)| (*id, *t));
            assert_eq!(accepted.len(), total, "{}: no two readings of a datastream share a time", thing.slug);
        }
    }

    #[test]
    fn device_payloads_pass_ingests_decoders_with_every_reading_they_claim() {
        use hoheit_ingest::lorawan::{self, chirpstack, tts};
        use hoheit_simulator::uplinks::{airrohr_body, chirpstack_uplink, tts_uplink};
        use hoheit_town::Device;

        let town = Town::eberswalde(1).unwrap();
        // A live tick with microseconds: the uplinks carry it exactly.
        let time = Utc.timestamp_micros(1_764_064_812_345_678).unwrap();
        for thing in &town.things {
            let tick = Tick::observe(thing, 42, time);
            let expected: Vec<(String, f64)> =
                thing.properties().iter().map(|p| p.slug.to_owned()).zip(tick.values.iter().copied()).collect();
            match thing.device() {
                Device::Lorawan => {
                    let event = chirpstack::from_json(&chirpstack_uplink(thing, &tick).unwrap()).unwrap();
                    let up = tts::from_json(&tts_uplink(thing, &tick).unwrap()).unwrap().expect("an uplink");
                    for uplink in [event, up] {
                        assert_eq!(uplink.dev_eui, thing.external_id);
                        assert_eq!(uplink.time, Some(Micros(time.timestamp_micros())));
                        let decoded = lorawan::readings(&uplink);
                        assert!(decoded.rejections.is_empty(), "{}: {:?}", thing.slug, decoded.rejections);
                        let mut got: Vec<(String, f64)> = decoded
                            .readings
                            .iter()
                            .filter(|r| !r.optional)
                            .map(|r| (r.property.clone().unwrap_or_default(), r.value))
                            .collect();
                        got.sort_by(|a, b| a.0.cmp(&b.0));
                        let mut want = expected.clone();
                        want.sort_by(|a, b| a.0.cmp(&b.0));
                        assert_eq!(got, want, "{}", thing.slug);
                    }
                }
                Device::Airrohr => {
                    let (body, readings) = airrohr_body(thing, &tick).unwrap().expect("an air station's body");
                    let decoded = hoheit_ingest::airrohr::decode(&body, Limits::default());
                    assert!(decoded.rejections.is_empty(), "{}: {:?}", thing.slug, decoded.rejections);
                    assert_eq!(decoded.readings.len(), readings);
                    for reading in &decoded.readings {
                        let property = reading.property.as_deref().unwrap_or_default();
                        let (_, value) = expected.iter().find(|(p, _)| p == property).expect("a property of the thing");
                        let unit = thing.properties().iter().find(|p| p.slug == property).map(|p| p.unit);
                        assert_eq!(reading.unit.as_deref(), unit, "{property}: the registered unit");
                        assert!((reading.value - value).abs() <= 0.005, "{property}: two decimals of {value}");
                    }
                }
            }
        }
    }

    #[test]
    fn senml_times_round_trip_to_the_microsecond() {
        let properties = Kind::AirStation.properties();
        let now = Micros(1_900_000_000_000_000);
        for micros in [1_764_064_812_345_678_i64, 1_764_064_800_000_001, 1_764_064_899_999_999, 1_799_999_999_999_999] {
            let tick = Tick { time: Utc.timestamp_micros(micros).unwrap(), values: vec![1.0; 5] };
            let pack = senml_pack(properties, &[tick]).unwrap();
            let decoded = decode::decode(&pack, JsonKind::Senml, now, Limits::default()).unwrap();
            assert!(decoded.readings.iter().all(|r| r.time == Some(Micros(micros))), "{micros}: {decoded:?}");
        }
    }
}
