//! End-to-end harness: runs the `ingot` binary against a test app built on an
//! official Inngest SDK (tests/sdk-apps/{js,py}) and talks to the engine's
//! event and REST APIs the way a user would.
//!
//! Each test gets its own [`TestEnv`]: a temp dir, an engine on a free port
//! with its database in that dir, and one SDK app on another free port. Both
//! processes write their output to files in the temp dir; the files (and the
//! app's E2E_LOG) are printed when the test panics, and both processes are
//! killed when the `TestEnv` is dropped.
//!
//! The SDK apps need `scripts/setup-test-deps.sh` to have been run. The
//! binaries (`ingot`, and the Rust SDK apps `ingot-e2e-rust-app` and
//! `ingot-e2e-rust-flow-app`) are bins of `ingot-cli`, whose integration tests
//! use this crate: cargo builds them before those tests, and [`bin_path`]
//! finds them.

use std::fmt;
use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::{json, Value};

/// How long any single wait in a test may take before it fails.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the waits poll the engine.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Starting the engine and the app and syncing them is allowed this long
/// (node and Python start-up on a loaded 2-core machine is slow).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of each log printed on failure (the tail is kept).
const LOG_DUMP_LIMIT: usize = 128 * 1024;

/// Which official SDK serves the test app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sdk {
    /// npm `inngest@^3` (alias `inngest-v3`).
    JsV3,
    /// npm `inngest@^4` (alias `inngest-v4`).
    JsV4,
    /// PyPI `inngest` on Flask.
    Py,
    /// This repository's Rust SDK (`ingot` crate): the binary
    /// `ingot-e2e-rust-app` (or `ingot-e2e-rust-flow-app`) of `ingot-cli`.
    Rust,
}

impl Sdk {
    /// The app id the test app registers under; function slugs are
    /// `<app id>-<function id>`.
    pub fn app_id(self) -> &'static str {
        match self {
            Sdk::JsV3 => "e2e-js-v3",
            Sdk::JsV4 => "e2e-js-v4",
            Sdk::Py => "e2e-py",
            Sdk::Rust => "e2e-rust",
        }
    }

    /// The default test app (`js/app.cjs` or `py/app.py`) under its usual id.
    pub fn default_app(self) -> TestApp {
        let file = match self {
            Sdk::JsV3 | Sdk::JsV4 => "app.cjs",
            Sdk::Py => "app.py",
            Sdk::Rust => RUST_APP_BIN,
        };
        TestApp { file, app_id: self.app_id().to_string() }
    }

    /// The flow-control test app (`js/flow-app.cjs`, `py/flow_app.py`, or
    /// for Rust the binary `ingot-e2e-rust-flow-app`), registered as
    /// `flow-js-v3`, `flow-js-v4`, `flow-py` or `flow-rust`.
    pub fn flow_app(self) -> TestApp {
        let (file, app_id) = match self {
            Sdk::JsV3 => ("flow-app.cjs", "flow-js-v3"),
            Sdk::JsV4 => ("flow-app.cjs", "flow-js-v4"),
            Sdk::Py => ("flow_app.py", "flow-py"),
            Sdk::Rust => (RUST_FLOW_APP_BIN, "flow-rust"),
        };
        TestApp { file, app_id: app_id.to_string() }
    }
}

/// The `ingot-cli` binary that serves the Rust SDK app (`tests/apps/rust_app.rs`).
const RUST_APP_BIN: &str = "ingot-e2e-rust-app";
/// The `ingot-cli` binary that serves the Rust SDK flow-control app
/// (`tests/apps/rust_flow_app.rs`).
const RUST_FLOW_APP_BIN: &str = "ingot-e2e-rust-flow-app";

/// Which app a [`TestEnv`] serves (a file in `tests/sdk-apps/js` or `.../py`,
/// or for Rust a binary name) and the app id it registers under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestApp {
    pub file: &'static str,
    pub app_id: String,
}

/// Run status as reported by `GET /v1/runs/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    Cancelled,
    /// Any status this harness does not know (e.g. queued); not terminal.
    Other(String),
}

impl RunStatus {
    fn parse(s: &str) -> Self {
        match s {
            "Running" => RunStatus::Running,
            "Completed" => RunStatus::Completed,
            "Failed" => RunStatus::Failed,
            "Cancelled" => RunStatus::Cancelled,
            other => RunStatus::Other(other.to_string()),
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self, RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled)
    }
}

/// One function run, as the REST API reports it.
#[derive(Debug, Clone)]
pub struct Run {
    pub run_id: String,
    pub function_slug: String,
    pub status: RunStatus,
    /// The run's output (`null` when absent): the return value, or the error.
    pub output: Value,
    /// The whole JSON object, for failure messages and extra fields.
    pub raw: Value,
}

impl Run {
    fn from_json(v: &Value) -> Result<Run> {
        let str_field =
            |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string).ok_or_else(|| anyhow!("run has no string field {k:?}: {v}"));
        Ok(Run {
            run_id: str_field("run_id")?,
            function_slug: str_field("function_slug")?,
            status: RunStatus::parse(&str_field("status")?),
            output: v.get("output").cloned().unwrap_or(Value::Null),
            raw: v.clone(),
        })
    }

    /// The output as text, for "mentions X" checks that should not depend on
    /// the exact shape of an error object.
    pub fn output_text(&self) -> String {
        match &self.output {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.raw)
    }
}

