//! Datasets: the unit of ownership, classification, license, purpose and
//! retention; datastreams belong to one. With their SQL, retention, export
//! and erasure.
//!
//! A datastream not (yet) assigned to a dataset is treated as an `internal`
//! dataset of its thing's organisation (a [`DatasetAccess`] without an id):
//! nothing becomes public by omission.
//!
//! Creating a dataset, assigning a datastream to one and erasing one write
//! their audit record in the same transaction.

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgConnection, PgExecutor, PgPool};

use crate::audit::{self, Actor, AdminChange};
use crate::dead_letters::{self, DeadLettersErased};
use crate::principals::municipality_of;
use crate::registry::RegistryError;
use hoheit_domain::policy::{Classification, DatasetAccess, OrgKind};
use hoheit_domain::topic::TopicScheme;
use hoheit_domain::{DatastreamId, Slug};

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDataset {
    pub slug: Slug,
    pub owner: Slug,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Contact of the data steward (an e-mail address or a function mailbox).
    pub steward_contact: String,
    pub classification: Classification,
    /// For open data a dcat-ap.de license URI, e.g. http://dcat-ap.de/def/licenses/dl-by-de/2.0
    pub license: String,
    /// Zweckbindung: what the data is collected and used for.
    pub purpose: String,
    pub retention_days: i32,
    #[serde(default)]
    pub theme: String,
    pub min_bucket_count: Option<i32>,
}

/// A dataset (a row of [`DATASET_SELECT`]).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, FromRow)]
pub struct Dataset {
    pub id: i64,
    pub slug: String,
    pub owner: String,
    pub owner_org_id: i64,
    pub title: String,
    pub description: String,
    pub steward_contact: String,
    #[sqlx(try_from = "String")]
    pub classification: Classification,
    pub license: String,
    pub purpose: String,
    pub retention_days: i32,
    pub theme: String,
    pub min_bucket_count: i32,
    pub created_at: DateTime<Utc>,
}

fn invalid(field: &'static str, reason: &str) -> RegistryError {
    RegistryError::Invalid { field, reason: reason.into() }
}

/// Registers a dataset; audited as `dataset.create`.
pub async fn create(pool: &PgPool, new: &NewDataset, actor: &Actor) -> Result<Dataset, RegistryError> {
    for (field, value) in [
        ("title", &new.title),
        ("steward_contact", &new.steward_contact),
        ("license", &new.license),
        ("purpose", &new.purpose),
    ] {
        if value.trim().is_empty() || value.chars().count() > 2000 {
            return Err(invalid(field, "must be 1 to 2000 characters"));
        }
    }
    if new.retention_days <= 0 {
        return Err(invalid("retention_days", "must be at least 1"));
    }
    if new.min_bucket_count.is_some_and(|n| n <= 0) {
        return Err(invalid("min_bucket_count", "must be at least 1"));
    }
    let mut tx = pool.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO datasets (slug, owner_org_id, title, description, steward_contact, classification, license,
                               purpose, retention_days, theme, min_bucket_count)
         SELECT $1, id, $3, $4, $5, $6, $7, $8, $9, $10, coalesce($11, 5) FROM organisations WHERE slug = $2
         RETURNING id",
    )
    .bind(new.slug.as_str())
    .bind(new.owner.as_str())
    .bind(&new.title)
    .bind(&new.description)
    .bind(&new.steward_contact)
    .bind(new.classification.as_str())
    .bind(&new.license)
    .bind(&new.purpose)
    .bind(new.retention_days)
    .bind(&new.theme)
    .bind(new.min_bucket_count)
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
            RegistryError::Conflict(format!("dataset {}", new.slug))
        }
        _ => e.into(),
    })?
    .ok_or_else(|| RegistryError::NotFound(format!("organisation {}", new.owner)))?;
    let dataset = fetch(&mut *tx, id).await?;
    let change = AdminChange {
        dataset_id: Some(dataset.id),
        ..AdminChange::new("dataset.create", "dataset", dataset.id, dataset.owner_org_id)
    };
    audit::record_change(&mut tx, actor, &change.states(None::<&Dataset>, Some(&dataset))).await?;
    tx.commit().await?;
    Ok(dataset)
}

