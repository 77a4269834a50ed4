//! `demo`: turns the simulator's Eberswalde into a believable municipality.
//!
//! The simulator registers two organisations (the town and its Stadtwerke,
//! both as plain municipalities), 11 things and 26 datastreams. On top of
//! that the demo sets up, idempotently (create or get; it never duplicates):
//!
//! - "Konzern Stadt": the town as municipality; the Stadtwerke as its
//!   municipal company; the Tiefbau- und Verkehrsamt and the Umweltamt as its
//!   departments; Movi Mobility GmbH as a third party;
//! - four datasets with steward, classification, license, purpose, retention
//!   and theme: traffic counts (restricted), air quality and the canal gauge
//!   (open, Datenlizenz Deutschland), parking (internal, Stadtwerke), with the
//!   simulator's datastreams assigned;
//! - principals: an admin per organisation, a reader per department, a
//!   service account of the mobility company;
//! - grants: Movi may read 15-minute traffic aggregates of the last 30 days
//!   for a year; the Tiefbau- und Verkehrsamt may read the raw traffic counts
//!   (the town owns the counters, so its own traffic department needs a grant
//!   too: `restricted` means owner and grant holders only).
//!
//! Keys cannot be shown twice, so every run issues a new key per principal
//! and prints them (and writes them, mode 0600, to `--keys-file`); keys of
//! earlier runs stay valid until they expire or are revoked.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, Utc};
use clap::Args;
use hoheit_domain::policy::{Classification, OrgKind, Role};
use hoheit_domain::{DatastreamId, DatastreamKey, Slug};
use hoheit_store::audit::Actor;
use hoheit_store::datasets::{self, NewDataset};
use hoheit_store::grants::{self, NewGrant};
use hoheit_store::principals::{self, KeyExpiry, KeyLifetime, NewPrincipal, PrincipalKind};
use hoheit_store::registry::{self, NewOrganisation};
use hoheit_town::{Kind, Town, STADT, STADTWERKE};
use serde::Serialize;
use sqlx::PgPool;

use super::keys::{self, NewKey};
use crate::output::{or_dash, time, Table};
use crate::{files, AdminError, Output};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Also write the principals and their new keys to this file (mode 0600).
    #[arg(long)]
    pub keys_file: Option<PathBuf>,
    /// Seconds to wait for the simulator to register its town.
    #[arg(long, default_value_t = 120)]
    pub wait_secs: u64,
    /// Days the issued keys are valid.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub key_days: u32,
    /// The simulator's --scale (copies of every thing) whose datastreams to wait for and assign.
    #[arg(long, env = "HOHEIT_SIMULATOR_SCALE", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(Town::MAX_SCALE)))]
    pub scale: u32,
    /// Base URL of the API, for the example requests printed at the end.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub api_url: String,
}

// ------------------------------------------------------------------ the plan

const AMT_VERKEHR: &str = "amt-verkehr";
const AMT_UMWELT: &str = "amt-umwelt";
const MOVI: &str = "movi-mobility";

struct OrgPlan {
    slug: &'static str,
    name: &'static str,
    kind: OrgKind,
    parent: Option<&'static str>,
}

const ORGANISATIONS: &[OrgPlan] = &[
    OrgPlan { slug: STADT, name: "Stadt Eberswalde", kind: OrgKind::Municipality, parent: None },
    OrgPlan {
        slug: STADTWERKE,
        name: "Stadtwerke Eberswalde GmbH",
        kind: OrgKind::MunicipalCompany,
        parent: Some(STADT),
    },
    OrgPlan { slug: AMT_VERKEHR, name: "Tiefbau- und Verkehrsamt", kind: OrgKind::Department, parent: Some(STADT) },
    OrgPlan { slug: AMT_UMWELT, name: "Umweltamt", kind: OrgKind::Department, parent: Some(STADT) },
    OrgPlan { slug: MOVI, name: "Movi Mobility GmbH", kind: OrgKind::ThirdParty, parent: None },
];

