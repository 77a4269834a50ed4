//! The MQTT broker arguments that ingest and the simulator share: the same
//! flags, environment variables and defaults in both (deploy/hoheit.env,
//! compose and the Helm chart set them once for both). Each service builds
//! its own client options from them, so this crate needs no MQTT client.

use crate::config::Secret;

/// Where the MQTT broker is, and how to sign in to it.
#[derive(Debug, Clone, clap::Args)]
pub struct MqttArgs {
    /// MQTT broker host.
    #[arg(long, env = "HOHEIT_MQTT_HOST", default_value = "127.0.0.1")]
    pub mqtt_host: String,
    /// MQTT broker port.
    #[arg(long, env = "HOHEIT_MQTT_PORT", default_value_t = 1883)]
    pub mqtt_port: u16,
    /// MQTT user name, if the broker requires one.
    #[arg(long, env = "HOHEIT_MQTT_USERNAME")]
    pub mqtt_username: Option<String>,
    /// MQTT password.
    #[arg(long, env = "HOHEIT_MQTT_PASSWORD", hide_env_values = true)]
    pub mqtt_password: Option<Secret>,
}

impl MqttArgs {
    /// `host:port`, for log lines.
    pub fn broker(&self) -> String {
        format!("{}:{}", self.mqtt_host, self.mqtt_port)
    }

    /// User name and password, if a user name is set (no password: empty).
    pub fn credentials(&self) -> Option<(&str, String)> {
        let user = self.mqtt_username.as_deref()?;
        Some((user, self.mqtt_password.as_ref().map(|p| p.expose().to_owned()).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(username: Option<&str>, password: Option<&str>) -> MqttArgs {
        MqttArgs {
            mqtt_host: "broker".into(),
            mqtt_port: 1883,
            mqtt_username: username.map(Into::into),
            mqtt_password: password.map(Secret::new),
        }
    }

    #[test]
    fn credentials_need_a_user_name_and_default_to_an_empty_password() {
        assert_eq!(args(None, None).broker(), "broker:1883");
        assert_eq!(args(Some("ingest"), Some("pw")).credentials(), Some(("ingest", "pw".to_owned())));
        assert_eq!(args(Some("ingest"), None).credentials(), Some(("ingest", String::new())));
        assert_eq!(args(None, Some("pw")).credentials(), None);
    }
}
