//! The requests of `step.fetch` and `step.ai.infer`, made by the engine: the
//! IO half of [`ingot_core::gateway`], which reads the ops and turns what
//! came back into memos.
//!
//! Each request has a timeout ([`crate::EngineConfig::gateway_timeout`]) and
//! its response body is read up to [`MAX_RESPONSE_BYTES`]; a slow or huge
//! response ends as a failed request (retried like one), never as a stuck
//! worker. Proxies from the environment are not used.
//!
//! **SSRF.** Unless private addresses are allowed (`ingot dev` allows them;
//! `ingot start` refuses them unless `INGOT_GATEWAY_ALLOW_PRIVATE=1`), a
//! request to a loopback, private, link-local, shared, documentation,
//! multicast or unspecified address is refused: host names are resolved by
//! [`PublicOnly`], which drops such addresses, so the connection goes to the
//! address that was checked (no DNS rebinding between check and connect);
//! IP literals are checked before sending, and redirects are followed (at
//! most [`MAX_REDIRECTS`]) only to URLs that pass the same check.
//!
//! An AI request carries the provider's key: it is never logged (the
//! request's `Debug` leaves it out) and never stored (history records the
//! URL without it and header names only).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingot_core::gateway::{GatewayOutcome, GatewayRequest, GatewayResult};
use ingot_core::{Reply, RunId, RunState};
use ingot_store::{HistoryRecord, WriteOp};
use serde_json::json;

/// Largest response body read: the step output limit.
pub const MAX_RESPONSE_BYTES: usize = ingot_core::MAX_STEP_OUTPUT_BYTES;
/// Most redirects a request follows.
pub const MAX_REDIRECTS: usize = 10;

/// The client that makes gateway requests.
pub struct Gateway {
    client: reqwest::Client,
    timeout: Duration,
    allow_private: bool,
}

impl Gateway {
    /// A client with `timeout` per request; `allow_private` lets requests
    /// reach loopback and private addresses.
    pub fn new(timeout: Duration, allow_private: bool) -> reqwest::Result<Gateway> {
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else if !allow_private && attempt.url().host_str().and_then(literal_ip).is_some_and(|ip| !is_public(ip)) {
                attempt.error("redirect to a private address refused")
            } else {
                attempt.follow()
            }
        });
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(redirects)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(30)));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(Gateway { client: builder.build()?, timeout, allow_private })
    }

    /// Makes the requests a reply's gateway ops ask for (all at once), and
    /// the history lines that record them.
    pub async fn perform(&self, run: &RunState, reply: &Reply, now: i64) -> (Vec<GatewayResult>, Vec<WriteOp>) {
        let Reply::Ops(ops) = reply else { return (Vec::new(), Vec::new()) };
        let requests = ingot_core::gateway::requests(run, ops);
        if requests.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let done = futures::future::join_all(requests.iter().map(|r| self.send(r))).await;
        let mut results = Vec::new();
        let mut history = Vec::new();
        for (req, (outcome, took)) in requests.iter().zip(done) {
            history.push(record(run.run_id, now, req, &outcome, took));
            match &outcome {
                GatewayOutcome::Response { status, .. } => {
                    tracing::debug!(step = %req.step, url = req.public_url(), status, "gateway request answered")
                }
                GatewayOutcome::Failed { message } => {
                    tracing::info!(step = %req.step, url = req.public_url(), error = %message, "gateway request failed")
                }
            }
            results.push(GatewayResult { step: req.step.clone(), outcome });
        }
        (results, history)
    }

    async fn send(&self, req: &GatewayRequest) -> (GatewayOutcome, Duration) {
        let start = Instant::now();
        // Bounded twice: reqwest's timeout, and this one around everything.
        let outcome = match tokio::time::timeout(self.timeout + Duration::from_secs(1), self.send_inner(req)).await {
            Ok(Ok(o)) => o,
            Ok(Err(message)) => GatewayOutcome::Failed { message },
            Err(_) => GatewayOutcome::Failed { message: format!("timed out after {:?}", self.timeout) },
        };
        (outcome, start.elapsed())
    }

    async fn send_inner(&self, req: &GatewayRequest) -> Result<GatewayOutcome, String> {
        let url = reqwest::Url::parse(&req.url).map_err(|e| format!("invalid URL {}: {e}", req.public_url()))?;
        if !self.allow_private {
            if let Some(ip) = url.host_str().and_then(literal_ip) {
                if !is_public(ip) {
                    return Err(format!("{ip} is a private address; requests to it are refused"));
                }
            }
        }
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|e| format!("invalid method: {e}"))?;
        let mut builder = self.client.request(method, url);
        for (k, v) in &req.headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("invalid header name {k:?}"))?;
            // The value may be a key: it is not repeated in the error.
            let value = reqwest::header::HeaderValue::from_str(v).map_err(|_| format!("invalid value for header {k:?}"))?;
            builder = builder.header(name, value);
        }
        if let Some(body) = &req.body {
            builder = builder.body(body.clone());
        }
        let mut resp = builder.send().await.map_err(describe_error)?;
        let status = resp.status().as_u16();
        let headers =
            resp.headers().iter().map(|(k, v)| (canonical(k.as_str()), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
        if resp.content_length().is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
            return Err(format!("the response body is over the limit of {MAX_RESPONSE_BYTES} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(describe_error)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(format!("the response body is over the limit of {MAX_RESPONSE_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(GatewayOutcome::Response { status, headers, body })
    }
}

/// A reqwest error without the URL (an AI URL may carry a key in its query).
fn describe_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// `content-type` → `Content-Type`, as Go's `http.Header` keys read.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// One history line for a request: method, URL without key, header names,
/// the AI prompt, and the status or the error, with its duration.
fn record(run_id: RunId, now: i64, req: &GatewayRequest, outcome: &GatewayOutcome, took: Duration) -> WriteOp {
    let mut detail = ingot_core::gateway::describe(req);
    match outcome {
        GatewayOutcome::Response { status, body, .. } => {
            detail["status"] = json!(status);
            detail["response_bytes"] = json!(body.len());
        }
        GatewayOutcome::Failed { message } => detail["error"] = json!(message),
    }
    WriteOp::History(HistoryRecord {
        run_id,
        at_ms: now,
        kind: if req.format.is_some() { "ai".into() } else { "fetch".into() },
        step: Some(req.step.clone()),
        name: None,
        attempt: None,
        duration_ms: Some(took.as_millis() as i64),
        detail,
    })
}

/// The IP of a URL host that is an IP literal (`[::1]` included).
fn literal_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 198 && (18..20).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064 && v6.segments()[1] == 0xff9b)
        }
    }
}

/// A resolver that keeps public addresses only, so a host name that resolves
/// to a private address is refused and the connection is made to an address
/// that was checked.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.filter(|a| is_public(a.ip())).collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address; requests to private addresses are refused").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "151.101.1.69"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn header_names_are_canonical() {
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(canonical("x-api-key"), "X-Api-Key");
    }
}
