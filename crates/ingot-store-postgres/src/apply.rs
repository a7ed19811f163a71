//! Applying one commit's [`WriteOp`]s, guards included, inside the writer's
//! open transaction: op by op what the SQLite store does
//! (`ingot-store/src/sqlite/apply.rs`), in PostgreSQL.
//!
//! Where SQLite reads a row and then writes it (limiters, debounces, open
//! batches, singletons), this store reads it `FOR UPDATE`, so two nodes
//! committing at once take turns on the row. A row that does not exist yet
//! cannot be locked: it is inserted with `ON CONFLICT DO NOTHING`, and if
//! another node's insert won, the op reads again (now waiting on that row).

use ingot_core::{EventId, RunId, RunStatus};
use ingot_store::{
    state_to_json, work_to_json, CommitOutcome, Guard, QueueItem, QueueItemId, Result, RunRecord, StoreError, Work, WriteOp,
};
use serde_json::Value;

use crate::purge::purge;
use crate::rows::run_id as parse_run_id;
use crate::sql::{col, params, Tx};

/// Times an op reads again after losing an insert race to another node.
const RACE_RETRIES: usize = 3;

fn js(v: &Value) -> String {
    v.to_string()
}

fn lost_race(what: &str) -> StoreError {
    StoreError::Conflict(format!("{what} kept changing under concurrent commits"))
}

