//! Ingest against the real MQTT broker, Kafka-API broker and database: what
//! reaches Kafka, each datastream in its own partition and several messages
//! per record; what becomes a dead letter; and that messages published while
//! ingest is down are delivered when it is back.

use std::time::Duration;

use hoheit_domain::{Slug, Unit};
use hoheit_kafka::partition_of;
use hoheit_proto::v1::{DatastreamBatch, DeadLetter, ObservationRecord};
use hoheit_store::registry::{self, NewDatastream, NewOrganisation, NewThing};
use hoheit_tests::{consume, consume_until, start_ingest, Consumed, Isolation, Publisher};
use prost::Message;

fn slug(s: &str) -> Slug {
    Slug::parse("test", s).unwrap()
}

async fn register(pool: &sqlx::PgPool, org: &str, thing: &str, property: &str, unit: Option<&str>) -> i64 {
    let _ = registry::create_organisation(
        pool,
        &NewOrganisation { slug: slug(org), name: org.into(), kind: None, parent: None },
    )
    .await;
    let _ = registry::create_thing(
        pool,
        &NewThing {
            org: slug(org),
            slug: slug(thing),
            name: thing.into(),
            latitude: None,
            longitude: None,
            external_id: None,
            device_type: None,
        },
    )
    .await;
    let new = NewDatastream {
        org: slug(org),
        thing: slug(thing),
        property: slug(property),
        name: property.into(),
        unit: unit.map(|u| Unit::parse(u).unwrap()),
        min: None,
        max: None,
    };
    registry::create_datastream(pool, &new).await.unwrap().id.0
}

/// The partitions ingest creates the test topics with (`Isolation::ingest_config`).
const PARTITIONS: i32 = 2;

/// The datastream batches of observation records, with their record's partition.
fn batches(records: &[Consumed]) -> Vec<(i32, DatastreamBatch)> {
    records
        .iter()
        .flat_map(|r| {
            let record = ObservationRecord::decode(r.payload.as_slice()).expect("an ObservationRecord");
            record.batches.into_iter().map(|b| (r.partition, b))
        })
        .collect()
}

fn readings(records: &[Consumed]) -> usize {
    batches(records).iter().map(|(_, b)| b.value.len()).sum()
}

