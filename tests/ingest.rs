//! Ingest against the real MQTT broker, Kafka-API broker and database: what
//! reaches Kafka, keyed per datastream; what becomes a dead letter; and that
//! messages published while ingest is down are delivered when it is back.

use std::time::Duration;

use hoheit_core::domain::{Slug, Unit};
use hoheit_core::registry::{self, NewDatastream, NewOrganisation, NewThing};
use hoheit_proto::v1::{DatastreamBatch, DeadLetter};
use hoheit_tests::{consume, start_ingest, Isolation, Publisher};
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
        &NewThing { org: slug(org), slug: slug(thing), name: thing.into(), latitude: None, longitude: None },
    )
    .await;
    let new = NewDatastream {
        org: slug(org),
        thing: slug(thing),
        property: slug(property),
        name: property.into(),
        unit: unit.map(|u| Unit::parse(u).unwrap()),
    };
    registry::create_datastream(pool, &new).await.unwrap().id.0
}

fn topics(isolation: &Isolation) -> hoheit_core::kafka::Topics {
    hoheit_core::kafka::KafkaArgs {
        bootstrap: hoheit_tests::kafka_bootstrap(),
        topic_prefix: isolation.kafka_prefix.clone(),
        partitions: 2,
        replication: 1,
    }
    .topics()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_readings_reach_kafka_keyed_by_datastream_and_rejects_become_dead_letters() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let no2 = register(&pool, "stadt", "luft-1", "no2", Some("ug/m3")).await;
    let temp = register(&pool, "stadt", "luft-1", "temp", Some("Cel")).await;
    let ingest = start_ingest(&isolation).await?;
    // Registered after ingest started: found through the cache-miss lookup.
    let late = register(&pool, "stadt", "pegel", "level", None).await;

    let scheme = hoheit_core::topic::TopicScheme::new(&isolation.topic_root);
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
            (format!("{}/stadt", isolation.topic_root), b"{}".to_vec()),
        ])
        .await?;

    let t = |s: i64| 1_795_132_800_000_000 + s * 1_000_000;
    let mut records = consume(&topics(&isolation).observations, 3, Duration::from_secs(30)).await?;
    records.sort();
    let decoded: Vec<(String, DatastreamBatch)> =
        records.iter().map(|(k, v)| (k.clone(), DatastreamBatch::decode(v.as_slice()).unwrap())).collect();
    let by_id = |id: i64| {
        decoded.iter().find(|(_, b)| b.datastream_id == id).unwrap_or_else(|| panic!("no record for datastream {id}"))
    };
    let (key, b) = by_id(no2);
    assert_eq!(key, &no2.to_string(), "keyed by datastream id, so a datastream stays in one partition");
    assert_eq!((b.time_unix_us.clone(), b.value.clone()), (vec![t(0), t(60)], vec![12.5, 13.5]));
    let (_, b) = by_id(temp);
    assert_eq!((b.time_unix_us.clone(), b.value.clone()), (vec![t(1)], vec![3.25]));
    let (_, b) = by_id(late);
    assert_eq!((b.time_unix_us.clone(), b.value.clone()), (vec![t(0)], vec![77.0]));

    let letters = consume(&topics(&isolation).dead_letters, 2, Duration::from_secs(30)).await?;
    let letters: Vec<DeadLetter> = letters.iter().map(|(_, v)| DeadLetter::decode(v.as_slice()).unwrap()).collect();
    let foreign = letters.iter().find(|l| l.org == "andere-stadt").expect("dead letter of the foreign org");
    assert_eq!(
        foreign.rejections[0].code, "unknown_datastream",
        "a topic of another org does not reach stadt's datastream"
    );
    assert_eq!(foreign.payload, br#"{"value": 1}"#);
    let bad_topic =
        letters.iter().find(|l| l.rejections[0].code == "invalid_topic").expect("dead letter of the bad topic");
    assert_eq!(bad_topic.mqtt_topic, format!("{}/stadt", isolation.topic_root));

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

    let scheme = hoheit_core::topic::TopicScheme::new(&isolation.topic_root);
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
    let records = consume(&topics(&isolation).observations, 200, Duration::from_secs(60)).await?;
    let mut values: Vec<f64> =
        records.iter().flat_map(|(_, v)| DatastreamBatch::decode(v.as_slice()).unwrap().value).collect();
    values.sort_by(f64::total_cmp);
    assert_eq!(values, (0..200).map(f64::from).collect::<Vec<_>>());
    assert!(records.iter().all(|(k, _)| k == &id.to_string()));
    ingest.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}
