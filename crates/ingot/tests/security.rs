//! What an attacker who can reach the app (and has seen signed requests the
//! engine sent it) would try, over real HTTP against the axum router on a
//! loopback port: a signed call sent to another function or step, the same
//! signed request twice, and an unsigned sync `PUT` with a forged
//! `X-Forwarded-Host`. Each test checks the refusal and that nothing ran or
//! was registered, next to the genuine request that does work.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use common::{cloud_client, fixture_functions, load, signed_at, signing_key, FakeEngine};
use ingot::{Client, ClientBuilder, Ctx, Function};
use ingot_protocol::call::{CallCtx, CallRequest, CallStack};
use ingot_protocol::signature;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The unix second every client and signature in these tests uses.
const NOW: i64 = 1_795_709_509;
/// SHA-1 of `greet`: the hashed id the SDKs give the step `greet`.
const GREET_HASH: &str = "35ff71782def36154c8c5bb550a28b4665c227e0";
/// A function UUID as Inngest sends it (not derivable from the slug).
const INNGEST_FN_UUID: &str = "7c280ac7-69be-4cf3-8642-702a5f000469";

/// The app on a free loopback port.
struct App {
    base: String,
    http: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl App {
    async fn start(router: axum::Router) -> App {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        App { base, http: reqwest::Client::new(), task }
    }

    /// POSTs `body` to `/api/inngest?<query>` with `signature`, if any.
    async fn post(&self, query: &str, body: &[u8], signature: Option<&str>) -> (u16, Value) {
        let mut req =
            self.http.post(format!("{}/api/inngest?{query}", self.base)).header("content-type", "application/json").body(body.to_vec());
        if let Some(sig) = signature {
            req = req.header("x-inngest-signature", sig);
        }
        read(req.send().await.unwrap()).await
    }
}

async fn read(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// How often each function's handler and its step ran.
#[derive(Default)]
struct Runs {
    handler: AtomicUsize,
    step: AtomicUsize,
}

impl Runs {
    fn counts(&self) -> (usize, usize) {
        (self.handler.load(Ordering::SeqCst), self.step.load(Ordering::SeqCst))
    }
}

/// A function `id`, triggered by `test/<id>`, with one step `greet`,
/// counting its runs.
fn counted(id: &str, runs: Arc<Runs>) -> Function {
    Function::new(id)
        .trigger_event_name(format!("test/{id}"))
        .handler(move |ctx: Ctx| {
            let runs = runs.clone();
            async move {
                runs.handler.fetch_add(1, Ordering::SeqCst);
                let greeting: String = ctx
                    .step
                    .run("greet", || async {
                        runs.step.fetch_add(1, Ordering::SeqCst);
                        Ok("hello".to_string())
                    })
                    .await?;
                Ok(json!({"greeting": greeting}))
            }
        })
        .into()
}

/// A cloud-mode app `app` with functions `a` and `b`, its clock at [`NOW`].
async fn two_function_app() -> (App, Arc<Runs>, Arc<Runs>) {
    let (a, b) = (Arc::new(Runs::default()), Arc::new(Runs::default()));
    let client = cloud_client("app", "http://127.0.0.1:9", NOW);
    let app = App::start(ingot::serve(&client, [counted("a", a.clone()), counted("b", b.clone())])).await;
    (app, a, b)
}

/// The UUID Ingot sends as `ctx.fn_id`: SHA-256 of the slug, 16 bytes.
fn ingot_fn_uuid(slug: &str) -> String {
    let x = hex::encode(&Sha256::digest(slug.as_bytes())[..16]);
    format!("{}-{}-{}-{}-{}", &x[0..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}

/// A call request body as an engine sends it (JCS bytes).
fn call_body(event: Value, step_id: &str, fn_id: Option<&str>) -> Vec<u8> {
    CallRequest {
        event: event.clone(),
        events: vec![event],
        steps: Map::new(),
        defers: Map::new(),
        version: 2,
        use_api: false,
        ctx: CallCtx {
            run_id: "01M8C0Z1808C5VEJ61C5MPSHZD".into(),
            step_id: step_id.into(),
            env: String::new(),
            attempt: 0,
            max_attempts: 4,
            disable_immediate_execution: false,
            use_api: false,
            stack: CallStack::default(),
            fn_id: fn_id.map(str::to_string),
            qi_id: fn_id.map(|_| "qi-1".to_string()),
        },
    }
    .to_jcs()
}

fn sign(body: &[u8], at: i64) -> String {
    signature::sign(body, &signing_key(), at)
}

#[tokio::test]
async fn a_call_signed_for_one_function_is_refused_by_another() {
    let (app, a, b) = two_function_app().await;
    let event = json!({"name": "test/a", "data": {}});

    // Ingot (checkpointing) names the function in ctx.fn_id.
    let body = call_body(event.clone(), "step", Some(&ingot_fn_uuid("app-a")));
    let sig = sign(&body, NOW);
    let (status, reply) = app.post("fnId=app-b&stepId=step", &body, Some(&sig)).await;
    assert_eq!(status, 401, "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("\"app-a\""), "{reply}");
    assert_eq!((a.counts(), b.counts()), ((0, 0), (0, 0)), "nothing ran");
    // The refusal did not spend the signature: the genuine call still works.
    let (status, reply) = app.post("fnId=app-a&stepId=step", &body, Some(&sig)).await;
    assert_eq!((status, reply[0]["op"].clone()), (206, json!("StepRun")), "{reply}");
    assert_eq!((a.counts(), b.counts()), ((1, 1), (0, 0)));

    // An invoked run names its function in the invoke event (Inngest's
    // ctx.fn_id is its own UUID, which names nothing here).
    let invoked = json!({"name": "inngest/function.invoked", "data": {"_inngest": {"fn_id": "app-a"}}});
    let body = call_body(invoked, "step", Some(INNGEST_FN_UUID));
    let (status, reply) = app.post("fnId=app-b&stepId=step", &body, Some(&sign(&body, NOW))).await;
    assert_eq!(status, 401, "{reply}");
    assert_eq!(b.counts(), (0, 0), "nothing ran");
}

#[tokio::test]
async fn a_captured_call_replayed_to_another_function_is_refused() {
    // A call the JS capture signed for `js-v4-two-steps`, delivered, then
    // sent again to another function of the app.
    let fixture = load("js-v4-cloud/two-steps-signed.01-discovery.json");
    let runs = Arc::new(Runs::default());
    let mut functions = fixture_functions();
    functions.push(counted("other", runs.clone()));
    let client = cloud_client("js-v4", "http://127.0.0.1:9", signed_at(&fixture) + 1);
    let app = App::start(ingot::serve(&client, functions)).await;
    let body = fixture["request"]["body_raw"].as_str().unwrap().as_bytes();
    let sig = common::header_of(&fixture["request"]["headers"], "x-inngest-signature").unwrap();

    let (status, reply) = app.post("fnId=js-v4-two-steps&stepId=step", body, Some(&sig)).await;
    assert_eq!(status, 206, "the genuine call: {reply}");
    let (status, reply) = app.post("fnId=js-v4-other&stepId=step", body, Some(&sig)).await;
    assert_eq!(status, 401, "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("already used"), "{reply}");
    assert_eq!(runs.counts(), (0, 0), "the other function did not run");
}

#[tokio::test]
async fn a_call_signed_for_one_step_is_refused_for_another() {
    let (app, a, _) = two_function_app().await;
    let event = json!({"name": "test/a", "data": {}});
    // A discovery call from Ingot, sent as if the engine asked for `greet`.
    for fn_id in [None, Some(ingot_fn_uuid("app-a"))] {
        let discovery = call_body(event.clone(), "step", fn_id.as_deref());
        let query = format!("fnId=app-a&stepId={GREET_HASH}");
        let (status, reply) = app.post(&query, &discovery, Some(&sign(&discovery, NOW))).await;
        assert_eq!(status, 401, "{fn_id:?}: {reply}");
        assert!(reply["message"].as_str().unwrap().contains("step"), "{reply}");
        assert_eq!(a.counts(), (0, 0), "{fn_id:?}: nothing ran");
    }
    // A call for `greet`, sent as discovery.
    let step = call_body(event.clone(), GREET_HASH, None);
    let (status, _) = app.post("fnId=app-a&stepId=step", &step, Some(&sign(&step, NOW))).await;
    assert_eq!(status, 401);
    assert_eq!(a.counts(), (0, 0), "nothing ran");
    // The genuine call for `greet` runs it.
    let (status, reply) = app.post(&format!("fnId=app-a&stepId={GREET_HASH}"), &step, Some(&sign(&step, NOW))).await;
    assert_eq!((status, reply[0]["id"].clone()), (206, json!(GREET_HASH)), "{reply}");
    assert_eq!(a.counts(), (1, 1));
    // Inngest puts its function's step id, `step`, in every call's ctx.
    let inngest = call_body(event, "step", Some(INNGEST_FN_UUID));
    let (status, reply) = app.post(&format!("fnId=app-a&stepId={GREET_HASH}"), &inngest, Some(&sign(&inngest, NOW))).await;
    assert_eq!((status, reply[0]["id"].clone()), (206, json!(GREET_HASH)), "{reply}");
    assert_eq!(a.counts(), (2, 2));
}

#[tokio::test]
async fn the_same_signed_request_is_accepted_once() {
    let (app, a, _) = two_function_app().await;
    let body = call_body(json!({"name": "test/a", "data": {}}), "step", None);
    let sig = sign(&body, NOW);
    let (status, _) = app.post("fnId=app-a&stepId=step", &body, Some(&sig)).await;
    assert_eq!(status, 206);
    assert_eq!(a.counts(), (1, 1));
    let (status, reply) = app.post("fnId=app-a&stepId=step", &body, Some(&sig)).await;
    assert_eq!(status, 401, "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("already used"), "{reply}");
    // Spelled differently, the header carries the same MAC.
    let (t, s) = sig.split_once('&').unwrap();
    let (status, _) = app.post("fnId=app-a&stepId=step", &body, Some(&format!("{s}&{t}"))).await;
    assert_eq!(status, 401);
    assert_eq!(a.counts(), (1, 1), "the handler ran once");
    // The engine re-signing the same body in another second is a new request.
    let (status, _) = app.post("fnId=app-a&stepId=step", &body, Some(&sign(&body, NOW - 1))).await;
    assert_eq!(status, 206);
    assert_eq!(a.counts(), (2, 2));

    // Trust probes and introspection are signed requests too.
    let probe = sign(b"{}", NOW);
    assert_eq!(app.post("probe=trust", b"{}", Some(&probe)).await.0, 200);
    assert_eq!(app.post("probe=trust", b"{}", Some(&probe)).await.0, 401);
    let get = || app.http.get(format!("{}/api/inngest", app.base)).header("x-inngest-signature", sign(b"", NOW));
    let (status, first) = read(get().send().await.unwrap()).await;
    assert_eq!((status, first["authentication_succeeded"].clone()), (200, json!(true)));
    assert_eq!(read(get().send().await.unwrap()).await.0, 401);
}

/// A cloud-mode client for `app` registering with `engine`, optionally
/// with a configured public origin.
fn cloud_app_client(engine: &FakeEngine, serve_origin: Option<&str>) -> Client {
    let mut b = ClientBuilder::new("app")
        .mode(ingot::Mode::Cloud)
        .base_url(&engine.base)
        .signing_key(signing_key())
        .event_key("test-event-key")
        .clock(Arc::new(|| Utc.timestamp_opt(NOW, 0).unwrap()));
    if let Some(origin) = serve_origin {
        b = b.serve_origin(origin);
    }
    b.build().unwrap()
}

/// The URLs a register body reports: the app's, and its functions' calls.
fn registered_urls(body: &Value) -> Vec<String> {
    let mut urls = vec![body["url"].as_str().unwrap().to_string()];
    for f in body["functions"].as_array().unwrap() {
        urls.push(f["steps"]["step"]["runtime"]["url"].as_str().unwrap().to_string());
    }
    urls
}

#[tokio::test]
async fn an_unsigned_put_cannot_move_the_app_in_cloud_mode() {
    let engine = FakeEngine::start(|_| (200, json!({"ok": true, "modified": true}))).await;
    let runs = Arc::new(Runs::default());
    let put = |app: &App, signature: Option<String>| {
        let body = json!({"url": format!("{}/api/inngest", app.base)}).to_string();
        let mut req = app
            .http
            .put(format!("{}/api/inngest", app.base))
            .header("x-inngest-server-kind", "cloud")
            .header("x-forwarded-host", "evil.example")
            .header("x-forwarded-proto", "https");
        if let Some(sig) = signature {
            req = req.header("x-inngest-signature", sig);
        }
        req.body(body)
    };

    // No configured origin: an unsigned PUT is refused, nothing registered.
    let app = App::start(ingot::serve(&cloud_app_client(&engine, None), [counted("a", runs.clone())])).await;
    let (status, reply) = read(put(&app, None).send().await.unwrap()).await;
    assert_eq!(status, 401, "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("INNGEST_SERVE_ORIGIN"), "{reply}");
    assert!(engine.requests().is_empty(), "no register: {:?}", engine.requests());
    // A bad signature is no signature.
    let (status, _) = read(put(&app, Some(sign(b"{}", NOW))).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert!(engine.requests().is_empty());

    // Signed: the URL in the signed body is registered, not the forged host.
    let body = json!({"url": format!("{}/api/inngest", app.base)}).to_string();
    let sig = sign(body.as_bytes(), NOW);
    let (status, reply) = read(put(&app, Some(sig.clone())).send().await.unwrap()).await;
    assert_eq!(status, 200, "{reply}");
    let seen = engine.requests();
    assert_eq!(seen.len(), 1);
    for url in registered_urls(&seen[0].body) {
        assert!(url.starts_with(&format!("{}/api/inngest", app.base)), "{url}");
    }
    // And only once.
    let (status, _) = read(put(&app, Some(sig)).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(engine.requests().len(), 1);

    // A configured origin: an unsigned PUT syncs, to the configured origin.
    let app = App::start(ingot::serve(&cloud_app_client(&engine, Some("https://jobs.example.com")), [counted("a", runs)])).await;
    let (status, reply) = read(put(&app, None).send().await.unwrap()).await;
    assert_eq!(status, 200, "{reply}");
    let seen = engine.requests();
    assert_eq!(seen.len(), 2);
    for url in registered_urls(&seen[1].body) {
        assert!(url.starts_with("https://jobs.example.com/api/inngest"), "{url}");
        assert!(!url.contains("evil"), "{url}");
    }
}
