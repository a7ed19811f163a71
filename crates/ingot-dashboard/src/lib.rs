//! The dashboard: a single-page app of plain HTML, CSS and JavaScript
//! modules, compiled into the binary with `include_str!`, so users never
//! run a build step. It reads the engine's REST API and `GET /v1/stream`.
//!
//! **Architecture invariant:** this crate knows nothing about the engine; it
//! serves files. The engine decides who may see them (see `api::auth`).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The app shell every page route answers with.
const INDEX: &str = include_str!("../assets/index.html");
const LOGIN: &str = include_str!("../assets/login.html");

/// Files under `/assets/`: name, content type, content.
const ASSETS: &[(&str, &str, &str)] = &[
    ("style.css", "text/css; charset=utf-8", include_str!("../assets/style.css")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("../assets/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_str!("../assets/api.js")),
    ("ui.js", "text/javascript; charset=utf-8", include_str!("../assets/ui.js")),
    ("charts.js", "text/javascript; charset=utf-8", include_str!("../assets/charts.js")),
    ("pages/apps.js", "text/javascript; charset=utf-8", include_str!("../assets/pages/apps.js")),
    ("pages/functions.js", "text/javascript; charset=utf-8", include_str!("../assets/pages/functions.js")),
    ("pages/events.js", "text/javascript; charset=utf-8", include_str!("../assets/pages/events.js")),
    ("pages/runs.js", "text/javascript; charset=utf-8", include_str!("../assets/pages/runs.js")),
    ("pages/run.js", "text/javascript; charset=utf-8", include_str!("../assets/pages/run.js")),
    ("favicon.svg", "image/svg+xml", include_str!("../assets/favicon.svg")),
];

/// The page routes of the single-page app; each serves the app shell.
pub const PAGE_ROUTES: &[&str] =
    &["/", "/apps", "/functions", "/functions/{*rest}", "/events", "/events/{*rest}", "/runs", "/runs/{*rest}"];

async fn index() -> Response {
    ([(header::CACHE_CONTROL, "no-cache")], Html(INDEX)).into_response()
}

async fn asset(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == path) {
        Some((_, mime, body)) => ([(header::CONTENT_TYPE, *mime), (header::CACHE_CONTROL, "no-cache")], *body).into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// The page routes (the app shell): guard them in production.
pub fn pages<S: Clone + Send + Sync + 'static>() -> Router<S> {
    PAGE_ROUTES.iter().fold(Router::new(), |r, path| r.route(path, get(index)))
}

/// `/assets/*`: static files holding no data, served to anyone (the login
/// page needs them).
pub fn assets<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/assets/{*path}", get(asset)).route("/favicon.ico", get(|| asset(Path("favicon.svg".into()))))
}

/// The sign-in page, with an error to show and the path to return to.
pub fn login_html(error: Option<&str>, next: &str) -> String {
    let error = error.map(|e| format!(r#"<p class="login-error" role="alert">{}</p>"#, escape(e))).unwrap_or_default();
    LOGIN.replace("{{error}}", &error).replace("{{next}}", &escape(next))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_page_escapes_what_it_echoes() {
        let page = login_html(Some("<b>no</b>"), "/runs?x=\"1\"");
        assert!(page.contains("&lt;b&gt;no&lt;/b&gt;"));
        assert!(page.contains("/runs?x=&quot;1&quot;"));
        assert!(!page.contains("{{"));
    }

    #[test]
    fn every_asset_the_shell_loads_is_served() {
        for (name, _, body) in ASSETS {
            assert!(!body.is_empty(), "{name} is empty");
        }
        assert!(INDEX.contains("/assets/app.js"));
    }
}
