//! The HTTP API against bad input, in process: malformed events and register
//! bodies are refused with clear JSON errors and store nothing, and an "app"
//! that answers calls with garbage makes its runs fail with a readable error
//! instead of panicking, hanging or orphaning the run.
//!
//! The engine runs on a [`MemStore`]; requests go through `engine.router()`
//! with `tower::ServiceExt::oneshot`. The garbage app is a real axum server on
//! 127.0.0.1:0 that the engine calls over HTTP.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{Query, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ingot_core::backoff::RetryPolicy;
use ingot_engine::{Clock, Engine, EngineConfig};
use ingot_protocol::event::{MAX_EVENT_BYTES, MAX_EVENT_REQUEST_BYTES};
use ingot_store::MemStore;
use serde_json::{json, Value};
use tower::ServiceExt as _;

/// An engine on a fresh in-memory store: no discovery, no polling, retries
/// after 50 ms. Its loops are not started (see [`start_engine`]).
async fn new_engine() -> Arc<Engine> {
    let mut config = EngineConfig::dev();
    config.discovery = false;
    config.poll = false;
    config.retry = RetryPolicy::Fixed(Duration::from_millis(50));
    config.call_timeout = Duration::from_secs(10);
    Engine::new(config, Arc::new(MemStore::new()), Clock::system()).await.expect("engine")
}

/// What the API answered.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    /// The body parsed as JSON; `Value::Null` when it is not JSON.
    json: Value,
    text: String,
}

