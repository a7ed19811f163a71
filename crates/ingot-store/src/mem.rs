//! An in-memory store: the reference implementation the conformance suite
//! pins down, and a fast backend for tests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ingot_core::{EventId, RunId, RunStatus};
use tokio::sync::Notify;

use crate::records::*;
use crate::{CallSample, Claim, Claimed, Lease, QueueDepth, Result, Store, StoreError};

#[derive(Default)]
struct Inner {
    apps: BTreeMap<String, AppRecord>,
    functions: BTreeMap<String, FunctionRecord>,
    events: BTreeMap<EventId, StoredEvent>,
    runs: HashMap<RunId, RunRecord>,
    run_events: HashMap<EventId, Vec<RunId>>,
    steps: HashMap<RunId, Vec<StepRecord>>,
    history: HashMap<RunId, Vec<HistoryRecord>>,
    queue: BTreeMap<QueueItemId, QueueItem>,
    dedupe: HashMap<String, QueueItemId>,
    inflight: crate::leases::LocalLeases,
    pauses: BTreeMap<String, Pause>,
    keys: HashMap<(String, String), i64>,
    limiters: HashMap<String, i64>,
    debounces: HashMap<(String, String), DebounceRecord>,
    batches: HashMap<RunId, BatchRecord>,
    open_batches: HashMap<(String, String), RunId>,
    skips: Vec<SkipRecord>,
    singletons: HashMap<(String, String), RunId>,
    paused: std::collections::BTreeSet<String>,
    sessions: HashMap<String, SessionRecord>,
}

impl Inner {
    /// The runs `filter` admits, newest first, at most its limit.
    fn filtered_runs(&self, filter: &RunFilter) -> Vec<&RunRecord> {
        let called = |id: &RunId| self.history.get(id).is_some_and(|h| h.iter().any(|h| CALLED_KINDS.contains(&h.kind.as_str())));
        let mut runs: Vec<&RunRecord> = self
            .runs
            .values()
            .filter(|r| filter.admits(r))
            .filter(|r| match filter.progress {
                None => true,
                Some(RunProgress::Queued) => r.status() == RunStatus::Running && !called(&r.id()),
                Some(RunProgress::Called) => called(&r.id()),
            })
            .collect();
        runs.sort_by_key(|r| std::cmp::Reverse(r.id()));
        runs.truncate(if filter.limit == 0 { usize::MAX } else { filter.limit });
        runs
    }
}

fn put_item(inner: &mut Inner, item: QueueItem, enqueued: &mut bool) {
    *enqueued = true;
    inner.queue.insert(item.id.clone(), item);
}

