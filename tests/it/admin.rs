//! `hoheit-admin`, run in-process against a fresh database per test: keys it
//! prints authenticate until revoked; bad input exits 2 with a reason; the
//! demo builds the municipality once however often it runs, with the grant
//! the mobility company's contract states; audit verification finds the
//! first tampered record; retention deletes exactly what is past its
//! dataset's retention.

use crate::admin_support;

use std::os::unix::fs::MetadataExt;

use admin_support::{admin, admin_json, run_admin};
use anyhow::Context;
use chrono::{Duration, Utc};
use hoheit_admin::AdminError;
use hoheit_domain::policy::{self, Caller, Decision, DenyCode, OrgKind, ReadRequest, Resolution, Role, Via};
use hoheit_domain::{DatastreamId, Slug, Unit};
use hoheit_store::audit::{self, AuditRecord};
use hoheit_store::principals::{self, AuthError};
use hoheit_store::registry::{self, NewDatastream, NewOrganisation, NewThing};
use hoheit_store::{datasets, grants};
use hoheit_tests::Isolation;
use hoheit_town::{Town, STADT, STADTWERKE};
use serde_json::Value;
use sqlx::PgPool;

fn text(value: &Value) -> anyhow::Result<&str> {
    value.as_str().with_context(|| format!("{value} is not a string"))
}

fn id(value: &Value) -> anyhow::Result<i64> {
    value.as_i64().with_context(|| format!("{value} is not an id"))
}

#[tokio::test]
async fn a_printed_key_authenticates_its_principal_until_it_is_revoked() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let db = isolation.database_url.as_str();

    admin(db, &["organisations", "create", "stadt-t", "--name", "Stadt T"]).await?;
    let amt = admin_json(
        db,
        &["organisations", "create", "amt-t", "--name", "Amt T", "--kind", "department", "--parent", "stadt-t"],
    )
    .await?;
    assert_eq!((amt["kind"].as_str(), amt["parent"].as_str()), (Some("department"), Some("stadt-t")));
    admin(db, &["principals", "create", "leserin", "--org", "amt-t", "--role", "reader"]).await?;
    let issued = admin_json(db, &["keys", "create", "leserin", "--expires-in-days", "30"]).await?;
    let key = text(&issued["key"])?;
    let key_id = id(&issued["id"])?;

    let principal = principals::authenticate_key(&pool, key).await?;
    assert_eq!((principal.name.as_str(), principal.org_slug.as_str()), ("leserin", "amt-t"));
    assert_eq!(principal.role, Role::Reader);
    let town = registry::organisation_id(&pool, &Slug::parse("organisation", "stadt-t")?).await?;
    assert_eq!(principal.municipality_id, Some(town), "a department belongs to its town");

    // Listings show metadata, never the key.
    let listed = admin(db, &["keys", "list", "--principal", "leserin"]).await?;
    assert!(listed.contains(text(&issued["mqtt_user"])?) && listed.contains("active"), "{listed}");
    let listed_json = admin(db, &["keys", "list", "--json"]).await?;
    let secret = key.splitn(3, '_').nth(2).context("secret part")?;
    assert!(!listed.contains(secret) && !listed_json.contains(secret), "a listing leaked the key");

    admin(db, &["keys", "revoke", &key_id.to_string()]).await?;
    assert!(matches!(principals::authenticate_key(&pool, key).await, Err(AuthError::Revoked(_))));
    assert!(principals::mqtt_credentials(&pool).await?.is_empty(), "a revoked key is no MQTT user");
    let (_, again) = run_admin(db, &["keys", "revoke", &key_id.to_string()]).await;
    assert_eq!(again.map_err(|e| e.exit_code()), Err(2), "revoking twice is bad input");

    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test]
