//! The SQLite store: one file in WAL mode with `synchronous=FULL`.
//!
//! All writes go through one writer task that owns one connection and groups
//! the commits waiting in its channel into one transaction (one fsync), each
//! inside its own savepoint so one failing commit does not fail the others.
//! Claims are served by the same task, so a claim never sees an item that a
//! commit has already acked. Leases live in memory: SQLite serves a single
//! engine process, and a restart starts with every item claimable.

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ingot_core::{EventId, FunctionSlug, RunId, RunStatus};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Acquire, Connection, Row, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::records::*;
use crate::{Claim, Result, Store, StoreError};

/// Most commits grouped into one transaction.
const MAX_GROUP: usize = 512;

enum Request {
    Commit(Commit, oneshot::Sender<Result<CommitOutcome>>),
    Claim(i64, usize, oneshot::Sender<Result<Claim>>),
}

/// The SQLite-backed store.
pub struct SqliteStore {
    read: SqlitePool,
    tx: mpsc::Sender<Request>,
    inflight: Arc<Mutex<HashSet<QueueItemId>>>,
    notify: Arc<Notify>,
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(unavailable)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(false);
        let read = SqlitePoolOptions::new().max_connections(4).connect_with(opts.clone()).await.map_err(unavailable)?;
        sqlx::migrate!("./migrations/sqlite").run(&read).await.map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        let conn = SqliteConnection::connect_with(&opts).await.map_err(unavailable)?;
        let (tx, rx) = mpsc::channel(4096);
        let inflight = Arc::new(Mutex::new(HashSet::new()));
        let notify = Arc::new(Notify::new());
        tokio::spawn(writer(conn, rx, inflight.clone(), notify.clone()));
        Ok(SqliteStore { read, tx, inflight, notify })
    }

    async fn request<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Request) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| StoreError::Unavailable("store writer stopped".into()))?;
        rx.await.map_err(|_| StoreError::Unavailable("store writer stopped".into()))?
    }
}

