//! Internal events a run's lifecycle emits: `inngest/function.finished`,
//! `.failed`, `.cancelled`, and `inngest/function.invoked` for `step.invoke`.

use serde_json::{json, Map, Value};

use crate::run::RunStatus;
use ingot_protocol::event::MAX_EVENT_BYTES;

pub const FUNCTION_FINISHED: &str = "inngest/function.finished";
pub const FUNCTION_FAILED: &str = "inngest/function.failed";
pub const FUNCTION_CANCELLED: &str = "inngest/function.cancelled";
pub const FUNCTION_INVOKED: &str = "inngest/function.invoked";

/// What a finished run needs to describe itself.
pub struct Finished<'a> {
    pub function: &'a str,
    pub run_id: &'a str,
    pub events: &'a [Value],
    pub status: RunStatus,
    pub output: &'a Value,
    /// `_inngest.correlation_id` of the trigger, when the run was invoked.
    pub correlation_id: Option<&'a str>,
}

/// The events a run's end emits (`failed`/`cancelled` when so, then
/// `finished`), as event JSON. Runs triggered by
/// `function.finished`/`failed` emit none, so handlers cannot loop.
pub fn finished_events(f: &Finished<'_>, now_ms: i64) -> Vec<Value> {
    let first = f.events.first().cloned().unwrap_or(Value::Null);
    let trigger_name = first.get("name").and_then(Value::as_str).unwrap_or("");
    if trigger_name == FUNCTION_FINISHED || trigger_name == FUNCTION_FAILED {
        return Vec::new();
    }
    let mut data = Map::new();
    data.insert("function_id".into(), json!(f.function));
    data.insert("run_id".into(), json!(f.run_id));
    // Internal events are not held to the user-event limit, but they do not
    // copy a large batch: past the limit, `events` is left empty (the first
    // event, itself within the limit, stays in `event`).
    let copied: usize = f.events.iter().map(|e| serde_json::to_vec(e).map(|b| b.len()).unwrap_or(0)).sum();
    let events =
        if copied + serde_json::to_vec(&first).map(|b| b.len()).unwrap_or(0) > MAX_EVENT_BYTES { Vec::new() } else { f.events.to_vec() };
    data.insert("event".into(), first);
    data.insert("events".into(), Value::Array(events));
    match f.status {
        RunStatus::Completed => {
            data.insert("result".into(), f.output.clone());
        }
        RunStatus::Failed => {
            data.insert("error".into(), f.output.clone());
        }
        _ => {}
    }
    if let Some(c) = f.correlation_id {
        data.insert("correlation_id".into(), json!(c));
    }
    data.insert("_inngest".into(), json!({ "status": f.status.as_str() }));
    let data = Value::Object(data);
    let mut out = Vec::new();
    match f.status {
        RunStatus::Failed => out.push(json!({"name": FUNCTION_FAILED, "id": f.run_id, "data": data.clone(), "ts": now_ms})),
        RunStatus::Cancelled => out.push(json!({"name": FUNCTION_CANCELLED, "id": f.run_id, "data": data.clone(), "ts": now_ms})),
        _ => {}
    }
    out.push(json!({"name": FUNCTION_FINISHED, "data": data, "ts": now_ms}));
    out
}

/// The `inngest/function.invoked` event for `step.invoke` from `run_id`'s `step`.
pub fn invoked_event(target: &str, payload: &Value, run_id: &str, step: &str, source_fn: &str, expires_ms: i64, now_ms: i64) -> Value {
    let mut data = match payload.get("data") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    data.insert(
        "_inngest".into(),
        json!({
            "fn_id": target,
            "correlation_id": correlation_id(run_id, step),
            "expire": expires_ms,
            "source_fn_id": source_fn,
        }),
    );
    let mut ev = json!({"name": FUNCTION_INVOKED, "data": data, "ts": now_ms});
    if let Some(user) = payload.get("user").filter(|u| !u.is_null()) {
        ev["user"] = user.clone();
    }
    if let Some(v) = payload.get("v").and_then(Value::as_str) {
        ev["v"] = json!(v);
    }
    ev
}

/// `<runId>.<stepId>`: ties an invoked run's end back to the waiting step.
pub fn correlation_id(run_id: &str, step: &str) -> String {
    format!("{run_id}.{step}")
}

pub use crate::errors::{invoke_not_found, invoke_timed_out};