async fn bad_input_exits_2_with_a_one_line_reason() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let db = isolation.database_url.as_str();
    admin(db, &["organisations", "create", "stadt-t", "--name", "Stadt T"]).await?;

    let cases: &[(&[&str], &str)] = &[
        (
            &["principals", "create", "p", "--org", "no-such-org", "--role", "reader"],
            "organisation no-such-org not found",
        ),
        (&["organisations", "create", "stadt-t", "--name", "Again"], "organisation stadt-t already exists"),
        (&["organisations", "create", "amt", "--name", "Amt", "--kind", "department"], "invalid parent"),
        (&["keys", "create", "nobody"], "principal nobody not found"),
        (&["datasets", "assign", "no-such-dataset", "1"], "dataset no-such-dataset not found"),
        (&["grants", "revoke", "4711"], "active grant 4711 not found"),
    ];
    for (args, reason) in cases {
        let (_, result) = run_admin(db, args).await;
        let error = result.err().with_context(|| format!("{args:?} should fail"))?;
        assert_eq!(error.exit_code(), 2, "{args:?}: {error}");
        assert!(error.one_line().contains(reason), "{args:?}: {error}");
        assert!(!error.one_line().contains('\n'));
    }

    // clap refuses values outside the domain before anything runs, also with exit code 2.
    for args in [
        &["hoheit-admin", "organisations", "create", "x", "--name", "X", "--kind", "city"][..],
        &["hoheit-admin", "organisations", "create", "Not A Slug", "--name", "X"][..],
        &["hoheit-admin", "principals", "create", "p", "--org", "stadt-t", "--role", "superuser"][..],
        &["hoheit-admin", "datasets", "assign", "ds"][..],
    ] {
        let error = <hoheit_admin::Cli as clap::Parser>::try_parse_from(args).err().context("should not parse")?;
        assert_eq!(error.exit_code(), 2, "{args:?}");
    }

    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

/// Registers the simulator's town the way the simulator does: its two
/// organisations with the default kind, its things and datastreams.
async fn register_town(pool: &PgPool) -> anyhow::Result<Town> {
    let town = Town::eberswalde(1)?;
    for org in &town.organisations {
        let new = NewOrganisation { slug: org.slug.clone(), name: org.name.clone(), kind: None, parent: None };
        registry::create_organisation(pool, &new).await?;
    }
    for thing in &town.things {
        let new = NewThing {
            org: thing.org.clone(),
            slug: thing.slug.clone(),
            name: thing.name.clone(),
            latitude: Some(thing.latitude),
            longitude: Some(thing.longitude),
            external_id: None,
            device_type: None,
        };
        registry::create_thing(pool, &new).await?;
    }
    for (thing, property) in town.datastreams() {
        let new = NewDatastream {
            org: thing.org.clone(),
            thing: thing.slug.clone(),
            property: Slug::parse("property", property.slug)?,
            name: property.name.into(),
            unit: Some(Unit::parse(property.unit)?),
            min: None,
            max: None,
        };
        registry::create_datastream(pool, &new).await?;
    }
    Ok(town)
}

/// What the policy decides for the holder of `key` reading `datastream`.
async fn decide(
    pool: &PgPool,
    key: &str,
    datastream: i64,
    resolution: Resolution,
    days_back: i64,
) -> anyhow::Result<Decision> {
    let principal = principals::authenticate_key(pool, key).await?;
    let access = datasets::access_for_datastream(pool, DatastreamId(datastream)).await?;
    let held = match access.id {
        Some(dataset) => grants::held(pool, principal.org_id, dataset).await?,
        None => Vec::new(),
    };
    let now = Utc::now();
    let request = ReadRequest { resolution, from: now - Duration::days(days_back), to: now };
    Ok(policy::decide(&Caller::Principal(principal), &access, &held, &request, now))
}

fn key_of<'a>(report: &'a Value, principal: &str) -> anyhow::Result<&'a str> {
    let p = report["principals"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == principal))
        .with_context(|| format!("principal {principal} in the demo report"))?;
    text(&p["key"]["key"])
}

fn first_datastream_of(report: &Value, dataset: &str) -> anyhow::Result<i64> {
    let d = report["datasets"]
        .as_array()
        .and_then(|ds| ds.iter().find(|d| d["slug"] == dataset))
        .with_context(|| format!("dataset {dataset} in the demo report"))?;
    id(&d["datastreams"][0])
}

fn changes(report: &Value, section: &str) -> Vec<String> {
    report[section].as_array().into_iter().flatten().map(|x| x["change"].as_str().unwrap_or("?").to_owned()).collect()
}

