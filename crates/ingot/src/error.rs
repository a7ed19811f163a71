//! Errors: what handlers and step bodies return ([`Error`]), how a step that
//! failed for good looks to user code ([`StepError`]), and what configuring
//! the client ([`ConfigError`]) or sending events ([`SendError`]) can fail with.
//!
//! [`Error`] decides what the engine does next: an ordinary error is retried
//! with backoff, [`Error::NonRetriable`] fails at once, [`Error::RetryAfter`]
//! is retried no sooner than asked. Suspending at a step is not an error at
//! all: the SDK models it as a pending future that is never resumed.
//!
//! `Error` deliberately does not implement [`std::error::Error`] (as
//! `anyhow::Error` does not), so that `?` converts into it anything that
//! converts into a boxed error: any standard error, `String`, `&str` and
//! `anyhow::Error`. [`bail!`](crate::bail) and [`ensure!`](crate::ensure)
//! return early with a message.
//!
//! ```
//! use ingot::Error;
//!
//! fn parse(s: &str) -> Result<u32, Error> {
//!     ingot::ensure!(!s.is_empty(), "no input");
//!     let n: u32 = s.parse()?; // a std error
//!     let checked: Result<u32, String> = if n > 100 { Err(format!("{n} is too big")) } else { Ok(n) };
//!     let n = checked?; // a String error
//!     if n == 13 {
//!         return Err("unlucky".into()); // a &str
//!     }
//!     if n == 7 {
//!         ingot::bail!("{n} is taken");
//!     }
//!     Ok(n)
//! }
//! assert_eq!(parse("5").unwrap(), 5);
//! assert_eq!(parse("").unwrap_err().message(), "no input");
//! assert_eq!(parse("x").unwrap_err().message(), "invalid digit found in string");
//! assert_eq!(parse("101").unwrap_err().message(), "101 is too big");
//! assert_eq!(parse("13").unwrap_err().message(), "unlucky");
//! assert_eq!(parse("7").unwrap_err().message(), "7 is taken");
//! assert!(parse("7").unwrap_err().is_retriable());
//! ```

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A boxed error, the payload of [`Error`]'s variants.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The error a function handler or a step body returns.
///
/// `?` and `.into()` turn anything that converts into a boxed error (any
/// `std::error::Error`, `String`, `&str`, `anyhow::Error`) into
/// [`Error::Retriable`]. Use [`Error::non_retriable`], [`Error::retry_after`]
/// or [`ResultExt`] for errors that are not retried as usual.
#[derive(Debug)]
pub enum Error {
    /// An ordinary failure: retried with backoff until attempts run out.
    Retriable(BoxError),
    /// Fails the step (or the run) at once, without retrying.
    NonRetriable(BoxError),
    /// Retry, but no sooner than `after`.
    RetryAfter {
        /// How long the engine should wait before the next attempt.
        after: Duration,
        /// What went wrong.
        source: BoxError,
    },
    /// A step failed for good (its retries ran out, it was non-retriable, or
    /// an invoked function failed). The step tools return it so user code
    /// can handle it; if it escapes the handler, the run fails without
    /// retrying, as with the official SDKs.
    Step(StepError),
}

impl Error {
    /// An ordinary, retriable error with a message.
    pub fn msg(message: impl fmt::Display) -> Error {
        Error::Retriable(message.to_string().into())
    }

    /// An ordinary, retriable error from anything that converts to a boxed
    /// error (`anyhow::Error`, `String`, `&str`, any `std::error::Error`).
    pub fn retriable(error: impl Into<BoxError>) -> Error {
        Error::Retriable(error.into())
    }

    /// An error that fails the step or run at once, without retries.
    pub fn non_retriable(error: impl Into<BoxError>) -> Error {
        Error::NonRetriable(error.into())
    }

    /// An error that asks for the next attempt no sooner than `after`.
    pub fn retry_after(after: Duration, error: impl Into<BoxError>) -> Error {
        Error::RetryAfter { after, source: error.into() }
    }

    /// `true` unless this error ends the step or run at once.
    pub fn is_retriable(&self) -> bool {
        matches!(self, Error::Retriable(_) | Error::RetryAfter { .. })
    }

    /// The error's name on the wire, as the JS SDK names its error classes.
    pub fn name(&self) -> &str {
        match self {
            Error::Retriable(_) => "Error",
            Error::NonRetriable(_) => "NonRetriableError",
            Error::RetryAfter { .. } => "RetryAfterError",
            Error::Step(e) => &e.name,
        }
    }

    /// The error's message, without its name.
    pub fn message(&self) -> String {
        match self {
            Error::Retriable(e) | Error::NonRetriable(e) | Error::RetryAfter { source: e, .. } => e.to_string(),
            Error::Step(e) => e.message.clone(),
        }
    }

    /// The delay asked for by [`Error::RetryAfter`].
    pub fn retry_delay(&self) -> Option<Duration> {
        match self {
            Error::RetryAfter { after, .. } => Some(*after),
            _ => None,
        }
    }

