//! Flow-control blocks of a function config (§1.3, §6 of the brief), as sent
//! by the SDKs. Read leniently: unknown fields are ignored, numbers may come
//! as floats.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// One concurrency limit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Concurrency {
    #[serde(default, deserialize_with = "lenient_u32")]
    pub limit: u32,
    #[serde(default)]
    pub key: Option<String>,
    /// `fn` (default), `env` or `account`.
    #[serde(default)]
    pub scope: Option<String>,
}

/// `throttle`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Throttle {
    #[serde(default, deserialize_with = "lenient_u32")]
    pub limit: u32,
    pub period: String,
    #[serde(default, deserialize_with = "lenient_u32")]
    pub burst: u32,
    #[serde(default)]
    pub key: Option<String>,
}

/// `rateLimit`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RateLimit {
    #[serde(default, deserialize_with = "lenient_u32")]
    pub limit: u32,
    pub period: String,
    #[serde(default)]
    pub key: Option<String>,
}

/// `debounce`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Debounce {
    pub period: String,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
}

/// `batchEvents`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BatchEvents {
    #[serde(rename = "maxSize", deserialize_with = "lenient_u32")]
    pub max_size: u32,
    pub timeout: String,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default, rename = "if")]
    pub if_exp: Option<String>,
}

/// `priority`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Priority {
    #[serde(default)]
    pub run: Option<String>,
}

/// `timeouts`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Timeouts {
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub finish: Option<String>,
}

/// `singleton`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Singleton {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
}

fn lenient_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    Ok(lenient_u32_of(&Value::deserialize(d)?))
}

/// A count as the SDKs send it: an integer, a float or a numeric string.
/// Saturates at `u32::MAX`; negative, NaN and non-numbers are 0. Never wraps
/// (`4294967297` is not 1).
pub fn lenient_u32_of(v: &Value) -> u32 {
    fn from_f64(f: f64) -> u32 {
        // `as` saturates and maps NaN to 0.
        f.max(0.0) as u32
    }
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(x) => u32::try_from(x).unwrap_or(u32::MAX),
            None => n.as_f64().map(from_f64).unwrap_or(0),
        },
        Value::String(s) => {
            let s = s.trim();
            match s.parse::<u64>() {
                Ok(x) => u32::try_from(x).unwrap_or(u32::MAX),
                Err(_) => s.parse::<f64>().map(from_f64).unwrap_or(0),
            }
        }
        _ => 0,
    }
}

/// Every flow-control block of one function, parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowConfig {
    pub concurrency: Vec<Concurrency>,
    pub throttle: Option<Throttle>,
    pub rate_limit: Option<RateLimit>,
    pub debounce: Option<Debounce>,
    pub batch: Option<BatchEvents>,
    pub priority: Option<Priority>,
    pub idempotency: Option<String>,
    pub timeouts: Option<Timeouts>,
    pub singleton: Option<Singleton>,
}

fn field<T: serde::de::DeserializeOwned>(rest: &std::collections::BTreeMap<String, Value>, name: &str) -> Result<Option<T>, String> {
    match rest.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|e| format!("`{name}` is invalid: {e}")),
    }
}

impl FlowConfig {
    /// Reads the flow-control fields of a function config.
    pub fn parse(rest: &std::collections::BTreeMap<String, Value>) -> Result<FlowConfig, String> {
        let concurrency = match rest.get("concurrency") {
            None | Some(Value::Null) => Vec::new(),
            Some(n @ Value::Number(_)) => vec![Concurrency { limit: lenient_u32_of(n), key: None, scope: None }],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| serde_json::from_value(v.clone()))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("`concurrency` is invalid: {e}"))?,
            Some(v @ Value::Object(_)) => vec![serde_json::from_value(v.clone()).map_err(|e| format!("`concurrency` is invalid: {e}"))?],
            Some(other) => return Err(format!("`concurrency` must be a number, an object or a list, got {other}")),
        };
        if concurrency.len() > 2 {
            return Err("at most 2 concurrency limits are allowed".into());
        }
        let idempotency = match rest.get("idempotency") {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            _ => None,
        };
        Ok(FlowConfig {
            concurrency: concurrency.into_iter().filter(|c| c.limit > 0).collect(),
            throttle: field(rest, "throttle")?,
            rate_limit: field(rest, "rateLimit")?,
            debounce: field(rest, "debounce")?,
            batch: field(rest, "batchEvents")?,
            priority: field(rest, "priority")?,
            idempotency,
            timeouts: field(rest, "timeouts")?,
            singleton: field(rest, "singleton")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<FlowConfig, String> {
        let rest = v.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        FlowConfig::parse(&rest)
    }

    #[test]
    fn reads_every_block() {
        let f = parse(json!({
            "concurrency": [{"limit": 2, "key": "event.data.user"}, {"limit": 10, "scope": "env", "key": "'x'"}],
            "throttle": {"limit": 5, "period": "1s", "burst": 1},
            "rateLimit": {"limit": 10, "period": "1m", "key": "event.data.user"},
            "debounce": {"period": "5s", "timeout": "1m"},
            "batchEvents": {"maxSize": 100, "timeout": "5s"},
            "priority": {"run": "event.data.p"},
            "idempotency": "event.data.id",
            "timeouts": {"start": "10s", "finish": "1h"},
            "singleton": {"key": "event.data.user", "mode": "skip"},
        }))
        .unwrap();
        assert_eq!(f.concurrency.len(), 2);
        assert_eq!(f.throttle.unwrap().burst, 1);
        assert_eq!(f.batch.unwrap().max_size, 100);
        assert_eq!(f.idempotency.as_deref(), Some("event.data.id"));
        assert_eq!(parse(json!({"concurrency": 5})).unwrap().concurrency[0].limit, 5);
        assert!(parse(json!({"concurrency": [{"limit":1},{"limit":1},{"limit":1}]})).is_err());
        assert!(parse(json!({"throttle": {"limit": 1}})).is_err());
    }

    #[test]
    fn numbers_saturate_instead_of_wrapping() {
        let cases = [
            (json!(4_294_967_297u64), u32::MAX),
            (json!(u64::MAX), u32::MAX),
            (json!(1e300), u32::MAX),
            (json!(-5), 0),
            (json!(-1e300), 0),
            (json!(2.7), 2),
            (json!("99999999999"), u32::MAX),
            (json!(" 12 "), 12),
            (json!("1e12"), u32::MAX),
            (json!("NaN"), 0),
            (json!("-3"), 0),
            (json!(null), 0),
            (json!([1]), 0),
        ];
        for (v, want) in cases {
            assert_eq!(lenient_u32_of(&v), want, "{v}");
        }
        assert_eq!(parse(json!({"concurrency": 4_294_967_297u64})).unwrap().concurrency[0].limit, u32::MAX);
        let t = parse(json!({"throttle": {"limit": "99999999999", "period": "1s", "burst": -1}})).unwrap().throttle.unwrap();
        assert_eq!((t.limit, t.burst), (u32::MAX, 0));
    }
}
