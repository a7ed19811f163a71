//! `ingot-bench`: the engine (SQLite, full durability) served on loopback,
//! driven against a minimal in-process SDK endpoint, with the floor of this
//! machine (raw HTTP round trip, SQLite fsync commit rate) measured in the
//! same run. Every figure is printed next to its target from `design.md`.
//!
//! `cargo run --release -p ingot-bench [-- --quick | --scale 2]`; the
//! retention load runs only when asked: `-- --only retention [--retention-secs 60 --retention-rate 1000]`.

mod retention;
mod sdk;
mod stats;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use futures::future::join_all;
use ingot_core::RunId;
use ingot_engine::{Clock, Engine, EngineConfig};
use ingot_store::{Commit, HistoryRecord, SqliteStore, Store, WriteOp};
use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};

use sdk::{Sdk, BASELINE_FN, FUNCTIONS};
use stats::{line, mb, ms, proc_status_kb, Samples, Usage};

#[derive(Parser)]
#[command(about = "Benchmarks the Ingot engine against a minimal SDK endpoint")]
struct Args {
    /// About a quarter of the default counts, for a fast check.
    #[arg(long)]
    quick: bool,
    /// Multiplies every count (applied after --quick).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Directory for the databases (a fresh temp dir is made inside it).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Run only these phases (comma-separated): baseline, first-call, steps, throughput, concurrency, ingest;
    /// and `retention` (sustained load against retention; never run unless listed here).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// `retention`: events per second offered (rate-paced).
    #[arg(long, default_value_t = 1000)]
    retention_rate: u64,
    /// `retention`: seconds of load.
    #[arg(long, default_value_t = 60)]
    retention_secs: u64,
    /// `retention`: the engine's retention period, in seconds.
    #[arg(long, default_value_t = 5)]
    retention_period: u64,
    /// `retention`: seconds between samples.
    #[arg(long, default_value_t = 5)]
    retention_sample: u64,
    /// The engine's worker count (most SDK calls in flight); default as `EngineConfig::dev()`.
    #[arg(long)]
    workers: Option<usize>,
}

/// Phases that run only when `--only` names them (they take minutes).
const OPT_IN: [&str; 1] = ["retention"];

impl Args {
    fn wants(&self, phase: &str) -> bool {
        (self.only.is_empty() && !OPT_IN.contains(&phase)) || self.only.iter().any(|p| p == phase)
    }
}

/// How much of everything to do.
struct Counts {
    http_baseline: usize,
    fsync_commits: usize,
    store_ops: usize,
    hello_samples: usize,
    step_runs: usize,
    tput_runs: usize,
    tput_batch: usize,
    check_runs: usize,
    check_sleep_ms: u64,
    ingest_batches: usize,
    ingest_batch_size: usize,
    single_requests: usize,
    connections: usize,
}

impl Counts {
    fn new(args: &Args) -> Counts {
        let f = if args.quick { 0.25 } else { 1.0 } * args.scale;
        let n = |x: usize| ((x as f64 * f).round() as usize).max(1);
        Counts {
            http_baseline: n(1000),
            fsync_commits: n(500),
            store_ops: n(10_240).max(256),
            hello_samples: n(300),
            step_runs: n(30),
            tput_runs: n(2000),
            tput_batch: 100,
            // At least 2 × the limit per key, so the limit binds even with --quick.
            check_runs: n(400).max(2 * sdk::CONC_KEYS * sdk::CONC_LIMIT as usize),
            check_sleep_ms: 50,
            ingest_batches: n(100),
            ingest_batch_size: 200,
            single_requests: n(12_800),
            connections: 64,
        }
    }
}

/// What every phase needs.
struct Bench {
    engine_url: String,
    sdk_url: String,
    http: reqwest::Client,
    sdk: Arc<Sdk>,
    cores: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,sqlx=error".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let counts = Counts::new(&args);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let dir = match &args.dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let db = dir.path().join("ingot.db");

