//! The read side the HTTP API uses: runs, their steps and history, events,
//! apps, functions and skips. Handlers read through this, never the store
//! itself, so every read the API makes is listed here.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub mod stats;

use ingot_core::{EventId, RunId, RunStatus};
use ingot_store::{
    AppRecord, EventFilter, HistoryRecord, QueueItem, RunFilter, RunProgress, RunRecord, SkipRecord, StepRecord, StoredEvent,
};
use serde_json::Value;

use crate::error::{EngineError, Result};
use crate::registry::Function;
use crate::shared::Shared;

/// Reads for the API.
pub struct Queries {
    shared: Arc<Shared>,
}

/// A run with everything its timeline shows.
pub struct RunView {
    pub run: RunRecord,
    pub steps: Vec<StepRecord>,
    pub history: Vec<HistoryRecord>,
    pub events: Vec<StoredEvent>,
}

/// Rows a search with an expression reads for one page, at most: the
/// expression runs in the engine (CEL over `event` and `output`), so its
/// cost is bounded per page and the answer says when the bound was hit.
pub const SEARCH_SCAN_LIMIT: usize = 2_000;

/// Rows read from the store at a time while an expression search scans.
const SEARCH_BATCH: usize = 250;

/// Counts stop here: past it a total is shown as "at least".
pub const COUNT_CAP: usize = 100_000;

/// One page of a run search.
pub struct RunSearch<'a> {
    /// The store filter; `limit` is the page size, `before` the cursor.
    pub filter: RunFilter,
    /// A CEL expression over `event` (the first trigger event) and `output`.
    pub expr: Option<&'a str>,
    /// Only this run (still held to the filter).
    pub run_id: Option<RunId>,
    /// Only the runs this event started (still held to the filter).
    pub event_id: Option<EventId>,
}

/// A page of runs.
pub struct RunPage {
    pub runs: Vec<RunRecord>,
    /// The runs of the page that are still queued (never called).
    pub queued: HashSet<RunId>,
    /// The first trigger event's name of each run.
    pub event_names: HashMap<EventId, String>,
    /// Pass as `before` for the next page; `None` on the last page.
    pub next_cursor: Option<RunId>,
    /// Rows read to answer (with an expression, may exceed the page).
    pub scanned: usize,
    /// The expression scan stopped at [`SEARCH_SCAN_LIMIT`] rows before the
    /// page was full: more matches may follow the cursor.
    pub scan_capped: bool,
}

/// A count, exact or a lower bound (counting stopped at [`COUNT_CAP`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Total {
    pub count: u64,
    pub exact: bool,
}

impl Queries {
    pub fn new(shared: Arc<Shared>) -> Queries {
        Queries { shared }
    }

    /// The run `id`, or [`EngineError::NotFound`].
    pub async fn run(&self, id: RunId) -> Result<RunRecord> {
        self.find_run(id).await?.ok_or_else(|| EngineError::NotFound(format!("run {:?} not found", id.to_string())))
    }

    /// The run `id`, if it exists.
    pub async fn find_run(&self, id: RunId) -> Result<Option<RunRecord>> {
        Ok(self.shared.store.run(id).await?)
    }

    /// The run `id` with its steps, history and trigger events.
    pub async fn run_view(&self, id: RunId) -> Result<RunView> {
        let run = self.run(id).await?;
        let store = &self.shared.store;
        let steps = store.run_steps(id).await?;
        let history = store.run_history(id).await?;
        let events = store.events_by_ids(&run.event_ids).await?;
        Ok(RunView { run, steps, history, events })
    }

