//! When to retry: Inngest's backoff table with jitter, a fixed interval for
//! tests, and `Retry-After` clamping.

use std::time::Duration;

/// Inngest's backoff table, indexed by the attempt that just failed.
pub const BACKOFF_TABLE_SECS: [u64; 10] = [15, 30, 60, 120, 300, 600, 1200, 2400, 3600, 7200];
/// Random jitter added to table delays, at most.
pub const MAX_JITTER_MS: u64 = 30_000;

/// How retries are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPolicy {
    /// Inngest's table plus jitter.
    Table,
    /// A fixed delay (`ingot dev --retry-interval`).
    Fixed(Duration),
}

/// The delay before the retry that follows `failed_attempt` (zero-based).
/// `jitter_ms` is drawn by the caller in `0..MAX_JITTER_MS`.
pub fn retry_delay(policy: RetryPolicy, failed_attempt: u32, jitter_ms: u64, retry_after: Option<Duration>) -> Duration {
    if let Some(after) = retry_after {
        return clamp_retry_after(after);
    }
    match policy {
        RetryPolicy::Fixed(d) => d,
        RetryPolicy::Table => {
            let idx = (failed_attempt as usize).min(BACKOFF_TABLE_SECS.len() - 1);
            Duration::from_secs(BACKOFF_TABLE_SECS[idx]) + Duration::from_millis(jitter_ms % (MAX_JITTER_MS + 1))
        }
    }
}

/// `Retry-After` is clamped to [1 s, 24 h].
pub fn clamp_retry_after(d: Duration) -> Duration {
    d.clamp(Duration::from_secs(1), Duration::from_secs(86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_table_and_caps_at_two_hours() {
        let d = |a, j| retry_delay(RetryPolicy::Table, a, j, None).as_secs();
        assert_eq!(d(0, 0), 15);
        assert_eq!(d(1, 0), 30);
        assert_eq!(d(4, 0), 300);
        assert_eq!(d(9, 0), 7200);
        assert_eq!(d(50, 0), 7200);
        assert_eq!(d(0, 30_000), 45);
    }

    #[test]
    fn retry_after_wins_and_is_clamped() {
        let p = RetryPolicy::Fixed(Duration::from_secs(1));
        assert_eq!(retry_delay(p, 0, 0, Some(Duration::from_secs(30))), Duration::from_secs(30));
        assert_eq!(retry_delay(p, 0, 0, Some(Duration::from_millis(5))), Duration::from_secs(1));
        assert_eq!(retry_delay(p, 0, 0, Some(Duration::from_secs(999_999))), Duration::from_secs(86_400));
        assert_eq!(retry_delay(p, 3, 0, None), Duration::from_secs(1));
    }
}
