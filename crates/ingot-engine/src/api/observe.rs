//! What operators and the dashboard's charts read: `GET /metrics` (the
//! Prometheus text format), `GET /v1/functions/{slug}/stats` (a function's
//! runs per minute by status, failure rate and call-time percentiles) and
//! `GET /v1/queue/stats` (the backlog and claim lag over the last hour).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::ApiError;
use crate::queries::stats::Window;
use crate::Engine;

/// `GET /metrics`: the queue gauge is read now, so a scrape sees the queue as it is.
pub async fn metrics(State(engine): State<Arc<Engine>>) -> Result<Response, ApiError> {
    let depth = engine.queries.queue_depth().await?;
    engine.metrics().set_queue_depth(depth.due, depth.future);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], engine.metrics().render()).into_response())
}

#[derive(Deserialize)]
pub struct StatsQuery {
    window: Option<String>,
}

/// `GET /v1/functions/{slug}/stats?window=1h|1d`.
pub async fn function_stats(
    State(engine): State<Arc<Engine>>,
    Path(slug): Path<String>,
    Query(q): Query<StatsQuery>,
) -> Result<Json<Value>, ApiError> {
    let window = match q.window.as_deref() {
        None => Window::Hour,
        Some(w) => Window::parse(w).ok_or_else(|| ApiError::BadRequest(format!("window {w:?} is not 1h or 1d")))?,
    };
    if engine.queries.function(&slug).is_none() {
        return Err(ApiError::NotFound(format!("function {slug:?} not found")));
    }
    let s = engine.queries.function_stats(&slug, window).await?;
    let buckets: Vec<Value> = s
        .buckets
        .iter()
        .map(|b| {
            json!({
                "start": b.start_ms, "started": b.started, "completed": b.completed, "failed": b.failed,
                "cancelled": b.cancelled, "calls": b.calls, "p50_ms": b.p50_ms, "p99_ms": b.p99_ms,
            })
        })
        .collect();
    Ok(Json(json!({
        "data": {
            "function": s.function, "window": s.window.as_str(), "bucket_ms": s.bucket_ms, "buckets": buckets,
            "failure_rate": s.failure_rate, "p50_ms": s.p50_ms, "p99_ms": s.p99_ms, "truncated": s.truncated,
        }
    })))
}

/// `GET /v1/queue/stats`: the samples of the last hour, and the queue now.
pub async fn queue_stats(State(engine): State<Arc<Engine>>) -> Result<Json<Value>, ApiError> {
    let now = engine.queries.queue_depth().await?;
    let samples: Vec<Value> = engine
        .queries
        .backlog()
        .iter()
        .map(|s| json!({"at": s.at_ms, "due": s.due, "future": s.future, "max_lag_ms": s.max_lag_ms}))
        .collect();
    Ok(Json(
        json!({"data": {"due": now.due, "future": now.future, "every_ms": crate::backlog::SAMPLE_EVERY.as_millis() as u64, "samples": samples}}),
    ))
}
