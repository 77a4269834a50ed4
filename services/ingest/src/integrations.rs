//! The network servers' MQTT integrations: for every enabled connector with
//! MQTT settings, ingest subscribes to the network server's broker with the
//! connector's own credentials (TLS for `mqtts://`, the system's roots): a
//! persistent session, QoS 1, manual acknowledgements. Each uplink becomes a
//! [`Submission`] on the channel the HTTP doors use, and its PUBACK goes out
//! only after the pipeline answered that Kafka confirmed it (in order), so
//! nothing the network server's broker handed over is lost.
//!
//! Topics: ChirpStack `application/{id}/device/+/event/up` (JSON or protobuf
//! marshaler), The Things Stack `v3/{app}@{tenant}/devices/+/up`. The
//! connectors are read at start and every 10 s: a new, changed or disabled
//! connector starts, restarts or stops its subscription.

use std::collections::HashMap;
use std::time::Duration;

use hoheit_domain::door::Door;
use hoheit_domain::rejection::{RejectCode, Rejection};
use hoheit_domain::Slug;
use hoheit_store::connectors::{self, Broker, ConnectorKind, MqttIntegration};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, Transport};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::decode::Decoded;
use crate::inbound::{Body, Inbound, Submission, Target};
use crate::lorawan::{self, chirpstack, tts};

/// How often the connectors are read again.
const RELOAD_EVERY: Duration = Duration::from_secs(10);