    // The engine: SQLite (WAL, synchronous=FULL as the store sets), dev mode,
    // no discovery or polling.
    let store = SqliteStore::open(&db).await.with_context(|| format!("opening {}", db.display()))?;
    let engine_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let engine_addr = engine_listener.local_addr()?;
    let mut config = EngineConfig::dev();
    config.discovery = false;
    config.poll = false;
    config.sdk_urls.clear();
    if let Some(w) = args.workers {
        config.workers = w;
    }
    let workers = config.workers;
    config.public_url = format!("http://{engine_addr}");
    let engine = Engine::new(config, Arc::new(store), Clock::system()).await?;
    engine.start();
    let router = engine.router();
    tokio::spawn(async move { axum::serve(engine_listener, router).await });

    // The SDK endpoint.
    let sdk = Sdk::new();
    let sdk_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sdk_addr = sdk_listener.local_addr()?;
    let sdk_router = sdk.router();
    tokio::spawn(async move { axum::serve(sdk_listener, sdk_router).await });

    let http = reqwest::Client::builder().pool_max_idle_per_host(256).tcp_nodelay(true).timeout(Duration::from_secs(60)).build()?;
    let bench = Bench { engine_url: format!("http://{engine_addr}"), sdk_url: format!("http://{sdk_addr}/api/inngest"), http, sdk, cores };
    register(&bench).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss = proc_status_kb("VmRSS");

    println!(
        "ingot-bench: engine {} ({workers} workers; SQLite {} WAL, synchronous=FULL), SDK endpoint {}, {cores} cores{}",
        bench.engine_url,
        db.display(),
        bench.sdk_url,
        if args.quick { ", --quick" } else { "" }
    );
    println!("load average at start (other processes share this machine): {}", loadavg());
    println!();
    println!("Memory");
    line("idle RSS after start + sync (whole bench process)", &mb(idle_rss), "≤ 50 MB idle", idle_rss.map(|k| k <= 50 * 1024));

    if args.wants("baseline") {
        println!();
        println!("[5] Baselines: the floor of this machine");
        baseline_http(&bench, &counts).await?;
        baseline_fsync(dir.path(), &counts).await?;
        baseline_store(dir.path(), &counts, cores).await?;
    }
    if args.wants("first-call") {
        println!();
        println!("[1] Event → first SDK call, low load (one run at a time)");
        latency_first_call(&bench, &counts).await?;
    }
    if args.wants("steps") {
        println!();
        println!("[2] Step → next step, low load (bench-steps10, one run at a time)");
        latency_steps(&bench, &counts).await?;
    }
    let mut unlimited = None;
    if args.wants("throughput") {
        println!();
        println!("[3] Throughput, many runs in flight (bench-steps3)");
        unlimited = Some(throughput(&bench, &counts, UNLIMITED).await?);
    }
    if args.wants("concurrency") {
        println!();
        println!(
            "[3b] Throughput with a keyed concurrency limit ({}: limit {} per event.data.k, {} keys)",
            LIMITED.0,
            sdk::CONC_LIMIT,
            sdk::CONC_KEYS
        );
        concurrency(&bench, &counts, unlimited).await?;
    }
    if args.wants("ingest") {
        println!();
        println!("[4] Event ingest (event name that triggers nothing)");
        ingest_batches(&bench, &counts, 1).await?;
        ingest_batches(&bench, &counts, 4).await?;
        ingest_single(&bench, &counts).await?;
    }
    if args.wants("retention") {
        println!();
        println!("[6] Retention under a sustained load (an engine of its own, retention {} s)", args.retention_period);
        let opts = retention::Opts {
            rate: args.retention_rate.max(1),
            load: Duration::from_secs(args.retention_secs.max(1)),
            period: Duration::from_secs(args.retention_period.max(1)),
            sample: Duration::from_secs(args.retention_sample.max(1)),
        };
        retention::run(&bench, dir.path(), &opts).await?;
    }

    println!();
    println!("Memory");
    let db_size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(dir.path().join("ingot.db-wal")).map(|m| m.len()).unwrap_or(0);
    line("idle RSS after start (from above)", &mb(idle_rss), "", None);
    line("RSS now", &mb(proc_status_kb("VmRSS")), "", None);
    line("peak RSS (VmHWM, whole bench process)", &mb(proc_status_kb("VmHWM")), "", None);
    line("database size (db + wal)", &format!("{:.1} MB", db_size as f64 / 1048576.0), "", None);
    line("SDK calls served in total", &bench.sdk.calls.load(std::sync::atomic::Ordering::Relaxed).to_string(), "", None);
    println!();
    println!("load average at end: {}", loadavg());
    println!("ingot-bench finished in {:.1} s", started.elapsed().as_secs_f64());
    engine.shutdown();
    Ok(())
}

