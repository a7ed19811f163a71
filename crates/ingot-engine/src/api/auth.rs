//! The token that guards the dashboard and the API in `ingot start`.
//!
//! The token is the signing key: tools send `Authorization: Bearer <key>`,
//! plain or hashed as SDKs send it (the `signkey-<env>-` prefix is optional);
//! people sign in on `/login`, which sets a cookie holding the hashed key.
//! `ingot dev` is open and this layer lets everything through.

use std::sync::Arc;

use axum::extract::{Form, Query, Request, State};
use axum::http::header::{ACCEPT, AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use ingot_protocol::signature::{hashed_key, normalize_key};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{Engine, Mode};

/// The session cookie set by `/login`.
pub const SESSION_COOKIE: &str = "ingot_session";
/// How long a dashboard session lasts.
const SESSION_SECS: u64 = 30 * 24 * 3600;

/// Compares two secrets without leaking where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    let (ha, hb) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    ha.iter().zip(hb.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `presented` is the signing key, plain or hashed.
pub fn accepts(engine: &Engine, presented: &str) -> bool {
    let Some(key) = engine.config.signing_key.as_deref() else { return false };
    let presented = normalize_key(presented.trim());
    if presented.is_empty() {
        return false;
    }
    let plain = same_secret(presented, normalize_key(key));
    let hashed = hashed_key(key).is_some_and(|h| same_secret(presented, normalize_key(&h)));
    plain | hashed
}

fn session_value(engine: &Engine) -> Option<String> {
    engine.config.signing_key.as_deref().and_then(hashed_key).map(|h| normalize_key(&h).to_string())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request carries the token (always true in `ingot dev`).
pub fn authorized(engine: &Engine, headers: &HeaderMap) -> bool {
    engine.config.mode != Mode::Start
        || bearer(headers).is_some_and(|t| accepts(engine, t))
        || cookie(headers, SESSION_COOKIE).is_some_and(|t| accepts(engine, t))
}

/// Middleware: lets authorized requests through; sends people to `/login`
/// and tools a 401.
pub async fn require(State(engine): State<Arc<Engine>>, req: Request, next: Next) -> Response {
    if authorized(&engine, req.headers()) {
        return next.run(req).await;
    }
    let path = req.uri().path();
    let wants_html = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    if wants_html && !path.starts_with("/v0/") && !path.starts_with("/v1/") {
        let next = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let target = format!("/login?next={}", urlencode(next));
        return (StatusCode::SEE_OTHER, [(LOCATION, target)]).into_response();
    }
    let body = json!({"error": "a token is required: send `Authorization: Bearer <signing key>`", "status": 401});
    (StatusCode::UNAUTHORIZED, [("www-authenticate", "Bearer")], Json(body)).into_response()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Only same-site paths are followed after signing in.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") => n,
        _ => "/",
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `GET /login`.
pub async fn login_page(State(engine): State<Arc<Engine>>, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    if engine.config.mode != Mode::Start || authorized(&engine, &headers) {
        return (StatusCode::SEE_OTHER, [(LOCATION, next.to_string())]).into_response();
    }
    Html(ingot_dashboard::login_html(None, next)).into_response()
}

/// `POST /login`: checks the token and sets the session cookie.
pub async fn login(State(engine): State<Arc<Engine>>, Form(form): Form<LoginForm>) -> Response {
    let next = safe_next(form.next.as_deref()).to_string();
    if engine.config.mode != Mode::Start {
        return (StatusCode::SEE_OTHER, [(LOCATION, next)]).into_response();
    }
    if !accepts(&engine, &form.token) {
        tracing::warn!("dashboard sign-in refused: wrong token");
        let page = ingot_dashboard::login_html(Some("That token is not this engine's signing key."), &next);
        return (StatusCode::UNAUTHORIZED, Html(page)).into_response();
    }
    let Some(value) = session_value(&engine) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "the signing key is not hex").into_response();
    };
    let cookie = format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}");
    let mut resp = (StatusCode::SEE_OTHER, [(LOCATION, next)]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(SET_COOKIE, v);
    }
    resp
}

/// `POST /logout`: forgets the session.
pub async fn logout() -> Response {
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    (StatusCode::SEE_OTHER, [(LOCATION, "/login".to_string()), (SET_COOKIE, cookie)]).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_paths_stay_on_site() {
        assert_eq!(safe_next(Some("/runs/1")), "/runs/1");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("a=1; ingot_session=abc; b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
