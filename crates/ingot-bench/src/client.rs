//! The bench's side of the engine's HTTP API, shared by every phase: the
//! [`Bench`] handle, registering the bench functions, sending events and
//! waiting for runs to complete.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use ingot_engine::{Clock, Engine, EngineConfig};
use ingot_store::Store;

use crate::sdk::{self, Sdk, FUNCTIONS};

/// The minimal SDK endpoint served on a free loopback port; returns it and
/// its serve URL.
pub async fn serve_sdk() -> anyhow::Result<(Arc<Sdk>, String)> {
    let sdk = Sdk::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = sdk.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok((sdk, format!("http://{addr}/api/inngest")))
}

/// An engine on `store` served on a free loopback port: dev mode without
/// discovery, polling or app URLs, `tune` adjusting the rest; `start` runs
/// its loops (a phase that fills the store first starts them later or
/// never). Returns the engine and its origin.
pub async fn serve_engine(
    store: Arc<dyn Store>,
    tune: impl FnOnce(&mut EngineConfig),
    start: bool,
) -> anyhow::Result<(Arc<Engine>, String)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut config = EngineConfig::dev();
    config.discovery = false;
    config.poll = false;
    config.sdk_urls.clear();
    config.public_url = format!("http://{addr}");
    tune(&mut config);
    let engine = Engine::new(config, store, Clock::system()).await?;
    if start {
        engine.start();
    }
    let router = engine.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok((engine, format!("http://{addr}")))
}

/// What every phase needs.
pub struct Bench {
    pub engine_url: String,
    pub sdk_url: String,
    pub http: reqwest::Client,
    pub sdk: Arc<Sdk>,
    pub cores: usize,
}

pub async fn register(b: &Bench) -> anyhow::Result<()> {
    let functions: Vec<Value> = FUNCTIONS
        .iter()
        .map(|(id, event, steps)| {
            let concurrency = if id.ends_with("-conc") { json!([{"limit": sdk::CONC_LIMIT, "key": "event.data.k"}]) } else { Value::Null };
            json!({
                "concurrency": concurrency,
                "id": id,
                "name": format!("bench {steps} steps"),
                "triggers": [{"event": event}],
                "steps": {"step": {"id": "step", "name": "step", "runtime": {
                    "type": "http",
                    "url": format!("{}?fnId={id}&stepId=step", b.sdk_url),
                }}},
            })
        })
        .collect();
    let body = json!({
        "url": b.sdk_url, "appName": "bench", "sdk": "rust:v0", "v": "0.1",
        "framework": "axum", "deployType": "ping", "functions": functions,
    });
    let resp = b.http.post(format!("{}/fn/register", b.engine_url)).json(&body).send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        bail!("register failed: HTTP {status}: {text}");
    }
    Ok(())
}

/// POSTs `body` to `/e/bench` and checks the answer; returns the round trip.
pub async fn send_events(b: &Bench, body: impl Into<reqwest::Body>) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let resp = b.http.post(format!("{}/e/bench", b.engine_url)).header("Content-Type", "application/json").body(body).send().await?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    let rtt = t0.elapsed();
    if status != reqwest::StatusCode::OK {
        bail!("POST /e answered {status}: {}", String::from_utf8_lossy(&bytes));
    }
    Ok(rtt)
}

/// Polls `GET /v1/runs/{id}` (every 1 ms) until the run is Completed.
pub async fn wait_completed(b: &Bench, run_id: &str) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("{}/v1/runs/{run_id}", b.engine_url);
    loop {
        let resp = b.http.get(&url).send().await?;
        if resp.status().is_success() {
            let v: Value = resp.json().await?;
            match v.pointer("/data/status").and_then(Value::as_str) {
                Some("Completed") => return Ok(Instant::now()),
                Some("Failed") | Some("Cancelled") => bail!("run {run_id} ended: {v}"),
                _ => {}
            }
        }
        if Instant::now() > deadline {
            bail!("run {run_id} did not complete within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Sends one traced event and waits for the run to end at the SDK and in the
/// API. Returns (send instant, /e round trip, the calls, completion seen).
pub async fn traced_run(b: &Bench, event: &str) -> anyhow::Result<(Instant, Duration, sdk::Trace, Instant)> {
    let (seq, rx) = b.sdk.trace();
    let body = json!([{"name": event, "data": {"seq": seq, "rec": true}}]).to_string();
    let t0 = Instant::now();
    let rtt = send_events(b, body).await?;
    tokio::time::timeout(Duration::from_secs(30), rx)
        .await
        .with_context(|| format!("run for {event} seq {seq} did not finish within 30 s"))?
        .context("waiter dropped")?;
    let trace = b.sdk.take_trace(seq).context("no trace")?;
    let done = wait_completed(b, &trace.run_id).await?;
    Ok((t0, rtt, trace, done))
}