/// The columns of a [`Dataset`], of the datasets not erased.
const DATASET_SELECT: &str = "SELECT ds.id, ds.slug, o.slug AS owner, ds.owner_org_id, ds.title, ds.description,
            ds.steward_contact, ds.classification, ds.license, ds.purpose, ds.retention_days, ds.theme,
            ds.min_bucket_count, ds.created_at
     FROM datasets ds JOIN organisations o ON o.id = ds.owner_org_id WHERE ds.erased_at IS NULL";

pub async fn get(pool: &PgPool, id: i64) -> Result<Dataset, RegistryError> {
    fetch(pool, id).await
}

async fn fetch<'e>(executor: impl PgExecutor<'e>, id: i64) -> Result<Dataset, RegistryError> {
    sqlx::query_as(&format!("{DATASET_SELECT} AND ds.id = $1"))
        .bind(id)
        .fetch_optional(executor)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("dataset {id}")))
}

pub async fn list(pool: &PgPool) -> Result<Vec<Dataset>, RegistryError> {
    Ok(sqlx::query_as(&format!("{DATASET_SELECT} ORDER BY ds.id")).fetch_all(pool).await?)
}

/// One (not erased) dataset by slug, if it exists.
pub async fn by_slug(pool: &PgPool, slug: &Slug) -> Result<Option<Dataset>, RegistryError> {
    Ok(sqlx::query_as(&format!("{DATASET_SELECT} AND ds.slug = $1")).bind(slug.as_str()).fetch_optional(pool).await?)
}

/// The dataset a datastream is in and the organisation it must belong to.
#[derive(FromRow)]
struct Assignment {
    dataset_id: Option<i64>,
    owner_org_id: i64,
}

/// Puts a datastream into a dataset of the same owner organisation; audited
/// as `dataset.assign` (before and after: the datastream's dataset) when it
/// changes anything.
pub async fn assign(
    pool: &PgPool,
    dataset_id: i64,
    datastream: DatastreamId,
    actor: &Actor,
) -> Result<(), RegistryError> {
    let mut tx = pool.begin().await?;
    let current: Assignment = sqlx::query_as(
        "SELECT d.dataset_id, ds.owner_org_id FROM datastreams d
         JOIN things t ON t.id = d.thing_id
         JOIN datasets ds ON ds.id = $1 AND ds.erased_at IS NULL AND ds.owner_org_id = t.org_id
         WHERE d.id = $2 FOR UPDATE OF d",
    )
    .bind(dataset_id)
    .bind(datastream.0)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| {
        RegistryError::NotFound(format!("dataset {dataset_id} and datastream {datastream} of the same organisation"))
    })?;
    let before = current.dataset_id;
    if before == Some(dataset_id) {
        return Ok(());
    }
    sqlx::query("UPDATE datastreams SET dataset_id = $1 WHERE id = $2")
        .bind(dataset_id)
        .bind(datastream.0)
        .execute(&mut *tx)
        .await?;
    let change = AdminChange {
        dataset_id: Some(dataset_id),
        datastream_id: Some(datastream.0),
        ..AdminChange::new("dataset.assign", "datastream", datastream.0, current.owner_org_id)
    };
    let state = |dataset: Option<i64>| serde_json::json!({ "dataset_id": dataset });
    audit::record_change(&mut tx, actor, &change.states(Some(&state(before)), Some(&state(Some(dataset_id))))).await?;
    tx.commit().await?;
    Ok(())
}

/// What the policy needs of a datastream's dataset, as stored: the dataset's
/// columns are all `NULL` for a datastream not assigned to one.
#[derive(FromRow)]
struct AccessRow {
    dataset_id: Option<i64>,
    dataset_slug: Option<String>,
    classification: Option<String>,
    min_bucket_count: Option<i32>,
    owner_id: i64,
    thing_org: String,
    #[sqlx(try_from = "String")]
    owner_kind: OrgKind,
    owner_parent: Option<i64>,
}

