//! REST API v1 with Inngest's shapes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use ingot_core::{EventId, FunctionSlug, RunId, RunStatus};
use ingot_store::{EventFilter, RunFilter, RunProgress, RunRecord, StoredEvent};
use serde_json::{json, Value};

use super::ApiError;
use crate::Engine;

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)).unwrap_or_default()
}

fn run_json(engine: &Engine, r: &RunRecord) -> Value {
    let uuid = engine
        .queries
        .function(r.state.function.as_str())
        .map(|f| f.record.uuid.clone())
        .unwrap_or_else(|| crate::sync::stable_uuid(r.state.function.as_str()));
    json!({
        "run_id": r.id().to_string(),
        "run_started_at": rfc3339(r.started_at_ms),
        "function_id": uuid,
        "function_slug": r.state.function.as_str(),
        "function_version": 1,
        "environment_id": "00000000-0000-0000-0000-000000000000",
        "event_id": r.event_ids.first().map(|e| e.to_string()),
        "batch_id": Value::Null,
        "status": r.status().as_str(),
        "ended_at": r.ended_at_ms.map(rfc3339),
        "output": r.output.clone().unwrap_or(Value::Null),
    })
}

fn event_json(e: &StoredEvent) -> Value {
    let p = &e.payload;
    json!({
        "internal_id": e.internal_id.to_string(),
        "account_id": "00000000-0000-0000-0000-000000000000",
        "environment_id": "00000000-0000-0000-0000-000000000000",
        "source": "",
        "source_id": Value::Null,
        "received_at": rfc3339(e.received_at_ms),
        "id": p.get("id").cloned().unwrap_or(Value::Null),
        "name": e.name,
        "data": p.get("data").cloned().unwrap_or(Value::Null),
        "user": p.get("user").cloned().unwrap_or(Value::Null),
        "ts": p.get("ts").cloned().unwrap_or(Value::Null),
        "v": p.get("v").cloned().unwrap_or(Value::Null),
    })
}

fn meta() -> Value {
    json!({"fetched_at": rfc3339(chrono::Utc::now().timestamp_millis()), "cached_until": Value::Null})
}

/// `meta()` with the cursor of the next page (null on the last) and, when
/// known, the total (`total_exact: false`: counting stopped at the cap, the
/// total is at least `total_count`).
fn page_meta(next_cursor: Option<String>, total: Option<crate::queries::Total>) -> Value {
    let mut m = meta();
    m["next_cursor"] = json!(next_cursor);
    if let Some(t) = total {
        m["total_count"] = json!(t.count);
        m["total_exact"] = json!(t.exact);
    }
    m
}

/// A run search as the query string gives it (shared by `GET /v1/runs` and
/// the dashboard's run list).
pub struct RunQuery {
    pub filter: RunFilter,
    /// `filter` without the cursor: what the total counts.
    pub total_filter: RunFilter,
    pub expr: Option<String>,
    pub run_id: Option<RunId>,
    pub event_id: Option<EventId>,
}

impl RunQuery {
    pub fn search(&self) -> crate::queries::RunSearch<'_> {
        crate::queries::RunSearch { filter: self.filter.clone(), expr: self.expr.as_deref(), run_id: self.run_id, event_id: self.event_id }
    }
}

/// A time as milliseconds or RFC 3339.
fn parse_ms_or_time(s: &str) -> Result<i64, ApiError> {
    match s.parse::<i64>() {
        Ok(ms) => Ok(ms),
        Err(_) => parse_time(s),
    }
}