#[tokio::test]
async fn demo_is_idempotent_and_grants_the_mobility_company_15_minute_aggregates_of_30_days() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let db = isolation.database_url.as_str();
    let town = register_town(&pool).await?;
    let dir = tempfile::tempdir()?;
    let keys_file = dir.path().join("demo-keys.txt");
    let keys_arg = keys_file.to_str().context("UTF-8 path")?;
    let demo = ["demo", "--keys-file", keys_arg, "--wait-secs", "0"];

    let first = admin_json(db, &demo).await?;
    let stadtwerke = first["organisations"]
        .as_array()
        .and_then(|os| os.iter().find(|o| o["slug"] == STADTWERKE))
        .context("stadtwerke in the report")?;
    assert_eq!((stadtwerke["change"].as_str(), stadtwerke["was"].as_str()), (Some("updated"), Some("municipality")));

    let second = admin_json(db, &demo).await?;
    let rules = changes(&first, "rules");
    assert!(rules.len() == 3 && rules.iter().all(|c| c == "created"), "first run, rules: {rules:?}");
    for section in ["organisations", "datasets", "grants", "principals", "rules"] {
        let all = changes(&second, section);
        assert!(!all.is_empty() && all.iter().all(|c| c == "unchanged"), "second run, {section}: {all:?}");
    }

    // The municipality: the Stadtwerke became the town's company, nothing is duplicated.
    let company =
        registry::organisation(&pool, &Slug::parse("organisation", STADTWERKE)?).await?.context("stadtwerke")?;
    assert_eq!((company.kind, company.parent.as_ref().map(Slug::as_str)), (OrgKind::MunicipalCompany, Some(STADT)));
    let orgs = registry::list_organisations(&pool).await?;
    assert_eq!(orgs.len(), 5, "{orgs:?}");
    assert_eq!(orgs.iter().filter(|o| o.kind == OrgKind::Department).count(), 2);
    assert_eq!(orgs.iter().filter(|o| o.kind == OrgKind::ThirdParty).count(), 1);
    assert_eq!(datasets::list(&pool).await?.len(), 4);
    assert_eq!(principals::list_principals(&pool, None).await?.len(), 8);
    let assigned: i64 =
        sqlx::query_scalar("SELECT count(*) FROM datastreams WHERE dataset_id IS NOT NULL").fetch_one(&pool).await?;
    assert_eq!(assigned as usize, town.datastream_count(), "every datastream of the town is in a dataset");

    // The alert rules, each once, owned by their department's or company's admin; the gauge's
    // on the warning mark the simulator's gauge passes now and then.
    let rules: Vec<(String, String, Option<f64>, String)> = sqlx::query_as(
        "SELECT r.kind, t.slug, r.threshold, p.name FROM alert_rules r
         JOIN datastreams d ON d.id = r.datastream_id JOIN things t ON t.id = d.thing_id
         JOIN principals p ON p.id = r.principal_id ORDER BY r.id",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(rules.len(), 3, "{rules:?}");
    assert!(rules.contains(&(
        "above".into(),
        "pegel-finowkanal-stadtschleuse".into(),
        Some(hoheit_town::GAUGE_WARNING_CM),
        "amt-verkehr-admin".into()
    )));
    let states: i64 = sqlx::query_scalar("SELECT count(*) FROM alert_states").fetch_one(&pool).await?;
    assert_eq!(states, 3, "each rule starts with its state");

    // The mobility company's contract, exactly once.
    let movi = grants::list_grants(&pool, None, Some(&Slug::parse("organisation", "movi-mobility")?)).await?;
    assert_eq!(movi.len(), 1, "{movi:?}");
    let g = &movi[0].terms;
    assert_eq!((g.min_interval_mins, g.history_days, g.revoked_at), (Some(15), Some(30), None));
    assert_eq!(movi[0].dataset, "verkehrszaehlungen");
    assert_eq!(g.contract_ref, hoheit_admin::cmd::demo::MOVI_CONTRACT);
    assert!(!g.purpose.trim().is_empty());
    assert_eq!((g.valid_until - g.valid_from).num_days(), 365, "valid for one year");

    // New keys on every run; the file holds the latest, mode 0600.
    let movi_key = key_of(&second, "movi-prognose")?;
    assert_ne!(key_of(&first, "movi-prognose")?, movi_key);
    let file = std::fs::read_to_string(&keys_file)?;
    assert_eq!(std::fs::metadata(&keys_file)?.mode() & 0o777, 0o600);
    for p in second["principals"].as_array().context("principals")? {
        assert!(file.contains(text(&p["key"]["key"])?), "{file}");
        assert!(principals::authenticate_key(&pool, text(&p["key"]["key"])?).await.is_ok());
    }
    assert!(!file.contains(key_of(&first, "movi-prognose")?), "the file holds this run's keys");

    // What the policy makes of it.
    let traffic = first_datastream_of(&second, "verkehrszaehlungen")?;
    let parking = first_datastream_of(&second, "parkhaus-belegung")?;
    let agg = |minutes: i64| Resolution::Aggregate { interval_secs: minutes * 60 };
    assert!(matches!(decide(&pool, movi_key, traffic, agg(15), 29).await?, Decision::Allow { via: Via::Grant(_), .. }));
    for (resolution, days, limit) in [
        (Resolution::Raw, 1, DenyCode::RawNotGranted),
        (agg(5), 1, DenyCode::IntervalBelowGrant),
        (agg(15), 31, DenyCode::OutsideGrantWindow),
    ] {
        match decide(&pool, movi_key, traffic, resolution, days).await? {
            Decision::Deny { reason } => assert_eq!(reason.code(), limit, "{reason}"),
            allowed => anyhow::bail!("{resolution} over {days} days should be denied: {allowed:?}"),
        }
    }
    let verkehr = key_of(&second, "amt-verkehr-leser")?;
    assert!(decide(&pool, verkehr, traffic, Resolution::Raw, 1).await?.is_allowed(), "the traffic department's grant");
    let umwelt = key_of(&second, "amt-umwelt-leser")?;
    assert!(!decide(&pool, umwelt, traffic, agg(60), 1).await?.is_allowed(), "restricted: no grant, no access");
    assert!(matches!(
        decide(&pool, umwelt, parking, agg(60), 1).await?,
        Decision::Allow { via: Via::SameMunicipality, .. }
    ));

    // The printed examples use the aggregates route with bearer keys.
    let human = admin(db, &demo).await?;
    assert!(human.contains("/aggregates?from=") && human.contains("interval=15m") && human.contains("Bearer hoh_"));

    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test]
