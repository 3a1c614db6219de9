//! The log layer's two pieces:
//!
//! - [`LogFilter`]: events pass `RUST_LOG`; spans pass `TRACE_FILTER`, so the log
//!   layer sees the same spans as the trace layer whatever `RUST_LOG` says, and a
//!   line can always name the span (and trace) it was written in;
//! - [`JsonLines`]: one JSON object per line, with the event's fields at the top level
//!   and, for a line written inside a traced span, `trace_id` and `span_id` (the W3C
//!   ids of the trace and of that span), which is how Grafana goes from a log line
//!   to its trace.

use std::fmt;
use std::sync::{Arc, OnceLock};

use opentelemetry::trace::TraceContextExt;
use serde_json::Value;
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

/// `RUST_LOG` for events, `TRACE_FILTER` for spans.
pub(crate) struct LogFilter {
    pub(crate) events: EnvFilter,
    pub(crate) spans: EnvFilter,
}

impl LogFilter {
    fn of(&self, meta: &Metadata<'_>) -> &EnvFilter {
        if meta.is_span() {
            &self.spans
        } else {
            &self.events
        }
    }
}

impl<S: Subscriber> Filter<S> for LogFilter {
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        Filter::enabled(self.of(meta), meta, cx)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        Filter::<S>::callsite_enabled(self.of(meta), meta)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        let events = Filter::<S>::max_level_hint(&self.events)?;
        let spans = Filter::<S>::max_level_hint(&self.spans)?;
        Some(events.max(spans))
    }

    // Span-scoped directives (`[span{field}]=debug`) of either filter follow the spans.
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, cx: Context<'_, S>) {
        Filter::on_new_span(&self.events, attrs, id, cx.clone());
        Filter::on_new_span(&self.spans, attrs, id, cx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, cx: Context<'_, S>) {
        Filter::on_record(&self.events, id, values, cx.clone());
        Filter::on_record(&self.spans, id, values, cx);
    }

    fn on_enter(&self, id: &Id, cx: Context<'_, S>) {
        Filter::on_enter(&self.events, id, cx.clone());
        Filter::on_enter(&self.spans, id, cx);
    }

    fn on_exit(&self, id: &Id, cx: Context<'_, S>) {
        Filter::on_exit(&self.events, id, cx.clone());
        Filter::on_exit(&self.spans, id, cx);
    }

    fn on_close(&self, id: Id, cx: Context<'_, S>) {
        Filter::on_close(&self.events, id.clone(), cx.clone());
        Filter::on_close(&self.spans, id, cx);
    }
}

/// One JSON object per line: `timestamp`, `level`, `target`, `trace_id` and `span_id`
/// (inside a traced span), then the event's fields (`message` among them).
pub(crate) struct JsonLines {
    /// The subscriber this formats for, set once it is built (the cell [`JsonLines::new`]
    /// returns): the trace layer hands out a span's OpenTelemetry context only through
    /// it, and while an event is being written the current dispatcher is not it
    /// (tracing keeps subscribers from re-entering themselves).
    subscriber: Arc<OnceLock<WeakDispatch>>,
}

impl JsonLines {
    /// A formatter and the cell to put its subscriber in, once built: until then (and
    /// without one), lines carry no trace ids.
    pub(crate) fn new() -> (Self, Arc<OnceLock<WeakDispatch>>) {
        let subscriber = Arc::new(OnceLock::new());
        let lines = Self {
            subscriber: Arc::clone(&subscriber),
        };
        (lines, subscriber)
    }
}

/// Names the line itself writes; an event field of the same name is dropped.
const OWN_KEYS: [&str; 5] = ["timestamp", "level", "target", "trace_id", "span_id"];

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = format!(
            "{{\"timestamp\":{},\"level\":{},\"target\":{}",
            json_text(&chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            json_text(meta.level().as_str()),
            json_text(meta.target()),
        );
        // The nearest span (the event's own, or an ancestor) the trace layer follows.
        let subscriber = self.subscriber.get().and_then(WeakDispatch::upgrade);
        let ids = subscriber.and_then(|subscriber| {
            ctx.event_scope()?.into_iter().find_map(|span| {
                let cx = tracing_opentelemetry::get_otel_context(&span.id(), &subscriber)?;
                let span = cx.span();
                let ids = span.span_context();
                Some((ids.trace_id(), ids.span_id()))
            })
        });
        if let Some((trace_id, span_id)) = ids
            && trace_id != opentelemetry::TraceId::INVALID
        {
            line += &format!(",\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"");
        }
        let mut fields = FieldsVisitor(Vec::new());
        event.record(&mut fields);
        for (name, value) in fields.0 {
            if !OWN_KEYS.contains(&name) {
                line += &format!(",{}:{value}", json_text(name));
            }
        }
        line.push('}');
        writeln!(writer, "{line}")
    }
}

fn json_text(text: &str) -> String {
    Value::from(text).to_string()
}

/// An event's fields as JSON values, in the order written.
struct FieldsVisitor(Vec<(&'static str, Value)>);

impl Visit for FieldsVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.push((field.name(), Value::from(value)));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.push((field.name(), Value::from(value)));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push((field.name(), Value::from(value)));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.push((field.name(), Value::from(value)));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name(), Value::from(value)));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.push((field.name(), Value::from(value.to_string())));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .push((field.name(), Value::from(format!("{value:?}"))));
    }
}
