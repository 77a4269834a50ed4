//! The writer against real Kafka and TimescaleDB: batches land once, poison
//! records become dead letters, offsets are committed after the database;
//! records arriving while a write is in flight are gathered for the next one,
//! at most `batch_readings` of them.

use std::time::Duration;

use hoheit_proto::v1::{DatastreamBatch, DeadLetter, ObservationRecord, Rejection};
use hoheit_tests::{eventually, produce, producer, start_writer, Isolation, Running};
use hoheit_writer::Writer;
use prost::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Offset;
use tokio_util::sync::CancellationToken;

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

fn segment(id: i64, start: i64, n: i64) -> DatastreamBatch {
    DatastreamBatch {
        datastream_id: id,
        time_unix_us: (start..start + n).map(|i| 1_795_132_800_000_000 + i * 1_000_000).collect(),
        value: (start..start + n).map(|i| i as f64).collect(),
        received_unix_us: 1_795_132_800_000_000,
        ..Default::default()
    }
}

/// A record of one datastream's readings.
fn batch(id: i64, start: i64, n: i64) -> (String, Vec<u8>) {
    (id.to_string(), ObservationRecord { batches: vec![segment(id, start, n)] }.encode_to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_written_once_and_poison_becomes_a_dead_letter() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let writer = start_writer(&isolation).await?;
    let topics = hoheit_kafka::KafkaArgs {
        bootstrap: hoheit_tests::kafka_bootstrap(),
        topic_prefix: isolation.kafka_prefix.clone(),
        partitions: 2,
        replication: 1,
    }
    .topics();
    let producer = producer()?;

    // 3 datastreams × 2,000 readings (the first half in records of one
    // datastream, the second in records that hold all three, as ingest gathers
    // them), then the first 500 of one again (a redelivery).
    let mut records: Vec<_> = (0..10).flat_map(|chunk| (1..=3).map(move |id| batch(id, chunk * 100, 100))).collect();
    records.extend((10..20).map(|chunk| {
        let batches = (1..=3).map(|id| segment(id, chunk * 100, 100)).collect();
        (format!("all-{chunk}"), ObservationRecord { batches }.encode_to_vec())
    }));
    records.push(batch(2, 0, 500));
    // A record of the format before ingest gathered messages (a bare batch), as
    // an upgrade finds it in Kafka: still stored.
    records.push(("4".into(), segment(4, 0, 50).encode_to_vec()));
    records.push(("poison".into(), b"\x08\x01\x12\xff definitely not a batch".to_vec()));
    produce(&producer, &topics.observations, &records).await?;
    let letter = DeadLetter {
        org: "stadt".into(),
        mqtt_topic: "hoheit/v1/stadt/x".into(),
        payload: b"{oops".to_vec(),
        received_unix_us: 1_795_132_800_000_000,
        rejections: vec![Rejection {
            reading_index: -1,
            code: "malformed_payload".into(),
            reason: "payload is not valid JSON".into(),
        }],
        ..Default::default()
    };
    produce(&producer, &topics.dead_letters, &[("stadt".into(), letter.encode_to_vec())]).await?;

    eventually(Duration::from_secs(60), "6,050 rows and 2 dead letters", || {
        let pool = pool.clone();
        async move {
            let rows = count(&pool, "SELECT count(*) FROM observations").await;
            let letters = count(&pool, "SELECT count(*) FROM dead_letters").await;
            Ok((rows >= 6_050 && letters >= 2).then_some(()))
        }
    })
    .await?;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM observations").await,
        6_050,
        "the redelivered 500 are not duplicated"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM observations WHERE datastream_id = 4").await,
        50,
        "the old-format record"
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM observations WHERE datastream_id = 2 AND value = 499").await, 1);
    let poison: String = sqlx::query_scalar("SELECT reason_code FROM dead_letters WHERE source_topic = $1")
        .bind(&topics.observations)
        .fetch_one(&pool)
        .await?;
    assert_eq!(poison, "undecodable_record");
    let (org, payload, reason): (String, Vec<u8>, String) =
        sqlx::query_as("SELECT org, payload, reason FROM dead_letters WHERE source_topic = $1")
            .bind(&topics.dead_letters)
            .fetch_one(&pool)
            .await?;
    assert_eq!(org, "stadt");
    assert_eq!(payload, b"{oops");
    assert_eq!(reason, "payload is not valid JSON");

    writer.stop().await?;

    // Offsets were committed: the group's committed position is the end of each partition.
    let group = format!("writer-{}", isolation.id);
    let probe: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", hoheit_tests::kafka_bootstrap())
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut list = rdkafka::TopicPartitionList::new();
    for partition in 0..2 {
        list.add_partition(&topics.observations, partition);
    }
    let committed = probe.committed_offsets(list, Duration::from_secs(10))?;
    let mut committed_total = 0;
    for element in committed.elements() {
        let (_, high) = probe.fetch_watermarks(&topics.observations, element.partition(), Duration::from_secs(10))?;
        match element.offset() {
            Offset::Offset(o) => {
                assert_eq!(o, high, "partition {} committed up to its end", element.partition());
                committed_total += o;
            }
            other => assert_eq!(high, 0, "partition {} has data but offset {other:?}", element.partition()),
        }
    }
    assert_eq!(committed_total as usize, records.len());

    // A restarted writer in the same group resumes after the commit and writes only new data.
    let writer = start_writer(&isolation).await?;
    produce(&producer, &topics.observations, &[batch(1, 5_000, 10)]).await?;
    eventually(Duration::from_secs(60), "the 10 new rows", || {
        let pool = pool.clone();
        async move { Ok((count(&pool, "SELECT count(*) FROM observations").await == 6_060).then_some(())) }
    })
    .await?;
    writer.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

/// A counter or histogram sum of the writer's `/metrics` (0 when absent).
async fn metric(writer: &Running, name: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{}/metrics", writer.ops_url)).await?.text().await?;
    Ok(text
        .lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse())
        .transpose()?
        .unwrap_or(0.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_arriving_during_a_write_are_gathered_for_the_next_up_to_batch_readings() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let mut config = isolation.writer_config();
    config.batch_readings = 250;
    let writer = Writer::build(config).await?;
    let ops_url = format!("http://{}", writer.ops_addr());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(writer.run(shutdown.clone()));
    let writer = Running { shutdown, task, ops_url, doors_url: String::new() };
    writer.wait_ready(Duration::from_secs(60)).await?;
    let topics = hoheit_kafka::KafkaArgs {
        bootstrap: hoheit_tests::kafka_bootstrap(),
        topic_prefix: isolation.kafka_prefix.clone(),
        partitions: 2,
        replication: 1,
    }
    .topics();
    let producer = producer()?;

    // The table locked: the writer's first write (of the first record) waits.
    let mut lock = pool.begin().await?;
    sqlx::query("LOCK TABLE observations IN SHARE MODE").execute(&mut *lock).await?;
    produce(&producer, &topics.observations, &[batch(1, 0, 100)]).await?;
    eventually(Duration::from_secs(60), "the first write waiting for the lock", || {
        let pool = pool.clone();
        async move {
            let waiting = count(
                &pool,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .await;
            Ok((waiting > 0).then_some(()))
        }
    })
    .await?;
    // Ten more records of 100 readings while it waits: gathered at most 250
    // readings (3 records) at a time, so they need at least 4 more writes.
    let records: Vec<_> = (1..=10).map(|i| batch(1 + i % 3, i * 100, 100)).collect();
    produce(&producer, &topics.observations, &records).await?;
    assert_eq!(metric(&writer, "hoheit_writer_batches_total").await?, 0.0, "nothing written while locked");
    lock.rollback().await?;

    eventually(Duration::from_secs(60), "1,100 readings stored", || {
        let pool = pool.clone();
        async move { Ok((count(&pool, "SELECT count(*) FROM observations").await == 1_100).then_some(())) }
    })
    .await?;
    let batches = metric(&writer, "hoheit_writer_batches_total").await?;
    let records_per_batch = metric(&writer, "hoheit_writer_batch_records_sum").await? / batches;
    assert!(batches >= 5.0, "the first write and at least 4 of at most 3 records each: {batches}");
    assert!(records_per_batch <= 3.0, "{records_per_batch} records per batch");
    assert_eq!(metric(&writer, "hoheit_writer_batch_records_sum").await?, 11.0, "every record written once");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM datastream_latest").await,
        0,
        "no latest rows for unregistered datastreams"
    );

    writer.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}
