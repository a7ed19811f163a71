//! CEL expressions (trigger `expression`, `waitForEvent.if`, `cancel.if`),
//! evaluated with the `cel-interpreter` crate. A missing field makes the
//! expression false instead of an error, as in Inngest.

use serde_json::Value;

mod shape;

/// Longest expression accepted. Inngest documents no limit; 16 KiB is far
/// beyond any hand-written filter and bounds the parse time.
pub const MAX_EXPRESSION_BYTES: usize = 16 * 1024;
/// Deepest nesting accepted (see [`Expr::compile`]). Measured in a debug
/// build, the parser, the tree builder and the interpreter together use
/// about 10 KiB of stack per level of brackets: a 2 MiB thread (a tokio
/// worker's) overflows near 200 levels, so 48 leaves a margin of four.
pub const MAX_EXPRESSION_DEPTH: usize = 48;
/// Deepest nesting of comprehensions (`map`, `filter`, `all`, `exists`,
/// `exists_one`) in one another or over one another's result: each level
/// multiplies the work by the size of the input.
pub const MAX_COMPREHENSION_NESTING: usize = 3;
/// Deepest nesting of function calls in one another's arguments:
/// cel-interpreter 0.10 evaluates a call's first argument twice, so each
/// level doubles the work (`2^12` = 4096 times the expression).
pub const MAX_CALL_NESTING: usize = 12;
/// Most work one evaluation may cost, in units of about one value touched.
/// An expression with comprehensions is bounded by `tokens * size^degree`
/// (size: the JSON values and string bytes of its variables); past this
/// budget it is not evaluated (false, or no value). About a second of work.
pub const MAX_EVAL_COST: f64 = 1e9;
/// Deepest variable accepted: JSON read by serde_json nests at most 128
/// levels, and converting a variable for the interpreter recurses per level.
pub const MAX_VARIABLE_DEPTH: usize = 128;

/// A compiled expression.
pub struct Expr {
    source: String,
    program: cel_interpreter::Program,
    shape: shape::Shape,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.source)
    }
}

/// The start of a source for error messages (an expression may be 16 KiB).
fn excerpt(source: &str) -> String {
    const MAX: usize = 80;
    if source.len() <= MAX {
        return format!("{source:?}");
    }
    let mut end = MAX;
    while !source.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &source[..end], source.len())
}

/// Checks an expression's size, nesting and comprehensions without parsing
/// it; [`Expr::compile`] does this first. Safe on any input.
pub fn check(source: &str) -> Result<(), String> {
    check_shape(source).map(|_| ())
}

fn check_shape(source: &str) -> Result<shape::Shape, String> {
    if source.len() > MAX_EXPRESSION_BYTES {
        return Err(format!("expression {} is {} bytes long; the limit is {MAX_EXPRESSION_BYTES}", excerpt(source), source.len()));
    }
    let shape = shape::shape(source);
    if shape.depth > MAX_EXPRESSION_DEPTH {
        return Err(format!("expression {} nests {} levels deep; the limit is {MAX_EXPRESSION_DEPTH}", excerpt(source), shape.depth));
    }
    if shape.call_nesting > MAX_CALL_NESTING {
        return Err(format!(
            "expression {} nests function calls {} levels deep; the limit is {MAX_CALL_NESTING}",
            excerpt(source),
            shape.call_nesting
        ));
    }
    if shape.comprehension_nesting > MAX_COMPREHENSION_NESTING {
        return Err(format!(
            "expression {} nests comprehensions (map, filter, all, exists, exists_one) {} levels deep; the limit is {MAX_COMPREHENSION_NESTING}",
            excerpt(source),
            shape.comprehension_nesting
        ));
    }
    Ok(shape)
}

/// Why an expression gave no value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("a variable nests deeper than {MAX_VARIABLE_DEPTH} levels")]
    VariableTooDeep,
    #[error("evaluating would cost about {0:.0} steps; the budget is {MAX_EVAL_COST:.0}")]
    OverBudget(f64),
    #[error("the interpreter failed: {0}")]
    Interpreter(String),
    #[error("the interpreter panicked")]
    Panicked,
    #[error("the result has no JSON form: {0}")]
    NotJson(String),
}