/// One line of the app's E2E_LOG: a step body, function body or onFailure
/// handler ran.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub func: String,
    pub step: Option<String>,
    pub run_id: Option<String>,
    pub attempt: Option<u64>,
    /// When the line was written (`Date.now()` in the JS app), ms since the epoch.
    pub t: Option<i64>,
    pub raw: Value,
}

/// A child process that is killed when dropped; its stdout and stderr go to
/// `log`.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> Result<Proc> {
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().with_context(|| format!("spawning {name}: {cmd:?}"))?;
        Ok(Proc { name, child, log })
    }

    /// Fails if the process has already exited.
    fn ensure_alive(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!("{} exited early with {status}; see its log below", self.name),
        }
    }

    /// SIGKILL (`Child::kill` on unix) and reap: no shutdown, no flush.
    fn kill_hard(&mut self) -> Result<()> {
        self.child.kill().with_context(|| format!("killing {}", self.name))?;
        self.child.wait().with_context(|| format!("reaping {}", self.name))?;
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An engine plus one SDK app, in their own temp dir.
pub struct TestEnv {
    pub sdk: Sdk,
    /// The id the app registers under (`Sdk::app_id` for the default app).
    pub app_id: String,
    /// Engine origin, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    /// The app's serve URL (`http://127.0.0.1:<port>/api/inngest`).
    pub app_url: String,
    pub http: reqwest::Client,
    e2e_log: PathBuf,
    engine_port: u16,
    /// Logs of engine processes killed by [`TestEnv::kill_engine_hard`].
    old_engine_logs: Vec<PathBuf>,
    // Dropped in field order: the app, then the engine, then the directory.
    app: Proc,
    engine: Proc,
    dir: Option<tempfile::TempDir>,
}

impl TestEnv {
    /// The directory holding the engine's database (SQLite), logs and E2E_LOG.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("dir is kept until drop").path()
    }

    /// The log of the running engine process.
    pub fn engine_log(&self) -> &Path {
        &self.engine.log
    }

    /// The engine's PostgreSQL database, when the engines under test run on
    /// PostgreSQL (`INGOT_TEST_STORE=postgres`): another engine given it
    /// shares this one's work.
    pub fn database_uri(&self) -> Option<String> {
        store::on_postgres().then(|| store::database_for(self.dir()))
    }

    /// Starts the app and the engine and waits until the app is synced.
    /// Panics (after printing both logs) if that does not happen in time.
    pub async fn start(sdk: Sdk) -> TestEnv {
        TestEnv::start_app(sdk, sdk.default_app()).await
    }

    /// Like [`TestEnv::start`], with another app file (e.g. [`Sdk::flow_app`]).
    pub async fn start_app(sdk: Sdk, app: TestApp) -> TestEnv {
        let dir = tempfile::Builder::new().prefix(&format!("ingot-e2e-{}-", app.app_id)).tempdir().expect("creating temp dir");
        let engine_port = free_port();
        let app_port = free_port();
        let base = format!("http://127.0.0.1:{engine_port}");
        let app_url = format!("http://127.0.0.1:{app_port}/api/inngest");
        let e2e_log = dir.path().join("e2e-log.jsonl");
        File::create(&e2e_log).expect("creating E2E_LOG");

        // The app first, so the engine's first sync attempt can already reach it.
        let app_proc = Proc::spawn("sdk app", app_command(sdk, &app, app_port, &base, &e2e_log), dir.path().join("app.log"))
            .unwrap_or_else(|e| panic!("{e:#}"));
        let engine = Proc::spawn("engine", engine_command(engine_port, &app_url, dir.path()), dir.path().join("engine.log"))
            .unwrap_or_else(|e| panic!("{e:#}"));

        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).no_proxy().build().expect("building HTTP client");
        let mut env = TestEnv {
            sdk,
            app_id: app.app_id,
            base,
            app_url,
            http,
            e2e_log,
            engine_port,
            old_engine_logs: Vec::new(),
            app: app_proc,
            engine,
            dir: Some(dir),
        };
        if let Err(e) = env.wait_ready().await {
            // Panicking here drops `env`, which prints the logs.
            panic!("test environment for {sdk:?} did not come up: {e:#}");
        }
        env
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let health = format!("{}/health", self.base);
        loop {
            self.engine.ensure_alive()?;
            if let Ok(r) = self.http.get(&health).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!("engine never answered GET /health with 200");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        // The SDK's unauthenticated introspection: proves the app is serving.
        loop {
            self.app.ensure_alive()?;
            if let Ok(r) = self.http.get(&self.app_url).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!("app never answered GET {} with 200", self.app_url);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        let url = format!("{}/v1/apps/{}/functions", self.base, self.app_id);
        loop {
            self.engine.ensure_alive()?;
            self.app.ensure_alive()?;
            let last = match self.http.get(&url).send().await {
                Ok(r) => {
                    let status = r.status();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    let synced = status.is_success() && body["data"].as_array().is_some_and(|fns| !fns.is_empty());
                    if synced {
                        return Ok(());
                    }
                    format!("{status} {body}")
                }
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                bail!("app {} never synced; last GET {url}: {last}", self.app_id);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The composite id (slug) of one of the app's functions.
    pub fn slug(&self, fn_id: &str) -> String {
        format!("{}-{fn_id}", self.app_id)
    }

    // ---- events ---------------------------------------------------------

    /// `POST /e/test` with one event or an array; returns the internal ids.
    pub async fn send(&self, events: Value) -> Result<Vec<String>> {
        let url = format!("{}/e/test", self.base);
        let r = self.http.post(&url).json(&events).send().await.context("POST /e/test")?;
        let status = r.status();
        let body: Value = r.json().await.context("POST /e/test: body is not JSON")?;
        if !status.is_success() || body["status"] != json!(200) {
            bail!("POST /e/test answered {status} {body}");
        }
        let ids = body["ids"]
            .as_array()
            .ok_or_else(|| anyhow!("POST /e/test: no ids in {body}"))?
            .iter()
            .map(|id| id.as_str().map(str::to_string).ok_or_else(|| anyhow!("non-string id in {body}")))
            .collect::<Result<Vec<_>>>()?;
        let sent = if events.is_array() { events.as_array().map_or(0, Vec::len) } else { 1 };
        if ids.len() != sent {
            bail!("POST /e/test: sent {sent} events, got {} ids: {body}", ids.len());
        }
        Ok(ids)
    }

    /// Sends one event and returns its internal id.
    pub async fn send_event(&self, name: &str, data: Value) -> Result<String> {
        let ids = self.send(json!({ "name": name, "data": data })).await?;
        Ok(ids.into_iter().next().expect("send checked the id count"))
    }

    /// `GET /v1/events?name=...`: the stored events with that name.
    pub async fn events_named(&self, name: &str) -> Result<Vec<Value>> {
        let url = format!("{}/v1/events", self.base);
        let body = self.get_json(self.http.get(&url).query(&[("name", name)])).await?;
        body["data"].as_array().cloned().ok_or_else(|| anyhow!("GET /v1/events?name={name}: no data array in {body}"))
    }

    /// Polls until at least `n` events with this name are stored.
    pub async fn wait_events_named(&self, name: &str, n: usize) -> Result<Vec<Value>> {
        let deadline = Deadline::after(WAIT_TIMEOUT);
        loop {
            let events = self.events_named(name).await?;
            if events.len() >= n {
                return Ok(events);
            }
            deadline.tick().await.with_context(|| format!("waiting for {n} events named {name}; seen: {events:?}"))?;
        }
    }

    // ---- runs -----------------------------------------------------------

    /// `GET /v1/events/{id}/runs`. A 404 counts as "no runs yet".
    pub async fn runs_for_event(&self, event_id: &str) -> Result<Vec<Run>> {
        let url = format!("{}/v1/events/{event_id}/runs", self.base);
        let r = self.http.get(&url).send().await.with_context(|| format!("GET {url}"))?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        let status = r.status();
        let body: Value = r.json().await.with_context(|| format!("GET {url}: body is not JSON"))?;
        if !status.is_success() {
            bail!("GET {url} answered {status} {body}");
        }
        body["data"].as_array().ok_or_else(|| anyhow!("GET {url}: no data array in {body}"))?.iter().map(Run::from_json).collect()
    }

    /// `GET /v1/runs/{id}`.
    pub async fn run(&self, run_id: &str) -> Result<Run> {
        let url = format!("{}/v1/runs/{run_id}", self.base);
        let body = self.get_json(self.http.get(&url)).await?;
        Run::from_json(&body["data"])
    }

    /// `DELETE /v1/runs/{id}`: cancels the run.
    pub async fn cancel_run(&self, run_id: &str) -> Result<()> {
        let url = format!("{}/v1/runs/{run_id}", self.base);
        let r = self.http.delete(&url).send().await.with_context(|| format!("DELETE {url}"))?;
        if !r.status().is_success() {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            bail!("DELETE {url} answered {status} {text}");
        }
        Ok(())
    }

    /// Polls until the event has started a run of `fn_id`; returns it in
    /// whatever state it is.
    pub async fn wait_run_started(&self, event_id: &str, fn_id: &str) -> Result<Run> {
        let slug = self.slug(fn_id);
        let deadline = Deadline::after(WAIT_TIMEOUT);
        loop {
            let runs = self.runs_for_event(event_id).await?;
            if let Some(run) = runs.iter().find(|r| r.function_slug == slug) {
                return Ok(run.clone());
            }
            deadline.tick().await.with_context(|| format!("waiting for a run of {slug} for event {event_id}; runs seen: {runs:?}"))?;
        }
    }

    /// Polls until the event's run of `fn_id` has finished (Completed,
    /// Failed or Cancelled).
    pub async fn wait_run_finished(&self, event_id: &str, fn_id: &str) -> Result<Run> {
        let slug = self.slug(fn_id);
        let deadline = Deadline::after(WAIT_TIMEOUT);
        loop {
            let runs = self.runs_for_event(event_id).await?;
            let mine: Vec<&Run> = runs.iter().filter(|r| r.function_slug == slug).collect();
            if mine.len() > 1 {
                bail!("event {event_id} started {} runs of {slug}: {runs:?}", mine.len());
            }
            if let Some(run) = mine.first().filter(|r| r.status.is_terminal()) {
                return Ok((*run).clone());
            }
            deadline
                .tick()
                .await
                .with_context(|| format!("waiting for the run of {slug} for event {event_id} to finish; runs seen: {runs:?}"))?;
        }
    }

    /// Polls `GET /v1/runs/{id}` until the run has `status`.
    pub async fn wait_run_status(&self, run_id: &str, status: RunStatus) -> Result<Run> {
        let deadline = Deadline::after(WAIT_TIMEOUT);
        loop {
            let run = self.run(run_id).await?;
            if run.status == status {
                return Ok(run);
            }
            if run.status.is_terminal() {
                bail!("run {run_id} finished as {:?}, wanted {status:?}: {run}", run.status);
            }
            deadline.tick().await.with_context(|| format!("waiting for run {run_id} to be {status:?}; last: {run}"))?;
        }
    }

    /// Sends one event and waits for its run of `fn_id` to finish.
    pub async fn trigger_and_wait(&self, name: &str, data: Value, fn_id: &str) -> Result<Run> {
        let event_id = self.send_event(name, data).await?;
        self.wait_run_finished(&event_id, fn_id).await
    }

    // ---- E2E_LOG --------------------------------------------------------

    /// Every line the app has written to E2E_LOG so far.
    pub fn log_entries(&self) -> Result<Vec<LogEntry>> {
        let text = fs::read_to_string(&self.e2e_log).with_context(|| format!("reading {}", self.e2e_log.display()))?;
        // The app may be appending a line as we read: only whole lines count.
        let whole = text.rfind('\n').map_or("", |end| &text[..=end]);
        whole
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let raw: Value = serde_json::from_str(line).with_context(|| format!("E2E_LOG line {line:?}"))?;
                Ok(LogEntry {
                    func: raw["fn"].as_str().unwrap_or_default().to_string(),
                    step: raw["step"].as_str().map(str::to_string),
                    run_id: raw["run_id"].as_str().map(str::to_string),
                    attempt: raw["attempt"].as_u64(),
                    t: raw["t"].as_i64(),
                    raw,
                })
            })
            .collect()
    }

    /// How many times the body of step `step` of function `func` ran in run
    /// `run_id`.
    pub fn step_runs(&self, func: &str, step: &str, run_id: &str) -> Result<usize> {
        Ok(self
            .log_entries()?
            .iter()
            .filter(|e| e.func == func && e.step.as_deref() == Some(step) && e.run_id.as_deref() == Some(run_id))
            .count())
    }

    /// Log lines written by function `func` (step or body) in run `run_id`.
    pub fn entries_for(&self, func: &str, run_id: &str) -> Result<Vec<LogEntry>> {
        Ok(self.log_entries()?.into_iter().filter(|e| e.func == func && e.run_id.as_deref() == Some(run_id)).collect())
    }

    /// Polls E2E_LOG until a line matches `pred`.
    pub async fn wait_log_entry(&self, what: &str, pred: impl Fn(&LogEntry) -> bool) -> Result<LogEntry> {
        let deadline = Deadline::after(WAIT_TIMEOUT);
        loop {
            if let Some(entry) = self.log_entries()?.into_iter().find(|e| pred(e)) {
                return Ok(entry);
            }
            deadline.tick().await.with_context(|| format!("waiting for an E2E_LOG line: {what}"))?;
        }
    }

    // ---- internals ------------------------------------------------------

    async fn get_json(&self, req: reqwest::RequestBuilder) -> Result<Value> {
        let req = req.build()?;
        let url = req.url().clone();
        let r = self.http.execute(req).await.with_context(|| format!("GET {url}"))?;
        let status = r.status();
        let body: Value = r.json().await.with_context(|| format!("GET {url}: body is not JSON"))?;
        if !status.is_success() {
            bail!("GET {url} answered {status} {body}");
        }
        Ok(body)
    }

    fn dump_logs(&self) {
        let dir = self.dir.as_ref().map(|d| d.path().display().to_string()).unwrap_or_default();
        eprintln!("\n======== {:?} test environment in {dir} (engine {}, app {})", self.sdk, self.base, self.app_url);
        for (i, path) in self.old_engine_logs.iter().enumerate() {
            eprintln!("======== engine, incarnation {i} (killed): {}", path.display());
            eprintln!("{}", tail(path, LOG_DUMP_LIMIT));
        }
        for (title, path) in [("engine", &self.engine.log), ("sdk app", &self.app.log), ("E2E_LOG", &self.e2e_log)] {
            eprintln!("======== {title}: {}", path.display());
            eprintln!("{}", tail(path, LOG_DUMP_LIMIT));
        }
        eprintln!("======== end of logs (set INGOT_E2E_KEEP=1 to keep the directory)");
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
            if std::env::var_os("INGOT_E2E_KEEP").is_some() {
                if let Some(dir) = self.dir.take() {
                    let kept = dir.keep();
                    eprintln!("kept {}", kept.display());
                }
            }
        }
        if let Some(dir) = &self.dir {
            store::drop_database_for(dir.path());
        }
        // `app`, `engine` and `dir` are dropped after this, in that order.
    }
}

/// Bounds a polling loop: `tick` sleeps one [`POLL_INTERVAL`], or fails once
/// the time is up.
pub struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    pub fn after(timeout: Duration) -> Deadline {
        Deadline { at: Instant::now() + timeout, timeout }
    }

    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    pub async fn tick(&self) -> Result<()> {
        if self.passed() {
            bail!("timed out after {:?}", self.timeout);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
        Ok(())
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

/// A port that was free a moment ago. Ports come from the kernel's ephemeral
/// range, so two tests racing for the same one is unlikely.
/// A port nothing listens on now, never the same one twice in this process
/// (the OS may hand a just-released port out again, e.g. to the engine and
/// then to the app).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
        let port = l.local_addr().expect("local addr").port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The path of binary `name` of the package whose integration test is
/// running (`ingot-cli`: `ingot`, `ingot-e2e-rust-app`, ...). Cargo builds a
/// package's bins before its integration tests and names them in
/// `CARGO_BIN_EXE_<name>`, which cargo also sets at run time (nextest sets
/// `NEXTEST_BIN_EXE_<name>`, which follows an archived build); without either
/// (the test binary run by hand) it is the sibling of the test binary's
/// directory, `target/<profile>/<name>`, where cargo put it.
pub fn bin_path(name: &str) -> PathBuf {
    for var in [format!("NEXTEST_BIN_EXE_{name}"), format!("CARGO_BIN_EXE_{name}")] {
        if let Some(path) = std::env::var_os(var) {
            return PathBuf::from(path);
        }
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/<name>
    let path = exe.parent().and_then(Path::parent).map(|dir| dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX)));
    match path {
        Some(path) if path.exists() => path,
        _ => panic!("binary {name} not found: run this test through cargo test or cargo nextest (looked next to {})", exe.display()),
    }
}

/// Removes inherited INNGEST_* variables, so a developer's own signing key or
/// dev-server URL cannot leak into a test.
pub fn scrub_inngest_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("INNGEST_") {
            cmd.env_remove(k);
        }
    }
}