/// Reads `status` (`Running`, `Completed`, `Failed`, `Cancelled`, or
/// `Queued`: not yet called), `function`, `from`/`until` (when the run was
/// created: ms or RFC 3339, a bound on its ULID id), `cursor`, `limit`,
/// `run_id`, `event_id` and `query` (CEL over `event` and `output`).
pub fn run_query(q: &HashMap<String, String>, default_limit: usize) -> Result<RunQuery, ApiError> {
    let get = |k: &str| q.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let mut filter =
        RunFilter { limit: get("limit").and_then(|l| l.parse().ok()).unwrap_or(default_limit).clamp(1, 1000), ..Default::default() };
    match get("status") {
        None => {}
        Some(s) if s.eq_ignore_ascii_case("queued") => filter.progress = Some(RunProgress::Queued),
        Some(s) => {
            let status = RunStatus::parse(s).ok_or_else(|| ApiError::BadRequest(format!("unknown status {s:?}")))?;
            filter.status = Some(status);
            // Running means called: a run not yet called is Queued.
            if status == RunStatus::Running {
                filter.progress = Some(RunProgress::Called);
            }
        }
    }
    filter.function = get("function").map(|f| FunctionSlug(f.to_string()));
    if let Some(from) = get("from").map(parse_ms_or_time).transpose()? {
        filter.since = Some(RunId(ulid::Ulid::from_parts(from.max(0) as u64, 0)));
    }
    if let Some(until) = get("until").map(parse_ms_or_time).transpose()? {
        filter.before = Some(RunId(ulid::Ulid::from_parts(until.max(0) as u64 + 1, 0)));
    }
    let total_filter = filter.clone();
    if let Some(c) = get("cursor") {
        let cursor = RunId::parse(c).ok_or_else(|| ApiError::BadRequest(format!("cursor {c:?} is not a run id")))?;
        filter.before = Some(filter.before.map_or(cursor, |b| b.min(cursor)));
    }
    let run_id =
        get("run_id").map(|s| RunId::parse(s).ok_or_else(|| ApiError::BadRequest(format!("{s:?} is not a run id")))).transpose()?;
    let event_id =
        get("event_id").map(|s| EventId::parse(s).ok_or_else(|| ApiError::BadRequest(format!("{s:?} is not an event id")))).transpose()?;
    Ok(RunQuery { filter, total_filter, expr: get("query").map(str::to_string), run_id, event_id })
}

/// Reads `name`, `cursor`, `limit`, `received_after`/`received_before` (or
/// `from`/`until`: ms or RFC 3339) of an event list.
pub fn event_query(q: &HashMap<String, String>, default_limit: usize) -> Result<EventFilter, ApiError> {
    let get = |k: &str| q.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let cursor = get("cursor").or_else(|| get("before"));
    Ok(EventFilter {
        name: get("name").map(str::to_string),
        before: cursor
            .map(|c| EventId::parse(c).ok_or_else(|| ApiError::BadRequest(format!("cursor {c:?} is not an event id"))))
            .transpose()?,
        received_after_ms: get("received_after").or_else(|| get("from")).map(parse_ms_or_time).transpose()?,
        received_before_ms: get("received_before").or_else(|| get("until")).map(parse_ms_or_time).transpose()?,
        exclude_prefix: None,
        limit: get("limit").and_then(|l| l.parse().ok()).unwrap_or(default_limit).clamp(1, 1000),
    })
}

/// A page of events under `filter` and the cursor of the next.
pub async fn event_page(engine: &Engine, filter: &EventFilter) -> Result<(Vec<StoredEvent>, Option<String>), ApiError> {
    let mut page = engine.queries.events(&EventFilter { limit: filter.limit + 1, ..filter.clone() }).await?;
    let more = page.len() > filter.limit;
    page.truncate(filter.limit);
    let next = if more { page.last().map(|e| e.internal_id.to_string()) } else { None };
    Ok((page, next))
}

fn parse_event_id(s: &str) -> Result<EventId, ApiError> {
    EventId::parse(s).ok_or_else(|| ApiError::NotFound(format!("event {s:?} not found")))
}

fn parse_run_id(s: &str) -> Result<RunId, ApiError> {
    RunId::parse(s).ok_or_else(|| ApiError::NotFound(format!("run {s:?} not found")))
}

fn parse_time(s: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| ApiError::BadRequest(format!("{s:?} is not an RFC 3339 time")))
}

pub async fn list_events(State(engine): State<Arc<Engine>>, Query(q): Query<HashMap<String, String>>) -> Result<Json<Value>, ApiError> {
    let filter = event_query(&q, 20)?;
    let (events, next) = event_page(&engine, &filter).await?;
    let total = engine.queries.count_events(&filter).await?;
    Ok(Json(json!({"data": events.iter().map(event_json).collect::<Vec<_>>(), "metadata": page_meta(next, Some(total))})))
}

