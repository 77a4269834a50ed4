//! Operations endpoints of the background services (ingest, writer):
//! `/healthz` (the process runs), `/readyz` (every dependency is reachable)
//! and `/metrics` (Prometheus text). The API serves the same paths itself.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Histogram buckets of sizes (readings or records per batch).
const SIZE_BUCKETS: [f64; 12] =
    [1.0, 10.0, 50.0, 100.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0, 20_000.0, 50_000.0, 100_000.0];

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
                .expect("static bucket list is not empty")
                // Sizes (batch readings and records) are counts, not seconds.
                .set_buckets_for_metric(Matcher::Suffix("_readings".into()), &SIZE_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_records".into()), &SIZE_BUCKETS))
                .expect("static bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Histogram samples wait in the recorder until a scrape or an upkeep
            // drains them: without a scraper they would grow without bound
            // (~8 bytes per sample; issue 6 measured ingest's RSS growing by
            // 23 MiB in 5 minutes at 5,000 messages/s). A thread, not a task,
            // because no runtime may be running yet.
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_secs(5));
                upkeep.run_upkeep();
            });
            // Another recorder may already be installed (several services in one
            // test process); the handle then renders this one's empty registry,
            // which is harmless.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Named readiness conditions; the service is ready when all of them hold.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    conditions: Arc<Mutex<BTreeMap<&'static str, bool>>>,
}

impl Readiness {
    pub fn set(&self, name: &'static str, ok: bool) {
        if let Ok(mut conditions) = self.conditions.lock() {
            conditions.insert(name, ok);
        }
    }

    /// Whether condition `name` holds now.
    pub fn holds(&self, name: &str) -> bool {
        self.conditions.lock().map(|c| c.get(name).copied().unwrap_or(false)).unwrap_or(false)
    }

    pub fn is_ready(&self) -> bool {
        self.conditions.lock().map(|c| !c.is_empty() && c.values().all(|ok| *ok)).unwrap_or(false)
    }

    /// e.g. "mqtt=ok kafka=down".
    pub fn describe(&self) -> String {
        self.conditions
            .lock()
            .map(|c| {
                c.iter().map(|(k, v)| format!("{k}={}", if *v { "ok" } else { "down" })).collect::<Vec<_>>().join(" ")
            })
            .unwrap_or_default()
    }
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn metrics() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics_handle().render())
}

async fn readyz(State(readiness): State<Readiness>) -> impl IntoResponse {
    let status = if readiness.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, format!("{}\n", readiness.describe()))
}

/// Serves the operations endpoints on `listener` until `shutdown` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(readiness);
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

/// Binds the operations listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
