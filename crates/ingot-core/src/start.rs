//! The start planner: what an event does to one function it triggers, for
//! every flow-control choice at run start (paused, batching, debounce,
//! singleton, rate limit, idempotency, the event-id guard, throttle,
//! priority, concurrency keys, cancelOn listeners and timeouts).
//!
//! `plan_start(request) -> StartPlan` is pure: the shell loads the function
//! and the event, turns the plan into store writes and commits them. The
//! conditions that must hold at commit time (a rate-limit slot is free, an
//! idempotency key unused, no singleton holder) come back as [`StartGuard`]s,
//! which the store checks atomically inside the commit.

use ingot_protocol::flow::FlowConfig;
use ingot_protocol::sync::CancelConfig;
use ingot_protocol::timestr;
use serde_json::Value;

use crate::decide::MAX_SLEEP_MS;
use crate::expr::Expr;
use crate::flow::{key_string, priority_offset_ms, ConcurrencyKey};
use crate::keys;

/// Run idempotency (by event `id` or an `idempotency` key) lasts 24 hours.
pub const IDEMPOTENCY_MS: i64 = 24 * 3600 * 1000;
/// A cancellation listener without a timeout lasts a year.
pub const DEFAULT_CANCEL_MS: i64 = 365 * 24 * 3600 * 1000;
/// A batch waits at least this long, and this long when its timeout is unreadable.
pub const MIN_BATCH_TIMEOUT_MS: i64 = 1_000;
pub const DEFAULT_BATCH_TIMEOUT_MS: i64 = 60_000;

/// What the planner needs to know about one function and one event.
#[derive(Debug, Clone, Copy)]
pub struct StartRequest<'a> {
    /// The function's slug.
    pub function: &'a str,
    pub flow: &'a FlowConfig,
    pub cancel: &'a [CancelConfig],
    /// Paused functions start nothing.
    pub paused: bool,
    /// The event, as stored (it is `event` in key expressions).
    pub event: &'a Value,
    /// The user's event `id`: a second event with it starts no second run.
    pub user_event_id: Option<&'a str>,
    pub now_ms: i64,
}

/// What to do with the event for this function.
#[derive(Debug, Clone, PartialEq)]
pub enum StartPlan {
    /// Record a skip, start nothing.
    Skip { reason: String },
    /// Add the event to the function's batch for `key`.
    Batch { key: String, max_size: usize, timeout_ms: i64 },
    /// Debounce: the event replaces the pending one for `key`.
    Debounce { key: String, period_ms: i64, timeout_ms: Option<i64> },
    /// Start a run, if every guard passes (outermost first); a failed guard
    /// records its skip reason (none for the event-id guard).
    Run { guards: Vec<StartGuard>, singleton: Option<Singleton>, run: RunPlan },
}

/// A condition the store checks when it commits a run's start.
#[derive(Debug, Clone, PartialEq)]
pub enum StartGuard {
    /// The key was not used in its scope (and is now, until `expires_at_ms`).
    UniqueKey { scope: String, key: String, expires_at_ms: i64, skip: Option<String> },
    /// A GCRA rate-limit slot is free.
    RateLimit { name: String, limit: u32, period_ms: i64, skip: String },
    /// No run holds the singleton key.
    Singleton { scope: String, key: String, skip: String },
}

/// `singleton.mode: "cancel"`: the new run replaces the key's holder, which is cancelled.
#[derive(Debug, Clone, PartialEq)]
pub struct Singleton {
    pub scope: String,
    pub key: String,
}

/// How a new run starts: its concurrency keys, its first call, its
/// cancellation listeners and its timeouts.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    pub concurrency: Vec<ConcurrencyKey>,
    /// When the first call falls due (earlier for a higher priority).
    pub first_call_at_ms: i64,
    /// The first call goes through this throttle.
    pub throttle: Option<Throttle>,
    pub cancel_listeners: Vec<CancelListener>,
    pub start_timeout_at_ms: Option<i64>,
    pub finish_timeout_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Throttle {
    pub name: String,
    pub limit: u32,
    pub period_ms: i64,
    pub burst: u32,
}

/// A `cancelOn` entry: an event named `event` matching `if_exp` cancels the run.
#[derive(Debug, Clone, PartialEq)]
pub struct CancelListener {
    pub event: String,
    pub if_exp: Option<String>,
    pub expires_at_ms: i64,
}

/// A flow-control duration in milliseconds, at most a year, so a user's
/// `"9999999999h"` can never overflow the arithmetic of timers downstream.
pub fn duration_ms(d: &str) -> Option<i64> {
    timestr::parse_duration(d).ok().map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX).min(MAX_SLEEP_MS))
}

/// Evaluates a key expression against an event; no expression (or one that
/// does not evaluate) is the empty key.
pub fn eval_key(src: Option<&str>, event: &Value) -> String {
    match src.map(str::trim).filter(|s| !s.is_empty()) {
        None => String::new(),
        Some(src) => Expr::compile(src).ok().and_then(|e| e.value(&[("event", event)])).map(|v| key_string(&v)).unwrap_or_default(),
    }
}

