//! Out-of-band sync (protocol §1.1–§1.4): on the engine's `PUT`, register
//! every function with `POST <api origin>/fn/register`, then answer the PUT
//! as the JS SDK does (`{message, modified}`, status from the register
//! reply's body).
//!
//! The register body carries the URL the engine will send calls (with run
//! data, signed) to, so in cloud mode it never comes from an unauthenticated
//! request ([`app_url`]): it is `serve_origin`/`serve_path` (the builder, or
//! `INNGEST_SERVE_ORIGIN`/`INNGEST_SERVE_PATH`) when set; else, for a signed
//! PUT, the URL in its signed body (`{"url": ...}`) or its `Host`; an
//! unsigned PUT without a configured origin is refused (401), since its
//! `Host`/`X-Forwarded-Host` could name anyone's server. An unsigned PUT with
//! a configured origin still syncs, as in the official SDKs (deploy hooks
//! `curl -X PUT` the app). In dev mode the request's `Host` is used, as
//! before.

use axum::extract::OriginalUri;
use bytes::Bytes;
use serde_json::{json, Value};

use super::{query, strip_nulls, Inner};
use crate::client::{Client, SDK_VERSION};

/// How far the PUT asking for a sync can be trusted to say where the app is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trust {
    /// Dev mode: nothing is verified; the request's `Host` is used.
    Dev,
    /// Cloud mode, a signature that verified (and was not a replay).
    Signed,
    /// Cloud mode, no valid signature.
    Unsigned,
}

/// Query parameters of the engine's own that are not part of the app's URL.
const ENGINE_PARAMS: [&str; 4] = ["fnId", "stepId", "probe", "deployId"];

/// The URL the engine reaches this endpoint at, to register; `Err` with the
/// reason when `trust` does not allow taking it from the request.
pub(crate) fn app_url(client: &Client, req: &axum::http::Request<Bytes>, trust: Trust) -> Result<String, String> {
    let c = &client.inner;
    let uri = req.extensions().get::<OriginalUri>().map(|o| o.0.clone()).unwrap_or_else(|| req.uri().clone());
    // For a signed PUT, the URL in its body is covered by the signature
    // (its `Host` is not).
    let signed_url = match trust {
        Trust::Signed => serde_json::from_slice::<Value>(req.body())
            .ok()
            .and_then(|b| b.get("url").and_then(Value::as_str).and_then(|u| reqwest::Url::parse(u).ok()))
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some()),
        Trust::Dev | Trust::Unsigned => None,
    };
    let origin = match (&c.serve_origin, &signed_url, trust) {
        (Some(origin), _, _) => origin.clone(),
        (None, Some(u), _) => u.origin().ascii_serialization(),
        (None, None, Trust::Dev | Trust::Signed) => request_origin(req, &uri),
        (None, None, Trust::Unsigned) => {
            return Err("an unsigned sync request cannot say where the app is in cloud mode; \
                 sign the PUT (X-Inngest-Signature) or set the app's public origin \
                 (INNGEST_SERVE_ORIGIN, ClientBuilder::serve_origin)"
                .into())
        }
    };
    let (path, pairs) = match &signed_url {
        Some(u) => (u.path().to_string(), u.query_pairs().into_owned().collect::<Vec<_>>()),
        None => (uri.path().to_string(), query(&uri).into_iter().collect()),
    };
    let path = c.serve_path.clone().unwrap_or(path);
    let mut url = format!("{}{path}", origin.trim_end_matches('/'));
    let kept: Vec<(String, String)> = pairs.into_iter().filter(|(k, _)| !ENGINE_PARAMS.contains(&k.as_str())).collect();
    if !kept.is_empty() {
        if let Ok(mut u) = reqwest::Url::parse(&url) {
            u.query_pairs_mut().extend_pairs(kept);
            url = u.to_string();
        }
    }
    Ok(url)
}

/// `scheme://host` as the request says (behind a proxy, its
/// `X-Forwarded-Proto`/`X-Forwarded-Host`).
fn request_origin(req: &axum::http::Request<Bytes>, uri: &axum::http::Uri) -> String {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let scheme = header("x-forwarded-proto").or_else(|| uri.scheme_str().map(str::to_string)).unwrap_or_else(|| "http".into());
    let host = header("x-forwarded-host")
        .or_else(|| header("host"))
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into());
    format!("{scheme}://{host}")
}

/// The framework this SDK reports.
pub(crate) const FRAMEWORK: &str = "axum";

