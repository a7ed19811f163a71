//! The starter: turns the core's start plan ([`ingot_core::start::plan_start`])
//! for an event and a function into store writes (the conditions checked at
//! commit time are guards and store ops), and starts reruns. It reads nothing
//! to plan a start.

use std::sync::Arc;

use ingot_core::start::{plan_run, plan_start, RunPlan, StartGuard, StartPlan, StartRequest};
use ingot_core::{CallTarget, EventId, RunId, RunState};
use ingot_store::{Guard, HistoryRecord, Pause, PauseKind, QueueItem, RunRecord, SkipRecord, StepRecord, Work, WriteOp};
use serde_json::Value;
use ulid::Ulid;

use crate::error::{EngineError, Result};
use crate::registry::Function;
use crate::shared::Shared;

/// Starts runs.
pub struct Starter {
    shared: Arc<Shared>,
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

impl Starter {
    pub fn new(shared: Arc<Shared>) -> Starter {
        Starter { shared }
    }

    /// The writes for one event's effect on one function: the core plans
    /// (skip, batch, debounce or a guarded run); this only turns the plan
    /// into ops, reading nothing.
    pub fn plan(&self, s: Start<'_>, ops: &mut Vec<WriteOp>) {
        let f = s.function;
        let slug = f.slug().as_str().to_string();
        let cancel = f.config.cancel.as_deref().unwrap_or(&[]);
        let request = StartRequest {
            function: &slug,
            flow: &f.flow,
            cancel,
            paused: self.shared.paused.contains(&slug),
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
    }

    /// A new run of `run`'s function with the same events: from the start,
    /// or from the step `from` (a step id), keeping the steps memoized before
    /// it (in completion order), so the SDK replays them and runs `from` again.
    /// Flow control that decides whether an event starts a run (idempotency,
    /// rate limits, debounce, batching) does not apply: the user asked for it.
    /// Both runs' histories record the link (`rerun_of` and `rerun`).
    pub async fn rerun(&self, run: &RunRecord, from: Option<&str>) -> Result<RunId> {
        let slug = run.state.function.as_str();
        let f = self.shared.registry.get(slug).ok_or_else(|| EngineError::Refused(format!("function {slug} is no longer synced")))?;
        let events = self.shared.store.events_by_ids(&run.event_ids).await?;
        let first = events.first().map(|e| e.payload.clone()).unwrap_or_else(|| serde_json::json!({}));
        let kept = match from {
            None => Vec::new(),
            Some(step) => {
                let mut steps = self.shared.store.run_steps(run.id()).await?;
                steps.sort_by_key(|s| s.seq);
                let at = steps
                    .iter()
                    .position(|s| s.step == step || s.name == step)
                    .ok_or_else(|| EngineError::NotFound(format!("run {} has no memoized step {step:?}", run.id())))?;
                steps.truncate(at);
                steps
            }
        };
        let new_id = RunId(Ulid::new());
        let now = self.shared.clock.now_ms();
        let mut ops = run_ops(&f, new_id, run.event_ids.clone(), &first, None, now);
        if let Some(WriteOp::InsertRun(r)) = ops.first_mut() {
            for s in &kept {
                r.state.done.insert(s.step.clone());
                r.state.state_bytes += serde_json::to_vec(&s.memo).map_or(0, |b| b.len() as u64);
            }
        }
        for s in kept {
            ops.push(WriteOp::SaveStep(StepRecord { run_id: new_id, at_ms: now, seq: 0, ..s }));
        }
        let link = |run_id: RunId, kind: &str, detail: Value| {
            WriteOp::History(HistoryRecord {
                run_id,
                at_ms: now,
                kind: kind.into(),
                step: from.map(str::to_string),
                name: None,
                attempt: None,
                duration_ms: None,
                detail,
            })
        };
        ops.push(link(new_id, RERUN_OF, serde_json::json!({"run_id": run.id().to_string()})));
        ops.push(link(run.id(), RERUN, serde_json::json!({"run_id": new_id.to_string()})));
        self.shared.commit(ops).await?;
        Ok(new_id)
    }
}

/// The history kind on a rerun naming the run it reruns (`detail.run_id`).
pub const RERUN_OF: &str = "rerun_of";
/// The history kind on a run naming one of its reruns (`detail.run_id`).
pub const RERUN: &str = "rerun";

/// The writes that create a run of `f` (when a batch or debounce fires,
/// a cron ticks, or a run is rerun): no start guards.
pub fn run_ops(f: &Function, run_id: RunId, event_ids: Vec<EventId>, first: &Value, correlation: Option<String>, now: i64) -> Vec<WriteOp> {
    let plan = plan_run(f.slug().as_str(), &f.flow, f.config.cancel.as_deref().unwrap_or(&[]), first, now);
    run_writes(f, run_id, event_ids, first, correlation, now, plan)
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