impl TryFrom<AccessRow> for DatasetAccess {
    type Error = RegistryError;
    fn try_from(row: AccessRow) -> Result<Self, RegistryError> {
        let municipality = municipality_of(row.owner_id, row.owner_kind, row.owner_parent);
        Ok(match (row.dataset_id, row.dataset_slug, row.classification, row.min_bucket_count) {
            (Some(id), Some(slug), Some(classification), Some(min_bucket_count)) => DatasetAccess {
                id: Some(id),
                slug,
                owner_org_id: row.owner_id,
                owner_municipality_id: municipality,
                classification: classification.parse().map_err(|e: String| invalid("classification", &e))?,
                min_bucket_count,
            },
            _ => DatasetAccess {
                id: None,
                slug: format!("(unassigned datastreams of {})", row.thing_org),
                owner_org_id: row.owner_id,
                owner_municipality_id: municipality,
                classification: Classification::Internal,
                min_bucket_count: 5,
            },
        })
    }
}

/// The columns of an [`AccessRow`] per datastream (`d`), with the datastream's id and unit.
const DATASTREAM_ACCESS_SELECT: &str =
    "SELECT d.id AS datastream_id, d.unit, ds.id AS dataset_id, ds.slug AS dataset_slug, ds.classification, ds.min_bucket_count,
            coalesce(ds.owner_org_id, t.org_id) AS owner_id, o.slug AS thing_org, o2.kind AS owner_kind, o2.parent_id AS owner_parent
     FROM datastreams d JOIN things t ON t.id = d.thing_id JOIN organisations o ON o.id = t.org_id
     LEFT JOIN datasets ds ON ds.id = d.dataset_id
     JOIN organisations o2 ON o2.id = coalesce(ds.owner_org_id, t.org_id)";

/// The policy view of the dataset a datastream belongs to.
pub async fn access_for_datastream(pool: &PgPool, datastream: DatastreamId) -> Result<DatasetAccess, RegistryError> {
    Ok(read_target(pool, datastream).await?.access)
}

/// What a read of one datastream's data needs before its query: the policy
/// view of its dataset and the unit its answer names.
pub struct ReadTarget {
    pub access: DatasetAccess,
    pub unit: Option<String>,
}

#[derive(FromRow)]
struct ReadTargetRow {
    unit: Option<String>,
    #[sqlx(flatten)]
    access: AccessRow,
}

/// [`ReadTarget`] of `datastream`, in one query: a read of its readings asked
/// the access facts and then the registry row for the unit, two round trips
/// before the readings' own (`bench scale`, 64 clients).
pub async fn read_target(pool: &PgPool, datastream: DatastreamId) -> Result<ReadTarget, RegistryError> {
    let row = sqlx::query_as::<_, ReadTargetRow>(&format!("{DATASTREAM_ACCESS_SELECT} WHERE d.id = $1"))
        .bind(datastream.0)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("datastream {datastream}")))?;
    Ok(ReadTarget { access: row.access.try_into()?, unit: row.unit })
}

/// Datastreams that share their policy view (an [`AccessRow`]).
#[derive(FromRow)]
struct AccessGroupRow {
    datastream_ids: Vec<i64>,
    #[sqlx(flatten)]
    access: AccessRow,
}

/// The policy view of every datastream's dataset, grouped: each distinct
/// view once with the ids of its datastreams. One row per datastream held
/// a view (with its strings) for each of them: 300,000 datastreams made
/// ~40 MB for a moment at every reload of an API process's access facts.
pub async fn access_all(pool: &PgPool) -> Result<Vec<(DatasetAccess, Vec<DatastreamId>)>, RegistryError> {
    let rows: Vec<AccessGroupRow> = sqlx::query_as(&format!(
        "SELECT dataset_id, dataset_slug, classification, min_bucket_count, owner_id, thing_org, owner_kind,
                owner_parent, array_agg(datastream_id) AS datastream_ids
         FROM ({DATASTREAM_ACCESS_SELECT}) a
         GROUP BY dataset_id, dataset_slug, classification, min_bucket_count, owner_id, thing_org, owner_kind,
                  owner_parent"
    ))
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| Ok((r.access.try_into()?, r.datastream_ids.into_iter().map(DatastreamId).collect())))
        .collect()
}

