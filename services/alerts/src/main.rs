//! `hoheit-alerts`: parses configuration, starts logging, runs the service.

use hoheit_alerts::{Alerts, AlertsConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: AlertsConfig = hoheit_runtime::config::load();
    hoheit_runtime::telemetry::init(&config.log);
    tracing::info!(?config, "starting hoheit-alerts");
    let shutdown = hoheit_runtime::shutdown::on_signal();
    Alerts::build(config).await?.run(shutdown).await
}
