//! Reads: the queries behind the [`Store`](ingot_store::Store) getters, on
//! the connection pool, each statement prepared once per pooled connection.

use std::collections::HashMap;

use ingot_core::{EventId, FunctionSlug, RunId};
use ingot_store::*;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::lease::pool_error;
use crate::rows::{event_id, event_ids, event_row, json, pause_row, queue_row, run_id, run_row};
use crate::sql::{big, col, pg_error};
use crate::PgStore;

/// `0` means no limit (as the SQLite store's `LIMIT -1`): `LIMIT NULL`.
fn limit(n: usize) -> Option<i64> {
    (n > 0).then(|| big(n))
}

/// `$n` placeholders.
fn pg_ph(n: usize) -> String {
    format!("${n}")
}

/// A [`Where`] clause's values as PostgreSQL parameters.
fn pg_params(w: &Where) -> Vec<Box<dyn ToSql + Sync + Send>> {
    w.params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                SqlParam::Text(s) => Box::new(s.clone()),
                SqlParam::Int(i) => Box::new(*i),
            }
        })
        .collect()
}

fn limit_sql(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" LIMIT {n}")
    }
}

impl PgStore {
    /// Runs a query built from a [`Where`] clause.
    async fn rows_where(&self, sql: &str, w: &Where) -> Result<Vec<Row>> {
        let params = pg_params(w);
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        self.rows(sql, &refs).await
    }

    async fn count_where(&self, sql: &str, w: &Where) -> Result<u64> {
        let rows = self.rows_where(sql, w).await?;
        let n: i64 = match rows.first() {
            Some(r) => col(r, "n")?,
            None => 0,
        };
        Ok(n.max(0) as u64)
    }

    pub(crate) async fn count_runs_where(&self, filter: &RunFilter) -> Result<u64> {
        let w = Where::runs(filter, &pg_ph);
        let sql = format!("SELECT COUNT(*) AS n FROM (SELECT 1 FROM runs{}{}) t", w.sql, limit_sql(filter.limit));
        self.count_where(&sql, &w).await
    }

    pub(crate) async fn count_events_where(&self, filter: &EventFilter) -> Result<u64> {
        let w = Where::events(filter, &pg_ph);
        let sql = format!("SELECT COUNT(*) AS n FROM (SELECT 1 FROM events{}{}) t", w.sql, limit_sql(filter.limit));
        self.count_where(&sql, &w).await
    }

    async fn rows(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let st = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.query(&st, params).await.map_err(pg_error)
    }

