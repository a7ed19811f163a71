//! Retention: one bounded pass deleting finished runs, unreferenced events
//! and expired state (see [`WriteOp::Purge`](ingot_store::WriteOp::Purge)),
//! the same pass as the SQLite store's, set-based: a table's rows of every
//! purged run go in one statement.

use ingot_store::{Purged, Result};

use crate::sql::{big, col, params, Tx};

/// What a finished run leaves behind, by run id (`$1`, an array).
pub(crate) const RUN_LEFTOVERS: [&str; 8] = [
    "DELETE FROM steps WHERE run_id = ANY($1)",
    "DELETE FROM history WHERE run_id = ANY($1)",
    "DELETE FROM run_events WHERE run_id = ANY($1)",
    "DELETE FROM queue WHERE run_id = ANY($1)",
    "DELETE FROM pauses WHERE run_id = ANY($1)",
    "DELETE FROM singletons WHERE run_id = ANY($1)",
    "DELETE FROM batches WHERE run_id = ANY($1)",
    "DELETE FROM runs WHERE id = ANY($1)",
];

/// State that is dead at `now` ($1), `limit` ($2) rows at a time. A limiter
/// whose theoretical arrival time has passed acts as no row at all (GCRA
/// starts from `max(tat, now)`), so deleting it changes nothing.
const EXPIRED: [&str; 3] = [
    "DELETE FROM unique_keys WHERE (scope, key) IN (SELECT scope, key FROM unique_keys WHERE expires_at_ms <= $1 LIMIT $2)",
    "DELETE FROM limiters WHERE name IN (SELECT name FROM limiters WHERE tat_ms <= $1 LIMIT $2)",
    "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at_ms <= $1 LIMIT $2)",
];

/// One retention pass; every query walks an index on the column it purges by.
pub(crate) async fn purge(tx: &mut Tx<'_>, now_ms: i64, before_ms: i64, limit: usize) -> Result<Purged> {
    let max = big(limit);
    let rows = tx
        .query("SELECT id FROM runs WHERE ended_at_ms < $1 AND status <> 'Running' ORDER BY ended_at_ms LIMIT $2", params![before_ms, max])
        .await?;
    let runs: Vec<String> = rows.iter().map(|r| col(r, "id")).collect::<Result<_>>()?;
    if !runs.is_empty() {
        for sql in RUN_LEFTOVERS {
            tx.write(sql, params![runs.clone()]);
        }
    }
    // After the runs, so the events of the runs just deleted go in the same pass.
    let events = tx
        .exec(
            "DELETE FROM events WHERE internal_id IN (SELECT e.internal_id FROM events e WHERE e.received_at_ms < $1
             AND NOT EXISTS (SELECT 1 FROM run_events re WHERE re.event_id = e.internal_id)
             AND NOT EXISTS (SELECT 1 FROM debounces d WHERE d.event_id = e.internal_id)
             ORDER BY e.received_at_ms LIMIT $2)",
            params![before_ms, max],
        )
        .await? as usize;
    // A limit of 0 deletes nothing and has nothing more to do.
    let full = |n: usize| limit > 0 && n >= limit;
    let mut more = full(runs.len()) || full(events);
    let mut expired = 0;
    for sql in EXPIRED {
        let n = tx.exec(sql, params![now_ms, max]).await? as usize;
        more |= full(n);
        expired += n;
    }
    let skips =
        tx.exec("DELETE FROM skips WHERE id IN (SELECT id FROM skips WHERE at_ms < $1 LIMIT $2)", params![before_ms, max]).await? as usize;
    more |= full(skips);
    Ok(Purged { runs: runs.len(), events, expired: expired + skips, more })
}
