//! Durability: `kill -9` of the engine with hundreds of runs in flight.
//!
//! The JS v4 app's `durable` function runs step `one`, sleeps 1 s, runs step
//! `two` and returns `{done: true, i}`. The test sends 300 events, SIGKILLs the
//! engine once about half the runs have run step `one` (so runs are spread
//! over every state: not started, mid-call, sleeping, mid-commit), restarts it
//! on the same database and port, and checks the invariants of
//! docs/design.md:
//!
//! - **Accepted means durable**: every event answered with 200 (including a
//!   batch sent while the kill happens, if it was answered) has exactly one
//!   run, and it completes with the right output.
//! - **No orphans**: while the runs finish, every Running run has a queue
//!   item; at the end no run is Running.
//! - **Memoized means final**: a step body runs again only if its first run
//!   was caused by the killed engine (its result may not have been committed);
//!   after the restart each step runs at most once, and before the kill too;
//!   a step whose result the killed engine had committed never runs again;
//!   every memo is the step's return value.
//!
//! The whole test is bounded to 90 s. Needs `scripts/setup-test-deps.sh`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use ingot_test_support::{epoch_ms, Deadline, LogEntry, RunStatus, Sdk, TestEnv, WAIT_TIMEOUT};
use serde_json::{json, Value};

/// Events sent before the kill, in batches of [`BATCH`]; the last batch is
/// sent (and answered) just before the kill.
const EVENTS: usize = 300;
const BATCH: usize = 50;
/// Everything, engine and app start-up included.
const BUDGET: Duration = Duration::from_secs(90);
/// From the restart until every run has finished.
const FINISH_TIMEOUT: Duration = Duration::from_secs(45);
const FN: &str = "durable";
const EVENT: &str = "e2e/durable";

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_loses_no_accepted_run_and_reruns_no_memoized_step() {
    let started = Instant::now();
    let mut env = TestEnv::start(Sdk::JsV4).await;
    let left = BUDGET.saturating_sub(started.elapsed());
    match tokio::time::timeout(left, scenario(&mut env)).await {
        Ok(Ok(report)) => eprintln!("durability ({:.1?} in all): {report}", started.elapsed()),
        // Panicking while `env` is alive prints the engine, app and E2E logs.
        Ok(Err(e)) => panic!("{e:#}"),
        Err(_) => panic!("the durability test took more than {BUDGET:?} in all"),
    }
}

fn batch(from: usize, to: usize) -> Value {
    Value::Array((from..to).map(|i| json!({ "name": EVENT, "data": { "i": i } })).collect())
}

/// The `durable` function's step lines in E2E_LOG.
fn step_lines(env: &TestEnv, step: &str) -> Result<Vec<LogEntry>> {
    Ok(env.entries_of(FN)?.into_iter().filter(|e| e.step.as_deref() == Some(step)).collect())
}

