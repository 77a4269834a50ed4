//! SenML as devices send it, against the real brokers and database: the
//! examples of RFC 8428 §5.1.1–§5.1.6, verbatim, published over MQTT on a
//! thing's topic (a base name that is the device's URN names the thing, its
//! records the properties or, with a name that is only the device, their
//! units) and on an organisation's topic (a gateway's pack of several
//! devices, each the thing that carries it as its external id); booleans are
//! stored as 1/0, strings and data are dead letters with their code.

use std::time::Duration;

use hoheit_tests::{eventually, ApiClient, Platform, Publisher};
use serde_json::{json, Value};

const RFC8428_5_1_1: &str = include_str!("../fixtures/senml/rfc8428-5.1.1.json");
const RFC8428_5_1_2: &str = include_str!("../fixtures/senml/rfc8428-5.1.2.json");
const RFC8428_5_1_2_TIMED: &str = include_str!("../fixtures/senml/rfc8428-5.1.2-timed.json");
const RFC8428_5_1_3: &str = include_str!("../fixtures/senml/rfc8428-5.1.3.json");
const RFC8428_5_1_4: &str = include_str!("../fixtures/senml/rfc8428-5.1.4.json");
const RFC8428_5_1_5: &str = include_str!("../fixtures/senml/rfc8428-5.1.5.json");
const RFC8428_5_1_6: &str = include_str!("../fixtures/senml/rfc8428-5.1.6.json");

/// Registers a thing that carries `external_id`, then its datastreams (property, unit); their ids.
async fn device(
    api: &ApiClient,
    org: &str,
    thing: &str,
    external_id: &str,
    streams: &[(&str, Option<&str>)],
) -> anyhow::Result<Vec<i64>> {
    let _ = api.organisation(org, "municipality", None).await;
    api.post_ok(
        "/v1/admin/things",
        json!({"org": org, "slug": thing, "name": thing, "latitude": 52.83, "longitude": 13.82, "external_id": external_id}),
    )
    .await?;
    let mut ids = Vec::new();
    for (property, unit) in streams {
        ids.push(api.register(org, thing, property, *unit).await?);
    }
    Ok(ids)
}

/// The values of datastream `id`, waiting until there are `count`.
async fn values(api: &ApiClient, id: i64, count: usize) -> anyhow::Result<Vec<(String, f64)>> {
    eventually(Duration::from_secs(30), &format!("{count} readings of datastream {id}"), || {
        let api = api.clone();
        async move {
            let mut stored = Vec::new();
            for (from, to) in windows() {
                stored.extend(api.all_observations(id, &from, &to, 1000).await?);
            }
            Ok((stored.len() >= count).then_some(stored))
        }
    })
    .await
}

/// The RFC's times (June 2010, October 2011) and now, in the 31-day windows raw reads allow.
fn windows() -> Vec<(String, String)> {
    let now = chrono::Utc::now();
    let format = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    vec![
        ("2010-06-01T00:00:00Z".into(), "2010-07-01T00:00:00Z".into()),
        ("2011-10-15T00:00:00Z".into(), "2011-11-14T00:00:00Z".into()),
        (format(now - chrono::Duration::days(1)), format(now + chrono::Duration::days(1))),
    ]
}

fn only_values(stored: &[(String, f64)]) -> Vec<f64> {
    stored.iter().map(|(_, v)| *v).collect()
}

