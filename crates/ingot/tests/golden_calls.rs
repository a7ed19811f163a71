//! Golden tests of calls: every call request the capture sent to the
//! official JS SDK (v4, and v3 for request version 1) is replayed against
//! the Rust twin of the fixture app, and our reply must have the same shape
//! as the official SDK's: status, retry headers, request version, and the
//! ops (ids, opcodes, names, user ids, opts, data, error name and message).

mod common;

use common::{dev_client, fixture_functions, list, load, replay, FakeEngine, Reply};
use ingot::Handler;
use serde_json::{json, Value};

/// Captured calls we answer differently on purpose, with the reason.
const DIFFERENT_ON_PURPOSE: &[(&str, &str)] = &[
    ("probe-ctx-fn_id-zero-uuid", "JS v4 switches to checkpointing on ctx.fn_id; we do not checkpoint"),
    ("probe-event-name-unmatched", "JS v4 validates event names against triggers; we validate typed payloads instead"),
    ("probe-event-no-name", "same: no event-name validation"),
    ("probe-no-ctx-run_id", "we read call requests leniently (a missing run id is empty)"),
    ("probe-steps-null", "we read a null `steps` as no steps"),
    ("probe-memo-data-null", "a null result that does not fit the step's type fails the function, not the next step"),
    ("probe-memo-input", "`{input}` memos are JS-only: the step runs without the input override"),
];

fn skip_reason(name: &str) -> Option<&'static str> {
    DIFFERENT_ON_PURPOSE.iter().find(|(prefix, _)| name.contains(prefix)).map(|(_, why)| *why)
}

/// The fields of an op that must match.
fn op_shape(op: &Value) -> Value {
    let mut shape = json!({
        "id": op["id"], "op": op["op"], "name": op["name"], "displayName": op["displayName"],
        "userland": op["userland"], "opts": op["opts"],
    });
    if op["op"] == "StepRun" {
        shape["data"] = op["data"].clone();
    }
    if let Some(e) = op.get("error").filter(|e| !e.is_null()) {
        shape["error"] = json!({"name": e["name"], "message": e["message"]});
    }
    shape
}

/// Checks our reply against the official SDK's. `v4` compares error names
/// and request versions too (JS v3 names NonRetriableError `Error` and
/// picks version 1 where we pick 2).
fn assert_same_shape(name: &str, ours: &Reply, theirs: &Value, v4: bool) {
    let status = theirs["status"].as_u64().unwrap() as u16;
    if v4 || status < 400 {
        assert_eq!(ours.status, status, "{name}: status; our body {}", ours.body);
    } else {
        // JS v3 answers 500 on the last attempt too (v4 and we: 400).
        assert!(ours.status >= 400, "{name}: status {}", ours.status);
    }
    let their_header = |h: &str| common::header_of(&theirs["headers"], h);
    if v4 {
        assert_eq!(
            ours.header("x-inngest-req-version").map(str::to_string),
            their_header("x-inngest-req-version"),
            "{name}: request version"
        );
    }
    assert!(ours.header("x-inngest-sdk").is_some(), "{name}: X-Inngest-SDK");
    assert_eq!(ours.header("x-inngest-sdk-handled"), Some("true"), "{name}");
    let no_retry = their_header("x-inngest-no-retry").filter(|_| v4 || status == 206 && ours.body[0]["op"] != "StepFailed");
    if let Some(no_retry) = no_retry {
        assert_eq!(ours.header("x-inngest-no-retry"), Some(no_retry.as_str()), "{name}: no-retry");
    }
    match their_header("retry-after") {
        Some(v) if v.len() <= 7 => assert_eq!(ours.header("retry-after"), Some(v.as_str()), "{name}"),
        // JS sends a date for a retry at a given time; we send seconds.
        Some(_) => assert!(ours.header("retry-after").is_some(), "{name}: retry-after"),
        None => assert!(ours.header("retry-after").is_none(), "{name}: retry-after"),
    }
    let body = &theirs["body"];
    match status {
        206 => {
            let shapes = |v: &Value| -> Vec<Value> {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(op_shape)
                    .map(|mut s| {
                        if !v4 {
                            s["error"]["name"] = Value::Null;
                        }
                        s
                    })
                    .collect()
            };
            assert_eq!(shapes(&ours.body), shapes(body), "{name}: ops");
        }
        200 => assert_eq!(&ours.body, body, "{name}: output"),
        _ if body.get("requestedStep").is_some() => {
            for key in ["error", "requestedStep", "foundSteps", "totalFoundSteps"] {
                assert!(ours.body.get(key).is_some(), "{name}: {key} in {}", ours.body);
            }
            assert_eq!(ours.body["foundSteps"], body["foundSteps"], "{name}");
        }
        _ => {
            if v4 {
                assert_eq!(ours.body["name"], body["name"], "{name}: error name");
            }
            // JS v3's internal errors are worded differently.
            if v4 || body["type"] != "internal" {
                assert_eq!(ours.body["message"], body["message"], "{name}: error message");
            }
        }
    }
}

