//! `mqtt-config --out DIR`: writes Mosquitto's `password_file`
//! (`DIR/mosquitto.passwd`) and `acl_file` (`DIR/mosquitto.acl`) from the
//! registry's usable API keys plus the ingest service's user and, optionally,
//! a gateway user that publishes for every organisation (see
//! [`crate::broker`] for the rules). Both files are replaced atomically with
//! mode 0600; the broker reads them again on SIGHUP.
//!
//! `mqtt-config --dynsec FILE`: the dynamic security plugin's whole
//! configuration instead (the admin user `HOHEIT_BROKER_ADMIN_USERNAME`,
//! ingest, the gateway and every usable key from its stored hash, each with a
//! role of its own; the same rules), to start a broker with or to repair one
//! (stop it, replace its file, start it): keys created while the broker was
//! unreachable are in it too.

use std::path::{Path, PathBuf};

use chrono::Utc;
use clap::Args;
use hoheit_domain::topic;
use hoheit_runtime::config::Secret;
use hoheit_store::{principals, registry, supply};
use serde::Serialize;
use sqlx::PgPool;

use crate::broker::{self, BrokerUser, KeyUser, ServiceUserName, ServiceUsers, TopicRoot, WriteScope};
use crate::files::{self, Owner};
use crate::output::time;
use crate::{AdminError, Output};
use hoheit_broker::dynsec;

pub const PASSWORD_FILE: &str = "mosquitto.passwd";
pub const ACL_FILE: &str = "mosquitto.acl";

#[derive(Debug, Args)]
pub struct MqttConfigArgs {
    /// Directory to write mosquitto.passwd and mosquitto.acl into (must exist).
    #[arg(long, required_unless_present = "dynsec", conflicts_with = "dynsec")]
    pub out: Option<PathBuf>,
    /// Write the dynamic security plugin's configuration file (plugin_opt_config_file) instead.
    #[arg(long, value_name = "FILE")]
    pub dynsec: Option<PathBuf>,
    /// The plugin's admin user (control topic only), for --dynsec.
    #[arg(long, env = "HOHEIT_BROKER_ADMIN_USERNAME")]
    pub admin_username: Option<String>,
    /// The admin user's password (prefer the environment variable to the flag).
    #[arg(long, env = "HOHEIT_BROKER_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<Secret>,
    /// Root of the topic scheme.
    #[arg(long, env = "HOHEIT_MQTT_TOPIC_ROOT", default_value = topic::DEFAULT_ROOT)]
    pub topic_root: String,
    /// MQTT user name of the ingest service (it may read every organisation's topics).
    #[arg(long, env = "HOHEIT_MQTT_USERNAME")]
    pub ingest_username: String,
    /// MQTT password of the ingest service (prefer the environment variable to the flag).
    #[arg(long, env = "HOHEIT_MQTT_PASSWORD", hide_env_values = true)]
    pub ingest_password: Secret,
    /// MQTT user name of a gateway that publishes for every organisation (the simulator, a
    /// multi-tenant gateway); it may write every organisation's topics and read none. Optional.
    #[arg(long, env = "HOHEIT_MQTT_GATEWAY_USERNAME")]
    pub gateway_username: Option<String>,
    /// MQTT password of the gateway user (prefer the environment variable to the flag).
    #[arg(long, env = "HOHEIT_MQTT_GATEWAY_PASSWORD", hide_env_values = true)]
    pub gateway_password: Option<Secret>,
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
    pub gateway_user: Option<String>,
    /// Key users and their organisations.
    pub key_users: Vec<KeyUserSummary>,
    /// Things that suppliers' writer keys may write under supply grants in force.
    pub supplied_things: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyUserSummary {
    pub user: String,
    pub org: String,
    pub role: String,
    /// False for reader keys, which may publish nothing.
    pub writes: bool,
}

/// A service user's name and password, checked.
pub struct ServiceLogin {
    pub name: ServiceUserName,
    pub password: Secret,
}

impl ServiceLogin {
    fn parse(what: &str, name: &str, password: Secret, variable: &str) -> Result<Self, AdminError> {
        let name = ServiceUserName::parse(name)?;
        if password.expose().is_empty() {
            return Err(AdminError::Input(format!("the {what}'s MQTT password is empty ({variable})")));
        }
        Ok(Self { name, password })
    }

    fn broker_user(&self) -> BrokerUser {
        BrokerUser { name: self.name.as_str().to_owned(), hash: principals::mosquitto_hash(self.password.expose()) }
    }
}

/// What `--dynsec` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct WrittenDynsec {
    pub dynsec_file: PathBuf,
    pub admin_user: String,
    pub ingest_user: String,
    pub gateway_user: Option<String>,
    pub key_users: usize,
}

/// The registry's usable keys and their write scope.
async fn registry_keys(pool: &PgPool) -> Result<(Vec<KeyUser>, WriteScope), AdminError> {
    let keys = principals::mqtt_credentials(pool)
        .await?
        .into_iter()
        .map(KeyUser::from_credential)
        .collect::<Result<Vec<_>, _>>()?;
    let scope = WriteScope::from_registry(
        registry::datastream_owners(pool).await?,
        supply::supplied_datastreams(pool, Utc::now()).await?,
    )?;
    Ok((keys, scope))
}