fn engine_command(port: u16, app_url: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(bin_path("ingot"));
    scrub_inngest_env(&mut cmd);
    cmd.args(["dev", "--host", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .args(store::engine_store_args(dir))
        .args(["--no-discovery", "--retry-interval", "1", "--poll-interval", "1", "-u", app_url])
        .current_dir(dir);
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info,ingot_engine=debug,ingot_cli=debug,ingot_store=debug");
    }
    cmd
}

fn app_command(sdk: Sdk, app: &TestApp, port: u16, engine_base: &str, e2e_log: &Path) -> Command {
    let root = repo_root();
    let mut cmd = match sdk {
        Sdk::JsV3 | Sdk::JsV4 => {
            let dir = root.join("tests/sdk-apps/js");
            assert!(
                dir.join("node_modules/inngest-v3").is_dir() && dir.join("node_modules/inngest-v4").is_dir(),
                "{} has no node_modules: run scripts/setup-test-deps.sh first",
                dir.display()
            );
            let node = std::env::var_os("INGOT_E2E_NODE").unwrap_or_else(|| "node".into());
            let mut cmd = Command::new(node);
            cmd.arg(app.file).current_dir(&dir).env("SDK_MAJOR", if sdk == Sdk::JsV3 { "3" } else { "4" });
            cmd
        }
        Sdk::Py => {
            let dir = root.join("tests/sdk-apps/py");
            let python = dir.join(".venv/bin/python");
            assert!(python.exists(), "{} does not exist: run scripts/setup-test-deps.sh first", python.display());
            let mut cmd = Command::new(python);
            cmd.arg(app.file).current_dir(&dir).env("PYTHONUNBUFFERED", "1");
            cmd
        }
        Sdk::Rust => {
            let mut cmd = Command::new(bin_path(app.file));
            cmd.current_dir(&root);
            cmd
        }
    };
    scrub_inngest_env(&mut cmd);
    cmd.env("PORT", port.to_string())
        .env("APP_ID", &app.app_id)
        .env("E2E_LOG", e2e_log)
        .env("INNGEST_DEV", "1")
        .env("INNGEST_BASE_URL", engine_base);
    cmd
}

/// The last `limit` bytes of a file, as text.
fn tail(path: &Path, limit: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(limit);
            let text = String::from_utf8_lossy(&bytes[start..]).into_owned();
            if start > 0 {
                format!("[... {start} bytes cut ...]\n{text}")
            } else {
                text
            }
        }
        Err(e) => format!("<cannot read: {e}>"),
    }
}

