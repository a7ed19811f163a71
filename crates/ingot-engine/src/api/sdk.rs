//! Endpoints SDKs call: `POST /fn/register`, the `use_api` state reads, `/dev`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use axum::Json;
use ingot_core::RunId;
use serde_json::{json, Map, Value};

use super::{auth, ApiError};
use crate::Engine;

/// `POST /fn/register`. In `ingot start` the SDK must send the signing key,
/// hashed (`Authorization: Bearer signkey-<env>-<sha256>`), as the official
/// SDKs do; a refusal is a 401 they retry with the fallback key.
pub async fn register(State(engine): State<Arc<Engine>>, headers: HeaderMap, body: Bytes) -> Result<Json<Value>, ApiError> {
    if engine.config().mode == crate::Mode::Start && !auth::bearer(&headers).is_some_and(|t| auth::accepts(&engine, t)) {
        tracing::warn!("register refused: no valid signing key");
        return Err(ApiError::Unauthorized("unauthorized: send the hashed signing key as `Authorization: Bearer`".into()));
    }
    let expected = headers.get("x-inngest-expected-server-kind").and_then(|v| v.to_str().ok());
    match engine.sync.register(&body, expected).await {
        Ok(r) => Ok(Json(json!({"ok": true, "modified": r.modified, "app_id": r.app_id, "sync_id": ulid::Ulid::new().to_string()}))),
        Err(e) => {
            tracing::warn!(error = %e, "register refused");
            Err(e.into())
        }
    }
}

fn run_id(s: &str) -> Result<RunId, ApiError> {
    RunId::parse(s).ok_or_else(|| ApiError::NotFound(format!("run {s:?} not found")))
}

/// `use_api`: the run's events.
pub async fn run_batch(State(engine): State<Arc<Engine>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let run = engine.queries.run(run_id(&id)?).await?;
    Ok(Json(Value::Array(engine.queries.run_events(&run).await?)))
}

/// `use_api`: the run's memoized steps.
pub async fn run_actions(State(engine): State<Arc<Engine>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let rid = run_id(&id)?;
    engine.queries.run(rid).await?;
    let steps: Map<String, Value> = engine.queries.run_steps(rid).await?.into_iter().map(|s| (s.step, s.memo)).collect();
    Ok(Json(Value::Object(steps)))
}

/// What the JS SDK probes to learn it talks to a dev server.
pub async fn dev_info(State(engine): State<Arc<Engine>>) -> Json<Value> {
    let functions: Vec<Value> = engine.queries.functions().iter().map(|f| dev_function(&f.record.config)).collect();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "authed": false,
        "startOpts": {
            "urls": engine.config().sdk_urls,
            "autodiscover": engine.config().discovery,
            "poll": engine.config().poll,
            "poll_interval": engine.config().poll_interval.as_secs(),
        },
        "functions": functions,
        "handlers": [],
        "isSingleNodeService": true,
        "isMissingSigningKey": engine.config().signing_key.is_none(),
        "isMissingEventKeys": engine.config().event_keys.is_empty(),
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
pub async fn checkpoint(State(engine): State<Arc<Engine>>, Path(id): Path<String>, body: Bytes) -> Result<StatusCode, ApiError> {
    let rid = run_id(&id)?;
    let parsed: Value = serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("body is not JSON: {e}")))?;
    let steps = parsed.get("steps").cloned().unwrap_or(Value::Array(Vec::new()));
    let ops = ingot_protocol::opcode::parse_ops(steps.to_string().as_bytes()).map_err(ApiError::BadRequest)?;
    let run = engine.queries.run(rid).await?;
    if run.status().is_terminal() {
        return Err(ApiError::Refused(StatusCode::CONFLICT, "the run has ended".into()));
    }
    let opcodes: Vec<String> = ops.iter().map(|o| o.op.as_str().to_string()).collect();
    engine.worker.apply(rid, ingot_core::Input::Checkpoint { ops }).await?;
    engine.metrics().checkpointed(run.state.function.as_str(), &opcodes);
    Ok(StatusCode::OK)
}
