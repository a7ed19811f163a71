//! The names of flow-control state: concurrency keys, throttle and
//! rate-limit rows, singleton and idempotency scopes, and queue dedupe keys.
//! Built here and nowhere else, so every store and every part of the engine
//! agrees on them (they are stored, so changing one is a migration).

/// A function-scoped concurrency key: `c:fn:<slug>:<key expr>:<value>`.
pub fn concurrency_fn(function: &str, expr: &str, value: &str) -> String {
    format!("c:fn:{function}:{expr}:{value}")
}

/// An `env`- or `account`-scoped concurrency key: `c:<scope>:<key expr>:<value>`.
pub fn concurrency_shared(scope: &str, expr: &str, value: &str) -> String {
    format!("c:{scope}:{expr}:{value}")
}

/// A throttle's GCRA row: `thr:<slug>:<key>`.
pub fn throttle(function: &str, key: &str) -> String {
    format!("thr:{function}:{key}")
}

/// A rate limit's GCRA row: `rl:<slug>:<key>`.
pub fn rate_limit(function: &str, key: &str) -> String {
    format!("rl:{function}:{key}")
}

/// The scope of a function's singleton keys: `single:<slug>`.
pub fn singleton_scope(function: &str) -> String {
    format!("single:{function}")
}

/// The scope of a function's `idempotency` keys: `idem:<slug>`.
pub fn idempotency_scope(function: &str) -> String {
    format!("idem:{function}")
}

/// The scope of the event-id guard (one run per user event `id`): `run:<slug>`.
pub fn event_id_scope(function: &str) -> String {
    format!("run:{function}")
}

/// The scope of seeded event ids (an SDK's retried send stores nothing twice).
pub const SEEDED_EVENT_SCOPE: &str = "event";

/// The key a `step.waitForSignal` pause holds (its `correlation_id`):
/// `sig:<signal>`, so it never equals an invoke's correlation id.
pub fn signal(name: &str) -> String {
    format!("sig:{name}")
}

/// The dedupe key of a cron trigger's next tick: `cron:<slug>:<expression>`.
pub fn cron_tick(function: &str, cron: &str) -> String {
    format!("cron:{function}:{cron}")
}