/// Applies `ops` for the node `node` (whose leases its acks name).
pub(crate) async fn apply_all(tx: &mut Tx<'_>, ops: &[WriteOp], node: &str) -> Result<CommitOutcome> {
    let mut out = CommitOutcome::default();
    // A stack in reverse order, so a passed guard's ops run next, in order.
    let mut stack: Vec<&WriteOp> = ops.iter().rev().collect();
    while let Some(op) = stack.pop() {
        match op {
            WriteOp::UpsertApp(a) => tx.write(
                "INSERT INTO apps (id, url, sdk, framework, checksum, error, synced_at_ms) VALUES ($1,$2,$3,$4,$5,$6,$7)
                 ON CONFLICT (id) DO UPDATE SET url = excluded.url, sdk = excluded.sdk, framework = excluded.framework,
                 checksum = excluded.checksum, error = excluded.error, synced_at_ms = excluded.synced_at_ms",
                params![
                    a.id.clone(),
                    a.url.clone(),
                    a.sdk.clone(),
                    a.framework.clone(),
                    a.checksum.clone(),
                    a.error.clone(),
                    a.synced_at_ms
                ],
            ),
            WriteOp::SyncFunctions { app_id, functions } => {
                tx.write("UPDATE functions SET archived = TRUE WHERE app_id = $1", params![app_id.clone()]);
                for f in functions {
                    tx.write(
                        "INSERT INTO functions (slug, app_id, uuid, name, config, archived, updated_at_ms) VALUES ($1,$2,$3,$4,$5,$6,$7)
                         ON CONFLICT (slug) DO UPDATE SET app_id = excluded.app_id, uuid = excluded.uuid, name = excluded.name,
                         config = excluded.config, archived = excluded.archived, updated_at_ms = excluded.updated_at_ms",
                        params![
                            f.slug.0.clone(),
                            f.app_id.clone(),
                            f.uuid.clone(),
                            f.name.clone(),
                            js(&f.config),
                            f.archived,
                            f.updated_at_ms
                        ],
                    );
                }
            }
            WriteOp::SetAppError { app_id, error } => {
                tx.write("UPDATE apps SET error = $1 WHERE id = $2", params![error.clone(), app_id.clone()]);
            }
            WriteOp::InsertEvent(e) => tx.write(
                "INSERT INTO events (internal_id, name, payload, received_at_ms) VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING",
                params![e.internal_id.to_string(), e.name.clone(), js(&e.payload), e.received_at_ms],
            ),
            WriteOp::InsertRun(r) => {
                insert_run(tx, r);
                let rid = r.id().to_string();
                for e in &r.event_ids {
                    tx.write(
                        "INSERT INTO run_events (event_id, run_id) VALUES ($1,$2) ON CONFLICT DO NOTHING",
                        params![e.to_string(), rid.clone()],
                    );
                }
            }
            WriteOp::UpdateRun { run, expected_rev } => tx.write_one(
                "UPDATE runs SET status = $1, state = $2, output = $3, ended_at_ms = $4, rev = rev + 1 WHERE id = $5 AND rev = $6",
                params![
                    run.status().as_str().to_string(),
                    js(&state_to_json(&run.state)),
                    run.output.as_ref().map(js),
                    run.ended_at_ms,
                    run.id().to_string(),
                    *expected_rev
                ],
                format!("run {} changed (expected rev {expected_rev})", run.id()),
            ),
            WriteOp::SaveStep(s) => tx.write(
                "INSERT INTO steps (run_id, step, name, memo, seq, at_ms)
                 VALUES ($1, $2, $3, $4, (SELECT COALESCE(MAX(seq), 0) + 1 FROM steps WHERE run_id = $1), $5)
                 ON CONFLICT (run_id, step) DO NOTHING",
                params![s.run_id.to_string(), s.step.clone(), s.name.clone(), js(&s.memo), s.at_ms],
            ),
            WriteOp::Enqueue(q) => enqueue(tx, q),
            WriteOp::Throttled { name, now_ms, limit, period_ms, burst, item } => {
                let (limit, period_ms, burst) = (*limit, *period_ms, *burst);
                let g = take_limiter(tx, name, |tat| {
                    let g = ingot_core::flow::gcra(tat, *now_ms, limit, period_ms, burst);
                    (Some(g.new_tat_ms), g)
                })
                .await?;
                let mut item = item.clone();
                item.available_at_ms = item.available_at_ms.max(g.earliest_ms);
                enqueue(tx, &item);
            }
            WriteOp::Debounce { function, key, event_id, run_id, now_ms, period_ms, timeout_ms } => {
                debounce(tx, function, key, *event_id, *run_id, *now_ms, *period_ms, *timeout_ms).await?;
            }
            WriteOp::AppendBatch { function, key, event_id, run_id, now_ms, max_size, timeout_ms } => {
                append_batch(tx, function, key, *event_id, *run_id, *now_ms, *max_size, *timeout_ms).await?;
            }
            WriteOp::SetPaused { slug, paused } => {
                if *paused {
                    tx.write("INSERT INTO paused_functions (slug) VALUES ($1) ON CONFLICT DO NOTHING", params![slug.clone()]);
                } else {
                    tx.write("DELETE FROM paused_functions WHERE slug = $1", params![slug.clone()]);
                }
            }
            WriteOp::SetSingleton { scope, key, run_id } => tx.write(
                "INSERT INTO singletons (scope, key, run_id) VALUES ($1,$2,$3)
                 ON CONFLICT (scope, key) DO UPDATE SET run_id = excluded.run_id",
                params![scope.clone(), key.clone(), run_id.to_string()],
            ),
            WriteOp::ReplaceSingleton { scope, key, run_id, now_ms } => {
                let holder = hold_singleton(tx, scope, key, *run_id, |_| true).await?.holder;
                if let Some(holder) = holder.filter(|h| *h != run_id.to_string()) {
                    enqueue(tx, &QueueItem::new(parse_run_id(&holder)?, Work::Cancel, *now_ms));
                }
            }
            WriteOp::Purge { now_ms, before_ms, limit } => {
                let p = purge(tx, *now_ms, *before_ms, *limit).await?;
                let acc = &mut out.purged;
                acc.runs += p.runs;
                acc.events += p.events;
                acc.expired += p.expired;
                acc.more |= p.more;
            }
            WriteOp::InsertSession(session) => tx.write(
                "INSERT INTO sessions (id, created_at_ms, expires_at_ms) VALUES ($1,$2,$3)
                 ON CONFLICT (id) DO UPDATE SET created_at_ms = excluded.created_at_ms, expires_at_ms = excluded.expires_at_ms",
                params![session.id.clone(), session.created_at_ms, session.expires_at_ms],
            ),
            WriteOp::DeleteSession(id) => tx.write("DELETE FROM sessions WHERE id = $1", params![id.clone()]),
            WriteOp::Skip(skip) => tx.write(
                "INSERT INTO skips (function, event_id, reason, at_ms) VALUES ($1,$2,$3,$4)",
                params![skip.function.clone(), skip.event_id.to_string(), skip.reason.clone(), skip.at_ms],
            ),
            // Deletes the item if this lease still holds it; an item already
            // gone is fine, one another claim holds fails the commit.
            WriteOp::Ack(lease) => {
                tx.write("DELETE FROM concurrency_slots WHERE item_id = $1", params![lease.item.0.clone()]);
                tx.write_held(
                    "WITH gone AS (DELETE FROM queue WHERE id = $1 AND leased_by = $2 RETURNING 1)
                 SELECT 1 WHERE EXISTS (SELECT 1 FROM gone) OR NOT EXISTS (SELECT 1 FROM queue WHERE id = $1)",
                    params![lease.item.0.clone(), format!("{node}/{}", lease.token)],
                    format!("queue item {} is no longer held under lease {}", lease.item.0, lease.token),
                )
            }
            WriteOp::InsertPause(p) => tx.write(
                "INSERT INTO pauses (id, run_id, step, kind, event_name, if_exp, correlation_id, trigger, expires_at_ms)
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
                 ON CONFLICT (id) DO UPDATE SET run_id = excluded.run_id, step = excluded.step, kind = excluded.kind,
                 event_name = excluded.event_name, if_exp = excluded.if_exp, correlation_id = excluded.correlation_id,
                 trigger = excluded.trigger, expires_at_ms = excluded.expires_at_ms",
                params![
                    p.id.clone(),
                    p.run_id.to_string(),
                    p.step.clone(),
                    p.kind.as_str().to_string(),
                    p.event_name.clone(),
                    p.if_exp.clone(),
                    p.correlation_id.clone(),
                    js(&p.trigger),
                    p.expires_at_ms
                ],
            ),
            WriteOp::ClearRunWork(run_id) => {
                tx.write("DELETE FROM queue WHERE run_id = $1", params![run_id.to_string()]);
                tx.write("DELETE FROM pauses WHERE run_id = $1", params![run_id.to_string()]);
            }
            WriteOp::History(h) => tx.write(
                "INSERT INTO history (run_id, at_ms, kind, step, name, attempt, duration_ms, detail) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                params![
                    h.run_id.to_string(),
                    h.at_ms,
                    h.kind.clone(),
                    h.step.clone(),
                    h.name.clone(),
                    h.attempt.map(i64::from),
                    h.duration_ms,
                    js(&h.detail)
                ],
            ),
            WriteOp::Guarded { guard, then, otherwise } => {
                let passed = check(tx, guard).await?;
                out.guards_passed.push(passed);
                stack.extend(if passed { then } else { otherwise }.iter().rev());
            }
        }
    }
    Ok(out)
}

