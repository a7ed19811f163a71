//! Claims and leases. A claim takes due items with `FOR UPDATE SKIP LOCKED`
//! and writes its lease into the row (`leased_by`, `lease_until_ms` on the
//! database's clock); the node renews the leases it holds while it lives, so
//! an item is never claimed twice while its holder runs, and the item of a
//! node that died is claimable by any node once its lease has run out.
//!
//! A lease is the row's `leased_by`, `<node>/<claim token>`: an ack or a
//! release names it, and fails with `LeaseLost` once the row holds another
//! (the lease ran out and another claim took the item). The node also keeps
//! the items it holds in memory, as the SQLite store does: a claim never
//! returns an item this node already holds.

use std::sync::Weak;
use std::time::Duration;

use deadpool_postgres::Pool;
use std::sync::atomic::Ordering;

use ingot_core::flow::ConcurrencyKey;
use ingot_store::{Claim, Claimed, Lease, QueueItem, Result, StoreError};

use crate::rows::queue_row;
use crate::sql::{big, col, pg_error};
use crate::Local;

pub(crate) fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_error(e),
        e => StoreError::Unavailable(format!("postgres pool: {e}")),
    }
}

/// Takes up to `limit` due items nobody holds: free, or leased by a node
/// whose lease ended.
const CLAIM: &str = "WITH due AS (
        SELECT id FROM queue
        WHERE available_at_ms <= $1 AND (lease_until_ms IS NULL OR lease_until_ms <= ingot_now_ms()) AND NOT (id = ANY($5))
        ORDER BY available_at_ms, id LIMIT $2
        FOR UPDATE SKIP LOCKED)
    UPDATE queue q SET leased_by = $3, lease_until_ms = ingot_now_ms() + $4 FROM due WHERE q.id = due.id
    RETURNING q.id, q.run_id, q.work, q.available_at_ms, q.dedupe, (SELECT rev FROM runs WHERE id = q.run_id) AS run_rev";

/// When to look again: the earliest item nobody holds, and how long until
/// the first lease another node holds on a due item runs out.
const NEXT: &str = "SELECT
        (SELECT available_at_ms FROM queue
         WHERE (lease_until_ms IS NULL OR lease_until_ms <= ingot_now_ms()) AND NOT (id = ANY($1))
         ORDER BY available_at_ms, id LIMIT 1) AS next_free,
        (SELECT MIN(lease_until_ms) - ingot_now_ms() FROM queue
         WHERE lease_until_ms > ingot_now_ms() AND NOT starts_with(leased_by, $2)) AS lease_wait";

const RELEASE: &str = "WITH freed AS (DELETE FROM concurrency_slots WHERE item_id = ANY($1) AND leased_by = $2)
    UPDATE queue SET leased_by = NULL, lease_until_ms = NULL WHERE id = ANY($1) AND leased_by = $2";

const RENEW: &str = "UPDATE queue SET lease_until_ms = ingot_now_ms() + $1 WHERE id = ANY($2) AND leased_by = ANY($3)";

pub(crate) async fn claim(pool: &Pool, local: &Local, now_ms: i64, limit: usize) -> Result<Claim> {
    let client = pool.get().await.map_err(pool_error)?;
    let held: Vec<String> = local.held().keys().map(|id| id.0.clone()).collect();
    let mut claim = Claim::default();
    if limit > 0 {
        let token = local.claims.fetch_add(1, Ordering::Relaxed) + 1;
        let leased_by = local.lease_value(token);
        let st = client.prepare_cached(CLAIM).await.map_err(pg_error)?;
        let rows = client.query(&st, &[&now_ms, &big(limit), &leased_by, &local.lease_ms, &held]).await.map_err(pg_error)?;
        let mut items: Vec<(QueueItem, Option<i64>)> = Vec::with_capacity(rows.len());
        let mut unreadable = None;
        for row in &rows {
            match queue_row(row).and_then(|item| Ok((item, col::<Option<i64>>(row, "run_rev")?))) {
                Ok(item) => items.push(item),
                // Its lease stays and runs out, so it does not block the queue.
                Err(e) => unreadable = Some(e),
            }
        }
        if let Some(e) = unreadable {
            let ids: Vec<String> = items.iter().map(|(i, _)| i.id.0.clone()).collect();
            if let Err(release) = client.execute(RELEASE, &[&ids, &leased_by]).await {
                tracing::warn!(error = %release, "could not release claimed items after a corrupt one");
            }
            return Err(e);
        }
        items.sort_by(|(a, _), (b, _)| (a.available_at_ms, &a.id).cmp(&(b.available_at_ms, &b.id)));
        local.held().extend(items.iter().map(|(i, _)| (i.id.clone(), token)));
        claim.items =
            items.into_iter().map(|(item, run_rev)| Claimed { lease: Lease { item: item.id.clone(), token }, item, run_rev }).collect();
    }
    let held: Vec<String> = local.held().keys().map(|id| id.0.clone()).collect();
    let st = client.prepare_cached(NEXT).await.map_err(pg_error)?;
    let row = client.query_one(&st, &[&held, &local.lease_prefix()]).await.map_err(pg_error)?;
    let next_free: Option<i64> = col(&row, "next_free")?;
    let lease_wait: Option<i64> = col(&row, "lease_wait")?;
    let next_lease = lease_wait.map(|w| now_ms.saturating_add(w.max(0)));
    claim.next_at_ms = match (next_free.map(|t| t.max(now_ms)), next_lease) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(claim)
}

