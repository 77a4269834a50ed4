//! `mqtt-config --out DIR`: writes Mosquitto's `password_file`
//! (`DIR/mosquitto.passwd`) and `acl_file` (`DIR/mosquitto.acl`) from the
//! registry's usable API keys plus the ingest service's user (see
//! [`crate::broker`] for the rules). Both files are replaced atomically with
//! mode 0600; the broker reads them again on SIGHUP.

use std::path::{Path, PathBuf};

use chrono::Utc;
use clap::Args;
use hoheit_core::config::Secret;
use hoheit_core::principals;
use hoheit_core::topic;
use serde::Serialize;
use sqlx::PgPool;

use crate::broker::{self, BrokerUser, KeyUser, ServiceUserName, TopicRoot};
use crate::files::{self, Owner};
use crate::output::time;
use crate::{AdminError, Output};

pub const PASSWORD_FILE: &str = "mosquitto.passwd";
pub const ACL_FILE: &str = "mosquitto.acl";

#[derive(Debug, Args)]
pub struct MqttConfigArgs {
    /// Directory to write mosquitto.passwd and mosquitto.acl into (must exist).
    #[arg(long)]
    pub out: PathBuf,
    /// Root of the topic scheme.
    #[arg(long, env = "HOHEIT_MQTT_TOPIC_ROOT", default_value = topic::DEFAULT_ROOT)]
    pub topic_root: String,
    /// MQTT user name of the ingest service (it may read every organisation's topics).
    #[arg(long, env = "HOHEIT_MQTT_USERNAME")]
    pub ingest_username: String,
    /// MQTT password of the ingest service (prefer the environment variable to the flag).
    #[arg(long, env = "HOHEIT_MQTT_PASSWORD", hide_env_values = true)]
    pub ingest_password: Secret,
    /// Give the files to this numeric UID[:GID] (the user the broker runs as; needs root).
    #[arg(long)]
    pub owner: Option<Owner>,
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub password_file: PathBuf,
    pub acl_file: PathBuf,
    pub topic_root: String,
    pub ingest_user: String,
    /// Key users and their organisations.
    pub key_users: Vec<KeyUserSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyUserSummary {
    pub user: String,
    pub org: String,
}

/// Renders the files from the registry and writes them into `dir`.
pub async fn write(
    pool: &PgPool,
    dir: &Path,
    root: &TopicRoot,
    ingest_name: &ServiceUserName,
    ingest_password: &Secret,
    owner: Option<Owner>,
) -> Result<Written, AdminError> {
    if !dir.is_dir() {
        return Err(AdminError::Input(format!("--out {} is not a directory", dir.display())));
    }
    let keys = principals::mqtt_credentials(pool)
        .await?
        .into_iter()
        .map(KeyUser::from_credential)
        .collect::<Result<Vec<_>, _>>()?;
    let ingest = BrokerUser {
        name: ingest_name.as_str().to_owned(),
        hash: principals::mosquitto_hash(ingest_password.expose()),
    };
    let rendered = broker::render(root, &ingest, &keys, &time(Utc::now()));
    let password_file = dir.join(PASSWORD_FILE);
    let acl_file = dir.join(ACL_FILE);
    // Passwords first: a reload between the two writes then sees new users
    // with old rules, which deny by default, never old users with new rules.
    files::write_private(&password_file, rendered.password_file.as_bytes(), owner)?;
    files::write_private(&acl_file, rendered.acl_file.as_bytes(), owner)?;
    Ok(Written {
        password_file,
        acl_file,
        topic_root: root.as_str().to_owned(),
        ingest_user: ingest.name,
        key_users: keys.iter().map(|k| KeyUserSummary { user: k.user.name.clone(), org: k.org.to_string() }).collect(),
    })
}

pub async fn run(pool: &PgPool, args: MqttConfigArgs, out: &mut Output<'_>) -> Result<(), AdminError> {
    let root = TopicRoot::parse(&args.topic_root)?;
    let ingest_name = ServiceUserName::parse(&args.ingest_username)?;
    if args.ingest_password.expose().is_empty() {
        return Err(AdminError::Input("the ingest service's MQTT password is empty (HOHEIT_MQTT_PASSWORD)".into()));
    }
    let written = write(pool, &args.out, &root, &ingest_name, &args.ingest_password, args.owner).await?;
    out.show(&written, |out| {
        let mut orgs: Vec<&str> = written.key_users.iter().map(|k| k.org.as_str()).collect();
        orgs.sort_unstable();
        orgs.dedup();
        out.line(format!(
            "wrote {} and {}: ingest user {} (read {root}/#) and {} key user(s) of {} organisation(s) \
             (each writes {root}/<its org>/#)",
            written.password_file.display(),
            written.acl_file.display(),
            written.ingest_user,
            written.key_users.len(),
            orgs.len(),
            root = written.topic_root
        ))?;
        out.line("reload the broker to apply them: kill -HUP <mosquitto pid> (or: systemctl reload mosquitto)")
    })
}
