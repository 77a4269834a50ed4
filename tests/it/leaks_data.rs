//! What an attacker tried against the data paths (issue 13: findings 1, 5, 6
//! and 8), against the real API and database: raw readings through an
//! aggregate-only grant (microsecond ranges, mixed bucket widths,
//! overlapping ranges, SensorThings, live values, export), differencing of
//! personal aggregates and their min/max, raw personal data through the
//! export, and raw payloads of an erased dataset left in the dead letters.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use hoheit_domain::{DatastreamId, Micros, Reading};
use hoheit_store::dead_letters::{self, NewDeadLetter, SourcePosition, StoredRejection};
use hoheit_tests::{start_api, ApiClient, Isolation, Running};
use serde_json::{json, Value};

const CELL: i64 = 900_000_000;

struct Town {
    isolation: Isolation,
    pool: sqlx::PgPool,
    api: ApiClient,
    running: Running,
    /// Start of an hour three hours ago: the readings lie in the 15-minute cells from here on.
    start: i64,
}

impl Town {
    async fn start() -> Town {
        let isolation = Isolation::new();
        let pool = isolation.create_database().await.unwrap();
        let (running, api) = start_api(&isolation).await.unwrap();
        api.organisation("stadt", "municipality", None).await.unwrap();
        api.organisation("movi", "third_party", None).await.unwrap();
        let start = (Micros::now().0 / (4 * CELL) - 3) * 4 * CELL;
        Town { isolation, pool, api, running, start }
    }

    /// A dataset of `stadt` holding one new datastream; returns (dataset, datastream).
    async fn dataset(&self, slug: &str, class: &str, thing: &str, property: &str) -> (i64, i64) {
        let stream = self.api.register("stadt", thing, property, None).await.unwrap();
        let dataset = self
            .api
            .post_ok(
                "/v1/admin/datasets",
                json!({"slug": slug, "owner": "stadt", "title": slug, "steward_contact": "daten@stadt.example",
                       "classification": class, "license": "http://dcat-ap.de/def/licenses/dl-by-de/2.0",
                       "purpose": "Verkehrsplanung", "retention_days": 365, "min_bucket_count": 3}),
            )
            .await
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        self.assign(dataset, stream).await;
        (dataset, stream)
    }

    async fn assign(&self, dataset: i64, stream: i64) {
        self.api
            .post_ok(&format!("/v1/admin/datasets/{dataset}/datastreams"), json!({"datastream_id": stream}))
            .await
            .unwrap();
    }

    /// Stores `(microseconds after start, value)` readings through the writer's own insert.
    async fn readings(&self, stream: i64, readings: &[(i64, f64)]) {
        let rows: Vec<Reading> = readings
            .iter()
            .map(|&(at, value)| Reading { datastream: DatastreamId(stream), time: Micros(self.start + at), value })
            .collect();
        hoheit_store::observations::insert(&mut self.pool.acquire().await.unwrap(), &rows).await.unwrap();
    }

    fn at(&self, micros_after_start: i64) -> String {
        let t = DateTime::from_timestamp_micros(self.start + micros_after_start).unwrap();
        t.to_rfc3339_opts(SecondsFormat::AutoSi, true).replace('+', "%2B")
    }

