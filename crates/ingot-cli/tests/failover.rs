//! Failover: two engine nodes on one PostgreSQL database, one killed.
//!
//! Node A (with the official JS SDK v4 app) and node B share a fresh
//! database and take work from one queue, with 2 s leases. 240 events go to
//! the `durable` function (step `one`, a 1 s sleep, step `two`), half sent to
//! each node. Once both nodes have called the app and about a third of the
//! runs have run step `one`, B is SIGKILLed: whatever it held (calls in
//! flight, due sleeps it had claimed) stays leased to it until the lease runs
//! out, then A takes it. The test checks that every accepted event's run
//! completes with its output (nothing lost, no run without a way forward),
//! that both nodes did work before the kill, and prints how long A took to
//! finish everything after the kill. Bounded to 120 s; needs
//! `scripts/setup-test-deps.sh` and the PostgreSQL server of this machine
//! (`INGOT_TEST_POSTGRES`, default postgres://postgres@127.0.0.1:5432/test).

use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use ingot_test_support::{EngineProc, RunStatus, Sdk, TestEnv};
use serde_json::{json, Value};

const EVENTS: usize = 240;
const BATCH: usize = 40;
const BUDGET: Duration = Duration::from_secs(120);
const FINISH_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_nodes_runs_finish_on_the_other_node() {
    // Each test is its own process under nextest and cargo test runs this
    // file's single test alone, so setting the environment here is safe:
    // both engines (started below) inherit it.
    std::env::set_var("INGOT_TEST_STORE", "postgres");
    std::env::set_var("INGOT_POSTGRES_LEASE_SECS", "2");
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "info,ingot_engine=debug");
    }
    let started = Instant::now();
    let mut env = TestEnv::start(Sdk::JsV4).await;
    let left = BUDGET.saturating_sub(started.elapsed());
    match tokio::time::timeout(left, scenario(&mut env)).await {
        Ok(Ok(report)) => eprintln!("failover ({:.1?} in all): {report}", started.elapsed()),
        Ok(Err(e)) => panic!("{e:#}"),
        Err(_) => panic!("the failover test took more than {BUDGET:?}"),
    }
}

/// The SDK calls a node's log records.
fn calls_in(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter(|l| l.contains("called the SDK")).count()
}

async fn send(http: &reqwest::Client, base: &str, from: usize, to: usize) -> Result<Vec<(usize, String)>> {
    let body = Value::Array((from..to).map(|i| json!({"name": "e2e/durable", "data": {"i": i}})).collect());
    let r = http.post(format!("{base}/e/test-key")).json(&body).send().await.context("sending events")?;
    ensure!(r.status().is_success(), "events refused: {}", r.status());
    let v: Value = r.json().await?;
    let ids: Vec<String> = v["ids"].as_array().context("no ids")?.iter().filter_map(|i| i.as_str().map(str::to_string)).collect();
    ensure!(ids.len() == to - from, "{} ids for {} events", ids.len(), to - from);
    Ok((from..to).zip(ids).collect())
}

async fn scenario(env: &mut TestEnv) -> Result<String> {
    let uri = env.database_uri().context("the engines are not on PostgreSQL")?;
    let mut b = EngineProc::start(&["--postgres-uri", &uri, "-u", &env.app_url]).await?;
    let a_log = env.engine_log().to_path_buf();

    // Half the events to each node, alternating batches.
    let mut sent = Vec::new();
    for (n, from) in (0..EVENTS).step_by(BATCH).enumerate() {
        let base = if n % 2 == 0 { env.base.clone() } else { b.base.clone() };
        sent.extend(send(&env.http, &base, from, (from + BATCH).min(EVENTS)).await?);
    }

    // Kill B once both nodes have called the app and a third of the runs are past step one.
    let deadline = Instant::now() + Duration::from_secs(40);
    let (a_calls, b_calls) = loop {
        let ones = env.entries_of("durable")?.iter().filter(|e| e.step.as_deref() == Some("one")).count();
        let (a, b_n) = (calls_in(&a_log), calls_in(&b.log()));
        if a > 0 && b_n > 0 && ones >= EVENTS / 3 {
            break (a, b_n);
        }
        ensure!(Instant::now() < deadline, "no progress on both nodes: A {a} calls, B {b_n} calls, {ones} runs past step one");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    b.kill_hard()?;
    let killed = Instant::now();

    // Every accepted event's run completes, on A, with its output.
    let finish = Instant::now() + FINISH_TIMEOUT;
    let mut pending = sent.clone();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for (i, id) in pending {
            let runs = env.runs_for_event(&id).await?;
            ensure!(runs.len() <= 1, "event {i} has {} runs", runs.len());
            match runs.first() {
                Some(r) if r.status == RunStatus::Completed => {
                    ensure!(r.output == json!({"done": true, "i": i}), "event {i}: output {}", r.output);
                }
                Some(r) if r.status.is_terminal() => anyhow::bail!("event {i}'s run ended {:?}: {}", r.status, r.output),
                _ => still.push((i, id)),
            }
        }
        pending = still;
        if !pending.is_empty() {
            ensure!(Instant::now() < finish, "{} runs never finished after the kill (first: event {})", pending.len(), pending[0].0);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let drained = killed.elapsed();
    env.assert_no_orphans().await?;
    Ok(format!(
        "{EVENTS} runs completed; before the kill A made {a_calls} calls and B {b_calls}; after the kill A finished everything in {drained:.1?} (2 s leases)"
    ))
}
