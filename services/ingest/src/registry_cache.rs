//! Ingest's cache of the registry: datastream key → id, unit and owner; and
//! for the doors that address otherwise, datastream id → key and device
//! (external id) → thing.
//!
//! Warmed with every datastream at start and reloaded every minute; a key
//! that is not cached is looked up in the database at once (so a datastream
//! registered a moment ago is accepted), and an unknown key is remembered for
//! a few seconds so that a misconfigured sensor cannot flood the database.
//! A dead-letter replay reads it all again first (`refresh`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hoheit_domain::{DatastreamId, DatastreamKey, Slug};
use hoheit_runtime::ops::Readiness;
use hoheit_store::registry::{self, DatastreamRef};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const RELOAD_EVERY: Duration = Duration::from_secs(60);
const REMEMBER_UNKNOWN: Duration = Duration::from_secs(2);

pub struct RegistryCache {
    pool: PgPool,
    known: HashMap<DatastreamKey, DatastreamRef>,
    unknown: HashMap<DatastreamKey, Instant>,
    /// Datastream ids and devices, each with when it was looked up (`None`: not registered).
    by_id: HashMap<DatastreamId, (Option<DatastreamKey>, Instant)>,
    devices: HashMap<(Slug, String), (Option<Slug>, Instant)>,
    loaded_at: Option<Instant>,
}

/// The database went away while the cache needed it and shutdown was asked.
#[derive(Debug)]
pub struct Stopped;

impl RegistryCache {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            known: HashMap::new(),
            unknown: HashMap::new(),
            by_id: HashMap::new(),
            devices: HashMap::new(),
            loaded_at: None,
        }
    }

    async fn reload(&mut self) -> Result<(), sqlx::Error> {
        let all = registry::load_all(&self.pool).await?;
        self.by_id = all.iter().map(|(key, r)| (r.id, (Some(key.clone()), Instant::now()))).collect();
        self.known = all.into_iter().collect();
        self.unknown.clear();
        self.devices.clear();
        self.loaded_at = Some(Instant::now());
        Ok(())
    }

    /// Reads the whole registry again now (a replay must see the datastreams
    /// and units its owner just fixed, not what was cached a minute ago).
    pub async fn refresh(&mut self, readiness: &Readiness, shutdown: &CancellationToken) -> Result<(), Stopped> {
        self.patiently(readiness, shutdown, |cache| Box::pin(cache.reload())).await
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
        let fresh = self.loaded_at.is_some_and(|at| at.elapsed() <= RELOAD_EVERY);
        if fresh && self.known.contains_key(key) {
            return Ok(());
        }
        let key = key.clone();
        self.patiently(readiness, shutdown, move |cache| {
            let key = key.clone();
            Box::pin(async move { cache.try_ensure(&key).await })
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
        let wanted = (org.clone(), device.to_ascii_lowercase());
        self.patiently(readiness, shutdown, move |cache| {
            let wanted = wanted.clone();
            Box::pin(async move { cache.try_thing_of_device(wanted).await })
        })
        .await
    }

    async fn try_key_of_id(&mut self, id: DatastreamId) -> Result<Option<DatastreamKey>, sqlx::Error> {
        if self.loaded_at.is_none_or(|at| at.elapsed() > RELOAD_EVERY) {
            self.reload().await?;
        }
        match self.by_id.get(&id) {
            Some((Some(key), _)) => return Ok(Some(key.clone())),
            Some((None, at)) if at.elapsed() < REMEMBER_UNKNOWN => return Ok(None),
            _ => {}
        }
        let found = registry::lookup_id(&self.pool, id).await?;
        let key = found.as_ref().map(|(key, _)| key.clone());
        if let Some((key, reference)) = found {
            self.unknown.remove(&key);
            self.known.insert(key, reference);
        }
        self.by_id.insert(id, (key.clone(), Instant::now()));
        Ok(key)
    }

    async fn try_thing_of_device(&mut self, wanted: (Slug, String)) -> Result<Option<Slug>, sqlx::Error> {
        match self.devices.get(&wanted) {
            Some((thing, at)) if thing.is_some() || at.elapsed() < REMEMBER_UNKNOWN => return Ok(thing.clone()),
            _ => {}
        }
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

    async fn try_ensure(&mut self, key: &DatastreamKey) -> Result<(), sqlx::Error> {
        if self.loaded_at.is_none_or(|at| at.elapsed() > RELOAD_EVERY) {
            self.reload().await?;
        }
        if self.known.contains_key(key) {
            return Ok(());
        }
        if self.unknown.get(key).is_some_and(|at| at.elapsed() < REMEMBER_UNKNOWN) {
            return Ok(());
        }
        match registry::lookup(&self.pool, key).await? {
            Some(found) => {
                self.unknown.remove(key);
                self.known.insert(key.clone(), found);
            }
            None => {
                self.unknown.insert(key.clone(), Instant::now());
            }
        }
        Ok(())
    }

    pub fn get(&self, key: &DatastreamKey) -> Option<DatastreamRef> {
        self.known.get(key).cloned()
    }
}
