//! The simulator against the whole platform: it registers the demo town,
//! and every reading it publishes (history and live) is stored, none rejected.

use std::time::Duration;

use clap::Parser;
use hoheit_simulator::{Simulator, SimulatorConfig};
use hoheit_tests::{eventually, mqtt_host, mqtt_port, Platform, TOKEN};
use sqlx::Row;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_town_is_registered_and_everything_it_publishes_is_stored() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let config = SimulatorConfig::try_parse_from([
        "hoheit-simulator".to_owned(),
        format!("--api-url={}", platform.api.base),
        format!("--api-token={TOKEN}"),
        format!("--mqtt-host={}", mqtt_host()),
        format!("--mqtt-port={}", mqtt_port()),
        format!("--topic-root={}", platform.isolation.topic_root),
        "--rate=200".into(),
        "--backfill-hours=2".into(),
        "--duration-secs=3".into(),
    ])?;
    let summary = Simulator::new(config)?.run(CancellationToken::new()).await?;
    assert_eq!(summary.datastreams, 26);
    assert_eq!(summary.unacked_messages, 0);
    assert!(summary.live_readings >= 200, "about 3 s at 200 readings/s: {summary:?}");
    let published = (summary.backfill_readings + summary.live_readings) as i64;

    let pool = platform.pool.clone();
    eventually(Duration::from_secs(60), "every published reading stored", || {
        let pool = pool.clone();
        async move {
            let stored: i64 = sqlx::query("SELECT count(*) FROM observations").fetch_one(&pool).await?.get(0);
            Ok((stored >= published).then_some(()))
        }
    })
    .await?;
    let stored: i64 = sqlx::query("SELECT count(*) FROM observations").fetch_one(&pool).await?.get(0);
    assert_eq!(stored, published);
    let dead: i64 = sqlx::query("SELECT count(*) FROM dead_letters").fetch_one(&pool).await?.get(0);
    assert_eq!(dead, 0, "the simulator's payloads are all valid");

    let list = platform.api.get_json("/v1/datastreams").await?;
    let streams = list["datastreams"].as_array().unwrap();
    assert_eq!(streams.len(), 26);
    assert!(streams.iter().all(|s| s["latest_time"].is_string()), "every datastream has live data");
    platform.stop().await
}
