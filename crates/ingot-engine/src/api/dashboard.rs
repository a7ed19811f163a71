//! Endpoints the dashboard needs beyond the REST API v1: run timelines,
//! rerun, pause and resume, sending and replaying events, adding apps, and
//! run and event lists shaped for the UI.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::Json;
use ingot_core::{EventId, RunId, RunStatus};
use ingot_protocol::Event;
use ingot_store::{RunRecord, StoredEvent};
use serde_json::{json, Value};

use super::{events, rest, trace, ApiError};
use crate::Engine;

/// Milliseconds since the epoch as RFC 3339 with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)).unwrap_or_default()
}

/// A function's display name, its slug when it is gone.
pub fn function_name(engine: &Engine, slug: &str) -> String {
    engine.queries.function(slug).map(|f| f.record.name.clone()).filter(|n| !n.is_empty()).unwrap_or_else(|| slug.to_string())
}

fn parse_run_id(s: &str) -> Result<RunId, ApiError> {
    RunId::parse(s).ok_or_else(|| ApiError::NotFound(format!("run {s:?} not found")))
}

async fn load_run(engine: &Engine, id: &str) -> Result<RunRecord, ApiError> {
    Ok(engine.queries.run(parse_run_id(id)?).await?)
}

/// A one-line preview of a failed run's error: `Name: message`.
fn error_preview(r: &RunRecord) -> Option<String> {
    if r.status() != RunStatus::Failed {
        return None;
    }
    let err = match trace::run_output(r)? {
        Err(e) => e,
        Ok(_) => return None,
    };
    let text = match &err {
        Value::Object(m) => {
            let name = m.get("name").and_then(Value::as_str).unwrap_or("Error");
            match m.get("message").and_then(Value::as_str) {
                Some(msg) => format!("{name}: {msg}"),
                None => name.to_string(),
            }
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some(text.chars().take(160).collect())
}

/// A run as the dashboard lists it; `queued`: it has not had its first call.
pub fn run_row(engine: &Engine, r: &RunRecord, event_name: Option<&str>) -> Value {
    run_row_with(engine, r, event_name, false)
}

fn run_row_with(engine: &Engine, r: &RunRecord, event_name: Option<&str>, queued: bool) -> Value {
    json!({
        "run_id": r.id().to_string(),
        "function_slug": r.state.function.as_str(),
        "function_name": function_name(engine, r.state.function.as_str()),
        "status": if queued { "Queued" } else { r.status().as_str() },
        "error": error_preview(r),
        "started_at_ms": r.started_at_ms,
        "ended_at_ms": r.ended_at_ms,
        "event_id": r.event_ids.first().map(|e| e.to_string()),
        "event_count": r.event_ids.len(),
        "event_name": event_name,
        "output": r.output,
    })
}

/// An event with the runs it started and, for functions it started none
/// of, why (`skips`: a paused function, a rate limit, …).
async fn event_row(e: &StoredEvent, engine: &Engine) -> Result<Value, ApiError> {
    let runs = engine.queries.runs_for_event(e.internal_id).await?;
    let skips = if runs.is_empty() { engine.queries.skips_for_event(e.internal_id).await? } else { Vec::new() };
    Ok(json!({
        "id": e.internal_id.to_string(),
        "name": e.name,
        "received_at_ms": e.received_at_ms,
        "payload": e.payload,
        "runs": runs.iter().map(|r| run_row(engine, r, Some(&e.name))).collect::<Vec<_>>(),
        "skips": skips.iter().map(|s| json!({
            "function_slug": s.function,
            "function_name": function_name(engine, &s.function),
            "reason": s.reason,
        })).collect::<Vec<_>>(),
    }))
}

/// `GET /v1/dashboard/runs?status=&function=&from=&until=&cursor=&limit=&run_id=&event_id=&query=`:
/// a page of runs newest first (see [`rest::run_query`]), the cursor of the
/// next page, the total (exact, or a lower bound past the count cap), and,
/// for a CEL search, how many rows it read (at most the scan limit per page).
pub async fn runs(State(engine): State<Arc<Engine>>, Query(q): Query<HashMap<String, String>>) -> Result<Json<Value>, ApiError> {
    let query = rest::run_query(&q, 50)?;
    let page = engine.queries.search_runs(&query.search()).await?;
    let total = match (&query.expr, query.run_id, query.event_id) {
        (None, None, None) => Some(engine.queries.count_runs(&query.total_filter).await?),
        _ => None,
    };
    let data: Vec<Value> = page
        .runs
        .iter()
        .map(|r| {
            let name = r.event_ids.first().and_then(|e| page.event_names.get(e)).map(String::as_str);
            run_row_with(&engine, r, name, page.queued.contains(&r.id()))
        })
        .collect();
    Ok(Json(json!({
        "data": data,
        "next_cursor": page.next_cursor.map(|c| c.to_string()),
        "total": total.map(|t| json!({"count": t.count, "exact": t.exact})),
        "search": query.expr.as_ref().map(|_| json!({
            "scanned": page.scanned,
            "scan_limit": crate::queries::SEARCH_SCAN_LIMIT,
            "capped": page.scan_capped,
        })),
    })))
}

/// `GET /v1/dashboard/events?limit=&cursor=&name=&internal=1`: a page of
/// events newest first, each with the runs it started (and, for an event no
/// run took, why: a paused function or a skip), the next page's cursor and
/// the total; `id` looks one event up.
pub async fn events_feed(State(engine): State<Arc<Engine>>, Query(q): Query<HashMap<String, String>>) -> Result<Json<Value>, ApiError> {
    let internal = q.get("internal").is_some_and(|v| v == "1" || v == "true");
    let mut filter = rest::event_query(&q, 50)?;
    if !internal {
        filter.exclude_prefix = Some("inngest/".into());
    }
    let (page, next) = match q.get("id").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        Some(id) => {
            let eid = EventId::parse(id).ok_or_else(|| ApiError::BadRequest(format!("{id:?} is not an event id")))?;
            (engine.queries.find_event(eid).await?.into_iter().collect(), None)
        }
        None => rest::event_page(&engine, &filter).await?,
    };
    let total = engine.queries.count_events(&filter).await?;
    let mut data = Vec::with_capacity(page.len());
    for e in &page {
        data.push(event_row(e, &engine).await?);
    }
    Ok(Json(json!({"data": data, "next_cursor": next, "total": {"count": total.count, "exact": total.exact}})))
}

/// `GET /v1/dashboard/events/{id}`: one event with its runs.
pub async fn event_detail(State(engine): State<Arc<Engine>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let eid = EventId::parse(&id).ok_or_else(|| ApiError::NotFound(format!("event {id:?} not found")))?;
    let e = engine.queries.event(eid).await?;
    Ok(Json(json!({"data": event_row(&e, &engine).await?})))
}

/// `POST /v1/events`: sends one event or an array, as `POST /e/{key}` does,
/// for a signed-in dashboard user who holds no event key.
pub async fn send_events(State(engine): State<Arc<Engine>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let value: Value = serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?;
    let raw = match value {
        Value::Array(items) => items,
        obj @ Value::Object(_) => vec![obj],
        _ => return Err(ApiError::BadRequest("body must be an event object or an array of events".into())),
    };
    let mut list = Vec::with_capacity(raw.len());
    for (i, v) in raw.into_iter().enumerate() {
        list.push(Event::from_user_json(v, false).map_err(|e| ApiError::BadRequest(format!("event {i}: {e}")))?);
    }
    let ids = events::ingest(&engine, list, None).await?;
    engine.live.poke();
    Ok(Json(json!({"ids": ids, "status": 200})))
}

/// `POST /v1/events/{id}/replay`: sends the event again under a new id.
pub async fn replay_event(State(engine): State<Arc<Engine>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let eid = EventId::parse(&id).ok_or_else(|| ApiError::NotFound(format!("event {id:?} not found")))?;
    let e = engine.queries.event(eid).await?;
    if e.name.starts_with("inngest/") {
        return Err(ApiError::BadRequest(format!("{} is an internal event and cannot be replayed", e.name)));
    }
    let mut again = json!({"name": e.name, "data": e.payload.get("data").cloned().unwrap_or(json!({}))});
    for k in ["user", "v"] {
        if let Some(v) = e.payload.get(k).filter(|v| !v.is_null()) {
            again[k] = v.clone();
        }
    }
    let event = Event::from_user_json(again, false).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let ids = events::ingest(&engine, vec![event], None).await?;
    engine.live.poke();
    Ok(Json(json!({"ids": ids, "status": 200})))
}

/// `GET /v1/functions`: every active function with its triggers, flow
/// control and whether it is paused.
pub async fn functions(State(engine): State<Arc<Engine>>) -> Result<Json<Value>, ApiError> {
    let data: Vec<Value> = engine
        .queries
        .functions()
        .iter()
        .map(|f| {
            let cfg = &f.record.config;
            let flow: serde_json::Map<String, Value> = [
                "concurrency",
                "throttle",
                "rateLimit",
                "debounce",
                "batchEvents",
                "priority",
                "idempotency",
                "singleton",
                "timeouts",
                "cancel",
            ]
            .iter()
            .filter_map(|k| cfg.get(*k).filter(|v| !v.is_null()).map(|v| (k.to_string(), v.clone())))
            .collect();
            let retries = f.config.max_attempts().saturating_sub(1);
            json!({
                "slug": f.slug().as_str(),
                "id": f.record.uuid,
                "name": f.record.name,
                "app_id": f.record.app_id,
                "triggers": cfg.get("triggers").cloned().unwrap_or(json!([])),
                "flow": flow,
                "retries": retries,
                "paused": engine.queries.is_paused(f.slug().as_str()),
                "config": cfg,
            })
        })
        .collect();
    Ok(Json(json!({"data": data})))
}

fn known_function(engine: &Engine, slug: &str) -> Result<(), ApiError> {
    engine.queries.function(slug).map(|_| ()).ok_or_else(|| ApiError::NotFound(format!("function {slug:?} not found")))
}

/// `POST /v1/functions/{slug}/pause`: the function starts no new runs.
pub async fn pause(State(engine): State<Arc<Engine>>, Path(slug): Path<String>) -> Result<Json<Value>, ApiError> {
    known_function(&engine, &slug)?;
    let changed = engine.set_paused(&slug, true).await?;
    engine.live.publish(json!({"type": "function", "slug": slug, "paused": true}));
    Ok(Json(json!({"slug": slug, "paused": true, "changed": changed})))
}

/// `POST /v1/functions/{slug}/resume`.
pub async fn resume(State(engine): State<Arc<Engine>>, Path(slug): Path<String>) -> Result<Json<Value>, ApiError> {
    known_function(&engine, &slug)?;
    let changed = engine.set_paused(&slug, false).await?;
    engine.live.publish(json!({"type": "function", "slug": slug, "paused": false}));
    Ok(Json(json!({"slug": slug, "paused": false, "changed": changed})))
}

/// `POST /v1/functions/{slug}/invoke` with `{data, user}`: starts a run now.
pub async fn invoke(State(engine): State<Arc<Engine>>, Path(slug): Path<String>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let answer = events::invoke_function(&engine, &slug, &body).await?;
    engine.live.poke();
    Ok(answer)
}

/// `POST /v1/apps` with `{url}`: adds an app by URL and asks it to sync.
pub async fn add_app(State(engine): State<Arc<Engine>>, Json(body): Json<Value>) -> Result<Json<Value>, ApiError> {
    let url = body.get("url").and_then(Value::as_str).map(str::trim).filter(|u| !u.is_empty());
    let url = url.ok_or_else(|| ApiError::BadRequest("`url` is required".into()))?;
    let parsed = reqwest::Url::parse(url).map_err(|e| ApiError::BadRequest(format!("{url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApiError::BadRequest(format!("{url:?} is not an http(s) URL")));
    }
    engine.sync.add_app_url(url).await?;
    Ok(Json(json!({"ok": true, "url": url})))
}

/// `GET /v1/runs/{id}/timeline`: the run, its function, its events and its
/// trace with each span's output.
pub async fn timeline(State(engine): State<Arc<Engine>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let crate::queries::RunView { run, steps, history, events } = engine.queries.run_view(parse_run_id(&id)?).await?;
    let slug = run.state.function.as_str();
    let name = function_name(&engine, slug);
    let root = trace::build(&run, &name, &steps, &history);
    let memos: HashMap<&str, &Value> = steps.iter().map(|s| (s.step.as_str(), &s.memo)).collect();
    let output = |s: &trace::Span| -> Option<trace::SpanOutput> {
        match s.id.as_str() {
            "run" | "final" => trace::run_output(&run),
            id => memos.get(id).map(|m| trace::memo_output(m)),
        }
    };
    let first_name = events.first().map(|e| e.name.as_str());
    let (rerun_of, reruns) = engine.queries.rerun_links(run.id()).await?;
    let mut row = run_row_with(&engine, &run, first_name, root.status == trace::SpanStatus::Queued);
    row["rerun_of"] = json!(rerun_of.map(|r| r.to_string()));
    row["reruns"] = json!(reruns.iter().map(|r| r.to_string()).collect::<Vec<_>>());
    Ok(Json(json!({
        "run": row,
        "function": {"slug": slug, "name": name, "paused": engine.queries.is_paused(slug), "exists": engine.queries.function(slug).is_some()},
        "events": events.iter().map(|e| json!({"id": e.internal_id.to_string(), "name": e.name, "received_at_ms": e.received_at_ms, "payload": e.payload})).collect::<Vec<_>>(),
        "trace": trace::span_json(&root, output),
        "now_ms": engine.clock().now_ms(),
    })))
}

/// `POST /v1/runs/{id}/rerun` with an optional `{"from_step": id}`: a new
/// run of the same function with the same events, from the start or from
/// that step (the steps memoized before it are kept). Flow control that
/// decides whether an event starts a run (idempotency, rate limits,
/// debounce, batching) does not apply: the user asked for this run.
pub async fn rerun(State(engine): State<Arc<Engine>>, Path(id): Path<String>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let run = load_run(&engine, &id).await?;
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?
    };
    let from = body.get("from_step").and_then(Value::as_str).filter(|s| !s.is_empty());
    let new_id = engine.starter.rerun(&run, from).await?;
    engine.live.poke();
    Ok(Json(json!({"run_id": new_id.to_string(), "rerun_of": run.id().to_string(), "from_step": from})))
}
