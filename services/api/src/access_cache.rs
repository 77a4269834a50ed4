//! The access facts of every datastream, kept in memory by each API process
//! and shared by every request: which dataset (and so which owner and
//! classification) each datastream belongs to, every grant, and the state of
//! every credential. A request builds its caller's view ([`crate::access::CallerView`])
//! on the current snapshot instead of reading the registry; with 300,000
//! datastreams that read was the cost of every listing and SensorThings query.
//!
//! The snapshot is immutable and swapped whole. The database keeps a change
//! counter (`access_version`, bumped in the same transaction as any change to
//! datastreams, datasets, organisations, grants, principals or API keys).
//! Each request asks it (one single-row read) and decides on a snapshot at
//! least that new ([`AccessCache::fresh`]): the 300,000-row read happens once
//! per change, not once per request, and a request never decides on facts
//! older than itself. Live streams, which decide on every tick without a
//! request, take [`AccessCache::current`], which a background task
//! ([`refresher`]) keeps within [`REFRESH_EVERY`] of the database: a revoked
//! grant or key, a disabled principal, a changed classification or a new
//! datastream reaches them within a second. Grants' and keys' own times
//! (valid until, expires) are compared with the time of each decision, not
//! of the snapshot.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hoheit_domain::policy::{DatasetAccess, GrantTerms, Principal};
use hoheit_domain::DatastreamId;
use hoheit_store::access_facts::{self, Credentials};
use hoheit_store::datasets;
use hoheit_store::principals::AuthError;
use hoheit_store::registry::RegistryError;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::live_feed::LiveFeed;

/// How often the change counter is asked: well within the second a change may take.
pub const REFRESH_EVERY: Duration = Duration::from_millis(250);

/// Datastreams that share their access facts: those of one dataset, or the
/// datastreams of one organisation that are in no dataset. The policy
/// decides the same for all of them, so a caller's view is decided once per
/// group, not once per datastream.
pub type Group = usize;

/// One immutable state of the access facts.
pub struct AccessSnapshot {
    /// The change counter this snapshot was loaded at (or after).
    pub version: i64,
    /// The access facts of each group.
    groups: Vec<DatasetAccess>,
    /// Every datastream, in id order, with its group.
    datastreams: Vec<(DatastreamId, u32)>,
    /// Every grant, by grantee organisation.
    grants: HashMap<i64, Vec<GrantTerms>>,
    credentials: Credentials,
}

impl AccessSnapshot {
    /// Reads the access facts; the counter first, so that a change committing
    /// meanwhile moves it past this snapshot and is loaded next time.
    pub async fn load(pool: &PgPool) -> Result<Self, RegistryError> {
        let version = access_facts::version(pool).await?;
        let rows = datasets::access_all(pool).await?;
        let grants = access_facts::grants_by_grantee(pool).await?;
        let credentials = access_facts::credentials(pool).await?;
        Ok(Self::build(version, rows, grants, credentials))
    }

    fn build(
        version: i64,
        rows: Vec<(DatasetAccess, Vec<DatastreamId>)>,
        grants: HashMap<i64, Vec<GrantTerms>>,
        credentials: Credentials,
    ) -> Self {
        let mut index: HashMap<(Option<i64>, i64), u32> = HashMap::new();
        let mut groups = Vec::new();
        let mut datastreams = Vec::with_capacity(rows.iter().map(|(_, ids)| ids.len()).sum());
        for (access, ids) in rows {
            // A dataset is its own group; datastreams in none are grouped by their owner.
            let key = (access.id, if access.id.is_some() { 0 } else { access.owner_org_id });
            let group = *index.entry(key).or_insert_with(|| {
                groups.push(access);
                (groups.len() - 1) as u32
            });
            datastreams.extend(ids.into_iter().map(|id| (id, group)));
        }
        datastreams.sort_unstable_by_key(|(id, _)| *id);
        AccessSnapshot { version, groups, datastreams, grants, credentials }
    }

    /// The access facts of every group; a [`Group`] indexes them.
    pub fn groups(&self) -> &[DatasetAccess] {
        &self.groups
    }

    /// The group of `datastream`; `None` for a datastream that does not exist (yet).
    pub fn group_of(&self, datastream: DatastreamId) -> Option<Group> {
        let at = self.datastreams.binary_search_by_key(&datastream, |(id, _)| *id).ok()?;
        Some(self.datastreams[at].1 as Group)
    }

