//! Registration of the town with the admin API: the organisations, then per
//! organisation one device type per kind of thing (properties, units,
//! plausible ranges from `hoheit-town`), then all of its things in one bulk
//! import (JSON rows with their `type`, which gives each thing the type's
//! datastreams, and their device's `external_id`; chunks of at most [`IMPORT_CHUNK`] rows for large `--scale`).
//!
//! The simulator is restarted often, so registration is idempotent: HTTP 409
//! (already exists) counts as success, an existing type that differs from the
//! town's is changed (PUT, which adds the datastreams its things lack), and
//! the import writes nothing for rows that match what is stored. Neither says
//! anything about the unit of a datastream that existed before, and a
//! different unit would make ingest reject every reading, so the units of
//! existing things' datastreams are checked afterwards.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use hoheit_domain::{Slug, Unit};
use hoheit_runtime::config::Secret;
use hoheit_store::device_types::TypeProperty;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::error::{chain, SimulatorError};
use hoheit_town::{Kind, Organisation, Thing, Town};

/// How many organisation and type requests are in flight at once.
const CONCURRENT_REQUESTS: usize = 8;
/// Attempts per request when the API is briefly unavailable.
const ATTEMPTS: u32 = 5;
/// The most rows in one import request (each is one transaction; `--scale` makes 110,000 things).
const IMPORT_CHUNK: usize = 10_000;
/// How long one import request may take (10,000 new things take a few seconds).
const IMPORT_TIMEOUT: Duration = Duration::from_secs(300);

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
    pub device_types: usize,
    pub things: usize,
    /// Resources (organisations, types, things, datastreams) this call created.
    pub created: usize,
    /// Types and things this call changed (a type that differed, a thing's name, position or type).
    pub changed: usize,
    /// Organisations, types and things that already were as the town has them.
    pub existing: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Existed,
}

/// One creating request, owned, so that a batch of them can run
/// concurrently inside a future that is `Send` (borrowed items trip up the
/// compiler's proof of that).
struct Create {
    path: &'static str,
    /// "device type stadt-eberswalde/pegel", for errors and logs.
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

    fn device_type(org: &Slug, kind: Kind, properties: &[TypeProperty]) -> Self {
        Self {
            path: "/v1/admin/device-types",
            resource: format!("device type {org}/{}", kind.type_slug()),
            body: json!({ "org": org, "slug": kind.type_slug(), "name": kind.type_name(), "properties": properties }),
        }
    }
}

/// The properties of the device type of `kind`, sorted by property (as the API compares them).
fn type_properties(kind: Kind) -> Result<Vec<TypeProperty>, SimulatorError> {
    let mut properties = kind
        .properties()
        .iter()
        .map(|p| {
            let invalid = |e: &dyn std::fmt::Display| SimulatorError::Config(format!("{}: {e}", p.slug));
            Ok(TypeProperty {
                property: Slug::parse("property", p.slug).map_err(|e| invalid(&e))?,
                name: p.name.to_owned(),
                unit: Unit::parse(p.unit).map_err(|e| invalid(&e))?,
                min: p.min,
                max: p.max,
            })
        })
        .collect::<Result<Vec<_>, SimulatorError>>()?;
    sort(&mut properties);
    Ok(properties)
}

fn sort(properties: &mut [TypeProperty]) {
    properties.sort_by(|a, b| a.property.as_str().cmp(b.property.as_str()));
}

/// The kinds of thing of `org`, in town order: one device type each.
fn kinds_of(town: &Town, org: &Slug) -> Vec<Kind> {
    let mut kinds = Vec::new();
    for thing in town.things.iter().filter(|t| &t.org == org) {
        if !kinds.contains(&thing.kind()) {
            kinds.push(thing.kind());
        }
    }
    kinds
}

/// A thing as a row of the import file.
fn import_row(thing: &Thing) -> serde_json::Value {
    json!({
        "slug": thing.slug,
        "name": thing.name,
        "latitude": thing.latitude,
        "longitude": thing.longitude,
        "type": thing.kind().type_slug(),
        "external_id": thing.external_id,
    })
}

#[derive(Deserialize)]
struct DeviceTypeList {
    device_types: Vec<ListedDeviceType>,
}

#[derive(Deserialize)]
struct ListedDeviceType {
    id: i64,
    slug: String,
    name: String,
    properties: Vec<TypeProperty>,
}

