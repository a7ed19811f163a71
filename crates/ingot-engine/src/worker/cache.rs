//! What a run's next call needs (the run, its trigger events, its memoized
//! steps), kept from the decision that queued that call, so the call is
//! built without reading the store.
//!
//! An entry is the run as of one revision: the one its last decision
//! committed (`expected_rev + 1`). It is used only when the claim of the
//! item says the run is still at that revision ([`ingot_store::Claimed::run_rev`],
//! read by the store with the claim), so a run changed by anything else (the
//! API, a checkpoint, another node on a shared database) is read again. Steps
//! are only ever stored together with an update of their run, so a run's
//! revision also names its steps; its events never change.
//!
//! Bounded: at most [`MAX_ENTRIES`] runs and [`MAX_BYTES`] of state, and
//! only runs whose next call is queued are kept (not sleeping or waiting
//! ones), so a million sleeping runs cost nothing here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ingot_core::RunId;
use ingot_store::{RunRecord, StepRecord, Work, WriteOp};
use serde_json::Value;

/// Most runs kept.
const MAX_ENTRIES: usize = 4096;
/// Most bytes of events and step results kept in all.
const MAX_BYTES: usize = 32 * 1024 * 1024;
/// A run with more state than this is read from the store for each call.
const MAX_ENTRY_BYTES: usize = 256 * 1024;

/// A run as of its revision `run.rev`, with what its calls send.
pub(super) struct CallState {
    pub run: RunRecord,
    pub events: Arc<Vec<Value>>,
    /// Bytes of `events` as JSON.
    pub events_bytes: usize,
    pub steps: Arc<Vec<StepRecord>>,
}

impl CallState {
    fn bytes(&self) -> usize {
        self.events_bytes + self.run.state.state_bytes as usize + 512
    }
}

#[derive(Default)]
pub(super) struct RunCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<RunId, Arc<CallState>>,
    bytes: usize,
}

impl Inner {
    fn remove(&mut self, id: RunId) {
        if let Some(old) = self.map.remove(&id) {
            self.bytes -= old.bytes();
        }
    }
}

impl RunCache {
    /// The run `id` if it is kept at revision `rev`. Taken out either way: the
    /// decision that follows puts the next revision back.
    pub fn take(&self, id: RunId, rev: i64) -> Option<Arc<CallState>> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let entry = inner.map.get(&id).cloned();
        inner.remove(id);
        entry.filter(|e| e.run.rev == rev)
    }

    pub fn forget(&self, id: RunId) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// Keeps `state` (replacing what was kept of its run).
    pub fn put(&self, state: CallState) {
        let bytes = state.bytes();
        let id = state.run.id();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.remove(id);
        if bytes > MAX_ENTRY_BYTES {
            return;
        }
        while !inner.map.is_empty() && (inner.map.len() >= MAX_ENTRIES || inner.bytes + bytes > MAX_BYTES) {
            let Some(victim) = inner.map.keys().next().copied() else { break };
            inner.remove(victim);
        }
        inner.bytes += bytes;
        inner.map.insert(id, Arc::new(state));
    }

    /// The run of `before` as it will be once `decided` (the top-level writes
    /// of one decision for it, guarded by its revision) has committed, if it
    /// still runs and its next call is queued: worth keeping for that call.
    pub fn after(&self, before: &CallState, decided: &[WriteOp]) -> Option<CallState> {
        let id = before.run.id();
        let mut next: Option<RunRecord> = None;
        let mut call_queued = false;
        let mut new_steps: Vec<&StepRecord> = Vec::new();
        for op in decided {
            match op {
                WriteOp::UpdateRun { run, expected_rev } if run.id() == id && *expected_rev == before.run.rev => {
                    next = Some(RunRecord { rev: expected_rev + 1, ..run.clone() });
                }
                WriteOp::UpdateRun { run, .. } if run.id() == id => return None,
                WriteOp::SaveStep(s) if s.run_id == id => new_steps.push(s),
                WriteOp::Enqueue(q) if q.run_id == id && matches!(q.work, Work::Call { .. }) => call_queued = true,
                // Nested writes (a guard's) may or may not apply: not followed here.
                WriteOp::Guarded { then, otherwise, .. } if touches(then, id) || touches(otherwise, id) => return None,
                _ => {}
            }
        }
        let run = next.filter(|r| !r.status().is_terminal() && call_queued)?;
        if run.state.state_bytes as usize + before.events_bytes > MAX_ENTRY_BYTES {
            return None;
        }
        let steps = if new_steps.is_empty() {
            before.steps.clone()
        } else {
            // As the store does: a step already memoized keeps its result; a new one comes last.
            let mut steps = before.steps.as_ref().clone();
            for s in new_steps {
                if !steps.iter().any(|old| old.step == s.step) {
                    let seq = steps.iter().map(|old| old.seq).max().unwrap_or(0) + 1;
                    steps.push(StepRecord { seq, ..s.clone() });
                }
            }
            Arc::new(steps)
        };
        Some(CallState { run, events: before.events.clone(), events_bytes: before.events_bytes, steps })
    }
}

