//! Flow-control math, pure: throttle and rate limit (GCRA), debounce timing,
//! priority offsets, and the concurrency book that says whether a call may
//! start now. Time is always an argument.

use std::collections::HashMap;

use serde_json::Value;

/// Priority moves a run by at most ±12 hours, as Inngest.
pub const MAX_PRIORITY_SECS: i64 = 43_200;

/// The outcome of asking a GCRA limiter for one slot at `now_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// The earliest time the request fits (== now when it fits now).
    pub earliest_ms: i64,
    /// The limiter's state if the slot is taken.
    pub new_tat_ms: i64,
}

/// Generic cell rate algorithm, as Inngest's throttle: `burst + 1` may start
/// at once, then one every `period_ms / limit`. `tat_ms` is the stored
/// theoretical arrival time (None: a fresh key).
///
/// Any input is safe: a limit of 0 counts as 1, a period under 1 ms as 1 ms,
/// and all arithmetic saturates, so a huge period or burst delays to the end
/// of time instead of wrapping into the past.
pub fn gcra(tat_ms: Option<i64>, now_ms: i64, limit: u32, period_ms: i64, burst: u32) -> Gcra {
    let limit = i64::from(limit.max(1));
    let interval = (period_ms.max(1) / limit).max(1);
    let tolerance = interval.saturating_mul(i64::from(burst));
    let tat = tat_ms.unwrap_or(now_ms).max(now_ms);
    let earliest = tat.saturating_sub(tolerance).max(now_ms);
    Gcra { earliest_ms: earliest, new_tat_ms: tat.max(earliest).saturating_add(interval) }
}

/// A rate limit is a GCRA whose burst is a tenth of the limit, as Inngest's.
pub fn rate_limit_gcra(tat_ms: Option<i64>, now_ms: i64, limit: u32, period_ms: i64) -> Gcra {
    gcra(tat_ms, now_ms, limit, period_ms, limit / 10)
}

/// When a debounced function fires: `period` after the last event, but never
/// later than `timeout` after the first. Saturates; a negative period or
/// timeout counts as zero.
pub fn debounce_fire_at(first_ms: i64, now_ms: i64, period_ms: i64, timeout_ms: Option<i64>) -> i64 {
    let at = now_ms.saturating_add(period_ms.max(0));
    match timeout_ms {
        Some(t) => at.min(first_ms.saturating_add(t.max(0))),
        None => at,
    }
}

/// The queue offset of a priority expression's value: positive runs earlier.
pub fn priority_offset_ms(value: &Value) -> i64 {
    let secs = match value {
        Value::Number(n) => n.as_f64().unwrap_or(0.0) as i64,
        Value::String(s) => s.trim().parse::<f64>().map(|f| f as i64).unwrap_or(0),
        Value::Bool(true) => 1,
        _ => 0,
    };
    secs.clamp(-MAX_PRIORITY_SECS, MAX_PRIORITY_SECS) * 1000
}

/// A key's value as a string, for grouping (strings bare, others as JSON).
pub fn key_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One concurrency limit applied to a call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConcurrencyKey {
    pub key: String,
    pub limit: u32,
}

/// In-flight calls per concurrency key.
#[derive(Debug, Default)]
pub struct ConcurrencyBook {
    in_flight: HashMap<String, u32>,
}

impl ConcurrencyBook {
    /// Takes one slot of every key if all have room; otherwise takes none.
    pub fn try_acquire(&mut self, keys: &[ConcurrencyKey]) -> bool {
        if keys.iter().any(|k| self.in_flight.get(&k.key).copied().unwrap_or(0) >= k.limit) {
            return false;
        }
        for k in keys {
            *self.in_flight.entry(k.key.clone()).or_default() += 1;
        }
        true
    }

