//! Golden tests of everything but calls: introspection, sync (the register
//! body and the PUT reply), signatures in cloud mode (both ways, fallback
//! key, 5-minute window, JCS bodies) and sending events, against what the
//! official SDKs did in the captured exchanges.

mod common;

use std::sync::{Arc, Mutex};

use common::{captured_at, cloud_client, dev_client, fixture_functions, load, replay, signed_at, FakeEngine};
use ingot::{Handler, JsonEvent, SendError};
use ingot_protocol::signature;
use serde_json::{json, Value};

fn register_reply(fixture: &str) -> (u16, Value) {
    let f = load(fixture);
    (f["response"]["status"].as_u64().unwrap() as u16, f["response"]["body"].clone())
}

/// A fake engine whose `/fn/register` answers with `reply`.
async fn engine_answering(reply: (u16, Value)) -> FakeEngine {
    FakeEngine::start(move |_| reply.clone()).await
}

#[tokio::test]
async fn register_body_matches_the_js_sdk() {
    let engine = engine_answering(register_reply("js-v4/sync-register.json")).await;
    let client = dev_client("js-v4", &engine.base);
    let handler = Handler::new(&client, fixture_functions());
    let put = load("js-v4/sync-put.json");
    let ours = replay(&handler, &put).await;
    assert_eq!(ours.status, 200);
    assert_eq!(ours.body, put["response"]["body"]);
    assert_eq!(ours.header("x-inngest-sync-kind"), Some("out_of_band"));

    let seen = engine.requests();
    assert_eq!(seen.len(), 1);
    let theirs = load("js-v4/sync-register.json");
    assert_eq!((seen[0].method.as_str(), seen[0].path.as_str()), ("POST", "/fn/register"));
    let (ours, want) = (&seen[0].body, &theirs["request"]["body"]);
    assert_eq!(ours["functions"], want["functions"], "function configs");
    for key in ["url", "deployType", "appName", "v"] {
        assert_eq!(ours[key], want[key], "{key}");
    }
    assert_eq!(ours["sdk"], json!(format!("rs:v{}", env!("CARGO_PKG_VERSION"))));
    assert_eq!(ours["capabilities"]["trust_probe"], "v1");
    let h = &seen[0].headers;
    assert_eq!(h["x-inngest-expected-server-kind"], "dev");
    assert_eq!(h["x-inngest-sync-kind"], "out_of_band");
    assert!(h.get("authorization").is_none(), "no key, no Authorization (as Python)");
    assert!(h["x-inngest-sdk"].to_str().unwrap().starts_with("inngest-rs:v"));
}

#[tokio::test]
async fn put_replies_follow_the_register_reply() {
    let cases = [
        ("js-v4/sync-error-put.json", register_reply("js-v4/sync-error-register.json")),
        ("js-v4/sync-body-status-put.json", (200, json!({"status": 422, "error": "status in body only"}))),
        ("js-v4/sync-unmodified-put.json", (200, json!({"ok": true, "modified": false, "app_id": "a", "sync_id": "s"}))),
    ];
    for (put, reply) in cases {
        let engine = engine_answering(reply).await;
        let handler = Handler::new(&dev_client("js-v4", &engine.base), fixture_functions());
        let fixture = load(put);
        let ours = replay(&handler, &fixture).await;
        assert_eq!(ours.status as u64, fixture["response"]["status"], "{put}");
        assert_eq!(ours.body, fixture["response"]["body"], "{put}");
    }
}

#[tokio::test]
async fn deploy_ids_go_to_the_register_call() {
    let engine = engine_answering(register_reply("js-v4/sync-deployid-register.json")).await;
    let handler = Handler::new(&dev_client("js-v4", &engine.base), fixture_functions());
    replay(&handler, &load("js-v4/sync-deployid-put.json")).await;
    let seen = engine.requests();
    let theirs = load("js-v4/sync-deployid-register.json");
    assert_eq!(seen[0].path, theirs["request"]["path"].as_str().unwrap());
    assert_eq!(seen[0].body["deployId"], "deploy-123");
    // As Python, the reported URL does not keep the deploy id.
    assert_eq!(seen[0].body["url"], "http://127.0.0.1:13041/api/inngest");
}

