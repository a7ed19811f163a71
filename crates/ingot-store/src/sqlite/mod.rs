//! The SQLite store: one file in WAL mode with `synchronous=FULL`.
//!
//! All writes go through one writer thread that owns one connection and
//! groups the commits waiting in its channel into one transaction (one
//! fsync). The common case costs one `BEGIN`/`COMMIT` for the group; if a
//! commit fails, the group is redone with a savepoint per commit so only that
//! one fails. Claims are served by the same thread, so a claim never sees an
//! item that a commit has already acked. Leases live in memory: SQLite serves
//! a single engine process, and a restart starts with every item claimable.
//!
//! Reads run on a small pool of read-only connections, one blocking-pool
//! handoff per read call. Statements are prepared once per connection and
//! cached. (sqlx-sqlite hands every statement to its own worker thread; at
//! ~13 statements per step, those handoffs cost more than SQLite itself.)
//!
//! Here: [`SqliteStore`] and the [`Store`] impl; `writer` (the writer thread,
//! commit grouping, claims), `apply` and `purge` (ops inside a transaction),
//! `reads` (the read pool and queries), `migrate` (the schema), `rows` and
//! `sql` (row mapping, statement helpers).

mod apply;
mod migrate;
mod purge;
mod reads;
mod rows;
mod sql;
#[cfg(test)]
mod tests;
mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ingot_core::{EventId, RunId};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};

use crate::leases::LocalLeases;
use crate::records::*;
use crate::{Claim, Lease, Result, Store, StoreError};
use reads::{Readers, READERS};
use writer::{open_writer, writer, Request};

/// The SQLite-backed store. Only one may have a database open at a time
/// (`<db>.lock`, see [`crate::lock`]): dropping it lets the next one in.
pub struct SqliteStore {
    readers: Arc<Readers>,
    tx: mpsc::Sender<Request>,
    inflight: Arc<Mutex<LocalLeases>>,
    notify: Arc<Notify>,
    _lock: crate::lock::DbLock,
}

fn stopped() -> StoreError {
    StoreError::Unavailable("store writer stopped".into())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    /// Fails with [`StoreError::Locked`] while another store has it open.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        // Before anything touches the file, so two engines never race the migrations either.
        let lock = crate::lock::acquire(path)?;
        let (tx, rx) = mpsc::channel(4096);
        let inflight = Arc::new(Mutex::new(LocalLeases::default()));
        let notify = Arc::new(Notify::new());
        let (ready_tx, ready_rx) = oneshot::channel();
        let (owned, set, wake) = (path.to_path_buf(), inflight.clone(), notify.clone());
        std::thread::Builder::new()
            .name("ingot-sqlite-writer".into())
            .spawn(move || match open_writer(&owned) {
                Ok(conn) => {
                    let _ = ready_tx.send(Ok(()));
                    writer(conn, rx, &set, &wake);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the store writer: {e}")))?;
        ready_rx.await.map_err(|_| stopped())??;
        let readers = Arc::new(Readers { path: path.to_path_buf(), idle: Mutex::new(Vec::new()), permits: Semaphore::new(READERS) });
        // Open one reader now, so a file we cannot read fails here and not on first use.
        let first = readers.clone();
        tokio::task::spawn_blocking(move || first.with(|_| Ok(()))).await.map_err(|e| StoreError::Unavailable(e.to_string()))??;
        Ok(SqliteStore { readers, tx, inflight, notify, _lock: lock })
    }

    async fn request<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Request) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn commit(&self, commit: Commit) -> Result<CommitOutcome> {
        self.request(|tx| Request::Commit(commit, tx)).await
    }

    async fn claim(&self, now_ms: i64, limit: usize) -> Result<Claim> {
        self.request(|tx| Request::Claim(now_ms, limit, tx)).await
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        let released = self.inflight.lock().unwrap_or_else(|e| e.into_inner()).release(lease);
        self.notify.notify_one();
        released
    }

    fn work_notify(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    async fn apps(&self) -> Result<Vec<AppRecord>> {
        reads::apps(self).await
    }

    async fn functions(&self, include_archived: bool) -> Result<Vec<FunctionRecord>> {
        reads::functions(self, include_archived).await
    }

    async fn run(&self, id: RunId) -> Result<Option<RunRecord>> {
        reads::run(self, id).await
    }

    async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        reads::runs(self, filter).await
    }

    async fn count_runs(&self, filter: &RunFilter) -> Result<u64> {
        reads::count_runs(self, filter).await
    }

    async fn runs_for_event(&self, id: EventId) -> Result<Vec<RunRecord>> {
        reads::runs_for_event(self, id).await
    }

    async fn run_steps(&self, id: RunId) -> Result<Vec<StepRecord>> {
        reads::run_steps(self, id).await
    }

    async fn run_history(&self, id: RunId) -> Result<Vec<HistoryRecord>> {
        reads::run_history(self, id).await
    }

    async fn run_items(&self, id: RunId) -> Result<Vec<QueueItem>> {
        reads::run_items(self, id).await
    }

    async fn event(&self, id: EventId) -> Result<Option<StoredEvent>> {
        reads::event(self, id).await
    }

    async fn events_by_ids(&self, ids: &[EventId]) -> Result<Vec<StoredEvent>> {
        reads::events_by_ids(self, ids).await
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
        reads::events(self, filter).await
    }

    async fn count_events(&self, filter: &EventFilter) -> Result<u64> {
        reads::count_events(self, filter).await
    }

    async fn pauses_for_event(&self, name: &str) -> Result<Vec<Pause>> {
        reads::pauses_for_event(self, name).await
    }

    async fn pause_by_correlation(&self, correlation_id: &str) -> Result<Option<Pause>> {
        reads::pause_by_correlation(self, correlation_id).await
    }

    async fn pauses_for_run(&self, id: RunId) -> Result<Vec<Pause>> {
        reads::pauses_for_run(self, id).await
    }

    async fn debounce(&self, function: &str, key: &str) -> Result<Option<DebounceRecord>> {
        reads::debounce(self, function, key).await
    }

    async fn batch(&self, run_id: RunId) -> Result<Option<BatchRecord>> {
        reads::batch(self, run_id).await
    }

    async fn skips(&self, function: Option<&str>, limit: usize) -> Result<Vec<SkipRecord>> {
        reads::skips(self, function, limit).await
    }

    async fn skips_for_event(&self, id: EventId) -> Result<Vec<SkipRecord>> {
        reads::skips_for_event(self, id).await
    }

    async fn paused_functions(&self) -> Result<Vec<String>> {
        reads::paused_functions(self).await
    }

    async fn singleton_holder(&self, scope: &str, key: &str) -> Result<Option<RunId>> {
        reads::singleton_holder(self, scope, key).await
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        reads::session(self, id).await
    }

    async fn queue_depth(&self, now_ms: i64) -> Result<crate::QueueDepth> {
        reads::queue_depth(self, now_ms).await
    }

    async fn call_samples(&self, function: &str, since_ms: i64, limit: usize) -> Result<Vec<crate::CallSample>> {
        reads::call_samples(self, function, since_ms, limit).await
    }
}
