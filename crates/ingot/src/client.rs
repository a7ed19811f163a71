//! The client: the app's identity and settings (read from `INNGEST_*`
//! variables like the official SDKs, in two phases: raw values, then one
//! [`ClientBuilder::build`] that validates them), and sending events.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use ingot_protocol::signature;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{ConfigError, SendError};
use crate::event::{EventId, IntoEvent, JsonEvent};

/// The SDK's version, as reported to the engine.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The dev server's default origin.
pub const DEFAULT_DEV_ORIGIN: &str = "http://127.0.0.1:8288";
/// Inngest Cloud's API origin.
pub const DEFAULT_API_ORIGIN: &str = "https://api.inngest.com";
/// Inngest Cloud's event API origin.
pub const DEFAULT_EVENT_API_ORIGIN: &str = "https://inn.gs";
/// The event key the official SDKs use when none is set (dev mode only).
pub const NO_EVENT_KEY: &str = "NO_EVENT_KEY_SET";
/// How many times `send` tries before giving up (as the JS SDK).
const SEND_TRIES: u32 = 5;
/// The first delay between `send` tries; it doubles each time.
const SEND_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait for a connection to the engine.
const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a whole request to the engine (send, sync, `use_api`).
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the app runs: against a local dev server, or in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A local dev server: keys are optional and requests are not verified.
    Dev,
    /// Inngest Cloud or a self-hosted engine: keys are required, requests
    /// must be signed and replies are signed.
    Cloud,
}

impl Mode {
    /// `"dev"` or `"cloud"`, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Dev => "dev",
            Mode::Cloud => "cloud",
        }
    }
}

/// A source of "now", injectable for tests.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// An Inngest app: its id, mode, keys and origins. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<ClientInner>,
}

pub(crate) struct ClientInner {
    pub(crate) app_id: String,
    pub(crate) mode: Mode,
    pub(crate) event_key: Option<String>,
    pub(crate) signing_key: Option<String>,
    pub(crate) signing_key_fallback: Option<String>,
    pub(crate) api_origin: String,
    pub(crate) event_api_origin: String,
    pub(crate) env: Option<String>,
    pub(crate) serve_origin: Option<String>,
    pub(crate) serve_path: Option<String>,
    pub(crate) app_version: Option<String>,
    pub(crate) http: reqwest::Client,
    pub(crate) clock: Clock,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are left out on purpose.
        f.debug_struct("Client")
            .field("app_id", &self.inner.app_id)
            .field("mode", &self.inner.mode)
            .field("api_origin", &self.inner.api_origin)
            .field("event_api_origin", &self.inner.event_api_origin)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `app_id` configured from the environment
    /// (`INNGEST_DEV`, `INNGEST_BASE_URL`, `INNGEST_EVENT_KEY`,
    /// `INNGEST_SIGNING_KEY`, `INNGEST_SIGNING_KEY_FALLBACK`, ...).
    /// Outside dev mode the keys are required.
    pub fn new(app_id: &str) -> Result<Client, ConfigError> {
        Client::builder(app_id).build()
    }

    /// A builder that starts from the environment; its setters override it.
    pub fn builder(app_id: &str) -> ClientBuilder {
        ClientBuilder::new(app_id).read_env(|k| std::env::var(k).ok())
    }

    /// The app id.
    pub fn app_id(&self) -> &str {
        &self.inner.app_id
    }

    /// Dev or cloud.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// The origin of the engine's API (`/fn/register`, `/v0/...`).
    pub fn api_origin(&self) -> &str {
        &self.inner.api_origin
    }

    /// The origin of the event API (`/e/{key}`).
    pub fn event_api_origin(&self) -> &str {
        &self.inner.event_api_origin
    }

    /// The composite id the engine knows a function by: `<app>-<function>`.
    pub fn composite_id(&self, function_id: &str) -> String {
        format!("{}-{function_id}", self.inner.app_id)
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        (self.inner.clock)()
    }

    /// Headers every request and reply of the SDK carries.
    pub(crate) fn sdk_header() -> String {
        format!("inngest-rs:v{SDK_VERSION}")
    }

    /// `Authorization` for calls to the engine: the hashed signing key.
    pub(crate) fn bearer(key: Option<&str>) -> Option<String> {
        key.and_then(signature::hashed_key).map(|h| format!("Bearer {h}"))
    }