/// Whether any of `ops` writes the run `id`'s row or its steps.
fn touches(ops: &[WriteOp], id: RunId) -> bool {
    ops.iter().any(|op| match op {
        WriteOp::UpdateRun { run, .. } => run.id() == id,
        WriteOp::SaveStep(s) => s.run_id == id,
        WriteOp::Guarded { then, otherwise, .. } => touches(then, id) || touches(otherwise, id),
        _ => false,
    })
}

/// Bytes of `events` as JSON.
pub(super) fn json_bytes(events: &[Value]) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    for e in events {
        let _ = serde_json::to_writer(&mut count, e);
    }
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingot_core::{FunctionSlug, RunState, RunStatus};
    use ingot_store::QueueItem;
    use serde_json::json;
    use ulid::Ulid;

    fn state(rev: i64, steps: Vec<StepRecord>) -> CallState {
        let id = RunId(Ulid::new());
        let run = RunRecord {
            state: RunState::new(id, FunctionSlug("a-f".into()), 4),
            event_ids: Vec::new(),
            output: None,
            started_at_ms: 0,
            ended_at_ms: None,
            correlation_id: None,
            rev,
        };
        CallState { run, events: Arc::new(vec![json!({"name": "e"})]), events_bytes: 14, steps: Arc::new(steps) }
    }

    fn step(run_id: RunId, id: &str, memo: Value) -> StepRecord {
        StepRecord { run_id, step: id.into(), name: id.into(), memo, seq: 0, at_ms: 5 }
    }

    #[test]
    fn keeps_the_committed_revision_with_new_steps_last_and_old_ones_unchanged() {
        let cache = RunCache::default();
        let mut before = state(3, Vec::new());
        let id = before.run.id();
        before.steps = Arc::new(vec![StepRecord { seq: 1, ..step(id, "a", json!({"data": 1})) }]);
        let ops = vec![
            WriteOp::UpdateRun { run: before.run.clone(), expected_rev: 3 },
            WriteOp::SaveStep(step(id, "a", json!({"data": 99}))),
            WriteOp::SaveStep(step(id, "b", json!({"data": 2}))),
            WriteOp::Enqueue(QueueItem::new(id, Work::Call { target: ingot_core::CallTarget::Discovery, attempt: 0 }, 0)),
        ];
        cache.put(cache.after(&before, &ops).unwrap());
        assert!(cache.take(id, 3).is_none(), "an older revision is not served");
        cache.put(cache.after(&before, &ops).unwrap());
        let kept = cache.take(id, 4).expect("the committed revision is kept");
        let steps: Vec<_> = kept.steps.iter().map(|s| (s.step.as_str(), s.seq, s.memo.clone())).collect();
        assert_eq!(steps, vec![("a", 1, json!({"data": 1})), ("b", 2, json!({"data": 2}))]);
        assert!(cache.take(id, 4).is_none(), "taken once");
    }

    #[test]
    fn forgets_finished_runs_and_runs_without_a_queued_call() {
        let cache = RunCache::default();
        let before = state(0, Vec::new());
        let id = before.run.id();
        let call = WriteOp::Enqueue(QueueItem::new(id, Work::Call { target: ingot_core::CallTarget::Discovery, attempt: 0 }, 0));
        let sleep = WriteOp::Enqueue(QueueItem::new(id, Work::Sleep { step: "s".into() }, 0));
        assert!(
            cache.after(&before, &[WriteOp::UpdateRun { run: before.run.clone(), expected_rev: 0 }, sleep]).is_none(),
            "a sleeping run is not kept"
        );
        let mut done = before.run.clone();
        done.state.status = RunStatus::Completed;
        assert!(cache.after(&before, &[WriteOp::UpdateRun { run: done, expected_rev: 0 }, call]).is_none(), "a finished run is not kept");
    }
}