/// Checks a guard and, if it passes, takes what it guards.
async fn check(tx: &mut Tx<'_>, guard: &Guard) -> Result<bool> {
    Ok(match guard {
        Guard::ConsumePause(id) => tx.exec("DELETE FROM pauses WHERE id = $1", params![id.clone()]).await? == 1,
        Guard::ClaimSignal { signal, replace, now_ms } => {
            tx.exec(
                "UPDATE pauses SET correlation_id = NULL
                 WHERE kind = 'signal' AND correlation_id = $1 AND ($2 OR expires_at_ms < $3)",
                params![signal.clone(), *replace, *now_ms],
            )
            .await?;
            tx.query("SELECT 1 FROM pauses WHERE kind = 'signal' AND correlation_id = $1", params![signal.clone()]).await?.is_empty()
        }
        Guard::UniqueKey { scope, key, now_ms, expires_at_ms } => {
            tx.exec(
                "INSERT INTO unique_keys (scope, key, expires_at_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (scope, key) DO UPDATE SET expires_at_ms = excluded.expires_at_ms
                 WHERE unique_keys.expires_at_ms <= $4",
                params![scope.clone(), key.clone(), *expires_at_ms, *now_ms],
            )
            .await?
                == 1
        }
        Guard::RateLimit { name, now_ms, limit, period_ms } => {
            let (limit, period_ms) = (*limit, *period_ms);
            take_limiter(tx, name, |tat| {
                let g = ingot_core::flow::rate_limit_gcra(tat, *now_ms, limit, period_ms);
                let ok = g.earliest_ms <= *now_ms;
                // A refused slot leaves the limiter as it was.
                (ok.then_some(g.new_tat_ms), ok)
            })
            .await?
        }
        Guard::TakeBatch { run_id, count } => {
            // Held is the batch's size; no batch passes no count a batch can have.
            match i32::try_from(*count) {
                Ok(count) => {
                    tx.exec("DELETE FROM batches WHERE run_id = $1 AND cardinality(event_ids) = $2", params![run_id.to_string(), count])
                        .await?
                        == 1
                }
                Err(_) => false,
            }
        }
        Guard::TakeDebounce { function, key, event_id } => {
            tx.exec(
                "DELETE FROM debounces WHERE function = $1 AND key = $2 AND event_id = $3",
                params![function.clone(), key.clone(), event_id.to_string()],
            )
            .await?
                == 1
        }
        Guard::Singleton { scope, key, run_id } => {
            hold_singleton(tx, scope, key, *run_id, |status| status.is_none_or(|s| s != RunStatus::Running.as_str())).await?.taken
        }
    })
}