pub async fn get_event(State(engine): State<Arc<Engine>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let e = engine.queries.event(parse_event_id(&id)?).await?;
    Ok(Json(json!({"data": event_json(&e), "metadata": meta()})))
}

pub async fn event_runs(State(engine): State<Arc<Engine>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let runs = engine.queries.runs_for_event(parse_event_id(&id)?).await?;
    Ok(Json(json!({"data": runs.iter().map(|r| run_json(&engine, r)).collect::<Vec<_>>(), "metadata": meta()})))
}

pub async fn list_runs(State(engine): State<Arc<Engine>>, Query(q): Query<HashMap<String, String>>) -> Result<Json<Value>, ApiError> {
    let query = run_query(&q, 50)?;
    let page = engine.queries.search_runs(&query.search()).await?;
    let total = match (&query.expr, query.run_id, query.event_id) {
        (None, None, None) => Some(engine.queries.count_runs(&query.total_filter).await?),
        _ => None,
    };
    let mut meta = page_meta(page.next_cursor.map(|c| c.to_string()), total);
    if query.expr.is_some() {
        meta["scanned"] = json!(page.scanned);
        meta["scan_limit"] = json!(crate::queries::SEARCH_SCAN_LIMIT);
        meta["scan_capped"] = json!(page.scan_capped);
    }
    Ok(Json(json!({"data": page.runs.iter().map(|r| run_json(&engine, r)).collect::<Vec<_>>(), "metadata": meta})))
}

pub async fn get_run(State(engine): State<Arc<Engine>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let run = engine.queries.run(parse_run_id(&id)?).await?;
    Ok(Json(json!({"data": run_json(&engine, &run), "metadata": meta()})))
}

/// Cancels a run now: the decision is committed before the answer.
pub async fn cancel_run(State(engine): State<Arc<Engine>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let run_id = parse_run_id(&id)?;
    let run = engine.queries.run(run_id).await?;
    if run.status().is_terminal() {
        return Err(ApiError::BadRequest(format!("run {id} already ended ({})", run.status().as_str())));
    }
    engine.worker.cancel(run_id).await?;
    Ok(Json(json!({})))
}

pub async fn run_jobs(State(engine): State<Arc<Engine>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let items = engine.queries.run_items(parse_run_id(&id)?).await?;
    let data: Vec<Value> =
        items.iter().map(|i| json!({"id": i.id.0, "at": rfc3339(i.available_at_ms), "work": ingot_store::work_to_json(&i.work)})).collect();
    Ok(Json(json!({"data": data, "metadata": meta()})))
}

/// Steps and history of a run, for tools and the dashboard.
pub async fn run_steps(State(engine): State<Arc<Engine>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let run_id = parse_run_id(&id)?;
    let steps = engine.queries.run_steps(run_id).await?;
    let history = engine.queries.run_history(run_id).await?;
    let steps: Vec<Value> =
        steps.iter().map(|s| json!({"id": s.step, "name": s.name, "seq": s.seq, "at": rfc3339(s.at_ms), "memo": s.memo})).collect();
    let history: Vec<Value> = history
        .iter()
        .map(|h| json!({"at": rfc3339(h.at_ms), "kind": h.kind, "step": h.step, "name": h.name, "attempt": h.attempt, "duration_ms": h.duration_ms, "detail": h.detail}))
        .collect();
    Ok(Json(json!({"data": {"steps": steps, "history": history}, "metadata": meta()})))
}

pub async fn list_apps(State(engine): State<Arc<Engine>>) -> Result<Json<Value>, ApiError> {
    let apps = engine.queries.apps().await?;
    let functions = engine.queries.functions();
    let data: Vec<Value> = apps
        .iter()
        .map(|a| {
            let fns: Vec<&str> = functions.iter().filter(|f| f.record.app_id == a.id).map(|f| f.slug().as_str()).collect();
            json!({"id": a.id, "url": a.url, "sdk": a.sdk, "framework": a.framework, "error": a.error, "synced_at": rfc3339(a.synced_at_ms), "functions": fns})
        })
        .collect();
    Ok(Json(json!({"data": data, "metadata": meta()})))
}

