//! `hoheit-ingest`: parses configuration, starts logging, runs the service.

use hoheit_ingest::{Ingest, IngestConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: IngestConfig = hoheit_core::config::load();
    hoheit_core::telemetry::init(&config.log);
    tracing::info!(?config, "starting hoheit-ingest");
    let shutdown = hoheit_core::shutdown::on_signal();
    Ingest::build(config).await?.run(shutdown).await
}
