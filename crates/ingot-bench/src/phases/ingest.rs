//! Phase `ingest` ([4]): event ingest for an event name that triggers
//! nothing, in batches and as single-event requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::future::join_all;
use serde_json::{json, Value};

use crate::client::{send_events, Bench};
use crate::stats::{line, ms, Samples, Usage};
use crate::Counts;

pub async fn ingest_batches(b: &Bench, c: &Counts, in_flight: usize) -> anyhow::Result<()> {
    let size = c.ingest_batch_size;
    let bodies: Vec<bytes::Bytes> = (0..c.ingest_batches)
        .map(|j| {
            let events: Vec<Value> =
                (0..size).map(|i| json!({"name": "bench/none", "data": {"batch": j, "i": i, "user": "someone@example.com"}})).collect();
            bytes::Bytes::from(Value::Array(events).to_string())
        })
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(bodies));
    let usage = Usage::now();
    let t0 = Instant::now();
    let tasks = (0..in_flight).map(|_| {
        let queue = queue.clone();
        async move {
            let mut rtts = Vec::new();
            loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                let Some(body) = next else { break };
                rtts.push(send_events(b, body).await?);
            }
            anyhow::Ok(rtts)
        }
    });
    let mut rtts = Vec::new();
    for r in join_all(tasks).await {
        rtts.extend(r?);
    }
    let wall = t0.elapsed();
    let events = c.ingest_batches * size;
    let rate = events as f64 / wall.as_secs_f64();
    let rtts = Samples::new(rtts);
    line(
        &format!("batches: {} × {size} events, {in_flight} request(s) in flight", c.ingest_batches),
        &format!("{rate:.0} events/s  (batch p50 {})", ms(rtts.p50())),
        "≥ 20,000 events/s",
        Some(rate >= 20_000.0),
    );
    line("", &usage.line(wall, b.cores), "", None);
    Ok(())
}

pub async fn ingest_single(b: &Bench, c: &Counts) -> anyhow::Result<()> {
    let conns = c.connections;
    let per = c.single_requests.div_ceil(conns);
    let total = per * conns;
    // A client of its own so the pool holds exactly `conns` connections.
    let http = reqwest::Client::builder().pool_max_idle_per_host(conns).tcp_nodelay(true).timeout(Duration::from_secs(60)).build()?;
    let body = bytes::Bytes::from(json!({"name": "bench/none", "data": {"single": true, "user": "someone@example.com"}}).to_string());
    for (label, url, post) in [
        ("baseline: GET /health", format!("{}/health", b.engine_url), false),
        ("single-event POST /e", format!("{}/e/bench", b.engine_url), true),
    ] {
        let usage = Usage::now();
        let t0 = Instant::now();
        let tasks = (0..conns).map(|_| {
            let http = http.clone();
            let url = url.clone();
            let body = body.clone();
            async move {
                let mut rtts = Vec::with_capacity(per);
                for _ in 0..per {
                    let t = Instant::now();
                    let req =
                        if post { http.post(&url).header("Content-Type", "application/json").body(body.clone()) } else { http.get(&url) };
                    let resp = req.send().await?;
                    let status = resp.status();
                    let _ = resp.bytes().await?;
                    if !status.is_success() {
                        bail!("{url} answered {status}");
                    }
                    rtts.push(t.elapsed());
                }
                anyhow::Ok(rtts)
            }
        });
        let mut rtts = Vec::new();
        for r in join_all(tasks).await {
            rtts.extend(r?);
        }
        let wall = t0.elapsed();
        let rate = total as f64 / wall.as_secs_f64();
        let rtts = Samples::new(rtts);
        let (target, ok) = if post { ("≥ 5,000 req/s", Some(rate >= 5_000.0)) } else { ("", None) };
        line(
            &format!("{label}: {total} requests, {conns} connections"),
            &format!("{rate:.0} req/s  (p50 {} p99 {})", ms(rtts.p50()), ms(rtts.p99())),
            target,
            ok,
        );
        line("", &usage.line(wall, b.cores), "", None);
    }
    Ok(())
}