/// The plan for `req`.
pub fn plan_start(req: &StartRequest<'_>) -> StartPlan {
    let flow = req.flow;
    if req.paused {
        return StartPlan::Skip { reason: "function paused".into() };
    }
    if let Some(b) = &flow.batch {
        let included = match b.if_exp.as_deref().map(str::trim).filter(|x| !x.is_empty()) {
            Some(src) => crate::expr::eval_bool(src, &[("event", req.event)]),
            None => true,
        };
        if included && b.max_size >= 2 {
            let timeout_ms = duration_ms(&b.timeout).unwrap_or(DEFAULT_BATCH_TIMEOUT_MS).max(MIN_BATCH_TIMEOUT_MS);
            return StartPlan::Batch { key: eval_key(b.key.as_deref(), req.event), max_size: b.max_size as usize, timeout_ms };
        }
    }
    if let Some(d) = &flow.debounce {
        if let Some(period_ms) = duration_ms(&d.period) {
            let timeout_ms = d.timeout.as_deref().and_then(duration_ms);
            return StartPlan::Debounce { key: eval_key(d.key.as_deref(), req.event), period_ms, timeout_ms };
        }
    }
    // Guards, innermost first; reversed at the end.
    let mut guards = Vec::new();
    let mut singleton = None;
    if let Some(s) = &flow.singleton {
        let key = eval_key(s.key.as_deref(), req.event);
        let scope = keys::singleton_scope(req.function);
        if s.mode.as_deref() == Some("cancel") {
            singleton = Some(Singleton { scope, key });
        } else {
            guards.push(StartGuard::Singleton { scope, key, skip: "singleton: a run with this key is already running".into() });
        }
    }
    if let Some(rl) = &flow.rate_limit {
        if let Some(period_ms) = duration_ms(&rl.period) {
            let name = keys::rate_limit(req.function, &eval_key(rl.key.as_deref(), req.event));
            guards.push(StartGuard::RateLimit { name, limit: rl.limit.max(1), period_ms, skip: "rate limited".into() });
        }
    }
    let expires_at_ms = req.now_ms.saturating_add(IDEMPOTENCY_MS);
    if let Some(idem) = &flow.idempotency {
        let key = eval_key(Some(idem), req.event);
        let skip = Some("idempotency key already used".to_string());
        guards.push(StartGuard::UniqueKey { scope: keys::idempotency_scope(req.function), key, expires_at_ms, skip });
    }
    if let Some(id) = req.user_event_id {
        guards.push(StartGuard::UniqueKey { scope: keys::event_id_scope(req.function), key: id.to_string(), expires_at_ms, skip: None });
    }
    guards.reverse();
    StartPlan::Run { guards, singleton, run: plan_run(req.function, flow, req.cancel, req.event, req.now_ms) }
}

/// How a run of `function` started by `first` (its first event) begins: also
/// used when a batch or a debounce fires, or a cron ticks.
pub fn plan_run(function: &str, flow: &FlowConfig, cancel: &[CancelConfig], first: &Value, now_ms: i64) -> RunPlan {
    let offset = flow
        .priority
        .as_ref()
        .and_then(|p| p.run.as_deref())
        .and_then(|src| Expr::compile(src).ok())
        .and_then(|e| e.value(&[("event", first)]))
        .map(|v| priority_offset_ms(&v))
        .unwrap_or(0);
    let throttle = flow.throttle.as_ref().and_then(|t| {
        let period_ms = duration_ms(&t.period)?;
        let name = keys::throttle(function, &eval_key(t.key.as_deref(), first));
        Some(Throttle { name, limit: t.limit.max(1), period_ms, burst: t.burst })
    });
    let cancel_listeners = cancel
        .iter()
        .map(|c| CancelListener {
            event: c.event.clone(),
            if_exp: c.if_exp.clone().filter(|s| !s.trim().is_empty()),
            expires_at_ms: now_ms.saturating_add(c.timeout.as_deref().and_then(duration_ms).unwrap_or(DEFAULT_CANCEL_MS)),
        })
        .collect();
    let timeout = |d: Option<&str>| d.and_then(duration_ms).map(|ms| now_ms.saturating_add(ms));
    RunPlan {
        concurrency: concurrency_keys(function, flow, first),
        first_call_at_ms: now_ms.saturating_sub(offset),
        throttle,
        cancel_listeners,
        start_timeout_at_ms: timeout(flow.timeouts.as_ref().and_then(|t| t.start.as_deref())),
        finish_timeout_at_ms: timeout(flow.timeouts.as_ref().and_then(|t| t.finish.as_deref())),
    }
}

/// The concurrency keys a run of `function` for `event` counts against.
pub fn concurrency_keys(function: &str, flow: &FlowConfig, event: &Value) -> Vec<ConcurrencyKey> {
    flow.concurrency
        .iter()
        .map(|c| {
            let value = eval_key(c.key.as_deref(), event);
            let expr = c.key.as_deref().unwrap_or("");
            let key = match c.scope.as_deref() {
                Some(scope @ ("env" | "account")) => keys::concurrency_shared(scope, expr, &value),
                _ => keys::concurrency_fn(function, expr, &value),
            };
            ConcurrencyKey { key, limit: c.limit }
        })
        .collect()
}