pub async fn app_functions(State(engine): State<Arc<Engine>>, Path(app): Path<String>) -> Result<Json<Value>, ApiError> {
    let apps = engine.queries.apps().await?;
    if !apps.iter().any(|a| a.id == app) {
        return Err(ApiError::NotFound(format!("app {app:?} not found")));
    }
    let data: Vec<Value> = engine
        .queries
        .functions()
        .iter()
        .filter(|f| f.record.app_id == app)
        .map(|f| json!({"id": f.record.uuid, "slug": f.slug().as_str(), "name": f.record.name, "config": f.record.config}))
        .collect();
    Ok(Json(json!({"data": data, "metadata": meta()})))
}

pub async fn resync_app(State(engine): State<Arc<Engine>>, Path(app): Path<String>) -> Result<Json<Value>, ApiError> {
    engine.sync.resync(&app).await?;
    Ok(Json(json!({"ok": true})))
}

/// Bulk cancel: every running run of a function started in a time range.
pub async fn bulk_cancel(State(engine): State<Arc<Engine>>, Json(body): Json<Value>) -> Result<Json<Value>, ApiError> {
    let function = body
        .get("function_id")
        .or_else(|| body.get("function_slug"))
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::BadRequest("`function_id` is required".into()))?;
    let slug = engine
        .queries
        .functions()
        .into_iter()
        .find(|f| f.slug().as_str() == function || f.record.uuid == function)
        .map(|f| f.slug().clone())
        .ok_or_else(|| ApiError::NotFound(format!("function {function:?} not found")))?;
    let after = body.get("started_after").and_then(Value::as_str).map(parse_time).transpose()?.unwrap_or(i64::MIN);
    let before = body.get("started_before").and_then(Value::as_str).map(parse_time).transpose()?.unwrap_or(i64::MAX);
    let if_exp = body.get("if").and_then(Value::as_str).filter(|s| !s.trim().is_empty());
    let runs = engine.queries.runs(&RunFilter { status: Some(RunStatus::Running), function: Some(slug), ..Default::default() }).await?;
    let mut cancelled = 0;
    for run in runs.into_iter().filter(|r| r.started_at_ms >= after && r.started_at_ms <= before) {
        if let Some(src) = if_exp {
            let events = engine.queries.events_by_ids(&run.event_ids).await?;
            let first = events.first().map(|e| e.payload.clone()).unwrap_or(Value::Null);
            if !ingot_core::expr::eval_bool(src, &[("event", &first)]) {
                continue;
            }
        }
        engine.worker.cancel(run.id()).await?;
        cancelled += 1;
    }
    Ok(Json(json!({"id": ulid::Ulid::new().to_string(), "cancelled": cancelled})))
}

/// Events that did not start a function (rate limit, idempotency, singleton).
pub async fn list_skips(State(engine): State<Arc<Engine>>, Query(q): Query<HashMap<String, String>>) -> Result<Json<Value>, ApiError> {
    let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100usize).clamp(1, 1000);
    let skips = engine.queries.skips(q.get("function").map(String::as_str), limit).await?;
    let data: Vec<Value> = skips
        .iter()
        .map(|s| json!({"function_slug": s.function, "event_id": s.event_id.to_string(), "reason": s.reason, "at": rfc3339(s.at_ms)}))
        .collect();
    Ok(Json(json!({"data": data, "metadata": meta()})))
}

/// `POST /v1/signals` `{signal, data}`: resumes the run waiting for the
/// signal; `{"data":{"run_id"}}`, or 404 when no run waits for it.
pub async fn send_signal(State(engine): State<Arc<Engine>>, body: axum::body::Bytes) -> Result<Json<Value>, ApiError> {
    let body: Value = serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("Invalid signal data: {e}")))?;
    let signal = body.get("signal").and_then(Value::as_str).unwrap_or("");
    if signal.is_empty() {
        return Err(ApiError::BadRequest("signal is required".into()));
    }
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    match engine.ingest.signal(signal, data).await? {
        Some(run_id) => Ok(Json(json!({"data": {"run_id": run_id.to_string()}, "metadata": meta()}))),
        None => Err(ApiError::NotFound("No signal found".into())),
    }
}
