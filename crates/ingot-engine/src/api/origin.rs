//! Keeps web pages from driving `ingot dev`. The dev server is open to any
//! local process, as users expect, so the only thing between it and a page
//! in the user's browser is where the request says it comes from:
//!
//! - **DNS rebinding**: a page on `evil.example` that re-points its name at
//!   127.0.0.1 reaches the server with `Host: evil.example`. Only IP literals,
//!   `localhost` (and `*.localhost`), `host.docker.internal` and the host of
//!   the engine's public URL are accepted as `Host`; an attacker cannot make a
//!   browser send an IP-literal `Host` for its own origin.
//! - **CSRF** (e.g. JSON sent as `text/plain` by a form or `fetch` in
//!   `no-cors` mode): browsers send `Origin` on every cross-origin POST; a
//!   request whose `Origin` (or `Sec-Fetch-Site: cross-site` without one) is
//!   not local is refused. Tools and SDKs send no `Origin` and pass.
//!
//! `ingot start` is guarded by keys instead; this layer only runs in dev mode.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{Engine, Mode};

/// Middleware: refuses requests a browser made on behalf of another site.
pub async fn require_local(State(engine): State<Arc<Engine>>, req: Request, next: Next) -> Response {
    if engine.config().mode == Mode::Dev {
        let own = public_host(&engine.config().public_url);
        if let Err(why) = check(req.headers(), req.uri().host(), own.as_deref()) {
            tracing::warn!(reason = %why, "refused a cross-site request to the dev server");
            return super::ApiError::Refused(StatusCode::FORBIDDEN, why).into_response();
        }
    }
    next.run(req).await
}

fn public_host(url: &str) -> Option<String> {
    reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase))
}

/// `Ok` when the request may be served by the dev server.
fn check(headers: &HeaderMap, uri_host: Option<&str>, own: Option<&str>) -> Result<(), String> {
    let host = headers.get(HOST).and_then(|v| v.to_str().ok()).map(str::to_string).or_else(|| uri_host.map(str::to_string));
    if let Some(host) = host {
        if !local_host(strip_port(&host), own) {
            return Err(format!("the dev server only answers requests for local hosts, not Host {host:?}"));
        }
    }
    match headers.get(ORIGIN).map(|v| v.to_str().unwrap_or("")) {
        Some(origin) => {
            let host = reqwest::Url::parse(origin).ok().and_then(|u| u.host_str().map(str::to_string));
            if !host.is_some_and(|h| local_host(&h, own)) {
                return Err(format!("the dev server does not accept requests from web pages on {origin:?}"));
            }
        }
        None => {
            let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).unwrap_or("");
            if site.eq_ignore_ascii_case("cross-site") {
                return Err("the dev server does not accept cross-site requests".into());
            }
        }
    }
    Ok(())
}

/// `host:port`, `[v6]:port` or a bare host → the host.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn local_host(host: &str, own: Option<&str>) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.parse::<IpAddr>().is_ok()
        || host == "localhost"
        || host.ends_with(".localhost")
        || host == "host.docker.internal"
        || own.is_some_and(|o| o.trim_start_matches('[').trim_end_matches(']') == host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn local_hosts_pass() {
        for host in ["127.0.0.1:8288", "localhost:8288", "[::1]:8288", "10.1.2.3", "app.localhost", "host.docker.internal:8288"] {
            assert!(check(&headers(&[("host", host)]), None, None).is_ok(), "{host}");
        }
        assert!(check(&headers(&[("host", "myhost:8288")]), None, Some("myhost")).is_ok());
    }

    #[test]
    fn rebinding_hosts_fail() {
        for host in ["evil.example", "evil.example:8288", "localhost.evil.example", "127.0.0.1.nip.io"] {
            assert!(check(&headers(&[("host", host)]), None, None).is_err(), "{host}");
        }
    }

    #[test]
    fn foreign_origins_fail() {
        let ok = headers(&[("host", "127.0.0.1:8288"), ("origin", "http://localhost:3000")]);
        assert!(check(&ok, None, None).is_ok());
        for origin in ["https://evil.example", "null", "http://evil.example:8288"] {
            let h = headers(&[("host", "127.0.0.1:8288"), ("origin", origin)]);
            assert!(check(&h, None, None).is_err(), "{origin}");
        }
        let cross = headers(&[("host", "127.0.0.1:8288"), ("sec-fetch-site", "cross-site")]);
        assert!(check(&cross, None, None).is_err());
    }
}
