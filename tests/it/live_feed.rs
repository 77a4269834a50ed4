//! `/v1/live` streams follow one shared change feed per API process
//! (`datastream_latest`, read once a tick) instead of each polling the
//! database: every stream still gets exactly the values its caller may read
//! raw, a revoked grant withdraws them within a tick, and the feed's queries
//! do not grow with the number of open streams.
//!
//! Readings are stored as the writer stores them: into `observations` and,
//! in the same transaction, into `datastream_latest` only when newer.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use chrono::{DateTime, Utc};
use hoheit_domain::{DatastreamId, Micros, Reading};
use hoheit_tests::{start_api, ApiClient, Isolation, TOKEN};
use serde_json::{json, Value};
use sqlx::PgPool;

/// How long a stream may take to bring what the test waits for.
const PATIENCE: Duration = Duration::from_secs(30);

/// Stores one reading as the writer does: the reading and, if newer, the datastream's latest value.
async fn store(pool: &PgPool, datastream: i64, time: DateTime<Utc>, value: f64) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    let reading = Reading { datastream: DatastreamId(datastream), time: Micros::from_datetime(time), value };
    hoheit_store::observations::insert(&mut tx, &[reading]).await?;
    sqlx::query(
        "INSERT INTO datastream_latest (datastream_id, time, value) VALUES ($1, $2, $3)
         ON CONFLICT (datastream_id) DO UPDATE
         SET time = excluded.time, value = excluded.value, changed_xid = pg_current_xact_id()
         WHERE excluded.time > datastream_latest.time",
    )
    .bind(datastream)
    .bind(time)
    .bind(value)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// An open `/v1/live` event stream.
struct Live {
    response: reqwest::Response,
    buffer: String,
}

impl Live {
    /// Opens a stream as `key` (`None`: anonymous) and reads its snapshot event.
    async fn open(api: &ApiClient, key: Option<&str>) -> anyhow::Result<(Self, Value)> {
        let response = api.get_as(key, "/v1/live").header("accept", "text/event-stream").send().await?;
        ensure!(response.status() == 200, "live: {}", response.status());
        let mut live = Live { response, buffer: String::new() };
        let (name, data) = live.next().await?;
        ensure!(name == "snapshot", "first event: {name}");
        Ok((live, serde_json::from_str(&data)?))
    }

    /// The next event (name, data); keep-alive comments skipped.
    async fn next(&mut self) -> anyhow::Result<(String, String)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event:") {
                        name = n.trim().to_owned();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                if block.lines().all(|l| l.starts_with(':') || l.is_empty()) {
                    continue;
                }
                return Ok((name, data));
            }
            match tokio::time::timeout(PATIENCE, self.response.chunk()).await?? {
                Some(chunk) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                None => bail!("the stream ended"),
            }
        }
    }

    /// The next `latest` event: (datastream ids with values, datastream ids withdrawn).
    async fn latest(&mut self) -> anyhow::Result<(Vec<i64>, Vec<i64>)> {
        let (name, data) = self.next().await?;
        ensure!(name == "latest", "unexpected event {name}: {data}");
        let update: Value = serde_json::from_str(&data)?;
        let ids = |key: &str| -> anyhow::Result<Vec<i64>> {
            update[key]
                .as_array()
                .context("a list")?
                .iter()
                .map(|v| v.get("datastream_id").unwrap_or(v).as_i64().context("an id"))
                .collect()
        };
        Ok((ids("values")?, ids("withdrawn")?))
    }

    /// Reads `latest` events until one brings a value of `datastream`; every datastream with a value meanwhile.
    async fn until_value_of(&mut self, datastream: i64) -> anyhow::Result<BTreeSet<i64>> {
        let mut got = BTreeSet::new();
        while !got.contains(&datastream) {
            got.extend(self.latest().await?.0);
        }
        Ok(got)
    }
}

/// A municipality's open, restricted (granted to `firma-f`, raw) and internal datastream, and a key of `firma-f`.
struct Town {
    open: i64,
    restricted: i64,
    internal: i64,
    grant: i64,
    firma: String,
}

