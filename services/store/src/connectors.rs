//! Connectors: the LoRaWAN network servers (ChirpStack v4, The Things Stack
//! v3) that deliver an organisation's uplinks. A connector has a webhook
//! secret (stored as its SHA-256 only, shown once) and, optionally, the
//! network server's MQTT integration that ingest subscribes to (broker,
//! credentials, application). The broker password is stored because ingest
//! must present it; it is never logged and never leaves through the API.
//! Every change is audited in its own transaction.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hoheit_domain::Slug;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{FromRow, PgPool};

use crate::audit::{self, Actor, AdminChange};
use crate::registry::RegistryError;

/// Which network server a connector stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorKind {
    /// ChirpStack v4 (HTTP integration `?event=up`, MQTT `application/{id}/device/+/event/up`).
    Chirpstack,
    /// The Things Stack v3 (webhook, MQTT `v3/{app}@{tenant}/devices/+/up`).
    Tts,
}

impl ConnectorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorKind::Chirpstack => "chirpstack",
            ConnectorKind::Tts => "tts",
        }
    }

    pub fn parse(value: &str) -> Result<Self, RegistryError> {
        match value {
            "chirpstack" => Ok(ConnectorKind::Chirpstack),
            "tts" => Ok(ConnectorKind::Tts),
            other => Err(RegistryError::Invalid {
                field: "kind",
                reason: format!("{other:?} is not a connector kind; use chirpstack or tts"),
            }),
        }
    }

    /// The path of the connector's webhook (ingest's door; the API forwards it).
    pub fn webhook_path(self, id: i64) -> String {
        match self {
            ConnectorKind::Chirpstack => format!("/v1/connectors/{id}/chirpstack"),
            ConnectorKind::Tts => format!("/v1/connectors/{id}/tts"),
        }
    }
}

impl TryFrom<String> for ConnectorKind {
    type Error = RegistryError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

/// A network server's MQTT broker: `mqtt://host[:port]` or `mqtts://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Broker {
    pub fn parse(url: &str) -> Result<Self, RegistryError> {
        let invalid = |reason: &str| RegistryError::Invalid { field: "mqtt_url", reason: reason.to_owned() };
        let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtts://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("mqtt://") {
            (false, rest)
        } else {
            return Err(invalid("must start with mqtt:// or mqtts://"));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u16>().map_err(|_| invalid("the port is not a number"))?),
            None => (rest, if tls { 8883 } else { 1883 }),
        };
        let host_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if host.is_empty() || host.len() > 253 || !host.chars().all(host_char) || port == 0 {
            return Err(invalid("expected mqtt://host:port or mqtts://host:port (a host name or IPv4 address)"));
        }
        Ok(Self { tls, host: host.to_owned(), port })
    }
}

/// A connector as the administration shows it: never a secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, FromRow)]
pub struct Connector {
    pub id: i64,
    pub org: String,
    pub slug: String,
    #[sqlx(try_from = "String")]
    pub kind: ConnectorKind,
    /// The webhook's path on the API (or on ingest's doors); set it in the network server.
    #[sqlx(skip)]
    pub webhook_path: String,
    /// The network server's MQTT broker that ingest subscribes to (absent: webhook only).
    pub mqtt_url: Option<String>,
    pub mqtt_username: Option<String>,
    /// ChirpStack: the application id; The Things Stack: `app@tenant`.
    pub application: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When the connector was disabled (its webhook answers 403, its MQTT subscription ends).
    pub disabled_at: Option<DateTime<Utc>>,
}

const VIEW_SELECT: &str = "SELECT c.id, o.slug AS org, c.slug, c.kind, c.mqtt_url, c.mqtt_username, c.application,
        c.created_at, c.disabled_at
   FROM connectors c JOIN organisations o ON o.id = c.org_id";

impl Connector {
    fn with_path(mut self) -> Self {
        self.webhook_path = self.kind.webhook_path(self.id);
        self
    }
}

/// A new connector.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConnector {
    pub org: Slug,
    pub slug: Slug,
    pub kind: ConnectorKind,
    /// The network server's MQTT integration: `mqtt://host:port` or `mqtts://host:port`.
    #[serde(default)]
    pub mqtt_url: Option<String>,
    #[serde(default)]
    pub mqtt_username: Option<String>,
    /// Stored for ingest to present to the network server's broker; never shown again.
    #[serde(default)]
    pub mqtt_password: Option<String>,
    /// ChirpStack: the application id (UUID); The Things Stack: `app@tenant`. Required with `mqtt_url`.
    #[serde(default)]
    pub application: Option<String>,
}

