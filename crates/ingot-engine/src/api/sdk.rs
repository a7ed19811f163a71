//! Endpoints SDKs call: `POST /fn/register`, the `use_api` state reads, `/dev`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ingot_core::RunId;
use serde_json::{json, Map, Value};

use super::{auth, ApiError};
use crate::sync::SyncError;
use crate::Engine;

/// `POST /fn/register`. In `ingot start` the SDK must send the signing key,
/// hashed (`Authorization: Bearer signkey-<env>-<sha256>`), as the official
/// SDKs do; a refusal is a 401 they retry with the fallback key.
pub async fn register(State(engine): State<Arc<Engine>>, headers: HeaderMap, body: Bytes) -> Response {
    if engine.config.mode == crate::Mode::Start && !auth::bearer(&headers).is_some_and(|t| auth::accepts(&engine, t)) {
        tracing::warn!("register refused: no valid signing key");
        let body = json!({"error": "unauthorized: send the hashed signing key as `Authorization: Bearer`", "status": 401});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    let expected = headers.get("x-inngest-expected-server-kind").and_then(|v| v.to_str().ok());
    match engine.register(&body, expected).await {
        Ok(r) => {
            Json(json!({"ok": true, "modified": r.modified, "app_id": r.app_id, "sync_id": ulid::Ulid::new().to_string()})).into_response()
        }
        Err(e) => {
            let (status, code) = match &e {
                SyncError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
                SyncError::KindMismatch { .. } => (StatusCode::BAD_REQUEST, "server_kind_mismatch"),
                SyncError::Owned { .. } => (StatusCode::CONFLICT, "function_owned_by_another_app"),
                SyncError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            };
            tracing::warn!(error = %e, "register refused");
            (status, Json(json!({"error": e.to_string(), "status": status.as_u16(), "code": code}))).into_response()
        }
    }
}

fn run_id(s: &str) -> Result<RunId, ApiError> {
    RunId::parse(s).ok_or_else(|| ApiError::NotFound(format!("run {s:?} not found")))
}

/// `use_api`: the run's events.
pub async fn run_batch(State(engine): State<Arc<Engine>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let run = engine.store.run(run_id(&id)?).await?.ok_or_else(|| ApiError::NotFound(format!("run {id:?} not found")))?;
    let events: Vec<Value> = engine.store.events_by_ids(&run.event_ids).await?.into_iter().map(|e| e.payload).collect();
    Ok(Json(Value::Array(events)))
}

/// `use_api`: the run's memoized steps.
pub async fn run_actions(State(engine): State<Arc<Engine>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let rid = run_id(&id)?;
    if engine.store.run(rid).await?.is_none() {
        return Err(ApiError::NotFound(format!("run {id:?} not found")));
    }
    let steps: Map<String, Value> = engine.store.run_steps(rid).await?.into_iter().map(|s| (s.step, s.memo)).collect();
    Ok(Json(Value::Object(steps)))
}

/// What the JS SDK probes to learn it talks to a dev server.
pub async fn dev_info(State(engine): State<Arc<Engine>>) -> Json<Value> {
    let functions: Vec<Value> = engine.registry.all().iter().map(|f| dev_function(&f.record.config)).collect();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "authed": false,
        "startOpts": {
            "urls": engine.config.sdk_urls,
            "autodiscover": engine.config.discovery,
            "poll": engine.config.poll,
            "poll_interval": engine.config.poll_interval.as_secs(),
        },
        "functions": functions,
        "handlers": [],
        "isSingleNodeService": true,
        "isMissingSigningKey": engine.config.signing_key.is_none(),
        "isMissingEventKeys": engine.config.event_keys.is_empty(),
        "features": {},
    }))
}

/// A function as `/dev` lists it: the registered config with `steps` as
/// an array of `{id, name, uri}`, the shape the SDKs' test helpers parse.
fn dev_function(config: &Value) -> Value {
    let mut f = config.clone();
    if let Some(Value::Object(steps)) = config.get("steps") {
        let list: Vec<Value> = steps
            .iter()
            .map(|(key, s)| {
                json!({
                    "id": s.get("id").and_then(Value::as_str).unwrap_or(key),
                    "name": s.get("name").and_then(Value::as_str).unwrap_or(key),
                    "uri": s.pointer("/runtime/url").cloned().unwrap_or(Value::Null),
                })
            })
            .collect();
        f["steps"] = Value::Array(list);
    }
    f
}

/// JS v4 checkpointing: steps finished during a running call, memoized now.
pub async fn checkpoint(State(engine): State<Arc<Engine>>, Path(id): Path<String>, body: Bytes) -> Response {
    let Some(rid) = RunId::parse(&id) else {
        return (StatusCode::NOT_FOUND, Json(json!({"error": format!("run {id:?} not found"), "status": 404}))).into_response();
    };
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, Json(json!({"error": format!("body is not JSON: {e}"), "status": 400}))).into_response()
        }
    };
    let steps = parsed.get("steps").cloned().unwrap_or(Value::Array(Vec::new()));
    let ops = match ingot_protocol::opcode::parse_ops(steps.to_string().as_bytes()) {
        Ok(ops) => ops,
        Err(e) => return (StatusCode::BAD_REQUEST, Json(json!({"error": e, "status": 400}))).into_response(),
    };
    match engine.store.run(rid).await {
        Ok(Some(run)) if !run.status().is_terminal() => {}
        Ok(Some(_)) => return (StatusCode::CONFLICT, Json(json!({"error": "the run has ended", "status": 409}))).into_response(),
        Ok(None) => return (StatusCode::NOT_FOUND, Json(json!({"error": format!("run {id:?} not found"), "status": 404}))).into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    }
    match engine.apply_input(rid, ingot_core::Input::Checkpoint { ops }, None, None, Vec::new()).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => ApiError::Internal(e).into_response(),
    }
}
