//! No run can wedge on writes that keep failing: a store that refuses every
//! commit carrying a run's `inngest/function.finished` event (as a size
//! limit once did) must not make the engine call the app again and again.
//! The run ends Failed with the store's error, after a bounded number of
//! tries, and the app was called once. In process, against a real HTTP app.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use ingot_core::{EventId, RunId};
use ingot_engine::{Clock, Engine, EngineConfig};
use ingot_store::*;
use serde_json::{json, Value};
use tower::ServiceExt as _;

/// A [`MemStore`] that refuses commits storing a `function.finished` event.
struct Refusing {
    inner: MemStore,
    refused: AtomicUsize,
}

fn stores_finished(ops: &[WriteOp]) -> bool {
    ops.iter().any(|op| match op {
        WriteOp::InsertEvent(e) => e.name == "inngest/function.finished",
        WriteOp::Guarded { then, otherwise, .. } => stores_finished(then) || stores_finished(otherwise),
        _ => false,
    })
}

#[async_trait]
impl Store for Refusing {
    async fn commit(&self, commit: Commit) -> Result<CommitOutcome> {
        if stores_finished(&commit.ops) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable("refusing the finished event (test)".into()));
        }
        self.inner.commit(commit).await
    }
    async fn claim(&self, now_ms: i64, limit: usize) -> Result<Claim> {
        self.inner.claim(now_ms, limit).await
    }
    async fn release(&self, lease: &Lease) -> ingot_store::Result<()> {
        self.inner.release(lease).await
    }
    fn work_notify(&self) -> Arc<tokio::sync::Notify> {
        self.inner.work_notify()
    }
    async fn apps(&self) -> Result<Vec<AppRecord>> {
        self.inner.apps().await
    }
    async fn functions(&self, include_archived: bool) -> Result<Vec<FunctionRecord>> {
        self.inner.functions(include_archived).await
    }
    async fn run(&self, id: RunId) -> Result<Option<RunRecord>> {
        self.inner.run(id).await
    }
    async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        self.inner.runs(filter).await
    }
    async fn count_runs(&self, filter: &RunFilter) -> Result<u64> {
        self.inner.count_runs(filter).await
    }
    async fn runs_for_event(&self, id: EventId) -> Result<Vec<RunRecord>> {
        self.inner.runs_for_event(id).await
    }
    async fn run_steps(&self, id: RunId) -> Result<Vec<StepRecord>> {
        self.inner.run_steps(id).await
    }
    async fn run_history(&self, id: RunId) -> Result<Vec<HistoryRecord>> {
        self.inner.run_history(id).await
    }
    async fn run_items(&self, id: RunId) -> Result<Vec<QueueItem>> {
        self.inner.run_items(id).await
    }
    async fn event(&self, id: EventId) -> Result<Option<StoredEvent>> {
        self.inner.event(id).await
    }
    async fn events_by_ids(&self, ids: &[EventId]) -> Result<Vec<StoredEvent>> {
        self.inner.events_by_ids(ids).await
    }
    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
        self.inner.events(filter).await
    }
    async fn count_events(&self, filter: &EventFilter) -> Result<u64> {
        self.inner.count_events(filter).await
    }
    async fn pauses_for_event(&self, name: &str) -> Result<Vec<Pause>> {
        self.inner.pauses_for_event(name).await
    }
    async fn pause_by_correlation(&self, correlation_id: &str) -> Result<Option<Pause>> {
        self.inner.pause_by_correlation(correlation_id).await
    }
    async fn pauses_for_run(&self, id: RunId) -> Result<Vec<Pause>> {
        self.inner.pauses_for_run(id).await
    }
    async fn debounce(&self, function: &str, key: &str) -> Result<Option<DebounceRecord>> {
        self.inner.debounce(function, key).await
    }
    async fn batch(&self, run_id: RunId) -> Result<Option<BatchRecord>> {
        self.inner.batch(run_id).await
    }
    async fn skips(&self, function: Option<&str>, limit: usize) -> Result<Vec<SkipRecord>> {
        self.inner.skips(function, limit).await
    }
    async fn skips_for_event(&self, id: EventId) -> Result<Vec<SkipRecord>> {
        self.inner.skips_for_event(id).await
    }
    async fn paused_functions(&self) -> Result<Vec<String>> {
        self.inner.paused_functions().await
    }
    async fn singleton_holder(&self, scope: &str, key: &str) -> Result<Option<RunId>> {
        self.inner.singleton_holder(scope, key).await
    }
    async fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        self.inner.session(id).await
    }
    async fn queue_depth(&self, now_ms: i64) -> Result<ingot_store::QueueDepth> {
        self.inner.queue_depth(now_ms).await
    }
    async fn call_samples(&self, function: &str, since_ms: i64, limit: usize) -> Result<Vec<ingot_store::CallSample>> {
        self.inner.call_samples(function, since_ms, limit).await
    }
}

async fn call(engine: &Arc<Engine>, method: &str, uri: &str, body: String) -> Value {
    let req = axum::http::Request::builder().method(method).uri(uri).header("content-type", "application/json");
    let resp = engine.router().oneshot(req.body(axum::body::Body::from(body)).expect("request")).await.expect("infallible");
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_keep_failing_end_the_run_instead_of_looping() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/api/inngest", listener.local_addr().expect("addr"));
    let app = axum::Router::new().route(
        "/api/inngest",
        post(move || {
            let calls = counted.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                (StatusCode::OK, [("x-inngest-sdk", "js:v3.0.0"), ("content-type", "application/json")], r#""done""#).into_response()
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let store = Arc::new(Refusing { inner: MemStore::new(), refused: AtomicUsize::new(0) });
    let mut config = EngineConfig::dev();
    config.discovery = false;
    config.poll = false;
    let engine = Engine::new(config, store.clone(), Clock::system()).await.expect("engine");
    let f = json!({"id": "w-f", "name": "w-f", "triggers": [{"event": "w/go"}],
        "steps": {"step": {"id": "step", "name": "step", "runtime": {"type": "http", "url": format!("{url}?fnId=w-f&stepId=step")}}}});
    let reg =
        call(&engine, "POST", "/fn/register", json!({"url": url, "appName": "w", "sdk": "js:v3.0.0", "functions": [f]}).to_string()).await;
    assert_eq!(reg["ok"], json!(true), "{reg}");
    engine.start();

    let sent = call(&engine, "POST", "/e/key", json!({"name": "w/go"}).to_string()).await;
    let event = sent["ids"][0].as_str().expect("event id").to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let run = loop {
        let runs = call(&engine, "GET", &format!("/v1/events/{event}/runs"), String::new()).await;
        if let Some(run) = runs["data"].as_array().and_then(|r| r.first()).filter(|r| r["status"] != json!("Running")) {
            break run.clone();
        }
        assert!(Instant::now() < deadline, "the run never ended: {runs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(run["status"], json!("Failed"), "{run}");
    assert_eq!(run["output"]["name"], json!("EngineError"), "{run}");
    assert!(run["output"]["message"].as_str().unwrap_or("").contains("refusing the finished event"), "{run}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the app was called once, not again for every failed write");
    let refused = store.refused.load(Ordering::SeqCst);
    assert!((1..=5).contains(&refused), "bounded tries: {refused} refused commits");
    engine.shutdown();
}
