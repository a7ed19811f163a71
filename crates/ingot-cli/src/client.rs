//! The commands that talk to a running engine over its REST API: `send`,
//! `runs`, `run`, `cancel`, `replay`. Each failure is one line: the engine
//! cannot be reached, or it answered with an error (its message is shown).

use std::io::Read as _;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::output::{duration, short_json, table};

/// `--json` or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

/// Where the engine is, and the key its REST API wants (`ingot start`).
#[derive(Args)]
pub struct Target {
    /// The engine's URL.
    #[arg(long, env = "INNGEST_BASE_URL", default_value = "http://127.0.0.1:8288")]
    pub url: String,
    /// Signing key, sent as `Authorization: Bearer` (needed by `ingot start`).
    #[arg(long, env = "INNGEST_SIGNING_KEY", hide_env_values = true)]
    pub signing_key: Option<String>,
}

#[derive(Args)]
#[command(after_help = "Examples:
  ingot send app/user.created --data '{\"id\": 1}'
  ingot send app/user.created --data @event-data.json --id user-1-created
  echo '{\"id\": 1}' | ingot send app/user.created --data - --wait
  ingot send app/report.requested --ts 1767225600000 --json")]
pub struct SendArgs {
    /// Event name.
    pub name: String,
    /// Event data: a JSON object, `@FILE` to read it from a file, or `-` for stdin.
    #[arg(short, long, default_value = "{}")]
    pub data: String,
    /// The event's id (events with the same id within 24 hours start runs once).
    #[arg(long)]
    pub id: Option<String>,
    /// The event's time, in milliseconds since the Unix epoch.
    #[arg(long)]
    pub ts: Option<i64>,
    /// Wait for the event's runs to end; print their status and output. Exits 1
    /// if one did not complete.
    #[arg(short, long)]
    pub wait: bool,
    /// How long `--wait` waits, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Event key.
    #[arg(long, env = "INNGEST_EVENT_KEY", default_value = "dev", hide_env_values = true)]
    pub key: String,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Args)]
#[command(after_help = "Examples:
  ingot runs
  ingot runs --status Failed --limit 10
  ingot runs --function my-app-send-welcome-email --json")]
pub struct RunsArgs {
    /// Only runs with this status: Running, Completed, Failed or Cancelled.
    #[arg(short, long, value_parser = parse_status)]
    pub status: Option<String>,
    /// Only runs of this function (its slug, `<app id>-<function id>`).
    #[arg(short, long)]
    pub function: Option<String>,
    /// At most this many runs (1 to 1000).
    #[arg(short = 'n', long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Args)]
#[command(after_help = "Examples:
  ingot run 01JABCDEF0123456789ABCDEFG
  ingot run 01JABCDEF0123456789ABCDEFG --json")]
pub struct RunArgs {
    /// The run's id.
    pub id: String,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Args)]
#[command(after_help = "Examples:
  ingot cancel 01JABCDEF0123456789ABCDEFG
  ingot runs --status Running --json | jq -r '.[].run_id' | xargs ingot cancel")]
pub struct CancelArgs {
    /// The ids of the runs to cancel.
    #[arg(required = true)]
    pub ids: Vec<String>,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Args)]
#[command(after_help = "Examples:
  ingot replay 01JABCDEF0123456789ABCDEFG
  ingot replay 01JABCDEF0123456789ABCDEFG --wait")]
pub struct ReplayArgs {
    /// The internal id of the stored event (as `ingot send` prints it).
    pub event_id: String,
    /// Wait for the new event's runs to end, as `ingot send --wait`.
    #[arg(short, long)]
    pub wait: bool,
    /// How long `--wait` waits, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    #[command(flatten)]
    pub target: Target,
}

fn parse_status(s: &str) -> Result<String, String> {
    ["Running", "Completed", "Failed", "Cancelled"]
        .into_iter()
        .find(|known| known.eq_ignore_ascii_case(s))
        .map(str::to_string)
        .ok_or_else(|| "one of Running, Completed, Failed, Cancelled".to_string())
}

/// The engine's REST API.
struct Api {
    base: String,
    key: Option<String>,
    http: reqwest::Client,
}

