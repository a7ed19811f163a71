//! Dashboard sessions in `ingot start`, in process: `/login` hands out a
//! random token (never the signing key or its hash) stored in the database,
//! so it survives a restart and `POST /logout` revokes it; it expires; it is
//! `Secure` behind TLS; and `next` only ever leads to a local path.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{header, HeaderMap, Request, StatusCode};
use ingot_engine::{Clock, Engine, EngineConfig, Mode};
use ingot_protocol::signature::hashed_key;
use ingot_store::{MemStore, SqliteStore, Store};
use tower::ServiceExt as _;

const KEY: &str = "signkey-prod-0123456789abcdef0123456789abcdef";
const EVENT_KEY: &str = "evkey-0123456789abcdef";
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

fn config() -> EngineConfig {
    let mut config = EngineConfig::dev();
    config.mode = Mode::Start;
    config.discovery = false;
    config.poll = false;
    config.signing_key = Some(KEY.into());
    config.event_keys = vec![EVENT_KEY.into()];
    config
}

async fn engine_on(store: Arc<dyn Store>, config: EngineConfig, clock: Clock) -> Arc<Engine> {
    Engine::new(config, store, clock).await.expect("engine")
}

async fn sqlite(path: &Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(path).await.expect("open store"))
}

async fn send(engine: &Arc<Engine>, method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> (StatusCode, HeaderMap) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = engine.router().oneshot(req.body(Body::from(body.to_string())).expect("request")).await.expect("infallible");
    let (status, headers) = (resp.status(), resp.headers().clone());
    let _ = to_bytes(resp.into_body(), usize::MAX).await;
    (status, headers)
}

fn set_cookie(headers: &HeaderMap) -> String {
    headers.get(header::SET_COOKIE).expect("Set-Cookie").to_str().expect("ascii").to_string()
}

/// Signs in; returns the `Set-Cookie` header and the `name=value` to send back.
async fn login(engine: &Arc<Engine>, extra: &[(&str, &str)]) -> (String, String) {
    let mut headers = vec![FORM];
    headers.extend_from_slice(extra);
    let body = format!("token={KEY}&next=%2Fruns");
    let (status, h) = send(engine, "POST", "/login", &headers, &body).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], "/runs");
    let set = set_cookie(&h);
    let pair = set.split(';').next().unwrap().to_string();
    (set, pair)
}

async fn api_status(engine: &Arc<Engine>, cookie: &str) -> StatusCode {
    send(engine, "GET", "/v1/functions", &[("cookie", cookie)], "").await.0
}

#[tokio::test]
async fn a_session_is_a_random_token_that_survives_a_restart_until_logout() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ingot.db");
    let engine = engine_on(sqlite(&db).await, config(), Clock::system()).await;
    assert_eq!(api_status(&engine, "ingot_session=").await, StatusCode::UNAUTHORIZED);

    let (set, cookie) = login(&engine, &[]).await;
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"), "{set}");
    assert!(!set.contains("Secure"), "plain HTTP: not Secure: {set}");
    let token = cookie.strip_prefix("ingot_session=").expect("the session cookie");
    assert_eq!(token.len(), 64, "32 random bytes as hex: {token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    let hashed = hashed_key(KEY).unwrap();
    for secret in [KEY, "0123456789abcdef0123456789abcdef", &hashed, &hashed["signkey-prod-".len()..]] {
        assert!(!token.contains(secret) && !secret.contains(token), "the cookie is not the key or its hash");
    }
    assert_eq!(api_status(&engine, &cookie).await, StatusCode::OK);
    let (_, other) = login(&engine, &[]).await;
    assert_ne!(other, cookie, "every sign-in gets its own token");

    // The key or its hash as a cookie is not a session.
    for forged in [KEY.to_string(), hashed.clone(), hashed["signkey-prod-".len()..].to_string()] {
        assert_eq!(api_status(&engine, &format!("ingot_session={forged}")).await, StatusCode::UNAUTHORIZED, "{forged}");
    }

    // A restart (the store closed and opened again) keeps the session.
    drop(engine);
    let engine = engine_on(sqlite(&db).await, config(), Clock::system()).await;
    assert_eq!(api_status(&engine, &cookie).await, StatusCode::OK, "the session survives a restart");

    // Logout deletes it server-side: the same cookie is refused afterwards.
    let (status, h) = send(&engine, "POST", "/logout", &[("cookie", &cookie)], "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], "/login");
    assert!(set_cookie(&h).contains("Max-Age=0"), "the browser's copy is cleared too");
    assert_eq!(api_status(&engine, &cookie).await, StatusCode::UNAUTHORIZED, "a logged-out cookie is refused");
    let (status, _) = send(&engine, "GET", "/runs", &[("cookie", &cookie), ("accept", "text/html")], "").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "pages send a logged-out browser to the login page");
    assert_eq!(api_status(&engine, &other).await, StatusCode::OK, "other sessions are untouched");
}

