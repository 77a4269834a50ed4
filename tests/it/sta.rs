//! The OGC SensorThings API 1.1 (read part) against a seeded small town on
//! the real database: entity sets, ids, navigation, properties and `$value`,
//! the query options, server-driven paging, the dataArray format, errors
//! with reasons, and the same access control and audit as Hoheit's own API.
//! A real client, the FROST Python client `frost-sta-client` (from
//! `$HOHEIT_TOOLS_DIR/venv`, installed by `deploy/local/hoheit tools`),
//! reads through it too.

use std::path::Path;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use hoheit_api::public_url::PublicBaseUrl;
use hoheit_domain::{DatastreamId, Micros, Reading};
use hoheit_tests::town::{small_town, SmallTown};
use hoheit_tests::{start_api, start_api_with, ApiClient, Isolation};
use serde_json::{json, Value};
use sqlx::PgPool;

const STA: &str = "/sta/v1.1";

async fn get(api: &ApiClient, key: Option<&str>, path: &str) -> (u16, Value) {
    let response = api.get_as(key, &format!("{STA}/{path}")).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn ok(api: &ApiClient, key: Option<&str>, path: &str) -> Value {
    let (status, body) = get(api, key, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn ids(page: &Value) -> Vec<i64> {
    page["value"].as_array().unwrap().iter().map(|e| e["@iot.id"].as_i64().unwrap()).collect()
}

fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn stored(pool: &PgPool, datastream: i64) -> Vec<(DateTime<Utc>, f64)> {
    sqlx::query_as("SELECT time, value FROM observations WHERE datastream_id = $1 ORDER BY time")
        .bind(datastream)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// The small town on a fresh database behind an API, and the readings stored in its traffic
/// counting station: what every test of the standard's read part starts from.
struct Seeded {
    isolation: Isolation,
    pool: PgPool,
    running: hoheit_tests::Running,
    api: ApiClient,
    town: SmallTown,
    readings: Vec<(DateTime<Utc>, f64)>,
}

impl Seeded {
    async fn start() -> Self {
        let isolation = Isolation::new();
        let pool = isolation.create_database().await.unwrap();
        let (running, api) = start_api(&isolation).await.unwrap();
        let town = small_town(&api, &pool).await.unwrap();
        let readings = stored(&pool, town.counts).await;
        assert_eq!(readings.len(), 48);
        Self { isolation, pool, running, api, town, readings }
    }

    /// The thing that holds the counting station's datastream, and its id.
    async fn counting_station(&self) -> (Value, i64) {
        let owner = ok(&self.api, None, &format!("Datastreams({})/Thing", self.town.counts)).await;
        let owner_id = owner["@iot.id"].as_i64().unwrap();
        (owner, owner_id)
    }

    async fn stop(self) {
        self.running.stop().await.unwrap();
        self.isolation.drop_database().await;
    }
}

#[tokio::test]
async fn the_service_root_names_every_entity_set() {
    let s = Seeded::start().await;
    // The service root names every entity set.
    let root: Value = s.api.get_as(None, STA).send().await.unwrap().json().await.unwrap();
    let sets: Vec<&str> = root["value"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    // Written with a trailing slash, as clients that join paths to a base URL ask for it, the same.
    let slashed: Value = s.api.get_as(None, &format!("{STA}/")).send().await.unwrap().json().await.unwrap();
    assert_eq!(slashed, root);
    for set in [
        "Things",
        "Locations",
        "HistoricalLocations",
        "Datastreams",
        "Sensors",
        "ObservedProperties",
        "Observations",
        "FeaturesOfInterest",
    ] {
        assert!(sets.contains(&set), "{set} in {sets:?}");
    }
    s.stop().await;
}

#[tokio::test]
async fn entities_have_ids_absolute_self_links_and_navigation_links() {
    let s = Seeded::start().await;
    // Entities with @iot.id, absolute @iot.selfLink and navigation links.
    let things = ok(&s.api, None, "Things").await;
    assert_eq!(things["value"].as_array().unwrap().len(), 2);
    let thing = &things["value"][0];
    let thing_id = thing["@iot.id"].as_i64().unwrap();
    assert_eq!(thing["@iot.selfLink"], format!("{}{STA}/Things({thing_id})", s.api.base));
    assert_eq!(thing["Datastreams@iot.navigationLink"], format!("{}{STA}/Things({thing_id})/Datastreams", s.api.base));
    assert_eq!(thing["properties"]["organisation"], "stadt");
    s.stop().await;
}

#[tokio::test]
async fn the_public_sees_only_open_datastreams_and_a_department_its_internal_ones_too() {
    let s = Seeded::start().await;
    // Anonymous: only open datastreams (the internal `load` is not there at all).
    let mut open = ids(&ok(&s.api, None, "Datastreams").await);
    open.sort();
    let mut expected = vec![s.town.counts, s.town.temperature];
    let counts2: i64 = sqlx::query_scalar("SELECT id FROM datastreams WHERE id NOT IN ($1, $2, $3)")
        .bind(s.town.counts)
        .bind(s.town.temperature)
        .bind(s.town.load)
        .fetch_one(&s.pool)
        .await
        .unwrap();
    expected.push(counts2);
    expected.sort();
    assert_eq!(open, expected);
    let (status, problem) = get(&s.api, None, &format!("Datastreams({})", s.town.load)).await;
    assert_eq!(status, 404, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("visible"), "{problem}");
    let (status, _) = get(&s.api, None, &format!("Datastreams({})/Observations", s.town.load)).await;
    assert_eq!(status, 404);
    // The department (same municipality) sees the internal one too.
    let department = ids(&ok(&s.api, Some(&s.town.department_key), "Datastreams").await);
    assert!(department.contains(&s.town.load), "{department:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_datastream_is_written_as_the_standard_says() {
    let s = Seeded::start().await;
    // A datastream as the standard writes it.
    let ds = ok(&s.api, None, &format!("Datastreams({})", s.town.counts)).await;
    assert_eq!(ds["@iot.id"], s.town.counts);
    assert_eq!(ds["unitOfMeasurement"]["symbol"], "count");
    assert_eq!(ds["observationType"], "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement");
    assert_eq!(ds["properties"]["classification"], "open");
    assert!(ds["Observations@iot.navigationLink"]
        .as_str()
        .unwrap()
        .ends_with(&format!("Datastreams({})/Observations", s.town.counts)));
    // One in no dataset names none, and no member is null.
    let loose = s.api.register("stadt", "lose", "level", None).await.unwrap();
    let ds = s.api.get_json(&format!("{STA}/Datastreams({loose})")).await.unwrap();
    assert_eq!(ds["properties"], json!({"organisation": "stadt", "thing": "lose", "property": "level"}));
    assert_eq!(ds["unitOfMeasurement"], json!({"name": "", "symbol": "", "definition": ""}));
    s.stop().await;
}

#[tokio::test]
async fn navigation_and_property_paths_with_value() {
    let s = Seeded::start().await;
    let (owner, owner_id) = s.counting_station().await;
    // Navigation, single and collection, and property paths with $value.
    let of_thing = ids(&ok(&s.api, None, &format!("Things({owner_id})/Datastreams")).await);
    assert_eq!(of_thing, vec![s.town.counts], "the internal datastream of the same thing stays hidden");
    let name = ok(&s.api, None, &format!("Things({owner_id})/name")).await;
    assert_eq!(name["name"], owner["name"]);
    let raw = s.api.get_as(None, &format!("{STA}/Things({owner_id})/name/$value")).send().await.unwrap();
    assert!(raw.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(raw.text().await.unwrap(), owner["name"].as_str().unwrap());
    let property = ok(&s.api, None, &format!("Datastreams({})/ObservedProperty", s.town.counts)).await;
    assert_eq!(property["name"], "vehicles");
    let same_property =
        ids(&ok(&s.api, None, &format!("ObservedProperties({})/Datastreams", property["@iot.id"])).await);
    assert_eq!(same_property.len(), 2, "both counting stations measure vehicles");
    let location = ok(&s.api, None, &format!("Things({owner_id})/Locations")).await;
    assert_eq!(location["value"][0]["location"]["type"], "Point");
    assert_eq!(location["value"][0]["encodingType"], "application/geo+json");
    s.stop().await;
}

#[tokio::test]
async fn observations_are_ordered_counted_and_paged_by_the_server() {
    let s = Seeded::start().await;
    let newest = s.readings.last().unwrap();
    // Observations: ordering, $top/$skip, $count, and server-driven paging.
    let path =
        format!("Datastreams({})/Observations?$orderby=phenomenonTime%20desc&$top=10&$count=true", s.town.counts);
    let page = ok(&s.api, None, &path).await;
    assert_eq!(page["@iot.count"], 48);
    let values = page["value"].as_array().unwrap();
    assert_eq!(values.len(), 10);
    assert_eq!(values[0]["result"], newest.1);
    assert_eq!(DateTime::parse_from_rfc3339(values[0]["phenomenonTime"].as_str().unwrap()).unwrap(), newest.0);
    assert_eq!(values[0]["resultTime"], values[0]["phenomenonTime"]);
    let mut seen = values.len();
    let mut next = page["@iot.nextLink"].as_str().map(str::to_owned);
    while let Some(link) = next {
        assert!(
            link.starts_with(&format!("{}{STA}/Datastreams({})/Observations?", s.api.base, s.town.counts)),
            "{link}"
        );
        let page: Value =
            s.api.get_as(None, link.trim_start_matches(&s.api.base)).send().await.unwrap().json().await.unwrap();
        seen += page["value"].as_array().unwrap().len();
        next = page["@iot.nextLink"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, 48, "paging returns every reading once");
    s.stop().await;
}

#[tokio::test]
async fn filters_compare_combine_compute_and_match_strings_navigation_and_geography() {
    let s = Seeded::start().await;
    let (_, owner_id) = s.counting_station().await;
    // $filter: comparison, logic, arithmetic and time, checked against the database.
    let since = s.readings[20].0;
    let filter = format!("result ge 3 and phenomenonTime ge {} and result mul 2 lt 11", iso(since));
    let page =
        ok(&s.api, None, &format!("Datastreams({})/Observations?$filter={}&$top=100", s.town.counts, enc(&filter)))
            .await;
    let want = s.readings.iter().filter(|(t, v)| *v >= 3.0 && *t >= since && v * 2.0 < 11.0).count();
    assert_eq!(page["value"].as_array().unwrap().len(), want);
    assert!(want > 0);
    // Functions on strings, navigation in filters, geography.
    let page =
        ok(&s.api, None, &format!("Things?$filter={}", enc("startswith(name, 'Zählstelle') and endswith(name, '2')")))
            .await;
    assert_eq!(page["value"].as_array().unwrap().len(), 1);
    let page = ok(&s.api, None, &format!("Datastreams?$filter={}", enc("Thing/name eq 'Zählstelle zaehler-2'"))).await;
    assert_eq!(page["value"].as_array().unwrap().len(), 2);
    let polygon = "geography'POLYGON((13.81 52.82, 13.83 52.82, 13.83 52.84, 13.81 52.84, 13.81 52.82))'";
    let page =
        ok(&s.api, None, &format!("Locations?$filter={}", enc(&format!("geo.intersects(location, {polygon})")))).await;
    assert_eq!(ids(&page), vec![owner_id], "only zaehler-1 (13.8203, 52.8301) lies inside");
    let page = ok(
        &s.api,
        None,
        &format!(
            "Observations?$filter={}&$top=1000",
            enc(&format!("Datastream/id eq {} and result eq 6", s.town.counts))
        ),
    )
    .await;
    assert_eq!(page["value"].as_array().unwrap().len(), s.readings.iter().filter(|(_, v)| *v == 6.0).count());
    s.stop().await;
}

#[tokio::test]
async fn select_and_nested_expand_give_the_latest_value_per_datastream() {
    let s = Seeded::start().await;
    let (_, owner_id) = s.counting_station().await;
    let newest = s.readings.last().unwrap();
    let ds = ok(&s.api, None, &format!("Datastreams({})", s.town.counts)).await;
    // $select and $expand (nested, with options): the latest value per datastream.
    let page = ok(&s.api, None, &format!("Datastreams({})/Observations?$select=result&$top=2", s.town.counts)).await;
    let keys: Vec<&String> = page["value"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["result"]);
    let expand =
        enc("Datastreams($select=id,name;$expand=Observations($top=1;$orderby=phenomenonTime desc)),Locations");
    let page = ok(&s.api, None, &format!("Things({owner_id})?$expand={expand}")).await;
    let expanded = page["Datastreams"].as_array().unwrap();
    assert_eq!(expanded.len(), 1);
    assert_eq!(expanded[0]["Observations"][0]["result"], newest.1);
    assert!(expanded[0].get("description").is_none(), "$select inside $expand");
    assert_eq!(page["Locations"].as_array().unwrap().len(), 1);
    let page = ok(
        &s.api,
        None,
        &format!(
            "Observations?$top=3&$expand=Datastream($select=name),FeatureOfInterest&$filter={}",
            enc(&format!("Datastream/id eq {}", s.town.counts))
        ),
    )
    .await;
    assert_eq!(page["value"][0]["Datastream"]["name"], ds["name"]);
    assert_eq!(page["value"][0]["FeatureOfInterest"]["feature"]["type"], "Point");
    // Three observations of one datastream: each gets its own copy of the expansion (the last one
    // takes the fetched children, the others a copy).
    let observations = page["value"].as_array().unwrap();
    assert_eq!(observations.len(), 3);
    for observation in observations {
        assert_eq!(observation["Datastream"]["name"], ds["name"], "{observation}");
        assert_eq!(observation["FeatureOfInterest"]["feature"]["type"], "Point", "{observation}");
    }
    s.stop().await;
}

#[tokio::test]
async fn one_observation_by_its_id_and_the_data_array_format() {
    let s = Seeded::start().await;
    // One observation by its id, and the dataArray format.
    let first = &ok(&s.api, None, &format!("Datastreams({})/Observations?$top=1", s.town.counts)).await["value"][0];
    let one = ok(&s.api, None, &format!("Observations('{}')", first["@iot.id"].as_str().unwrap())).await;
    assert_eq!(one["result"], first["result"]);
    let array = ok(
        &s.api,
        None,
        &format!(
            "Datastreams({})/Observations?$resultFormat=dataArray&$select=phenomenonTime,result&$top=5",
            s.town.counts
        ),
    )
    .await;
    assert_eq!(array["value"][0]["components"], json!(["phenomenonTime", "result"]));
    assert_eq!(array["value"][0]["dataArray"].as_array().unwrap().len(), 5);
    assert_eq!(array["value"][0]["dataArray@iot.count"], 5);
    s.stop().await;
}

#[tokio::test]
async fn errors_say_what_is_wrong_and_injection_attempts_are_only_data() {
    let s = Seeded::start().await;
    // Errors say what is wrong; injection attempts are only data.
    for (path, status, says) in [
        ("Frobs", 404, "no entity set"),
        ("Things(1)/Frobs", 404, "no navigation or property"),
        ("Things?$filter=name%20eq", 400, "$filter"),
        ("Things?$filter=name%20eq%203", 400, "cannot compare"),
        ("Things?$top=ten", 400, "whole number"),
        ("Things?$expand=Observations", 400, "no navigation"),
        ("Things?$orderby=colour", 400, "no property"),
        ("Things?$frobnicate=1", 400, "unknown query option"),
        ("Things/Datastreams", 400, "follows a collection"),
        ("Things(x)", 400, "not an id"),
        ("Things?$filter=substring(name,%201e20)%20eq%20'x'", 400, "cannot be evaluated"),
        ("Observations?$filter=year(phenomenonTime)%20eq%20'x'", 400, "cannot compare"),
    ] {
        let (got, problem) = get(&s.api, None, path).await;
        assert_eq!(got, status, "{path}: {problem}");
        assert!(problem["detail"].as_str().unwrap_or_default().contains(says), "{path}: {problem}");
    }
    let page = ok(&s.api, None, &format!("Things?$filter={}", enc("name eq 'x'' or 1 eq 1 or name eq ''y'"))).await;
    assert_eq!(page["value"].as_array().unwrap().len(), 0);
    assert_eq!(sqlx::query_scalar::<_, i64>("SELECT count(*) FROM things").fetch_one(&s.pool).await.unwrap(), 2);
    s.stop().await;
}

#[tokio::test]
async fn every_read_of_observations_is_audited_like_on_hoheits_own_api() {
    let s = Seeded::start().await;
    // Eight reads of observations, each returning rows.
    for skip in 0..8 {
        ok(&s.api, None, &format!("Datastreams({})/Observations?$top=5&$skip={}", s.town.counts, skip * 5)).await;
    }
    // Every read of observations is audited, like on Hoheit's own API.
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'sta:observations' AND dataset_id = $1 AND decision = 'allow' AND rows_returned > 0",
    )
    .bind(s.town.verkehr)
    .fetch_one(&s.pool)
    .await
    .unwrap();
    assert!(audited >= 8, "observation reads are audited ({audited})");
    s.stop().await;
}

/// The town's parking garage, a thing with one datastream (a count) per property; their ids.
async fn parking_garage(api: &ApiClient, properties: &[&str]) -> Vec<i64> {
    api.post_ok(
        "/v1/admin/things",
        json!({"org": "stadt", "slug": "parkhaus", "name": "Parkhaus Mitte", "latitude": 52.83, "longitude": 13.82}),
    )
    .await
    .unwrap();
    let mut streams = Vec::new();
    for property in properties {
        let body = api
            .post_ok(
                "/v1/admin/datastreams",
                json!({"org": "stadt", "thing": "parkhaus", "property": property, "name": property, "unit": "count"}),
            )
            .await
            .unwrap();
        streams.push(body["id"].as_i64().unwrap());
    }
    streams
}

#[tokio::test]
async fn grants_limit_what_a_third_party_reads_through_sensorthings() {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await.unwrap();
    let (running, api) = start_api(&isolation).await.unwrap();
    let _town = small_town(&api, &pool).await.unwrap();
    // Two restricted datasets of the town: parking (raw, last day only) and rides (15-minute aggregates only).
    let streams = parking_garage(&api, &["free", "rides"]).await;
    let (free, rides) = (streams[0], streams[1]);
    let mut datasets = Vec::new();
    for (slug, stream) in [("parken", free), ("fahrten", rides)] {
        let body = api
            .post_ok(
                "/v1/admin/datasets",
                json!({"slug": slug, "owner": "stadt", "title": slug, "steward_contact": "daten@stadt.example",
                       "classification": "restricted", "license": "http://dcat-ap.de/def/licenses/other-closed",
                       "purpose": "Parkraum", "retention_days": 365}),
            )
            .await
            .unwrap();
        let id = body["id"].as_i64().unwrap();
        api.post_ok(&format!("/v1/admin/datasets/{id}/datastreams"), json!({"datastream_id": stream})).await.unwrap();
        datasets.push(id);
    }
    let now = Utc::now();
    let rows: Vec<Reading> = (0..72)
        .flat_map(|h| {
            let t = Micros::from_datetime(now - Duration::hours(h) - Duration::minutes(5));
            [
                Reading { datastream: DatastreamId(free), time: t, value: h as f64 },
                Reading { datastream: DatastreamId(rides), time: t, value: 1.0 },
            ]
        })
        .collect();
    hoheit_store::observations::insert(&mut pool.acquire().await.unwrap(), &rows).await.unwrap();
    let until = iso(now + Duration::days(30));
    api.post_ok("/v1/admin/grants", json!({"dataset_id": datasets[0], "grantee": "movi", "purpose": "Parkleitsystem", "contract_ref": "V-1", "history_days": 1, "valid_until": until})).await.unwrap();
    api.post_ok("/v1/admin/grants", json!({"dataset_id": datasets[1], "grantee": "movi", "purpose": "Statistik", "contract_ref": "V-2", "min_interval_mins": 15, "valid_until": until})).await.unwrap();
    let key = api.principal_key("movi", "movi-app", "reader").await.unwrap();
    let key = Some(key.as_str());

    // Anonymous sees neither.
    let (status, _) = get(&api, None, &format!("Datastreams({free})")).await;
    assert_eq!(status, 404);
    // The third party sees both datastreams' metadata …
    let visible = ids(&ok(&api, key, "Datastreams").await);
    assert!(visible.contains(&free) && visible.contains(&rides), "{visible:?}");
    // … reads raw parking data only within its window, and is told why otherwise.
    let (status, problem) = get(&api, key, &format!("Datastreams({free})/Observations")).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["code"], "outside_grant_window", "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("SensorThings: restrict the time with $filter"), "a hint follows the reason: {detail}");
    let filter = enc(&format!("phenomenonTime ge {}", iso(now - Duration::hours(12))));
    let page = ok(&api, key, &format!("Datastreams({free})/Observations?$filter={filter}")).await;
    assert_eq!(page["value"].as_array().unwrap().len(), 12);
    // Raw rides are never released: aggregates only.
    let (status, problem) = get(&api, key, &format!("Datastreams({rides})/Observations?$filter={filter}")).await;
    assert_eq!(status, 403);
    assert_eq!(problem["code"], "raw_not_granted", "{problem}");
    // Across datastreams, only what may be read is in the collection.
    let page = ok(&api, key, &format!("Observations?$filter={filter}&$top=1000")).await;
    let streams: std::collections::BTreeSet<String> = page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["@iot.id"].as_str().unwrap().split('-').next().unwrap().to_owned())
        .collect();
    assert!(streams.contains(&free.to_string()) && !streams.contains(&rides.to_string()), "{streams:?}");

    // Denials and reads are audited with the grant.
    let denied: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE dataset_id = $1 AND decision = 'deny' AND action = 'sta:observations'",
    )
    .bind(datasets[1])
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(denied, 1);
    let granted: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE dataset_id = $1 AND decision = 'allow' AND grant_id IS NOT NULL AND rows_returned = 12")
        .bind(datasets[0])
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(granted, 2, "the path read and the collection read");

    running.stop().await.unwrap();
    isolation.drop_database().await;
}

use hoheit_tests::tools_python as python;

#[tokio::test]
async fn the_frost_python_client_reads_through_it() {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await.unwrap();
    let (running, api) = start_api(&isolation).await.unwrap();
    let town = small_town(&api, &pool).await.unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/sta_client.py");
    let output = tokio::process::Command::new(python())
        .arg(script)
        .arg(format!("{}{STA}", api.base))
        .arg(town.counts.to_string())
        .env("HOHEIT_KEY", &town.department_key)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "frost-sta-client failed: {}", String::from_utf8_lossy(&output.stderr));
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();

    assert_eq!(seen["things"], json!(["Zählstelle zaehler-1", "Zählstelle zaehler-2"]));
    // The department (same municipality) sees the internal datastream as well.
    let of_first = seen["datastreams_per_thing"]["Zählstelle zaehler-1"].as_array().unwrap().len();
    assert_eq!(of_first, 2);
    assert_eq!(seen["datastream"]["id"], town.counts);
    assert_eq!(seen["datastream"]["unit"], "count");
    // All 48 readings through 7 pages of nextLinks, in order, as stored.
    let readings = stored(&pool, town.counts).await;
    let observations = seen["observations"].as_array().unwrap();
    assert_eq!(observations.len(), readings.len());
    for (got, (time, value)) in observations.iter().zip(&readings) {
        assert_eq!(DateTime::parse_from_rfc3339(got[0].as_str().unwrap()).unwrap(), *time);
        assert_eq!(got[1].as_f64().unwrap(), *value);
    }
    assert_eq!(seen["result_ge_3"], readings.iter().filter(|(_, v)| *v >= 3.0).count());
    assert_eq!(seen["found"][1].as_f64().unwrap(), readings[0].1);

    running.stop().await.unwrap();
    isolation.drop_database().await;
}

/// The problem of a refused request: status and reason.
async fn refused(api: &ApiClient, key: Option<&str>, path: &str) -> (u16, String) {
    let (status, problem) = get(api, key, path).await;
    (status, problem["detail"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn expansion_and_expressions_are_bounded_before_any_query_runs() {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await.unwrap();
    let (running, api) = start_api(&isolation).await.unwrap();
    let town = small_town(&api, &pool).await.unwrap();

    // The worst case, anonymous: 1,000 things × 1,000 datastreams × 1,000 readings, each with its
    // datastream again (2·10⁹ entities had the data been there): refused with the limit, not built.
    let worst = enc("Datastreams($top=1000;$expand=Observations($top=1000;$expand=Datastream)),Locations($top=1000)");
    let (status, detail) = refused(&api, None, &format!("Things?$top=1000&$expand={worst}")).await;
    assert_eq!(status, 400, "{detail}");
    assert!(detail.contains("at most 10000 entities") && detail.contains("2002001"), "{detail}");
    // Deeper nesting than three levels is refused whatever the $top.
    let (status, detail) =
        refused(&api, None, &format!("Datastreams?$expand={}", enc("Thing/Datastreams/Thing/Datastreams"))).await;
    assert_eq!(status, 400, "{detail}");
    assert!(detail.contains("at most 3 levels"), "{detail}");

    // A reasonable expansion still works: things with their latest readings and positions
    // (up to 1 + 100 × 2 + 100 entities each, so 33 things a page).
    let latest = enc("Datastreams($expand=Observations($top=1;$orderby=phenomenonTime desc)),Locations");
    let page = ok(&api, None, &format!("Things?$expand={latest}")).await;
    assert_eq!(page["value"].as_array().unwrap().len(), 2);
    assert!(page.get("@iot.nextLink").is_none(), "{page}");
    let newest = stored(&pool, town.counts).await.last().unwrap().1;
    let streams: Vec<&Value> =
        page["value"].as_array().unwrap().iter().flat_map(|t| t["Datastreams"].as_array().unwrap()).collect();
    let counts = streams.iter().find(|d| d["@iot.id"] == town.counts).unwrap();
    assert_eq!(counts["Observations"][0]["result"], newest);
    // A page whose expansion could pass the bound is served in smaller pages, with nextLinks that
    // keep the client's $top: each reading with up to 1 + 1 + 1,000 entities is 9 a page.
    let expand = enc("Datastream($expand=Observations($top=1000))");
    let page = ok(&api, None, &format!("Observations?$top=100&$expand={expand}")).await;
    assert_eq!(page["value"].as_array().unwrap().len(), 9, "10000 / 1002");
    assert_eq!(page["value"][0]["Datastream"]["Observations"].as_array().unwrap().len(), 48);
    let mut seen: Vec<String> = Vec::new();
    let mut next = Some(format!("{}{STA}/Observations?$top=100&$expand={expand}", api.base));
    while let Some(link) = next {
        let page = ok(&api, None, link.trim_start_matches(&format!("{}{STA}/", api.base))).await;
        seen.extend(page["value"].as_array().unwrap().iter().map(|o| o["@iot.id"].as_str().unwrap().to_owned()));
        next = page["@iot.nextLink"].as_str().map(str::to_owned);
        if let Some(link) = &next {
            assert!(link.contains("%24top=100&"), "{link}");
        }
    }
    let readable = 48 + 4;
    assert_eq!(seen.len(), readable, "every reading once, in pages of 9");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), readable);

    // $filter: 8 navigations (each a subquery per row) are refused before running, 6 still run.
    let path_of = |n: usize| vec!["Datastream/Thing/name eq 'x'"; n].join(" or ");
    let (status, detail) = refused(&api, None, &format!("Observations?$filter={}", enc(&path_of(4)))).await;
    assert_eq!(status, 400, "{detail}");
    assert!(detail.contains("8 navigations") && detail.contains("at most 6"), "{detail}");
    ok(&api, None, &format!("Observations?$filter={}", enc(&path_of(3)))).await;
    // … inside $expand too, and expressions of more than 100 parts.
    let (status, detail) =
        refused(&api, None, &format!("Datastreams?$expand=Observations($filter={})", enc(&path_of(4)))).await;
    assert_eq!(status, 400, "{detail}");
    assert!(detail.contains("at most 6"), "{detail}");
    let long = vec!["result eq 1"; 26].join(" or ");
    let (status, detail) = refused(&api, None, &format!("Observations?$filter={}", enc(&long))).await;
    assert_eq!(status, 400, "{detail}");
    assert!(detail.contains("at most 100"), "{detail}");
    // $orderby: at most 5 terms, and the same bound on navigations.
    let (status, detail) = refused(
        &api,
        None,
        &format!("Observations?$orderby={}", enc("result, phenomenonTime, resultTime, id, result desc, id desc")),
    )
    .await;
    assert_eq!(status, 400, "{detail}");
    assert!(detail.contains("at most 5 terms"), "{detail}");
    let order = enc("Datastream/Thing/name, Datastream/Thing/id, Datastream/Thing/description, Datastream/name");
    let (status, detail) = refused(&api, None, &format!("Observations?$orderby={order}")).await;
    assert_eq!(status, 400, "{detail}");
    assert!(detail.contains("at most 6"), "{detail}");

    running.stop().await.unwrap();
    isolation.drop_database().await;
}

#[tokio::test]
async fn collections_read_under_a_grant_keep_its_rate_and_are_audited_with_it() {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await.unwrap();
    let (running, api) = start_api(&isolation).await.unwrap();
    let _town = small_town(&api, &pool).await.unwrap();
    // A restricted parking dataset of two datastreams, granted raw to the third party at 3 requests a minute.
    let streams = parking_garage(&api, &["free", "occupied"]).await;
    let body = api
        .post_ok(
            "/v1/admin/datasets",
            json!({"slug": "parken", "owner": "stadt", "title": "Parken", "steward_contact": "daten@stadt.example",
                   "classification": "restricted", "license": "http://dcat-ap.de/def/licenses/other-closed",
                   "purpose": "Parkraum", "retention_days": 365}),
        )
        .await
        .unwrap();
    let dataset = body["id"].as_i64().unwrap();
    for stream in &streams {
        api.post_ok(&format!("/v1/admin/datasets/{dataset}/datastreams"), json!({"datastream_id": stream}))
            .await
            .unwrap();
    }
    let now = Utc::now();
    let rows: Vec<Reading> = (0..6)
        .flat_map(|h| {
            let t = Micros::from_datetime(now - Duration::hours(h) - Duration::minutes(5));
            streams.iter().map(move |s| Reading { datastream: DatastreamId(*s), time: t, value: h as f64 })
        })
        .collect();
    hoheit_store::observations::insert(&mut pool.acquire().await.unwrap(), &rows).await.unwrap();
    let until = iso(now + Duration::days(30));
    let grant = api
        .post_ok(
            "/v1/admin/grants",
            json!({"dataset_id": dataset, "grantee": "movi", "purpose": "Parkleitsystem", "contract_ref": "V-7",
                   "rate_per_minute": 3, "valid_until": until}),
        )
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let key = api.principal_key("movi", "movi-app", "reader").await.unwrap();
    let key = Some(key.as_str());

    // Metadata is not a read under the grant.
    for _ in 0..4 {
        ok(&api, key, "Datastreams").await;
    }
    // Collections spanning both datastreams count against the grant's rate: three, then 429.
    let filter = enc(&format!("phenomenonTime ge {}", iso(now - Duration::days(1))));
    let collection = format!("Observations?$filter={filter}&$top=1000");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, body) = get(&api, key, &collection).await;
        if status == 200 {
            let read: std::collections::BTreeSet<i64> = body["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["@iot.id"].as_str().unwrap().split('-').next().unwrap().parse().unwrap())
                .collect();
            assert!(streams.iter().all(|s| read.contains(s)), "both datastreams of the dataset: {read:?}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    // An expansion into observations is a read under the grant too.
    let (status, detail) =
        refused(&api, key, &format!("Things?$expand=Datastreams/Observations($filter={filter};$top=10)")).await;
    assert_eq!(status, 429, "{detail}");
    assert!(detail.contains(&format!("grant {grant} allows 3 requests per minute")), "{detail}");

    // Each allowed read is audited once for the dataset, with the grant, although it spans two datastreams.
    let audited: Vec<(Option<i64>, Option<i64>, i64)> = sqlx::query_as(
        "SELECT grant_id, datastream_id, rows_returned FROM audit_log
         WHERE dataset_id = $1 AND action = 'sta:observations' AND decision = 'allow' ORDER BY id",
    )
    .bind(dataset)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(audited, vec![(Some(grant), None, 12); 3]);

    running.stop().await.unwrap();
    isolation.drop_database().await;
}

#[tokio::test]
async fn links_start_with_the_configured_public_base_url_whatever_the_host_header() {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await.unwrap();
    let public = "https://daten.stadt.example/hoheit";
    let (running, api) = start_api_with(&isolation, |api| {
        api.public_base_url = Some(PublicBaseUrl::parse("https://daten.stadt.example/hoheit/").unwrap())
    })
    .await
    .unwrap();
    let town = small_town(&api, &pool).await.unwrap();
    let evil = |path: &str| {
        api.get_as(None, path)
            .header("host", "evil.example")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "evil.example")
    };
    let json = |response: reqwest::Response| async move {
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()
    };

    let root = json(evil(STA).send().await.unwrap()).await;
    let page =
        json(evil(&format!("{STA}/Datastreams({})/Observations?$top=5", town.counts)).send().await.unwrap()).await;
    let thing = json(evil(&format!("{STA}/Things?$top=1")).send().await.unwrap()).await;
    let mut links: Vec<String> =
        root["value"].as_array().unwrap().iter().map(|s| s["url"].as_str().unwrap().to_owned()).collect();
    links.push(page["@iot.nextLink"].as_str().unwrap().to_owned());
    links.push(page["value"][0]["@iot.selfLink"].as_str().unwrap().to_owned());
    links.push(page["value"][0]["Datastream@iot.navigationLink"].as_str().unwrap().to_owned());
    links.push(thing["value"][0]["Datastreams@iot.navigationLink"].as_str().unwrap().to_owned());
    assert_eq!(links.len(), 8 + 4);
    for link in &links {
        assert!(link.starts_with(&format!("{public}{STA}/")), "{link}");
    }
    assert_eq!(links[0], format!("{public}{STA}/Things"));

    // The open data catalog and downloads name the same base.
    let catalog = evil("/opendata/catalog").send().await.unwrap().text().await.unwrap();
    assert!(!catalog.contains("evil.example"), "{catalog}");
    assert!(catalog.contains(&format!("<{public}/opendata/datasets/verkehrszaehlung>")), "{catalog}");
    assert!(catalog.contains(&format!("{public}{STA}")), "{catalog}");
    let download = json(evil("/opendata/datasets/verkehrszaehlung.json").send().await.unwrap()).await;
    assert_eq!(download["catalog"], format!("{public}/opendata/datasets/verkehrszaehlung"));

    running.stop().await.unwrap();

    // Unset, the base is the address the API listens on, not the Host header.
    let (running, api) = start_api(&isolation).await.unwrap();
    let root: Value = api.get_as(None, STA).header("host", "evil.example").send().await.unwrap().json().await.unwrap();
    assert_eq!(root["value"][0]["url"], format!("{}{STA}/Things", api.base));
    running.stop().await.unwrap();

    // A base URL that is not an http(s) URL without a query is refused at start.
    for bad in ["daten.stadt.example", "ftp://daten.stadt.example", "https://daten.stadt.example/?a=1"] {
        let parsed = <hoheit_api::ApiConfig as clap::Parser>::try_parse_from([
            "hoheit-api",
            "--token",
            "token-for-the-config-test-0123",
            "--public-base-url",
            bad,
        ]);
        let error = parsed.err().unwrap_or_else(|| panic!("{bad} accepted")).to_string();
        assert!(error.contains("public base URL") || error.contains("absolute URL"), "{error}");
    }
    isolation.drop_database().await;
}

#[tokio::test]
async fn filters_name_ids_as_iot_id_and_look_into_collections_as_frost_does() {
    let s = Seeded::start().await;
    let (_, owner_id) = s.counting_station().await;
    let filtered = |entity: &str, filter: &str| format!("{entity}?$filter={}&$top=1000", enc(filter));
    // `@iot.id` names the id in paths, as it does in the resource path.
    let page = ok(&s.api, None, &filtered("Observations", &format!("Datastream/@iot.id eq {}", s.town.counts))).await;
    assert_eq!(page["value"].as_array().unwrap().len(), 48);
    let page = ok(&s.api, None, &format!("Datastreams?$orderby={}", enc("@iot.id desc"))).await;
    let descending = ids(&page);
    assert!(descending.windows(2).all(|w| w[0] > w[1]), "{descending:?}");
    assert_eq!(
        ids(&ok(&s.api, None, &filtered("Datastreams", &format!("Thing/@iot.id eq {owner_id}"))).await),
        vec![s.town.counts]
    );

    // A condition through a collection holds if any related entity satisfies it …
    let zaehler_2 =
        ids(&ok(&s.api, None, &filtered("Things", "Datastreams/ObservedProperty/name eq 'temperature'")).await);
    assert_eq!(zaehler_2.len(), 1);
    assert_ne!(zaehler_2[0], owner_id);
    let both = ok(&s.api, None, &filtered("Things", "Datastreams/ObservedProperty/name eq 'vehicles'")).await;
    assert_eq!(ids(&both), vec![owner_id, zaehler_2[0]]);
    // … written as a lambda too, with `all` for every related entity, and `any()` for at least one.
    let any = "Datastreams/any(d: d/ObservedProperty/name eq 'temperature' and d/unitOfMeasurement/symbol eq 'Cel')";
    assert_eq!(ids(&ok(&s.api, None, &filtered("Things", any)).await), zaehler_2);
    let all = "Datastreams/all(d: d/ObservedProperty/name eq 'vehicles')";
    assert_eq!(ids(&ok(&s.api, None, &filtered("Things", all)).await), vec![owner_id]);
    assert_eq!(ids(&ok(&s.api, None, &filtered("Things", "not Datastreams/any()")).await), Vec::<i64>::new());
    // Through Things to their datastreams, from a location.
    let page = ok(&s.api, None, &filtered("Locations", "Things/Datastreams/unitOfMeasurement/symbol eq 'Cel'")).await;
    assert_eq!(ids(&page), zaehler_2);

    // Observations are read only as a request of their own, decided and audited by the gate.
    let (status, detail) = refused(&s.api, None, &filtered("Datastreams", "Observations/result gt 5")).await;
    assert_eq!(status, 400, "{detail}");
    assert!(detail.contains("cannot look into their Observations"), "{detail}");
    let (status, _) = refused(&s.api, None, &filtered("Things", "Datastreams/any(d: d/Observations/any())")).await;
    assert_eq!(status, 400);
    s.stop().await;
}

#[tokio::test]
async fn a_look_into_a_collection_sees_only_what_the_caller_may_see() {
    let s = Seeded::start().await;
    let (_, owner_id) = s.counting_station().await;
    let filtered = |filter: &str| format!("Things?$filter={}", enc(filter));
    let department = Some(s.town.department_key.as_str());
    // The internal `load` datastream of the counting station: the public cannot find the station
    // by it, however it asks; the department (same municipality) can.
    for filter in [
        "Datastreams/ObservedProperty/name eq 'load'".to_owned(),
        "Datastreams/any(d: d/ObservedProperty/name eq 'load')".to_owned(),
        format!("Datastreams/@iot.id eq {}", s.town.load),
        format!("Datastreams/any(d: d/id eq {})", s.town.load),
        "Datastreams/unitOfMeasurement/symbol eq '%'".to_owned(),
    ] {
        assert_eq!(ids(&ok(&s.api, None, &filtered(&filter)).await), Vec::<i64>::new(), "anonymous: {filter}");
        assert_eq!(ids(&ok(&s.api, department, &filtered(&filter)).await), vec![owner_id], "department: {filter}");
    }
    // `all` quantifies over the datastreams the caller sees: for the public, every datastream of the
    // counting station counts vehicles; the department sees the load besides.
    let all = filtered("Datastreams/all(d: d/ObservedProperty/name eq 'vehicles')");
    assert_eq!(ids(&ok(&s.api, None, &all).await), vec![owner_id]);
    assert_eq!(ids(&ok(&s.api, department, &all).await), Vec::<i64>::new());
    // The same for the property's other datastreams.
    let of_property = format!("ObservedProperties?$filter={}", enc(&format!("Datastreams/id eq {}", s.town.load)));
    assert_eq!(ids(&ok(&s.api, None, &of_property).await), Vec::<i64>::new());
    assert_eq!(ids(&ok(&s.api, department, &of_property).await).len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn the_next_page_of_references_is_references() {
    let s = Seeded::start().await;
    let first = ok(&s.api, None, &format!("Datastreams({})/Observations/$ref?$top=20", s.town.counts)).await;
    let mut seen: Vec<String> = Vec::new();
    let mut page = first;
    loop {
        for entry in page["value"].as_array().unwrap() {
            let keys: Vec<&String> = entry.as_object().unwrap().keys().collect();
            assert_eq!(keys, vec!["@iot.selfLink"], "{entry}");
            seen.push(entry["@iot.selfLink"].as_str().unwrap().to_owned());
        }
        let Some(link) = page["@iot.nextLink"].as_str() else { break };
        assert!(
            link.starts_with(&format!("{}{STA}/Datastreams({})/Observations/$ref?", s.api.base, s.town.counts)),
            "{link}"
        );
        page = ok(&s.api, None, link.trim_start_matches(&format!("{}{STA}/", s.api.base))).await;
    }
    assert_eq!(seen.len(), 48, "every reading once, as a reference");
    let things = ok(&s.api, None, "Things/$ref?$top=1").await;
    assert!(things["@iot.nextLink"].as_str().unwrap().contains("/Things/$ref?"), "{things}");
    s.stop().await;
}

/// The requests of FROST's clients, from `tests/conformance/sta_client_queries.json`.
#[derive(serde::Deserialize)]
struct ClientQueries {
    sources: std::collections::BTreeMap<String, Value>,
    queries: Vec<ClientQuery>,
}

#[derive(serde::Deserialize)]
struct ClientQuery {
    client: String,
    source: String,
    path: String,
    query: Vec<(String, String)>,
    #[serde(default)]
    expect: Expectation,
}

/// What a replayed query must answer beyond a well-formed 200.
#[derive(serde::Deserialize, Default)]
struct Expectation {
    /// The ids of the page, in order (placeholders allowed).
    ids: Option<Vec<String>>,
    count: Option<i64>,
}

#[tokio::test]
async fn the_queries_of_frost_clients_are_answered() {
    let s = Seeded::start().await;
    let (_, thing) = s.counting_station().await;
    let thing2: i64 =
        sqlx::query_scalar("SELECT id FROM things WHERE id <> $1").bind(thing).fetch_one(&s.pool).await.unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/sta_client_queries.json");
    let list: ClientQueries = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let fill = |text: &str| {
        text.replace("{thing}", &thing.to_string())
            .replace("{thing2}", &thing2.to_string())
            .replace("{datastream}", &s.town.counts.to_string())
    };
    assert!(list.queries.len() >= 20, "{} queries", list.queries.len());
    for query in &list.queries {
        assert!(list.sources.contains_key(&query.client), "{}: no source for the client", query.source);
        let mut encoded = form_urlencoded::Serializer::new(String::new());
        for (key, value) in &query.query {
            encoded.append_pair(key, &fill(value));
        }
        let path = format!("{}?{}", fill(&query.path), encoded.finish());
        let (status, body) = get(&s.api, None, &path).await;
        let what = format!("{} ({}): {path}", query.client, query.source);
        assert_eq!(status, 200, "{what}: {body}");
        // Well-formed: a page of entities with ids, or one entity with its id.
        match body.get("value") {
            Some(Value::Array(entities)) => {
                assert!(entities.iter().all(|e| e.get("@iot.id").is_some()), "{what}: {body}")
            }
            Some(other) => panic!("{what}: value is not an array: {other}"),
            None => assert!(body.get("@iot.id").is_some(), "{what}: {body}"),
        }
        if query.query.iter().any(|(k, v)| k == "$count" && v == "true") {
            assert!(body["@iot.count"].is_i64(), "{what}: {body}");
        }
        if let Some(expected) = &query.expect.ids {
            let expected: Vec<i64> = expected.iter().map(|id| fill(id).parse().unwrap()).collect();
            assert_eq!(ids(&body), expected, "{what}");
        }
        if let Some(count) = query.expect.count {
            assert_eq!(body["@iot.count"], count, "{what}");
        }
    }
    s.stop().await;
}
