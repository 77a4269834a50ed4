//! Traces against the real brokers and database: a reading's trace starts at
//! ingest (a span per MQTT message), crosses Kafka inside the record beside
//! the message's readings (W3C `traceparent`) and ends in the writer with a span that lasts until the
//! database commit; an API request continues its caller's trace and carries
//! its SQL.
//!
//! Each test installs an in-memory span exporter as the process's tracer
//! provider before any service starts (nextest runs every test in a process
//! of its own), so what is checked is what the services really exported.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoheit_domain::Slug;
use hoheit_proto::v1::ObservationRecord;
use hoheit_runtime::telemetry::{self, LogArgs, LogFormat};
use hoheit_tests::{consume, eventually, Platform, Publisher};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::Value;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use prost::Message;

/// Keeps every exported span in memory.
#[derive(Debug, Clone, Default)]
struct Captured(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Captured {
    fn export(&self, batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.0.lock().expect("span store").extend(batch);
        std::future::ready(Ok(()))
    }
}

impl Captured {
    /// Installs a provider exporting into a new store as the process's one.
    fn install() -> Self {
        let captured = Self::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(captured.clone()).build();
        assert!(
            telemetry::init_with_tracer_provider(&LogArgs { format: LogFormat::Text }, provider),
            "telemetry was initialised before the test could install its exporter"
        );
        captured
    }

    fn all(&self) -> Vec<SpanData> {
        self.0.lock().expect("span store").clone()
    }

    fn named(&self, name: &str) -> Vec<SpanData> {
        self.all().into_iter().filter(|s| s.name == name).collect()
    }
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| &kv.value)
}

/// A W3C `traceparent` (`00-<trace id>-<parent span id>-<flags>`), parsed strictly.
fn parse_traceparent(value: &str) -> (TraceId, SpanId, u8) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "traceparent {value:?} has four parts");
    assert_eq!(parts[0], "00", "traceparent version");
    assert!(parts[1].len() == 32 && parts[2].len() == 16 && parts[3].len() == 2, "traceparent {value:?} field lengths");
    let trace_id = TraceId::from_hex(parts[1]).expect("hex trace id");
    let span_id = SpanId::from_hex(parts[2]).expect("hex span id");
    assert_ne!(trace_id, TraceId::INVALID, "an all-zero trace id is invalid");
    assert_ne!(span_id, SpanId::INVALID, "an all-zero span id is invalid");
    (trace_id, span_id, u8::from_str_radix(parts[3], 16).expect("hex flags"))
}

