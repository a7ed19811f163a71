//! Applying one commit's [`WriteOp`]s, guards included, inside the writer's
//! open transaction.

use ingot_core::RunStatus;
use rusqlite::{params, Connection};
use serde_json::Value;

use super::purge::purge;
use super::rows::parse_run_id;
use super::sql::{col, corrupt, exec, query_opt};
use crate::records::*;
use crate::{Result, StoreError};

fn js(v: &Value) -> String {
    v.to_string()
}

pub(super) fn apply_all(conn: &Connection, ops: &[WriteOp]) -> Result<CommitOutcome> {
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
            WriteOp::ReplaceSingleton { scope, key, run_id, now_ms } => {
                let holder: Option<String> =
                    query_opt(conn, "SELECT run_id FROM singletons WHERE scope = ? AND key = ?", params![scope, key], |row| {
                        col(row, "run_id")
                    })?;
                if let Some(holder) = holder.filter(|h| *h != run_id.to_string()) {
                    enqueue(conn, &QueueItem::new(parse_run_id(holder)?, Work::Cancel, *now_ms), false)?;
                }
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
            WriteOp::Ack(lease) => {
                exec(conn, "DELETE FROM queue WHERE id = ?", params![lease.item.0])?;
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
                    Guard::ClaimSignal { signal, replace, now_ms } => {
                        exec(
                            conn,
                            "UPDATE pauses SET correlation_id = NULL
                             WHERE kind = 'signal' AND correlation_id = ?1 AND (?2 OR expires_at_ms < ?3)",
                            params![signal, replace, now_ms],
                        )?;
                        query_opt(conn, "SELECT 1 FROM pauses WHERE kind = 'signal' AND correlation_id = ?", params![signal], |_| Ok(()))?
                            .is_none()
                    }
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