async fn writer(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Request>,
    inflight: Arc<Mutex<HashSet<QueueItemId>>>,
    notify: Arc<Notify>,
) {
    while let Some(first) = rx.recv().await {
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
            let results = commit_group_fast(&mut conn, &commits).await;
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
            let _ = reply.send(claim(&mut conn, &inflight, now, limit).await);
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

/// Applies a group of commits in one transaction. The common case (every
/// commit applies) costs one BEGIN/COMMIT; if any commit fails, the group is
/// redone with a savepoint per commit so only that one fails.
async fn commit_group_fast(
    conn: &mut SqliteConnection,
    commits: &[(Commit, oneshot::Sender<Result<CommitOutcome>>)],
) -> Vec<Result<CommitOutcome>> {
    let mut tx = match Connection::begin(&mut *conn).await {
        Ok(tx) => tx,
        Err(e) => return commits.iter().map(|_| Err(unavailable_ref(&e))).collect(),
    };
    let mut outs = Vec::with_capacity(commits.len());
    for (commit, _) in commits {
        match apply_all(&mut tx, commit.ops.clone()).await {
            Ok(out) => outs.push(Ok(out)),
            Err(e) => {
                let _ = tx.rollback().await;
                if commits.len() == 1 {
                    return vec![Err(e)];
                }
                return commit_group(conn, commits).await;
            }
        }
    }
    match tx.commit().await {
        Ok(()) => outs,
        Err(e) => commits.iter().map(|_| Err(unavailable_ref(&e))).collect(),
    }
}

async fn commit_group(
    conn: &mut SqliteConnection,
    commits: &[(Commit, oneshot::Sender<Result<CommitOutcome>>)],
) -> Vec<Result<CommitOutcome>> {
    let mut results = Vec::with_capacity(commits.len());
    let mut tx = match Connection::begin(conn).await {
        Ok(tx) => tx,
        Err(e) => return commits.iter().map(|_| Err(unavailable_ref(&e))).collect(),
    };
    for (commit, _) in commits {
        let mut sp = match Acquire::begin(&mut tx).await {
            Ok(sp) => sp,
            Err(e) => {
                results.push(Err(unavailable_ref(&e)));
                continue;
            }
        };
        match apply_all(&mut sp, commit.ops.clone()).await {
            Ok(out) => match sp.commit().await {
                Ok(()) => results.push(Ok(out)),
                Err(e) => results.push(Err(unavailable(e))),
            },
            Err(e) => {
                let _ = sp.rollback().await;
                results.push(Err(e));
            }
        }
    }
    if let Err(e) = tx.commit().await {
        return results.into_iter().map(|_| Err(unavailable_ref(&e))).collect();
    }
    results
}

fn unavailable_ref(e: &sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn js(v: &Value) -> String {
    v.to_string()
}

async fn apply_all(conn: &mut SqliteConnection, ops: Vec<WriteOp>) -> Result<CommitOutcome> {
    let mut out = CommitOutcome::default();
    // A stack in reverse order, so a passed guard's ops run next, in order.
    let mut stack: Vec<WriteOp> = ops.into_iter().rev().collect();
    while let Some(op) = stack.pop() {
        match op {
            WriteOp::UpsertApp(a) => {
                sqlx::query(
                    "INSERT INTO apps (id, url, sdk, framework, checksum, error, synced_at_ms) VALUES (?,?,?,?,?,?,?)
                     ON CONFLICT(id) DO UPDATE SET url=excluded.url, sdk=excluded.sdk, framework=excluded.framework,
                     checksum=excluded.checksum, error=excluded.error, synced_at_ms=excluded.synced_at_ms",
                )
                .bind(&a.id)
                .bind(&a.url)
                .bind(&a.sdk)
                .bind(&a.framework)
                .bind(&a.checksum)
                .bind(&a.error)
                .bind(a.synced_at_ms)
                .execute(&mut *conn)
                .await
                .map_err(unavailable)?;
            }
            WriteOp::SyncFunctions { app_id, functions } => {
                sqlx::query("UPDATE functions SET archived = 1 WHERE app_id = ?")
                    .bind(&app_id)
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?;
                for f in functions {
                    sqlx::query(
                        "INSERT INTO functions (slug, app_id, uuid, name, config, archived, updated_at_ms) VALUES (?,?,?,?,?,?,?)
                         ON CONFLICT(slug) DO UPDATE SET app_id=excluded.app_id, uuid=excluded.uuid, name=excluded.name,
                         config=excluded.config, archived=excluded.archived, updated_at_ms=excluded.updated_at_ms",
                    )
                    .bind(&f.slug.0)
                    .bind(&f.app_id)
                    .bind(&f.uuid)
                    .bind(&f.name)
                    .bind(js(&f.config))
                    .bind(f.archived)
                    .bind(f.updated_at_ms)
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?;
                }
            }
            WriteOp::SetAppError { app_id, error } => {
                sqlx::query("UPDATE apps SET error = ? WHERE id = ?")
                    .bind(error)
                    .bind(app_id)
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?;
            }
            WriteOp::InsertEvent(e) => {
                sqlx::query("INSERT OR IGNORE INTO events (internal_id, name, payload, received_at_ms) VALUES (?,?,?,?)")
                    .bind(e.internal_id.to_string())
                    .bind(&e.name)
                    .bind(js(&e.payload))
                    .bind(e.received_at_ms)
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?;
            }
            WriteOp::InsertRun(r) => {
                insert_run(conn, &r).await?;
                for e in &r.event_ids {
                    sqlx::query("INSERT OR IGNORE INTO run_events (event_id, run_id) VALUES (?,?)")
                        .bind(e.to_string())
                        .bind(r.id().to_string())
                        .execute(&mut *conn)
                        .await
                        .map_err(unavailable)?;
                }
            }
            WriteOp::UpdateRun { run, expected_rev } => {
                let res = sqlx::query("UPDATE runs SET status=?, state=?, output=?, ended_at_ms=?, rev=rev+1 WHERE id=? AND rev=?")
                    .bind(run.status().as_str())
                    .bind(js(&state_to_json(&run.state)))
                    .bind(run.output.as_ref().map(js))
                    .bind(run.ended_at_ms)
                    .bind(run.id().to_string())
                    .bind(expected_rev)
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?;
                if res.rows_affected() != 1 {
                    return Err(StoreError::Conflict(format!("run {} changed (expected rev {expected_rev})", run.id())));
                }
            }
            WriteOp::SaveStep(s) => {
                sqlx::query(
                    "INSERT OR IGNORE INTO steps (run_id, step, name, memo, seq, at_ms)
                     VALUES (?1, ?2, ?3, ?4, (SELECT COALESCE(MAX(seq), 0) + 1 FROM steps WHERE run_id = ?1), ?5)",
                )
                .bind(s.run_id.to_string())
                .bind(&s.step)
                .bind(&s.name)
                .bind(js(&s.memo))
                .bind(s.at_ms)
                .execute(&mut *conn)
                .await
                .map_err(unavailable)?;
            }
            WriteOp::Enqueue(q) => enqueue(conn, &q, "INSERT OR IGNORE").await?,
            WriteOp::Throttled { name, now_ms, limit, period_ms, burst, mut item } => {
                let tat = limiter(conn, &name).await?;
                let g = ingot_core::flow::gcra(tat, now_ms, limit, period_ms, burst);
                set_limiter(conn, &name, g.new_tat_ms).await?;
                item.available_at_ms = item.available_at_ms.max(g.earliest_ms);
                enqueue(conn, &item, "INSERT OR IGNORE").await?;
            }
            WriteOp::Debounce { function, key, event_id, run_id, now_ms, period_ms, timeout_ms } => {
                let existing = sqlx::query("SELECT run_id, first_ms FROM debounces WHERE function = ? AND key = ?")
                    .bind(&function)
                    .bind(&key)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(unavailable)?;
                let (rid, first) = match existing {
                    Some(row) => (parse_run_id(row.get("run_id"))?, row.get::<i64, _>("first_ms")),
                    None => (run_id, now_ms),
                };
                let fire = ingot_core::flow::debounce_fire_at(first, now_ms, period_ms, timeout_ms);
                sqlx::query("INSERT OR REPLACE INTO debounces (function, key, run_id, event_id, first_ms, fire_ms) VALUES (?,?,?,?,?,?)")
                    .bind(&function)
                    .bind(&key)
                    .bind(rid.to_string())
                    .bind(event_id.to_string())
                    .bind(first)
                    .bind(fire)
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?;
                let item = QueueItem {
                    id: QueueItemId(format!("debounce:{function}:{key}")),
                    run_id: rid,
                    work: Work::Debounce { function, key },
                    available_at_ms: fire,
                    dedupe: None,
                };
                enqueue(conn, &item, "INSERT OR REPLACE").await?;
            }
            WriteOp::AppendBatch { function, key, event_id, run_id, now_ms, max_size, timeout_ms } => {
                let open = sqlx::query("SELECT run_id, event_ids FROM batches WHERE function = ? AND key = ? AND open = 1")
                    .bind(&function)
                    .bind(&key)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(unavailable)?;
                let (rid, mut ids) = match open {
                    Some(row) => {
                        let ids: Vec<String> = serde_json::from_str(row.get("event_ids")).map_err(|e| corrupt("batch events", e))?;
                        (parse_run_id(row.get("run_id"))?, ids)
                    }
                    None => {
                        let item = QueueItem {
                            id: QueueItemId(format!("batch:{run_id}")),
                            run_id,
                            work: Work::Batch { function: function.clone(), key: key.clone() },
                            available_at_ms: now_ms + timeout_ms,
                            dedupe: None,
                        };
                        enqueue(conn, &item, "INSERT OR IGNORE").await?;
                        (run_id, Vec::new())
                    }
                };
                ids.push(event_id.to_string());
                let full = ids.len() >= max_size;
                sqlx::query(
                    "INSERT INTO batches (run_id, function, key, event_ids, first_ms, open) VALUES (?1,?2,?3,?4,?5,?6)
                     ON CONFLICT(run_id) DO UPDATE SET event_ids = excluded.event_ids, open = excluded.open",
                )
                .bind(rid.to_string())
                .bind(&function)
                .bind(&key)
                .bind(serde_json::to_string(&ids).unwrap_or_default())
                .bind(now_ms)
                .bind(!full)
                .execute(&mut *conn)
                .await
                .map_err(unavailable)?;
                if full {
                    sqlx::query("UPDATE queue SET available_at_ms = ? WHERE id = ?")
                        .bind(now_ms)
                        .bind(format!("batch:{rid}"))
                        .execute(&mut *conn)
                        .await
                        .map_err(unavailable)?;
                }
            }
            WriteOp::SetSingleton { scope, key, run_id } => {
                sqlx::query("INSERT OR REPLACE INTO singletons (scope, key, run_id) VALUES (?,?,?)")
                    .bind(&scope)
                    .bind(&key)
                    .bind(run_id.to_string())
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?;
            }
            WriteOp::Purge { before_ms, limit } => {
                let limit = limit as i64;
                let runs: Vec<String> = sqlx::query_scalar("SELECT id FROM runs WHERE status != 'Running' AND ended_at_ms < ? LIMIT ?")
                    .bind(before_ms)
                    .bind(limit)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(unavailable)?;
                for id in &runs {
                    for sql in [
                        "DELETE FROM runs WHERE id = ?",
                        "DELETE FROM steps WHERE run_id = ?",
                        "DELETE FROM history WHERE run_id = ?",
                        "DELETE FROM run_events WHERE run_id = ?",
                    ] {
                        sqlx::query(sql).bind(id).execute(&mut *conn).await.map_err(unavailable)?;
                    }
                }
                sqlx::query(
                    "DELETE FROM events WHERE internal_id IN (SELECT e.internal_id FROM events e WHERE e.received_at_ms < ?1
                     AND NOT EXISTS (SELECT 1 FROM run_events re JOIN runs r ON r.id = re.run_id WHERE re.event_id = e.internal_id AND r.status = 'Running')
                     LIMIT ?2)",
                )
                .bind(before_ms)
                .bind(limit)
                .execute(&mut *conn)
                .await
                .map_err(unavailable)?;
                sqlx::query("DELETE FROM run_events WHERE run_id NOT IN (SELECT id FROM runs)")
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?;
                sqlx::query("DELETE FROM unique_keys WHERE expires_at_ms <= ?")
                    .bind(before_ms)
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?;
                sqlx::query("DELETE FROM skips WHERE at_ms < ?").bind(before_ms).execute(&mut *conn).await.map_err(unavailable)?;
            }
            WriteOp::Skip(skip) => {
                sqlx::query("INSERT INTO skips (function, event_id, reason, at_ms) VALUES (?,?,?,?)")
                    .bind(&skip.function)
                    .bind(skip.event_id.to_string())
                    .bind(&skip.reason)
                    .bind(skip.at_ms)
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?;
            }
            WriteOp::Ack(id) => {
                sqlx::query("DELETE FROM queue WHERE id = ?").bind(&id.0).execute(&mut *conn).await.map_err(unavailable)?;
            }
            WriteOp::InsertPause(p) => {
                sqlx::query(
                    "INSERT OR REPLACE INTO pauses (id, run_id, step, kind, event_name, if_exp, correlation_id, trigger, expires_at_ms)
                     VALUES (?,?,?,?,?,?,?,?,?)",
                )
                .bind(&p.id)
                .bind(p.run_id.to_string())
                .bind(&p.step)
                .bind(p.kind.as_str())
                .bind(&p.event_name)
                .bind(&p.if_exp)
                .bind(&p.correlation_id)
                .bind(js(&p.trigger))
                .bind(p.expires_at_ms)
                .execute(&mut *conn)
                .await
                .map_err(unavailable)?;
            }
            WriteOp::ClearRunWork(run_id) => {
                let id = run_id.to_string();
                sqlx::query("DELETE FROM queue WHERE run_id = ?").bind(&id).execute(&mut *conn).await.map_err(unavailable)?;
                sqlx::query("DELETE FROM pauses WHERE run_id = ?").bind(&id).execute(&mut *conn).await.map_err(unavailable)?;
            }
            WriteOp::History(h) => {
                sqlx::query("INSERT INTO history (run_id, at_ms, kind, step, name, attempt, duration_ms, detail) VALUES (?,?,?,?,?,?,?,?)")
                    .bind(h.run_id.to_string())
                    .bind(h.at_ms)
                    .bind(&h.kind)
                    .bind(&h.step)
                    .bind(&h.name)
                    .bind(h.attempt.map(i64::from))
                    .bind(h.duration_ms)
                    .bind(js(&h.detail))
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?;
            }
            WriteOp::Guarded { guard, then, otherwise } => {
                let passed = match guard {
                    Guard::ConsumePause(id) => {
                        sqlx::query("DELETE FROM pauses WHERE id = ?").bind(&id).execute(&mut *conn).await.map_err(unavailable)?.rows_affected() == 1
                    }
                    Guard::UniqueKey { scope, key, now_ms, expires_at_ms } => {
                        sqlx::query(
                            "INSERT INTO unique_keys (scope, key, expires_at_ms) VALUES (?1, ?2, ?3)
                             ON CONFLICT(scope, key) DO UPDATE SET expires_at_ms = excluded.expires_at_ms WHERE unique_keys.expires_at_ms <= ?4",
                        )
                        .bind(&scope)
                        .bind(&key)
                        .bind(expires_at_ms)
                        .bind(now_ms)
                        .execute(&mut *conn)
                        .await
                        .map_err(unavailable)?
                        .rows_affected()
                            == 1
                    }
                    Guard::RateLimit { name, now_ms, limit, period_ms } => {
                        let g = ingot_core::flow::gcra(limiter(conn, &name).await?, now_ms, limit, period_ms, 0);
                        let ok = g.earliest_ms <= now_ms;
                        if ok {
                            set_limiter(conn, &name, g.new_tat_ms).await?;
                        }
                        ok
                    }
                    Guard::TakeBatch { run_id, count } => {
                        let row = sqlx::query("SELECT event_ids FROM batches WHERE run_id = ?").bind(run_id.to_string()).fetch_optional(&mut *conn).await.map_err(unavailable)?;
                        let held = match row {
                            Some(r) => serde_json::from_str::<Vec<String>>(r.get("event_ids")).map_err(|e| corrupt("batch events", e))?.len(),
                            None => usize::MAX,
                        };
                        let ok = held == count;
                        if ok {
                            sqlx::query("DELETE FROM batches WHERE run_id = ?").bind(run_id.to_string()).execute(&mut *conn).await.map_err(unavailable)?;
                        }
                        ok
                    }
                    Guard::TakeDebounce { function, key, event_id } => {
                        sqlx::query("DELETE FROM debounces WHERE function = ? AND key = ? AND event_id = ?")
                            .bind(&function)
                            .bind(&key)
                            .bind(event_id.to_string())
                            .execute(&mut *conn)
                            .await
                            .map_err(unavailable)?
                            .rows_affected()
                            == 1
                    }
                    Guard::Singleton { scope, key, run_id } => {
                        let holder = sqlx::query("SELECT r.status FROM singletons s LEFT JOIN runs r ON r.id = s.run_id WHERE s.scope = ? AND s.key = ?")
                            .bind(&scope)
                            .bind(&key)
                            .fetch_optional(&mut *conn)
                            .await
                            .map_err(unavailable)?;
                        let free = match holder {
                            None => true,
                            Some(row) => row.get::<Option<String>, _>("status").is_none_or(|s| s != RunStatus::Running.as_str()),
                        };
                        if free {
                            sqlx::query("INSERT OR REPLACE INTO singletons (scope, key, run_id) VALUES (?,?,?)")
                                .bind(&scope)
                                .bind(&key)
                                .bind(run_id.to_string())
                                .execute(&mut *conn)
                                .await
                                .map_err(unavailable)?;
                        }
                        free
                    }
                };
                out.guards_passed.push(passed);
                stack.extend(if passed { then } else { otherwise }.into_iter().rev());
            }
        }
    }
    Ok(out)
}

async fn enqueue(conn: &mut SqliteConnection, q: &QueueItem, verb: &str) -> Result<()> {
    sqlx::query(&format!("{verb} INTO queue (id, run_id, work, available_at_ms, dedupe) VALUES (?,?,?,?,?)"))
        .bind(&q.id.0)
        .bind(q.run_id.to_string())
        .bind(js(&work_to_json(&q.work)))
        .bind(q.available_at_ms)
        .bind(&q.dedupe)
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    Ok(())
}

async fn limiter(conn: &mut SqliteConnection, name: &str) -> Result<Option<i64>> {
    let row = sqlx::query("SELECT tat_ms FROM limiters WHERE name = ?").bind(name).fetch_optional(&mut *conn).await.map_err(unavailable)?;
    Ok(row.map(|r| r.get("tat_ms")))
}

async fn set_limiter(conn: &mut SqliteConnection, name: &str, tat: i64) -> Result<()> {
    sqlx::query("INSERT OR REPLACE INTO limiters (name, tat_ms) VALUES (?, ?)")
        .bind(name)
        .bind(tat)
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    Ok(())
}

fn parse_run_id(s: String) -> Result<RunId> {
    RunId::parse(&s).ok_or_else(|| corrupt("run id", s))
}

async fn insert_run(conn: &mut SqliteConnection, r: &RunRecord) -> Result<()> {
    let event_ids: Vec<String> = r.event_ids.iter().map(|e| e.to_string()).collect();
    sqlx::query(
        "INSERT OR IGNORE INTO runs (id, function, status, state, event_ids, output, started_at_ms, ended_at_ms, correlation_id, rev)
         VALUES (?,?,?,?,?,?,?,?,?,?)",
    )
    .bind(r.id().to_string())
    .bind(&r.state.function.0)
    .bind(r.status().as_str())
    .bind(js(&state_to_json(&r.state)))
    .bind(serde_json::to_string(&event_ids).unwrap_or_default())
    .bind(r.output.as_ref().map(js))
    .bind(r.started_at_ms)
    .bind(r.ended_at_ms)
    .bind(&r.correlation_id)
    .bind(r.rev)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(())
}

async fn claim(conn: &mut SqliteConnection, inflight: &Mutex<HashSet<QueueItemId>>, now_ms: i64, limit: usize) -> Result<Claim> {
    let held = inflight.lock().unwrap_or_else(|e| e.into_inner()).len();
    let rows = sqlx::query("SELECT id, run_id, work, available_at_ms, dedupe FROM queue ORDER BY available_at_ms, id LIMIT ?")
        .bind((limit + held + 1) as i64)
        .fetch_all(&mut *conn)
        .await
        .map_err(unavailable)?;
    let mut claim = Claim::default();
    let mut set = inflight.lock().unwrap_or_else(|e| e.into_inner());
    for row in rows {
        let item = queue_row(&row)?;
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

fn queue_row(row: &SqliteRow) -> Result<QueueItem> {
    Ok(QueueItem {
        id: QueueItemId(row.get("id")),
        run_id: run_id(row.get("run_id"))?,
        work: work_from_json(&parse_json(row.get("work"), "queue work")?)?,
        available_at_ms: row.get("available_at_ms"),
        dedupe: row.get("dedupe"),
    })
}

fn run_row(row: &SqliteRow) -> Result<RunRecord> {
    let id = run_id(row.get("id"))?;
    let status_s: String = row.get("status");
    let status = RunStatus::parse(&status_s).ok_or_else(|| corrupt("run status", &status_s))?;
    let state = state_from_json(id, status, &parse_json(row.get("state"), "run state")?)?;
    let ids: Vec<String> = serde_json::from_str(row.get("event_ids")).map_err(|e| corrupt("run event ids", e))?;
    let output: Option<String> = row.get("output");
    Ok(RunRecord {
        state,
        event_ids: ids.iter().map(|s| event_id(s)).collect::<Result<_>>()?,
        output: output.map(|o| parse_json(&o, "run output")).transpose()?,
        started_at_ms: row.get("started_at_ms"),
        ended_at_ms: row.get("ended_at_ms"),
        correlation_id: row.get("correlation_id"),
        rev: row.get("rev"),
    })
}

fn event_row(row: &SqliteRow) -> Result<StoredEvent> {
    Ok(StoredEvent {
        internal_id: event_id(row.get("internal_id"))?,
        name: row.get("name"),
        payload: parse_json(row.get("payload"), "event payload")?,
        received_at_ms: row.get("received_at_ms"),
    })
}

fn pause_row(row: &SqliteRow) -> Result<Pause> {
    let kind: String = row.get("kind");
    Ok(Pause {
        id: row.get("id"),
        run_id: run_id(row.get("run_id"))?,
        step: row.get("step"),
        kind: PauseKind::parse(&kind).ok_or_else(|| corrupt("pause kind", &kind))?,
        event_name: row.get("event_name"),
        if_exp: row.get("if_exp"),
        correlation_id: row.get("correlation_id"),
        trigger: parse_json(row.get("trigger"), "pause trigger")?,
        expires_at_ms: row.get("expires_at_ms"),
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
        let rows = sqlx::query("SELECT * FROM apps ORDER BY id").fetch_all(&self.read).await.map_err(unavailable)?;
        Ok(rows
            .iter()
            .map(|r| AppRecord {
                id: r.get("id"),
                url: r.get("url"),
                sdk: r.get("sdk"),
                framework: r.get("framework"),
                checksum: r.get("checksum"),
                error: r.get("error"),
                synced_at_ms: r.get("synced_at_ms"),
            })
            .collect())
    }

    async fn functions(&self, include_archived: bool) -> Result<Vec<FunctionRecord>> {
        let sql = if include_archived {
            "SELECT * FROM functions ORDER BY slug"
        } else {
            "SELECT * FROM functions WHERE archived = 0 ORDER BY slug"
        };
        let rows = sqlx::query(sql).fetch_all(&self.read).await.map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                Ok(FunctionRecord {
                    slug: FunctionSlug(r.get("slug")),
                    app_id: r.get("app_id"),
                    uuid: r.get("uuid"),
                    name: r.get("name"),
                    config: parse_json(r.get("config"), "function config")?,
                    archived: r.get::<i64, _>("archived") != 0,
                    updated_at_ms: r.get("updated_at_ms"),
                })
            })
            .collect()
    }

    async fn run(&self, id: RunId) -> Result<Option<RunRecord>> {
        let row = sqlx::query(&format!("SELECT {RUN_COLS} FROM runs WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(run_row).transpose()
    }

    async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        let limit = if filter.limit == 0 { -1 } else { filter.limit as i64 };
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLS} FROM runs WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR function = ?2) ORDER BY id DESC LIMIT ?3"
        ))
        .bind(filter.status.map(|s| s.as_str()))
        .bind(filter.function.as_ref().map(|f| f.0.clone()))
        .bind(limit)
        .fetch_all(&self.read)
        .await
        .map_err(unavailable)?;
        rows.iter().map(run_row).collect()
    }

    async fn runs_for_event(&self, id: EventId) -> Result<Vec<RunRecord>> {
        let rows =
            sqlx::query(&format!("SELECT {RUN_COLS} FROM runs WHERE id IN (SELECT run_id FROM run_events WHERE event_id = ?) ORDER BY id"))
                .bind(id.to_string())
                .fetch_all(&self.read)
                .await
                .map_err(unavailable)?;
        rows.iter().map(run_row).collect()
    }

    async fn run_steps(&self, id: RunId) -> Result<Vec<StepRecord>> {
        let rows = sqlx::query("SELECT step, name, memo, seq, at_ms FROM steps WHERE run_id = ? ORDER BY seq")
            .bind(id.to_string())
            .fetch_all(&self.read)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                Ok(StepRecord {
                    run_id: id,
                    step: r.get("step"),
                    name: r.get("name"),
                    memo: parse_json(r.get("memo"), "step memo")?,
                    seq: r.get("seq"),
                    at_ms: r.get("at_ms"),
                })
            })
            .collect()
    }

    async fn run_history(&self, id: RunId) -> Result<Vec<HistoryRecord>> {
        let rows = sqlx::query("SELECT at_ms, kind, step, name, attempt, duration_ms, detail FROM history WHERE run_id = ? ORDER BY id")
            .bind(id.to_string())
            .fetch_all(&self.read)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                Ok(HistoryRecord {
                    run_id: id,
                    at_ms: r.get("at_ms"),
                    kind: r.get("kind"),
                    step: r.get("step"),
                    name: r.get("name"),
                    attempt: r.get::<Option<i64>, _>("attempt").map(|a| a as u32),
                    duration_ms: r.get("duration_ms"),
                    detail: parse_json(r.get("detail"), "history detail")?,
                })
            })
            .collect()
    }

    async fn run_items(&self, id: RunId) -> Result<Vec<QueueItem>> {
        let rows = sqlx::query("SELECT id, run_id, work, available_at_ms, dedupe FROM queue WHERE run_id = ? ORDER BY available_at_ms")
            .bind(id.to_string())
            .fetch_all(&self.read)
            .await
            .map_err(unavailable)?;
        rows.iter().map(queue_row).collect()
    }

    async fn event(&self, id: EventId) -> Result<Option<StoredEvent>> {
        let row = sqlx::query("SELECT * FROM events WHERE internal_id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(event_row).transpose()
    }

    async fn events_by_ids(&self, ids: &[EventId]) -> Result<Vec<StoredEvent>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!("SELECT * FROM events WHERE internal_id IN ({marks})");
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id.to_string());
            }
            let rows = q.fetch_all(&self.read).await.map_err(unavailable)?;
            let mut found: std::collections::HashMap<EventId, StoredEvent> =
                rows.iter().map(event_row).collect::<Result<Vec<_>>>()?.into_iter().map(|e| (e.internal_id, e)).collect();
            out.extend(chunk.iter().filter_map(|id| found.remove(id)));
        }
        Ok(out)
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
        let limit = if filter.limit == 0 { -1 } else { filter.limit as i64 };
        let rows = sqlx::query(
            "SELECT * FROM events WHERE (?1 IS NULL OR name = ?1) AND (?2 IS NULL OR internal_id < ?2)
             AND (?3 IS NULL OR received_at_ms >= ?3) AND (?4 IS NULL OR received_at_ms <= ?4)
             ORDER BY internal_id DESC LIMIT ?5",
        )
        .bind(&filter.name)
        .bind(filter.before.map(|b| b.to_string()))
        .bind(filter.received_after_ms)
        .bind(filter.received_before_ms)
        .bind(limit)
        .fetch_all(&self.read)
        .await
        .map_err(unavailable)?;
        rows.iter().map(event_row).collect()
    }

    async fn pauses_for_event(&self, name: &str) -> Result<Vec<Pause>> {
        let rows = sqlx::query("SELECT * FROM pauses WHERE event_name = ?").bind(name).fetch_all(&self.read).await.map_err(unavailable)?;
        rows.iter().map(pause_row).collect()
    }

    async fn pause_by_correlation(&self, correlation_id: &str) -> Result<Option<Pause>> {
        let row = sqlx::query("SELECT * FROM pauses WHERE correlation_id = ?")
            .bind(correlation_id)
            .fetch_optional(&self.read)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(pause_row).transpose()
    }

    async fn pauses_for_run(&self, id: RunId) -> Result<Vec<Pause>> {
        let rows =
            sqlx::query("SELECT * FROM pauses WHERE run_id = ?").bind(id.to_string()).fetch_all(&self.read).await.map_err(unavailable)?;
        rows.iter().map(pause_row).collect()
    }

    async fn debounce(&self, function: &str, key: &str) -> Result<Option<DebounceRecord>> {
        let row = sqlx::query("SELECT * FROM debounces WHERE function = ? AND key = ?")
            .bind(function)
            .bind(key)
            .fetch_optional(&self.read)
            .await
            .map_err(unavailable)?;
        row.map(|r| {
            Ok(DebounceRecord {
                function: r.get("function"),
                key: r.get("key"),
                run_id: parse_run_id(r.get("run_id"))?,
                event_id: event_id(r.get("event_id"))?,
                first_ms: r.get("first_ms"),
                fire_ms: r.get("fire_ms"),
            })
        })
        .transpose()
    }

    async fn batch(&self, run_id: RunId) -> Result<Option<BatchRecord>> {
        let row = sqlx::query("SELECT * FROM batches WHERE run_id = ?")
            .bind(run_id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(unavailable)?;
        row.map(|r| {
            let ids: Vec<String> = serde_json::from_str(r.get("event_ids")).map_err(|e| corrupt("batch events", e))?;
            Ok(BatchRecord {
                function: r.get("function"),
                key: r.get("key"),
                run_id,
                event_ids: ids.iter().map(|s| event_id(s)).collect::<Result<_>>()?,
                first_ms: r.get("first_ms"),
            })
        })
        .transpose()
    }

    async fn skips(&self, function: Option<&str>, limit: usize) -> Result<Vec<SkipRecord>> {
        let limit = if limit == 0 { -1 } else { limit as i64 };
        let rows = sqlx::query("SELECT * FROM skips WHERE (?1 IS NULL OR function = ?1) ORDER BY id DESC LIMIT ?2")
            .bind(function)
            .bind(limit)
            .fetch_all(&self.read)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                Ok(SkipRecord {
                    function: r.get("function"),
                    event_id: event_id(r.get("event_id"))?,
                    reason: r.get("reason"),
                    at_ms: r.get("at_ms"),
                })
            })
            .collect()
    }

    async fn singleton_holder(&self, scope: &str, key: &str) -> Result<Option<RunId>> {
        let row = sqlx::query("SELECT run_id FROM singletons WHERE scope = ? AND key = ?")
            .bind(scope)
            .bind(key)
            .fetch_optional(&self.read)
            .await
            .map_err(unavailable)?;
        row.map(|r| parse_run_id(r.get("run_id"))).transpose()
    }
}
