//! Dead-letter replay against the real pipeline (Mosquitto, ingest, tansu,
//! the writer, TimescaleDB): readings that arrived before their datastream
//! existed are stored exactly once after registration and a replay, a second
//! replay stores nothing twice, what still fails stays the same dead letter
//! (marked, no new row), the filters select what they say, only the
//! organisation's admins and data owners and the operator may replay, every
//! replay is audited, and `hoheit-admin dead-letters replay` goes the same way.

use std::collections::BTreeSet;
use std::time::Duration;

use hoheit_tests::{answer, eventually, ApiClient, Platform, Publisher, TOKEN};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::admin_support::admin_json;

const WAIT: Duration = Duration::from_secs(30);

/// `POST /v1/dead-letters/replay` through the API as `key`.
async fn replay(api: &ApiClient, key: &str, body: Value) -> anyhow::Result<(StatusCode, Value)> {
    let request = api.http.post(format!("{}/v1/dead-letters/replay", api.base)).bearer_auth(key).json(&body);
    let (status, body, headers) = answer(request).await?;
    if status == StatusCode::FORBIDDEN {
        assert_eq!(headers["content-type"], "application/problem+json");
    }
    Ok((status, body))
}

/// Pushes `body` (plain JSON) to a datastream's HTTP door as `key`.
async fn push(api: &ApiClient, key: &str, path: &str, body: Value) -> anyhow::Result<Value> {
    let request = api.http.post(format!("{}/v1/push/{path}", api.base)).header("x-api-key", key).json(&body);
    let (status, receipt, _) = answer(request).await?;
    anyhow::ensure!(status == StatusCode::ACCEPTED, "push {path}: {status} {receipt}");
    Ok(receipt)
}

async fn dead_letter_rows(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM dead_letters").fetch_one(pool).await?)
}

async fn readings(pool: &PgPool, datastream: i64) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM observations WHERE datastream_id = $1")
        .bind(datastream)
        .fetch_one(pool)
        .await?)
}

/// Waits until the table holds `n` dead letters.
async fn dead_letters_become(pool: &PgPool, n: i64) -> anyhow::Result<()> {
    eventually(
        WAIT,
        &format!("{n} dead letters"),
        || async move { Ok((dead_letter_rows(pool).await? == n).then_some(())) },
    )
    .await
}

/// Waits until a datastream holds `n` readings.
async fn readings_become(pool: &PgPool, datastream: i64, n: i64) -> anyhow::Result<()> {
    eventually(WAIT, &format!("{n} readings of datastream {datastream}"), || async move {
        Ok((readings(pool, datastream).await? == n).then_some(()))
    })
    .await
}

/// Waits until a dead letter whose payload holds `marker` is stored.
async fn dead_letter_holding(pool: &PgPool, marker: &str) -> anyhow::Result<()> {
    eventually(WAIT, &format!("the dead letter holding {marker}"), || async move {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM dead_letters WHERE strpos(encode(payload, 'escape'), $1) > 0")
                .bind(marker)
                .fetch_one(pool)
                .await?;
        Ok((n > 0).then_some(()))
    })
    .await
}

/// Waits until a datastream holds a reading at `time`.
async fn reading_at(pool: &PgPool, datastream: i64, time: &str) -> anyhow::Result<()> {
    let at = chrono::DateTime::parse_from_rfc3339(time)?.to_utc();
    eventually(WAIT, &format!("the reading at {time}"), || async move {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM observations WHERE datastream_id = $1 AND time = $2")
            .bind(datastream)
            .bind(at)
            .fetch_one(pool)
            .await?;
        Ok((n > 0).then_some(()))
    })
    .await
}

