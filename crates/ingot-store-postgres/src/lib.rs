//! The PostgreSQL store: the [`Store`] trait of `ingot-store` on a database
//! several engine nodes can share.
//!
//! **Writes.** Every [`Commit`] is applied in one transaction, its guards
//! checked inside it, op by op as the SQLite store does (`apply`). One writer
//! task per store owns one connection and groups the commits waiting in its
//! channel into one transaction, so concurrent commits share one WAL flush
//! (`synchronous_commit` is left as the server has it: on by default); only if
//! a commit fails is the group redone with a savepoint per commit, so only
//! that one fails (`writer`). Rows that a commit reads and then writes
//! (limiters, debounces, open batches, singletons) are read `FOR UPDATE`, so
//! two nodes take turns on them.
//!
//! **Claims and leases.** `claim` takes due items with `FOR UPDATE SKIP
//! LOCKED` and writes the lease into the row (`leased_by`, `lease_until_ms`
//! on the database clock); a node renews its leases while it lives, and an
//! item whose lease ran out is claimable by any node (`lease`). A claim never
//! returns an item this node already holds, as in the SQLite store.
//!
//! **Wake-ups.** [`Store::work_notify`] fires after local commits that add
//! work, and on `NOTIFY ingot_work` from other nodes (sent inside those
//! commits), received on a dedicated connection that reconnects (`listen`).
//!
//! **Driver: tokio-postgres (+ deadpool-postgres for the read pool), not
//! sqlx.** Many small commits cost, per commit, one WAL flush and one round
//! trip per statement. Grouping removes the first; the second is where the
//! drivers differ: tokio-postgres pipelines, sending the requests of futures
//! polled together without waiting for each reply, so the writer queues the
//! writes whose result no op needs and sends them with the next statement
//! whose result is needed (`sql::Tx`): a step's commit of a few blind writes
//! is one round trip, and a group of them too. sqlx awaits every statement
//! before sending the next. Measured on this 2-core machine (PostgreSQL 15 on
//! loopback, 2,000 commits of 4 small statements on one connection, a
//! throwaway program in the same run, µs per commit): one transaction per
//! commit, tokio-postgres 2,900–3,100 and sqlx 3,070–3,180 (the WAL flush
//! dominates, the drivers tie); 100 commits per transaction, statements
//! awaited one by one, tokio-postgres 84 and sqlx 94–108; the same group
//! pipelined with tokio-postgres, 77–82. So grouping is worth ~35×, and the
//! driver ~20% on top, more when the database is not on loopback (each
//! saved round trip is a network latency). tokio-postgres also has no
//! compile-time or offline-query machinery to keep.
//!
//! Only plain TCP (`NoTls`) for now.
//!
//! Here: [`PgStore`], [`PgOptions`] and the [`Store`] impl; `writer` (the
//! writer task, grouping), `apply` and `purge` (ops inside a transaction),
//! `sql` (the pipelined transaction, statements, errors), `lease` (claims,
//! releases, renewals), `listen` (`LISTEN ingot_work`), `reads`, `rows`,
//! `migrate` (`migrations/postgres/NNNN_*.sql`, under an advisory lock).

mod apply;
mod lease;
mod listen;
mod migrate;
mod purge;
mod reads;
mod rows;
mod sql;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use ingot_core::{EventId, RunId};
use ingot_store::*;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::AbortHandle;
use tokio_postgres::NoTls;

/// Settings of a [`PgStore`].
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Most pooled connections, for reads, claims and releases. The store
    /// also keeps one writer connection and one listening connection.
    pub max_conns: usize,
    /// How long a claim holds an item if its node stops renewing (dies).
    pub lease: Duration,
    /// This node's name in `leased_by` and in notifications; a fresh ULID if
    /// unset. Two live stores must not share one.
    pub node_id: Option<String>,
}

impl Default for PgOptions {
    fn default() -> PgOptions {
        PgOptions { max_conns: 8, lease: Duration::from_secs(30), node_id: None }
    }
}

/// What the store's tasks share: who this node is, what it holds, and the
/// notify its dispatchers wait on.
pub(crate) struct Local {
    node: String,
    lease_ms: i64,
    /// The items this node holds, by the token of the claim that took them.
    held: Mutex<HashMap<QueueItemId, u64>>,
    /// The last claim's token.
    claims: AtomicU64,
    notify: Arc<Notify>,
}

impl Local {
    fn held(&self) -> MutexGuard<'_, HashMap<QueueItemId, u64>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `leased_by` of the items a claim with `token` took: the node and
    /// the claim, so another claim (on this node or another) never matches.
    pub(crate) fn lease_value(&self, token: u64) -> String {
        format!("{}/{token}", self.node)
    }

    /// The prefix of every `leased_by` this node writes.
    fn lease_prefix(&self) -> String {
        format!("{}/", self.node)
    }
}

/// The PostgreSQL-backed store. Dropping it stops its tasks and closes its
/// connections once the commits in flight are done.
pub struct PgStore {
    pool: Pool,
    tx: mpsc::Sender<writer::Request>,
    local: Arc<Local>,
    tasks: Vec<AbortHandle>,
}

fn stopped() -> StoreError {
    StoreError::Unavailable("store writer stopped".into())
}

