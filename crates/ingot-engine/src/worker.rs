//! Queue workers: claim due items, turn each into an input for the core,
//! and commit the decision together with the item's ack.

use std::sync::Arc;
use std::time::Duration;

use ingot_core::lifecycle;
use ingot_core::{decide, Input, Policy, Reply, ReplyMeta, RunId};
use ingot_store::{Guard, HistoryRecord, PauseKind, QueueItem, StoreError, Work, WriteOp};
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use crate::driver;
use crate::Engine;

/// How often a decision is retried when its run changed underneath it.
const MAX_CONFLICT_RETRIES: usize = 20;

/// Claims due work and runs it, until shutdown.
pub async fn dispatch(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(engine.config.workers.max(1)));
    let notify = engine.store.work_notify();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let free = slots.available_permits();
        let claim = if free == 0 {
            None
        } else {
            match engine
                .store
                .claim(engine.clock.now_ms(), free.min(256))
                .await
            {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!(error = %e, "claiming work failed");
                    None
                }
            }
        };
        let mut sleep_for = Duration::from_secs(1);
        if let Some(claim) = claim {
            let full = claim.items.len() == free.min(256);
            for item in claim.items {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let engine = engine.clone();
                let notify = notify.clone();
                tokio::spawn(async move {
                    let id = item.id.clone();
                    let inner = tokio::spawn(process(engine.clone(), item));
                    let ok = matches!(inner.await, Ok(Ok(())));
                    if !ok {
                        // Keep the item for a later attempt; never lose it.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        engine.store.release(&id).await;
                    }
                    drop(permit);
                    notify.notify_one();
                });
            }
            if full {
                continue;
            }
            if let Some(next) = claim.next_at_ms {
                sleep_for =
                    Duration::from_millis((next - engine.clock.now_ms()).clamp(0, 60_000) as u64);
            } else {
                sleep_for = Duration::from_secs(60);
            }
        }
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep(sleep_for) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn process(engine: Arc<Engine>, item: QueueItem) -> anyhow::Result<()> {
    let Some(run) = engine.store.run(item.run_id).await? else {
        engine
            .store
            .commit(ingot_store::Commit {
                ops: vec![WriteOp::Ack(item.id.clone())],
            })
            .await?;
        return Ok(());
    };
    if run.status().is_terminal() {
        engine
            .store
            .commit(ingot_store::Commit {
                ops: vec![WriteOp::Ack(item.id.clone())],
            })
            .await?;
        return Ok(());
    }
    let mut guard = None;
    let mut extra = Vec::new();
    let input = match item.work.clone() {
        Work::Call { target, attempt } => {
            let function = engine.registry.get(run.state.function.as_str());
            match function
                .as_ref()
                .and_then(|f| f.config.url().map(str::to_string))
            {
                None => {
                    let error = json!({"name": "FunctionNotFoundError", "message": format!("function {} is not synced (or has no HTTP URL)", run.state.function)});
                    let meta = ReplyMeta {
                        no_retry: Some(true),
                        ..Default::default()
                    };
                    Input::Reply {
                        target,
                        attempt,
                        reply: Reply::Error { status: 404, error },
                        meta,
                    }
                }
                Some(url) => {
                    let events: Vec<Value> = engine
                        .store
                        .events_by_ids(&run.event_ids)
                        .await?
                        .into_iter()
                        .map(|e| e.payload)
                        .collect();
                    let steps = engine.store.run_steps(run.id()).await?;
                    let request =
                        driver::build_request(&run.state, &events, &steps, &target, attempt);
                    let now = engine.clock.now_ms();
                    let outcome = driver::call(
                        &engine.http,
                        &url,
                        &request,
                        engine.config.signing_key.as_deref(),
                        now / 1000,
                    )
                    .await;
                    tracing::debug!(run_id = %run.id(), step = target.step_id(), attempt, status = ?outcome.status, "called SDK");
                    extra.push(call_history(
                        run.id(),
                        now,
                        target.step_id(),
                        attempt,
                        &outcome,
                    ));
                    Input::Reply {
                        target,
                        attempt,
                        reply: outcome.reply,
                        meta: outcome.meta,
                    }
                }
            }
        }
        Work::Sleep { step } => Input::SleepDone { step },
        Work::Resume {
            step,
            kind: PauseKind::WaitForEvent,
            value,
            ..
        } => Input::WaitResolved {
            step,
            event: value.ok(),
        },
        Work::Resume {
            step,
            kind: PauseKind::Invoke,
            value,
            ..
        } => Input::InvokeResolved {
            step,
            result: value,
        },
        Work::Timeout { step, pause, kind } => {
            guard = Some(pause);
            match kind {
                PauseKind::WaitForEvent => Input::WaitResolved { step, event: None },
                PauseKind::Invoke => Input::InvokeResolved {
                    step,
                    result: Err(lifecycle::invoke_timed_out()),
                },
            }
        }
        Work::Cancel => Input::Cancel,
    };
    engine
        .apply_input(item.run_id, input, Some(item), guard, extra)
        .await
}