/// The size of a JSON value for the work bound: values plus string bytes
/// over 16; `None` past [`MAX_VARIABLE_DEPTH`]. Iterative: never recurses.
fn input_size(value: &Value, size: &mut f64) -> Option<()> {
    let mut stack = vec![(value, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        if depth > MAX_VARIABLE_DEPTH {
            return None;
        }
        *size += 1.0;
        match v {
            Value::String(s) => *size += s.len() as f64 / 16.0,
            Value::Array(a) => stack.extend(a.iter().map(|x| (x, depth + 1))),
            Value::Object(m) => {
                for (k, x) in m {
                    *size += 1.0 + k.len() as f64 / 16.0;
                    stack.push((x, depth + 1));
                }
            }
            _ => {}
        }
    }
    Some(())
}

impl Expr {
    /// Compiles `source`, or says why it is refused: too long, nested too
    /// deeply (checked before parsing, so the parser cannot overflow the
    /// stack), comprehensions nested too deeply, or not valid CEL. A panic
    /// in the parser is an error too.
    pub fn compile(source: &str) -> Result<Expr, String> {
        let shape = check_shape(source)?;
        let program = std::panic::catch_unwind(|| cel_interpreter::Program::compile(source))
            .map_err(|_| format!("invalid expression {}: the parser failed on it", excerpt(source)))?
            .map_err(|e| format!("invalid expression {}: {e}", excerpt(source)))?;
        Ok(Expr { source: source.to_string(), program, shape })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates to a bool; errors and non-bools are false.
    pub fn matches(&self, vars: &[(&str, &Value)]) -> bool {
        matches!(self.eval(vars), Ok(cel_interpreter::Value::Bool(true)))
    }

    /// Evaluates to a JSON value (for keys and priorities); errors are None.
    pub fn value(&self, vars: &[(&str, &Value)]) -> Option<Value> {
        self.try_value(vars).ok()
    }

    /// Evaluates to a JSON value, or says why there is none.
    pub fn try_value(&self, vars: &[(&str, &Value)]) -> Result<Value, EvalError> {
        self.eval(vars)?.json().map_err(|e| EvalError::NotJson(e.to_string()))
    }

    fn eval(&self, vars: &[(&str, &Value)]) -> Result<cel_interpreter::Value, EvalError> {
        let mut size = 0.0;
        for (_, value) in vars {
            input_size(value, &mut size).ok_or(EvalError::VariableTooDeep)?;
        }
        if self.shape.degree > 0 {
            let calls = 2f64.powi(self.shape.call_nesting as i32);
            let cost = self.shape.tokens as f64 * calls * size.max(1.0).powi(self.shape.degree as i32);
            if cost > MAX_EVAL_COST {
                return Err(EvalError::OverBudget(cost));
            }
        }
        // The interpreter is third-party code fed user input: a panic in it
        // (integer overflow, division by zero, an unsupported form) must
        // fail this one expression, not the engine.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut ctx = cel_interpreter::Context::default();
            for (name, value) in vars {
                ctx.add_variable(*name, *value).map_err(|e| EvalError::Interpreter(e.to_string()))?;
            }
            self.program.execute(&ctx).map_err(|e| EvalError::Interpreter(e.to_string()))
        }))
        .map_err(|_| EvalError::Panicked)?
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

#[cfg(test)]
mod limits {
    use super::*;
    use serde_json::json;

    /// Builds an expression of one construct nested `n` times.
    fn nested(kind: &str, n: usize) -> String {
        let r = |s: &str| s.repeat(n);
        match kind {
            "paren" => format!("{}1{}", r("("), r(")")),
            "not" => format!("{}true{}", r("!("), r(")")),
            "list" => format!("{}1{}", r("["), r("]")),
            "map" => format!("{}1{}", r("{1:"), r("}")),
            "call" => format!("{}1{}", r("int("), r(")")),
            "member" => format!("event{}", r(".a")),
            "index" => format!("event{}", r("[0]")),
            "plus" => format!("1{}", r(" + 1")),
            "ternary" => format!("{}1", r("true ? 1 : ")),
            "macro" => format!("{}true{}", r("[1].exists(x, "), r(")")),
            _ => unreachable!(),
        }
    }

    const KINDS: [&str; 10] = ["paren", "not", "list", "map", "call", "member", "index", "plus", "ternary", "macro"];

    /// Runs `f` on a thread with a small stack: an overflow would abort the
    /// test binary, so passing proves the margin.
    fn on_small_stack(f: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new().stack_size(1024 * 1024).spawn(f).unwrap().join().unwrap();
    }

    #[test]
    fn the_deepest_accepted_expressions_fit_half_a_worker_stack() {
        on_small_stack(|| {
            let event = json!({"a": {"a": 1}});
            for kind in KINDS {
                // The deepest of each kind the limit accepts compiles and runs.
                let n = (1..=MAX_EXPRESSION_DEPTH).rev().find(|&n| check(&nested(kind, n)).is_ok()).unwrap();
                assert!(n >= MAX_COMPREHENSION_NESTING, "{kind}: only {n} levels accepted");
                let src = nested(kind, n);
                let started = std::time::Instant::now();
                if let Ok(e) = Expr::compile(&src) {
                    let _ = e.value(&[("event", &event)]);
                }
                assert!(started.elapsed() < std::time::Duration::from_secs(5), "{kind} x{n} took {:?}", started.elapsed());
            }
        });
    }

    #[test]
    fn deep_expressions_are_refused_before_parsing() {
        on_small_stack(|| {
            for kind in KINDS {
                for n in [200, 10_000, 1_000_000] {
                    let src = nested(kind, n);
                    let err = Expr::compile(&src).unwrap_err();
                    assert!(err.contains("levels deep; the limit is") || err.contains("bytes long; the limit is"), "{kind} x{n}: {err}");
                    assert!(err.len() < 300, "the error quotes only the start: {err}");
                    assert!(!eval_bool(&src, &[]));
                }
            }
        });
        let err = Expr::compile(&nested("paren", 200)).unwrap_err();
        assert!(err.ends_with("nests 200 levels deep; the limit is 48"), "{err}");
    }

    #[test]
    fn long_flat_expressions_are_accepted() {
        let event = json!({"data": {"a": 1}});
        let src = vec!["event.data.a == 1"; 500].join(" && ");
        assert!(src.len() < MAX_EXPRESSION_BYTES);
        let started = std::time::Instant::now();
        assert!(Expr::compile(&src).unwrap().matches(&[("event", &event)]));
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let list = format!("event.data.a in [{}]", (0..2000).map(|i| i.to_string()).collect::<Vec<_>>().join(", "));
        assert!(Expr::compile(&list).unwrap().matches(&[("event", &event)]));
        let too_long = "1 == 1 && ".repeat(MAX_EXPRESSION_BYTES / 10 + 1) + "true";
        assert!(Expr::compile(&too_long).unwrap_err().contains("bytes long; the limit is 16384"));
    }

    #[test]
    fn panics_in_the_interpreter_are_errors() {
        let e = Expr::compile("(1).map(x, x)").unwrap();
        assert_eq!(e.try_value(&[]), Err(EvalError::Panicked));
        for src in ["1 / 0", "9223372036854775807 + 1", "-9223372036854775807 - 2", "1 % 0"] {
            if let Ok(e) = Expr::compile(src) {
                assert!(e.value(&[]).is_none() || src.contains('+') || src.contains('-'), "{src}");
            }
        }
    }

    #[test]
    fn comprehensions_are_bounded() {
        let err = Expr::compile("[1].exists(a, [1].exists(b, [1].exists(c, [1].exists(d, true))))").unwrap_err();
        assert!(err.contains("nests comprehensions"), "{err}");
        assert!(Expr::compile("[1].exists(a, [1].exists(b, [1].exists(c, true)))").unwrap().matches(&[]));
        // A map over a small list runs; over a big one it is refused, not run.
        let e = Expr::compile("event.data.items.map(i, [i]).size() == 3").unwrap();
        let small = json!({"data": {"items": [1, 2, 3]}});
        assert!(e.matches(&[("event", &small)]));
        let big = json!({"data": {"items": vec![1; 100_000]}});
        assert!(!e.matches(&[("event", &big)]));
        assert!(matches!(e.try_value(&[("event", &big)]), Err(EvalError::OverBudget(_))));
        // An exists over the same list is linear and runs.
        let e = Expr::compile("event.data.items.exists(i, i == 2)").unwrap();
        assert!(!e.matches(&[("event", &big)]));
    }

    #[test]
    fn deep_variables_are_refused() {
        let mut v = json!(1);
        for _ in 0..MAX_VARIABLE_DEPTH + 1 {
            v = json!([v]);
        }
        let e = Expr::compile("size(event) > 0").unwrap();
        assert_eq!(e.try_value(&[("event", &v)]), Err(EvalError::VariableTooDeep));
    }
}
