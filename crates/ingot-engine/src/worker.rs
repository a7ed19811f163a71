//! Queue workers: claim due items, turn each into an input for the core,
//! and commit the decision together with the item's ack.

use std::sync::Arc;
use std::time::Duration;

use ingot_core::flow::ConcurrencyKey;
use ingot_core::lifecycle;
use ingot_core::{decide_with, Decision, EventId, Input, Policy, Reply, RunId};
use ingot_store::{Commit, Guard, HistoryRecord, PauseKind, QueueItem, StoreError, StoredEvent, Work, WriteOp};
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::{watch, OwnedSemaphorePermit};
use ulid::Ulid;

use crate::limiter::{Admission, MAX_PARKED};

use crate::driver;
use crate::Engine;

/// How often a decision is retried when its run changed underneath it.
const MAX_CONFLICT_RETRIES: usize = 20;
/// How often a decision's writes may fail before the run fails with the error.
const MAX_WRITE_FAILURES: usize = 3;

/// What processing an item came to.
enum Outcome {
    /// Committed (acked, or moved on).
    Done,
    /// Waiting in the limiter, still leased.
    Parked,
    /// Not acked: give the lease back now.
    Release,
}

/// Claims due work and runs it, until shutdown.
pub async fn dispatch(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    let notify = engine.store.work_notify();
    engine.schedule_crons().await;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let free = engine.slots.available_permits().min(256);
        let claim = if free == 0 || engine.limiter.parked() >= MAX_PARKED {
            None
        } else {
            match engine.store.claim(engine.clock.now_ms(), free).await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!(error = %e, "claiming work failed");
                    None
                }
            }
        };
        let mut sleep_for = Duration::from_secs(1);
        if let Some(claim) = claim {
            let full = claim.items.len() == free;
            for item in claim.items {
                let Ok(permit) = engine.slots.clone().acquire_owned().await else { return };
                spawn_item(engine.clone(), item, permit, None);
            }
            if full {
                continue;
            }
            sleep_for = match claim.next_at_ms {
                Some(next) => Duration::from_millis((next - engine.clock.now_ms()).clamp(0, 60_000) as u64),
                None => Duration::from_secs(60),
            };
        }
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep(sleep_for) => {}
            _ = shutdown.changed() => return,
        }
    }
}

fn spawn_item(engine: Arc<Engine>, item: QueueItem, permit: OwnedSemaphorePermit, held: Option<Vec<ConcurrencyKey>>) {
    tokio::spawn(async move {
        let id = item.id.clone();
        let span = tracing::debug_span!("run", run_id = %item.run_id, function = tracing::field::Empty, work = work_kind(&item.work));
        let result = tokio::spawn(tracing::Instrument::instrument(process(engine.clone(), item, held), span)).await;
        match result {
            Ok(Ok(Outcome::Done)) | Ok(Ok(Outcome::Parked)) => {}
            Ok(Ok(Outcome::Release)) => engine.store.release(&id).await,
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), item = %id.0, "work item failed; it will be retried");
                tokio::time::sleep(Duration::from_millis(500)).await;
                engine.store.release(&id).await;
            }
            Err(e) => {
                tracing::error!(error = %e, item = %id.0, "work item panicked; it will be retried");
                tokio::time::sleep(Duration::from_millis(500)).await;
                engine.store.release(&id).await;
            }
        }
        drop(permit);
        engine.store.work_notify().notify_one();
    });
}

/// Concurrency slots held for one call; released (admitting parked calls) on drop.
struct Held {
    engine: Arc<Engine>,
    keys: Vec<ConcurrencyKey>,
}

impl Drop for Held {
    fn drop(&mut self) {
        for (item, keys) in self.engine.limiter.release(&self.keys) {
            let engine = self.engine.clone();
            tokio::spawn(async move {
                if let Ok(permit) = engine.slots.clone().acquire_owned().await {
                    spawn_item(engine, item, permit, Some(keys));
                }
            });
        }
    }
}

async fn ack(engine: &Engine, item: &QueueItem) -> anyhow::Result<Outcome> {
    engine.store.commit(Commit { ops: vec![WriteOp::Ack(item.id.clone())] }).await?;
    Ok(Outcome::Done)
}

