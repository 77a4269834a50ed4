//! The Prometheus metrics of ingest and writer after real traffic, scraped
//! from their `/metrics` endpoints: readings in, out and rejected by reason,
//! Kafka records confirmed, message latency, batch sizes, write latency, and
//! the writer's Kafka consumer lag, which counts the records not yet in the
//! database: it rises while a writer holds records it has not committed and
//! falls to zero once they are written.
//!
//! The metrics recorder is process-wide, so this file holds one test (nextest
//! runs each test in a process of its own) and its counts are exact.

use std::collections::BTreeMap;
use std::time::Duration;

use hoheit_domain::Slug;
use hoheit_tests::{eventually, start_api, start_ingest, Isolation, Publisher, Running};
use hoheit_writer::Writer;
use tokio_util::sync::CancellationToken;

/// One sample of the Prometheus text format.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text exposition format (comments skipped).
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                    let labels = body
                        .split("\",")
                        .filter(|pair| !pair.is_empty())
                        .map(|pair| {
                            let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("bad label in {line:?}"));
                            (k.to_owned(), v.trim_matches('"').to_owned())
                        })
                        .collect();
                    (name.to_owned(), labels)
                }
                None => (series.to_owned(), BTreeMap::new()),
            };
            Sample { name, labels, value: value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")) }
        })
        .collect()
}

async fn scrape(ops_url: &str) -> anyhow::Result<Vec<Sample>> {
    let response = reqwest::get(format!("{ops_url}/metrics")).await?;
    anyhow::ensure!(response.status().is_success(), "GET /metrics: {}", response.status());
    Ok(parse(&response.text().await?))
}

/// The value of the series `name` with (at least) `labels`, summed over the rest.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// The writer's lag per partition of `topic`.
fn lag(samples: &[Sample], topic: &str) -> BTreeMap<String, f64> {
    samples
        .iter()
        .filter(|s| {
            s.name == "hoheit_writer_kafka_consumer_lag" && s.labels.get("topic").map(String::as_str) == Some(topic)
        })
        .map(|s| (s.labels.get("partition").cloned().unwrap_or_default(), s.value))
        .collect()
}

