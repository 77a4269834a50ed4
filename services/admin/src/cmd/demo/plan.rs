//! The demo municipality as data: its organisations, datasets, principals,
//! grants and the example requests that show the policy. Pure: what
//! [`super::apply`] creates, checked here by unit tests.

use hoheit_domain::alert::Condition;
use hoheit_domain::policy::{Classification, OrgKind, Role};
use hoheit_domain::{DatastreamKey, Slug};
use hoheit_store::principals::PrincipalKind;
use hoheit_town::{Kind, Town, GAUGE_WARNING_CM, STADT, STADTWERKE};

use crate::AdminError;

pub(super) const AMT_VERKEHR: &str = "amt-verkehr";
pub(super) const AMT_UMWELT: &str = "amt-umwelt";
pub(super) const MOVI: &str = "movi-mobility";

pub(super) struct OrgPlan {
    pub(super) slug: &'static str,
    pub(super) name: &'static str,
    pub(super) kind: OrgKind,
    pub(super) parent: Option<&'static str>,
}

pub(super) const ORGANISATIONS: &[OrgPlan] = &[
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

pub(super) const DL_BY: &str = "http://dcat-ap.de/def/licenses/dl-by-de/2.0";
pub(super) const DL_ZERO: &str = "http://dcat-ap.de/def/licenses/dl-zero-de/2.0";
pub(super) const THEME_TRANSPORT: &str = "http://publications.europa.eu/resource/authority/data-theme/TRAN";
pub(super) const THEME_ENVIRONMENT: &str = "http://publications.europa.eu/resource/authority/data-theme/ENVI";

pub(super) const TRAFFIC: &str = "verkehrszaehlungen";
pub(super) const AIR: &str = "luftqualitaet";
pub(super) const GAUGE: &str = "pegel-finowkanal";
pub(super) const PARKING: &str = "parkhaus-belegung";

pub(super) struct DatasetPlan {
    pub(super) slug: &'static str,
    /// The organisation that owns the things (a dataset holds only its owner's datastreams).
    pub(super) owner: &'static str,
    pub(super) title: &'static str,
    pub(super) description: &'static str,
    pub(super) steward: &'static str,
    pub(super) classification: Classification,
    pub(super) license: &'static str,
    pub(super) purpose: &'static str,
    pub(super) retention_days: i32,
    pub(super) theme: &'static str,
    /// The simulator's things of this kind (and owner) make up the dataset.
    pub(super) kind: Kind,
}

pub(super) const DATASETS: &[DatasetPlan] = &[
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

pub(super) struct PrincipalPlan {
    pub(super) name: &'static str,
    pub(super) org: &'static str,
    pub(super) kind: PrincipalKind,
    pub(super) role: Role,
}

pub(super) const MOVI_SERVICE: &str = "movi-prognose";
pub(super) const VERKEHR_READER: &str = "amt-verkehr-leser";
pub(super) const UMWELT_READER: &str = "amt-umwelt-leser";

pub(super) const PRINCIPALS: &[PrincipalPlan] = &[
    PrincipalPlan { name: "stadt-admin", org: STADT, kind: PrincipalKind::Person, role: Role::Admin },
    PrincipalPlan { name: "stadtwerke-admin", org: STADTWERKE, kind: PrincipalKind::Person, role: Role::Admin },
    PrincipalPlan { name: "amt-verkehr-admin", org: AMT_VERKEHR, kind: PrincipalKind::Person, role: Role::Admin },
    PrincipalPlan { name: VERKEHR_READER, org: AMT_VERKEHR, kind: PrincipalKind::Person, role: Role::Reader },
    PrincipalPlan { name: "amt-umwelt-admin", org: AMT_UMWELT, kind: PrincipalKind::Person, role: Role::Admin },
    PrincipalPlan { name: UMWELT_READER, org: AMT_UMWELT, kind: PrincipalKind::Person, role: Role::Reader },
    PrincipalPlan { name: "movi-admin", org: MOVI, kind: PrincipalKind::Person, role: Role::Admin },
    PrincipalPlan { name: MOVI_SERVICE, org: MOVI, kind: PrincipalKind::Service, role: Role::Reader },
];

pub(super) struct GrantPlan {
    pub(super) dataset: &'static str,
    pub(super) grantee: &'static str,
    pub(super) purpose: &'static str,
    pub(super) contract_ref: &'static str,
    pub(super) min_interval_mins: Option<i32>,
    pub(super) history_days: Option<i32>,
    pub(super) valid_days: u32,
    pub(super) rate_per_minute: i32,
}

/// The contract of the mobility company (also the demo's idempotency key for its grant).
pub const MOVI_CONTRACT: &str = "NV-EW-2026-014";

pub(super) const GRANTS: &[GrantPlan] = &[
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

pub(super) struct ExamplePlan {
    /// `None`: without a key.
    pub(super) principal: Option<&'static str>,
    pub(super) who: &'static str,
    pub(super) kind: Kind,
    pub(super) interval: &'static str,
    pub(super) expect: &'static str,
}

pub(super) const EXAMPLES: &[ExamplePlan] = &[
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

/// A slug of the plan (a plan with a bad one is a bug, reported as input).
/// An alert rule a principal of the demo keeps on one of the simulator's
/// datastreams (of its first copy of the town).
pub(super) struct RulePlan {
    pub(super) name: &'static str,
    /// The principal who made it and is notified (the alerts view shows it).
    pub(super) owner: &'static str,
    pub(super) org: &'static str,
    pub(super) thing: &'static str,
    pub(super) property: &'static str,
    pub(super) condition: Condition,
    pub(super) for_secs: i64,
    pub(super) hysteresis: f64,
    /// 0: raw readings; else the aggregate interval.
    pub(super) resolution_secs: i64,
}

/// The rules of the demo: the Tiefbauamt watches the Finowkanal's warning
/// mark (the simulator's gauge passes it now and then, so this one fires),
/// the Umweltamt the NO2 hourly mean's EU limit value, the Stadtwerke a car
/// park that stops reporting.
pub(super) const RULES: &[RulePlan] = &[
    RulePlan {
        name: "Finowkanal über der Warnmarke",
        owner: "amt-verkehr-admin",
        org: STADT,
        thing: "pegel-finowkanal-stadtschleuse",
        property: "level",
        condition: Condition::Above { threshold: GAUGE_WARNING_CM },
        for_secs: 300,
        hysteresis: 3.0,
        resolution_secs: 0,
    },
    RulePlan {
        name: "NO2-Stundenmittel über 200 µg/m³",
        owner: "amt-umwelt-admin",
        org: STADT,
        thing: "luft-eisenbahnstrasse",
        property: "no2",
        condition: Condition::Above { threshold: 200.0 },
        for_secs: 0,
        hysteresis: 20.0,
        resolution_secs: 3600,
    },
    RulePlan {
        name: "Parkhaus Bahnhof meldet nicht",
        owner: "stadtwerke-admin",
        org: STADTWERKE,
        thing: "parkhaus-bahnhof",
        property: "occupancy",
        condition: Condition::Silent,
        for_secs: 900,
        hysteresis: 0.0,
        resolution_secs: 0,
    },
];

pub(super) fn slug(kind: &'static str, value: &str) -> Result<Slug, AdminError> {
    Slug::parse(kind, value).map_err(|e| AdminError::Input(format!("demo plan: {e}")))
}

/// Every datastream of the simulator's town, with the kind of its thing.
pub(super) fn town_keys(town: &Town) -> Result<Vec<(Kind, DatastreamKey)>, AdminError> {
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
    fn every_rule_is_valid_on_a_datastream_of_the_town_and_owned_by_a_planned_principal() {
        let town = Town::eberswalde(1).unwrap();
        let keys: Vec<DatastreamKey> = town_keys(&town).unwrap().into_iter().map(|(_, key)| key).collect();
        for rule in RULES {
            let key = DatastreamKey {
                org: slug("organisation", rule.org).unwrap(),
                thing: slug("thing", rule.thing).unwrap(),
                property: slug("property", rule.property).unwrap(),
            };
            assert!(keys.contains(&key), "{}: {key} is not the simulator's", rule.name);
            assert!(PRINCIPALS.iter().any(|p| p.name == rule.owner), "{}: unknown owner", rule.name);
            let resolution = hoheit_domain::alert::resolution_from_secs(rule.resolution_secs);
            hoheit_domain::alert::RuleSpec::new(rule.condition, rule.for_secs, rule.hysteresis, resolution)
                .unwrap_or_else(|e| panic!("{}: {e}", rule.name));
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
