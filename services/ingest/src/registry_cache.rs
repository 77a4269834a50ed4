//! Ingest's cache of the registry: datastream key → id, unit and owner; and
//! for the doors that address otherwise, datastream id → key and device
//! (external id) → thing.
//!
//! The bulk of it is a compact, immutable [`Snapshot`] of every datastream
//! (a few dozen bytes each, so 300,000 fit in ingest's memory bound), loaded
//! by a background task at start and every minute and swapped in whole: the
//! pipeline never waits for a reload, so acknowledgements do not stall while
//! a large registry is read. A key the snapshot does not hold is looked up in
//! the database at once (so a datastream registered a moment ago is
//! accepted) and kept beside the snapshot until the next one arrives; an
//! unknown key is remembered for a few seconds so that a misconfigured
//! sensor cannot flood the database. A dead-letter replay reads it all again
//! first, and waits for that ([`RegistryCache::refresh`]).

mod snapshot;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt as _;
use hoheit_domain::{DatastreamId, DatastreamKey, Slug};
use hoheit_runtime::ops::Readiness;
use hoheit_store::registry::{self, DatastreamRef};
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use snapshot::Snapshot;

const RELOAD_EVERY: Duration = Duration::from_secs(60);
/// The wait before another try after a background load failed.
const RETRY_LOAD: Duration = Duration::from_secs(5);
const REMEMBER_UNKNOWN: Duration = Duration::from_secs(2);

/// Gauge: the datastreams in the snapshot in use.
pub const DATASTREAMS_METRIC: &str = "hoheit_ingest_registry_datastreams";
/// Gauge: the seconds the last full load of the registry took.
pub const LOAD_SECONDS_METRIC: &str = "hoheit_ingest_registry_load_seconds";
/// Counter: single lookups in the database (keys, ids and devices the snapshot did not answer).
pub const LOOKUPS_METRIC: &str = "hoheit_ingest_registry_lookups_total";

pub struct RegistryCache {
    pool: PgPool,
    /// The newest snapshot the background loader made (`None` until its first load).
    loaded: watch::Receiver<Option<Arc<Snapshot>>>,
    snapshot: Option<Arc<Snapshot>>,
    /// Datastreams looked up singly since the snapshot was taken.
    recent: HashMap<DatastreamKey, DatastreamRef>,
    unknown: HashMap<DatastreamKey, Instant>,
    /// Datastream ids the snapshot did not hold, each with when it was looked up (`None`: not registered).
    by_id: HashMap<DatastreamId, (Option<DatastreamKey>, Instant)>,
    devices: HashMap<(Slug, String), (Option<Slug>, Instant)>,
    loader: tokio::task::JoinHandle<()>,
}

impl Drop for RegistryCache {
    fn drop(&mut self) {
        self.loader.abort();
    }
}

/// The database went away while the cache needed it and shutdown was asked.
#[derive(Debug)]
pub struct Stopped;

/// Why a full load of the registry failed.
#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Order(#[from] snapshot::OutOfOrder),
}

/// Reads every datastream into a new snapshot, row by row.
async fn load(pool: &PgPool) -> Result<Snapshot, LoadError> {
    let started = Instant::now();
    let expected = registry::datastream_count(pool).await?;
    let mut builder = snapshot::Builder::with_capacity(usize::try_from(expected).unwrap_or(0));
    let mut rows = std::pin::pin!(registry::stream_all(pool));
    while let Some((key, reference)) = rows.try_next().await? {
        builder.push(key, reference)?;
    }
    let snapshot = builder.finish();
    metrics::gauge!(LOAD_SECONDS_METRIC).set(started.elapsed().as_secs_f64());
    tracing::debug!(
        datastreams = snapshot.len(),
        bytes = snapshot.heap_bytes(),
        took = ?started.elapsed(),
        "registry snapshot loaded"
    );
    Ok(snapshot)
}

