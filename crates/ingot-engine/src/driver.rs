//! The SDK driver: builds a call request, POSTs it, and reads the reply into
//! a [`Reply`] the core understands. Anything unreadable is a `Reply::Invalid`,
//! never a panic.

use std::time::{Duration, Instant};

use ingot_core::{CallTarget, Reply, ReplyMeta, RunState};
use ingot_protocol::opcode::parse_ops;
use ingot_protocol::{signature, CallCtx, CallRequest, CallStack};
use ingot_store::StepRecord;
use serde_json::{json, Map, Value};
use ulid::Ulid;

/// What one call produced.
pub struct CallOutcome {
    pub reply: Reply,
    pub meta: ReplyMeta,
    pub status: Option<u16>,
    pub duration: Duration,
}

/// Above this much state, calls carry no events or steps and set `use_api`.
pub const MAX_INLINE_STATE_BYTES: usize = 4 * 1024 * 1024;
/// Most bytes read of an SDK's reply: a step output at its limit and room for
/// the ops around it. A longer reply fails the run (retrying cannot shrink it).
pub const MAX_REPLY_BYTES: usize = ingot_core::MAX_STEP_OUTPUT_BYTES + 1024 * 1024;

/// Why a body could not be read in full.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the body is over the limit of {0} bytes")]
    TooLarge(usize),
    #[error("the body was cut off: {0}")]
    Cut(#[from] reqwest::Error),
}

/// Reads a response body, refusing to buffer more than `max` bytes.
pub async fn read_capped(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, ReadError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(ReadError::TooLarge(max));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > max {
            return Err(ReadError::TooLarge(max));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Builds the request body for a call.
/// `checkpoint` is `(function uuid, queue item id)` when the engine accepts
/// checkpoints for this call.
pub fn build_request(
    state: &RunState,
    events: &[Value],
    steps: &[StepRecord],
    target: &CallTarget,
    attempt: u32,
    checkpoint: Option<(&str, &str)>,
) -> CallRequest {
    let mut memo = Map::new();
    let mut stack = Vec::with_capacity(steps.len());
    for s in steps {
        memo.insert(s.step.clone(), s.memo.clone());
        stack.push(s.step.clone());
    }
    let event = events.first().cloned().unwrap_or_else(|| json!({"name": "", "data": {}, "user": {}}));
    let size: usize = events.iter().chain(memo.values()).map(|v| serde_json::to_vec(v).map(|b| b.len()).unwrap_or(0)).sum();
    // Past Inngest's request limit the SDK fetches state itself through `use_api`.
    let use_api = size > MAX_INLINE_STATE_BYTES;
    let (events, memo) = if use_api { (Vec::new(), Map::new()) } else { (events.to_vec(), memo) };
    CallRequest {
        event,
        events,
        steps: memo,
        defers: Map::new(),
        version: state.version,
        use_api,
        ctx: CallCtx {
            run_id: state.run_id.to_string(),
            step_id: target.step_id().to_string(),
            env: String::new(),
            attempt,
            max_attempts: state.max_attempts,
            disable_immediate_execution: state.force_plan,
            use_api,
            stack: CallStack { current: stack.len(), stack },
            fn_id: checkpoint.map(|c| c.0.to_string()),
            qi_id: checkpoint.map(|c| c.1.to_string()),
        },
    }
}

/// The URL to call for `target`: the function's URL with `stepId` set.
pub fn call_url(base: &str, target: &CallTarget) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(base).map_err(|e| format!("function URL {base:?} is invalid: {e}"))?;
    let pairs: Vec<(String, String)> =
        url.query_pairs().filter(|(k, _)| k != "stepId").map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    {
        let mut q = url.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        q.append_pair("stepId", target.step_id());
    }
    Ok(url)
}

/// POSTs the call and reads the reply.
pub async fn call(http: &reqwest::Client, url: &str, request: &CallRequest, signing_key: Option<&str>, now_secs: i64) -> CallOutcome {
    let started = Instant::now();
    let target = if request.ctx.step_id == "step" { CallTarget::Discovery } else { CallTarget::Step(request.ctx.step_id.clone()) };
    let url = match call_url(url, &target) {
        Ok(u) => u,
        Err(e) => return invalid(e, started),
    };
    let body = request.to_jcs();
    let mut req = http
        .post(url.clone())
        .header("Content-Type", "application/json")
        .header("X-Run-ID", &request.ctx.run_id)
        .header("X-Inngest-Step-ID", &request.ctx.step_id)
        .header("X-Inngest-Req-Version", request.version.to_string())
        .header("X-Request-ID", Ulid::new().to_string());
    if let Some(key) = signing_key {
        req = req.header("X-Inngest-Signature", signature::sign(&body, key, now_secs));
    }
    let resp = match req.body(body).send().await {
        Ok(r) => r,
        Err(e) => return invalid(format!("could not reach the app at {url}: {e}"), started),
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = match read_capped(resp, MAX_REPLY_BYTES).await {
        Ok(b) => b,
        Err(ReadError::TooLarge(max)) => {
            let error = ingot_core::errors::output_too_large("the SDK's reply", None, max);
            return CallOutcome {
                reply: Reply::Error { status, error },
                meta: ReplyMeta { no_retry: Some(true), ..Default::default() },
                status: Some(status),
                duration: started.elapsed(),
            };
        }
        Err(e) => return invalid(format!("the app's reply was cut off: {e}"), started),
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (status, body, header_map) = if status == 201 { unwrap_streamed(&bytes) } else { (status, bytes.to_vec(), Map::new()) };
    let header =
        |name: &str| header_map.get(&name.to_ascii_lowercase()).and_then(Value::as_str).map(str::to_string).or_else(|| header(name));
    let meta = ReplyMeta {
        version: header("x-inngest-req-version").and_then(|v| v.trim().parse().ok()),
        no_retry: header("x-inngest-no-retry").map(|v| v.trim().eq_ignore_ascii_case("true")),
        retry_after: header("retry-after").and_then(|v| parse_retry_after(&v, now_secs)),
    };
    let duration = started.elapsed();
    if header("x-inngest-sdk").is_none() {
        let snippet = String::from_utf8_lossy(&body[..body.len().min(200)]).to_string();
        return CallOutcome {
            reply: Reply::Invalid(format!(
                "the reply (HTTP {status}) did not come from an Inngest SDK (no X-Inngest-SDK header): {snippet}"
            )),
            meta,
            status: Some(status),
            duration,
        };
    }
    let reply = match status {
        200 => Reply::Done(if body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
        }),
        206 => match parse_ops(&body) {
            Ok(ops) => Reply::Ops(ops),
            Err(e) => Reply::Invalid(e),
        },
        s if s >= 300 => Reply::Error { status: s, error: error_body(&body, s) },
        s => Reply::Invalid(format!("unexpected HTTP status {s} from the SDK")),
    };
    CallOutcome { reply, meta, status: Some(status), duration }
}

fn invalid(reason: String, started: Instant) -> CallOutcome {
    CallOutcome { reply: Reply::Invalid(reason), meta: ReplyMeta::default(), status: None, duration: started.elapsed() }
}

/// The error object of a failed call: the SDK's JSON, or the text wrapped.
fn error_body(body: &[u8], status: u16) -> Value {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(other) => json!({"name": "Error", "message": other.to_string()}),
        Err(_) => {
            json!({"name": "Error", "message": format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(1000)]))})
        }
    }
}