    async fn get(&self, key: Option<&str>, path: &str) -> (u16, Value) {
        let response = self.api.get_as(key, path).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn key(&self, org: &str, name: &str, role: &str) -> String {
        self.api.principal_key(org, name, role).await.unwrap()
    }

    async fn stop(self) {
        self.running.stop().await.unwrap();
        self.pool.close().await;
        self.isolation.drop_database().await;
    }
}

fn minutes(n: i64) -> i64 {
    n * 60_000_000
}

/// (bucket start in µs, count, sum) of an aggregates answer.
fn buckets(body: &Value) -> Vec<(i64, i64, f64)> {
    body["buckets"]
        .as_array()
        .unwrap_or_else(|| panic!("buckets in {body}"))
        .iter()
        .map(|b| {
            let time: DateTime<Utc> = b["time"].as_str().unwrap().parse().unwrap();
            let count = b["count"].as_i64().unwrap();
            (time.timestamp_micros(), count, b["avg"].as_f64().unwrap() * count as f64)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregate_grant_never_releases_a_bucket_narrower_than_its_grid() {
    let town = Town::start().await;
    let (dataset, stream) = town.dataset("verkehr", "restricted", "zaehler-1", "count").await;
    // Cell 0: five readings whose values tell which ones a bucket holds; cell 1: three.
    let readings: Vec<(i64, f64)> = vec![
        (0, 1.0),
        (minutes(1), 2.0),
        (minutes(2), 4.0),
        (minutes(3), 8.0),
        (minutes(14), 16.0),
        (minutes(15), 100.0),
        (minutes(16), 200.0),
        (minutes(20), 400.0),
    ];
    town.readings(stream, &readings).await;
    town.api
        .post_ok(
            "/v1/admin/grants",
            json!({"dataset_id": dataset, "grantee": "movi", "purpose": "Verkehrsprognose", "contract_ref": "V-2026-17",
                   "min_interval_mins": 15, "history_days": 30, "rate_per_minute": 100000, "valid_until": (Utc::now() + Duration::days(30)).to_rfc3339()}),
        )
        .await
        .unwrap();
    let movi = town.key("movi", "movi-leser", "reader").await;
    let movi = Some(movi.as_str());
    let aggregates = |from: i64, to: i64, interval: &str| {
        format!("/v1/datastreams/{stream}/aggregates?from={}&to={}&interval={interval}", town.at(from), town.at(to))
    };

    // The attack of the issue: a one-microsecond "bucket" at a reading.
    for at in [0, minutes(1), minutes(14)] {
        let (status, body) = town.get(movi, &aggregates(at, at + 1, "15m")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(buckets(&body), vec![], "no whole bucket lies in one microsecond: {body}");
        assert_eq!(body["from"], body["to"], "the range answered is empty: {body}");
    }

    // Whatever range and width the grantee picks, each bucket is a whole bucket of the
    // epoch-aligned grid: its count and sum are those of every reading in it.
    let whole = |bucket: i64, width: i64| {
        readings
            .iter()
            .filter(|(at, _)| town.start + at >= bucket && town.start + at < bucket + width)
            .fold((0, 0.0), |(n, sum), (_, v)| (n + 1, sum + v))
    };
    let widths = [("15m", minutes(15)), ("30m", minutes(30)), ("45m", minutes(45)), ("1h", minutes(60))];
    let edges = [-1, 0, 1, minutes(14), minutes(15), minutes(16)];
    let mut answered = 0;
    for (interval, width) in widths {
        for from in edges {
            for to in edges.iter().map(|e| e + minutes(45)).chain([minutes(1), minutes(15) + 1, minutes(16)]) {
                if to <= from {
                    continue;
                }
                let (status, body) = town.get(movi, &aggregates(from, to, interval)).await;
                assert_eq!(status, 200, "{interval} {from}..{to}: {body}");
                for (bucket, count, sum) in buckets(&body) {
                    answered += 1;
                    assert_eq!(bucket.rem_euclid(width), 0, "{interval} bucket on the epoch grid: {body}");
                    assert!(
                        bucket >= town.start + from && bucket + width <= town.start + to,
                        "inside the range: {body}"
                    );
                    assert_eq!((count, sum), whole(bucket, width), "{interval} {from}..{to}: a whole bucket: {body}");
                }
            }
        }
    }
    assert!(answered > 0, "the grant still releases aggregates");

    // Widths off the grid (15m and 16m buckets would difference down to single readings) are refused.
    for interval in ["16m", "20m", "1000s"] {
        let (status, body) = town.get(movi, &aggregates(0, minutes(60), interval)).await;
        assert_eq!(status, 403, "{interval}: {body}");
        assert_eq!(body["code"], "interval_off_grid", "{body}");
    }

    // No other path gives the grantee raw readings: not SensorThings, not latest values, not the export.
    let sta =
        format!("/sta/v1.1/Datastreams({stream})/Observations?$filter=phenomenonTime%20ge%20{}", town.at(-minutes(60)));
    let (status, body) = town.get(movi, &sta).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = town.get(movi, "/sta/v1.1/Observations").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"].as_array().map(Vec::len), Some(0), "{body}");
    let (_, body) = town.get(movi, &format!("/v1/datastreams/{stream}")).await;
    assert_eq!(body["latest_value"], Value::Null, "{body}");
    let (_, body) = town.get(movi, "/v1/live").await;
    let live = &body["datastreams"].as_array().unwrap().iter().find(|d| d["id"] == stream).cloned().unwrap();
    assert_eq!(live["latest_value"], Value::Null, "{live}");
    let (status, _) = town.get(movi, &format!("/v1/datasets/{dataset}/export?format=csv")).await;
    assert_eq!(status, 403);
    town.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_aggregates_withstand_differencing_and_never_show_extremes() {
    let town = Town::start().await;
    let (_, stream) = town.dataset("besucher", "personal", "zaehler-p", "visits").await;
    // Minimum count 3. Cell 0: four readings; cell 1: one person alone (99), which must never
    // be learned; cells 2 and 3: three readings each.
    let cells =
        [(0, vec![10.0, 20.0, 30.0, 40.0]), (1, vec![99.0]), (2, vec![1.0, 2.0, 3.0]), (3, vec![5.0, 5.0, 5.0])];
    let readings: Vec<(i64, f64)> = cells
        .iter()
        .flat_map(|(cell, values)| {
            values.iter().enumerate().map(move |(i, v)| (cell * CELL + minutes(i as i64 + 1), *v))
        })
        .collect();
    town.readings(stream, &readings).await;
    let owner = town.key("stadt", "stadt-leser", "reader").await;
    let aggregates = |from: i64, to: i64, interval: &str| {
        format!("/v1/datastreams/{stream}/aggregates?from={}&to={}&interval={interval}", town.at(from), town.at(to))
    };
    // The cells released: those of at least 3 readings.
    let released = |bucket: i64, width: i64| {
        cells
            .iter()
            .filter(|(cell, values)| {
                let t = town.start + cell * CELL;
                values.len() >= 3 && t >= bucket && t + CELL <= bucket + width
            })
            .flat_map(|(_, values)| values.iter())
            .fold((0, 0.0), |(n, sum), v| (n + 1, sum + v))
    };

    for key in [Some(owner.as_str()), Some(hoheit_tests::TOKEN)] {
        // The differencing attack: 30 minutes from cell 0 minus 15 minutes from cell 0 was the
        // lone reading of cell 1; two ranges ending inside cell 1 the same.
        let (status, wide) = town.get(key, &aggregates(0, minutes(30), "30m")).await;
        assert_eq!(status, 200, "{wide}");
        let (_, narrow) = town.get(key, &aggregates(0, minutes(15), "15m")).await;
        let (_, longer) = town.get(key, &aggregates(0, minutes(16), "15m")).await;
        assert_eq!(buckets(&wide), vec![(town.start, 4, 100.0)], "cell 1 counts nowhere: {wide}");
        assert_eq!(buckets(&narrow), vec![(town.start, 4, 100.0)], "{narrow}");
        assert_eq!(buckets(&longer), buckets(&narrow), "a range into cell 1 adds nothing");
        let difference = buckets(&wide)[0].2 - buckets(&narrow)[0].2;
        assert_eq!(difference, 0.0, "the difference of the two answers holds no reading, not 99");

        // Every answer, whatever the range and width, is a sum of released cells only.
        let mut seen = 0;
        for (interval, width) in [("15m", CELL), ("30m", 2 * CELL), ("45m", 3 * CELL), ("1h", 4 * CELL)] {
            for from in [-CELL, 0, 1, CELL, CELL + 1, 2 * CELL] {
                for to in [CELL, CELL + 1, 2 * CELL, 3 * CELL - 1, 4 * CELL, 5 * CELL] {
                    if to <= from {
                        continue;
                    }
                    let (status, body) = town.get(key, &aggregates(from, to, interval)).await;
                    assert_eq!(status, 200, "{interval} {from}..{to}: {body}");
                    for (bucket, count, sum) in buckets(&body) {
                        seen += 1;
                        assert_eq!((count, sum), released(bucket, width), "{interval} {from}..{to}: {body}");
                        assert!(count >= 3, "{body}");
                    }
                    for b in body["buckets"].as_array().unwrap() {
                        assert!(b.get("min").is_none() && b.get("max").is_none(), "no extremes of personal data: {b}");
                    }
                }
            }
        }
        assert!(seen > 0);

        // Custom widths are refused: personal aggregates have the fixed 15-minute grid.
        for interval in ["16m", "10m", "1s"] {
            let (status, body) = town.get(key, &aggregates(0, minutes(60), interval)).await;
            assert_eq!(status, 403, "{interval}: {body}");
            assert_eq!(body["code"], "personal_off_grid", "{body}");
        }
        let (status, _) = town
            .get(key, &format!("/v1/datastreams/{stream}/observations?from={}&to={}", town.at(0), town.at(minutes(60))))
            .await;
        assert_eq!(status, 403, "raw personal readings for nobody");
    }
    town.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_of_personal_data_releases_only_its_15_minute_aggregates_and_is_audited_once() {
    let town = Town::start().await;
    let (dataset, stream) = town.dataset("besucher", "personal", "zaehler-p", "visits").await;
    town.readings(stream, &[(minutes(1), 10.0), (minutes(2), 20.0), (minutes(3), 30.0), (CELL + minutes(1), 99.0)])
        .await;
    let admin = town.key("stadt", "stadt-admin", "admin").await;
    for (key, id) in [(admin.as_str(), "x-owner"), (hoheit_tests::TOKEN, "x-operator")] {
        let response = town
            .api
            .get_as(Some(key), &format!("/v1/datasets/{dataset}/export?format=csv"))
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let csv = response.text().await.unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "datastream_id,thing,property,unit,time,interval_seconds,avg,count");
        assert_eq!(lines.len(), 2, "one released cell; the lone reading's cell is withheld: {csv}");
        assert!(
            lines[1].starts_with(&format!("{stream},zaehler-p,visits,,")) && lines[1].ends_with(",900,20,3"),
            "{csv}"
        );
        assert!(!csv.contains("99"), "{csv}");
        let records: Vec<(String, String, String, i64)> =
            sqlx::query_as("SELECT action, decision, resolution, rows_returned FROM audit_log WHERE request_id = $1")
                .bind(id)
                .fetch_all(&town.pool)
                .await
                .unwrap();
        let expected = ("export".to_owned(), "allow".to_owned(), "aggregate:900s".to_owned(), 1);
        assert_eq!(records, [expected], "one audit record per export: (action, decision, resolution, rows)");
    }
    let jsonl = town
        .api
        .get_as(Some(&admin), &format!("/v1/datasets/{dataset}/export?format=jsonl"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let records: Vec<Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = records.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["dataset", "datastream", "aggregate"], "metadata and aggregates, no observation");
    assert_eq!((records[2]["count"].as_i64(), records[2]["avg"].as_f64()), (Some(3), Some(20.0)));
    assert_eq!((&records[2]["min"], &records[2]["max"]), (&Value::Null, &Value::Null));
    town.stop().await;
}

fn dead_letter(topic: String, offset: i64) -> NewDeadLetter {
    NewDeadLetter {
        received: Micros::now(),
        org: "stadt".into(),
        mqtt_topic: topic,
        door: Some("mqtt".into()),
        payload: format!("{{\"value\": {offset}.5}}").into_bytes(),
        rejections: vec![StoredRejection { reading_index: None, code: "unit_mismatch".into(), reason: "unit".into() }],
        source: SourcePosition { topic: "dead-letters".into(), partition: 0, offset },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_deletes_the_erased_datasets_dead_letters_and_no_others() {
    let town = Town::start().await;
    let (erased, _) = town.dataset("geht", "restricted", "a-1", "p").await;
    let (kept_dataset, _) = town.dataset("bleibt", "restricted", "b-1", "q").await;
    // A thing with a datastream in each dataset: its thing topic may carry readings of both.
    let shared_erased = town.api.register("stadt", "shared-1", "x", None).await.unwrap();
    town.assign(erased, shared_erased).await;
    let shared_kept = town.api.register("stadt", "shared-1", "y", None).await.unwrap();
    town.assign(kept_dataset, shared_kept).await;
    // A datastream of the same organisation in no dataset, whose org and thing slugs make a
    // topic that ends like the erased thing's: `stadt/a-1`.
    town.api.register("stadt", "stadt", "a-1", None).await.unwrap();

    let root = town.isolation.topic_root.clone();
    let topics = [
        (format!("{root}/stadt/a-1/p"), "gone"),
        (format!("{root}/stadt/a-1"), "gone"),
        (format!("{root}/stadt/shared-1/x"), "gone"),
        (format!("{root}/stadt/shared-1"), "emptied"),
        (format!("{root}/stadt/b-1/q"), "kept"),
        (format!("{root}/stadt/b-1"), "kept"),
        (format!("{root}/stadt/shared-1/y"), "kept"),
        (format!("{root}/stadt/stadt/a-1"), "kept"),
        (format!("{root}/stadt/a-1/unregistered"), "kept"),
    ];
    let letters: Vec<NewDeadLetter> =
        topics.iter().enumerate().map(|(i, (topic, _))| dead_letter(topic.clone(), i as i64)).collect();
    dead_letters::insert(&mut town.pool.acquire().await.unwrap(), &letters).await.unwrap();

    let admin = town.key("stadt", "stadt-admin", "admin").await;
    let response = town
        .api
        .http
        .delete(format!("{}/v1/datasets/{erased}", town.api.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["dead_letters"], json!({"deleted": 3, "payloads_removed": 1}), "{body}");

    for (i, (topic, fate)) in topics.iter().enumerate() {
        let row: Option<(Vec<u8>, String)> =
            sqlx::query_as("SELECT payload, reason FROM dead_letters WHERE mqtt_topic = $1")
                .bind(topic)
                .fetch_optional(&town.pool)
                .await
                .unwrap();
        let payload = row.as_ref().map(|(payload, _)| payload.clone());
        match *fate {
            "gone" => assert!(row.is_none(), "{topic} belongs to the erased dataset"),
            "emptied" => {
                assert_eq!(payload.as_deref(), Some(&b""[..]), "{topic}: the payload may hold erased readings");
                assert!(row.is_some_and(|(_, reason)| reason.contains("erased dataset")), "{topic}");
            }
            _ => assert_eq!(payload, Some(format!("{{\"value\": {i}.5}}").into_bytes()), "{topic} is another's"),
        }
    }
    town.stop().await;
}