/// What the API answers to an import (the fields the simulator uses).
#[derive(Default, Deserialize)]
struct ImportReport {
    things_created: usize,
    things_changed: usize,
    things_unchanged: usize,
    datastreams_created: usize,
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

    /// Sends a request, retrying while the API is briefly unavailable; a 2xx
    /// or 409 answer is returned with its body, anything else is an error
    /// naming `resource`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        resource: &str,
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> Result<(StatusCode, String), SimulatorError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |error: &reqwest::Error| SimulatorError::Unreachable {
            resource: resource.to_owned(),
            reason: chain(error),
        };
        let mut delay = Duration::from_millis(250);
        for attempt in 1..=ATTEMPTS {
            let mut request = self.http.request(method.clone(), &url).bearer_auth(self.token.expose()).timeout(timeout);
            if let Some(body) = body {
                request = request.json(body);
            }
            let retry = match request.send().await {
                Ok(response) if response.status().is_success() || response.status() == StatusCode::CONFLICT => {
                    let status = response.status();
                    return Ok((status, response.text().await.map_err(|e| unreachable(&e))?));
                }
                Ok(response) => {
                    let status = response.status();
                    let detail = problem_detail(&response.text().await.unwrap_or_default());
                    let transient = matches!(
                        status,
                        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
                    );
                    if !transient || attempt == ATTEMPTS {
                        return Err(SimulatorError::Rejected {
                            resource: resource.to_owned(),
                            status: status.as_u16(),
                            detail,
                        });
                    }
                    format!("HTTP {status}: {detail}")
                }
                Err(error) if attempt == ATTEMPTS || !(error.is_connect() || error.is_timeout()) => {
                    return Err(unreachable(&error));
                }
                Err(error) => chain(&error),
            };
            tracing::warn!(%resource, reason = %retry, retry_in = ?delay, "registration failed; retrying");
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        // The loop returns on its last attempt.
        Err(SimulatorError::Unreachable { resource: resource.to_owned(), reason: "no attempt was made".into() })
    }

    /// Sends a request whose 2xx answer is JSON of type `T` (a 409 is an error here).
    pub(crate) async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        resource: &str,
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> Result<T, SimulatorError> {
        let (status, text) = self.send(method, path, resource, body, timeout).await?;
        let rejected = |detail: String| SimulatorError::Rejected {
            resource: resource.to_owned(),
            status: status.as_u16(),
            detail,
        };
        if !status.is_success() {
            return Err(rejected(problem_detail(&text)));
        }
        serde_json::from_str(&text).map_err(|e| rejected(format!("unexpected response: {e}")))
    }

    /// Runs `requests` (POSTs) with bounded concurrency; 2xx is created, 409
    /// existed; outcomes in request order.
    async fn create_all(&self, requests: Vec<Create>) -> Result<Vec<Outcome>, SimulatorError> {
        futures::stream::iter(requests)
            .map(|request| async move {
                let timeout = Duration::from_secs(15);
                let (status, _) =
                    self.send(Method::POST, request.path, &request.resource, Some(&request.body), timeout).await?;
                Ok::<_, SimulatorError>(if status == StatusCode::CONFLICT {
                    Outcome::Existed
                } else {
                    Outcome::Created
                })
            })
            .buffered(CONCURRENT_REQUESTS)
            .try_collect()
            .await
    }

    /// Makes the existing device types of `org` among `kinds` match the town
    /// (a PUT for each that differs, which adds the datastreams its things
    /// lack); returns how many it changed.
    async fn update_types(&self, org: &Slug, kinds: &[Kind]) -> Result<usize, SimulatorError> {
        let resource = format!("device types of {org} (listing them to compare)");
        let path = format!("/v1/admin/device-types?org={org}");
        let listed: DeviceTypeList =
            self.send_json(Method::GET, &path, &resource, None, Duration::from_secs(15)).await?;
        let mut changed = 0;
        for &kind in kinds {
            let Some(stored) = listed.device_types.iter().find(|t| t.slug == kind.type_slug()) else {
                // Answered 409 but not listed: deleted since; the import names it and will say so.
                continue;
            };
            let wanted = type_properties(kind)?;
            let mut stored_properties = stored.properties.clone();
            sort(&mut stored_properties);
            if stored.name == kind.type_name() && stored_properties == wanted {
                continue;
            }
            let update = json!({ "slug": kind.type_slug(), "name": kind.type_name(), "properties": wanted });
            let resource = format!("device type {org}/{} (changing it)", kind.type_slug());
            let path = format!("/v1/admin/device-types/{}", stored.id);
            let _: serde_json::Value =
                self.send_json(Method::PUT, &path, &resource, Some(&update), Duration::from_secs(120)).await?;
            changed += 1;
        }
        Ok(changed)
    }

