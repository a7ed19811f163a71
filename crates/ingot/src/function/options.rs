//! Flow-control options of a function (concurrency, throttle, rate limit,
//! debounce, batching, cancellation, timeouts, singleton) and their JSON in
//! the function config (protocol §1.3, §6.1). Periods are
//! [`TimeSpec`]s here (a `Duration` or a time string such as `"1m"`) and
//! Inngest time strings on the wire; a bad string is reported when the
//! function is built ([`crate::Function::config_errors`]).

use serde_json::{json, Map, Value};

use crate::event::Event;
use crate::time::{BadTimeSpec, TimeSpec};

fn time(t: &TimeSpec) -> Result<Value, BadTimeSpec> {
    t.wire().map(Value::String)
}

fn put(m: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        m.insert(key.to_string(), v);
    }
}

/// Where a concurrency limit applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConcurrencyScope {
    /// Runs of this function (the default).
    Fn,
    /// Every function in the environment sharing the key.
    Env,
    /// Every function in the account sharing the key.
    Account,
}

impl ConcurrencyScope {
    fn as_str(self) -> &'static str {
        match self {
            ConcurrencyScope::Fn => "fn",
            ConcurrencyScope::Env => "env",
            ConcurrencyScope::Account => "account",
        }
    }
}

/// A limit on steps executing at once, optionally per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concurrency {
    limit: u32,
    key: Option<String>,
    scope: Option<ConcurrencyScope>,
}

impl Concurrency {
    /// At most `limit` steps at once (0 means unlimited).
    pub fn new(limit: u32) -> Self {
        Concurrency { limit, key: None, scope: None }
    }

    /// One limit per value of this expression, e.g. `"event.data.user_id"`.
    pub fn key(mut self, expr: impl Into<String>) -> Self {
        self.key = Some(expr.into());
        self
    }

    /// Where the limit applies (`Env` and `Account` need a key).
    pub fn scope(mut self, scope: ConcurrencyScope) -> Self {
        self.scope = Some(scope);
        self
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("limit".into(), json!(self.limit));
        put(&mut m, "key", self.key.clone().map(Value::String));
        put(&mut m, "scope", self.scope.map(|s| json!(s.as_str())));
        Value::Object(m)
    }
}

/// A limit on run starts per period; excess runs wait (they are not dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    limit: u32,
    period: TimeSpec,
    burst: Option<u32>,
    key: Option<String>,
}

impl Throttle {
    /// At most `limit` starts per `period`.
    pub fn new(limit: u32, period: impl Into<TimeSpec>) -> Self {
        Throttle { limit, period: period.into(), burst: None, key: None }
    }

    /// Extra starts allowed in a burst.
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// One throttle per value of this expression.
    pub fn key(mut self, expr: impl Into<String>) -> Self {
        self.key = Some(expr.into());
        self
    }

    pub(crate) fn to_json(&self) -> Result<Value, BadTimeSpec> {
        let mut m = Map::new();
        m.insert("limit".into(), json!(self.limit));
        m.insert("period".into(), time(&self.period)?);
        put(&mut m, "burst", self.burst.map(|b| json!(b)));
        put(&mut m, "key", self.key.clone().map(Value::String));
        Ok(Value::Object(m))
    }
}

/// A limit on runs per period; events over it start no run (dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    limit: u32,
    period: TimeSpec,
    key: Option<String>,
}

impl RateLimit {
    /// At most `limit` runs per `period`.
    pub fn new(limit: u32, period: impl Into<TimeSpec>) -> Self {
        RateLimit { limit, period: period.into(), key: None }
    }

    /// One limit per value of this expression.
    pub fn key(mut self, expr: impl Into<String>) -> Self {
        self.key = Some(expr.into());
        self
    }

    pub(crate) fn to_json(&self) -> Result<Value, BadTimeSpec> {
        let mut m = Map::new();
        m.insert("limit".into(), json!(self.limit));
        m.insert("period".into(), time(&self.period)?);
        put(&mut m, "key", self.key.clone().map(Value::String));
        Ok(Value::Object(m))
    }
}

