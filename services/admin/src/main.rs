//! `hoheit-admin`: parses the command line, logs to stderr, runs the command
//! and exits 0 (done), 2 (bad input) or 1 (any other failure) with a one-line
//! reason on stderr. Results go to stdout.

use std::process::ExitCode;

use hoheit_admin::{AdminError, Cli};
use tracing_subscriber::EnvFilter;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli: Cli = hoheit_runtime::config::load();
    // stderr, so that stdout carries only results (keys, tables, JSON).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .init();
    let mut stdout = std::io::stdout().lock();
    match hoheit_admin::run(cli, &mut stdout).await {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped reading (`| head`) needs no complaint.
        Err(AdminError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("hoheit-admin: error: {}", error.one_line());
            ExitCode::from(error.exit_code())
        }
    }
}
