//! Phase `tracing` ([3c]): what exporting traces costs. Two engines of their
//! own (SQLite, fresh files, the same config as the main one), one with
//! tracing off and one with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a sink
//! on loopback that reads each OTLP/HTTP request and discards it, take the
//! same load of 3-step runs in turns (off, on, off, on, ...), and the
//! medians are printed side by side with the spans exported and dropped.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::routing::post;
use ingot_engine::traces::OtlpConfig;
use ingot_engine::{Engine, EngineConfig};
use ingot_store::SqliteStore;

use crate::client::{register, serve_engine, serve_sdk, Bench};
use crate::phases::throughput::{drive, UNLIMITED};
use crate::stats::{cpu_time, line};

/// Turns per mode; the median is reported.
const ROUNDS: usize = 5;

/// What the sink received.
#[derive(Default)]
struct Sink {
    requests: AtomicU64,
    bytes: AtomicU64,
}

async fn receive(State(sink): State<Arc<Sink>>, body: axum::body::Bytes) -> &'static str {
    sink.requests.fetch_add(1, Ordering::Relaxed);
    sink.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    ""
}

/// An OTLP/HTTP trace receiver on loopback that keeps only counts; returns its base URL.
async fn sink() -> anyhow::Result<(Arc<Sink>, String)> {
    let sink = Arc::new(Sink::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route("/v1/traces", post(receive)).with_state(sink.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((sink, format!("http://{addr}")))
}

/// An engine on `db` with its own SDK endpoint, registered; traced when `otlp` is set.
async fn node(db: &Path, otlp: Option<OtlpConfig>, workers: Option<usize>, cores: usize) -> anyhow::Result<(Arc<Engine>, Bench)> {
    let store = SqliteStore::open(db).await.with_context(|| format!("opening {}", db.display()))?;
    let tune = |c: &mut EngineConfig| {
        if let Some(w) = workers {
            c.workers = w;
        }
        c.otlp = otlp;
    };
    let (engine, engine_url) = serve_engine(Arc::new(store), tune, true).await?;
    let (sdk, sdk_url) = serve_sdk().await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).tcp_nodelay(true).timeout(Duration::from_secs(60)).build()?;
    let bench = Bench { engine_url, sdk_url, http, sdk, cores };
    register(&bench).await?;
    Ok((engine, bench))
}

/// One turn: runs/s to all Completed, and process CPU seconds per 1,000 runs.
async fn turn(b: &Bench, runs: usize, batch: usize) -> anyhow::Result<(f64, f64)> {
    let cpu = cpu_time();
    let d = drive(b, UNLIMITED, runs, batch, 0).await?;
    let used = cpu_time().saturating_sub(cpu).as_secs_f64();
    Ok((runs as f64 / d.all_done.as_secs_f64(), used * 1000.0 / runs as f64))
}

/// A counter of the engine's `/metrics` (0 when absent).
async fn counter(b: &Bench, name: &str) -> anyhow::Result<u64> {
    let text = b.http.get(format!("{}/metrics", b.engine_url)).send().await?.text().await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub async fn run(dir: &Path, runs: usize, batch: usize, workers: Option<usize>, cores: usize) -> anyhow::Result<()> {
    let (sink, sink_url) = sink().await?;
    // Read the way `ingot dev`/`start` read the environment, with the sink as the endpoint.
    let otlp = OtlpConfig::from_env(|k| match k {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(sink_url.clone()),
        "OTEL_SERVICE_NAME" => Some("ingot-bench".into()),
        _ => None,
    })
    .map_err(anyhow::Error::msg)?
    .context("an OTLP config from the endpoint")?;
    let endpoint = otlp.endpoint.clone();
    let (off_engine, off) = node(&dir.join("tracing-off.db"), None, workers, cores).await?;
    let (on_engine, on) = node(&dir.join("tracing-on.db"), Some(otlp), workers, cores).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (mut off_rates, mut on_rates, mut off_cpu, mut on_cpu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let (r, c) = turn(&off, runs, batch).await?;
        off_rates.push(r);
        off_cpu.push(c);
        let (r2, c2) = turn(&on, runs, batch).await?;
        on_rates.push(r2);
        on_cpu.push(c2);
        eprintln!("  ... round {round}/{ROUNDS}: off {r:.0} runs/s, on {r2:.0} runs/s");
    }
    // Every span recorded so far reaches the sink before it is counted.
    on_engine.flush_traces().await;
    let exported = counter(&on, "ingot_trace_spans_exported_total").await?;
    let dropped = counter(&on, "ingot_trace_spans_dropped_total").await?;
    let errors = counter(&on, "ingot_trace_export_errors_total").await?;

    let (off_r, on_r) = (median(off_rates.clone()), median(on_rates.clone()));
    let (off_c, on_c) = (median(off_cpu), median(on_cpu));
    let each = |v: &[f64]| v.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(" ");
    let row = |label: &str, off: String, on: String| println!("  {label:<58} {off:>24}   {on:>24}");
    row("", "tracing off".into(), "tracing on".into());
    row(&format!("3-step runs/s, median of {ROUNDS} turns of {runs} runs"), format!("{off_r:.0}"), format!("{on_r:.0}"));
    row("steps/s (3 per run)", format!("{:.0}", off_r * 3.0), format!("{:.0}", on_r * 3.0));
    row("each turn, runs/s (in the order run)", each(&off_rates), each(&on_rates));
    row("process CPU per 1,000 runs (median; bench, SDK, sink too)", format!("{off_c:.2} s"), format!("{on_c:.2} s"));
    let slower = 100.0 * (off_r - on_r) / off_r;
    let change = if slower >= 0.0 { format!("{slower:.1} % fewer runs/s") } else { format!("{:.1} % more runs/s (noise)", -slower) };
    line("throughput with tracing on vs off", &change, "≤ 5 % fewer", Some(slower <= 5.0));
    line("CPU per run with tracing on vs off", &format!("{:+.1} %", 100.0 * (on_c - off_c) / off_c.max(1e-9)), "", None);
    line(&format!("spans exported / dropped / export errors (to {endpoint})"), &format!("{exported} / {dropped} / {errors}"), "", None);
    line(
        "OTLP requests / bytes the sink received and discarded",
        &format!("{} / {:.1} MB", sink.requests.load(Ordering::Relaxed), sink.bytes.load(Ordering::Relaxed) as f64 / 1048576.0),
        "",
        None,
    );
    off_engine.shutdown();
    on_engine.shutdown();
    Ok(())
}