async fn demo_without_the_simulators_town_fails_with_a_reason() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let (_, result) = run_admin(&isolation.database_url, &["demo", "--wait-secs", "0"]).await;
    match result {
        Err(e @ AdminError::NotReady(_)) => {
            assert_eq!(e.exit_code(), 1);
            assert!(e.one_line().contains("hoheit-simulator"), "{e}");
        }
        other => anyhow::bail!("expected NotReady, got {other:?}"),
    }
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

fn record(n: i64) -> AuditRecord {
    let now = Utc::now();
    AuditRecord {
        at: now,
        request_id: format!("req-{n}"),
        principal_id: Some(n),
        principal_name: format!("p{n}"),
        org_id: Some(1),
        grant_id: None,
        dataset_id: Some(1),
        datastream_id: Some(n),
        action: "aggregates".into(),
        range_from: Some(now - Duration::days(1)),
        range_to: Some(now),
        resolution: "aggregate:900s".into(),
        rows_returned: 96,
        allowed: true,
        reason: "owner organisation".into(),
    }
}

/// Appends records `ns` through `log` concurrently; each record's result.
async fn append_concurrently(
    log: &audit::AuditLog,
    ns: impl Iterator<Item = i64>,
) -> Vec<(i64, Result<i64, sqlx::Error>)> {
    let mut appends = tokio::task::JoinSet::new();
    for n in ns {
        let log = log.clone();
        let record = match n {
            // A record the database cannot store (U+0000 in text).
            999 => AuditRecord { reason: "nul \u{0} inside".into(), ..record(n) },
            n => record(n),
        };
        appends.spawn(async move { (n, log.append(record).await) });
    }
    let mut results = Vec::new();
    while let Some(joined) = appends.join_next().await {
        results.push(joined.expect("an append task"));
    }
    results
}