/// A fake engine answering the SDK's own requests as the capture did.
async fn fake_engine(folder: &'static str) -> FakeEngine {
    FakeEngine::start(move |seen| {
        if seen.path.starts_with("/e/") {
            let f = load(&format!("{folder}/sender.sdk-send-event-01.json"));
            return (200, f["response"]["body"].clone());
        }
        (404, json!({"error": "not faked", "status": 404}))
    })
    .await
}

async fn replay_walks(folder: &'static str, app_id: &str, v4: bool) -> usize {
    let engine = fake_engine(folder).await;
    let client = dev_client(app_id, &engine.base);
    let handler = Handler::new(&client, fixture_functions());
    let mut checked = 0;
    for name in list(folder, "") {
        let fixture = load(&name);
        let is_call = fixture["direction"] == "server->sdk"
            && fixture["request"]["method"] == "POST"
            && fixture["request"]["path"].as_str().unwrap().contains("fnId=");
        if !is_call || name.contains("use-api") {
            continue;
        }
        if let Some(why) = skip_reason(&name) {
            eprintln!("{name}: skipped ({why})");
            continue;
        }
        let ours = replay(&handler, &fixture).await;
        assert_same_shape(&name, &ours, &fixture["response"], v4);
        checked += 1;
    }
    checked
}

#[tokio::test]
async fn js_v4_walks_and_probes_get_the_same_replies() {
    let checked = replay_walks("js-v4", "js-v4", true).await;
    assert!(checked >= 50, "only {checked} calls replayed");
}

/// JS v3 walks run request version 1 (the engine calls discovery after
/// each parallel step, and unfinished siblings are planned again).
#[tokio::test]
async fn js_v3_walks_get_the_same_replies() {
    let checked = replay_walks("js-v3", "js-v3", false).await;
    assert!(checked >= 40, "only {checked} calls replayed");
}

#[tokio::test]
async fn step_events_are_sent_like_the_js_sdk() {
    let engine = fake_engine("js-v4").await;
    let client = dev_client("js-v4", &engine.base);
    let handler = Handler::new(&client, fixture_functions());
    replay(&handler, &load("js-v4/sender.01-discovery.json")).await;
    let sent = engine.requests();
    let theirs = load("js-v4/sender.sdk-send-event-01.json");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, theirs["request"]["path"].as_str().unwrap().replace("test-event-key", "NO_EVENT_KEY_SET"));
    let strip_ts = |v: &Value| {
        let mut v = v.clone();
        v[0].as_object_mut().unwrap().remove("ts");
        v
    };
    assert_eq!(strip_ts(&sent[0].body), strip_ts(&theirs["request"]["body"]));
    assert!(sent[0].body[0]["ts"].is_i64());
    let seed = sent[0].headers["x-inngest-event-id-seed"].to_str().unwrap();
    let (ms, entropy) = seed.split_once(',').unwrap();
    assert!(ms.parse::<i64>().is_ok() && entropy.len() == 16, "seed {seed}");
}

/// `use_api`: the SDK loads events and steps from `/v0/runs/{id}/...`.
#[tokio::test]
async fn use_api_walk_loads_state_from_the_engine() {
    let api: Vec<Value> = list("js-v4", "use-api.sdk-api").iter().map(|n| load(n)).collect();
    let answers = std::sync::Mutex::new(api.clone().into_iter());
    let engine = FakeEngine::start(move |seen| {
        let f = answers.lock().unwrap().next().expect("more API calls than captured");
        assert_eq!(seen.path, f["request"]["path"].as_str().unwrap());
        (200, f["response"]["body"].clone())
    })
    .await;
    let client = dev_client("js-v4", &engine.base);
    let handler = Handler::new(&client, fixture_functions());
    for name in list("js-v4", "use-api.0") {
        let fixture = load(&name);
        let ours = replay(&handler, &fixture).await;
        assert_same_shape(&name, &ours, &fixture["response"], true);
    }
    assert_eq!(engine.requests().len(), api.len());
}

#[tokio::test]
async fn unknown_functions_and_trust_probes() {
    let client = dev_client("js-v4", "http://127.0.0.1:9");
    let handler = Handler::new(&client, fixture_functions());
    let unknown = load("js-v4/unknown-function.json");
    let ours = replay(&handler, &unknown).await;
    assert_eq!(ours.status, 500);
    assert!(ours.header("x-inngest-no-retry").is_none());
    assert!(ours.body["message"].as_str().unwrap().contains("js-v4-nope"));
    let probe = replay(&handler, &load("js-v4/trust-probe.json")).await;
    assert_eq!((probe.status, probe.raw.len()), (200, 0));
}

/// Request version 1 is echoed; 2 (and "SDK decides", -1) answer 2.
#[tokio::test]
async fn request_versions_are_echoed() {
    let client = dev_client("js-v4", "http://127.0.0.1:9");
    let handler = Handler::new(&client, fixture_functions());
    let mut fixture = load("js-v4/two-steps.01-discovery.json");
    for (sent, want) in [(-1, "2"), (1, "1"), (2, "2")] {
        let mut body: Value = serde_json::from_str(fixture["request"]["body_raw"].as_str().unwrap()).unwrap();
        body["version"] = json!(sent);
        fixture["request"]["body_raw"] = json!(body.to_string());
        let ours = replay(&handler, &fixture).await;
        assert_eq!(ours.header("x-inngest-req-version"), Some(want), "version {sent}");
    }
}
