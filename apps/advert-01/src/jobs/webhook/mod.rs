//! `webhook-deliver` on `webhook/deliver`: POSTs a JSON payload signed per
//! the Standard Webhooks spec ([`signature`]) and records every attempt
//! ([`attempts`]).
//!
//! What happens next is decided by the answer ([`classify`]): 2xx is done;
//! 5xx, 408, timeouts and connection failures are retried with the engine's
//! backoff; 429 (and a 5xx carrying `Retry-After`) is retried no sooner than
//! the receiver asked ([`ingot::Error::RetryAfter`]); any other 4xx, a
//! redirect, an unusable URL or a destination that is not public
//! ([`destination`]) fails at once. Deliveries to one destination are
//! limited by the function's concurrency, keyed by `event.data.url`.

pub mod attempts;
pub mod destination;
pub mod signature;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use ingot::{Concurrency, Ctx, Error, Function};
use serde::{Deserialize, Serialize};

use super::client::DeliverWebhook;
use super::Deps;
use attempts::{Attempt, Outcome};

/// The function's id.
pub const ID: &str = "webhook-deliver";
/// Retries after the first attempt (with the engine's backoff: 15 s, 30 s,
/// 1 min, ... about 1 h 20 min in all).
pub const RETRIES: u32 = 8;
/// The wait after a 429 that says nothing about how long to wait.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);
/// The `User-Agent` of deliveries.
pub const USER_AGENT: &str = concat!("advert-01-webhooks/", env!("CARGO_PKG_VERSION"));
/// Most bytes of a receiver's answer kept in an error message.
const EXCERPT_CHARS: usize = 300;

/// What to do after an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered.
    Delivered,
    /// Retry with the engine's backoff.
    Retry,
    /// Retry no sooner than this.
    RetryAfter(Duration),
    /// Give up now.
    Rejected,
}

/// Sorts an HTTP answer.
pub fn classify(status: u16, retry_after: Option<Duration>) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        429 => Verdict::RetryAfter(retry_after.unwrap_or(DEFAULT_RETRY_AFTER)),
        408 | 500..=599 => retry_after.map_or(Verdict::Retry, Verdict::RetryAfter),
        _ => Verdict::Rejected,
    }
}

/// Reads `Retry-After`: seconds, or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?;
    Some((at.with_timezone(&Utc) - now).to_std().unwrap_or(Duration::ZERO))
}

/// What a run returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    /// The `webhook-id`.
    pub message_id: String,
    /// The destination.
    pub url: String,
    /// The receiver's status.
    pub status_code: u16,
    /// Which attempt succeeded (1 for the first).
    pub attempt: u32,
}

/// The function.
pub fn function(deps: Arc<Deps>) -> Function {
    Function::new(ID)
        .name("Deliver a webhook")
        .trigger_event::<DeliverWebhook>()
        .retries(RETRIES)
        .concurrency(Concurrency::new(deps.settings.webhook_concurrency).key("event.data.url"))
        .with_shared_state(deps)
        .handler(deliver)
        .into()
}

async fn deliver(ctx: Ctx<DeliverWebhook>) -> Result<Delivered, Error> {
    let deps = ctx.state::<Deps>()?;
    let hook = &ctx.event.data;
    let message_id = hook.message_id.clone().or_else(|| ctx.event.id.clone()).unwrap_or_else(|| ctx.run_id.to_string());
    let run_id = ctx.run_id.to_string();
    let attempt = ctx.attempt + 1;
    ctx.step.run("deliver", || attempt_delivery(deps, hook, &message_id, &run_id, attempt)).await
}

/// What one POST came to, before it is recorded.
struct Tried {
    status: Option<u16>,
    outcome: Outcome,
    retry_after: Option<Duration>,
    error: Option<String>,
}

