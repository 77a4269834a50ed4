//! `hoheit-simulator`: parses configuration, starts logging, runs the simulator.

use hoheit_simulator::{Simulator, SimulatorConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: SimulatorConfig = hoheit_runtime::config::load();
    hoheit_runtime::telemetry::init(&config.log);
    tracing::info!(?config, "starting hoheit-simulator");
    let shutdown = hoheit_runtime::shutdown::on_signal();
    Simulator::new(config)?.run(shutdown).await?;
    Ok(())
}
