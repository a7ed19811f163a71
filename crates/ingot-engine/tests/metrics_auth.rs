//! `GET /metrics` and the chart endpoints are guarded like the REST API in
//! `ingot start` (the signing key, plain or hashed, or a session), and open
//! in `ingot dev`.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use ingot_engine::{Clock, Engine, EngineConfig, Mode};
use ingot_protocol::signature::hashed_key;
use ingot_store::MemStore;
use tower::ServiceExt as _;

const KEY: &str = "signkey-prod-0123456789abcdef0123456789abcdef";

async fn engine(mode: Mode) -> Arc<Engine> {
    let mut config = EngineConfig::dev();
    config.mode = mode;
    config.discovery = false;
    config.poll = false;
    config.signing_key = Some(KEY.into());
    config.event_keys = vec!["evkey-0123456789abcdef".into()];
    Engine::new(config, Arc::new(MemStore::new()), Clock::system()).await.expect("engine")
}

async fn get(engine: &Arc<Engine>, uri: &str, bearer: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::builder().uri(uri);
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    let resp = engine.router().oneshot(req.body(Body::empty()).expect("request")).await.expect("infallible");
    let status = resp.status();
    (status, String::from_utf8_lossy(&to_bytes(resp.into_body(), usize::MAX).await.expect("body")).into_owned())
}

#[tokio::test]
async fn metrics_need_the_signing_key_in_start() {
    let e = engine(Mode::Start).await;
    for uri in ["/metrics", "/v1/queue/stats", "/v1/functions/a-f/stats"] {
        assert_eq!(get(&e, uri, None).await.0, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(get(&e, uri, Some("not-the-key")).await.0, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let (status, body) = get(&e, "/metrics", Some(KEY)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("# TYPE ingot_queue_depth gauge"), "{body}");
    let hashed = hashed_key(KEY).expect("hashed key");
    assert_eq!(get(&e, "/metrics", Some(&hashed)).await.0, StatusCode::OK);
    assert_eq!(get(&e, "/v1/functions/a-f/stats", Some(KEY)).await.0, StatusCode::NOT_FOUND, "no such function");
}

#[tokio::test]
async fn metrics_are_open_in_dev() {
    let e = engine(Mode::Dev).await;
    let (status, body) = get(&e, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("ingot_queue_depth{when=\"due\"} 0"), "{body}");
    let (status, body) = get(&e, "/v1/queue/stats", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(get(&e, "/v1/functions/a-f/stats?window=2y", None).await.0, StatusCode::BAD_REQUEST);
}
