//! `hoheit-bench`: Hoheit's system benchmarks on the local infrastructure
//! (`deploy/local/hoheit infra`), each printing its figures beside the raw
//! limit it measured in the same run, and the ratio:
//!
//! - `writer`: Kafka → TimescaleDB by the release `hoheit-writer`, beside
//!   the broker's consume rate and a binary COPY of the same rows;
//! - `ingest`: MQTT → Kafka by the release `hoheit-ingest` (single JSON
//!   readings, batched SenML and protobuf), beside the broker's QoS 1 rate
//!   with the same publishers and a plain subscriber;
//! - `e2e`: publish-to-queryable latency at a steady rate, then a ramp to the
//!   highest rate sustained;
//! - `api`: latency and requests/s of the release `hoheit-api` under
//!   concurrent clients, beside the same SQL straight on the database and the
//!   audit log's own append rate;
//! - `push`: the HTTP push door of the release `hoheit-ingest` (single
//!   readings and batches of 500, answered after Kafka confirmed), beside a
//!   bare axum handler that only parses the same bodies, and the same
//!   readings over MQTT;
//! - `import`: bulk registration of things (`hoheit-store`'s import) from a
//!   CSV of 10,000 rows: parse, dry run, import, the same file again;
//! - `alerts`: the release `hoheit-alerts` with 10,000 rules beside the
//!   end-to-end pipeline at its steady rate: its lag beside the writer's,
//!   publish-to-webhook latency, RSS;
//! - `overload`: twice the highest sustained rate for ten minutes with
//!   300,000 datastreams registered, PUBACKs counted per message: every
//!   acknowledged reading stored exactly once afterwards, RSS, the broker's
//!   queue.
//! - `scale`: a database grown to 300,000 datastreams and readings toward
//!   300 million (bulk loader), writer, API reads and listings at empty, 10%
//!   and 100%, ingest with the large registry, retention on the large table;
//! - `live`: hundreds of `/v1/live` event streams on one API process while
//!   readings arrive: its CPU and RSS, and the database transactions they
//!   cause beside one stream's.
//!
//! Peak RSS (VmHWM) of every service process is reported with its benchmark.
//! Everything runs on loopback with bounded loops; each run creates its own
//! database, Kafka topic prefix, MQTT topic root and consumer groups, and
//! drops the database and MQTT sessions at the end (also when interrupted).
//! Topics stay: tansu 0.6.0 cannot delete one topic without all the others,
//! so `deploy/local/hoheit bench` gives the benchmarks a broker of their own
//! and removes it afterwards. It also builds everything and runs criterion.

mod alerts;
mod api;
mod e2e;
mod harness;
mod import;
mod ingest;
mod live;
mod mqtt;
mod overload;
mod push;
mod scale;
mod writer;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::harness::{cleanup_leftovers, load, machine, Infra, Table};

#[derive(Debug, Parser)]
#[command(name = "hoheit-bench", about = "Hoheit's system benchmarks beside the raw limits of database and brokers")]
struct Cli {
    /// Directory of the release binaries hoheit-{ingest,writer,api} (default: next to hoheit-bench).
    #[arg(long, global = true)]
    bin_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every benchmark with its defaults (or the given flags of each).
    All(AllArgs),
    /// Kafka → TimescaleDB: hoheit-writer beside binary COPY and the broker's consume rate.
    Writer(writer::WriterArgs),
    /// MQTT → Kafka: hoheit-ingest beside the MQTT broker's own QoS 1 rate.
    Ingest(ingest::IngestArgs),
    /// Publish-to-queryable latency at a steady rate, and the highest rate sustained.
    E2e(e2e::E2eArgs),
    /// API latency and requests/s under concurrent clients, beside the SQL alone and the audit log.
    Api(api::ApiArgs),
    /// HTTP push → Kafka: hoheit-ingest's push door beside a bare axum handler and MQTT.
    Push(push::PushArgs),
    /// Bulk registration: a CSV of things of a device type, dry run, import and again.
    Import(import::ImportArgs),
    /// hoheit-alerts with 10,000 rules beside the end-to-end pipeline: lag, notification latency, RSS.
    Alerts(alerts::AlertsArgs),
    /// Twice the highest sustained rate for minutes with 300,000 datastreams: every PUBACKed reading stored once, RSS.
    Overload(overload::OverloadArgs),
    /// 300,000 datastreams, readings toward 300 million: writer, API, listings, ingest, retention at scale.
    Scale(scale::ScaleArgs),
    /// Hundreds of live dashboard streams on one API process: its CPU and RSS, the database queries they cause.
    Live(live::LiveArgs),
}

#[derive(Debug, clap::Args)]
struct AllArgs {
    #[command(flatten)]
    writer: writer::WriterArgs,
    #[command(flatten)]
    ingest: ingest::IngestArgs,
    #[command(flatten)]
    e2e: e2e::E2eArgs,
    #[command(flatten)]
    api: api::ApiArgs,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let infra = Infra::from_env(cli.bin_dir)?;
    let started = chrono::Utc::now();
    let work = async {
        let mut tables: Vec<Table> = Vec::new();
        match &cli.command {
            Command::All(args) => {
                tables.extend(writer::run(&infra, &args.writer).await?);
                tables.extend(ingest::run(&infra, &args.ingest).await?);
                tables.extend(e2e::run(&infra, &args.e2e).await?);
                tables.extend(api::run(&infra, &args.api).await?);
            }
            Command::Writer(args) => tables.extend(writer::run(&infra, args).await?),
            Command::Ingest(args) => tables.extend(ingest::run(&infra, args).await?),
            Command::E2e(args) => tables.extend(e2e::run(&infra, args).await?),
            Command::Api(args) => tables.extend(api::run(&infra, args).await?),
            Command::Push(args) => tables.extend(push::run(&infra, args).await?),
            Command::Import(args) => tables.extend(import::run(&infra, args).await?),
            Command::Alerts(args) => tables.extend(alerts::run(&infra, args).await?),
            Command::Overload(args) => tables.extend(overload::run(&infra, args).await?),
            Command::Scale(args) => tables.extend(scale::run(&infra, args).await?),
            Command::Live(args) => tables.extend(live::run(&infra, args).await?),
        }
        anyhow::Ok(tables)
    };
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // Dropping `work` on a signal kills the service processes it started (see `Service`).
    let outcome = tokio::select! {
        outcome = work => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        _ = terminate.recv() => Err(anyhow::anyhow!("terminated")),
    };
    cleanup_leftovers(&infra).await;
    let tables = outcome?;
    println!("\n## Results {} — {}", started.format("%Y-%m-%d %H:%M UTC"), machine());
    for table in &tables {
        print!("{}", table.render());
    }
    println!("\nload average at the end: {}", load());
    Ok(())
}
