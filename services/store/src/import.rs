//! Bulk registration: the rows of an import file (parsed and checked on
//! their own by `hoheit_domain::onboarding`) checked against the registry
//! (types, datasets, external ids of other things), compared with what is
//! stored, and applied in one transaction with set-based statements (arrays
//! bound as `UNNEST`), so ten thousand rows take one round of statements.
//! A row that matches what is stored writes nothing: importing the same file
//! twice changes nothing the second time. One audit record per import, with
//! its counts.

use std::collections::{HashMap, HashSet};

use hoheit_domain::onboarding::{ImportRow, Parsed, RowError};
use hoheit_domain::Slug;
use serde::Serialize;
use sqlx::{FromRow, PgPool, Postgres, Transaction};

use crate::audit::{self, Actor, AdminChange};
use crate::device_types;
use crate::registry::{normalise_external_id, RegistryError};

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub dry_run: bool,
    pub things_created: usize,
    pub things_changed: usize,
    pub things_unchanged: usize,
    pub datastreams_created: usize,
    /// One entry per row, in file order.
    pub changes: Vec<RowChange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Change,
    Unchanged,
}

/// What happens to one row's thing.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RowChange {
    /// The row's line (CSV: the file's line, the header is 1; JSON: the 1-based index).
    pub line: usize,
    pub slug: Slug,
    pub action: Action,
    /// The fields that are set or change: name, latitude, longitude, type, external_id, dataset.
    pub fields: Vec<&'static str>,
    /// The properties whose datastreams are created.
    pub datastreams: Vec<Slug>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Rows the registry refuses; nothing was changed.
    #[error("{} row(s) cannot be imported; nothing was changed", .0.len())]
    Rows(Vec<RowError>),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<sqlx::Error> for ImportError {
    fn from(e: sqlx::Error) -> Self {
        ImportError::Registry(e.into())
    }
}

/// A stored thing of the organisation that the file names (by slug or external id).
#[derive(FromRow)]
struct Stored {
    id: i64,
    slug: String,
    name: String,
    latitude: Option<f64>,
    longitude: Option<f64>,
    device_type_id: Option<i64>,
    external_id: Option<String>,
    /// Its datastreams' properties and datasets, side by side.
    properties: Vec<String>,
    dataset_ids: Vec<Option<i64>>,
}

#[derive(FromRow)]
struct Named {
    id: i64,
    slug: String,
}

/// One row as it will be stored.
struct Target<'r> {
    row: &'r ImportRow,
    stored: Option<&'r Stored>,
    device_type_id: Option<i64>,
    external_id: Option<String>,
    dataset_id: Option<i64>,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// Checks the rows that parsed against the registry of organisation
