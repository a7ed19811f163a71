//! Events as they arrive at `POST /e/{key}` and as they are sent to SDKs.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Largest accepted event, as Inngest's default (512 KiB).
pub const MAX_EVENT_BYTES: usize = 512 * 1024;
/// Largest accepted request body on the event API (3 MiB, as Inngest).
pub const MAX_EVENT_REQUEST_BYTES: usize = 3 * 1024 * 1024;
/// Largest number of events in one request.
pub const MAX_EVENTS_PER_REQUEST: usize = 5_000;

/// An event on the wire. `data` is always an object once normalized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub name: String,
    #[serde(default)]
    pub data: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Value>,
}

/// Why an event was refused at the door.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("event is not a JSON object")]
    NotAnObject,
    #[error("event has no name")]
    MissingName,
    #[error("event name is longer than 512 characters")]
    NameTooLong,
    #[error("event name {0:?} uses the reserved `inngest/` prefix")]
    ReservedName(String),
    #[error("event data must be an object, got {0}")]
    DataNotObject(&'static str),
    #[error("event `ts` must be an integer of milliseconds between 1980 and 2100")]
    BadTimestamp,
    #[error("event `{0}` has the wrong type: {1}")]
    WrongType(&'static str, String),
    #[error("event is {0} bytes, over the limit of {MAX_EVENT_BYTES} bytes")]
    TooLarge(usize),
}

const TS_MIN_MS: i64 = 315_532_800_000; // 1980-01-01
const TS_MAX_MS: i64 = 4_102_444_800_000; // 2100-01-01

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Event {
    /// Validates and normalizes an event sent by a user: `data` becomes an
    /// object, `data._inngest` is stripped, `user` defaults to `{}`.
    pub fn from_user_json(value: Value, allow_internal: bool) -> Result<Event, EventError> {
        let size = serde_json::to_vec(&value).map(|b| b.len()).unwrap_or(0);
        if size > MAX_EVENT_BYTES {
            return Err(EventError::TooLarge(size));
        }
        let Value::Object(mut obj) = value else {
            return Err(EventError::NotAnObject);
        };
        let name = match obj.remove("name") {
            Some(Value::String(s)) if !s.trim().is_empty() => s,
            Some(Value::String(_)) | None | Some(Value::Null) => return Err(EventError::MissingName),
            Some(other) => return Err(EventError::WrongType("name", format!("expected a string, got {}", kind(&other)))),
        };
        if name.chars().count() > 512 {
            return Err(EventError::NameTooLong);
        }
        if !allow_internal && name.starts_with("inngest/") {
            return Err(EventError::ReservedName(name));
        }
        let data = match obj.remove("data") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(Value::Object(mut m)) => {
                if !allow_internal {
                    m.remove("_inngest");
                }
                Value::Object(m)
            }
            Some(other) => return Err(EventError::DataNotObject(kind(&other))),
        };
        let id = match obj.remove("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => return Err(EventError::WrongType("id", format!("expected a string, got {}", kind(&other)))),
        };
        let ts = match obj.remove("ts") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => {
                let ms = n.as_i64().or_else(|| n.as_f64().map(|f| f as i64));
                match ms {
                    Some(0) => None,
                    Some(ms) if (TS_MIN_MS..TS_MAX_MS).contains(&ms) => Some(ms),
                    _ => return Err(EventError::BadTimestamp),
                }
            }
            Some(_) => return Err(EventError::BadTimestamp),
        };
        let v = match obj.remove("v") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => return Err(EventError::WrongType("v", format!("expected a string, got {}", kind(&other)))),
        };
        let user = match obj.remove("user") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(u) => u,
        };
        Ok(Event { name, data, id, ts, v, user: Some(user) })
    }

    /// The JSON form sent to SDKs and stored: always carries `data`, `id`,
    /// `name`, `ts` and `user`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), Value::String(self.name.clone()));
        m.insert("data".into(), if self.data.is_null() { Value::Object(Map::new()) } else { self.data.clone() });
        if let Some(id) = &self.id {
            m.insert("id".into(), Value::String(id.clone()));
        }
        if let Some(ts) = self.ts {
            m.insert("ts".into(), Value::from(ts));
        }
        if let Some(v) = &self.v {
            m.insert("v".into(), Value::String(v.clone()));
        }
        m.insert("user".into(), self.user.clone().unwrap_or_else(|| Value::Object(Map::new())));
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalizes_data_and_user() {
        let e = Event::from_user_json(json!({"name":"a/b","data":null}), false).unwrap();
        assert_eq!(e.to_json(), json!({"name":"a/b","data":{},"user":{}}));
    }

    #[test]
    fn strips_inngest_metadata_from_user_events() {
        let e = Event::from_user_json(json!({"name":"a","data":{"_inngest":{"x":1},"k":2}}), false).unwrap();
        assert_eq!(e.data, json!({"k":2}));
    }

    #[test]
    fn refuses_bad_events_with_clear_errors() {
        let cases = [
            (json!([1]), EventError::NotAnObject),
            (json!({"data":{}}), EventError::MissingName),
            (json!({"name":"inngest/function.failed"}), EventError::ReservedName("inngest/function.failed".into())),
            (json!({"name":"a","data":[1]}), EventError::DataNotObject("an array")),
            (json!({"name":"a","ts":"yesterday"}), EventError::BadTimestamp),
            (json!({"name":"a","ts":5}), EventError::BadTimestamp),
        ];
        for (input, want) in cases {
            assert_eq!(Event::from_user_json(input.clone(), false).unwrap_err(), want, "{input}");
        }
        let big = json!({"name":"a","data":{"s":"x".repeat(MAX_EVENT_BYTES)}});
        assert!(matches!(Event::from_user_json(big, false), Err(EventError::TooLarge(_))));
    }
}
