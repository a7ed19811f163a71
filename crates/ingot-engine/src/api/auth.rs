//! The token that guards the dashboard and the API in `ingot start`.
//!
//! Tools send the signing key, `Authorization: Bearer <key>`, plain or hashed
//! as SDKs send it (the `signkey-<env>-` prefix is optional). People sign in on
//! `/login` with the same key and get a session: a random token in an
//! `HttpOnly`, `SameSite=Strict` cookie (`Secure` behind TLS), stored in the
//! engine's database as a digest (so it survives restarts, is seen by every
//! node, and `POST /logout` revokes it), and deleted by retention once it
//! expires. The cookie is never the key or a hash of it. After signing in,
//! only a local path is followed (`safe_next`).
//! `ingot dev` is open and this layer lets everything through.

use std::sync::Arc;

use axum::extract::{Form, Query, Request, State};
use axum::http::header::{ACCEPT, AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use ingot_protocol::signature::{hashed_key, normalize_key};
use ingot_store::SessionRecord;
use serde::Deserialize;

use sha2::{Digest, Sha256};

use super::ApiError;
use crate::{Engine, Mode};

/// The session cookie set by `/login`.
pub const SESSION_COOKIE: &str = "ingot_session";
/// How long a dashboard session lasts.
const SESSION_SECS: u64 = 30 * 24 * 3600;
/// Random bytes in a session token (sent as hex).
const TOKEN_BYTES: usize = 32;

/// Compares two secrets without leaking where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    let (ha, hb) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    ha.iter().zip(hb.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `presented` is the signing key, plain or hashed.
pub fn accepts(engine: &Engine, presented: &str) -> bool {
    let Some(key) = engine.config().signing_key.as_deref() else { return false };
    let presented = normalize_key(presented.trim());
    if presented.is_empty() {
        return false;
    }
    let plain = same_secret(presented, normalize_key(key));
    let hashed = hashed_key(key).is_some_and(|h| same_secret(presented, normalize_key(&h)));
    plain | hashed
}

/// A fresh session token: [`TOKEN_BYTES`] from the OS-seeded CSPRNG, as hex.
fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    hex::encode(bytes)
}

/// The id a session is stored under: a digest of its token, so the database
/// never holds a usable cookie.
fn session_id(token: &str) -> String {
    hex::encode(Sha256::digest(format!("ingot-session:{token}").as_bytes()))
}

/// Whether `token` is a live session of this engine.
async fn session_valid(engine: &Engine, token: &str) -> bool {
    if token.len() != 2 * TOKEN_BYTES || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    match engine.sessions.live(&session_id(token)).await {
        Ok(live) => live,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read dashboard sessions");
            false
        }
    }
}

/// Whether the browser reached the engine over TLS: the engine's public URL
/// is `https`, or the proxy in front says so (`X-Forwarded-Proto` or
/// `Forwarded: proto=`). The session cookie is then `Secure`.
fn behind_tls(engine: &Engine, headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let forwarded_proto = header("x-forwarded-proto").and_then(|v| v.split(',').next()).map(str::trim);
    let forwarded = header("forwarded")
        .and_then(|v| v.split(',').next())
        .and_then(|first| first.split(';').find_map(|kv| kv.trim().strip_prefix("proto=").map(|p| p.trim_matches('"'))));
    engine.config().public_url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        || forwarded_proto.or(forwarded).is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value for the session cookie (`token` empty with `max_age` 0 clears it).
fn session_cookie(token: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
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

/// Whether the request carries the signing key or a live session (always
/// true in `ingot dev`). Async: sessions are looked up in the store.
pub async fn authorized(engine: &Engine, headers: &HeaderMap) -> bool {
    if engine.config().mode != Mode::Start || bearer(headers).is_some_and(|t| accepts(engine, t)) {
        return true;
    }
    match cookie(headers, SESSION_COOKIE) {
        Some(token) => session_valid(engine, token).await,
        None => false,
    }
}

/// Middleware: lets authorized requests through; sends people to `/login`
/// and tools a 401.
pub async fn require(State(engine): State<Arc<Engine>>, req: Request, next: Next) -> Response {
    if authorized(&engine, req.headers()).await {
        return next.run(req).await;
    }
    let path = req.uri().path();
    let wants_html = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    if wants_html && !path.starts_with("/v0/") && !path.starts_with("/v1/") {
        let next = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let target = format!("/login?next={}", urlencode(next));
        return (StatusCode::SEE_OTHER, [(LOCATION, target)]).into_response();
    }
    ApiError::Unauthorized("a token is required: send `Authorization: Bearer <signing key>`".into()).into_response()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Only local paths are followed after signing in; anything else goes to `/`.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if local_path(n) => n,
        _ => "/",
    }
}

/// Whether `next` is a path on this origin however a browser reads it. It
/// must be printable ASCII (browsers drop tabs and newlines, so `/\t/evil`
/// would be `//evil`), start with one `/` and hold no `\` (browsers read `/\`
/// as `//`): as given and after each round of percent-decoding, so `%2F%2F`
/// and its double encodings are caught too.
fn local_path(next: &str) -> bool {
    if !next.bytes().all(|b| b.is_ascii_graphic()) {
        return false;
    }
    let mut form = next.to_string();
    for _ in 0..4 {
        let ok = form.starts_with('/') && !form.starts_with("//") && !form.contains('\\') && !form.bytes().any(|b| b.is_ascii_control());
        if !ok {
            return false;
        }
        let decoded = percent_decode(&form);
        if decoded == form {
            return true;
        }
        form = decoded;
    }
    // Still changing after four decodings: not something the dashboard made.
    false
}

/// One round of `%XX` decoding; malformed escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
    if engine.config().mode != Mode::Start || authorized(&engine, &headers).await {
        return (StatusCode::SEE_OTHER, [(LOCATION, next.to_string())]).into_response();
    }
    Html(ingot_dashboard::login_html(None, next)).into_response()
}

