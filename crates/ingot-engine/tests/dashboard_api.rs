//! The dashboard's side of the API, in process: the token in `ingot start`
//! (Bearer plain or hashed, the login page and its cookie), pause and resume,
//! sending and replaying events, and the run timeline.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use ingot_engine::{Clock, Engine, EngineConfig, Mode};
use ingot_store::MemStore;
use serde_json::{json, Value};
use tower::ServiceExt as _;

const KEY: &str = "signkey-prod-0123456789abcdef0123456789abcdef";
const EVENT_KEY: &str = "evkey-0123456789abcdef";
const HASHED: &str = "signkey-prod-223e0a160af9da0a03e6dd2c4719c56f5d66a633cbe84e78aaa9f3735865522a";

async fn engine(mode: Mode) -> Arc<Engine> {
    let mut config = EngineConfig::dev();
    config.mode = mode;
    config.discovery = false;
    config.poll = false;
    if mode == Mode::Start {
        config.signing_key = Some(KEY.into());
        config.event_keys = vec![EVENT_KEY.into()];
    }
    Engine::new(config, Arc::new(MemStore::new()), Clock::system()).await.expect("engine")
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    json: Value,
    text: String,
}

async fn send(engine: &Arc<Engine>, method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = engine.router().oneshot(req.body(Body::from(body.to_string())).expect("request")).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    Answer { status, headers, json: serde_json::from_slice(&bytes).unwrap_or(Value::Null), text: String::from_utf8_lossy(&bytes).into() }
}

#[tokio::test]
async fn start_mode_needs_the_signing_key_as_bearer_or_session() {
    let e = engine(Mode::Start).await;
    for uri in ["/v1/runs", "/v1/functions", "/v1/apps"] {
        let a = send(&e, "GET", uri, &[], "").await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{uri}: {}", a.text);
        assert_eq!(a.json["status"], json!(401));
        for token in [KEY, HASHED, "0123456789abcdef0123456789abcdef", &HASHED["signkey-prod-".len()..]] {
            let auth = format!("Bearer {token}");
            let a = send(&e, "GET", uri, &[("authorization", &auth)], "").await;
            assert_eq!(a.status, StatusCode::OK, "{uri} with {token}: {}", a.text);
        }
        let a = send(&e, "GET", uri, &[("authorization", "Bearer signkey-prod-99")], "").await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{uri} with a wrong key");
    }
    let gql = r#"{"query":"{ functions { name } }"}"#;
    assert_eq!(send(&e, "POST", "/v0/gql", &[("content-type", "application/json")], gql).await.status, StatusCode::UNAUTHORIZED);

    // People are sent to the login page, which sets a session cookie.
    let a = send(&e, "GET", "/runs?status=Failed", &[("accept", "text/html")], "").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.headers[header::LOCATION], "/login?next=/runs%3Fstatus%3DFailed");
    let a = send(&e, "GET", "/login", &[], "").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.text.contains("name=\"token\""));
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let a = send(&e, "POST", "/login", &form, "token=wrong&next=%2Fruns").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.headers.get(header::SET_COOKIE).is_none());
    let a = send(&e, "POST", "/login", &form, "token=signkey-prod-0123456789abcdef0123456789abcdef&next=%2Fruns").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.text);
    assert_eq!(a.headers[header::LOCATION], "/runs");
    let cookie = a.headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    assert!(!cookie.contains("0123456789abcdef"), "the cookie is a session token, not the key: {cookie}");
    let a = send(&e, "GET", "/runs", &[("cookie", &cookie), ("accept", "text/html")], "").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.text.contains("/assets/app.js"));
    assert_eq!(send(&e, "GET", "/v1/functions", &[("cookie", &cookie)], "").await.status, StatusCode::OK);

    // Open as before: health, assets (the login page needs them), the event API with its key.
    assert_eq!(send(&e, "GET", "/health", &[], "").await.status, StatusCode::OK);
    assert_eq!(send(&e, "GET", "/assets/style.css", &[], "").await.status, StatusCode::OK);
    let ev = r#"{"name":"a/b","data":{}}"#;
    assert_eq!(send(&e, "POST", &format!("/e/{EVENT_KEY}"), &[], ev).await.status, StatusCode::OK);
    assert_eq!(send(&e, "POST", "/e/nope", &[], ev).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn dev_mode_is_open_and_serves_every_page() {
    let e = engine(Mode::Dev).await;
    for uri in ["/", "/runs", "/runs/01HXYZ", "/events", "/events/01HXYZ", "/functions", "/functions/a-b", "/apps"] {
        let a = send(&e, "GET", uri, &[("accept", "text/html")], "").await;
        assert_eq!(a.status, StatusCode::OK, "{uri}");
        assert!(a.text.contains("<main id=\"main\""), "{uri} serves the shell");
    }
    for asset in ["app.js", "api.js", "ui.js", "style.css", "pages/run.js"] {
        let a = send(&e, "GET", &format!("/assets/{asset}"), &[], "").await;
        assert_eq!(a.status, StatusCode::OK, "{asset}");
    }
    assert_eq!(send(&e, "GET", "/assets/nope.js", &[], "").await.status, StatusCode::NOT_FOUND);
    assert_eq!(send(&e, "GET", "/v1/runs", &[], "").await.status, StatusCode::OK);
    // No login in dev: the page sends you on.
    assert_eq!(send(&e, "GET", "/login?next=%2Fevents", &[], "").await.headers[header::LOCATION], "/events");
}

#[tokio::test]
async fn events_are_sent_listed_and_replayed() {
    let e = engine(Mode::Dev).await;
    let json_ct = [("content-type", "application/json")];
    let a = send(&e, "POST", "/v1/events", &json_ct, r#"{"name":"shop/order","data":{"id":7},"user":{"u":1}}"#).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let id = a.json["ids"][0].as_str().unwrap().to_string();
    let a = send(&e, "POST", "/v1/events", &json_ct, r#"{"name":"inngest/function.finished"}"#).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "internal names are refused");

    let a = send(&e, "POST", &format!("/v1/events/{id}/replay"), &[], "").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let again = a.json["ids"][0].as_str().unwrap().to_string();
    assert_ne!(again, id);

    let feed = send(&e, "GET", "/v1/dashboard/events?limit=10", &[], "").await.json;
    let rows = feed["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], json!(again), "newest first");
    assert_eq!(rows[0]["payload"]["data"], json!({"id": 7}));
    assert_eq!(rows[0]["payload"]["user"], json!({"u": 1}));
    let one = send(&e, "GET", &format!("/v1/dashboard/events/{id}"), &[], "").await;
    assert_eq!(one.json["data"]["name"], json!("shop/order"));
    assert_eq!(one.json["data"]["runs"], json!([]));
}

#[tokio::test]
async fn unknown_functions_and_runs_are_404s() {
    let e = engine(Mode::Dev).await;
    for (method, uri) in [
        ("POST", "/v1/functions/nope/pause"),
        ("POST", "/v1/functions/nope/resume"),
        ("POST", "/v1/functions/nope/invoke"),
        ("GET", "/v1/runs/01HZZZZZZZZZZZZZZZZZZZZZZZ/timeline"),
        ("POST", "/v1/runs/01HZZZZZZZZZZZZZZZZZZZZZZZ/rerun"),
        ("POST", "/v1/events/01HZZZZZZZZZZZZZZZZZZZZZZZ/replay"),
    ] {
        let a = send(&e, method, uri, &[], "").await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{method} {uri}: {}", a.text);
    }
    let a = send(&e, "POST", "/v1/apps", &[("content-type", "application/json")], r#"{"url":"ftp://x"}"#).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
}
