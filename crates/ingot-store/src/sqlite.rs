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

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ingot_core::{EventId, FunctionSlug, RunId, RunStatus};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, ToSql};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};

use crate::records::*;
use crate::{Claim, Result, Store, StoreError};

/// Most commits grouped into one transaction.
const MAX_GROUP: usize = 512;
/// Most read connections (and reads running at once).
const READERS: usize = 4;
/// Prepared statements cached per connection.
const STATEMENT_CACHE: usize = 128;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema, in order: `PRAGMA user_version` is the number of the last one applied.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "0001_init.sql", include_str!("../migrations/sqlite/0001_init.sql")),
    (2, "0002_flow_control.sql", include_str!("../migrations/sqlite/0002_flow_control.sql")),
    (3, "0003_paused_functions.sql", include_str!("../migrations/sqlite/0003_paused_functions.sql")),
    (4, "0004_retention_sessions.sql", include_str!("../migrations/sqlite/0004_retention_sessions.sql")),
];

enum Request {
    Commit(Commit, oneshot::Sender<Result<CommitOutcome>>),
    Claim(i64, usize, oneshot::Sender<Result<Claim>>),
}

/// The SQLite-backed store. Only one may have a database open at a time
/// (`<db>.lock`, see [`crate::lock`]): dropping it lets the next one in.
pub struct SqliteStore {
    readers: Arc<Readers>,
    tx: mpsc::Sender<Request>,
    inflight: Arc<Mutex<HashSet<QueueItemId>>>,
    notify: Arc<Notify>,
    _lock: crate::lock::DbLock,
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
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
        let inflight = Arc::new(Mutex::new(HashSet::new()));
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

    /// Runs `f` on a read connection, off the async runtime.
    async fn read<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        let _permit = self.readers.permits.acquire().await.map_err(|_| StoreError::Unavailable("store closed".into()))?;
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.with(f)).await.map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }
}

/// Read-only connections, at most [`READERS`] of them (the semaphore bounds
/// how many are in use, so the idle list never grows past it).
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl Readers {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => open_reader(&self.path)?,
        };
        let out = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < READERS {
            idle.push(conn);
        }
        out
    }
}

fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(unavailable)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

fn open_writer(path: &Path) -> Result<Connection> {
    let flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(unavailable)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(unavailable)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!("cannot put {} in WAL mode (got {mode})", path.display())));
    }
    conn.pragma_update(None, "synchronous", "FULL").map_err(unavailable)?;
    conn.pragma_update(None, "foreign_keys", false).map_err(unavailable)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    migrate(&conn)?;
    Ok(conn)
}

/// Applies the migrations not yet applied, each in its own transaction.
fn migrate(conn: &Connection) -> Result<()> {
    let failed = |name: &str, e: rusqlite::Error| StoreError::Unavailable(format!("migration {name} failed: {e}"));
    let mut version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(unavailable)?;
    if version == 0 {
        // A database migrated by the earlier sqlx-based store records its migrations there.
        let sqlx: Option<i64> = conn
            .query_row("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'", [], |_| Ok(()))
            .optional()
            .map_err(unavailable)?
            .map(|()| conn.query_row("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1", [], |r| r.get(0)))
            .transpose()
            .map_err(unavailable)?
            .flatten();
        version = sqlx.unwrap_or(0);
    }
    for &(number, name, sql) in MIGRATIONS {
        if number <= version {
            continue;
        }
        conn.execute_batch(&format!("BEGIN IMMEDIATE;\n{sql}\n;PRAGMA user_version = {number};\nCOMMIT;")).map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            failed(name, e)
        })?;
    }
    // Keep `user_version` in step even when the sqlx record was the source.
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(unavailable)?;
    if current < version {
        conn.pragma_update(None, "user_version", version).map_err(unavailable)?;
    }
    Ok(())
}

fn writer(conn: Connection, mut rx: mpsc::Receiver<Request>, inflight: &Mutex<HashSet<QueueItemId>>, notify: &Notify) {
    while let Some(first) = rx.blocking_recv() {
        let mut commits = Vec::new();
        let mut claims = Vec::new();
        let mut next = Some(first);
        while let Some(req) = next.take() {
            match req {
                Request::Commit(c, reply) => commits.push((c, reply)),
                Request::Claim(now, limit, reply) => claims.push((now, limit, reply)),
            }
            if commits.len() + claims.len() < MAX_GROUP {
                next = rx.try_recv().ok();
            }
        }
        if !commits.is_empty() {
            let results = commit_group_fast(&conn, &commits);
            let mut enqueued = false;
            let mut acked = Vec::new();
            for ((commit, _), r) in commits.iter().zip(&results) {
                if r.is_ok() {
                    for op in flatten(&commit.ops) {
                        match op {
                            // Every op that may insert or move up a queue item wakes the dispatcher.
                            WriteOp::Enqueue(_) | WriteOp::Throttled { .. } | WriteOp::Debounce { .. } | WriteOp::AppendBatch { .. } => {
                                enqueued = true
                            }
                            WriteOp::Ack(id) => acked.push(id.clone()),
                            _ => {}
                        }
                    }
                }
            }
            {
                let mut set = inflight.lock().unwrap_or_else(|e| e.into_inner());
                for id in acked {
                    set.remove(&id);
                }
            }
            if enqueued {
                notify.notify_one();
            }
            for ((_, reply), r) in commits.into_iter().zip(results) {
                let _ = reply.send(r);
            }
        }
        for (now, limit, reply) in claims {
            let _ = reply.send(claim(&conn, inflight, now, limit));
        }
    }
}

fn flatten(ops: &[WriteOp]) -> Vec<&WriteOp> {
    let mut out = Vec::new();
    for op in ops {
        out.push(op);
        if let WriteOp::Guarded { then, otherwise, .. } = op {
            out.extend(flatten(then));
            out.extend(flatten(otherwise));
        }
    }
    out
}

