//! The API keeps the access facts in memory (which dataset each datastream
//! is in, every grant, every credential's state) and reloads them when the
//! database's change counter moved. These tests change the facts on one API
//! replica (or in the database directly) and watch another replica of the
//! same database: a revoked grant, a revoked key, a disabled principal, a
//! changed classification and a new datastream must show there within a
//! second (each check polls with a deadline of a few seconds and asserts the
//! new answer). The paging of `GET /v1/datastreams` over the cached view is
//! here too.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use hoheit_tests::{eventually, start_api, ApiClient, Isolation, Running, TOKEN};
use serde_json::{json, Value};
use sqlx::PgPool;

/// How long a change may take to show, with room for a loaded machine.
const DEADLINE: Duration = Duration::from_secs(3);

/// Two API replicas on one fresh database: `a` takes the changes, `b` is watched.
struct Replicas {
    isolation: Isolation,
    pool: PgPool,
    running: Vec<Running>,
    a: ApiClient,
    b: ApiClient,
}

impl Replicas {
    async fn start() -> anyhow::Result<Self> {
        let isolation = Isolation::new();
        let pool = isolation.create_database().await?;
        let (running_a, a) = start_api(&isolation).await?;
        let (running_b, b) = start_api(&isolation).await?;
        Ok(Replicas { isolation, pool, running: vec![running_a, running_b], a, b })
    }

    async fn stop(self) -> anyhow::Result<()> {
        for running in self.running {
            running.stop().await?;
        }
        self.pool.close().await;
        self.isolation.drop_database().await;
        Ok(())
    }
}

fn id(value: &Value) -> anyhow::Result<i64> {
    value.as_i64().with_context(|| format!("{value} is not an id"))
}

async fn status_of(request: reqwest::RequestBuilder) -> anyhow::Result<u16> {
    Ok(request.send().await?.status().as_u16())
}

/// The ids `key` finds in every page of `GET /v1/datastreams` (following `next`).
async fn listed(api: &ApiClient, key: Option<&str>) -> anyhow::Result<Vec<i64>> {
    let mut ids = Vec::new();
    let mut path = "/v1/datastreams?limit=2".to_owned();
    loop {
        let response = api.get_as(key, &path).send().await?;
        anyhow::ensure!(response.status() == 200, "{path}: {}", response.status());
        let page: Value = response.json().await?;
        for stream in page["datastreams"].as_array().context("datastreams")? {
            ids.push(id(&stream["id"])?);
        }
        match page["next"].as_str() {
            Some(next) => {
                path = next.strip_prefix(&api.base).context("next is an absolute link to this API")?.to_owned()
            }
            None => return Ok(ids),
        }
    }
}

/// The ids of SensorThings' `Datastreams` as `key` sees them.
async fn sta_listed(api: &ApiClient, key: Option<&str>) -> anyhow::Result<Vec<i64>> {
    let page: Value = api.get_as(key, "/sta/v1.1/Datastreams?$top=100").send().await?.json().await?;
    page["value"].as_array().context("value")?.iter().map(|d| id(&d["@iot.id"])).collect()
}

/// Polls until `key` does (or no longer does) find `datastream` on `api`, in the listing and in SensorThings.
async fn until_listed(api: &ApiClient, key: Option<&str>, datastream: i64, shown: bool) -> anyhow::Result<()> {
    let what = format!("datastream {datastream} {} on the other replica", if shown { "shown" } else { "hidden" });
    eventually(DEADLINE, &what, || async {
        let in_list = listed(api, key).await?.contains(&datastream);
        let in_sta = sta_listed(api, key).await?.contains(&datastream);
        Ok((in_list == shown && in_sta == shown).then_some(()))
    })
    .await
}

