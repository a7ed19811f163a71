//! Flow control at run start: batching, debounce, idempotency, rate limit,
//! singleton, throttle, priority, cancelOn, timeouts and concurrency keys.
//! The math lives in `ingot_core::flow`; this turns it into store ops.

use std::sync::Arc;

use ingot_core::expr::Expr;
use ingot_core::flow::{key_string, priority_offset_ms, ConcurrencyKey};
use ingot_core::{CallTarget, EventId, RunId, RunState};
use ingot_protocol::timestr::parse_duration;
use ingot_store::{Guard, Pause, PauseKind, QueueItem, RunRecord, SkipRecord, Work, WriteOp};
use serde_json::Value;
use ulid::Ulid;

use crate::ingest::IDEMPOTENCY_MS;
use crate::registry::Function;
use crate::Engine;

/// A cancellation listener without a timeout lasts a year.
const DEFAULT_CANCEL_MS: i64 = 365 * 24 * 3600 * 1000;

/// A flow-control duration in milliseconds, at most a year (Inngest's longest
/// period), so a user's `"9999999999h"` can never overflow the arithmetic of
/// timers and GCRA state downstream.
fn ms(d: &str) -> Option<i64> {
    parse_duration(d).ok().map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX).min(ingot_core::decide::MAX_SLEEP_MS))
}

/// Evaluates a key expression against an event; no expression is the empty key.
pub fn eval_key(src: Option<&str>, event: &Value) -> String {
    match src.map(str::trim).filter(|s| !s.is_empty()) {
        None => String::new(),
        Some(src) => Expr::compile(src).ok().and_then(|e| e.value(&[("event", event)])).map(|v| key_string(&v)).unwrap_or_default(),
    }
}

/// The concurrency keys a run of `f` for `event` counts against.
pub fn concurrency_keys(f: &Function, event: &Value) -> Vec<ConcurrencyKey> {
    f.flow
        .concurrency
        .iter()
        .map(|c| {
            let value = eval_key(c.key.as_deref(), event);
            let key = match c.scope.as_deref() {
                Some("env") | Some("account") => {
                    format!("c:{}:{}:{value}", c.scope.as_deref().unwrap_or("env"), c.key.as_deref().unwrap_or(""))
                }
                _ => format!("c:fn:{}:{}:{value}", f.slug(), c.key.as_deref().unwrap_or("")),
            };
            ConcurrencyKey { key, limit: c.limit }
        })
        .collect()
}

/// What starting a run of `f` needs to know.
pub struct Start<'a> {
    pub function: &'a Arc<Function>,
    pub event_id: EventId,
    pub payload: &'a Value,
    /// The user's event `id`, for 24 h run idempotency.
    pub user_id: Option<&'a str>,
    pub correlation: Option<String>,
    pub now: i64,
}

impl Engine {
    /// Plans the start of a run (or its batching or debounce) for one event.
    pub async fn plan_start(self: &Arc<Self>, s: Start<'_>, ops: &mut Vec<WriteOp>) -> anyhow::Result<()> {
        let f = s.function;
        let slug = f.slug().as_str().to_string();
        if self.is_paused(&slug) {
            ops.push(WriteOp::Skip(SkipRecord { function: slug, event_id: s.event_id, reason: "function paused".into(), at_ms: s.now }));
            return Ok(());
        }
        if let Some(b) = &f.flow.batch {
            let included = match b.if_exp.as_deref().map(str::trim).filter(|x| !x.is_empty()) {
                Some(src) => ingot_core::expr::eval_bool(src, &[("event", s.payload)]),
                None => true,
            };
            if included && b.max_size >= 2 {
                ops.push(WriteOp::AppendBatch {
                    function: slug,
                    key: eval_key(b.key.as_deref(), s.payload),
                    event_id: s.event_id,
                    run_id: RunId(Ulid::new()),
                    now_ms: s.now,
                    max_size: b.max_size as usize,
                    timeout_ms: ms(&b.timeout).unwrap_or(60_000).max(1_000),
                });
                return Ok(());
            }
        }
        if let Some(d) = &f.flow.debounce {
            if let Some(period) = ms(&d.period) {
                ops.push(WriteOp::Debounce {
                    function: slug,
                    key: eval_key(d.key.as_deref(), s.payload),
                    event_id: s.event_id,
                    run_id: RunId(Ulid::new()),
                    now_ms: s.now,
                    period_ms: period,
                    timeout_ms: d.timeout.as_deref().and_then(ms),
                });
                return Ok(());
            }
        }
        let run_id = RunId(Ulid::new());
        let mut create = self.run_ops(f, run_id, vec![s.event_id], s.payload, s.correlation.clone(), s.now);
        let skip = |reason: &str| {
            vec![WriteOp::Skip(SkipRecord { function: slug.clone(), event_id: s.event_id, reason: reason.to_string(), at_ms: s.now })]
        };
        if let Some(single) = &f.flow.singleton {
            let key = eval_key(single.key.as_deref(), s.payload);
            let scope = format!("single:{slug}");
            if single.mode.as_deref() == Some("cancel") {
                // The newest run wins: the holder is cancelled and replaced.
                if let Some(holder) = self.store.singleton_holder(&scope, &key).await? {
                    create.push(enqueue(holder, Work::Cancel, s.now));
                }
                create.push(WriteOp::SetSingleton { scope, key, run_id });
            } else {
                create = vec![WriteOp::Guarded {
                    guard: Guard::Singleton { scope, key, run_id },
                    then: create,
                    otherwise: skip("singleton: a run with this key is already running"),
                }];
            }
        }
        if let Some(rl) = &f.flow.rate_limit {
            if let Some(period) = ms(&rl.period) {
                let name = format!("rl:{slug}:{}", eval_key(rl.key.as_deref(), s.payload));
                create = vec![WriteOp::Guarded {
                    guard: Guard::RateLimit { name, now_ms: s.now, limit: rl.limit.max(1), period_ms: period },
                    then: create,
                    otherwise: skip("rate limited"),
                }];
            }
        }
        if let Some(idem) = &f.flow.idempotency {
            let key = eval_key(Some(idem), s.payload);
            let guard = Guard::UniqueKey { scope: format!("idem:{slug}"), key, now_ms: s.now, expires_at_ms: s.now + IDEMPOTENCY_MS };
            create = vec![WriteOp::Guarded { guard, then: create, otherwise: skip("idempotency key already used") }];
        }
        if let Some(user_id) = s.user_id {
            let guard = Guard::UniqueKey {
                scope: format!("run:{slug}"),
                key: user_id.to_string(),
                now_ms: s.now,
                expires_at_ms: s.now + IDEMPOTENCY_MS,
            };
            create = vec![WriteOp::Guarded { guard, then: create, otherwise: vec![] }];
        }
        ops.extend(create);
        Ok(())
    }