/// Start a run only once events stop arriving for `period`, with the last event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Debounce {
    period: TimeSpec,
    key: Option<String>,
    timeout: Option<TimeSpec>,
}

impl Debounce {
    /// Waits for `period` of quiet.
    pub fn new(period: impl Into<TimeSpec>) -> Self {
        Debounce { period: period.into(), key: None, timeout: None }
    }

    /// One debounce per value of this expression.
    pub fn key(mut self, expr: impl Into<String>) -> Self {
        self.key = Some(expr.into());
        self
    }

    /// Starts the run after this long at the latest, even if events keep coming.
    pub fn timeout(mut self, timeout: impl Into<TimeSpec>) -> Self {
        self.timeout = Some(timeout.into());
        self
    }

    pub(crate) fn to_json(&self) -> Result<Value, BadTimeSpec> {
        let mut m = Map::new();
        m.insert("period".into(), time(&self.period)?);
        put(&mut m, "key", self.key.clone().map(Value::String));
        put(&mut m, "timeout", self.timeout.as_ref().map(time).transpose()?);
        Ok(Value::Object(m))
    }
}

/// Collect events into one run (`ctx.events`) until `max_size` or `timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEvents {
    max_size: u32,
    timeout: TimeSpec,
    key: Option<String>,
    if_exp: Option<String>,
}

impl BatchEvents {
    /// Batches of up to `max_size` events, flushed `timeout` after the first.
    pub fn new(max_size: u32, timeout: impl Into<TimeSpec>) -> Self {
        BatchEvents { max_size, timeout: timeout.into(), key: None, if_exp: None }
    }

    /// One batch per value of this expression.
    pub fn key(mut self, expr: impl Into<String>) -> Self {
        self.key = Some(expr.into());
        self
    }

    /// Only events for which this expression is true are batched; others
    /// run alone at once.
    pub fn if_exp(mut self, expr: impl Into<String>) -> Self {
        self.if_exp = Some(expr.into());
        self
    }

    pub(crate) fn to_json(&self) -> Result<Value, BadTimeSpec> {
        let mut m = Map::new();
        m.insert("maxSize".into(), json!(self.max_size));
        m.insert("timeout".into(), time(&self.timeout)?);
        put(&mut m, "key", self.key.clone().map(Value::String));
        put(&mut m, "if", self.if_exp.clone().map(Value::String));
        Ok(Value::Object(m))
    }
}

/// An event that cancels a running run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelOn {
    event: String,
    if_exp: Option<String>,
    timeout: Option<TimeSpec>,
}

impl CancelOn {
    /// Cancels on event `E`.
    pub fn event<E: Event>() -> Self {
        CancelOn::event_name(E::NAME)
    }

    /// Cancels on the event with this name.
    pub fn event_name(name: impl Into<String>) -> Self {
        CancelOn { event: name.into(), if_exp: None, timeout: None }
    }

    /// Only when this expression is true (`event` is the run's trigger,
    /// `async` the candidate event).
    pub fn if_exp(mut self, expr: impl Into<String>) -> Self {
        self.if_exp = Some(expr.into());
        self
    }

    /// Only when `field` (e.g. `"data.order_id"`) is equal in both events:
    /// shorthand for `if_exp("event.<field> == async.<field>")`.
    pub fn match_field(self, field: &str) -> Self {
        self.if_exp(format!("event.{field} == async.{field}"))
    }

    /// Stops listening after this long.
    pub fn timeout(mut self, timeout: impl Into<TimeSpec>) -> Self {
        self.timeout = Some(timeout.into());
        self
    }

    pub(crate) fn to_json(&self) -> Result<Value, BadTimeSpec> {
        let mut m = Map::new();
        m.insert("event".into(), Value::String(self.event.clone()));
        put(&mut m, "if", self.if_exp.clone().map(Value::String));
        put(&mut m, "timeout", self.timeout.as_ref().map(time).transpose()?);
        Ok(Value::Object(m))
    }
}

