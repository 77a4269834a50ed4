//! `hoheit-api`: parses configuration, starts logging, serves HTTP.

use hoheit_api::{Api, ApiConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: ApiConfig = hoheit_core::config::load();
    hoheit_core::telemetry::init(&config.log);
    tracing::info!(?config, "starting hoheit-api");
    let shutdown = hoheit_core::shutdown::on_signal();
    Api::build(config, &shutdown).await?.run(shutdown).await
}