async fn start_writer(isolation: &Isolation) -> anyhow::Result<Running> {
    let mut config = isolation.writer_config();
    config.stats_interval_ms = 200;
    let writer = Writer::build(config).await?;
    let ops_url = format!("http://{}", writer.ops_addr());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(writer.run(shutdown.clone()));
    let running = Running { shutdown, task, ops_url, doors_url: String::new() };
    running.wait_ready(Duration::from_secs(60)).await?;
    Ok(running)
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_writer_expose_flow_rejections_batches_and_consumer_lag() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let (api, client) = start_api(&isolation).await?;
    client.register("stadtwerke", "pegel-1", "level", Some("cm")).await?;
    let ingest = start_ingest(&isolation).await?;
    let writer = start_writer(&isolation).await?;
    let observations = format!("{}.observations", isolation.kafka_prefix);

    let scheme = hoheit_domain::topic::TopicScheme::new(&isolation.topic_root);
    let slug = |s: &str| Slug::parse("test", s).unwrap();
    let level = scheme.datastream_topic(&slug("stadtwerke"), &slug("pegel-1"), &slug("level"));
    let unknown = scheme.datastream_topic(&slug("stadtwerke"), &slug("unbekannt"), &slug("level"));
    let reading = |minute: u32, unit: &str| {
        format!(r#"{{"time": "2026-11-20T10:{minute:02}:00Z", "value": 120.5, "unit": "{unit}"}}"#).into_bytes()
    };
    let mut messages: Vec<(String, Vec<u8>)> = (0..5).map(|m| (level.clone(), reading(m, "cm"))).collect();
    messages.push((level.clone(), reading(10, "m"))); // unit_mismatch
    messages.push((unknown.clone(), reading(11, "cm"))); // unknown_datastream
    messages.push((level.clone(), b"{oops".to_vec())); // malformed_payload
    let mut publisher = Publisher::connect("metrics").await?;
    publisher.publish_all(messages).await?;
    eventually(Duration::from_secs(60), "5 readings and 3 dead letters", || {
        let pool = pool.clone();
        async move {
            let stored = (
                count(&pool, "SELECT count(*) FROM observations").await?,
                count(&pool, "SELECT count(*) FROM dead_letters").await?,
            );
            Ok((stored == (5, 3)).then_some(()))
        }
    })
    .await?;

    // Ingest: in, out (confirmed by Kafka), rejected by reason, latency.
    let samples = eventually(Duration::from_secs(30), "ingest's acknowledgements counted", || {
        let url = ingest.ops_url.clone();
        async move {
            let samples = scrape(&url).await?;
            Ok((value(&samples, "hoheit_ingest_messages_acknowledged_total", &[]) == Some(8.0)).then_some(samples))
        }
    })
    .await?;
    assert_eq!(value(&samples, "hoheit_ingest_messages_total", &[]), Some(8.0));
    assert_eq!(value(&samples, "hoheit_ingest_readings_accepted_total", &[]), Some(5.0));
    for reason in ["unit_mismatch", "unknown_datastream", "malformed_payload"] {
        assert_eq!(
            value(&samples, "hoheit_ingest_readings_rejected_total", &[("reason", reason)]),
            Some(1.0),
            "{reason}"
        );
    }
    assert_eq!(value(&samples, "hoheit_ingest_dead_letters_total", &[]), Some(3.0));
    // The 5 accepted readings' messages share records when they arrive together.
    let records = value(&samples, "hoheit_ingest_kafka_records_total", &[("topic", "observations")]);
    assert!(records.is_some_and(|n| (1.0..=5.0).contains(&n)), "observation records: {records:?}");
    assert_eq!(value(&samples, "hoheit_ingest_kafka_records_total", &[("topic", "dead_letters")]), Some(3.0));
    assert_eq!(value(&samples, "hoheit_ingest_message_seconds_count", &[]), Some(8.0));
    assert!(value(&samples, "hoheit_ingest_message_seconds_bucket", &[("le", "+Inf")]) == Some(8.0));

    // Writer: rows written, batch sizes (count buckets, not seconds), write latency, and no lag left.
    let samples = eventually(Duration::from_secs(60), "the writer's lag at zero on every partition", || {
        let url = writer.ops_url.clone();
        let topic = observations.clone();
        async move {
            let samples = scrape(&url).await?;
            let lags = lag(&samples, &topic);
            Ok((lags.len() == 2 && lags.values().all(|l| *l == 0.0)).then_some(samples))
        }
    })
    .await?;
    assert_eq!(value(&samples, "hoheit_writer_readings_written_total", &[]), Some(5.0));
    assert_eq!(value(&samples, "hoheit_writer_dead_letters_written_total", &[]), Some(3.0));
    let batches = value(&samples, "hoheit_writer_batches_total", &[]).expect("batches counted");
    assert!(batches >= 1.0);
    assert_eq!(value(&samples, "hoheit_writer_batch_readings_sum", &[]), Some(5.0));
    assert_eq!(
        value(&samples, "hoheit_writer_batch_records_sum", &[]),
        records.map(|n| n + 3.0),
        "every record ingest made: its observation records and the 3 dead letters"
    );
    assert_eq!(value(&samples, "hoheit_writer_batch_readings_count", &[]), Some(batches));
    assert!(
        samples.iter().any(|s| s.name == "hoheit_writer_batch_readings_bucket"
            && s.labels.get("le").map(String::as_str) == Some("10000")),
        "batch sizes use count buckets"
    );
    assert_eq!(value(&samples, "hoheit_writer_write_seconds_count", &[]), Some(batches));

    // A writer that holds records without writing them (its write waits for a
    // lock on the table): the lag counts them.
    let mut lock = pool.begin().await?;
    sqlx::query("LOCK TABLE observations IN SHARE MODE").execute(&mut *lock).await?;
    publisher.publish_all((20..23).map(|m| (level.clone(), reading(m, "cm"))).collect()).await?;
    // The 3 messages' records, as many as ingest made (they may share one).
    let made = eventually(Duration::from_secs(30), "ingest's acknowledgements of the 3 messages", || {
        let url = ingest.ops_url.clone();
        async move {
            let samples = scrape(&url).await?;
            let acknowledged = value(&samples, "hoheit_ingest_messages_acknowledged_total", &[]) == Some(11.0);
            Ok(acknowledged
                .then(|| value(&samples, "hoheit_ingest_kafka_records_total", &[("topic", "observations")]))
                .flatten())
        }
    })
    .await?;
    let held_records = made - records.expect("counted before");
    assert!((1.0..=3.0).contains(&held_records), "records of the 3 messages: {held_records}");
    eventually(Duration::from_secs(60), "a lag of the records held", || {
        let url = writer.ops_url.clone();
        let topic = observations.clone();
        async move {
            let held: f64 = lag(&scrape(&url).await?, &topic).values().sum();
            Ok((held == held_records).then_some(()))
        }
    })
    .await?;
    assert_eq!(count(&pool, "SELECT count(*) FROM observations").await?, 5, "held records are not written yet");

    // Once the lock is gone, the write goes through, its offsets are committed and the lag is gone.
    lock.rollback().await?;
    eventually(Duration::from_secs(60), "8 readings stored and no lag", || {
        let url = writer.ops_url.clone();
        let topic = observations.clone();
        let pool = pool.clone();
        async move {
            let lags = lag(&scrape(&url).await?, &topic);
            let stored = count(&pool, "SELECT count(*) FROM observations").await?;
            Ok((stored == 8 && lags.len() == 2 && lags.values().all(|l| *l == 0.0)).then_some(()))
        }
    })
    .await?;

    drop(publisher);
    writer.stop().await?;
    ingest.stop().await?;
    api.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}
