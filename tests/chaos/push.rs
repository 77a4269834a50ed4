//! The HTTP side of the chaos scenario: a pusher that sends small JSON
//! batches to ingest's push door while the parts are killed, and, like a
//! correct client, retries a request until it is answered `202` (connection
//! refused, `503` while Kafka is away, timeouts). Every reading of a request
//! answered `202` must be stored exactly once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use hoheit_domain::policy::Role;
use hoheit_domain::Slug;
use hoheit_store::audit::Actor;
use hoheit_store::principals::{self, KeyExpiry, KeyLifetime, NewPrincipal, PrincipalKind};
use hoheit_store::registry::{self, NewDatastream};
use rand::rngs::StdRng;
use rand::Rng;
use sqlx::PgPool;

use crate::workload::ORG;

/// The property every thing gets for the pushed readings.
pub const PROPERTY: &str = "pushed";
/// Readings per push request.
const PER_REQUEST: usize = 10;

/// The pushed readings: (thing index, time µs, value), in request order.
pub struct Pushes {
    pub requests: Vec<(usize, Vec<(i64, f64)>)>,
}

impl Pushes {
    /// `readings` readings over `things` things, at distinct times of the last day.
    pub fn generate(rng: &mut StdRng, readings: usize, things: usize) -> Self {
        let start = Utc::now().timestamp_micros() - 86_400_000_000;
        let mut requests = Vec::new();
        let mut at = 0i64;
        for chunk in 0..readings.div_ceil(PER_REQUEST) {
            let thing = chunk % things.max(1);
            let n = PER_REQUEST.min(readings - chunk * PER_REQUEST);
            let batch = (0..n)
                .map(|_| {
                    at += rng.gen_range(1..1_000);
                    (start + at, (rng.gen_range(-1_000_000i64..1_000_000) as f64) / 1024.0)
                })
                .collect();
            requests.push((thing, batch));
        }
        Self { requests }
    }

    pub fn readings(&self) -> usize {
        self.requests.iter().map(|(_, r)| r.len()).sum()
    }
}

/// What the pusher saw.
pub struct PushReport {
    pub accepted_readings: usize,
    pub retries: usize,
    pub answers: HashMap<u16, usize>,
}

/// Registers a `pushed` datastream per thing and a publisher key; returns the datastream ids and the key.
pub async fn register(pool: &PgPool, things: &[String]) -> anyhow::Result<(Vec<i64>, String)> {
    let org = Slug::parse("organisation", ORG)?;
    let mut ids = Vec::new();
    for name in things {
        let datastream = registry::create_datastream(
            pool,
            &NewDatastream {
                org: org.clone(),
                thing: Slug::parse("thing", name)?,
                property: Slug::parse("property", PROPERTY)?,
                name: format!("{PROPERTY} at {name}"),
                unit: None,
                min: None,
                max: None,
            },
        )
        .await?;
        ids.push(datastream.id.0);
    }
    let actor =
        Actor { request_id: "chaos".into(), principal_id: None, principal_name: "hoheit-chaos".into(), org_id: None };
    let new = NewPrincipal {
        org,
        name: Slug::parse("name", "chaos-gateway")?,
        kind: PrincipalKind::Service,
        role: Role::Publisher,
        oidc_subject: None,
    };
    let principal = principals::create_principal(pool, &new, &actor).await?;
    let expiry = KeyExpiry::within(None, KeyLifetime::days(30)?, Utc::now())?;
    Ok((ids, principals::create_key(pool, principal.id, expiry, &actor).await?.key))
}

/// Pushes every request, paced over `secs`, each until it is answered `202`.
pub async fn push_all(
    port: u16,
    key: String,
    things: Vec<String>,
    pushes: std::sync::Arc<Pushes>,
    secs: u64,
) -> anyhow::Result<PushReport> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let pace = Duration::from_secs_f64(secs.max(1) as f64 / pushes.requests.len().max(1) as f64);
    let started = Instant::now();
    let mut report = PushReport { accepted_readings: 0, retries: 0, answers: HashMap::new() };
    for (i, (thing, readings)) in pushes.requests.iter().enumerate() {
        let due = started + pace * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let body: Vec<serde_json::Value> = readings
            .iter()
            .map(|(t, v)| {
                let time = chrono::DateTime::from_timestamp_micros(*t)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                    .unwrap_or_default();
                serde_json::json!({"time": time, "value": v})
            })
            .collect();
        let url = format!("http://127.0.0.1:{port}/v1/push/{ORG}/{}/{PROPERTY}", things[*thing]);
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let answer = http.post(&url).header("x-api-key", &key).json(&body).send().await;
            let status = answer.as_ref().map(|a| a.status().as_u16()).unwrap_or(0);
            *report.answers.entry(status).or_default() += 1;
            if status == 202 {
                let receipt: serde_json::Value = answer?.json().await?;
                anyhow::ensure!(
                    receipt["accepted"].as_u64() == Some(readings.len() as u64),
                    "push {i}: {receipt} (expected every reading accepted)"
                );
                report.accepted_readings += readings.len();
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "push {i} not accepted within 10 minutes (last answer {status})"
            );
            report.retries += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(report)
}

/// The rows the pushes must leave: (datastream, time) → value.
pub fn expected_rows(pushes: &Pushes, ids: &[i64]) -> HashMap<(i64, i64), f64> {
    pushes.requests.iter().flat_map(|(thing, readings)| readings.iter().map(|(t, v)| ((ids[*thing], *t), *v))).collect()
}
