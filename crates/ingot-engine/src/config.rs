//! The engine's resolved settings.

use std::time::Duration;

use ingot_core::backoff::RetryPolicy;

/// `ingot dev` (open, loopback) or `ingot start` (keys required).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Dev,
    Start,
}

impl Mode {
    /// `X-Inngest-Server-Kind`.
    pub fn server_kind(self) -> &'static str {
        match self {
            Mode::Dev => "dev",
            Mode::Start => "cloud",
        }
    }
}

/// Everything the engine needs to know, already validated.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub mode: Mode,
    pub retry: RetryPolicy,
    /// App URLs to sync (`-u`).
    pub sdk_urls: Vec<String>,
    pub discovery: bool,
    pub poll: bool,
    pub poll_interval: Duration,
    /// Signs calls to SDKs when set.
    pub signing_key: Option<String>,
    /// Accepted event keys; empty accepts any key (dev).
    pub event_keys: Vec<String>,
    /// Most SDK calls in flight at once.
    pub workers: usize,
    pub call_timeout: Duration,
    /// Where the engine is reachable, for `/dev` and logs.
    pub public_url: String,
    /// Finished runs and old events are deleted after this long.
    pub retention: Duration,
    /// Send `ctx.fn_id` so JS v4 checkpoints steps during a call.
    pub checkpointing: bool,
}

impl EngineConfig {
    /// Defaults for a dev server, as `inngest dev`.
    pub fn dev() -> EngineConfig {
        EngineConfig {
            mode: Mode::Dev,
            retry: RetryPolicy::Table,
            sdk_urls: Vec::new(),
            discovery: true,
            poll: true,
            poll_interval: Duration::from_secs(5),
            signing_key: None,
            event_keys: Vec::new(),
            workers: 256,
            call_timeout: Duration::from_secs(2 * 3600),
            public_url: "http://127.0.0.1:8288".into(),
            retention: Duration::from_secs(7 * 24 * 3600),
            checkpointing: true,
        }
    }
}
