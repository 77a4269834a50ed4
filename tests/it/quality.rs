//! Data quality against the real API and database: readings with known gaps
//! and dead letters stored as the writer stores them, then a datastream's
//! completeness per day, its gaps, its dead letters by reason and its
//! out-of-range share, the interval set by its owner or learned, the
//! organisation's list of silent and degraded datastreams, and who may see
//! what of it (gaps are raw timing: an aggregate-only grantee gets none).

use chrono::{Duration, SecondsFormat, Utc};
use hoheit_domain::{DatastreamId, Micros, Reading};
use hoheit_store::dead_letters::{self, NewDeadLetter, SourcePosition, StoredRejection};
use hoheit_tests::{start_api, ApiClient, Isolation, Running, TOKEN};
use serde_json::{json, Value};

const MINUTE: i64 = 60_000_000;

struct Town {
    isolation: Isolation,
    pool: sqlx::PgPool,
    api: ApiClient,
    running: Running,
    /// Midnight (UTC) two days ago, in microseconds: the readings start here.
    start: i64,
    /// The last whole minute before now.
    end: i64,
    healthy: i64,
    gappy: i64,
    silent: i64,
    rejected: i64,
    empty: i64,
    admin: String,
}

/// Every minute from `from` until `to` (exclusive), except in `[skip_from, skip_to)`.
fn minutes(from: i64, to: i64, skip: Option<(i64, i64)>) -> Vec<i64> {
    (0..)
        .map(|i| from + i * MINUTE)
        .take_while(|t| *t < to)
        .filter(|t| skip.is_none_or(|(a, b)| *t < a || *t >= b))
        .collect()
}

impl Town {
    async fn start() -> Town {
        let isolation = Isolation::new();
        let pool = isolation.create_database().await.unwrap();
        let (running, api) = start_api(&isolation).await.unwrap();
        api.organisation("stadt", "municipality", None).await.unwrap();
        api.organisation("movi", "third_party", None).await.unwrap();
        api.organisation("nachbar", "third_party", None).await.unwrap();
        let mut ids = Vec::new();
        for (thing, property) in [
            ("pegel-a", "level"),
            ("pegel-b", "level"),
            ("pegel-c", "level"),
            ("pegel-d", "level"),
            ("pegel-e", "level"),
        ] {
            ids.push(api.register("stadt", thing, property, None).await.unwrap());
        }
        // A second datastream of pegel-d, whose name starts like pegel-d's level.
        api.register("stadt", "pegel-d", "level2", None).await.unwrap();
        let dataset = api
            .post_ok(
                "/v1/admin/datasets",
                json!({"slug": "pegel", "owner": "stadt", "title": "Pegel", "steward_contact": "daten@stadt.example",
                       "classification": "restricted", "license": "http://dcat-ap.de/def/licenses/dl-by-de/2.0",
                       "purpose": "Hochwasserschutz", "retention_days": 365}),
            )
            .await
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        for id in &ids {
            api.post_ok(&format!("/v1/admin/datasets/{dataset}/datastreams"), json!({"datastream_id": id}))
                .await
                .unwrap();
        }
        api.post_ok(
            "/v1/admin/grants",
            json!({"dataset_id": dataset, "grantee": "movi", "purpose": "Hochwasserprognose", "contract_ref": "P-1",
                   "min_interval_mins": 15, "history_days": 30, "valid_until": (Utc::now() + Duration::days(365)).to_rfc3339()}),
        )
        .await
        .unwrap();
        let admin = api.principal_key("stadt", "stadt-admin", "admin").await.unwrap();
        let day = 24 * 60 * MINUTE;
        let start = (Micros::now().0 / day - 2) * day;
        let end = (Micros::now().0 / MINUTE) * MINUTE;
        let town = Town {
            isolation,
            pool,
            api,
            running,
            start,
            end,
            healthy: ids[0],
            gappy: ids[1],
            silent: ids[2],
            rejected: ids[3],
            empty: ids[4],
            admin,
        };
        let yesterday = start + day;
        town.readings(town.healthy, minutes(start, end, None)).await;
        // Six hours missing yesterday, from 10:00: three quarters of the day.
        let gap = (yesterday + 600 * MINUTE, yesterday + 960 * MINUTE);
        town.readings(town.gappy, minutes(start, end, Some(gap))).await;
        // Nothing since yesterday noon.
        town.readings(town.silent, minutes(start, yesterday + 720 * MINUTE, None)).await;
        town.readings(town.rejected, minutes(start, end, None)).await;
        town
    }

