//! Signal scenarios every SDK app with the functions `signal-waiter`
//! (`e2e/signal-wait` with `{signal, timeout}`: waits for the signal and
//! returns `{got}`, the signal or null) and `signal-sender` (`e2e/signal-send`
//! with `{signal, data}`: sends it and returns `{sent: {runId}}`) passes.

use std::time::Duration;

use anyhow::{bail, ensure, Result};
use serde_json::{json, Value};

use super::{Deadline, RunStatus, TestEnv};

/// `POST /v1/signals`: the status and the body.
pub async fn send_signal(env: &TestEnv, signal: &str, data: Value) -> Result<(u16, Value)> {
    let r = env.http.post(format!("{}/v1/signals", env.base)).json(&json!({"signal": signal, "data": data})).send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// Waits until the run has its signal wait's timeout queued (the wait is stored).
pub async fn wait_for_signal_wait(env: &TestEnv, run_id: &str) -> Result<()> {
    let deadline = Deadline::after(Duration::from_secs(30));
    loop {
        let jobs = env.run_jobs(run_id).await?;
        if jobs.iter().any(|j| j["work"]["t"] == "timeout" && j["work"]["kind"] == "signal") {
            return Ok(());
        }
        if deadline.passed() {
            bail!("run {run_id} never waited for its signal; jobs: {jobs:?}");
        }
        deadline.tick().await?;
    }
}

/// A signal name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", super::epoch_ms(), ulid::Ulid::new())
}

/// A signal resumes the waiting run (the API names it); a signal nobody
/// waits for, or one already consumed, is 404.
pub async fn resume_and_404(env: &TestEnv) -> Result<()> {
    let (status, body) = send_signal(env, &unique("nobody-waits"), json!({})).await?;
    ensure!(status == 404, "a signal nobody waits for: {status} {body}");

    let signal = unique("order");
    let event = env.send_event("e2e/signal-wait", json!({"signal": signal, "timeout": "60s"})).await?;
    let run = env.wait_run_started(&event, "signal-waiter").await?;
    wait_for_signal_wait(env, &run.run_id).await?;
    let (status, body) = send_signal(env, &signal, json!({"approved": true})).await?;
    ensure!(status == 200, "signal answered {status} {body}");
    ensure!(body["data"]["run_id"] == run.run_id.as_str(), "the answer names the resumed run: {body}");
    let done = env.wait_run_finished(&event, "signal-waiter").await?;
    ensure!(done.status == RunStatus::Completed, "{done}");
    ensure!(done.output == json!({"got": {"signal": signal, "data": {"approved": true}}}), "{done}");
    // Consumed: the same signal again finds nobody.
    let (status, _) = send_signal(env, &signal, json!({})).await?;
    ensure!(status == 404, "a consumed wait answered {status}");
    env.assert_no_orphans().await
}

/// A wait nobody signals ends with null at its timeout.
pub async fn times_out_to_null(env: &TestEnv) -> Result<()> {
    let event = env.send_event("e2e/signal-wait", json!({"signal": unique("late"), "timeout": "2s"})).await?;
    let done = env.wait_run_finished(&event, "signal-waiter").await?;
    ensure!(done.status == RunStatus::Completed && done.output == json!({"got": null}), "{done}");
    Ok(())
}

/// `step.sendSignal` in one run resumes another and returns its run id.
pub async fn send_from_another_run(env: &TestEnv) -> Result<()> {
    let signal = unique("handoff");
    let waiting = env.send_event("e2e/signal-wait", json!({"signal": signal, "timeout": "60s"})).await?;
    let waiter = env.wait_run_started(&waiting, "signal-waiter").await?;
    wait_for_signal_wait(env, &waiter.run_id).await?;
    let sending = env.send_event("e2e/signal-send", json!({"signal": signal, "data": {"from": "sender"}})).await?;
    let sender = env.wait_run_finished(&sending, "signal-sender").await?;
    ensure!(sender.status == RunStatus::Completed, "{sender}");
    ensure!(sender.output["sent"]["runId"] == waiter.run_id.as_str(), "sendSignal returns the resumed run: {sender}");
    let done = env.wait_run_finished(&waiting, "signal-waiter").await?;
    ensure!(done.output == json!({"got": {"signal": signal, "data": {"from": "sender"}}}), "{done}");
    Ok(())
}