#[tokio::test]
async fn concurrent_audit_records_share_transactions_and_keep_one_intact_chain() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    audit::append(&pool, record(0)).await?;
    let log = audit::AuditLog::start(pool.clone());

    let mut ids = Vec::new();
    for (n, id) in append_concurrently(&log, 1..=200).await {
        ids.push((id.with_context(|| format!("record {n}"))?, n));
    }
    ids.sort();
    let stored: Vec<(i64, Option<i64>)> =
        sqlx::query_as("SELECT id, datastream_id FROM audit_log ORDER BY id OFFSET 1").fetch_all(&pool).await?;
    assert_eq!(stored, ids.iter().map(|&(id, n)| (id, Some(n))).collect::<Vec<_>>(), "each caller got its record's id");
    let transactions: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT xmin::text) FROM audit_log").fetch_one(&pool).await?;
    assert!(transactions < 201, "201 records in {transactions} transactions: concurrent records share them");

    // A record the database refuses fails alone; the others of its group are stored.
    let results = append_concurrently(&log, (1_001..=1_020).chain([999])).await;
    for (n, result) in &results {
        assert_eq!(result.is_ok(), *n != 999, "record {n}: {result:?}");
    }
    let check = audit::verify(&pool).await?;
    assert_eq!((check.records_checked, check.first_broken_id), (221, None), "{check:?}");
    drop(log);
    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test]
async fn audit_verify_passes_an_intact_chain_and_names_the_first_tampered_record() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let db = isolation.database_url.as_str();
    let mut ids = Vec::new();
    for n in 1..=4 {
        ids.push(audit::append(&pool, record(n)).await?);
    }

    let intact = admin_json(db, &["audit", "verify"]).await?;
    assert_eq!((intact["records_checked"].as_i64(), intact["first_broken_id"].as_i64()), (Some(4), None));

    // Tampering needs a superuser who lifts the append-only trigger.
    let tampered = ids[1];
    let mut tx = pool.begin().await?;
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only").execute(&mut *tx).await?;
    sqlx::query("UPDATE audit_log SET rows_returned = 0 WHERE id = $1").bind(tampered).execute(&mut *tx).await?;
    sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only").execute(&mut *tx).await?;
    tx.commit().await?;

    let (out, result) = run_admin(db, &["audit", "verify", "--json"]).await;
    let report: Value = serde_json::from_str(&out)?;
    assert_eq!(report["first_broken_id"].as_i64(), Some(tampered), "{report}");
    assert_eq!(report["records_checked"].as_i64(), Some(1), "the record before it is intact");
    match result {
        Err(e @ AdminError::AuditBroken { .. }) => {
            assert_eq!(e.exit_code(), 1);
            assert!(e.one_line().contains(&format!("record {tampered}")), "{e}");
        }
        other => anyhow::bail!("a broken chain must fail the command: {other:?}"),
    }
    let (human, _) = run_admin(db, &["audit", "verify"]).await;
    assert!(human.contains(&format!("BROKEN at record {tampered}")), "{human}");

    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test]