/// The policy view of a dataset.
pub async fn access(pool: &PgPool, dataset_id: i64) -> Result<DatasetAccess, RegistryError> {
    sqlx::query_as::<_, AccessRow>(
        "SELECT ds.id AS dataset_id, ds.slug AS dataset_slug, ds.classification, ds.min_bucket_count,
                ds.owner_org_id AS owner_id, o.slug AS thing_org, o.kind AS owner_kind, o.parent_id AS owner_parent
         FROM datasets ds JOIN organisations o ON o.id = ds.owner_org_id WHERE ds.id = $1 AND ds.erased_at IS NULL",
    )
    .bind(dataset_id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| RegistryError::NotFound(format!("dataset {dataset_id}")))?
    .try_into()
}

/// What a retention run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Chunks of `observations` dropped whole (every reading in them past its retention).
    pub chunks_dropped: u64,
    /// Readings in the dropped chunks.
    pub readings_dropped: u64,
    /// Readings deleted row by row from chunks that also hold readings kept longer.
    pub readings_deleted: u64,
    /// Chunks left for the next run: another transaction held a lock on
    /// them longer than [`RETENTION_LOCK_TIMEOUT`].
    pub chunks_skipped: u64,
}

impl Retention {
    /// Readings removed, dropped or deleted.
    pub fn removed(&self) -> u64 {
        self.readings_dropped + self.readings_deleted
    }
}

/// How long a retention step waits for a lock before it leaves its chunk
/// for the next run. Dropping a chunk needs it exclusively: a request still
/// reading it (a long export, say) would otherwise hold the drop, and every
/// reader and writer of that chunk that comes after would queue behind the
/// waiting drop.
pub const RETENTION_LOCK_TIMEOUT: &str = "2s";

/// Removes readings older than each dataset's retention (datastreams not
/// assigned to a dataset are kept: no retention was stated for them), chunk
/// by chunk of the `observations` hypertable, oldest first, each chunk in a
/// transaction of its own, all against one `now()`:
///
/// - a chunk in which every datastream with readings is past its retention
///   at the chunk's end is dropped whole (`drop_chunks`: no row-by-row delete,
///   no dead tuples, no vacuum), with the rollup buckets of its time range;
/// - a chunk that also holds readings kept longer (a datastream without a
///   dataset, or of a dataset with a longer retention) loses the expired
///   readings row by row, and the rollup buckets they were in are rebuilt
///   from the readings left in them.
///
/// Only chunks that start before the latest cut-off of any dataset are
/// looked at. A chunk whose locks are not granted within
/// [`RETENTION_LOCK_TIMEOUT`] is left as it was, for the next run
/// (`chunks_skipped`). Afterwards, latest values (`datastream_latest`) older
/// than their datastream's cut-off are deleted too.
pub async fn retention_run(pool: &PgPool) -> Result<Retention, sqlx::Error> {
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(pool).await?;
    let chunks: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT c.range_start, c.range_end FROM timescaledb_information.chunks c
         WHERE c.hypertable_schema = current_schema() AND c.hypertable_name = 'observations'
           AND c.range_start < (SELECT max($1 - make_interval(days => ds.retention_days))
                                FROM datasets ds WHERE ds.erased_at IS NULL)
         ORDER BY c.range_start",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    let mut run = Retention::default();
    for (start, end) in chunks {
        let mut tx = retention_transaction(pool).await?;
        let done = retention_chunk(&mut tx, &mut run, now, start, end).await;
        if !settle(tx, done).await? {
            tracing::warn!(%start, %end, "retention: a chunk is locked by another transaction; left for the next run");
            run.chunks_skipped += 1;
        }
    }
    let mut tx = retention_transaction(pool).await?;
    let latest = sqlx::query(
        "DELETE FROM datastream_latest l USING datastreams d, datasets ds
         WHERE l.datastream_id = d.id AND d.dataset_id = ds.id AND l.time < $1 - make_interval(days => ds.retention_days)",
    )
    .bind(now)
    .execute(&mut *tx)
    .await;
    if !settle(tx, latest).await? {
        tracing::warn!("retention: the latest values are locked by another transaction; left for the next run");
    }
    Ok(run)
}

/// Ends a retention step's transaction: commits it after `done` succeeded;
/// rolls it back and answers `false` when a lock was not granted within
/// [`RETENTION_LOCK_TIMEOUT`] (the step is left for the next run); any other
/// error ends the run.
async fn settle<T>(
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    done: Result<T, sqlx::Error>,
) -> Result<bool, sqlx::Error> {
    match done {
        Ok(_) => tx.commit().await.map(|_| true),
        Err(error) if is_lock_timeout(&error) => tx.rollback().await.map(|_| false),
        Err(error) => Err(error),
    }
}