impl std::fmt::Display for ConnectorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl NewConnector {
    /// The MQTT settings are complete and fit into a topic filter.
    fn validate(&self) -> Result<(), RegistryError> {
        let invalid = |field, reason: &str| RegistryError::Invalid { field, reason: reason.to_owned() };
        match (&self.mqtt_url, &self.application) {
            (None, None) => {
                if self.mqtt_username.is_some() || self.mqtt_password.is_some() {
                    return Err(invalid("mqtt_url", "MQTT credentials given without mqtt_url"));
                }
                Ok(())
            }
            (Some(_), None) => Err(invalid("application", "required with mqtt_url (the application to subscribe to)")),
            (None, Some(_)) => Err(invalid("mqtt_url", "required with application")),
            (Some(url), Some(application)) => {
                Broker::parse(url)?;
                let topic_safe = |c: char| c.is_ascii_graphic() && !matches!(c, '+' | '#' | '/');
                if application.is_empty() || application.len() > 200 || !application.chars().all(topic_safe) {
                    return Err(invalid("application", "1 to 200 visible characters without + # /"));
                }
                if self.kind == ConnectorKind::Tts && !application.contains('@') {
                    return Err(invalid(
                        "application",
                        "The Things Stack names applications as app@tenant (e.g. my-app@ttn)",
                    ));
                }
                Ok(())
            }
        }
    }
}

/// A created connector with its webhook secret: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedConnector {
    #[serde(flatten)]
    pub connector: Connector,
    /// Send it in `X-Hoheit-Connector-Secret` (or `Authorization: Bearer`); shown only now.
    pub webhook_secret: String,
}

/// How every webhook secret begins (so that the API can tell it from its own credentials).
pub const SECRET_PREFIX: &str = "hcs_";

/// The SHA-256 a webhook secret is stored as.
pub fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Creates a connector of `new.org`; audited as `connector.create` (without secrets).
pub async fn create(pool: &PgPool, new: &NewConnector, actor: &Actor) -> Result<IssuedConnector, RegistryError> {
    new.validate()?;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let secret = format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let mut tx = pool.begin().await?;
    let inserted: Option<(i64, i64)> = sqlx::query_as(
        "INSERT INTO connectors (org_id, slug, kind, secret_hash, mqtt_url, mqtt_username, mqtt_password, application)
         SELECT id, $2, $3, $4, $5, $6, $7, $8 FROM organisations WHERE slug = $1
         RETURNING id, org_id",
    )
    .bind(new.org.as_str())
    .bind(new.slug.as_str())
    .bind(new.kind.as_str())
    .bind(secret_hash(&secret).to_vec())
    .bind(&new.mqtt_url)
    .bind(&new.mqtt_username)
    .bind(&new.mqtt_password)
    .bind(&new.application)
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
            RegistryError::Conflict(format!("connector {}/{}", new.org, new.slug))
        }
        _ => e.into(),
    })?;
    let (id, org_id) = inserted.ok_or_else(|| RegistryError::NotFound(format!("organisation {}", new.org)))?;
    let connector = view(&mut *tx, id).await?;
    let change =
        AdminChange::new("connector.create", "connector", id, org_id).states(None::<&Connector>, Some(&connector));
    audit::record_change(&mut tx, actor, &change).await?;
    tx.commit().await?;
    Ok(IssuedConnector { connector, webhook_secret: secret })
}

async fn view(executor: impl sqlx::PgExecutor<'_>, id: i64) -> Result<Connector, RegistryError> {
    let found: Option<Connector> =
        sqlx::query_as(&format!("{VIEW_SELECT} WHERE c.id = $1")).bind(id).fetch_optional(executor).await?;
    found.map(Connector::with_path).ok_or_else(|| RegistryError::NotFound(format!("connector {id}")))
}

/// The connectors of one organisation, or of all (`None`, the operator's view), by id.
pub async fn list(pool: &PgPool, org_id: Option<i64>) -> Result<Vec<Connector>, RegistryError> {
    let rows: Vec<Connector> =
        sqlx::query_as(&format!("{VIEW_SELECT} WHERE $1::bigint IS NULL OR c.org_id = $1 ORDER BY c.id"))
            .bind(org_id)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(Connector::with_path).collect())
}