/// Keeps one subscription per enabled MQTT integration until shutdown.
pub async fn supervise(client_id: String, pool: PgPool, submit: mpsc::Sender<Submission>, shutdown: CancellationToken) {
    let mut running: HashMap<i64, (MqttIntegration, CancellationToken)> = HashMap::new();
    loop {
        match connectors::mqtt_integrations(&pool).await {
            Ok(wanted) => {
                running.retain(|id, (integration, stop)| {
                    let keep = wanted.iter().any(|w| w == integration);
                    if !keep {
                        tracing::info!(connector = id, "MQTT integration stopped");
                        stop.cancel();
                    }
                    keep
                });
                for integration in wanted {
                    if running.contains_key(&integration.id) {
                        continue;
                    }
                    let stop = shutdown.child_token();
                    let client_id = format!("{client_id}-connector-{}", integration.id);
                    tokio::spawn(subscribe(integration.clone(), client_id, submit.clone(), stop.clone()));
                    running.insert(integration.id, (integration, stop));
                }
            }
            Err(error) => tracing::warn!(%error, "reading the connectors' MQTT integrations failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RELOAD_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// The topic filter of an integration's uplinks.
pub fn subscription(kind: ConnectorKind, application: &str) -> String {
    match kind {
        ConnectorKind::Chirpstack => format!("application/{application}/device/+/event/up"),
        ConnectorKind::Tts => format!("v3/{application}/devices/+/up"),
    }
}

fn options(integration: &MqttIntegration, client_id: &str) -> Result<MqttOptions, String> {
    let broker = Broker::parse(&integration.mqtt_url).map_err(|e| e.to_string())?;
    let mut options = MqttOptions::new(client_id, broker.host, broker.port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(false);
    options.set_manual_acks(true);
    options.set_max_packet_size(1024 * 1024, 1024 * 1024);
    if let Some(user) = &integration.mqtt_username {
        options.set_credentials(user, integration.mqtt_password.clone().unwrap_or_default());
    }
    if broker.tls {
        options.set_transport(Transport::tls_with_default_config());
    }
    Ok(options)
}

/// One integration's subscription until `stop`: a new connection (the same
/// persistent session, so the broker redelivers what was not acknowledged)
/// whenever a message was not confirmed.
async fn subscribe(
    integration: MqttIntegration,
    client_id: String,
    submit: mpsc::Sender<Submission>,
    stop: CancellationToken,
) {
    let options = match options(&integration, &client_id) {
        Ok(options) => options,
        Err(error) => {
            tracing::warn!(connector = integration.id, %error, "MQTT integration not started");
            return;
        }
    };
    tracing::info!(connector = integration.id, broker = %integration.mqtt_url, "MQTT integration starting");
    while !stop.is_cancelled() {
        connection(&integration, options.clone(), &submit, &stop).await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.cancelled() => {}
        }
    }
}

/// One connection: reconnects with back-off; returns at `stop` or when a
/// message was not confirmed.
async fn connection(
    integration: &MqttIntegration,
    options: MqttOptions,
    submit: &mpsc::Sender<Submission>,
    stop: &CancellationToken,
) {
    let filter = subscription(integration.kind, &integration.application);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let (acks, pending) = mpsc::channel::<(Publish, oneshot::Receiver<bool>)>(1024);
    let acker = tokio::spawn(acknowledge(client.clone(), pending, stop.clone()));
    let mut backoff = Duration::from_millis(200);
    loop {
        let event = tokio::select! {
            event = eventloop.poll() => event,
            _ = stop.cancelled() => break,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(200);
                if let Err(error) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                    tracing::warn!(connector = integration.id, %error, "subscribing failed");
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let (confirmed_tx, confirmed) = oneshot::channel();
                match inbound_of(integration.kind, &integration.org, &publish.topic, publish.payload.clone()) {
                    Some(inbound) => {
                        tokio::spawn(submit_one(submit.clone(), inbound, confirmed_tx));
                    }
                    // Not an uplink: nothing to keep.
                    None => {
                        let _ = confirmed_tx.send(true);
                    }
                }
                let publish = Publish { payload: Default::default(), ..publish };
                if acks.send((publish, confirmed)).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(connector = integration.id, %error, retry_in = ?backoff, "MQTT integration disconnected");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    drop(acks);
    let _ = acker.await;
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
}

/// Hands one delivery to the pipeline; `true` once Kafka confirmed it.
async fn submit_one(submit: mpsc::Sender<Submission>, inbound: Inbound, confirmed: oneshot::Sender<bool>) {
    let (reply, answer) = oneshot::channel();
    let done =
        submit.send(Submission { inbound, reply, replay: None }).await.is_ok() && matches!(answer.await, Ok(Ok(_)));
    let _ = confirmed.send(done);
}

/// Acknowledges messages in the order they came, each once it is confirmed.
/// One that is not (Kafka away at shutdown) stays unacknowledged, and so
/// does every later one: the broker redelivers them to the next session.
async fn acknowledge(
    client: AsyncClient,
    mut pending: mpsc::Receiver<(Publish, oneshot::Receiver<bool>)>,
    stop: CancellationToken,
) {
    while let Some((publish, confirmed)) = pending.recv().await {
        let confirmed = tokio::select! {
            confirmed = confirmed => confirmed.unwrap_or(false),
            _ = stop.cancelled() => false,
        };
        if !confirmed {
            return;
        }
        if client.ack(&publish).await.is_err() {
            return;
        }
    }
}

/// What a message of a network server's broker delivers; `None` for one
/// that is no uplink. What does not decode is a dead letter of the device the
/// topic names.
pub fn inbound_of(kind: ConnectorKind, org: &Slug, topic: &str, payload: bytes::Bytes) -> Option<Inbound> {
    let (door, read) = match kind {
        ConnectorKind::Chirpstack => (Door::Chirpstack, chirpstack::sniff(&payload).map(Some)),
        ConnectorKind::Tts => (Door::Tts, tts::from_json(&payload)),
    };
    let (device, body) = match read {
        Ok(Some(uplink)) => (uplink.dev_eui.clone(), Body::Decoded(lorawan::readings(&uplink))),
        Ok(None) => return None,
        Err(unreadable) => {
            // application/{app}/device/{devEui}/event/up, v3/{app}@{tenant}/devices/{device}/up
            let device = topic.rsplit('/').nth(if kind == ConnectorKind::Chirpstack { 2 } else { 1 });
            let rejection = Rejection::message(RejectCode::MalformedPayload, unreadable.0);
            let decoded = Decoded { readings: Vec::new(), rejections: vec![rejection] };
            (device.unwrap_or_default().to_ascii_lowercase(), Body::Decoded(decoded))
        }
    };
    Some(Inbound { door, target: Target::Device { org: org.clone(), device }, body, payload, writer: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> Slug {
        Slug::parse("org", "stadt").unwrap()
    }

    #[test]
    fn subscriptions_follow_each_servers_topic_scheme() {
        assert_eq!(subscription(ConnectorKind::Chirpstack, "ab5b"), "application/ab5b/device/+/event/up");
        assert_eq!(subscription(ConnectorKind::Tts, "app1@ttn"), "v3/app1@ttn/devices/+/up");
    }

    #[test]
    fn an_unreadable_message_is_a_dead_letter_of_the_topics_device() {
        let topic = "application/ab5b/device/0102030405060708/event/up";
        let inbound =
            inbound_of(ConnectorKind::Chirpstack, &org(), topic, bytes::Bytes::from_static(b"{nope")).unwrap();
        assert_eq!(inbound.target, Target::Device { org: org(), device: "0102030405060708".into() });
        let Body::Decoded(decoded) = inbound.body else { panic!("decoded by the door") };
        assert_eq!(decoded.rejections[0].code, RejectCode::MalformedPayload);
        let join = br#"{"end_device_ids":{"device_id":"dev1"},"join_accept":{}}"#;
        assert!(inbound_of(ConnectorKind::Tts, &org(), "v3/a@t/devices/dev1/join", bytes::Bytes::from_static(join))
            .is_none());
    }
}
