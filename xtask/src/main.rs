//! `cargo xtask`: tasks on the repository itself (the alias is in `.cargo/config.toml`).
//!
//! `cargo xtask tidy [--root DIR]` checks the rules that ARCHITECTURE.md and STYLE state in prose
//! (see [`tidy`]) and prints each violation as `path:line: rule: message`; it exits with 1 if there is
//! any. `deploy/local/hoheit test` runs it after clippy.

mod tidy;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};

const USAGE: &str = "usage: cargo xtask tidy [--root DIR]";

fn main() -> anyhow::Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("tidy") => {}
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return Ok(ExitCode::SUCCESS);
        }
        _ => bail!("{USAGE}"),
    }
    let mut root = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--root" => root = Some(PathBuf::from(args.next().context("--root needs a directory")?)),
            _ => bail!("unknown argument {arg:?}; {USAGE}"),
        }
    }
    let root = root.unwrap_or_else(repo_root);
    let violations = tidy::check(&root)?;
    for violation in &violations {
        println!("{violation}");
    }
    if violations.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("tidy: {} violation(s) in {}", violations.len(), root.display());
    Ok(ExitCode::FAILURE)
}

/// The repository this xtask belongs to: the parent of its manifest directory (`cargo run` sets
/// `CARGO_MANIFEST_DIR`; the compile-time value is the fallback for a binary run by hand).
fn repo_root() -> PathBuf {
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    manifest_dir.parent().map(PathBuf::from).unwrap_or(manifest_dir)
}
