//! A grant's rate limit, shared by every key of the grantee and every API
//! replica: one token bucket per grant in the `grant_rate` table.
//!
//! A bucket holds up to a minute's worth of reads (the grant's
//! `rate_per_minute`) and refills continuously. Taking a token is one
//! statement (`INSERT … ON CONFLICT DO UPDATE … RETURNING`): the row lock
//! serialises concurrent readers of the same grant, the database's clock is
//! the only clock, so replicas cannot disagree.

use sqlx::{FromRow, PgPool};

/// A bucket after a take: whether a token was taken, and what is left.
#[derive(FromRow)]
struct Taken {
    granted: bool,
    tokens: f64,
}

/// Takes one token from `grant_id`'s bucket of `per_minute` reads per minute.
/// `Ok(Err(seconds))`: the bucket is empty; a token is back in `seconds`.
pub async fn take(pool: &PgPool, grant_id: i64, per_minute: i32) -> Result<Result<(), u64>, sqlx::Error> {
    let capacity = f64::from(per_minute.max(1));
    // `refilled` is the bucket after the time passed; repeated in SET because an
    // UPDATE cannot name an expression of its own.
    let taken: Taken = sqlx::query_as(
        "INSERT INTO grant_rate AS b (grant_id, tokens, at, granted) VALUES ($1, $2 - 1, now(), true)
         ON CONFLICT (grant_id) DO UPDATE SET
             granted = LEAST($2, b.tokens + EXTRACT(EPOCH FROM now() - b.at) * $2 / 60) >= 1,
             tokens = LEAST($2, b.tokens + EXTRACT(EPOCH FROM now() - b.at) * $2 / 60)
                      - CASE WHEN LEAST($2, b.tokens + EXTRACT(EPOCH FROM now() - b.at) * $2 / 60) >= 1
                             THEN 1 ELSE 0 END,
             at = now()
         RETURNING granted, tokens",
    )
    .bind(grant_id)
    .bind(capacity)
    .fetch_one(pool)
    .await?;
    if taken.granted {
        return Ok(Ok(()));
    }
    Ok(Err(seconds_until_token(taken.tokens, capacity)))
}

/// Whole seconds (at least one) until a bucket holding `tokens` of
/// `per_minute` has one token again.
fn seconds_until_token(tokens: f64, per_minute: f64) -> u64 {
    ((1.0 - tokens) * 60.0 / per_minute).ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_the_time_to_the_next_token() {
        assert_eq!(seconds_until_token(0.0, 60.0), 1);
        assert_eq!(seconds_until_token(0.0, 3.0), 20);
        assert_eq!(seconds_until_token(0.5, 3.0), 10);
        assert_eq!(seconds_until_token(0.999_999, 1.0), 1, "never zero");
    }
}