    /// Sends the signal `signal` with `data` (`POST /v1/signals`, with the
    /// hashed signing key); returns the id of the run that was waiting for
    /// it, or `None` if none was.
    pub async fn send_signal(&self, signal: &str, data: Value) -> Result<Option<String>, SendError> {
        let url = format!("{}/v1/signals", self.inner.api_origin);
        let mut req = self
            .inner
            .http
            .post(&url)
            .header("X-Inngest-SDK", Client::sdk_header())
            .header("User-Agent", Client::sdk_header())
            .json(&serde_json::json!({"signal": signal, "data": data}));
        if let Some(auth) = Client::bearer(self.inner.signing_key.as_deref()) {
            req = req.header("Authorization", auth);
        }
        if let Some(env) = &self.inner.env {
            req = req.header("X-Inngest-Env", env);
        }
        let resp = req.send().await.map_err(|e| SendError::Unreachable { url: url.clone(), source: e })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        match status {
            200..=299 => {
                let v: Value = serde_json::from_str(&text).map_err(|e| SendError::InvalidResponse(format!("{e}: {text}")))?;
                match v.pointer("/data/run_id").and_then(Value::as_str) {
                    Some(id) => Ok(Some(id.to_string())),
                    None => Err(SendError::InvalidResponse(format!("no run_id in {text}"))),
                }
            }
            404 => Ok(None),
            _ => Err(SendError::Rejected { status, message: text.chars().take(500).collect() }),
        }
    }

    /// Sends one event; returns the id the engine gave it.
    pub async fn send(&self, event: impl IntoEvent) -> Result<EventId, SendError> {
        let mut ids = self.send_many([event]).await?;
        ids.pop().ok_or_else(|| SendError::InvalidResponse("no id returned for the event".into()))
    }

    /// Sends several events in one request; returns their ids, in order.
    pub async fn send_many<I>(&self, events: I) -> Result<Vec<EventId>, SendError>
    where
        I: IntoIterator,
        I::Item: IntoEvent,
    {
        let events = events.into_iter().map(IntoEvent::into_event).collect::<Result<Vec<_>, _>>()?;
        self.send_json(&events).await
    }

    /// Sends already-untyped events.
    pub(crate) async fn send_json(&self, events: &[JsonEvent]) -> Result<Vec<EventId>, SendError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now();
        let body: Vec<Value> = events.iter().map(|e| e.to_wire(now.timestamp_millis())).collect();
        let key = self.inner.event_key.as_deref().unwrap_or(NO_EVENT_KEY);
        let url = format!("{}/e/{key}", self.inner.event_api_origin);
        // One seed for every try, so the engine derives the same ids and
        // does not store a retried request twice.
        let seed_bytes: [u8; 10] = rand::random();
        let seed = format!("{},{}", now.timestamp_millis(), base64::engine::general_purpose::STANDARD.encode(seed_bytes));
        let mut delay = SEND_BACKOFF;
        let mut tries = 0;
        loop {
            tries += 1;
            let mut req = self
                .inner
                .http
                .post(&url)
                .header("Content-Type", "application/json")
                .header("X-Inngest-SDK", Client::sdk_header())
                .header("User-Agent", Client::sdk_header())
                .header("X-Inngest-Event-Id-Seed", &seed)
                .json(&body);
            if let Some(env) = &self.inner.env {
                req = req.header("X-Inngest-Env", env);
            }
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    read_send_reply(status, &text, events.len())
                }
                Err(e) => Err(SendError::Unreachable { url: url.clone(), source: e }),
            };
            let retry = match &outcome {
                Err(SendError::Unreachable { .. }) => true,
                Err(SendError::Rejected { status, .. }) => *status >= 500 || *status == 429,
                _ => false,
            };
            if !retry || tries >= SEND_TRIES {
                if let Err(e) = &outcome {
                    tracing::warn!(error = %e, tries, "sending events failed");
                } else {
                    tracing::debug!(count = events.len(), "events sent");
                }
                return outcome;
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
}

/// Reads the event API's reply: `{ids, status}`, where a `status` other
/// than 200 is a refusal even on HTTP 200 (the JS SDK's rule).
fn read_send_reply(http_status: u16, text: &str, sent: usize) -> Result<Vec<EventId>, SendError> {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let status = body.get("status").and_then(Value::as_u64).map(|s| s as u16).unwrap_or(http_status);
    if !(200..300).contains(&http_status) || !(200..300).contains(&status) {
        let message = body.get("error").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| text.chars().take(500).collect());
        return Err(SendError::Rejected { status, message });
    }
    let ids = body.get("ids").and_then(Value::as_array).ok_or_else(|| SendError::InvalidResponse(format!("no `ids` in {text:.200}")))?;
    let ids: Vec<EventId> = ids.iter().filter_map(Value::as_str).map(|s| EventId(s.to_string())).collect();
    if ids.len() != sent {
        return Err(SendError::InvalidResponse(format!("sent {sent} events but got {} ids", ids.len())));
    }
    Ok(ids)
}

