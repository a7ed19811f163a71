//! Bytes as a `POST /e/{key}` body: JSON, one event or a list, each through
//! `Event::from_user_json`, then matched against compiled triggers.
#![no_main]

use ingot_core::matching::EventTrigger;
use ingot_protocol::event::{Event, MAX_EVENTS_PER_REQUEST, MAX_EVENT_REQUEST_BYTES};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    quiet_panics();
    if data.len() > MAX_EVENT_REQUEST_BYTES {
        return;
    }
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let items = match value {
        Value::Array(a) if a.len() <= MAX_EVENTS_PER_REQUEST => a,
        Value::Array(_) => return,
        other => vec![other],
    };
    let triggers = [
        EventTrigger::new("app/*", Some("event.data.plan == 'pro' && size(event.data) > 1")).unwrap(),
        EventTrigger::new("*", Some("event.data.items.exists(i, i == 1)")).unwrap(),
        EventTrigger::new("app/user.created", None).unwrap(),
    ];
    for (i, item) in items.into_iter().enumerate() {
        let internal = i % 2 == 1;
        if let Ok(event) = Event::from_user_json(item, internal) {
            assert!(!event.name.trim().is_empty());
            assert!(internal || !event.name.starts_with("inngest/"));
            let json = event.to_json();
            assert!(json["data"].is_object());
            for t in &triggers {
                let _ = t.matches(&event.name, &json);
            }
        }
    }
});

/// cel-interpreter panics on some inputs (a comprehension over a non-list
/// reaches a `todo!`), and `Expr` turns those into false; libFuzzer's hook
/// would abort on them first. An uncaught panic still aborts (libfuzzer-sys
/// catches it at the top).
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}
