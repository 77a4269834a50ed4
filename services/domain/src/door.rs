//! The front doors a reading can come in by. Each hands its bytes to the
//! same decode → check → gather → Kafka path; the door travels with a dead
//! letter and labels ingest's metrics.

use std::fmt;
use std::str::FromStr;

/// A door of the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Door {
    /// Hoheit's MQTT topics (`hoheit/v1/…`).
    Mqtt,
    /// `POST /v1/push/…`.
    Http,
    /// SensorThings create: HTTP `POST …/Observations` and MQTT `v1.1/Datastreams({id})/Observations`.
    Sta,
    /// ChirpStack v4 (MQTT or HTTP integration).
    Chirpstack,
    /// The Things Stack v3 (webhook or MQTT integration).
    Tts,
    /// sensor.community (airrohr) firmware, "send to own API".
    Airrohr,
}

impl Door {
    pub const ALL: [Door; 6] = [Door::Mqtt, Door::Http, Door::Sta, Door::Chirpstack, Door::Tts, Door::Airrohr];

    pub fn as_str(self) -> &'static str {
        match self {
            Door::Mqtt => "mqtt",
            Door::Http => "http",
            Door::Sta => "sta",
            Door::Chirpstack => "chirpstack",
            Door::Tts => "tts",
            Door::Airrohr => "airrohr",
        }
    }
}

impl fmt::Display for Door {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Door {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Door::ALL.into_iter().find(|d| d.as_str() == s).ok_or_else(|| format!("{s:?} is not a door"))
    }
}

/// What became of a delivery's readings.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Receipt {
    /// Readings accepted: confirmed by Kafka, stored once by the writer.
    pub accepted: usize,
    /// Readings (or whole payloads) rejected; each is in the owner's dead letters.
    pub rejected: usize,
    /// Why, per rejected reading (the first 100).
    pub rejections: Vec<ReceiptRejection>,
}

/// One rejection in a [`Receipt`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ReceiptRejection {
    /// The reading's position in the payload; absent when the whole payload was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// A stable reason code (`unknown_datastream`, `unit_mismatch`, …).
    pub code: String,
    pub reason: String,
}

impl Receipt {
    pub fn new(accepted: usize, rejections: &[crate::rejection::Rejection]) -> Self {
        Self {
            accepted,
            rejected: rejections.len(),
            rejections: rejections
                .iter()
                .take(100)
                .map(|r| ReceiptRejection {
                    index: r.reading_index,
                    code: r.code.as_str().to_owned(),
                    reason: r.reason.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_door_reads_back_from_its_name() {
        for door in Door::ALL {
            assert_eq!(door.as_str().parse::<Door>(), Ok(door));
            assert_eq!(serde_json::to_string(&door).unwrap(), format!("\"{door}\""));
        }
        assert!("ftp".parse::<Door>().is_err());
    }
}
