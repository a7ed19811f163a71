//! Phase `retention` (run only when asked: `--only retention`): does
//! retention keep up with a sustained load? An engine of its own, with a
//! retention period of seconds, takes a rate-paced stream of events into
//! `bench-steps3` (3 steps, 4 SDK calls per run) while the process's RSS, the
//! database size (db + wal) and its row counts are sampled; the summary
//! compares the values after the first retention pass with the most seen
//! later. Before the load, one purge pass is timed at several batch sizes on
//! a database of finished runs: a pass holds the store's only writer, so this
//! is how long other commits can wait behind it.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use ingot_core::{EventId, FunctionSlug, RunId, RunState, RunStatus};
use ingot_store::{Commit, HistoryRecord, RunRecord, SqliteStore, StepRecord, Store, StoredEvent, WriteOp};
use serde_json::{json, Value};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use crate::client::{register, send_events, serve_engine, Bench};
use crate::phases::throughput::UNLIMITED;
use crate::stats::{line, mb, ms, proc_status_kb, Samples};

/// The phase's knobs (`--retention-*` flags).
pub struct Opts {
    /// Events per second offered.
    pub rate: u64,
    /// How long the load lasts.
    pub load: Duration,
    /// The engine's retention period.
    pub period: Duration,
    /// Time between samples.
    pub sample: Duration,
}

/// The sender's pace: it tops up to `rate × elapsed` events every tick.
const TICK: Duration = Duration::from_millis(10);
/// Most `POST /e` requests in flight; a tick that finds them all busy sends
/// nothing (the achieved rate then shows the shortfall).
const MAX_IN_FLIGHT: usize = 32;
/// Most events in one request.
const MAX_BATCH: u64 = 500;
/// Batch sizes timed for one purge pass, and the finished runs made for it.
const PASS_SIZES: [usize; 4] = [250, 500, 1_000, 2_000];
const PASS_POOL: usize = 20_000;
const PASS_REPEATS: usize = 3;

pub async fn run(b: &Bench, dir: &Path, opts: &Opts) -> anyhow::Result<()> {
    purge_pass_times(dir).await?;
    load(b, dir, opts).await
}

/// A finished 3-step run as the engine leaves it: its event, the run, 3
/// memoized steps and 8 history lines. `n` makes its ids (valid ULIDs, unique per `n`).
fn finished_run(n: usize, ended_ms: i64) -> anyhow::Result<Vec<WriteOp>> {
    let run_id = RunId::parse(&format!("01J{n:023}")).context("run id")?;
    let event = EventId::parse(&format!("01K{n:023}")).context("event id")?;
    let mut state = RunState::new(run_id, FunctionSlug(UNLIMITED.0.into()), 5);
    state.status = RunStatus::Completed;
    let mut ops = vec![
        WriteOp::InsertEvent(StoredEvent {
            internal_id: event,
            name: UNLIMITED.1.into(),
            payload: json!({"name": UNLIMITED.1, "data": {"i": 1, "k": 1}, "id": event.to_string(), "ts": ended_ms}),
            received_at_ms: ended_ms,
        }),
        WriteOp::InsertRun(RunRecord {
            state,
            event_ids: vec![event],
            output: Some(json!({"steps": 3})),
            started_at_ms: ended_ms,
            ended_at_ms: Some(ended_ms),
            correlation_id: None,
            rev: 4,
        }),
    ];
    for k in 0..3 {
        let step = ingot_protocol::hash_step_id(&format!("s{k}"));
        ops.push(WriteOp::SaveStep(StepRecord {
            run_id,
            step: step.clone(),
            name: format!("s{k}"),
            memo: json!({"data": k}),
            seq: 0,
            at_ms: ended_ms,
        }));
    }
    for h in 0..8 {
        ops.push(WriteOp::History(HistoryRecord {
            run_id,
            at_ms: ended_ms,
            kind: if h % 2 == 0 { "call" } else { "step" }.into(),
            step: Some("step".into()),
            name: Some(format!("s{}", h / 2)),
            attempt: Some(0),
            duration_ms: Some(1),
            detail: json!({"result": "step", "outcome": {"data": h}}),
        }));
    }
    Ok(ops)
}

