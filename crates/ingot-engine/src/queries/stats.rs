//! The reads behind `GET /metrics` (queue depth) and the dashboard's charts
//! (a function's runs per minute by status, its failure rate and its SDK
//! call times per bucket; the queue's backlog and lag over time).

use ingot_core::{FunctionSlug, RunStatus};
use ingot_store::{CallSample, QueueDepth, RunFilter, RunRecord};

use super::Queries;
use crate::error::Result;

/// Runs and calls read for one chart at most; past it the answer says `truncated`.
pub const CHART_SCAN_LIMIT: usize = 20_000;

/// The span a chart covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last hour, in 60 one-minute buckets.
    Hour,
    /// The last day, in 96 fifteen-minute buckets.
    Day,
}

impl Window {
    pub fn parse(s: &str) -> Option<Window> {
        match s {
            "1h" | "hour" => Some(Window::Hour),
            "1d" | "24h" | "day" => Some(Window::Day),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "1h",
            Window::Day => "1d",
        }
    }

    /// `(bucket length in ms, bucket count)`.
    pub fn buckets(self) -> (i64, usize) {
        match self {
            Window::Hour => (60_000, 60),
            Window::Day => (15 * 60_000, 96),
        }
    }
}

/// One bucket of a function's chart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bucket {
    pub start_ms: i64,
    /// Runs created in the bucket.
    pub started: u64,
    /// Runs that ended in the bucket, by how.
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// SDK calls made in the bucket, and their time (ms) at the 50th and 99th percentile.
    pub calls: u64,
    pub p50_ms: Option<i64>,
    pub p99_ms: Option<i64>,
}

/// A function's chart over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionStats {
    pub function: String,
    pub window: Window,
    pub bucket_ms: i64,
    pub buckets: Vec<Bucket>,
    /// Failed runs over ended runs in the window (`None` when none ended).
    pub failure_rate: Option<f64>,
    pub p50_ms: Option<i64>,
    pub p99_ms: Option<i64>,
    /// Whether [`CHART_SCAN_LIMIT`] cut the runs or calls read.
    pub truncated: bool,
}

impl Queries {
    /// How many items are queued now: due, and due later.
    pub async fn queue_depth(&self) -> Result<QueueDepth> {
        Ok(self.shared.store.queue_depth(self.now_ms()).await?)
    }

    /// The queue's samples of the last hour, oldest first.
    pub fn backlog(&self) -> Vec<crate::backlog::Sample> {
        self.shared.backlog.samples()
    }

    /// The function's chart over `window`, ending now. Runs are those created
    /// in the window (a run created before it that ended in it is left out).
    pub async fn function_stats(&self, slug: &str, window: Window) -> Result<FunctionStats> {
        let now = self.now_ms();
        let (bucket_ms, count) = window.buckets();
        // The window ends with the bucket holding `now`.
        let end = (now / bucket_ms + 1) * bucket_ms;
        let since = end - bucket_ms * count as i64;
        let filter = RunFilter { function: Some(FunctionSlug(slug.to_string())), limit: CHART_SCAN_LIMIT, ..RunFilter::default() };
        let runs: Vec<RunRecord> = self.shared.store.runs(&filter).await?;
        let truncated_runs = runs.len() == CHART_SCAN_LIMIT && runs.last().is_some_and(|r| r.started_at_ms >= since);
        let calls = self.shared.store.call_samples(slug, since, CHART_SCAN_LIMIT).await?;
        let mut stats = chart(slug, window, since, &runs, &calls);
        stats.truncated = truncated_runs || calls.len() == CHART_SCAN_LIMIT;
        Ok(stats)
    }
}

