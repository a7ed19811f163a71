//! The read side the HTTP API uses: runs, their steps and history, events,
//! apps, functions and skips. Handlers read through this, never the store
//! itself, so every read the API makes is listed here.

use std::sync::Arc;

pub mod stats;

use ingot_core::{EventId, RunId};
use ingot_store::{AppRecord, EventFilter, HistoryRecord, QueueItem, RunFilter, RunRecord, SkipRecord, StepRecord, StoredEvent};
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