/// Loads a snapshot at once and every [`RELOAD_EVERY`]; a failed load is
/// logged and tried again soon (the pipeline goes on with the last snapshot
/// and single lookups meanwhile).
async fn load_every(pool: PgPool, loaded: watch::Sender<Option<Arc<Snapshot>>>) {
    loop {
        let wait = match load(&pool).await {
            Ok(snapshot) => {
                let held = snapshot.len();
                if loaded.send(Some(Arc::new(snapshot))).is_err() {
                    return;
                }
                metrics::gauge!(DATASTREAMS_METRIC).set(held as f64);
                RELOAD_EVERY
            }
            Err(error) => {
                tracing::warn!(%error, retry_in = ?RETRY_LOAD, "loading the registry failed; single lookups meanwhile");
                RETRY_LOAD
            }
        };
        tokio::time::sleep(wait).await;
    }
}

impl RegistryCache {
    /// Starts the background loader (on the current Tokio runtime).
    pub fn new(pool: PgPool) -> Self {
        let (sender, loaded) = watch::channel(None);
        let loader = tokio::spawn(load_every(pool.clone(), sender));
        Self {
            pool,
            loaded,
            snapshot: None,
            recent: HashMap::new(),
            unknown: HashMap::new(),
            by_id: HashMap::new(),
            devices: HashMap::new(),
            loader,
        }
    }

    /// Takes the newest snapshot if the loader made one since.
    fn take_newest(&mut self) {
        if self.loaded.has_changed().unwrap_or(false) {
            let newest = self.loaded.borrow_and_update().clone();
            if newest.is_some() {
                self.install(newest);
            }
        }
    }

    fn install(&mut self, snapshot: Option<Arc<Snapshot>>) {
        self.snapshot = snapshot;
        self.recent.clear();
        self.unknown.clear();
        self.by_id.clear();
        self.devices.clear();
    }

    /// Reads the whole registry again now (a replay must see the datastreams
    /// and units its owner just fixed, not what was cached a minute ago).
    pub async fn refresh(&mut self, readiness: &Readiness, shutdown: &CancellationToken) -> Result<(), Stopped> {
        let snapshot = self
            .patiently(readiness, shutdown, |cache| {
                Box::pin(async move { load(&cache.pool).await.map_err(LoadError::into_database) })
            })
            .await?;
        metrics::gauge!(DATASTREAMS_METRIC).set(snapshot.len() as f64);
        self.install(Some(Arc::new(snapshot)));
        Ok(())
    }

    /// Makes sure `key` is answered from memory by [`get`](Self::get). Waits
    /// (with back-off) while the database is unreachable: rejecting a reading
    /// as unknown because the registry could not be asked would be wrong.
    pub async fn ensure(
        &mut self,
        key: &DatastreamKey,
        readiness: &Readiness,
        shutdown: &CancellationToken,
    ) -> Result<(), Stopped> {
        self.take_newest();
        if self.snapshot.as_ref().is_some_and(|s| s.contains(key)) || self.recent.contains_key(key) {
            return Ok(());
        }
        if self.unknown.get(key).is_some_and(|at| at.elapsed() < REMEMBER_UNKNOWN) {
            return Ok(());
        }
        let key = key.clone();
        self.patiently(readiness, shutdown, move |cache| {
            let key = key.clone();
            Box::pin(async move { cache.try_lookup(&key).await })
        })
        .await
    }

    /// The key of datastream `id`; `None` when no such datastream is registered.
    pub async fn key_of_id(
        &mut self,
        id: DatastreamId,
        readiness: &Readiness,
        shutdown: &CancellationToken,
    ) -> Result<Option<DatastreamKey>, Stopped> {
        self.take_newest();
        if let Some((key, _)) = self.snapshot.as_ref().and_then(|s| s.by_id(id)) {
            return Ok(Some(key));
        }
        match self.by_id.get(&id) {
            Some((Some(key), _)) => return Ok(Some(key.clone())),
            Some((None, at)) if at.elapsed() < REMEMBER_UNKNOWN => return Ok(None),
            _ => {}
        }
        self.patiently(readiness, shutdown, move |cache| Box::pin(cache.try_key_of_id(id))).await
    }

