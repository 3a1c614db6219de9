//! Logs and traces: one `tracing` subscriber with a JSON (or text) log layer and an
//! OpenTelemetry layer. Spans always carry W3C trace ids, so the ids appear in logs
//! and travel on HTTP calls and in message headers, whether or not traces are
//! exported. The trace pipeline is set up by the standard `OTEL_*` variables
//! (docs/observability.md): `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER(_ARG)`, and those the SDK reads on its own
//! (`OTEL_EXPORTER_OTLP_HEADERS`, `_TIMEOUT`, `OTEL_BSP_*`, ...).

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_semantic_conventions::resource::{SERVICE_NAMESPACE, SERVICE_VERSION};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TelemetryArgs};

mod log_lines;
pub mod otel_env;

/// Keeps the trace pipeline alive; flushes pending spans when dropped.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(err) = self.provider.shutdown() {
            eprintln!("trace exporter did not shut down cleanly: {err}");
        }
    }
}

/// Install the global subscriber for a service. Call once, first thing in `main`.
pub fn init(service: &'static str, args: &TelemetryArgs) -> anyhow::Result<TelemetryGuard> {
    let endpoint = otel_env::traces_endpoint(
        args.traces_exporter.as_deref(),
        args.otlp_traces_endpoint.as_deref(),
        args.otlp_endpoint.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let sampler = otel_env::sampler(
        args.traces_sampler.as_deref(),
        args.traces_sampler_arg.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let attributes = otel_env::resource_attributes(args.resource_attributes.as_deref())
        .map_err(anyhow::Error::msg)?;
    // OTEL_SERVICE_NAME, else a `service.name` in OTEL_RESOURCE_ATTRIBUTES, else ours.
    let service_name = args
        .service_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .or_else(|| {
            attributes
                .iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v.as_str())
        })
        .unwrap_or(service)
        .to_owned();
    let provider = tracer_provider(service_name, attributes, endpoint.as_deref(), sampler)?;
    let tracer = provider.tracer(service);
    opentelemetry::global::set_tracer_provider(provider.clone());

    let filter = |variable: &str, value: &str| {
        EnvFilter::try_new(value)
            .map_err(|e| anyhow::anyhow!("{variable} {value:?} is not a valid filter: {e}"))
    };
    // Traces have their own filter: quieting the logs must not cut the traces.
    let log_filter = log_lines::LogFilter {
        events: filter("RUST_LOG", &args.log_filter)?,
        spans: filter("TRACE_FILTER", &args.trace_filter)?,
    };
    let (json_lines, json_lines_subscriber) = log_lines::JsonLines::new();
    let logs = match args.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .event_format(json_lines)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_target(true)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .boxed(),
    };
    let subscriber = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(logs.with_filter(log_filter))
            .with(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    // Not conventions, and in every span: `busy_ns`/`idle_ns`, `thread.*`.
                    .with_tracked_inactivity(false)
                    .with_threads(false)
                    .with_filter(filter("TRACE_FILTER", &args.trace_filter)?),
            ),
    );
    // The JSON lines read their spans' trace ids through it (log_lines::JsonLines).
    let _ = json_lines_subscriber.set(subscriber.downgrade());
    subscriber
        .try_init()
        .map_err(|e| anyhow::anyhow!("a tracing subscriber is already installed: {e}"))?;
    Ok(TelemetryGuard { provider })
}

/// A tracer provider with `sampler` that, given an endpoint, exports over OTLP/HTTP.
/// Its resource: `service.name`, `service.namespace` (`sales-system`) and
/// `service.version`, the SDK's own (`telemetry.sdk.*`), then `attributes`
/// (`OTEL_RESOURCE_ATTRIBUTES`), which may override them; `service_name` last.
pub fn tracer_provider(
    service_name: String,
    attributes: Vec<(String, String)>,
    otlp_traces_endpoint: Option<&str>,
    sampler: Sampler,
) -> anyhow::Result<SdkTracerProvider> {
    let resource = Resource::builder_empty()
        .with_attributes([
            KeyValue::new(SERVICE_NAMESPACE, "sales-system"),
            KeyValue::new(SERVICE_VERSION, env!("CARGO_PKG_VERSION")),
        ])
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(attributes.into_iter().map(|(k, v)| KeyValue::new(k, v)))
        // OTEL_SERVICE_NAME (read into `service_name`) wins over the attributes.
        .with_service_name(service_name)
        .build();
    let mut builder = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(sampler);
    if let Some(endpoint) = otlp_traces_endpoint {
        use opentelemetry_otlp::WithExportConfig;
        // The exporter's reqwest has TLS without a crypto provider of its own (no
        // aws-lc-rs, Cargo.toml): it takes the process's, ring.
        crate::tls::install_crypto_provider();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// Make `span` a child of the trace described by `carrier` (W3C `traceparent`).
pub fn continue_trace(span: &Span, carrier: &dyn Extractor) {
    let parent = TraceContextPropagator::new().extract(carrier);
    if parent.span().span_context().is_valid() {
        // Fails only when the span is disabled, which leaves nothing to link.
        let _ = span.set_parent(parent);
    }
}

/// Put the span's trace id into its `trace_id` field (declared as `Empty`). Log
/// lines carry the ids anyway ([`log_lines::JsonLines`]); this puts it on the span.
pub fn record_trace_id(span: &Span) {
    let trace_id = span.context().span().span_context().trace_id();
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

/// The current span's context as W3C headers (`traceparent`, `tracestate`).
pub fn current_trace_headers() -> HashMap<String, String> {
    trace_headers_of(&Span::current())
}

/// A span's context as W3C headers.
pub fn trace_headers_of(span: &Span) -> HashMap<String, String> {
    let mut headers = HashMap::new();
    let cx: Context = span.context();
    TraceContextPropagator::new().inject_context(&cx, &mut headers);
    headers
}

/// The trace id of the current span, if it has one.
pub fn current_trace_id() -> Option<String> {
    let id = Span::current().context().span().span_context().trace_id();
    (id != opentelemetry::trace::TraceId::INVALID).then(|| id.to_string())
}
