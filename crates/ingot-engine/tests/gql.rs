//! `POST /v0/gql` against the shapes the official SDK test helpers parse
//! (inngest-js `src/test/helpers.ts` and `@inngest/test-harness`, inngest-py
//! `test_core/helper.py`): the queries below are theirs, sent as they send
//! them, and the assertions read the answers the way they do.
//!
//! The engine runs on a [`MemStore`] with its loops started; requests go
//! through `engine.router()` with `tower::ServiceExt::oneshot`. A scripted
//! "SDK app" (a real axum server on 127.0.0.1:0) answers the engine's calls.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::Query;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use ingot_core::backoff::RetryPolicy;
use ingot_engine::{Clock, Engine, EngineConfig};
use ingot_store::MemStore;
use serde_json::{json, Value};
use tower::ServiceExt as _;

const APP: &str = "gql-app";

/// The scripted app. `flow`: step `a` returns `{n: 1}`; step `b` throws
/// (with a cause) on every attempt; the function then returns `{sum: 1}`.
/// `boom`: the function throws a non-retriable error.
async fn sdk_app(Query(q): Query<HashMap<String, String>>, Json(body): Json<Value>) -> Response {
    let steps = &body["steps"];
    let fn_id = q.get("fnId").map(String::as_str).unwrap_or("");
    let ops = |ops: Value| (StatusCode::PARTIAL_CONTENT, [("x-inngest-sdk", "js:v3.0.0")], Json(ops)).into_response();
    match fn_id.strip_prefix(&format!("{APP}-")).unwrap_or("") {
        "flow" if steps.get("ha").is_none() => {
            ops(json!([{"op": "StepRun", "id": "ha", "name": "a", "displayName": "a", "data": {"n": 1}}]))
        }
        "flow" if steps.get("hb").is_none() => ops(json!([{
            "op": "StepError", "id": "hb", "name": "b", "displayName": "b",
            "error": {"name": "Error", "message": "b broke", "stack": "Error: b broke\n    at b (app.js:1:1)", "cause": {"name": "Error", "message": "root cause"}},
        }])),
        "flow" => (StatusCode::OK, [("x-inngest-sdk", "js:v3.0.0")], Json(json!({"sum": 1}))).into_response(),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("x-inngest-sdk", "js:v3.0.0"), ("x-inngest-no-retry", "true")],
            Json(json!({"name": "Error", "message": "boom", "stack": "Error: boom"})),
        )
            .into_response(),
    }
}

fn function(slug: &str, url: &str, event: &str) -> Value {
    json!({
        "id": slug, "name": slug, "triggers": [{"event": event}],
        "steps": {"step": {"id": "step", "name": "step", "runtime": {"type": "http", "url": format!("{url}?fnId={slug}&stepId=step")}, "retries": {"attempts": 1}}},
    })
}

/// An engine (loops started) with the scripted app synced.
async fn setup() -> Arc<Engine> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/api", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().route("/api", post(sdk_app))).await.expect("serve") });
    let mut config = EngineConfig::dev();
    config.discovery = false;
    config.poll = false;
    config.retry = RetryPolicy::Fixed(Duration::from_millis(20));
    let engine = Engine::new(config, Arc::new(MemStore::new()), Clock::system()).await.expect("engine");
    engine.start();
    let body = json!({
        "url": url, "v": "0.1", "deployType": "ping", "sdk": "js:v3.0.0", "framework": "test", "appName": APP,
        "functions": [function(&format!("{APP}-flow"), &url, "gql/flow"), function(&format!("{APP}-boom"), &url, "gql/boom")],
    });
    let (status, answer) = call(&engine, "POST", "/fn/register", body).await;
    assert_eq!(status, StatusCode::OK, "register: {answer}");
    engine
}