    async fn all<T>(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)], f: impl Fn(&Row) -> Result<T>) -> Result<Vec<T>> {
        self.rows(sql, params).await?.iter().map(f).collect()
    }

    async fn one<T>(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)], f: impl Fn(&Row) -> Result<T>) -> Result<Option<T>> {
        self.rows(sql, params).await?.first().map(f).transpose()
    }

    pub(crate) async fn read_apps(&self) -> Result<Vec<AppRecord>> {
        self.all("SELECT id, url, sdk, framework, checksum, error, synced_at_ms FROM apps ORDER BY id", &[], |r| {
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
        .await
    }

    pub(crate) async fn read_functions(&self, include_archived: bool) -> Result<Vec<FunctionRecord>> {
        self.all(
            "SELECT slug, app_id, uuid, name, config, archived, updated_at_ms FROM functions WHERE $1 OR NOT archived ORDER BY slug",
            &[&include_archived],
            |r| {
                Ok(FunctionRecord {
                    slug: FunctionSlug(col(r, "slug")?),
                    app_id: col(r, "app_id")?,
                    uuid: col(r, "uuid")?,
                    name: col(r, "name")?,
                    config: json(r, "config")?,
                    archived: col(r, "archived")?,
                    updated_at_ms: col(r, "updated_at_ms")?,
                })
            },
        )
        .await
    }

    pub(crate) async fn read_run(&self, id: RunId) -> Result<Option<RunRecord>> {
        self.one(
            "SELECT id, function, status, state, event_ids, output, started_at_ms, ended_at_ms, correlation_id, rev FROM runs WHERE id = $1",
            &[&id.to_string()],
            run_row,
        )
        .await
    }

    pub(crate) async fn read_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        let w = Where::runs(filter, &pg_ph);
        let sql = format!(
            "SELECT id, function, status, state, event_ids, output, started_at_ms, ended_at_ms, correlation_id, rev FROM runs{} ORDER BY id DESC{}",
            w.sql,
            limit_sql(filter.limit)
        );
        self.rows_where(&sql, &w).await?.iter().map(run_row).collect()
    }

    pub(crate) async fn read_runs_for_event(&self, id: EventId) -> Result<Vec<RunRecord>> {
        self.all(
            "SELECT id, function, status, state, event_ids, output, started_at_ms, ended_at_ms, correlation_id, rev FROM runs
             WHERE id IN (SELECT run_id FROM run_events WHERE event_id = $1) ORDER BY id",
            &[&id.to_string()],
            run_row,
        )
        .await
    }

    pub(crate) async fn read_run_steps(&self, id: RunId) -> Result<Vec<StepRecord>> {
        self.all("SELECT step, name, memo, seq, at_ms FROM steps WHERE run_id = $1 ORDER BY seq", &[&id.to_string()], |r| {
            Ok(StepRecord {
                run_id: id,
                step: col(r, "step")?,
                name: col(r, "name")?,
                memo: json(r, "memo")?,
                seq: col(r, "seq")?,
                at_ms: col(r, "at_ms")?,
            })
        })
        .await
    }

    pub(crate) async fn read_run_history(&self, id: RunId) -> Result<Vec<HistoryRecord>> {
        self.all(
            "SELECT at_ms, kind, step, name, attempt, duration_ms, detail FROM history WHERE run_id = $1 ORDER BY id",
            &[&id.to_string()],
            |r| {
                let attempt: Option<i64> = col(r, "attempt")?;
                Ok(HistoryRecord {
                    run_id: id,
                    at_ms: col(r, "at_ms")?,
                    kind: col(r, "kind")?,
                    step: col(r, "step")?,
                    name: col(r, "name")?,
                    attempt: attempt.map(|a| u32::try_from(a).map_err(|e| crate::sql::corrupt("history attempt", e))).transpose()?,
                    duration_ms: col(r, "duration_ms")?,
                    detail: json(r, "detail")?,
                })
            },
        )
        .await
    }

    pub(crate) async fn read_run_items(&self, id: RunId) -> Result<Vec<QueueItem>> {
        self.all(
            "SELECT id, run_id, work, available_at_ms, dedupe FROM queue WHERE run_id = $1 ORDER BY available_at_ms, id",
            &[&id.to_string()],
            queue_row,
        )
        .await
    }

    pub(crate) async fn read_event(&self, id: EventId) -> Result<Option<StoredEvent>> {
        self.one("SELECT internal_id, name, payload, received_at_ms FROM events WHERE internal_id = $1", &[&id.to_string()], event_row)
            .await
    }

    /// In the order asked, each found event once.
    pub(crate) async fn read_events_by_ids(&self, ids: &[EventId]) -> Result<Vec<StoredEvent>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        let found = self
            .all("SELECT internal_id, name, payload, received_at_ms FROM events WHERE internal_id = ANY($1)", &[&keys], event_row)
            .await?;
        let mut found: HashMap<EventId, StoredEvent> = found.into_iter().map(|e| (e.internal_id, e)).collect();
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    pub(crate) async fn read_events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
        let w = Where::events(filter, &pg_ph);
        let sql = format!(
            "SELECT internal_id, name, payload, received_at_ms FROM events{} ORDER BY internal_id DESC{}",
            w.sql,
            limit_sql(filter.limit)
        );
        self.rows_where(&sql, &w).await?.iter().map(event_row).collect()
    }

    pub(crate) async fn read_pauses_for_event(&self, name: &str) -> Result<Vec<Pause>> {
        self.all(
            "SELECT id, run_id, step, kind, event_name, if_exp, correlation_id, trigger, expires_at_ms FROM pauses
             WHERE event_name = $1 ORDER BY id",
            &[&name],
            pause_row,
        )
        .await
    }

    pub(crate) async fn read_pause_by_correlation(&self, correlation_id: &str) -> Result<Option<Pause>> {
        self.one(
            "SELECT id, run_id, step, kind, event_name, if_exp, correlation_id, trigger, expires_at_ms FROM pauses
             WHERE correlation_id = $1 ORDER BY id LIMIT 1",
            &[&correlation_id],
            pause_row,
        )
        .await
    }

    pub(crate) async fn read_pauses_for_run(&self, id: RunId) -> Result<Vec<Pause>> {
        self.all(
            "SELECT id, run_id, step, kind, event_name, if_exp, correlation_id, trigger, expires_at_ms FROM pauses
             WHERE run_id = $1 ORDER BY id",
            &[&id.to_string()],
            pause_row,
        )
        .await
    }

    pub(crate) async fn read_debounce(&self, function: &str, key: &str) -> Result<Option<DebounceRecord>> {
        self.one(
            "SELECT function, key, run_id, event_id, first_ms, fire_ms FROM debounces WHERE function = $1 AND key = $2",
            &[&function, &key],
            |r| {
                Ok(DebounceRecord {
                    function: col(r, "function")?,
                    key: col(r, "key")?,
                    run_id: run_id(col(r, "run_id")?)?,
                    event_id: event_id(col(r, "event_id")?)?,
                    first_ms: col(r, "first_ms")?,
                    fire_ms: col(r, "fire_ms")?,
                })
            },
        )
        .await
    }

    pub(crate) async fn read_batch(&self, id: RunId) -> Result<Option<BatchRecord>> {
        self.one("SELECT function, key, event_ids, first_ms FROM batches WHERE run_id = $1", &[&id.to_string()], |r| {
            Ok(BatchRecord {
                function: col(r, "function")?,
                key: col(r, "key")?,
                run_id: id,
                event_ids: event_ids(r, "event_ids")?,
                first_ms: col(r, "first_ms")?,
            })
        })
        .await
    }

    pub(crate) async fn read_skips(&self, function: Option<&str>, n: usize) -> Result<Vec<SkipRecord>> {
        self.all(
            "SELECT function, event_id, reason, at_ms FROM skips WHERE ($1::text IS NULL OR function = $1) ORDER BY id DESC LIMIT $2",
            &[&function, &limit(n)],
            |r| {
                Ok(SkipRecord {
                    function: col(r, "function")?,
                    event_id: event_id(col(r, "event_id")?)?,
                    reason: col(r, "reason")?,
                    at_ms: col(r, "at_ms")?,
                })
            },
        )
        .await
    }

    pub(crate) async fn read_skips_for_event(&self, id: EventId) -> Result<Vec<SkipRecord>> {
        self.all("SELECT function, event_id, reason, at_ms FROM skips WHERE event_id = $1 ORDER BY id", &[&id.to_string()], |r| {
            Ok(SkipRecord {
                function: col(r, "function")?,
                event_id: event_id(col(r, "event_id")?)?,
                reason: col(r, "reason")?,
                at_ms: col(r, "at_ms")?,
            })
        })
        .await
    }

    pub(crate) async fn read_paused_functions(&self) -> Result<Vec<String>> {
        self.all("SELECT slug FROM paused_functions ORDER BY slug", &[], |r| col(r, "slug")).await
    }

    pub(crate) async fn read_singleton_holder(&self, scope: &str, key: &str) -> Result<Option<RunId>> {
        self.one("SELECT run_id FROM singletons WHERE scope = $1 AND key = $2", &[&scope, &key], |r| run_id(col(r, "run_id")?)).await
    }

    pub(crate) async fn read_session(&self, id: &str) -> Result<Option<SessionRecord>> {
        self.one("SELECT id, created_at_ms, expires_at_ms FROM sessions WHERE id = $1", &[&id], |r| {
            Ok(SessionRecord { id: col(r, "id")?, created_at_ms: col(r, "created_at_ms")?, expires_at_ms: col(r, "expires_at_ms")? })
        })
        .await
    }
}

