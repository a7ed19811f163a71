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
    /// Longest a `step.fetch` or `step.ai.infer` request may take.
    pub gateway_timeout: Duration,
    /// Whether `step.fetch` and `step.ai.infer` may reach loopback and
    /// private addresses; unset, `ingot dev` may and `ingot start` may not
    /// ([`EngineConfig::gateway_private_allowed`]).
    pub gateway_allow_private: Option<bool>,
    /// Where OpenTelemetry traces go; `None` exports none.
    pub otlp: Option<crate::traces::OtlpConfig>,
}

/// Shortest signing key accepted by `ingot start`, in hex characters (16
/// bytes); Inngest's keys are 64.
pub const MIN_SIGNING_KEY_HEX: usize = 32;
/// Shortest event key accepted by `ingot start`.
pub const MIN_EVENT_KEY_CHARS: usize = 16;

/// Why a configuration cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("`ingot start` needs a signing key (--signing-key or INNGEST_SIGNING_KEY)")]
    MissingSigningKey,
    #[error(
        "the signing key must be hex of at least {MIN_SIGNING_KEY_HEX} characters and an even length, optionally prefixed \
         `signkey-<env>-` (e.g. `signkey-prod-$(openssl rand -hex 32)`); got {0}"
    )]
    BadSigningKey(String),
    #[error("`ingot start` needs at least one event key (--event-key or INNGEST_EVENT_KEY)")]
    MissingEventKey,
    #[error(
        "event keys must be at least {MIN_EVENT_KEY_CHARS} characters without spaces (e.g. `$(openssl rand -hex 16)`); key {0} is not"
    )]
    BadEventKey(usize),
}

/// Checks a signing key: hex after the optional `signkey-<env>-` prefix.
pub fn check_signing_key(key: &str) -> Result<(), ConfigError> {
    let hex = ingot_protocol::signature::normalize_key(key.trim());
    let described = if hex.is_empty() { "an empty key".to_string() } else { format!("{} characters", hex.len()) };
    if hex.len() < MIN_SIGNING_KEY_HEX || !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ConfigError::BadSigningKey(described));
    }
    Ok(())
}

impl EngineConfig {
    /// Refuses settings `ingot start` cannot run safely with: a missing,
    /// short or non-hex signing key, no event key, or a short one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.mode != Mode::Start {
            return Ok(());
        }
        check_signing_key(self.signing_key.as_deref().ok_or(ConfigError::MissingSigningKey)?)?;
        if self.event_keys.is_empty() {
            return Err(ConfigError::MissingEventKey);
        }
        for (i, k) in self.event_keys.iter().enumerate() {
            if k.chars().count() < MIN_EVENT_KEY_CHARS || k.chars().any(char::is_whitespace) {
                return Err(ConfigError::BadEventKey(i + 1));
            }
        }
        Ok(())
    }

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
            gateway_timeout: Duration::from_secs(300),
            gateway_allow_private: None,
            otlp: None,
        }
    }

    /// Whether gateway requests may reach private addresses: as set, else
    /// in `ingot dev` only (or with `INGOT_GATEWAY_ALLOW_PRIVATE=1`).
    pub fn gateway_private_allowed(&self) -> bool {
        self.gateway_allow_private.unwrap_or_else(|| {
            self.mode == Mode::Dev || std::env::var("INGOT_GATEWAY_ALLOW_PRIVATE").is_ok_and(|v| v == "1" || v == "true")
        })
    }
}
