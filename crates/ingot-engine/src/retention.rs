//! Retention: deletes finished runs, old events and dead state past the
//! retention period, in bounded passes on the store's writer.

use std::sync::Arc;

use tokio::sync::watch;

use crate::shared::Shared;

/// Most rows of each kind one retention pass deletes. A pass is one commit on
/// the store's single writer, so it is sized to hold the writer briefly:
/// `ingot-bench --only retention` timed a pass of 500 three-step runs (and
/// their events) at ~16–32 ms on a loaded 2-core machine, 2,000 at ~130 ms.
const PURGE_BATCH: usize = 500;
/// Longest wait between passes once one found less than a batch to delete.
const PURGE_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// Deletes finished runs, old events and dead state past the retention
/// period, continuously: while a pass reaches its limit the next starts at
/// once (other commits still get the writer between passes); otherwise it
/// waits [`PURGE_IDLE`], or a quarter of the retention period if that is
/// shorter (tests and the benchmark use seconds).
pub(crate) async fn retention_loop(engine: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let retention = engine.config.retention;
    let idle = (retention / 4).clamp(std::time::Duration::from_millis(100), PURGE_IDLE);
    while !*shutdown.borrow() {
        let now_ms = engine.clock.now_ms();
        let before_ms = now_ms - retention.as_millis() as i64;
        let purge = ingot_store::Commit { ops: vec![ingot_store::WriteOp::Purge { now_ms, before_ms, limit: PURGE_BATCH }] };
        let more = match engine.store.commit(purge).await {
            Ok(out) => {
                let p = out.purged;
                if p.runs + p.events + p.expired > 0 {
                    tracing::debug!(runs = p.runs, events = p.events, expired = p.expired, more = p.more, "retention pass");
                }
                p.more
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention purge failed");
                false
            }
        };
        if more {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(idle) => {}
            _ = shutdown.changed() => return,
        }
    }
}
