//! End-to-end tests of flow control with the official SDKs and this
//! repository's Rust SDK: the apps in tests/sdk-apps/js/flow-app.cjs
//! (inngest v3 and v4), tests/sdk-apps/py/flow_app.py and the binary
//! `ingot-e2e-rust-flow-app` of this package (tests/apps/rust_flow_app.rs, the
//! `ingot` crate's builder; see `Sdk::Rust`), synced to a real `ingot dev`.
//!
//! Each control is checked the way Inngest defines it, from the outside:
//! timestamps the app logs in E2E_LOG, and the REST API (runs, skips, events,
//! cancellations). One `#[tokio::test]` per control and SDK, each with its
//! own engine and app. Needs `scripts/setup-test-deps.sh`.

use ingot_test_support::{Sdk, TestEnv};

mod flow {
    use std::collections::{BTreeMap, HashMap, HashSet};
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use anyhow::{anyhow, bail, ensure, Context as _, Result};
    use serde_json::{json, Value};

    use ingot_test_support::{Deadline, LogEntry, Run, RunStatus, TestEnv, WAIT_TIMEOUT};

    /// Milliseconds since the epoch, on the same clock as the apps' `t`.
    fn now_ms() -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }

    fn t(e: &LogEntry) -> i64 {
        e.raw["t"].as_i64().unwrap_or(0)
    }

    fn phase<'a>(entries: &'a [LogEntry], step: &str, phase: &str) -> impl Iterator<Item = &'a LogEntry> + 'a {
        let step = step.to_string();
        let phase = phase.to_string();
        entries.iter().filter(move |e| e.step.as_deref() == Some(step.as_str()) && e.raw["phase"] == json!(phase))
    }

    /// Milliseconds of a Go-style duration made of one unit ("1s", "500ms", "1m").
    fn duration_ms(s: &str) -> Result<i64> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| anyhow!("duration {s:?} has no unit"))?;
        let (n, unit) = s.split_at(split);
        let n: i64 = n.parse().with_context(|| format!("duration {s:?}"))?;
        Ok(n * match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => bail!("duration {s:?}: unknown unit"),
        })
    }

    /// Sends each event (name, data) in one `POST /e`; returns internal ids.
    async fn send_all(env: &TestEnv, name: &str, datas: &[Value]) -> Result<Vec<String>> {
        env.send(Value::Array(datas.iter().map(|d| json!({"name": name, "data": d})).collect())).await
    }

    /// Waits for every event's run of `fn_id` to finish.
    async fn finish_all(env: &TestEnv, ids: &[String], fn_id: &str) -> Result<Vec<Run>> {
        let mut runs = Vec::new();
        for id in ids {
            runs.push(env.wait_run_finished(id, fn_id).await?);
        }
        Ok(runs)
    }

    /// Waits until E2E_LOG has a line from `func` whose step is `step` and
    /// whose run is `run_id`.
    async fn wait_step_logged(env: &TestEnv, func: &str, step: &str, run_id: &str) -> Result<LogEntry> {
        env.wait_log_entry(&format!("{func}/{step} of run {run_id}"), |e| {
            e.func == func && e.step.as_deref() == Some(step) && e.run_id.as_deref() == Some(run_id)
        })
        .await
    }

    /// Waits until the event has started a run and its first step was logged.
    async fn wait_begun(env: &TestEnv, event_id: &str, fn_id: &str) -> Result<Run> {
        let run = env.wait_run_started(event_id, fn_id).await?;
        wait_step_logged(env, fn_id, "begin", &run.run_id).await?;
        Ok(run)
    }

    /// Asserts that an event started no run of `fn_id`.
    async fn no_run(env: &TestEnv, event_id: &str, fn_id: &str, why: &str) -> Result<()> {
        let slug = env.slug(fn_id);
        let runs = env.runs_for_event(event_id).await?;
        ensure!(!runs.iter().any(|r| r.function_slug == slug), "{why}: event {event_id} started a run of {slug}: {runs:?}");
        Ok(())
    }

    /// The largest number of `[start, end)` intervals open at once.
    fn max_overlap(intervals: &[(i64, i64)]) -> usize {
        let mut edges: Vec<(i64, i32)> = intervals.iter().flat_map(|&(s, e)| [(s, 1), (e, -1)]).collect();
        // At equal times an end closes before a start opens.
        edges.sort();
        let (mut open, mut max) = (0i32, 0i32);
        for (_, d) in edges {
            open += d;
            max = max.max(open);
        }
        max as usize
    }

    /// Per run of `func`, the `[start, end)` of step `step`, keyed by `key`.
    fn intervals_by(entries: &[LogEntry], step: &str, key: &str) -> Result<BTreeMap<String, Vec<(i64, i64)>>> {
        let mut starts: HashMap<String, (String, i64)> = HashMap::new();
        for e in phase(entries, step, "start") {
            let run = e.run_id.clone().unwrap_or_default();
            ensure!(starts.insert(run.clone(), (e.raw[key].to_string(), t(e))).is_none(), "step {step} of run {run} started twice");
        }
        let mut out: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
        for e in phase(entries, step, "end") {
            let run = e.run_id.clone().unwrap_or_default();
            let (k, s) = starts.remove(&run).ok_or_else(|| anyhow!("step {step} of run {run} ended without starting"))?;
            out.entry(k).or_default().push((s, t(e)));
        }
        ensure!(starts.is_empty(), "steps started but never ended: {starts:?}");
        Ok(out)
    }

    /// `concurrency: {limit: 1, key: event.data.user}`: per user, never more
    /// than one step executing at a time; different users run side by side.
    pub async fn concurrency(env: &TestEnv) -> Result<()> {
        let datas: Vec<Value> = (0..8).map(|n| json!({"user": if n % 2 == 0 { "a" } else { "b" }, "n": n})).collect();
        let ids = send_all(env, "flow/conc", &datas).await?;
        for run in finish_all(env, &ids, "conc").await? {
            ensure!(run.status == RunStatus::Completed, "conc run did not complete: {run}");
        }
        let by_user = intervals_by(&env.entries_of("conc")?, "work", "user")?;
        ensure!(by_user.values().map(Vec::len).sum::<usize>() == 8, "expected 8 step executions, got {by_user:?}");
        for (user, spans) in &by_user {
            let max = max_overlap(spans);
            ensure!(max <= 1, "user {user}: {max} steps executed at once with a limit of 1: {spans:?}");
        }
        let all: Vec<(i64, i64)> = by_user.values().flatten().copied().collect();
        ensure!(max_overlap(&all) >= 2, "users a and b never ran side by side (the key is not separating them): {by_user:?}");
        Ok(())
    }

    /// `throttle: {limit: 1, period: "1s"}` (+ the SDK's burst): runs start
    /// one per period after the burst, and none is dropped.
    pub async fn throttle(env: &TestEnv) -> Result<()> {
        let config = env.function_config("throttle").await?;
        let th = &config["throttle"];
        let limit = th["limit"].as_i64().unwrap_or(1).max(1);
        let period = duration_ms(th["period"].as_str().unwrap_or("1s"))?;
        let burst = th["burst"].as_i64().unwrap_or(0);
        // Inngest (pkg/constraintapi gcra.lua `throttle`): burst + 1 runs may
        // start at once, then one every period / limit.
        let emission = period / limit;
        let n = 4;
        let ids = send_all(env, "flow/throttle", &(0..n).map(|n| json!({"n": n})).collect::<Vec<_>>()).await?;
        for run in finish_all(env, &ids, "throttle").await? {
            ensure!(run.status == RunStatus::Completed, "throttled run did not complete: {run}");
        }
        let mut starts: Vec<i64> = phase(&env.entries_of("throttle")?, "go", "start").map(t).collect();
        ensure!(starts.len() == n as usize, "{} of {n} throttled runs ran their step: {starts:?}", starts.len());
        starts.sort();
        let rel: Vec<i64> = starts.iter().map(|s| s - starts[0]).collect();
        for (i, r) in rel.iter().enumerate() {
            let earliest = (i as i64 - burst).max(0) * emission;
            ensure!(
                *r >= earliest - 150,
                "throttle {th}: start #{i} came {r} ms after the first, before {earliest} ms (starts relative to the first: {rel:?})"
            );
        }
        Ok(())
    }

    /// `rateLimit: {limit: 1, period: "5s", key: event.data.user}`: the excess
    /// is skipped (no run) and the skip is listed by `GET /v1/skips`.
    pub async fn rate_limit(env: &TestEnv) -> Result<()> {
        let datas =
            [json!({"user": "a", "n": 1}), json!({"user": "a", "n": 2}), json!({"user": "a", "n": 3}), json!({"user": "b", "n": 4})];
        let ids = send_all(env, "flow/rate", &datas).await?;
        for i in [0, 3] {
            let run = env.wait_run_finished(&ids[i], "rate").await?;
            ensure!(run.status == RunStatus::Completed, "first event of a key must run: {run}");
            ensure!(run.output["n"] == datas[i]["n"], "wrong event ran: {run}");
        }
        for i in [1, 2] {
            no_run(env, &ids[i], "rate", "rate-limited event").await?;
        }
        let runs = env.runs_of("rate").await?;
        ensure!(runs.len() == 2, "rate limit 1/5s per user: wanted 2 runs, got {}: {runs:?}", runs.len());
        let skips = env.skips_of("rate").await?;
        let skipped: HashSet<&str> = skips.iter().filter_map(|s| s["event_id"].as_str()).collect();
        for i in [1, 2] {
            ensure!(skipped.contains(ids[i].as_str()), "GET /v1/skips does not list rate-limited event {}: {skips:?}", ids[i]);
        }
        for i in [0, 3] {
            ensure!(!skipped.contains(ids[i].as_str()), "GET /v1/skips lists event {} that ran: {skips:?}", ids[i]);
        }
        Ok(())
    }

    /// `debounce: {period: "1s", key: event.data.user, timeout: "3s"}`: a
    /// burst runs once, a period after its last event, with that event; a
    /// stream that never pauses still runs by the timeout.
    pub async fn debounce(env: &TestEnv) -> Result<()> {
        // Last event wins.
        let mut last = Vec::new();
        for n in 1..=3 {
            last.push(env.send_event("flow/debounce", json!({"user": "a", "n": n})).await?);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let sent_last = now_ms() - 200;
        // A stream for user b, an event every 400 ms for 3.6 s: the 1 s
        // period never passes, so only the 3 s timeout can start a run.
        let t0 = now_ms();
        let mut stream = Vec::new();
        for n in 1..=10 {
            stream.push(env.send_event("flow/debounce", json!({"user": "b", "n": n})).await?);
            if n < 10 {
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        }
        let t_last = now_ms();

        let run = env.wait_run_finished(&last[2], "debounce").await?;
        ensure!(run.status == RunStatus::Completed && run.output == json!({"user": "a", "n": 3}), "debounced run: {run}");
        for id in &last[..2] {
            no_run(env, id, "debounce", "debounced (superseded) event").await?;
        }
        let started = wait_step_logged(env, "debounce", "go", &run.run_id).await?;
        ensure!(
            t(&started) >= sent_last + 900,
            "debounced run started {} ms after the last event, before the 1s period",
            t(&started) - sent_last
        );

        let run_b = env.wait_run_finished(&stream[9], "debounce").await?;
        ensure!(run_b.output["n"] == json!(10), "the stream's last event must win in the end: {run_b}");
        let entries = env.entries_of("debounce")?;
        let mut b_starts: Vec<(i64, i64)> = phase(&entries, "go", "start")
            .filter(|e| e.raw["user"] == json!("b"))
            .map(|e| (t(e), e.raw["n"].as_i64().unwrap_or(0)))
            .collect();
        b_starts.sort();
        let (first_at, first_n) = *b_starts.first().ok_or_else(|| anyhow!("no run for user b"))?;
        ensure!(
            first_at - t0 >= 2700 && first_at - t0 <= 4300,
            "debounce timeout 3s: the stream's first run started {} ms after its first event (stream lasted {} ms; runs: {b_starts:?})",
            first_at - t0,
            t_last - t0
        );
        ensure!(first_n > 1, "the timeout run must carry the latest event, not the first: {b_starts:?}");
        ensure!((2..=3).contains(&b_starts.len()), "stream of 10 events: wanted 2 runs (timeout, then the rest), got {b_starts:?}");
        let runs = env.runs_of("debounce").await?;
        ensure!(runs.len() == 1 + b_starts.len(), "debounce runs: {runs:?}");
        Ok(())
    }

    /// `batchEvents: {maxSize: 3, timeout: "2s"}`: three events make one run
    /// that receives all three; a lone event runs after the timeout.
    pub async fn batch(env: &TestEnv) -> Result<()> {
        let ids = send_all(env, "flow/batch", &[json!({"n": 1}), json!({"n": 2}), json!({"n": 3})]).await?;
        let run = env.wait_run_finished(&ids[0], "batch").await?;
        ensure!(run.status == RunStatus::Completed, "batch run: {run}");
        ensure!(run.output["count"] == json!(3) && run.output["ns"] == json!([1, 2, 3]), "batch of 3: {run}");
        let event_ids: HashSet<&str> = run.output["ids"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        ensure!(event_ids.len() == 3, "the batch's events must have 3 distinct ids: {run}");
        let runs = env.runs_of("batch").await?;
        ensure!(runs.len() == 1, "3 events, maxSize 3: wanted one run, got {runs:?}");

        let sent = Instant::now();
        let lone = env.send_event("flow/batch", json!({"n": 4})).await?;
        let run = env.wait_run_finished(&lone, "batch").await?;
        let took = sent.elapsed();
        ensure!(run.output["count"] == json!(1) && run.output["ns"] == json!([4]), "lone event's batch: {run}");
        ensure!(took >= Duration::from_millis(1800), "a lone event ran after {took:?}, before the 2s batch timeout");
        Ok(())
    }

    /// `priority: {run: event.data.priority}` with concurrency 1: a high
    /// priority run sent after a backlog of normal ones runs before them.
    pub async fn priority(env: &TestEnv) -> Result<()> {
        let first = env.send_event("flow/priority", json!({"label": "first", "priority": 0})).await?;
        let run = env.wait_run_started(&first, "priority").await?;
        wait_step_logged(env, "priority", "work", &run.run_id).await?;
        // While `first` holds the only slot (300 ms), queue three normal runs
        // and then a high-priority one.
        let lows: Vec<Value> = (1..=3).map(|i| json!({"label": format!("low{i}"), "priority": 0})).collect();
        let mut ids = send_all(env, "flow/priority", &lows).await?;
        ids.push(env.send_event("flow/priority", json!({"label": "high", "priority": 300})).await?);
        ids.push(first);
        finish_all(env, &ids, "priority").await?;
        let mut starts: Vec<(i64, String)> = phase(&env.entries_of("priority")?, "work", "start")
            .map(|e| (t(e), e.raw["label"].as_str().unwrap_or_default().to_string()))
            .collect();
        starts.sort();
        let order: Vec<&str> = starts.iter().map(|(_, l)| l.as_str()).collect();
        ensure!(order.len() == 5, "5 runs, got steps {order:?}");
        ensure!(order[0] == "first" && order[1] == "high", "the high-priority run must start right after `first`, got {order:?}");
        Ok(())
    }

    /// `idempotency: "event.data.id"`: one run per id; repeats are skipped.
    pub async fn idempotency(env: &TestEnv) -> Result<()> {
        let datas = [json!({"id": "x", "n": 1}), json!({"id": "x", "n": 2}), json!({"id": "y", "n": 3})];
        let ids = send_all(env, "flow/idem", &datas).await?;
        let x = env.wait_run_finished(&ids[0], "idem").await?;
        let y = env.wait_run_finished(&ids[2], "idem").await?;
        ensure!(x.output == json!({"id": "x", "n": 1}) && y.output == json!({"id": "y", "n": 3}), "idempotent runs: {x} / {y}");
        let again = env.send_event("flow/idem", json!({"id": "x", "n": 4})).await?;
        for id in [&ids[1], &again] {
            no_run(env, id, "idem", "repeated idempotency key").await?;
        }
        let runs = env.runs_of("idem").await?;
        ensure!(runs.len() == 2, "idempotency: wanted 2 runs (x and y), got {runs:?}");
        let skips = env.skips_of("idem").await?;
        let skipped: HashSet<&str> = skips.iter().filter_map(|s| s["event_id"].as_str()).collect();
        ensure!(skipped.contains(ids[1].as_str()) && skipped.contains(again.as_str()), "skips: {skips:?}");
        Ok(())
    }

    /// `singleton: {key: event.data.user, mode: "skip"}`: while a user's run
    /// is active, new events for that user are skipped; other users run.
    pub async fn singleton_skip(env: &TestEnv) -> Result<()> {
        let a1 = env.send_event("flow/singleton-skip", json!({"user": "a", "n": 1})).await?;
        let run_a1 = wait_begun(env, &a1, "singleton-skip").await?;
        let a2 = env.send_event("flow/singleton-skip", json!({"user": "a", "n": 2})).await?;
        let b1 = env.send_event("flow/singleton-skip", json!({"user": "b", "n": 3})).await?;
        wait_begun(env, &b1, "singleton-skip").await?;
        no_run(env, &a2, "singleton-skip", "singleton skip").await?;
        let skips = env.skips_of("singleton-skip").await?;
        ensure!(skips.iter().any(|s| s["event_id"] == json!(a2)), "GET /v1/skips does not list the skipped event: {skips:?}");
        let done = env.wait_run_finished(&a1, "singleton-skip").await?;
        ensure!(done.status == RunStatus::Completed && done.run_id == run_a1.run_id, "first singleton run: {done}");
        // Once a1 is over, user a may run again.
        let a3 = env.send_event("flow/singleton-skip", json!({"user": "a", "n": 4})).await?;
        wait_begun(env, &a3, "singleton-skip").await?;
        Ok(())
    }

    /// `singleton: {key: event.data.user, mode: "cancel"}`: a new event
    /// cancels the user's active run and runs instead.
    pub async fn singleton_cancel(env: &TestEnv) -> Result<()> {
        let c1 = env.send_event("flow/singleton-cancel", json!({"user": "a", "n": 1})).await?;
        let run1 = wait_begun(env, &c1, "singleton-cancel").await?;
        let c2 = env.send_event("flow/singleton-cancel", json!({"user": "a", "n": 2})).await?;
        let cancelled = env.wait_run_status(&run1.run_id, RunStatus::Cancelled).await?;
        ensure!(cancelled.output != json!("finished"), "the replaced run still finished: {cancelled}");
        let run2 = env.wait_run_finished(&c2, "singleton-cancel").await?;
        ensure!(run2.status == RunStatus::Completed && run2.output == json!("finished"), "the replacing run: {run2}");
        Ok(())
    }

    /// `timeouts: {start: "1s"}` with concurrency 1: the run that waits
    /// behind a 2.5 s step longer than 1 s is cancelled without starting;
    /// the one that started is not.
    pub async fn timeout_start(env: &TestEnv) -> Result<()> {
        let ids = send_all(env, "flow/timeout-start", &[json!({"n": 1}), json!({"n": 2})]).await?;
        let runs = finish_all(env, &ids, "timeout-start").await?;
        let entries = env.entries_of("timeout-start")?;
        let started: Vec<String> = phase(&entries, "work", "start").filter_map(|e| e.run_id.clone()).collect();
        ensure!(started.len() == 1, "exactly one run should have started, got {started:?} ({runs:?})");
        let (ran, waited) = if runs[0].run_id == started[0] { (&runs[0], &runs[1]) } else { (&runs[1], &runs[0]) };
        ensure!(ran.status == RunStatus::Completed, "the run that started within 1s must complete, not be cancelled: {ran}");
        ensure!(waited.status == RunStatus::Cancelled, "the run that waited more than 1s must be Cancelled: {waited}");
        Ok(())
    }

    /// `timeouts: {finish: "2s"}`: a run sleeping 10 s is cancelled at ~2 s.
    pub async fn timeout_finish(env: &TestEnv) -> Result<()> {
        let sent = Instant::now();
        let id = env.send_event("flow/timeout-finish", json!({})).await?;
        let run = env.wait_run_finished(&id, "timeout-finish").await?;
        let took = sent.elapsed();
        ensure!(run.status == RunStatus::Cancelled, "a run past its finish timeout must be Cancelled: {run}");
        ensure!(took >= Duration::from_millis(1800) && took <= Duration::from_secs(6), "finish timeout 2s: the run ended after {took:?}");
        let entries = env.entries_for("timeout-finish", &run.run_id)?;
        let begins = phase(&entries, "begin", "start").count();
        ensure!(begins == 1, "step begin ran {begins} times");
        Ok(())
    }

    /// cancelOn with `if`/`match`: the cancel event cancels only the run whose
    /// id matches; `DELETE /v1/runs/{id}` cancels the other; both emit
    /// `inngest/function.cancelled`.
    async fn cancel_on(env: &TestEnv, fn_id: &str, trigger: &str, cancel: &str) -> Result<()> {
        let ids = send_all(env, trigger, &[json!({"id": 1}), json!({"id": 2})]).await?;
        let run1 = wait_begun(env, &ids[0], fn_id).await?;
        let run2 = wait_begun(env, &ids[1], fn_id).await?;
        env.send_event(cancel, json!({"id": 1})).await?;
        let c1 = env.wait_run_status(&run1.run_id, RunStatus::Cancelled).await?;
        ensure!(c1.output != json!("finished"), "cancelled run has output: {c1}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let still = env.run(&run2.run_id).await?;
        ensure!(still.status == RunStatus::Running, "{cancel} {{id: 1}} must not cancel the run for id 2: {still}");

        env.cancel_run(&run2.run_id).await?;
        env.wait_run_status(&run2.run_id, RunStatus::Cancelled).await?;
        let deadline = Deadline::after(WAIT_TIMEOUT);
        loop {
            let events = env.events_named("inngest/function.cancelled").await?;
            let runs: HashSet<&str> = events.iter().filter_map(|e| e["data"]["run_id"].as_str()).collect();
            if runs.contains(run1.run_id.as_str()) && runs.contains(run2.run_id.as_str()) {
                let e = events.iter().find(|e| e["data"]["run_id"] == json!(run2.run_id)).expect("just checked");
                ensure!(e["data"]["function_id"] == json!(env.slug(fn_id)), "function.cancelled data: {e}");
                return Ok(());
            }
            deadline.tick().await.with_context(|| format!("inngest/function.cancelled for both runs; events: {events:?}"))?;
        }
    }

    pub async fn cancel_on_if(env: &TestEnv) -> Result<()> {
        cancel_on(env, "cancel-if", "flow/cancellable", "flow/cancel").await
    }

    pub async fn cancel_on_match(env: &TestEnv) -> Result<()> {
        cancel_on(env, "cancel-match", "flow/cancellable-match", "flow/cancel-match").await
    }

    /// `POST /v1/cancellations`: by function and start time range.
    pub async fn bulk_cancel(env: &TestEnv) -> Result<()> {
        let slug = env.slug("bulk");
        let early = send_all(env, "flow/bulk", &[json!({"n": 1}), json!({"n": 2})]).await?;
        let mut early_runs = Vec::new();
        for id in &early {
            early_runs.push(wait_begun(env, id, "bulk").await?);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let cut = chrono_like_rfc3339(now_ms());
        tokio::time::sleep(Duration::from_millis(50)).await;
        let late = env.send_event("flow/bulk", json!({"n": 3})).await?;
        let late_run = wait_begun(env, &late, "bulk").await?;

        let answer = env.bulk_cancel(json!({"function_id": slug, "started_after": cut})).await?;
        env.wait_run_status(&late_run.run_id, RunStatus::Cancelled).await?;
        for r in &early_runs {
            let r = env.run(&r.run_id).await?;
            ensure!(r.status == RunStatus::Running, "bulk cancel started_after {cut} cancelled an earlier run: {r} ({answer})");
        }
        env.bulk_cancel(json!({"function_id": slug})).await?;
        for r in &early_runs {
            env.wait_run_status(&r.run_id, RunStatus::Cancelled).await?;
        }
        Ok(())
    }

    /// RFC 3339 UTC with milliseconds, without a date crate.
    fn chrono_like_rfc3339(ms: i64) -> String {
        let secs = ms.div_euclid(1000);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, ms.rem_euclid(1000))
    }

    /// The cron function is registered with its schedule.
    pub async fn cron_registered(env: &TestEnv) -> Result<()> {
        let config = env.function_config("cron").await?;
        let crons: Vec<&str> = config["triggers"].as_array().into_iter().flatten().filter_map(|t| t["cron"].as_str()).collect();
        ensure!(crons == ["* * * * *"], "cron triggers: {config}");
        Ok(())
    }

    /// A `* * * * *` cron runs within a minute, with `inngest/scheduled.timer`.
    pub async fn cron_tick(env: &TestEnv) -> Result<()> {
        let deadline = Deadline::after(Duration::from_secs(65));
        let run = loop {
            let runs = env.runs_of("cron").await?;
            if let Some(r) = runs.iter().find(|r| r.status.is_terminal()) {
                break r.clone();
            }
            deadline.tick().await.with_context(|| format!("waiting for a cron tick; runs: {runs:?}"))?;
        };
        ensure!(run.status == RunStatus::Completed, "cron run: {run}");
        ensure!(run.output == json!({"event": "inngest/scheduled.timer"}), "cron run's event: {run}");
        let tick = wait_step_logged(env, "cron", "tick", &run.run_id).await?;
        let at = tick.raw["scheduledAt"].as_str().unwrap_or_default();
        ensure!(at.ends_with(":00Z"), "scheduledAt must be a whole minute, got {at:?}");
        Ok(())
    }
}

macro_rules! flow_tests {
    ($module:ident, $sdk:expr, [$($name:ident => $scenario:path),* $(,)?]) => {
        mod $module {
            use super::{flow, Sdk, TestEnv};
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    let env = TestEnv::start_app($sdk, $sdk.flow_app()).await;
                    $scenario(&env).await.unwrap();
                }
            )*
        }
    };
}

flow_tests!(js_v3, Sdk::JsV3, [
    concurrency => flow::concurrency,
    throttle => flow::throttle,
    rate_limit => flow::rate_limit,
    debounce => flow::debounce,
    batch => flow::batch,
    priority => flow::priority,
    idempotency => flow::idempotency,
    singleton_skip => flow::singleton_skip,
    singleton_cancel => flow::singleton_cancel,
    timeout_start => flow::timeout_start,
    timeout_finish => flow::timeout_finish,
    cancel_on_if => flow::cancel_on_if,
    cancel_on_match => flow::cancel_on_match,
    bulk_cancel => flow::bulk_cancel,
    cron_registered => flow::cron_registered,
]);

flow_tests!(js_v4, Sdk::JsV4, [
    concurrency => flow::concurrency,
    throttle => flow::throttle,
    rate_limit => flow::rate_limit,
    debounce => flow::debounce,
    batch => flow::batch,
    priority => flow::priority,
    idempotency => flow::idempotency,
    singleton_skip => flow::singleton_skip,
    singleton_cancel => flow::singleton_cancel,
    timeout_start => flow::timeout_start,
    timeout_finish => flow::timeout_finish,
    cancel_on_if => flow::cancel_on_if,
    cancel_on_match => flow::cancel_on_match,
    bulk_cancel => flow::bulk_cancel,
    cron_registered => flow::cron_registered,
]);

// The Python SDK has no cancelOn `match` shorthand. The one test that waits
// for a real cron tick (up to a minute) runs here only: the tick path in the
// engine does not depend on the SDK.
flow_tests!(py, Sdk::Py, [
    concurrency => flow::concurrency,
    throttle => flow::throttle,
    rate_limit => flow::rate_limit,
    debounce => flow::debounce,
    batch => flow::batch,
    priority => flow::priority,
    idempotency => flow::idempotency,
    singleton_skip => flow::singleton_skip,
    singleton_cancel => flow::singleton_cancel,
    timeout_start => flow::timeout_start,
    timeout_finish => flow::timeout_finish,
    cancel_on_if => flow::cancel_on_if,
    bulk_cancel => flow::bulk_cancel,
    cron_registered => flow::cron_registered,
    cron_tick => flow::cron_tick,
]);

// The Rust SDK's builder expresses every control of flow-app.cjs (cancelOn
// `match` is `CancelOn::match_field`). The cron tick itself is tested with
// Python only (see above).
flow_tests!(rust, Sdk::Rust, [
    concurrency => flow::concurrency,
    throttle => flow::throttle,
    rate_limit => flow::rate_limit,
    debounce => flow::debounce,
    batch => flow::batch,
    priority => flow::priority,
    idempotency => flow::idempotency,
    singleton_skip => flow::singleton_skip,
    singleton_cancel => flow::singleton_cancel,
    timeout_start => flow::timeout_start,
    timeout_finish => flow::timeout_finish,
    cancel_on_if => flow::cancel_on_if,
    cancel_on_match => flow::cancel_on_match,
    bulk_cancel => flow::bulk_cancel,
    cron_registered => flow::cron_registered,
]);
