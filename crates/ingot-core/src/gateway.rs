//! `step.fetch` (the `Gateway` op) and `step.ai.infer` (`AIGateway`): the
//! HTTP request the engine makes for the SDK, read from the op, and the memo
//! its outcome becomes, as Inngest's executor does it. Pure: the shell sends
//! the request ([`requests`] says which) and hands back what came back
//! ([`GatewayResult`]) in the same [`crate::Input::Reply`].
//!
//! An AI request carries the provider key (`opts.auth_key`), placed as the
//! `format` requires. It lives only in the request: [`GatewayRequest`]'s
//! `Debug` and [`GatewayRequest::public_url`] leave it out, and nothing
//! derived from the request (the memo, the history) contains it.

use std::fmt;

use ingot_protocol::{Op, Opcode};
use serde_json::{json, Map, Value};

use crate::errors;
use crate::run::RunState;

/// Which tool made the op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayKind {
    /// `step.fetch`: any response (a 500 too) is the step's result.
    Fetch,
    /// `step.ai.infer`: a response over 299 is a failure, retried like one.
    Ai,
}

/// One request the engine makes for a `Gateway` or `AIGateway` op.
#[derive(Clone, PartialEq)]
pub struct GatewayRequest {
    pub step: String,
    pub kind: GatewayKind,
    pub method: String,
    /// The URL to send to (for the `gemini` format, with the key in its query).
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// The AI format (`openai-chat`, `anthropic`, `gemini`, `bedrock`, ...).
    pub format: Option<String>,
    /// The URL without the key: for memos, history and logs.
    public_url: String,
}

impl GatewayRequest {
    /// The URL without any key in it.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Header names, values left out (they may be keys).
    pub fn header_names(&self) -> Vec<&str> {
        self.headers.iter().map(|(k, _)| k.as_str()).collect()
    }
}

impl fmt::Debug for GatewayRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayRequest")
            .field("step", &self.step)
            .field("kind", &self.kind)
            .field("method", &self.method)
            .field("url", &self.public_url)
            .field("headers", &self.header_names())
            .field("body_bytes", &self.body.as_ref().map(Vec::len))
            .field("format", &self.format)
            .finish()
    }
}

/// What became of one request.
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayOutcome {
    /// A response, read whole (the shell caps its size).
    Response { status: u16, headers: Vec<(String, String)>, body: Vec<u8> },
    /// No response: the connection failed, it timed out, the address was
    /// refused, or the body was over the cap.
    Failed { message: String },
}

/// The outcome of the request for `step`.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayResult {
    pub step: String,
    pub outcome: GatewayOutcome,
}

/// Whether an op is one the engine carries out over HTTP.
pub fn is_gateway(op: &Opcode) -> bool {
    matches!(op, Opcode::Gateway | Opcode::AIGateway)
}

/// The requests the shell must make before the core decides this reply:
/// one per gateway op of a step not yet memoized whose request can be built.
/// An op whose request cannot be built fails its step in `decide`, unsent.
pub fn requests(run: &RunState, ops: &[Op]) -> Vec<GatewayRequest> {
    let mut seen = std::collections::BTreeSet::new();
    ops.iter()
        .filter(|o| is_gateway(&o.op) && !run.done.contains(&o.id) && seen.insert(o.id.clone()))
        .filter_map(|o| request(o).ok())
        .collect()
}