/// The first three fields of `/proc/loadavg`.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

async fn register(b: &Bench) -> anyhow::Result<()> {
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
async fn send_events(b: &Bench, body: impl Into<reqwest::Body>) -> anyhow::Result<Duration> {
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
async fn wait_completed(b: &Bench, run_id: &str) -> anyhow::Result<Instant> {
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
async fn traced_run(b: &Bench, event: &str) -> anyhow::Result<(Instant, Duration, sdk::Trace, Instant)> {
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

async fn baseline_http(b: &Bench, c: &Counts) -> anyhow::Result<()> {
    let url = format!("{}?fnId={BASELINE_FN}&stepId=step", b.sdk_url);
    let body = r#"{"event":{"name":"x","data":{}},"events":[],"steps":{},"ctx":{"run_id":"01BASELINE"},"version":-1,"use_api":false}"#;
    let mut samples = Vec::with_capacity(c.http_baseline);
    for i in 0..c.http_baseline + 50 {
        let t0 = Instant::now();
        let resp = b.http.post(&url).body(body).send().await?;
        let _ = resp.bytes().await?;
        if i >= 50 {
            samples.push(t0.elapsed());
        }
    }
    let s = Samples::new(samples);
    line(
        &format!("HTTP round trip to the SDK endpoint (reqwest→axum, n={})", s.len()),
        &format!("p50 {}  p99 {}", ms(s.p50()), ms(s.p99())),
        "",
        None,
    );
    let url = format!("{}/health", b.engine_url);
    let mut samples = Vec::with_capacity(c.http_baseline);
    for i in 0..c.http_baseline + 50 {
        let t0 = Instant::now();
        let resp = b.http.get(&url).send().await?;
        let _ = resp.bytes().await?;
        if i >= 50 {
            samples.push(t0.elapsed());
        }
    }
    let s = Samples::new(samples);
    line(&format!("HTTP round trip to engine GET /health (n={})", s.len()), &format!("p50 {}  p99 {}", ms(s.p50()), ms(s.p99())), "", None);
    Ok(())
}

async fn baseline_fsync(dir: &std::path::Path, c: &Counts) -> anyhow::Result<()> {
    let path = dir.join("fsync-baseline.db");
    let mut conn = SqliteConnectOptions::from_str("sqlite://")?
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .connect()
        .await?;
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)").execute(&mut conn).await?;
    let mut samples = Vec::with_capacity(c.fsync_commits);
    let t0 = Instant::now();
    for i in 0..c.fsync_commits {
        let t = Instant::now();
        sqlx::query("INSERT INTO t (v) VALUES (?)").bind(format!("row {i}")).execute(&mut conn).await?;
        samples.push(t.elapsed());
    }
    let wall = t0.elapsed();
    conn.close().await?;
    let s = Samples::new(samples);
    line(
        &format!("SQLite commit, 1 row each, WAL+FULL (n={})", c.fsync_commits),
        &format!("{:.0} commits/s  p50 {}  p99 {}", c.fsync_commits as f64 / wall.as_secs_f64(), ms(s.p50()), ms(s.p99())),
        "",
        None,
    );
    Ok(())
}

/// The engine's store alone, on a database of its own: how many commits and
/// point reads it serves, serially and with many callers, without HTTP.
async fn baseline_store(dir: &std::path::Path, c: &Counts, cores: usize) -> anyhow::Result<()> {
    let store = Arc::new(SqliteStore::open(&dir.join("store-baseline.db")).await?);
    let run_id = RunId::parse("01ARZ3NDEKTSV4RRFFQ69G5FAV").context("run id")?;
    let commit = move || Commit {
        ops: vec![WriteOp::History(HistoryRecord {
            run_id,
            at_ms: 0,
            kind: "bench".into(),
            step: Some("step".into()),
            name: None,
            attempt: Some(0),
            duration_ms: Some(0),
            detail: json!({"result": "ops"}),
        })],
    };
    // Serial: one commit in flight.
    let mut serial = Vec::with_capacity(c.fsync_commits);
    for _ in 0..c.fsync_commits {
        let t = Instant::now();
        store.commit(commit()).await?;
        serial.push(t.elapsed());
    }
    let serial = Samples::new(serial);
    line(
        &format!("SqliteStore commit, 1 in flight (n={})", serial.len()),
        &format!("p50 {}  p99 {}", ms(serial.p50()), ms(serial.p99())),
        "",
        None,
    );
    // Concurrent: 256 committers (the engine's worker count).
    let total = c.store_ops;
    let per = total / 256;
    let usage = Usage::now();
    let t0 = Instant::now();
    let tasks = (0..256).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..per {
                store.commit(commit()).await?;
            }
            anyhow::Ok(())
        })
    });
    for r in join_all(tasks).await {
        r??;
    }
    let wall = t0.elapsed();
    line(
        &format!("SqliteStore commits, 256 in flight (1 small op each, n={})", per * 256),
        &format!("{:.0} commits/s", (per * 256) as f64 / wall.as_secs_f64()),
        "",
        None,
    );
    line("", &usage.line(wall, cores), "", None);
    // Point reads through the store's read pool.
    let usage = Usage::now();
    let t0 = Instant::now();
    let tasks = (0..256).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..per {
                store.run(run_id).await?;
            }
            anyhow::Ok(())
        })
    });
    for r in join_all(tasks).await {
        r??;
    }
    let wall = t0.elapsed();
    line(
        &format!("SqliteStore point reads (run by id), 256 in flight (n={})", per * 256),
        &format!("{:.0} reads/s", (per * 256) as f64 / wall.as_secs_f64()),
        "",
        None,
    );
    line("", &usage.line(wall, cores), "", None);
    Ok(())
}

