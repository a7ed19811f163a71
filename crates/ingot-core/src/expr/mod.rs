//! CEL expressions (trigger `expression`, `waitForEvent.if`, `cancel.if`),
//! evaluated with the `cel-interpreter` crate. A missing field makes the
//! expression false instead of an error, as in Inngest.

use serde_json::Value;

/// A compiled expression.
pub struct Expr {
    source: String,
    program: cel_interpreter::Program,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.source)
    }
}

impl Expr {
    /// Compiles `source`, or says why it is not valid CEL.
    pub fn compile(source: &str) -> Result<Expr, String> {
        let program = std::panic::catch_unwind(|| cel_interpreter::Program::compile(source))
            .map_err(|_| format!("invalid expression {source:?}"))?
            .map_err(|e| format!("invalid expression {source:?}: {e}"))?;
        Ok(Expr { source: source.to_string(), program })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates to a bool; errors and non-bools are false.
    pub fn matches(&self, vars: &[(&str, &Value)]) -> bool {
        matches!(self.eval(vars), Some(cel_interpreter::Value::Bool(true)))
    }

    /// Evaluates to a JSON value (for keys and priorities); errors are None.
    pub fn value(&self, vars: &[(&str, &Value)]) -> Option<Value> {
        self.eval(vars)?.json().ok()
    }

    fn eval(&self, vars: &[(&str, &Value)]) -> Option<cel_interpreter::Value> {
        let mut ctx = cel_interpreter::Context::default();
        for (name, value) in vars {
            ctx.add_variable(*name, *value).ok()?;
        }
        // The interpreter is third-party code fed user input: a panic in it
        // must fail this one expression, not the engine.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.program.execute(&ctx))).ok()?.ok()
    }
}

/// Compiles and evaluates once; invalid expressions are false.
pub fn eval_bool(source: &str, vars: &[(&str, &Value)]) -> bool {
    Expr::compile(source).map(|e| e.matches(vars)).unwrap_or(false)
}

/// Compiles and evaluates once to a JSON value; invalid expressions are None.
pub fn eval_value(source: &str, vars: &[(&str, &Value)]) -> Option<Value> {
    Expr::compile(source).ok()?.value(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluates_against_events() {
        let event = json!({"name":"a","data":{"id":"x","plan":"pro","n":3}});
        let other = json!({"name":"b","data":{"id":"x"}});
        assert!(eval_bool("event.data.plan == 'pro'", &[("event", &event)]));
        assert!(eval_bool("event.data.n > 2", &[("event", &event)]));
        assert!(eval_bool("async.data.id == event.data.id", &[("event", &event), ("async", &other)]));
        assert!(!eval_bool("event.data.missing == 'x'", &[("event", &event)]));
        assert!(!eval_bool("event.data.plan ==", &[("event", &event)]));
        assert!(Expr::compile("(((").is_err());
        assert_eq!(eval_value("event.data.plan", &[("event", &event)]), Some(json!("pro")));
        assert_eq!(eval_value("event.data.n", &[("event", &event)]), Some(json!(3)));
    }
}