/// Raw settings for a [`Client`]; [`ClientBuilder::build`] validates them.
#[derive(Clone, Default)]
pub struct ClientBuilder {
    app_id: String,
    mode: Option<Mode>,
    dev_var: Option<String>,
    base_url: Option<String>,
    api_base_url: Option<String>,
    event_api_base_url: Option<String>,
    event_key: Option<String>,
    signing_key: Option<String>,
    signing_key_fallback: Option<String>,
    env: Option<String>,
    serve_origin: Option<String>,
    serve_path: Option<String>,
    app_version: Option<String>,
    http: Option<reqwest::Client>,
    clock: Option<Clock>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder").field("app_id", &self.app_id).field("mode", &self.mode).finish_non_exhaustive()
    }
}

/// Non-empty, trimmed.
fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl ClientBuilder {
    /// A builder with nothing read from the environment.
    pub fn new(app_id: &str) -> ClientBuilder {
        ClientBuilder { app_id: app_id.to_string(), ..ClientBuilder::default() }
    }

    /// Reads the `INNGEST_*` variables through `lookup` (settings made
    /// before are overwritten by variables that are set).
    pub fn read_env(mut self, lookup: impl Fn(&str) -> Option<String>) -> ClientBuilder {
        let get = |k: &str| non_empty(lookup(k));
        let set = |slot: &mut Option<String>, v: Option<String>| {
            if v.is_some() {
                *slot = v;
            }
        };
        set(&mut self.dev_var, get("INNGEST_DEV"));
        set(&mut self.base_url, get("INNGEST_BASE_URL"));
        set(&mut self.api_base_url, get("INNGEST_API_BASE_URL"));
        set(&mut self.event_api_base_url, get("INNGEST_EVENT_API_BASE_URL"));
        set(&mut self.event_key, get("INNGEST_EVENT_KEY"));
        set(&mut self.signing_key, get("INNGEST_SIGNING_KEY"));
        set(&mut self.signing_key_fallback, get("INNGEST_SIGNING_KEY_FALLBACK"));
        set(&mut self.env, get("INNGEST_ENV"));
        set(&mut self.serve_origin, get("INNGEST_SERVE_ORIGIN"));
        set(&mut self.serve_path, get("INNGEST_SERVE_PATH"));
        set(&mut self.app_version, get("INNGEST_APP_VERSION"));
        self
    }

    /// Forces dev or cloud mode, whatever `INNGEST_DEV` says.
    pub fn mode(mut self, mode: Mode) -> ClientBuilder {
        self.mode = Some(mode);
        self
    }

    /// Dev mode (shorthand for `.mode(Mode::Dev)`).
    pub fn dev(self) -> ClientBuilder {
        self.mode(Mode::Dev)
    }

    /// The engine's origin, for both the API and the event API.
    pub fn base_url(mut self, url: impl Into<String>) -> ClientBuilder {
        self.base_url = Some(url.into());
        self
    }

    /// The event key.
    pub fn event_key(mut self, key: impl Into<String>) -> ClientBuilder {
        self.event_key = Some(key.into());
        self
    }

    /// The signing key (`signkey-<env>-<hex>`).
    pub fn signing_key(mut self, key: impl Into<String>) -> ClientBuilder {
        self.signing_key = Some(key.into());
        self
    }

    /// The fallback signing key, accepted during key rotation.
    pub fn signing_key_fallback(mut self, key: impl Into<String>) -> ClientBuilder {
        self.signing_key_fallback = Some(key.into());
        self
    }

    /// The Inngest environment (branch) name, sent as `X-Inngest-Env`.
    pub fn env(mut self, env: impl Into<String>) -> ClientBuilder {
        self.env = Some(env.into());
        self
    }

    /// The public origin the engine reaches this app at
    /// (`INNGEST_SERVE_ORIGIN`), reported when syncing. In cloud mode an
    /// unsigned sync `PUT` (a deploy hook's `curl -X PUT`) is only accepted
    /// when this is set, since its `Host` cannot be trusted; a signed one
    /// can do without. In dev mode the request's `Host` is used when unset.
    pub fn serve_origin(mut self, origin: impl Into<String>) -> ClientBuilder {
        self.serve_origin = Some(origin.into());
        self
    }

    /// The public path of the serve endpoint, when it differs from the
    /// request's path.
    pub fn serve_path(mut self, path: impl Into<String>) -> ClientBuilder {
        self.serve_path = Some(path.into());
        self
    }

    /// The app's version, reported when syncing.
    pub fn app_version(mut self, version: impl Into<String>) -> ClientBuilder {
        self.app_version = Some(version.into());
        self
    }

    /// The HTTP client used to send events and sync (e.g. one built with
    /// TLS features, for HTTPS origins).
    pub fn http_client(mut self, http: reqwest::Client) -> ClientBuilder {
        self.http = Some(http);
        self
    }

    /// The source of "now" (signature timestamps, event `ts`); for tests.
    pub fn clock(mut self, clock: Clock) -> ClientBuilder {
        self.clock = Some(clock);
        self
    }

    /// Validates the settings and applies defaults.
    pub fn build(self) -> Result<Client, ConfigError> {
        let app_id = self.app_id.trim().to_string();
        if app_id.is_empty() {
            return Err(ConfigError::EmptyAppId);
        }
        // INNGEST_DEV: 1/true, 0/false, or the dev server's origin.
        let (env_mode, dev_origin) = match self.dev_var.as_deref() {
            None => (Mode::Cloud, None),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => (Mode::Dev, None),
                "0" | "false" | "no" | "off" => (Mode::Cloud, None),
                _ if v.starts_with("http://") || v.starts_with("https://") => (Mode::Dev, Some(v.to_string())),
                _ => return Err(ConfigError::InvalidDev(v.to_string())),
            },
        };
        let mode = self.mode.unwrap_or(env_mode);
        let base = non_empty(self.base_url).or(dev_origin);
        let (default_api, default_events) = match mode {
            Mode::Dev => (DEFAULT_DEV_ORIGIN, DEFAULT_DEV_ORIGIN),
            Mode::Cloud => (DEFAULT_API_ORIGIN, DEFAULT_EVENT_API_ORIGIN),
        };
        let api_origin = check_url(
            "INNGEST_API_BASE_URL",
            non_empty(self.api_base_url).or_else(|| base.clone()).unwrap_or_else(|| default_api.to_string()),
        )?;
        let event_api_origin = check_url(
            "INNGEST_EVENT_API_BASE_URL",
            non_empty(self.event_api_base_url).or(base).unwrap_or_else(|| default_events.to_string()),
        )?;
        let signing_key = non_empty(self.signing_key);
        let signing_key_fallback = non_empty(self.signing_key_fallback);
        for (var, key) in [("INNGEST_SIGNING_KEY", &signing_key), ("INNGEST_SIGNING_KEY_FALLBACK", &signing_key_fallback)] {
            if let Some(k) = key {
                if signature::hashed_key(k).is_none() {
                    return Err(ConfigError::InvalidSigningKey { var });
                }
            }
        }
        let event_key = non_empty(self.event_key);
        if mode == Mode::Cloud {
            if signing_key.is_none() {
                return Err(ConfigError::MissingSigningKey);
            }
            if event_key.is_none() {
                return Err(ConfigError::MissingEventKey);
            }
        }
        let serve_origin = non_empty(self.serve_origin).map(|o| check_url("INNGEST_SERVE_ORIGIN", o)).transpose()?;
        Ok(Client {
            inner: Arc::new(ClientInner {
                app_id,
                mode,
                event_key,
                signing_key,
                signing_key_fallback,
                api_origin,
                event_api_origin,
                env: non_empty(self.env),
                serve_origin,
                serve_path: non_empty(self.serve_path),
                app_version: non_empty(self.app_version),
                http: self.http.unwrap_or_else(default_http),
                clock: self.clock.unwrap_or_else(|| Arc::new(Utc::now)),
            }),
        })
    }
}