/// `POST /login`: checks the key, stores a new session and sets its cookie.
pub async fn login(State(engine): State<Arc<Engine>>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    let next = safe_next(form.next.as_deref()).to_string();
    if engine.config().mode != Mode::Start {
        return (StatusCode::SEE_OTHER, [(LOCATION, next)]).into_response();
    }
    if !accepts(&engine, &form.token) {
        tracing::warn!("dashboard sign-in refused: wrong token");
        let page = ingot_dashboard::login_html(Some("That token is not this engine's signing key."), &next);
        return (StatusCode::UNAUTHORIZED, Html(page)).into_response();
    }
    let token = new_token();
    let now = engine.clock().now_ms();
    let session = SessionRecord { id: session_id(&token), created_at_ms: now, expires_at_ms: now + SESSION_SECS as i64 * 1000 };
    if let Err(e) = engine.sessions.insert(session).await {
        tracing::warn!(error = %e, "cannot store a dashboard session");
        let page = ingot_dashboard::login_html(Some("The engine could not store the session; try again."), &next);
        return (StatusCode::SERVICE_UNAVAILABLE, Html(page)).into_response();
    }
    let cookie = session_cookie(&token, SESSION_SECS, behind_tls(&engine, &headers));
    let mut resp = (StatusCode::SEE_OTHER, [(LOCATION, next)]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(SET_COOKIE, v);
    }
    resp
}

/// `POST /logout`: deletes the session in the store (so its cookie no longer
/// works anywhere, even if a copy was kept) and clears the cookie.
pub async fn logout(State(engine): State<Arc<Engine>>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = engine.sessions.delete(&session_id(token)).await {
            tracing::warn!(error = %e, "cannot delete a dashboard session");
            return (StatusCode::SERVICE_UNAVAILABLE, "the engine could not end the session; try again").into_response();
        }
    }
    let cookie = session_cookie("", 0, behind_tls(&engine, &headers));
    (StatusCode::SEE_OTHER, [(LOCATION, "/login".to_string()), (SET_COOKIE, cookie)]).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_paths_stay_on_site() {
        for ok in ["/", "/runs/1", "/runs?status=Failed", "/events?q=a%20b", "/runs%3Fstatus%3DFailed", "/a//b"] {
            assert_eq!(safe_next(Some(ok)), ok);
        }
        for bad in [
            "//evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "/\\evil.example",
            "\\\\evil.example",
            "/runs\\x",
            "%2F%2Fevil.example",
            "/%2F/evil.example",
            "/%2f%2fevil.example",
            "/%252F%252Fevil.example",
            "/%5Cevil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/%09/evil.example",
            "/ /evil.example",
            "/é",
            "",
            "evil.example",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode("/a%2Fb%zz%4"), "/a/b%zz%4");
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("a=1; ingot_session=abc; b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
