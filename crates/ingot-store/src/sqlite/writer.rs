//! The writer thread: it owns the one read-write connection, groups the
//! commits waiting in its channel into one transaction, and serves claims
//! (which are leases held in memory) in the same order as the commits.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot, Notify};

use super::apply::apply_all;
use super::migrate::migrate;
use super::rows::queue_row;
use super::sql::{col, unavailable, BUSY_TIMEOUT, STATEMENT_CACHE};
use crate::leases::LocalLeases;
use crate::records::*;
use crate::{Claim, Claimed, Result, StoreError};

/// Most commits grouped into one transaction.
const MAX_GROUP: usize = 512;

pub(super) enum Request {
    Commit(Commit, oneshot::Sender<Result<CommitOutcome>>),
    Claim(i64, usize, oneshot::Sender<Result<Claim>>),
}

pub(super) fn open_writer(path: &Path) -> Result<Connection> {
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

pub(super) fn writer(conn: Connection, mut rx: mpsc::Receiver<Request>, inflight: &Mutex<LocalLeases>, notify: &Notify) {
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
        // A commit acking a lease that is no longer its own fails alone, before the group.
        let mut lost = Vec::new();
        {
            let leases = inflight.lock().unwrap_or_else(|e| e.into_inner());
            let mut kept = Vec::with_capacity(commits.len());
            for (commit, reply) in commits {
                match leases.check_acks(&commit.ops, |id| queued(&conn, id)) {
                    Ok(()) => kept.push((commit, reply)),
                    Err(e) => lost.push((reply, e)),
                }
            }
            commits = kept;
        }
        for (reply, e) in lost {
            let _ = reply.send(Err(e));
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
                            WriteOp::Ack(lease) => acked.push(lease.clone()),
                            _ => {}
                        }
                    }
                }
            }
            {
                let mut set = inflight.lock().unwrap_or_else(|e| e.into_inner());
                for lease in acked {
                    set.end(&lease);
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
/// Whether the item is still in the queue.
fn queued(conn: &Connection, id: &QueueItemId) -> Result<bool> {
    let mut st = conn.prepare_cached("SELECT 1 FROM queue WHERE id = ?").map_err(unavailable)?;
    st.exists(params![id.0]).map_err(unavailable)
}

fn claim(conn: &Connection, inflight: &Mutex<LocalLeases>, now_ms: i64, limit: usize) -> Result<Claim> {
    let held = inflight.lock().unwrap_or_else(|e| e.into_inner()).len();
    let mut claim = Claim::default();
    let mut set = inflight.lock().unwrap_or_else(|e| e.into_inner());
    // Items this process already holds are skipped by id, before their work is parsed.
    let mut stmt = conn
        .prepare_cached(
            "SELECT q.id, q.run_id, q.work, q.available_at_ms, q.dedupe, r.rev AS run_rev
             FROM queue q LEFT JOIN runs r ON r.id = q.run_id ORDER BY q.available_at_ms, q.id LIMIT ?",
        )
        .map_err(unavailable)?;
    let mut rows = stmt.query(params![(limit + held + 1) as i64]).map_err(unavailable)?;
    while let Some(row) = rows.next().map_err(unavailable)? {
        let id = QueueItemId(col(row, "id")?);
        if set.holds(&id) {
            continue;
        }
        let available_at_ms: i64 = col(row, "available_at_ms")?;
        if available_at_ms <= now_ms && claim.items.len() < limit {
            let item = queue_row(row)?;
            let lease = set.take(&item.id);
            claim.items.push(Claimed { item, lease, run_rev: col(row, "run_rev")? });
        } else {
            claim.next_at_ms = Some(available_at_ms.max(now_ms));
            break;
        }
    }
    Ok(claim)
}
