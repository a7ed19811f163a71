//! Storage: the [`Store`] trait the engine writes through, its records and
//! write ops, an in-memory store, the SQLite store, and the conformance suite
//! every backend must pass.
//!
//! **Architecture invariant:** every change the engine makes is one
//! [`Commit`] of [`WriteOp`]s, applied atomically. Conditions (a pause still
//! waiting, a key not yet used, a run not changed underneath us) are guards
//! inside the commit, so backends need no locks held across calls.

pub mod conformance;
mod leases;
mod lock;
pub mod mem;
pub mod records;
pub mod sqlite;
mod stats;

use async_trait::async_trait;
use ingot_core::{EventId, RunId};

pub use mem::MemStore;
pub use records::*;
pub use sqlite::SqliteStore;
pub use stats::{CallSample, QueueDepth};

/// Errors a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A guard on the run's revision failed: reload and decide again.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend could not be reached or is shutting down.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The item's lease is no longer this claim's: it was released, or it
    /// ran out and another claim (on another node) holds the item now. A
    /// commit acking it fails whole; the caller drops its result.
    #[error("lease lost: {0}")]
    LeaseLost(String),
    /// Stored data could not be read back.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// Another engine has the database open: stop it, or point this one elsewhere.
    #[error("database {db} is in use by another Ingot engine ({holder})")]
    Locked {
        /// The database file, as given to open.
        db: String,
        /// Who holds it, as its lock file says: pid, host, start time and command.
        holder: String,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What a claim returned: due items under their leases, and when the next
/// one falls due.
#[derive(Debug, Default)]
pub struct Claim {
    pub items: Vec<Claimed>,
    pub next_at_ms: Option<i64>,
}

/// One claim's hold on a queue item. Acking ([`WriteOp::Ack`]) or
/// releasing the item names its lease, and fails with
/// [`StoreError::LeaseLost`] once the lease is no longer this claim's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    pub item: QueueItemId,
    /// Unique per claim (within a store; with the node id across nodes).
    pub token: u64,
}

/// A claimed item and its lease (it reads as the item).
#[derive(Debug, Clone)]
pub struct Claimed {
    pub item: QueueItem,
    pub lease: Lease,
    /// The revision ([`RunRecord::rev`]) of the item's run when the item was
    /// claimed (`None`: no such run). A caller that kept what it read of the
    /// run at that revision may use it instead of reading the run again.
    pub run_rev: Option<i64>,
}

impl std::ops::Deref for Claimed {
    type Target = QueueItem;
    fn deref(&self) -> &QueueItem {
        &self.item
    }
}

/// The storage seam. Implemented by [`MemStore`] and [`SqliteStore`];
/// a PostgreSQL store implements the same, with leases in rows.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies every op atomically. A failed revision guard fails the whole
    /// commit with [`StoreError::Conflict`]; other guards skip their ops.
    async fn commit(&self, commit: Commit) -> Result<CommitOutcome>;

    /// Claims up to `limit` items due at `now_ms` that nobody holds, each
    /// under a lease until it is acked (by a commit) or released. The memory
    /// and SQLite stores hold leases in the process (one engine per store);
    /// the PostgreSQL store in the rows, renewed while the node lives, so a
    /// dead node's items become claimable by the others when the lease ends.
    async fn claim(&self, now_ms: i64, limit: usize) -> Result<Claim>;
    /// Gives a claimed item back without acking it; [`StoreError::LeaseLost`]
    /// if the lease was no longer this claim's (nothing changes then).
    async fn release(&self, lease: &Lease) -> Result<()>;
    /// Resolves when a commit enqueued new work.
    fn work_notify(&self) -> std::sync::Arc<tokio::sync::Notify>;
    /// Whether other engine nodes may write this store too (then each node
    /// re-reads what others change: synced functions, paused flags, and
    /// takes concurrency slots through [`Store::take_slots`]).
    fn shared_by_nodes(&self) -> bool {
        false
    }

    async fn apps(&self) -> Result<Vec<AppRecord>>;
    /// On a store nodes share: takes one slot of every concurrency key for
    /// the call of the item under `lease`, all or none; `false` when a key
    /// is at its limit. A slot is held while the item stays queued under
    /// that lease: the ack of its call, a release, or the lease running out
    /// (a dead node) frees it. Stores one engine owns leave this to the
    /// engine's in-process limiter.
    async fn take_slots(&self, lease: &Lease, keys: &[ingot_core::flow::ConcurrencyKey]) -> Result<bool> {
        let _ = (lease, keys);
        Err(StoreError::Unavailable("this store leaves concurrency slots to the engine".into()))
    }
    async fn functions(&self, include_archived: bool) -> Result<Vec<FunctionRecord>>;

    async fn run(&self, id: RunId) -> Result<Option<RunRecord>>;
    /// Runs passing `filter`, newest (highest id) first.
    async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>>;
    /// How many runs [`Store::runs`] would return for `filter` (so its
    /// `limit` caps the count: a cheap bounded count).
    async fn count_runs(&self, filter: &RunFilter) -> Result<u64>;
    async fn runs_for_event(&self, id: EventId) -> Result<Vec<RunRecord>>;
    async fn run_steps(&self, id: RunId) -> Result<Vec<StepRecord>>;
    async fn run_history(&self, id: RunId) -> Result<Vec<HistoryRecord>>;
    async fn run_items(&self, id: RunId) -> Result<Vec<QueueItem>>;

    async fn event(&self, id: EventId) -> Result<Option<StoredEvent>>;
    async fn events_by_ids(&self, ids: &[EventId]) -> Result<Vec<StoredEvent>>;
    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>>;
    /// How many events [`Store::events`] would return for `filter` (its
    /// `limit` caps the count).
    async fn count_events(&self, filter: &EventFilter) -> Result<u64>;

    async fn pauses_for_event(&self, name: &str) -> Result<Vec<Pause>>;
    async fn pause_by_correlation(&self, correlation_id: &str) -> Result<Option<Pause>>;
    async fn pauses_for_run(&self, id: RunId) -> Result<Vec<Pause>>;

    async fn debounce(&self, function: &str, key: &str) -> Result<Option<DebounceRecord>>;
    /// The batch of `(function, key)` that `run_id` will process.
    async fn batch(&self, run_id: RunId) -> Result<Option<BatchRecord>>;
    async fn skips(&self, function: Option<&str>, limit: usize) -> Result<Vec<SkipRecord>>;
    /// Why the event `id` started no run of some functions (oldest first).
    async fn skips_for_event(&self, id: EventId) -> Result<Vec<SkipRecord>>;
    /// Functions paused from the dashboard or API.
    async fn paused_functions(&self) -> Result<Vec<String>>;
    /// The run holding a singleton key, if any.
    async fn singleton_holder(&self, scope: &str, key: &str) -> Result<Option<RunId>>;
    /// A dashboard session by id, expired or not (the caller compares the expiry to its clock).
    async fn session(&self, id: &str) -> Result<Option<SessionRecord>>;

    /// How many items are queued, due at `now_ms` and later (leased ones included).
    async fn queue_depth(&self, now_ms: i64) -> Result<QueueDepth>;
    /// The SDK calls (`call` history lines) of `function`'s runs created at or
    /// after `since_ms`, made at or after it, newest first, at most `limit`.
    async fn call_samples(&self, function: &str, since_ms: i64, limit: usize) -> Result<Vec<CallSample>>;
}
