//! Test harness: the whole app as the binary starts it ([`server::start`]),
//! with the Ingot engine embedded, both on 127.0.0.1 port 0, data in a
//! temporary folder, settings from a map (never the process environment),
//! and bounded waits on the engine's REST API.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use advert_01::jobs::webhook::destination::HostResolver;
use advert_01::server::{self, EngineChoice, Running, StartOptions};
use anyhow::{anyhow, bail, Context as _, Result};
use ingot::{Event, TypedEvent};
use ingot_core::backoff::RetryPolicy;
use serde_json::Value;

/// The longest any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(45);
/// How often waits poll.
const POLL: Duration = Duration::from_millis(50);
/// The embedded engine's retry delay in tests (instead of 15 s, 30 s, ...).
pub const RETRY_INTERVAL: Duration = Duration::from_millis(200);

/// Where [`run_id`]s and outputs come from: `GET /v1/runs/{id}`.
#[derive(Debug, Clone)]
pub struct Run {
    pub run_id: String,
    pub status: String,
    pub output: Value,
    pub raw: Value,
}

/// A running advert-01 with its embedded engine.
pub struct TestApp {
    pub running: Running,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

/// A settings lookup over fixed pairs.
pub fn lookup(vars: &[(&str, String)]) -> server::Lookup {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    Arc::new(move |k| map.get(k).cloned())
}

impl TestApp {
    /// Starts the app with these settings (plus a temporary data folder),
    /// and waits until the engine lists its functions.
    pub async fn start(vars: &[(&str, String)]) -> TestApp {
        TestApp::start_with(vars, server::system_resolver()).await
    }

    /// [`TestApp::start`] with webhook host names resolved by `resolver`.
    pub async fn start_with(vars: &[(&str, String)], resolver: Arc<dyn HostResolver>) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut all: Vec<(&str, String)> = vec![("ADVERT_DATA_DIR", dir.path().display().to_string())];
        all.extend(vars.iter().cloned());
        let opts = StartOptions {
            app_addr: "127.0.0.1:0".parse().unwrap(),
            engine: EngineChoice::Embedded { addr: "127.0.0.1:0".parse().unwrap(), db: None, retry: RetryPolicy::Fixed(RETRY_INTERVAL) },
            lookup: lookup(&all),
            resolver,
        };
        let running = server::start(opts).await.expect("starting advert-01");
        running.wait_synced(WAIT).await.expect("advert-01 synced with its engine");
        TestApp { running, dir, http: reqwest::Client::new() }
    }

    pub fn engine(&self) -> &str {
        &self.running.engine_url
    }

    pub fn app(&self) -> &str {
        &self.running.app_url
    }

    /// Sends a typed event through the app's client; returns its id.
    pub async fn send<E: Event>(&self, data: E::Data) -> String {
        self.running.client.send(TypedEvent::<E>::new(data)).await.expect("sending the event").to_string()
    }

    async fn get_json(&self, url: &str) -> Result<Value> {
        let r = self.http.get(url).send().await.with_context(|| format!("GET {url}"))?;
        let status = r.status();
        let body: Value = r.json().await.with_context(|| format!("GET {url}: not JSON"))?;
        if !status.is_success() {
            bail!("GET {url} answered {status}: {body}");
        }
        Ok(body)
    }

    /// Waits for the run of `fn_id` that event `event_id` started to finish.
    pub async fn wait_run(&self, event_id: &str, fn_id: &str) -> Result<Run> {
        let slug = format!("advert-01-{fn_id}");
        let url = format!("{}/v1/events/{event_id}/runs", self.engine());
        let started = Instant::now();
        loop {
            let body = self.get_json(&url).await.unwrap_or(Value::Null);
            let runs = body["data"].as_array().cloned().unwrap_or_default();
            if let Some(r) = runs.iter().find(|r| r["function_slug"] == slug.as_str()) {
                let status = r["status"].as_str().unwrap_or_default().to_string();
                if matches!(status.as_str(), "Completed" | "Failed" | "Cancelled") {
                    return Ok(Run {
                        run_id: r["run_id"].as_str().unwrap_or_default().to_string(),
                        status,
                        output: r["output"].clone(),
                        raw: r.clone(),
                    });
                }
            }
            if started.elapsed() > WAIT {
                bail!("the run of {slug} for event {event_id} did not finish in {WAIT:?}; runs: {body}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The run's steps and history (`GET /v1/runs/{id}/steps`):
    /// `{steps: [...], history: [...]}`.
    pub async fn steps(&self, run_id: &str) -> Result<Value> {
        let body = self.get_json(&format!("{}/v1/runs/{run_id}/steps", self.engine())).await?;
        body.get("data").filter(|d| d["steps"].is_array()).cloned().ok_or_else(|| anyhow!("no steps in {body}"))
    }

    /// Waits for an event named `name` whose data satisfies `pred`.
    pub async fn wait_event(&self, name: &str, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        let url = format!("{}/v1/events?name={name}&limit=100", self.engine());
        let started = Instant::now();
        loop {
            let body = self.get_json(&url).await?;
            if let Some(e) = body["data"].as_array().and_then(|a| a.iter().find(|e| pred(&e["data"]))) {
                return Ok(e.clone());
            }
            if started.elapsed() > WAIT {
                bail!("no {name} event matched in {WAIT:?}; seen: {body}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub async fn stop(self) {
        self.running.shutdown().await;
    }
}

/// Polls `check` until it returns `Some`, for at most [`WAIT`].
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}