/// Renders the dynamic security configuration from the registry into `file`.
pub async fn write_dynsec(
    pool: &PgPool,
    file: &Path,
    root: &TopicRoot,
    admin: &ServiceLogin,
    services: &ServiceUsers,
    owner: Option<Owner>,
) -> Result<WrittenDynsec, AdminError> {
    let (keys, scope) = registry_keys(pool).await?;
    let config = dynsec::render_config(root, &admin.broker_user(), services, &keys, &scope)?;
    files::write_private(file, config.as_bytes(), owner)?;
    Ok(WrittenDynsec {
        dynsec_file: file.to_owned(),
        admin_user: admin.name.as_str().to_owned(),
        ingest_user: services.ingest.name.clone(),
        gateway_user: services.gateway.as_ref().map(|g| g.name.clone()),
        key_users: keys.len(),
    })
}

/// Renders the files from the registry and writes them into `dir`.
pub async fn write(
    pool: &PgPool,
    dir: &Path,
    root: &TopicRoot,
    ingest: &ServiceLogin,
    gateway: Option<&ServiceLogin>,
    owner: Option<Owner>,
) -> Result<Written, AdminError> {
    if !dir.is_dir() {
        return Err(AdminError::Input(format!("--out {} is not a directory", dir.display())));
    }
    let (keys, scope) = registry_keys(pool).await?;
    let now = Utc::now();
    let services = ServiceUsers { ingest: ingest.broker_user(), gateway: gateway.map(ServiceLogin::broker_user) };
    let rendered = broker::render(root, &services, &keys, &scope, &time(now));
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
        ingest_user: services.ingest.name,
        gateway_user: services.gateway.map(|g| g.name),
        key_users: keys
            .iter()
            .map(|k| KeyUserSummary {
                user: k.user.name.clone(),
                org: k.org.to_string(),
                role: k.role.to_string(),
                writes: k.writes(),
            })
            .collect(),
        supplied_things: scope.supplied_things(),
    })
}

pub async fn run(pool: &PgPool, args: MqttConfigArgs, out: &mut Output<'_>) -> Result<(), AdminError> {
    let root = TopicRoot::parse(&args.topic_root)?;
    let ingest =
        ServiceLogin::parse("ingest service", &args.ingest_username, args.ingest_password, "HOHEIT_MQTT_PASSWORD")?;
    let gateway = match (args.gateway_username, args.gateway_password) {
        (Some(name), Some(password)) => {
            Some(ServiceLogin::parse("gateway", &name, password, "HOHEIT_MQTT_GATEWAY_PASSWORD")?)
        }
        (Some(_), None) => return Err(AdminError::Input("the gateway user needs HOHEIT_MQTT_GATEWAY_PASSWORD".into())),
        (None, _) => None,
    };
    if gateway.as_ref().is_some_and(|g| g.name == ingest.name) {
        return Err(AdminError::Input("the gateway and the ingest service need different MQTT users".into()));
    }
    let Some(dir) = args.out else {
        let file = args.dynsec.ok_or_else(|| AdminError::Input("give --out DIR or --dynsec FILE".into()))?;
        let admin = match (args.admin_username, args.admin_password) {
            (Some(name), Some(password)) => {
                ServiceLogin::parse("broker admin", &name, password, "HOHEIT_BROKER_ADMIN_PASSWORD")?
            }
            _ => {
                return Err(AdminError::Input(
                    "--dynsec needs the broker admin user (HOHEIT_BROKER_ADMIN_USERNAME and _PASSWORD)".into(),
                ))
            }
        };
        if admin.name == ingest.name || gateway.as_ref().is_some_and(|g| g.name == admin.name) {
            return Err(AdminError::Input("the broker admin needs an MQTT user of its own".into()));
        }
        let services =
            ServiceUsers { ingest: ingest.broker_user(), gateway: gateway.as_ref().map(ServiceLogin::broker_user) };
        let written = write_dynsec(pool, &file, &root, &admin, &services, args.owner).await?;
        return out.show(&written, |out| {
            out.line(format!(
                "wrote {}: admin user {} (control topic only), ingest user {}{} and {} key user(s), each with a \
                 role of its own; start (or restart) the broker with it as plugin_opt_config_file",
                written.dynsec_file.display(),
                written.admin_user,
                written.ingest_user,
                written.gateway_user.as_ref().map(|g| format!(", gateway user {g}")).unwrap_or_default(),
                written.key_users
            ))
        });
    };
    let written = write(pool, &dir, &root, &ingest, gateway.as_ref(), args.owner).await?;
    out.show(&written, |out| {
        let mut orgs: Vec<&str> = written.key_users.iter().map(|k| k.org.as_str()).collect();
        orgs.sort_unstable();
        orgs.dedup();
        out.line(format!(
            "wrote {} and {}: ingest user {} (read {root}/#){} and {} key user(s) of {} organisation(s) \
             (each writer key writes {root}/<its org>/#, reader keys nothing; {} supplied thing(s))",
            written.password_file.display(),
            written.acl_file.display(),
            written.ingest_user,
            written
                .gateway_user
                .as_ref()
                .map(|g| format!(", gateway user {g} (write {root}/#)", root = written.topic_root))
                .unwrap_or_default(),
            written.key_users.len(),
            orgs.len(),
            written.supplied_things,
            root = written.topic_root
        ))?;
        out.line("reload the broker to apply them: kill -HUP <mosquitto pid> (or: systemctl reload mosquitto)")
    })
}