#[tokio::test]
async fn dev_introspection_has_the_unauthenticated_shape() {
    let handler = Handler::new(&dev_client("js-v4", "http://127.0.0.1:9"), fixture_functions());
    let fixture = load("js-v4/introspection-unsigned.json");
    let ours = replay(&handler, &fixture).await;
    assert_eq!(ours.status, 200);
    let theirs = &fixture["response"]["body"];
    for key in ["has_event_key", "has_signing_key", "function_count", "mode", "schema_version"] {
        assert_eq!(ours.body[key], theirs[key], "{key}");
    }
    assert!(ours.header("x-inngest-sdk").is_some(), "discovery needs X-Inngest-SDK");
}

/// What the JS SDK v4 answered each cloud case with (Python answers stale
/// and future signatures with 206: it checks no time; we follow JS).
const CLOUD_CALLS: &[(&str, u16)] = &[
    ("call-signed-valid", 206),
    ("call-signed-fallback-key", 206),
    ("call-unsigned", 401),
    ("call-signed-wrong", 401),
    ("call-signed-hex-decoded-key", 401),
    ("call-signed-with-prefix-in-key", 401),
    ("call-signed-stale-10min", 401),
    ("call-signed-future-10min", 401),
    ("call-noncanonical-body-signed-raw", 401),
    ("call-noncanonical-body-signed-jcs", 206),
    ("trust-probe-signed", 200),
    ("trust-probe-unsigned", 401),
    ("trust-probe-signed-wrong", 401),
    ("two-steps-signed.01-discovery", 206),
    ("two-steps-signed.02-discovery-after-StepRun-first", 206),
    ("two-steps-signed.03-discovery-after-StepRun-second", 200),
];

#[tokio::test]
async fn cloud_calls_are_verified_and_replies_signed() {
    for (folder, app) in [("js-v4-cloud", "js-v4"), ("py-cloud", "py"), ("js-v3-cloud", "js-v3")] {
        for (case, want) in CLOUD_CALLS {
            let fixture = load(&format!("{folder}/{case}.json"));
            // The clock is the capture's, so the 5-minute window applies.
            let now = captured_at(&fixture);
            let client = cloud_client(app, "http://127.0.0.1:9", now);
            let handler = Handler::new(&client, fixture_functions());
            let ours = replay(&handler, &fixture).await;
            let name = format!("{folder}/{case}");
            assert_eq!(ours.status, *want, "{name}: {}", ours.body);
            if *want == 401 {
                assert_eq!(ours.body, json!({"message": "Unauthorized"}), "{name}");
                assert!(ours.header("x-inngest-sdk").is_none(), "{name}: no SDK headers on 401");
                assert!(ours.header("x-inngest-signature").is_none(), "{name}");
                continue;
            }
            // Signed with the key that verified the request, over the raw body.
            let sig = ours.header("x-inngest-signature").expect("signed reply");
            let key = if case.contains("fallback") { common::signing_key_fallback() } else { common::signing_key() };
            assert!(signature::verify(&ours.raw, sig, &key, now, 300), "{name}: reply signature");
            if *want == 206 {
                let theirs = &fixture["response"]["body"];
                let ids = |v: &Value| v.as_array().unwrap().iter().map(|o| o["id"].clone()).collect::<Vec<_>>();
                assert_eq!(ids(&ours.body), ids(theirs), "{name}");
            }
        }
    }
}

#[tokio::test]
async fn cloud_introspection_needs_a_signature() {
    for (folder, app) in [("js-v4-cloud", "js-v4"), ("py-cloud", "py")] {
        let signed = load(&format!("{folder}/introspection-signed.json"));
        let now = signed_at(&signed) + 1;
        let handler = Handler::new(&cloud_client(app, "http://127.0.0.1:18288", now), fixture_functions());
        let ours = replay(&handler, &signed).await;
        assert_eq!(ours.status, 200, "{folder}");
        let theirs = &load("py-cloud/introspection-signed.json")["response"]["body"];
        let keys = |v: &Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&ours.body), keys(theirs), "{folder}: authenticated shape");
        for key in ["event_key_hash", "api_origin", "mode"] {
            assert_eq!(ours.body[key], theirs[key], "{folder}: {key}");
        }
        // Key hashes are cut to 12 characters as JS does (Python reports the
        // whole hash, which is the Bearer token of the engine's API).
        let js = &load("js-v4-cloud/introspection-signed.json")["response"]["body"];
        for key in ["signing_key_hash", "signing_key_fallback_hash"] {
            assert_eq!(ours.body[key], js[key], "{folder}: {key}");
        }
        assert_eq!(ours.body["authentication_succeeded"], true);
        let sig = ours.header("x-inngest-signature").unwrap();
        assert!(signature::verify(&ours.raw, sig, &common::signing_key(), now, 300));

        let unsigned = replay(&handler, &load(&format!("{folder}/introspection-unsigned.json"))).await;
        assert_eq!((unsigned.status, unsigned.body.clone()), (401, json!({"message": "Unauthorized"})));
    }
}