#[tokio::test]
async fn a_session_expires_after_30_days() {
    let now = Arc::new(AtomicI64::new(1_800_000_000_000));
    let clock = {
        let now = now.clone();
        Clock::from_fn(move || now.load(Ordering::SeqCst))
    };
    let engine = engine_on(Arc::new(MemStore::new()), config(), clock).await;
    let (set, cookie) = login(&engine, &[]).await;
    assert!(set.contains(&format!("Max-Age={}", 30 * 24 * 3600)), "{set}");
    now.fetch_add(29 * 24 * 3600 * 1000, Ordering::SeqCst);
    assert_eq!(api_status(&engine, &cookie).await, StatusCode::OK);
    now.fetch_add(2 * 24 * 3600 * 1000, Ordering::SeqCst);
    assert_eq!(api_status(&engine, &cookie).await, StatusCode::UNAUTHORIZED, "an expired session is refused");
}

#[tokio::test]
async fn the_cookie_is_secure_behind_tls() {
    let engine = engine_on(Arc::new(MemStore::new()), config(), Clock::system()).await;
    for proxy in [("x-forwarded-proto", "https"), ("x-forwarded-proto", "HTTPS, http"), ("forwarded", "for=10.0.0.1;proto=https")] {
        let (set, cookie) = login(&engine, &[proxy]).await;
        assert!(set.contains("; Secure"), "{proxy:?}: {set}");
        let (_, h) = send(&engine, "POST", "/logout", &[("cookie", &cookie), proxy], "").await;
        assert!(set_cookie(&h).contains("; Secure"), "the clearing cookie matches");
    }
    let (set, _) = login(&engine, &[("x-forwarded-proto", "http")]).await;
    assert!(!set.contains("Secure"), "{set}");

    let mut tls = config();
    tls.public_url = "https://ingot.example.com".into();
    let engine = engine_on(Arc::new(MemStore::new()), tls, Clock::system()).await;
    let (set, _) = login(&engine, &[]).await;
    assert!(set.contains("; Secure"), "an https public URL: {set}");
}

#[tokio::test]
async fn next_only_redirects_to_local_paths() {
    let engine = engine_on(Arc::new(MemStore::new()), config(), Clock::system()).await;
    let (_, cookie) = login(&engine, &[]).await;
    // Each as the browser sends it in the query string (percent-encoded once more).
    let hostile = [
        "%2F%2Fevil.example",
        "%2F%2Fevil.example%2Fruns",
        "https%3A%2F%2Fevil.example",
        "%2F%5Cevil.example",
        "%5C%5Cevil.example",
        "%2F%09%2Fevil.example",
        "%2F%0A%2Fevil.example",
        "%2F%252F%252Fevil.example",
        "%252F%252Fevil.example",
        "%2F%255Cevil.example",
        "javascript%3Aalert(1)",
        "evil.example",
    ];
    for next in hostile {
        let (status, h) = send(&engine, "GET", &format!("/login?next={next}"), &[("cookie", &cookie)], "").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{next}");
        assert_eq!(h[header::LOCATION], "/", "GET /login?next={next}");
        let (status, h) = send(&engine, "POST", "/login", &[FORM], &format!("token={KEY}&next={next}")).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{next}");
        assert_eq!(h[header::LOCATION], "/", "POST /login next={next}");
    }
    let (_, h) = send(&engine, "GET", "/login?next=%2Fruns%3Fstatus%3DFailed", &[("cookie", &cookie)], "").await;
    assert_eq!(h[header::LOCATION], "/runs?status=Failed", "a local path is followed");
}