/// A 201 streamed reply: whitespace, then `{"status","headers","body"}`.
fn unwrap_streamed(bytes: &[u8]) -> (u16, Vec<u8>, Map<String, Value>) {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return (201, bytes.to_vec(), Map::new());
    };
    let status = v.get("status").and_then(Value::as_u64).unwrap_or(500) as u16;
    let headers = v
        .get("headers")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect())
        .unwrap_or_default();
    let body = match v.get("body") {
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(other) => other.to_string().into_bytes(),
        None => Vec::new(),
    };
    (status, body, headers)
}

/// `Retry-After`: up to 7 characters is seconds, else a date.
pub fn parse_retry_after(v: &str, now_secs: i64) -> Option<Duration> {
    let v = v.trim();
    if v.len() <= 7 {
        return v.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = chrono::DateTime::parse_from_rfc3339(v).or_else(|_| chrono::DateTime::parse_from_rfc2822(v)).ok()?;
    Some(Duration::from_secs((at.timestamp() - now_secs).max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_state_switches_to_use_api() {
        let state = RunState::new(ingot_core::RunId(ulid::Ulid::new()), ingot_core::FunctionSlug("a-f".into()), 5);
        let small = build_request(&state, &[json!({"name":"a","data":{}})], &[], &CallTarget::Discovery, 0, None);
        assert!(!small.use_api && small.events.len() == 1);
        let big = StepRecord {
            run_id: state.run_id,
            step: "s".into(),
            name: "s".into(),
            memo: json!({"data": "x".repeat(MAX_INLINE_STATE_BYTES)}),
            seq: 1,
            at_ms: 0,
        };
        let req = build_request(&state, &[json!({"name":"a","data":{}})], &[big], &CallTarget::Discovery, 0, None);
        assert!(req.use_api && req.ctx.use_api && req.events.is_empty() && req.steps.is_empty());
        assert_eq!(req.ctx.stack.stack, vec!["s".to_string()], "the stack still names the steps");
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("30", 0), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("2030-01-02T03:04:05Z", 1_893_553_445 - 10), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after("garbage-date-here", 0), None);
    }

    #[test]
    fn step_id_replaces_the_query_value() {
        let u = call_url("http://a/api/inngest?fnId=app-f&stepId=step", &CallTarget::Step("abc".into())).unwrap();
        assert_eq!(u.as_str(), "http://a/api/inngest?fnId=app-f&stepId=abc");
    }
}