/// Puts a call whose concurrency line is full back in the queue, later the
/// longer the line (10 ms per waiting call, 1 s to 60 s), so other work is
/// claimed meanwhile.
async fn defer(engine: &Engine, item: &QueueItem, waiting: usize) -> anyhow::Result<Outcome> {
    let delay = (waiting as i64).saturating_mul(10).clamp(1_000, 60_000);
    let later = QueueItem { dedupe: item.dedupe.clone(), ..QueueItem::new(item.run_id, item.work.clone(), engine.clock.now_ms() + delay) };
    engine.store.commit(Commit { ops: vec![WriteOp::Ack(item.id.clone()), WriteOp::Enqueue(later)] }).await?;
    Ok(Outcome::Done)
}

async fn process(engine: Arc<Engine>, item: QueueItem, held: Option<Vec<ConcurrencyKey>>) -> anyhow::Result<Outcome> {
    match item.work.clone() {
        Work::Debounce { function, key } => return engine.fire_debounce(&item, &function, &key).await,
        Work::Batch { function, .. } => return engine.fire_batch(&item, &function).await,
        Work::Cron { function, cron, scheduled_ms } => return engine.fire_cron(&item, &function, &cron, scheduled_ms).await,
        _ => {}
    }
    let Some(run) = engine.store.run(item.run_id).await? else { return ack(&engine, &item).await };
    tracing::Span::current().record("function", run.state.function.as_str());
    let _held = held.map(|keys| Held { engine: engine.clone(), keys });
    if run.status().is_terminal() {
        return ack(&engine, &item).await;
    }
    let mut guard = None;
    let mut extra = Vec::new();
    let mut loaded_events: Option<Vec<Value>> = None;
    let mut slots = None;
    let input = match item.work.clone() {
        Work::Call { target, attempt } => {
            if _held.is_none() && !run.state.concurrency.is_empty() {
                match engine.limiter.admit(&item, &run.state.concurrency) {
                    Admission::Acquired => {}
                    Admission::Parked => return Ok(Outcome::Parked),
                    Admission::Deferred { waiting } => return defer(&engine, &item, waiting).await,
                }
                slots = Some(Held { engine: engine.clone(), keys: run.state.concurrency.clone() });
            }
            let function = engine.registry.get(run.state.function.as_str());
            let first_call = run.state.version == -1 && run.state.done.is_empty();
            if first_call && function.as_ref().is_some_and(|f| f.flow.timeouts.as_ref().is_some_and(|t| t.start.is_some())) {
                engine.started.lock().unwrap_or_else(|e| e.into_inner()).insert(run.id());
            }
            match function.as_ref().and_then(|f| f.config.url().map(str::to_string)) {
                None => Input::FunctionNotFound { target, attempt },
                Some(url) => {
                    let events: Vec<Value> = engine.store.events_by_ids(&run.event_ids).await?.into_iter().map(|e| e.payload).collect();
                    loaded_events = Some(events.clone());
                    let steps = engine.store.run_steps(run.id()).await?;
                    let checkpoint = engine.config.checkpointing.then(|| function.as_ref().map(|f| f.record.uuid.clone())).flatten();
                    let qi = item.id.0.clone();
                    let request = driver::build_request(
                        &run.state,
                        &events,
                        &steps,
                        &target,
                        attempt,
                        checkpoint.as_deref().map(|f| (f, qi.as_str())),
                    );
                    let now = engine.clock.now_ms();
                    let span = tracing::debug_span!("step", step_id = target.step_id(), attempt);
                    let outcome = tracing::Instrument::instrument(
                        driver::call(&engine.http, &url, &request, engine.config.signing_key.as_deref(), now / 1000),
                        span,
                    )
                    .await;
                    tracing::debug!(step_id = target.step_id(), attempt, status = ?outcome.status, reply = reply_kind(&outcome.reply), "called the SDK");
                    extra.push(call_history(run.id(), now, target.step_id(), attempt, &outcome));
                    Input::Reply { target, attempt, reply: outcome.reply, meta: outcome.meta }
                }
            }
        }
        Work::Sleep { step } => Input::SleepDone { step },
        Work::Resume { step, kind: PauseKind::Invoke, value, .. } => Input::InvokeResolved { step, result: value },
        Work::Resume { step, value, .. } => Input::WaitResolved { step, event: value.ok() },
        Work::Timeout { step, pause, kind } => {
            guard = Some(pause);
            match kind {
                PauseKind::Invoke => Input::InvokeResolved { step, result: Err(lifecycle::invoke_timed_out()) },
                _ => Input::WaitResolved { step, event: None },
            }
        }
        Work::StartTimeout => {
            let call_sent = engine.started.lock().unwrap_or_else(|e| e.into_inner()).remove(&run.id());
            Input::StartTimeout { call_sent }
        }
        Work::Cancel => Input::Cancel,
        Work::Debounce { .. } | Work::Batch { .. } | Work::Cron { .. } => unreachable!("handled above"),
    };
    // The run cannot have changed while this item was leased except through
    // the API (cancel, checkpoint); the revision guard catches that.
    let loaded = loaded_events.map(|events| (run, events));
    engine.apply_input_loaded(item.run_id, input, Some(item), guard, extra, loaded).await?;
    drop(slots);
    Ok(Outcome::Done)
}