    /// The datastreams after `after`, in id order, with their groups.
    pub fn datastreams_after(&self, after: DatastreamId) -> impl Iterator<Item = (DatastreamId, Group)> + '_ {
        let start = self.datastreams.partition_point(|(id, _)| *id <= after);
        self.datastreams[start..].iter().map(|(id, group)| (*id, *group as Group))
    }

    /// Every grant the organisation `org_id` holds.
    pub fn grants_held(&self, org_id: i64) -> &[GrantTerms] {
        self.grants.get(&org_id).map_or(&[], Vec::as_slice)
    }

    /// Why `principal`'s credential is no longer good at `now`, if it is not:
    /// the principal disabled, its API key revoked, expired or gone.
    pub fn credential_ended(&self, principal: &Principal, now: DateTime<Utc>) -> Option<AuthError> {
        if self.credentials.disabled.contains(&principal.id) {
            return Some(AuthError::Disabled);
        }
        let key = principal.key_id?;
        match self.credentials.keys.get(&key) {
            None => Some(AuthError::Invalid),
            Some(state) => match state.revoked_at {
                Some(at) => Some(AuthError::Revoked(at)),
                None if state.expires_at <= now => Some(AuthError::Expired(state.expires_at)),
                None => None,
            },
        }
    }
}

/// The current snapshot, swapped whole when the change counter moved.
pub struct AccessCache {
    current: RwLock<Arc<AccessSnapshot>>,
    /// Held while a snapshot loads: one load at a time, the others wait for it.
    loading: tokio::sync::Mutex<()>,
}

impl AccessCache {
    /// Loads the first snapshot.
    pub async fn load(pool: &PgPool) -> Result<Self, RegistryError> {
        let first = Arc::new(AccessSnapshot::load(pool).await?);
        Ok(AccessCache { current: RwLock::new(first), loading: tokio::sync::Mutex::new(()) })
    }

    /// The snapshot as last loaded (by [`refresher`] within [`REFRESH_EVERY`]
    /// of a change, or by a request): what a live stream's ticks decide on.
    pub fn current(&self) -> Arc<AccessSnapshot> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The snapshot of the access facts as they are now: one read of the
    /// change counter, and a reload only if it moved (so a request sees every
    /// change committed before it, its own process's admin changes included).
    pub async fn fresh(&self, pool: &PgPool) -> Result<Arc<AccessSnapshot>, RegistryError> {
        let version = access_facts::version(pool).await?;
        let current = self.current();
        if current.version >= version {
            return Ok(current);
        }
        let _loading = self.loading.lock().await;
        // Another request may have loaded it while this one waited.
        let current = self.current();
        if current.version >= version {
            return Ok(current);
        }
        let started = std::time::Instant::now();
        let snapshot = Arc::new(AccessSnapshot::load(pool).await?);
        metrics::counter!("hoheit_api_access_reloads_total").increment(1);
        metrics::histogram!("hoheit_api_access_reload_seconds").record(started.elapsed().as_secs_f64());
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = snapshot.clone();
        Ok(snapshot)
    }
}

/// Keeps [`AccessCache::current`] within [`REFRESH_EVERY`] of the database
/// while live streams are open (requests check the counter themselves), until
/// shutdown; a failed check is retried at the next one. Without streams it
/// reads nothing: an idle API puts no load on the database, and no reload of
/// its own waits on a lock nobody asked it to wait on.
pub async fn refresher(cache: Arc<AccessCache>, live: Arc<LiveFeed>, pool: PgPool, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(REFRESH_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
        if !live.streams_open() {
            continue;
        }
        if let Err(error) = cache.fresh(&pool).await {
            tracing::warn!(%error, "refreshing the access facts failed; the previous ones stay until the next check");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoheit_domain::policy::Classification;

    fn access(id: Option<i64>, owner: i64) -> DatasetAccess {
        DatasetAccess {
            id,
            slug: format!("{id:?}"),
            owner_org_id: owner,
            owner_municipality_id: None,
            classification: Classification::Open,
            min_bucket_count: 1,
        }
    }

    #[test]
    fn datastreams_of_one_dataset_or_of_one_owner_without_one_share_a_group() {
        // A dataset and an owner may come in more than one row (things of other organisations in a dataset).
        let rows = vec![
            (access(Some(1), 10), vec![DatastreamId(5)]),
            (access(Some(1), 10), vec![DatastreamId(2)]),
            (access(None, 10), vec![DatastreamId(3), DatastreamId(1)]),
            (access(None, 11), vec![DatastreamId(4)]),
        ];
        let snapshot = AccessSnapshot::build(7, rows, HashMap::new(), Credentials::default());
        assert_eq!(snapshot.groups().len(), 3);
        assert_eq!(snapshot.group_of(DatastreamId(5)), snapshot.group_of(DatastreamId(2)));
        assert_eq!(snapshot.group_of(DatastreamId(3)), snapshot.group_of(DatastreamId(1)));
        assert_ne!(snapshot.group_of(DatastreamId(3)), snapshot.group_of(DatastreamId(4)));
        assert_eq!(snapshot.group_of(DatastreamId(9)), None);
        let after: Vec<i64> = snapshot.datastreams_after(DatastreamId(2)).map(|(id, _)| id.0).collect();
        assert_eq!(after, vec![3, 4, 5]);
    }
}
