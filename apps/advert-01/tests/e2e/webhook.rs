//! `webhook/deliver` end to end against a real receiver on loopback that
//! verifies each Standard Webhooks signature with its own code: a signed
//! delivery; 503 then 200; 429 with `Retry-After`; 400 failing at once; a
//! timeout retried; at most one delivery at a time per destination.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use advert_01::jobs::client::DeliverWebhook;
use advert_01::jobs::webhook::{self, attempts};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::support::TestApp;

/// The secret the app signs with and the receiver checks with.
const SECRET: &str = "whsec_dGhlLXJlY2VpdmVyLWFuZC10aGUtYXBwLXNoYXJlLXRoaXM=";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    id: String,
    body: Vec<u8>,
    verified: bool,
    at: Instant,
}

#[derive(Default)]
struct Receiver {
    received: Vec<Received>,
    in_flight: HashMap<String, usize>,
    max_in_flight: HashMap<String, usize>,
    max_total: usize,
}

type Shared = Arc<Mutex<Receiver>>;

/// Checks a request as a receiver would, independently of the app's code.
fn verify(headers: &HeaderMap, body: &[u8]) -> bool {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (id, ts, sigs) = (h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"));
    let Ok(ts_num) = ts.parse::<i64>() else { return false };
    if (chrono::Utc::now().timestamp() - ts_num).abs() > 300 {
        return false;
    }
    let key = STANDARD.decode(SECRET.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    sigs.split(' ').any(|s| s == expected)
}

/// Answers by path: `ok` 200; `flaky` 503 the first time; `busy` 429 with
/// `Retry-After: 1` the first time; `bad` always 400; `slow` hangs 5 s the
/// first time; `serial-*` takes 300 ms.
async fn receive(State(r): State<Shared>, Path(path): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let verified = verify(&headers, &body);
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let nth = {
        let mut r = r.lock().unwrap();
        r.received.push(Received { path: path.clone(), id, body: body.to_vec(), verified, at: Instant::now() });
        let n = r.in_flight.entry(path.clone()).or_default();
        *n += 1;
        let n = *n;
        let m = r.max_in_flight.entry(path.clone()).or_default();
        *m = (*m).max(n);
        let total: usize = r.in_flight.values().sum();
        r.max_total = r.max_total.max(total);
        r.received.iter().filter(|x| x.path == path).count()
    };
    let resp = if !verified {
        (StatusCode::UNAUTHORIZED, "bad signature").into_response()
    } else {
        match (path.as_str(), nth) {
            ("flaky", 1) => (StatusCode::SERVICE_UNAVAILABLE, "down for a moment").into_response(),
            ("busy", 1) => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down").into_response(),
            ("bad", _) => (StatusCode::BAD_REQUEST, "unknown event type").into_response(),
            ("slow", 1) => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                (StatusCode::OK, "late").into_response()
            }
            (p, _) if p.starts_with("serial-") => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                StatusCode::NO_CONTENT.into_response()
            }
            _ => StatusCode::NO_CONTENT.into_response(),
        }
    };
    *r.lock().unwrap().in_flight.get_mut(&path).unwrap() -= 1;
    resp
}