    /// The writes that create a run: the run, its first call (throttled and
    /// prioritized), its cancellation listeners and its timeouts.
    pub fn run_ops(
        &self,
        f: &Function,
        run_id: RunId,
        event_ids: Vec<EventId>,
        first: &Value,
        correlation: Option<String>,
        now: i64,
    ) -> Vec<WriteOp> {
        let mut state = RunState::new(run_id, f.slug().clone(), f.config.max_attempts());
        state.concurrency = concurrency_keys(f, first);
        let mut ops = vec![WriteOp::InsertRun(RunRecord {
            state,
            event_ids,
            output: None,
            started_at_ms: now,
            ended_at_ms: None,
            correlation_id: correlation,
            rev: 0,
        })];
        let offset = f
            .flow
            .priority
            .as_ref()
            .and_then(|p| p.run.as_deref())
            .and_then(|src| Expr::compile(src).ok())
            .and_then(|e| e.value(&[("event", first)]))
            .map(|v| priority_offset_ms(&v))
            .unwrap_or(0);
        let call = QueueItem::new(run_id, Work::Call { target: CallTarget::Discovery, attempt: 0 }, now.saturating_sub(offset));
        match f.flow.throttle.as_ref().and_then(|t| ms(&t.period).map(|p| (t, p))) {
            Some((t, period)) => ops.push(WriteOp::Throttled {
                name: format!("thr:{}:{}", f.slug(), eval_key(t.key.as_deref(), first)),
                now_ms: now,
                limit: t.limit.max(1),
                period_ms: period,
                burst: t.burst,
                item: call,
            }),
            None => ops.push(WriteOp::Enqueue(call)),
        }
        for c in f.config.cancel.iter().flatten() {
            ops.push(WriteOp::InsertPause(Pause {
                id: Ulid::new().to_string(),
                run_id,
                step: String::new(),
                kind: PauseKind::Cancel,
                event_name: Some(c.event.clone()),
                if_exp: c.if_exp.clone().filter(|s| !s.trim().is_empty()),
                correlation_id: None,
                trigger: first.clone(),
                expires_at_ms: now.saturating_add(c.timeout.as_deref().and_then(ms).unwrap_or(DEFAULT_CANCEL_MS)),
            }));
        }
        if let Some(t) = &f.flow.timeouts {
            if let Some(start) = t.start.as_deref().and_then(ms) {
                ops.push(enqueue(run_id, Work::StartTimeout, now.saturating_add(start)));
            }
            if let Some(finish) = t.finish.as_deref().and_then(ms) {
                ops.push(enqueue(run_id, Work::Cancel, now.saturating_add(finish)));
            }
        }
        ops
    }
}

fn enqueue(run_id: RunId, work: Work, at: i64) -> WriteOp {
    WriteOp::Enqueue(QueueItem::new(run_id, work, at))
}
