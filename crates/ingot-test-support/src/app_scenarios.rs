//! Scenarios of the e2e app that the JS apps (tests/sdk-apps/js/app.cjs) and
//! the Rust SDK's twin app share, beyond the ones the Python app also has
//! ([`super::scenarios`]): parallel steps, retries, invoke, fan-out,
//! onFailure and cancel.

use anyhow::{anyhow, ensure, Result};
use serde_json::json;

use super::{RunStatus, TestEnv};

/// `parallel`: `Promise.all` of two steps, then a third after both.
pub async fn parallel(env: &TestEnv) -> Result<()> {
    let run = env.trigger_and_wait("e2e/parallel", json!({}), "parallel").await?;
    ensure!(run.status == RunStatus::Completed, "parallel did not complete: {run}");
    ensure!(run.output == json!({ "sum": 3 }), "parallel output: {run}");
    for step in ["pa", "pb", "after"] {
        let n = env.step_runs("parallel", step, &run.run_id)?;
        ensure!(n == 1, "step {step} ran {n} times, wanted exactly once");
    }
    Ok(())
}

/// `flaky`: the step throws on attempt 0 and succeeds on the retry.
pub async fn flaky(env: &TestEnv) -> Result<()> {
    let run = env.trigger_and_wait("e2e/flaky", json!({}), "flaky").await?;
    ensure!(run.status == RunStatus::Completed, "flaky did not complete: {run}");
    ensure!(run.output == json!("ok"), "flaky output: {run}");
    let attempts: Vec<Option<u64>> =
        env.entries_for("flaky", &run.run_id)?.iter().filter(|e| e.step.as_deref() == Some("flaky-step")).map(|e| e.attempt).collect();
    ensure!(attempts == [Some(0), Some(1)], "flaky-step attempts: {attempts:?}, wanted [0, 1]");
    Ok(())
}

/// `fn-error`: the function body throws every time; `retries: 1` means two
/// attempts, then the run fails.
pub async fn fn_error(env: &TestEnv) -> Result<()> {
    let run = env.trigger_and_wait("e2e/fnerror", json!({}), "fn-error").await?;
    ensure!(run.status == RunStatus::Failed, "fn-error did not fail: {run}");
    ensure!(run.output_text().contains("boom"), "failed run's output lacks the error message: {run}");
    let attempts: Vec<Option<u64>> = env.entries_for("fn-error", &run.run_id)?.iter().map(|e| e.attempt).collect();
    ensure!(attempts == [Some(0), Some(1)], "fn-error body attempts: {attempts:?}, wanted [0, 1]");
    Ok(())
}

/// `invoker`: `step.invoke` of `child` with n=21 returns the child's result.
pub async fn invoke(env: &TestEnv) -> Result<()> {
    let run = env.trigger_and_wait("e2e/invoke", json!({ "n": 21 }), "invoker").await?;
    ensure!(run.status == RunStatus::Completed, "invoker did not complete: {run}");
    ensure!(run.output == json!({ "doubled": 42 }), "invoker output: {run}");
    Ok(())
}

/// `invoke-missing`: invoking a function that does not exist gives the
/// caller an error it can catch, naming the function.
pub async fn invoke_missing(env: &TestEnv) -> Result<()> {
    let run = env.trigger_and_wait("e2e/invoke-missing", json!({}), "invoke-missing").await?;
    ensure!(run.status == RunStatus::Completed, "invoke-missing did not complete: {run}");
    let message = run.output["error"].as_str().unwrap_or_default();
    ensure!(message.contains("does-not-exist"), "invoke-missing should return an error naming the missing function: {run}");
    Ok(())
}

/// `sender`: `step.sendEvent` of two `e2e/fanout` events, each of which
/// starts a `fanout` run.
pub async fn send_fanout(env: &TestEnv) -> Result<()> {
    let run = env.trigger_and_wait("e2e/send", json!({}), "sender").await?;
    ensure!(run.status == RunStatus::Completed, "sender did not complete: {run}");
    ensure!(run.output == json!("sent"), "sender output: {run}");

    let events = env.wait_events_named("e2e/fanout", 2).await?;
    ensure!(events.len() == 2, "wanted exactly 2 e2e/fanout events: {events:?}");
    let mut seen = Vec::new();
    for event in &events {
        let id = event["internal_id"].as_str().ok_or_else(|| anyhow!("event without internal_id: {event}"))?;
        let i = event["data"]["i"].clone();
        let fan = env.wait_run_finished(id, "fanout").await?;
        ensure!(fan.status == RunStatus::Completed, "fanout run did not complete: {fan}");
        ensure!(fan.output == json!({ "i": i }), "fanout output for {event}: {fan}");
        seen.push(i.as_i64().unwrap_or(-1));
    }
    seen.sort_unstable();
    ensure!(seen == [1, 2], "fanout events carried i = {seen:?}, wanted [1, 2]");
    Ok(())
}

/// `with-failure`: the run fails (no retries) and its onFailure handler runs
/// with the original error and run id.
pub async fn on_failure(env: &TestEnv) -> Result<()> {
    let run = env.trigger_and_wait("e2e/failing", json!({}), "with-failure").await?;
    ensure!(run.status == RunStatus::Failed, "with-failure did not fail: {run}");
    ensure!(run.output_text().contains("planned failure"), "failed run's output lacks the error message: {run}");
    let bodies = env.entries_for("with-failure", &run.run_id)?.len();
    ensure!(bodies == 1, "with-failure body ran {bodies} times, wanted once (retries: 0)");

    let run_id = run.run_id.clone();
    let handled = env
        .wait_log_entry("onFailure handler of with-failure", |e| {
            e.func == "with-failure-onfailure" && e.run_id.as_deref() == Some(run_id.as_str())
        })
        .await?;
    ensure!(handled.raw["error"] == "planned failure", "onFailure saw the wrong error: {}", handled.raw);
    Ok(())
}

/// `cancellable`: a run sleeping for an hour is cancelled through the API.
pub async fn cancel(env: &TestEnv) -> Result<()> {
    let event_id = env.send_event("e2e/cancellable", json!({})).await?;
    let run = env.wait_run_started(&event_id, "cancellable").await?;
    env.wait_run_status(&run.run_id, RunStatus::Running).await?;
    env.cancel_run(&run.run_id).await?;
    let cancelled = env.wait_run_status(&run.run_id, RunStatus::Cancelled).await?;
    ensure!(cancelled.output != json!("never"), "cancelled run still produced output: {cancelled}");
    Ok(())
}