async fn latency_first_call(b: &Bench, c: &Counts) -> anyhow::Result<()> {
    for _ in 0..20 {
        traced_run(b, "bench/hello").await?;
    }
    let mut first = Vec::new();
    let mut rtt = Vec::new();
    let mut completed = Vec::new();
    let usage = Usage::now();
    let t0 = Instant::now();
    for _ in 0..c.hello_samples {
        let (sent, r, trace, done) = traced_run(b, "bench/hello").await?;
        first.push(trace.calls[0] - sent);
        rtt.push(r);
        completed.push(done - sent);
    }
    let wall = t0.elapsed();
    let first = Samples::new(first);
    let rtt = Samples::new(rtt);
    let completed = Samples::new(completed);
    line(
        &format!("event → first SDK call, p50 (n={})", first.len()),
        &ms(first.p50()),
        "p50 ≤ 2 ms",
        Some(first.p50() <= Duration::from_millis(2)),
    );
    line(
        "event → first SDK call, p99",
        &format!("{}  (max {})", ms(first.p99()), ms(first.max())),
        "p99 ≤ 10 ms",
        Some(first.p99() <= Duration::from_millis(10)),
    );
    line("POST /e round trip (1 event, answered after commit)", &format!("p50 {}  p99 {}", ms(rtt.p50()), ms(rtt.p99())), "", None);
    line(
        "event → run Completed in GET /v1/runs/{id} (1 ms poll)",
        &format!("p50 {}  p99 {}", ms(completed.p50()), ms(completed.p99())),
        "",
        None,
    );
    line("", &usage.line(wall, b.cores), "", None);
    Ok(())
}

