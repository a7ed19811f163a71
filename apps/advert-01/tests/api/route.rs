//! `/api/inngest`: GET (introspection, and the function list the engine
//! registered), PUT (sync), POST (a call), and signed introspection in
//! cloud mode.

use std::collections::BTreeMap;

use advert_01::api::{self, AppState};
use advert_01::config::RawSettings;
use advert_01::jobs::{self, client};
use advert_01::server;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt as _;

use crate::support::TestApp;

const SIGNING_KEY: &str = "signkey-prod-0123456789abcdef0123456789abcdef";

/// Every function, its trigger and notable config.
fn expected() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("advert-01-hello-world", "test/hello.world"),
        ("advert-01-email-send", "email/send"),
        ("advert-01-strategy-generate", "strategy/generate"),
        ("advert-01-export-pdf", "export/pdf"),
        ("advert-01-webhook-deliver", "webhook/deliver"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_introspects_and_the_engine_lists_every_function() {
    let app = TestApp::start(&[]).await;
    let r = app.http.get(format!("{}/api/inngest", app.app())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-inngest-framework"], "axum");
    let body: Value = r.json().await.unwrap();
    assert_eq!((body["mode"].as_str(), body["function_count"].as_u64()), (Some("dev"), Some(5)), "{body}");

    // What the app registered, as the engine holds it.
    let list: Value = app.http.get(format!("{}/v1/apps/advert-01/functions", app.engine())).send().await.unwrap().json().await.unwrap();
    let functions = list["data"].as_array().unwrap();
    let got: BTreeMap<&str, &str> =
        functions.iter().map(|f| (f["slug"].as_str().unwrap(), f["config"]["triggers"][0]["event"].as_str().unwrap())).collect();
    assert_eq!(got, expected());
    let webhook = functions.iter().find(|f| f["slug"] == "advert-01-webhook-deliver").unwrap();
    assert_eq!(webhook["config"]["concurrency"], json!([{"limit": 2, "key": "event.data.url"}]), "{webhook}");
    let url = webhook["config"]["steps"]["step"]["runtime"]["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/api/inngest?fnId=advert-01-webhook-deliver", app.app())), "{url}");
    assert_eq!(webhook["config"]["steps"]["step"]["retries"]["attempts"], 8);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_syncs_and_post_runs_a_step() {
    let app = TestApp::start(&[]).await;
    let r = app.http.put(format!("{}/api/inngest", app.app())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], "Successfully registered", "{body}");

    // A first call, as the engine makes it: the first step runs at once.
    let call = json!({
        "event": {"name": "test/hello.world", "data": {"name": "Ada"}, "id": "e1", "ts": 1},
        "events": [{"name": "test/hello.world", "data": {"name": "Ada"}, "id": "e1", "ts": 1}],
        "steps": {},
        "ctx": {"run_id": "01HELLOCALL00000000000000", "attempt": 0, "stack": {"stack": [], "current": 0}},
        "version": 2,
    });
    let url = format!("{}/api/inngest?fnId=advert-01-hello-world&stepId=step", app.app());
    let r = app.http.post(&url).json(&call).send().await.unwrap();
    assert_eq!(r.status(), 206);
    let ops: Value = r.json().await.unwrap();
    assert_eq!(ops[0]["op"], "StepRun", "{ops}");
    assert_eq!((ops[0]["displayName"].as_str(), ops[0]["data"].as_str()), (Some("compose-greeting"), Some("Hello, Ada!")), "{ops}");

    // An unknown function is refused.
    let r = app.http.post(format!("{}/api/inngest?fnId=advert-01-nope&stepId=step", app.app())).json(&call).send().await.unwrap();
    assert_eq!(r.status(), 500);
    // Other methods are not part of the protocol.
    let r = app.http.delete(format!("{}/api/inngest", app.app())).send().await.unwrap();
    assert_eq!(r.status(), 405);
    app.stop().await;
}

#[tokio::test]
async fn cloud_mode_introspection_needs_a_signature() {
    let dir = tempfile::tempdir().unwrap();
    let vars = [("ADVERT_DATA_DIR", dir.path().display().to_string())];
    let settings = RawSettings::from_lookup(crate::support::lookup(&vars).as_ref()).resolve(true).unwrap();
    let deps = server::deps(settings).await.unwrap();
    let client = client::builder(|_| None).signing_key(SIGNING_KEY).event_key("event-key").base_url("http://127.0.0.1:9").build().unwrap();
    let router = api::router(AppState { client, deps: deps.clone(), engine_url: "http://127.0.0.1:9".into() }, jobs::functions(&deps));

    let unsigned = Request::get("/api/inngest").body(Body::empty()).unwrap();
    assert_eq!(router.clone().oneshot(unsigned).await.unwrap().status(), StatusCode::UNAUTHORIZED);

    let sig = ingot_protocol::signature::sign(b"", SIGNING_KEY, chrono::Utc::now().timestamp());
    let signed = Request::get("/api/inngest").header("x-inngest-signature", sig).body(Body::empty()).unwrap();
    let resp = router.oneshot(signed).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("x-inngest-signature"), "the reply is signed");
    let body: Value = serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert_eq!(body["authentication_succeeded"], true, "{body}");
    assert_eq!(
        (body["app_id"].as_str(), body["mode"].as_str(), body["function_count"].as_u64()),
        (Some("advert-01"), Some("cloud"), Some(5))
    );
}