/// A transaction of the retention run: no statement timeout (its deletes are
/// long by nature), [`RETENTION_LOCK_TIMEOUT`] for each lock.
async fn retention_transaction(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    crate::db::without_statement_timeout(&mut tx).await?;
    sqlx::query(&format!("SET LOCAL lock_timeout = '{RETENTION_LOCK_TIMEOUT}'")).execute(&mut *tx).await?;
    Ok(tx)
}

/// Whether a statement gave up waiting for a lock (`lock_not_available`).
fn is_lock_timeout(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("55P03"))
}

/// One chunk `[start, end)` of the retention run, in `tx` (see [`retention_run`]).
async fn retention_chunk(
    tx: &mut PgConnection,
    run: &mut Retention,
    now: DateTime<Utc>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    // Kept: a datastream with readings in the chunk that is not past its retention at the
    // chunk's end. One index probe per such datastream; the first found ends the search.
    let kept: bool = sqlx::query_scalar(
        "SELECT EXISTS (
             SELECT 1 FROM datastreams d LEFT JOIN datasets ds ON ds.id = d.dataset_id
             WHERE (ds.id IS NULL OR $1 - make_interval(days => ds.retention_days) < $3)
               AND EXISTS (SELECT 1 FROM observations o
                           WHERE o.datastream_id = d.id AND o.time >= $2 AND o.time < $3))",
    )
    .bind(now)
    .bind(start)
    .bind(end)
    .fetch_one(&mut *tx)
    .await?;
    if kept {
        run.readings_deleted += delete_expired_rows(tx, now, start, end).await?;
        return Ok(());
    }
    let readings: i64 = sqlx::query_scalar("SELECT count(*) FROM observations WHERE time >= $1 AND time < $2")
        .bind(start)
        .bind(end)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query("SELECT drop_chunks('observations', older_than => $2, newer_than => $1)")
        .bind(start)
        .bind(end)
        .execute(&mut *tx)
        .await?;
    // Every bucket that overlaps the chunk, rebuilt from what is left of it (only
    // buckets that straddle a chunk boundary keep readings).
    sqlx::query(
        "DELETE FROM observations_15m
         WHERE bucket >= time_bucket(INTERVAL '15 minutes', $1::timestamptz, timestamptz 'epoch') AND bucket < $2",
    )
    .bind(start)
    .bind(end)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO observations_15m (datastream_id, bucket, sum, count, min, max)
         SELECT o.datastream_id, time_bucket(INTERVAL '15 minutes', o.time, timestamptz 'epoch'),
                sum(o.value), count(*), min(o.value), max(o.value)
         FROM observations o
         WHERE o.time >= time_bucket(INTERVAL '15 minutes', $1::timestamptz, timestamptz 'epoch')
           AND o.time < time_bucket(INTERVAL '15 minutes', $2::timestamptz - INTERVAL '1 microsecond',
                                    timestamptz 'epoch') + INTERVAL '15 minutes'
         GROUP BY 1, 2
         ON CONFLICT (datastream_id, bucket) DO UPDATE
         SET sum = excluded.sum, count = excluded.count, min = excluded.min, max = excluded.max",
    )
    .bind(start)
    .bind(end)
    .execute(&mut *tx)
    .await?;
    run.chunks_dropped += 1;
    run.readings_dropped += readings as u64;
    Ok(())
}