async fn call(engine: &Arc<Engine>, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::builder().method(method).uri(uri).header("content-type", "application/json").body(Body::from(body.to_string()));
    let resp = engine.router().oneshot(req.expect("request")).await.expect("router is infallible");
    let status = resp.status();
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Sends a GraphQL request as the helpers do; returns `data` (errors fail).
async fn gql(engine: &Arc<Engine>, query: &str, variables: Value) -> Value {
    let (status, answer) = call(engine, "POST", "/v0/gql", json!({"query": query, "variables": variables})).await;
    assert_eq!(status, StatusCode::OK, "POST /v0/gql: {answer}");
    assert!(answer.get("errors").is_none_or(Value::is_null), "GraphQL errors: {answer}");
    answer["data"].clone()
}

async fn send(engine: &Arc<Engine>, name: &str) -> String {
    let (status, answer) = call(engine, "POST", "/e/key", json!({"name": name, "data": {"foo": "bar"}, "ts": 1_700_000_000_000i64})).await;
    assert_eq!(status, StatusCode::OK, "send: {answer}");
    answer["ids"][0].as_str().expect("id").to_string()
}

/// `eventRunWithName` of inngest-js's helpers: the run id of `name` in the stream.
async fn event_run_with_name(engine: &Arc<Engine>, event_id: &str, name: &str) -> String {
    let query = "query GetEventStream {
        stream(query: {limit: 999, includeInternalEvents: false}) {
          id
          trigger
          runs {
            id
            function {
              name
            }
          }
        }
      }";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let data = gql(engine, query, json!({})).await;
        let item = data["stream"].as_array().expect("stream array").iter().find(|i| i["id"] == json!(event_id)).cloned();
        if let Some(run) =
            item.as_ref().and_then(|i| i["runs"].as_array()).and_then(|r| r.iter().find(|r| r["function"]["name"] == json!(name)))
        {
            return run["id"].as_str().expect("run id").to_string();
        }
        assert!(Instant::now() < deadline, "no run of {name} for event {event_id} in {data}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `fetchRunTrace` of the test harness: `run.trace` status and outputID.
async fn wait_run_ended(engine: &Arc<Engine>, run_id: &str) -> Value {
    let query = "query ($runId: String!) {
        run(runID: $runId) {
          status
          trace(preview: true) {
            status
            outputID
          }
        }
      }";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let data = gql(engine, query, json!({"runId": run_id})).await;
        let status = data["run"]["trace"]["status"].as_str().unwrap_or("").to_string();
        if status == "COMPLETED" || status == "FAILED" {
            return data["run"].clone();
        }
        assert!(Instant::now() < deadline, "run {run_id} did not end: {data}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `runHasTimeline`: the first span, depth first, whose fields all match.
fn find_span<'a>(span: &'a Value, want: &Value) -> Option<&'a Value> {
    if want.as_object().expect("object").iter().all(|(k, v)| &span[k] == v) {
        return Some(span);
    }
    span["childrenSpans"].as_array()?.iter().find_map(|c| find_span(c, want))
}

const TIMELINE: &str = "query GetRunTimeline($runId: String!) {
    run(runID: $runId) {
      trace(preview: true) {
        name stepType attempts outputID status
        childrenSpans {
          name stepType attempts outputID status
          childrenSpans { name stepType attempts outputID status }
        }
      }
    }
  }";

const OUTPUT: &str = "query GetRunTimelineOutput($outputId: String!) {
    runTraceSpanOutputByID(outputID: $outputId) {
      data
      error { name message stack cause }
    }
  }";

