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

    #[test]
    fn every_table_entry_is_used_in_order() {
        let want = [15, 30, 60, 120, 300, 600, 1200, 2400, 3600, 7200];
        for (attempt, secs) in want.into_iter().enumerate() {
            assert_eq!(retry_delay(RetryPolicy::Table, attempt as u32, 0, None), Duration::from_secs(secs), "attempt {attempt}");
        }
        assert_eq!(retry_delay(RetryPolicy::Table, u32::MAX, 0, None), Duration::from_secs(7200));
    }

    #[test]
    fn jitter_is_bounded_and_only_applies_to_the_table() {
        let table = |j| retry_delay(RetryPolicy::Table, 0, j, None).as_millis() as u64;
        assert_eq!(table(1), 15_001);
        assert_eq!(table(MAX_JITTER_MS), 15_000 + MAX_JITTER_MS);
        // An out-of-range draw wraps instead of growing the delay.
        assert_eq!(table(MAX_JITTER_MS + 1), 15_000);
        assert_eq!(table(u64::MAX), 15_000 + u64::MAX % (MAX_JITTER_MS + 1));
        assert!(table(u64::MAX) <= 15_000 + MAX_JITTER_MS);
        // A fixed interval ignores jitter; Retry-After ignores both.
        let fixed = RetryPolicy::Fixed(Duration::from_millis(250));
        assert_eq!(retry_delay(fixed, 0, 12_345, None), Duration::from_millis(250));
        assert_eq!(retry_delay(RetryPolicy::Fixed(Duration::ZERO), 0, 0, None), Duration::ZERO);
        assert_eq!(retry_delay(RetryPolicy::Table, 9, 29_999, Some(Duration::from_secs(30))), Duration::from_secs(30));
    }

    #[test]
    fn retry_after_clamp_keeps_its_bounds() {
        let c = |d| clamp_retry_after(d);
        assert_eq!(c(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(c(Duration::from_millis(999)), Duration::from_secs(1));
        assert_eq!(c(Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(c(Duration::from_millis(1_500)), Duration::from_millis(1_500));
        assert_eq!(c(Duration::from_secs(86_400)), Duration::from_secs(86_400));
        assert_eq!(c(Duration::from_secs(86_401)), Duration::from_secs(86_400));
        assert_eq!(c(Duration::MAX), Duration::from_secs(86_400));
    }
}