#[tokio::test]
async fn cloud_sync_authenticates_and_falls_back_to_the_second_key() {
    let first = load("js-v4-cloud/sync-register-401.register-1.json");
    let second = load("js-v4-cloud/sync-register-401.register-2.json");
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    let engine = FakeEngine::start(move |_| {
        let mut n = counter.lock().unwrap();
        *n += 1;
        let f = if *n == 1 { &first } else { &second };
        (f["response"]["status"].as_u64().unwrap() as u16, f["response"]["body"].clone())
    })
    .await;
    let put = load("js-v4-cloud/sync-register-401-put.json");
    let client = cloud_client("js-v4", &engine.base, signed_at(&put));
    let handler = Handler::new(&client, fixture_functions());
    let ours = replay(&handler, &put).await;
    assert_eq!((ours.status, ours.body.clone()), (200, put["response"]["body"].clone()));
    let seen = engine.requests();
    assert_eq!(seen.len(), 2);
    for (i, want) in ["register-1", "register-2"].iter().enumerate() {
        let theirs = load(&format!("js-v4-cloud/sync-register-401.{want}.json"));
        let auth = common::header_of(&theirs["request"]["headers"], "authorization").unwrap();
        assert_eq!(seen[i].headers["authorization"], auth.as_str(), "{want}");
        assert_eq!(seen[i].headers["x-inngest-expected-server-kind"], "cloud");
    }
}

#[tokio::test]
async fn send_matches_the_official_sdks() {
    let theirs = load("js-v4/send-batch.01.json");
    let reply = theirs["response"]["body"].clone();
    let engine = FakeEngine::start(move |_| (200, reply.clone())).await;
    let client = cloud_client("js-v4", &engine.base, 1_795_709_510);
    let ids = client
        .send_many([
            JsonEvent::new("test/sent", json!({"n": 1})),
            JsonEvent::new("test/sent", json!({"n": 2})).with_id("user-idempotency-key"),
        ])
        .await
        .unwrap();
    let want: Vec<String> = serde_json::from_value(theirs["sdk_result"]["result"]["ids"].clone()).unwrap();
    assert_eq!(ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(), want);
    let seen = &engine.requests()[0];
    assert_eq!(seen.path, theirs["request"]["path"].as_str().unwrap());
    let mut body = theirs["request"]["body"].clone();
    for e in body.as_array_mut().unwrap() {
        e["ts"] = json!(1_795_709_510_000_i64);
    }
    assert_eq!(seen.body, body);
    assert!(seen.headers.contains_key("x-inngest-event-id-seed"));
}

#[tokio::test]
async fn send_failures_are_reported() {
    for (fixture, rejected) in [
        ("js-v4/send-status-400.01.json", true),
        ("js-v4/send-http-200-body-status-400.01.json", true),
        ("py/send-no-status.01.json", false),
    ] {
        let f = load(fixture);
        let (status, body) = (f["response"]["status"].as_u64().unwrap() as u16, f["response"]["body"].clone());
        let engine = FakeEngine::start(move |_| (status, body.clone())).await;
        let client = dev_client("app", &engine.base);
        let result = client.send(JsonEvent::new("test/sent", json!({}))).await;
        assert_eq!(matches!(result, Err(SendError::Rejected { .. })), rejected, "{fixture}: {result:?}");
        // Refusals (4xx) are not retried.
        assert_eq!(engine.requests().len(), 1, "{fixture}");
    }
}