// ---- flow control: runs by function, skips, bulk cancel, config ----------

impl TestEnv {
    /// `GET /v1/runs?function=<slug>`: up to 1,000 runs of `fn_id`, newest first.
    pub async fn runs_of(&self, fn_id: &str) -> Result<Vec<Run>> {
        let url = format!("{}/v1/runs", self.base);
        let body = self.get_json(self.http.get(&url).query(&[("function", self.slug(fn_id).as_str()), ("limit", "1000")])).await?;
        body["data"].as_array().ok_or_else(|| anyhow!("GET /v1/runs: no data array in {body}"))?.iter().map(Run::from_json).collect()
    }

    /// `GET /v1/skips?function=<slug>`: events that did not start `fn_id`
    /// (rate limit, idempotency, singleton), each `{event_id, reason, ...}`.
    pub async fn skips_of(&self, fn_id: &str) -> Result<Vec<Value>> {
        let url = format!("{}/v1/skips", self.base);
        let body = self.get_json(self.http.get(&url).query(&[("function", self.slug(fn_id).as_str())])).await?;
        body["data"].as_array().cloned().ok_or_else(|| anyhow!("GET /v1/skips: no data array in {body}"))
    }

    /// `POST /v1/cancellations` with `body` (e.g. `{"function_id": slug}`);
    /// returns the answer.
    pub async fn bulk_cancel(&self, body: Value) -> Result<Value> {
        let url = format!("{}/v1/cancellations", self.base);
        let r = self.http.post(&url).json(&body).send().await.with_context(|| format!("POST {url}"))?;
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("POST {url} {body} answered {status} {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("POST {url}: body is not JSON: {text}"))
    }

    /// The registered config of `fn_id`, from `GET /v1/apps/{app}/functions`.
    pub async fn function_config(&self, fn_id: &str) -> Result<Value> {
        let url = format!("{}/v1/apps/{}/functions", self.base, self.app_id);
        let body = self.get_json(self.http.get(&url)).await?;
        let slug = self.slug(fn_id);
        body["data"]
            .as_array()
            .and_then(|fns| fns.iter().find(|f| f["slug"] == json!(slug)))
            .map(|f| f["config"].clone())
            .ok_or_else(|| anyhow!("function {slug} is not registered: {body}"))
    }

    /// E2E_LOG lines of function `func`.
    pub fn entries_of(&self, func: &str) -> Result<Vec<LogEntry>> {
        Ok(self.log_entries()?.into_iter().filter(|e| e.func == func).collect())
    }
}

// ---- crash and restart, orphans -------------------------------------------

impl TestEnv {
    /// SIGKILLs the engine (no shutdown: in-flight calls and commits are
    /// abandoned). Returns the time it was dead by, in ms since the epoch.
    pub fn kill_engine_hard(&mut self) -> Result<i64> {
        self.engine.kill_hard()?;
        Ok(epoch_ms())
    }

