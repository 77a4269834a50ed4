//! Per-credential rate limits: a token bucket per key (refilled continuously,
//! a minute's worth of burst). Kept in memory per API replica: with N
//! replicas behind a load balancer the effective limit is up to N times the
//! configured one, which the operations guide states.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// What a limit is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKey {
    Key(i64),
    Principal(i64),
    Anonymous(Option<IpAddr>),
    /// Reads under a grant: the grant's own rate.
    Grant {
        grant: i64,
        credential: i64,
    },
}

#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<RateKey, (f64, Instant)>>,
}

impl RateLimiter {
    /// Takes one token from `key`'s bucket of `per_minute`; `Err(seconds)`
    /// until the next token when empty.
    pub fn check(&self, key: RateKey, per_minute: u32) -> Result<(), u64> {
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        let now = Instant::now();
        let capacity = f64::from(per_minute.max(1));
        let rate = capacity / 60.0;
        if buckets.len() > 100_000 {
            // Forget full buckets so the map cannot grow without bound.
            buckets.retain(|_, (tokens, at)| *tokens + at.elapsed().as_secs_f64() * rate < capacity);
        }
        let (tokens, at) = buckets.entry(key).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(capacity);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil().max(1.0) as u64)
        }
    }
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
}