/// Times one purge pass per batch size on a database holding [`PASS_POOL`]
/// finished runs (oldest purged first, as the engine does).
async fn purge_pass_times(dir: &Path) -> anyhow::Result<()> {
    let store = SqliteStore::open(&dir.join("purge-timing.db")).await?;
    for chunk in 0..PASS_POOL / 200 {
        let mut ops = Vec::new();
        for i in chunk * 200..(chunk + 1) * 200 {
            ops.extend(finished_run(i, 1 + i as i64)?);
        }
        store.commit(Commit { ops }).await?;
    }
    println!("  one purge pass on a database of {PASS_POOL} finished 3-step runs (each: event, run, 3 steps, 8 history lines):");
    let mut before_ms = 1;
    for size in PASS_SIZES {
        let mut times = Vec::new();
        for _ in 0..PASS_REPEATS {
            before_ms += size as i64;
            let t0 = Instant::now();
            let out = store.commit(Commit { ops: vec![WriteOp::Purge { now_ms: before_ms, before_ms, limit: size }] }).await?;
            times.push(t0.elapsed());
            anyhow::ensure!(out.purged.runs == size && out.purged.events == size, "a pass of {size} deleted {:?}", out.purged);
        }
        let times = Samples::new(times);
        line(
            &format!("  pass of {size} runs + {size} events (median of {PASS_REPEATS})"),
            &format!("{}  ({:.1} µs per run; max {})", ms(times.p50()), times.p50().as_secs_f64() * 1e6 / size as f64, ms(times.max())),
            "",
            None,
        );
    }
    Ok(())
}

/// One sample of the running phase.
#[derive(Clone, Copy)]
struct Sample {
    at: Duration,
    accepted: u64,
    completed: u64,
    rss_kb: u64,
    db_bytes: u64,
    runs: i64,
    /// Runs that ended and wait for retention.
    finished: i64,
    events: i64,
    history: i64,
}

fn db_bytes(db: &Path) -> u64 {
    let size = |suffix: &str| {
        let mut p = db.as_os_str().to_os_string();
        p.push(suffix);
        std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
    };
    size("") + size("-wal")
}

/// Rows stored: runs, finished runs, events, history lines.
async fn counts(conn: &mut SqliteConnection) -> anyhow::Result<(i64, i64, i64, i64)> {
    let row: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM runs), (SELECT COUNT(*) FROM runs WHERE status != 'Running'),
         (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM history)",
    )
    .fetch_one(conn)
    .await?;
    Ok(row)
}