/// The organisation id a connector belongs to.
pub async fn org_of(pool: &PgPool, id: i64) -> Result<i64, RegistryError> {
    sqlx::query_scalar("SELECT org_id FROM connectors WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("connector {id}")))
}

/// Disables a connector: its webhook answers 403 and ingest drops its MQTT
/// subscription; audited as `connector.disable`.
pub async fn disable(pool: &PgPool, id: i64, actor: &Actor) -> Result<Connector, RegistryError> {
    let mut tx = pool.begin().await?;
    let org_id: Option<i64> = sqlx::query_scalar(
        "UPDATE connectors SET disabled_at = now() WHERE id = $1 AND disabled_at IS NULL RETURNING org_id",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let org_id = org_id.ok_or_else(|| RegistryError::NotFound(format!("active connector {id}")))?;
    let after = view(&mut *tx, id).await?;
    let before = Connector { disabled_at: None, ..after.clone() };
    let change = AdminChange::new("connector.disable", "connector", id, org_id).states(Some(&before), Some(&after));
    audit::record_change(&mut tx, actor, &change).await?;
    tx.commit().await?;
    Ok(after)
}

/// What a webhook door needs to know about a connector.
#[derive(Debug, Clone, FromRow)]
pub struct DoorConnector {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub org: Slug,
    #[sqlx(try_from = "String")]
    pub kind: ConnectorKind,
    pub secret_hash: Vec<u8>,
    pub disabled_at: Option<DateTime<Utc>>,
}

impl DoorConnector {
    /// Whether `presented` is the connector's secret (compared in constant time).
    pub fn verifies(&self, presented: &str) -> bool {
        let digest = secret_hash(presented);
        self.secret_hash.len() == digest.len()
            && self.secret_hash.iter().zip(digest.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// The connector a webhook names, if there is one.
pub async fn for_door(pool: &PgPool, id: i64) -> Result<Option<DoorConnector>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.id, o.slug AS org, c.kind, c.secret_hash, c.disabled_at
           FROM connectors c JOIN organisations o ON o.id = c.org_id WHERE c.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// An enabled connector's MQTT integration, as ingest subscribes to it.
#[derive(Clone, PartialEq, Eq, FromRow)]
pub struct MqttIntegration {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub org: Slug,
    #[sqlx(try_from = "String")]
    pub kind: ConnectorKind,
    pub mqtt_url: String,
    pub mqtt_username: Option<String>,
    pub mqtt_password: Option<String>,
    pub application: String,
}

impl std::fmt::Debug for MqttIntegration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttIntegration")
            .field("id", &self.id)
            .field("org", &self.org)
            .field("kind", &self.kind)
            .field("mqtt_url", &self.mqtt_url)
            .field("mqtt_username", &self.mqtt_username)
            .field("mqtt_password", &self.mqtt_password.as_ref().map(|_| "***"))
            .field("application", &self.application)
            .finish()
    }
}

/// Every enabled connector with an MQTT integration.
pub async fn mqtt_integrations(pool: &PgPool) -> Result<Vec<MqttIntegration>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.id, o.slug AS org, c.kind, c.mqtt_url, c.mqtt_username, c.mqtt_password, c.application
           FROM connectors c JOIN organisations o ON o.id = c.org_id
          WHERE c.disabled_at IS NULL AND c.mqtt_url IS NOT NULL AND c.application IS NOT NULL
          ORDER BY c.id",
    )
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_name_scheme_host_and_port() {
        assert_eq!(
            Broker::parse("mqtts://eu1.cloud.thethings.network:8883").unwrap(),
            Broker { tls: true, host: "eu1.cloud.thethings.network".into(), port: 8883 }
        );
        assert_eq!(Broker::parse("mqtt://127.0.0.1").unwrap().port, 1883);
        assert_eq!(Broker::parse("mqtts://cs.example").unwrap().port, 8883);
        for bad in ["http://x:1", "mqtt://", "mqtt://a b:1", "mqtt://x:port", "mqtt://x:0"] {
            assert!(Broker::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_secret_verifies_only_itself() {
        let connector = DoorConnector {
            id: 1,
            org: Slug::parse("org", "stadt").unwrap(),
            kind: ConnectorKind::Tts,
            secret_hash: secret_hash("hcs_right").to_vec(),
            disabled_at: None,
        };
        assert!(connector.verifies("hcs_right"));
        assert!(!connector.verifies("hcs_wrong"));
        assert!(!connector.verifies(""));
    }

    #[test]
    fn mqtt_settings_come_complete_and_topic_safe() {
        let new = |kind, url: Option<&str>, app: Option<&str>| NewConnector {
            org: Slug::parse("org", "stadt").unwrap(),
            slug: Slug::parse("connector", "lns").unwrap(),
            kind,
            mqtt_url: url.map(str::to_owned),
            mqtt_username: None,
            mqtt_password: None,
            application: app.map(str::to_owned),
        };
        assert!(new(ConnectorKind::Chirpstack, None, None).validate().is_ok());
        assert!(new(ConnectorKind::Chirpstack, Some("mqtt://cs:1883"), Some("0b8e9a1c-1111")).validate().is_ok());
        assert!(new(ConnectorKind::Tts, Some("mqtts://tts:8883"), Some("app@ttn")).validate().is_ok());
        assert!(new(ConnectorKind::Tts, Some("mqtts://tts:8883"), Some("app")).validate().is_err());
        assert!(new(ConnectorKind::Chirpstack, Some("mqtt://cs:1883"), Some("a/#")).validate().is_err());
        assert!(new(ConnectorKind::Chirpstack, Some("mqtt://cs:1883"), None).validate().is_err());
        assert!(new(ConnectorKind::Chirpstack, None, Some("x")).validate().is_err());
    }
}