impl Engine {
    /// Feeds `input` to the core for `run_id` and commits the decision in one
    /// commit with the ack of `item`, `extra` ops, and, when `guard` names a
    /// pause, only if that pause is still waiting.
    pub async fn apply_input(
        self: &Arc<Self>,
        run_id: RunId,
        input: Input,
        item: Option<QueueItem>,
        guard: Option<String>,
        extra: Vec<WriteOp>,
    ) -> anyhow::Result<()> {
        for _ in 0..MAX_CONFLICT_RETRIES {
            let mut ops = Vec::new();
            if let Some(it) = &item {
                ops.push(WriteOp::Ack(it.id.clone()));
            }
            let Some(run) = self.store.run(run_id).await? else {
                self.store.commit(ingot_store::Commit { ops }).await?;
                return Ok(());
            };
            if run.status().is_terminal() {
                ops.extend(extra);
                self.store.commit(ingot_store::Commit { ops }).await?;
                return Ok(());
            }
            let events: Vec<Value> = self
                .store
                .events_by_ids(&run.event_ids)
                .await?
                .into_iter()
                .map(|e| e.payload)
                .collect();
            let policy = Policy {
                retry: self.config.retry,
                jitter_ms: rand::thread_rng().gen_range(0..=ingot_core::backoff::MAX_JITTER_MS),
            };
            let decision = decide(&run.state, input.clone(), self.clock.now_ms(), policy);
            let mut decided = self.decision_ops(&run, decision, &events).await?;
            decided.extend(extra.iter().cloned());
            match &guard {
                Some(p) => ops.push(WriteOp::Guarded {
                    guard: Guard::ConsumePause(p.clone()),
                    then: decided,
                }),
                None => ops.extend(decided),
            }
            match self.store.commit(ingot_store::Commit { ops }).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        anyhow::bail!("run {run_id} kept changing; gave up after {MAX_CONFLICT_RETRIES} tries")
    }
}

/// Records one SDK call in the run's history.
pub fn call_history(
    run_id: RunId,
    now: i64,
    target: &str,
    attempt: u32,
    outcome: &driver::CallOutcome,
) -> WriteOp {
    let summary = match &outcome.reply {
        ingot_core::Reply::Done(_) => json!({"result": "completed"}),
        ingot_core::Reply::Ops(ops) => {
            json!({"result": "ops", "ops": ops.iter().map(|o| json!({"op": o.op.as_str(), "id": o.id, "name": o.display()})).collect::<Vec<_>>()})
        }
        ingot_core::Reply::Error { status, error } => {
            json!({"result": "error", "status": status, "error": error})
        }
        ingot_core::Reply::Invalid(reason) => json!({"result": "invalid", "error": reason}),
    };
    WriteOp::History(HistoryRecord {
        run_id,
        at_ms: now,
        kind: "call".into(),
        step: Some(target.to_string()),
        name: None,
        attempt: Some(attempt),
        duration_ms: Some(outcome.duration.as_millis() as i64),
        detail: summary,
    })
}
