//! End to end: a real MQTT client publishes readings in all three formats;
//! they come back through the API exactly, and malformed input is visible as
//! dead letters with reasons.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use hoheit_domain::topic::TopicScheme;
use hoheit_domain::Slug;
use hoheit_proto::v1::{ObservationBatch, SensorReading};
use hoheit_tests::{eventually, ApiClient, Platform, Publisher};
use prost::Message;
use serde_json::json;

/// 2026-11-20T00:00:00Z in microseconds: safely in the past.
const T0: i64 = 1_795_132_800_000_000;

fn rfc3339(micros: i64) -> String {
    Utc.timestamp_micros(micros).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn slug(s: &str) -> Slug {
    Slug::parse("test", s).unwrap()
}

const ORG: &str = "stadtwerke";

/// The datastreams the readings go to, one or two per format.
struct Streams {
    vehicles: i64,
    level: i64,
    no2: i64,
    temp: i64,
    pm10: i64,
}

impl Streams {
    async fn register(api: &ApiClient) -> anyhow::Result<Self> {
        Ok(Self {
            vehicles: api.register(ORG, "zaehler-1", "vehicles", Some("count")).await?,
            level: api.register(ORG, "pegel-finow", "level", Some("cm")).await?,
            no2: api.register(ORG, "luft-1", "no2", Some("ug/m3")).await?,
            temp: api.register(ORG, "luft-1", "temp", Some("Cel")).await?,
            pm10: api.register(ORG, "luft-2", "pm10", Some("ug/m3")).await?,
        })
    }
}

/// The messages to publish, and the readings each datastream must then hold.
#[derive(Default)]
struct Traffic {
    messages: Vec<(String, Vec<u8>)>,
    expected: BTreeMap<i64, Vec<(i64, f64)>>,
}

/// Plain JSON, one reading per message, on the datastream topic.
fn plain_json(scheme: &TopicScheme, streams: &Streams, traffic: &mut Traffic) {
    let topic = scheme.datastream_topic(&slug(ORG), &slug("zaehler-1"), &slug("vehicles"));
    for i in 0..500i64 {
        let t = T0 + i * 300_000_000 + 123_456;
        let v = (i % 97) as f64;
        traffic.messages.push((topic.clone(), json!({"time": rfc3339(t), "value": v}).to_string().into_bytes()));
        traffic.expected.entry(streams.vehicles).or_default().push((t, v));
    }
}

/// Plain JSON arrays, with units, on the datastream topic.
fn plain_json_arrays(scheme: &TopicScheme, streams: &Streams, traffic: &mut Traffic) -> anyhow::Result<()> {
    let topic = scheme.datastream_topic(&slug(ORG), &slug("pegel-finow"), &slug("level"));
    for m in 0..20i64 {
        let readings: Vec<_> = (0..50i64)
            .map(|k| {
                let t = T0 + (m * 50 + k) * 60_000_000 + 7;
                let v = 120.0 + (m * 50 + k) as f64 * 0.01;
                traffic.expected.entry(streams.level).or_default().push((t, v));
                json!({"time": rfc3339(t), "value": v, "unit": "cm"})
            })
            .collect();
        traffic.messages.push((topic.clone(), serde_json::to_vec(&readings)?));
    }
    Ok(())
}

/// SenML packs on the thing topic: base time in seconds, relative offsets, base units.
fn senml_packs(scheme: &TopicScheme, streams: &Streams, traffic: &mut Traffic) -> anyhow::Result<()> {
    let topic = scheme.thing_topic(&slug(ORG), &slug("luft-1"));
    for m in 0..50i64 {
        let base_seconds = T0 / 1_000_000 + m * 3600;
        let mut pack = vec![json!({"bn": "", "bt": base_seconds, "bu": "ug/m3", "bver": 10})];
        for k in 0..10i64 {
            let v = 10.0 + (m * 10 + k) as f64 * 0.5;
            pack.push(json!({"n": "no2", "t": k * 60, "v": v}));
            traffic.expected.entry(streams.no2).or_default().push(((base_seconds + k * 60) * 1_000_000, v));
            let c = -5.25 + (m * 10 + k) as f64 * 0.125;
            pack.push(json!({"n": "temp", "u": "Cel", "t": k * 60 + 30, "v": c}));
            traffic.expected.entry(streams.temp).or_default().push(((base_seconds + k * 60 + 30) * 1_000_000, c));
        }
        traffic.messages.push((topic.clone(), serde_json::to_vec(&pack)?));
    }
    Ok(())
}

/// Protobuf `ObservationBatch`es on the thing topic.
fn protobuf_batches(scheme: &TopicScheme, streams: &Streams, traffic: &mut Traffic) {
    let topic = scheme.thing_topic(&slug(ORG), &slug("luft-2"));
    for m in 0..20i64 {
        let readings = (0..50i64)
            .map(|k| {
                let t = T0 + (m * 50 + k) * 30_000_000 + 999_999;
                let v = (m * 50 + k) as f64 / 3.0;
                traffic.expected.entry(streams.pm10).or_default().push((t, v));
                SensorReading { property: "pm10".into(), time_unix_us: Some(t), value: v, unit: "ug/m3".into() }
            })
            .collect();
        traffic.messages.push((topic.clone(), ObservationBatch { readings }.encode_to_vec()));
    }
}

/// Bad input: malformed JSON, an unknown datastream, a wrong unit inside a good pack (whose good reading is stored).
fn bad_input(scheme: &TopicScheme, streams: &Streams, traffic: &mut Traffic) -> anyhow::Result<()> {
    let bad_topic = scheme.datastream_topic(&slug(ORG), &slug("zaehler-1"), &slug("vehicles"));
    traffic.messages.push((bad_topic, br#"{"time": "2026-11-25T10:00:00Z", "value": "#.to_vec()));
    let unknown_topic = scheme.datastream_topic(&slug(ORG), &slug("zaehler-1"), &slug("bicycles"));
    traffic.messages.push((unknown_topic, br#"{"value": 3}"#.to_vec()));
    let mixed_topic = scheme.thing_topic(&slug(ORG), &slug("luft-1"));
    let good_t = T0 + 100 * 3_600_000_000 + 17_000_000;
    traffic.messages.push((mixed_topic, serde_json::to_vec(&json!([{"bt": good_t / 1_000_000, "n": "no2", "u": "ug/m3", "v": 1.5}, {"n": "temp", "u": "K", "v": 280.0}]))?));
    traffic.expected.entry(streams.no2).or_default().push((good_t, 1.5));

    Ok(())
}

/// Waits until every datastream holds what was published, then compares reading by reading.
async fn assert_stored_exactly(api: &ApiClient, mut expected: BTreeMap<i64, Vec<(i64, f64)>>) -> anyhow::Result<()> {
    // 30 days: within the API's longest raw range (31 days); the readings span about 100 hours.
    let (from, to) = (rfc3339(T0 - 1), rfc3339(T0 + 30 * 86_400_000_000));
    for (id, readings) in &mut expected {
        readings.sort_by_key(|(t, _)| *t);
        let stored = eventually(
            Duration::from_secs(60),
            &format!("datastream {id} to hold {} readings", readings.len()),
            || {
                let api = api.clone();
                let (from, to, want) = (from.clone(), to.clone(), readings.len());
                let id = *id;
                async move {
                    let got = api.all_observations(id, &from, &to, 700).await?;
                    Ok((got.len() >= want).then_some(got))
                }
            },
        )
        .await?;
        let stored: Vec<(i64, f64)> = stored
            .iter()
            .map(|(time, value)| (DateTime::parse_from_rfc3339(time).unwrap().timestamp_micros(), *value))
            .collect();
        assert_eq!(stored.len(), readings.len(), "datastream {id}: every reading once");
        if let Some(i) = (0..stored.len()).find(|&i| stored[i] != readings[i]) {
            panic!("datastream {id}: reading {i} stored as {:?}, published as {:?}", stored[i], readings[i]);
        }
    }
    Ok(())
}

/// The three bad messages are dead letters, each with its reason.
async fn assert_dead_letters_with_reasons(api: &ApiClient) -> anyhow::Result<()> {
    let letters = eventually(Duration::from_secs(30), "three dead letters", || {
        let api = api.clone();
        async move {
            let body = api.get_json("/v1/dead-letters?org=stadtwerke").await?;
            let letters = body["dead_letters"].as_array().cloned().unwrap_or_default();
            Ok((letters.len() >= 3).then_some(letters))
        }
    })
    .await?;
    let mut codes: Vec<&str> = letters.iter().map(|l| l["reason_code"].as_str().unwrap_or_default()).collect();
    codes.sort();
    assert_eq!(codes, vec!["malformed_payload", "unit_mismatch", "unknown_datastream"]);
    let malformed = letters.iter().find(|l| l["reason_code"] == "malformed_payload").unwrap();
    assert!(malformed["reason"].as_str().unwrap().contains("not valid JSON"), "{malformed}");
    assert_eq!(malformed["payload_text"], r#"{"time": "2026-11-25T10:00:00Z", "value": "#);
    let unit = letters.iter().find(|l| l["reason_code"] == "unit_mismatch").unwrap();
    assert_eq!(unit["rejections"][0]["reading_index"], 1, "the second record of the pack was the wrong one");
    let unknown = letters.iter().find(|l| l["reason_code"] == "unknown_datastream").unwrap();
    assert!(unknown["reason"].as_str().unwrap().contains("stadtwerke/zaehler-1/bicycles"), "{unknown}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_in_every_format_are_stored_exactly_and_bad_input_becomes_dead_letters() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    let streams = Streams::register(&api).await?;
    let scheme = &platform.scheme;
    let mut traffic = Traffic::default();
    plain_json(scheme, &streams, &mut traffic);
    plain_json_arrays(scheme, &streams, &mut traffic)?;
    senml_packs(scheme, &streams, &mut traffic)?;
    protobuf_batches(scheme, &streams, &mut traffic);
    bad_input(scheme, &streams, &mut traffic)?;
    let total: usize = traffic.expected.values().map(Vec::len).sum();
    assert!(total >= 3000, "a few thousand readings: {total}");
    let mut publisher = Publisher::connect("e2e").await?;
    publisher.publish_all(traffic.messages).await?;

    assert_stored_exactly(&api, traffic.expected).await?;
    assert_dead_letters_with_reasons(&api).await?;

    // Aggregates agree with the raw readings.
    let (from, to) = (rfc3339(T0 - 1), rfc3339(T0 + 30 * 86_400_000_000));
    let body = api
        .get_json(&format!("/v1/datastreams/{}/aggregates?from={from}&to={to}&interval=1d", streams.vehicles))
        .await?;
    let count: i64 = body["buckets"].as_array().unwrap().iter().map(|b| b["count"].as_i64().unwrap()).sum();
    assert_eq!(count, 500);

    platform.stop().await
}