    /// Starts a new engine on the same port and database (after
    /// [`TestEnv::kill_engine_hard`]; a live engine is killed first) and waits
    /// until it answers and has the app's functions. Its log is a new file.
    pub async fn restart_engine(&mut self) -> Result<()> {
        if self.engine.child.try_wait()?.is_none() {
            self.engine.kill_hard()?;
        }
        let dir = self.dir.as_ref().expect("dir is kept until drop").path().to_path_buf();
        // The port was just released; if binding it races with the kernel,
        // the engine exits at once and is tried again.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let n = self.old_engine_logs.len() + 1;
            let cmd = engine_command(self.engine_port, &self.app_url, &dir);
            let fresh = Proc::spawn("engine", cmd, dir.join(format!("engine-{n}.log")))?;
            let old = std::mem::replace(&mut self.engine, fresh);
            self.old_engine_logs.push(old.log.clone());
            drop(old);
            tokio::time::sleep(Duration::from_millis(200)).await;
            match self.engine.child.try_wait()? {
                Some(status) if Instant::now() < deadline => {
                    eprintln!("restarted engine exited at once ({status}); trying again");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                _ => break,
            }
        }
        self.wait_ready().await
    }

    /// `GET /v1/runs?status=<status>&limit=1000`.
    pub async fn runs_with_status(&self, status: &str) -> Result<Vec<Run>> {
        let url = format!("{}/v1/runs", self.base);
        let body = self.get_json(self.http.get(&url).query(&[("status", status), ("limit", "1000")])).await?;
        body["data"].as_array().ok_or_else(|| anyhow!("GET /v1/runs: no data array in {body}"))?.iter().map(Run::from_json).collect()
    }

