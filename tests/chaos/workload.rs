//! The chaos scenario's workload: a fixed, seeded set of MQTT messages (valid
//! readings as JSON arrays and protobuf batches, plus invalid messages whose
//! dead letters are known in advance) and a QoS 1 publisher that retries
//! every message until the broker acknowledges it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use hoheit_proto::v1::{ObservationBatch, SensorReading};
use prost::Message as _;
use rand::rngs::StdRng;
use rand::Rng;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// The organisation every chaos datastream belongs to.
pub const ORG: &str = "chaos";
/// The property of every chaos datastream.
pub const PROPERTY: &str = "level";
/// Readings start here (2026-01-01T00:00:00Z) and are 1 ms apart per datastream.
const T0_MICROS: i64 = 1_767_225_600_000_000;

/// What a message must end as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Every reading stored.
    Stored,
    /// One dead letter with this reason code.
    DeadLetter(&'static str),
}

/// One MQTT message of the workload.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub expect: Expect,
    /// The readings it carries: (thing index, time in µs, value). For a dead
    /// letter: how many readings it held (values unused).
    pub readings: Vec<(usize, i64, f64)>,
}

/// The whole workload.
pub struct Workload {
    pub things: Vec<String>,
    pub messages: Vec<Message>,
}

impl Workload {
    /// `readings` valid readings spread over `things` datastreams, in messages
    /// of 1–200 readings, and one invalid message in about every 40.
    pub fn generate(rng: &mut StdRng, root: &str, readings: usize, things: usize) -> Self {
        let names: Vec<String> = (0..things).map(|i| format!("sensor-{i:02}")).collect();
        let mut next_index = vec![0i64; things];
        let mut messages = Vec::new();
        let mut left = readings;
        let mut invalid = 0usize;
        while left > 0 {
            if rng.gen_ratio(1, 40) {
                messages.push(invalid_message(rng, root, invalid, &names));
                invalid += 1;
                continue;
            }
            let thing = rng.gen_range(0..things);
            let n = rng.gen_range(1..=200usize).min(left);
            left -= n;
            let batch: Vec<(usize, i64, f64)> = (0..n)
                .map(|_| {
                    let time = T0_MICROS + next_index[thing] * 1_000;
                    next_index[thing] += 1;
                    // Any finite f64 must survive JSON and protobuf bit for bit.
                    let value = rng.gen_range(-1.0e6..1.0e6) * rng.gen::<f64>();
                    (thing, time, value)
                })
                .collect();
            let (topic, payload) = if rng.gen_bool(0.5) {
                let json: Vec<serde_json::Value> =
                    batch.iter().map(|(_, t, v)| serde_json::json!({"time": rfc3339(*t), "value": v})).collect();
                (format!("{root}/{ORG}/{}/{PROPERTY}", names[thing]), serde_json::to_vec(&json).expect("JSON"))
            } else {
                let pb = ObservationBatch {
                    readings: batch
                        .iter()
                        .map(|(_, t, v)| SensorReading {
                            property: PROPERTY.into(),
                            time_unix_us: Some(*t),
                            value: *v,
                            unit: String::new(),
                        })
                        .collect(),
                };
                (format!("{root}/{ORG}/{}", names[thing]), pb.encode_to_vec())
            };
            messages.push(Message { topic, payload, expect: Expect::Stored, readings: batch });
        }
        Self { things: names, messages }
    }

    pub fn valid_readings(&self) -> usize {
        self.messages.iter().filter(|m| m.expect == Expect::Stored).map(|m| m.readings.len()).sum()
    }

    pub fn invalid_messages(&self) -> usize {
        self.messages.iter().filter(|m| m.expect != Expect::Stored).count()
    }

    pub fn invalid_readings(&self) -> usize {
        self.messages.iter().filter(|m| m.expect != Expect::Stored).map(|m| m.readings.len()).sum()
    }
}

