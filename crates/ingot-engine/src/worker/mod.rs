//! The worker: claims due queue items, turns each into an input for the
//! core, and commits the decision together with the item's ack
//! ([`apply`]); timers that start runs (debounce, batch, cron) fire in
//! [`fire`].

mod apply;
mod cache;
mod fire;

use std::sync::Arc;
use std::time::Duration;

use ingot_core::flow::ConcurrencyKey;
use ingot_core::lifecycle;
use ingot_core::{Input, Reply, RunId};
use ingot_store::{Claimed, HistoryRecord, PauseKind, QueueItem, Work, WriteOp};
use serde_json::{json, Value};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::driver;
use crate::error::Result;
use crate::ingest::Ingest;
use crate::limiter::{Admission, Limiter, MAX_PARKED};
use crate::shared::Shared;
use crate::starter::Starter;

/// Runs queued work.
pub struct Worker {
    shared: Arc<Shared>,
    ingest: Arc<Ingest>,
    starter: Arc<Starter>,
    limiter: Limiter,
    /// At most this many items are processed at once.
    slots: Arc<Semaphore>,
    /// Runs as their last decision left them, for their next call.
    cache: cache::RunCache,
}

/// How long a call waits before it asks again for a concurrency slot held on
/// another node.
const SHARED_SLOT_RETRY: i64 = 100;
/// How long the head of a node's line waits for a shared slot before it is
/// queued again (freeing its worker).
const SHARED_SLOT_PATIENCE: Duration = Duration::from_secs(10);

/// What processing an item came to.
enum Outcome {
    /// Committed (acked, or moved on).
    Done,
    /// Waiting in the limiter, still leased.
    Parked,
    /// Not acked: give the lease back now.
    Release,
}

impl Worker {
    pub fn new(shared: Arc<Shared>, ingest: Arc<Ingest>, starter: Arc<Starter>) -> Worker {
        let workers = shared.config.workers.max(1);
        Worker { shared, ingest, starter, limiter: Limiter::default(), slots: Arc::new(Semaphore::new(workers)), cache: Default::default() }
    }

    /// Cancels a run now: the decision is committed before this returns.
    pub async fn cancel(&self, run_id: RunId) -> Result<()> {
        self.apply(run_id, Input::Cancel).await
    }