async fn town(api: &ApiClient) -> anyhow::Result<Town> {
    api.organisation("stadt-f", "municipality", None).await?;
    api.organisation("firma-f", "third_party", None).await?;
    let mut ids = Vec::new();
    for (property, class, license) in [
        ("temperature", "open", "http://dcat-ap.de/def/licenses/dl-zero-de/2.0"),
        ("vehicles", "restricted", "Nutzung nach Vereinbarung"),
        ("load", "internal", "Nutzung nach Vereinbarung"),
    ] {
        let datastream = api.register("stadt-f", "station-f", property, None).await?;
        let dataset = api
            .post_ok(
                "/v1/admin/datasets",
                json!({"slug": format!("{property}-f"), "owner": "stadt-f", "title": property,
                       "steward_contact": "daten@stadt.example", "classification": class, "license": license,
                       "purpose": "Planung", "retention_days": 365}),
            )
            .await?["id"]
            .as_i64()
            .context("dataset id")?;
        api.post_ok(&format!("/v1/admin/datasets/{dataset}/datastreams"), json!({"datastream_id": datastream})).await?;
        ids.push((datastream, dataset));
    }
    let until = (Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let grant = api
        .post_ok(
            "/v1/admin/grants",
            json!({"dataset_id": ids[1].1, "grantee": "firma-f", "purpose": "Routing", "contract_ref": "F-1",
                   "valid_until": until}),
        )
        .await?["id"]
        .as_i64()
        .context("grant id")?;
    let firma = api.principal_key("firma-f", "leser-f", "reader").await?;
    Ok(Town { open: ids[0].0, restricted: ids[1].0, internal: ids[2].0, grant, firma })
}

/// A metric of the API's `/metrics` (0 before it was first recorded).
async fn metric(api: &ApiClient, name: &str) -> anyhow::Result<f64> {
    let text = api.get_as(None, "/metrics").send().await?.text().await?;
    Ok(text
        .lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map(|value| value.trim().parse())
        .transpose()?
        .unwrap_or(0.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_live_stream_gets_only_the_values_its_caller_may_read() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let (running, api) = start_api(&isolation).await?;
    let town = town(&api).await?;
    let (mut public, _) = Live::open(&api, None).await?;
    let (mut firma, _) = Live::open(&api, Some(&town.firma)).await?;
    let (mut operator, _) = Live::open(&api, Some(TOKEN)).await?;

    // The ones a caller may not read first: by the time its own arrive, the others were committed.
    let now = Utc::now();
    store(&pool, town.internal, now, 61.0).await?;
    store(&pool, town.restricted, now, 12.0).await?;
    store(&pool, town.open, now, 4.5).await?;

    let got = public.until_value_of(town.open).await?;
    assert_eq!(got, BTreeSet::from([town.open]), "the public: open data only");
    let got = firma.until_value_of(town.open).await?;
    let got = if got.contains(&town.restricted) { got } else { firma.until_value_of(town.restricted).await? };
    assert!(!got.contains(&town.internal), "the grantee: not the internal value, {got:?}");
    let mut all = BTreeSet::new();
    for id in [town.internal, town.restricted, town.open] {
        if !all.contains(&id) {
            all.extend(operator.until_value_of(id).await?);
        }
    }
    assert_eq!(all, BTreeSet::from([town.open, town.restricted, town.internal]), "the operator: every value");

    running.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_grant_withdraws_its_live_values_within_a_tick() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let (running, api) = start_api(&isolation).await?;
    let town = town(&api).await?;
    store(&pool, town.restricted, Utc::now() - chrono::Duration::seconds(5), 11.0).await?;
    let (mut firma, snapshot) = Live::open(&api, Some(&town.firma)).await?;
    let shown = snapshot["datastreams"].as_array().context("datastreams")?.iter().find(|d| d["id"] == town.restricted);
    assert_eq!(shown.context("the granted datastream")?["latest_value"], json!(11.0));

    let revoked = api.http.delete(format!("{}/v1/admin/grants/{}", api.base, town.grant)).bearer_auth(TOKEN);
    assert_eq!(revoked.send().await?.status(), 204);
    let mut ticks = 0;
    loop {
        let (values, withdrawn) = firma.latest().await?;
        ticks += 1;
        assert!(!values.contains(&town.restricted), "no value after the revocation");
        if withdrawn.contains(&town.restricted) {
            break;
        }
        ensure!(ticks < 10, "still not withdrawn after {ticks} ticks");
    }
    // A tick may pass before the revocation reaches the stream's copy of the access facts.
    assert!(ticks <= 2, "withdrawn at tick {ticks} after the revocation");
    store(&pool, town.restricted, Utc::now(), 13.0).await?;
    store(&pool, town.open, Utc::now(), 5.0).await?;
    let got = firma.until_value_of(town.open).await?;
    assert!(!got.contains(&town.restricted), "no new value of a withdrawn datastream: {got:?}");

    running.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_reads_the_database_once_a_tick_however_many_streams_are_open() -> anyhow::Result<()> {
    const TICKS: usize = 4;
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let (running, api) = start_api(&isolation).await?;
    let town = town(&api).await?;
    store(&pool, town.open, Utc::now(), 1.0).await?;

    // The feed's queries while one stream, then five streams, receive the same number of ticks.
    let mut queries = Vec::new();
    let mut streams = Vec::new();
    for open in [1, 5] {
        while streams.len() < open {
            streams.push(Live::open(&api, Some(&town.firma)).await?.0);
        }
        assert_eq!(metric(&api, "hoheit_live_streams").await?, open as f64);
        let before = metric(&api, "hoheit_live_feed_queries_total").await?;
        for _ in 0..TICKS {
            for stream in streams.iter_mut() {
                stream.latest().await?;
            }
        }
        queries.push(metric(&api, "hoheit_live_feed_queries_total").await? - before);
    }
    // One query a tick (and one more at either end), whichever the number of streams; polling
    // per stream would be at least five a tick with five streams.
    for (open, queries) in [1, 5].iter().zip(&queries) {
        assert!(*queries <= (TICKS + 2) as f64, "{queries} feed queries over {TICKS} ticks with {open} streams");
    }
    drop(streams);

    running.stop().await?;
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}
