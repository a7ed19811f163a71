//! Which functions an event triggers: exact names, wildcards and CEL
//! expressions.

use serde_json::Value;

use crate::expr::Expr;

/// `a/b/c` matches `a/b/c`, `a/*`, `a/b/*`; `a.b.c` matches `a.*`, `a.b.*`.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    if pattern == name {
        return true;
    }
    match pattern.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('/') || prefix.ends_with('.') || prefix.is_empty() => name.starts_with(prefix),
        _ => false,
    }
}

/// An event trigger compiled for matching.
#[derive(Debug)]
pub struct EventTrigger {
    pub event: String,
    pub expression: Option<Expr>,
}

impl EventTrigger {
    /// Compiles a trigger; an invalid expression is reported, not ignored.
    pub fn new(event: &str, expression: Option<&str>) -> Result<EventTrigger, String> {
        let expression = match expression.map(str::trim).filter(|s| !s.is_empty()) {
            Some(src) => Some(Expr::compile(src)?),
            None => None,
        };
        Ok(EventTrigger { event: event.to_string(), expression })
    }

    pub fn matches(&self, name: &str, event: &Value) -> bool {
        name_matches(&self.event, name) && self.expression.as_ref().is_none_or(|e| e.matches(&[("event", event)]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards() {
        let cases = [
            ("a/b/c", "a/b/c", true),
            ("a/*", "a/b/c", true),
            ("a/b/*", "a/b/c", true),
            ("a/*", "ab/c", false),
            ("a.*", "a.b.c", true),
            ("a/b", "a/b/c", false),
            ("*", "anything", true),
        ];
        for (p, n, want) in cases {
            assert_eq!(name_matches(p, n), want, "{p} vs {n}");
        }
    }

    #[test]
    fn expressions_filter() {
        let t = EventTrigger::new("inngest/function.failed", Some("event.data.function_id == 'app-f'")).unwrap();
        assert!(t.matches("inngest/function.failed", &json!({"data":{"function_id":"app-f"}})));
        assert!(!t.matches("inngest/function.failed", &json!({"data":{"function_id":"app-g"}})));
        assert!(!t.matches("inngest/function.failed", &json!({"data":{}})));
        assert!(EventTrigger::new("x", Some("((")).is_err());
    }
}