    /// `GET /v1/runs/{id}/steps`: the run's memoized steps, each
    /// `{id, name, seq, at, memo}`.
    pub async fn run_steps(&self, run_id: &str) -> Result<Vec<Value>> {
        let url = format!("{}/v1/runs/{run_id}/steps", self.base);
        let body = self.get_json(self.http.get(&url)).await?;
        body["data"]["steps"].as_array().cloned().ok_or_else(|| anyhow!("GET {url}: no data.steps array in {body}"))
    }

    /// `GET /v1/runs/{id}/jobs`: the run's queue items.
    pub async fn run_jobs(&self, run_id: &str) -> Result<Vec<Value>> {
        let url = format!("{}/v1/runs/{run_id}/jobs", self.base);
        let body = self.get_json(self.http.get(&url)).await?;
        body["data"].as_array().cloned().ok_or_else(|| anyhow!("GET {url}: no data array in {body}"))
    }

    /// The no-orphans invariant: every Running run has at least one queue
    /// item (waits and invokes also hold a timeout item). A run seen without
    /// one may be mid-transition (finished between the two requests), so it
    /// is checked once more before it counts as orphaned.
    pub async fn assert_no_orphans(&self) -> Result<()> {
        let mut orphans = Vec::new();
        for run in self.runs_with_status("Running").await? {
            if !self.run_jobs(&run.run_id).await?.is_empty() {
                continue;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
            let again = self.run(&run.run_id).await?;
            if again.status == RunStatus::Running && self.run_jobs(&run.run_id).await?.is_empty() {
                let url = format!("{}/v1/runs/{}/steps", self.base, run.run_id);
                let history = self.get_json(self.http.get(&url)).await.map(|b| b["data"]["history"].clone()).unwrap_or(Value::Null);
                orphans.push(format!("{again} history {history}"));
            }
        }
        if !orphans.is_empty() {
            bail!("{} Running run(s) with no queue item (orphans):\n{}", orphans.len(), orphans.join("\n"));
        }
        Ok(())
    }
}

/// Milliseconds since the Unix epoch, on the clock the apps' `Date.now()` uses.
pub fn epoch_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

// ---- a bare engine that can be killed and restarted ------------------------

/// The `ingot` binary alone (no SDK app), for tests that serve the SDK side
/// in-process. It keeps its port and database across [`EngineProc::kill_hard`]
/// and [`EngineProc::restart`], so a restart sees everything committed before
/// the kill. Its logs (one file per incarnation) are printed on panic.
pub struct EngineProc {
    /// Origin, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    pub port: u16,
    pub http: reqwest::Client,
    proc: Option<Proc>,
    incarnation: usize,
    /// `dev` or `start`.
    command: &'static str,
    args: Vec<String>,
    dir: Option<tempfile::TempDir>,
}

impl EngineProc {
    /// Starts `ingot dev` (no discovery, no polling, 1 s retries, plus
    /// `extra_args`) on a free port and waits for `GET /health`.
    pub async fn start(extra_args: &[&str]) -> Result<EngineProc> {
        EngineProc::start_command("dev", extra_args).await
    }

