//! The app API's token, over real HTTP: advert-01 started outside dev mode
//! (cloud mode, against a fake engine on loopback that records every
//! request) answers 401 to every `/api/*` route without the token or with a
//! wrong one, and nothing reaches the engine; with the token it works.
//! Without `ADVERT_API_TOKEN` it does not start at all. In dev mode a token
//! that is set is enforced too.

use std::sync::{Arc, Mutex};

use advert_01::config::SettingsError;
use advert_01::server::{self, EngineChoice, StartError, StartOptions};
use axum::extract::State;
use axum::http::{Method, Uri};
use axum::Router;
use serde_json::{json, Value};

use crate::support::{lookup, TestApp};

const SIGNING_KEY: &str = "signkey-prod-0123456789abcdef0123456789abcdef";
const TOKEN: &str = "advert-01-test-api-token-0123456789";

/// A stand-in engine: records each request, accepts every event.
async fn fake_engine() -> (String, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let seen: Arc<Mutex<Vec<String>>> = Default::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = Router::new()
        .fallback(|State(seen): State<Arc<Mutex<Vec<String>>>>, method: Method, uri: Uri| async move {
            seen.lock().unwrap().push(format!("{method} {}", uri.path()));
            axum::Json(json!({"ids": ["01JFAKEEVENT0000000000000"], "status": 200, "ok": true}))
        })
        .with_state(seen.clone());
    let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, seen, task)
}

fn cloud_vars(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("ADVERT_DATA_DIR", dir.display().to_string()),
        ("INNGEST_SIGNING_KEY", SIGNING_KEY.to_string()),
        ("INNGEST_EVENT_KEY", "event-key".to_string()),
        ("SMTP_URL", "smtp://127.0.0.1:2525".to_string()),
        ("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string()),
    ]
}

fn options(engine: &str, vars: &[(&str, String)]) -> StartOptions {
    StartOptions {
        app_addr: "127.0.0.1:0".parse().unwrap(),
        engine: EngineChoice::External { url: Some(engine.to_string()) },
        lookup: lookup(vars),
        resolver: server::system_resolver(),
    }
}

/// Every app API route, as an attacker would call it.
fn routes(app: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, format!("{app}/api/events"), None),
        (Method::POST, format!("{app}/api/events/test/hello.world"), Some(json!({"name": "Mallory"}))),
        (Method::POST, format!("{app}/api/events/export/pdf"), Some(json!({"document": {"kind": "note", "title": "x", "body": "y"}}))),
        (Method::POST, format!("{app}/api/events/webhook/deliver"), Some(json!({"url": "https://hooks.example.com/x", "payload": {}}))),
        (Method::GET, format!("{app}/api/strategies/01JABCDEFGHJKMNPQRSTVWXYZ0"), None),
        (Method::GET, format!("{app}/api/webhooks/attempts"), None),
        (Method::GET, format!("{app}/api/exports/some.pdf"), None),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_dev_mode_the_api_needs_the_token() {
    let (engine, seen, task) = fake_engine().await;
    let dir = tempfile::tempdir().unwrap();
    let mut vars = cloud_vars(dir.path());
    vars.push(("ADVERT_API_TOKEN", TOKEN.to_string()));
    let running = server::start(options(&engine, &vars)).await.expect("starting advert-01 in cloud mode");
    assert!(running.engine.is_none());
    let app = running.app_url.clone();
    let http = reqwest::Client::new();
    let before = seen.lock().unwrap().clone();

    let wrong = [
        None,
        Some("Bearer wrong-token-of-a-decent-length".to_string()),
        Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_string()),
        Some("Bearer ".to_string()),
    ];
    for (method, url, body) in routes(&app) {
        for auth in &wrong {
            let mut req = http.request(method.clone(), &url);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            if let Some(b) = &body {
                req = req.json(b);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {url} with {auth:?}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
            let answer: Value = r.json().await.unwrap();
            assert!(answer["error"].as_str().is_some_and(|e| e.contains("token")), "{answer}");
        }
    }
    // Nothing reached the engine, and nothing was recorded.
    assert_eq!(*seen.lock().unwrap(), before, "a refused request reached the engine");
    let rows = advert_01::jobs::webhook::attempts::recent(&running.deps.db, 10).await.unwrap();
    assert!(rows.is_empty(), "{rows:?}");

    // With the token (the scheme in any case) the same API works.
    let r = http.get(format!("{app}/api/events")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{app}/api/events/test/hello.world"))
        .header("authorization", format!("bearer {TOKEN}"))
        .json(&json!({"name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let sent: Vec<String> = seen.lock().unwrap().iter().filter(|r| r.starts_with("POST /e/")).cloned().collect();
    assert_eq!(sent, ["POST /e/event-key"]);
    let r = http.get(format!("{app}/api/webhooks/attempts")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Unknown routes are 404 whoever asks; health stays open; the Inngest
    // route keeps its own check (request signatures).
    assert_eq!(http.get(format!("{app}/api/nothing")).send().await.unwrap().status(), 404);
    assert_eq!(http.get(format!("{app}/health")).send().await.unwrap().status(), 200);
    assert_eq!(http.get(format!("{app}/api/inngest")).bearer_auth(TOKEN).send().await.unwrap().status(), 401);
    running.shutdown().await;
    task.abort();
}

#[tokio::test]
async fn outside_dev_mode_it_does_not_start_without_a_token() {
    let (engine, seen, task) = fake_engine().await;
    let dir = tempfile::tempdir().unwrap();
    let err = match server::start(options(&engine, &cloud_vars(dir.path()))).await {
        Ok(_) => panic!("advert-01 started outside dev mode without ADVERT_API_TOKEN"),
        Err(e) => e,
    };
    assert!(matches!(err, StartError::Settings(SettingsError::Missing { var: "ADVERT_API_TOKEN", .. })), "{err}");
    assert!(err.to_string().contains("ADVERT_API_TOKEN is required outside dev mode"), "{err}");
    // A token too short to be one is refused too.
    let mut vars = cloud_vars(dir.path());
    vars.push(("ADVERT_API_TOKEN", "secret".to_string()));
    let err = server::start(options(&engine, &vars)).await.err().expect("a 6-character token");
    assert!(matches!(err, StartError::Settings(SettingsError::Invalid { var: "ADVERT_API_TOKEN", .. })), "{err}");
    assert!(!err.to_string().contains("secret"), "the token is not echoed: {err}");
    assert!(seen.lock().unwrap().is_empty(), "{:?}", seen.lock().unwrap());
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_dev_mode_a_token_that_is_set_is_enforced() {
    let app = TestApp::start(&[("ADVERT_API_TOKEN", TOKEN.to_string())]).await;
    let url = format!("{}/api/events/test/hello.world", app.app());
    let r = app.http.post(&url).json(&json!({"name": "Mallory"})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = app.http.post(&url).bearer_auth(TOKEN).json(&json!({"name": "Ada"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let events: Value =
        app.http.get(format!("{}/v1/events?name=test/hello.world", app.engine())).send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = events["data"].as_array().unwrap().iter().filter_map(|e| e["data"]["name"].as_str()).collect();
    assert_eq!(names, ["Ada"], "only the request with the token sent an event");
    app.stop().await;
}