async fn retention_run_deletes_readings_past_retention_and_keeps_newer_and_unassigned_ones() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let db = isolation.database_url.as_str();
    admin(db, &["organisations", "create", "stadt-r", "--name", "Stadt R"]).await?;
    let org = Slug::parse("organisation", "stadt-r")?;
    let thing = Slug::parse("thing", "pegel-1")?;
    registry::create_thing(
        &pool,
        &NewThing {
            org: org.clone(),
            slug: thing.clone(),
            name: "Pegel".into(),
            latitude: None,
            longitude: None,
            external_id: None,
            device_type: None,
        },
    )
    .await?;
    let mut streams = Vec::new();
    for property in ["level", "temperature"] {
        let new = NewDatastream {
            org: org.clone(),
            thing: thing.clone(),
            property: Slug::parse("property", property)?,
            name: property.into(),
            unit: None,
            min: None,
            max: None,
        };
        streams.push(registry::create_datastream(&pool, &new).await?.id.0);
    }
    let (kept_in_dataset, unassigned) = (streams[0], streams[1]);
    let dataset = admin_json(
        db,
        &[
            "datasets",
            "create",
            "pegel",
            "--owner",
            "stadt-r",
            "--title",
            "Pegel",
            "--description",
            "Wasserstand",
            "--steward-contact",
            "umwelt@stadt-r.example",
            "--classification",
            "open",
            "--license",
            "http://dcat-ap.de/def/licenses/dl-by-de/2.0",
            "--purpose",
            "Hochwasservorsorge",
            "--retention-days",
            "30",
            "--theme",
            "http://publications.europa.eu/resource/authority/data-theme/ENVI",
        ],
    )
    .await?;
    assert_eq!((dataset["retention_days"].as_i64(), dataset["classification"].as_str()), (Some(30), Some("open")));
    let assigned = admin_json(db, &["datasets", "assign", "pegel", &kept_in_dataset.to_string()]).await?;
    assert_eq!(assigned["assigned"], serde_json::json!([kept_in_dataset]));

    for (datastream, days_ago) in [(kept_in_dataset, 40), (kept_in_dataset, 29), (kept_in_dataset, 0), (unassigned, 40)]
    {
        sqlx::query(
            "INSERT INTO observations (datastream_id, time, value) VALUES ($1, now() - make_interval(days => $2), 1)",
        )
        .bind(datastream)
        .bind(days_ago)
        .execute(&pool)
        .await?;
    }
    let run = admin_json(db, &["retention", "run"]).await?;
    assert_eq!(run["deleted"].as_u64(), Some(1), "{run}");

    let left: Vec<(i64, i32)> = sqlx::query_as(
        "SELECT datastream_id, round(extract(epoch FROM now() - time) / 86400)::int FROM observations ORDER BY 1, 2",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(left, [(kept_in_dataset, 0), (kept_in_dataset, 29), (unassigned, 40)]);

    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}

#[tokio::test]
async fn grants_are_created_listed_and_revoked_from_the_command_line() -> anyhow::Result<()> {
    let isolation = Isolation::new();
    let pool = isolation.create_database().await?;
    let db = isolation.database_url.as_str();
    admin(db, &["organisations", "create", "stadt-g", "--name", "Stadt G"]).await?;
    admin(db, &["organisations", "create", "firma", "--name", "Firma GmbH", "--kind", "third_party"]).await?;
    admin(
        db,
        &[
            "datasets",
            "create",
            "verkehr",
            "--owner",
            "stadt-g",
            "--title",
            "Verkehr",
            "--steward-contact",
            "verkehr@stadt-g.example",
            "--classification",
            "restricted",
            "--license",
            "Nutzung nur im Rahmen der Vereinbarung",
            "--purpose",
            "Verkehrsplanung",
            "--retention-days",
            "365",
        ],
    )
    .await?;
    let created = admin_json(
        db,
        &[
            "grants",
            "create",
            "--dataset",
            "verkehr",
            "--grantee",
            "firma",
            "--purpose",
            "Routing",
            "--contract-ref",
            "V-1",
            "--min-interval-mins",
            "15",
            "--history-days",
            "30",
            "--valid-days",
            "90",
            "--rate-per-minute",
            "30",
        ],
    )
    .await?;
    let grant_id = id(&created["id"])?;
    let listed = admin_json(db, &["grants", "list", "--grantee", "firma"]).await?;
    assert_eq!(listed[0]["id"].as_i64(), Some(grant_id), "{listed}");
    assert_eq!((listed[0]["dataset"].as_str(), listed[0]["rate_per_minute"].as_i64()), (Some("verkehr"), Some(30)));
    let table = admin(db, &["grants", "list"]).await?;
    assert!(table.contains("aggregates >= 15 min") && table.contains("last 30 days") && table.contains("active"));

    admin(db, &["grants", "revoke", &grant_id.to_string()]).await?;
    assert!(grants::get(&pool, grant_id).await?.revoked_at.is_some());
    assert!(admin(db, &["grants", "list"]).await?.contains("revoked"));

    pool.close().await;
    isolation.drop_database().await;
    Ok(())
}