    /// The thing of `org` that carries `device` as its external id.
    pub async fn thing_of_device(
        &mut self,
        org: &Slug,
        device: &str,
        readiness: &Readiness,
        shutdown: &CancellationToken,
    ) -> Result<Option<Slug>, Stopped> {
        self.take_newest();
        let wanted = (org.clone(), device.to_ascii_lowercase());
        match self.devices.get(&wanted) {
            Some((thing, at)) if thing.is_some() || at.elapsed() < REMEMBER_UNKNOWN => return Ok(thing.clone()),
            _ => {}
        }
        self.patiently(readiness, shutdown, move |cache| {
            let wanted = wanted.clone();
            Box::pin(async move { cache.try_thing_of_device(wanted).await })
        })
        .await
    }

    async fn try_lookup(&mut self, key: &DatastreamKey) -> Result<(), sqlx::Error> {
        metrics::counter!(LOOKUPS_METRIC, "by" => "key").increment(1);
        match registry::lookup(&self.pool, key).await? {
            Some(found) => {
                self.unknown.remove(key);
                self.recent.insert(key.clone(), found);
            }
            None => {
                self.unknown.insert(key.clone(), Instant::now());
            }
        }
        Ok(())
    }

    async fn try_key_of_id(&mut self, id: DatastreamId) -> Result<Option<DatastreamKey>, sqlx::Error> {
        metrics::counter!(LOOKUPS_METRIC, "by" => "id").increment(1);
        let found = registry::lookup_id(&self.pool, id).await?;
        let key = found.as_ref().map(|(key, _)| key.clone());
        if let Some((key, reference)) = found {
            self.unknown.remove(&key);
            self.recent.insert(key, reference);
        }
        self.by_id.insert(id, (key.clone(), Instant::now()));
        Ok(key)
    }

    async fn try_thing_of_device(&mut self, wanted: (Slug, String)) -> Result<Option<Slug>, sqlx::Error> {
        metrics::counter!(LOOKUPS_METRIC, "by" => "device").increment(1);
        let thing = registry::thing_by_external_id(&self.pool, &wanted.0, &wanted.1).await?;
        self.devices.insert(wanted, (thing.clone(), Instant::now()));
        Ok(thing)
    }

    /// Runs a registry lookup, waiting (with back-off) while the database is
    /// unreachable.
    async fn patiently<T>(
        &mut self,
        readiness: &Readiness,
        shutdown: &CancellationToken,
        mut lookup: impl for<'c> FnMut(
            &'c mut Self,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, sqlx::Error>> + Send + 'c>,
        >,
    ) -> Result<T, Stopped> {
        let mut delay = Duration::from_millis(100);
        loop {
            match lookup(self).await {
                Ok(found) => {
                    readiness.set("database", true);
                    return Ok(found);
                }
                Err(error) => {
                    readiness.set("database", false);
                    tracing::warn!(%error, retry_in = ?delay, "registry lookup failed; waiting for the database");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled() => return Err(Stopped),
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    pub fn get(&self, key: &DatastreamKey) -> Option<DatastreamRef> {
        self.snapshot.as_ref().and_then(|s| s.get(key)).or_else(|| self.recent.get(key).cloned())
    }
}

impl LoadError {
    /// For [`RegistryCache::patiently`], which retries database errors: rows
    /// out of order are reported as a decode error (retried and logged, as a
    /// broken query would be).
    fn into_database(self) -> sqlx::Error {
        match self {
            LoadError::Database(error) => error,
            LoadError::Order(error) => sqlx::Error::Decode(Box::new(error)),
        }
    }
}
