//! `import`: bulk registration of things by `hoheit-store`'s import (the
//! code behind `POST /v1/admin/things/import` and `hoheit-admin things
//! import`), in-process on a database of its own: a CSV of `--rows` things
//! of a device type with four properties, each into a dataset, parsed, then
//! imported as a dry run, for real, and again (every row unchanged).

use std::time::Instant;

use hoheit_domain::onboarding;
use hoheit_domain::Slug;
use hoheit_store::audit::Actor;
use hoheit_store::device_types::{self, NewDeviceType, TypeProperty};
use hoheit_store::import::{self, ImportReport};

use crate::harness::{run_id, BenchDb, Infra, Table};

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// Things in the file.
    #[arg(long, default_value_t = 10_000)]
    pub rows: usize,
}

fn csv(rows: usize) -> String {
    let mut csv = String::from("slug,name,latitude,longitude,type,dev_eui,dataset\n");
    for i in 0..rows {
        let (lat, lon) = (52.8 + (i % 1000) as f64 * 1e-4, 13.8 + (i / 1000) as f64 * 1e-4);
        csv.push_str(&format!("pm-{i:06},Luftmessung {i},{lat:.5},{lon:.5},dl-pm,70b3d57e{i:08x},luft\n"));
    }
    csv
}

fn property(slug: &str, unit: &str, min: f64, max: f64) -> anyhow::Result<TypeProperty> {
    Ok(TypeProperty {
        property: Slug::parse("property", slug)?,
        name: slug.to_owned(),
        unit: hoheit_domain::Unit::parse(unit)?,
        min: Some(min),
        max: Some(max),
    })
}

pub async fn run(infra: &Infra, args: &ImportArgs) -> anyhow::Result<Vec<Table>> {
    let db = BenchDb::create(infra, &run_id()).await?;
    let outcome = measure(&db, args).await;
    db.drop().await;
    outcome
}

async fn measure(db: &BenchDb, args: &ImportArgs) -> anyhow::Result<Vec<Table>> {
    let pool = &db.pool;
    let actor = Actor::command_line("bench");
    sqlx::query("INSERT INTO organisations (slug, name) VALUES ('bench', 'Benchmark town')").execute(pool).await?;
    sqlx::query(
        "INSERT INTO datasets (slug, owner_org_id, title, steward_contact, classification, license, purpose, retention_days)
         SELECT 'luft', id, 'Luft', 'bench@example.org', 'internal', 'internal', 'benchmark', 30 FROM organisations",
    )
    .execute(pool)
    .await?;
    let org = Slug::parse("organisation", "bench")?;
    let new = NewDeviceType {
        org: None,
        slug: Slug::parse("type", "dl-pm")?,
        name: "Decentlab DL-PM".into(),
        description: None,
        properties: vec![
            property("pm1", "ug/m3", 0.0, 1000.0)?,
            property("pm2_5", "ug/m3", 0.0, 1000.0)?,
            property("pm10", "ug/m3", 0.0, 1000.0)?,
            property("temperature", "Cel", -40.0, 85.0)?,
        ],
    };
    device_types::create(pool, &org, &new, &actor).await?;
    let org_id = hoheit_store::registry::organisation_id(pool, &org).await?;
    let text = csv(args.rows);
    db.checkpoint().await?;

    let started = Instant::now();
    let parsed = onboarding::parse_csv(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let parse = started.elapsed();
    anyhow::ensure!(parsed.errors.is_empty(), "{:?}", parsed.errors.first());

    let mut table = Table::new(
        format!(
            "Import: {} things of a type with 4 properties, one dataset ({} KiB of CSV)",
            args.rows,
            text.len() / 1024
        ),
        &["step", "seconds", "things/s", "created", "changed", "unchanged", "datastreams created"],
    );
    let row = |table: &mut Table, step: &str, seconds: f64, report: Option<&ImportReport>| {
        let count = |f: fn(&ImportReport) -> usize| report.map_or("-".to_owned(), |r| f(r).to_string());
        table.row(vec![
            step.to_owned(),
            format!("{seconds:.2}"),
            format!("{:.0}", args.rows as f64 / seconds),
            count(|r| r.things_created),
            count(|r| r.things_changed),
            count(|r| r.things_unchanged),
            count(|r| r.datastreams_created),
        ]);
    };
    row(&mut table, "parse the CSV", parse.as_secs_f64(), None);
    for (step, dry_run) in [("dry run", true), ("import", false), ("the same file again", false)] {
        let started = Instant::now();
        let report = import::import(pool, org_id, &parsed, dry_run, &actor).await?;
        row(&mut table, step, started.elapsed().as_secs_f64(), Some(&report));
    }
    let datastreams: i64 = sqlx::query_scalar("SELECT count(*) FROM datastreams").fetch_one(pool).await?;
    anyhow::ensure!(datastreams == 4 * args.rows as i64, "{datastreams} datastreams");
    Ok(vec![table])
}