    /// Like [`EngineProc::start`], running `ingot <command>` (`dev` or `start`).
    pub async fn start_command(command: &'static str, extra_args: &[&str]) -> Result<EngineProc> {
        EngineProc::start_on(command, free_port(), extra_args).await
    }

    /// Like [`EngineProc::start_command`], on a chosen port (for apps that must know it first).
    pub async fn start_on(command: &'static str, port: u16, extra_args: &[&str]) -> Result<EngineProc> {
        let dir = tempfile::Builder::new().prefix("ingot-engine-").tempdir()?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).no_proxy().build()?;
        let mut e = EngineProc {
            base: format!("http://127.0.0.1:{port}"),
            port,
            http,
            proc: None,
            incarnation: 0,
            command,
            args: extra_args.iter().map(|s| s.to_string()).collect(),
            dir: Some(dir),
        };
        e.spawn().await?;
        Ok(e)
    }

    /// The directory holding the database and the logs.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("dir is kept until drop").path()
    }

    /// The log of the running (or last) engine process.
    pub fn log(&self) -> PathBuf {
        self.dir().join(format!("engine-{}.log", self.incarnation.saturating_sub(1)))
    }

    /// SIGKILL: no shutdown, no flush; in-flight calls are abandoned.
    pub fn kill_hard(&mut self) -> Result<()> {
        if let Some(mut p) = self.proc.take() {
            p.child.kill().context("killing the engine")?;
            p.child.wait()?;
        }
        Ok(())
    }