/// One delivery attempt: sign, POST, record, and answer the SDK.
pub async fn attempt_delivery(
    deps: &Deps,
    hook: &DeliverWebhook,
    message_id: &str,
    run_id: &str,
    attempt: u32,
) -> Result<Delivered, Error> {
    let started = Instant::now();
    let attempted_at = Utc::now();
    let tried = post(deps, hook, message_id, attempted_at).await;
    let row = Attempt {
        message_id: message_id.to_string(),
        run_id: run_id.to_string(),
        url: hook.url.clone(),
        attempt,
        status_code: tried.status,
        outcome: tried.outcome,
        error: tried.error.clone(),
        retry_after_ms: tried.retry_after.map(|d| d.as_millis() as i64),
        duration_ms: started.elapsed().as_millis() as i64,
        attempted_at: attempted_at.to_rfc3339_opts(SecondsFormat::Millis, true),
    };
    if let Err(e) = attempts::record(&deps.db, &row).await {
        // The delivery itself is what matters; a lost row is logged loudly.
        tracing::error!(error = %e, url = %hook.url, attempt, "could not record a webhook attempt");
    }
    tracing::info!(url = %hook.url, attempt, status = ?tried.status, outcome = tried.outcome.as_str(), "webhook attempt");
    let message = tried.error.unwrap_or_default();
    match tried.outcome {
        Outcome::Delivered => {
            Ok(Delivered { message_id: message_id.to_string(), url: hook.url.clone(), status_code: tried.status.unwrap_or(200), attempt })
        }
        Outcome::RetryAfter => Err(Error::retry_after(tried.retry_after.unwrap_or(DEFAULT_RETRY_AFTER), message)),
        Outcome::Retry | Outcome::Timeout | Outcome::Unreachable => Err(Error::retriable(message)),
        Outcome::Rejected => Err(Error::non_retriable(message)),
    }
}

fn rejected(error: String) -> Tried {
    Tried { status: None, outcome: Outcome::Rejected, retry_after: None, error: Some(error) }
}

async fn post(deps: &Deps, hook: &DeliverWebhook, message_id: &str, now: DateTime<Utc>) -> Tried {
    // Resolved and checked here, and the client only connects to what was
    // checked: a refused destination is never contacted.
    let (url, http) = match deps.webhooks.connect_to(&hook.url).await {
        Ok(pinned) => pinned,
        Err(e) if e.is_permanent() => return rejected(e.to_string()),
        Err(e) => return Tried { status: None, outcome: Outcome::Unreachable, retry_after: None, error: Some(e.to_string()) },
    };
    let body = match serde_json::to_vec(&hook.payload) {
        Ok(b) => b,
        Err(e) => return rejected(format!("the payload cannot be serialized: {e}")),
    };
    let ts = now.timestamp();
    let signature = deps.settings.webhook_secret.sign(message_id, ts, &body);
    let sent = http
        .post(url)
        .timeout(deps.settings.webhook_timeout)
        .header("content-type", "application/json")
        .header("user-agent", USER_AGENT)
        .header("webhook-id", message_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            let error = format!("no answer from {} within {:?}", hook.url, deps.settings.webhook_timeout);
            return Tried { status: None, outcome: Outcome::Timeout, retry_after: None, error: Some(error) };
        }
        Err(e) => {
            let error = format!("cannot reach {}: {e}", hook.url);
            return Tried { status: None, outcome: Outcome::Unreachable, retry_after: None, error: Some(error) };
        }
    };
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| parse_retry_after(v, Utc::now()));
    let verdict = classify(status, retry_after);
    let excerpt = match verdict {
        Verdict::Delivered => None,
        _ => Some(resp.text().await.unwrap_or_default().chars().take(EXCERPT_CHARS).collect::<String>()),
    };
    let error = excerpt.map(|text| format!("{} answered HTTP {status}: {text}", hook.url));
    let (outcome, retry_after) = match verdict {
        Verdict::Delivered => (Outcome::Delivered, None),
        Verdict::Retry => (Outcome::Retry, None),
        Verdict::RetryAfter(d) => (Outcome::RetryAfter, Some(d)),
        Verdict::Rejected => (Outcome::Rejected, None),
    };
    Tried { status: Some(status), outcome, retry_after, error }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_sorted_by_what_retrying_can_do() {
        let s = Duration::from_secs;
        assert_eq!(classify(204, None), Verdict::Delivered);
        assert_eq!(classify(503, None), Verdict::Retry);
        assert_eq!(classify(503, Some(s(7))), Verdict::RetryAfter(s(7)));
        assert_eq!(classify(408, None), Verdict::Retry);
        assert_eq!(classify(429, Some(s(2))), Verdict::RetryAfter(s(2)));
        assert_eq!(classify(429, None), Verdict::RetryAfter(DEFAULT_RETRY_AFTER));
        for status in [301, 400, 401, 404, 410, 422] {
            assert_eq!(classify(status, None), Verdict::Rejected, "{status}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
