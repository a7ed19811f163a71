//! One decision, committed: load the run, ask the core, turn the decision
//! into writes, commit them with the item's ack. A revision conflict decides
//! again; writes that keep failing fail the run instead of looping.

use std::time::Duration;

use ingot_core::{decide_with, Decision, Input, Policy, RunId};
use ingot_store::{Claimed, Guard, RunRecord, WriteOp};
use rand::Rng;
use serde_json::Value;

use super::cache::CallState;
use super::Worker;
use crate::error::{EngineError, Result};

/// How often a decision is retried when its run changed underneath it.
const MAX_CONFLICT_RETRIES: usize = 20;
/// How often a decision's writes may fail before the run fails with the error.
const MAX_WRITE_FAILURES: usize = 3;

/// An input waiting to be decided, and what commits with its decision.
pub(super) struct Pending {
    pub input: Input,
    /// The queue item acked in the same commit.
    pub item: Option<Claimed>,
    /// A pause that must still be waiting for the decision to commit.
    pub guard: Option<String>,
    /// Writes that go with the decision (the call's history line).
    pub extra: Vec<WriteOp>,
}

impl Worker {
    /// Feeds `input` to the core for `run_id` and commits the decision.
    pub async fn apply(&self, run_id: RunId, input: Input) -> Result<()> {
        let pending = Pending { input, item: None, guard: None, extra: Vec::new() };
        self.decide_for(run_id, pending, None).await
    }

    /// Decides `pending` for `run_id` (with the run, its events and its steps
    /// already read in `loaded` for the first try; a conflict reads them
    /// again) and
    /// commits the decision with the item's ack, the extra writes, and, when
    /// a pause guards it, only if that pause is still waiting.
    ///
    /// A decision whose writes keep failing (not a revision conflict, which
    /// just decides again) is tried [`MAX_WRITE_FAILURES`] times; then the run
    /// fails with the error, so no run loops on a write that cannot succeed.
    ///
    /// When the first try commits, the run as it left it is kept for its
    /// next call ([`super::cache`]); otherwise it is forgotten there.
    pub(super) async fn decide_for(&self, run_id: RunId, pending: Pending, mut loaded: Option<CallState>) -> Result<()> {
        let result = self.decide_and_commit(run_id, pending, loaded.take()).await;
        if result.is_err() {
            self.cache.forget(run_id);
        }
        result
    }

    async fn decide_and_commit(&self, run_id: RunId, pending: Pending, mut loaded: Option<CallState>) -> Result<()> {
        let Pending { mut input, item, guard, extra } = pending;
        let shared = &self.shared;
        let mut failures = 0;
        let mut lifecycle = true;
        for _ in 0..MAX_CONFLICT_RETRIES {
            let mut ops = Vec::new();
            if let Some(it) = &item {
                ops.push(WriteOp::Ack(it.lease.clone()));
            }
            let first = loaded.take();
            let (run, events) = match &first {
                Some(l) => (l.run.clone(), l.events.clone()),
                None => {
                    let Some(run) = shared.store.run(run_id).await? else {
                        shared.commit(ops).await?;
                        return Ok(());
                    };
                    let events: Vec<Value> = shared.store.events_by_ids(&run.event_ids).await?.into_iter().map(|e| e.payload).collect();
                    (run, std::sync::Arc::new(events))
                }
            };
            if run.status().is_terminal() {
                ops.extend(extra);
                shared.commit(ops).await?;
                return Ok(());
            }
            let policy =
                Policy { retry: shared.config.retry, jitter_ms: rand::thread_rng().gen_range(0..=ingot_core::backoff::MAX_JITTER_MS) };
            let now = shared.clock.now_ms();
            let decision = decide_with(&run.state, input.clone(), now, policy, &shared.registry);
            let mut keep = None;
            let result = match self.carry_out(&run, decision, &events[..], now, lifecycle).await {
                Ok(mut decided) => {
                    decided.extend(extra.iter().cloned());
                    match &guard {
                        Some(p) => ops.push(WriteOp::Guarded { otherwise: vec![], guard: Guard::ConsumePause(p.clone()), then: decided }),
                        None => {
                            // What the run will be once this commits, kept for its next call.
                            keep = first.as_ref().map(|before| self.cache.after(before, &decided));
                            ops.extend(decided);
                        }
                    }
                    shared.commit(ops).await.map(|_| ())
                }
                Err(e) => Err(e),
            };
            let error = match result {
                Ok(()) => {
                    match keep.flatten() {
                        Some(next) => self.cache.put(next),
                        None => self.cache.forget(run_id),
                    }
                    return Ok(());
                }
                Err(e) if e.is_conflict() => continue,
                // Another claim holds the item now: the decision is theirs to make.
                Err(e) if e.is_lease_lost() => return Err(e),
                Err(e) => e,
            };
            failures += 1;
            tracing::warn!(run_id = %run_id, error = %error, failures, "storing a run's next state failed");
            if failures == MAX_WRITE_FAILURES {
                // Fail the run with the error; its lifecycle events go with it.
                input = Input::EngineFailed { message: format!("the engine could not store this run's next state: {error}") };
            } else if failures == MAX_WRITE_FAILURES + 1 {
                // Even that failed: end the run without emitting anything.
                lifecycle = false;
            } else if failures > MAX_WRITE_FAILURES + 1 {
                return Err(EngineError::Unrecordable { run_id, source: Box::new(error) });
            } else {
                tokio::time::sleep(Duration::from_millis(50 << failures)).await;
            }
        }
        Err(EngineError::Contended { run_id, tries: MAX_CONFLICT_RETRIES })
    }

    /// The writes of `decision` and of the events it emits (planned like any
    /// other event); without `lifecycle` the emitted events are left out.
    async fn carry_out(&self, run: &RunRecord, decision: Decision, events: &[Value], now: i64, lifecycle: bool) -> Result<Vec<WriteOp>> {
        let planned = crate::effects::decision_ops(run, decision, events, now)?;
        let mut ops = planned.ops;
        if lifecycle && !planned.emit.is_empty() {
            ops.extend(self.ingest.plan(planned.emit, None).await?.ops);
        }
        Ok(ops)
    }
}