fn insert_run(tx: &mut Tx<'_>, r: &RunRecord) {
    let event_ids: Vec<String> = r.event_ids.iter().map(|e| e.to_string()).collect();
    tx.write(
        "INSERT INTO runs (id, function, status, state, event_ids, output, started_at_ms, ended_at_ms, correlation_id, rev)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT DO NOTHING",
        params![
            r.id().to_string(),
            r.state.function.0.clone(),
            r.status().as_str().to_string(),
            js(&state_to_json(&r.state)),
            event_ids,
            r.output.as_ref().map(js),
            r.started_at_ms,
            r.ended_at_ms,
            r.correlation_id.clone(),
            r.rev
        ],
    );
}

/// Inserts a queue item unless one with its id or dedupe key is there.
fn enqueue(tx: &mut Tx<'_>, q: &QueueItem) {
    tx.write(
        "INSERT INTO queue (id, run_id, work, available_at_ms, dedupe) VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING",
        params![q.id.0.clone(), q.run_id.to_string(), js(&work_to_json(&q.work)), q.available_at_ms, q.dedupe.clone()],
    );
}

/// Inserts a queue item, replacing one with the same id (or dedupe key). A
/// lease on the replaced item stays, as SQLite's in-memory lease does.
fn enqueue_replacing(tx: &mut Tx<'_>, q: &QueueItem) {
    if let Some(dedupe) = &q.dedupe {
        tx.write("DELETE FROM queue WHERE dedupe = $1 AND id <> $2", params![dedupe.clone(), q.id.0.clone()]);
    }
    tx.write(
        "INSERT INTO queue (id, run_id, work, available_at_ms, dedupe) VALUES ($1,$2,$3,$4,$5)
         ON CONFLICT (id) DO UPDATE SET run_id = excluded.run_id, work = excluded.work,
         available_at_ms = excluded.available_at_ms, dedupe = excluded.dedupe",
        params![q.id.0.clone(), q.run_id.to_string(), js(&work_to_json(&q.work)), q.available_at_ms, q.dedupe.clone()],
    );
}

/// Reads the limiter `name` under a row lock, and stores the new theoretical
/// arrival time `f` returns (if any).
async fn take_limiter<T>(tx: &mut Tx<'_>, name: &str, f: impl Fn(Option<i64>) -> (Option<i64>, T)) -> Result<T> {
    for _ in 0..RACE_RETRIES {
        let rows = tx.query("SELECT tat_ms FROM limiters WHERE name = $1 FOR UPDATE", params![name.to_string()]).await?;
        let tat: Option<i64> = rows.first().map(|r| col(r, "tat_ms")).transpose()?;
        let (new_tat, out) = f(tat);
        match (tat, new_tat) {
            (_, None) => return Ok(out),
            (Some(_), Some(new)) => {
                tx.write("UPDATE limiters SET tat_ms = $2 WHERE name = $1", params![name.to_string(), new]);
                return Ok(out);
            }
            (None, Some(new)) => {
                let n = tx
                    .exec("INSERT INTO limiters (name, tat_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING", params![name.to_string(), new])
                    .await?;
                if n == 1 {
                    return Ok(out);
                }
            }
        }
    }
    Err(lost_race("limiter"))
}

#[allow(clippy::too_many_arguments)]
async fn debounce(
    tx: &mut Tx<'_>,
    function: &str,
    key: &str,
    event_id: EventId,
    run_id: RunId,
    now_ms: i64,
    period_ms: i64,
    timeout_ms: Option<i64>,
) -> Result<()> {
    for _ in 0..RACE_RETRIES {
        let rows = tx
            .query(
                "SELECT run_id, first_ms FROM debounces WHERE function = $1 AND key = $2 FOR UPDATE",
                params![function.to_string(), key.to_string()],
            )
            .await?;
        let existing = match rows.first() {
            Some(r) => Some((parse_run_id(col(r, "run_id")?)?, col::<i64>(r, "first_ms")?)),
            None => None,
        };
        let (rid, first) = existing.unwrap_or((run_id, now_ms));
        let fire = ingot_core::flow::debounce_fire_at(first, now_ms, period_ms, timeout_ms);
        let p = params![function.to_string(), key.to_string(), rid.to_string(), event_id.to_string(), first, fire];
        if existing.is_some() {
            tx.write("UPDATE debounces SET run_id = $3, event_id = $4, first_ms = $5, fire_ms = $6 WHERE function = $1 AND key = $2", p);
        } else {
            let sql = "INSERT INTO debounces (function, key, run_id, event_id, first_ms, fire_ms) VALUES ($1,$2,$3,$4,$5,$6)
                       ON CONFLICT DO NOTHING";
            if tx.exec(sql, p).await? != 1 {
                continue;
            }
        }
        let item = QueueItem {
            id: QueueItemId(format!("debounce:{function}:{key}")),
            run_id: rid,
            work: Work::Debounce { function: function.to_string(), key: key.to_string() },
            available_at_ms: fire,
            dedupe: None,
        };
        enqueue_replacing(tx, &item);
        return Ok(());
    }
    Err(lost_race("debounce"))
}