impl Engine {
    async fn fire_debounce(self: &Arc<Self>, item: &QueueItem, function: &str, key: &str) -> anyhow::Result<Outcome> {
        let (Some(f), Some(d)) = (self.registry.get(function), self.store.debounce(function, key).await?) else {
            return ack(self, item).await;
        };
        let Some(event) = self.store.event(d.event_id).await? else { return ack(self, item).await };
        let mut then = self.run_ops(&f, d.run_id, vec![d.event_id], &event.payload, None, self.clock.now_ms());
        then.push(WriteOp::Ack(item.id.clone()));
        let guard = Guard::TakeDebounce { function: function.to_string(), key: key.to_string(), event_id: d.event_id };
        let out = self.store.commit(Commit { ops: vec![WriteOp::Guarded { guard, then, otherwise: vec![] }] }).await?;
        Ok(if out.guards_passed == [true] { Outcome::Done } else { Outcome::Release })
    }

    async fn fire_batch(self: &Arc<Self>, item: &QueueItem, function: &str) -> anyhow::Result<Outcome> {
        let (Some(f), Some(b)) = (self.registry.get(function), self.store.batch(item.run_id).await?) else { return ack(self, item).await };
        let events = self.store.events_by_ids(&b.event_ids).await?;
        let Some(first) = events.first() else { return ack(self, item).await };
        let mut then = self.run_ops(&f, b.run_id, b.event_ids.clone(), &first.payload, None, self.clock.now_ms());
        then.push(WriteOp::Ack(item.id.clone()));
        let guard = Guard::TakeBatch { run_id: b.run_id, count: b.event_ids.len() };
        let out = self.store.commit(Commit { ops: vec![WriteOp::Guarded { guard, then, otherwise: vec![] }] }).await?;
        Ok(if out.guards_passed == [true] { Outcome::Done } else { Outcome::Release })
    }

    async fn fire_cron(self: &Arc<Self>, item: &QueueItem, function: &str, cron: &str, scheduled_ms: i64) -> anyhow::Result<Outcome> {
        let f = self.registry.get(function);
        let Some(f) = f.filter(|f| f.config.triggers.iter().any(|t| t.cron.as_deref() == Some(cron))) else { return ack(self, item).await };
        let Ok(schedule) = crate::cron::Schedule::parse(cron) else { return ack(self, item).await };
        let now = self.clock.now_ms();
        // Items queued before ticks carried their time: due time = scheduled time.
        let scheduled = if scheduled_ms > 0 { scheduled_ms } else { item.available_at_ms };
        let event = crate::cron::timer_event(cron, scheduled, now);
        let event = ingot_protocol::Event::from_user_json(event, true).map_err(|e| anyhow::anyhow!("timer event: {e}"))?;
        let internal = EventId(Ulid::new());
        let payload = event.to_json();
        let mut ops = vec![
            WriteOp::Ack(item.id.clone()),
            WriteOp::InsertEvent(StoredEvent {
                internal_id: internal,
                name: event.name.clone(),
                payload: payload.clone(),
                received_at_ms: now,
            }),
        ];
        let start = crate::flow::Start {
            function: &f,
            event_id: internal,
            payload: &payload,
            user_id: event.id.as_deref(),
            correlation: None,
            now,
        };
        self.plan_start(start, &mut ops).await?;
        if let Some(next) = schedule.next_after(now.max(scheduled)) {
            ops.push(cron_item(function, cron, next, cron_jitter(&f, cron, next)));
        }
        self.store.commit(Commit { ops }).await?;
        Ok(Outcome::Done)
    }

