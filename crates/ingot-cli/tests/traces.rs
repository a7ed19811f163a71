//! OpenTelemetry traces from a real `ingot dev` running the official JS SDK
//! app (inngest v3), exported over OTLP/HTTP protobuf to a receiver this
//! test serves on loopback (decoded with `opentelemetry-proto`): each call
//! is a span named after the function with the run's attributes, each step
//! a child span, a run's trace id is its ULID, and a `traceparent` sent with
//! the event continues the caller's trace.
//!
//! The engine reads `OTEL_*` from its environment, set here for the one
//! test of this binary (the engine child process inherits it).
//!
//! Needs `scripts/setup-test-deps.sh` (node_modules).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use ingot_test_support::{Deadline, RunStatus, Sdk, TestEnv};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::json;

/// What the receiver got: `(service.name, span)` per span.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

async fn receive(State(got): State<Received>, body: Bytes) -> &'static str {
    let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf trace export");
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref()?.value.clone())
            .map(|v| match v {
                AnyValue::StringValue(s) => s,
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for span in ss.spans {
                got.lock().unwrap().push((service.clone(), span));
            }
        }
    }
    ""
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()?.value.clone()).map(|v| match v {
        AnyValue::StringValue(s) => s,
        AnyValue::IntValue(i) => i.to_string(),
        other => format!("{other:?}"),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn run_and_step_spans_reach_an_otlp_receiver() {
    let got: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = axum::Router::new().route("/v1/traces", post(receive)).with_state(got.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver") });
    // Only this test runs in this binary, so the process environment is its own.
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{port}"));
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
    std::env::set_var("OTEL_SERVICE_NAME", "ingot-under-test");
    let env = TestEnv::start(Sdk::JsV3).await;
    let slug = env.slug("hello");

    let plain = env.trigger_and_wait("e2e/hello", json!({"name": "plain"}), "hello").await.unwrap();
    assert_eq!(plain.status, RunStatus::Completed);
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let resp = env
        .http
        .post(format!("{}/e/test", env.base))
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .json(&json!({"name": "e2e/hello", "data": {"name": "traced"}}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let body: serde_json::Value = resp.json().await.unwrap();
    let event_id = body["ids"][0].as_str().unwrap().to_string();
    let traced = env.wait_run_finished(&event_id, "hello").await.unwrap();
    assert_eq!(traced.status, RunStatus::Completed);

    // hello is two calls per run on v3 (the step, then the return): 2 call
    // spans and 1 step span per run. Wait for all six.
    let calls_of = |run_id: &str| -> Vec<Span> {
        got.lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| s.name == slug && attr(s, "ingot.run_id").as_deref() == Some(run_id))
            .map(|(_, s)| s.clone())
            .collect()
    };
    let deadline = Deadline::after(Duration::from_secs(20));
    while got.lock().unwrap().len() < 6 {
        deadline.tick().await.expect("the receiver never got six spans");
    }
    let spans = got.lock().unwrap().clone();
    assert!(spans.iter().all(|(service, _)| service == "ingot-under-test"), "service.name");

    let plain_calls = calls_of(&plain.run_id);
    assert_eq!(plain_calls.len(), 2, "one span per call of the plain run");
    let run_trace = ulid::Ulid::from_string(&plain.run_id).unwrap().to_bytes().to_vec();
    for c in &plain_calls {
        assert_eq!(c.trace_id, run_trace, "the run's trace id is its ULID");
        assert!(c.parent_span_id.is_empty(), "a run without traceparent has root call spans");
        assert_eq!(attr(c, "ingot.function").as_deref(), Some(slug.as_str()));
        assert!(attr(c, "ingot.event_id").is_some_and(|e| !e.is_empty()));
        assert_eq!(attr(c, "ingot.attempt").as_deref(), Some("0"));
        assert!(attr(c, "ingot.step_id").is_some());
        assert!(c.end_time_unix_nano >= c.start_time_unix_nano && c.start_time_unix_nano > 0);
    }
    // The step `greet`: a child of the call that reported it.
    let steps: Vec<&Span> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.name == "greet" && attr(s, "ingot.run_id").as_deref() == Some(plain.run_id.as_str()))
        .collect();
    assert_eq!(steps.len(), 1, "one span for the step attempt");
    let parent_call = plain_calls.iter().find(|c| c.span_id == steps[0].parent_span_id).expect("the step's parent is a call span");
    assert_eq!(parent_call.trace_id, steps[0].trace_id);
    assert!(attr(steps[0], "ingot.step_id").is_some_and(|s| !s.is_empty()));
    assert_eq!(attr(steps[0], "ingot.op").as_deref(), Some("StepRun"));

    let traced_calls = calls_of(&traced.run_id);
    assert_eq!(traced_calls.len(), 2);
    for c in &traced_calls {
        assert_eq!(hex(&c.trace_id), trace, "the caller's trace continues");
        assert_eq!(hex(&c.parent_span_id), parent, "under the caller's span");
        assert_eq!(attr(c, "ingot.event_id").as_deref(), Some(event_id.as_str()));
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