type Pending = (Commit, oneshot::Sender<Result<CommitOutcome>>);

fn exec_cached(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(|_| ()).map_err(unavailable)
}

/// Rolls back whatever transaction is still open, after a failure.
fn rollback(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = exec_cached(conn, "ROLLBACK");
    }
}

fn all_failed<T>(n: usize, e: &StoreError) -> Vec<Result<T>> {
    (0..n).map(|_| Err(StoreError::Unavailable(e.to_string()))).collect()
}

/// Applies a group of commits in one transaction. The common case (every
/// commit applies) costs one BEGIN/COMMIT; if any commit fails, the group is
/// redone with a savepoint per commit so only that one fails.
fn commit_group_fast(conn: &Connection, commits: &[Pending]) -> Vec<Result<CommitOutcome>> {
    if let Err(e) = exec_cached(conn, "BEGIN IMMEDIATE") {
        rollback(conn);
        return all_failed(commits.len(), &e);
    }
    let mut outs = Vec::with_capacity(commits.len());
    for (commit, _) in commits {
        match apply_all(conn, &commit.ops) {
            Ok(out) => outs.push(Ok(out)),
            Err(e) => {
                rollback(conn);
                if commits.len() == 1 {
                    return vec![Err(e)];
                }
                return commit_group(conn, commits);
            }
        }
    }
    match exec_cached(conn, "COMMIT") {
        Ok(()) => outs,
        Err(e) => {
            rollback(conn);
            all_failed(commits.len(), &e)
        }
    }
}

fn commit_group(conn: &Connection, commits: &[Pending]) -> Vec<Result<CommitOutcome>> {
    if let Err(e) = exec_cached(conn, "BEGIN IMMEDIATE") {
        rollback(conn);
        return all_failed(commits.len(), &e);
    }
    let mut results = Vec::with_capacity(commits.len());
    for (commit, _) in commits {
        if let Err(e) = exec_cached(conn, "SAVEPOINT one_commit") {
            results.push(Err(e));
            continue;
        }
        match apply_all(conn, &commit.ops) {
            Ok(out) => match exec_cached(conn, "RELEASE one_commit") {
                Ok(()) => results.push(Ok(out)),
                Err(e) => results.push(Err(e)),
            },
            Err(e) => {
                let _ = exec_cached(conn, "ROLLBACK TO one_commit");
                let _ = exec_cached(conn, "RELEASE one_commit");
                results.push(Err(e));
            }
        }
    }
    if let Err(e) = exec_cached(conn, "COMMIT") {
        rollback(conn);
        return all_failed(results.len(), &e);
    }
    results
}

fn js(v: &Value) -> String {
    v.to_string()
}

/// Runs one cached statement, returning the number of rows it changed.
fn exec(conn: &Connection, sql: &str, params: &[&dyn ToSql]) -> Result<usize> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute(params)).map_err(unavailable)
}

