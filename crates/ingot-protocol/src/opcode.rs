//! Opcodes: what an SDK reports in a 206 reply.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The kind of an op. Unknown names are kept, not rejected, so newer SDKs do
/// not break older engines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opcode {
    StepRun,
    Step,
    StepPlanned,
    StepError,
    StepFailed,
    Sleep,
    WaitForEvent,
    InvokeFunction,
    /// `step.waitForSignal`: `opts.signal`, `opts.timeout`, `opts.conflict`.
    WaitForSignal,
    /// `step.fetch`: the engine makes the request in `opts`.
    Gateway,
    /// `step.ai.infer`: the engine calls the model endpoint in `opts`.
    AIGateway,
    RunComplete,
    DiscoveryRequest,
    StepNotFound,
    DeferAdd,
    DeferAbort,
    Other(String),
}

impl Opcode {
    pub fn as_str(&self) -> &str {
        match self {
            Opcode::StepRun => "StepRun",
            Opcode::Step => "Step",
            Opcode::StepPlanned => "StepPlanned",
            Opcode::StepError => "StepError",
            Opcode::StepFailed => "StepFailed",
            Opcode::Sleep => "Sleep",
            Opcode::WaitForEvent => "WaitForEvent",
            Opcode::InvokeFunction => "InvokeFunction",
            Opcode::WaitForSignal => "WaitForSignal",
            Opcode::Gateway => "Gateway",
            Opcode::AIGateway => "AIGateway",
            Opcode::RunComplete => "RunComplete",
            Opcode::DiscoveryRequest => "DiscoveryRequest",
            Opcode::StepNotFound => "StepNotFound",
            Opcode::DeferAdd => "DeferAdd",
            Opcode::DeferAbort => "DeferAbort",
            Opcode::Other(s) => s,
        }
    }

    fn from_name(s: &str) -> Opcode {
        match s {
            "StepRun" => Opcode::StepRun,
            "Step" => Opcode::Step,
            "StepPlanned" => Opcode::StepPlanned,
            "StepError" => Opcode::StepError,
            "StepFailed" => Opcode::StepFailed,
            "Sleep" => Opcode::Sleep,
            "WaitForEvent" => Opcode::WaitForEvent,
            "InvokeFunction" => Opcode::InvokeFunction,
            "WaitForSignal" => Opcode::WaitForSignal,
            "Gateway" => Opcode::Gateway,
            "AIGateway" => Opcode::AIGateway,
            "RunComplete" => Opcode::RunComplete,
            "DiscoveryRequest" => Opcode::DiscoveryRequest,
            "StepNotFound" => Opcode::StepNotFound,
            "DeferAdd" => Opcode::DeferAdd,
            "DeferAbort" => Opcode::DeferAbort,
            other => Opcode::Other(other.to_string()),
        }
    }
}

impl Serialize for Opcode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Opcode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Opcode::from_name(&s))
    }
}

/// One op of a 206 reply. Unknown fields (JS v4 adds internal ones) are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    pub id: String,
    pub op: Opcode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, rename = "displayName", skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opts: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userland: Option<Value>,
}

impl Op {
    /// What a person should see for this step: displayName, name, user id, hash.
    pub fn display(&self) -> String {
        if let Some(d) = self.display_name.as_deref().filter(|s| !s.is_empty()) {
            return d.to_string();
        }
        if let Some(id) = self.userland.as_ref().and_then(|u| u.get("id")).and_then(Value::as_str) {
            return id.to_string();
        }
        if let Some(n) = self.name.as_deref().filter(|s| !s.is_empty()) {
            return n.to_string();
        }
        self.id.clone()
    }

    /// A string field of `opts`, if present.
    pub fn opt_str(&self, key: &str) -> Option<&str> {
        self.opts.as_ref()?.get(key)?.as_str()
    }
}

/// Parses a 206 body: an array of ops, or a single legacy op object.
pub fn parse_ops(body: &[u8]) -> Result<Vec<Op>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("206 reply is not JSON: {e}"))?;
    let items = match value {
        Value::Array(a) => a,
        obj @ Value::Object(_) => vec![obj],
        other => return Err(format!("206 reply must be an array of ops, got {other}")),
    };
    items.into_iter().enumerate().map(|(i, v)| serde_json::from_value::<Op>(v).map_err(|e| format!("op #{i} is malformed: {e}"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ops_and_keeps_unknown_opcodes() {
        let ops = parse_ops(br#"[{"id":"a","op":"StepRun","data":1,"mode":"x"},{"id":"b","op":"Future"}]"#).unwrap();
        assert_eq!(ops[0].op, Opcode::StepRun);
        assert_eq!(ops[1].op, Opcode::Other("Future".into()));
        let single = parse_ops(br#"{"id":"a","op":"Sleep","name":"1s"}"#).unwrap();
        assert_eq!(single.len(), 1);
        assert!(parse_ops(b"nope").is_err());
        assert!(parse_ops(br#"[{"op":"StepRun"}]"#).is_err());
    }
}
