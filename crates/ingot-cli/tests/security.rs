//! What an attacker would try against the real `ingot` binary, over real HTTP
//! on loopback: each test makes the attack, asserts the refusal, and checks
//! that nothing changed (the victim's functions still point at its URL, no
//! run or event was created, the engine still answers).
//!
//! `ingot start` cases run the engine with a signing key and an event key;
//! `ingot dev` cases check the Host/Origin guard and that no run can wedge.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::ensure;
use ingot_protocol::signature::hashed_key;
use ingot_test_support::{EngineProc, RunStatus, Sdk, TestEnv};
use serde_json::{json, Value};

const SIGNING_KEY: &str = "signkey-test-4884fdaafea47c29fea7159d0daddd9c085d6200e1359e85bb81736af6b7c837";
const EVENT_KEY: &str = "evt-0123456789abcdef0123456789abcdef";

async fn start_engine() -> EngineProc {
    EngineProc::start_command("start", &["--signing-key", SIGNING_KEY, "--event-key", EVENT_KEY]).await.expect("ingot start")
}

fn bearer() -> String {
    format!("Bearer {}", hashed_key(SIGNING_KEY).expect("hex key"))
}

fn register_body(app: &str, url: &str, fn_ids: &[&str], expression: Option<&str>) -> Value {
    let functions: Vec<Value> = fn_ids
        .iter()
        .map(|id| {
            let mut trigger = json!({"event": "sec/test"});
            if let Some(e) = expression {
                trigger["expression"] = json!(e);
            }
            json!({
                "id": id, "name": id, "triggers": [trigger],
                "steps": {"step": {"id": "step", "name": "step",
                    "runtime": {"type": "http", "url": format!("{url}?fnId={id}&stepId=step")}}},
            })
        })
        .collect();
    json!({"url": url, "v": "0.1", "deployType": "ping", "sdk": "js:v3.0.0", "framework": "test", "appName": app, "functions": functions})
}

