//! OpenTelemetry traces, exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! is set ([`OtlpConfig::from_env`]).
//!
//! Each SDK call is one span named after the function, with one child span
//! per step attempt its reply reports. The spans of one run share a trace:
//! the run's trace id is its ULID (128 bits), unless its trigger event
//! carried a W3C `traceparent` (`data._inngest.traceparent`, which the event
//! API fills from a `traceparent` request header), in which case every call
//! span is a child of that span, so a user's trace continues into the engine.
//!
//! **Exporting never blocks the run loop:** a finished span is put on a
//! bounded channel with `try_send` (a full channel drops it and counts
//! `ingot_trace_spans_dropped_total`); one task batches the channel and
//! awaits the exporter.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ingot_core::{Reply, RunState};
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use rand::Rng;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;

/// Spans waiting for export at most; past this they are dropped and counted.
pub const QUEUE_SPANS: usize = 8192;
/// Spans per export request at most.
const BATCH_SPANS: usize = 512;
/// A partial batch is sent after this long.
const BATCH_DELAY: Duration = Duration::from_millis(500);

/// The OTLP transport (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `http/protobuf` (the default): POST `<endpoint>/v1/traces`.
    HttpProtobuf,
    /// `grpc`: the OTLP trace service at `<endpoint>`.
    Grpc,
}

/// Where traces go, read from the standard OpenTelemetry environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// The full URL spans are sent to.
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    /// `service.name` of the resource (`OTEL_SERVICE_NAME`, else `ingot`).
    pub service_name: String,
}

