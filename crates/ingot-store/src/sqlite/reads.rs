//! Reads: the pool of read-only connections, and the read queries behind
//! the [`Store`](crate::Store) getters.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ingot_core::{EventId, FunctionSlug, RunId};
use rusqlite::{params, Connection, OpenFlags, ToSql};
use tokio::sync::Semaphore;

use super::rows::{event_id, event_row, parse_json, parse_run_id, pause_row, queue_row, run_row, RUN_COLS};
use super::sql::{col, corrupt, query_all, query_opt, unavailable, BUSY_TIMEOUT, STATEMENT_CACHE};
use super::SqliteStore;
use crate::records::*;
use crate::{Result, StoreError};

/// Most read connections (and reads running at once).
pub(super) const READERS: usize = 4;

/// Read-only connections, at most [`READERS`] of them (the semaphore bounds
/// how many are in use, so the idle list never grows past it).
pub(super) struct Readers {
    pub(super) path: PathBuf,
    pub(super) idle: Mutex<Vec<Connection>>,
    pub(super) permits: Semaphore,
}

impl Readers {
    pub(super) fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
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

impl SqliteStore {
    /// Runs `f` on a read connection, off the async runtime.
    async fn read<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        let _permit = self.readers.permits.acquire().await.map_err(|_| StoreError::Unavailable("store closed".into()))?;
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.with(f)).await.map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }
}

