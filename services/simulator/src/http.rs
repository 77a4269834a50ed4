//! Publishing over the HTTP doors instead of MQTT: the push door, or
//! SensorThings create (`CreateObservations`, one request per message with
//! every property of the thing). For the push door: each message goes to
//! `POST /v1/push/{org}/{thing}[/{property}]` of the API (which forwards to
//! ingest) with a publisher key per organisation, which the simulator issues
//! for itself through the administration API (a principal `sim-{org}-{run}`). A request counts as
//! acknowledged when it was answered `202` (Kafka confirmed); `503` and
//! `429` are retried after their `Retry-After`, as a correct client would.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::payloads::Message;

/// Tries of one request before the simulator gives up on the door.
const ATTEMPTS: u32 = 30;

/// The HTTP push client of one run.
pub struct HttpDoor {
    http: reqwest::Client,
    base: String,
    /// The topic root the messages were encoded under (stripped to get the path).
    root: String,
    /// Publisher key per organisation slug.
    keys: HashMap<String, String>,
    /// SensorThings create instead of push: datastream id by `org/thing/property`.
    pub sta_ids: Option<HashMap<String, i64>>,
    pub sent: u64,
    pub acked: u64,
}

impl HttpDoor {
    /// Issues a publisher key for each of `orgs` (a principal `simulator-{org}`, reused if it exists).
    pub async fn connect(base: &str, token: &str, root: &str, orgs: &[String]) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        let base = base.trim_end_matches('/').to_owned();
        let mut keys = HashMap::new();
        // A principal per run (the administration lists none to reuse): `sim-{org}-{run}`.
        let run = format!("{:08x}", rand::random::<u32>());
        for org in orgs {
            let name: String = format!("sim-{org}").chars().take(54).chain(format!("-{run}").chars()).collect();
            let created = http
                .post(format!("{base}/v1/admin/principals"))
                .bearer_auth(token)
                .json(&json!({"org": org, "name": name, "kind": "service", "role": "publisher"}))
                .send()
                .await?;
            if !created.status().is_success() {
                bail!("creating principal {name}: {} {}", created.status(), created.text().await.unwrap_or_default());
            }
            let principal: Value = created.json().await?;
            let id = principal["id"].as_i64().context("principal id")?;
            let issued = http
                .post(format!("{base}/v1/admin/principals/{id}/keys"))
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await?;
            if !issued.status().is_success() {
                bail!("issuing a key for {name}: {} {}", issued.status(), issued.text().await.unwrap_or_default());
            }
            let issued: Value = issued.json().await?;
            keys.insert(org.clone(), issued["key"].as_str().context("key in the answer")?.to_owned());
        }
        Ok(Self { http, base, root: root.trim_end_matches('/').to_owned(), keys, sta_ids: None, sent: 0, acked: 0 })
    }

    /// Switches to SensorThings create (`POST /sta/v1.1/CreateObservations`):
    /// reads the datastreams' ids from the API.
    pub async fn use_sensorthings(&mut self, token: &str) -> anyhow::Result<()> {
        let listed: Value =
            self.http.get(format!("{}/v1/datastreams", self.base)).bearer_auth(token).send().await?.json().await?;
        let ids = listed["datastreams"]
            .as_array()
            .context("the datastream listing")?
            .iter()
            .filter_map(|d| {
                let key = format!("{}/{}/{}", d["org"].as_str()?, d["thing"].as_str()?, d["property"].as_str()?);
                Some((key, d["id"].as_i64()?))
            })
            .collect();
        self.sta_ids = Some(ids);
        Ok(())
    }

    /// The ids of `org/thing`'s `properties`, in their order.
    pub fn ids_of(&self, org: &str, thing: &str, properties: &[&str]) -> anyhow::Result<Vec<i64>> {
        let ids = self.sta_ids.as_ref().context("not in SensorThings mode")?;
        properties
            .iter()
            .map(|p| {
                ids.get(&format!("{org}/{thing}/{p}"))
                    .copied()
                    .with_context(|| format!("no datastream {org}/{thing}/{p}"))
            })
            .collect()
    }

    /// Pushes one message, retrying until it is answered `202`.
    pub async fn push(&mut self, message: &Message) -> anyhow::Result<()> {
        let rest = message
            .topic
            .strip_prefix(&self.root)
            .and_then(|r| r.strip_prefix('/'))
            .with_context(|| format!("topic {} is not below {}", message.topic, self.root))?;
        let org = rest.split('/').next().unwrap_or_default();
        let key = self.keys.get(org).with_context(|| format!("no publisher key for {org}"))?;
        if self.sta_ids.is_some() {
            return self.create_observations(message, key.clone()).await;
        }
        let is_thing = rest.split('/').count() == 2;
        let json = message.payload.first().is_some_and(|b| *b == b'{' || *b == b'[');
        let content_type = match (json, is_thing) {
            (false, _) => "application/x-protobuf",
            (true, true) => "application/senml+json",
            (true, false) => "application/json",
        };
        self.sent += 1;
        let url = format!("{}/v1/push/{rest}", self.base);
        let make = || {
            self.http
                .post(&url)
                .header("x-api-key", key)
                .header("content-type", content_type)
                .body(message.payload.clone())
        };
        until_answered(&format!("pushing to {rest}"), StatusCode::ACCEPTED, make).await?;
        self.acked += 1;
        Ok(())
    }

    /// Sends a `CreateObservations` body, retrying until it is answered `201`
    /// with a self link (no error) for every row.
    async fn create_observations(&mut self, message: &Message, key: String) -> anyhow::Result<()> {
        self.sent += 1;
        let url = format!("{}/sta/v1.1/CreateObservations", self.base);
        let make = || {
            self.http
                .post(&url)
                .header("x-api-key", &key)
                .header("content-type", "application/json")
                .body(message.payload.clone())
        };
        let answer = until_answered("CreateObservations", StatusCode::CREATED, make).await?;
        let rows: Vec<Value> = answer.json().await?;
        if let Some(error) = rows.iter().find(|r| r.as_str().is_some_and(|r| r.starts_with("error"))) {
            bail!("CreateObservations refused a row: {error}");
        }
        self.acked += 1;
        Ok(())
    }
}

/// Sends the request `make` builds until it is answered `expected`, as a
/// correct client of a door does: `503`, `429` and other server errors are
/// retried after their `Retry-After` (else a doubling delay), and so is an
/// unreachable door; any other answer is an error with its body. At most
/// [`ATTEMPTS`] tries.
pub(crate) async fn until_answered(
    what: &str,
    expected: StatusCode,
    make: impl Fn() -> reqwest::RequestBuilder,
) -> anyhow::Result<reqwest::Response> {
    let mut delay = Duration::from_millis(200);
    for _ in 0..ATTEMPTS {
        let wait = match make().send().await {
            Ok(answer) if answer.status() == expected => return Ok(answer),
            Ok(answer) if answer.status().is_server_error() || answer.status() == StatusCode::TOO_MANY_REQUESTS => {
                answer
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .map_or(delay, Duration::from_secs)
            }
            Ok(answer) => {
                let status = answer.status();
                bail!("{what}: {status} {}", answer.text().await.unwrap_or_default());
            }
            Err(error) => {
                tracing::warn!(error = %crate::error::chain(&error), "{what}: the door is unreachable; retrying");
                delay
            }
        };
        tokio::time::sleep(wait).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    bail!("{what}: not accepted after {ATTEMPTS} attempts")
}
