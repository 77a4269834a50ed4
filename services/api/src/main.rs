//! `hoheit-api`: parses configuration, starts logging, serves HTTP.

use hoheit_api::{Api, ApiConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: ApiConfig = hoheit_runtime::config::load();
    hoheit_runtime::telemetry::init(&config.log);
    tracing::info!(?config, "starting hoheit-api");
    let shutdown = hoheit_runtime::shutdown::on_signal();
    Api::build(config, &shutdown).await?.run(shutdown).await
}