pub(super) async fn apps(store: &SqliteStore) -> Result<Vec<AppRecord>> {
    store
        .read(|conn| {
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

pub(super) async fn functions(store: &SqliteStore, include_archived: bool) -> Result<Vec<FunctionRecord>> {
    let sql =
        if include_archived { "SELECT * FROM functions ORDER BY slug" } else { "SELECT * FROM functions WHERE archived = 0 ORDER BY slug" };
    store
        .read(move |conn| {
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

pub(super) async fn run(store: &SqliteStore, id: RunId) -> Result<Option<RunRecord>> {
    store.read(move |conn| query_opt(conn, &format!("SELECT {RUN_COLS} FROM runs WHERE id = ?"), params![id.to_string()], run_row)).await
}

/// `?n` placeholders for a [`Where`] clause, and its values as SQLite values.
fn sqlite_where(w: Where) -> (String, Vec<rusqlite::types::Value>) {
    let params = w
        .params
        .into_iter()
        .map(|p| match p {
            SqlParam::Text(s) => rusqlite::types::Value::Text(s),
            SqlParam::Int(i) => rusqlite::types::Value::Integer(i),
        })
        .collect();
    (w.sql, params)
}

fn sqlite_ph(n: usize) -> String {
    format!("?{n}")
}

fn limit_sql(limit: usize) -> String {
    if limit == 0 {
        String::new()
    } else {
        format!(" LIMIT {limit}")
    }
}

pub(super) async fn runs(store: &SqliteStore, filter: &RunFilter) -> Result<Vec<RunRecord>> {
    let (cond, params) = sqlite_where(Where::runs(filter, &sqlite_ph));
    let sql = format!("SELECT {RUN_COLS} FROM runs{cond} ORDER BY id DESC{}", limit_sql(filter.limit));
    store
        .read(move |conn| {
            let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
            query_all(conn, &sql, &refs, run_row)
        })
        .await
}

pub(super) async fn count_runs(store: &SqliteStore, filter: &RunFilter) -> Result<u64> {
    let (cond, params) = sqlite_where(Where::runs(filter, &sqlite_ph));
    let sql = format!("SELECT COUNT(*) AS n FROM (SELECT 1 FROM runs{cond}{})", limit_sql(filter.limit));
    count(store, sql, params).await
}

async fn count(store: &SqliteStore, sql: String, params: Vec<rusqlite::types::Value>) -> Result<u64> {
    store
        .read(move |conn| {
            let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
            let n: Option<i64> = query_opt(conn, &sql, &refs, |r| col(r, "n"))?;
            Ok(n.unwrap_or(0).max(0) as u64)
        })
        .await
}

pub(super) async fn runs_for_event(store: &SqliteStore, id: EventId) -> Result<Vec<RunRecord>> {
    store
        .read(move |conn| {
            query_all(
                conn,
                &format!("SELECT {RUN_COLS} FROM runs WHERE id IN (SELECT run_id FROM run_events WHERE event_id = ?) ORDER BY id"),
                params![id.to_string()],
                run_row,
            )
        })
        .await
}

pub(super) async fn run_steps(store: &SqliteStore, id: RunId) -> Result<Vec<StepRecord>> {
    store
        .read(move |conn| {
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

pub(super) async fn run_history(store: &SqliteStore, id: RunId) -> Result<Vec<HistoryRecord>> {
    store
        .read(move |conn| {
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

pub(super) async fn run_items(store: &SqliteStore, id: RunId) -> Result<Vec<QueueItem>> {
    store
        .read(move |conn| {
            query_all(
                conn,
                "SELECT id, run_id, work, available_at_ms, dedupe FROM queue WHERE run_id = ? ORDER BY available_at_ms",
                params![id.to_string()],
                queue_row,
            )
        })
        .await
}

pub(super) async fn event(store: &SqliteStore, id: EventId) -> Result<Option<StoredEvent>> {
    store.read(move |conn| query_opt(conn, "SELECT * FROM events WHERE internal_id = ?", params![id.to_string()], event_row)).await
}

pub(super) async fn events_by_ids(store: &SqliteStore, ids: &[EventId]) -> Result<Vec<StoredEvent>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = ids.to_vec();
    store
        .read(move |conn| {
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

pub(super) async fn events(store: &SqliteStore, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
    let (cond, params) = sqlite_where(Where::events(filter, &sqlite_ph));
    let sql = format!("SELECT * FROM events{cond} ORDER BY internal_id DESC{}", limit_sql(filter.limit));
    store
        .read(move |conn| {
            let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
            query_all(conn, &sql, &refs, event_row)
        })
        .await
}

pub(super) async fn count_events(store: &SqliteStore, filter: &EventFilter) -> Result<u64> {
    let (cond, params) = sqlite_where(Where::events(filter, &sqlite_ph));
    let sql = format!("SELECT COUNT(*) AS n FROM (SELECT 1 FROM events{cond}{})", limit_sql(filter.limit));
    count(store, sql, params).await
}

pub(super) async fn pauses_for_event(store: &SqliteStore, name: &str) -> Result<Vec<Pause>> {
    let name = name.to_string();
    store.read(move |conn| query_all(conn, "SELECT * FROM pauses WHERE event_name = ?", params![name], pause_row)).await
}

pub(super) async fn pause_by_correlation(store: &SqliteStore, correlation_id: &str) -> Result<Option<Pause>> {
    let correlation_id = correlation_id.to_string();
    store.read(move |conn| query_opt(conn, "SELECT * FROM pauses WHERE correlation_id = ?", params![correlation_id], pause_row)).await
}

pub(super) async fn pauses_for_run(store: &SqliteStore, id: RunId) -> Result<Vec<Pause>> {
    store.read(move |conn| query_all(conn, "SELECT * FROM pauses WHERE run_id = ?", params![id.to_string()], pause_row)).await
}

pub(super) async fn debounce(store: &SqliteStore, function: &str, key: &str) -> Result<Option<DebounceRecord>> {
    let (function, key) = (function.to_string(), key.to_string());
    store
        .read(move |conn| {
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

pub(super) async fn batch(store: &SqliteStore, run_id: RunId) -> Result<Option<BatchRecord>> {
    store
        .read(move |conn| {
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

pub(super) async fn skips(store: &SqliteStore, function: Option<&str>, limit: usize) -> Result<Vec<SkipRecord>> {
    let limit = if limit == 0 { -1 } else { limit as i64 };
    let function = function.map(str::to_string);
    store
        .read(move |conn| {
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

pub(super) async fn skips_for_event(store: &SqliteStore, id: EventId) -> Result<Vec<SkipRecord>> {
    store
        .read(move |conn| {
            query_all(conn, "SELECT * FROM skips WHERE event_id = ?1 ORDER BY id", params![id.to_string()], |r| {
                Ok(SkipRecord {
                    function: col(r, "function")?,
                    event_id: event_id(&col::<String>(r, "event_id")?)?,
                    reason: col(r, "reason")?,
                    at_ms: col(r, "at_ms")?,
                })
            })
        })
        .await
}

pub(super) async fn paused_functions(store: &SqliteStore) -> Result<Vec<String>> {
    store.read(move |conn| query_all(conn, "SELECT slug FROM paused_functions ORDER BY slug", params![], |r| col(r, "slug"))).await
}

pub(super) async fn singleton_holder(store: &SqliteStore, scope: &str, key: &str) -> Result<Option<RunId>> {
    let (scope, key) = (scope.to_string(), key.to_string());
    store
        .read(move |conn| {
            query_opt(conn, "SELECT run_id FROM singletons WHERE scope = ? AND key = ?", params![scope, key], |r| {
                parse_run_id(col(r, "run_id")?)
            })
        })
        .await
}

pub(super) async fn session(store: &SqliteStore, id: &str) -> Result<Option<SessionRecord>> {
    let id = id.to_string();
    store
        .read(move |conn| {
            query_opt(conn, "SELECT id, created_at_ms, expires_at_ms FROM sessions WHERE id = ?", params![id], |r| {
                Ok(SessionRecord { id: col(r, "id")?, created_at_ms: col(r, "created_at_ms")?, expires_at_ms: col(r, "expires_at_ms")? })
            })
        })
        .await
}

pub(super) async fn queue_depth(store: &SqliteStore, now_ms: i64) -> Result<crate::QueueDepth> {
    store
        .read(move |conn| {
            query_opt(conn, "SELECT COALESCE(SUM(available_at_ms <= ?1), 0) AS due, COUNT(*) AS total FROM queue", params![now_ms], |r| {
                let (due, total): (i64, i64) = (col(r, "due")?, col(r, "total")?);
                Ok(crate::QueueDepth { due: due as u64, future: (total - due) as u64 })
            })
        })
        .await
        .map(Option::unwrap_or_default)
}

pub(super) async fn call_samples(store: &SqliteStore, function: &str, since_ms: i64, limit: usize) -> Result<Vec<crate::CallSample>> {
    let function = function.to_string();
    // Run ids are ULIDs: the smallest id of a run created at `since_ms`.
    let floor = ulid::Ulid::from_parts(since_ms.max(0) as u64, 0).to_string();
    let limit = if limit == 0 { -1 } else { limit as i64 };
    store
        .read(move |conn| {
            query_all(
                conn,
                "SELECT h.at_ms AS at_ms, COALESCE(h.duration_ms, 0) AS duration_ms FROM runs r JOIN history h ON h.run_id = r.id \
                 WHERE r.function = ?1 AND r.id >= ?2 AND h.kind = 'call' AND h.at_ms >= ?3 ORDER BY h.at_ms DESC, h.id DESC LIMIT ?4",
                params![function, floor, since_ms, limit],
                |r| Ok(crate::CallSample { at_ms: col(r, "at_ms")?, duration_ms: col(r, "duration_ms")? }),
            )
        })
        .await
}
