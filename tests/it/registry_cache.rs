//! Ingest's registry snapshot against the real database, broker and Kafka:
//! every registered datastream, including slugs whose order differs between
//! collations, is answered from the snapshot (by key and, for SensorThings'
//! MQTT create, by id) without a single lookup in the database; a datastream
//! registered after the snapshot is looked up once and accepted.

use std::time::Duration;

use hoheit_proto::v1::ObservationRecord;
use hoheit_tests::{consume_until, eventually, start_ingest, Consumed, Isolation, Publisher};
use prost::Message;

/// 2026-11-20T00:00:00Z.
const T0: &str = "2026-11-20T00:00:00Z";

/// Things and datastreams enough to need a real search; with slugs that
/// sort differently in byte order and in a natural-language collation.
const TRICKY: [(&str, &str, &str); 7] = [
    ("stadt", "a-1", "p"),
    ("stadt", "a-1", "p-x"),
    ("stadt", "a-1", "p_x"),
    ("stadt", "a1", "px"),
    ("stadt", "a_1", "p"),
    ("stadt-werke", "b", "p"),
    ("stadtwerke", "b", "p"),
];

async fn register(pool: &sqlx::PgPool) -> anyhow::Result<Vec<i64>> {
    sqlx::query(
        "INSERT INTO organisations (slug, name) VALUES ('stadt', 'Stadt'), ('stadt-werke', 'SW'), ('stadtwerke', 'S')",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO things (org_id, slug, name)
         SELECT o.id, 'sensor-' || n, 'Sensor ' || n FROM organisations o, generate_series(1, 400) n
         WHERE o.slug = 'stadt'",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO datastreams (thing_id, property, name)
         SELECT t.id, p, p FROM things t, unnest(ARRAY['no2', 'pm10', 'temp']) p",
    )
    .execute(pool)
    .await?;
    let mut ids = Vec::new();
    for (org, thing, property) in TRICKY {
        let id: i64 = sqlx::query_scalar(
            "WITH t AS (
                INSERT INTO things (org_id, slug, name) SELECT id, $2, $2 FROM organisations WHERE slug = $1
                ON CONFLICT (org_id, slug) DO UPDATE SET name = excluded.name RETURNING id
             )
             INSERT INTO datastreams (thing_id, property, name, unit) SELECT id, $3, $3, 'Cel' FROM t RETURNING id",
        )
        .bind(org)
        .bind(thing)
        .bind(property)
        .fetch_one(pool)
        .await?;
        ids.push(id);
    }
    Ok(ids)
}

/// The sum of every series of `name` on ingest's `/metrics` (0 if absent).
async fn metric(ops_url: &str, name: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{ops_url}/metrics")).await?.text().await?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{')))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// Datastream id and value of every reading in `records`.
fn readings(records: &[Consumed]) -> Vec<(i64, f64)> {
    records
        .iter()
        .flat_map(|r| ObservationRecord::decode(r.payload.as_slice()).expect("an ObservationRecord").batches)
        .flat_map(|b| b.value.into_iter().map(move |v| (b.datastream_id, v)))
        .collect()
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
async fn registered_datastreams_are_answered_from_the_snapshot_and_new_ones_looked_up_once() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let ids = register(&pool).await?;
    let registered: i64 = sqlx::query_scalar("SELECT count(*) FROM datastreams").fetch_one(&pool).await?;
    let ingest = start_ingest(&isolation).await?;
    let ops = ingest.ops_url.clone();
    eventually(Duration::from_secs(30), "the registry snapshot", || {
        let ops = ops.clone();
        async move { Ok((metric(&ops, "hoheit_ingest_registry_datastreams").await? == registered as f64).then_some(())) }
    })
    .await?;

    // One reading to each tricky datastream by topic, one by SensorThings' MQTT create topic (by id).
    let mut messages: Vec<(String, Vec<u8>)> = TRICKY
        .iter()
        .enumerate()
        .map(|(i, (org, thing, property))| {
            (
                format!("{}/{org}/{thing}/{property}", isolation.topic_root),
                format!(r#"{{"time": "{T0}", "value": {i}}}"#).into_bytes(),
            )
        })
        .collect();
    messages.push((
        format!("{}/Datastreams({})/Observations", isolation.sta_mqtt_prefix(), ids[3]),
        br#"{"result": 99, "phenomenonTime": "2026-11-20T00:01:00Z"}"#.to_vec(),
    ));
    let mut publisher = Publisher::connect("registry-cache").await?;
    publisher.publish_all(messages).await?;
    let observations = topics(&isolation).observations;
    let records = consume_until(&observations, Duration::from_secs(30), |r| readings(r).len() >= 8).await?;
    let mut got = readings(&records);
    got.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut expected: Vec<(i64, f64)> = ids.iter().enumerate().map(|(i, id)| (*id, i as f64)).collect();
    expected.push((ids[3], 99.0));
    assert_eq!(got, expected, "each reading in its own datastream");
    assert_eq!(
        metric(&ops, "hoheit_ingest_registry_lookups_total").await?,
        0.0,
        "every registered datastream answered from the snapshot, none from the database"
    );

    // Registered after the snapshot: looked up once, then answered from memory.
    let late: i64 = sqlx::query_scalar(
        "INSERT INTO datastreams (thing_id, property, name, unit)
         SELECT t.id, 'late', 'late', 'hPa' FROM things t WHERE t.slug = 'a1' RETURNING id",
    )
    .fetch_one(&pool)
    .await?;
    let topic = format!("{}/stadt/a1/late", isolation.topic_root);
    publisher.publish_all(vec![(topic.clone(), br#"{"time": "2026-11-20T00:02:00Z", "value": 100}"#.to_vec())]).await?;
    publisher.publish_all(vec![(topic, br#"{"time": "2026-11-20T00:03:00Z", "value": 101}"#.to_vec())]).await?;
    let records = consume_until(&observations, Duration::from_secs(30), |r| readings(r).len() >= 10).await?;
    let late_readings: Vec<_> = readings(&records).into_iter().filter(|(id, _)| *id == late).collect();
    assert_eq!(late_readings, [(late, 100.0), (late, 101.0)]);
    assert_eq!(metric(&ops, "hoheit_ingest_registry_lookups_total").await?, 1.0, "one lookup for the new key");

    ingest.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}