async fn load(b: &Bench, dir: &Path, opts: &Opts) -> anyhow::Result<()> {
    let db = dir.join("retention.db");
    let store = SqliteStore::open(&db).await.with_context(|| format!("opening {}", db.display()))?;
    let period = opts.period;
    let (engine, engine_url) = serve_engine(Arc::new(store), |c| c.retention = period, true).await?;
    let rb = Arc::new(Bench { engine_url, sdk_url: b.sdk_url.clone(), http: b.http.clone(), sdk: b.sdk.clone(), cores: b.cores });
    register(&rb).await?;
    let mut counter = SqliteConnectOptions::new().filename(&db).read_only(true).connect().await?;

    println!(
        "  load: {} events/s for {} s into {} (3 steps), retention period {} s, sampled every {} s; RSS is the whole bench process",
        opts.rate,
        opts.load.as_secs(),
        UNLIMITED.0,
        opts.period.as_secs(),
        opts.sample.as_secs()
    );
    println!(
        "  {:>6}  {:>9}  {:>9}  {:>9}  {:>10}  {:>8}  {:>8}  {:>8}  {:>8}",
        "t", "accepted", "completed", "RSS", "db+wal", "runs", "finished", "events", "history"
    );

    let done_before = b.sdk.done(UNLIMITED.0);
    let accepted = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let rtts = Arc::new(Mutex::new(Vec::new()));
    let t0 = Instant::now();
    let sender = {
        let (rb, accepted, failed, rtts) = (rb.clone(), accepted.clone(), failed.clone(), rtts.clone());
        let (rate, until) = (opts.rate as f64, opts.load);
        tokio::spawn(async move {
            let permits = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut offered = 0u64;
            while t0.elapsed() < until {
                tick.tick().await;
                let due = (t0.elapsed().min(until).as_secs_f64() * rate) as u64;
                let n = due.saturating_sub(offered).min(MAX_BATCH);
                if n == 0 {
                    continue;
                }
                let Ok(permit) = permits.clone().try_acquire_owned() else { continue };
                let events: Vec<Value> = (offered..offered + n).map(|i| json!({"name": UNLIMITED.1, "data": {"i": i}})).collect();
                offered += n;
                let (rb, accepted, failed, rtts) = (rb.clone(), accepted.clone(), failed.clone(), rtts.clone());
                tokio::spawn(async move {
                    match send_events(&rb, Value::Array(events).to_string()).await {
                        Ok(rtt) => {
                            accepted.fetch_add(n, Ordering::Relaxed);
                            rtts.lock().unwrap_or_else(|e| e.into_inner()).push(rtt);
                        }
                        Err(e) => {
                            if failed.fetch_add(n, Ordering::Relaxed) == 0 {
                                eprintln!("  POST /e failed: {e:#}");
                            }
                        }
                    }
                    drop(permit);
                });
            }
            // Let the requests in flight finish.
            let _ = permits.acquire_many(MAX_IN_FLIGHT as u32).await;
            offered
        })
    };

    let print = |s: &Sample| {
        println!(
            "  {:>5.0}s  {:>9}  {:>9}  {:>9}  {:>7.1} MB  {:>8}  {:>8}  {:>8}  {:>8}",
            s.at.as_secs_f64(),
            s.accepted,
            s.completed,
            mb(Some(s.rss_kb)),
            s.db_bytes as f64 / 1048576.0,
            s.runs,
            s.finished,
            s.events,
            s.history
        )
    };
    let mut samples = Vec::new();
    let mut next = opts.sample;
    // After the load, two more retention periods: the rows left should go too.
    let tail = opts.load + 2 * opts.period + opts.sample;
    while t0.elapsed() < tail {
        tokio::time::sleep(next.saturating_sub(t0.elapsed())).await;
        next += opts.sample;
        let (runs, finished, events, history) = counts(&mut counter).await?;
        let s = Sample {
            at: t0.elapsed(),
            accepted: accepted.load(Ordering::Relaxed),
            completed: b.sdk.done(UNLIMITED.0) - done_before,
            rss_kb: proc_status_kb("VmRSS").unwrap_or(0),
            db_bytes: db_bytes(&db),
            runs,
            finished,
            events,
            history,
        };
        print(&s);
        samples.push(s);
    }
    let offered = sender.await?;
    let load_secs = opts.load.as_secs_f64();
    let accepted_n = accepted.load(Ordering::Relaxed);

    println!();
    line(
        &format!("events accepted in {load_secs:.0} s (offered {offered}, failed {})", failed.load(Ordering::Relaxed)),
        &format!("{accepted_n}  ({:.0} events/s)", accepted_n as f64 / load_secs),
        &format!("≈ {} events/s", opts.rate),
        Some(accepted_n as f64 >= 0.95 * opts.rate as f64 * load_secs),
    );
    let at_end_of_load = samples.iter().rfind(|s| s.at <= opts.load + TICK * 10).copied();
    let last = samples.last().copied();
    if let (Some(end), Some(last)) = (at_end_of_load, last) {
        line(
            "runs completed: by the end of the load / by the last sample",
            &format!("{} / {}  ({:.0} runs/s during the load)", end.completed, last.completed, end.completed as f64 / load_secs),
            "",
            None,
        );
    }
    let rtts = Samples::new(std::mem::take(&mut *rtts.lock().unwrap_or_else(|e| e.into_inner())));
    line(
        &format!("POST /e round trip during the load (≤ {MAX_BATCH} events per request, n={})", rtts.len()),
        &format!("p50 {}  p99 {}  max {}", ms(rtts.p50()), ms(rtts.p99()), ms(rtts.max())),
        "",
        None,
    );
    // The first retention pass: the first sample with fewer runs stored than accepted.
    let Some(first) = samples.iter().position(|s| (s.runs as u64) < s.accepted) else {
        line("first retention pass", "not seen: no run was deleted", "", Some(false));
        return Ok(());
    };
    let at = samples[first];
    let later = &samples[first..];
    let during: Vec<&Sample> = later.iter().filter(|s| s.at <= opts.load + TICK * 10).collect();
    println!("  first retention pass seen at the {:.0} s sample; from then on (during the load):", at.at.as_secs_f64());
    let flat = |name: &str, first: f64, max: f64, end: f64, unit: &str| {
        line(
            &format!("  {name}: at first pass / max after / at end of load"),
            &format!("{first:.1} / {max:.1} / {end:.1} {unit}  (max {:.2}× first pass)", max / first.max(1e-9)),
            "max ≤ 1.5× first pass",
            Some(max <= 1.5 * first),
        );
    };
    let end = during.last().copied().copied().unwrap_or(at);
    let max_of = |f: fn(&Sample) -> f64| during.iter().map(|s| f(s)).fold(f(&at), f64::max);
    flat("RSS", at.rss_kb as f64 / 1024.0, max_of(|s| s.rss_kb as f64 / 1024.0), end.rss_kb as f64 / 1024.0, "MB");
    let mib = |s: &Sample| s.db_bytes as f64 / 1048576.0;
    flat("database (db + wal)", mib(&at), max_of(mib), mib(&end), "MB");
    flat("finished runs stored", at.finished as f64, max_of(|s| s.finished as f64), end.finished as f64, "");
    line(
        "  runs still running (the engine's backlog) at first pass / at end of load",
        &format!("{} / {}", at.runs - at.finished, end.runs - end.finished),
        "",
        None,
    );
    if let Some(last) = last {
        line(
            &format!("  rows left {:.0} s after the load (runs / events / history)", last.at.as_secs_f64() - load_secs),
            &format!("{} / {} / {}", last.runs, last.events, last.history),
            "",
            None,
        );
    }
    counter.close().await?;
    engine.shutdown();
    Ok(())
}
