//! `dead-letters list|replay`: an organisation's rejected readings, and their
//! replay after the registry was fixed. `list` reads the table through
//! `hoheit-store`; `replay` asks ingest's door (`POST
//! /v1/dead-letters/replay`, with the operator's token), the one place that
//! replays: the CLI has no Kafka client, and the API goes the same way.

use chrono::{DateTime, Duration, Utc};
use clap::{Args, Subcommand};
use hoheit_domain::replay::{ReplayReport, ReplayRequest};
use hoheit_domain::topic::TopicScheme;
use hoheit_domain::Slug;
use hoheit_runtime::config::Secret;
use hoheit_store::dead_letters::{self, Selection};
use serde::Serialize;
use sqlx::PgPool;

use crate::output::{or_dash, time, Table};
use crate::{AdminError, Output};

#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
    /// List dead letters (the last 7 days unless --from says otherwise), oldest first.
    List(ListArgs),
    /// Send dead letters through the checks again after the registry was fixed
    /// (ingest does it: readings that now pass are stored once, the others stay dead letters).
    Replay(ReplayArgs),
}

fn slug(kind: &'static str) -> impl Fn(&str) -> Result<Slug, hoheit_domain::SlugError> + Clone {
    move |value| Slug::parse(kind, value)
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this organisation's dead letters.
    #[arg(long, value_parser = super::org_slug)]
    pub org: Option<Slug>,
    /// Only those with this reason code (the latest), e.g. unknown_datastream.
    #[arg(long, value_parser = slug("reason"))]
    pub reason: Option<Slug>,
    /// Only those addressed to this thing of --org (or a datastream of it).
    #[arg(long, value_parser = slug("thing"), requires = "org")]
    pub thing: Option<Slug>,
    /// Received at or after, RFC 3339 (default: 7 days ago).
    #[arg(long, value_parser = super::timestamp)]
    pub from: Option<DateTime<Utc>>,
    /// Received before, RFC 3339.
    #[arg(long, value_parser = super::timestamp)]
    pub to: Option<DateTime<Utc>>,
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub limit: i64,
    /// Root of the MQTT topic scheme (to find a thing's dead letters).
    #[arg(long, env = "HOHEIT_MQTT_TOPIC_ROOT", default_value = hoheit_domain::topic::DEFAULT_ROOT)]
    pub topic_root: String,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The organisation whose dead letters are replayed.
    #[arg(long, value_parser = super::org_slug)]
    pub org: Slug,
    /// Only those with this reason code (the latest), e.g. unknown_datastream.
    #[arg(long, value_parser = slug("reason"))]
    pub reason: Option<Slug>,
    /// Only those addressed to this thing (or a datastream of it).
    #[arg(long, value_parser = slug("thing"))]
    pub thing: Option<Slug>,
    /// Received at or after, RFC 3339.
    #[arg(long, value_parser = super::timestamp)]
    pub from: Option<DateTime<Utc>>,
    /// Received before, RFC 3339.
    #[arg(long, value_parser = super::timestamp)]
    pub to: Option<DateTime<Utc>>,
    /// At most this many dead letters, oldest first.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub limit: i64,
    /// Also those whose last replay stored them.
    #[arg(long)]
    pub include_replayed: bool,
    /// Ingest's HTTP doors.
    #[arg(long, env = "HOHEIT_INGEST_URL", default_value = "http://127.0.0.1:8081")]
    pub ingest_url: String,
    /// The operator's token (ingest knows it as the API does).
    #[arg(long, env = "HOHEIT_API_TOKEN", hide_env_values = true)]
    pub api_token: Secret,
}

pub async fn run(pool: &PgPool, command: DeadLetterCommand, out: &mut Output<'_>) -> Result<(), AdminError> {
    match command {
        DeadLetterCommand::List(a) => list(pool, a, out).await,
        DeadLetterCommand::Replay(a) => {
            let report = replay(&a).await?;
            out.show(&report, |out| {
                out.line(format!(
                    "replayed {} dead letters of {}: {} stored, {} still rejected, {} readings stored",
                    report.selected, a.org, report.stored, report.still_rejected, report.readings_stored
                ))?;
                let mut table = Table::new(&["id", "result", "reason"]);
                for letter in &report.dead_letters {
                    table.row([
                        letter.id.to_string(),
                        letter.result.as_str().to_owned(),
                        or_dash(letter.reason_code.as_ref()),
                    ]);
                }
                if table.is_empty() {
                    Ok(())
                } else {
                    out.table(&table)
                }
            })
        }
    }
}