/// `org_id`; with no fault in the file (the parser's and these), compares
/// them with what is stored and, unless `dry_run`, applies the difference in
/// one transaction.
pub async fn import(
    pool: &PgPool,
    org_id: i64,
    parsed: &Parsed,
    dry_run: bool,
    actor: &Actor,
) -> Result<ImportReport, ImportError> {
    let rows: &[ImportRow] = &parsed.rows;
    let mut tx = pool.begin().await?;
    // Imports of one organisation run one after the other: each compares with what the last one stored.
    sqlx::query("SELECT id FROM organisations WHERE id = $1 FOR UPDATE").bind(org_id).execute(&mut *tx).await?;
    let slugs: Vec<&str> = rows.iter().map(|r| r.slug.as_str()).collect();
    let stored: Vec<Stored> = sqlx::query_as(
        "SELECT t.id, t.slug, t.name, t.latitude, t.longitude, t.device_type_id, t.external_id,
                coalesce(array_agg(d.property ORDER BY d.id) FILTER (WHERE d.id IS NOT NULL), '{}') AS properties,
                coalesce(array_agg(d.dataset_id ORDER BY d.id) FILTER (WHERE d.id IS NOT NULL), '{}') AS dataset_ids
         FROM things t LEFT JOIN datastreams d ON d.thing_id = t.id
         WHERE t.org_id = $1 AND t.slug = ANY($2)
         GROUP BY t.id",
    )
    .bind(org_id)
    .bind(&slugs)
    .fetch_all(&mut *tx)
    .await?;
    let stored: HashMap<&str, &Stored> = stored.iter().map(|s| (s.slug.as_str(), s)).collect();
    let types = named(&mut tx, "SELECT id, slug FROM device_types WHERE org_id = $1", org_id).await?;
    let datasets =
        named(&mut tx, "SELECT id, slug FROM datasets WHERE owner_org_id = $1 AND erased_at IS NULL", org_id).await?;
    let properties = type_properties(&mut tx, org_id).await?;

    let mut errors = parsed.errors.clone();
    let mut targets = Vec::with_capacity(rows.len());
    for row in rows {
        let stored = stored.get(row.slug.as_str()).copied();
        let lookup = |names: &HashMap<String, i64>,
                      slug: &Option<Slug>,
                      column: &str,
                      what: &str,
                      errors: &mut Vec<RowError>| {
            let slug = slug.as_ref()?;
            let found = names.get(slug.as_str()).copied();
            if found.is_none() {
                errors.push(RowError::new(row.line, Some(column), format!("the organisation has no {what} {slug}")));
            }
            found
        };
        let device_type_id = lookup(&types, &row.device_type, "type", "device type", &mut errors)
            .or(stored.and_then(|s| s.device_type_id));
        let dataset_id = lookup(&datasets, &row.dataset, "dataset", "dataset", &mut errors);
        let external_id = match row.external_id.as_deref().map(normalise_external_id).transpose() {
            Ok(given) => given.or_else(|| stored.and_then(|s| s.external_id.clone())),
            Err(e) => {
                errors.push(RowError::new(row.line, Some("external_id"), e.to_string()));
                None
            }
        };
        let (latitude, longitude) = match (row.latitude, row.longitude) {
            (Some(lat), Some(lon)) => (Some(lat), Some(lon)),
            _ => (stored.and_then(|s| s.latitude), stored.and_then(|s| s.longitude)),
        };
        targets.push(Target { row, stored, device_type_id, external_id, dataset_id, latitude, longitude });
    }
    check_external_ids(&mut tx, org_id, &targets, &mut errors).await?;
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Err(ImportError::Rows(errors));
    }

    let mut report = ImportReport { dry_run, ..ImportReport::default() };
    for target in &targets {
        let change = compare(target, &properties);
        match change.action {
            Action::Create => report.things_created += 1,
            Action::Change => report.things_changed += 1,
            Action::Unchanged => report.things_unchanged += 1,
        }
        report.datastreams_created += change.datastreams.len();
        report.changes.push(change);
    }
    if dry_run || report.things_created + report.things_changed == 0 {
        return Ok(report);
    }
    apply(&mut tx, org_id, &targets, &report).await?;
    let counts = serde_json::json!({
        "things_created": report.things_created,
        "things_changed": report.things_changed,
        "things_unchanged": report.things_unchanged,
        "datastreams_created": report.datastreams_created,
    });
    let change = AdminChange::new("thing.import", "organisation", org_id, org_id).states(None::<&()>, Some(&counts));
    audit::record_change(&mut tx, actor, &change).await?;
    tx.commit().await?;
    Ok(report)
}

async fn named(
    tx: &mut Transaction<'_, Postgres>,
    sql: &str,
    org_id: i64,
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let rows: Vec<Named> = sqlx::query_as(sql).bind(org_id).fetch_all(&mut **tx).await?;
    Ok(rows.into_iter().map(|n| (n.slug, n.id)).collect())
}

#[derive(FromRow)]
struct TypeProperty {
    device_type_id: i64,
    property: String,
}

