//! The deliverer: sends the deliveries that are due (webhooks by HTTP POST,
//! e-mails by SMTP) and records each attempt.
//!
//! Deliveries are created in the transaction that commits their event, so a
//! notification is only ever sent for a committed state change. A round
//! locks the due deliveries (`FOR UPDATE SKIP LOCKED`: two deliverers never
//! send the same one), sends them and records their attempts in the same
//! transaction. A crash after a send and before that commit sends it again
//! after the restart: receivers de-duplicate by `Hoheit-Event`, e-mail
//! clients by `Message-ID`, both derived from the event.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hoheit_store::alert_state::{self, DueDelivery, Outcome};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::message;

/// A delivery is given up after this many attempts.
pub const MAX_ATTEMPTS: i32 = 10;
/// No retry waits longer than this.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A webhook (and an SMTP session) gets this long to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries sent at once in one round.
const ROUND: i64 = 32;

/// How long to wait after failed attempt number `attempt` (1, 2, 4 ... s, at most 5 min).
pub fn backoff(attempt: i32) -> Duration {
    let doublings = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(16);
    Duration::from_secs(1u64 << doublings).min(MAX_BACKOFF)
}

/// What became of attempt number `attempt`, from whether it succeeded.
pub fn outcome(attempt: i32, succeeded: bool) -> Outcome {
    if succeeded {
        Outcome::Delivered
    } else if attempt >= MAX_ATTEMPTS {
        Outcome::Failed
    } else {
        let wait = chrono::Duration::from_std(backoff(attempt)).unwrap_or(chrono::Duration::MAX);
        Outcome::Retry(Utc::now() + wait)
    }
}

/// The result of sending once.
#[derive(Debug)]
struct Sent {
    succeeded: bool,
    http_status: Option<i32>,
    error: Option<String>,
    /// Retrying cannot help (no SMTP server configured, a bad address).
    hopeless: bool,
}

impl Sent {
    fn error(error: impl ToString, hopeless: bool) -> Sent {
        Sent { succeeded: false, http_status: None, error: Some(error.to_string()), hopeless }
    }
}

/// Sends deliveries until shut down.
pub struct Deliverer {
    pool: PgPool,
    http: reqwest::Client,
    mailer: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    wake: Arc<Notify>,
}

impl Deliverer {
    /// A deliverer sending e-mail through `smtp_url` (a lettre URL:
    /// `smtp://host:port`, `smtps://…`; none: e-mails fail) from `from`.
    pub fn new(pool: PgPool, smtp_url: Option<&str>, from: Mailbox, wake: Arc<Notify>) -> anyhow::Result<Deliverer> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("hoheit-alerts")
            .build()?;
        let mailer = match smtp_url {
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|error| anyhow::anyhow!("HOHEIT_SMTP_URL is not an SMTP URL: {error}"))?
                    .timeout(Some(TIMEOUT))
                    .build(),
            ),
            None => None,
        };
        Ok(Deliverer { pool, http, mailer, from, wake })
    }

    /// Sends what is due, then waits for new deliveries (or a second, for
    /// retries that became due) until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match self.round().await {
                Ok(sent) if sent > 0 => continue,
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "delivering notifications failed; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Sends up to [`ROUND`] due deliveries and records their attempts; how many.
    async fn round(&self) -> Result<usize, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let due = alert_state::due_deliveries(&mut tx, ROUND).await?;
        let sent = futures::future::join_all(due.iter().map(|d| self.send(d))).await;
        for (delivery, sent) in due.iter().zip(sent) {
            let attempt = delivery.attempts + 1;
            let outcome = if sent.hopeless { Outcome::Failed } else { outcome(attempt, sent.succeeded) };
            alert_state::record_attempt(
                &mut tx,
                delivery.id,
                attempt,
                outcome,
                sent.http_status,
                sent.error.as_deref(),
            )
            .await?;
            metrics::counter!("hoheit_alerts_deliveries_total", "channel" => delivery.channel.clone(), "outcome" => outcome.as_str())
                .increment(1);
            tracing::info!(
                delivery = delivery.id,
                event = delivery.event_id,
                rule = delivery.rule_id,
                channel = %delivery.channel,
                attempt,
                outcome = outcome.as_str(),
                http_status = sent.http_status,
                error = sent.error.as_deref(),
                "notification attempt"
            );
        }
        tx.commit().await?;
        Ok(due.len())
    }

    async fn send(&self, delivery: &DueDelivery) -> Sent {
        match delivery.channel.as_str() {
            "webhook" => self.webhook(delivery).await,
            "email" => self.email(delivery).await,
            other => Sent::error(format!("unknown channel {other}"), true),
        }
    }

    async fn webhook(&self, delivery: &DueDelivery) -> Sent {
        let Some(secret) = delivery.webhook_secret.as_deref() else {
            return Sent::error("the rule has no webhook any more", true);
        };
        let body = match serde_json::to_vec(&message::webhook_body(delivery)) {
            Ok(body) => body,
            Err(error) => return Sent::error(error, true),
        };
        let response = self
            .http
            .post(&delivery.target)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Hoheit-Signature", message::signature(secret, &body))
            .header("Hoheit-Event", delivery.event_id.to_string())
            .body(body)
            .send()
            .await;
        match response {
            Ok(response) => {
                let status = response.status();
                Sent {
                    succeeded: status.is_success(),
                    http_status: Some(i32::from(status.as_u16())),
                    error: (!status.is_success()).then(|| format!("the endpoint answered {status}")),
                    hopeless: false,
                }
            }
            // Without the URL: it may hold a token of the receiver's.
            Err(error) => Sent::error(error.without_url(), false),
        }
    }

    async fn email(&self, delivery: &DueDelivery) -> Sent {
        let Some(mailer) = &self.mailer else {
            return Sent::error("no SMTP server configured (HOHEIT_SMTP_URL)", true);
        };
        let to: Mailbox = match delivery.target.parse() {
            Ok(to) => to,
            Err(error) => return Sent::error(format!("not an e-mail address: {error}"), true),
        };
        let mail = message::mail(delivery);
        let domain = self.from.email.domain().to_owned();
        let built = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .message_id(Some(format!("<alert-event-{}@{domain}>", delivery.event_id)))
            .header(ContentType::TEXT_PLAIN)
            .body(mail.text);
        let message = match built {
            Ok(message) => message,
            Err(error) => return Sent::error(error, true),
        };
        match mailer.send(message).await {
            Ok(_) => Sent { succeeded: true, http_status: None, error: None, hopeless: false },
            Err(error) => {
                let permanent = error.is_permanent();
                Sent::error(error, permanent)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_doubling_up_to_five_minutes_and_stop_after_ten() {
        let waits: Vec<u64> = (1..=10).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(backoff(1000).as_secs(), 300);
        assert_eq!(outcome(3, true), Outcome::Delivered);
        assert!(matches!(outcome(9, false), Outcome::Retry(_)));
        assert_eq!(outcome(MAX_ATTEMPTS, false), Outcome::Failed);
    }
}
