//! Phase `lists` (run only when asked: `--only lists`): the dashboard's and
//! the REST API's run and event lists on a large database. An engine of its
//! own over a SQLite file filled with `--list-runs` runs (1,000,000 by
//! default) and one event each, written straight through the store; then
//! each list request is timed over HTTP (median of a few): the first page,
//! a page deep behind a cursor, every filter the API offers (status, Queued,
//! function, both, a time range, run id, event id), the bounded CEL search,
//! and the totals each list shows.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ingot_core::{EventId, FunctionSlug, RunId, RunState, RunStatus};
use ingot_store::{Commit, HistoryRecord, RunRecord, SqliteStore, Store, StoredEvent, WriteOp};
use serde_json::{json, Value};

use crate::stats::{line, ms};

/// Functions the runs are spread over.
const FUNCTIONS: usize = 10;
/// Runs written per commit.
const BATCH: usize = 5_000;
/// Times each request is made; the median is printed.
const REPEATS: usize = 5;
/// The first run's time; run `n` started `n` ms later.
const T0_MS: i64 = 1_700_000_000_000;

/// Fills a database with `runs` runs, serves it, and times the lists.
pub async fn run(dir: &Path, runs: usize) -> anyhow::Result<()> {
    let db = dir.join("lists.db");
    let store = SqliteStore::open(&db).await.with_context(|| format!("opening {}", db.display()))?;
    let filled = Instant::now();
    fill(&store, runs).await?;
    line(&format!("writing {runs} runs + events through the store"), &format!("{:.1} s", filled.elapsed().as_secs_f64()), "", None);

    let (engine, base) = crate::client::serve_engine(Arc::new(store), |_| {}, false).await?;
    let http = reqwest::Client::new();

    let mid = run_id(runs / 2);
    let f3 = function(3);
    let from = T0_MS + (runs as i64) / 4;
    let until = from + 50_000;
    let cases: Vec<(String, String)> = vec![
        ("runs, first page (50) + total".into(), "/v1/runs?limit=50".into()),
        ("runs, page behind a cursor half-way down".into(), format!("/v1/runs?limit=50&cursor={mid}")),
        ("runs, status=Failed + total".into(), "/v1/runs?status=Failed&limit=50".into()),
        ("runs, status=Running (called) + total".into(), "/v1/runs?status=Running&limit=50".into()),
        ("runs, status=Queued (never called) + total".into(), "/v1/runs?status=Queued&limit=50".into()),
        (format!("runs, function={f3} + total"), format!("/v1/runs?function={f3}&limit=50")),
        (format!("runs, function={f3}&status=Failed + total"), format!("/v1/runs?function={f3}&status=Failed&limit=50")),
        ("runs, a 50 s time range + total".into(), format!("/v1/runs?from={from}&until={until}&limit=50")),
        ("runs, run_id".into(), format!("/v1/runs?run_id={mid}")),
        ("runs, event_id".into(), format!("/v1/runs?event_id={}", event_id(runs / 2))),
        ("runs, CEL output.i == -1 (no match: scans its bound)".into(), format!("/v1/runs?limit=50&query={}", urlencode("output.i == -1"))),
        ("runs, CEL event.data.k == 7 (matches 1 in 100)".into(), format!("/v1/runs?limit=20&query={}", urlencode("event.data.k == 7"))),
        ("dashboard runs, first page (50) + total".into(), "/v1/dashboard/runs?limit=50".into()),
        ("events, first page (50) + total".into(), "/v1/events?limit=50".into()),
        ("events, page behind a cursor half-way down".into(), format!("/v1/events?limit=50&cursor={}", event_id(runs / 2))),
        ("dashboard events, first page (50) + total".into(), "/v1/dashboard/events?limit=50".into()),
    ];
    for (label, path) in cases {
        let mut times = Vec::with_capacity(REPEATS);
        let mut summary = String::new();
        for _ in 0..REPEATS {
            let t = Instant::now();
            let res = http.get(format!("{base}{path}")).send().await?;
            let status = res.status();
            let body: Value = res.json().await?;
            times.push(t.elapsed());
            anyhow::ensure!(status.is_success(), "{path}: {status} {body}");
            summary = describe(&body);
        }
        times.sort();
        let median: Duration = times[times.len() / 2];
        line(&label, &format!("{} ({summary})", ms(median)), "", None);
    }
    engine.shutdown();
    Ok(())
}