    /// Claims due work and runs it, until shutdown.
    pub async fn dispatch(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let store = &self.shared.store;
        let notify = store.work_notify();
        crate::cron::schedule_all(&self.shared).await;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let free = self.slots.available_permits().min(256);
            let claim = if free == 0 || self.limiter.parked() >= MAX_PARKED {
                None
            } else {
                match store.claim(self.shared.clock.now_ms(), free).await {
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
                let claimed_at = self.shared.clock.now_ms();
                for item in claim.items {
                    self.shared.claimed(item.available_at_ms, claimed_at);
                    let Ok(permit) = self.slots.clone().acquire_owned().await else { return };
                    self.clone().spawn_item(item, permit, None);
                }
                if full {
                    continue;
                }
                sleep_for = match claim.next_at_ms {
                    Some(next) => Duration::from_millis((next - self.shared.clock.now_ms()).clamp(0, 60_000) as u64),
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

    fn spawn_item(self: Arc<Self>, item: Claimed, permit: OwnedSemaphorePermit, held: Option<Vec<ConcurrencyKey>>) {
        tokio::spawn(async move {
            let lease = item.lease.clone();
            let store = self.shared.store.clone();
            let span = tracing::debug_span!("run", run_id = %item.run_id, function = tracing::field::Empty, work = work_kind(&item.work));
            let result = tokio::spawn(tracing::Instrument::instrument(self.process(item, held), span)).await;
            let id = &lease.item.0;
            let give_back = match result {
                Ok(Ok(Outcome::Done)) | Ok(Ok(Outcome::Parked)) => false,
                Ok(Ok(Outcome::Release)) => true,
                Ok(Err(e)) if e.is_lease_lost() => {
                    // Another claim holds the item now (this node's lease ran out): its result is theirs.
                    tracing::warn!(error = %e, item = %id, "lease lost; the item's result was dropped");
                    false
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, item = %id, "work item failed; it will be retried");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    true
                }
                Err(e) => {
                    tracing::error!(error = %e, item = %id, "work item panicked; it will be retried");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    true
                }
            };
            if give_back {
                if let Err(e) = store.release(&lease).await {
                    tracing::debug!(error = %e, item = %id, "the item was not released");
                }
            }
            drop(permit);
            store.work_notify().notify_one();
        });
    }

    async fn ack(&self, item: &Claimed) -> Result<Outcome> {
        self.shared.commit(vec![WriteOp::Ack(item.lease.clone())]).await?;
        Ok(Outcome::Done)
    }

    /// Puts a call whose concurrency line is full back in the queue, later the
    /// longer the line (10 ms per waiting call, 1 s to 60 s), so other work is
    /// claimed meanwhile.
    async fn defer(&self, item: &Claimed, waiting: usize) -> Result<Outcome> {
        let delay = (waiting as i64).saturating_mul(10).clamp(1_000, 60_000);
        self.retry_later(item, delay).await
    }

    /// Acks the item and queues it again `delay` ms from now.
    async fn retry_later(&self, item: &Claimed, delay: i64) -> Result<Outcome> {
        let delay = delay + rand::random::<u16>() as i64 % (delay / 4 + 1);
        let now = self.shared.clock.now_ms();
        let later = QueueItem { dedupe: item.dedupe.clone(), ..QueueItem::new(item.run_id, item.work.clone(), now + delay) };
        self.shared.commit(vec![WriteOp::Ack(item.lease.clone()), WriteOp::Enqueue(later)]).await?;
        Ok(Outcome::Done)
    }

    /// Loads what the item needs, makes the SDK call if it is one, and hands
    /// the outcome to [`Worker::decide_for`].
    async fn process(self: Arc<Self>, item: Claimed, held: Option<Vec<ConcurrencyKey>>) -> Result<Outcome> {
        match item.work.clone() {
            Work::Debounce { function, key } => return self.fire_debounce(&item, &function, &key).await,
            Work::Batch { function, .. } => return self.fire_batch(&item, &function).await,
            Work::Cron { function, cron, scheduled_ms } => return self.fire_cron(&item, &function, &cron, scheduled_ms).await,
            _ => {}
        }
        let shared = &self.shared;
        // Kept by the decision that queued this item, if the run is still at
        // the revision the claim saw (a parked call's claim may be old: read).
        let cached = match (item.run_rev, &held) {
            (Some(rev), None) => self.cache.take(item.run_id, rev),
            _ => None,
        };
        let run = match &cached {
            Some(c) => c.run.clone(),
            None => match shared.store.run(item.run_id).await? {
                Some(run) => run,
                None => return self.ack(&item).await,
            },
        };
        tracing::Span::current().record("function", run.state.function.as_str());
        let _held = held.map(|keys| Held { worker: self.clone(), keys });
        if run.status().is_terminal() {
            return self.ack(&item).await;
        }
        let mut guard = None;
        let mut extra = Vec::new();
        let mut loaded: Option<cache::CallState> = None;
        let mut slots = None;
        let input = match item.work.clone() {
            Work::Call { target, attempt } => {
                if _held.is_none() && !run.state.concurrency.is_empty() {
                    // This node's waiting line, in priority order.
                    match self.limiter.admit(&item, &run.state.concurrency) {
                        Admission::Acquired => {}
                        Admission::Parked => return Ok(Outcome::Parked),
                        Admission::Deferred { waiting } => return self.defer(&item, waiting).await,
                    }
                    slots = Some(Held { worker: self.clone(), keys: run.state.concurrency.clone() });
                }
                if !run.state.concurrency.is_empty() && shared.store.shared_by_nodes() {
                    // Several nodes share the limit: the slots are rows in the store.
                    // The head of this node's line asks again until one is free (the
                    // others stay parked behind it, in order); after a while it
                    // gives its place back and is queued again.
                    let since = std::time::Instant::now();
                    while !shared.store.take_slots(&item.lease, &run.state.concurrency).await? {
                        if since.elapsed() > SHARED_SLOT_PATIENCE {
                            drop(slots.take());
                            return self.retry_later(&item, SHARED_SLOT_RETRY).await;
                        }
                        tokio::time::sleep(Duration::from_millis(SHARED_SLOT_RETRY as u64)).await;
                    }
                }
                let function = shared.registry.get(run.state.function.as_str());
                let first_call = run.state.version == -1 && run.state.done.is_empty();
                if first_call && function.as_ref().is_some_and(|f| f.flow.timeouts.as_ref().is_some_and(|t| t.start.is_some())) {
                    // Stored before the call, so a start timeout on any node sees the run started.
                    shared.commit(vec![started_marker(run.id(), shared.clock.now_ms())]).await?;
                }
                match function.as_ref().and_then(|f| f.config.url().map(str::to_string)) {
                    None => Input::FunctionNotFound { target, attempt },
                    Some(url) => {
                        let (events, events_bytes, steps) = match &cached {
                            Some(c) => (c.events.clone(), c.events_bytes, c.steps.clone()),
                            None => {
                                let events: Vec<Value> =
                                    shared.store.events_by_ids(&run.event_ids).await?.into_iter().map(|e| e.payload).collect();
                                let bytes = cache::json_bytes(&events);
                                (Arc::new(events), bytes, Arc::new(shared.store.run_steps(run.id()).await?))
                            }
                        };
                        let checkpoint = shared.config.checkpointing.then(|| function.as_ref().map(|f| f.record.uuid.clone())).flatten();
                        let qi = item.id.0.clone();
                        let request = driver::build_request(
                            &run.state,
                            &events,
                            &steps,
                            &target,
                            attempt,
                            checkpoint.as_deref().map(|f| (f, qi.as_str())),
                        );
                        let now = shared.clock.now_ms();
                        let started = std::time::SystemTime::now();
                        let span = tracing::debug_span!("step", step_id = target.step_id(), attempt);
                        let outcome = tracing::Instrument::instrument(
                            driver::call(&shared.http, &url, &request, shared.config.signing_key.as_deref(), now / 1000),
                            span,
                        )
                        .await;
                        tracing::debug!(step_id = target.step_id(), attempt, status = ?outcome.status, reply = reply_kind(&outcome.reply), "called the SDK");
                        shared.observe_call(&run, &events, target.step_id(), attempt, started, &outcome);
                        extra.push(call_history(run.id(), now, target.step_id(), attempt, &outcome));
                        // step.fetch / step.ai.infer ops: the engine makes their requests.
                        let (gateway, history) = shared.gateway.perform(&run.state, &outcome.reply, shared.clock.now_ms()).await;
                        extra.extend(history);
                        loaded = Some(cache::CallState { run: run.clone(), events, events_bytes, steps });
                        Input::Reply { target, attempt, reply: outcome.reply, meta: outcome.meta, gateway }
                    }
                }
            }
            Work::Sleep { step } => Input::SleepDone { step },
            Work::Resume { step, kind: PauseKind::Invoke, value, .. } => Input::InvokeResolved { step, result: value },
            Work::Resume { step, kind: PauseKind::Signal, value, .. } => Input::SignalResolved { step, result: Some(value) },
            Work::Resume { step, value, .. } => Input::WaitResolved { step, event: value.ok() },
            Work::Timeout { step, pause, kind } => {
                guard = Some(pause);
                match kind {
                    PauseKind::Invoke => Input::InvokeResolved { step, result: Err(lifecycle::invoke_timed_out()) },
                    PauseKind::Signal => Input::SignalResolved { step, result: None },
                    _ => Input::WaitResolved { step, event: None },
                }
            }
            Work::StartTimeout => {
                let call_sent = shared.store.run_history(run.id()).await?.iter().any(|h| h.kind == STARTED);
                Input::StartTimeout { call_sent }
            }
            Work::Cancel => Input::Cancel,
            Work::Debounce { .. } | Work::Batch { .. } | Work::Cron { .. } => unreachable!("handled above"),
        };
        // The run cannot have changed while this item was leased except through
        // the API (cancel, checkpoint); the revision guard catches that.
        drop(run);
        let run_id = item.run_id;
        self.decide_for(run_id, apply::Pending { input, item: Some(item), guard, extra }, loaded).await?;
        drop(slots);
        Ok(Outcome::Done)
    }
}

/// Concurrency slots held for one call; released (admitting parked calls) on drop.
struct Held {
    worker: Arc<Worker>,
    keys: Vec<ConcurrencyKey>,
}

impl Drop for Held {
    fn drop(&mut self) {
        for (item, keys) in self.worker.limiter.release(&self.keys) {
            let worker = self.worker.clone();
            tokio::spawn(async move {
                if let Ok(permit) = worker.slots.clone().acquire_owned().await {
                    worker.spawn_item(item, permit, Some(keys));
                }
            });
        }
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

/// The history kind that says a run's first call was sent.
const STARTED: &str = "started";

/// The history line stored before a run's first call when a start timeout
/// watches it.
fn started_marker(run_id: RunId, now: i64) -> WriteOp {
    WriteOp::History(HistoryRecord {
        run_id,
        at_ms: now,
        kind: STARTED.into(),
        step: None,
        name: None,
        attempt: None,
        duration_ms: None,
        detail: Value::Null,
    })
}

/// Records one SDK call in the run's history.
pub fn call_history(run_id: RunId, now: i64, target: &str, attempt: u32, outcome: &driver::CallOutcome) -> WriteOp {
    let summary = match &outcome.reply {
        Reply::Done(_) => json!({"result": "completed"}),
        Reply::Ops(ops) => {
            // A failed try's error is kept with it, so every attempt shows its own.
            let op = |o: &ingot_protocol::Op| match &o.error {
                Some(error) => json!({"op": o.op.as_str(), "id": o.id, "name": o.display(), "error": error}),
                None => json!({"op": o.op.as_str(), "id": o.id, "name": o.display()}),
            };
            json!({"result": "ops", "ops": ops.iter().map(op).collect::<Vec<_>>()})
        }
        Reply::Error { status, error } => {
            json!({"result": "error", "status": status, "error": error})
        }
        Reply::Invalid(reason) => json!({"result": "invalid", "error": reason}),
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