impl PgStore {
    /// Connects to `uri` (a `postgres://` URL or `key=value` string), applies
    /// the migrations not yet applied (one node at a time, under an advisory
    /// lock), and starts the writer, the listener and the lease renewal.
    pub async fn connect(uri: &str, opts: PgOptions) -> Result<Arc<PgStore>> {
        let mut config: tokio_postgres::Config = uri.parse().map_err(|e| StoreError::Unavailable(format!("bad PostgreSQL URI: {e}")))?;
        if config.get_application_name().is_none() {
            config.application_name("ingot");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let mut client = writer::connect(&config).await?;
        migrate::migrate(&mut client).await?;
        let manager = Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(opts.max_conns.max(1))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("postgres pool: {e}")))?;
        let lease_ms = i64::try_from(opts.lease.as_millis()).unwrap_or(i64::MAX).max(1);
        let local = Arc::new(Local {
            node: opts.node_id.unwrap_or_else(|| ulid::Ulid::new().to_string()),
            lease_ms,
            held: Mutex::new(HashMap::new()),
            claims: AtomicU64::new(0),
            notify: Arc::new(Notify::new()),
        });
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(writer::writer(config.clone(), writer::Conn::new(client), rx, local.clone()));
        let listener = tokio::spawn(listen::listen(config, Arc::downgrade(&local)));
        let renewer = tokio::spawn(lease::renew(pool.clone(), Arc::downgrade(&local)));
        Ok(Arc::new(PgStore { pool, tx, local, tasks: vec![listener.abort_handle(), renewer.abort_handle()] }))
    }

    /// This node's id (the start of the `leased_by` of the items it claims).
    pub fn node_id(&self) -> &str {
        &self.local.node
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[async_trait]
impl Store for PgStore {
    async fn commit(&self, commit: Commit) -> Result<CommitOutcome> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((commit, reply)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    async fn claim(&self, now_ms: i64, limit: usize) -> Result<Claim> {
        lease::claim(&self.pool, &self.local, now_ms, limit).await
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        lease::release(&self.pool, &self.local, lease).await
    }

    fn work_notify(&self) -> Arc<Notify> {
        self.local.notify.clone()
    }

    fn shared_by_nodes(&self) -> bool {
        true
    }

    async fn take_slots(&self, lease: &Lease, keys: &[ingot_core::flow::ConcurrencyKey]) -> Result<bool> {
        lease::take_slots(&self.pool, &self.local, lease, keys).await
    }

    async fn apps(&self) -> Result<Vec<AppRecord>> {
        self.read_apps().await
    }

    async fn functions(&self, include_archived: bool) -> Result<Vec<FunctionRecord>> {
        self.read_functions(include_archived).await
    }

    async fn run(&self, id: RunId) -> Result<Option<RunRecord>> {
        self.read_run(id).await
    }

    async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        self.read_runs(filter).await
    }

    async fn count_runs(&self, filter: &RunFilter) -> Result<u64> {
        self.count_runs_where(filter).await
    }

    async fn runs_for_event(&self, id: EventId) -> Result<Vec<RunRecord>> {
        self.read_runs_for_event(id).await
    }

    async fn run_steps(&self, id: RunId) -> Result<Vec<StepRecord>> {
        self.read_run_steps(id).await
    }

    async fn run_history(&self, id: RunId) -> Result<Vec<HistoryRecord>> {
        self.read_run_history(id).await
    }

    async fn run_items(&self, id: RunId) -> Result<Vec<QueueItem>> {
        self.read_run_items(id).await
    }

    async fn event(&self, id: EventId) -> Result<Option<StoredEvent>> {
        self.read_event(id).await
    }

    async fn events_by_ids(&self, ids: &[EventId]) -> Result<Vec<StoredEvent>> {
        self.read_events_by_ids(ids).await
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
        self.read_events(filter).await
    }

    async fn count_events(&self, filter: &EventFilter) -> Result<u64> {
        self.count_events_where(filter).await
    }

    async fn pauses_for_event(&self, name: &str) -> Result<Vec<Pause>> {
        self.read_pauses_for_event(name).await
    }

    async fn pause_by_correlation(&self, correlation_id: &str) -> Result<Option<Pause>> {
        self.read_pause_by_correlation(correlation_id).await
    }

    async fn pauses_for_run(&self, id: RunId) -> Result<Vec<Pause>> {
        self.read_pauses_for_run(id).await
    }

    async fn debounce(&self, function: &str, key: &str) -> Result<Option<DebounceRecord>> {
        self.read_debounce(function, key).await
    }

    async fn batch(&self, run_id: RunId) -> Result<Option<BatchRecord>> {
        self.read_batch(run_id).await
    }

    async fn skips(&self, function: Option<&str>, limit: usize) -> Result<Vec<SkipRecord>> {
        self.read_skips(function, limit).await
    }

    async fn skips_for_event(&self, id: EventId) -> Result<Vec<SkipRecord>> {
        self.read_skips_for_event(id).await
    }

    async fn paused_functions(&self) -> Result<Vec<String>> {
        self.read_paused_functions().await
    }

    async fn singleton_holder(&self, scope: &str, key: &str) -> Result<Option<RunId>> {
        self.read_singleton_holder(scope, key).await
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        self.read_session(id).await
    }

    async fn queue_depth(&self, now_ms: i64) -> Result<QueueDepth> {
        self.read_queue_depth(now_ms).await
    }

    async fn call_samples(&self, function: &str, since_ms: i64, limit: usize) -> Result<Vec<CallSample>> {
        self.read_call_samples(function, since_ms, limit).await
    }
}