/// Cancel runs that do not start, or do not finish, in time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeouts {
    start: Option<TimeSpec>,
    finish: Option<TimeSpec>,
}

impl Timeouts {
    /// No timeouts yet.
    pub fn new() -> Self {
        Timeouts::default()
    }

    /// Cancel a run that has not started this long after its event.
    pub fn start(mut self, d: impl Into<TimeSpec>) -> Self {
        self.start = Some(d.into());
        self
    }

    /// Cancel a run that has not finished this long after it started.
    pub fn finish(mut self, d: impl Into<TimeSpec>) -> Self {
        self.finish = Some(d.into());
        self
    }

    pub(crate) fn to_json(&self) -> Result<Value, BadTimeSpec> {
        let mut m = Map::new();
        put(&mut m, "start", self.start.as_ref().map(time).transpose()?);
        put(&mut m, "finish", self.finish.as_ref().map(time).transpose()?);
        Ok(Value::Object(m))
    }
}

/// What a singleton function does with a new run while one is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SingletonMode {
    /// The new run is skipped.
    Skip,
    /// The active run is cancelled and the new one starts.
    Cancel,
}

/// At most one active run (per key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Singleton {
    mode: SingletonMode,
    key: Option<String>,
}

impl Singleton {
    /// One active run, resolving conflicts with `mode`.
    pub fn new(mode: SingletonMode) -> Self {
        Singleton { mode, key: None }
    }

    /// One active run per value of this expression.
    pub fn key(mut self, expr: impl Into<String>) -> Self {
        self.key = Some(expr.into());
        self
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut m = Map::new();
        put(&mut m, "key", self.key.clone().map(Value::String));
        let mode = match self.mode {
            SingletonMode::Skip => "skip",
            SingletonMode::Cancel => "cancel",
        };
        m.insert("mode".into(), json!(mode));
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    #[test]
    fn options_serialize_as_the_js_sdk_does() {
        let s = Duration::from_secs;
        assert_eq!(
            Concurrency::new(5).key("event.data.user").scope(ConcurrencyScope::Fn).to_json(),
            json!({"limit": 5, "key": "event.data.user", "scope": "fn"})
        );
        assert_eq!(Throttle::new(3, s(60)).burst(2).key("k").to_json(), Ok(json!({"limit": 3, "period": "1m", "burst": 2, "key": "k"})));
        assert_eq!(RateLimit::new(10, s(3600)).key("k").to_json(), Ok(json!({"limit": 10, "period": "1h", "key": "k"})));
        assert_eq!(Debounce::new(s(5)).key("k").timeout(s(60)).to_json(), Ok(json!({"period": "5s", "key": "k", "timeout": "1m"})));
        assert_eq!(BatchEvents::new(50, s(5)).key("k").to_json(), Ok(json!({"maxSize": 50, "timeout": "5s", "key": "k"})));
        assert_eq!(
            CancelOn::event_name("test/cancel").match_field("data.id").timeout(s(3600)).to_json(),
            Ok(json!({"event": "test/cancel", "if": "event.data.id == async.data.id", "timeout": "1h"}))
        );
        assert_eq!(Timeouts::new().start(s(10)).finish(s(3600)).to_json(), Ok(json!({"start": "10s", "finish": "1h"})));
        assert_eq!(Singleton::new(SingletonMode::Skip).key("k").to_json(), json!({"key": "k", "mode": "skip"}));
    }

    #[test]
    fn periods_may_be_time_strings() {
        assert_eq!(Throttle::new(3, "1m").to_json(), Throttle::new(3, Duration::from_secs(60)).to_json());
        assert_eq!(Debounce::new("5s").timeout("1h30m").to_json(), Ok(json!({"period": "5s", "timeout": "1h30m"})));
        assert_eq!(Timeouts::new().start("2d").to_json(), Ok(json!({"start": "48h"})));
        let bad = RateLimit::new(1, "an hour").to_json().unwrap_err();
        assert!(bad.to_string().contains("\"an hour\""), "{bad}");
        assert!(CancelOn::event_name("x").timeout("later").to_json().is_err());
    }
}