/// The register body: the app and all its function configs.
pub(crate) fn register_body(inner: &Inner, url: &str, deploy_id: Option<&str>) -> Value {
    let client = &inner.client;
    let functions: Vec<Value> = inner
        .functions
        .iter()
        .flat_map(|f| f.configs(client.app_id(), url))
        .map(|c| strip_nulls(serde_json::to_value(c).unwrap_or(Value::Null)))
        .collect();
    let mut body = json!({
        "url": url,
        "deployType": "ping",
        "framework": FRAMEWORK,
        "appName": client.app_id(),
        "sdk": format!("rs:v{SDK_VERSION}"),
        "v": "0.1",
        "functions": functions,
        "capabilities": {"trust_probe": "v1"},
    });
    if let Some(v) = &client.inner.app_version {
        body["appVersion"] = json!(v);
    }
    if let Some(d) = deploy_id {
        body["deployId"] = json!(d);
    }
    body
}

/// Registers the app; returns the status and body to answer the PUT with.
pub(crate) async fn register(inner: &Inner, url: &str, deploy_id: Option<&str>, server_kind: Option<&str>) -> (u16, Value) {
    let client = &inner.client;
    let invalid: Vec<&str> = inner.functions.iter().flat_map(|f| f.config_errors()).map(String::as_str).collect();
    if !invalid.is_empty() {
        // A function built with a bad option (a time string that is not
        // one) is not registered half right: the sync fails and says why.
        let message = format!("not registered: {}", invalid.join("; "));
        tracing::error!(%message, "sync refused");
        return (500, json!({"message": message, "modified": false}));
    }
    let body = register_body(inner, url, deploy_id);
    let mut target = format!("{}/fn/register", client.api_origin());
    if let Some(d) = deploy_id {
        if let Ok(mut u) = reqwest::Url::parse(&target) {
            u.query_pairs_mut().append_pair("deployId", d);
            target = u.to_string();
        }
    }
    let keys: Vec<Option<&str>> = match (client.inner.signing_key.as_deref(), client.inner.signing_key_fallback.as_deref()) {
        (Some(k), Some(f)) => vec![Some(k), Some(f)],
        (k, _) => vec![k],
    };
    let mut last = (500, json!({"message": "not registered", "modified": false}));
    for key in keys {
        let mut req = client
            .inner
            .http
            .post(&target)
            .header("Content-Type", "application/json")
            .header("X-Inngest-SDK", Client::sdk_header())
            .header("User-Agent", Client::sdk_header())
            .header("X-Inngest-Framework", FRAMEWORK)
            .header("X-Inngest-Sync-Kind", "out_of_band")
            .json(&body);
        if let Some(auth) = Client::bearer(key) {
            req = req.header("Authorization", auth);
        }
        if let Some(kind) = server_kind {
            req = req.header("X-Inngest-Expected-Server-Kind", kind);
        }
        if let Some(env) = &client.inner.env {
            req = req.header("X-Inngest-Env", env);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, url = %target, "sync: could not reach the engine");
                return (500, json!({"message": format!("could not reach {target}: {e}"), "modified": false}));
            }
        };
        let http_status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        last = put_reply(http_status, &text);
        if !matches!(http_status, 401 | 403) {
            break;
        }
        tracing::debug!(status = http_status, "sync: key refused, trying the fallback key");
    }
    if (200..300).contains(&last.0) {
        tracing::info!(app = client.app_id(), functions = inner.functions.len(), "synced");
    } else {
        tracing::warn!(status = last.0, reply = %last.1, "sync failed");
    }
    last
}

/// The PUT reply for a register reply: status from the body's `status`
/// (else the HTTP status), `{message, modified}`.
fn put_reply(http_status: u16, text: &str) -> (u16, Value) {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let status = body.get("status").and_then(Value::as_u64).map(|s| s as u16).unwrap_or(http_status);
    let modified = body.get("modified").and_then(Value::as_bool);
    if (200..300).contains(&status) {
        (status, json!({"message": "Successfully registered", "modified": modified.unwrap_or(true)}))
    } else {
        let message = body.get("error").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| text.chars().take(500).collect());
        (status, json!({"message": message, "modified": modified.unwrap_or(false)}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_replies_take_the_status_from_the_body() {
        assert_eq!(
            put_reply(200, r#"{"ok":true,"modified":false}"#),
            (200, json!({"message": "Successfully registered", "modified": false}))
        );
        assert_eq!(put_reply(200, r#"{"status":422,"error":"bad config"}"#), (422, json!({"message": "bad config", "modified": false})));
        assert_eq!(put_reply(400, "nope").0, 400);
    }
}