/// Runs one cached query expected to return at most one row.
fn query_opt<T>(conn: &Connection, sql: &str, params: &[&dyn ToSql], f: impl FnOnce(&Row<'_>) -> Result<T>) -> Result<Option<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(unavailable)?;
    let mut rows = stmt.query(params).map_err(unavailable)?;
    match rows.next().map_err(unavailable)? {
        Some(row) => f(row).map(Some),
        None => Ok(None),
    }
}

/// Runs one cached query, mapping every row.
fn query_all<T>(conn: &Connection, sql: &str, params: &[&dyn ToSql], mut f: impl FnMut(&Row<'_>) -> Result<T>) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(unavailable)?;
    let mut rows = stmt.query(params).map_err(unavailable)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(unavailable)? {
        out.push(f(row)?);
    }
    Ok(out)
}

/// Reads a column by name.
fn col<T: rusqlite::types::FromSql>(row: &Row<'_>, name: &str) -> Result<T> {
    row.get(name).map_err(|e| corrupt(name, e))
}

fn apply_all(conn: &Connection, ops: &[WriteOp]) -> Result<CommitOutcome> {
    let mut out = CommitOutcome::default();
    // A stack in reverse order, so a passed guard's ops run next, in order.
    let mut stack: Vec<&WriteOp> = ops.iter().rev().collect();
    while let Some(op) = stack.pop() {
        match op {
            WriteOp::UpsertApp(a) => {
                exec(
                    conn,
                    "INSERT INTO apps (id, url, sdk, framework, checksum, error, synced_at_ms) VALUES (?,?,?,?,?,?,?)
                     ON CONFLICT(id) DO UPDATE SET url=excluded.url, sdk=excluded.sdk, framework=excluded.framework,
                     checksum=excluded.checksum, error=excluded.error, synced_at_ms=excluded.synced_at_ms",
                    params![a.id, a.url, a.sdk, a.framework, a.checksum, a.error, a.synced_at_ms],
                )?;
            }
            WriteOp::SyncFunctions { app_id, functions } => {
                exec(conn, "UPDATE functions SET archived = 1 WHERE app_id = ?", params![app_id])?;
                for f in functions {
                    exec(
                        conn,
                        "INSERT INTO functions (slug, app_id, uuid, name, config, archived, updated_at_ms) VALUES (?,?,?,?,?,?,?)
                         ON CONFLICT(slug) DO UPDATE SET app_id=excluded.app_id, uuid=excluded.uuid, name=excluded.name,
                         config=excluded.config, archived=excluded.archived, updated_at_ms=excluded.updated_at_ms",
                        params![f.slug.0, f.app_id, f.uuid, f.name, js(&f.config), f.archived, f.updated_at_ms],
                    )?;
                }
            }
            WriteOp::SetAppError { app_id, error } => {
                exec(conn, "UPDATE apps SET error = ? WHERE id = ?", params![error, app_id])?;
            }
            WriteOp::InsertEvent(e) => {
                exec(
                    conn,
                    "INSERT OR IGNORE INTO events (internal_id, name, payload, received_at_ms) VALUES (?,?,?,?)",
                    params![e.internal_id.to_string(), e.name, js(&e.payload), e.received_at_ms],
                )?;
            }
            WriteOp::InsertRun(r) => {
                insert_run(conn, r)?;
                let rid = r.id().to_string();
                for e in &r.event_ids {
                    exec(conn, "INSERT OR IGNORE INTO run_events (event_id, run_id) VALUES (?,?)", params![e.to_string(), rid])?;
                }
            }
            WriteOp::UpdateRun { run, expected_rev } => {
                let changed = exec(
                    conn,
                    "UPDATE runs SET status=?, state=?, output=?, ended_at_ms=?, rev=rev+1 WHERE id=? AND rev=?",
                    params![
                        run.status().as_str(),
                        js(&state_to_json(&run.state)),
                        run.output.as_ref().map(js),
                        run.ended_at_ms,
                        run.id().to_string(),
                        expected_rev
                    ],
                )?;
                if changed != 1 {
                    return Err(StoreError::Conflict(format!("run {} changed (expected rev {expected_rev})", run.id())));
                }
            }
            WriteOp::SaveStep(s) => {
                exec(
                    conn,
                    "INSERT OR IGNORE INTO steps (run_id, step, name, memo, seq, at_ms)
                     VALUES (?1, ?2, ?3, ?4, (SELECT COALESCE(MAX(seq), 0) + 1 FROM steps WHERE run_id = ?1), ?5)",
                    params![s.run_id.to_string(), s.step, s.name, js(&s.memo), s.at_ms],
                )?;
            }
            WriteOp::Enqueue(q) => enqueue(conn, q, false)?,
            WriteOp::Throttled { name, now_ms, limit, period_ms, burst, item } => {
                let tat = limiter(conn, name)?;
                let g = ingot_core::flow::gcra(tat, *now_ms, *limit, *period_ms, *burst);
                set_limiter(conn, name, g.new_tat_ms)?;
                let mut item = item.clone();
                item.available_at_ms = item.available_at_ms.max(g.earliest_ms);
                enqueue(conn, &item, false)?;
            }
            WriteOp::Debounce { function, key, event_id, run_id, now_ms, period_ms, timeout_ms } => {
                let existing = query_opt(
                    conn,
                    "SELECT run_id, first_ms FROM debounces WHERE function = ? AND key = ?",
                    params![function, key],
                    |row| Ok((parse_run_id(col(row, "run_id")?)?, col::<i64>(row, "first_ms")?)),
                )?;
                let (rid, first) = existing.unwrap_or((*run_id, *now_ms));
                let fire = ingot_core::flow::debounce_fire_at(first, *now_ms, *period_ms, *timeout_ms);
                exec(
                    conn,
                    "INSERT OR REPLACE INTO debounces (function, key, run_id, event_id, first_ms, fire_ms) VALUES (?,?,?,?,?,?)",
                    params![function, key, rid.to_string(), event_id.to_string(), first, fire],
                )?;
                let item = QueueItem {
                    id: QueueItemId(format!("debounce:{function}:{key}")),
                    run_id: rid,
                    work: Work::Debounce { function: function.clone(), key: key.clone() },
                    available_at_ms: fire,
                    dedupe: None,
                };
                enqueue(conn, &item, true)?;
            }
            WriteOp::AppendBatch { function, key, event_id, run_id, now_ms, max_size, timeout_ms } => {
                let open = query_opt(
                    conn,
                    "SELECT run_id, event_ids FROM batches WHERE function = ? AND key = ? AND open = 1",
                    params![function, key],
                    |row| {
                        let ids: Vec<String> =
                            serde_json::from_str(&col::<String>(row, "event_ids")?).map_err(|e| corrupt("batch events", e))?;
                        Ok((parse_run_id(col(row, "run_id")?)?, ids))
                    },
                )?;
                let (rid, mut ids) = match open {
                    Some(found) => found,
                    None => {
                        let item = QueueItem {
                            id: QueueItemId(format!("batch:{run_id}")),
                            run_id: *run_id,
                            work: Work::Batch { function: function.clone(), key: key.clone() },
                            available_at_ms: now_ms + timeout_ms,
                            dedupe: None,
                        };
                        enqueue(conn, &item, false)?;
                        (*run_id, Vec::new())
                    }
                };
                ids.push(event_id.to_string());
                let full = ids.len() >= *max_size;
                exec(
                    conn,
                    "INSERT INTO batches (run_id, function, key, event_ids, first_ms, open) VALUES (?1,?2,?3,?4,?5,?6)
                     ON CONFLICT(run_id) DO UPDATE SET event_ids = excluded.event_ids, open = excluded.open",
                    params![rid.to_string(), function, key, serde_json::to_string(&ids).unwrap_or_default(), now_ms, !full],
                )?;
                if full {
                    exec(conn, "UPDATE queue SET available_at_ms = ? WHERE id = ?", params![now_ms, format!("batch:{rid}")])?;
                }
            }
            WriteOp::SetPaused { slug, paused } => {
                if *paused {
                    exec(conn, "INSERT OR IGNORE INTO paused_functions (slug) VALUES (?)", params![slug])?;
                } else {
                    exec(conn, "DELETE FROM paused_functions WHERE slug = ?", params![slug])?;
                }
            }
            WriteOp::SetSingleton { scope, key, run_id } => {
                exec(
                    conn,
                    "INSERT OR REPLACE INTO singletons (scope, key, run_id) VALUES (?,?,?)",
                    params![scope, key, run_id.to_string()],
                )?;
            }
            WriteOp::Purge { now_ms, before_ms, limit } => {
                let p = purge(conn, *now_ms, *before_ms, *limit)?;
                let acc = &mut out.purged;
                acc.runs += p.runs;
                acc.events += p.events;
                acc.expired += p.expired;
                acc.more |= p.more;
            }
            WriteOp::InsertSession(session) => {
                exec(
                    conn,
                    "INSERT OR REPLACE INTO sessions (id, created_at_ms, expires_at_ms) VALUES (?,?,?)",
                    params![session.id, session.created_at_ms, session.expires_at_ms],
                )?;
            }
            WriteOp::DeleteSession(id) => {
                exec(conn, "DELETE FROM sessions WHERE id = ?", params![id])?;
            }
            WriteOp::Skip(skip) => {
                exec(
                    conn,
                    "INSERT INTO skips (function, event_id, reason, at_ms) VALUES (?,?,?,?)",
                    params![skip.function, skip.event_id.to_string(), skip.reason, skip.at_ms],
                )?;
            }
            WriteOp::Ack(id) => {
                exec(conn, "DELETE FROM queue WHERE id = ?", params![id.0])?;
            }
            WriteOp::InsertPause(p) => {
                exec(
                    conn,
                    "INSERT OR REPLACE INTO pauses (id, run_id, step, kind, event_name, if_exp, correlation_id, trigger, expires_at_ms)
                     VALUES (?,?,?,?,?,?,?,?,?)",
                    params![
                        p.id,
                        p.run_id.to_string(),
                        p.step,
                        p.kind.as_str(),
                        p.event_name,
                        p.if_exp,
                        p.correlation_id,
                        js(&p.trigger),
                        p.expires_at_ms
                    ],
                )?;
            }
            WriteOp::ClearRunWork(run_id) => {
                let id = run_id.to_string();
                exec(conn, "DELETE FROM queue WHERE run_id = ?", params![id])?;
                exec(conn, "DELETE FROM pauses WHERE run_id = ?", params![id])?;
            }
            WriteOp::History(h) => {
                exec(
                    conn,
                    "INSERT INTO history (run_id, at_ms, kind, step, name, attempt, duration_ms, detail) VALUES (?,?,?,?,?,?,?,?)",
                    params![h.run_id.to_string(), h.at_ms, h.kind, h.step, h.name, h.attempt.map(i64::from), h.duration_ms, js(&h.detail)],
                )?;
            }
            WriteOp::Guarded { guard, then, otherwise } => {
                let passed = match guard {
                    Guard::ConsumePause(id) => exec(conn, "DELETE FROM pauses WHERE id = ?", params![id])? == 1,
                    Guard::UniqueKey { scope, key, now_ms, expires_at_ms } => {
                        exec(
                            conn,
                            "INSERT INTO unique_keys (scope, key, expires_at_ms) VALUES (?1, ?2, ?3)
                             ON CONFLICT(scope, key) DO UPDATE SET expires_at_ms = excluded.expires_at_ms WHERE unique_keys.expires_at_ms <= ?4",
                            params![scope, key, expires_at_ms, now_ms],
                        )? == 1
                    }
                    Guard::RateLimit { name, now_ms, limit, period_ms } => {
                        let g = ingot_core::flow::rate_limit_gcra(limiter(conn, name)?, *now_ms, *limit, *period_ms);
                        let ok = g.earliest_ms <= *now_ms;
                        if ok {
                            set_limiter(conn, name, g.new_tat_ms)?;
                        }
                        ok
                    }
                    Guard::TakeBatch { run_id, count } => {
                        let rid = run_id.to_string();
                        let held = query_opt(conn, "SELECT event_ids FROM batches WHERE run_id = ?", params![rid], |row| {
                            serde_json::from_str::<Vec<String>>(&col::<String>(row, "event_ids")?)
                                .map(|ids| ids.len())
                                .map_err(|e| corrupt("batch events", e))
                        })?
                        .unwrap_or(usize::MAX);
                        let ok = held == *count;
                        if ok {
                            exec(conn, "DELETE FROM batches WHERE run_id = ?", params![rid])?;
                        }
                        ok
                    }
                    Guard::TakeDebounce { function, key, event_id } => {
                        exec(
                            conn,
                            "DELETE FROM debounces WHERE function = ? AND key = ? AND event_id = ?",
                            params![function, key, event_id.to_string()],
                        )? == 1
                    }
                    Guard::Singleton { scope, key, run_id } => {
                        let holder = query_opt(
                            conn,
                            "SELECT r.status FROM singletons s LEFT JOIN runs r ON r.id = s.run_id WHERE s.scope = ? AND s.key = ?",
                            params![scope, key],
                            |row| col::<Option<String>>(row, "status"),
                        )?;
                        let free = match holder {
                            None => true,
                            Some(status) => status.is_none_or(|s| s != RunStatus::Running.as_str()),
                        };
                        if free {
                            exec(
                                conn,
                                "INSERT OR REPLACE INTO singletons (scope, key, run_id) VALUES (?,?,?)",
                                params![scope, key, run_id.to_string()],
                            )?;
                        }
                        free
                    }
                };
                out.guards_passed.push(passed);
                stack.extend(if passed { then } else { otherwise }.iter().rev());
            }
        }
    }
    Ok(out)
}

/// What a finished run leaves behind, by run id (its queue items and pauses
/// are normally cleared when it ends; leftovers go with it).
const RUN_LEFTOVERS: [&str; 8] = [
    "DELETE FROM steps WHERE run_id = ?",
    "DELETE FROM history WHERE run_id = ?",
    "DELETE FROM run_events WHERE run_id = ?",
    "DELETE FROM queue WHERE run_id = ?",
    "DELETE FROM pauses WHERE run_id = ?",
    "DELETE FROM singletons WHERE run_id = ?",
    "DELETE FROM batches WHERE run_id = ?",
    "DELETE FROM runs WHERE id = ?",
];

/// State that is dead at `now` (?1), `limit` (?2) rows at a time. A limiter
/// whose theoretical arrival time has passed acts as no row at all (GCRA
/// starts from `max(tat, now)`), so deleting it changes nothing.
const EXPIRED: [&str; 3] = [
    "DELETE FROM unique_keys WHERE rowid IN (SELECT rowid FROM unique_keys WHERE expires_at_ms <= ?1 LIMIT ?2)",
    "DELETE FROM limiters WHERE rowid IN (SELECT rowid FROM limiters WHERE tat_ms <= ?1 LIMIT ?2)",
    "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions WHERE expires_at_ms <= ?1 LIMIT ?2)",
];

/// One retention pass (see [`WriteOp::Purge`]); every query walks an index
/// on the column it purges by (migration 0004).
fn purge(conn: &Connection, now_ms: i64, before_ms: i64, limit: usize) -> Result<Purged> {
    let max = limit as i64;
    let runs: Vec<String> = query_all(
        conn,
        "SELECT id FROM runs WHERE ended_at_ms < ? AND status != 'Running' ORDER BY ended_at_ms LIMIT ?",
        params![before_ms, max],
        |row| col(row, "id"),
    )?;
    for id in &runs {
        for sql in RUN_LEFTOVERS {
            exec(conn, sql, params![id])?;
        }
    }
    // After the runs, so the events of the runs just deleted go in the same pass.
    let events = exec(
        conn,
        "DELETE FROM events WHERE internal_id IN (SELECT e.internal_id FROM events e WHERE e.received_at_ms < ?1
         AND NOT EXISTS (SELECT 1 FROM run_events re WHERE re.event_id = e.internal_id)
         AND NOT EXISTS (SELECT 1 FROM debounces d WHERE d.event_id = e.internal_id)
         ORDER BY e.received_at_ms LIMIT ?2)",
        params![before_ms, max],
    )?;
    // A limit of 0 deletes nothing and has nothing more to do.
    let full = |n: usize| limit > 0 && n >= limit;
    let mut more = full(runs.len()) || full(events);
    let mut expired = 0;
    for sql in EXPIRED {
        let n = exec(conn, sql, params![now_ms, max])?;
        more |= full(n);
        expired += n;
    }
    let skips = exec(conn, "DELETE FROM skips WHERE id IN (SELECT id FROM skips WHERE at_ms < ?1 LIMIT ?2)", params![before_ms, max])?;
    more |= full(skips);
    Ok(Purged { runs: runs.len(), events, expired: expired + skips, more })
}

/// Inserts a queue item; `replace` replaces an item with the same id (or dedupe key), else it is kept.
fn enqueue(conn: &Connection, q: &QueueItem, replace: bool) -> Result<()> {
    let sql = if replace {
        "INSERT OR REPLACE INTO queue (id, run_id, work, available_at_ms, dedupe) VALUES (?,?,?,?,?)"
    } else {
        "INSERT OR IGNORE INTO queue (id, run_id, work, available_at_ms, dedupe) VALUES (?,?,?,?,?)"
    };
    exec(conn, sql, params![q.id.0, q.run_id.to_string(), js(&work_to_json(&q.work)), q.available_at_ms, q.dedupe])?;
    Ok(())
}

fn limiter(conn: &Connection, name: &str) -> Result<Option<i64>> {
    query_opt(conn, "SELECT tat_ms FROM limiters WHERE name = ?", params![name], |row| col(row, "tat_ms"))
}

fn set_limiter(conn: &Connection, name: &str, tat: i64) -> Result<()> {
    exec(conn, "INSERT OR REPLACE INTO limiters (name, tat_ms) VALUES (?, ?)", params![name, tat])?;
    Ok(())
}

fn parse_run_id(s: String) -> Result<RunId> {
    RunId::parse(&s).ok_or_else(|| corrupt("run id", s))
}

fn insert_run(conn: &Connection, r: &RunRecord) -> Result<()> {
    let event_ids: Vec<String> = r.event_ids.iter().map(|e| e.to_string()).collect();
    exec(
        conn,
        "INSERT OR IGNORE INTO runs (id, function, status, state, event_ids, output, started_at_ms, ended_at_ms, correlation_id, rev)
         VALUES (?,?,?,?,?,?,?,?,?,?)",
        params![
            r.id().to_string(),
            r.state.function.0,
            r.status().as_str(),
            js(&state_to_json(&r.state)),
            serde_json::to_string(&event_ids).unwrap_or_default(),
            r.output.as_ref().map(js),
            r.started_at_ms,
            r.ended_at_ms,
            r.correlation_id,
            r.rev
        ],
    )?;
    Ok(())
}

fn claim(conn: &Connection, inflight: &Mutex<HashSet<QueueItemId>>, now_ms: i64, limit: usize) -> Result<Claim> {
    let held = inflight.lock().unwrap_or_else(|e| e.into_inner()).len();
    let items = query_all(
        conn,
        "SELECT id, run_id, work, available_at_ms, dedupe FROM queue ORDER BY available_at_ms, id LIMIT ?",
        params![(limit + held + 1) as i64],
        queue_row,
    )?;
    let mut claim = Claim::default();
    let mut set = inflight.lock().unwrap_or_else(|e| e.into_inner());
    for item in items {
        if set.contains(&item.id) {
            continue;
        }
        if item.available_at_ms <= now_ms && claim.items.len() < limit {
            set.insert(item.id.clone());
            claim.items.push(item);
        } else {
            claim.next_at_ms = Some(item.available_at_ms.max(now_ms));
            break;
        }
    }
    Ok(claim)
}

fn parse_json(s: &str, what: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

fn run_id(s: &str) -> Result<RunId> {
    RunId::parse(s).ok_or_else(|| corrupt("run id", s))
}

fn event_id(s: &str) -> Result<EventId> {
    EventId::parse(s).ok_or_else(|| corrupt("event id", s))
}

fn queue_row(row: &Row<'_>) -> Result<QueueItem> {
    Ok(QueueItem {
        id: QueueItemId(col(row, "id")?),
        run_id: run_id(&col::<String>(row, "run_id")?)?,
        work: work_from_json(&parse_json(&col::<String>(row, "work")?, "queue work")?)?,
        available_at_ms: col(row, "available_at_ms")?,
        dedupe: col(row, "dedupe")?,
    })
}

fn run_row(row: &Row<'_>) -> Result<RunRecord> {
    let id = run_id(&col::<String>(row, "id")?)?;
    let status_s: String = col(row, "status")?;
    let status = RunStatus::parse(&status_s).ok_or_else(|| corrupt("run status", &status_s))?;
    let state = state_from_json(id, status, &parse_json(&col::<String>(row, "state")?, "run state")?)?;
    let ids: Vec<String> = serde_json::from_str(&col::<String>(row, "event_ids")?).map_err(|e| corrupt("run event ids", e))?;
    let output: Option<String> = col(row, "output")?;
    Ok(RunRecord {
        state,
        event_ids: ids.iter().map(|s| event_id(s)).collect::<Result<_>>()?,
        output: output.map(|o| parse_json(&o, "run output")).transpose()?,
        started_at_ms: col(row, "started_at_ms")?,
        ended_at_ms: col(row, "ended_at_ms")?,
        correlation_id: col(row, "correlation_id")?,
        rev: col(row, "rev")?,
    })
}

fn event_row(row: &Row<'_>) -> Result<StoredEvent> {
    Ok(StoredEvent {
        internal_id: event_id(&col::<String>(row, "internal_id")?)?,
        name: col(row, "name")?,
        payload: parse_json(&col::<String>(row, "payload")?, "event payload")?,
        received_at_ms: col(row, "received_at_ms")?,
    })
}

fn pause_row(row: &Row<'_>) -> Result<Pause> {
    let kind: String = col(row, "kind")?;
    Ok(Pause {
        id: col(row, "id")?,
        run_id: run_id(&col::<String>(row, "run_id")?)?,
        step: col(row, "step")?,
        kind: PauseKind::parse(&kind).ok_or_else(|| corrupt("pause kind", &kind))?,
        event_name: col(row, "event_name")?,
        if_exp: col(row, "if_exp")?,
        correlation_id: col(row, "correlation_id")?,
        trigger: parse_json(&col::<String>(row, "trigger")?, "pause trigger")?,
        expires_at_ms: col(row, "expires_at_ms")?,
    })
}

const RUN_COLS: &str = "id, function, status, state, event_ids, output, started_at_ms, ended_at_ms, correlation_id, rev";

#[async_trait]
impl Store for SqliteStore {
    async fn commit(&self, commit: Commit) -> Result<CommitOutcome> {
        self.request(|tx| Request::Commit(commit, tx)).await
    }

    async fn claim(&self, now_ms: i64, limit: usize) -> Result<Claim> {
        self.request(|tx| Request::Claim(now_ms, limit, tx)).await
    }

    async fn release(&self, item: &QueueItemId) {
        self.inflight.lock().unwrap_or_else(|e| e.into_inner()).remove(item);
        self.notify.notify_one();
    }

    fn work_notify(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    async fn apps(&self) -> Result<Vec<AppRecord>> {
        self.read(|conn| {
            query_all(conn, "SELECT * FROM apps ORDER BY id", params![], |r| {
                Ok(AppRecord {
                    id: col(r, "id")?,
                    url: col(r, "url")?,
                    sdk: col(r, "sdk")?,
                    framework: col(r, "framework")?,
                    checksum: col(r, "checksum")?,
                    error: col(r, "error")?,
                    synced_at_ms: col(r, "synced_at_ms")?,
                })
            })
        })
        .await
    }

    async fn functions(&self, include_archived: bool) -> Result<Vec<FunctionRecord>> {
        let sql = if include_archived {
            "SELECT * FROM functions ORDER BY slug"
        } else {
            "SELECT * FROM functions WHERE archived = 0 ORDER BY slug"
        };
        self.read(move |conn| {
            query_all(conn, sql, params![], |r| {
                Ok(FunctionRecord {
                    slug: FunctionSlug(col(r, "slug")?),
                    app_id: col(r, "app_id")?,
                    uuid: col(r, "uuid")?,
                    name: col(r, "name")?,
                    config: parse_json(&col::<String>(r, "config")?, "function config")?,
                    archived: col::<i64>(r, "archived")? != 0,
                    updated_at_ms: col(r, "updated_at_ms")?,
                })
            })
        })
        .await
    }

    async fn run(&self, id: RunId) -> Result<Option<RunRecord>> {
        self.read(move |conn| query_opt(conn, &format!("SELECT {RUN_COLS} FROM runs WHERE id = ?"), params![id.to_string()], run_row)).await
    }

    async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        let limit = if filter.limit == 0 { -1 } else { filter.limit as i64 };
        let status = filter.status.map(|s| s.as_str());
        let function = filter.function.as_ref().map(|f| f.0.clone());
        self.read(move |conn| {
            query_all(
                conn,
                &format!(
                    "SELECT {RUN_COLS} FROM runs WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR function = ?2) ORDER BY id DESC LIMIT ?3"
                ),
                params![status, function, limit],
                run_row,
            )
        })
        .await
    }

    async fn runs_for_event(&self, id: EventId) -> Result<Vec<RunRecord>> {
        self.read(move |conn| {
            query_all(
                conn,
                &format!("SELECT {RUN_COLS} FROM runs WHERE id IN (SELECT run_id FROM run_events WHERE event_id = ?) ORDER BY id"),
                params![id.to_string()],
                run_row,
            )
        })
        .await
    }

    async fn run_steps(&self, id: RunId) -> Result<Vec<StepRecord>> {
        self.read(move |conn| {
            query_all(conn, "SELECT step, name, memo, seq, at_ms FROM steps WHERE run_id = ? ORDER BY seq", params![id.to_string()], |r| {
                Ok(StepRecord {
                    run_id: id,
                    step: col(r, "step")?,
                    name: col(r, "name")?,
                    memo: parse_json(&col::<String>(r, "memo")?, "step memo")?,
                    seq: col(r, "seq")?,
                    at_ms: col(r, "at_ms")?,
                })
            })
        })
        .await
    }

    async fn run_history(&self, id: RunId) -> Result<Vec<HistoryRecord>> {
        self.read(move |conn| {
            query_all(
                conn,
                "SELECT at_ms, kind, step, name, attempt, duration_ms, detail FROM history WHERE run_id = ? ORDER BY id",
                params![id.to_string()],
                |r| {
                    Ok(HistoryRecord {
                        run_id: id,
                        at_ms: col(r, "at_ms")?,
                        kind: col(r, "kind")?,
                        step: col(r, "step")?,
                        name: col(r, "name")?,
                        attempt: col::<Option<i64>>(r, "attempt")?.map(|a| a as u32),
                        duration_ms: col(r, "duration_ms")?,
                        detail: parse_json(&col::<String>(r, "detail")?, "history detail")?,
                    })
                },
            )
        })
        .await
    }

    async fn run_items(&self, id: RunId) -> Result<Vec<QueueItem>> {
        self.read(move |conn| {
            query_all(
                conn,
                "SELECT id, run_id, work, available_at_ms, dedupe FROM queue WHERE run_id = ? ORDER BY available_at_ms",
                params![id.to_string()],
                queue_row,
            )
        })
        .await
    }

    async fn event(&self, id: EventId) -> Result<Option<StoredEvent>> {
        self.read(move |conn| query_opt(conn, "SELECT * FROM events WHERE internal_id = ?", params![id.to_string()], event_row)).await
    }

    async fn events_by_ids(&self, ids: &[EventId]) -> Result<Vec<StoredEvent>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        self.read(move |conn| {
            let mut out = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(500) {
                let marks = vec!["?"; chunk.len()].join(",");
                let sql = format!("SELECT * FROM events WHERE internal_id IN ({marks})");
                let keys: Vec<String> = chunk.iter().map(|id| id.to_string()).collect();
                let params: Vec<&dyn ToSql> = keys.iter().map(|k| k as &dyn ToSql).collect();
                // Ad hoc: one statement per chunk size would only fill the cache.
                let mut stmt = conn.prepare(&sql).map_err(unavailable)?;
                let mut rows = stmt.query(params.as_slice()).map_err(unavailable)?;
                let mut found: HashMap<EventId, StoredEvent> = HashMap::with_capacity(chunk.len());
                while let Some(row) = rows.next().map_err(unavailable)? {
                    let e = event_row(row)?;
                    found.insert(e.internal_id, e);
                }
                out.extend(chunk.iter().filter_map(|id| found.remove(id)));
            }
            Ok(out)
        })
        .await
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
        let limit = if filter.limit == 0 { -1 } else { filter.limit as i64 };
        let name = filter.name.clone();
        let before = filter.before.map(|b| b.to_string());
        let (after_ms, before_ms) = (filter.received_after_ms, filter.received_before_ms);
        self.read(move |conn| {
            query_all(
                conn,
                "SELECT * FROM events WHERE (?1 IS NULL OR name = ?1) AND (?2 IS NULL OR internal_id < ?2)
                 AND (?3 IS NULL OR received_at_ms >= ?3) AND (?4 IS NULL OR received_at_ms <= ?4)
                 ORDER BY internal_id DESC LIMIT ?5",
                params![name, before, after_ms, before_ms, limit],
                event_row,
            )
        })
        .await
    }

    async fn pauses_for_event(&self, name: &str) -> Result<Vec<Pause>> {
        let name = name.to_string();
        self.read(move |conn| query_all(conn, "SELECT * FROM pauses WHERE event_name = ?", params![name], pause_row)).await
    }

    async fn pause_by_correlation(&self, correlation_id: &str) -> Result<Option<Pause>> {
        let correlation_id = correlation_id.to_string();
        self.read(move |conn| query_opt(conn, "SELECT * FROM pauses WHERE correlation_id = ?", params![correlation_id], pause_row)).await
    }

    async fn pauses_for_run(&self, id: RunId) -> Result<Vec<Pause>> {
        self.read(move |conn| query_all(conn, "SELECT * FROM pauses WHERE run_id = ?", params![id.to_string()], pause_row)).await
    }

    async fn debounce(&self, function: &str, key: &str) -> Result<Option<DebounceRecord>> {
        let (function, key) = (function.to_string(), key.to_string());
        self.read(move |conn| {
            query_opt(conn, "SELECT * FROM debounces WHERE function = ? AND key = ?", params![function, key], |r| {
                Ok(DebounceRecord {
                    function: col(r, "function")?,
                    key: col(r, "key")?,
                    run_id: parse_run_id(col(r, "run_id")?)?,
                    event_id: event_id(&col::<String>(r, "event_id")?)?,
                    first_ms: col(r, "first_ms")?,
                    fire_ms: col(r, "fire_ms")?,
                })
            })
        })
        .await
    }

    async fn batch(&self, run_id: RunId) -> Result<Option<BatchRecord>> {
        self.read(move |conn| {
            query_opt(conn, "SELECT * FROM batches WHERE run_id = ?", params![run_id.to_string()], |r| {
                let ids: Vec<String> = serde_json::from_str(&col::<String>(r, "event_ids")?).map_err(|e| corrupt("batch events", e))?;
                Ok(BatchRecord {
                    function: col(r, "function")?,
                    key: col(r, "key")?,
                    run_id,
                    event_ids: ids.iter().map(|s| event_id(s)).collect::<Result<_>>()?,
                    first_ms: col(r, "first_ms")?,
                })
            })
        })
        .await
    }

    async fn skips(&self, function: Option<&str>, limit: usize) -> Result<Vec<SkipRecord>> {
        let limit = if limit == 0 { -1 } else { limit as i64 };
        let function = function.map(str::to_string);
        self.read(move |conn| {
            query_all(
                conn,
                "SELECT * FROM skips WHERE (?1 IS NULL OR function = ?1) ORDER BY id DESC LIMIT ?2",
                params![function, limit],
                |r| {
                    Ok(SkipRecord {
                        function: col(r, "function")?,
                        event_id: event_id(&col::<String>(r, "event_id")?)?,
                        reason: col(r, "reason")?,
                        at_ms: col(r, "at_ms")?,
                    })
                },
            )
        })
        .await
    }

    async fn paused_functions(&self) -> Result<Vec<String>> {
        self.read(move |conn| query_all(conn, "SELECT slug FROM paused_functions ORDER BY slug", params![], |r| col(r, "slug"))).await
    }

    async fn singleton_holder(&self, scope: &str, key: &str) -> Result<Option<RunId>> {
        let (scope, key) = (scope.to_string(), key.to_string());
        self.read(move |conn| {
            query_opt(conn, "SELECT run_id FROM singletons WHERE scope = ? AND key = ?", params![scope, key], |r| {
                parse_run_id(col(r, "run_id")?)
            })
        })
        .await
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        let id = id.to_string();
        self.read(move |conn| {
            query_opt(conn, "SELECT id, created_at_ms, expires_at_ms FROM sessions WHERE id = ?", params![id], |r| {
                Ok(SessionRecord { id: col(r, "id")?, created_at_ms: col(r, "created_at_ms")?, expires_at_ms: col(r, "expires_at_ms")? })
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    /// Every file in `migrations/sqlite` is listed, in order, numbered by its prefix.
    #[test]
    fn migrations_list_matches_the_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS.iter().map(|(_, name, _)| name.to_string()).collect();
        assert_eq!(files, listed);
        for (i, (number, name, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*number, i as i64 + 1);
            assert_eq!(name[..4].parse::<i64>().unwrap(), *number);
        }
    }

    /// Every table is either purged by retention or bounded by configuration:
    /// a new table must be added here, and to `purge` if it grows per run or event.
    #[tokio::test]
    async fn every_table_is_purged_or_bounded() {
        const PURGED: &[&str] = &[
            "runs",
            "steps",
            "history",
            "run_events",
            "queue",
            "pauses",
            "singletons",
            "batches",
            "events",
            "unique_keys",
            "limiters",
            "sessions",
            "skips",
        ];
        // Apps, functions and paused functions are as many as were synced; a
        // debounce row lives only until its run starts (`TakeDebounce`).
        const BOUNDED: &[&str] = &["apps", "functions", "paused_functions", "debounces"];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ingot.db");
        drop(super::SqliteStore::open(&path).await.unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mut stmt =
            conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").unwrap();
        let mut tables: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect();
        tables.sort();
        let mut known: Vec<String> = PURGED.iter().chain(BOUNDED).map(|t| t.to_string()).collect();
        known.sort();
        assert_eq!(tables, known);
        for sql in super::RUN_LEFTOVERS {
            assert!(PURGED.iter().any(|t| sql.contains(&format!(" {t} "))), "{sql}");
        }
    }

    /// Each retention query walks an index, never a whole table that grows with the load.
    #[tokio::test]
    async fn retention_queries_use_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ingot.db");
        drop(super::SqliteStore::open(&path).await.unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows: Vec<String> = stmt.query_map([1i64, 2i64], |r| r.get::<_, String>(3)).unwrap().map(|r| r.unwrap()).collect();
            rows.join("; ")
        };
        let queries = [
            "SELECT id FROM runs WHERE ended_at_ms < ?1 AND status != 'Running' ORDER BY ended_at_ms LIMIT ?2",
            "SELECT e.internal_id FROM events e WHERE e.received_at_ms < ?1
             AND NOT EXISTS (SELECT 1 FROM run_events re WHERE re.event_id = e.internal_id)
             AND NOT EXISTS (SELECT 1 FROM debounces d WHERE d.event_id = e.internal_id) ORDER BY e.received_at_ms LIMIT ?2",
            "SELECT rowid FROM unique_keys WHERE expires_at_ms <= ?1 LIMIT ?2",
            "SELECT rowid FROM limiters WHERE tat_ms <= ?1 LIMIT ?2",
            "SELECT rowid FROM sessions WHERE expires_at_ms <= ?1 LIMIT ?2",
            "SELECT id FROM skips WHERE at_ms < ?1 LIMIT ?2",
            "SELECT 1 FROM run_events WHERE run_id = ?1 LIMIT ?2",
            "SELECT 1 FROM singletons WHERE run_id = ?1 LIMIT ?2",
        ];
        for sql in queries {
            let p = plan(sql);
            assert!(p.starts_with("SEARCH") && !p.contains("SCAN"), "{sql}\n  → {p}");
        }
    }

    /// A database migrated by the earlier sqlx-based store opens without re-running its migrations.
    #[tokio::test]
    async fn opens_a_database_migrated_by_sqlx() {
        use crate::Store;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ingot.db");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            // The sqlx-based store only ever had the first two migrations.
            for (_, _, sql) in &MIGRATIONS[..2] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch(
                "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
                 installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL,
                 checksum BLOB NOT NULL, execution_time BIGINT NOT NULL);
                 INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                 VALUES (1, 'init', 1, x'00', 1), (2, 'flow control', 1, x'00', 1);
                 INSERT INTO apps (id, url, synced_at_ms) VALUES ('app', 'http://localhost/api/inngest', 1);",
            )
            .unwrap();
        }
        let store = super::SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.apps().await.unwrap().len(), 1);
        drop(store);
        let conn = rusqlite::Connection::open(&path).unwrap();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
    }
}
