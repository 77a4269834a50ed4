//! Runs `hoheit-admin` commands in-process against a test's database, the way
//! an operator types them, and returns what they print.

use clap::Parser;
use hoheit_admin::{AdminError, Cli};

/// Runs one command; returns its stdout and its result (a failing command
/// may still print, e.g. `audit verify --json` on a broken chain).
pub async fn run_admin(database_url: &str, args: &[&str]) -> (String, Result<(), AdminError>) {
    let mut argv = vec!["hoheit-admin", "--database-url", database_url];
    argv.extend_from_slice(args);
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => return (String::new(), Err(AdminError::Input(e.to_string()))),
    };
    let mut out = Vec::new();
    let result = hoheit_admin::run(cli, &mut out).await;
    (String::from_utf8_lossy(&out).into_owned(), result)
}

/// Runs one command that must succeed; returns its stdout.
pub async fn admin(database_url: &str, args: &[&str]) -> anyhow::Result<String> {
    let (out, result) = run_admin(database_url, args).await;
    result.map_err(|e| anyhow::anyhow!("hoheit-admin {}: {e}", args.join(" ")))?;
    Ok(out)
}

/// Runs one command with `--json` that must succeed; returns the parsed output.
pub async fn admin_json(database_url: &str, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let out = admin(database_url, &with_json).await?;
    Ok(serde_json::from_str(&out)?)
}
