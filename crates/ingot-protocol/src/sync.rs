//! Sync: the `POST /fn/register` body from JS and Python SDKs, and function configs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The register body. Python spells `appname` and `deploy_type`; both are accepted.
#[derive(Debug, Clone, Deserialize)]
pub struct RegisterRequest {
    pub url: String,
    #[serde(alias = "appname", alias = "app_name")]
    #[serde(rename = "appName")]
    pub app_name: String,
    #[serde(default)]
    pub framework: Option<String>,
    #[serde(default)]
    pub sdk: Option<String>,
    #[serde(default, rename = "appVersion")]
    pub app_version: Option<String>,
    #[serde(default)]
    pub functions: Vec<FunctionConfig>,
}

/// One function in a register body (§1.3 of the protocol brief).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionConfig {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    #[serde(default)]
    pub steps: BTreeMap<String, StepConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel: Option<Vec<CancelConfig>>,
    /// Flow-control blocks kept as sent; read by the flow-control layer.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// A trigger: an event (with optional CEL expression) or a cron.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Trigger {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
}

/// `steps.step`: where and how to call the function.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepConfig {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub runtime: Option<Runtime>,
    #[serde(default)]
    pub retries: Option<Retries>,
}

/// `runtime`: `{type:"http", url}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Runtime {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

/// `retries.attempts` is the number of retries, not attempts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Retries {
    #[serde(default)]
    pub attempts: Option<i64>,
}

/// `cancel[]`: an event that cancels a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CancelConfig {
    pub event: String,
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub if_exp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// Inngest's default number of retries.
pub const DEFAULT_RETRIES: u32 = 4;
/// Inngest's cap on retries.
pub const MAX_RETRIES: u32 = 20;

impl FunctionConfig {
    /// The step entry (always `"step"` in practice; take the first otherwise).
    pub fn step(&self) -> Option<&StepConfig> {
        self.steps.get("step").or_else(|| self.steps.values().next())
    }

    /// The URL to call, if this is an HTTP function.
    pub fn url(&self) -> Option<&str> {
        self.step()?.runtime.as_ref()?.url.as_deref()
    }

    /// Attempts allowed per step: retries + 1, retries defaulting to 4, capped at 20.
    pub fn max_attempts(&self) -> u32 {
        let retries = self
            .step()
            .and_then(|s| s.retries.as_ref())
            .and_then(|r| r.attempts)
            .map(|n| n.clamp(0, MAX_RETRIES as i64) as u32)
            .unwrap_or(DEFAULT_RETRIES);
        retries + 1
    }

    /// A readable name.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().filter(|s| !s.is_empty()).unwrap_or(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_python_spelling() {
        let body = r#"{"url":"http://x/api","appname":"py","deploy_type":"ping","functions":[{"id":"py-f","name":"F","triggers":[{"event":"a"}],"steps":{"step":{"id":"step","name":"step","runtime":{"type":"http","url":"http://x/api?fnId=py-f&stepId=step"},"retries":{"attempts":0}}},"concurrency":[]}]}"#;
        let r: RegisterRequest = serde_json::from_str(body).unwrap();
        assert_eq!(r.app_name, "py");
        assert_eq!(r.functions[0].max_attempts(), 1);
        assert_eq!(r.functions[0].url(), Some("http://x/api?fnId=py-f&stepId=step"));
        assert!(r.functions[0].rest.contains_key("concurrency"));
    }
}
