//! Flow control at run start, as store writes: the choices are the core's
//! ([`ingot_core::start::plan_start`]); this only turns a plan into ops (the
//! conditions checked at commit time are guards and store ops).

use std::sync::Arc;

use ingot_core::start::{plan_run, plan_start, RunPlan, StartGuard, StartPlan, StartRequest};
use ingot_core::{CallTarget, EventId, RunId, RunState};
use ingot_store::{Guard, Pause, PauseKind, QueueItem, RunRecord, SkipRecord, Work, WriteOp};
use serde_json::Value;
use ulid::Ulid;

use crate::registry::Function;
use crate::Engine;

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
    /// The writes for one event's effect on one function: the core plans
    /// (skip, batch, debounce or a guarded run); this only turns the plan
    /// into ops, reading nothing.
    pub async fn plan_start(self: &Arc<Self>, s: Start<'_>, ops: &mut Vec<WriteOp>) -> anyhow::Result<()> {
        let f = s.function;
        let slug = f.slug().as_str().to_string();
        let cancel = f.config.cancel.as_deref().unwrap_or(&[]);
        let request = StartRequest {
            function: &slug,
            flow: &f.flow,
            cancel,
            paused: self.is_paused(&slug),
            event: s.payload,
            user_event_id: s.user_id,
            now_ms: s.now,
        };
        let skip =
            |reason: &str| WriteOp::Skip(SkipRecord { function: slug.clone(), event_id: s.event_id, reason: reason.into(), at_ms: s.now });
        match plan_start(&request) {
            StartPlan::Skip { reason } => ops.push(skip(&reason)),
            StartPlan::Batch { key, max_size, timeout_ms } => ops.push(WriteOp::AppendBatch {
                function: slug.clone(),
                key,
                event_id: s.event_id,
                run_id: RunId(Ulid::new()),
                now_ms: s.now,
                max_size,
                timeout_ms,
            }),
            StartPlan::Debounce { key, period_ms, timeout_ms } => ops.push(WriteOp::Debounce {
                function: slug.clone(),
                key,
                event_id: s.event_id,
                run_id: RunId(Ulid::new()),
                now_ms: s.now,
                period_ms,
                timeout_ms,
            }),
            StartPlan::Run { guards, singleton, run } => {
                let run_id = RunId(Ulid::new());
                let mut create = run_writes(f, run_id, vec![s.event_id], s.payload, s.correlation.clone(), s.now, run);
                if let Some(single) = singleton {
                    // The newest run wins: the store cancels the holder it finds in the commit.
                    create.push(WriteOp::ReplaceSingleton { scope: single.scope, key: single.key, run_id, now_ms: s.now });
                }
                for guard in guards.into_iter().rev() {
                    let (guard, otherwise) = match guard {
                        StartGuard::UniqueKey { scope, key, expires_at_ms, skip: reason } => {
                            (Guard::UniqueKey { scope, key, now_ms: s.now, expires_at_ms }, reason.iter().map(|r| skip(r)).collect())
                        }
                        StartGuard::RateLimit { name, limit, period_ms, skip: reason } => {
                            (Guard::RateLimit { name, now_ms: s.now, limit, period_ms }, vec![skip(&reason)])
                        }
                        StartGuard::Singleton { scope, key, skip: reason } => {
                            (Guard::Singleton { scope, key, run_id }, vec![skip(&reason)])
                        }
                    };
                    create = vec![WriteOp::Guarded { guard, then: create, otherwise }];
                }
                ops.extend(create);
            }
        }
        Ok(())
    }

    /// The writes that create a run of `f` (when a batch or debounce fires,
    /// a cron ticks, or a run is rerun): no start guards.
    pub fn run_ops(
        &self,
        f: &Function,
        run_id: RunId,
        event_ids: Vec<EventId>,
        first: &Value,
        correlation: Option<String>,
        now: i64,
    ) -> Vec<WriteOp> {
        let plan = plan_run(f.slug().as_str(), &f.flow, f.config.cancel.as_deref().unwrap_or(&[]), first, now);
        run_writes(f, run_id, event_ids, first, correlation, now, plan)
    }
}

/// The run, its first call (throttled when so planned), its cancellation
/// listeners and its timeouts.
fn run_writes(
    f: &Function,
    run_id: RunId,
    event_ids: Vec<EventId>,
    first: &Value,
    correlation: Option<String>,
    now: i64,
    plan: RunPlan,
) -> Vec<WriteOp> {
    let mut state = RunState::new(run_id, f.slug().clone(), f.config.max_attempts());
    state.concurrency = plan.concurrency;
    let mut ops = vec![WriteOp::InsertRun(RunRecord {
        state,
        event_ids,
        output: None,
        started_at_ms: now,
        ended_at_ms: None,
        correlation_id: correlation,
        rev: 0,
    })];
    let call = QueueItem::new(run_id, Work::Call { target: CallTarget::Discovery, attempt: 0 }, plan.first_call_at_ms);
    match plan.throttle {
        Some(t) => {
            ops.push(WriteOp::Throttled { name: t.name, now_ms: now, limit: t.limit, period_ms: t.period_ms, burst: t.burst, item: call })
        }
        None => ops.push(WriteOp::Enqueue(call)),
    }
    for c in plan.cancel_listeners {
        ops.push(WriteOp::InsertPause(Pause {
            id: Ulid::new().to_string(),
            run_id,
            step: String::new(),
            kind: PauseKind::Cancel,
            event_name: Some(c.event),
            if_exp: c.if_exp,
            correlation_id: None,
            trigger: first.clone(),
            expires_at_ms: c.expires_at_ms,
        }));
    }
    if let Some(at) = plan.start_timeout_at_ms {
        ops.push(enqueue(run_id, Work::StartTimeout, at));
    }
    if let Some(at) = plan.finish_timeout_at_ms {
        ops.push(enqueue(run_id, Work::Cancel, at));
    }
    ops
}

fn enqueue(run_id: RunId, work: Work, at: i64) -> WriteOp {
    WriteOp::Enqueue(QueueItem::new(run_id, work, at))
}