async fn request(engine: &Arc<Engine>, method: &str, uri: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Answer {
    let mut req = Request::builder().method(method).uri(uri).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = engine.router().oneshot(req.body(body.into()).expect("request")).await.expect("router is infallible");
    let status = resp.status();
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.expect("response body");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer { status, content_type, json, text }
}

async fn get(engine: &Arc<Engine>, uri: &str) -> Answer {
    request(engine, "GET", uri, &[], Body::empty()).await
}

async fn post_json(engine: &Arc<Engine>, uri: &str, body: impl Into<Body>) -> Answer {
    request(engine, "POST", uri, &[], body).await
}

/// Asserts a JSON error answer: `status`, `{"status": <code>, "error": "<msg>"}`
/// with a message that mentions `needle` (case-insensitive).
fn assert_json_error(what: &str, a: &Answer, status: StatusCode, needle: &str) {
    assert_eq!(a.status, status, "{what}: status; body {}", a.text);
    assert!(a.content_type.as_deref().is_some_and(|c| c.starts_with("application/json")), "{what}: content-type {:?}", a.content_type);
    assert_eq!(a.json["status"], json!(status.as_u16()), "{what}: `status` field in {}", a.text);
    let error = a.json["error"].as_str().unwrap_or_else(|| panic!("{what}: no string `error` in {}", a.text));
    assert!(error.to_lowercase().contains(&needle.to_lowercase()), "{what}: error {error:?} does not mention {needle:?}");
    assert!(error.len() < 2_000, "{what}: error message is {} bytes long (echoes the body?)", error.len());
}

async fn stored_events(engine: &Arc<Engine>) -> Vec<Value> {
    let a = get(engine, "/v1/events?limit=1000").await;
    assert_eq!(a.status, StatusCode::OK, "GET /v1/events: {}", a.text);
    a.json["data"].as_array().cloned().expect("data array")
}

async fn stored_runs(engine: &Arc<Engine>) -> Vec<Value> {
    let a = get(engine, "/v1/runs?limit=1000").await;
    assert_eq!(a.status, StatusCode::OK, "GET /v1/runs: {}", a.text);
    a.json["data"].as_array().cloned().expect("data array")
}

// ---- POST /e/{key} ----------------------------------------------------------

#[tokio::test]
async fn bad_events_get_a_clear_400_and_nothing_is_stored() {
    let engine = new_engine().await;
    // A function on the event name used below, so a wrongly accepted event
    // would also leave a run behind.
    register_ok(&engine, &register_body("http://127.0.0.1:9/api", &["bad/x"])).await;

    let huge_body = format!(r#"{{"name":"bad/x","data":{{"s":"{}"}}}}"#, "x".repeat(MAX_EVENT_REQUEST_BYTES));
    let big_event = json!({"name": "bad/x", "data": {"s": "x".repeat(MAX_EVENT_BYTES)}}).to_string();
    assert!(big_event.len() < MAX_EVENT_REQUEST_BYTES);
    let cases: Vec<(&str, String, &str)> = vec![
        ("malformed JSON", r#"{"name": "bad/x", "data": "#.into(), "not valid JSON"),
        ("empty body", String::new(), "not valid JSON"),
        ("a number", "42".into(), "event object or an array"),
        ("a string", r#""bad/x""#.into(), "event object or an array"),
        ("no name", r#"{"data": {"a": 1}}"#.into(), "no name"),
        ("empty name", r#"{"name": "  "}"#.into(), "no name"),
        ("name not a string", r#"{"name": 7}"#.into(), "name"),
        ("reserved name", r#"{"name": "inngest/function.finished", "data": {}}"#.into(), "reserved"),
        ("data as array", r#"{"name": "bad/x", "data": [1, 2]}"#.into(), "data must be an object"),
        ("data as string", r#"{"name": "bad/x", "data": "hi"}"#.into(), "data must be an object"),
        ("ts as string", r#"{"name": "bad/x", "ts": "yesterday"}"#.into(), "ts"),
        ("ts out of range", r#"{"name": "bad/x", "ts": 5}"#.into(), "ts"),
        ("id not a string", r#"{"name": "bad/x", "id": 5}"#.into(), "id"),
        ("body over 3 MiB", huge_body, "over the limit"),
        ("event over 512 KiB", big_event.clone(), "over the limit of 524288 bytes"),
        ("one bad event in a batch", r#"[{"name": "bad/x"}, {"name": "bad/x", "data": [1]}]"#.into(), "event 1"),
        ("one big event in a batch", format!(r#"[{{"name": "bad/x"}}, {big_event}]"#), "event 1"),
        ("array of numbers", "[1, 2]".into(), "not a JSON object"),
    ];
    for (what, body, needle) in cases {
        let a = post_json(&engine, "/e/test", body).await;
        assert_json_error(what, &a, StatusCode::BAD_REQUEST, needle);
    }
    assert_eq!(stored_events(&engine).await, Vec::<Value>::new());
    assert_eq!(stored_runs(&engine).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_valid_batch_is_stored_and_answered_with_ids_in_order() {
    let engine = new_engine().await;
    let a = post_json(
        &engine,
        "/e/test",
        json!([
            {"name": "ok/a", "data": {"n": 1}},
            {"name": "ok/b", "data": null, "ts": 1_700_000_000_000i64},
            {"name": "ok/c", "id": "user-id-1", "user": {"u": 1}},
        ])
        .to_string(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json["status"], json!(200), "{}", a.text);
    let ids: Vec<String> = a.json["ids"].as_array().expect("ids").iter().map(|v| v.as_str().expect("string id").to_string()).collect();
    assert_eq!(ids.len(), 3, "{}", a.text);
    for id in &ids {
        assert!(ulid::Ulid::from_string(id).is_ok(), "id {id} is not a ULID");
    }
    for (id, name) in ids.iter().zip(["ok/a", "ok/b", "ok/c"]) {
        let e = get(&engine, &format!("/v1/events/{id}")).await;
        assert_eq!(e.status, StatusCode::OK, "{}", e.text);
        assert_eq!(e.json["data"]["name"], json!(name), "{}", e.text);
    }
    assert_eq!(stored_events(&engine).await.len(), 3);

    // One object (not an array) is accepted too; an empty array stores nothing.
    let one = post_json(&engine, "/e/test", r#"{"name":"ok/d"}"#).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    assert_eq!(one.json["ids"].as_array().map(Vec::len), Some(1));
    let none = post_json(&engine, "/e/test", "[]").await;
    assert_eq!(none.status, StatusCode::OK, "{}", none.text);
    assert_eq!(none.json["ids"], json!([]));
    assert_eq!(stored_events(&engine).await.len(), 4);
}

#[tokio::test]
async fn the_event_id_seed_gives_the_same_ids_and_one_run() {
    let engine = new_engine().await;
    register_ok(&engine, &register_body("http://127.0.0.1:9/api", &["seed/x"])).await;
    let seed = [("x-inngest-event-id-seed", "1700000000000,AAECAwQFBgcICQ==")];
    let body = json!([{"name": "seed/x"}, {"name": "seed/y"}]).to_string();
    let first = request(&engine, "POST", "/e/test", &seed, body.clone()).await;
    let second = request(&engine, "POST", "/e/test", &seed, body).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    assert_eq!(first.json["ids"].as_array().map(Vec::len), Some(2));
    assert_eq!(first.json["ids"], second.json["ids"], "seeded ids differ");
    let id = first.json["ids"][0].as_str().unwrap().to_string();
    let stamp = ulid::Ulid::from_string(&id).unwrap().timestamp_ms();
    assert_eq!(stamp, 1_700_000_000_000, "seed time not used for {id}");

    // The retried send is the same send: stored once, one run.
    assert_eq!(stored_events(&engine).await.len(), 2);
    let runs = get(&engine, &format!("/v1/events/{id}/runs")).await;
    assert_eq!(runs.json["data"].as_array().map(Vec::len), Some(1), "a re-sent seeded event must not start a second run: {}", runs.text);

    // A malformed seed is ignored (fresh ids), not an error.
    let bad = request(&engine, "POST", "/e/test", &[("x-inngest-event-id-seed", "garbage")], r#"{"name":"seed/z"}"#).await;
    assert_eq!(bad.status, StatusCode::OK, "{}", bad.text);
    assert_ne!(bad.json["ids"][0], first.json["ids"][0]);
}

// ---- POST /fn/register --------------------------------------------------

/// A JS-style register body for `app` with one function per trigger event,
/// `<app>-f<i>`, called at `url?fnId=...&stepId=step` with one retry.
fn register_body(url: &str, triggers: &[&str]) -> Value {
    register_body_for("api-test", url, triggers)
}

fn register_body_for(app: &str, url: &str, triggers: &[&str]) -> Value {
    let functions: Vec<Value> = triggers.iter().enumerate().map(|(i, event)| function_config(&format!("{app}-f{i}"), url, event)).collect();
    json!({
        "url": url,
        "v": "0.1",
        "deployType": "ping",
        "sdk": "js:v3.0.0",
        "framework": "test",
        "appName": app,
        "functions": functions,
    })
}

fn function_config(slug: &str, url: &str, event: &str) -> Value {
    json!({
        "id": slug,
        "name": slug,
        "triggers": [{"event": event}],
        "steps": {"step": {
            "id": "step",
            "name": "step",
            "runtime": {"type": "http", "url": format!("{url}?fnId={slug}&stepId=step")},
            "retries": {"attempts": 1},
        }},
    })
}

async fn register_ok(engine: &Arc<Engine>, body: &Value) {
    let a = post_json(engine, "/fn/register", body.to_string()).await;
    assert_eq!(a.status, StatusCode::OK, "register: {}", a.text);
    assert_eq!(a.json["ok"], json!(true), "register: {}", a.text);
}

#[tokio::test]
async fn bad_register_bodies_get_a_400_with_error_and_status() {
    let engine = new_engine().await;
    let url = "http://127.0.0.1:9/api";
    let mut no_app_name = register_body(url, &["r/x"]);
    no_app_name.as_object_mut().unwrap().remove("appName");
    let mut empty_app_name = register_body(url, &["r/x"]);
    empty_app_name["appName"] = json!("");
    let mut no_triggers = register_body(url, &["r/x"]);
    no_triggers["functions"][0]["triggers"] = json!([]);
    let mut triggers_missing = register_body(url, &["r/x"]);
    triggers_missing["functions"][0].as_object_mut().unwrap().remove("triggers");
    let mut no_url = register_body(url, &["r/x"]);
    no_url["functions"][0]["steps"] = json!({});
    let mut functions_not_array = register_body(url, &["r/x"]);
    functions_not_array["functions"] = json!("nope");
    let mut bad_expression = register_body(url, &["r/x"]);
    bad_expression["functions"][0]["triggers"][0]["expression"] = json!("event.data.x == == 1");

    let cases: Vec<(&str, String, &str)> = vec![
        ("garbage", "this is not json".into(), "not JSON"),
        ("empty body", String::new(), "not JSON"),
        ("a number", "7".into(), "invalid"),
        ("missing appName", no_app_name.to_string(), "appName"),
        ("empty appName", empty_app_name.to_string(), "appName"),
        ("function without triggers", no_triggers.to_string(), "no triggers"),
        ("function with triggers missing", triggers_missing.to_string(), "no triggers"),
        ("function without a URL", no_url.to_string(), "URL"),
        ("functions not an array", functions_not_array.to_string(), "invalid"),
        ("bad trigger expression", bad_expression.to_string(), "invalid"),
    ];
    for (what, body, needle) in cases {
        let a = post_json(&engine, "/fn/register", body).await;
        assert_json_error(what, &a, StatusCode::BAD_REQUEST, needle);
    }
    // Nothing was synced by any of them.
    let apps = get(&engine, "/v1/apps").await;
    assert_eq!(apps.json["data"], json!([]), "{}", apps.text);
}

#[tokio::test]
async fn unknown_ids_are_json_404s() {
    let engine = new_engine().await;
    for uri in [
        "/v1/runs/not-a-ulid",
        "/v1/runs/01HZZZZZZZZZZZZZZZZZZZZZZZ",
        "/v1/runs/not-a-ulid/jobs",
        "/v1/events/not-a-ulid",
        "/v1/apps/nope/functions",
    ] {
        let a = get(&engine, uri).await;
        assert_json_error(uri, &a, StatusCode::NOT_FOUND, "not found");
    }
    let a = request(&engine, "DELETE", "/v1/runs/not-a-ulid", &[], Body::empty()).await;
    assert_json_error("DELETE /v1/runs/not-a-ulid", &a, StatusCode::NOT_FOUND, "not found");
}

// ---- garbage SDK replies ------------------------------------------------

/// How the fake app answers every call of one function.
#[derive(Clone, Copy, Debug)]
enum Garbage {
    /// 206 with a body that is not JSON.
    NonJson206,
    /// 200 with a JSON body but no X-Inngest-SDK header (not an SDK).
    NoSdkHeader,
    /// 500 with an HTML page and no SDK header (a proxy's error page).
    Html500,
    /// 500 with an HTML page, from the SDK.
    Html500FromSdk,
    /// 206 with an op that lacks its `id`.
    MalformedOp,
    /// 206 with an op array that is not an array of objects.
    OpsNotObjects,
    /// 206 with an empty op array: no way forward.
    EmptyOps,
    /// 206 with only an opcode Ingot does not know.
    UnknownOpOnly,
    /// 206 that reports the same finished step on every call.
    RepeatsMemoizedStep,
    /// 404 with an HTML body and the SDK header.
    NotFoundHtml,
    /// 206 with a body over the engine's reply cap (read no further; no retry).
    HugeReply,
}

impl Garbage {
    const ALL: [Garbage; 11] = [
        Garbage::NonJson206,
        Garbage::NoSdkHeader,
        Garbage::Html500,
        Garbage::Html500FromSdk,
        Garbage::MalformedOp,
        Garbage::OpsNotObjects,
        Garbage::EmptyOps,
        Garbage::UnknownOpOnly,
        Garbage::RepeatsMemoizedStep,
        Garbage::NotFoundHtml,
        Garbage::HugeReply,
    ];

    fn name(self) -> String {
        format!("{self:?}").to_lowercase()
    }

    /// Words the failed run's error message must contain.
    fn expected_error(self) -> &'static [&'static str] {
        match self {
            Garbage::NonJson206 => &["206", "not JSON"],
            Garbage::NoSdkHeader => &["X-Inngest-SDK"],
            Garbage::Html500 => &["500", "X-Inngest-SDK"],
            Garbage::Html500FromSdk => &["500", "Internal Server Error"],
            Garbage::MalformedOp => &["op #0", "id"],
            Garbage::OpsNotObjects => &["op #0"],
            Garbage::EmptyOps => &["op"],
            Garbage::UnknownOpOnly => &["op"],
            Garbage::RepeatsMemoizedStep => &["op"],
            Garbage::NotFoundHtml => &["404"],
            Garbage::HugeReply => &["over the limit"],
        }
    }

    fn reply(self) -> Response {
        const SDK: (&str, &str) = ("x-inngest-sdk", "js:v3.0.0");
        const HTML: &str = "<html><head><title>500</title></head><body><h1>Internal Server Error</h1></body></html>";
        let ops = |body: &str| (StatusCode::PARTIAL_CONTENT, [SDK, ("content-type", "application/json")], body.to_string()).into_response();
        match self {
            Garbage::NonJson206 => ops("<<definitely not json>>"),
            Garbage::NoSdkHeader => (StatusCode::OK, [("content-type", "application/json")], r#"{"ok":true}"#).into_response(),
            Garbage::Html500 => (StatusCode::INTERNAL_SERVER_ERROR, [("content-type", "text/html")], HTML).into_response(),
            Garbage::Html500FromSdk => (StatusCode::INTERNAL_SERVER_ERROR, [SDK, ("content-type", "text/html")], HTML).into_response(),
            Garbage::MalformedOp => ops(r#"[{"op":"StepRun","data":1}]"#),
            Garbage::OpsNotObjects => ops("[1, 2, 3]"),
            Garbage::EmptyOps => ops("[]"),
            Garbage::UnknownOpOnly => ops(r#"[{"id":"x","op":"SomethingFromTheFuture"}]"#),
            Garbage::RepeatsMemoizedStep => ops(r#"[{"id":"s1","op":"StepRun","data":1}]"#),
            Garbage::HugeReply => {
                let data = "x".repeat(ingot_engine::driver::MAX_REPLY_BYTES);
                ops(&format!(r#"[{{"id":"big","op":"StepRun","data":"{data}"}}]"#))
            }
            Garbage::NotFoundHtml => {
                (StatusCode::NOT_FOUND, [SDK, ("content-type", "text/html")], "<html><body>Cannot POST /api/inngest</body></html>")
                    .into_response()
            }
        }
    }
}

/// Call counts per function slug.
type Calls = Arc<Mutex<HashMap<String, usize>>>;

async fn garbage_app(
    State((calls, by_slug)): State<(Calls, Arc<HashMap<String, Garbage>>)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let slug = q.get("fnId").cloned().unwrap_or_default();
    *calls.lock().unwrap().entry(slug.clone()).or_default() += 1;
    match by_slug.get(&slug) {
        Some(g) => g.reply(),
        None => (StatusCode::BAD_REQUEST, "unknown fnId").into_response(),
    }
}

/// Panics on tokio worker threads since the hook was installed: engine tasks
/// (workers, HTTP handlers) run there. The other tests run on current-thread
/// runtimes on their own test threads, so their failures do not count here.
fn worker_panics() -> &'static AtomicUsize {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some("tokio-runtime-worker") {
                COUNT.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
    &COUNT
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_sdk_replies_fail_the_run_with_a_readable_error() {
    let panics = worker_panics();
    let panics_before = panics.load(Ordering::SeqCst);

    // The fake app.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_url = format!("http://{}/api/inngest", listener.local_addr().unwrap());
    let app_id = "garbage";
    let by_slug: HashMap<String, Garbage> = Garbage::ALL.iter().map(|g| (format!("{app_id}-{}", g.name()), *g)).collect();
    let calls: Calls = Arc::default();
    let app = axum::Router::new().route("/api/inngest", post(garbage_app)).with_state((calls.clone(), Arc::new(by_slug)));
    let app_task = tokio::spawn(async move { axum::serve(listener, app).await });

    // The engine, also on a real port (nothing needs it but it must not hurt).
    let engine = new_engine().await;
    let engine_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let router = engine.router();
    let engine_task = tokio::spawn(async move { axum::serve(engine_listener, router).await });
    engine.start();

    let functions: Vec<Value> = Garbage::ALL
        .iter()
        .map(|g| function_config(&format!("{app_id}-{}", g.name()), &app_url, &format!("garbage/{}", g.name())))
        .collect();
    register_ok(&engine, &json!({"url": app_url, "appName": app_id, "sdk": "js:v3.0.0", "framework": "test", "functions": functions}))
        .await;

    let mut pending = Vec::new();
    for g in Garbage::ALL {
        let a = post_json(&engine, "/e/test", json!({"name": format!("garbage/{}", g.name())}).to_string()).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        pending.push((g, a.json["ids"][0].as_str().unwrap().to_string()));
    }

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut failures = Vec::new();
    for (g, event_id) in pending {
        let slug = format!("{app_id}-{}", g.name());
        match wait_finished(&engine, &event_id, deadline).await {
            Err(e) => {
                let n = calls.lock().unwrap().get(&slug).copied().unwrap_or(0);
                failures.push(format!("{g:?}: {e} (the app was called {n} times)"));
            }
            Ok(run) => {
                let output = &run["output"];
                let message = output["message"].as_str().unwrap_or_default();
                if run["status"] != json!("Failed") {
                    failures.push(format!("{g:?}: run did not fail: {run}"));
                } else if message.is_empty() || output["name"].as_str().is_none() {
                    failures.push(format!("{g:?}: output is not an error with name and message: {output}"));
                } else if let Some(missing) = g.expected_error().iter().find(|w| !message.to_lowercase().contains(&w.to_lowercase())) {
                    failures.push(format!("{g:?}: error {message:?} does not mention {missing:?}"));
                } else if message.len() > 4_000 {
                    failures.push(format!("{g:?}: error message is {} bytes", message.len()));
                }
                let n = calls.lock().unwrap().get(&slug).copied().unwrap_or(0);
                // `retries.attempts: 1` means two attempts of the failing call;
                // RepeatsMemoizedStep first succeeds once (step s1), then fails twice.
                let want = match g {
                    Garbage::RepeatsMemoizedStep => 3,
                    Garbage::HugeReply => 1,
                    _ => 2,
                };
                if run["status"] == json!("Failed") && n != want {
                    failures.push(format!("{g:?}: the app was called {n} times, wanted {want}"));
                }
            }
        }
    }
    let panicked = panics.load(Ordering::SeqCst) - panics_before;
    if panicked > 0 {
        failures.push(format!("{panicked} panics in engine tasks (see stderr)"));
    }
    if app_task.is_finished() || engine_task.is_finished() {
        failures.push("a server stopped".into());
    }
    engine.shutdown();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Polls the event's only run until it ends. Fails early if the run is
/// orphaned: Running with no queue item, twice in a row.
async fn wait_finished(engine: &Arc<Engine>, event_id: &str, deadline: Instant) -> Result<Value, String> {
    let mut jobless = 0;
    loop {
        let a = get(engine, &format!("/v1/events/{event_id}/runs")).await;
        let runs = a.json["data"].as_array().cloned().unwrap_or_default();
        if runs.len() > 1 {
            return Err(format!("{} runs for one event: {}", runs.len(), a.text));
        }
        if let Some(run) = runs.first() {
            if run["status"] != json!("Running") {
                return Ok(run.clone());
            }
            let run_id = run["run_id"].as_str().unwrap_or_default();
            let jobs = get(engine, &format!("/v1/runs/{run_id}/jobs")).await;
            if jobs.json["data"].as_array().is_some_and(Vec::is_empty) {
                jobless += 1;
                if jobless >= 2 {
                    let steps = get(engine, &format!("/v1/runs/{run_id}/steps")).await;
                    return Err(format!("orphaned: run {run_id} is Running with no queue item; history {}", steps.json["data"]["history"]));
                }
            } else {
                jobless = 0;
            }
        }
        if Instant::now() > deadline {
            return Err(format!("not finished in time: {}", a.text));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