/// Deletes the readings in `[start, end)` past their dataset's retention at
/// `now`, and rebuilds the rollup buckets they were in from the readings
/// left there. Returns the readings deleted.
async fn delete_expired_rows(
    tx: &mut PgConnection,
    now: DateTime<Utc>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query(
        "DELETE FROM observations o USING datastreams d, datasets ds
         WHERE o.datastream_id = d.id AND d.dataset_id = ds.id
           AND o.time >= $2 AND o.time < $3 AND o.time < $1 - make_interval(days => ds.retention_days)",
    )
    .bind(now)
    .bind(start)
    .bind(end)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if deleted == 0 {
        return Ok(0);
    }
    // The buckets of the expired datastreams from the chunk's start up to the cut-off (or the
    // chunk's end): deleted, then rebuilt whole from the readings left in them.
    sqlx::query(
        "DELETE FROM observations_15m r USING datastreams d, datasets ds
         WHERE r.datastream_id = d.id AND d.dataset_id = ds.id
           AND r.bucket >= time_bucket(INTERVAL '15 minutes', $2::timestamptz, timestamptz 'epoch')
           AND r.bucket < least($3, $1 - make_interval(days => ds.retention_days))",
    )
    .bind(now)
    .bind(start)
    .bind(end)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO observations_15m (datastream_id, bucket, sum, count, min, max)
         SELECT o.datastream_id, time_bucket(INTERVAL '15 minutes', o.time, timestamptz 'epoch'),
                sum(o.value), count(*), min(o.value), max(o.value)
         FROM observations o JOIN datastreams d ON d.id = o.datastream_id JOIN datasets ds ON ds.id = d.dataset_id
         WHERE o.time >= time_bucket(INTERVAL '15 minutes', $2::timestamptz, timestamptz 'epoch')
           AND o.time < $3::timestamptz + INTERVAL '15 minutes'
           AND time_bucket(INTERVAL '15 minutes', o.time, timestamptz 'epoch')
               < least($3, $1 - make_interval(days => ds.retention_days))
         GROUP BY 1, 2
         ON CONFLICT (datastream_id, bucket) DO UPDATE
         SET sum = excluded.sum, count = excluded.count, min = excluded.min, max = excluded.max",
    )
    .bind(now)
    .bind(start)
    .bind(end)
    .execute(&mut *tx)
    .await?;
    Ok(deleted)
}

/// What an erasure deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erasure {
    pub readings: u64,
    pub dead_letters: DeadLettersErased,
}

/// Erases a dataset: its readings, the raw payloads of its dead letters
/// ([`dead_letters::erase_for_dataset`], topics under `scheme`) and its
/// datastreams are deleted, the dataset is marked erased. Grants and supply
/// grants on it are revoked and kept (with the audit log) as the record of what was agreed.
/// Audited as `dataset.erase`: before, the dataset; after, when it was erased
/// and what was deleted and revoked.
pub async fn erase(
    pool: &PgPool,
    dataset_id: i64,
    scheme: &TopicScheme,
    actor: &Actor,
) -> Result<Erasure, RegistryError> {
    let mut tx = pool.begin().await?;
    crate::db::without_statement_timeout(&mut tx).await?;
    let before = fetch(&mut *tx, dataset_id).await?;
    let readings = sqlx::query(
        "DELETE FROM observations o USING datastreams d WHERE o.datastream_id = d.id AND d.dataset_id = $1",
    )
    .bind(dataset_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "DELETE FROM observations_15m r USING datastreams d WHERE r.datastream_id = d.id AND d.dataset_id = $1",
    )
    .bind(dataset_id)
    .execute(&mut *tx)
    .await?;
    // The datastreams' latest readings go with them (the foreign key would
    // cascade too; said here so that no reader finds an erased value).
    sqlx::query(
        "DELETE FROM datastream_latest l USING datastreams d WHERE l.datastream_id = d.id AND d.dataset_id = $1",
    )
    .bind(dataset_id)
    .execute(&mut *tx)
    .await?;
    let dead_letters = dead_letters::erase_for_dataset(&mut tx, dataset_id, scheme).await?;
    let datastreams: Vec<i64> = sqlx::query_scalar("DELETE FROM datastreams WHERE dataset_id = $1 RETURNING id")
        .bind(dataset_id)
        .fetch_all(&mut *tx)
        .await?;
    let revoked: Vec<i64> = sqlx::query_scalar(
        "UPDATE grants SET revoked_at = now() WHERE dataset_id = $1 AND revoked_at IS NULL RETURNING id",
    )
    .bind(dataset_id)
    .fetch_all(&mut *tx)
    .await?;
    let supply_revoked: Vec<i64> = sqlx::query_scalar(
        "UPDATE supply_grants SET revoked_at = now() WHERE dataset_id = $1 AND revoked_at IS NULL RETURNING id",
    )
    .bind(dataset_id)
    .fetch_all(&mut *tx)
    .await?;
    let erased_at: Option<DateTime<Utc>> = sqlx::query_scalar(
        "UPDATE datasets SET erased_at = now() WHERE id = $1 AND erased_at IS NULL RETURNING erased_at",
    )
    .bind(dataset_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(erased_at) = erased_at else {
        return Err(RegistryError::NotFound(format!("dataset {dataset_id}")));
    };
    let after = serde_json::json!({
        "erased_at": erased_at,
        "readings_deleted": readings,
        "datastreams_deleted": datastreams,
        "grants_revoked": revoked,
        "supply_grants_revoked": supply_revoked,
        "dead_letters_deleted": dead_letters.deleted,
        "dead_letter_payloads_removed": dead_letters.payloads_removed,
    });
    let change = AdminChange {
        dataset_id: Some(dataset_id),
        ..AdminChange::new("dataset.erase", "dataset", dataset_id, before.owner_org_id)
    };
    audit::record_change(&mut tx, actor, &change.states(Some(&before), Some(&after))).await?;
    tx.commit().await?;
    Ok(Erasure { readings, dead_letters })
}

/// One exported reading.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ExportRow {
    pub datastream_id: i64,
    pub thing: String,
    pub property: String,
    pub unit: Option<String>,
    pub time: DateTime<Utc>,
    pub value: f64,
}