#[tokio::test]
async fn the_js_helpers_find_runs_spans_and_outputs() {
    let engine = setup().await;
    let event_id = send(&engine, "gql/flow").await;
    let run_id = event_run_with_name(&engine, &event_id, &format!("{APP}-flow")).await;
    let run = wait_run_ended(&engine, &run_id).await;
    assert_eq!(run["status"], json!("COMPLETED"), "{run}");
    assert_eq!(run["trace"]["status"], json!("COMPLETED"), "{run}");

    // The run's output through the root span's outputID.
    let out = gql(&engine, OUTPUT, json!({"outputId": run["trace"]["outputID"]})).await;
    let payload = &out["runTraceSpanOutputByID"];
    assert!(payload["error"].is_null(), "{out}");
    assert_eq!(serde_json::from_str::<Value>(payload["data"].as_str().expect("data is JSON text")).unwrap(), json!({"sum": 1}));

    let trace = gql(&engine, TIMELINE, json!({"runId": run_id})).await["run"]["trace"].clone();
    // Step a: completed once, data {n: 1}.
    let a =
        find_span(&trace, &json!({"stepType": "RUN", "status": "COMPLETED", "name": "a"})).unwrap_or_else(|| panic!("no span a: {trace}"));
    assert_eq!(a["attempts"], json!(0));
    let out = gql(&engine, OUTPUT, json!({"outputId": a["outputID"]})).await;
    assert_eq!(serde_json::from_str::<Value>(out["runTraceSpanOutputByID"]["data"].as_str().unwrap()).unwrap(), json!({"n": 1}));

    // Step b: failed after its two attempts ("attempts" is the last one's number).
    let b = find_span(&trace, &json!({"attempts": 1, "stepType": "RUN", "status": "FAILED", "name": "b"}))
        .unwrap_or_else(|| panic!("no failed span b with attempts 1: {trace}"));
    let out = gql(&engine, OUTPUT, json!({"outputId": b["outputID"]})).await;
    let error = &out["runTraceSpanOutputByID"]["error"];
    assert_eq!(error["name"], json!("Error"), "{out}");
    assert_eq!(error["message"], json!("b broke"));
    assert!(error["stack"].is_string());
    assert_eq!(error["cause"], json!({"name": "Error", "message": "root cause"}));
    assert!(out["runTraceSpanOutputByID"]["data"].is_null());

    // The function's own code ran to the end.
    assert!(find_span(&trace, &json!({"stepType": "FINALIZATION", "status": "COMPLETED"})).is_some(), "{trace}");
    // A step that never ran has no span.
    assert!(find_span(&trace, &json!({"stepType": "RUN", "name": "never"})).is_none());
}

#[tokio::test]
async fn a_failed_run_has_a_failed_finalization_and_its_error() {
    let engine = setup().await;
    let event_id = send(&engine, "gql/boom").await;
    let run_id = event_run_with_name(&engine, &event_id, &format!("{APP}-boom")).await;
    let run = wait_run_ended(&engine, &run_id).await;
    assert_eq!(run["status"], json!("FAILED"), "{run}");
    let out = gql(
        &engine,
        "query ($traceID: String!) { runTraceSpanOutputByID(outputID: $traceID) { data error { message name } } }",
        json!({"traceID": run["trace"]["outputID"]}),
    )
    .await;
    assert_eq!(out["runTraceSpanOutputByID"]["error"], json!({"message": "boom", "name": "Error"}), "{out}");
    let trace = gql(&engine, TIMELINE, json!({"runId": run_id})).await["run"]["trace"].clone();
    assert!(find_span(&trace, &json!({"stepType": "FINALIZATION", "status": "FAILED"})).is_some(), "{trace}");
}

#[tokio::test]
async fn events_queries_return_what_the_helpers_read() {
    let engine = setup().await;
    let event_id = send(&engine, "gql/other").await;

    // receivedEventWithName: `events` with an empty EventsQuery; `payload` is the data.
    let q = "query Events($query: EventsQuery!) {\n  events(query: $query) {\n    id\n    name\n    payload\n  }\n}";
    let data = gql(&engine, q, json!({"query": {}})).await;
    let ev = data["events"].as_array().unwrap().iter().find(|e| e["name"] == json!("gql/other")).cloned().expect("event listed");
    assert_eq!(ev["id"], json!(event_id));
    assert_eq!(serde_json::from_str::<Value>(ev["payload"].as_str().unwrap()).unwrap(), json!({"foo": "bar"}));

    // fetchEvent of the integration utils: eventV2 by ULID, `raw` is the whole event.
    let q = "query Event($id: ULID!) { eventV2(id: $id) { idempotencyKey name raw } }";
    let data = gql(&engine, q, json!({"id": event_id})).await;
    assert_eq!(data["eventV2"]["name"], json!("gql/other"));
    let raw: Value = serde_json::from_str(data["eventV2"]["raw"].as_str().unwrap()).unwrap();
    assert_eq!(raw["data"], json!({"foo": "bar"}));
    assert_eq!(raw["name"], json!("gql/other"));
}

