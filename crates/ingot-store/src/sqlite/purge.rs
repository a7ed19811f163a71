//! Retention: one bounded pass deleting finished runs, unreferenced events
//! and expired state (see [`WriteOp::Purge`](crate::WriteOp::Purge)).

use rusqlite::{params, Connection};

use super::sql::{col, exec, query_all};
use crate::records::Purged;
use crate::Result;

/// What a finished run leaves behind, by run id (its queue items and pauses
/// are normally cleared when it ends; leftovers go with it).
pub(super) const RUN_LEFTOVERS: [&str; 8] = [
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
pub(super) fn purge(conn: &Connection, now_ms: i64, before_ms: i64, limit: usize) -> Result<Purged> {
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
