//! Cron schedules: 5-field expressions with an optional `TZ=`/`CRON_TZ=`
//! prefix (croner and chrono-tz), and the `inngest/scheduled.timer` event.
//!
//! A tick is a queue item. A tick that fell due while the engine was down
//! fires once when the engine is back (with its own scheduled time), and the
//! next tick is the next occurrence after now: missed ticks are not replayed.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

/// A parsed cron expression.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    tz: Tz,
}

impl Schedule {
    /// Parses `"TZ=Europe/Paris 0 9 * * *"`, `"*/5 * * * *"`, …
    pub fn parse(src: &str) -> Result<Schedule, String> {
        let src = src.trim();
        let (tz, expr) = match src.split_once(' ') {
            Some((first, rest)) if first.starts_with("TZ=") || first.starts_with("CRON_TZ=") => {
                let name = first.split_once('=').map(|(_, n)| n).unwrap_or("");
                let tz: Tz = name.parse().map_err(|_| format!("unknown time zone {name:?} in cron {src:?}"))?;
                (tz, rest.trim())
            }
            _ => (Tz::UTC, src),
        };
        if expr.starts_with('@') {
            return Err(format!("cron {src:?}: descriptors like @daily are not supported; use 5 fields"));
        }
        if expr.split_whitespace().count() != 5 {
            return Err(format!("cron {src:?} must have 5 fields (minute hour day month weekday)"));
        }
        let cron = croner::Cron::new(expr).parse().map_err(|e| format!("invalid cron {src:?}: {e}"))?;
        Ok(Schedule { cron, tz })
    }

    /// The first occurrence strictly after `after_ms`.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let start = self.tz.from_utc_datetime(&DateTime::<Utc>::from_timestamp_millis(after_ms)?.naive_utc());
        self.cron.find_next_occurrence(&start, false).ok().map(|t| t.timestamp_millis())
    }
}

/// A deterministic jitter in `[0, max_ms)` for one tick, so replays agree.
pub fn jitter_ms(function: &str, scheduled_ms: i64, max_ms: i64) -> i64 {
    if max_ms <= 0 {
        return 0;
    }
    let mut h: u64 = 1469598103934665603;
    for b in function.as_bytes().iter().chain(scheduled_ms.to_le_bytes().iter()) {
        h ^= *b as u64;
        h = h.wrapping_mul(1099511628211);
    }
    (h % max_ms as u64) as i64
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default()
}

/// The `inngest/scheduled.timer` event of one tick.
pub fn timer_event(cron: &str, scheduled_ms: i64, fire_ms: i64) -> Value {
    json!({
        "name": "inngest/scheduled.timer",
        "id": rfc3339(scheduled_ms),
        "ts": fire_ms,
        "data": {"cron": cron, "scheduledAt": rfc3339(scheduled_ms), "fireAt": rfc3339(fire_ms)},
    })
}

/// Makes sure every cron trigger of every synced function has its next tick
/// queued (a tick's queue item is deduplicated per function and expression).
pub async fn schedule_all(shared: &crate::shared::Shared) {
    let now = shared.clock.now_ms();
    let mut ops = Vec::new();
    for f in shared.registry.all() {
        for cron in f.config.triggers.iter().filter_map(|t| t.cron.as_deref()) {
            if let Some(next) = Schedule::parse(cron).ok().and_then(|s| s.next_after(now)) {
                ops.push(tick_item(&f, cron, next));
            }
        }
    }
    if !ops.is_empty() {
        if let Err(e) = shared.commit(ops).await {
            tracing::error!(error = %e, "scheduling cron ticks failed");
        }
    }
}

/// The queue item of `f`'s tick of `cron` scheduled at `at`: one per function
/// and expression, due after the trigger's jitter.
pub fn tick_item(f: &crate::registry::Function, cron: &str, at: i64) -> ingot_store::WriteOp {
    use ingot_store::{QueueItem, Work, WriteOp};
    let function = f.slug().as_str();
    let work = Work::Cron { function: function.to_string(), cron: cron.to_string(), scheduled_ms: at };
    WriteOp::Enqueue(QueueItem {
        dedupe: Some(ingot_core::keys::cron_tick(function, cron)),
        ..QueueItem::new(ingot_core::RunId(ulid::Ulid::new()), work, at + trigger_jitter(f, cron, at))
    })
}

/// The trigger's `jitter` for the tick scheduled at `at`: deterministic, below the
/// configured maximum (Inngest allows 1 s to 5 m).
fn trigger_jitter(f: &crate::registry::Function, cron: &str, at: i64) -> i64 {
    let max = f
        .config
        .triggers
        .iter()
        .find(|t| t.cron.as_deref() == Some(cron))
        .and_then(|t| t.jitter.as_deref())
        .and_then(|j| ingot_protocol::timestr::parse_duration(j).ok())
        .map(|d| (d.as_millis() as i64).min(300_000))
        .unwrap_or(0);
    jitter_ms(f.slug().as_str(), at, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_occurrences_respect_time_zones() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:30Z").unwrap().timestamp_millis();
        let every5 = Schedule::parse("*/5 * * * *").unwrap();
        assert_eq!(rfc3339(every5.next_after(t0).unwrap()), "2026-01-01T00:05:00Z");
        let paris = Schedule::parse("TZ=Europe/Paris 0 9 * * *").unwrap();
        assert_eq!(rfc3339(paris.next_after(t0).unwrap()), "2026-01-01T08:00:00Z");
        assert!(Schedule::parse("@daily").is_err());
        assert!(Schedule::parse("TZ=Mars/Base 0 9 * * *").is_err());
        assert!(Schedule::parse("61 * * * *").is_err());
    }

    #[test]
    fn jitter_is_stable_and_bounded() {
        assert_eq!(jitter_ms("f", 1, 30_000), jitter_ms("f", 1, 30_000));
        assert!(jitter_ms("f", 1, 30_000) < 30_000);
        assert_eq!(jitter_ms("f", 1, 0), 0);
    }
}
