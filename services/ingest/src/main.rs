//! `hoheit-ingest`: parses configuration, starts logging, runs the service.

use hoheit_ingest::{Ingest, IngestConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: IngestConfig = hoheit_runtime::config::load();
    hoheit_runtime::telemetry::init(&config.log);
    tracing::info!(?config, "starting hoheit-ingest");
    let shutdown = hoheit_runtime::shutdown::on_signal();
    Ingest::build(config).await?.run(shutdown).await
}