/// A municipality `stadt-c` with a restricted dataset holding one datastream, and a third party `firma-c`.
async fn restricted_town(api: &ApiClient) -> anyhow::Result<(i64, i64)> {
    api.organisation("stadt-c", "municipality", None).await?;
    api.organisation("firma-c", "third_party", None).await?;
    let datastream = api.register("stadt-c", "zaehler-c", "vehicles", Some("count")).await?;
    let dataset = id(&api
        .post_ok(
            "/v1/admin/datasets",
            json!({"slug": "verkehr-c", "owner": "stadt-c", "title": "Verkehr", "steward_contact": "daten@stadt.example",
                   "classification": "restricted", "license": "Nutzung nach Vereinbarung", "purpose": "Planung",
                   "retention_days": 365}),
        )
        .await?["id"])?;
    api.post_ok(&format!("/v1/admin/datasets/{dataset}/datastreams"), json!({"datastream_id": datastream})).await?;
    Ok((dataset, datastream))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_revoked_on_one_replica_hides_its_dataset_on_another_within_a_second() -> anyhow::Result<()> {
    let replicas = Replicas::start().await?;
    let (a, b) = (&replicas.a, &replicas.b);
    let (dataset, datastream) = restricted_town(a).await?;
    let key = a.principal_key("firma-c", "leser-c", "reader").await?;
    assert!(!listed(b, Some(&key)).await?.contains(&datastream), "no grant: not listed");

    let until = (Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let grant = a
        .post_ok(
            "/v1/admin/grants",
            json!({"dataset_id": dataset, "grantee": "firma-c", "purpose": "Routing", "contract_ref": "C-1",
                   "valid_until": until}),
        )
        .await?;
    until_listed(b, Some(&key), datastream, true).await?;

    let revoked = a.http.delete(format!("{}/v1/admin/grants/{}", a.base, id(&grant["id"])?)).bearer_auth(TOKEN);
    assert_eq!(status_of(revoked).await?, 204);
    until_listed(b, Some(&key), datastream, false).await?;
    let one = b.get_as(Some(&key), &format!("/v1/datastreams/{datastream}")).send().await?;
    assert_eq!(one.status(), 403, "the datastream itself is refused after the revocation");

    replicas.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_classification_or_a_new_datastream_shows_on_another_replica_within_a_second() -> anyhow::Result<()> {
    let replicas = Replicas::start().await?;
    let (a, b) = (&replicas.a, &replicas.b);
    let (dataset, datastream) = restricted_town(a).await?;
    assert!(!listed(b, None).await?.contains(&datastream), "restricted: not public");

    // Changed in the database directly, as an operator's migration or the admin CLI would.
    sqlx::query("UPDATE datasets SET classification = 'open' WHERE id = $1")
        .bind(dataset)
        .execute(&replicas.pool)
        .await?;
    until_listed(b, None, datastream, true).await?;
    sqlx::query("UPDATE datasets SET classification = 'internal' WHERE id = $1")
        .bind(dataset)
        .execute(&replicas.pool)
        .await?;
    until_listed(b, None, datastream, false).await?;

    // A datastream registered on one replica is listed by the other.
    let added = a.register("stadt-c", "zaehler-c", "speed", Some("km/h")).await?;
    eventually(DEADLINE, "the new datastream listed for the operator", || async {
        Ok(listed(b, Some(TOKEN)).await?.contains(&added).then_some(()))
    })
    .await?;
    let department = a.principal_key("stadt-c", "amt-c", "reader").await?;
    until_listed(b, Some(&department), added, true).await?;

    replicas.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_or_a_principal_disabled_on_one_replica_is_refused_by_another_within_a_second(
) -> anyhow::Result<()> {
    let replicas = Replicas::start().await?;
    let (a, b) = (&replicas.a, &replicas.b);
    restricted_town(a).await?;
    for (name, end) in [("leser-k", "keys"), ("leser-p", "principals")] {
        let principal = a
            .post_ok(
                "/v1/admin/principals",
                json!({"org": "stadt-c", "name": name, "kind": "service", "role": "reader"}),
            )
            .await?;
        let principal = id(&principal["id"])?;
        let key = a.post_ok(&format!("/v1/admin/principals/{principal}/keys"), json!({})).await?;
        let secret = key["key"].as_str().context("key")?.to_owned();
        assert_eq!(status_of(b.get_as(Some(&secret), "/v1/datastreams")).await?, 200);
        let target = if end == "keys" { id(&key["id"])? } else { principal };
        let ended = a.http.delete(format!("{}/v1/admin/{end}/{target}", a.base)).bearer_auth(TOKEN);
        let status = status_of(ended).await?;
        assert!(status == 200 || status == 204, "{end}: {status}");
        eventually(DEADLINE, &format!("{name} refused by the other replica"), || async {
            let listing = status_of(b.get_as(Some(&secret), "/v1/datastreams")).await?;
            let sta = status_of(b.get_as(Some(&secret), "/sta/v1.1/Datastreams")).await?;
            Ok((listing == 401 && sta == 401).then_some(()))
        })
        .await?;
    }
    replicas.stop().await
}

#[tokio::test]
async fn datastreams_are_listed_in_pages_with_an_absolute_next_link() -> anyhow::Result<()> {
    let replicas = Replicas::start().await?;
    let a = &replicas.a;
    let (_, hidden) = restricted_town(a).await?;
    let mut open = Vec::new();
    for property in ["p1", "p2", "p3", "p4", "p5"] {
        open.push(a.register("stadt-c", "zaehler-o", property, None).await?);
    }
    let dataset = id(&a
        .post_ok(
            "/v1/admin/datasets",
            json!({"slug": "offen-c", "owner": "stadt-c", "title": "Offen", "steward_contact": "daten@stadt.example",
                   "classification": "open", "license": "http://dcat-ap.de/def/licenses/dl-zero-de/2.0",
                   "purpose": "Planung", "retention_days": 365}),
        )
        .await?["id"])?;
    for stream in &open {
        a.post_ok(&format!("/v1/admin/datasets/{dataset}/datastreams"), json!({"datastream_id": stream})).await?;
    }

    // The public: full pages of what it may see (the restricted one skipped), in id order.
    let first: Value = a.get_as(None, "/v1/datastreams?limit=2").send().await?.json().await?;
    let ids: Vec<i64> =
        first["datastreams"].as_array().context("page")?.iter().map(|d| id(&d["id"])).collect::<Result<_, _>>()?;
    assert_eq!(ids, open[..2].to_vec(), "{first}");
    let next = first["next"].as_str().context("a next link")?;
    assert_eq!(next, format!("{}/v1/datastreams?limit=2&after={}", a.base, open[1]));
    assert_eq!(listed(a, None).await?, open, "every page together: the open datastreams, each once");
    let last: Value = a.get_as(None, &format!("/v1/datastreams?after={}", open[4])).send().await?.json().await?;
    assert_eq!(last, json!({"datastreams": []}), "past the last: an empty page without next");
    let whole: Value = a.get_as(None, "/v1/datastreams?limit=5").send().await?.json().await?;
    assert!(whole.get("next").is_none(), "a page that ends the listing has no next: {whole}");
    // The operator sees the restricted one too.
    let all = listed(a, Some(TOKEN)).await?;
    assert!(all.contains(&hidden) && open.iter().all(|o| all.contains(o)), "{all:?}");

    for bad in ["limit=0", "limit=10001", "after=-1", "after=x", "page=2"] {
        let response = a.get_as(None, &format!("/v1/datastreams?{bad}")).send().await?;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{bad}");
    }
    replicas.stop().await
}