/// The HTTP client used unless one is given: bounded, so a hung engine
/// cannot hold a sync or a send forever.
fn default_http() -> reqwest::Client {
    reqwest::Client::builder().connect_timeout(HTTP_CONNECT_TIMEOUT).timeout(HTTP_TIMEOUT).build().unwrap_or_default()
}

/// Checks an origin URL and drops any trailing slash.
fn check_url(var: &'static str, value: String) -> Result<String, ConfigError> {
    let bad = || ConfigError::InvalidUrl { var, value: value.clone() };
    let url = reqwest::Url::parse(&value).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad());
    }
    Ok(value.trim_end_matches('/').to_string())
}

/// Lowercase hex SHA-256 of a key, as introspection reports keys.
pub(crate) fn sha256_hex(s: &[u8]) -> String {
    hex::encode(Sha256::digest(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from_env(vars: &[(&str, &str)]) -> Result<Client, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ClientBuilder::new("app").read_env(|k| map.get(k).cloned()).build()
    }

    const KEY: &str = "signkey-test-0123456789abcdef";

    #[test]
    fn dev_mode_needs_no_keys_and_defaults_to_the_local_server() {
        for dev in ["1", "true", "TRUE"] {
            let c = from_env(&[("INNGEST_DEV", dev)]).unwrap();
            assert_eq!(c.mode(), Mode::Dev);
            assert_eq!(c.api_origin(), DEFAULT_DEV_ORIGIN);
            assert_eq!(c.event_api_origin(), DEFAULT_DEV_ORIGIN);
        }
        let c = from_env(&[("INNGEST_DEV", "http://localhost:9999/")]).unwrap();
        assert_eq!((c.mode(), c.api_origin()), (Mode::Dev, "http://localhost:9999"));
        let c = from_env(&[("INNGEST_DEV", "http://localhost:9999"), ("INNGEST_BASE_URL", "http://127.0.0.1:1234")]).unwrap();
        assert_eq!(c.event_api_origin(), "http://127.0.0.1:1234");
    }

    #[test]
    fn cloud_mode_requires_keys() {
        assert_eq!(from_env(&[]).unwrap_err(), ConfigError::MissingSigningKey);
        assert_eq!(from_env(&[("INNGEST_DEV", "0"), ("INNGEST_SIGNING_KEY", KEY)]).unwrap_err(), ConfigError::MissingEventKey);
        let c = from_env(&[("INNGEST_SIGNING_KEY", KEY), ("INNGEST_EVENT_KEY", "ek")]).unwrap();
        assert_eq!(c.mode(), Mode::Cloud);
        assert_eq!((c.api_origin(), c.event_api_origin()), (DEFAULT_API_ORIGIN, DEFAULT_EVENT_API_ORIGIN));
        assert!(ConfigError::MissingSigningKey.to_string().contains("INNGEST_DEV=1"));
    }

    #[test]
    fn bad_settings_are_named() {
        assert_eq!(from_env(&[("INNGEST_DEV", "maybe")]).unwrap_err(), ConfigError::InvalidDev("maybe".into()));
        assert!(matches!(from_env(&[("INNGEST_DEV", "1"), ("INNGEST_BASE_URL", "not a url")]), Err(ConfigError::InvalidUrl { .. })));
        assert_eq!(
            from_env(&[("INNGEST_DEV", "1"), ("INNGEST_SIGNING_KEY", "signkey-test-xyz")]).unwrap_err(),
            ConfigError::InvalidSigningKey { var: "INNGEST_SIGNING_KEY" }
        );
        assert_eq!(ClientBuilder::new(" ").dev().build().unwrap_err(), ConfigError::EmptyAppId);
    }

    #[test]
    fn builder_settings_override_the_mode() {
        let c = ClientBuilder::new("app").read_env(|k| (k == "INNGEST_DEV").then(|| "0".to_string())).dev().build().unwrap();
        assert_eq!(c.mode(), Mode::Dev);
        assert_eq!(c.composite_id("fn"), "app-fn");
    }

    #[test]
    fn send_replies_need_status_200_and_one_id_per_event() {
        let ok = read_send_reply(200, r#"{"ids":["a","b"],"status":200}"#, 2).unwrap();
        assert_eq!(ok, [EventId("a".into()), EventId("b".into())]);
        // Python-style replies without `status` are fine on HTTP 200.
        assert!(read_send_reply(200, r#"{"ids":["a"]}"#, 1).is_ok());
        assert!(matches!(
            read_send_reply(200, r#"{"ids":[],"status":400,"error":"bad"}"#, 1),
            Err(SendError::Rejected { status: 400, .. })
        ));
        assert!(matches!(read_send_reply(500, "oops", 1), Err(SendError::Rejected { status: 500, .. })));
        assert!(matches!(read_send_reply(200, r#"{"ids":["a"],"status":200}"#, 2), Err(SendError::InvalidResponse(_))));
    }
}
