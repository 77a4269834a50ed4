//! Configuration helpers shared by every binary.
//!
//! Each service has one typed configuration struct (clap derive): every field
//! can be set by a flag or an environment variable (`HOHEIT_*`), and has a
//! default that matches the local set-up. An optional file
//! (`--config FILE` or `HOHEIT_CONFIG`) holds `KEY=VALUE` lines of the same
//! environment variables, the format of systemd's `EnvironmentFile`, compose's
//! `env_file` and Kubernetes' `envFrom`; variables already set win over it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use clap::Parser;

/// A value that must never be logged: `Debug` and `Display` mask it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// A database URL whose password is masked when printed.
#[derive(Clone)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // postgres://user:password@host/db -> postgres://user:***@host/db
        let masked = match (self.0.find("://"), self.0.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                let credentials = &self.0[scheme_end + 3..at];
                match credentials.find(':') {
                    Some(colon) => {
                        format!("{}{}:***{}", &self.0[..scheme_end + 3], &credentials[..colon], &self.0[at..])
                    }
                    None => self.0.clone(),
                }
            }
            _ => self.0.clone(),
        };
        write!(f, "{masked:?}")
    }
}

/// Database settings shared by the services.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// PostgreSQL (TimescaleDB) URL.
    #[arg(
        long = "database-url",
        env = "HOHEIT_DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://hoheit:hoheit@127.0.0.1:5432/hoheit"
    )]
    pub url: DatabaseUrl,
    /// Size of the connection pool.
    #[arg(long = "database-max-connections", env = "HOHEIT_DATABASE_MAX_CONNECTIONS", default_value_t = 8)]
    pub max_connections: u32,
}

/// Loads the optional configuration file, then parses flags and environment.
pub fn load<C: Parser>() -> C {
    if let Some(path) = config_file_path() {
        if let Err(error) = dotenvy::from_path(&path) {
            eprintln!("hoheit: cannot read configuration file {}: {error}", path.display());
            std::process::exit(2);
        }
    }
    C::parse()
}

fn config_file_path() -> Option<PathBuf> {
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy().into_owned();
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("HOHEIT_CONFIG").map(PathBuf::from)
}

/// The `--config` flag, so that `--help` lists it; [`load`] reads the file.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigFileArg {
    /// Optional file of KEY=VALUE lines (the HOHEIT_* variables); the environment wins over it.
    #[arg(long = "config", env = "HOHEIT_CONFIG")]
    pub config: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_database_passwords_are_masked() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "\"***\"");
        let url: DatabaseUrl = "postgres://hoheit:s3cret@db:5432/hoheit".parse().unwrap();
        let shown = format!("{url:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("postgres://hoheit:***@db:5432/hoheit"), "{shown}");
    }
}