const DL_BY: &str = "http://dcat-ap.de/def/licenses/dl-by-de/2.0";
const DL_ZERO: &str = "http://dcat-ap.de/def/licenses/dl-zero-de/2.0";
const THEME_TRANSPORT: &str = "http://publications.europa.eu/resource/authority/data-theme/TRAN";
const THEME_ENVIRONMENT: &str = "http://publications.europa.eu/resource/authority/data-theme/ENVI";

const TRAFFIC: &str = "verkehrszaehlungen";
const AIR: &str = "luftqualitaet";
const GAUGE: &str = "pegel-finowkanal";
const PARKING: &str = "parkhaus-belegung";

struct DatasetPlan {
    slug: &'static str,
    /// The organisation that owns the things (a dataset holds only its owner's datastreams).
    owner: &'static str,
    title: &'static str,
    description: &'static str,
    steward: &'static str,
    classification: Classification,
    license: &'static str,
    purpose: &'static str,
    retention_days: i32,
    theme: &'static str,
    /// The simulator's things of this kind (and owner) make up the dataset.
    kind: Kind,
}

const DATASETS: &[DatasetPlan] = &[
    DatasetPlan {
        slug: TRAFFIC,
        owner: STADT,
        title: "Verkehrszählungen Eberswalde",
        description: "Kfz je 5 Minuten an den Dauerzählstellen der Stadt (B167 Eisenbahnstraße, Heegermühler \
                      Straße, Breite Straße, Angermünder Straße).",
        steward: "verkehrsdaten@stadt-eberswalde.example",
        classification: Classification::Restricted,
        license: "Nutzung nur im Rahmen der Vereinbarung mit der Stadt Eberswalde",
        purpose: "Verkehrsplanung, Lichtsignalsteuerung und Lärmaktionsplanung der Stadt Eberswalde",
        retention_days: 730,
        theme: THEME_TRANSPORT,
        kind: Kind::TrafficCounter,
    },
    DatasetPlan {
        slug: AIR,
        owner: STADT,
        title: "Luftqualität Eberswalde",
        description: "NO2, PM10, PM2,5, Temperatur und Luftfeuchte an drei Messstationen (verkehrsnah, \
                      Innenstadt, Wohngebiet), alle 10 Minuten.",
        steward: "umweltamt@stadt-eberswalde.example",
        classification: Classification::Open,
        license: DL_BY,
        purpose: "Information der Öffentlichkeit über die Luftqualität; Luftreinhalteplanung",
        retention_days: 3650,
        theme: THEME_ENVIRONMENT,
        kind: Kind::AirStation,
    },
    DatasetPlan {
        slug: GAUGE,
        owner: STADT,
        title: "Pegel Finowkanal an der Stadtschleuse",
        description: "Wasserstand des Finowkanals an der Stadtschleuse Eberswalde, alle 10 Minuten.",
        steward: "umweltamt@stadt-eberswalde.example",
        classification: Classification::Open,
        license: DL_ZERO,
        purpose: "Hochwasservorsorge und Information der Öffentlichkeit",
        retention_days: 3650,
        theme: THEME_ENVIRONMENT,
        kind: Kind::RiverGauge,
    },
    DatasetPlan {
        slug: PARKING,
        owner: STADTWERKE,
        title: "Belegung der Parkhäuser",
        description: "Belegung und freie Stellplätze der Parkhäuser der Stadtwerke Eberswalde, alle 10 Minuten.",
        steward: "parken@stadtwerke-eberswalde.example",
        classification: Classification::Internal,
        license: "Nur zur internen Nutzung im Konzern Stadt Eberswalde",
        purpose: "Parkraumbewirtschaftung und Parkleitsystem",
        retention_days: 365,
        theme: THEME_TRANSPORT,
        kind: Kind::ParkingGarage,
    },
];

struct PrincipalPlan {
    name: &'static str,
    org: &'static str,
    kind: PrincipalKind,
    role: Role,
}

