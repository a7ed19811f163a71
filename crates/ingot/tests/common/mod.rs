//! Shared pieces of the golden tests: loading the payloads captured from
//! the official SDKs (`shared/fixtures`, beside the repository), the Rust
//! twin of the fixture app (`capture/apps/js-app.cjs`), a fake engine that
//! records what the SDK sends it, and replaying a captured request.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use ingot::{
    BatchEvents, CancelOn, Client, ClientBuilder, Concurrency, ConcurrencyScope, Ctx, Debounce, Error, Function, FunctionRef, Handler,
    JsonEvent, RateLimit, Singleton, SingletonMode, Throttle, Timeouts, WaitOpts,
};
use serde_json::{json, Value};

/// The signing key the fixtures were captured with.
pub fn signing_key() -> String {
    format!("signkey-test-{}", "0123456789abcdef".repeat(4))
}

/// The fallback signing key of the fixtures.
pub fn signing_key_fallback() -> String {
    format!("signkey-test-{}", "fedcba9876543210".repeat(4))
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

pub fn load(name: &str) -> Value {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("golden fixture {} is missing: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Fixture files of a folder whose names start with `prefix`, sorted.
pub fn list(folder: &str, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir().join(folder))
        .unwrap_or_else(|e| panic!("fixtures folder {folder}: {e}"))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix) && n.ends_with(".json"))
        .map(|n| format!("{folder}/{n}"))
        .collect();
    names.sort();
    names
}

/// The unix time a captured request was signed at (from its signature).
pub fn signed_at(fixture: &Value) -> i64 {
    let header = header_of(&fixture["request"]["headers"], "x-inngest-signature").unwrap_or_default();
    header.split('&').find_map(|p| p.strip_prefix("t=")).and_then(|t| t.parse().ok()).unwrap_or(1_795_709_509)
}

/// When the exchange happened: the reply's `Date` header, else the time
/// the request was signed at.
pub fn captured_at(fixture: &Value) -> i64 {
    header_of(&fixture["response"]["headers"], "date")
        .and_then(|d| chrono::DateTime::parse_from_rfc2822(&d).ok())
        .map(|d| d.timestamp())
        .unwrap_or_else(|| signed_at(fixture))
}

/// A header of a captured message, by case-insensitive name.
pub fn header_of(headers: &Value, name: &str) -> Option<String> {
    headers.as_object()?.iter().find_map(|(k, v)| k.eq_ignore_ascii_case(name).then(|| v.as_str().unwrap_or_default().to_string()))
}

/// A dev-mode client for app `app_id` talking to `base`.
pub fn dev_client(app_id: &str, base: &str) -> Client {
    ClientBuilder::new(app_id).dev().base_url(base).build().unwrap()
}

/// A cloud-mode client with the fixtures' keys and its clock at `now`.
pub fn cloud_client(app_id: &str, base: &str, now: i64) -> Client {
    ClientBuilder::new(app_id)
        .mode(ingot::Mode::Cloud)
        .base_url(base)
        .signing_key(signing_key())
        .signing_key_fallback(signing_key_fallback())
        .event_key("test-event-key")
        .clock(Arc::new(move || Utc.timestamp_opt(now, 0).unwrap()))
        .build()
        .unwrap()
}

/// The captured request as an `http::Request`, body byte for byte.
pub fn request_of(fixture: &Value) -> Request<Bytes> {
    let rq = &fixture["request"];
    let method = Method::from_bytes(rq["method"].as_str().unwrap().as_bytes()).unwrap();
    let mut req = Request::builder()
        .method(method)
        .uri(rq["path"].as_str().unwrap())
        .body(Bytes::from(rq["body_raw"].as_str().unwrap_or_default().to_string()))
        .unwrap();
    let mut headers = HeaderMap::new();
    for (k, v) in rq["headers"].as_object().unwrap() {
        if k.eq_ignore_ascii_case("content-length") {
            continue;
        }
        headers.insert(
            HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).unwrap(),
            HeaderValue::from_str(v.as_str().unwrap()).unwrap(),
        );
    }
    *req.headers_mut() = headers;
    req
}