struct Env {
    app: TestApp,
    base: String,
    receiver: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Env {
    async fn start(extra: &[(&str, String)]) -> Env {
        let receiver: Shared = Default::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = Router::new().route("/hooks/{path}", post(receive)).with_state(receiver.clone());
        let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        // The receiver is on loopback, which webhooks may only reach when allowed.
        let mut vars = vec![("WEBHOOK_SECRET", SECRET.to_string()), ("WEBHOOK_ALLOW_PRIVATE", "true".to_string())];
        vars.extend(extra.iter().cloned());
        Env { app: TestApp::start(&vars).await, base, receiver, server }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/hooks/{path}", self.base)
    }

    async fn deliver(&self, path: &str) -> (String, crate::support::Run) {
        let hook = DeliverWebhook {
            url: self.url(path),
            payload: json!({"type": "strategy.generated", "data": {"strategy_id": "01ABC", "path": path}}),
            message_id: None,
        };
        let event_id = self.app.send::<DeliverWebhook>(hook).await;
        let run = self.app.wait_run(&event_id, webhook::ID).await.unwrap();
        (event_id, run)
    }

    fn received(&self, path: &str) -> Vec<Received> {
        self.receiver.lock().unwrap().received.iter().filter(|r| r.path == path).cloned().collect()
    }

    async fn attempts(&self, message_id: &str) -> Vec<attempts::Attempt> {
        attempts::for_message(&self.app.running.deps.db, message_id).await.unwrap()
    }

    async fn stop(self) {
        self.app.stop().await;
        self.server.abort();
    }
}

fn outcomes(rows: &[attempts::Attempt]) -> Vec<(&'static str, Option<u16>)> {
    rows.iter().map(|a| (a.outcome.as_str(), a.status_code)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_delivery_is_verified_by_the_receiver() {
    let env = Env::start(&[]).await;
    let (event_id, run) = env.deliver("ok").await;
    assert_eq!(run.status, "Completed", "{run:?}");
    assert_eq!((run.output["status_code"].as_u64(), run.output["attempt"].as_u64()), (Some(204), Some(1)), "{run:?}");
    let got = env.received("ok");
    assert_eq!(got.len(), 1);
    assert!(got[0].verified, "the receiver could not verify the signature");
    assert_eq!(got[0].id, event_id, "webhook-id is the event id");
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["data"]["strategy_id"], "01ABC");
    let rows = env.attempts(&event_id).await;
    assert_eq!(outcomes(&rows), [("delivered", Some(204))]);
    assert_eq!((rows[0].attempt, rows[0].url.as_str()), (1, env.url("ok").as_str()));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_is_retried_until_it_is_delivered() {
    let env = Env::start(&[]).await;
    let (event_id, run) = env.deliver("flaky").await;
    assert_eq!(run.status, "Completed", "{run:?}");
    assert_eq!(run.output["attempt"], 2, "{run:?}");
    let got = env.received("flaky");
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| r.verified && r.id == event_id), "{got:?}");
    assert_eq!(got[0].body, got[1].body, "a retry sends the same body");
    assert_eq!(outcomes(&env.attempts(&event_id).await), [("retry", Some(503)), ("delivered", Some(204))]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_no_sooner_than_retry_after() {
    let env = Env::start(&[]).await;
    let (event_id, run) = env.deliver("busy").await;
    assert_eq!(run.status, "Completed", "{run:?}");
    let got = env.received("busy");
    assert_eq!(got.len(), 2);
    // The engine's own retry delay is 200 ms here; the receiver asked for 1 s.
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}, before Retry-After: 1");
    let rows = env.attempts(&event_id).await;
    assert_eq!(outcomes(&rows), [("retry_after", Some(429)), ("delivered", Some(204))]);
    assert_eq!(rows[0].retry_after_ms, Some(1_000));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_fails_at_once() {
    let env = Env::start(&[]).await;
    let (event_id, run) = env.deliver("bad").await;
    assert_eq!(run.status, "Failed", "{run:?}");
    assert!(run.output.to_string().contains("HTTP 400"), "{run:?}");
    assert_eq!(env.received("bad").len(), 1, "no retry after a 400");
    assert_eq!(outcomes(&env.attempts(&event_id).await), [("rejected", Some(400))]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_is_retried() {
    let env = Env::start(&[("WEBHOOK_TIMEOUT_SECS", "0.5".to_string())]).await;
    let (event_id, run) = env.deliver("slow").await;
    assert_eq!(run.status, "Completed", "{run:?}");
    assert_eq!(outcomes(&env.attempts(&event_id).await), [("timeout", None), ("delivered", Some(204))]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_to_one_destination_run_one_at_a_time() {
    let env = Env::start(&[("WEBHOOK_CONCURRENCY", "1".to_string())]).await;
    let mut events = Vec::new();
    for i in 0..6 {
        let path = if i % 2 == 0 { "serial-a" } else { "serial-b" };
        let hook = DeliverWebhook { url: env.url(path), payload: json!({"i": i}), message_id: None };
        events.push(env.app.send::<DeliverWebhook>(hook).await);
    }
    for id in &events {
        let run = env.app.wait_run(id, webhook::ID).await.unwrap();
        assert_eq!(run.status, "Completed", "{run:?}");
    }
    let (per_path, total) = {
        let r = env.receiver.lock().unwrap();
        (r.max_in_flight.clone(), r.max_total)
    };
    assert_eq!(per_path.get("serial-a"), Some(&1), "{per_path:?}");
    assert_eq!(per_path.get("serial-b"), Some(&1), "{per_path:?}");
    // The limit is per destination: the two destinations overlapped.
    assert_eq!(total, 2, "deliveries to different destinations should run side by side");
    env.stop().await;
}