const MOVI_SERVICE: &str = "movi-prognose";
const VERKEHR_READER: &str = "amt-verkehr-leser";
const UMWELT_READER: &str = "amt-umwelt-leser";

const PRINCIPALS: &[PrincipalPlan] = &[
    PrincipalPlan { name: "stadt-admin", org: STADT, kind: PrincipalKind::Person, role: Role::Admin },
    PrincipalPlan { name: "stadtwerke-admin", org: STADTWERKE, kind: PrincipalKind::Person, role: Role::Admin },
    PrincipalPlan { name: "amt-verkehr-admin", org: AMT_VERKEHR, kind: PrincipalKind::Person, role: Role::Admin },
    PrincipalPlan { name: VERKEHR_READER, org: AMT_VERKEHR, kind: PrincipalKind::Person, role: Role::Reader },
    PrincipalPlan { name: "amt-umwelt-admin", org: AMT_UMWELT, kind: PrincipalKind::Person, role: Role::Admin },
    PrincipalPlan { name: UMWELT_READER, org: AMT_UMWELT, kind: PrincipalKind::Person, role: Role::Reader },
    PrincipalPlan { name: "movi-admin", org: MOVI, kind: PrincipalKind::Person, role: Role::Admin },
    PrincipalPlan { name: MOVI_SERVICE, org: MOVI, kind: PrincipalKind::Service, role: Role::Reader },
];

struct GrantPlan {
    dataset: &'static str,
    grantee: &'static str,
    purpose: &'static str,
    contract_ref: &'static str,
    min_interval_mins: Option<i32>,
    history_days: Option<i32>,
    valid_days: u32,
    rate_per_minute: i32,
}

/// The contract of the mobility company (also the demo's idempotency key for its grant).
pub const MOVI_CONTRACT: &str = "NV-EW-2026-014";

const GRANTS: &[GrantPlan] = &[
    GrantPlan {
        dataset: TRAFFIC,
        grantee: MOVI,
        purpose: "Verkehrslageprognose und Reisezeitschätzung in der Movi-App",
        contract_ref: MOVI_CONTRACT,
        min_interval_mins: Some(15),
        history_days: Some(30),
        valid_days: 365,
        rate_per_minute: 60,
    },
    GrantPlan {
        dataset: TRAFFIC,
        grantee: AMT_VERKEHR,
        purpose: "Verkehrsplanung, Lichtsignalsteuerung und Baustellenkoordination",
        contract_ref: "DA-66-2026-03 (Dienstanweisung Verkehrsdaten)",
        min_interval_mins: None,
        history_days: None,
        valid_days: 365,
        rate_per_minute: 600,
    },
];