async fn post(e: &EngineProc, path: &str, auth: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = e.http.post(format!("{}{path}", e.base)).json(body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(e: &EngineProc, path: &str, auth: Option<&str>) -> (u16, Value) {
    let mut req = e.http.get(format!("{}{path}", e.base));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The step URL the engine holds for `slug`, read with the key.
async fn function_url(e: &EngineProc, app: &str, slug: &str) -> Option<String> {
    let (status, body) = get(e, &format!("/v1/apps/{app}/functions"), Some(&bearer())).await;
    assert_eq!(status, 200, "{body}");
    let f = body["data"].as_array()?.iter().find(|f| f["slug"] == json!(slug))?.clone();
    f.pointer("/config/steps/step/runtime/url").and_then(Value::as_str).map(str::to_string)
}

async fn runs(e: &EngineProc) -> Vec<Value> {
    let (status, body) = get(e, "/v1/runs?limit=1000", Some(&bearer())).await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn register_needs_the_hashed_signing_key() {
    let e = start_engine().await;
    let body = register_body("evil", "http://127.0.0.1:9/api/inngest", &["evil-f"], None);
    for auth in [None, Some("Bearer signkey-test-00"), Some("Bearer undefined"), Some("Bearer ")] {
        let (status, answer) = post(&e, "/fn/register", auth, &body).await;
        assert_eq!(status, 401, "{auth:?}: {answer}");
    }
    let (_, apps) = get(&e, "/v1/apps", Some(&bearer())).await;
    assert_eq!(apps["data"], json!([]), "nothing was registered");
    let (status, answer) = post(&e, "/fn/register", Some(&bearer()), &body).await;
    assert_eq!(status, 200, "the SDKs' own header is accepted: {answer}");
}

#[tokio::test]
async fn a_registration_cannot_take_over_another_apps_functions() {
    let e = start_engine().await;
    let victim = "http://127.0.0.1:9/victim/api/inngest";
    let (status, answer) = post(&e, "/fn/register", Some(&bearer()), &register_body("victim", victim, &["victim-pay"], None)).await;
    assert_eq!(status, 200, "{answer}");
    let attack = register_body("evil", "http://127.0.0.1:9/evil/api/inngest", &["victim-pay"], None);
    let (status, answer) = post(&e, "/fn/register", Some(&bearer()), &attack).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"].as_str().unwrap_or("").contains("belongs to app \"victim\""), "{answer}");
    let url = function_url(&e, "victim", "victim-pay").await.expect("the victim's function is still listed");
    assert!(url.starts_with(victim), "the function still points at the victim: {url}");
}

#[tokio::test]
async fn invoke_dev_and_the_rest_api_need_keys() {
    let e = start_engine().await;
    let (status, _) = post(&e, "/fn/register", Some(&bearer()), &register_body("app", "http://127.0.0.1:9/api", &["app-f"], None)).await;
    assert_eq!(status, 200);
    let (status, answer) = post(&e, "/invoke/app-f", None, &json!({"data": {}})).await;
    assert_eq!(status, 401, "{answer}");
    let (status, _) = post(&e, "/invoke/app-f", Some("Bearer evt-wrong-wrong-wrong-wrong"), &json!({"data": {}})).await;
    assert_eq!(status, 401);
    assert!(runs(&e).await.is_empty(), "no run was started");
    for path in [
        "/dev",
        "/v1/runs",
        "/v1/apps",
        "/v1/events",
        "/v0/runs/01JDQ8Z6V7C2K3M4N5P6Q7R8S9/actions",
        "/v1/functions",
        "/metrics",
        "/v1/queue/stats",
        "/v1/functions/app-f/stats",
    ] {
        let (status, body) = get(&e, path, None).await;
        assert_eq!(status, 401, "GET {path}: {body}");
    }
    for path in ["/v0/gql", "/v1/checkpoint/01JDQ8Z6V7C2K3M4N5P6Q7R8S9/async", "/v1/cancellations", "/v1/apps", "/v1/signals"] {
        let (status, body) = post(&e, path, None, &json!({})).await;
        assert_eq!(status, 401, "POST {path}: {body}");
    }
    let (status, _) = post(&e, "/e/not-the-key", None, &json!({"name": "sec/test"})).await;
    assert_eq!(status, 401, "a wrong event key");
    // With the keys the same requests work.
    let (status, answer) = post(&e, "/invoke/app-f", Some(&format!("Bearer {EVENT_KEY}")), &json!({"data": {}})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(get(&e, "/dev", Some(&bearer())).await.0, 200);
    assert_eq!(runs(&e).await.len(), 1);
}

#[tokio::test]
async fn hostile_expressions_and_bodies_do_not_kill_the_engine() {
    let e = start_engine().await;
    let deep = format!("{}event.data.a == 1{}", "(".repeat(100_000), ")".repeat(100_000));
    let negations = format!("{}true", "!".repeat(50_000));
    for (what, expression) in [("deep parentheses", deep), ("deep negations", negations)] {
        let body = register_body("app", "http://127.0.0.1:9/api", &["app-deep"], Some(&expression));
        let (status, answer) = post(&e, "/fn/register", Some(&bearer()), &body).await;
        assert_eq!(status, 400, "{what}: {answer}");
        assert_eq!(get(&e, "/health", None).await.0, 200, "the engine survived {what}");
    }
    // A body declared far over the limit is refused before it is read (and before auth).
    let mut stream = TcpStream::connect(("127.0.0.1", e.port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let head = "POST /fn/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n{";
    stream.write_all(head.as_bytes()).expect("write");
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).expect("the engine answers without waiting for the body");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("over the limit"), "{answer}");
    // A streamed body past the limit is cut off too (GraphQL allows 1 MiB).
    // Its own client: the engine closes the connection after refusing, which
    // must not break a pooled connection of the next request.
    let big = json!({"query": "x".repeat(2 * 1024 * 1024)});
    let once = reqwest::Client::builder().pool_max_idle_per_host(0).no_proxy().build().expect("client");
    let resp = once.post(format!("{}/v0/gql", e.base)).header("authorization", bearer()).json(&big).send().await.expect("request");
    assert_eq!(resp.status().as_u16(), 413);
    assert_eq!(get(&e, "/health", None).await.0, 200);
}

#[tokio::test]
async fn start_refuses_weak_keys_with_a_clear_message() {
    let cases: [(&[&str], &str); 4] = [
        (&["--signing-key", "signkey-prod-", "--event-key", EVENT_KEY], "signing key must be hex"),
        (&["--signing-key", "signkey-prod-not-hex-not-hex-not-hex-not-hex-xx", "--event-key", EVENT_KEY], "signing key must be hex"),
        (&["--signing-key", "signkey-prod-abcd", "--event-key", EVENT_KEY], "at least 32"),
        (&["--signing-key", SIGNING_KEY, "--event-key", "short"], "event keys must be at least"),
    ];
    for (args, needle) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ingot"))
            .args(["start", "--port", "0", "--db"])
            .arg(std::env::temp_dir().join(format!("ingot-sec-{}.db", std::process::id())))
            .args(args)
            .env_remove("INNGEST_SIGNING_KEY")
            .env_remove("INNGEST_EVENT_KEY")
            .output()
            .expect("running ingot");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// Sends `body` to the dev server with extra headers; returns the status.
fn raw_post(port: u16, path: &str, headers: &str, body: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let req = format!("POST {path} HTTP/1.1\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    stream.write_all(req.as_bytes()).expect("write");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn dev_mode_refuses_web_pages_of_other_sites() {
    let e = EngineProc::start(&[]).await.expect("ingot dev");
    let event = r#"{"name":"sec/csrf","data":{}}"#;
    let cases = [
        ("DNS rebinding", "Host: evil.example:8288\r\nContent-Type: application/json\r\n"),
        ("CSRF as text/plain", "Host: 127.0.0.1\r\nOrigin: https://evil.example\r\nContent-Type: text/plain\r\n"),
        ("a null origin", "Host: 127.0.0.1\r\nOrigin: null\r\nContent-Type: text/plain\r\n"),
        ("cross-site fetch", "Host: 127.0.0.1\r\nSec-Fetch-Site: cross-site\r\nContent-Type: text/plain\r\n"),
    ];
    for (what, headers) in cases {
        assert_eq!(raw_post(e.port, "/e/key", headers, event), 403, "{what}");
    }
    let (_, events) = get(&e, "/v1/events", None).await;
    assert_eq!(events["data"], json!([]), "no event was stored");
    // Tools, SDKs and the dashboard's own pages pass.
    assert_eq!(raw_post(e.port, "/e/key", "Host: localhost:8288\r\nContent-Type: application/json\r\n", event), 200);
    assert_eq!(raw_post(e.port, "/e/key", "Host: 127.0.0.1\r\nOrigin: http://127.0.0.1:8288\r\n", event), 200);
}

/// A 300 KB event is valid, but the `function.finished` event built from it
/// (trigger, events and output) is larger than a user event may be: the run
/// must still complete, emit its finished event, and a sleeping run with such
/// an event must still cancel.
#[tokio::test]
async fn a_large_event_never_wedges_its_run() {
    let env = TestEnv::start(Sdk::JsV4).await;
    let res = async {
        let name = "n".repeat(300 * 1024);
        let run = env.trigger_and_wait("e2e/hello", json!({"name": name}), "hello").await?;
        ensure!(run.status == RunStatus::Completed, "hello did not complete: {run}");
        let finished = env.wait_events_named("inngest/function.finished", 1).await?;
        ensure!(finished.iter().any(|f| f.to_string().contains(&run.run_id)), "no finished event for {}", run.run_id);

        let id = env.send_event("e2e/cancellable", json!({"blob": "b".repeat(300 * 1024)})).await?;
        let run = env.wait_run_started(&id, "cancellable").await?;
        env.cancel_run(&run.run_id).await?;
        let run = env.wait_run_status(&run.run_id, RunStatus::Cancelled).await?;
        ensure!(run.status == RunStatus::Cancelled, "{run}");
        Ok::<_, anyhow::Error>(())
    };
    res.await.unwrap();
}

/// The official JS SDK (v4) in cloud mode, unmodified, against `ingot start`:
/// the engine's signed PUT makes the app register with its hashed key, and a
/// run completes over signed calls. The same app with another signing key is
/// refused: it never registers and no call reaches it.
#[tokio::test]
async fn the_official_js_sdk_in_cloud_mode_runs_on_ingot_start() {
    official_sdk_in_cloud_mode(Sdk::JsV4).await;
}

/// The same with the official Python SDK (it sends the hash without the
/// `signkey-<env>-` prefix).
#[tokio::test]
async fn the_official_python_sdk_in_cloud_mode_runs_on_ingot_start() {
    official_sdk_in_cloud_mode(Sdk::Py).await;
}

async fn official_sdk_in_cloud_mode(sdk: Sdk) {
    let root = ingot_test_support::repo_root();
    let app = |port: u16, app_id: &str, key: &str, engine_port: u16| {
        let mut cmd = match sdk {
            Sdk::Py => {
                let dir = root.join("tests/sdk-apps/py");
                assert!(dir.join(".venv/bin/python").exists(), "run scripts/setup-test-deps.sh first");
                let mut cmd = std::process::Command::new(dir.join(".venv/bin/python"));
                cmd.arg("app.py").current_dir(dir);
                cmd
            }
            _ => {
                let dir = root.join("tests/sdk-apps/js");
                assert!(dir.join("node_modules/inngest-v4").is_dir(), "run scripts/setup-test-deps.sh first");
                let mut cmd = std::process::Command::new("node");
                cmd.arg("app.cjs").current_dir(dir).env("SDK_MAJOR", "4");
                cmd
            }
        };
        ingot_test_support::scrub_inngest_env(&mut cmd);
        cmd.env("PORT", port.to_string())
            .env("APP_ID", app_id)
            .env("INNGEST_DEV", "0")
            .env("INNGEST_SIGNING_KEY", key)
            .env("INNGEST_EVENT_KEY", EVENT_KEY)
            .env("INNGEST_BASE_URL", format!("http://127.0.0.1:{engine_port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        KillOnDrop(cmd.spawn().expect("node"))
    };
    let (good_port, bad_port) = (ingot_test_support::free_port(), ingot_test_support::free_port());
    let urls = [format!("http://127.0.0.1:{good_port}/api/inngest"), format!("http://127.0.0.1:{bad_port}/api/inngest")];
    let mut args = vec!["--signing-key", SIGNING_KEY, "--event-key", EVENT_KEY];
    for u in &urls {
        args.extend(["-u", u.as_str()]);
    }
    // Apps first, so the engine's first (signed) PUT reaches them.
    let engine_port = ingot_test_support::free_port();
    let _good = app(good_port, "cloud-good", SIGNING_KEY, engine_port);
    let other_key = "signkey-prod-1111111111111111111111111111111111111111111111111111111111111111";
    let _bad = app(bad_port, "cloud-bad", other_key, engine_port);
    for url in &urls {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while reqwest::get(url).await.is_err() {
            assert!(std::time::Instant::now() < deadline, "{url} never listened");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let e = EngineProc::start_on("start", engine_port, &args).await.expect("ingot start");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, apps) = get(&e, "/v1/apps", Some(&bearer())).await;
        let ids: Vec<&str> = apps["data"].as_array().map(|a| a.iter().filter_map(|x| x["id"].as_str()).collect()).unwrap_or_default();
        if ids.contains(&"cloud-good") {
            assert!(!ids.contains(&"cloud-bad"), "an app with another signing key registered: {apps}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the app never registered: {apps}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, sent) = post(&e, &format!("/e/{EVENT_KEY}"), None, &json!({"name": "e2e/hello", "data": {"name": "Cloud"}})).await;
    assert_eq!(status, 200, "{sent}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let runs = runs(&e).await;
        if let Some(run) = runs.iter().find(|r| r["status"] != json!("Running")) {
            assert_eq!(run["status"], json!("Completed"), "{run}");
            assert_eq!(run["output"], json!({"message": "Hello Cloud"}));
            assert_eq!(runs.len(), 1, "only the registered app's function ran: {runs:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the run never finished: {runs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A child process killed when the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