/// An invalid message, unique by topic and payload: an unregistered thing
/// (`unknown_datastream`) or a payload that is not JSON (`malformed_payload`).
fn invalid_message(rng: &mut StdRng, root: &str, index: usize, names: &[String]) -> Message {
    if index.is_multiple_of(2) {
        let n = rng.gen_range(1..=5usize);
        let json: Vec<serde_json::Value> =
            (0..n).map(|i| serde_json::json!({"time": rfc3339(T0_MICROS + i as i64), "value": i})).collect();
        Message {
            topic: format!("{root}/{ORG}/ghost-{index}/{PROPERTY}"),
            payload: serde_json::to_vec(&json).expect("JSON"),
            expect: Expect::DeadLetter("unknown_datastream"),
            readings: (0..n).map(|i| (0, T0_MICROS + i as i64, 0.0)).collect(),
        }
    } else {
        let thing = &names[rng.gen_range(0..names.len())];
        Message {
            topic: format!("{root}/{ORG}/{thing}/{PROPERTY}"),
            payload: format!("{{\"value\": 1.0, \"broken\": {index}").into_bytes(),
            expect: Expect::DeadLetter("malformed_payload"),
            readings: vec![(0, 0, 0.0)],
        }
    }
}

fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .expect("in range")
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Publisher figures.
#[derive(Debug, Default, Clone)]
pub struct PublishReport {
    pub acked_messages: usize,
    /// Publish attempts beyond the first, after a lost connection or a missing PUBACK.
    pub retries: usize,
    pub reconnects: usize,
    pub elapsed: Duration,
}

/// Publishes every message with QoS 1, one at a time, each retried (over a
/// new connection if needed) until the broker's PUBACK arrives: only then is
/// the next one sent. Paced to `rate` messages per second.
pub async fn publish_all(
    host: &str,
    port: u16,
    messages: &[Message],
    rate: f64,
    progress: tokio::sync::watch::Sender<usize>,
) -> anyhow::Result<PublishReport> {
    let started = Instant::now();
    let mut report = PublishReport::default();
    let mut connection: Option<(AsyncClient, rumqttc::EventLoop)> = None;
    let mut backoff = Duration::from_millis(100);
    for (i, message) in messages.iter().enumerate() {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if attempt > 1 {
                report.retries += 1;
            }
            if attempt > 10_000 {
                anyhow::bail!("message {i} was never acknowledged");
            }
            let (client, eventloop) = match connection.as_mut() {
                Some(c) => c,
                None => match connect(host, port).await {
                    Ok(c) => {
                        report.reconnects += 1;
                        backoff = Duration::from_millis(100);
                        connection.insert(c)
                    }
                    Err(_) => {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                        continue;
                    }
                },
            };
            let acked = async {
                client.publish(&message.topic, QoS::AtLeastOnce, false, message.payload.clone()).await?;
                loop {
                    if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await? {
                        return anyhow::Ok(());
                    }
                }
            };
            match tokio::time::timeout(Duration::from_secs(10), acked).await {
                Ok(Ok(())) => break,
                _ => {
                    // Unknown whether the broker got it: send it again on a new connection.
                    connection = None;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        report.acked_messages += 1;
        let _ = progress.send(i + 1);
    }
    if let Some((client, mut eventloop)) = connection {
        let _ = client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn connect(host: &str, port: u16) -> anyhow::Result<(AsyncClient, rumqttc::EventLoop)> {
    let mut options = MqttOptions::new(format!("chaos-publisher-{}", std::process::id()), host, port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(true);
    options.set_max_packet_size(1024 * 1024, 1024 * 1024);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let connected = async {
        loop {
            if let Event::Incoming(Packet::ConnAck(_)) = eventloop.poll().await? {
                return anyhow::Ok(());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), connected).await.context("MQTT connect timed out")??;
    Ok((client, eventloop))
}

/// The expected rows: (datastream id, time µs) → value.
pub fn expected_rows(workload: &Workload, ids: &[i64]) -> HashMap<(i64, i64), f64> {
    workload
        .messages
        .iter()
        .filter(|m| m.expect == Expect::Stored)
        .flat_map(|m| m.readings.iter().map(|(thing, t, v)| ((ids[*thing], *t), *v)))
        .collect()
}