// ------------------------------------------------------------------ the report

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Created,
    Updated,
    Unchanged,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OrgOutcome {
    pub slug: String,
    pub name: String,
    pub kind: OrgKind,
    pub parent: Option<String>,
    pub change: Change,
    /// Kind (and parent) before an update.
    pub was: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatasetOutcome {
    pub id: i64,
    pub slug: String,
    pub owner: String,
    pub classification: Classification,
    pub license: String,
    pub retention_days: i32,
    pub datastreams: Vec<DatastreamId>,
    pub change: Change,
}

#[derive(Debug, Clone, Serialize)]
pub struct GrantOutcome {
    pub id: i64,
    pub dataset: String,
    pub grantee: String,
    pub min_interval_mins: Option<i32>,
    pub history_days: Option<i32>,
    pub valid_until: DateTime<Utc>,
    pub rate_per_minute: i32,
    pub contract_ref: String,
    pub purpose: String,
    pub change: Change,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrincipalOutcome {
    pub name: String,
    pub org: String,
    pub role: Role,
    pub kind: &'static str,
    pub change: Change,
    /// The key issued on this run (shown once).
    pub key: NewKey,
}

/// A request that shows the policy, with the outcome to expect.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub who: String,
    pub expect: String,
    pub curl: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    pub things: usize,
    pub datastreams: usize,
    pub organisations: Vec<OrgOutcome>,
    pub datasets: Vec<DatasetOutcome>,
    pub grants: Vec<GrantOutcome>,
    pub principals: Vec<PrincipalOutcome>,
    pub keys_file: Option<PathBuf>,
    pub examples: Vec<Example>,
}

// ------------------------------------------------------------------ running it

fn slug(kind: &'static str, value: &str) -> Result<Slug, AdminError> {
    Slug::parse(kind, value).map_err(|e| AdminError::Input(format!("demo plan: {e}")))
}

pub async fn run(pool: &PgPool, args: DemoArgs, actor: &Actor, out: &mut Output<'_>) -> Result<(), AdminError> {
    // Check the keys file's directory first: keys are issued only once.
    if let Some(path) = &args.keys_file {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        if !dir.is_dir() {
            return Err(AdminError::Input(format!("--keys-file: directory {} does not exist", dir.display())));
        }
    }
    let report = set_up(pool, &args, actor).await?;
    // Printed before the file is written, so the keys are not lost if writing fails.
    out.show(&report, |out| print(out, &report))?;
    if let Some(path) = &args.keys_file {
        files::write_private(path, keys_file(&report).as_bytes(), None)?;
    }
    Ok(())
}

/// Builds the demo municipality and issues the keys; writes nothing but the database.
pub async fn set_up(pool: &PgPool, args: &DemoArgs, actor: &Actor) -> Result<DemoReport, AdminError> {
    let town = Town::eberswalde(args.scale).map_err(|e| AdminError::Input(format!("the simulator's town: {e}")))?;
    let ids = wait_for_town(pool, &town, Duration::from_secs(args.wait_secs)).await?;

    let mut organisations = Vec::new();
    for plan in ORGANISATIONS {
        organisations.push(ensure_org(pool, plan, actor).await?);
    }
    let mut datasets = Vec::new();
    for plan in DATASETS {
        datasets.push(ensure_dataset(pool, plan, &town, &ids, actor).await?);
    }
    let mut grants = Vec::new();
    for plan in GRANTS {
        grants.push(ensure_grant(pool, plan, actor).await?);
    }
    let expires_at = super::days_from_now(args.key_days)?;
    let mut principals = Vec::new();
    for plan in PRINCIPALS {
        principals.push(ensure_principal(pool, plan, expires_at, actor).await?);
    }
    let examples = examples(&args.api_url, &town, &ids, &principals);
    Ok(DemoReport {
        things: town.things.len(),
        datastreams: town.datastream_count(),
        organisations,
        datasets,
        grants,
        principals,
        keys_file: args.keys_file.clone(),
        examples,
    })
}

fn town_keys(town: &Town) -> Result<Vec<(Kind, DatastreamKey)>, AdminError> {
    let mut keys = Vec::with_capacity(town.datastream_count());
    for (thing, property) in town.datastreams() {
        let key = DatastreamKey {
            org: thing.org.clone(),
            thing: thing.slug.clone(),
            property: slug("property", property.slug)?,
        };
        keys.push((thing.sensor.kind(), key));
    }
    Ok(keys)
}

/// Waits (bounded) until every datastream of the simulator's town is
/// registered; returns the ids of all registered datastreams.
async fn wait_for_town(
    pool: &PgPool,
    town: &Town,
    wait: Duration,
) -> Result<HashMap<DatastreamKey, DatastreamId>, AdminError> {
    let wanted = town_keys(town)?;
    let started = Instant::now();
    loop {
        let registered: HashMap<DatastreamKey, DatastreamId> =
            registry::load_all(pool).await?.into_iter().map(|(key, r)| (key, r.id)).collect();
        let missing: Vec<&DatastreamKey> =
            wanted.iter().map(|(_, key)| key).filter(|key| !registered.contains_key(*key)).collect();
        let Some(first) = missing.first() else { return Ok(registered) };
        if started.elapsed() >= wait {
            return Err(AdminError::NotReady(format!(
                "{} of the simulator's {} datastreams (e.g. {first}) are not registered after {} s: is \
                 hoheit-simulator running against this database (and with this --scale)? Wait longer with --wait-secs",
                missing.len(),
                wanted.len(),
                wait.as_secs()
            )));
        }
        tracing::info!(missing = missing.len(), "waiting for the simulator to register its town");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn ensure_org(pool: &PgPool, plan: &OrgPlan, actor: &Actor) -> Result<OrgOutcome, AdminError> {
    let org_slug = slug("organisation", plan.slug)?;
    let parent = plan.parent.map(|p| slug("organisation", p)).transpose()?;
    let outcome = |name: String, change, was| OrgOutcome {
        slug: plan.slug.into(),
        name,
        kind: plan.kind,
        parent: plan.parent.map(Into::into),
        change,
        was,
    };
    match registry::organisation(pool, &org_slug).await? {
        None => {
            let new = NewOrganisation {
                slug: org_slug,
                name: plan.name.into(),
                kind: Some(plan.kind),
                parent: parent.clone(),
            };
            super::organisations::create(pool, &new, actor).await?;
            Ok(outcome(plan.name.into(), Change::Created, None))
        }
        Some(org) if org.kind == plan.kind && org.parent == parent => Ok(outcome(org.name, Change::Unchanged, None)),
        Some(org) => {
            let was = format!("{}{}", org.kind, org.parent.as_ref().map(|p| format!(" of {p}")).unwrap_or_default());
            registry::set_organisation_kind(pool, &org_slug, plan.kind, parent.as_ref(), actor).await?;
            Ok(outcome(org.name, Change::Updated, Some(was)))
        }
    }
}

async fn ensure_dataset(
    pool: &PgPool,
    plan: &DatasetPlan,
    town: &Town,
    ids: &HashMap<DatastreamKey, DatastreamId>,
    actor: &Actor,
) -> Result<DatasetOutcome, AdminError> {
    let ds_slug = slug("dataset", plan.slug)?;
    let (ds, change) = match datasets::by_slug(pool, &ds_slug).await? {
        Some(ds) => (ds, Change::Unchanged),
        None => {
            let new = NewDataset {
                slug: ds_slug,
                owner: slug("organisation", plan.owner)?,
                title: plan.title.into(),
                description: plan.description.into(),
                steward_contact: plan.steward.into(),
                classification: plan.classification,
                license: plan.license.into(),
                purpose: plan.purpose.into(),
                retention_days: plan.retention_days,
                theme: plan.theme.into(),
                min_bucket_count: None,
            };
            (datasets::create(pool, &new, actor).await?, Change::Created)
        }
    };
    if ds.owner != plan.owner {
        return Err(AdminError::Input(format!(
            "dataset {} exists with owner {}; the demo needs owner {} (the organisation of its things)",
            ds.slug, ds.owner, plan.owner
        )));
    }
    let mut assigned = Vec::new();
    for (kind, key) in town_keys(town)? {
        if kind != plan.kind || key.org.as_str() != plan.owner {
            continue;
        }
        let id = *ids.get(&key).ok_or_else(|| AdminError::NotReady(format!("datastream {key} is not registered")))?;
        datasets::assign(pool, ds.id, id, actor).await?;
        assigned.push(id);
    }
    Ok(DatasetOutcome {
        id: ds.id,
        slug: ds.slug,
        owner: ds.owner,
        classification: ds.classification,
        license: ds.license,
        retention_days: ds.retention_days,
        datastreams: assigned,
        change,
    })
}

async fn ensure_grant(pool: &PgPool, plan: &GrantPlan, actor: &Actor) -> Result<GrantOutcome, AdminError> {
    let ds = super::datasets::by_slug(pool, &slug("dataset", plan.dataset)?).await?;
    let grantee = slug("organisation", plan.grantee)?;
    let grantee_id = registry::organisation_id(pool, &grantee).await?;
    let now = Utc::now();
    let current = grants::held(pool, grantee_id, ds.id)
        .await?
        .into_iter()
        .find(|g| g.contract_ref == plan.contract_ref && g.revoked_at.is_none() && g.valid_until > now);
    let (g, change) = match current {
        Some(g) => (g, Change::Unchanged),
        None => {
            let new = NewGrant {
                dataset_id: ds.id,
                grantee,
                purpose: plan.purpose.into(),
                contract_ref: plan.contract_ref.into(),
                min_interval_mins: plan.min_interval_mins,
                history_days: plan.history_days,
                valid_from: Some(now),
                valid_until: super::days_from_now(plan.valid_days)?,
                rate_per_minute: Some(plan.rate_per_minute),
            };
            (grants::create(pool, &new, actor).await?, Change::Created)
        }
    };
    Ok(GrantOutcome {
        id: g.id,
        dataset: ds.slug,
        grantee: plan.grantee.into(),
        min_interval_mins: g.min_interval_mins,
        history_days: g.history_days,
        valid_until: g.valid_until,
        rate_per_minute: g.rate_per_minute,
        contract_ref: g.contract_ref,
        purpose: g.purpose,
        change,
    })
}

async fn ensure_principal(
    pool: &PgPool,
    plan: &PrincipalPlan,
    expires_at: DateTime<Utc>,
    actor: &Actor,
) -> Result<PrincipalOutcome, AdminError> {
    let name = slug("principal name", plan.name)?;
    let change = match principals::principal_by_name(pool, &name).await? {
        Some(p) if p.org == plan.org => Change::Unchanged,
        Some(p) => {
            return Err(AdminError::Input(format!(
                "principal {} exists in organisation {}; the demo needs it in {}",
                p.name, p.org, plan.org
            )))
        }
        None => {
            let new = NewPrincipal {
                org: slug("organisation", plan.org)?,
                name: name.clone(),
                kind: plan.kind,
                role: plan.role,
                oidc_subject: None,
            };
            principals::create_principal(pool, &new, actor).await?;
            Change::Created
        }
    };
    let expires_at = KeyExpiry::within(Some(expires_at), KeyLifetime::default(), Utc::now())?;
    let key = keys::issue(pool, &name, expires_at, actor).await?;
    Ok(PrincipalOutcome {
        name: plan.name.into(),
        org: plan.org.into(),
        role: plan.role,
        kind: plan.kind.as_str(),
        change,
        key,
    })
}

// ------------------------------------------------------------------ printing

struct ExamplePlan {
    /// `None`: without a key.
    principal: Option<&'static str>,
    who: &'static str,
    kind: Kind,
    interval: &'static str,
    expect: &'static str,
}

const EXAMPLES: &[ExamplePlan] = &[
    ExamplePlan {
        principal: Some(MOVI_SERVICE),
        who: "movi-prognose (third party, service account)",
        kind: Kind::TrafficCounter,
        interval: "15m",
        expect: "200: 15-minute traffic aggregates are within its grant",
    },
    ExamplePlan {
        principal: Some(MOVI_SERVICE),
        who: "movi-prognose (third party, service account)",
        kind: Kind::TrafficCounter,
        interval: "5m",
        expect: "403: 5 minutes is finer than the 15 minutes its grant allows",
    },
    ExamplePlan {
        principal: Some(VERKEHR_READER),
        who: "amt-verkehr-leser (reader, Tiefbau- und Verkehrsamt)",
        kind: Kind::TrafficCounter,
        interval: "15m",
        expect: "200: the department holds a grant for the restricted traffic counts",
    },
    ExamplePlan {
        principal: Some(UMWELT_READER),
        who: "amt-umwelt-leser (reader, Umweltamt)",
        kind: Kind::TrafficCounter,
        interval: "1h",
        expect: "403: traffic counts are restricted and the Umweltamt holds no grant",
    },
    ExamplePlan {
        principal: Some(UMWELT_READER),
        who: "amt-umwelt-leser (reader, Umweltamt)",
        kind: Kind::ParkingGarage,
        interval: "1h",
        expect: "200: parking is internal data of the Stadtwerke, part of the same municipality",
    },
    ExamplePlan {
        principal: None,
        who: "the public (no key)",
        kind: Kind::AirStation,
        interval: "1h",
        expect: "200: air quality is open data",
    },
];

fn examples(
    api_url: &str,
    town: &Town,
    ids: &HashMap<DatastreamKey, DatastreamId>,
    principals: &[PrincipalOutcome],
) -> Vec<Example> {
    let now = Utc::now();
    let hour = chrono::Duration::hours(1);
    let to = now.duration_trunc(hour).unwrap_or(now) + hour;
    let from = to - chrono::Duration::days(1);
    let base = api_url.trim_end_matches('/');
    EXAMPLES
        .iter()
        .filter_map(|e| {
            let thing = town.things.iter().find(|t| t.sensor.kind() == e.kind)?;
            let property = thing.properties().first()?;
            let key = DatastreamKey {
                org: thing.org.clone(),
                thing: thing.slug.clone(),
                property: Slug::parse("property", property.slug).ok()?,
            };
            let id = ids.get(&key)?;
            let auth = match e.principal {
                Some(name) => {
                    let p = principals.iter().find(|p| p.name == name)?;
                    format!("-H 'Authorization: Bearer {}' ", p.key.key)
                }
                None => String::new(),
            };
            let url = format!(
                "{base}/v1/datastreams/{id}/aggregates?from={}&to={}&interval={}",
                time(from),
                time(to),
                e.interval
            );
            Some(Example {
                who: format!("{} on {key}", e.who),
                expect: e.expect.into(),
                curl: format!("curl -s -w '\\nHTTP %{{http_code}}\\n' {auth}'{url}'"),
            })
        })
        .collect()
}

fn principal_table(report: &DemoReport, header_prefix: &str) -> Table {
    let first = format!("{header_prefix}principal");
    let mut table = Table::new(&[&first, "organisation", "role", "kind", "key id", "mqtt user", "key"]);
    for p in &report.principals {
        table.row([
            p.name.clone(),
            p.org.clone(),
            p.role.to_string(),
            p.kind.to_owned(),
            p.key.id.to_string(),
            p.key.mqtt_user.clone(),
            p.key.key.clone(),
        ]);
    }
    table
}

fn key_expiry(report: &DemoReport) -> String {
    or_dash(report.principals.first().map(|p| time(p.key.expires_at)))
}

/// The keys file: comment lines, then one whitespace-separated line per
/// principal with the key last (`awk '$1 == "movi-prognose" {print $NF}'`).
pub fn keys_file(report: &DemoReport) -> String {
    format!(
        "# Hoheit demo: principals and the API keys issued by `hoheit-admin demo` at {}, valid until {}.\n\
         # Keep this file private. Every run issues new keys; earlier ones stay valid until they expire or are\n\
         # revoked (hoheit-admin keys list / keys revoke ID).\n\
         # HTTP: `Authorization: Bearer <key>`. MQTT: user <mqtt user>, password <key> (see hoheit-admin mqtt-config).\n\
         {}",
        time(Utc::now()),
        key_expiry(report),
        principal_table(report, "# ").render()
    )
}

fn print(out: &mut Output<'_>, report: &DemoReport) -> Result<(), AdminError> {
    out.line(format!(
        "Demo municipality Eberswalde, on top of the simulator's {} things and {} datastreams.\n",
        report.things, report.datastreams
    ))?;
    let mut orgs = Table::new(&["organisation", "name", "kind", "parent", "change"]);
    for o in &report.organisations {
        let change = match &o.was {
            Some(was) => format!("{} (was {was})", o.change),
            None => o.change.to_string(),
        };
        orgs.row([o.slug.clone(), o.name.clone(), o.kind.to_string(), or_dash(o.parent.as_ref()), change]);
    }
    out.table(&orgs)?;
    out.line("")?;

    let mut sets = Table::new(&["dataset", "owner", "classification", "datastreams", "retention", "change", "license"]);
    for d in &report.datasets {
        sets.row([
            d.slug.clone(),
            d.owner.clone(),
            d.classification.to_string(),
            d.datastreams.len().to_string(),
            format!("{} d", d.retention_days),
            d.change.to_string(),
            d.license.clone(),
        ]);
    }
    out.table(&sets)?;
    out.line("")?;

    let mut grants =
        Table::new(&["grant", "dataset", "grantee", "resolution", "history", "valid until", "change", "contract"]);
    for g in &report.grants {
        grants.row([
            g.id.to_string(),
            g.dataset.clone(),
            g.grantee.clone(),
            g.min_interval_mins.map(|m| format!("aggregates >= {m} min")).unwrap_or_else(|| "raw".into()),
            g.history_days.map(|d| format!("last {d} days")).unwrap_or_else(|| "all".into()),
            time(g.valid_until),
            g.change.to_string(),
            g.contract_ref.clone(),
        ]);
    }
    out.table(&grants)?;
    out.line("")?;

    out.table(&principal_table(report, ""))?;
    out.line(format!(
        "\nNew keys were issued on this run (valid until {}); keys of earlier runs stay valid until they expire \
         or are revoked (hoheit-admin keys list, hoheit-admin keys revoke ID).",
        key_expiry(report)
    ))?;
    if let Some(path) = &report.keys_file {
        out.line(format!("The keys are also in {} (mode 0600).", path.display()))?;
    }
    if !report.examples.is_empty() {
        out.line("\nTry the policy (aggregates of the last day):")?;
        for e in &report.examples {
            out.line(format!("  # {}: expect {}\n  {}", e.who, e.expect, e.curl))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_in_the_plan_is_a_valid_slug_and_refers_to_a_planned_organisation() {
        let orgs: Vec<&str> = ORGANISATIONS.iter().map(|o| o.slug).collect();
        for o in ORGANISATIONS {
            assert!(Slug::parse("organisation", o.slug).is_ok(), "{}", o.slug);
            assert!(o.parent.is_none_or(|p| orgs.contains(&p)), "{}", o.slug);
        }
        for d in DATASETS {
            assert!(Slug::parse("dataset", d.slug).is_ok(), "{}", d.slug);
            assert!(orgs.contains(&d.owner), "{}", d.slug);
        }
        for p in PRINCIPALS {
            assert!(Slug::parse("principal", p.name).is_ok(), "{}", p.name);
            assert!(orgs.contains(&p.org), "{}", p.name);
        }
        for g in GRANTS {
            assert!(DATASETS.iter().any(|d| d.slug == g.dataset) && orgs.contains(&g.grantee));
        }
        for e in EXAMPLES {
            assert!(e.principal.is_none_or(|n| PRINCIPALS.iter().any(|p| p.name == n)));
        }
    }

    #[test]
    fn datasets_hold_only_things_their_owner_owns_and_open_ones_carry_a_dcat_license() {
        let town = Town::eberswalde(1).unwrap();
        for d in DATASETS {
            let things: Vec<_> = town.things.iter().filter(|t| t.sensor.kind() == d.kind).collect();
            assert!(!things.is_empty(), "{}", d.slug);
            assert!(things.iter().all(|t| t.org.as_str() == d.owner), "{}: datasets::assign needs the owner", d.slug);
            if d.classification == Classification::Open {
                assert!(d.license.starts_with("http://dcat-ap.de/def/licenses/"), "{}", d.slug);
            }
        }
    }

    #[test]
    fn every_organisation_has_an_admin_every_department_a_reader_and_the_third_party_a_service() {
        for o in ORGANISATIONS {
            assert!(PRINCIPALS.iter().any(|p| p.org == o.slug && p.role == Role::Admin), "{}", o.slug);
            if o.kind == OrgKind::Department {
                assert!(PRINCIPALS.iter().any(|p| p.org == o.slug && p.role == Role::Reader), "{}", o.slug);
            }
            if o.kind == OrgKind::ThirdParty {
                assert!(PRINCIPALS.iter().any(|p| p.org == o.slug && p.kind == PrincipalKind::Service));
            }
        }
    }
}
