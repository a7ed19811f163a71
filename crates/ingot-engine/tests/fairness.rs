//! One function's backlog never stalls the others: a function with
//! concurrency 1 and more queued calls than the engine will ever park
//! ([`ingot_engine::limiter::MAX_PARKED`]) must not keep another function's
//! run from starting. In process, on a [`MemStore`], against a real HTTP app
//! on 127.0.0.1 that answers every call with a result.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ingot_engine::limiter::MAX_PARKED;
use ingot_engine::{Clock, Engine, EngineConfig};
use ingot_store::MemStore;
use serde_json::{json, Value};
use tower::ServiceExt as _;

#[derive(serde::Deserialize)]
struct Call {
    #[serde(rename = "fnId")]
    fn_id: String,
}

/// Counts calls per function; the slow function's calls take 20 ms.
async fn app(State(slow_calls): State<Arc<AtomicUsize>>, Query(q): Query<Call>) -> Response {
    if q.fn_id == "fair-slow" {
        slow_calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (StatusCode::OK, [("x-inngest-sdk", "js:v3.0.0"), ("content-type", "application/json")], r#"{"ok":true}"#).into_response()
}

fn function(slug: &str, url: &str, event: &str, concurrency: Option<u32>) -> Value {
    let mut f = json!({
        "id": slug, "name": slug, "triggers": [{"event": event}],
        "steps": {"step": {"id": "step", "name": "step", "runtime": {"type": "http", "url": format!("{url}?fnId={slug}&stepId=step")}}},
    });
    if let Some(limit) = concurrency {
        f["concurrency"] = json!([{"limit": limit}]);
    }
    f
}

async fn call(engine: &Arc<Engine>, method: &str, uri: &str, body: String) -> (StatusCode, Value) {
    let req = axum::http::Request::builder().method(method).uri(uri).header("content-type", "application/json");
    let resp = engine.router().oneshot(req.body(axum::body::Body::from(body)).expect("request")).await.expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_backlog_does_not_stall_other_functions() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/api/inngest", listener.local_addr().expect("addr"));
    let slow_calls = Arc::new(AtomicUsize::new(0));
    let router = axum::Router::new().route("/api/inngest", post(app)).with_state(slow_calls.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let mut config = EngineConfig::dev();
    config.discovery = false;
    config.poll = false;
    let engine = Engine::new(config, Arc::new(MemStore::new()), Clock::system()).await.expect("engine");
    let register = json!({"url": url, "appName": "fair", "sdk": "js:v3.0.0", "framework": "test", "functions": [
        function("fair-slow", &url, "fair/slow", Some(1)),
        function("fair-fast", &url, "fair/fast", None),
    ]});
    let (status, body) = call(&engine, "POST", "/fn/register", register.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // More backlog than the engine would ever park, queued before the loops start.
    let backlog = MAX_PARKED + 2_000;
    let batch: Vec<Value> = (0..4_000).map(|i| json!({"name": "fair/slow", "data": {"i": i}})).collect();
    let batch = Value::Array(batch).to_string();
    for _ in 0..backlog.div_ceil(4_000) {
        let (status, body) = call(&engine, "POST", "/e/key", batch.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    engine.start();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let sent = Instant::now();
    let (_, body) = call(&engine, "POST", "/e/key", json!({"name": "fair/fast"}).to_string()).await;
    let event = body["ids"][0].as_str().expect("event id").to_string();
    let deadline = sent + Duration::from_secs(30);
    loop {
        let (_, runs) = call(&engine, "GET", &format!("/v1/events/{event}/runs"), String::new()).await;
        if runs["data"].as_array().is_some_and(|r| r.iter().any(|r| r["status"] == json!("Completed"))) {
            break;
        }
        assert!(Instant::now() < deadline, "the fast function's run did not complete behind the backlog: {runs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let slow = slow_calls.load(Ordering::SeqCst);
    eprintln!("fast run completed {:?} after its event; the slow function had made {slow} calls", sent.elapsed());
    assert!(slow < backlog, "the backlog was still there when the fast run finished ({slow} of {backlog} calls)");
    engine.shutdown();
}
