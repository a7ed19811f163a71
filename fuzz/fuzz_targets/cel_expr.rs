//! Bytes as a CEL expression: compile (length, depth and comprehension
//! checks, then the parser), then evaluate against a small event.
#![no_main]

use ingot_core::expr::{self, Expr};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    quiet_panics();
    let src = String::from_utf8_lossy(data);
    let checked = expr::check(&src);
    let Ok(e) = Expr::compile(&src) else {
        return;
    };
    assert!(checked.is_ok(), "compile accepted what check refused");
    let event = json!({
        "name": "app/user.created",
        "data": {"plan": "pro", "n": 3, "items": [1, 2, 3], "tags": ["a", "b"], "user": {"id": "u1", "age": 41.5}},
        "ts": 1_700_000_000_000i64,
    });
    let other = json!({"name": "app/other", "data": {"plan": "free", "items": []}});
    let _ = e.matches(&[("event", &event), ("async", &other)]);
    let _ = e.try_value(&[("event", &event)]);
});

/// See register_body.rs: panics inside the interpreter are expected and caught.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}