/// The trace context fields of the first observation record's batches on
/// `topic`, read from the beginning.
async fn first_record_traces(topic: &str) -> anyhow::Result<Vec<(String, String)>> {
    let records = consume(topic, 1, Duration::from_secs(60)).await?;
    let record = ObservationRecord::decode(records[0].payload.as_slice())?;
    Ok(record.batches.into_iter().map(|b| (b.traceparent, b.tracestate)).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readings_trace_crosses_kafka_and_ends_at_the_database_commit() -> anyhow::Result<()> {
    let spans = Captured::install();
    let platform = Platform::start().await?;
    let id = platform.api.register("stadtwerke", "pegel-1", "level", Some("cm")).await?;
    let slug = |s: &str| Slug::parse("test", s).unwrap();
    let topic = platform.scheme.datastream_topic(&slug("stadtwerke"), &slug("pegel-1"), &slug("level"));
    let mut publisher = Publisher::connect("tracing").await?;
    publisher
        .publish_all(vec![(
            topic.clone(),
            br#"{"time": "2026-11-20T10:00:00Z", "value": 121.5, "unit": "cm"}"#.to_vec(),
        )])
        .await?;
    eventually(Duration::from_secs(60), "the reading in the database", || {
        let pool = platform.pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM observations WHERE datastream_id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await?;
            Ok((n == 1).then_some(()))
        }
    })
    .await?;

    // The Kafka record carries the message's valid W3C trace context beside its readings ...
    let kafka_topic = format!("{}.observations", platform.isolation.kafka_prefix);
    let traces = first_record_traces(&kafka_topic).await?;
    assert_eq!(traces.len(), 1, "one message, one batch: {traces:?}");
    let (trace_id, parent_id, flags) = parse_traceparent(&traces[0].0);
    assert_eq!(flags & 1, 1, "the default sampler samples every trace");

    // ... which is the context of the span ingest made for the MQTT message ...
    let store = eventually(Duration::from_secs(30), "the writer's store span", || {
        let found = spans.named("writer store");
        async move { Ok((!found.is_empty()).then_some(found)) }
    })
    .await?;
    let ingest = spans.named("ingest message");
    assert_eq!(ingest.len(), 1, "one span per MQTT message");
    let ingest = &ingest[0];
    assert_eq!(ingest.span_context.trace_id(), trace_id, "the record's trace id is ingest's");
    assert_eq!(ingest.span_context.span_id(), parent_id, "the record's parent id is ingest's message span");
    assert_eq!(attribute(ingest, "messaging.destination.name"), Some(&Value::from(topic.clone())));
    assert_eq!(attribute(ingest, "hoheit.readings.accepted"), Some(&Value::I64(1)));

    // ... which the writer extracted: its store span continues that trace ...
    assert_eq!(store.len(), 1, "one store span per traced message");
    let store = &store[0];
    assert_eq!(store.span_context.trace_id(), trace_id, "the writer continues the reading's trace");
    assert_eq!(store.parent_span_id, parent_id, "as a child of ingest's message span");
    assert!(store.parent_span_is_remote, "whose context came from another process (the record)");
    assert_eq!(attribute(store, "hoheit.readings"), Some(&Value::I64(1)));

    // ... and links it to the batch write, whose statements have spans of their own.
    let batches = spans.named("writer batch");
    let batch = batches
        .iter()
        .find(|b| {
            b.links.iter().any(|l| l.span_context.trace_id() == trace_id && l.span_context.span_id() == parent_id)
        })
        .expect("a batch span linked to the record's context");
    assert!(
        store.links.iter().any(|l| l.span_context.span_id() == batch.span_context.span_id()),
        "the store span links back to its batch"
    );
    let insert = spans.named("INSERT observations");
    assert!(
        insert.iter().any(|s| s.parent_span_id == batch.span_context.span_id()
            && s.span_context.trace_id() == batch.span_context.trace_id()),
        "the INSERT runs inside the batch span"
    );
    assert!(spans.named("COMMIT").iter().any(|s| s.parent_span_id == batch.span_context.span_id()));
    assert!(store.end_time >= store.start_time);

    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_request_continues_the_callers_trace_and_shows_its_sql() -> anyhow::Result<()> {
    let spans = Captured::install();
    let platform = Platform::start().await?;
    let id = platform.api.register("stadtwerke", "zaehler-1", "vehicles", Some("count")).await?;
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let response = platform
        .api
        .get(&format!("/v1/datastreams/{id}"))
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .send()
        .await?;
    assert!(response.status().is_success(), "GET datastream: {}", response.status());

    let route = "/v1/datastreams/{id}";
    let request = eventually(Duration::from_secs(30), "the request's span", || {
        let found = spans.all().into_iter().find(|s| {
            s.span_context.trace_id() == TraceId::from_hex(caller_trace).unwrap()
                && attribute(s, "http.route") == Some(&Value::from(route))
        });
        async move { Ok(found) }
    })
    .await?;
    assert_eq!(request.name, "GET /v1/datastreams/{id}", "named after method and route");
    assert_eq!(request.parent_span_id, SpanId::from_hex(caller_span)?, "a child of the caller's span");
    assert_eq!(attribute(&request, "http.request.method"), Some(&Value::from("GET")));
    assert_eq!(attribute(&request, "http.response.status_code"), Some(&Value::I64(200)));
    let statements: Vec<String> = request
        .events
        .iter()
        .filter_map(|e| e.attributes.iter().find(|kv| kv.key.as_str() == "summary").map(|kv| kv.value.to_string()))
        .collect();
    assert!(
        statements.iter().any(|s| s.to_ascii_lowercase().starts_with("select")),
        "the request's SQL shows on its span as events; got {statements:?}"
    );

    platform.stop().await
}