async fn latency_steps(b: &Bench, c: &Counts) -> anyhow::Result<()> {
    for _ in 0..3 {
        traced_run(b, "bench/steps10").await?;
    }
    let mut gaps = Vec::new();
    let mut whole = Vec::new();
    let usage = Usage::now();
    let t0 = Instant::now();
    for _ in 0..c.step_runs {
        let (sent, _, trace, done) = traced_run(b, "bench/steps10").await?;
        if trace.calls.len() != 11 {
            bail!("a 10-step run made {} calls, expected 11", trace.calls.len());
        }
        gaps.extend(trace.calls.windows(2).map(|w| w[1] - w[0]));
        whole.push(done - sent);
    }
    let wall = t0.elapsed();
    let gaps = Samples::new(gaps);
    let whole = Samples::new(whole);
    line(
        &format!("step → next step call, p50 (n={})", gaps.len()),
        &ms(gaps.p50()),
        "p50 ≤ 2 ms",
        Some(gaps.p50() <= Duration::from_millis(2)),
    );
    line("step → next step call, p99", &format!("{}  (max {})", ms(gaps.p99()), ms(gaps.max())), "", None);
    line("event → 10-step run Completed in the API", &format!("p50 {}  p99 {}", ms(whole.p50()), ms(whole.p99())), "", None);
    line("", &usage.line(wall, b.cores), "", None);
    Ok(())
}

/// The throughput functions: (function id, trigger event).
const UNLIMITED: (&str, &str) = ("bench-steps3", "bench/steps3");
const LIMITED: (&str, &str) = ("bench-steps3-conc", "bench/steps3-conc");

/// What [`drive`] saw: times from the first POST /e.
struct Drove {
    /// All events accepted.
    sent: Duration,
    /// The last run answered 200 by the SDK.
    sdk_done: Duration,
    /// No run of the function still Running in the API.
    all_done: Duration,
    /// SDK calls made meanwhile.
    calls: u64,
    usage: Usage,
}