/// Buckets `runs` and `calls` from `since` (pure: the tests call it directly).
pub fn chart(slug: &str, window: Window, since: i64, runs: &[RunRecord], calls: &[CallSample]) -> FunctionStats {
    let (bucket_ms, count) = window.buckets();
    let mut buckets: Vec<Bucket> = (0..count).map(|i| Bucket { start_ms: since + i as i64 * bucket_ms, ..Bucket::default() }).collect();
    let slot = |at: i64| -> Option<usize> { (at >= since).then(|| ((at - since) / bucket_ms) as usize).filter(|i| *i < count) };
    let (mut ended, mut failed) = (0u64, 0u64);
    for r in runs {
        if let Some(i) = slot(r.started_at_ms) {
            buckets[i].started += 1;
        }
        if let Some(i) = r.ended_at_ms.and_then(slot) {
            let b = &mut buckets[i];
            match r.status() {
                RunStatus::Completed => b.completed += 1,
                RunStatus::Failed => {
                    b.failed += 1;
                    failed += 1;
                }
                RunStatus::Cancelled => b.cancelled += 1,
                RunStatus::Running => continue,
            }
            ended += 1;
        }
    }
    let mut per_bucket: Vec<Vec<i64>> = vec![Vec::new(); count];
    let mut all = Vec::with_capacity(calls.len());
    for c in calls {
        if let Some(i) = slot(c.at_ms) {
            per_bucket[i].push(c.duration_ms);
            all.push(c.duration_ms);
        }
    }
    for (b, mut d) in buckets.iter_mut().zip(per_bucket) {
        d.sort_unstable();
        b.calls = d.len() as u64;
        b.p50_ms = percentile(&d, 50);
        b.p99_ms = percentile(&d, 99);
    }
    all.sort_unstable();
    FunctionStats {
        function: slug.to_string(),
        window,
        bucket_ms,
        buckets,
        failure_rate: (ended > 0).then(|| failed as f64 / ended as f64),
        p50_ms: percentile(&all, 50),
        p99_ms: percentile(&all, 99),
        truncated: false,
    }
}

/// The nearest-rank percentile of sorted `values`.
pub fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingot_core::{EventId, RunId, RunState};

    fn run(started: i64, ended: Option<i64>, status: RunStatus) -> RunRecord {
        let mut state = RunState::new(RunId(ulid::Ulid::new()), FunctionSlug("a-f".into()), 3);
        state.status = status;
        RunRecord {
            state,
            event_ids: vec![EventId(ulid::Ulid::new())],
            output: None,
            started_at_ms: started,
            ended_at_ms: ended,
            correlation_id: None,
            rev: 0,
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!((percentile(&v, 50), percentile(&v, 99)), (Some(50), Some(99)));
        assert_eq!((percentile(&[7], 50), percentile(&[7], 99)), (Some(7), Some(7)));
        assert_eq!(percentile(&[1, 2, 3], 99), Some(3));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn runs_and_calls_land_in_their_minute() {
        let since = 600_000;
        let runs = vec![
            run(since + 10, Some(since + 20), RunStatus::Completed),
            run(since + 61_000, Some(since + 125_000), RunStatus::Failed),
            run(since + 61_500, None, RunStatus::Running),
            run(since - 1, Some(since + 5), RunStatus::Cancelled),
        ];
        let calls = [(since + 30, 4), (since + 40, 8), (since + 65_000, 100), (since - 5, 1)]
            .map(|(at_ms, duration_ms)| CallSample { at_ms, duration_ms });
        let s = chart("a-f", Window::Hour, since, &runs, &calls);
        assert_eq!(s.buckets.len(), 60);
        let b = &s.buckets;
        assert_eq!((b[0].started, b[0].completed, b[0].cancelled, b[0].calls, b[0].p50_ms, b[0].p99_ms), (1, 1, 1, 2, Some(4), Some(8)));
        assert_eq!((b[1].started, b[1].calls, b[1].p99_ms), (2, 1, Some(100)));
        assert_eq!((b[2].failed, b[2].started), (1, 0));
        assert_eq!(s.failure_rate, Some(1.0 / 3.0));
        assert_eq!((s.p50_ms, s.p99_ms), (Some(8), Some(100)));
    }
}