    pub async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        Ok(self.shared.store.runs(filter).await?)
    }

    /// One page of runs under `search`, newest first, keyset-paged on the id.
    pub async fn search_runs(&self, search: &RunSearch<'_>) -> Result<RunPage> {
        let store = &self.shared.store;
        let per = search.filter.limit.max(1);
        let expr = match search.expr.map(str::trim).filter(|e| !e.is_empty()) {
            Some(src) => Some(ingot_core::expr::Expr::compile(src).map_err(EngineError::Refused)?),
            None => None,
        };
        let mut runs = Vec::new();
        let mut scanned = 0;
        let mut scan_capped = false;
        let next_cursor;
        let by_id = match (search.run_id, search.event_id) {
            (Some(id), _) => Some(store.run(id).await?.into_iter().collect::<Vec<_>>()),
            (None, Some(ev)) => Some(store.runs_for_event(ev).await?),
            (None, None) => None,
        };
        match (by_id, expr) {
            (Some(mut found), expr) => {
                // One run or one event's runs: few rows, filtered here.
                found.sort_by_key(|r| std::cmp::Reverse(r.id()));
                scanned = found.len();
                let queued = self.queued_among(&found).await?;
                let progress_ok = |r: &RunRecord| match search.filter.progress {
                    None => true,
                    Some(RunProgress::Queued) => queued.contains(&r.id()),
                    Some(RunProgress::Called) => !queued.contains(&r.id()),
                };
                let mut events = HashMap::new();
                if expr.is_some() {
                    let firsts: Vec<EventId> = found.iter().filter_map(|r| r.event_ids.first().copied()).collect();
                    events = store.events_by_ids(&firsts).await?.into_iter().map(|e| (e.internal_id, e.payload)).collect();
                }
                found.retain(|r| {
                    let event = r.event_ids.first().and_then(|e| events.get(e)).cloned().unwrap_or(Value::Null);
                    let output = r.output.clone().unwrap_or(Value::Null);
                    search.filter.admits(r)
                        && progress_ok(r)
                        && expr.as_ref().is_none_or(|x| x.matches(&[("event", &event), ("output", &output)]))
                });
                let more = found.len() > per;
                found.truncate(per);
                next_cursor = if more { found.last().map(|r| r.id()) } else { None };
                runs = found;
            }
            (None, None) => {
                let mut page = store.runs(&RunFilter { limit: per + 1, ..search.filter.clone() }).await?;
                scanned = page.len();
                let more = page.len() > per;
                page.truncate(per);
                next_cursor = if more { page.last().map(|r| r.id()) } else { None };
                runs = page;
            }
            (None, Some(expr)) => {
                let mut before = search.filter.before;
                let mut last_read = None;
                let mut exhausted = false;
                'scan: while runs.len() < per && scanned < SEARCH_SCAN_LIMIT {
                    let take = SEARCH_BATCH.min(SEARCH_SCAN_LIMIT - scanned);
                    let batch = store.runs(&RunFilter { before, limit: take, ..search.filter.clone() }).await?;
                    exhausted = batch.len() < take;
                    let firsts: Vec<EventId> = batch.iter().filter_map(|r| r.event_ids.first().copied()).collect();
                    let events: HashMap<EventId, Value> =
                        store.events_by_ids(&firsts).await?.into_iter().map(|e| (e.internal_id, e.payload)).collect();
                    for run in batch {
                        scanned += 1;
                        last_read = Some(run.id());
                        let event = run.event_ids.first().and_then(|e| events.get(e)).cloned().unwrap_or(Value::Null);
                        let output = run.output.clone().unwrap_or(Value::Null);
                        if expr.matches(&[("event", &event), ("output", &output)]) {
                            runs.push(run);
                            if runs.len() == per {
                                break 'scan;
                            }
                        }
                    }
                    if exhausted {
                        break;
                    }
                    before = last_read;
                }
                scan_capped = runs.len() < per && !exhausted && scanned >= SEARCH_SCAN_LIMIT;
                // The cursor is the last row read: the next page goes on from there.
                next_cursor = if exhausted && runs.len() < per { None } else { last_read };
            }
        }
        let queued = self.queued_among(&runs).await?;
        let firsts: Vec<EventId> = runs.iter().filter_map(|r| r.event_ids.first().copied()).collect();
        let event_names = store.events_by_ids(&firsts).await?.into_iter().map(|e| (e.internal_id, e.name)).collect();
        Ok(RunPage { runs, queued, event_names, next_cursor, scanned, scan_capped })
    }

    /// Which of `runs` (newest first) have not had their first call: one
    /// read over the id range of the page.
    async fn queued_among(&self, runs: &[RunRecord]) -> Result<HashSet<RunId>> {
        let running: Vec<RunId> = runs.iter().filter(|r| r.status() == RunStatus::Running).map(|r| r.id()).collect();
        let (Some(newest), Some(oldest)) = (running.iter().max(), running.iter().min()) else { return Ok(HashSet::new()) };
        let upper = RunId(ulid::Ulid(newest.0 .0.saturating_add(1)));
        let filter = RunFilter {
            status: Some(RunStatus::Running),
            progress: Some(RunProgress::Queued),
            before: Some(upper),
            since: Some(*oldest),
            ..Default::default()
        };
        let ids: HashSet<RunId> = running.iter().copied().collect();
        Ok(self.shared.store.runs(&filter).await?.into_iter().map(|r| r.id()).filter(|id| ids.contains(id)).collect())
    }

    /// How many runs pass `filter` (its limit ignored; give it no cursor),
    /// counted up to [`COUNT_CAP`].
    pub async fn count_runs(&self, filter: &RunFilter) -> Result<Total> {
        let n = self.shared.store.count_runs(&RunFilter { limit: COUNT_CAP + 1, ..filter.clone() }).await?;
        Ok(Total { count: n.min(COUNT_CAP as u64), exact: n <= COUNT_CAP as u64 })
    }

    /// How many events pass `filter` (its cursor and limit ignored), counted
    /// up to [`COUNT_CAP`].
    pub async fn count_events(&self, filter: &EventFilter) -> Result<Total> {
        let n = self.shared.store.count_events(&EventFilter { before: None, limit: COUNT_CAP + 1, ..filter.clone() }).await?;
        Ok(Total { count: n.min(COUNT_CAP as u64), exact: n <= COUNT_CAP as u64 })
    }

    /// The runs the event `id` started.
    pub async fn runs_for_event(&self, id: EventId) -> Result<Vec<RunRecord>> {
        Ok(self.shared.store.runs_for_event(id).await?)
    }

    pub async fn run_steps(&self, id: RunId) -> Result<Vec<StepRecord>> {
        Ok(self.shared.store.run_steps(id).await?)
    }

    pub async fn run_history(&self, id: RunId) -> Result<Vec<HistoryRecord>> {
        Ok(self.shared.store.run_history(id).await?)
    }

    /// The run `id` reruns (`rerun_of`), and its own reruns, oldest first.
    pub async fn rerun_links(&self, id: RunId) -> Result<(Option<RunId>, Vec<RunId>)> {
        let history = self.run_history(id).await?;
        let linked = |kind: &str| -> Vec<RunId> {
            history
                .iter()
                .filter(|h| h.kind == kind)
                .filter_map(|h| h.detail.get("run_id").and_then(Value::as_str).and_then(RunId::parse))
                .collect()
        };
        Ok((linked(crate::starter::RERUN_OF).first().copied(), linked(crate::starter::RERUN)))
    }

    /// Whether the run has had a call (it is past the queue).
    pub async fn run_called(&self, id: RunId) -> Result<bool> {
        Ok(self.run_history(id).await?.iter().any(|h| h.kind == "call"))
    }

    /// The run's queued work.
    pub async fn run_items(&self, id: RunId) -> Result<Vec<QueueItem>> {
        Ok(self.shared.store.run_items(id).await?)
    }

    /// The payloads of the run's trigger events, in order.
    pub async fn run_events(&self, run: &RunRecord) -> Result<Vec<Value>> {
        Ok(self.events_by_ids(&run.event_ids).await?.into_iter().map(|e| e.payload).collect())
    }

    /// The event `id`, or [`EngineError::NotFound`].
    pub async fn event(&self, id: EventId) -> Result<StoredEvent> {
        self.find_event(id).await?.ok_or_else(|| EngineError::NotFound(format!("event {:?} not found", id.to_string())))
    }

    /// The event `id`, if it exists.
    pub async fn find_event(&self, id: EventId) -> Result<Option<StoredEvent>> {
        Ok(self.shared.store.event(id).await?)
    }

    pub async fn events_by_ids(&self, ids: &[EventId]) -> Result<Vec<StoredEvent>> {
        Ok(self.shared.store.events_by_ids(ids).await?)
    }

    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
        Ok(self.shared.store.events(filter).await?)
    }

    pub async fn apps(&self) -> Result<Vec<AppRecord>> {
        Ok(self.shared.store.apps().await?)
    }

    /// The app `id`, if it is synced.
    pub async fn app(&self, id: &str) -> Result<Option<AppRecord>> {
        Ok(self.apps().await?.into_iter().find(|a| a.id == id))
    }

    /// Events that did not start a function, newest first.
    pub async fn skips(&self, function: Option<&str>, limit: usize) -> Result<Vec<SkipRecord>> {
        Ok(self.shared.store.skips(function, limit).await?)
    }

    /// Why the event `id` started no run of some functions.
    pub async fn skips_for_event(&self, id: EventId) -> Result<Vec<SkipRecord>> {
        Ok(self.shared.store.skips_for_event(id).await?)
    }

    /// The synced function `slug`.
    pub fn function(&self, slug: &str) -> Option<Arc<Function>> {
        self.shared.registry.get(slug)
    }

    /// Every synced function, by slug.
    pub fn functions(&self) -> Vec<Arc<Function>> {
        self.shared.registry.all()
    }

    /// Whether the function `slug` is paused.
    pub fn is_paused(&self, slug: &str) -> bool {
        self.shared.paused.contains(slug)
    }

    /// The engine's clock, in ms.
    pub fn now_ms(&self) -> i64 {
        self.shared.clock.now_ms()
    }
}
