//! Registration of the town with the admin API: organisations, then things,
//! then datastreams.
//!
//! The simulator is restarted often, so registration is idempotent: HTTP 409
//! (already exists) counts as success. Because a 409 says nothing about the
//! existing datastream's unit, and a different unit would make ingest reject
//! every reading, the units of existing datastreams are checked afterwards.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use hoheit_domain::{Slug, Unit};
use hoheit_runtime::config::Secret;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{chain, SimulatorError};
use hoheit_town::{Organisation, Property, Thing, Town};

/// How many registration requests are in flight at once (`--scale` makes thousands).
const CONCURRENT_REQUESTS: usize = 8;
/// Attempts per request when the API is briefly unavailable.
const ATTEMPTS: u32 = 5;

/// One datastream the simulator publishes to, as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredDatastream {
    pub org: Slug,
    pub thing: Slug,
    pub property: Slug,
    pub unit: Unit,
}

/// The outcome of [`crate::Simulator::register`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registered {
    /// Every datastream, in town order.
    pub datastreams: Vec<RegisteredDatastream>,
    pub organisations: usize,
    pub things: usize,
    /// Resources (of any kind) this call created.
    pub created: usize,
    /// Resources that already existed (HTTP 409).
    pub existing: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Existed,
}

/// One registration request, owned, so that a batch of them can run
/// concurrently inside a future that is `Send` (borrowed items trip up the
/// compiler's proof of that).
struct Create {
    path: &'static str,
    /// "thing stadt-eberswalde/luft-marktplatz", for errors and logs.
    resource: String,
    body: serde_json::Value,
}

impl Create {
    fn organisation(org: &Organisation) -> Self {
        Self {
            path: "/v1/admin/organisations",
            resource: format!("organisation {}", org.slug),
            body: json!({ "slug": org.slug, "name": org.name }),
        }
    }

    fn thing(thing: &Thing) -> Self {
        Self {
            path: "/v1/admin/things",
            resource: format!("thing {}/{}", thing.org, thing.slug),
            body: json!({
                "org": thing.org,
                "slug": thing.slug,
                "name": thing.name,
                "latitude": thing.latitude,
                "longitude": thing.longitude,
            }),
        }
    }

    fn datastream(thing: &Thing, property: &Property) -> Self {
        Self {
            path: "/v1/admin/datastreams",
            resource: format!("datastream {}/{}/{}", thing.org, thing.slug, property.slug),
            body: json!({
                "org": thing.org,
                "thing": thing.slug,
                "property": property.slug,
                "name": property.name,
                "unit": property.unit,
            }),
        }
    }
}

#[derive(Deserialize)]
struct DatastreamList {
    datastreams: Vec<ListedDatastream>,
}

#[derive(Deserialize)]
struct ListedDatastream {
    org: String,
    thing: String,
    property: String,
    unit: Option<String>,
}

/// The `detail` of a problem+json body, or the start of whatever else came back.
fn problem_detail(body: &str) -> String {
    #[derive(Deserialize)]
    struct Problem {
        detail: Option<String>,
    }
    match serde_json::from_str::<Problem>(body) {
        Ok(Problem { detail: Some(detail) }) => detail,
        _ if body.trim().is_empty() => "(no response body)".into(),
        _ => body.trim().chars().take(300).collect(),
    }
}

/// Client of the admin API.
#[derive(Debug, Clone)]
pub(crate) struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: Secret,
}

