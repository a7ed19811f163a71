//! Flow control under load, against the real `ingot` binary and an
//! in-process fake SDK (axum on 127.0.0.1:0) that speaks the call protocol:
//! every function runs steps `s0`, `s1`, `s2` (one per call, answered 206
//! with a `StepRun` op), then answers 200.
//!
//! The fake SDK measures what the engine does from the outside: how many
//! calls are in flight at once per concurrency key, when each run's first
//! call arrives, and which runs finished (the 200). Each test has its own
//! engine ([`EngineProc`]), bounded to well under a minute.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use ingot_test_support::EngineProc;
use serde_json::{json, Value};

/// Steps each run takes before it returns.
const STEPS: usize = 3;
/// The concurrency limit of `load-conc` (per `event.data.k`).
const CONC_LIMIT: usize = 3;
/// Distinct concurrency keys.
const KEYS: u64 = 5;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the fake SDK saw.
#[derive(Default)]
struct Seen {
    /// Calls in flight now, per function and key.
    in_flight: HashMap<String, usize>,
    /// The most calls in flight at once, per function and key.
    max_in_flight: HashMap<String, usize>,
    /// Per event `n`: the runs that finished (answered 200), with how often.
    finished: HashMap<u64, HashMap<String, usize>>,
    /// Per run, when its first call arrived (ms since the SDK started).
    first_call: HashMap<String, u64>,
}

struct FakeSdk {
    seen: Mutex<Seen>,
    calls: AtomicU64,
    /// How long each call takes, so overlapping calls are visible.
    hold: Duration,
    started: Instant,
    step_ids: Vec<String>,
}

/// Decrements the in-flight count of a key when the call ends (or the
/// engine hangs up and the handler is dropped).
struct InFlight<'a> {
    sdk: &'a FakeSdk,
    key: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(n) = lock(&self.sdk.seen).in_flight.get_mut(&self.key) {
            *n -= 1;
        }
    }
}

impl FakeSdk {
    fn new(hold: Duration) -> Arc<FakeSdk> {
        Arc::new(FakeSdk {
            seen: Mutex::default(),
            calls: AtomicU64::new(0),
            hold,
            started: Instant::now(),
            step_ids: (0..STEPS).map(|k| ingot_protocol::hash_step_id(&format!("s{k}"))).collect(),
        })
    }

    fn enter(&self, key: String) -> InFlight<'_> {
        let mut seen = lock(&self.seen);
        let n = seen.in_flight.entry(key.clone()).or_default();
        *n += 1;
        let now = *n;
        let max = seen.max_in_flight.entry(key.clone()).or_default();
        *max = (*max).max(now);
        InFlight { sdk: self, key }
    }

    /// Events (by `n`) that have at least one finished run.
    fn finished_count(&self) -> usize {
        lock(&self.seen).finished.len()
    }

    /// Serves the SDK on a free port; returns its URL.
    async fn serve(self: &Arc<Self>) -> Result<String> {
        let app = Router::new().route("/api/inngest", post(call).put(ping)).with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/api/inngest", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(url)
    }
}

fn reply(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .header("X-Inngest-SDK", "ingot-flow-load:v0")
        .header("X-Inngest-Req-Version", "2")
        .body(Body::from(body))
        .expect("static headers are valid")
}

async fn ping() -> Response {
    reply(StatusCode::OK, "{}".into())
}