    /// Makes sure every cron trigger has its next tick queued.
    pub async fn schedule_crons(self: &Arc<Self>) {
        let now = self.clock.now_ms();
        let mut ops = Vec::new();
        for f in self.registry.all() {
            for cron in f.config.triggers.iter().filter_map(|t| t.cron.as_deref()) {
                if let Some(next) = crate::cron::Schedule::parse(cron).ok().and_then(|s| s.next_after(now)) {
                    ops.push(cron_item(f.slug().as_str(), cron, next, cron_jitter(&f, cron, next)));
                }
            }
        }
        if !ops.is_empty() {
            if let Err(e) = self.store.commit(Commit { ops }).await {
                tracing::error!(error = %e, "scheduling cron ticks failed");
            }
        }
    }

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
        self.apply_input_loaded(run_id, input, item, guard, extra, None).await
    }

    /// [`Engine::apply_input`] with the run and its events already read (used
    /// for the first try; a conflict reads them again).
    ///
    /// A decision whose writes keep failing (not a revision conflict, which
    /// just decides again) is tried [`MAX_WRITE_FAILURES`] times; then the run
    /// fails with the error, so no run loops on a write that cannot succeed.
    async fn apply_input_loaded(
        self: &Arc<Self>,
        run_id: RunId,
        input: Input,
        item: Option<QueueItem>,
        guard: Option<String>,
        extra: Vec<WriteOp>,
        mut loaded: Option<(ingot_store::RunRecord, Vec<Value>)>,
    ) -> anyhow::Result<()> {
        let mut input = input;
        let mut failures = 0;
        let mut lifecycle = true;
        for _ in 0..MAX_CONFLICT_RETRIES {
            let mut ops = Vec::new();
            if let Some(it) = &item {
                ops.push(WriteOp::Ack(it.id.clone()));
            }
            let (run, events) = match loaded.take() {
                Some(l) => l,
                None => {
                    let Some(run) = self.store.run(run_id).await? else {
                        self.store.commit(ingot_store::Commit { ops }).await?;
                        return Ok(());
                    };
                    let events = self.store.events_by_ids(&run.event_ids).await?.into_iter().map(|e| e.payload).collect();
                    (run, events)
                }
            };
            if run.status().is_terminal() {
                ops.extend(extra);
                self.store.commit(ingot_store::Commit { ops }).await?;
                return Ok(());
            }
            let policy =
                Policy { retry: self.config.retry, jitter_ms: rand::thread_rng().gen_range(0..=ingot_core::backoff::MAX_JITTER_MS) };
            let now = self.clock.now_ms();
            let decision = decide_with(&run.state, input.clone(), now, policy, &self.registry);
            let ended = decision.state.status.is_terminal();
            let result = match self.carry_out(&run, decision, &events, now, lifecycle).await {
                Ok(mut decided) => {
                    decided.extend(extra.iter().cloned());
                    match &guard {
                        Some(p) => ops.push(WriteOp::Guarded { otherwise: vec![], guard: Guard::ConsumePause(p.clone()), then: decided }),
                        None => ops.extend(decided),
                    }
                    self.store.commit(ingot_store::Commit { ops }).await.map(|_| ()).map_err(anyhow::Error::from)
                }
                Err(e) => Err(e),
            };
            let error = match result {
                Ok(()) => {
                    if ended {
                        self.started.lock().unwrap_or_else(|e| e.into_inner()).remove(&run_id);
                    }
                    return Ok(());
                }
                Err(e) if matches!(e.downcast_ref::<StoreError>(), Some(StoreError::Conflict(_))) => continue,
                Err(e) => e,
            };
            failures += 1;
            tracing::warn!(run_id = %run_id, error = %format!("{error:#}"), failures, "storing a run's next state failed");
            if failures == MAX_WRITE_FAILURES {
                // Fail the run with the error; its lifecycle events go with it.
                input = Input::EngineFailed { message: format!("the engine could not store this run's next state: {error:#}") };
            } else if failures == MAX_WRITE_FAILURES + 1 {
                // Even that failed: end the run without emitting anything.
                lifecycle = false;
            } else if failures > MAX_WRITE_FAILURES + 1 {
                return Err(error.context(format!("run {run_id}: ending the run failed too")));
            } else {
                tokio::time::sleep(Duration::from_millis(50 << failures)).await;
            }
        }
        anyhow::bail!("run {run_id} kept changing; gave up after {MAX_CONFLICT_RETRIES} tries")
    }

    /// The writes of `decision` and of the events it emits (planned like any
    /// other event); without `lifecycle` the emitted events are left out.
    async fn carry_out(
        self: &Arc<Self>,
        run: &ingot_store::RunRecord,
        decision: Decision,
        events: &[Value],
        now: i64,
        lifecycle: bool,
    ) -> anyhow::Result<Vec<WriteOp>> {
        let planned = crate::effects::decision_ops(run, decision, events, now)?;
        let mut ops = planned.ops;
        if lifecycle && !planned.emit.is_empty() {
            ops.extend(self.plan_events(planned.emit, None).await?.ops);
        }
        Ok(ops)
    }
}

