//! The broker's dynamic security kept in step with the registry: every
//! second, ingest (the one long-running service that already re-reads keys
//! every second) removes the clients of keys that expired, were revoked or
//! whose principal was disabled, and sets each usable key's role to what
//! supply grants and datastreams let it publish now (`hoheit_broker::sync`).
//! Several replicas may run it at once: every step is idempotent.

use std::time::Duration;

use hoheit_broker::sync::BrokerSync;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How often the broker is reconciled with the registry.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Reconciles until `shutdown`; a failed round is logged (once until it works again) and retried.
pub async fn run(sync: BrokerSync, pool: PgPool, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match sync.reconcile(&pool).await {
            Ok(_) if failing => {
                tracing::info!("broker reconcile works again");
                failing = false;
            }
            Ok(_) => {}
            Err(e) if !failing => {
                tracing::warn!(error = %e, "broker reconcile failed; retrying every second");
                failing = true;
            }
            Err(_) => {}
        }
    }
}
