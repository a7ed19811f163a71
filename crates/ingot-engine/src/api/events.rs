//! `POST /e/{key}`, `POST /invoke/{slug}`, `GET /health`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ingot_core::lifecycle::FUNCTION_INVOKED;
use ingot_protocol::event::{MAX_EVENTS_PER_REQUEST, MAX_EVENT_REQUEST_BYTES};
use ingot_protocol::Event;
use serde_json::{json, Value};

use super::{auth, ApiError};
use crate::error::EngineError;
use crate::ingest::seeded_ids;
use crate::{Engine, Mode};

pub async fn health() -> Json<Value> {
    Json(json!({"status": 200, "message": "OK"}))
}

fn refuse(status: StatusCode, error: String) -> Response {
    ApiError::Events(status, error).into_response()
}

/// Accepts one event or an array; answers after the commit.
pub async fn send(State(engine): State<Arc<Engine>>, Path(key): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    if !event_key_ok(&engine, &key) {
        return refuse(StatusCode::UNAUTHORIZED, "Event key not found".into());
    }
    if body.len() > MAX_EVENT_REQUEST_BYTES {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("request body is {} bytes, over the limit of {MAX_EVENT_REQUEST_BYTES} bytes", body.len()),
        );
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("body is not valid JSON: {e}")),
    };
    let raw = match value {
        Value::Array(items) => items,
        obj @ Value::Object(_) => vec![obj],
        other => return refuse(StatusCode::BAD_REQUEST, format!("body must be an event object or an array of events, got {other}")),
    };
    if raw.is_empty() {
        return (StatusCode::OK, Json(json!({"ids": [], "status": 200}))).into_response();
    }
    if raw.len() > MAX_EVENTS_PER_REQUEST {
        return refuse(StatusCode::BAD_REQUEST, format!("{} events in one request, over the limit of {MAX_EVENTS_PER_REQUEST}", raw.len()));
    }
    let mut events = Vec::with_capacity(raw.len());
    for (i, v) in raw.into_iter().enumerate() {
        match Event::from_user_json(v, false) {
            Ok(e) => events.push(e),
            Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("event {i}: {e}")),
        }
    }
    if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        crate::traces::carry_traceparent(&mut events, tp);
    }
    let seeded = headers.get("x-inngest-event-id-seed").and_then(|v| v.to_str().ok()).and_then(|s| seeded_ids(s, events.len()));
    match ingest(&engine, events, seeded).await {
        Ok(ids) => (StatusCode::OK, Json(json!({"ids": ids, "status": 200}))).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "event ingest failed");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "the events could not be stored; nothing was accepted".into())
        }
    }
}

/// Stores events and everything they trigger in one commit; returns their internal ids.
pub async fn ingest(engine: &Engine, events: Vec<Event>, seeded: Option<Vec<ingot_core::EventId>>) -> Result<Vec<String>, EngineError> {
    Ok(engine.ingest.accept(events, seeded).await?.iter().map(|i| i.to_string()).collect())
}

/// Whether `key` is one of the engine's event keys (any key in `ingot dev`).
/// Every configured key is compared, in constant time.
fn event_key_ok(engine: &Engine, key: &str) -> bool {
    engine.config().mode != Mode::Start
        || engine.config().event_keys.iter().fold(false, |found, k| found | (!k.is_empty() && auth::same_secret(k, key)))
}

/// Starts a function directly with the given payload. In `ingot start` it
/// needs an event key (`Authorization: Bearer <event key>` or
/// `X-Inngest-Event-Key`) or the signing key.
pub async fn invoke(
    State(engine): State<Arc<Engine>>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    if engine.config().mode == Mode::Start {
        let presented = auth::bearer(&headers).or_else(|| headers.get("x-inngest-event-key").and_then(|v| v.to_str().ok()));
        let ok = presented.is_some_and(|k| event_key_ok(&engine, k.trim()) | auth::accepts(&engine, k));
        if !ok {
            return Err(ApiError::Unauthorized("invoking a function needs an event key: send `Authorization: Bearer <event key>`".into()));
        }
    }
    invoke_function(&engine, &slug, &body).await
}

/// Starts the function `slug` with the payload `{data, user}` in `body`.
pub async fn invoke_function(engine: &Arc<Engine>, slug: &str, body: &[u8]) -> Result<Json<Value>, ApiError> {
    if engine.queries.function(slug).is_none() {
        return Err(ApiError::NotFound(format!("function {slug:?} not found")));
    }
    let payload: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?
    };
    let data = match payload.get("data") {
        Some(Value::Object(m)) => Value::Object(m.clone()),
        Some(Value::Null) | None => json!({}),
        Some(_) => return Err(ApiError::BadRequest("`data` must be an object".into())),
    };
    let mut data = data;
    data["_inngest"] = json!({"fn_id": slug});
    let event = Event::from_user_json(json!({"name": FUNCTION_INVOKED, "data": data, "user": payload.get("user").cloned()}), true)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let ids = ingest(engine, vec![event], None).await?;
    let id = ids.into_iter().next().unwrap_or_default();
    Ok(Json(json!({"id": id, "status": 200})))
}