/// How often `--wait` asks for the runs.
const POLL: Duration = Duration::from_millis(200);

impl Api {
    fn new(target: &Target) -> anyhow::Result<Api> {
        let base = target.url.trim_end_matches('/').to_string();
        reqwest::Url::parse(&base).with_context(|| format!("--url {base:?} is not a URL"))?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Api { base, key: target.signing_key.clone(), http })
    }

    /// One request; the answer's JSON on 2xx, else the engine's error message.
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let (status, body) = self.call_raw(method, path, body).await?;
        if !status.is_success() {
            bail!("{}", engine_error(status, &body));
        }
        Ok(body)
    }

    async fn call_raw(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<(StatusCode, Value)> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(key) = &self.key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| unreachable(&self.base, &e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| unreachable(&self.base, &e))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }
}

fn unreachable(base: &str, e: &reqwest::Error) -> anyhow::Error {
    let why = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection refused".to_string()
    } else {
        // reqwest's own text names the URL; its source says what happened.
        std::error::Error::source(e).map_or_else(|| e.to_string(), |s| s.to_string())
    };
    anyhow!("cannot reach the engine at {base} ({why}); is `ingot dev` running there? (--url, INNGEST_BASE_URL)")
}

/// `{"error": "...", "status": N}` as one line.
fn engine_error(status: StatusCode, body: &Value) -> String {
    let message = body.get("error").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| short_json(body, 200));
    format!("{message} (HTTP {})", status.as_u16())
}

fn ms_text(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis).map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()).unwrap_or_default()
}

fn rfc3339_text(s: Option<&str>) -> String {
    s.and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()).map(|t| ms_text(Some(t.timestamp_millis()))).unwrap_or_default()
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()));
}

/// `--data`: JSON text, `@FILE`, or `-` (stdin); it must be an object.
fn read_data(arg: &str) -> anyhow::Result<Value> {
    let (text, source) = if arg == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("cannot read --data from stdin")?;
        (s, "stdin".to_string())
    } else if let Some(path) = arg.strip_prefix('@') {
        (std::fs::read_to_string(path).with_context(|| format!("cannot read --data file {path}"))?, path.to_string())
    } else {
        (arg.to_string(), "--data".to_string())
    };
    let data: Value = serde_json::from_str(&text).map_err(|e| anyhow!("{source} is not valid JSON: {e}"))?;
    if !data.is_object() {
        bail!("{source} must be a JSON object, not {}", short_json(&data, 60));
    }
    Ok(data)
}

/// `ingot send NAME`.
pub async fn send(a: SendArgs, output: Output) -> anyhow::Result<()> {
    let data = read_data(&a.data)?;
    let api = Api::new(&a.target)?;
    let mut event = json!({"name": a.name, "data": data});
    if let Some(id) = &a.id {
        event["id"] = json!(id);
    }
    if let Some(ts) = a.ts {
        event["ts"] = json!(ts);
    }
    let (status, body) = api.call_raw(Method::POST, &format!("/e/{}", a.key), Some(&event)).await?;
    if !status.is_success() {
        bail!("the engine refused the event: {}", engine_error(status, &body));
    }
    let id = body["ids"].get(0).and_then(Value::as_str).ok_or_else(|| anyhow!("the engine answered without an event id: {body}"))?;
    finish_sent(&api, id, &a.name, a.wait.then(|| Duration::from_secs(a.timeout)), output).await
}

/// `ingot replay EVENT_ID`.
pub async fn replay(a: ReplayArgs, output: Output) -> anyhow::Result<()> {
    let api = Api::new(&a.target)?;
    let original = api.get(&format!("/v1/events/{}", a.event_id)).await?;
    let name = original["data"]["name"].as_str().unwrap_or_default().to_string();
    let body = api.call(Method::POST, &format!("/v1/events/{}/replay", a.event_id), None).await?;
    let id = body["ids"].get(0).and_then(Value::as_str).ok_or_else(|| anyhow!("the engine answered without an event id: {body}"))?;
    if output == Output::Text {
        println!("replayed event {} as a new event", a.event_id);
    }
    finish_sent(&api, id, &name, a.wait.then(|| Duration::from_secs(a.timeout)), output).await
}