/// Every reading of a dataset, streamed from the database in pages of
/// 10,000 (keyset paging: any size, no long-held connection).
pub fn export_rows(pool: &PgPool, dataset_id: i64) -> BoxStream<'static, Result<ExportRow, sqlx::Error>> {
    const PAGE: i64 = 10_000;
    let state = Some((pool.clone(), None::<(i64, DateTime<Utc>)>));
    futures::stream::unfold(state, move |state| async move {
        let (pool, last) = state?;
        let page = sqlx::query_as::<_, ExportRow>(
            "SELECT d.id AS datastream_id, t.slug AS thing, d.property, d.unit, o.time, o.value
             FROM datastreams d JOIN things t ON t.id = d.thing_id
             JOIN observations o ON o.datastream_id = d.id
             WHERE d.dataset_id = $1 AND ($2::bigint IS NULL OR (d.id, o.time) > ($2, $3))
             ORDER BY d.id, o.time LIMIT $4",
        )
        .bind(dataset_id)
        .bind(last.map(|l| l.0))
        .bind(last.map(|l| l.1))
        .bind(PAGE)
        .fetch_all(&pool)
        .await;
        match page {
            Err(e) => Some((vec![Err(e)], None)),
            Ok(rows) if rows.is_empty() => None,
            Ok(rows) => {
                let full = rows.len() as i64 == PAGE;
                let last = rows.last().map(|r| (r.datastream_id, r.time));
                let next = full.then_some((pool, last));
                Some((rows.into_iter().map(Ok).collect(), next))
            }
        }
    })
    .flat_map(futures::stream::iter)
    .boxed()
}

/// Number of readings in a dataset.
pub async fn count_readings(pool: &PgPool, dataset_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM observations o JOIN datastreams d ON d.id = o.datastream_id WHERE d.dataset_id = $1",
    )
    .bind(dataset_id)
    .fetch_one(pool)
    .await
}

/// A datastream of a dataset as an export describes it.
#[derive(Serialize, FromRow)]
struct ExportedDatastream {
    id: i64,
    thing: String,
    thing_name: String,
    latitude: Option<f64>,
    longitude: Option<f64>,
    property: String,
    name: String,
    unit: Option<String>,
}

/// The datastreams of a dataset (for exports).
pub async fn datastreams_of(pool: &PgPool, dataset_id: i64) -> Result<Vec<serde_json::Value>, sqlx::Error> {
    let rows: Vec<ExportedDatastream> = sqlx::query_as(
        "SELECT d.id, t.slug AS thing, t.name AS thing_name, t.latitude, t.longitude, d.property, d.name, d.unit
         FROM datastreams d JOIN things t ON t.id = d.thing_id WHERE d.dataset_id = $1 ORDER BY d.id",
    )
    .bind(dataset_id)
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| serde_json::to_value(r).map_err(|e| sqlx::Error::Decode(e.into()))).collect()
}
