//! Publishing as the devices themselves do, through the doors for devices
//! that do not speak Hoheit's formats (`--door chirpstack|tts|airrohr`): a
//! LoRaWAN network server's webhook, one uplink per tick
//! (`POST /v1/connectors/{id}/chirpstack?event=up`, `POST
//! /v1/connectors/{id}/tts`), or the airrohr firmware's post (`POST
//! /v1/push/airrohr/{org}`), all through the API, which forwards them to
//! ingest. A request counts as acknowledged when it is answered `202` with
//! every reading accepted; it is retried like the push door's
//! ([`crate::http::until_answered`]).
//!
//! Which things a door carries follows the thing's device
//! ([`hoheit_town::Device`]): the LoRaWAN doors the counters, garages and the
//! gauge (by DevEUI), the airrohr door the air stations (by chip id, their
//! particulates, temperature and humidity; no kit measures NO2). The others
//! are left out on that door and counted in the run summary.
//!
//! The credentials are set up through the administration API at the start
//! of every run, since each is shown only once and the simulator keeps no
//! state between runs:
//! - LoRaWAN: one connector per organisation, `simulator-{kind}-{run}`. The
//!   API neither shows nor rotates a connector's secret, and a slug stays
//!   taken once disabled; so the earlier runs' simulator connectors of that
//!   kind, whose secrets left with their runs, are disabled first (one active
//!   simulator connector per organisation and kind).
//! - airrohr: a device token for each air station (issuing replaces the earlier one).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context};
use hoheit_domain::door::Receipt;
use hoheit_domain::topic::TopicScheme;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::http::until_answered;
use crate::payloads::{Message, Tick};
use crate::register::AdminClient;
use crate::service::Door;
use crate::uplinks;
use hoheit_town::{Device, Thing, Town};

/// The header a network server sends the connector's secret in.
const SECRET_HEADER: &str = "x-hoheit-connector-secret";
/// How long one administration request may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How a request to a thing's door authenticates.
#[derive(Clone)]
enum Credential {
    /// The connector's webhook secret (LoRaWAN).
    Connector(String),
    /// The device's external id (`X-Sensor`) and token (airrohr: HTTP basic auth).
    Device { external_id: String, token: String },
}

/// Where a thing's messages go.
#[derive(Clone)]
struct Route {
    url: String,
    credential: Credential,
}

/// The client of one of the device doors for one run.
pub struct DeviceDoor {
    http: reqwest::Client,
    door: Door,
    /// By thing topic (what [`Message::topic`] holds); things not here are not carried.
    routes: HashMap<String, Route>,
    pub sent: u64,
    pub acked: u64,
}

#[derive(Deserialize)]
struct ListedConnector {
    id: i64,
    slug: String,
    disabled_at: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct IssuedConnector {
    id: i64,
    webhook_path: String,
    webhook_secret: String,
}

#[derive(Deserialize)]
struct ThingList {
    things: Vec<ListedThing>,
}

#[derive(Deserialize)]
struct ListedThing {
    id: i64,
    slug: String,
}

#[derive(Deserialize)]
struct IssuedToken {
    token: String,
}

impl Door {
    /// The kind of device this door carries (`None`: every thing, in Hoheit's formats).
    pub fn device(self) -> Option<Device> {
        match self {
            Door::Mqtt | Door::Http | Door::Sta => None,
            Door::Chirpstack | Door::Tts => Some(Device::Lorawan),
            Door::Airrohr => Some(Device::Airrohr),
        }
    }

    /// How many readings of one tick of `thing` this door carries.
    pub fn readings_of(self, thing: &Thing) -> usize {
        match self.device() {
            None => thing.properties().len(),
            Some(device) if device != thing.device() => 0,
            Some(Device::Lorawan) => thing.properties().len(),
            Some(Device::Airrohr) => uplinks::airrohr_readings(thing),
        }
    }