    /// Starts the engine again on the same port and database.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill_hard()?;
        self.spawn().await
    }

    async fn spawn(&mut self) -> Result<()> {
        let dir = self.dir().to_path_buf();
        let mut cmd = Command::new(bin_path("ingot"));
        scrub_inngest_env(&mut cmd);
        // A test that names the database itself (`--db`, `--postgres-uri`) gets that one.
        let named = self.args.iter().any(|a| a == "--db" || a == "--postgres-uri");
        let store = if named { Vec::new() } else { store::engine_store_args(&dir) };
        cmd.args([self.command, "--host", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(store)
            .args(["--no-discovery", "--no-poll", "--retry-interval", "1"])
            .args(&self.args)
            .current_dir(&dir);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let log = dir.join(format!("engine-{}.log", self.incarnation));
        self.incarnation += 1;
        self.proc = Some(Proc::spawn("engine", cmd, log)?);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let health = format!("{}/health", self.base);
        loop {
            self.proc.as_mut().expect("just spawned").ensure_alive()?;
            if let Ok(r) = self.http.get(&health).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("engine never answered GET /health with 200");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for EngineProc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let dir = self.dir().to_path_buf();
            for i in 0..self.incarnation {
                let path = dir.join(format!("engine-{i}.log"));
                eprintln!("======== engine incarnation {i}: {}", path.display());
                eprintln!("{}", tail(&path, LOG_DUMP_LIMIT));
            }
            if std::env::var_os("INGOT_E2E_KEEP").is_some() {
                if let Some(d) = self.dir.take() {
                    eprintln!("kept {}", d.keep().display());
                }
            }
        }
        self.proc = None;
        if let Some(dir) = &self.dir {
            store::drop_database_for(dir.path());
        }
    }
}

pub mod app_scenarios;
pub mod signals;
pub mod store;

/// Scenarios shared by the JS and Python apps (same function ids, triggers
/// and results). Each returns an error instead of panicking, so the caller's
/// `.unwrap()` fails the test while the `TestEnv` is alive and prints logs.
pub mod scenarios {
    use std::time::Instant;

    use anyhow::{ensure, Context as _, Result};
    use serde_json::json;

    use super::{Deadline, RunStatus, TestEnv, WAIT_TIMEOUT};

    /// `hello`: one step, output `{message: "Hello <name>"}`.
    pub async fn hello(env: &TestEnv) -> Result<()> {
        let run = env.trigger_and_wait("e2e/hello", json!({ "name": "Ingot" }), "hello").await?;
        ensure!(run.status == RunStatus::Completed, "hello did not complete: {run}");
        ensure!(run.output == json!({ "message": "Hello Ingot" }), "hello output: {run}");
        let greets = env.step_runs("hello", "greet", &run.run_id)?;
        ensure!(greets == 1, "step greet ran {greets} times");
        Ok(())
    }

    /// `memo`: three sequential steps, each body runs exactly once however
    /// often the function itself is re-entered.
    pub async fn memo(env: &TestEnv) -> Result<()> {
        let run = env.trigger_and_wait("e2e/memo", json!({}), "memo").await?;
        ensure!(run.status == RunStatus::Completed, "memo did not complete: {run}");
        ensure!(run.output == json!(["A", "B", "C"]), "memo output: {run}");
        for step in ["a", "b", "c"] {
            let n = env.step_runs("memo", step, &run.run_id)?;
            ensure!(n == 1, "step {step} ran {n} times, wanted exactly once");
        }
        Ok(())
    }

    /// `non-retriable`: a NonRetriableError fails the run at once.
    pub async fn non_retriable(env: &TestEnv) -> Result<()> {
        let run = env.trigger_and_wait("e2e/nonretriable", json!({}), "non-retriable").await?;
        ensure!(run.status == RunStatus::Failed, "non-retriable did not fail: {run}");
        ensure!(run.output_text().contains("nope"), "failed run's output lacks the error message: {run}");
        let n = env.step_runs("non-retriable", "doomed", &run.run_id)?;
        ensure!(n == 1, "step doomed ran {n} times, wanted once (no retries)");
        Ok(())
    }

    /// `sleeper`: `step.sleep("nap", "2s")` really waits.
    pub async fn sleep(env: &TestEnv) -> Result<()> {
        let started = Instant::now();
        let run = env.trigger_and_wait("e2e/sleep", json!({}), "sleeper").await?;
        let took = started.elapsed();
        ensure!(run.status == RunStatus::Completed, "sleeper did not complete: {run}");
        ensure!(run.output == json!("woke"), "sleeper output: {run}");
        ensure!(took.as_millis() >= 1900, "sleeper finished after {took:?}, before its 2s sleep was over");
        Ok(())
    }

    /// `waiter`, matched: two runs wait on `e2e/approve` with different ids;
    /// approvals for one id resume that run only, the other times out.
    pub async fn wait_matched(env: &TestEnv) -> Result<()> {
        let x = env.send_event("e2e/wait", json!({ "id": "x" })).await?;
        // The bystander's timeout is short so the test does not wait long
        // for it, but long enough to be still waiting while x is approved.
        let y = env.send_event("e2e/wait", json!({ "id": "y", "timeout": "5s" })).await?;
        let run_x = env.wait_run_started(&x, "waiter").await?;
        env.wait_run_started(&y, "waiter").await?;
        env.wait_run_status(&run_x.run_id, RunStatus::Running).await?;

        // A Running run may not have reached its waitForEvent yet, and an
        // event sent before the wait exists does not resume it: approve
        // again every half second until the run ends.
        let deadline = Deadline::after(WAIT_TIMEOUT);
        let finished = 'resend: loop {
            env.send_event("e2e/approve", json!({ "id": "x", "by": "bob" })).await?;
            for _ in 0..10 {
                let run = env.run(&run_x.run_id).await?;
                if run.status.is_terminal() {
                    break 'resend run;
                }
                deadline.tick().await.context("waiter x was never resumed by e2e/approve {id: x}")?;
            }
        };
        ensure!(finished.status == RunStatus::Completed, "waiter x did not complete: {finished}");
        ensure!(finished.output == json!({ "matched": true, "approver": "bob" }), "waiter x output: {finished}");

        let run_y = env.wait_run_finished(&y, "waiter").await?;
        ensure!(run_y.status == RunStatus::Completed, "waiter y did not complete: {run_y}");
        ensure!(
            run_y.output == json!({ "matched": false, "approver": null }),
            "approvals for id x must not resume the wait for id y: {run_y}"
        );
        Ok(())
    }

    /// `waiter`, timed out: no approval within "2s" ⇒ `{matched: false}`.
    pub async fn wait_timeout(env: &TestEnv) -> Result<()> {
        let started = Instant::now();
        let run = env.trigger_and_wait("e2e/wait", json!({ "id": "t", "timeout": "2s" }), "waiter").await?;
        let took = started.elapsed();
        ensure!(run.status == RunStatus::Completed, "waiter did not complete: {run}");
        ensure!(run.output == json!({ "matched": false, "approver": null }), "waiter output: {run}");
        ensure!(took.as_millis() >= 1900, "wait timed out after {took:?}, before its 2s timeout");
        Ok(())
    }
}
