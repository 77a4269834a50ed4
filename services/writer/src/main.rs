//! `hoheit-writer`: parses configuration, starts logging, runs the service.

use hoheit_writer::{Writer, WriterConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: WriterConfig = hoheit_core::config::load();
    hoheit_core::telemetry::init(&config.log);
    tracing::info!(?config, "starting hoheit-writer");
    let shutdown = hoheit_core::shutdown::on_signal();
    Writer::build(config).await?.run(shutdown).await
}
