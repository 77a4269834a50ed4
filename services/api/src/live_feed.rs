//! The one change feed of latest values per API process: a task follows
//! `datastream_latest` (`hoheit_store::latest::changes_since`) once every
//! [`EVERY`] and broadcasts what changed to every open live stream, which
//! filters it by its caller's view. The database is asked once a tick
//! however many streams are open (`hoheit_live_feed_queries_total`); before,
//! each stream re-read the whole registry with its latest values every tick.

use std::sync::Arc;
use std::time::Duration;

use hoheit_store::latest::{self, FeedPosition, LatestReading};
use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Time between two ticks of the feed (and so between two `latest` events of a stream).
pub const EVERY: Duration = Duration::from_secs(1);

/// Ticks a slow stream may fall behind before it misses some (it then reads the latest values anew).
const BACKLOG: usize = 16;

/// The newest readings changed in one tick (a datastream may repeat across ticks).
pub type Tick = Arc<Vec<LatestReading>>;

/// Where the feed's ticks are broadcast.
pub struct LiveFeed {
    sender: broadcast::Sender<Tick>,
    /// Where the feed starts: taken before the API serves, so before any stream's first values.
    start: FeedPosition,
}

impl LiveFeed {
    pub async fn start(pool: &PgPool) -> Result<Self, sqlx::Error> {
        Ok(LiveFeed { sender: broadcast::channel(BACKLOG).0, start: latest::position(pool).await? })
    }

    /// The ticks from now on. Subscribe before reading a stream's first
    /// values: the next tick then holds everything committed after them.
    pub fn subscribe(&self) -> broadcast::Receiver<Tick> {
        self.sender.subscribe()
    }

    /// Whether any live stream is open (and so needs its ticks and fresh access facts).
    pub fn streams_open(&self) -> bool {
        self.sender.receiver_count() > 0
    }
}

/// Follows the changes until shutdown, one query a tick. Without streams it
/// only moves its position (a snapshot's xmin, no table read), so that the
/// first stream's first tick is one tick of changes, not all since the start.
pub async fn follow(feed: Arc<LiveFeed>, pool: PgPool, shutdown: CancellationToken) {
    let mut position = feed.start;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
        metrics::counter!("hoheit_live_feed_queries_total").increment(1);
        if feed.sender.receiver_count() > 0 {
            match latest::changes_since(&pool, position).await {
                Ok(changes) => {
                    position = changes.next;
                    // Every receiver may have gone meanwhile: nothing to do then.
                    let _ = feed.sender.send(Arc::new(changes.readings));
                }
                Err(error) => tracing::warn!(%error, "the live feed could not read the changes; retrying next tick"),
            }
            continue;
        }
        match latest::position(&pool).await {
            // A stream that subscribed while the position was taken may have read its first
            // values before it: keep the older position, which is before its subscription.
            Ok(next) if feed.sender.receiver_count() == 0 => position = next,
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "the live feed could not take its position; retrying next tick"),
        }
    }
}