    /// Registers `things` of `org` with one import request per [`IMPORT_CHUNK`] rows.
    async fn import(&self, org: &Slug, things: &[&Thing]) -> Result<ImportReport, SimulatorError> {
        let mut total = ImportReport::default();
        let path = format!("/v1/admin/things/import?org={org}&dry_run=false");
        for (index, chunk) in things.chunks(IMPORT_CHUNK).enumerate() {
            let rows = serde_json::Value::Array(chunk.iter().map(|t| import_row(t)).collect());
            let resource = format!(
                "things of {org} (import, rows {} to {})",
                index * IMPORT_CHUNK + 1,
                index * IMPORT_CHUNK + chunk.len()
            );
            let report: ImportReport =
                self.send_json(Method::POST, &path, &resource, Some(&rows), IMPORT_TIMEOUT).await?;
            total.things_created += report.things_created;
            total.things_changed += report.things_changed;
            total.things_unchanged += report.things_unchanged;
            total.datastreams_created += report.datastreams_created;
        }
        Ok(total)
    }

    /// Units of every registered datastream, by (org, thing, property).
    async fn registered_units(&self) -> Result<HashMap<(String, String, String), Option<String>>, SimulatorError> {
        let resource = "datastreams (listing them to check units)";
        let list: DatastreamList =
            self.send_json(Method::GET, "/v1/datastreams", resource, None, Duration::from_secs(120)).await?;
        Ok(list.datastreams.into_iter().map(|d| ((d.org, d.thing, d.property), d.unit)).collect())
    }

    /// Registers every organisation of `town`, its device types and its things.
    pub async fn register(&self, town: &Town) -> Result<Registered, SimulatorError> {
        let mut registered =
            Registered { organisations: town.organisations.len(), things: town.things.len(), ..Registered::default() };
        let mut count = |outcome: &Outcome| match outcome {
            Outcome::Created => registered.created += 1,
            Outcome::Existed => registered.existing += 1,
        };
        // Organisations before their types, types before the things that name them.
        let organisations = self.create_all(town.organisations.iter().map(Create::organisation).collect()).await?;
        organisations.iter().for_each(&mut count);
        let types: Vec<(Slug, Kind)> = town
            .organisations
            .iter()
            .flat_map(|org| kinds_of(town, &org.slug).into_iter().map(|kind| (org.slug.clone(), kind)))
            .collect();
        let requests = types
            .iter()
            .map(|(org, kind)| Ok(Create::device_type(org, *kind, &type_properties(*kind)?)))
            .collect::<Result<_, SimulatorError>>()?;
        let outcomes = self.create_all(requests).await?;
        outcomes.iter().for_each(&mut count);
        registered.device_types = types.len();

        let mut things_existed = false;
        for org in &town.organisations {
            let existing: Vec<Kind> = types
                .iter()
                .zip(&outcomes)
                .filter(|((o, _), outcome)| o == &org.slug && **outcome == Outcome::Existed)
                .map(|((_, kind), _)| *kind)
                .collect();
            if !existing.is_empty() {
                let changed = self.update_types(&org.slug, &existing).await?;
                registered.changed += changed;
                registered.existing -= changed;
            }
            let things: Vec<&Thing> = town.things.iter().filter(|t| t.org == org.slug).collect();
            if things.is_empty() {
                continue;
            }
            let report = self.import(&org.slug, &things).await?;
            registered.created += report.things_created + report.datastreams_created;
            registered.changed += report.things_changed;
            registered.existing += report.things_unchanged;
            things_existed |= report.things_created < things.len();
        }

        // A thing that existed may have a datastream of another unit (the import only adds missing ones).
        if things_existed {
            let units = self.registered_units().await?;
            for (thing, property) in town.datastreams() {
                let key = (thing.org.to_string(), thing.slug.to_string(), property.slug.to_owned());
                match units.get(&key) {
                    Some(Some(unit)) if unit == property.unit => {}
                    // Not listed: removed since; nothing to compare.
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
            assert!(type_properties(kind).is_ok_and(|ps| ps.len() == kind.properties().len()));
            assert!(Slug::parse("device type", kind.type_slug()).is_ok(), "{}", kind.type_slug());
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
