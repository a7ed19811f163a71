//! Phase `steps` ([2]): step → next step at low load (`bench-steps10`, one
//! run at a time).

use std::time::{Duration, Instant};

use anyhow::bail;

use crate::client::{traced_run, Bench};
use crate::stats::{line, ms, Samples, Usage};
use crate::Counts;

pub async fn latency_steps(b: &Bench, c: &Counts) -> anyhow::Result<()> {
    for _ in 0..3 {
        traced_run(b, "bench/steps10").await?;
    }
    let mut gaps = Vec::new();
    let mut whole = Vec::new();
    let usage = Usage::now();
    let t0 = Instant::now();
    for _ in 0..c.step_runs {
        let (sent, _, trace, done) = traced_run(b, "bench/steps10").await?;
        if trace.calls.len() != 11 {
            bail!("a 10-step run made {} calls, expected 11", trace.calls.len());
        }
        gaps.extend(trace.calls.windows(2).map(|w| w[1] - w[0]));
        whole.push(done - sent);
    }
    let wall = t0.elapsed();
    let gaps = Samples::new(gaps);
    let whole = Samples::new(whole);
    line(
        &format!("step → next step call, p50 (n={})", gaps.len()),
        &ms(gaps.p50()),
        "p50 ≤ 2 ms",
        Some(gaps.p50() <= Duration::from_millis(2)),
    );
    line("step → next step call, p99", &format!("{}  (max {})", ms(gaps.p99()), ms(gaps.max())), "", None);
    line("event → 10-step run Completed in the API", &format!("p50 {}  p99 {}", ms(whole.p50()), ms(whole.p99())), "", None);
    line("", &usage.line(wall, b.cores), "", None);
    Ok(())
}