/// Each type's properties, in the type's order.
async fn type_properties(
    tx: &mut Transaction<'_, Postgres>,
    org_id: i64,
) -> Result<HashMap<i64, Vec<Slug>>, sqlx::Error> {
    let rows: Vec<TypeProperty> = sqlx::query_as(
        "SELECT p.device_type_id, p.property FROM device_type_properties p
         JOIN device_types dt ON dt.id = p.device_type_id WHERE dt.org_id = $1 ORDER BY p.device_type_id, p.position",
    )
    .bind(org_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut by_type: HashMap<i64, Vec<Slug>> = HashMap::new();
    for row in rows {
        if let Ok(property) = Slug::parse("property", &row.property) {
            by_type.entry(row.device_type_id).or_default().push(property);
        }
    }
    Ok(by_type)
}

/// An external id is one thing's: not twice in the file, not another stored thing's.
async fn check_external_ids(
    tx: &mut Transaction<'_, Postgres>,
    org_id: i64,
    targets: &[Target<'_>],
    errors: &mut Vec<RowError>,
) -> Result<(), sqlx::Error> {
    let mut in_file: HashMap<&str, usize> = HashMap::new();
    for t in targets {
        if let Some(id) = t.external_id.as_deref() {
            if let Some(first) = in_file.insert(id, t.row.line) {
                errors.push(RowError::new(
                    t.row.line,
                    Some("external_id"),
                    format!("external id {id} is also on line {first}"),
                ));
            }
        }
    }
    let ids: Vec<&str> = in_file.keys().copied().collect();
    let holders: Vec<(String, String)> =
        sqlx::query_as("SELECT external_id, slug FROM things WHERE org_id = $1 AND external_id = ANY($2)")
            .bind(org_id)
            .bind(&ids)
            .fetch_all(&mut **tx)
            .await?;
    let slugs: HashSet<&str> = targets.iter().map(|t| t.row.slug.as_str()).collect();
    for (external_id, holder) in &holders {
        let Some(t) = targets.iter().find(|t| t.external_id.as_deref() == Some(external_id.as_str())) else { continue };
        // Taken from a thing the file does not describe, or one that keeps it.
        let holder_keeps =
            targets.iter().any(|o| o.row.slug.as_str() == holder && o.external_id.as_deref() == Some(external_id));
        if holder != t.row.slug.as_str() && (!slugs.contains(holder.as_str()) || holder_keeps) {
            errors.push(RowError::new(
                t.row.line,
                Some("external_id"),
                format!("external id {external_id} belongs to thing {holder}"),
            ));
        }
    }
    Ok(())
}

/// The row's action, changed fields and new datastreams.
fn compare(t: &Target<'_>, properties: &HashMap<i64, Vec<Slug>>) -> RowChange {
    let existing: Vec<&str> = t.stored.map(|s| s.properties.iter().map(String::as_str).collect()).unwrap_or_default();
    let datastreams: Vec<Slug> = t
        .device_type_id
        .and_then(|id| properties.get(&id))
        .map(|ps| ps.iter().filter(|p| !existing.contains(&p.as_str())).cloned().collect())
        .unwrap_or_default();
    let row = t.row;
    let mut fields = Vec::new();
    let Some(s) = t.stored else {
        fields.push("name");
        let given = [
            (row.latitude.is_some(), "latitude"),
            (row.longitude.is_some(), "longitude"),
            (row.device_type.is_some(), "type"),
            (t.external_id.is_some(), "external_id"),
            (row.dataset.is_some(), "dataset"),
        ];
        fields.extend(given.iter().filter(|(set, _)| *set).map(|(_, f)| *f));
        return RowChange { line: row.line, slug: row.slug.clone(), action: Action::Create, fields, datastreams };
    };
    let differs = [
        (s.name != row.name, "name"),
        (s.latitude != t.latitude, "latitude"),
        (s.longitude != t.longitude, "longitude"),
        (s.device_type_id != t.device_type_id, "type"),
        (s.external_id != t.external_id, "external_id"),
        (t.dataset_id.is_some() && s.dataset_ids.iter().any(|d| *d != t.dataset_id), "dataset"),
    ];
    fields.extend(differs.iter().filter(|(changed, _)| *changed).map(|(_, f)| *f));
    let action = if fields.is_empty() && datastreams.is_empty() { Action::Unchanged } else { Action::Change };
    RowChange { line: row.line, slug: row.slug.clone(), action, fields, datastreams }
}

/// Writes the report's creates and changes: things, then the datastreams
/// of their types, then the datasets, each as one statement over arrays.
async fn apply(
    tx: &mut Transaction<'_, Postgres>,
    org_id: i64,
    targets: &[Target<'_>],
    report: &ImportReport,
) -> Result<(), ImportError> {
    let touched: Vec<&Target> =
        targets.iter().zip(&report.changes).filter(|(_, c)| c.action != Action::Unchanged).map(|(t, _)| t).collect();
    let (creates, changes): (Vec<&Target>, Vec<&Target>) = touched.iter().partition(|t| t.stored.is_none());
    let created: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO things (org_id, slug, name, latitude, longitude, device_type_id, external_id)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::float8[], $5::float8[], $6::int8[], $7::text[])
         RETURNING id",
    )
    .bind(org_id)
    .bind(creates.iter().map(|t| t.row.slug.as_str()).collect::<Vec<_>>())
    .bind(creates.iter().map(|t| t.row.name.as_str()).collect::<Vec<_>>())
    .bind(creates.iter().map(|t| t.latitude).collect::<Vec<_>>())
    .bind(creates.iter().map(|t| t.longitude).collect::<Vec<_>>())
    .bind(creates.iter().map(|t| t.device_type_id).collect::<Vec<_>>())
    .bind(creates.iter().map(|t| t.external_id.as_deref()).collect::<Vec<_>>())
    .fetch_all(&mut **tx)
    .await
    .map_err(|e| conflict(e, "a thing of the file was registered at the same time; import again"))?;
    let changed: Vec<i64> = changes.iter().filter_map(|t| t.stored.map(|s| s.id)).collect();
    // Free the external ids that move between things of the file before any is set again.
    sqlx::query("UPDATE things SET external_id = NULL WHERE id = ANY($1) AND external_id IS NOT NULL")
        .bind(&changed)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE things t SET name = u.name, latitude = u.latitude, longitude = u.longitude,
                device_type_id = u.device_type_id, external_id = u.external_id
         FROM UNNEST($1::int8[], $2::text[], $3::float8[], $4::float8[], $5::int8[], $6::text[])
              AS u (id, name, latitude, longitude, device_type_id, external_id)
         WHERE t.id = u.id",
    )
    .bind(&changed)
    .bind(changes.iter().map(|t| t.row.name.as_str()).collect::<Vec<_>>())
    .bind(changes.iter().map(|t| t.latitude).collect::<Vec<_>>())
    .bind(changes.iter().map(|t| t.longitude).collect::<Vec<_>>())
    .bind(changes.iter().map(|t| t.device_type_id).collect::<Vec<_>>())
    .bind(changes.iter().map(|t| t.external_id.as_deref()).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await
    .map_err(|e| conflict(e, "an external id of the file was given to another thing at the same time; import again"))?;
    let ids: Vec<i64> = created.iter().chain(&changed).copied().collect();
    device_types::add_missing_datastreams(tx, &ids).await?;
    let with_dataset: Vec<(i64, i64)> = creates
        .iter()
        .zip(&created)
        .map(|(t, id)| (*id, t.dataset_id))
        .chain(changes.iter().filter_map(|t| Some((t.stored?.id, t.dataset_id))))
        .filter_map(|(id, dataset)| Some((id, dataset?)))
        .collect();
    sqlx::query(
        "UPDATE datastreams d SET dataset_id = u.dataset_id
         FROM UNNEST($1::int8[], $2::int8[]) AS u (thing_id, dataset_id)
         WHERE d.thing_id = u.thing_id AND d.dataset_id IS DISTINCT FROM u.dataset_id",
    )
    .bind(with_dataset.iter().map(|(t, _)| *t).collect::<Vec<_>>())
    .bind(with_dataset.iter().map(|(_, d)| *d).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn conflict(e: sqlx::Error, what: &str) -> ImportError {
    match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
            ImportError::Registry(RegistryError::InUse(what.to_owned()))
        }
        _ => e.into(),
    }
}
