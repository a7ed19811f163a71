//! Phase `throughput` ([3]): many 3-step runs in flight, and [`drive`], which
//! sends a load of events and waits for every run it started.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{json, Value};

use crate::client::{send_events, Bench};
use crate::sdk;
use crate::stats::{line, Usage};
use crate::Counts;

/// The throughput functions: (function id, trigger event).
pub const UNLIMITED: (&str, &str) = ("bench-steps3", "bench/steps3");
pub const LIMITED: (&str, &str) = ("bench-steps3-conc", "bench/steps3-conc");

/// What [`drive`] saw: times from the first POST /e.
pub struct Drove {
    /// All events accepted.
    sent: Duration,
    /// The last run answered 200 by the SDK.
    sdk_done: Duration,
    /// No run of the function still Running in the API.
    pub all_done: Duration,
    /// SDK calls made meanwhile.
    calls: u64,
    usage: Usage,
}

/// Sends `runs` events for `function` (key `k` = i mod [`sdk::CONC_KEYS`],
/// every SDK call taking `sleep_ms`) and waits until all runs are Completed.
pub async fn drive(b: &Bench, (function, event): (&str, &str), runs: usize, batch: usize, sleep_ms: u64) -> anyhow::Result<Drove> {
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
pub struct Rates {
    pub steps: f64,
    pub runs: f64,
}

/// Many 3-step runs of `f` in flight; prints and returns the rates. The
/// design targets are checked for the unlimited function only.
pub async fn throughput(b: &Bench, c: &Counts, f: (&str, &str)) -> anyhow::Result<Rates> {
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
