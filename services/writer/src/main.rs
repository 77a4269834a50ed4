//! `hoheit-writer`: parses configuration, starts logging, runs the service.

use hoheit_writer::{Writer, WriterConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: WriterConfig = hoheit_runtime::config::load();
    hoheit_runtime::telemetry::init(&config.log);
    tracing::info!(?config, "starting hoheit-writer");
    let shutdown = hoheit_runtime::shutdown::on_signal();
    Writer::build(config).await?.run(shutdown).await
}