/// The kind of a queue item, for spans and logs.
fn work_kind(work: &Work) -> &'static str {
    match work {
        Work::Call { .. } => "call",
        Work::Sleep { .. } => "sleep",
        Work::Resume { .. } => "resume",
        Work::Timeout { .. } => "timeout",
        Work::Cancel => "cancel",
        Work::StartTimeout => "start_timeout",
        Work::Debounce { .. } => "debounce",
        Work::Batch { .. } => "batch",
        Work::Cron { .. } => "cron",
    }
}

/// What an SDK reply was, for logs: `done`, `ops: StepRun, Sleep`, `error 500`, `invalid`.
fn reply_kind(reply: &Reply) -> String {
    match reply {
        Reply::Done(_) => "done".into(),
        Reply::Ops(ops) => format!("ops: {}", ops.iter().take(8).map(|o| o.op.as_str()).collect::<Vec<_>>().join(", ")),
        Reply::Error { status, .. } => format!("error {status}"),
        Reply::Invalid(_) => "invalid".into(),
    }
}

/// Records one SDK call in the run's history.
pub fn call_history(run_id: RunId, now: i64, target: &str, attempt: u32, outcome: &driver::CallOutcome) -> WriteOp {
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

/// The queue item of a cron tick: one per function and expression.
/// The trigger's `jitter` for the tick scheduled at `at`: deterministic, below the
/// configured maximum (Inngest allows 1 s to 5 m).
fn cron_jitter(f: &crate::registry::Function, cron: &str, at: i64) -> i64 {
    let max = f
        .config
        .triggers
        .iter()
        .find(|t| t.cron.as_deref() == Some(cron))
        .and_then(|t| t.jitter.as_deref())
        .and_then(|j| ingot_protocol::timestr::parse_duration(j).ok())
        .map(|d| (d.as_millis() as i64).min(300_000))
        .unwrap_or(0);
    crate::cron::jitter_ms(f.slug().as_str(), at, max)
}

/// `at` is the scheduled time; the item falls due `jitter_ms` later.
fn cron_item(function: &str, cron: &str, at: i64, jitter_ms: i64) -> WriteOp {
    let work = Work::Cron { function: function.to_string(), cron: cron.to_string(), scheduled_ms: at };
    WriteOp::Enqueue(QueueItem {
        dedupe: Some(ingot_core::keys::cron_tick(function, cron)),
        ..QueueItem::new(RunId(Ulid::new()), work, at + jitter_ms)
    })
}
