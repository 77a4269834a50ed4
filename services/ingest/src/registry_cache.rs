//! Ingest's cache of the registry: datastream key → id and unit.
//!
//! Warmed with every datastream at start and reloaded every minute; a key
//! that is not cached is looked up in the database at once (so a datastream
//! registered a moment ago is accepted), and an unknown key is remembered for
//! a few seconds so that a misconfigured sensor cannot flood the database.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hoheit_domain::DatastreamKey;
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
    loaded_at: Option<Instant>,
}

/// The database went away while the cache needed it and shutdown was asked.
#[derive(Debug)]
pub struct Stopped;

impl RegistryCache {
    pub fn new(pool: PgPool) -> Self {
        Self { pool, known: HashMap::new(), unknown: HashMap::new(), loaded_at: None }
    }

    async fn reload(&mut self) -> Result<(), sqlx::Error> {
        let all = registry::load_all(&self.pool).await?;
        self.known = all.into_iter().collect();
        self.unknown.clear();
        self.loaded_at = Some(Instant::now());
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
        let mut delay = Duration::from_millis(100);
        loop {
            match self.try_ensure(key).await {
                Ok(()) => {
                    readiness.set("database", true);
                    return Ok(());
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