/// Rows, total and scan of a list answer, in a few words.
fn describe(body: &Value) -> String {
    let rows = body.get("data").and_then(Value::as_array).map_or(0, Vec::len);
    let meta = body.get("metadata").unwrap_or(body);
    let total = meta
        .get("total_count")
        .and_then(Value::as_u64)
        .map(|n| {
            let exact = meta.get("total_exact").and_then(Value::as_bool).unwrap_or(true);
            format!(", total {}{n}", if exact { "" } else { "≥ " })
        })
        .or_else(|| {
            let t = body.get("total")?;
            let exact = t.get("exact").and_then(Value::as_bool).unwrap_or(true);
            t.get("count").and_then(Value::as_u64).map(|n| format!(", total {}{n}", if exact { "" } else { "≥ " }))
        })
        .unwrap_or_default();
    let scanned = meta.get("scanned").and_then(Value::as_u64).map(|n| format!(", scanned {n}")).unwrap_or_default();
    format!("{rows} rows{total}{scanned}")
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn function(n: usize) -> String {
    format!("bench-list-f{}", n % FUNCTIONS)
}

/// Run `n`'s id: a ULID of its start time, so ids sort as the runs started.
fn run_id(n: usize) -> RunId {
    RunId(ulid::Ulid::from_parts((T0_MS + n as i64) as u64, n as u128))
}

fn event_id(n: usize) -> EventId {
    EventId(ulid::Ulid::from_parts((T0_MS + n as i64) as u64, (1u128 << 64) | n as u128))
}

/// `runs` runs: 90% completed, 5% failed, 4% running (called), 1% queued
/// (never called); each with its event and, if called, one call line.
async fn fill(store: &SqliteStore, runs: usize) -> anyhow::Result<()> {
    let mut ops = Vec::with_capacity(BATCH * 3);
    for n in 0..runs {
        let at = T0_MS + n as i64;
        let (status, called) = match n % 100 {
            0..=89 => (RunStatus::Completed, true),
            90..=94 => (RunStatus::Failed, true),
            95..=98 => (RunStatus::Running, true),
            _ => (RunStatus::Running, false),
        };
        let id = run_id(n);
        let ev = event_id(n);
        let mut state = RunState::new(id, FunctionSlug(function(n)), 3);
        state.status = status;
        ops.push(WriteOp::InsertEvent(StoredEvent {
            internal_id: ev,
            name: "bench/list".into(),
            payload: json!({"name": "bench/list", "data": {"i": n, "k": n % 100}, "id": ev.to_string(), "ts": at}),
            received_at_ms: at,
        }));
        ops.push(WriteOp::InsertRun(RunRecord {
            state,
            event_ids: vec![ev],
            output: status.is_terminal().then(|| json!({"i": n})),
            started_at_ms: at,
            ended_at_ms: status.is_terminal().then_some(at + 5),
            correlation_id: None,
            rev: 1,
        }));
        if called {
            ops.push(WriteOp::History(HistoryRecord {
                run_id: id,
                at_ms: at,
                kind: "call".into(),
                step: Some("step".into()),
                name: None,
                attempt: Some(0),
                duration_ms: Some(1),
                detail: json!({"result": "completed"}),
            }));
        }
        if (n + 1) % BATCH == 0 || n + 1 == runs {
            store.commit(Commit { ops: std::mem::take(&mut ops) }).await?;
        }
    }
    Ok(())
}
