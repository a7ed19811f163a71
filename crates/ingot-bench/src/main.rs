//! `ingot-bench`: the engine (SQLite, full durability) served on loopback,
//! driven against a minimal in-process SDK endpoint, with the floor of this
//! machine (raw HTTP round trip, SQLite fsync commit rate) measured in the
//! same run. Every figure is printed next to its target from `design.md`.
//!
//! `cargo run --release -p ingot-bench [-- --quick | --scale 2]`; the
//! retention load runs only when asked: `-- --only retention [--retention-secs 60 --retention-rate 1000]`.

mod client;
mod phases;
mod retention;
mod sdk;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use ingot_engine::EngineConfig;
use ingot_store::SqliteStore;

use client::{register, serve_engine, serve_sdk, Bench};
use phases::baseline::{baseline_fsync, baseline_http, baseline_store};
use phases::concurrency::concurrency;
use phases::first_call::latency_first_call;
use phases::ingest::{ingest_batches, ingest_single};
use phases::steps::latency_steps;
use phases::throughput::{throughput, LIMITED, UNLIMITED};
use stats::{line, mb, proc_status_kb};

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
    /// Run only these phases (comma-separated): baseline, first-call, steps, throughput, concurrency,
    /// tracing (throughput with trace export off vs on), ingest; and `retention` (sustained load
    /// against retention), `lists` (run and event lists on `--list-runs` runs) and `nodes` (SQLite
    /// vs PostgreSQL, one node vs two, a dead node's pickup; needs a PostgreSQL server,
    /// INGOT_BENCH_POSTGRES), never run unless listed here.
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
    /// `lists`: runs (each with its event) in the database the lists are timed on.
    #[arg(long, default_value_t = 1_000_000)]
    list_runs: usize,
    /// The engine's worker count (most SDK calls in flight); default as `EngineConfig::dev()`.
    #[arg(long)]
    workers: Option<usize>,
}

/// Phases that run only when `--only` names them (they take minutes).
const OPT_IN: [&str; 3] = ["retention", "lists", "nodes"];

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
    let (engine, engine_url) = serve_engine(
        Arc::new(store),
        |c| {
            if let Some(w) = args.workers {
                c.workers = w;
            }
        },
        true,
    )
    .await?;
    let workers = args.workers.unwrap_or_else(|| EngineConfig::dev().workers);

    // The SDK endpoint.
    let (sdk, sdk_url) = serve_sdk().await?;

    let http = reqwest::Client::builder().pool_max_idle_per_host(256).tcp_nodelay(true).timeout(Duration::from_secs(60)).build()?;
    let bench = Bench { engine_url, sdk_url, http, sdk, cores };
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
    if args.wants("tracing") {
        println!();
        println!("[3c] Throughput with trace export off vs on (bench-steps3; engines of their own, OTLP/HTTP to a discarding sink)");
        phases::traces::run(dir.path(), counts.tput_runs, counts.tput_batch, args.workers, cores).await?;
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
    if args.wants("lists") {
        println!();
        println!("[7] Run and event lists on {} runs (an engine of its own; HTTP, median of 5)", args.list_runs);
        phases::lists::run(dir.path(), args.list_runs.max(1)).await?;
    }

    if args.wants("nodes") {
        println!();
        println!("[8] Several nodes: SQLite vs PostgreSQL, one node vs two (engines of their own)");
        phases::nodes::run(dir.path(), counts.tput_runs, counts.tput_batch, args.workers, cores).await?;
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