async fn call(State(sdk): State<Arc<FakeSdk>>, Query(q): Query<HashMap<String, String>>, body: Bytes) -> Response {
    sdk.calls.fetch_add(1, Ordering::Relaxed);
    let at = sdk.started.elapsed().as_millis() as u64;
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return reply(StatusCode::BAD_REQUEST, json!({"name": "Error", "message": e.to_string()}).to_string()),
    };
    let function = q.get("fnId").cloned().unwrap_or_default();
    let run_id = req["ctx"]["run_id"].as_str().unwrap_or_default().to_string();
    let data = &req["event"]["data"];
    let key = format!("{function}:{}", data["k"]);
    let done = req["steps"].as_object().map_or(0, |s| s.len());
    lock(&sdk.seen).first_call.entry(run_id.clone()).or_insert(at);
    let _in_flight = sdk.enter(key);
    tokio::time::sleep(sdk.hold).await;
    if done < STEPS {
        let op = json!([{"id": sdk.step_ids[done], "op": "StepRun", "name": format!("s{done}"), "data": done}]);
        return reply(StatusCode::PARTIAL_CONTENT, op.to_string());
    }
    let n = data["n"].as_u64().unwrap_or(u64::MAX);
    *lock(&sdk.seen).finished.entry(n).or_default().entry(run_id).or_default() += 1;
    reply(StatusCode::OK, json!({"n": n}).to_string())
}

/// Registers the fake SDK's functions with the engine.
async fn register(engine: &EngineProc, sdk_url: &str) -> Result<()> {
    let function = |id: &str, event: &str, flow: Value| {
        let mut f = json!({
            "id": id,
            "name": id,
            "triggers": [{"event": event}],
            "steps": {"step": {"id": "step", "name": "step", "runtime": {"type": "http", "url": format!("{sdk_url}?fnId={id}&stepId=step")}}},
        });
        for (k, v) in flow.as_object().into_iter().flatten() {
            f[k] = v.clone();
        }
        f
    };
    let body = json!({
        "url": sdk_url, "appName": "load", "sdk": "rust:v0", "v": "0.1", "framework": "axum", "deployType": "ping",
        "functions": [
            function("load-conc", "load/conc", json!({"concurrency": [{"limit": CONC_LIMIT, "key": "event.data.k"}]})),
            function("load-throttle", "load/throttle", json!({"throttle": {"limit": 10, "period": "1s"}})),
        ],
    });
    let r = engine.http.post(format!("{}/fn/register", engine.base)).json(&body).send().await.context("POST /fn/register")?;
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    ensure!(status.is_success(), "POST /fn/register answered {status} {text}");
    Ok(())
}

/// `POST /e/load` with these events; errors if not accepted.
async fn send(engine: &EngineProc, events: &[Value]) -> Result<()> {
    let r = engine.http.post(format!("{}/e/load", engine.base)).json(events).send().await.context("POST /e/load")?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    ensure!(status.is_success() && body["status"] == json!(200), "POST /e/load answered {status} {body}");
    Ok(())
}

fn conc_events(range: std::ops::Range<u64>) -> Vec<Value> {
    range.map(|n| json!({"name": "load/conc", "data": {"n": n, "k": n % KEYS}})).collect()
}