/// Everything in a mutex; commits are atomic because they hold it.
#[derive(Default)]
pub struct MemStore {
    inner: Mutex<Inner>,
    notify: Arc<Notify>,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn check_revs(inner: &Inner, ops: &[WriteOp]) -> Result<()> {
    for op in ops {
        match op {
            WriteOp::UpdateRun { run, expected_rev } => {
                let current = inner.runs.get(&run.id()).map(|r| r.rev);
                if current != Some(*expected_rev) {
                    return Err(StoreError::Conflict(format!("run {} changed (rev {current:?}, expected {expected_rev})", run.id())));
                }
            }
            WriteOp::Guarded { then, otherwise, .. } => {
                check_revs(inner, then)?;
                check_revs(inner, otherwise)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn apply(inner: &mut Inner, op: WriteOp, out: &mut CommitOutcome, enqueued: &mut bool) {
    match op {
        WriteOp::UpsertApp(app) => {
            inner.apps.insert(app.id.clone(), app);
        }
        WriteOp::SyncFunctions { app_id, functions } => {
            let keep: HashSet<String> = functions.iter().map(|f| f.slug.0.clone()).collect();
            for f in inner.functions.values_mut() {
                if f.app_id == app_id && !keep.contains(&f.slug.0) {
                    f.archived = true;
                }
            }
            for f in functions {
                inner.functions.insert(f.slug.0.clone(), f);
            }
        }
        WriteOp::SetAppError { app_id, error } => {
            if let Some(a) = inner.apps.get_mut(&app_id) {
                a.error = error;
            }
        }
        WriteOp::InsertEvent(e) => {
            inner.events.insert(e.internal_id, e);
        }
        WriteOp::InsertRun(run) => {
            for e in &run.event_ids {
                inner.run_events.entry(*e).or_default().push(run.id());
            }
            inner.runs.insert(run.id(), run);
        }
        WriteOp::UpdateRun { mut run, .. } => {
            run.rev += 1;
            inner.runs.insert(run.id(), run);
        }
        WriteOp::SaveStep(mut s) => {
            let steps = inner.steps.entry(s.run_id).or_default();
            if !steps.iter().any(|x| x.step == s.step) {
                s.seq = steps.len() as i64 + 1;
                steps.push(s);
            }
        }
        WriteOp::Enqueue(item) => {
            if let Some(key) = &item.dedupe {
                if inner.dedupe.contains_key(key) {
                    return;
                }
                inner.dedupe.insert(key.clone(), item.id.clone());
            }
            *enqueued = true;
            inner.queue.insert(item.id.clone(), item);
        }
        WriteOp::Ack(lease) => {
            if let Some(item) = inner.queue.remove(&lease.item) {
                if let Some(k) = item.dedupe {
                    inner.dedupe.remove(&k);
                }
            }
            inner.inflight.end(&lease);
        }
        WriteOp::InsertPause(p) => {
            inner.pauses.insert(p.id.clone(), p);
        }
        WriteOp::ClearRunWork(run_id) => {
            let ids: Vec<QueueItemId> = inner.queue.values().filter(|q| q.run_id == run_id).map(|q| q.id.clone()).collect();
            for id in ids {
                if let Some(item) = inner.queue.remove(&id) {
                    if let Some(k) = item.dedupe {
                        inner.dedupe.remove(&k);
                    }
                }
            }
            inner.pauses.retain(|_, p| p.run_id != run_id);
        }
        WriteOp::History(h) => inner.history.entry(h.run_id).or_default().push(h),
        WriteOp::Throttled { name, now_ms, limit, period_ms, burst, mut item } => {
            let g = ingot_core::flow::gcra(inner.limiters.get(&name).copied(), now_ms, limit, period_ms, burst);
            inner.limiters.insert(name, g.new_tat_ms);
            item.available_at_ms = item.available_at_ms.max(g.earliest_ms);
            put_item(inner, item, enqueued);
        }
        WriteOp::Debounce { function, key, event_id, run_id, now_ms, period_ms, timeout_ms } => {
            let k = (function.clone(), key.clone());
            let rec = match inner.debounces.get(&k) {
                Some(d) => DebounceRecord {
                    event_id,
                    fire_ms: ingot_core::flow::debounce_fire_at(d.first_ms, now_ms, period_ms, timeout_ms),
                    ..d.clone()
                },
                None => DebounceRecord {
                    function: function.clone(),
                    key: key.clone(),
                    run_id,
                    event_id,
                    first_ms: now_ms,
                    fire_ms: ingot_core::flow::debounce_fire_at(now_ms, now_ms, period_ms, timeout_ms),
                },
            };
            let item = QueueItem {
                id: QueueItemId(format!("debounce:{function}:{key}")),
                run_id: rec.run_id,
                work: Work::Debounce { function, key },
                available_at_ms: rec.fire_ms,
                dedupe: None,
            };
            inner.debounces.insert(k, rec);
            put_item(inner, item, enqueued);
        }
        WriteOp::AppendBatch { function, key, event_id, run_id, now_ms, max_size, timeout_ms } => {
            let k = (function.clone(), key.clone());
            let open = inner.open_batches.get(&k).copied();
            let rid = match open {
                Some(r) => r,
                None => {
                    inner.batches.insert(
                        run_id,
                        BatchRecord { function: function.clone(), key: key.clone(), run_id, event_ids: Vec::new(), first_ms: now_ms },
                    );
                    inner.open_batches.insert(k.clone(), run_id);
                    let item = QueueItem {
                        id: QueueItemId(format!("batch:{run_id}")),
                        run_id,
                        work: Work::Batch { function, key },
                        available_at_ms: now_ms + timeout_ms,
                        dedupe: None,
                    };
                    put_item(inner, item, enqueued);
                    run_id
                }
            };
            let full = {
                let b = inner.batches.get_mut(&rid).expect("open batch exists");
                b.event_ids.push(event_id);
                b.event_ids.len() >= max_size
            };
            if full {
                inner.open_batches.remove(&k);
                let id = QueueItemId(format!("batch:{rid}"));
                if let Some(item) = inner.queue.get_mut(&id) {
                    item.available_at_ms = now_ms;
                    *enqueued = true;
                }
            }
        }
        WriteOp::Skip(skip) => inner.skips.push(skip),
        WriteOp::Purge { now_ms, before_ms, limit } => {
            let p = purge(inner, now_ms, before_ms, limit);
            out.purged.runs += p.runs;
            out.purged.events += p.events;
            out.purged.expired += p.expired;
            out.purged.more |= p.more;
        }
        WriteOp::InsertSession(session) => {
            inner.sessions.insert(session.id.clone(), session);
        }
        WriteOp::DeleteSession(id) => {
            inner.sessions.remove(&id);
        }
        WriteOp::SetPaused { slug, paused } => {
            if paused {
                inner.paused.insert(slug);
            } else {
                inner.paused.remove(&slug);
            }
        }
        WriteOp::SetSingleton { scope, key, run_id } => {
            inner.singletons.insert((scope, key), run_id);
        }
        WriteOp::ReplaceSingleton { scope, key, run_id, now_ms } => {
            if let Some(holder) = inner.singletons.insert((scope, key), run_id).filter(|h| *h != run_id) {
                apply(inner, WriteOp::Enqueue(QueueItem::new(holder, Work::Cancel, now_ms)), out, enqueued);
            }
        }
        WriteOp::Guarded { guard, then, otherwise } => {
            let passed = match guard {
                Guard::ConsumePause(id) => inner.pauses.remove(&id).is_some(),
                Guard::ClaimSignal { signal, replace, now_ms } => {
                    let holder = inner
                        .pauses
                        .values_mut()
                        .find(|p| p.kind == PauseKind::Signal && p.correlation_id.as_deref() == Some(signal.as_str()));
                    match holder {
                        None => true,
                        Some(p) if replace || p.expires_at_ms < now_ms => {
                            p.correlation_id = None;
                            true
                        }
                        Some(_) => false,
                    }
                }
                Guard::UniqueKey { scope, key, now_ms, expires_at_ms } => {
                    let k = (scope, key);
                    match inner.keys.get(&k) {
                        Some(exp) if *exp > now_ms => false,
                        _ => {
                            inner.keys.insert(k, expires_at_ms);
                            true
                        }
                    }
                }
                Guard::RateLimit { name, now_ms, limit, period_ms } => {
                    let g = ingot_core::flow::rate_limit_gcra(inner.limiters.get(&name).copied(), now_ms, limit, period_ms);
                    if g.earliest_ms <= now_ms {
                        inner.limiters.insert(name, g.new_tat_ms);
                        true
                    } else {
                        false
                    }
                }
                Guard::TakeBatch { run_id, count } => {
                    let ok = inner.batches.get(&run_id).is_some_and(|b| b.event_ids.len() == count);
                    if ok {
                        if let Some(b) = inner.batches.remove(&run_id) {
                            let k = (b.function, b.key);
                            if inner.open_batches.get(&k) == Some(&run_id) {
                                inner.open_batches.remove(&k);
                            }
                        }
                    }
                    ok
                }
                Guard::TakeDebounce { function, key, event_id } => {
                    let k = (function, key);
                    let ok = inner.debounces.get(&k).is_some_and(|d| d.event_id == event_id);
                    if ok {
                        inner.debounces.remove(&k);
                    }
                    ok
                }
                Guard::Singleton { scope, key, run_id } => {
                    let k = (scope, key);
                    let free = match inner.singletons.get(&k) {
                        Some(holder) => inner.runs.get(holder).is_none_or(|r| r.status().is_terminal()),
                        None => true,
                    };
                    if free {
                        inner.singletons.insert(k, run_id);
                    }
                    free
                }
            };
            out.guards_passed.push(passed);
            for op in if passed { then } else { otherwise } {
                apply(inner, op, out, enqueued);
            }
        }
    }
}

/// Removes up to `limit` entries of `map` that `dead` picks; returns how many.
fn drop_some<K: Clone + Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>, limit: usize, dead: impl Fn(&V) -> bool) -> usize {
    let gone: Vec<K> = map.iter().filter(|(_, v)| dead(v)).map(|(k, _)| k.clone()).take(limit).collect();
    for k in &gone {
        map.remove(k);
    }
    gone.len()
}

/// One retention pass, as [`WriteOp::Purge`] describes it.
fn purge(inner: &mut Inner, now_ms: i64, before_ms: i64, limit: usize) -> Purged {
    let mut old: Vec<&RunRecord> =
        inner.runs.values().filter(|r| r.status().is_terminal() && r.ended_at_ms.is_some_and(|t| t < before_ms)).collect();
    old.sort_by_key(|r| r.ended_at_ms);
    let old: Vec<RunId> = old.into_iter().take(limit).map(|r| r.id()).collect();
    for id in &old {
        let Some(run) = inner.runs.remove(id) else { continue };
        inner.steps.remove(id);
        inner.history.remove(id);
        for e in &run.event_ids {
            if let Some(runs) = inner.run_events.get_mut(e) {
                runs.retain(|r| r != id);
                if runs.is_empty() {
                    inner.run_events.remove(e);
                }
            }
        }
        let items: Vec<QueueItemId> = inner.queue.values().filter(|q| q.run_id == *id).map(|q| q.id.clone()).collect();
        for item in items {
            if let Some(k) = inner.queue.remove(&item).and_then(|q| q.dedupe) {
                inner.dedupe.remove(&k);
            }
        }
        inner.pauses.retain(|_, p| p.run_id != *id);
        inner.singletons.retain(|_, holder| holder != id);
        if let Some(b) = inner.batches.remove(id) {
            let k = (b.function, b.key);
            if inner.open_batches.get(&k) == Some(id) {
                inner.open_batches.remove(&k);
            }
        }
    }
    let debounced: HashSet<EventId> = inner.debounces.values().map(|d| d.event_id).collect();
    let gone: Vec<EventId> = inner
        .events
        .values()
        .filter(|e| e.received_at_ms < before_ms && !inner.run_events.contains_key(&e.internal_id) && !debounced.contains(&e.internal_id))
        .map(|e| e.internal_id)
        .take(limit)
        .collect();
    for e in &gone {
        inner.events.remove(e);
    }
    let keys = drop_some(&mut inner.keys, limit, |exp| *exp <= now_ms);
    let limiters = drop_some(&mut inner.limiters, limit, |tat| *tat <= now_ms);
    let sessions = drop_some(&mut inner.sessions, limit, |s| s.expires_at_ms <= now_ms);
    let skips_before = inner.skips.len();
    let mut dropped = 0;
    inner.skips.retain(|s| {
        let old = s.at_ms < before_ms && dropped < limit;
        dropped += usize::from(old);
        !old
    });
    let skips = skips_before - inner.skips.len();
    let more = limit > 0 && [old.len(), gone.len(), keys, limiters, sessions, skips].iter().any(|n| *n >= limit);
    Purged { runs: old.len(), events: gone.len(), expired: keys + limiters + sessions + skips, more }
}

#[async_trait]
impl Store for MemStore {
    async fn commit(&self, commit: Commit) -> Result<CommitOutcome> {
        let mut out = CommitOutcome::default();
        let mut enqueued = false;
        {
            let mut inner = self.lock();
            check_revs(&inner, &commit.ops)?;
            let queue = &inner.queue;
            inner.inflight.check_acks(&commit.ops, |id| Ok(queue.contains_key(id)))?;
            for op in commit.ops {
                apply(&mut inner, op, &mut out, &mut enqueued);
            }
        }
        if enqueued {
            self.notify.notify_one();
        }
        Ok(out)
    }

    async fn claim(&self, now_ms: i64, limit: usize) -> Result<Claim> {
        let mut inner = self.lock();
        let mut due: Vec<&QueueItem> = inner.queue.values().filter(|q| !inner.inflight.holds(&q.id)).collect();
        due.sort_by(|a, b| (a.available_at_ms, &a.id).cmp(&(b.available_at_ms, &b.id)));
        let mut taken = Vec::new();
        let mut next_at_ms = None;
        for q in due {
            if q.available_at_ms <= now_ms && taken.len() < limit {
                taken.push(q.clone());
            } else {
                next_at_ms = Some(q.available_at_ms.max(now_ms));
                break;
            }
        }
        let items = taken
            .into_iter()
            .map(|item| {
                let run_rev = inner.runs.get(&item.run_id).map(|r| r.rev);
                Claimed { lease: inner.inflight.take(&item.id), run_rev, item }
            })
            .collect();
        Ok(Claim { items, next_at_ms })
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        let released = self.lock().inflight.release(lease);
        self.notify.notify_one();
        released
    }

    fn work_notify(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    async fn apps(&self) -> Result<Vec<AppRecord>> {
        Ok(self.lock().apps.values().cloned().collect())
    }

    async fn functions(&self, include_archived: bool) -> Result<Vec<FunctionRecord>> {
        Ok(self.lock().functions.values().filter(|f| include_archived || !f.archived).cloned().collect())
    }

    async fn run(&self, id: RunId) -> Result<Option<RunRecord>> {
        Ok(self.lock().runs.get(&id).cloned())
    }

    async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        let inner = self.lock();
        Ok(inner.filtered_runs(filter).into_iter().cloned().collect())
    }

    async fn count_runs(&self, filter: &RunFilter) -> Result<u64> {
        Ok(self.lock().filtered_runs(filter).len() as u64)
    }

    async fn runs_for_event(&self, id: EventId) -> Result<Vec<RunRecord>> {
        let inner = self.lock();
        let ids = inner.run_events.get(&id).cloned().unwrap_or_default();
        Ok(ids.iter().filter_map(|r| inner.runs.get(r).cloned()).collect())
    }

    async fn run_steps(&self, id: RunId) -> Result<Vec<StepRecord>> {
        Ok(self.lock().steps.get(&id).cloned().unwrap_or_default())
    }

    async fn run_history(&self, id: RunId) -> Result<Vec<HistoryRecord>> {
        Ok(self.lock().history.get(&id).cloned().unwrap_or_default())
    }

    async fn run_items(&self, id: RunId) -> Result<Vec<QueueItem>> {
        Ok(self.lock().queue.values().filter(|q| q.run_id == id).cloned().collect())
    }

    async fn event(&self, id: EventId) -> Result<Option<StoredEvent>> {
        Ok(self.lock().events.get(&id).cloned())
    }

    async fn events_by_ids(&self, ids: &[EventId]) -> Result<Vec<StoredEvent>> {
        let inner = self.lock();
        Ok(ids.iter().filter_map(|i| inner.events.get(i).cloned()).collect())
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
        let inner = self.lock();
        let limit = if filter.limit == 0 { usize::MAX } else { filter.limit };
        Ok(inner.events.values().rev().filter(|e| filter.admits(e)).take(limit).cloned().collect())
    }

    async fn count_events(&self, filter: &EventFilter) -> Result<u64> {
        let inner = self.lock();
        let limit = if filter.limit == 0 { usize::MAX } else { filter.limit };
        Ok(inner.events.values().rev().filter(|e| filter.admits(e)).take(limit).count() as u64)
    }

    async fn pauses_for_event(&self, name: &str) -> Result<Vec<Pause>> {
        Ok(self.lock().pauses.values().filter(|p| p.event_name.as_deref() == Some(name)).cloned().collect())
    }

    async fn pause_by_correlation(&self, correlation_id: &str) -> Result<Option<Pause>> {
        Ok(self.lock().pauses.values().find(|p| p.correlation_id.as_deref() == Some(correlation_id)).cloned())
    }

    async fn pauses_for_run(&self, id: RunId) -> Result<Vec<Pause>> {
        Ok(self.lock().pauses.values().filter(|p| p.run_id == id).cloned().collect())
    }

    async fn debounce(&self, function: &str, key: &str) -> Result<Option<DebounceRecord>> {
        Ok(self.lock().debounces.get(&(function.to_string(), key.to_string())).cloned())
    }

    async fn batch(&self, run_id: RunId) -> Result<Option<BatchRecord>> {
        Ok(self.lock().batches.get(&run_id).cloned())
    }

    async fn skips(&self, function: Option<&str>, limit: usize) -> Result<Vec<SkipRecord>> {
        let inner = self.lock();
        let limit = if limit == 0 { usize::MAX } else { limit };
        Ok(inner.skips.iter().rev().filter(|s| function.is_none_or(|f| s.function == f)).take(limit).cloned().collect())
    }

    async fn skips_for_event(&self, id: EventId) -> Result<Vec<SkipRecord>> {
        Ok(self.lock().skips.iter().filter(|s| s.event_id == id).cloned().collect())
    }

    async fn paused_functions(&self) -> Result<Vec<String>> {
        Ok(self.lock().paused.iter().cloned().collect())
    }

    async fn singleton_holder(&self, scope: &str, key: &str) -> Result<Option<RunId>> {
        Ok(self.lock().singletons.get(&(scope.to_string(), key.to_string())).copied())
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        Ok(self.lock().sessions.get(id).cloned())
    }

    async fn queue_depth(&self, now_ms: i64) -> Result<QueueDepth> {
        let inner = self.lock();
        let due = inner.queue.values().filter(|q| q.available_at_ms <= now_ms).count() as u64;
        Ok(QueueDepth { due, future: inner.queue.len() as u64 - due })
    }

    async fn call_samples(&self, function: &str, since_ms: i64, limit: usize) -> Result<Vec<CallSample>> {
        let inner = self.lock();
        let mut out: Vec<(i64, usize, CallSample)> = Vec::new();
        for run in inner.runs.values().filter(|r| r.state.function.as_str() == function && r.id().0.timestamp_ms() as i64 >= since_ms) {
            for (i, h) in inner.history.get(&run.id()).into_iter().flatten().enumerate() {
                if h.kind == "call" && h.at_ms >= since_ms {
                    out.push((h.at_ms, i, CallSample { at_ms: h.at_ms, duration_ms: h.duration_ms.unwrap_or(0) }));
                }
            }
        }
        out.sort_by_key(|x| std::cmp::Reverse((x.0, x.1)));
        let limit = if limit == 0 { usize::MAX } else { limit };
        Ok(out.into_iter().take(limit).map(|(_, _, s)| s).collect())
    }
}