    async fn readings(&self, datastream: i64, times: Vec<i64>) {
        let rows: Vec<Reading> = times
            .into_iter()
            .map(|t| Reading { datastream: DatastreamId(datastream), time: Micros(t), value: 1.5 })
            .collect();
        hoheit_store::observations::insert(&mut self.pool.acquire().await.unwrap(), &rows).await.unwrap();
    }

    async fn get(&self, key: Option<&str>, path: &str) -> (u16, Value) {
        let response = self.api.get_as(key, path).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn patch_interval(&self, datastream: i64, secs: Value) -> (u16, Value) {
        let response = self
            .api
            .http
            .patch(format!("{}/v1/admin/datastreams/{datastream}", self.api.base))
            .bearer_auth(&self.admin)
            .json(&json!({"expected_interval_secs": secs}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The date `days_after_start` days after the readings' start.
    fn day(&self, days_after_start: i64) -> String {
        let t = chrono::DateTime::from_timestamp_micros(self.start).unwrap() + Duration::days(days_after_start);
        t.date_naive().to_string()
    }

    fn time(&self, micros: i64) -> String {
        chrono::DateTime::from_timestamp_micros(micros).unwrap().to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    async fn stop(self) {
        self.running.stop().await.unwrap();
        self.pool.close().await;
        self.isolation.drop_database().await;
    }
}

/// A day of the response by date: (readings, expected, completeness).
fn day_of(body: &Value, date: &str) -> (i64, i64, f64) {
    let day =
        body["days"].as_array().unwrap().iter().find(|d| d["day"] == date).unwrap_or_else(|| panic!("{date}: {body}"));
    (day["readings"].as_i64().unwrap(), day["expected"].as_i64().unwrap(), day["completeness"].as_f64().unwrap())
}

fn dead_letter(topic: String, offset: i64, rejections: Vec<(&str, String)>) -> NewDeadLetter {
    NewDeadLetter {
        received: Micros::now(),
        org: "stadt".into(),
        mqtt_topic: topic,
        door: Some("mqtt".into()),
        payload: b"{}".to_vec(),
        rejections: rejections
            .into_iter()
            .enumerate()
            .map(|(i, (code, reason))| StoredRejection { reading_index: Some(i as i32), code: code.into(), reason })
            .collect(),
        source: SourcePosition { topic: "dead-letters".into(), partition: 0, offset },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completeness_gaps_and_the_interval_set_or_learned() {
    let town = Town::start().await;
    let (status, body) = town.patch_interval(town.healthy, json!(60)).await;
    assert_eq!((status, &body["expected_interval_secs"]), (200, &json!(60)), "{body}");
    let (status, body) = town.patch_interval(town.healthy, json!(0)).await;
    assert_eq!(status, 422, "{body}");
    let (_, shown) = town.get(Some(&town.admin), &format!("/v1/datastreams/{}", town.healthy)).await;
    assert_eq!(shown["expected_interval_secs"], 60, "the owner sees the interval set: {shown}");

    let admin = Some(town.admin.as_str());
    let (status, healthy) = town.get(admin, &format!("/v1/datastreams/{}/quality?days=3", town.healthy)).await;
    assert_eq!(status, 200, "{healthy}");
    assert_eq!((&healthy["expected_interval_secs"], &healthy["interval_source"]), (&json!(60), &json!("set")));
    assert_eq!(healthy["status"], "ok", "{healthy}");
    assert_eq!(healthy["days"].as_array().unwrap().len(), 3);
    assert_eq!(day_of(&healthy, &town.day(0)), (1440, 1440, 1.0));
    assert_eq!(day_of(&healthy, &town.day(1)), (1440, 1440, 1.0));
    assert_eq!(healthy["gaps"], json!([]), "{healthy}");
    assert_eq!(healthy["last_reading_at"], town.time(town.end - MINUTE));

    // Six hours missing yesterday: learned interval, three quarters complete, one gap.
    let (_, gappy) = town.get(admin, &format!("/v1/datastreams/{}/quality?days=3&gap_intervals=3", town.gappy)).await;
    assert_eq!((&gappy["expected_interval_secs"], &gappy["interval_source"]), (&json!(60), &json!("learned")));
    assert_eq!(day_of(&gappy, &town.day(1)), (1080, 1440, 0.75));
    assert_eq!(gappy["status"], "degraded", "{gappy}");
    let yesterday = town.start + 1440 * MINUTE;
    assert_eq!(
        gappy["gaps"],
        json!([{"from": town.time(yesterday + 599 * MINUTE), "to": town.time(yesterday + 960 * MINUTE),
                "missing_intervals": 360, "ongoing": false}]),
        "{gappy}"
    );
    // Longer gaps only: none is longer than 400 intervals.
    let (_, fewer) = town.get(admin, &format!("/v1/datastreams/{}/quality?days=3&gap_intervals=400", town.gappy)).await;
    assert_eq!(fewer["gaps"], json!([]));

    // An interval set beats the learned one, and clearing it learns again.
    town.patch_interval(town.gappy, json!(30)).await;
    let (_, set) = town.get(admin, &format!("/v1/datastreams/{}/quality?days=3", town.gappy)).await;
    assert_eq!((&set["expected_interval_secs"], &set["interval_source"]), (&json!(30), &json!("set")));
    assert_eq!(day_of(&set, &town.day(0)), (1440, 2880, 0.5));
    let (status, cleared) = town.patch_interval(town.gappy, Value::Null).await;
    assert_eq!((status, &cleared["expected_interval_secs"]), (200, &Value::Null), "{cleared}");
    let (_, learned) = town.get(admin, &format!("/v1/datastreams/{}/quality?days=3", town.gappy)).await;
    assert_eq!(learned["interval_source"], "learned");

    // Silent since yesterday noon: the gap lasts until now.
    let (_, silent) = town.get(admin, &format!("/v1/datastreams/{}/quality?days=3", town.silent)).await;
    assert_eq!(silent["status"], "silent", "{silent}");
    let gaps = silent["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{silent}");
    assert_eq!((&gaps[0]["from"], &gaps[0]["ongoing"]), (&json!(town.time(yesterday + 719 * MINUTE)), &json!(true)));

    // No reading at all: nothing to judge.
    let (_, empty) = town.get(admin, &format!("/v1/datastreams/{}/quality", town.empty)).await;
    assert_eq!((&empty["status"], &empty["expected_interval_secs"]), (&json!("unknown"), &Value::Null), "{empty}");
    assert_eq!(empty["days"].as_array().unwrap().len(), 7);

    for bad in ["days=0", "days=91", "gap_intervals=1", "gap_intervals=1001", "days=x", "colour=blue"] {
        let (status, body) = town.get(admin, &format!("/v1/datastreams/{}/quality?{bad}", town.healthy)).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'quality' AND decision = 'allow'")
            .fetch_one(&town.pool)
            .await
            .unwrap();
    assert_eq!(audited, 7, "every quality read is audited like a read");
    town.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_by_reason_and_the_out_of_range_share() {
    let town = Town::start().await;
    let root = town.isolation.topic_root.clone();
    let range = |property: &str| {
        format!(
            "value 900 is outside the plausible range of datastream stadt/pegel-d/{property} (0 .. 10); fix the sensor"
        )
    };
    let letters = vec![
        // On the datastream's own topic: every rejection is its.
        dead_letter(
            format!("{root}/stadt/pegel-d/level"),
            1,
            (0..398)
                .map(|_| ("out_of_range", "outside".to_owned()))
                .chain([("unit_mismatch", "unit".to_owned())])
                .collect(),
        ),
        // On its thing's topic: the rejections whose reason names it.
        dead_letter(
            format!("{root}/stadt/pegel-d"),
            2,
            vec![("out_of_range", range("level")), ("out_of_range", range("level")), ("out_of_range", range("level2"))],
        ),
        // Another datastream's.
        dead_letter(format!("{root}/stadt/pegel-a/level"), 3, vec![("out_of_range", "outside".to_owned())]),
    ];
    dead_letters::insert(&mut town.pool.acquire().await.unwrap(), &letters).await.unwrap();

    let admin = Some(town.admin.as_str());
    let (status, body) = town.get(admin, &format!("/v1/datastreams/{}/quality?days=3", town.rejected)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["dead_letters"],
        json!([{"reason": "out_of_range", "count": 400}, {"reason": "unit_mismatch", "count": 1}])
    );
    let stored: i64 = body["days"].as_array().unwrap().iter().map(|d| d["readings"].as_i64().unwrap()).sum();
    let share = body["out_of_range_share"].as_f64().unwrap();
    assert!((share - 400.0 / (stored + 400) as f64).abs() < 1e-9, "{share} of {stored} stored");
    assert_eq!(body["status"], "degraded", "more than 5 % out of range: {body}");

    let (_, other) = town.get(admin, &format!("/v1/datastreams/{}/quality?days=3", town.healthy)).await;
    assert_eq!(other["dead_letters"], json!([{"reason": "out_of_range", "count": 1}]));
    town.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_organisation_lists_its_silent_and_degraded_datastreams_to_its_owners() {
    let town = Town::start().await;
    town.patch_interval(town.healthy, json!(60)).await;
    town.patch_interval(town.silent, json!(60)).await;
    let (status, body) = town.get(Some(&town.admin), "/v1/quality?org=stadt").await;
    assert_eq!(status, 200, "{body}");
    let listed: Vec<(i64, &str)> = body["datastreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["datastream"].as_i64().unwrap(), d["status"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, vec![(town.silent, "silent"), (town.gappy, "degraded")], "{body}");
    let gappy = &body["datastreams"][1];
    assert_eq!((&gappy["thing"], &gappy["property"]), (&json!("pegel-b"), &json!("level")));
    assert_eq!(gappy["last_full_day_completeness"], 0.75);
    assert_eq!(gappy["out_of_range_share"], 0.0);
    assert_eq!(body["datastreams"][0]["last_reading_at"], town.time(town.start + (1440 + 719) * MINUTE));

    let (status, _) = town.get(Some(TOKEN), "/v1/quality?org=stadt").await;
    assert_eq!(status, 200, "the operator");
    let reader = town.api.principal_key("stadt", "stadt-reader", "reader").await.unwrap();
    let movi = town.api.principal_key("movi", "movi-admin", "admin").await.unwrap();
    for (key, expected) in [(None, 401), (Some(reader.as_str()), 403), (Some(movi.as_str()), 403)] {
        let (status, body) = town.get(key, "/v1/quality?org=stadt").await;
        assert_eq!(status, expected, "{body}");
    }
    let (status, _) = town.get(Some(TOKEN), "/v1/quality?org=gibt-es-nicht").await;
    assert_eq!(status, 404);
    town.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quality_is_read_under_the_policy_and_gaps_only_with_raw_reads() {
    let town = Town::start().await;
    let path = format!("/v1/datastreams/{}/quality?days=3", town.gappy);
    let (status, body) = town.get(None, &path).await;
    assert_eq!(status, 404, "anonymous callers do not learn that a restricted datastream exists: {body}");
    let nachbar = town.api.principal_key("nachbar", "nachbar-reader", "reader").await.unwrap();
    let (status, _) = town.get(Some(&nachbar), &path).await;
    assert_eq!(status, 404, "another organisation without a grant");
    let (status, _) = town.get(Some(TOKEN), "/v1/datastreams/999999/quality").await;
    assert_eq!(status, 404);

    // An aggregate-only grant: the days that have ended, no gaps and no last reading's time.
    let movi = town.api.principal_key("movi", "movi-reader", "reader").await.unwrap();
    let (status, body) = town.get(Some(&movi), &path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((&body["gaps"], &body["gaps_withheld"]), (&Value::Null, &json!("raw_not_granted")), "{body}");
    assert_eq!(body["last_reading_at"], Value::Null);
    let days: Vec<&str> = body["days"].as_array().unwrap().iter().map(|d| d["day"].as_str().unwrap()).collect();
    assert_eq!(days, vec![town.day(0), town.day(1)], "today has not ended");
    assert_eq!(day_of(&body, &town.day(1)), (1080, 1440, 0.75));

    // Beyond the grant's 30 days of history: it may see the datastream, but not read this.
    let (status, body) = town.get(Some(&movi), &format!("/v1/datastreams/{}/quality?days=90", town.gappy)).await;
    assert_eq!((status, &body["code"]), (403, &json!("outside_grant_window")), "{body}");
    let denied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'quality' AND decision = 'deny'")
            .fetch_one(&town.pool)
            .await
            .unwrap();
    assert_eq!(denied, 1, "the denial is audited");

    // The owner sees the gaps.
    let (_, body) = town.get(Some(&town.admin), &path).await;
    assert_eq!((body["gaps"].as_array().map(Vec::len), &body["gaps_withheld"]), (Some(1), &Value::Null));
    town.stop().await;
}
