//! Out-of-band sync (protocol §1.1–§1.4): on the engine's `PUT`, register
//! every function with `POST <api origin>/fn/register`, then answer the PUT
//! as the JS SDK does (`{message, modified}`, status from the register
//! reply's body).

use serde_json::{json, Value};

use super::{strip_nulls, Inner};
use crate::client::{Client, SDK_VERSION};

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