async fn dead_letters(api: &ApiClient, org: &str, count: usize) -> anyhow::Result<Vec<Value>> {
    eventually(Duration::from_secs(30), "the dead letters", || {
        let api = api.clone();
        let path = format!("/v1/dead-letters?org={org}");
        async move {
            let body = api.get_json(&path).await?;
            Ok(body["dead_letters"].as_array().filter(|l| l.len() >= count).cloned())
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8428_examples_on_a_thing_topic_read_back_exactly() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    let streams = [
        ("temperature", Some("Cel")),
        ("voltage", Some("V")),
        ("current", Some("A")),
        ("humidity", Some("%RH")),
        ("longitude", Some("lon")),
        ("latitude", Some("lat")),
        ("battery", Some("%EL")),
        ("temp", Some("Cel")),
        ("open", None),
    ];
    let ids = device(&api, "stadt", "ow-sensor", "urn:dev:ow:10e2073a01080063", &streams).await?;
    let [temperature, voltage, current, humidity, longitude, latitude, battery, temp, open] = ids[..] else {
        anyhow::bail!("nine datastreams");
    };
    let topic = format!("{}/stadt/ow-sensor", platform.isolation.topic_root);
    let mut publisher = Publisher::connect("senml-thing").await?;
    let examples = [RFC8428_5_1_1, RFC8428_5_1_2, RFC8428_5_1_2_TIMED, RFC8428_5_1_3, RFC8428_5_1_4, RFC8428_5_1_5];
    publisher.publish_all(examples.iter().map(|e| (topic.clone(), e.as_bytes().to_vec())).collect()).await?;

    // §5.1.1: the name is the device alone; Cel says it is the temperature.
    assert_eq!(only_values(&values(&api, temperature, 1).await?), [23.1]);
    // §5.1.2: "urn:dev:ow:…:" + "voltage"; the timed pack's device (one digit
    // short in the RFC) is no registered thing, so it is the topic's thing.
    let volts = values(&api, voltage, 2).await?;
    assert_eq!(volts[0], ("2010-06-08T18:01:16.001Z".to_owned(), 120.1));
    assert_eq!(volts[1].1, 120.1);
    let amps = values(&api, current, 7).await?;
    assert_eq!(only_values(&amps), [1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.2]);
    assert_eq!(amps[0].0, "2010-06-08T18:01:11.001Z");
    // §5.1.3 and its resolved form §5.1.4: the same thirteen readings, stored once.
    let rh = values(&api, humidity, 4).await?;
    assert_eq!(only_values(&rh), [20.0, 20.3, 20.7, 21.2]);
    assert_eq!(rh[0].0, "2011-10-31T13:24:24Z");
    assert_eq!(only_values(&values(&api, longitude, 4).await?), [24.30621, 24.30622, 24.30623, 24.30628]);
    assert_eq!(only_values(&values(&api, latitude, 4).await?), [60.07965, 60.07965, 60.07966, 60.07967]);
    assert_eq!(values(&api, battery, 1).await?, [("2011-10-31T13:26:54Z".to_owned(), 98.0)]);
    // §5.1.5: the boolean is 0; the string and the data are a dead letter.
    assert_eq!(only_values(&values(&api, temp, 1).await?), [23.1]);
    assert_eq!(only_values(&values(&api, open, 1).await?), [0.0]);
    let letters = dead_letters(&api, "stadt", 1).await?;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(
        (letters[0]["door"].as_str(), letters[0]["reason_code"].as_str()),
        (Some("mqtt"), Some("unsupported_value"))
    );
    assert_eq!(
        serde_json::from_str::<Value>(letters[0]["payload_text"].as_str().unwrap_or_default())?,
        serde_json::from_str::<Value>(RFC8428_5_1_5)?
    );
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_publishes_several_devices_on_the_organisation_topic() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let api = platform.api.clone();
    let streams = [("temperature", Some("Cel")), ("humidity", Some("%RH"))];
    let two = device(&api, "stadt", "knoten-2", "2001:db8::2", &streams).await?;
    let one = device(&api, "stadt", "knoten-1", "2001:db8::1", &streams).await?;
    let root = &platform.isolation.topic_root;
    let stranger = r#"[{"bn":"urn:dev:ow:ffffffffffffffff:","n":"temperature","u":"Cel","v":1}]"#;
    let mut publisher = Publisher::connect("senml-gateway").await?;
    publisher
        .publish_all(vec![
            (format!("{root}/stadt"), RFC8428_5_1_6.as_bytes().to_vec()),
            (format!("{root}/stadt"), stranger.as_bytes().to_vec()),
        ])
        .await?;

    let at = "2011-10-31T16:27:09Z".to_owned();
    assert_eq!(values(&api, two[0], 1).await?, [(at.clone(), 25.2)]);
    assert_eq!(values(&api, two[1], 1).await?, [(at.clone(), 30.0)]);
    assert_eq!(values(&api, one[0], 1).await?, [(at.clone(), 12.3)]);
    assert_eq!(values(&api, one[1], 1).await?, [(at, 67.0)]);
    let letters = dead_letters(&api, "stadt", 1).await?;
    assert_eq!(letters[0]["reason_code"], "unknown_device", "{letters:?}");
    assert_eq!(letters[0]["mqtt_topic"], format!("{root}/stadt"));
    platform.stop().await
}