/// What the metrics and the dashboard's charts read.
impl PgStore {
    pub(crate) async fn read_queue_depth(&self, now_ms: i64) -> Result<QueueDepth> {
        let depth = self
            .one("SELECT COUNT(*) FILTER (WHERE available_at_ms <= $1) AS due, COUNT(*) AS total FROM queue", &[&now_ms], |r| {
                let (due, total): (i64, i64) = (col(r, "due")?, col(r, "total")?);
                Ok(QueueDepth { due: due as u64, future: (total - due) as u64 })
            })
            .await?;
        Ok(depth.unwrap_or_default())
    }

    pub(crate) async fn read_call_samples(&self, function: &str, since_ms: i64, n: usize) -> Result<Vec<CallSample>> {
        // Run ids are ULIDs: the smallest id of a run created at `since_ms`.
        let floor = ulid::Ulid::from_parts(since_ms.max(0) as u64, 0).to_string();
        self.all(
            "SELECT h.at_ms, COALESCE(h.duration_ms, 0) AS duration_ms FROM runs r JOIN history h ON h.run_id = r.id \
             WHERE r.function = $1 AND r.id >= $2 AND h.kind = 'call' AND h.at_ms >= $3 ORDER BY h.at_ms DESC, h.id DESC LIMIT $4",
            &[&function, &floor, &since_ms, &limit(n)],
            |r| Ok(CallSample { at_ms: col(r, "at_ms")?, duration_ms: col(r, "duration_ms")? }),
        )
        .await
    }
}