impl AdminClient {
    pub fn new(base: &str, token: Secret) -> Result<Self, SimulatorError> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(SimulatorError::Config(format!("the API URL {base:?} must start with http:// or https://")));
        }
        if token.expose().is_empty() {
            return Err(SimulatorError::Config("HOHEIT_API_TOKEN is empty".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("hoheit-simulator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SimulatorError::Config(format!("cannot build the HTTP client: {}", chain(&e))))?;
        Ok(Self { http, base, token })
    }

    /// Polls the API's `/readyz` until it answers 200, for at most `max_wait`.
    pub async fn wait_ready(&self, max_wait: Duration) -> Result<(), SimulatorError> {
        self.wait_for(&format!("{}/readyz", self.base), "the API", max_wait).await
    }

    /// Polls `url` with a bounded back-off until it answers 2xx, for at most `max_wait`.
    pub async fn wait_for(&self, url: &str, what: &str, max_wait: Duration) -> Result<(), SimulatorError> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(250);
        loop {
            let last = match self.http.get(url).timeout(Duration::from_secs(5)).send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => format!("HTTP {}", response.status()),
                Err(error) => chain(&error),
            };
            let waited = started.elapsed();
            if waited >= max_wait {
                return Err(SimulatorError::NotReady {
                    what: what.to_owned(),
                    url: url.to_owned(),
                    waited_secs: waited.as_secs(),
                    last,
                });
            }
            tracing::info!(%url, %last, retry_in = ?delay, "waiting for {what}");
            tokio::time::sleep(delay.min(max_wait - waited)).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// POSTs `body` to `path`; 2xx is created, 409 existed, anything else an error naming `resource`.
    async fn create(&self, path: &str, resource: String, body: &impl Serialize) -> Result<Outcome, SimulatorError> {
        let url = format!("{}{path}", self.base);
        let mut delay = Duration::from_millis(250);
        for attempt in 1..=ATTEMPTS {
            let retry = match self.http.post(&url).bearer_auth(self.token.expose()).json(body).send().await {
                Ok(response) if response.status().is_success() => return Ok(Outcome::Created),
                Ok(response) if response.status() == StatusCode::CONFLICT => return Ok(Outcome::Existed),
                Ok(response) => {
                    let status = response.status();
                    let detail = problem_detail(&response.text().await.unwrap_or_default());
                    let transient = matches!(
                        status,
                        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
                    );
                    if !transient || attempt == ATTEMPTS {
                        return Err(SimulatorError::Rejected { resource, status: status.as_u16(), detail });
                    }
                    format!("HTTP {status}: {detail}")
                }
                Err(error) if attempt == ATTEMPTS || !(error.is_connect() || error.is_timeout()) => {
                    return Err(SimulatorError::Unreachable { resource, reason: chain(&error) });
                }
                Err(error) => chain(&error),
            };
            tracing::warn!(%resource, reason = %retry, retry_in = ?delay, "registration failed; retrying");
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        // The loop returns on its last attempt.
        Err(SimulatorError::Unreachable { resource, reason: "no attempt was made".into() })
    }

    /// Runs `requests` with bounded concurrency; outcomes in request order.
    async fn create_all(&self, requests: Vec<Create>) -> Result<Vec<Outcome>, SimulatorError> {
        futures::stream::iter(requests)
            .map(|request| async move { self.create(request.path, request.resource, &request.body).await })
            .buffered(CONCURRENT_REQUESTS)
            .try_collect()
            .await
    }

    /// Units of every registered datastream, by (org, thing, property).
    async fn registered_units(&self) -> Result<HashMap<(String, String, String), Option<String>>, SimulatorError> {
        let resource = "datastreams (listing them to check units)".to_owned();
        let response = self
            .http
            .get(format!("{}/v1/datastreams", self.base))
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| SimulatorError::Unreachable { resource: resource.clone(), reason: chain(&e) })?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| SimulatorError::Unreachable { resource: resource.clone(), reason: chain(&e) })?;
        if !status.is_success() {
            return Err(SimulatorError::Rejected { resource, status: status.as_u16(), detail: problem_detail(&body) });
        }
        let list: DatastreamList = serde_json::from_str(&body).map_err(|e| SimulatorError::Rejected {
            resource,
            status: status.as_u16(),
            detail: format!("unexpected response: {e}"),
        })?;
        Ok(list.datastreams.into_iter().map(|d| ((d.org, d.thing, d.property), d.unit)).collect())
    }

    /// Registers every organisation, thing and datastream of `town`.
    pub async fn register(&self, town: &Town) -> Result<Registered, SimulatorError> {
        let mut registered =
            Registered { organisations: town.organisations.len(), things: town.things.len(), ..Registered::default() };
        let mut count = |outcome: &Outcome| match outcome {
            Outcome::Created => registered.created += 1,
            Outcome::Existed => registered.existing += 1,
        };
        // Each level needs the one before it, so the levels run in order; the
        // requests within a level run concurrently.
        let organisations = self.create_all(town.organisations.iter().map(Create::organisation).collect()).await?;
        let things = self.create_all(town.things.iter().map(Create::thing).collect()).await?;
        let datastreams = self.create_all(town.datastreams().map(|(t, p)| Create::datastream(t, p)).collect()).await?;
        organisations.iter().chain(&things).chain(&datastreams).for_each(&mut count);

        if datastreams.contains(&Outcome::Existed) {
            let units = self.registered_units().await?;
            for ((thing, property), outcome) in town.datastreams().zip(&datastreams) {
                if *outcome != Outcome::Existed {
                    continue;
                }
                let key = (thing.org.to_string(), thing.slug.to_string(), property.slug.to_owned());
                match units.get(&key) {
                    Some(Some(unit)) if unit == property.unit => {}
                    // Not listed: created concurrently by another simulator; nothing to compare.
                    None => {}
                    Some(other) => {
                        return Err(SimulatorError::UnitMismatch {
                            datastream: format!("{}/{}/{}", key.0, key.1, key.2),
                            registered: match other {
                                Some(unit) => format!("with unit {unit:?}"),
                                None => "without a unit".to_owned(),
                            },
                            expected: property.unit.to_owned(),
                        });
                    }
                }
            }
        }

        registered.datastreams = town
            .datastreams()
            .map(|(thing, property)| -> Result<RegisteredDatastream, SimulatorError> {
                let invalid = |e: &dyn std::fmt::Display| SimulatorError::Config(format!("{}: {e}", property.slug));
                Ok(RegisteredDatastream {
                    org: thing.org.clone(),
                    thing: thing.slug.clone(),
                    property: Slug::parse("property", property.slug).map_err(|e| invalid(&e))?,
                    unit: Unit::parse(property.unit).map_err(|e| invalid(&e))?,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(registered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_details_are_shown_and_other_bodies_shortened() {
        assert_eq!(
            problem_detail(
                r#"{"type":"about:blank","title":"Unprocessable Entity","status":422,"detail":"invalid name: must be 1 to 200 characters"}"#
            ),
            "invalid name: must be 1 to 200 characters"
        );
        assert_eq!(problem_detail(""), "(no response body)");
        assert_eq!(problem_detail(&"x".repeat(1000)).len(), 300);
        assert_eq!(problem_detail("<html>bad gateway</html>\n"), "<html>bad gateway</html>");
    }

    #[test]
    fn every_property_slug_and_unit_is_valid_for_the_registry() {
        for kind in hoheit_town::Kind::ALL {
            for property in kind.properties() {
                assert!(Slug::parse("property", property.slug).is_ok(), "{}", property.slug);
                assert!(Unit::parse(property.unit).is_ok(), "{}", property.unit);
                assert!(!property.name.trim().is_empty() && property.name.chars().count() <= 200);
            }
        }
    }

    #[test]
    fn bad_urls_and_empty_tokens_are_configuration_errors() {
        assert!(matches!(AdminClient::new("127.0.0.1:8080", Secret::new("t")), Err(SimulatorError::Config(_))));
        assert!(matches!(AdminClient::new("http://127.0.0.1:8080", Secret::new("")), Err(SimulatorError::Config(_))));
        let client = AdminClient::new("http://127.0.0.1:8080/", Secret::new("t")).unwrap();
        assert_eq!(client.base, "http://127.0.0.1:8080");
    }
}