/// The ids of a report's dead letters with each result.
fn results(report: &Value) -> Vec<(i64, String, Option<String>)> {
    report["dead_letters"]
        .as_array()
        .map(|letters| {
            letters
                .iter()
                .map(|l| {
                    (
                        l["id"].as_i64().unwrap_or_default(),
                        l["result"].as_str().unwrap_or_default().to_owned(),
                        l["reason_code"].as_str().map(str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn ids(report: &Value) -> BTreeSet<i64> {
    results(report).into_iter().map(|(id, _, _)| id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_of_a_missing_datastream_are_stored_once_after_registration_and_replay() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let (api, pool) = (platform.api.clone(), platform.pool.clone());
    let temp = api.register("stadt", "luft-1", "temp", Some("Cel")).await?;
    let publisher = api.principal_key("stadt", "gateway", "publisher").await?;
    let admin = api.principal_key("stadt", "chef", "admin").await?;

    // no2 is not registered yet: an MQTT message, an HTTP push, a SenML pack
    // of which temp passes, and a text value are dead letters.
    let topic = format!("{}/stadt/luft-1/no2", platform.isolation.topic_root);
    let mut mqtt = Publisher::connect("replay").await?;
    mqtt.publish_all(vec![(topic, json!({"time": "2026-11-20T00:00:00Z", "value": 41.5}).to_string().into_bytes())])
        .await?;
    push(&api, &publisher, "stadt/luft-1/no2", json!({"time": "2026-11-20T00:01:00Z", "value": 42.0})).await?;
    let senml = json!([{"bn": "", "bt": 1_795_132_920, "n": "temp", "u": "Cel", "v": 3.5}, {"n": "no2", "v": 43.0}]);
    let request = api
        .http
        .post(format!("{}/v1/push/stadt/luft-1", api.base))
        .header("x-api-key", &publisher)
        .header("content-type", "application/senml+json")
        .body(senml.to_string());
    let (status, receipt, _) = answer(request).await?;
    assert_eq!((status, receipt["accepted"].as_u64()), (StatusCode::ACCEPTED, Some(1)), "{receipt}");
    push(&api, &publisher, "stadt/luft-1/no2", json!({"time": "2026-11-20T00:03:00Z", "value": "high"})).await?;
    dead_letters_become(&pool, 4).await?;
    readings_become(&pool, temp, 1).await?;
    let listed = api.get_json("/v1/dead-letters?org=stadt").await?;
    let doors: BTreeSet<&str> =
        listed["dead_letters"].as_array().into_iter().flatten().filter_map(|l| l["door"].as_str()).collect();
    assert_eq!(doors, BTreeSet::from(["http", "mqtt"]), "{listed}");
    assert!(listed["dead_letters"][0]["replayed_at"].is_null(), "{listed}");

    // The owner registers no2 and replays: three dead letters are stored, the text value still fails.
    let no2 = api.register("stadt", "luft-1", "no2", None).await?;
    let (status, report) = replay(&api, &admin, json!({})).await?;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (&report["selected"], &report["stored"], &report["still_rejected"], &report["readings_stored"]),
        (&json!(4), &json!(3), &json!(1), &json!(4)),
        "{report}"
    );
    let rejected: Vec<_> = results(&report).into_iter().filter(|(_, result, _)| result != "stored").collect();
    assert_eq!(rejected.len(), 1, "{report}");
    assert_eq!(rejected[0].1, "rejected", "{report}");
    // It fails as before: the text value is no number.
    let first_code = listed["dead_letters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["id"].as_i64() == Some(rejected[0].0))
        .map(|l| l["reason_code"].clone())
        .unwrap_or_default();
    assert_eq!(rejected[0].2.as_deref(), first_code.as_str(), "{report}");
    readings_become(&pool, no2, 3).await?;

    // A fresh bad reading after the replay arrives behind anything the replay could have
    // produced (dead letters are keyed by organisation, one partition): the replay made no new
    // dead letter. A fresh no2 reading likewise shows that no reading was stored twice.
    push(&api, &publisher, "stadt/luft-1/no2", json!({"time": "2026-11-20T00:04:00Z", "value": "low"})).await?;
    dead_letter_holding(&pool, "low").await?;
    assert_eq!(dead_letter_rows(&pool).await?, 5);
    push(&api, &publisher, "stadt/luft-1/no2", json!({"time": "2026-11-20T00:05:00Z", "value": 44.0})).await?;
    reading_at(&pool, no2, "2026-11-20T00:05:00Z").await?;
    assert_eq!(readings(&pool, no2).await?, 4);
    assert_eq!(readings(&pool, temp).await?, 1);

    // The rows show their replay.
    let listed = api.get_json("/v1/dead-letters?org=stadt").await?;
    let letters = listed["dead_letters"].as_array().cloned().unwrap_or_default();
    let replayed: Vec<_> = letters.iter().filter(|l| !l["replayed_at"].is_null()).collect();
    assert_eq!(replayed.len(), 4, "{listed}");
    let rejected_row = letters.iter().find(|l| l["id"].as_i64() == Some(rejected[0].0)).cloned().unwrap_or_default();
    assert_eq!(
        (&rejected_row["replay_result"], &rejected_row["replay_reason_code"]),
        (&json!("rejected"), &first_code)
    );
    assert_eq!(rejected_row["replay_count"], 1);

    // Without include_replayed, only what still fails is taken again (and the fresh one).
    let (status, report) = replay(&api, &admin, json!({})).await?;
    assert_eq!((status, &report["selected"], &report["stored"]), (StatusCode::OK, &json!(2), &json!(0)), "{report}");

    // With it, everything again: the readings are confirmed again, and stored nothing twice.
    let (status, report) = replay(&api, &admin, json!({"include_replayed": true})).await?;
    assert_eq!((status, &report["selected"], &report["stored"]), (StatusCode::OK, &json!(5), &json!(3)), "{report}");
    push(&api, &publisher, "stadt/luft-1/no2", json!({"time": "2026-11-20T00:06:00Z", "value": 45.0})).await?;
    reading_at(&pool, no2, "2026-11-20T00:06:00Z").await?;
    assert_eq!(readings(&pool, no2).await?, 5);
    assert_eq!(readings(&pool, temp).await?, 1);
    let values = crate::push::observations(&api, no2).await?;
    assert_eq!(values.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [41.5, 42.0, 43.0, 44.0, 45.0]);
    push(&api, &publisher, "stadt/luft-1/no2", json!({"time": "2026-11-20T00:07:00Z", "value": "none"})).await?;
    dead_letter_holding(&pool, "none").await?;
    assert_eq!(dead_letter_rows(&pool).await?, 6);
    let count: i32 = sqlx::query_scalar("SELECT replay_count FROM dead_letters WHERE id = $1")
        .bind(rejected[0].0)
        .fetch_one(&pool)
        .await?;
    assert_eq!(count, 3);

    drop(mqtt);
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_owners_and_the_operator_replay_by_filter_and_every_replay_is_audited() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let (api, pool) = (platform.api.clone(), platform.pool.clone());
    api.register("stadt", "luft-1", "temp", Some("Cel")).await?;
    api.register("stadt", "luft-2", "temp", Some("Cel")).await?;
    api.register("andere", "pegel", "level", Some("m")).await?;
    let publisher = api.principal_key("stadt", "gateway", "publisher").await?;
    let reader = api.principal_key("stadt", "leser", "reader").await?;
    let owner = api.principal_key("stadt", "eigner", "data_owner").await?;
    let foreign_admin = api.principal_key("andere", "chef", "admin").await?;

    // Two things, two reasons (unknown datastream, wrong unit), at two times.
    push(&api, &publisher, "stadt/luft-1/no2", json!({"time": "2026-11-20T00:00:00Z", "value": 1.0})).await?;
    push(&api, &publisher, "stadt/luft-2/no2", json!({"time": "2026-11-20T00:00:00Z", "value": 2.0})).await?;
    dead_letters_become(&pool, 2).await?;
    let between = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(10)).await;
    push(&api, &publisher, "stadt/luft-1/temp", json!({"time": "2026-11-20T00:00:00Z", "value": 3.0, "unit": "K"}))
        .await?;
    dead_letters_become(&pool, 3).await?;
    let listed = api.get_json("/v1/dead-letters?org=stadt").await?;
    let id_of = |topic_end: &str, code: &str| {
        listed["dead_letters"].as_array().into_iter().flatten().find_map(|l| {
            (l["mqtt_topic"].as_str()?.ends_with(topic_end) && l["reason_code"] == code).then(|| l["id"].as_i64())?
        })
    };
    let (luft1_no2, luft2_no2, luft1_temp) = (
        id_of("/luft-1/no2", "unknown_datastream").unwrap_or_default(),
        id_of("/luft-2/no2", "unknown_datastream").unwrap_or_default(),
        id_of("/luft-1/temp", "unit_mismatch").unwrap_or_default(),
    );

    // The listing filters as a replay selects.
    let by_thing = api.get_json("/v1/dead-letters?org=stadt&thing=luft-1").await?;
    assert_eq!(by_thing["dead_letters"].as_array().map(Vec::len), Some(2), "{by_thing}");
    let by_reason = api.get_json("/v1/dead-letters?org=stadt&reason=unit_mismatch").await?;
    assert_eq!(by_reason["dead_letters"].as_array().map(Vec::len), Some(1), "{by_reason}");

    // A reader, a publisher and another organisation's admin are refused; nothing changes.
    for (key, body) in [(&reader, json!({})), (&publisher, json!({})), (&foreign_admin, json!({"org": "stadt"}))] {
        let (status, problem) = replay(&api, key, body).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("admins and data owners")), "{problem}");
    }
    // Straight to ingest's door too.
    let direct =
        api.http.post(format!("{}/v1/dead-letters/replay", platform.doors)).bearer_auth(&reader).json(&json!({}));
    let (status, problem, _) = answer(direct).await?;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("not_data_owner")), "{problem}");

    // While Kafka is away (an ingest whose bootstrap is a closed port): 503 with Retry-After.
    let without_kafka = crate::push::spawn_ingest_without_kafka(&platform.isolation).await?;
    let request = api
        .http
        .post(format!("{}/v1/dead-letters/replay", without_kafka.doors_url))
        .bearer_auth(&owner)
        .json(&json!({}));
    let (status, problem, headers) = answer(request).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert!(headers.contains_key("retry-after"));
    assert!(problem["detail"].as_str().is_some_and(|d| d.contains("no dead letter was marked")), "{problem}");
    without_kafka.shutdown.cancel();

    // Neither the refusals nor the unconfirmed replay marked anything.
    let touched: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dead_letters WHERE replay_count > 0").fetch_one(&pool).await?;
    assert_eq!(touched, 0);

    // The data owner replays by reason, by thing, by time; each selects what it names.
    let (status, report) = replay(&api, &owner, json!({"reason": "unit_mismatch"})).await?;
    assert_eq!((status, ids(&report)), (StatusCode::OK, BTreeSet::from([luft1_temp])), "{report}");
    assert_eq!(results(&report)[0].2.as_deref(), Some("unit_mismatch"), "{report}");
    let (status, report) = replay(&api, &owner, json!({"thing": "luft-2"})).await?;
    assert_eq!((status, ids(&report)), (StatusCode::OK, BTreeSet::from([luft2_no2])), "{report}");
    let (status, report) = replay(&api, &owner, json!({"to": between.to_rfc3339(), "thing": "luft-1"})).await?;
    assert_eq!((status, ids(&report)), (StatusCode::OK, BTreeSet::from([luft1_no2])), "{report}");
    let (status, report) = replay(&api, &owner, json!({"from": between.to_rfc3339()})).await?;
    assert_eq!((status, ids(&report)), (StatusCode::OK, BTreeSet::from([luft1_temp])), "{report}");
    let (status, problem) = replay(&api, &owner, json!({"limit": 0})).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");

    // The operator names the organisation.
    let (status, problem) = replay(&api, TOKEN, json!({})).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let (status, report) = replay(&api, TOKEN, json!({"org": "stadt", "limit": 2})).await?;
    assert_eq!((status, &report["selected"]), (StatusCode::OK, &json!(2)), "{report}");

    // The command line replays through ingest's door as well, and lists the result.
    let db = platform.isolation.database_url.as_str();
    let report = admin_json(
        db,
        &["dead-letters", "replay", "--org", "stadt", "--ingest-url", &platform.doors, "--api-token", TOKEN],
    )
    .await?;
    assert_eq!((&report["selected"], &report["stored"]), (&json!(3), &json!(0)), "{report}");
    let listed = admin_json(db, &["dead-letters", "list", "--org", "stadt", "--reason", "unit_mismatch"]).await?;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["replay_result"], "rejected", "{listed}");

    // One audit record per replay that ran (four by the owner, one by the operator, the CLI's),
    // none for the refused or unconfirmed ones; the chain holds.
    let audited: Vec<(String, String)> = sqlx::query_as(
        "SELECT principal_name, after::text FROM audit_log WHERE action = 'dead_letters.replay' ORDER BY id",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(audited.len(), 6, "{audited:?}");
    assert_eq!(audited[0].0, "eigner");
    assert!(audited[0].1.contains("\"reason\":\"unit_mismatch\""), "{}", audited[0].1);
    assert_eq!(audited[4].0, "operator");
    let verification = hoheit_store::audit::verify(&pool).await?;
    assert_eq!(verification.first_broken_id, None, "{:?}", verification.problem);

    platform.stop().await
}