/// Sends `runs` events for `function` (key `k` = i mod [`sdk::CONC_KEYS`],
/// every SDK call taking `sleep_ms`) and waits until all runs are Completed.
async fn drive(b: &Bench, (function, event): (&str, &str), runs: usize, batch: usize, sleep_ms: u64) -> anyhow::Result<Drove> {
    let before = b.sdk.done(function);
    let calls_before = b.sdk.calls.load(std::sync::atomic::Ordering::Relaxed);
    let bodies: Vec<String> = (0..runs)
        .collect::<Vec<_>>()
        .chunks(batch)
        .map(|chunk| {
            let events = chunk.iter().map(|i| {
                let mut data = json!({"i": i, "k": i % sdk::CONC_KEYS});
                if sleep_ms > 0 {
                    data["sleep_ms"] = json!(sleep_ms);
                }
                json!({"name": event, "data": data})
            });
            Value::Array(events.collect()).to_string()
        })
        .collect();
    let usage = Usage::now();
    let t0 = Instant::now();
    for body in bodies {
        send_events(b, body).await?;
    }
    let sent = t0.elapsed();
    let deadline = Duration::from_secs(180);
    let mut last_print = Instant::now();
    loop {
        let done = b.sdk.done(function) - before;
        if done as usize >= runs {
            break;
        }
        if t0.elapsed() > deadline {
            bail!("only {done} of {runs} runs finished within {deadline:?}");
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            eprintln!("  ... {done}/{runs} runs finished after {:.1} s", t0.elapsed().as_secs_f64());
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let sdk_done = t0.elapsed();
    // The engine commits each completion after the SDK's 200; wait until
    // the API shows no run of the function still Running.
    let url = format!("{}/v1/runs?status=Running&function={function}&limit=1", b.engine_url);
    loop {
        let v: Value = b.http.get(&url).send().await?.json().await?;
        if v["data"].as_array().is_some_and(|a| a.is_empty()) {
            break;
        }
        if t0.elapsed() > deadline {
            bail!("runs still Running after {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let all_done = t0.elapsed();
    let failed: Value =
        b.http.get(format!("{}/v1/runs?status=Failed&function={function}&limit=1", b.engine_url)).send().await?.json().await?;
    if failed["data"].as_array().is_some_and(|a| !a.is_empty()) {
        bail!("a {function} run failed: {failed}");
    }
    let calls = b.sdk.calls.load(std::sync::atomic::Ordering::Relaxed) - calls_before;
    Ok(Drove { sent, sdk_done, all_done, calls, usage })
}

/// Steps/s and 3-step runs/s of a throughput phase.
#[derive(Clone, Copy)]
struct Rates {
    steps: f64,
    runs: f64,
}

/// Many 3-step runs of `f` in flight; prints and returns the rates. The
/// design targets are checked for the unlimited function only.
async fn throughput(b: &Bench, c: &Counts, f: (&str, &str)) -> anyhow::Result<Rates> {
    let runs = c.tput_runs;
    let d = drive(b, f, runs, c.tput_batch, 0).await?;
    let secs = d.all_done.as_secs_f64();
    let steps = runs * 3;
    let rates = Rates { steps: steps as f64 / secs, runs: runs as f64 / secs };
    let targets = f == UNLIMITED;
    line(
        &format!("{runs} events sent in batches of {} (POST /e total)", c.tput_batch),
        &format!("{:.2} s", d.sent.as_secs_f64()),
        "",
        None,
    );
    line(
        "last run answered 200 by the SDK / Completed in the API",
        &format!("{:.2} s / {:.2} s", d.sdk_done.as_secs_f64(), secs),
        "",
        None,
    );
    line(
        &format!("steps/s ({steps} steps, to all Completed)"),
        &format!("{:.0} steps/s", rates.steps),
        if targets { "≥ 10,000 steps/s" } else { "" },
        targets.then_some(rates.steps >= 10_000.0),
    );
    line(
        "3-step runs/s",
        &format!("{:.0} runs/s", rates.runs),
        if targets { "≥ 3,000 runs/s" } else { "" },
        targets.then_some(rates.runs >= 3_000.0),
    );
    line(&format!("SDK calls/s ({} calls: 4 per run)", d.calls), &format!("{:.0} calls/s", d.calls as f64 / secs), "", None);
    line("", &d.usage.line(d.all_done, b.cores), "", None);
    line("context switches per SDK call (whole process)", &format!("{:.0}", d.usage.switches() as f64 / d.calls.max(1) as f64), "", None);
    Ok(rates)
}

/// The most calls of `function` for one key in the SDK handler at once.
fn max_line(b: &Bench, label: &str, function: &str, check: bool) {
    let limit = sdk::CONC_LIMIT;
    let (max, reached) = b.sdk.max_in_flight(function, limit);
    let value = format!("{max}  ({reached} of {} keys reached {limit})", sdk::CONC_KEYS);
    if check {
        line(label, &value, &format!("≤ {limit}"), Some(max <= limit));
    } else {
        line(label, &value, "", None);
    }
}

/// Throughput of [`LIMITED`] beside the unlimited phase, and the per-key
/// in-flight calls at the SDK endpoint: on the fast endpoint, then with
/// every call taking `check_sleep_ms` so the limit binds (with the unlimited
/// function under the same load as the control).
async fn concurrency(b: &Bench, c: &Counts, unlimited: Option<Rates>) -> anyhow::Result<()> {
    b.sdk.reset_max_in_flight(LIMITED.0);
    let rates = throughput(b, c, LIMITED).await?;
    match unlimited {
        Some(u) => line(
            "ratio to the unlimited phase [3] (steps/s, runs/s)",
            &format!("{:.2}× ({:.0} vs {:.0} steps/s), {:.2}×", rates.steps / u.steps, rates.steps, u.steps, rates.runs / u.runs),
            "",
            None,
        ),
        None => line("ratio to the unlimited phase [3]", "n/a (phase throughput not run)", "", None),
    }
    max_line(b, "max SDK calls in flight for one key (fast endpoint)", LIMITED.0, true);

    let (runs, sleep) = (c.check_runs, c.check_sleep_ms);
    let per_key = runs.div_ceil(sdk::CONC_KEYS);
    // 4 calls per run, `CONC_LIMIT` at a time per key.
    let floor = (per_key * 4) as f64 * sleep as f64 / 1000.0 / sdk::CONC_LIMIT as f64;
    println!("  with every SDK call taking {sleep} ms ({runs} runs, {per_key} per key):");
    b.sdk.reset_max_in_flight(LIMITED.0);
    let d = drive(b, LIMITED, runs, c.tput_batch, sleep).await?;
    line(
        &format!("  {} to all Completed", LIMITED.0),
        &format!("{:.2} s  (≥ {floor:.2} s at {} per key)", d.all_done.as_secs_f64(), sdk::CONC_LIMIT),
        "",
        None,
    );
    max_line(b, "  max SDK calls in flight for one key", LIMITED.0, true);
    b.sdk.reset_max_in_flight(UNLIMITED.0);
    let d = drive(b, UNLIMITED, runs, c.tput_batch, sleep).await?;
    line(&format!("  control: {} (no limit) to all Completed", UNLIMITED.0), &format!("{:.2} s", d.all_done.as_secs_f64()), "", None);
    max_line(b, "  control: max SDK calls in flight for one key", UNLIMITED.0, false);
    Ok(())
}

async fn ingest_batches(b: &Bench, c: &Counts, in_flight: usize) -> anyhow::Result<()> {
    let size = c.ingest_batch_size;
    let bodies: Vec<bytes::Bytes> = (0..c.ingest_batches)
        .map(|j| {
            let events: Vec<Value> =
                (0..size).map(|i| json!({"name": "bench/none", "data": {"batch": j, "i": i, "user": "someone@example.com"}})).collect();
            bytes::Bytes::from(Value::Array(events).to_string())
        })
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(bodies));
    let usage = Usage::now();
    let t0 = Instant::now();
    let tasks = (0..in_flight).map(|_| {
        let queue = queue.clone();
        async move {
            let mut rtts = Vec::new();
            loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                let Some(body) = next else { break };
                rtts.push(send_events(b, body).await?);
            }
            anyhow::Ok(rtts)
        }
    });
    let mut rtts = Vec::new();
    for r in join_all(tasks).await {
        rtts.extend(r?);
    }
    let wall = t0.elapsed();
    let events = c.ingest_batches * size;
    let rate = events as f64 / wall.as_secs_f64();
    let rtts = Samples::new(rtts);
    line(
        &format!("batches: {} × {size} events, {in_flight} request(s) in flight", c.ingest_batches),
        &format!("{rate:.0} events/s  (batch p50 {})", ms(rtts.p50())),
        "≥ 20,000 events/s",
        Some(rate >= 20_000.0),
    );
    line("", &usage.line(wall, b.cores), "", None);
    Ok(())
}

async fn ingest_single(b: &Bench, c: &Counts) -> anyhow::Result<()> {
    let conns = c.connections;
    let per = c.single_requests.div_ceil(conns);
    let total = per * conns;
    // A client of its own so the pool holds exactly `conns` connections.
    let http = reqwest::Client::builder().pool_max_idle_per_host(conns).tcp_nodelay(true).timeout(Duration::from_secs(60)).build()?;
    let body = bytes::Bytes::from(json!({"name": "bench/none", "data": {"single": true, "user": "someone@example.com"}}).to_string());
    for (label, url, post) in [
        ("baseline: GET /health", format!("{}/health", b.engine_url), false),
        ("single-event POST /e", format!("{}/e/bench", b.engine_url), true),
    ] {
        let usage = Usage::now();
        let t0 = Instant::now();
        let tasks = (0..conns).map(|_| {
            let http = http.clone();
            let url = url.clone();
            let body = body.clone();
            async move {
                let mut rtts = Vec::with_capacity(per);
                for _ in 0..per {
                    let t = Instant::now();
                    let req =
                        if post { http.post(&url).header("Content-Type", "application/json").body(body.clone()) } else { http.get(&url) };
                    let resp = req.send().await?;
                    let status = resp.status();
                    let _ = resp.bytes().await?;
                    if !status.is_success() {
                        bail!("{url} answered {status}");
                    }
                    rtts.push(t.elapsed());
                }
                anyhow::Ok(rtts)
            }
        });
        let mut rtts = Vec::new();
        for r in join_all(tasks).await {
            rtts.extend(r?);
        }
        let wall = t0.elapsed();
        let rate = total as f64 / wall.as_secs_f64();
        let rtts = Samples::new(rtts);
        let (target, ok) = if post { ("≥ 5,000 req/s", Some(rate >= 5_000.0)) } else { ("", None) };
        line(
            &format!("{label}: {total} requests, {conns} connections"),
            &format!("{rate:.0} req/s  (p50 {} p99 {})", ms(rtts.p50()), ms(rtts.p99())),
            target,
            ok,
        );
        line("", &usage.line(wall, b.cores), "", None);
    }
    Ok(())
}
