//! The queue's recent past for the Runs page's sparkline: every
//! [`SAMPLE_EVERY`] the engine notes how many items were due and the longest
//! claim lag since the last note, keeping the last hour in memory (a
//! restarted engine starts a new line).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::shared::Shared;

/// How often the queue is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Samples kept: one hour.
pub const SAMPLES: usize = 360;

/// One sample of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub at_ms: i64,
    /// Items due (waiting for a worker) at `at_ms`.
    pub due: u64,
    /// Items due later.
    pub future: u64,
    /// The longest due → claimed wait since the previous sample, in ms.
    pub max_lag_ms: i64,
}

/// The samples, and the longest lag seen since the last one.
#[derive(Default)]
pub struct Backlog {
    samples: Mutex<VecDeque<Sample>>,
    max_lag_ms: AtomicI64,
}

impl Backlog {
    /// An item waited `lag_ms` between falling due and its claim.
    pub fn claimed(&self, lag_ms: i64) {
        self.max_lag_ms.fetch_max(lag_ms.max(0), Ordering::Relaxed);
    }

    /// Notes a sample (the lag seen since the last one, which starts over).
    pub fn push(&self, at_ms: i64, due: u64, future: u64) {
        let max_lag_ms = self.max_lag_ms.swap(0, Ordering::Relaxed);
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() == SAMPLES {
            samples.pop_front();
        }
        samples.push_back(Sample { at_ms, due, future, max_lag_ms });
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect()
    }
}

/// Samples the queue every [`SAMPLE_EVERY`] until shutdown (the gauge of
/// `GET /metrics` is set from the same read).
pub async fn sample_loop(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let now = shared.clock.now_ms();
        match shared.store.queue_depth(now).await {
            Ok(d) => {
                shared.metrics.set_queue_depth(d.due, d.future);
                shared.backlog.push(now, d.due, d.future);
            }
            Err(e) => tracing::debug!(error = %e, "sampling the queue failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_hour_and_the_lag_between_samples() {
        let b = Backlog::default();
        b.claimed(30);
        b.claimed(250);
        b.claimed(-5);
        b.push(1, 4, 2);
        b.push(2, 0, 0);
        let s = b.samples();
        assert_eq!((s[0].max_lag_ms, s[1].max_lag_ms), (250, 0));
        for i in 0..SAMPLES as i64 {
            b.push(10 + i, 0, 0);
        }
        let s = b.samples();
        assert_eq!((s.len(), s[0].at_ms), (SAMPLES, 10));
    }
}