/// Gives an item back: its lease ends now and any node may claim it.
pub(crate) async fn release(pool: &Pool, local: &Local, lease: &Lease) -> Result<()> {
    {
        let mut held = local.held();
        if held.get(&lease.item) != Some(&lease.token) {
            return Err(lost(lease));
        }
        held.remove(&lease.item);
    }
    let done = async {
        let client = pool.get().await.map_err(pool_error)?;
        let st = client.prepare_cached(RELEASE).await.map_err(pg_error)?;
        client.execute(&st, &[&vec![lease.item.0.clone()], &local.lease_value(lease.token)]).await.map_err(pg_error)
    };
    let released = match done.await {
        Ok(1) => Ok(()),
        // Another claim took the item after this lease ran out.
        Ok(_) => Err(lost(lease)),
        Err(e) => {
            // The lease runs out on its own.
            tracing::warn!(error = %e, item = %lease.item.0, "could not release a queue item");
            Ok(())
        }
    };
    local.notify.notify_one();
    released
}

pub(crate) fn lost(lease: &Lease) -> StoreError {
    StoreError::LeaseLost(format!("queue item {} is no longer held under lease {}", lease.item.0, lease.token))
}

/// Renews the leases this node holds every third of the lease, until the
/// store is dropped.
pub(crate) async fn renew(pool: Pool, local: Weak<Local>) {
    let every = match local.upgrade() {
        Some(l) => Duration::from_millis((l.lease_ms / 3).max(1) as u64),
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(local) = local.upgrade() else { return };
        let (held, leases): (Vec<String>, Vec<u64>) = local.held().iter().map(|(id, token)| (id.0.clone(), *token)).unzip();
        if held.is_empty() {
            continue;
        }
        let mut values: Vec<String> = leases.into_iter().map(|t| local.lease_value(t)).collect();
        values.sort();
        values.dedup();
        let done = async {
            let client = pool.get().await.map_err(pool_error)?;
            let st = client.prepare_cached(RENEW).await.map_err(pg_error)?;
            client.execute(&st, &[&local.lease_ms, &held, &values]).await.map_err(pg_error)
        };
        if let Err(e) = done.await {
            tracing::warn!(error = %e, held = held.len(), "could not renew leases");
        }
    }
}

/// Deletes a key's slots that no longer count (their item was acked or
/// released, or its lease ran out), then counts the rest.
const SLOTS_IN_USE: &str = "WITH stale AS (
        DELETE FROM concurrency_slots s WHERE s.key = $1 AND NOT EXISTS (
            SELECT 1 FROM queue q WHERE q.id = s.item_id AND q.leased_by = s.leased_by AND q.lease_until_ms > ingot_now_ms()))
    SELECT count(*) FROM concurrency_slots s WHERE s.key = $1 AND EXISTS (
        SELECT 1 FROM queue q WHERE q.id = s.item_id AND q.leased_by = s.leased_by AND q.lease_until_ms > ingot_now_ms())";

const TAKE_SLOT: &str = "INSERT INTO concurrency_slots (key, item_id, leased_by) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

/// Takes a slot of every key for `lease`, all or none, in one transaction
/// that holds each key's advisory lock (in key order, so two nodes never
/// wait on each other in a cycle): two nodes counting at once take turns.
pub(crate) async fn take_slots(pool: &Pool, local: &Local, lease: &Lease, keys: &[ConcurrencyKey]) -> Result<bool> {
    if local.held().get(&lease.item) != Some(&lease.token) {
        return Err(lost(lease));
    }
    let mut keys: Vec<&ConcurrencyKey> = keys.iter().collect();
    keys.sort_by(|a, b| a.key.cmp(&b.key));
    keys.dedup_by(|a, b| a.key == b.key);
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = client.transaction().await.map_err(pg_error)?;
    let leased_by = local.lease_value(lease.token);
    for k in &keys {
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&k.key]).await.map_err(pg_error)?;
        let in_use: i64 = tx.query_one(SLOTS_IN_USE, &[&k.key]).await.map_err(pg_error)?.get(0);
        if in_use >= i64::from(k.limit) {
            tx.rollback().await.map_err(pg_error)?;
            return Ok(false);
        }
    }
    for k in &keys {
        tx.execute(TAKE_SLOT, &[&k.key, &lease.item.0, &leased_by]).await.map_err(pg_error)?;
    }
    tx.commit().await.map_err(pg_error)?;
    Ok(true)
}
