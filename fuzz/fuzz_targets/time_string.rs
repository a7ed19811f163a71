//! Bytes as a time string: `parse_duration` never panics, stays within the
//! limit, and what `format_duration` writes parses back to the same value;
//! the sleep path (`decide` with a Sleep op) takes it as a duration or date.
#![no_main]

use ingot_core::backoff::RetryPolicy;
use ingot_core::{decide, CallTarget, FunctionSlug, Input, Policy, Reply, ReplyMeta, RunId, RunState};
use ingot_protocol::timestr::{format_duration, millis_i64, parse_duration, MAX_DURATION};
use ingot_protocol::{Op, Opcode};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match parse_duration(s) {
        Ok(d) => {
            assert!(d <= MAX_DURATION, "{s:?} parsed past the limit");
            let back = parse_duration(&format_duration(d)).expect("a formatted duration parses");
            assert_eq!(back, d, "{s:?}");
            let _ = 1_700_000_000_000i64.checked_add(millis_i64(d)).expect("fits after now");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    // As a sleep and as a wait timeout in an SDK reply.
    let op = |op: Opcode, opts: serde_json::Value| Op {
        id: "x".into(),
        op,
        name: Some(s.to_string()),
        display_name: None,
        opts: Some(opts),
        data: None,
        error: None,
        userland: None,
    };
    let ops = vec![
        op(Opcode::Sleep, json!({"duration": s})),
        op(Opcode::WaitForEvent, json!({"event": "a", "timeout": s})),
        op(Opcode::InvokeFunction, json!({"function_id": "f", "timeout": s})),
    ];
    let run = RunState::new(RunId(Default::default()), FunctionSlug("app-f".into()), 1);
    let policy = Policy { retry: RetryPolicy::Table, jitter_ms: 0 };
    for now in [0, 1_700_000_000_000, i64::MAX - 1] {
        for o in &ops {
            let input = Input::Reply { target: CallTarget::Discovery, attempt: 0, reply: Reply::Ops(vec![o.clone()]), meta: ReplyMeta::default(), gateway: vec![] };
            let _ = decide(&run, input, now, policy);
        }
    }
});
