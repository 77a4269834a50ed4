//! What the demo shows: the tables of organisations, datasets, grants and
//! principals with their new keys, the example requests, and the keys file.

use std::collections::HashMap;

use chrono::{DurationRound, Utc};
use hoheit_domain::{DatastreamId, DatastreamKey, Slug};
use hoheit_town::Town;

use super::plan::EXAMPLES;
use super::report::{DemoReport, Example, PrincipalOutcome};
use crate::output::{or_dash, time, Table};
use crate::{AdminError, Output};

pub(super) fn examples(
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

pub(super) fn principal_table(report: &DemoReport, header_prefix: &str) -> Table {
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

pub(super) fn key_expiry(report: &DemoReport) -> String {
    or_dash(report.principals.first().map(|p| time(p.key.expires_at)))
}

/// The keys file: comment lines, then one whitespace-separated line per
/// principal with the key last (`awk '$1 == "movi-prognose" {print $NF}'`).
pub fn keys_file(report: &DemoReport) -> String {
    format!(
        "# Hoheit demo: principals and the API keys issued by `hoheit-admin demo` at {}, valid until {}.\n\
         # Keep this file private. Every run issues new keys; earlier ones stay valid until they expire or are\n\
         # revoked (hoheit-admin keys list / keys revoke ID).\n\
         # HTTP: `Authorization: Bearer <key>`. MQTT: user <mqtt user>, password <key> (on the broker at once with dynamic security).\n\
         {}",
        time(Utc::now()),
        key_expiry(report),
        principal_table(report, "# ").render()
    )
}

/// The report as tables, the keys' validity and the example requests.
pub(super) fn print(out: &mut Output<'_>, report: &DemoReport) -> Result<(), AdminError> {
    out.line(format!(
        "Demo municipality Eberswalde, on top of the simulator's {} things and {} datastreams.\n",
        report.things, report.datastreams
    ))?;
    for table in [organisation_table(report), dataset_table(report), grant_table(report)] {
        out.table(&table)?;
        out.line("")?;
    }
    out.table(&principal_table(report, ""))?;
    out.line("")?;
    out.table(&rule_table(report))?;
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

fn organisation_table(report: &DemoReport) -> Table {
    let mut orgs = Table::new(&["organisation", "name", "kind", "parent", "change"]);
    for o in &report.organisations {
        let change = match &o.was {
            Some(was) => format!("{} (was {was})", o.change),
            None => o.change.to_string(),
        };
        orgs.row([o.slug.clone(), o.name.clone(), o.kind.to_string(), or_dash(o.parent.as_ref()), change]);
    }
    orgs
}

fn dataset_table(report: &DemoReport) -> Table {
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
    sets
}

fn grant_table(report: &DemoReport) -> Table {
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
    grants
}

fn rule_table(report: &DemoReport) -> Table {
    let mut rules = Table::new(&["alert rule", "owner", "datastream", "change"]);
    for r in &report.rules {
        rules.row([r.name.clone(), r.owner.clone(), r.datastream.clone(), r.change.to_string()]);
    }
    rules
}