async fn list(pool: &PgPool, a: ListArgs, out: &mut Output<'_>) -> Result<(), AdminError> {
    let scheme = TopicScheme::new(&a.topic_root);
    let thing_topic = match (&a.org, &a.thing) {
        (Some(org), Some(thing)) => Some(scheme.thing_topic(org, thing)),
        _ => None,
    };
    let selection = Selection {
        org: a.org.as_ref(),
        reason: a.reason.as_ref(),
        thing_topic,
        from: Some(a.from.unwrap_or_else(|| Utc::now() - Duration::days(7))),
        to: a.to,
    };
    let rows = dead_letters::list(pool, &selection, 0, a.limit).await?;
    let listed: Vec<Listed> = rows
        .into_iter()
        .map(|r| Listed {
            id: r.id,
            received_at: r.received_at,
            org: r.org,
            door: r.door,
            mqtt_topic: r.mqtt_topic,
            reason_code: r.reason_code,
            reason: r.reason,
            replayed_at: r.replayed_at,
            replay_result: r.replay_result,
            replay_reason_code: r.replay_reason_code,
        })
        .collect();
    out.show(&listed, |out| {
        let mut table = Table::new(&["id", "received", "org", "door", "topic", "reason", "replayed", "result"]);
        for l in &listed {
            table.row([
                l.id.to_string(),
                time(l.received_at),
                l.org.clone(),
                or_dash(l.door.as_ref()),
                l.mqtt_topic.clone(),
                l.reason_code.clone(),
                or_dash(l.replayed_at.map(time)),
                match (&l.replay_result, &l.replay_reason_code) {
                    (Some(result), Some(code)) => format!("{result} ({code})"),
                    (result, _) => or_dash(result.as_ref()),
                },
            ]);
        }
        out.table(&table)
    })
}

/// A dead letter as the list prints it (without its payload).
#[derive(Serialize)]
struct Listed {
    id: i64,
    received_at: DateTime<Utc>,
    org: String,
    door: Option<String>,
    mqtt_topic: String,
    reason_code: String,
    reason: String,
    replayed_at: Option<DateTime<Utc>>,
    replay_result: Option<String>,
    replay_reason_code: Option<String>,
}

/// Asks ingest's replay door; its refusal (problem+json) becomes the error.
async fn replay(a: &ReplayArgs) -> Result<ReplayReport, AdminError> {
    let request = ReplayRequest {
        org: Some(a.org.to_string()),
        reason: a.reason.as_ref().map(Slug::to_string),
        thing: a.thing.as_ref().map(Slug::to_string),
        from: a.from.map(|t| t.to_rfc3339()),
        to: a.to.map(|t| t.to_rfc3339()),
        limit: Some(a.limit),
        include_replayed: Some(a.include_replayed),
    };
    let url = format!("{}/v1/dead-letters/replay", a.ingest_url.trim_end_matches('/'));
    let unreachable = |e: reqwest::Error| AdminError::Ingest(format!("ingest ({url}) is unreachable: {e}"));
    let answer = reqwest::Client::new()
        .post(&url)
        .bearer_auth(a.api_token.expose())
        .json(&request)
        .send()
        .await
        .map_err(unreachable)?;
    let status = answer.status();
    if status.is_success() {
        return answer
            .json()
            .await
            .map_err(|e| AdminError::Ingest(format!("ingest's answer is not a replay report: {e}")));
    }
    let problem: serde_json::Value = answer.json().await.unwrap_or_default();
    let detail = problem["detail"].as_str().unwrap_or("no reason given").to_owned();
    Err(match status.as_u16() {
        400..=499 => AdminError::Input(format!("ingest refused the replay ({status}): {detail}")),
        _ => AdminError::Ingest(format!("ingest could not replay ({status}): {detail}")),
    })
}
