//! MQTT load for the benchmarks: QoS 1 publishers that keep a window of
//! messages in flight and count the broker's PUBACKs, and a plain subscriber
//! (the broker's own rate, without Hoheit) that counts what it receives.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::task::JoinHandle;

use crate::harness::{run_id, Infra};

/// Messages a publisher may have unacknowledged (rumqttc's in-flight window).
const INFLIGHT: u16 = 1000;

/// One MQTT message to publish.
pub type Message = (String, Bytes);

/// A connected client whose event loop runs in its own task.
pub struct Client {
    pub client: AsyncClient,
    /// PUBACKs received (publisher) or messages received (subscriber).
    pub count: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Client {
    async fn connect(infra: &Infra, client_id: String, clean: bool) -> anyhow::Result<Self> {
        let mut options = infra.mqtt_options(client_id);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_clean_session(clean);
        options.set_inflight(INFLIGHT);
        options.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 4096);
        let count = Arc::new(AtomicU64::new(0));
        let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
        let counter = count.clone();
        let task = tokio::spawn(async move {
            let mut connected = Some(connected_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(c) = connected.take() {
                            let _ = c.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(_) | Packet::Publish(_))) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), connected_rx)
            .await
            .context("MQTT connect timed out")?
            .context("MQTT event loop ended")?;
        Ok(Self { client, count, task })
    }

    /// A publisher with a clean session.
    pub async fn publisher(infra: &Infra) -> anyhow::Result<Self> {
        Self::connect(infra, format!("bench-pub-{}", run_id()), true).await
    }

    /// A plain QoS 1 subscriber of `filter` (clean session; acknowledges at once).
    pub async fn subscriber(infra: &Infra, filter: &str) -> anyhow::Result<Self> {
        let subscriber = Self::connect(infra, format!("bench-sub-{}", run_id()), true).await?;
        subscriber.client.subscribe(filter, QoS::AtLeastOnce).await?;
        // The SUBACK is not counted; give the broker a moment to register the subscription.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(subscriber)
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.task.abort();
    }
}

/// Publishes `messages` with QoS 1, spread round-robin over `publishers`, as
/// fast as the in-flight windows allow; returns once every message is queued
/// (PUBACKs are counted in each publisher's `count`).
pub async fn publish_all(publishers: &[Client], messages: Arc<Vec<Message>>) -> anyhow::Result<()> {
    let n = publishers.len();
    let mut tasks = Vec::new();
    for (p, publisher) in publishers.iter().enumerate() {
        let client = publisher.client.clone();
        let messages = messages.clone();
        tasks.push(tokio::spawn(async move {
            for (topic, payload) in messages.iter().skip(p).step_by(n) {
                client.publish_bytes(topic.as_str(), QoS::AtLeastOnce, false, payload.clone()).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}