    /// Gives back the slots taken for `keys`.
    pub fn release(&mut self, keys: &[ConcurrencyKey]) {
        for k in keys {
            if let Some(n) = self.in_flight.get_mut(&k.key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.in_flight.remove(&k.key);
                }
            }
        }
    }

    pub fn in_flight(&self, key: &str) -> u32 {
        self.in_flight.get(key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Feeds arrivals through a throttle and returns when each may start.
    fn throttle_starts(arrivals: &[i64], limit: u32, period: i64, burst: u32) -> Vec<i64> {
        let mut tat = None;
        arrivals
            .iter()
            .map(|&t| {
                let g = gcra(tat, t, limit, period, burst);
                tat = Some(g.new_tat_ms);
                g.earliest_ms
            })
            .collect()
    }

    /// Feeds arrivals through a rate limit and returns which are accepted.
    fn rate_limit_accepts(arrivals: &[i64], limit: u32, period: i64) -> Vec<bool> {
        let mut tat = None;
        arrivals
            .iter()
            .map(|&t| {
                let g = rate_limit_gcra(tat, t, limit, period);
                if g.earliest_ms <= t {
                    tat = Some(g.new_tat_ms);
                    true
                } else {
                    false
                }
            })
            .collect()
    }

    #[test]
    fn throttle_spreads_starts_and_drops_none() {
        // 1 per second: five simultaneous arrivals start a second apart.
        assert_eq!(throttle_starts(&[0, 0, 0, 0, 0], 1, 1000, 0), vec![0, 1000, 2000, 3000, 4000]);
        // 2 per second: one at once, then one every 500 ms (Inngest lets burst + 1 start at once).
        assert_eq!(throttle_starts(&[0, 0, 0, 0], 2, 1000, 0), vec![0, 500, 1000, 1500]);
        // 10 per second with a burst of 2: three at once, then one every 100 ms.
        assert_eq!(throttle_starts(&[0, 0, 0, 0, 0], 10, 1000, 2), vec![0, 0, 0, 100, 200]);
        // A burst of 1 lets one more start at once.
        assert_eq!(throttle_starts(&[0, 0, 0], 1, 1000, 1), vec![0, 0, 1000]);
        // Arrivals slower than the limit are never delayed.
        assert_eq!(throttle_starts(&[0, 1500, 3000], 1, 1000, 0), vec![0, 1500, 3000]);
    }

    #[test]
    fn rate_limit_skips_the_excess() {
        assert_eq!(rate_limit_accepts(&[0, 10, 20, 1000], 1, 1000), vec![true, false, false, true]);
        // 2 per second: one every 500 ms (the burst is a tenth of the limit).
        assert_eq!(rate_limit_accepts(&[0, 0, 0, 0], 2, 1000), vec![true, false, false, false]);
        assert_eq!(rate_limit_accepts(&[0, 0, 600], 2, 1000), vec![true, false, true]);
        // 20 per second: a burst of 2, so three at once.
        assert_eq!(rate_limit_accepts(&[0, 0, 0, 0], 20, 1000), vec![true, true, true, false]);
    }

    #[test]
    fn debounce_timing() {
        assert_eq!(debounce_fire_at(0, 0, 5000, None), 5000);
        assert_eq!(debounce_fire_at(0, 4000, 5000, None), 9000);
        assert_eq!(debounce_fire_at(0, 4000, 5000, Some(6000)), 6000);
    }

    #[test]
    fn gcra_is_safe_at_the_extremes() {
        let periods = [i64::MIN, -1, 0, 1, 1000, i64::MAX];
        let limits = [0, 1, 10, u32::MAX];
        let bursts = [0, 1, u32::MAX];
        let times = [None, Some(i64::MIN), Some(0), Some(i64::MAX)];
        for now in [i64::MIN, -1, 0, 1_700_000_000_000, i64::MAX] {
            for &p in &periods {
                for &l in &limits {
                    for &b in &bursts {
                        for &tat in &times {
                            let g = gcra(tat, now, l, p, b);
                            assert!(g.earliest_ms >= now, "starts in the past: {tat:?} {now} {l} {p} {b}");
                            assert!(g.new_tat_ms >= g.earliest_ms);
                            let r = rate_limit_gcra(tat, now, l, p);
                            assert!(r.earliest_ms >= now);
                        }
                    }
                }
            }
        }
        // Limit 0 is a limit of 1; period 0 is 1 ms.
        assert_eq!(gcra(None, 0, 0, 1000, 0), gcra(None, 0, 1, 1000, 0));
        assert_eq!(gcra(Some(0), 0, 1, 0, 0).new_tat_ms, 1);
        // A period of ~forever saturates instead of wrapping around.
        assert_eq!(gcra(None, 1_000, 1, i64::MAX, 0).new_tat_ms, i64::MAX);
        assert_eq!(gcra(Some(i64::MAX), 1_000, 1, i64::MAX, 0).earliest_ms, i64::MAX);
        assert_eq!(gcra(Some(i64::MAX), 1_000, 1, i64::MAX, u32::MAX).earliest_ms, 1_000);
    }

    #[test]
    fn debounce_is_safe_at_the_extremes() {
        assert_eq!(debounce_fire_at(0, i64::MAX - 1, i64::MAX, None), i64::MAX);
        assert_eq!(debounce_fire_at(i64::MAX, i64::MAX, i64::MAX, Some(i64::MAX)), i64::MAX);
        assert_eq!(debounce_fire_at(0, 10, -5, None), 10);
        assert_eq!(debounce_fire_at(0, 10, 5, Some(-5)), 0, "a negative timeout has passed: fire now");
        for now in [i64::MIN, 0, i64::MAX] {
            for p in [i64::MIN, 0, i64::MAX] {
                assert!(debounce_fire_at(now, now, p, None) >= now);
                for t in [Some(i64::MIN), Some(0), Some(i64::MAX)] {
                    assert!(debounce_fire_at(now, now, p, t) >= now);
                }
            }
        }
    }

    #[test]
    fn priority_is_clamped() {
        assert_eq!(priority_offset_ms(&json!(1e300)), MAX_PRIORITY_SECS * 1000);
        assert_eq!(priority_offset_ms(&json!("-1e400")), -MAX_PRIORITY_SECS * 1000);
        assert_eq!(priority_offset_ms(&json!("NaN")), 0);
        assert_eq!(priority_offset_ms(&json!(u64::MAX)), MAX_PRIORITY_SECS * 1000);
        assert_eq!(priority_offset_ms(&json!(10)), 10_000);
        assert_eq!(priority_offset_ms(&json!(-99999)), -MAX_PRIORITY_SECS * 1000);
        assert_eq!(priority_offset_ms(&json!("nope")), 0);
    }

    #[test]
    fn concurrency_book_limits_each_key() {
        let a = ConcurrencyKey { key: "fn:a".into(), limit: 2 };
        let b = ConcurrencyKey { key: "env:b".into(), limit: 1 };
        let mut book = ConcurrencyBook::default();
        assert!(book.try_acquire(std::slice::from_ref(&a)));
        assert!(book.try_acquire(&[a.clone(), b.clone()]));
        assert!(!book.try_acquire(std::slice::from_ref(&a)), "a is full");
        assert!(!book.try_acquire(std::slice::from_ref(&b)), "b is full");
        book.release(&[a.clone(), b.clone()]);
        assert_eq!(book.in_flight("fn:a"), 1);
        assert!(book.try_acquire(std::slice::from_ref(&b)));
    }
}