#[tokio::test]
async fn the_python_helpers_read_runs_by_event_status_output_and_trigger() {
    let engine = setup().await;
    let event_id = send(&engine, "gql/flow").await;

    // get_run_ids_from_event_id.
    let q = "query GetRunFromEventID($event_id: ID!) { event(query: {eventId: $event_id}) { functionRuns { id } } }";
    let deadline = Instant::now() + Duration::from_secs(10);
    let run_id = loop {
        let data = gql(&engine, q, json!({"event_id": event_id})).await;
        if let Some(id) = data["event"]["functionRuns"][0]["id"].as_str() {
            break id.to_string();
        }
        assert!(Instant::now() < deadline, "no run for the event: {data}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    wait_run_ended(&engine, &run_id).await;

    // wait_for_run_status: output is JSON text, payloads are whole events as JSON text.
    let q = "query GetRun($run_id: String!) { run(runID: $run_id) { output status } runTrigger(runID: $run_id) { payloads } }";
    let data = gql(&engine, q, json!({"run_id": run_id})).await;
    assert_eq!(data["run"]["status"], json!("COMPLETED"));
    assert_eq!(serde_json::from_str::<Value>(data["run"]["output"].as_str().unwrap()).unwrap(), json!({"sum": 1}));
    let event: Value = serde_json::from_str(data["runTrigger"]["payloads"][0].as_str().unwrap()).unwrap();
    assert_eq!(event["name"], json!("gql/flow"));

    // _get_steps: step spans are the root's children, with name and outputID.
    let q = "query GetHistory($run_id: String!) { run(runID: $run_id) { trace { childrenSpans { name outputID } } } }";
    let data = gql(&engine, q, json!({"run_id": run_id})).await;
    let names: Vec<&str> = data["run"]["trace"]["childrenSpans"].as_array().unwrap().iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names[..2], ["a", "b"], "{data}");
}

#[tokio::test]
async fn unknown_ids_and_bad_bodies_answer_cleanly() {
    let engine = setup().await;
    let data = gql(&engine, "query { run(runID: \"nope\") { status } }", json!({})).await;
    assert!(data["run"].is_null());
    let (status, answer) =
        call(&engine, "POST", "/v0/gql", json!({"query": "query { runTraceSpanOutputByID(outputID: \"x.y\") { data } }"})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(answer["errors"][0]["message"].as_str().is_some_and(|m| m.contains("no output")), "{answer}");
    let (status, answer) = call(&engine, "POST", "/v0/gql", json!("not a request")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
}

/// `checkIntrospection` of inngest-js's helpers: `GET /dev` lists functions
/// with their triggers and `steps` as an array of `{id, name, uri}`.
#[tokio::test]
async fn dev_lists_functions_as_the_introspection_check_parses() {
    let engine = setup().await;
    let (status, dev) = call(&engine, "GET", "/dev", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let flow = dev["functions"].as_array().unwrap().iter().find(|f| f["name"] == json!(format!("{APP}-flow"))).cloned().expect("listed");
    assert_eq!(flow["triggers"], json!([{"event": "gql/flow"}]));
    let step = &flow["steps"][0];
    assert_eq!((step["id"].as_str(), step["name"].as_str()), (Some("step"), Some("step")));
    assert!(step["uri"].as_str().is_some_and(|u| u.starts_with("http") && u.ends_with(&format!("?fnId={APP}-flow&stepId=step"))), "{flow}");
}
