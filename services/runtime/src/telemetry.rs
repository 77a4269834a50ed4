//! Logs and traces.
//!
//! **Logs** go through `tracing`: human-readable by default, JSON for log
//! shippers (`--log-format json`); the filter comes from `RUST_LOG` (default
//! `info`).
//!
//! **Traces** go to an OpenTelemetry collector over OTLP (HTTP/protobuf, port
//! 4318) when the standard `OTEL_*` variables ask for it: an
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`), or
//! `OTEL_TRACES_EXPORTER=otlp`. The exporter itself reads the endpoint,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `..._TIMEOUT` and `..._COMPRESSION`; the SDK
//! reads `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`
//! (`..._ARG`) and `OTEL_BSP_*`. Without them no OpenTelemetry layer is
//! installed at all: nothing is exported, nothing is logged about it, and
//! records carry no trace context.
//!
//! What the spans are: ingest opens one per MQTT message, whose W3C trace
//! context travels in the Kafka record beside the message's readings
//! ([`crate::kafka::TraceFields`]); the writer opens one per batch, linked to
//! the messages' contexts, and continues each message's trace with a span that
//! ends at the database commit; the API opens
//! one per request ([`http_trace_layer`]), continuing an incoming
//! `traceparent`, and the SQL statements it runs appear on it as events
//! (sqlx's `sqlx::query` events, with statement, rows and time).

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::MatchedPath;
use axum::http::{HeaderMap, Request, Response};
use clap::ValueEnum;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnBodyChunk, DefaultOnEos, MakeSpan, OnResponse, TraceLayer};
use tracing::field::Empty;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Log settings shared by the services.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(long = "log-format", env = "HOHEIT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub format: LogFormat,
}

/// What traces need beyond `RUST_LOG` when they are exported: Hoheit's spans
/// (debug level, so that they cost nothing while traces are off) and sqlx's
/// statement events (debug), so that a request's SQL shows on its span. These
/// are recorded for the traces only; the log shows what `RUST_LOG` asks for.
const TRACE_DIRECTIVES: [&str; 8] = [
    "hoheit_domain=debug",
    "hoheit_store=debug",
    "hoheit_runtime=debug",
    "hoheit_kafka=debug",
    "hoheit_ingest=debug",
    "hoheit_writer=debug",
    "hoheit_api=debug",
    "sqlx::query=debug",
];

/// Instrumentation scope of Hoheit's spans.
pub const TRACER_NAME: &str = "hoheit";

/// Whether and how spans are exported, decided from the `OTEL_*` environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportDecision {
    /// Nothing is exported; the reason says which setting decided it.
    Off(&'static str),
    /// OTLP over HTTP/protobuf.
    Otlp,
    /// Export was asked for in a way this build cannot do; nothing is exported
    /// and the reason is logged as an error at start-up.
    Unsupported(String),
}

/// Reads the decision from environment variables through `var` (a function,
/// so that tests need not change the process environment).
pub fn export_decision(var: impl Fn(&str) -> Option<String>) -> ExportDecision {
    let get = |name: &str| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return ExportDecision::Off("OTEL_SDK_DISABLED=true");
    }
    let endpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| get("OTEL_EXPORTER_OTLP_ENDPOINT"));
    match get("OTEL_TRACES_EXPORTER") {
        Some(list) => {
            let names: Vec<String> = list.split(',').map(|s| s.trim().to_ascii_lowercase()).collect();
            if names.iter().any(|n| n == "none") {
                return ExportDecision::Off("OTEL_TRACES_EXPORTER=none");
            }
            if !names.iter().any(|n| n == "otlp") {
                return ExportDecision::Unsupported(format!(
                    "OTEL_TRACES_EXPORTER={list}: Hoheit exports traces with otlp only (or none)"
                ));
            }
            // Explicitly otlp: without an endpoint the standard default applies.
        }
        None if endpoint.is_none() => {
            return ExportDecision::Off(
                "neither OTEL_EXPORTER_OTLP_ENDPOINT nor OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set",
            )
        }
        None => {}
    }
    let protocol = get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "http/protobuf".to_owned());
    if protocol != "http/protobuf" {
        return ExportDecision::Unsupported(format!(
            "OTLP protocol {protocol}: Hoheit exports http/protobuf only (a collector's port 4318)"
        ));
    }
    ExportDecision::Otlp
}

/// The tracer provider, once telemetry is initialised (`None`: tracing off).
static PROVIDER: OnceLock<Option<SdkTracerProvider>> = OnceLock::new();

/// Installs logging, and tracing when the `OTEL_*` environment asks for it.
/// Only the first call in a process has an effect (tests start several
/// services in one process).
pub fn init(args: &LogArgs) {
    let mut outcome = None;
    PROVIDER.get_or_init(|| {
        let decision = export_decision(|name| std::env::var(name).ok());
        let (provider, note) = match &decision {
            ExportDecision::Otlp => match otlp_provider() {
                Ok(provider) => (Some(provider), None),
                Err(error) => (None, Some(format!("cannot build the OTLP exporter: {error}"))),
            },
            ExportDecision::Unsupported(reason) => (None, Some(reason.clone())),
            ExportDecision::Off(_) => (None, None),
        };
        install_subscriber(args, provider.as_ref());
        outcome = Some((decision, note));
        provider
    });
    match outcome {
        Some((_, Some(problem))) => tracing::error!(%problem, "traces are not exported"),
        Some((ExportDecision::Otlp, None)) => tracing::info!(
            endpoint = %std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT"))
                .unwrap_or_else(|_| "default".into()),
            "exporting traces over OTLP/HTTP"
        ),
        Some((ExportDecision::Off(reason), None)) => tracing::debug!(reason, "trace export off"),
        _ => {}
    }
}

/// Installs logging and tracing into `provider` (tests: an in-memory exporter;
/// embedders: their own pipeline). Like [`init`], only the first call counts;
/// returns whether this call installed it.
pub fn init_with_tracer_provider(args: &LogArgs, provider: SdkTracerProvider) -> bool {
    let mut installed = false;
    PROVIDER.get_or_init(|| {
        install_subscriber(args, Some(&provider));
        installed = true;
        Some(provider)
    });
    installed
}

/// Whether spans are recorded for export (an OpenTelemetry layer is installed).
pub fn tracing_active() -> bool {
    matches!(PROVIDER.get(), Some(Some(_)))
}

/// Exports every finished span now. Blocks briefly: call it from a blocking
/// context (`spawn_blocking`) or at the end of a service's run.
pub fn flush() {
    if let Some(Some(provider)) = PROVIDER.get() {
        if let Err(error) = provider.force_flush() {
            tracing::warn!(%error, "flushing spans failed");
        }
    }
}

/// Flushes and stops the exporter (at the end of a process).
pub fn shutdown() {
    if let Some(Some(provider)) = PROVIDER.get() {
        let _ = provider.force_flush();
        if let Err(error) = provider.shutdown() {
            tracing::warn!(%error, "stopping the trace exporter failed");
        }
    }
}

/// Installs the global subscriber. Without traces: one filter from
/// `RUST_LOG`, exactly as logging alone. With traces: the global filter lets
/// through `RUST_LOG` and [`TRACE_DIRECTIVES`], the OpenTelemetry layer sees
/// all of it, and the log layer prints only what `RUST_LOG` asks for. (Not
/// per-layer filters: with two of them, a `tracing::enabled!` check that one
/// layer wants and the other does not makes the next event vanish from the
/// other layer; tracing-subscriber 0.3.23 still does that.)
fn install_subscriber(args: &LogArgs, provider: Option<&SdkTracerProvider>) {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, not in log files.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    // Fails only when a subscriber is installed already (e.g. by a test harness).
    let _ = match provider {
        None => {
            let fmt = match args.format {
                LogFormat::Text => tracing_subscriber::fmt::layer().with_ansi(ansi).boxed(),
                LogFormat::Json => tracing_subscriber::fmt::layer().json().boxed(),
            };
            tracing_subscriber::registry().with(filter()).with(fmt).try_init()
        }
        Some(provider) => {
            opentelemetry::global::set_tracer_provider(provider.clone());
            let shown = Shown(log_targets());
            let fmt = match args.format {
                LogFormat::Text => {
                    tracing_subscriber::fmt::layer().with_ansi(ansi).map_event_format(|f| shown.wrap(f)).boxed()
                }
                LogFormat::Json => tracing_subscriber::fmt::layer().json().map_event_format(|f| shown.wrap(f)).boxed(),
            };
            let filter = TRACE_DIRECTIVES.iter().fold(filter(), |filter, directive| {
                filter.add_directive(directive.parse().expect("the built-in trace directives parse"))
            });
            let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(TRACER_NAME));
            tracing_subscriber::registry().with(filter).with(fmt).with(otel).try_init()
        }
    };
}

/// `RUST_LOG` as plain target/level directives, for the log layer when traces
/// are on; span and field directives cannot be told apart from the traces'
/// extra events there, so such a `RUST_LOG` falls back to `info`.
fn log_targets() -> Targets {
    let rust_log = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| "info".into());
    rust_log.parse().unwrap_or_else(|error| {
        eprintln!(
            "hoheit: RUST_LOG={rust_log} cannot filter the log while traces are exported ({error}); logging info"
        );
        Targets::new().with_default(tracing::Level::INFO)
    })
}

/// Which events the log layer prints while traces are exported.
#[derive(Clone)]
struct Shown(Targets);

impl Shown {
    fn wrap<E>(&self, inner: E) -> ShownFormat<E> {
        ShownFormat { inner, shown: self.0.clone() }
    }
}

/// An event format that prints only the events of [`Shown`]; the others
/// (there for the traces) format to nothing, and nothing is written.
struct ShownFormat<E> {
    inner: E,
    shown: Targets,
}

impl<S, N, E> FormatEvent<S, N> for ShownFormat<E>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    E: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if self.shown.would_enable(event.metadata().target(), event.metadata().level()) {
            self.inner.format_event(ctx, writer, event)
        } else {
            Ok(())
        }
    }
}

fn otlp_provider() -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()?;
    Ok(SdkTracerProvider::builder().with_resource(resource()).with_batch_exporter(exporter).build())
}

/// The SDK's resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), with
/// the executable's name as the service name and the crate version as the
/// service version unless the environment gives them.
fn resource() -> Resource {
    let attributes = std::env::var("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default();
    let mut builder = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").map_or(true, |v| v.trim().is_empty()) && !attributes.contains("service.name=")
    {
        let name = std::env::current_exe()
            .ok()
            .and_then(|path| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "hoheit".into());
        builder = builder.with_service_name(name);
    }
    if !attributes.contains("service.version=") {
        builder = builder.with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    }
    builder.build()
}

/// The W3C trace context of `headers` (`traceparent`, `tracestate`), if any.
pub fn extract_http_context(headers: &HeaderMap) -> Option<opentelemetry::Context> {
    struct Carrier<'a>(&'a HeaderMap);
    impl Extractor for Carrier<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }
    let cx = TraceContextPropagator::new().extract(&Carrier(headers));
    cx.span().span_context().is_valid().then_some(cx)
}

/// The API's request tracing: one span per request, named `METHOD /route`,
/// continuing the caller's trace when it sends a `traceparent`.
pub type HttpTraceLayer = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    HttpMakeSpan,
    (),
    HttpOnResponse,
    DefaultOnBodyChunk,
    DefaultOnEos,
    (),
>;

/// See [`HttpTraceLayer`]. Requests and failures are not logged here: the
/// API's own metrics and error handling do that.
pub fn http_trace_layer() -> HttpTraceLayer {
    TraceLayer::new_for_http().make_span_with(HttpMakeSpan).on_request(()).on_response(HttpOnResponse).on_failure(())
}

/// Makes a request's span (OpenTelemetry HTTP server conventions).
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpMakeSpan;

impl<B> MakeSpan<B> for HttpMakeSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str());
        let method = request.method().as_str();
        let span = tracing::debug_span!(
            "http request",
            otel.name = Empty,
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = method,
            http.route = route,
            url.path = request.uri().path(),
            http.response.status_code = Empty,
        );
        if tracing_active() {
            span.record("otel.name", format!("{method} {route}"));
            if let Some(parent) = extract_http_context(request.headers()) {
                let _ = span.set_parent(parent);
            }
        }
        span
    }
}

/// Records the response status on the request's span; a 5xx marks it failed.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpOnResponse;

impl<B> OnResponse<B> for HttpOnResponse {
    fn on_response(self, response: &Response<B>, latency: Duration, span: &Span) {
        span.record("http.response.status_code", i64::from(response.status().as_u16()));
        if response.status().is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
        tracing::debug!(parent: span, status = response.status().as_u16(), latency_us = latency.as_micros() as u64, "response");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn decide(vars: &[(&str, &str)]) -> ExportDecision {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        export_decision(|name| vars.get(name).cloned())
    }

    #[test]
    fn export_is_off_unless_the_environment_asks_for_it() {
        assert!(matches!(decide(&[]), ExportDecision::Off(_)));
        assert!(matches!(decide(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "  ")]), ExportDecision::Off(_)));
        assert!(matches!(decide(&[("OTEL_SERVICE_NAME", "hoheit-api")]), ExportDecision::Off(_)));
        assert_eq!(decide(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]), ExportDecision::Otlp);
        assert_eq!(decide(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces")]), ExportDecision::Otlp);
        assert_eq!(decide(&[("OTEL_TRACES_EXPORTER", "otlp")]), ExportDecision::Otlp);
    }

    #[test]
    fn explicit_switches_and_unsupported_settings_win() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        assert!(matches!(decide(&[endpoint, ("OTEL_SDK_DISABLED", "TRUE")]), ExportDecision::Off(_)));
        assert!(matches!(decide(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")]), ExportDecision::Off(_)));
        assert!(matches!(decide(&[endpoint, ("OTEL_TRACES_EXPORTER", "zipkin")]), ExportDecision::Unsupported(_)));
        assert!(matches!(decide(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]), ExportDecision::Unsupported(_)));
        assert_eq!(decide(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]), ExportDecision::Otlp);
    }

    #[test]
    fn an_incoming_traceparent_is_read_and_garbage_is_not() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
        let cx = extract_http_context(&headers).expect("a valid context");
        assert_eq!(cx.span().span_context().trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(cx.span().span_context().is_remote());
        headers.insert("traceparent", "00-not-a-trace".parse().unwrap());
        assert!(extract_http_context(&headers).is_none());
    }
}