/// Polls until the fake SDK has seen `n` distinct events finish.
async fn wait_finished(sdk: &FakeSdk, n: usize, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while sdk.finished_count() < n {
        if Instant::now() > deadline {
            bail!(
                "after {timeout:?}, {} of {n} events have a finished run ({} calls)",
                sdk.finished_count(),
                sdk.calls.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Runs of `function` with `status`, as the REST API lists them (up to `limit`).
async fn runs_with_status(engine: &EngineProc, function: &str, status: &str, limit: usize) -> Result<Vec<Value>> {
    let url = format!("{}/v1/runs", engine.base);
    let limit = limit.to_string();
    let r = engine.http.get(&url).query(&[("function", function), ("status", status), ("limit", limit.as_str())]).send().await?;
    let body: Value = r.json().await?;
    body["data"].as_array().cloned().with_context(|| format!("GET /v1/runs: {body}"))
}

/// Waits until the engine reports no run of `function` Running, and none
/// Failed or Cancelled.
async fn wait_all_completed(engine: &EngineProc, function: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let running = runs_with_status(engine, function, "Running", 5).await?;
        if running.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("runs of {function} still Running after {timeout:?}: {running:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for status in ["Failed", "Cancelled"] {
        let bad = runs_with_status(engine, function, status, 5).await?;
        ensure!(bad.is_empty(), "runs of {function} ended {status}: {bad:?}");
    }
    Ok(())
}

/// Every event `0..n` finished in exactly one run (a run may be called
/// again after a crash, but an event never gets two runs).
fn check_one_run_each(sdk: &FakeSdk, n: u64) -> Result<()> {
    let seen = lock(&sdk.seen);
    let missing: Vec<u64> = (0..n).filter(|i| !seen.finished.contains_key(i)).collect();
    ensure!(missing.is_empty(), "{} events never finished: {:?}", missing.len(), &missing[..missing.len().min(20)]);
    let doubled: BTreeMap<&u64, &HashMap<String, usize>> = seen.finished.iter().filter(|(_, runs)| runs.len() > 1).collect();
    ensure!(doubled.is_empty(), "events with more than one run: {doubled:?}");
    Ok(())
}

fn max_in_flight(sdk: &FakeSdk, function: &str) -> BTreeMap<String, usize> {
    lock(&sdk.seen).max_in_flight.iter().filter(|(k, _)| k.starts_with(function)).map(|(k, v)| (k.clone(), *v)).collect()
}

/// 2,000 events over 5 keys to a function with `concurrency {limit: 3, key:
/// event.data.k}`: never more than 3 calls in flight per key, every run
/// completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_limit_holds_under_load() {
    let engine = EngineProc::start(&[]).await.expect("engine");
    let sdk = FakeSdk::new(Duration::from_millis(2));
    let result = async {
        let url = sdk.serve().await?;
        register(&engine, &url).await?;
        let total = 2000u64;
        let t0 = Instant::now();
        for chunk in (0..total).collect::<Vec<_>>().chunks(250) {
            send(&engine, &conc_events(chunk[0]..chunk[chunk.len() - 1] + 1)).await?;
        }
        wait_finished(&sdk, total as usize, Duration::from_secs(50)).await?;
        let took = t0.elapsed();
        wait_all_completed(&engine, "load-conc", Duration::from_secs(5)).await?;
        check_one_run_each(&sdk, total)?;
        let max = max_in_flight(&sdk, "load-conc");
        eprintln!(
            "concurrency load: {total} runs, {} calls in {took:?} ({:.0} calls/s); max in flight per key: {max:?}",
            sdk.calls.load(Ordering::Relaxed),
            sdk.calls.load(Ordering::Relaxed) as f64 / took.as_secs_f64()
        );
        ensure!(max.len() == KEYS as usize, "calls seen for {} keys, wanted {KEYS}: {max:?}", max.len());
        for (key, m) in &max {
            ensure!(*m <= CONC_LIMIT, "key {key}: {m} calls in flight at once, limit {CONC_LIMIT}");
        }
        ensure!(max.values().any(|m| *m == CONC_LIMIT), "no key ever reached its limit of {CONC_LIMIT}: {max:?}");
        Ok::<_, anyhow::Error>(())
    }
    .await;
    // Panicking while `engine` is alive prints its log.
    result.unwrap_or_else(|e| panic!("{e:#}"));
}

/// Sends 30 events to `load-throttle` (`throttle {limit: 10, period: "1s"}`)
/// at once; returns the runs' first-call times (ms, sorted, relative to the
/// first).
async fn throttle_starts(engine: &EngineProc, sdk: &Arc<FakeSdk>) -> Result<Vec<u64>> {
    let url = sdk.serve().await?;
    register(engine, &url).await?;
    let events: Vec<Value> = (0..30u64).map(|n| json!({"name": "load/throttle", "data": {"n": n}})).collect();
    send(engine, &events).await?;
    wait_finished(sdk, 30, Duration::from_secs(20)).await?;
    wait_all_completed(engine, "load-throttle", Duration::from_secs(5)).await?;
    check_one_run_each(sdk, 30)?;
    let mut starts: Vec<u64> = lock(&sdk.seen).first_call.values().copied().collect();
    starts.sort();
    ensure!(starts.len() == 30, "{} runs called, wanted 30", starts.len());
    Ok(starts.iter().map(|s| s - starts[0]).collect())
}

/// Throttle 10/s: no run is dropped, no 1 s window holds more than 10
/// starts, and 30 simultaneous arrivals take at least 2 s to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttle_spreads_starts_under_load() {
    let engine = EngineProc::start(&[]).await.expect("engine");
    let sdk = FakeSdk::new(Duration::from_millis(1));
    let starts = throttle_starts(&engine, &sdk).await.unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!("throttle 10/1s, 30 at once: first calls at {starts:?} ms");
    // Timer and scheduling slack of the engine's queue.
    let slack = 60;
    for i in 0..starts.len().saturating_sub(10) {
        let window = starts[i + 10] - starts[i];
        assert!(window + slack >= 1000, "11 runs started within {window} ms (starts #{i}..#{}): {starts:?}", i + 10);
    }
    assert!(starts[29] + slack >= 2000, "30 runs at 10/s started within {} ms: {starts:?}", starts[29]);
}

/// Inngest's throttle (pkg/constraintapi gcra.lua `throttle`) lets
/// `burst + 1` runs start at once and then one every `period / limit`: with
/// limit 10 per 1 s and no burst, starts are at least 100 ms apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttle_smooths_starts_like_inngest() {
    let engine = EngineProc::start(&[]).await.expect("engine");
    let sdk = FakeSdk::new(Duration::from_millis(1));
    let starts = throttle_starts(&engine, &sdk).await.unwrap_or_else(|e| panic!("{e:#}"));
    let slack = 60;
    for (i, s) in starts.iter().enumerate() {
        let earliest = i as u64 * 100;
        assert!(s + slack >= earliest, "start #{i} at {s} ms, before {earliest} ms (one per 100 ms): {starts:?}");
    }
}

/// SIGKILL the engine while 1,000 keyed-concurrency runs are in progress,
/// restart it on the same database and port: every accepted event still
/// completes, in exactly one run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_load_loses_nothing() {
    let mut engine = EngineProc::start(&[]).await.expect("engine");
    let sdk = FakeSdk::new(Duration::from_millis(2));
    let result = async {
        let url = sdk.serve().await?;
        register(&engine, &url).await?;
        let total = 1000u64;
        let half = total / 2;
        for chunk in (0..half).collect::<Vec<_>>().chunks(250) {
            send(&engine, &conc_events(chunk[0]..chunk[chunk.len() - 1] + 1)).await?;
        }
        // Kill once a good part of the runs is done and the rest in flight.
        wait_finished(&sdk, (half / 3) as usize, Duration::from_secs(30)).await?;
        let at_kill = sdk.finished_count();
        engine.kill_hard()?;
        // Calls the dead engine made may still be running in the SDK.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t_restart = Instant::now();
        engine.restart().await?;
        eprintln!("killed with {at_kill} of {half} events finished; restarted in {:?}", t_restart.elapsed());
        for chunk in (half..total).collect::<Vec<_>>().chunks(250) {
            send(&engine, &conc_events(chunk[0]..chunk[chunk.len() - 1] + 1)).await?;
        }
        wait_finished(&sdk, total as usize, Duration::from_secs(40)).await?;
        wait_all_completed(&engine, "load-conc", Duration::from_secs(10)).await?;
        check_one_run_each(&sdk, total)?;
        let completed = runs_with_status(&engine, "load-conc", "Completed", 1000).await?;
        ensure!(completed.len() == total as usize, "{} runs Completed after the restart, wanted {total}", completed.len());
        eprintln!(
            "after SIGKILL: all {total} events completed; max in flight per key (across the kill): {:?}",
            max_in_flight(&sdk, "load-conc")
        );
        Ok::<_, anyhow::Error>(())
    }
    .await;
    // Panicking while `engine` is alive prints its log.
    result.unwrap_or_else(|e| panic!("{e:#}"));
}