async fn scenario(env: &mut TestEnv) -> Result<String> {
    // Accepted events: internal id -> data.i.
    let mut accepted: HashMap<String, usize> = HashMap::new();
    let last = EVENTS - BATCH;
    for from in (0..last).step_by(BATCH) {
        let ids = env.send(batch(from, from + BATCH)).await?;
        accepted.extend(ids.into_iter().zip(from..));
    }

    // Kill once about half the runs have run step `one`.
    let deadline = Deadline::after(WAIT_TIMEOUT);
    loop {
        let ones = step_lines(env, "one")?.len();
        if ones >= EVENTS / 2 {
            break;
        }
        deadline.tick().await.with_context(|| format!("waiting for {} runs to run step one; {ones} did", EVENTS / 2))?;
    }
    // The last batch is answered an instant before the kill: the answer
    // promises its runs are on disk.
    let ids = env.send(batch(last, EVENTS)).await?;
    accepted.extend(ids.into_iter().zip(last..));
    ensure!(accepted.len() == EVENTS, "{} distinct ids for {EVENTS} events", accepted.len());
    // One more batch races the kill: if it is answered 200 it must survive.
    let racing = {
        let http = env.http.clone();
        let url = format!("{}/e/test", env.base);
        let body = batch(EVENTS, EVENTS + BATCH);
        tokio::spawn(async move {
            let r = http.post(&url).json(&body).send().await.ok()?;
            let ok = r.status().is_success();
            let body: Value = r.json().await.ok()?;
            let ids: Vec<String> = body["ids"].as_array()?.iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
            (ok && ids.len() == BATCH).then_some(ids)
        })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let kill_ms = env.kill_engine_hard()?;
    let racing = racing.await.context("racing send task")?;
    if let Some(ids) = &racing {
        accepted.extend(ids.iter().cloned().zip(EVENTS..));
    }

    // Requests the dead engine sent may still be running in the app: wait
    // until E2E_LOG is quiet. Every line before `boundary` was caused by the
    // killed engine; nothing can call the app until the restart.
    let mut lines_seen = env.log_entries()?.len();
    let mut quiet_since = Instant::now();
    let quiesce = Instant::now();
    while quiet_since.elapsed() < Duration::from_millis(300) && quiesce.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n = env.log_entries()?.len();
        if n != lines_seen {
            lines_seen = n;
            quiet_since = Instant::now();
        }
    }
    let boundary = epoch_ms();
    let ran_before = |lines: Vec<LogEntry>| lines.iter().filter(|e| e.t.is_some_and(|t| t < kill_ms)).count();
    let ones_at_kill = ran_before(step_lines(env, "one")?);
    let twos_at_kill = ran_before(step_lines(env, "two")?);
    ensure!(twos_at_kill < EVENTS, "the kill came too late to test anything: all {EVENTS} runs had already run step two");

    let restarted = Instant::now();
    env.restart_engine().await.context("restarting the engine on the same database and port")?;
    env.assert_no_orphans().await.context("right after the restart")?;

    // Wait for every run to finish, checking for orphans on the way.
    let finish_deadline = Instant::now() + FINISH_TIMEOUT;
    let mut orphan_checks = 1;
    loop {
        let running = env.runs_with_status("Running").await?;
        let runs = env.runs_of(FN).await?;
        if running.is_empty() && runs.len() >= accepted.len() {
            break;
        }
        if Instant::now() > finish_deadline {
            bail!(
                "{FINISH_TIMEOUT:?} after the restart, {} runs are still Running and {} of {} accepted events have a run; e.g. {:?}",
                running.len(),
                runs.len(),
                accepted.len(),
                running.iter().take(3).map(|r| r.raw.clone()).collect::<Vec<_>>()
            );
        }
        env.assert_no_orphans().await.context("while the runs finish after the restart")?;
        orphan_checks += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let finished_after = restarted.elapsed();

    // Accepted means durable: one Completed run per accepted event, right output.
    let runs = env.runs_of(FN).await?;
    let mut by_event: HashMap<String, Vec<_>> = HashMap::new();
    for run in &runs {
        let event = run.raw["event_id"].as_str().unwrap_or_default().to_string();
        by_event.entry(event).or_default().push(run);
    }
    let mut problems = Vec::new();
    for (event_id, i) in &accepted {
        match by_event.get(event_id).map(Vec::as_slice) {
            None | Some([]) => problems.push(format!("accepted event {event_id} (i = {i}) has no run")),
            Some([run]) => {
                if run.status != RunStatus::Completed || run.output != json!({ "done": true, "i": i }) {
                    problems.push(format!("run for event {event_id} (i = {i}) did not complete right: {run}"));
                }
            }
            Some(many) => problems.push(format!("event {event_id} has {} runs: {many:?}", many.len())),
        }
    }
    // Runs of racing events whose answer was lost must complete too.
    for run in runs.iter().filter(|r| !accepted.contains_key(r.raw["event_id"].as_str().unwrap_or_default())) {
        if run.status != RunStatus::Completed || run.output["done"] != json!(true) {
            problems.push(format!("run of an unanswered racing event did not complete: {run}"));
        }
    }
    let still_running = env.runs_with_status("Running").await?;
    if !still_running.is_empty() {
        problems.push(format!("{} runs still Running at the end", still_running.len()));
    }

    // Memoized means final, from the app's own log of step executions.
    let mut executions: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for e in env.entries_of(FN)? {
        let (Some(run_id), Some(step)) = (e.run_id.clone(), e.step.clone()) else {
            bail!("E2E_LOG line without run_id or step: {}", e.raw);
        };
        let t = e.t.with_context(|| format!("E2E_LOG line without `t`: {}", e.raw))?;
        executions.entry((run_id, step)).or_default().push(t);
    }
    let mut reran = 0;
    for ((run_id, step), times) in &executions {
        let before = times.iter().filter(|t| **t < boundary).count();
        let after = times.len() - before;
        if before > 1 {
            problems.push(format!("step {step} of run {run_id} ran {before} times before the kill: {times:?}"));
        }
        if after > 1 {
            problems.push(format!("step {step} of run {run_id} ran {after} times after the restart: {times:?}"));
        }
        if before == 1 && after == 1 {
            reran += 1;
        }
    }
    let mut saved_before_kill = 0;
    for run in &runs {
        // The memos as committed: `at` is when the engine decided to save it.
        let memos = env.run_steps(&run.run_id).await?;
        for step in ["one", "two"] {
            let key = (run.run_id.clone(), step.to_string());
            let Some(times) = executions.get(&key) else {
                problems.push(format!("completed run {} never ran step {step}", run.run_id));
                continue;
            };
            let Some(memo) = memos.iter().find(|m| m["name"] == json!(step)) else {
                problems.push(format!("completed run {} has no memo for step {step}: {memos:?}", run.run_id));
                continue;
            };
            if memo["memo"] != json!({ "data": step }) {
                problems.push(format!("run {} memoized step {step} as {}", run.run_id, memo["memo"]));
            }
            let Some(saved) = memo["at"].as_str().and_then(rfc3339_ms) else {
                bail!("memo of step {step} of run {} has no readable `at`: {memo}", run.run_id);
            };
            let rerun_after_restart = times.iter().any(|t| *t >= boundary);
            saved_before_kill += usize::from(saved < kill_ms);
            if saved < boundary && rerun_after_restart {
                problems.push(format!(
                    "step {step} of run {} was memoized by the killed engine ({}) yet ran again after the restart: {times:?}",
                    run.run_id, memo["at"]
                ));
            }
        }
    }
    if !problems.is_empty() {
        let shown = problems.iter().take(20).cloned().collect::<Vec<_>>().join("\n");
        bail!("{} problems after kill -9 and restart:\n{shown}", problems.len());
    }

    let late = executions.values().flatten().filter(|t| **t >= kill_ms && **t < boundary).count();
    Ok(format!(
        "{} events accepted (racing batch {}); before the kill {ones_at_kill} runs had run step one and {twos_at_kill} step two, \
         {late} steps ran in the app after the kill (calls of the dead engine); {reran} steps whose first run the kill cut off ran again; \
         {saved_before_kill} memos committed before the kill were kept; \
         all {} runs completed {finished_after:.1?} after the restart; {orphan_checks} orphan checks passed",
        accepted.len(),
        if racing.is_some() { "answered 200" } else { "not answered" },
        runs.len(),
    ))
}

/// `2026-01-02T03:04:05.678Z` (the REST API's UTC form) as ms since the epoch.
fn rfc3339_ms(s: &str) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    if s.len() != 24 || !s.ends_with('Z') {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
}

#[test]
fn rfc3339_ms_reads_the_api_form() {
    assert_eq!(rfc3339_ms("1970-01-01T00:00:00.000Z"), Some(0));
    assert_eq!(rfc3339_ms("2000-03-01T00:00:01.250Z"), Some(951_868_801_250));
    assert_eq!(rfc3339_ms("2024-02-29T23:59:59.999Z"), Some(1_709_251_199_999));
    assert_eq!(rfc3339_ms("yesterday"), None);
}
