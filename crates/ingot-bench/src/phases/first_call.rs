//! Phase `first-call` ([1]): event → first SDK call at low load, one run
//! at a time.

use std::time::{Duration, Instant};

use crate::client::{traced_run, Bench};
use crate::stats::{line, ms, Samples, Usage};
use crate::Counts;

pub async fn latency_first_call(b: &Bench, c: &Counts) -> anyhow::Result<()> {
    for _ in 0..20 {
        traced_run(b, "bench/hello").await?;
    }
    let mut first = Vec::new();
    let mut rtt = Vec::new();
    let mut completed = Vec::new();
    let usage = Usage::now();
    let t0 = Instant::now();
    for _ in 0..c.hello_samples {
        let (sent, r, trace, done) = traced_run(b, "bench/hello").await?;
        first.push(trace.calls[0] - sent);
        rtt.push(r);
        completed.push(done - sent);
    }
    let wall = t0.elapsed();
    let first = Samples::new(first);
    let rtt = Samples::new(rtt);
    let completed = Samples::new(completed);
    line(
        &format!("event → first SDK call, p50 (n={})", first.len()),
        &ms(first.p50()),
        "p50 ≤ 2 ms",
        Some(first.p50() <= Duration::from_millis(2)),
    );
    line(
        "event → first SDK call, p99",
        &format!("{}  (max {})", ms(first.p99()), ms(first.max())),
        "p99 ≤ 10 ms",
        Some(first.p99() <= Duration::from_millis(10)),
    );
    line("POST /e round trip (1 event, answered after commit)", &format!("p50 {}  p99 {}", ms(rtt.p50()), ms(rtt.p99())), "", None);
    line(
        "event → run Completed in GET /v1/runs/{id} (1 ms poll)",
        &format!("p50 {}  p99 {}", ms(completed.p50()), ms(completed.p99())),
        "",
        None,
    );
    line("", &usage.line(wall, b.cores), "", None);
    Ok(())
}
