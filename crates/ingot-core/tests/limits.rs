//! Regressions for user-supplied numbers and strings at their extremes:
//! `decide` saturates times and attempts, refuses oversized step ids and
//! invalid wait expressions, and never panics.

use std::time::Duration;

use ingot_core::backoff::RetryPolicy;
use ingot_core::decide::{MAX_SLEEP_MS, MAX_STEP_ID_BYTES};
use ingot_core::{decide, CallTarget, Effect, FunctionSlug, Input, Policy, Reply, ReplyMeta, RunId, RunState, RunStatus};
use ingot_protocol::{Op, Opcode};
use serde_json::{json, Value};

fn op(id: &str, kind: Opcode, name: Option<&str>, opts: Value) -> Op {
    Op {
        id: id.into(),
        op: kind,
        name: name.map(Into::into),
        display_name: None,
        opts: Some(opts),
        data: None,
        error: None,
        userland: None,
    }
}

fn reply(ops: Vec<Op>, attempt: u32, now: i64, retry: RetryPolicy) -> ingot_core::Decision {
    let run = RunState::new(RunId(Default::default()), FunctionSlug("app-f".into()), 5);
    let input =
        Input::Reply { target: CallTarget::Discovery, attempt, reply: Reply::Ops(ops), meta: ReplyMeta::default(), gateway: vec![] };
    decide(&run, input, now, Policy { retry, jitter_ms: 0 })
}

#[test]
fn sleeps_and_timeouts_saturate_near_the_end_of_time() {
    for now in [0, 1_700_000_000_000, i64::MAX - 1, i64::MAX] {
        for spec in ["36500d", "9999999999999999h", "9999-12-31T23:59:59Z", "1s"] {
            let d = reply(vec![op("s", Opcode::Sleep, Some(spec), json!({}))], 0, now, RetryPolicy::Table);
            for e in &d.effects {
                if let Effect::Sleep { at_ms, .. } = e {
                    assert!(*at_ms >= now && *at_ms - now <= MAX_SLEEP_MS, "{spec} at {now}: {at_ms}");
                }
            }
            let wait = op("w", Opcode::WaitForEvent, None, json!({"event": "a", "timeout": spec}));
            let invoke = op("i", Opcode::InvokeFunction, None, json!({"function_id": "f", "timeout": spec}));
            let d = reply(vec![wait, invoke], 0, now, RetryPolicy::Table);
            for e in &d.effects {
                if let Effect::WaitForEvent { expires_ms, .. } | Effect::Invoke { expires_ms, .. } = e {
                    assert!(*expires_ms >= now, "{spec} at {now}");
                }
            }
        }
    }
}

#[test]
fn retries_saturate_attempts_and_delays() {
    let error = op("e", Opcode::StepError, None, json!({}));
    // The last attempt fails the step instead of wrapping to attempt 0.
    let d = reply(vec![error.clone()], u32::MAX, 0, RetryPolicy::Table);
    assert!(d.effects.iter().any(|e| matches!(e, Effect::SaveStep { .. })), "{:?}", d.effects);
    // A retry a ~forever away is scheduled at the end of time, not in the past.
    let d = reply(vec![error], 0, i64::MAX - 10, RetryPolicy::Fixed(Duration::MAX));
    match &d.effects[..] {
        [Effect::Call { at_ms, attempt: 1, .. }] => assert_eq!(*at_ms, i64::MAX),
        other => panic!("{other:?}"),
    }
}

#[test]
fn oversized_step_ids_are_an_invalid_reply() {
    let long = "x".repeat(MAX_STEP_ID_BYTES + 1);
    let mut run_op = op(&long, Opcode::StepRun, None, json!({}));
    run_op.data = Some(json!(1));
    let d = reply(vec![run_op.clone()], 0, 0, RetryPolicy::Table);
    assert!(!d.effects.iter().any(|e| matches!(e, Effect::SaveStep { .. })));
    assert!(matches!(d.effects[..], [Effect::Call { attempt: 1, .. }]), "{:?}", d.effects);
    // Checkpoints skip them.
    let run = RunState::new(RunId(Default::default()), FunctionSlug("app-f".into()), 5);
    let policy = Policy { retry: RetryPolicy::Table, jitter_ms: 0 };
    assert!(decide(&run, Input::Checkpoint { ops: vec![run_op] }, 0, policy).effects.is_empty());
}

#[test]
fn an_invalid_wait_expression_fails_the_step_with_the_reason() {
    let deep = format!("{}true{}", "(".repeat(500), ")".repeat(500));
    for bad in [deep.as_str(), "async.data.id ==", "((("] {
        let wait = op("w", Opcode::WaitForEvent, None, json!({"event": "a", "timeout": "1h", "if": bad}));
        let d = reply(vec![wait], 0, 0, RetryPolicy::Table);
        let saved = d.effects.iter().find_map(|e| match e {
            Effect::SaveStep { memo, .. } => Some(memo.clone()),
            _ => None,
        });
        let memo = saved.unwrap_or_else(|| panic!("{bad}: {:?}", d.effects));
        assert_eq!(memo["error"]["name"], "InvalidExpressionError");
        assert_eq!(d.state.status, RunStatus::Running);
    }
    let err = |d: &ingot_core::Decision| format!("{:?}", d.effects);
    let wait = op("w", Opcode::WaitForEvent, None, json!({"event": "a", "timeout": "1h", "if": deep}));
    assert!(err(&reply(vec![wait], 0, 0, RetryPolicy::Table)).contains("nests 500 levels deep; the limit is 48"));
    let ok = op("w", Opcode::WaitForEvent, None, json!({"event": "a", "timeout": "1h", "if": "async.data.id == event.data.id"}));
    assert!(matches!(reply(vec![ok], 0, 0, RetryPolicy::Table).effects[..], [Effect::WaitForEvent { .. }]));
}