/// Prints the stored event's id, or with `wait` its runs once they ended
/// (exit 1 unless every one completed).
async fn finish_sent(api: &Api, event_id: &str, name: &str, wait: Option<Duration>, output: Output) -> anyhow::Result<()> {
    let Some(timeout) = wait else {
        match output {
            Output::Json => print_json(&json!({"event_id": event_id, "name": name})),
            Output::Text => println!("sent {name}: event {event_id}"),
        }
        return Ok(());
    };
    if output == Output::Text {
        println!("sent {name}: event {event_id}; waiting for its runs");
    }
    let runs = wait_runs(api, event_id, timeout).await?;
    let failed: Vec<&Value> = runs.iter().filter(|r| r["status"] != "Completed").collect();
    match output {
        Output::Json => print_json(&json!({"event_id": event_id, "name": name, "runs": runs})),
        Output::Text => {
            for run in &runs {
                println!("run {} of {}: {}", str_of(run, "run_id"), str_of(run, "function_slug"), str_of(run, "status"));
                println!("output: {}", serde_json::to_string_pretty(&run["output"]).unwrap_or_default());
            }
        }
    }
    if let Some(run) = failed.first() {
        bail!("{} of {} runs did not complete (run {} {})", failed.len(), runs.len(), str_of(run, "run_id"), str_of(run, "status"));
    }
    Ok(())
}

/// Polls `GET /v1/events/{id}/runs` until the event has runs and all have ended.
async fn wait_runs(api: &Api, event_id: &str, timeout: Duration) -> anyhow::Result<Vec<Value>> {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, body) = api.call_raw(Method::GET, &format!("/v1/events/{event_id}/runs"), None).await?;
        // The event may not be readable yet: no runs so far.
        let runs = match status {
            StatusCode::NOT_FOUND => Vec::new(),
            s if s.is_success() => body["data"].as_array().cloned().unwrap_or_default(),
            s => bail!("{}", engine_error(s, &body)),
        };
        if !runs.is_empty() && runs.iter().all(|r| matches!(r["status"].as_str(), Some("Completed" | "Failed" | "Cancelled"))) {
            return Ok(runs);
        }
        if Instant::now() >= deadline {
            if runs.is_empty() {
                bail!("no run started for event {event_id} within {}s (does a synced function trigger on it?)", timeout.as_secs());
            }
            bail!("the runs of event {event_id} had not ended after {}s (--timeout)", timeout.as_secs());
        }
        tokio::time::sleep(POLL).await;
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `ingot runs`.
pub async fn runs(a: RunsArgs, output: Output) -> anyhow::Result<()> {
    let api = Api::new(&a.target)?;
    let mut query = vec![("limit", a.limit.to_string())];
    if let Some(s) = a.status {
        query.push(("status", s));
    }
    if let Some(f) = a.function {
        query.push(("function", f));
    }
    let qs = reqwest::Url::parse_with_params("http://x/", &query)?.query().unwrap_or_default().to_string();
    let body = api.get(&format!("/v1/runs?{qs}")).await?;
    let runs = body["data"].as_array().cloned().unwrap_or_default();
    if output == Output::Json {
        print_json(&Value::Array(runs));
        return Ok(());
    }
    if runs.is_empty() {
        println!("no runs");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                str_of(r, "run_id").to_string(),
                str_of(r, "status").to_string(),
                str_of(r, "function_slug").to_string(),
                rfc3339_text(r["run_started_at"].as_str()),
                rfc3339_text(r["ended_at"].as_str()),
                short_json(&r["output"], 40),
            ]
        })
        .collect();
    table(&["RUN ID", "STATUS", "FUNCTION", "STARTED", "ENDED", "OUTPUT"], &rows);
    Ok(())
}