    /// The error object sent to the engine: `{name, message, stack}`, where
    /// `stack` lists the error's causes (Rust has no stack to give).
    pub fn to_json(&self) -> Value {
        match self {
            Error::Step(e) => e.to_json(),
            Error::Retriable(e) | Error::NonRetriable(e) | Error::RetryAfter { source: e, .. } => {
                let mut causes = Vec::new();
                let mut next = e.source();
                while let Some(cause) = next {
                    causes.push(format!("caused by: {cause}"));
                    next = cause.source();
                }
                json!({"name": self.name(), "message": e.to_string(), "stack": causes.join("\n")})
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Retriable(e) => write!(f, "{e}"),
            Error::NonRetriable(e) => write!(f, "non-retriable: {e}"),
            Error::RetryAfter { after, source } => write!(f, "{source} (retry after {after:?})"),
            Error::Step(e) => write!(f, "{e}"),
        }
    }
}

/// Anything that converts into a boxed error (standard errors, `String`,
/// `&str`, `anyhow::Error`) is an ordinary, retriable error.
impl<E: Into<BoxError>> From<E> for Error {
    fn from(e: E) -> Error {
        Error::Retriable(e.into())
    }
}

/// Returns early from a handler or step body with a retriable
/// [`Error`](crate::Error) made of a message: `bail!("no such user {id}")`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)+) => {
        return ::core::result::Result::Err($crate::Error::msg(::std::format!($($arg)+)))
    };
}

/// Returns early with a retriable [`Error`](crate::Error) unless the
/// condition holds: `ensure!(n > 0, "n must be positive, got {n}")`.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            $crate::bail!($($arg)+);
        }
    };
}

/// Converts a `Result`'s error into an [`Error`] that is not retried as usual.
pub trait ResultExt<T> {
    /// An ordinary, retriable error (for error types `?` does not convert,
    /// such as `anyhow::Error`).
    fn retriable(self) -> Result<T, Error>;
    /// Fails the step or run at once if this is an error.
    fn non_retriable(self) -> Result<T, Error>;
    /// Retries no sooner than `after` if this is an error.
    fn retry_after(self, after: Duration) -> Result<T, Error>;
}

impl<T, E: Into<BoxError>> ResultExt<T> for Result<T, E> {
    fn retriable(self) -> Result<T, Error> {
        self.map_err(Error::retriable)
    }

    fn non_retriable(self) -> Result<T, Error> {
        self.map_err(Error::non_retriable)
    }

    fn retry_after(self, after: Duration) -> Result<T, Error> {
        self.map_err(|e| Error::retry_after(after, e))
    }
}

/// A step, invoked function or run that failed for good, as the engine
/// reports it: the error object of a memoized `{"error": ...}`, or the
/// `error` of an `inngest/function.failed` event. Read leniently: a plain
/// string (as the engine gives for its own failures) is the message.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{name}: {message}")]
pub struct StepError {
    /// The error's class name, e.g. `Error`, `NonRetriableError`,
    /// `InngestInvokeTimeoutError`.
    pub name: String,
    /// What went wrong.
    pub message: String,
    /// The stack (JS), traceback (Python) or cause chain (Rust), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

/// The object form of [`StepError`] on the wire.
#[derive(Deserialize)]
struct ErrorObject {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    stack: Option<String>,
}

fn default_error_name() -> String {
    "Error".to_string()
}

impl<'de> Deserialize<'de> for StepError {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(StepError::from_json(&Value::deserialize(d)?))
    }
}

impl StepError {
    /// Reads an error object leniently: a string becomes the message, and
    /// anything else unreadable is kept as text.
    pub fn from_json(value: &Value) -> StepError {
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match value {
            Value::Object(_) => match serde_json::from_value::<ErrorObject>(value.clone()) {
                Ok(o) => StepError {
                    name: o.name.filter(|n| !n.is_empty()).unwrap_or_else(default_error_name),
                    message: o.message.as_ref().map(text).unwrap_or_default(),
                    stack: o.stack,
                },
                Err(_) => StepError { name: default_error_name(), message: text(value), stack: None },
            },
            other => StepError { name: default_error_name(), message: text(other), stack: None },
        }
    }

    /// The error object as sent to the engine.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "message": self.message,
            "stack": self.stack.clone().unwrap_or_default(),
        })
    }
}

