//! The call request the engine POSTs to an SDK to run (part of) a function.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `ctx.stack`: hashed ids of finished steps in completion order.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CallStack {
    pub stack: Vec<String>,
    pub current: usize,
}

/// `ctx` of a call request. `fn_id` switches JS v4 into checkpointing (steps
/// are POSTed to `/v1/checkpoint/{runId}/async` while the call runs); it is only
/// sent when the engine serves that endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct CallCtx {
    pub run_id: String,
    pub step_id: String,
    pub env: String,
    pub attempt: u32,
    pub max_attempts: u32,
    pub disable_immediate_execution: bool,
    pub use_api: bool,
    pub stack: CallStack,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fn_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qi_id: Option<String>,
}

/// The body of a call request.
#[derive(Debug, Clone, Serialize)]
pub struct CallRequest {
    pub event: Value,
    pub events: Vec<Value>,
    pub steps: Map<String, Value>,
    pub defers: Map<String, Value>,
    pub version: i32,
    pub use_api: bool,
    pub ctx: CallCtx,
}

impl CallRequest {
    /// The RFC 8785 (JCS) bytes of this request: what is sent and signed.
    pub fn to_jcs(&self) -> Vec<u8> {
        serde_jcs::to_vec(self).unwrap_or_else(|_| serde_json::to_vec(self).unwrap_or_default())
    }
}

/// A call request as an SDK receives it: the same shape as [`CallRequest`],
/// read leniently. Missing fields take the defaults the official SDKs use, so
/// older or newer engines (and hand-written test requests) still parse; a
/// `null` `steps` reads as no steps.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IncomingCallRequest {
    /// The first triggering event.
    #[serde(default)]
    pub event: Value,
    /// Every triggering event (more than one for batches).
    #[serde(default, deserialize_with = "null_as_default")]
    pub events: Vec<Value>,
    /// Memoized step results by hashed step id.
    #[serde(default, deserialize_with = "null_as_default")]
    pub steps: Map<String, Value>,
    /// The request version; `-1` lets the SDK decide.
    #[serde(default = "unset_version")]
    pub version: i32,
    /// `true` when `events` and `steps` were left out and must be fetched.
    #[serde(default)]
    pub use_api: bool,
    /// Run and attempt information.
    #[serde(default, deserialize_with = "null_as_default")]
    pub ctx: IncomingCallCtx,
}

/// `ctx` of an [`IncomingCallRequest`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IncomingCallCtx {
    /// The run id.
    #[serde(default)]
    pub run_id: String,
    /// `step` for discovery, or the hashed id of the step to run.
    #[serde(default)]
    pub step_id: Option<String>,
    /// The environment name, if any.
    #[serde(default)]
    pub env: Option<String>,
    /// Zero-based attempt of this request.
    #[serde(default)]
    pub attempt: u32,
    /// Attempts allowed (retries + 1), when the engine says.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// `true` when the SDK must plan steps rather than run one at once.
    #[serde(default)]
    pub disable_immediate_execution: bool,
    /// Same as the top-level `use_api`.
    #[serde(default)]
    pub use_api: bool,
    /// Finished steps in completion order.
    #[serde(default, deserialize_with = "null_as_default")]
    pub stack: IncomingCallStack,
}

/// `ctx.stack` of an [`IncomingCallRequest`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IncomingCallStack {
    /// Hashed ids of finished steps, in completion order.
    #[serde(default, deserialize_with = "null_as_default")]
    pub stack: Vec<String>,
    /// Index + 1 of the step whose completion scheduled this request.
    #[serde(default)]
    pub current: usize,
}

fn unset_version() -> i32 {
    -1
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_requests_parse_leniently() {
        let r: IncomingCallRequest = serde_json::from_str(
            r#"{"event":{"name":"a"},"steps":null,"ctx":{"run_id":"r","attempt":2,"stack":{"stack":["x"],"current":1}}}"#,
        )
        .unwrap();
        assert_eq!(r.version, -1);
        assert!(r.steps.is_empty() && r.events.is_empty());
        assert_eq!((r.ctx.attempt, r.ctx.max_attempts), (2, None));
        assert_eq!(r.ctx.stack.stack, ["x"]);
        let empty: IncomingCallRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.ctx.run_id, "");
    }
}
