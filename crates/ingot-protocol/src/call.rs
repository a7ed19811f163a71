//! The call request the engine POSTs to an SDK to run (part of) a function.

use serde::Serialize;
use serde_json::{Map, Value};

/// `ctx.stack`: hashed ids of finished steps in completion order.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CallStack {
    pub stack: Vec<String>,
    pub current: usize,
}

/// `ctx` of a call request. `fn_id` is left out on purpose: it switches JS v4
/// into checkpointing, which we do not serve yet.
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