/// The client could not be configured. Its `Debug` is its message, so
/// `main() -> Result<(), Box<dyn Error>>` prints what to fix.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Cloud mode needs a signing key to verify the engine's requests.
    #[error("INNGEST_SIGNING_KEY is required outside dev mode (set it, or set INNGEST_DEV=1 to use a local dev server)")]
    MissingSigningKey,
    /// Cloud mode needs an event key to send events.
    #[error("INNGEST_EVENT_KEY is required outside dev mode (set it, or set INNGEST_DEV=1 to use a local dev server)")]
    MissingEventKey,
    /// A signing key must be hex, optionally after a `signkey-<env>-` prefix.
    #[error("{var} is not a signing key: expected hex after an optional `signkey-<env>-` prefix")]
    InvalidSigningKey {
        /// Which setting was wrong.
        var: &'static str,
    },
    /// `INNGEST_DEV` must be `1`/`true`, `0`/`false`, or an origin URL.
    #[error("INNGEST_DEV={0:?} is neither 1/true, 0/false nor an http(s) URL")]
    InvalidDev(String),
    /// A URL setting does not parse.
    #[error("{var}={value:?} is not a valid http(s) URL")]
    InvalidUrl {
        /// Which setting was wrong.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// The app id is empty.
    #[error("the app id must not be empty")]
    EmptyAppId,
}

impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Sending events failed. Its `Debug` is its message, as for
/// [`ConfigError`].
#[derive(thiserror::Error)]
pub enum SendError {
    /// An event could not be turned into JSON.
    #[error("event cannot be serialized: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The event API could not be reached (after retries).
    #[error("could not reach the event API at {url}: {source}")]
    Unreachable {
        /// Where the events were sent.
        url: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// The event API refused the events.
    #[error("the event API refused the events (HTTP {status}): {message}")]
    Rejected {
        /// The status the server reported (in its body, else the HTTP status).
        status: u16,
        /// The server's error message.
        message: String,
    },
    /// The event API answered something that is not an event API reply.
    #[error("the event API's reply is not understood: {0}")]
    InvalidResponse(String),
}

impl fmt::Debug for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn question_mark_converts_any_error_and_keeps_causes() {
        fn fails() -> Result<(), Error> {
            Err(Outer(std::io::Error::other("disk full")))?;
            Ok(())
        }
        let e = fails().unwrap_err();
        assert!(e.is_retriable());
        assert_eq!(e.to_json(), json!({"name": "Error", "message": "outer", "stack": "caused by: disk full"}));
    }

    #[test]
    fn strings_and_anyhow_errors_convert_with_question_mark() {
        fn from_string() -> Result<(), Error> {
            Err(String::from("bad input"))?;
            Ok(())
        }
        fn from_str() -> Result<(), Error> {
            Err("nope".into())
        }
        fn from_anyhow() -> Result<(), Error> {
            Err(anyhow::anyhow!("wrapped"))?;
            Ok(())
        }
        for (e, message) in [(from_string(), "bad input"), (from_str(), "nope"), (from_anyhow(), "wrapped")] {
            let e = e.unwrap_err();
            assert!(matches!(e, Error::Retriable(_)), "{e:?}");
            assert_eq!(e.message(), message);
        }
        fn bails(n: u32) -> Result<u32, Error> {
            crate::ensure!(n < 10, "{n} is too big");
            if n == 3 {
                crate::bail!("three is {}", "out");
            }
            Ok(n)
        }
        assert_eq!(bails(1).unwrap(), 1);
        assert_eq!(bails(11).unwrap_err().message(), "11 is too big");
        assert_eq!(bails(3).unwrap_err().message(), "three is out");
    }

    /// `main() -> Result<(), Box<dyn Error>>` prints the `Debug` of the
    /// error: it must say what to fix, not just the variant's name.
    #[test]
    fn config_errors_debug_as_their_message() {
        let boxed: Box<dyn std::error::Error> = Box::new(ConfigError::MissingSigningKey);
        let shown = format!("{boxed:?}");
        assert!(shown.contains("INNGEST_SIGNING_KEY is required"), "{shown}");
        assert!(!shown.starts_with("MissingSigningKey"), "{shown}");
        let send = SendError::Rejected { status: 401, message: "bad key".into() };
        assert_eq!(format!("{send:?}"), "the event API refused the events (HTTP 401): bad key");
    }

    #[test]
    fn names_follow_the_js_sdk() {
        assert_eq!(Error::non_retriable("x").name(), "NonRetriableError");
        let e = Error::retry_after(Duration::from_secs(30), "later");
        assert_eq!((e.name(), e.retry_delay()), ("RetryAfterError", Some(Duration::from_secs(30))));
        let r: Result<(), std::io::Error> = Err(std::io::Error::other("no"));
        assert!(!r.non_retriable().unwrap_err().is_retriable());
    }

    #[test]
    fn step_errors_read_leniently() {
        let e = StepError::from_json(&json!({"name": "InngestInvokeTimeoutError", "message": "late"}));
        assert_eq!(e.to_string(), "InngestInvokeTimeoutError: late");
        assert_eq!(StepError::from_json(&json!("boom")).message, "boom");
        assert_eq!(StepError::from_json(&json!(5)).message, "5");
        let e: StepError = serde_json::from_value(json!("Error: engine gave up")).unwrap();
        assert_eq!(e.message, "Error: engine gave up");
        let e: StepError = serde_json::from_value(json!({"message": "m", "__serialized": true})).unwrap();
        assert_eq!((e.name.as_str(), e.message.as_str()), ("Error", "m"));
    }
}