/// `ingot run ID`: the run and its timeline.
pub async fn run(a: RunArgs, output: Output) -> anyhow::Result<()> {
    let api = Api::new(&a.target)?;
    let t = api.get(&format!("/v1/runs/{}/timeline", a.id)).await?;
    if output == Output::Json {
        print_json(&t);
        return Ok(());
    }
    let run = &t["run"];
    let function = &t["function"];
    println!("run       {}  {}", str_of(run, "run_id"), str_of(run, "status"));
    println!("function  {} ({})", str_of(function, "slug"), str_of(function, "name"));
    for e in t["events"].as_array().into_iter().flatten() {
        println!("event     {} {}", str_of(e, "name"), str_of(e, "id"));
    }
    let (started, ended) = (run["started_at_ms"].as_i64(), run["ended_at_ms"].as_i64());
    let took = match (started, ended) {
        (Some(s), Some(e)) => format!("  (took {})", duration(e - s)),
        _ => String::new(),
    };
    println!("started   {}", ms_text(started));
    if ended.is_some() {
        println!("ended     {}{took}", ms_text(ended));
    }
    if !run["output"].is_null() {
        println!("output    {}", short_json(&run["output"], 500));
    }
    println!();
    println!("timeline");
    let trace = &t["trace"];
    let spans = trace["children"].as_array().cloned().unwrap_or_default();
    if spans.is_empty() {
        println!("  (no steps yet)");
    }
    let mut rows = Vec::new();
    for span in &spans {
        span_rows(span, 0, &mut rows);
    }
    table(&["  STEP", "TYPE", "STATUS", "ATTEMPTS", "DURATION", "RESULT"], &rows);
    Ok(())
}

/// One row per span (children indented), then one per attempt that failed.
fn span_rows(span: &Value, depth: usize, rows: &mut Vec<Vec<String>>) {
    let indent = "  ".repeat(depth + 1);
    let result =
        if !span["error"].is_null() { format!("error: {}", short_json(&span["error"], 60)) } else { short_json(&span["output"], 60) };
    rows.push(vec![
        format!("{indent}{}", span["name"].as_str().or_else(|| span["id"].as_str()).unwrap_or("")),
        str_of(span, "op").to_lowercase(),
        title(str_of(span, "status")),
        span["attempts"].as_u64().map(|n| n.to_string()).unwrap_or_default(),
        span["duration_ms"].as_i64().map(duration).unwrap_or_default(),
        result,
    ]);
    for attempt in span["attempt_list"].as_array().into_iter().flatten() {
        if attempt["error"].is_null() {
            continue;
        }
        rows.push(vec![
            format!("{indent}  attempt {}", attempt["attempt"]),
            String::new(),
            title(str_of(attempt, "outcome")),
            String::new(),
            attempt["duration_ms"].as_i64().map(duration).unwrap_or_default(),
            format!("error: {}", short_json(&attempt["error"], 60)),
        ]);
    }
    for child in span["children"].as_array().into_iter().flatten() {
        span_rows(child, depth + 1, rows);
    }
}

/// `COMPLETED` as `Completed`, as run statuses are written.
fn title(s: &str) -> String {
    let lower = s.to_lowercase();
    let mut chars = lower.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// `ingot cancel ID...`: every id is tried; exit 1 if one failed.
pub async fn cancel(a: CancelArgs, output: Output) -> anyhow::Result<()> {
    let api = Api::new(&a.target)?;
    let mut results = Vec::new();
    let mut failures = 0;
    for id in &a.ids {
        match api.call(Method::DELETE, &format!("/v1/runs/{id}"), None).await {
            Ok(_) => {
                if output == Output::Text {
                    println!("cancelled {id}");
                }
                results.push(json!({"run_id": id, "cancelled": true}));
            }
            // The engine is not there: no point trying the others.
            Err(e) if e.to_string().starts_with("cannot reach") => return Err(e),
            Err(e) => {
                failures += 1;
                if output == Output::Text {
                    eprintln!("error: {id}: {e:#}");
                }
                results.push(json!({"run_id": id, "cancelled": false, "error": format!("{e:#}")}));
            }
        }
    }
    if output == Output::Json {
        print_json(&Value::Array(results));
    }
    if failures > 0 {
        bail!("{failures} of {} runs not cancelled", a.ids.len());
    }
    Ok(())
}