#[allow(clippy::too_many_arguments)]
async fn append_batch(
    tx: &mut Tx<'_>,
    function: &str,
    key: &str,
    event_id: EventId,
    run_id: RunId,
    now_ms: i64,
    max_size: usize,
    timeout_ms: i64,
) -> Result<()> {
    for _ in 0..RACE_RETRIES {
        let rows = tx
            .query(
                "SELECT run_id, event_ids FROM batches WHERE function = $1 AND key = $2 AND open FOR UPDATE",
                params![function.to_string(), key.to_string()],
            )
            .await?;
        let rid = match rows.first() {
            Some(r) => {
                let rid = parse_run_id(col(r, "run_id")?)?;
                let mut ids: Vec<String> = col(r, "event_ids")?;
                ids.push(event_id.to_string());
                let full = ids.len() >= max_size;
                tx.write("UPDATE batches SET event_ids = $2, open = $3 WHERE run_id = $1", params![rid.to_string(), ids, !full]);
                if !full {
                    return Ok(());
                }
                rid
            }
            None => {
                let full = 1 >= max_size;
                let inserted = tx
                    .exec(
                        "INSERT INTO batches (run_id, function, key, event_ids, first_ms, open) VALUES ($1,$2,$3,$4,$5,$6)
                         ON CONFLICT DO NOTHING",
                        params![run_id.to_string(), function.to_string(), key.to_string(), vec![event_id.to_string()], now_ms, !full],
                    )
                    .await?;
                if inserted != 1 {
                    // Another node opened the batch first: append to it.
                    continue;
                }
                let item = QueueItem {
                    id: QueueItemId(format!("batch:{run_id}")),
                    run_id,
                    work: Work::Batch { function: function.to_string(), key: key.to_string() },
                    available_at_ms: now_ms.saturating_add(timeout_ms),
                    dedupe: None,
                };
                enqueue(tx, &item);
                if !full {
                    return Ok(());
                }
                run_id
            }
        };
        // A full batch fires now.
        tx.write("UPDATE queue SET available_at_ms = $1 WHERE id = $2", params![now_ms, format!("batch:{rid}")]);
        return Ok(());
    }
    Err(lost_race("batch"))
}

struct Singleton {
    /// Who held the key before (a run id as stored), if anyone.
    holder: Option<String>,
    /// Whether `run_id` holds it now.
    taken: bool,
}

/// Reads the holder of a singleton key (and its run's status) under a row
/// lock and makes `run_id` the holder if `free(status)` says the key is free
/// (a key nobody holds always is).
async fn hold_singleton(tx: &mut Tx<'_>, scope: &str, key: &str, run_id: RunId, free: impl Fn(Option<&str>) -> bool) -> Result<Singleton> {
    for _ in 0..RACE_RETRIES {
        let rows = tx
            .query(
                "SELECT s.run_id, r.status FROM singletons s LEFT JOIN runs r ON r.id = s.run_id
                 WHERE s.scope = $1 AND s.key = $2 FOR UPDATE OF s",
                params![scope.to_string(), key.to_string()],
            )
            .await?;
        let p = params![scope.to_string(), key.to_string(), run_id.to_string()];
        match rows.first() {
            Some(r) => {
                let holder: String = col(r, "run_id")?;
                let status: Option<&str> = col(r, "status")?;
                let taken = free(status);
                if taken {
                    tx.write("UPDATE singletons SET run_id = $3 WHERE scope = $1 AND key = $2", p);
                }
                return Ok(Singleton { holder: Some(holder), taken });
            }
            None => {
                if tx.exec("INSERT INTO singletons (scope, key, run_id) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING", p).await? == 1 {
                    return Ok(Singleton { holder: None, taken: true });
                }
            }
        }
    }
    Err(lost_race("singleton"))
}