    /// Whether the door's payloads carry the readings' times (the airrohr
    /// firmware's do not: ingest stamps them on arrival, so no history can
    /// be sent through it).
    pub fn carries_time(self) -> bool {
        self != Door::Airrohr
    }
}

impl DeviceDoor {
    /// Sets up the credentials of `door` (a device door) for the things of
    /// `town` it carries.
    pub async fn connect(
        door: Door,
        admin: &AdminClient,
        base: &str,
        scheme: &TopicScheme,
        town: &Town,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("hoheit-simulator/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let base = base.trim_end_matches('/');
        let carried: Vec<&Thing> = town.things.iter().filter(|t| door.readings_of(t) > 0).collect();
        let mut orgs: Vec<&str> = carried.iter().map(|t| t.org.as_str()).collect();
        orgs.sort_unstable();
        orgs.dedup();
        let mut routes = HashMap::new();
        for org in orgs {
            let things = carried.iter().filter(|t| t.org.as_str() == org);
            let topic = |thing: &Thing| scheme.thing_topic(&thing.org, &thing.slug);
            match door {
                Door::Chirpstack | Door::Tts => {
                    let route = connector(admin, base, door, org).await?;
                    routes.extend(things.map(|t| (topic(t), route.clone())));
                }
                Door::Airrohr => {
                    let ids = thing_ids(admin, org).await?;
                    let url = format!("{base}/v1/push/airrohr/{org}");
                    for thing in things {
                        let id = ids
                            .get(thing.slug.as_str())
                            .with_context(|| format!("thing {org}/{} is not registered", thing.slug))?;
                        let resource = format!("device token of {org}/{}", thing.slug);
                        let path = format!("/v1/admin/things/{id}/device-token");
                        let issued: IssuedToken =
                            admin.send_json(Method::POST, &path, &resource, Some(&json!({})), ADMIN_TIMEOUT).await?;
                        let credential =
                            Credential::Device { external_id: thing.external_id.clone(), token: issued.token };
                        routes.insert(topic(thing), Route { url: url.clone(), credential });
                    }
                }
                Door::Mqtt | Door::Http | Door::Sta => bail!("{door:?} is not a device door"),
            }
        }
        tracing::info!(?door, things = routes.len(), "device door ready");
        Ok(Self { http, door, routes, sent: 0, acked: 0 })
    }

    /// `ticks` of `thing` as the door's messages: one per tick (a device
    /// reports one moment at a time); none for a thing the door does not carry.
    pub fn encode(&self, scheme: &TopicScheme, thing: &Thing, ticks: &[Tick]) -> anyhow::Result<Vec<Message>> {
        let topic = scheme.thing_topic(&thing.org, &thing.slug);
        if !self.routes.contains_key(&topic) {
            return Ok(Vec::new());
        }
        let mut messages = Vec::with_capacity(ticks.len());
        for tick in ticks {
            let (payload, readings) = match self.door {
                Door::Chirpstack => (uplinks::chirpstack_uplink(thing, tick)?, thing.properties().len()),
                Door::Tts => (uplinks::tts_uplink(thing, tick)?, thing.properties().len()),
                _ => match uplinks::airrohr_body(thing, tick)? {
                    Some(body) => body,
                    None => continue,
                },
            };
            messages.push(Message { topic: topic.clone(), payload, readings });
        }
        Ok(messages)
    }

    /// Posts one message, retrying until it is answered `202`; every reading
    /// must have been accepted (a rejection means the town is registered
    /// differently from what it sends, which retrying cannot mend).
    pub async fn push(&mut self, message: &Message) -> anyhow::Result<()> {
        let route = self.routes.get(&message.topic).with_context(|| format!("no route for {}", message.topic))?;
        self.sent += 1;
        let make = || {
            let request = self.http.post(&route.url).header("content-type", "application/json");
            let request = match &route.credential {
                Credential::Connector(secret) => request.header(SECRET_HEADER, secret),
                Credential::Device { external_id, token } => {
                    request.header("x-sensor", external_id).basic_auth(external_id, Some(token))
                }
            };
            request.body(message.payload.clone())
        };
        let what = format!("posting {}'s {:?} message", message.topic, self.door);
        let answer = until_answered(&what, StatusCode::ACCEPTED, make).await?;
        let receipt: Receipt = answer.json().await.with_context(|| format!("{what}: the receipt"))?;
        if receipt.rejected > 0 || receipt.accepted != message.readings {
            bail!(
                "{what}: {} of {} readings accepted, {} rejected: {:?}",
                receipt.accepted,
                message.readings,
                receipt.rejected,
                receipt.rejections
            );
        }
        self.acked += 1;
        Ok(())
    }
}

/// A fresh connector of `door`'s kind for `org` (the earlier runs' disabled), as a route.
async fn connector(admin: &AdminClient, base: &str, door: Door, org: &str) -> anyhow::Result<Route> {
    let kind = match door {
        Door::Tts => "tts",
        _ => "chirpstack",
    };
    let prefix = format!("simulator-{kind}-");
    let resource = format!("connectors of {org}");
    let listed: Vec<ListedConnector> = admin
        .send_json(Method::GET, &format!("/v1/admin/connectors?org={org}"), &resource, None, ADMIN_TIMEOUT)
        .await?;
    for earlier in listed.iter().filter(|c| c.slug.starts_with(&prefix) && c.disabled_at.is_none()) {
        let resource = format!("connector {org}/{} (an earlier run's, disabling it)", earlier.slug);
        let path = format!("/v1/admin/connectors/{}", earlier.id);
        let _: serde_json::Value = admin.send_json(Method::DELETE, &path, &resource, None, ADMIN_TIMEOUT).await?;
    }
    let slug = format!("{prefix}{:08x}", rand::random::<u32>());
    let resource = format!("connector {org}/{slug}");
    let body = json!({"org": org, "slug": slug, "kind": kind});
    let issued: IssuedConnector =
        admin.send_json(Method::POST, "/v1/admin/connectors", &resource, Some(&body), ADMIN_TIMEOUT).await?;
    tracing::info!(%org, connector = issued.id, %slug, "connector created");
    let query = if door == Door::Chirpstack { "?event=up" } else { "" };
    Ok(Route {
        url: format!("{base}{}{query}", issued.webhook_path),
        credential: Credential::Connector(issued.webhook_secret),
    })
}

/// The ids of `org`'s things, by slug.
async fn thing_ids(admin: &AdminClient, org: &str) -> anyhow::Result<HashMap<String, i64>> {
    let resource = format!("things of {org} (listing them for their ids)");
    let listed: ThingList =
        admin.send_json(Method::GET, &format!("/v1/admin/things?org={org}"), &resource, None, ADMIN_TIMEOUT).await?;
    Ok(listed.things.into_iter().map(|t| (t.slug, t.id)).collect())
}