/// Our reply to a captured request.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub raw: Bytes,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn replay(handler: &Handler, fixture: &Value) -> Reply {
    let resp = handler.handle(request_of(fixture)).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let raw = resp.into_body();
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Reply { status, headers, raw, body }
}

/// What a fake engine saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

type Responder = dyn Fn(&Seen) -> (u16, Value) + Send + Sync;

/// A fake engine on a free loopback port that records every request and
/// answers with `respond`.
pub struct FakeEngine {
    pub base: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeEngine {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeEngine {
    pub async fn start(respond: impl Fn(&Seen) -> (u16, Value) + Send + Sync + 'static) -> FakeEngine {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let respond: Arc<Responder> = Arc::new(respond);
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let log = log.clone();
            let respond = respond.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                let seen = Seen {
                    method: parts.method.to_string(),
                    path: parts.uri.to_string(),
                    headers: parts.headers,
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                };
                let (status, body) = respond(&seen);
                log.lock().unwrap().push(seen);
                (axum::http::StatusCode::from_u16(status).unwrap(), [("content-type", "application/json")], body.to_string())
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeEngine { base, seen, task }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// The Rust twin of the fixture app (`capture/apps/js-app.cjs`): the same
/// function ids, names, triggers, options and behaviour.
pub fn fixture_functions() -> Vec<Function> {
    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }
    let child = Function::new("child")
        .name("Child")
        .trigger_event_name("test/child")
        .handler(|ctx: Ctx| async move { Ok(json!({"child": true, "got": ctx.event.data})) });
    ingot::functions![
        Function::new("two-steps").name("Two steps").trigger_event_name("test/two-steps").handler(|ctx: Ctx| async move {
            let who = ctx.event.data.get("who").cloned().unwrap_or(Value::Null);
            let a: Value = ctx.step.run("first", || async { Ok(json!({"n": 1, "from": who})) }).await?;
            let b: String = ctx.step.run("second", || async { Ok(format!("second saw {}", a["n"])) }).await?;
            Ok(json!({"a": a, "b": b}))
        }),
        Function::new("parallel").name("Parallel").trigger_event_name("test/parallel").handler(|ctx: Ctx| async move {
            let (a, b) = futures::join!(
                ctx.step.run("par-a", || async { Ok("A".to_string()) }),
                ctx.step.run("par-b", || async { Ok("B".to_string()) }),
            );
            Ok(json!({"a": a?, "b": b?}))
        }),
        Function::new("sleeps").name("Sleeps").trigger_event_name("test/sleeps").handler(|ctx: Ctx| async move {
            ctx.step.sleep("nap", s(2)).await?;
            let at = Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap();
            ctx.step.sleep_until("until", at).await?;
            Ok("awake")
        }),
        Function::new("wait").name("Wait").trigger_event_name("test/wait").handler(|ctx: Ctx| async move {
            let opts = WaitOpts::new(s(3600)).if_exp("async.data.id == event.data.id");
            let ev = ctx.step.wait_for_event_name("wait-approve", "test/approve", opts).await?;
            Ok(json!({"approved": ev.is_some(), "ev": ev}))
        }),
        child,
        Function::new("invoker").name("Invoker").trigger_event_name("test/invoker").handler(|ctx: Ctx| async move {
            let child: FunctionRef = FunctionRef::new("child");
            let res = ctx.step.invoke("call-child", &child, json!({"x": 1})).await?;
            Ok(json!({"res": res}))
        }),
        Function::new("sender").name("Sender").trigger_event_name("test/sender").handler(|ctx: Ctx| async move {
            let ids = ctx.step.send_event("send-it", JsonEvent::new("test/sent", json!({"hello": "world"}))).await?;
            Ok(json!({"ids": ids}))
        }),
        Function::new("step-error").name("Step error").trigger_event_name("test/step-error").retries(2).handler(|ctx: Ctx| async move {
            ctx.step.run("flaky", || async { Err::<(), _>(Error::msg("step boom")) }).await?;
            Ok("unreachable")
        }),
        Function::new("step-nonretriable").name("Step non-retriable").trigger_event_name("test/step-nonretriable").handler(
            |ctx: Ctx| async move {
                ctx.step.run("fatal", || async { Err::<(), _>(Error::non_retriable("step fatal")) }).await?;
                Ok("unreachable")
            },
        ),
        Function::new("fn-error")
            .name("Function error")
            .trigger_event_name("test/fn-error")
            .handler(|_ctx: Ctx| async move { Err::<(), _>(Error::msg("function boom")) }),
        Function::new("fn-nonretriable")
            .name("Function non-retriable")
            .trigger_event_name("test/fn-nonretriable")
            .handler(|_ctx: Ctx| async move { Err::<(), _>(Error::non_retriable("function fatal")) }),
        Function::new("retry-after").name("Retry after").trigger_event_name("test/retry-after").handler(|ctx: Ctx| async move {
            ctx.step.run("later", || async { Err::<(), _>(Error::retry_after(s(30), "come back later")) }).await?;
            Ok("unreachable")
        }),
        Function::new("fn-retry-after").name("Function retry after").trigger_event_name("test/fn-retry-after").handler(
            |_ctx: Ctx| async move {
                let at = Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap();
                let wait = (at - Utc::now()).to_std().unwrap_or(s(1));
                Err::<(), _>(Error::retry_after(wait, "function later"))
            },
        ),
        Function::new("with-failure")
            .name("With failure")
            .trigger_event_name("test/with-failure")
            .retries(0)
            .on_failure(|ctx| async move {
                Ok(json!({
                    "handled": true,
                    "message": ctx.event.data.error.message,
                    "original": ctx.event.data.event["name"],
                }))
            })
            .handler(|_ctx: Ctx| async move { Err::<(), _>(Error::msg("failing on purpose")) }),
        Function::new("dup-ids").name("Duplicate ids").trigger_event_name("test/dup-ids").handler(|ctx: Ctx| async move {
            let mut out = Vec::new();
            for i in 0..3 {
                out.push(ctx.step.run("item", || async move { Ok(i) }).await?);
            }
            Ok(out)
        }),
        Function::new("flow-config")
            .name("Flow config")
            .trigger_event_name_if("test/flow", "event.data.plan == 'pro'")
            .trigger_event_name("test/flow.*")
            .trigger_cron("TZ=Europe/Paris 0 9 * * 1")
            .retries(7)
            .concurrency(Concurrency::new(5).key("event.data.user").scope(ConcurrencyScope::Fn))
            .concurrency(Concurrency::new(20).key("event.data.acct").scope(ConcurrencyScope::Env))
            .throttle(Throttle::new(3, s(60)).burst(2).key("event.data.user"))
            .debounce(Debounce::new(s(5)).key("event.data.user").timeout(s(60)))
            .rate_limit(RateLimit::new(10, s(3600)).key("event.data.user"))
            .priority("event.data.priority")
            .idempotency("event.data.id")
            .cancel_on(CancelOn::event_name("test/cancel").match_field("data.id").timeout(s(3600)))
            .cancel_on(CancelOn::event_name("test/cancel2").if_exp("event.data.id == async.data.ref"))
            .timeouts(Timeouts::new().start(s(10)).finish(s(3600)))
            .handler(|_ctx: Ctx| async move { Ok("ok") }),
        Function::new("batch-config")
            .name("Batch config")
            .trigger_event_name("test/batch")
            .trigger_cron("*/5 * * * *")
            .concurrency(Concurrency::new(4))
            .batch_events(BatchEvents::new(50, s(5)).key("event.data.acct"))
            .singleton(Singleton::new(SingletonMode::Skip).key("event.data.acct"))
            .handler(|ctx: Ctx| async move { Ok(ctx.events.len()) }),
    ]
}