fn topics(isolation: &Isolation) -> hoheit_kafka::Topics {
    hoheit_kafka::KafkaArgs {
        bootstrap: hoheit_tests::kafka_bootstrap(),
        topic_prefix: isolation.kafka_prefix.clone(),
        partitions: 2,
        replication: 1,
    }
    .topics()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_readings_reach_kafka_in_their_datastreams_partition_and_rejects_become_dead_letters(
) -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let no2 = register(&pool, "stadt", "luft-1", "no2", Some("ug/m3")).await;
    let temp = register(&pool, "stadt", "luft-1", "temp", Some("Cel")).await;
    let ingest = start_ingest(&isolation).await?;
    // Registered after ingest started: found through the cache-miss lookup.
    let late = register(&pool, "stadt", "pegel", "level", None).await;

    let scheme = hoheit_domain::topic::TopicScheme::new(&isolation.topic_root);
    let senml = br#"[{"bt": 1795132800, "n": "no2", "u": "ug/m3", "v": 12.5}, {"n": "temp", "v": 3.25, "t": 1}, {"n": "no2", "v": 13.5, "t": 60}]"#;
    let mut publisher = Publisher::connect("ingest").await?;
    publisher
        .publish_all(vec![
            (scheme.thing_topic(&slug("stadt"), &slug("luft-1")), senml.to_vec()),
            (
                scheme.datastream_topic(&slug("stadt"), &slug("pegel"), &slug("level")),
                br#"{"time": "2026-11-20T00:00:00Z", "value": 77}"#.to_vec(),
            ),
            (
                scheme.datastream_topic(&slug("andere-stadt"), &slug("luft-1"), &slug("no2")),
                br#"{"value": 1}"#.to_vec(),
            ),
            (format!("{}/stadt/luft-1/no2/extra", isolation.topic_root), b"{}".to_vec()),
        ])
        .await?;

    let t = |s: i64| 1_795_132_800_000_000 + s * 1_000_000;
    let records =
        consume_until(&topics(&isolation).observations, Duration::from_secs(30), |r| readings(r) >= 4).await?;
    let decoded = batches(&records);
    assert_eq!(decoded.len(), 3, "one batch per datastream of each message: {decoded:?}");
    assert!(records.iter().all(|r| r.key.is_none()), "observation records have no key");
    let by_id = |id: i64| {
        let (partition, b) = decoded
            .iter()
            .find(|(_, b)| b.datastream_id == id)
            .unwrap_or_else(|| panic!("no batch of datastream {id}"));
        assert_eq!(
            *partition,
            partition_of(id, PARTITIONS),
            "datastream {id} in its own partition, so it stays ordered"
        );
        b
    };
    let b = by_id(no2);
    assert_eq!((b.time_unix_us.clone(), b.value.clone()), (vec![t(0), t(60)], vec![12.5, 13.5]));
    let b = by_id(temp);
    assert_eq!((b.time_unix_us.clone(), b.value.clone()), (vec![t(1)], vec![3.25]));
    let b = by_id(late);
    assert_eq!((b.time_unix_us.clone(), b.value.clone()), (vec![t(0)], vec![77.0]));

    let letters = consume(&topics(&isolation).dead_letters, 2, Duration::from_secs(30)).await?;
    let letters: Vec<DeadLetter> = letters
        .iter()
        .map(|l| {
            let letter = DeadLetter::decode(l.payload.as_slice()).unwrap();
            assert_eq!(l.key.as_deref(), Some(letter.org.as_str()), "a dead letter is keyed by its organisation");
            letter
        })
        .collect();
    let foreign = letters.iter().find(|l| l.org == "andere-stadt").expect("dead letter of the foreign org");
    assert_eq!(
        foreign.rejections[0].code, "unknown_datastream",
        "a topic of another org does not reach stadt's datastream"
    );
    assert_eq!(foreign.payload, br#"{"value": 1}"#);
    let bad_topic =
        letters.iter().find(|l| l.rejections[0].code == "invalid_topic").expect("dead letter of the bad topic");
    assert_eq!(bad_topic.mqtt_topic, format!("{}/stadt/luft-1/no2/extra", isolation.topic_root));

    ingest.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_published_while_ingest_is_down_are_delivered_after_restart() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let id = register(&pool, "stadt", "zaehler", "vehicles", None).await;
    // First start creates the persistent session and its subscription.
    start_ingest(&isolation).await?.stop().await?;

    let scheme = hoheit_domain::topic::TopicScheme::new(&isolation.topic_root);
    let topic = scheme.datastream_topic(&slug("stadt"), &slug("zaehler"), &slug("vehicles"));
    let messages: Vec<_> = (0..200)
        .map(|i| {
            (
                topic.clone(),
                format!(r#"{{"time": "2026-11-20T00:{:02}:{:02}Z", "value": {i}}}"#, i / 60, i % 60).into_bytes(),
            )
        })
        .collect();
    Publisher::connect("offline").await?.publish_all(messages).await?;

    let ingest = start_ingest(&isolation).await?;
    let records =
        consume_until(&topics(&isolation).observations, Duration::from_secs(60), |r| readings(r) >= 200).await?;
    let decoded = batches(&records);
    let values: Vec<f64> = decoded.iter().flat_map(|(_, b)| b.value.clone()).collect();
    assert_eq!(values, (0..200).map(f64::from).collect::<Vec<_>>(), "every reading once, in publish order");
    assert!(decoded.iter().all(|(p, b)| b.datastream_id == id && *p == partition_of(id, PARTITIONS)));
    assert!(
        records.len() < 200,
        "a backlog of single-reading messages shares records ({} records for 200 messages)",
        records.len()
    );
    ingest.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}