impl OtlpConfig {
    /// Reads `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended for HTTP),
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf` or `grpc`) and
    /// `OTEL_SERVICE_NAME`. `None` when no endpoint is set: tracing is off.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<OtlpConfig>, String> {
        let var = |k: &str| var(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let protocol = match var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL")).as_deref() {
            None | Some("http/protobuf") => OtlpProtocol::HttpProtobuf,
            Some("grpc") => OtlpProtocol::Grpc,
            Some(other) => return Err(format!("OTEL_EXPORTER_OTLP_PROTOCOL={other:?} is not supported (use http/protobuf or grpc)")),
        };
        let endpoint = match (var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), var("OTEL_EXPORTER_OTLP_ENDPOINT")) {
            (Some(e), _) => e,
            (None, Some(e)) if protocol == OtlpProtocol::HttpProtobuf => format!("{}/v1/traces", e.trim_end_matches('/')),
            (None, Some(e)) => e,
            (None, None) => return Ok(None),
        };
        let service_name = var("OTEL_SERVICE_NAME").unwrap_or_else(|| "ingot".into());
        Ok(Some(OtlpConfig { endpoint, protocol, service_name }))
    }
}

enum Msg {
    Span(Box<SpanData>),
    Flush(oneshot::Sender<()>),
}

/// The span sink: off, or a bounded channel to the export task.
#[derive(Clone, Default)]
pub struct Traces {
    tx: Option<mpsc::Sender<Msg>>,
    metrics: Option<Arc<Metrics>>,
}

/// One SDK call, as a span sees it.
pub struct CallSpan<'a> {
    pub state: &'a RunState,
    /// The internal id of the run's first trigger event.
    pub event_id: Option<String>,
    /// The trigger event's payload (for its `traceparent`).
    pub event: Option<&'a Value>,
    /// The step the call was for (`step` for discovery).
    pub step_id: &'a str,
    pub attempt: u32,
    pub started: SystemTime,
    pub took: Duration,
    pub reply: &'a Reply,
}

impl Traces {
    /// Tracing off: spans are not built.
    pub fn off() -> Traces {
        Traces::default()
    }

    /// Starts the export task (on the current tokio runtime) for `config`.
    pub fn start(config: &OtlpConfig, metrics: Arc<Metrics>) -> Result<Traces, String> {
        use opentelemetry_otlp::{SpanExporter, WithExportConfig};
        let mut exporter = match config.protocol {
            OtlpProtocol::HttpProtobuf => SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(&config.endpoint)
                .with_timeout(Duration::from_secs(10))
                .build(),
            OtlpProtocol::Grpc => {
                SpanExporter::builder().with_tonic().with_endpoint(&config.endpoint).with_timeout(Duration::from_secs(10)).build()
            }
        }
        .map_err(|e| format!("the OTLP exporter for {} could not be built: {e}", config.endpoint))?;
        exporter.set_resource(&opentelemetry_sdk::Resource::builder().with_service_name(config.service_name.clone()).build());
        let (tx, rx) = mpsc::channel(QUEUE_SPANS);
        tokio::spawn(export_loop(exporter, rx, metrics.clone()));
        tracing::info!(endpoint = %config.endpoint, protocol = ?config.protocol, "exporting traces over OTLP");
        Ok(Traces { tx: Some(tx), metrics: Some(metrics) })
    }

    /// Whether spans are exported.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Sends every span recorded so far and waits for the exporter to take them.
    pub async fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Records one SDK call: the call span and a child per step it reports.
    pub fn record_call(&self, call: &CallSpan<'_>) {
        if self.tx.is_none() {
            return;
        }
        let function = call.state.function.as_str().to_string();
        let run_id = call.state.run_id.to_string();
        let parent = call.event.and_then(|e| e.pointer("/data/_inngest/traceparent")).and_then(Value::as_str).and_then(parse_traceparent);
        if parent.as_ref().is_some_and(|p| !p.is_sampled()) {
            return; // The caller chose not to sample this trace.
        }
        let trace_id = parent.as_ref().map(|p| p.trace_id()).unwrap_or_else(|| TraceId::from_bytes(call.state.run_id.0.to_bytes()));
        let call_id = new_span_id();
        let end = call.started + call.took;
        let mut common = vec![KeyValue::new("ingot.run_id", run_id), KeyValue::new("ingot.function", function.clone())];
        if let Some(e) = &call.event_id {
            common.push(KeyValue::new("ingot.event_id", e.clone()));
        }
        let mut attrs = common.clone();
        attrs.push(KeyValue::new("ingot.step_id", call.step_id.to_string()));
        attrs.push(KeyValue::new("ingot.attempt", call.attempt as i64));
        let status = match call.reply {
            Reply::Error { error, .. } => {
                attrs.push(KeyValue::new("ingot.error", error_text(error)));
                Status::error(error_text(error))
            }
            Reply::Invalid(reason) => {
                attrs.push(KeyValue::new("ingot.error", reason.clone()));
                Status::error(reason.clone())
            }
            _ => Status::Ok,
        };
        let span = |name: String, id: SpanId, parent_id: SpanId, remote: bool, attributes: Vec<KeyValue>, status: Status| SpanData {
            span_context: SpanContext::new(trace_id, id, TraceFlags::SAMPLED, false, TraceState::default()),
            parent_span_id: parent_id,
            parent_span_is_remote: remote,
            span_kind: SpanKind::Internal,
            name: Cow::Owned(name),
            start_time: call.started,
            end_time: end,
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: InstrumentationScope::builder("ingot").build(),
        };
        let (parent_id, remote) = parent.map(|p| (p.span_id(), true)).unwrap_or((SpanId::INVALID, false));
        let mut spans = vec![span(function, call_id, parent_id, remote, attrs, status)];
        if let Reply::Ops(ops) = call.reply {
            for op in ops {
                let mut attrs = common.clone();
                attrs.push(KeyValue::new("ingot.step_id", op.id.clone()));
                attrs.push(KeyValue::new("ingot.step_name", op.display()));
                attrs.push(KeyValue::new("ingot.op", op.op.as_str().to_string()));
                attrs.push(KeyValue::new("ingot.attempt", call.attempt as i64));
                let status = match &op.error {
                    Some(e) if !e.is_null() => {
                        attrs.push(KeyValue::new("ingot.error", error_text(e)));
                        Status::error(error_text(e))
                    }
                    _ => Status::Ok,
                };
                spans.push(span(op.display(), new_span_id(), call_id, false, attrs, status));
            }
        }
        for s in spans {
            self.send(s);
        }
    }

    fn send(&self, span: SpanData) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(Msg::Span(Box::new(span))).is_err() {
            if let Some(m) = &self.metrics {
                m.spans_dropped.inc();
            }
        }
    }
}

/// Batches spans from `rx` and exports them, one request at a time.
async fn export_loop(exporter: opentelemetry_otlp::SpanExporter, mut rx: mpsc::Receiver<Msg>, metrics: Arc<Metrics>) {
    let mut batch: Vec<SpanData> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut deadline = tokio::time::Instant::now();
    loop {
        // None: the batch's time is up; Some(None): every sender is gone.
        let msg = if batch.is_empty() { Some(rx.recv().await) } else { tokio::time::timeout_at(deadline, rx.recv()).await.ok() };
        let (due, closed) = (msg.is_none(), matches!(msg, Some(None)));
        match msg {
            Some(Some(Msg::Span(s))) => {
                if batch.is_empty() {
                    deadline = tokio::time::Instant::now() + BATCH_DELAY;
                }
                batch.push(*s)
            }
            Some(Some(Msg::Flush(done))) => waiting.push(done),
            _ => {}
        }
        if due || closed || batch.len() >= BATCH_SPANS || !waiting.is_empty() {
            if !batch.is_empty() {
                let spans = std::mem::take(&mut batch);
                let n = spans.len() as u64;
                match exporter.export(spans).await {
                    Ok(()) => metrics.spans_exported.inc_by(n),
                    Err(e) => {
                        metrics.span_export_errors.inc();
                        tracing::warn!(error = %e, spans = n, "exporting spans failed; they were dropped");
                    }
                }
            }
            for done in waiting.drain(..) {
                let _ = done.send(());
            }
        }
        if closed {
            return;
        }
    }
}

/// Puts a request's `traceparent` header into `data._inngest.traceparent`
/// of each event that has none (where the runs it starts look for it), if
/// it is well formed.
pub fn carry_traceparent(events: &mut [ingot_protocol::Event], traceparent: &str) {
    if parse_traceparent(traceparent).is_none() {
        return;
    }
    for e in events {
        if !e.data.is_object() {
            continue;
        }
        let meta = e.data.as_object_mut().expect("checked").entry("_inngest").or_insert_with(|| Value::Object(Default::default()));
        if let Some(m) = meta.as_object_mut() {
            m.entry("traceparent").or_insert_with(|| Value::String(traceparent.trim().to_string()));
        }
    }
}

/// A W3C `traceparent` (`00-<trace id>-<span id>-<flags>`), if well formed.
pub fn parse_traceparent(v: &str) -> Option<SpanContext> {
    let mut parts = v.trim().split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || version == "ff" || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    Some(SpanContext::new(trace_id, span_id, TraceFlags::new(flags), true, TraceState::default()))
}

fn new_span_id() -> SpanId {
    SpanId::from_bytes(rand::thread_rng().gen_range(1..=u64::MAX).to_be_bytes())
}

/// An SDK error object as one line: `name: message`, else its JSON.
fn error_text(error: &Value) -> String {
    let s = |k: &str| error.get(k).and_then(Value::as_str);
    match (s("name"), s("message")) {
        (Some(n), Some(m)) => format!("{n}: {m}"),
        (None, Some(m)) => m.to_string(),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_forms() {
        let sc = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(sc.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled());
        assert!(!parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap().is_sampled());
        assert!(parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
        assert!(parse_traceparent("00-4bf92f35-00f067aa0ba902b7-01").is_none());
        assert!(parse_traceparent("garbage").is_none());
    }

    #[test]
    fn config_from_the_environment() {
        let env =
            |pairs: &'static [(&'static str, &'static str)]| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        assert_eq!(OtlpConfig::from_env(env(&[])).unwrap(), None);
        let c = OtlpConfig::from_env(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")])).unwrap().unwrap();
        assert_eq!(
            (c.endpoint.as_str(), c.protocol, c.service_name.as_str()),
            ("http://127.0.0.1:4318/v1/traces", OtlpProtocol::HttpProtobuf, "ingot")
        );
        let c = OtlpConfig::from_env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_SERVICE_NAME", "engine-a"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((c.endpoint.as_str(), c.protocol, c.service_name.as_str()), ("http://127.0.0.1:4317", OtlpProtocol::Grpc, "engine-a"));
        assert!(OtlpConfig::from_env(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "x"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")])).is_err());
    }
}
