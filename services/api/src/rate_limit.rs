//! Limits that protect the API from its callers:
//!
//! - per-credential rate limits and failed authentications per client
//!   address: a token bucket per key (refilled continuously, a minute's worth
//!   of burst), kept in memory per API replica: with N replicas behind a load
//!   balancer the effective limit is up to N times the configured one, which
//!   the operations guide states (a grant's contracted rate is shared by all
//!   replicas instead: `hoheit_store::grant_rate`);
//! - the anonymous public's share of the database ([`AnonymousBudget`]): at
//!   most so many anonymous requests read the database at once, so that the
//!   public cannot take every connection of the pool from the principals.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::http::header;
use axum::response::Response;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What a limit is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKey {
    Key(i64),
    Principal(i64),
    Anonymous(Option<IpAddr>),
    /// Failed authentications from one client address.
    FailedAuth(Option<IpAddr>),
}

#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<RateKey, (f64, Instant)>>,
}

/// A bucket of `per_minute` tokens, refilled continuously over a minute.
#[derive(Clone, Copy)]
struct Refill {
    capacity: f64,
    per_second: f64,
}

impl Refill {
    fn new(per_minute: u32) -> Self {
        let capacity = f64::from(per_minute.max(1));
        Self { capacity, per_second: capacity / 60.0 }
    }

    /// The tokens a bucket holds `elapsed` seconds after it held `tokens`.
    fn after(self, tokens: f64, elapsed: f64) -> f64 {
        (tokens + elapsed * self.per_second).min(self.capacity)
    }

    /// `Ok` when `tokens` hold a whole token, else the seconds until they will.
    fn ready(self, tokens: f64) -> Result<(), u64> {
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(((1.0 - tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

impl RateLimiter {
    /// Takes one token from `key`'s bucket of `per_minute`; `Err(seconds)`
    /// until the next token when empty.
    pub fn check(&self, key: RateKey, per_minute: u32) -> Result<(), u64> {
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        let now = Instant::now();
        let refill = Refill::new(per_minute);
        if buckets.len() > 100_000 {
            // Forget full buckets so the map cannot grow without bound.
            buckets.retain(|_, (tokens, at)| refill.after(*tokens, at.elapsed().as_secs_f64()) < refill.capacity);
        }
        let (tokens, at) = buckets.entry(key).or_insert((refill.capacity, now));
        *tokens = refill.after(*tokens, now.duration_since(*at).as_secs_f64());
        *at = now;
        refill.ready(*tokens)?;
        *tokens -= 1.0;
        Ok(())
    }

    /// Whether `key`'s bucket of `per_minute` holds a token, without taking
    /// it; `Err(seconds)` until the next token when empty.
    pub fn peek(&self, key: RateKey, per_minute: u32) -> Result<(), u64> {
        let Ok(buckets) = self.buckets.lock() else { return Ok(()) };
        let Some((tokens, at)) = buckets.get(&key) else { return Ok(()) };
        let refill = Refill::new(per_minute);
        refill.ready(refill.after(*tokens, at.elapsed().as_secs_f64()))
    }
}

/// How many anonymous requests may read the database at once.
pub struct AnonymousBudget {
    permits: Arc<Semaphore>,
    size: usize,
}

impl AnonymousBudget {
    pub fn new(size: usize) -> Self {
        Self { permits: Arc::new(Semaphore::new(size)), size }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// A place in the budget, or `None` when every place is taken.
    pub fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }
}

/// Keeps `permit` until `response`'s body is sent if the body is streamed: a
/// download reads the database while its body goes out. A body built in
/// memory is done with the database, and a live event stream gives its place
/// back at once: it reads only briefly, every few seconds, for as long as
/// the client stays, and would otherwise hold a place for up to its whole life.
pub fn hold_until_sent(response: Response, permit: OwnedSemaphorePermit) -> Response {
    if response.body().size_hint().exact().is_some() {
        return response;
    }
    let is_event_stream =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if is_event_stream {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _held = &permit;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_says_when_to_retry() {
        let limiter = RateLimiter::default();
        let key = RateKey::Key(1);
        for _ in 0..3 {
            assert!(limiter.check(key, 3).is_ok());
        }
        let retry = limiter.check(key, 3).unwrap_err();
        assert!((1..=20).contains(&retry), "{retry}");
        assert!(limiter.check(RateKey::Key(2), 3).is_ok(), "buckets are per credential");
    }

    #[test]
    fn peeking_takes_no_token() {
        let limiter = RateLimiter::default();
        let key = RateKey::FailedAuth(None);
        assert!(limiter.peek(key, 2).is_ok(), "an unknown address has its whole budget");
        assert!(limiter.check(key, 2).is_ok());
        assert!(limiter.peek(key, 2).is_ok());
        assert!(limiter.peek(key, 2).is_ok(), "peeking again takes nothing");
        assert!(limiter.check(key, 2).is_ok());
        let retry = limiter.peek(key, 2).unwrap_err();
        assert!((1..=30).contains(&retry), "{retry}");
    }
}