/// Reads the request of a `Gateway` or `AIGateway` op.
pub fn request(op: &Op) -> Result<GatewayRequest, String> {
    let empty = Map::new();
    let opts = op.opts.as_ref().and_then(Value::as_object).unwrap_or(&empty);
    let url = opts.get("url").and_then(Value::as_str).unwrap_or("").trim().to_string();
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(format!("the request URL must be http:// or https://, got {:?}", truncate(&url)));
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    let user_headers = opts.get("headers").and_then(Value::as_object);
    let (kind, method, body, format, full_url) = match op.op {
        Opcode::AIGateway => {
            let format = opts.get("format").and_then(Value::as_str).unwrap_or("openai-chat").to_string();
            let key = opts.get("auth_key").and_then(Value::as_str).unwrap_or("");
            let body = serde_json::to_vec(opts.get("body").unwrap_or(&Value::Null)).map_err(|e| e.to_string())?;
            headers.push(("content-type".into(), "application/json".into()));
            let mut full = url.clone();
            match format.as_str() {
                "gemini" => {
                    let sep = if url.contains('?') { '&' } else { '?' };
                    full = format!("{url}{sep}key={}", query_escape(key));
                }
                "bedrock" => headers.push(("authorization".into(), key.to_string())),
                "anthropic" => headers.push(("x-api-key".into(), key.to_string())),
                _ => headers.push(("authorization".into(), format!("Bearer {key}"))),
            }
            (GatewayKind::Ai, "POST".to_string(), Some(body), Some(format), full)
        }
        Opcode::Gateway => {
            let method = opts.get("method").and_then(Value::as_str).filter(|m| !m.is_empty()).unwrap_or("POST").to_ascii_uppercase();
            if !method.bytes().all(|b| b.is_ascii_alphabetic()) || method.len() > 16 {
                return Err(format!("{:?} is not an HTTP method", truncate(&method)));
            }
            let body = match opts.get("body") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.is_empty() => None,
                Some(Value::String(s)) => Some(s.clone().into_bytes()),
                Some(other) => Some(serde_json::to_vec(other).map_err(|e| e.to_string())?),
            };
            (GatewayKind::Fetch, method, body, None, url.clone())
        }
        _ => return Err(format!("{} is not a gateway op", op.op.as_str())),
    };
    for (k, v) in user_headers.into_iter().flatten() {
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            other => other.to_string(),
        };
        headers.push((k.clone(), v));
    }
    Ok(GatewayRequest { step: op.id.clone(), kind, method, url: full_url, headers, body, format, public_url: url })
}

/// The memo of a gateway step, or `None` when the outcome is a failure the
/// call should be retried for (a fetch that got no response; an AI call that
/// got none or a status over 299) — the caller retries while attempts are
/// left and otherwise saves [`failure_memo`].
pub fn success_memo(req: &GatewayRequest, outcome: &GatewayOutcome) -> Option<Value> {
    match (req.kind, outcome) {
        (GatewayKind::Fetch, GatewayOutcome::Response { status, headers, body }) => {
            let mut h = Map::new();
            for (k, v) in headers {
                match h.get_mut(k) {
                    Some(Value::String(prev)) => {
                        prev.push(',');
                        prev.push_str(v);
                    }
                    _ => {
                        h.insert(k.clone(), Value::String(v.clone()));
                    }
                }
            }
            Some(json!({"data": {
                "url": req.public_url,
                "headers": h,
                "body": String::from_utf8_lossy(body),
                "status_code": status,
            }}))
        }
        (GatewayKind::Ai, GatewayOutcome::Response { status, body, .. }) if *status <= 299 => Some(json!({ "data": body_value(body) })),
        _ => None,
    }
}

/// The memo of a gateway step that failed for good: Inngest's `GatewayError`
/// or `AIGatewayError` (with the provider's body as `data` and `stack`).
pub fn failure_memo(req: &GatewayRequest, outcome: &GatewayOutcome) -> Value {
    let error = match (req.kind, outcome) {
        (GatewayKind::Fetch, GatewayOutcome::Failed { message }) => {
            errors::error("GatewayError", format!("Error making gateway request: {message}"))
        }
        (GatewayKind::Fetch, GatewayOutcome::Response { status, .. }) => {
            errors::error("GatewayError", format!("Error making gateway request: status {status}"))
        }
        (GatewayKind::Ai, GatewayOutcome::Failed { message }) => {
            let body = r#"{"error":"Error making AI request"}"#;
            json!({"name": "AIGatewayError", "message": format!("Error making AI request: {message}"), "data": body_value(body.as_bytes()), "stack": body})
        }
        (GatewayKind::Ai, GatewayOutcome::Response { status, body, .. }) => {
            let text = String::from_utf8_lossy(body).into_owned();
            json!({
                "name": "AIGatewayError",
                "message": format!("Error making AI request: unsuccessful status code: {status}"),
                "data": body_value(body),
                "stack": text,
            })
        }
    };
    errors::failed_memo(error)
}

/// The memo of a gateway op whose request cannot be built.
pub fn invalid_memo(op: &Op, reason: &str) -> Value {
    let name = if op.op == Opcode::AIGateway { "AIGatewayError" } else { "GatewayError" };
    errors::failed_memo(errors::error(name, format!("cannot make the request: {reason}")))
}

/// What the history records of a request: no key, no header values.
pub fn describe(req: &GatewayRequest) -> Value {
    let mut v = json!({
        "method": req.method,
        "url": req.public_url,
        "headers": req.header_names(),
    });
    if let Some(f) = &req.format {
        v["format"] = json!(f);
        // The prompt, for the timeline: the body holds no key.
        v["request"] = req.body.as_deref().map(body_value).unwrap_or(Value::Null);
    }
    v
}

/// A body as JSON when it is JSON, else as text.
fn body_value(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

/// Percent-encodes a query value.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
