//! Bytes as a 206 reply body: `parse_ops`, then `decide` for a discovery
//! call and for a step call of a run with a few steps, and as a checkpoint.
#![no_main]

use std::time::Duration;

use ingot_core::backoff::RetryPolicy;
use ingot_core::{decide, CallTarget, FunctionSlug, Input, Policy, Reply, ReplyMeta, RunId, RunState};
use ingot_protocol::opcode::parse_ops;
use libfuzzer_sys::fuzz_target;

fn run(version: i32) -> RunState {
    let mut s = RunState::new(RunId(Default::default()), FunctionSlug("app-f".into()), 4);
    s.version = version;
    s.done.insert(ingot_protocol::hash_step_id("a"));
    s.planned.insert(ingot_protocol::hash_step_id("b"));
    s.pending.insert(ingot_protocol::hash_step_id("b"));
    s.pending.insert(ingot_protocol::hash_step_id("c"));
    s
}

fuzz_target!(|data: &[u8]| {
    let Ok(ops) = parse_ops(data) else {
        return;
    };
    let first = data.first().copied().unwrap_or(0);
    let policy = Policy {
        retry: if first & 1 == 0 { RetryPolicy::Table } else { RetryPolicy::Fixed(Duration::MAX) },
        jitter_ms: u64::from(first) * 1000,
    };
    let now = match first % 4 {
        0 => 1_700_000_000_000,
        1 => 0,
        2 => i64::MAX - 1,
        _ => i64::MIN + 1,
    };
    let attempt = if first & 2 == 0 { 0 } else { u32::MAX };
    let meta = ReplyMeta { version: Some(i32::from(first % 3) - 1), no_retry: None, retry_after: None };
    for version in [1, 2] {
        let state = run(version);
        for target in [CallTarget::Discovery, CallTarget::Step(ingot_protocol::hash_step_id("b"))] {
            let input = Input::Reply { target, attempt, reply: Reply::Ops(ops.clone()), meta: meta.clone(), gateway: vec![] };
            let d = decide(&state, input, now, policy);
            assert!(d.state.done.is_superset(&state.done), "a memoized step was forgotten");
        }
        let d = decide(&state, Input::Checkpoint { ops: ops.clone() }, now, policy);
        assert!(d.state.done.len() <= ingot_core::decide::MAX_STEPS.max(state.done.len()));
    }
});
