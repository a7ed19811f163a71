//! Table-driven tests of the run state machine, `decide`, through the crate's
//! public API. Op shapes are copied from the golden SDK payloads in
//! `shared/fixtures` (JS v3, JS v4, Python); each feature has one `check_*`
//! helper and a table of cases. No IO, no clock, no randomness: time is `NOW`
//! and jitter is part of the `Policy` each case passes in.

use std::collections::BTreeSet;
use std::time::Duration;

use ingot_core::backoff::RetryPolicy;
use ingot_core::decide::{MAX_SLEEP_MS, MAX_STEPS, MAX_STEP_OUTPUT_BYTES};
use ingot_core::lifecycle::invoke_timed_out;
use ingot_core::{decide, CallTarget, Effect, FunctionSlug, Input, Policy, Reply, ReplyMeta, RunId, RunState, RunStatus};
use ingot_protocol::Op;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Fixture vocabulary
// ---------------------------------------------------------------------------

/// 2026-11-26T16:11:59.104Z, two seconds before the Python `nap` fixture wakes.
const NOW: i64 = 1_795_709_519_104;
/// Where `decide` schedules the discovery that follows a completed step: now.
const ASAP: i64 = NOW;

// Hashed step ids, as the SDKs computed them in the fixtures.
const FIRST: &str = "e0996a37c13d44c3b06074939d43fa3759bd32c1"; // "first"
const SECOND: &str = "352f7829a2384b001cc12b0c2613c756454a1f6a"; // "second"
const PAR_A: &str = "42094f9baaae4a7553fa8a331fcf663c2f2134b9"; // "par-a"
const PAR_B: &str = "1f0f99d7e1dcab0c03d412de944ad0eaf9e4b243"; // "par-b"
const NAP: &str = "c2640f79b4ed481b838ce4ad75330aa3f825d4d9"; // "nap"
const UNTIL: &str = "b310f4d4d89b8570184b9777ad7d90fc1df20457"; // "until"
const WAIT: &str = "70deb255f3eae33fa42d8fc0164f19abb33197db"; // "wait-approve"
const CALL_CHILD: &str = "93f72581df96e9a8f01f1481b3570b4e9370a0a6"; // "call-child"
const FLAKY: &str = "0612bcf5b16a1ec368ef4ebb92d6be2f7040260b"; // "flaky"
const FATAL: &str = "b9a3a6db7a4012b1d0912d070d9a0361811db3bf"; // "fatal"
const LATER: &str = "3f14ecc8cc777b55f1f51ad82992e4c80a4b4c8f"; // "later"
const COMPLETE: &str = "0737c22d3bfae812339732d14d8c7dbd6dc4e09c"; // sha1("complete")

/// JS v4 `two-steps.01`: the first `step.run`, executed during discovery.
fn js_step_run_first() -> Value {
    json!({"id": FIRST, "op": "StepRun", "name": "first", "opts": {}, "displayName": "first",
           "userland": {"id": "first"}, "data": {"n": 1, "from": "fixture"}, "timing": {"a": 1795709491884000000u64, "b": 0}})
}

/// Python `two-steps.01`: the same step; Python sends `opts: null` and `userland.index: null`.
fn py_step_run_first() -> Value {
    json!({"displayName": "first", "id": FIRST, "name": "first", "op": "StepRun", "opts": null,
           "userland": {"id": "first", "index": null}, "data": {"n": 1, "from": "fixture"}})
}

/// JS `parallel.01`: a planned branch of `Promise.all`.
fn js_planned(id: &str, name: &str) -> Value {
    json!({"displayName": name, "op": "StepPlanned", "id": id, "name": name, "opts": {}, "userland": {"id": name}, "data": null})
}

/// Python `parallel.01`: a planned branch of `ctx.group.parallel`.
fn py_planned(id: &str, name: &str) -> Value {
    json!({"displayName": name, "id": id, "name": name, "op": "StepPlanned", "opts": null, "userland": {"id": name, "index": null}, "data": null})
}

/// JS `parallel.02`: a planned branch, run by its own `stepId=<hash>` call.
fn js_ran(id: &str, name: &str, data: Value) -> Value {
    json!({"id": id, "op": "StepRun", "name": name, "opts": {}, "displayName": name, "userland": {"id": name}, "data": data,
           "timing": {"a": 1795709492002000000u64, "b": 0}})
}

/// Python `parallel.02`.
fn py_ran(id: &str, name: &str, data: Value) -> Value {
    json!({"displayName": name, "id": id, "name": name, "op": "StepRun", "opts": null, "userland": {"id": name, "index": null}, "data": data})
}

/// JS v4 `step-error.01`: the error body of a step that threw.
fn js_step_error_body() -> Value {
    json!({"name": "Error", "message": "step boom", "stack": "Error: step boom\n    at <capture>/apps/js-app.cjs:79:13", "__serialized": true})
}

/// JS v4 `step-error.01`: a retriable step error.
fn js_step_error() -> Value {
    json!({"id": FLAKY, "op": "StepError", "name": "flaky", "opts": {}, "displayName": "flaky", "userland": {"id": "flaky"},
           "error": js_step_error_body(), "timing": {"a": 1795709492590000000u64, "b": 0}, "data": null})
}

/// Python `step-error.01`: the same, Python-shaped (`code`, traceback stack).
fn py_step_error_body() -> Value {
    json!({"code": "unknown", "message": "step boom", "name": "Exception",
           "stack": "Traceback (most recent call last):\n  File \"<capture>/apps/py_app.py\", line 85, in boom\n    raise Exception(\"step boom\")\nException: step boom\n"})
}

fn py_step_error() -> Value {
    json!({"displayName": "flaky", "id": FLAKY, "name": "flaky", "op": "StepError", "opts": null,
           "userland": {"id": "flaky", "index": null}, "error": py_step_error_body(), "data": null})
}

/// JS v4 `step-nonretriable.01`: a step that threw `NonRetriableError` (with No-Retry: true).
fn js_nonretriable_body() -> Value {
    json!({"name": "NonRetriableError", "message": "step fatal", "stack": "NonRetriableError: step fatal\n    at <capture>/apps/js-app.cjs:86:13", "__serialized": true})
}

fn js_step_failed_fatal() -> Value {
    json!({"id": FATAL, "op": "StepFailed", "name": "fatal", "opts": {}, "displayName": "fatal", "userland": {"id": "fatal"},
           "error": js_nonretriable_body(), "timing": {"a": 1795709492682000000u64, "b": 0},
           "data": {"__serialized": true, "name": "NonRetriableError", "message": "step fatal", "stack": ""}})
}

/// JS v4 `fn-error.01`: a function-level error body.
fn js_fn_error() -> Value {
    json!({"name": "Error", "message": "function boom", "stack": "Error: function boom\n    at InngestExecutionEngine.userFnToRun (<capture>/apps/js-app.cjs:92:11)", "__serialized": true})
}

/// Python `fn-error.01` / `fn-nonretriable.01` bodies.
fn py_fn_error() -> Value {
    json!({"code": "unknown", "message": "function boom", "name": "Exception", "stack": "Traceback (most recent call last):\nException: function boom\n"})
}

fn py_fn_nonretriable() -> Value {
    json!({"code": "non_retriable_error", "message": "function fatal", "name": "NonRetriableError",
           "stack": "Traceback (most recent call last):\ninngest._internal.errors.NonRetriableError: function fatal\n"})
}

/// JS `sleeps.01`: `step.sleep("nap", "2s")`, the duration in `name`.
fn js_sleep(id: &str, display: &str, name: &str) -> Value {
    json!({"displayName": display, "op": "Sleep", "id": id, "name": name, "opts": {}, "userland": {"id": display}, "data": null})
}

/// Python `sleeps.01`: Python always sends the wake-up time in `name`.
fn py_sleep(id: &str, display: &str, name: &str) -> Value {
    json!({"displayName": display, "id": id, "name": name, "op": "Sleep", "opts": null, "userland": {"id": display, "index": null}, "data": null})
}

/// JS v4 `wait-matched.01`.
fn js_wait() -> Value {
    json!({"displayName": "wait-approve", "op": "WaitForEvent", "id": WAIT, "name": "test/approve",
           "opts": {"timeout": "1h", "if": "async.data.id == event.data.id"}, "userland": {"id": "wait-approve"}, "data": null})
}

/// Python `wait-matched.01`.
fn py_wait() -> Value {
    json!({"displayName": "wait-approve", "id": WAIT, "name": "test/approve", "op": "WaitForEvent",
           "opts": {"if": "async.data.id == event.data.id", "timeout": "1h"}, "userland": {"id": "wait-approve", "index": null}, "data": null})
}

/// The event that resumed the wait in `wait-matched.02` (the memo the SDK then received).
fn approve_event() -> Value {
    json!({"data": {"id": "42"}, "id": "evt-approve", "name": "test/approve", "ts": 1795700001000u64, "user": {}})
}

/// JS v4 `invoker.01`: no `name`, no timeout.
fn js_invoke() -> Value {
    json!({"displayName": "call-child", "op": "InvokeFunction", "id": CALL_CHILD,
           "opts": {"payload": {"data": {"x": 1}}, "function_id": "js-v4-child"}, "userland": {"id": "call-child"}, "data": null})
}

/// Python `invoker.01`: `timeout: null`, `payload.v: null`.
fn py_invoke() -> Value {
    json!({"displayName": "call-child", "id": CALL_CHILD, "name": "call-child", "op": "InvokeFunction",
           "opts": {"function_id": "py-child", "payload": {"data": {"x": 1}, "v": null}, "timeout": null},
           "userland": {"id": "call-child", "index": null}, "data": null})
}

/// JS v4 checkpoint `two-steps`: the final `206 [RunComplete]`.
fn js_run_complete() -> Value {
    json!({"op": "RunComplete", "id": COMPLETE, "data": {"a": {"n": 1, "from": "fixture"}, "b": "second saw 1"}})
}

// ---------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------

fn run(max_attempts: u32) -> RunState {
    let id = RunId::parse("01JDQ8Z6V7C2K3M4N5P6Q7R8S9").expect("a valid ULID");
    RunState::new(id, FunctionSlug("app-fn".into()), max_attempts)
}

/// A running run at request version `v` (as after the SDK's first reply).
fn run_v(max_attempts: u32, version: i32) -> RunState {
    RunState { version, ..run(max_attempts) }
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn parse_ops(body: Value) -> Vec<Op> {
    serde_json::from_value::<Vec<Op>>(body).expect("ops parse")
}

fn ops(body: Value) -> Reply {
    Reply::Ops(parse_ops(body))
}

fn reply(target: CallTarget, attempt: u32, reply: Reply, meta: ReplyMeta) -> Input {
    Input::Reply { target, attempt, reply, meta, gateway: vec![] }
}

/// Discovery, attempt 0, replying with `body` (a JSON array of ops).
fn discovered(body: Value, meta: ReplyMeta) -> Input {
    reply(CallTarget::Discovery, 0, ops(body), meta)
}

fn step(id: &str) -> CallTarget {
    CallTarget::Step(id.into())
}

fn meta() -> ReplyMeta {
    ReplyMeta::default()
}

fn v(version: i32) -> ReplyMeta {
    ReplyMeta { version: Some(version), ..ReplyMeta::default() }
}

fn no_retry(flag: bool) -> ReplyMeta {
    ReplyMeta { no_retry: Some(flag), version: Some(2), ..ReplyMeta::default() }
}

fn retry_after(d: Duration) -> ReplyMeta {
    ReplyMeta { no_retry: Some(false), version: Some(2), retry_after: Some(d) }
}

fn fixed(ms: u64) -> Policy {
    Policy { retry: RetryPolicy::Fixed(Duration::from_millis(ms)), jitter_ms: 0 }
}

fn table(jitter_ms: u64) -> Policy {
    Policy { retry: RetryPolicy::Table, jitter_ms }
}

/// The policy `ingot dev --retry-interval 1` uses.
const FIXED_1S: Policy = Policy { retry: RetryPolicy::Fixed(Duration::from_secs(1)), jitter_ms: 0 };

fn save(step: &str, name: &str, memo: Value) -> Effect {
    Effect::SaveStep { step: step.into(), name: name.into(), memo }
}

fn call(target: CallTarget, attempt: u32, at_ms: i64) -> Effect {
    Effect::Call { target, attempt, at_ms }
}

fn discovery() -> Effect {
    call(CallTarget::Discovery, 0, ASAP)
}

fn finish(status: RunStatus, output: Value) -> Effect {
    Effect::Finish { status, output }
}

fn failed(output: Value) -> Effect {
    finish(RunStatus::Failed, output)
}

const SECS: i64 = 1_000;
const HOURS: i64 = 3_600 * SECS;

// ---------------------------------------------------------------------------
// The one assertion everything goes through
// ---------------------------------------------------------------------------

/// Decides `input` for `run` at `NOW` and checks the effects and the whole
/// next state, which must equal `run` changed by `edit`.
#[track_caller]
fn assert_decision(
    case: &str,
    run: &RunState,
    input: Input,
    policy: Policy,
    effects: Vec<Effect>,
    edit: impl FnOnce(&mut RunState),
) -> RunState {
    let got = decide(run, input, NOW, policy);
    let mut want = run.clone();
    edit(&mut want);
    // The state grows by exactly the memos the decision saves.
    let saved: usize = effects.iter().map(|e| if let Effect::SaveStep { memo, .. } = e { memo.to_string().len() } else { 0 }).sum();
    want.state_bytes = run.state_bytes + saved as u64;
    assert_eq!(got.effects, effects, "case {case:?}: effects");
    assert_eq!(got.state, want, "case {case:?}: next state");
    got.state
}

// ---------------------------------------------------------------------------
// Step results: StepRun, legacy Step, StepFailed, duplicates
// ---------------------------------------------------------------------------

/// (case, call target, attempt, reply headers, 206 body, effects, memoized after)
type StepResultCase = (&'static str, CallTarget, u32, ReplyMeta, Value, Vec<Effect>, &'static [&'static str]);

/// A reply carrying `body` to a call on a fresh run (max 5 attempts).
#[track_caller]
fn check_step_result(case: &str, target: CallTarget, attempt: u32, meta: ReplyMeta, body: Value, effects: Vec<Effect>, done: &[&str]) {
    let r = run(5);
    let version = meta.version;
    assert_decision(case, &r, reply(target, attempt, ops(body), meta), FIXED_1S, effects, |s| {
        s.done = set(done);
        if let Some(v) = version {
            s.version = v;
        }
    });
}

#[test]
fn step_results_are_memoized_and_followed_by_discovery() {
    let first_memo = json!({"data": {"n": 1, "from": "fixture"}});
    #[rustfmt::skip]
    let cases: Vec<StepResultCase> = vec![
        ("JS v4 StepRun during discovery", CallTarget::Discovery, 0, v(2), json!([js_step_run_first()]),
            vec![save(FIRST, "first", first_memo.clone()), discovery()], &[FIRST]),
        ("Python StepRun (opts null)", CallTarget::Discovery, 0, v(2), json!([py_step_run_first()]),
            vec![save(FIRST, "first", first_memo.clone()), discovery()], &[FIRST]),
        ("JS v3 StepRun, version 1", CallTarget::Discovery, 0, v(1), json!([js_step_run_first()]),
            vec![save(FIRST, "first", first_memo.clone()), discovery()], &[FIRST]),
        ("the discovery after a retried attempt starts again at attempt 0", CallTarget::Discovery, 3, v(2), json!([js_step_run_first()]),
            vec![save(FIRST, "first", first_memo.clone()), discovery()], &[FIRST]),
        ("a planned step's own call (stepId=<hash>)", step(FIRST), 2, v(1), json!([js_step_run_first()]),
            vec![save(FIRST, "first", first_memo.clone()), discovery()], &[FIRST]),
        ("StepRun without data memoizes data null", CallTarget::Discovery, 0, meta(), json!([{"id": "h1", "op": "StepRun", "name": "n"}]),
            vec![save("h1", "n", json!({"data": null})), discovery()], &["h1"]),
        ("StepRun with data null", CallTarget::Discovery, 0, meta(), json!([{"id": "h1", "op": "StepRun", "name": "n", "data": null}]),
            vec![save("h1", "n", json!({"data": null})), discovery()], &["h1"]),
        ("StepRun with a scalar result", CallTarget::Discovery, 0, meta(), json!([{"id": "h1", "op": "StepRun", "displayName": "d", "data": "A"}]),
            vec![save("h1", "d", json!({"data": "A"})), discovery()], &["h1"]),
        ("StepRun whose result looks like a memo is still wrapped", CallTarget::Discovery, 0, meta(),
            json!([{"id": "h1", "op": "StepRun", "displayName": "d", "data": {"error": {"name": "E"}}}]),
            vec![save("h1", "d", json!({"data": {"error": {"name": "E"}}})), discovery()], &["h1"]),
        ("legacy Step saves its data unwrapped", CallTarget::Discovery, 0, meta(), json!([{"id": "h1", "op": "Step", "name": "old", "data": {"n": 1}}]),
            vec![save("h1", "old", json!({"n": 1})), discovery()], &["h1"]),
        ("legacy Step without data saves null", CallTarget::Discovery, 0, meta(), json!([{"id": "h1", "op": "Step", "name": "old"}]),
            vec![save("h1", "old", Value::Null), discovery()], &["h1"]),
        ("JS v4 StepFailed (NonRetriableError) saves the error", CallTarget::Discovery, 0, no_retry(true), json!([js_step_failed_fatal()]),
            vec![save(FATAL, "fatal", json!({"error": js_nonretriable_body()})), discovery()], &[FATAL]),
        ("Python StepFailed on the last attempt", CallTarget::Discovery, 2, v(2),
            json!([{"displayName": "flaky", "id": FLAKY, "name": "flaky", "op": "StepFailed", "opts": null,
                    "userland": {"id": "flaky", "index": null}, "error": py_step_error_body(), "data": null}]),
            vec![save(FLAKY, "flaky", json!({"error": py_step_error_body()})), discovery()], &[FLAKY]),
        ("StepFailed with only data uses data as the error", CallTarget::Discovery, 0, meta(),
            json!([{"id": "h1", "op": "StepFailed", "name": "n", "data": {"name": "E", "message": "m"}}]),
            vec![save("h1", "n", json!({"error": {"name": "E", "message": "m"}})), discovery()], &["h1"]),
        ("StepFailed with neither gets a generic error", CallTarget::Discovery, 0, meta(), json!([{"id": "h1", "op": "StepFailed", "name": "n"}]),
            vec![save("h1", "n", json!({"error": {"name": "Error", "message": "step failed"}})), discovery()], &["h1"]),
        ("an empty 206 with nothing pending is retried: the run needs a way forward", CallTarget::Discovery, 0, v(2), json!([]), vec![call(CallTarget::Discovery, 1, NOW + 1_000)], &[]),
    ];
    for (case, target, attempt, meta, body, effects, done) in cases {
        check_step_result(case, target, attempt, meta, body, effects, done);
    }
}

#[test]
fn step_names_fall_back_from_display_name_to_user_id_to_name_to_hash() {
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, &str)> = vec![
        ("displayName wins", json!({"id": "h1", "op": "StepRun", "displayName": "Shown", "userland": {"id": "u"}, "name": "n"}), "Shown"),
        ("empty displayName is skipped", json!({"id": "h1", "op": "StepRun", "displayName": "", "userland": {"id": "u"}, "name": "n"}), "u"),
        ("then the user's id", json!({"id": "h1", "op": "StepRun", "userland": {"id": "u"}, "name": "n"}), "u"),
        ("then name", json!({"id": "h1", "op": "StepRun", "name": "n"}), "n"),
        ("then the hash", json!({"id": "h1", "op": "StepRun"}), "h1"),
    ];
    for (case, op, name) in cases {
        check_step_result(
            case,
            CallTarget::Discovery,
            0,
            meta(),
            json!([op]),
            vec![save("h1", name, json!({"data": null})), discovery()],
            &["h1"],
        );
    }
}

#[test]
fn oversized_step_output_is_saved_as_an_error() {
    // The limit applies to the serialized result: a string of N chars is N+2 bytes.
    let fits = "x".repeat(MAX_STEP_OUTPUT_BYTES - 2);
    let over = "x".repeat(MAX_STEP_OUTPUT_BYTES - 1);
    let too_large = json!({"error": {"name": "OutputTooLargeError",
        "message": format!("step output is {} bytes, over the limit of {MAX_STEP_OUTPUT_BYTES}", MAX_STEP_OUTPUT_BYTES + 1)}});
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, Value)> = vec![
        ("exactly at the limit", json!([{"id": "big", "op": "StepRun", "name": "big", "data": fits}]), json!({"data": fits})),
        ("one byte over, StepRun", json!([{"id": "big", "op": "StepRun", "name": "big", "data": over}]), too_large.clone()),
        ("one byte over, legacy Step", json!([{"id": "big", "op": "Step", "name": "big", "data": over}]), too_large.clone()),
    ];
    for (case, body, memo) in cases {
        check_step_result(case, CallTarget::Discovery, 0, meta(), body, vec![save("big", "big", memo), discovery()], &["big"]);
    }
}

/// A run where `FIRST` is already memoized gets `body` again: nothing is saved,
/// and since nothing else moves the run on, the call is retried.
#[track_caller]
fn check_duplicate(case: &str, body: Value) {
    let r = RunState { done: set(&[FIRST]), ..run_v(3, 2) };
    assert_decision(case, &r, discovered(body, v(2)), FIXED_1S, vec![call(CallTarget::Discovery, 1, NOW + 1_000)], |_| {});
}

#[test]
fn reports_for_an_already_memoized_step_are_ignored() {
    let dup = |op: &str, extra: Value| {
        let mut o = json!({"id": FIRST, "op": op, "name": "first"});
        o.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!([o])
    };
    #[rustfmt::skip]
    let cases: Vec<(&str, Value)> = vec![
        ("a StepFailed", dup("StepFailed", json!({"error": {"name": "E"}}))),
        ("a StepError with attempts left", dup("StepError", json!({"error": {"name": "E"}}))),
        ("a StepPlanned", dup("StepPlanned", json!({}))),
        ("a Sleep", dup("Sleep", json!({"name": "1s"}))),
        ("a WaitForEvent", dup("WaitForEvent", json!({"opts": {"timeout": "1h"}}))),
        ("an InvokeFunction", dup("InvokeFunction", json!({"opts": {"function_id": "x"}}))),
    ];
    for (case, body) in cases {
        check_duplicate(case, body);
    }
    // A repeated result (a step checkpointed during the call and reported again) is not
    // saved twice, but the run still gets its next call: it is never left without a way forward.
    let r = RunState { done: set(&[FIRST]), ..run_v(3, 2) };
    #[rustfmt::skip]
    let repeats: Vec<(&str, Value)> = vec![
        ("a duplicate StepRun", json!([js_step_run_first()])),
        ("a duplicate StepRun with other data", dup("StepRun", json!({"data": "different"}))),
        ("a legacy Step", dup("Step", json!({"data": 1}))),
    ];
    for (case, body) in repeats {
        assert_decision(case, &r, discovered(body, v(2)), FIXED_1S, vec![call(CallTarget::Discovery, 1, ASAP)], |_| {});
    }
}

// ---------------------------------------------------------------------------
// Completion: 200, RunComplete, Cancel
// ---------------------------------------------------------------------------

#[track_caller]
fn check_finish(case: &str, run: RunState, input: Input, effects: Vec<Effect>, edit: impl FnOnce(&mut RunState)) {
    assert_decision(case, &run, input, FIXED_1S, effects, edit);
}

#[test]
fn runs_complete_on_200_and_on_run_complete() {
    let child = json!({"child": true, "got": {"x": 1}});
    let done = |o: Value| finish(RunStatus::Completed, o);
    let complete = |s: &mut RunState| {
        s.status = RunStatus::Completed;
        s.version = 2;
    };
    check_finish(
        "200 with the function's value",
        run(5),
        reply(CallTarget::Discovery, 0, Reply::Done(child.clone()), v(2)),
        vec![done(child.clone())],
        complete,
    );
    check_finish(
        "200 null (undefined)",
        run(5),
        reply(CallTarget::Discovery, 0, Reply::Done(Value::Null), v(2)),
        vec![done(Value::Null)],
        complete,
    );
    check_finish(
        "200 on a later attempt",
        run(5),
        reply(CallTarget::Discovery, 3, Reply::Done(json!(7)), v(2)),
        vec![done(json!(7))],
        complete,
    );
    check_finish(
        "206 [RunComplete] (JS v4 checkpointing), data raw",
        run(5),
        discovered(json!([js_run_complete()]), v(2)),
        vec![done(json!({"a": {"n": 1, "from": "fixture"}, "b": "second saw 1"}))],
        complete,
    );
    check_finish(
        "RunComplete without data",
        run(5),
        discovered(json!([{"op": "RunComplete", "id": COMPLETE}]), v(2)),
        vec![done(Value::Null)],
        complete,
    );
    check_finish(
        "buffered steps before RunComplete are saved, no discovery follows",
        run(5),
        discovered(json!([js_step_run_first(), js_run_complete()]), v(2)),
        vec![
            save(FIRST, "first", json!({"data": {"n": 1, "from": "fixture"}})),
            done(json!({"a": {"n": 1, "from": "fixture"}, "b": "second saw 1"})),
        ],
        |s| {
            complete(s);
            s.done = set(&[FIRST]);
        },
    );
    check_finish(
        "ops after RunComplete are not applied",
        run(5),
        discovered(json!([{"op": "RunComplete", "id": COMPLETE, "data": 1}, js_step_run_first()]), v(2)),
        vec![done(json!(1))],
        complete,
    );
    check_finish(
        "200 while parallel siblings are pending still completes",
        RunState { pending: set(&[PAR_B]), planned: set(&[PAR_A, PAR_B]), force_plan: true, ..run_v(5, 2) },
        reply(step(PAR_A), 0, Reply::Done(json!("x")), v(2)),
        vec![done(json!("x"))],
        |s| s.status = RunStatus::Completed,
    );
}

#[test]
fn cancel_finishes_the_run_cancelled() {
    let cancelled = vec![finish(RunStatus::Cancelled, Value::Null)];
    check_finish("a fresh run", run(5), Input::Cancel, cancelled.clone(), |s| s.status = RunStatus::Cancelled);
    check_finish(
        "a run with a sleep and a wait pending",
        RunState { pending: set(&[NAP, WAIT]), done: set(&[FIRST]), ..run_v(5, 2) },
        Input::Cancel,
        cancelled,
        |s| s.status = RunStatus::Cancelled,
    );
}

/// Every input to a run in `status` is a no-op: no effects, the state as it was.
#[track_caller]
fn check_terminal(status: RunStatus) {
    let r = RunState { status, pending: set(&[NAP]), ..run_v(3, 2) };
    #[rustfmt::skip]
    let inputs: Vec<(&str, Input)> = vec![
        ("200", reply(CallTarget::Discovery, 0, Reply::Done(json!(1)), v(1))),
        ("StepRun", discovered(json!([js_step_run_first()]), v(1))),
        ("StepPlanned", discovered(json!([js_planned(PAR_A, "par-a"), js_planned(PAR_B, "par-b")]), v(1))),
        ("StepError", discovered(json!([js_step_error()]), v(1))),
        ("Sleep", discovered(json!([js_sleep(UNTIL, "until", "1h")]), v(1))),
        ("RunComplete", discovered(json!([js_run_complete()]), v(1))),
        ("DiscoveryRequest", discovered(json!([{"id": "x", "op": "DiscoveryRequest"}]), v(1))),
        ("function error", reply(CallTarget::Discovery, 0, Reply::Error { status: 500, error: js_fn_error() }, no_retry(false))),
        ("invalid reply", reply(CallTarget::Discovery, 0, Reply::Invalid("nope".into()), meta())),
        ("sleep done", Input::SleepDone { step: NAP.into() }),
        ("wait resolved", Input::WaitResolved { step: NAP.into(), event: Some(approve_event()) }),
        ("wait timed out", Input::WaitResolved { step: NAP.into(), event: None }),
        ("invoke finished", Input::InvokeResolved { step: NAP.into(), result: Ok(json!(1)) }),
        ("invoke failed", Input::InvokeResolved { step: NAP.into(), result: Err(invoke_timed_out()) }),
        ("cancel", Input::Cancel),
    ];
    for (case, input) in inputs {
        assert_decision(&format!("{status:?} run, {case}"), &r, input, FIXED_1S, vec![], |_| {});
    }
}

#[test]
fn a_finished_run_ignores_every_input() {
    for status in [RunStatus::Completed, RunStatus::Failed, RunStatus::Cancelled] {
        check_terminal(status);
    }
}

// ---------------------------------------------------------------------------
// Step-level retries: StepError
// ---------------------------------------------------------------------------

/// A `StepError` for `flaky` (JS v4 shape unless `body` says otherwise) on a
/// run with `max_attempts`: either a retry `Call`, or the error memoized.
#[track_caller]
fn check_step_error((case, max_attempts, target, attempt, meta, policy, body, want): StepErrorCase) {
    let r = run(max_attempts);
    let effects = match &want {
        Retried::At(at_ms) => vec![call(target.clone(), attempt + 1, *at_ms)],
        Retried::No(memo) => vec![save(FLAKY, "flaky", memo.clone()), discovery()],
    };
    assert_decision(case, &r, reply(target, attempt, ops(body), meta), policy, effects, |s| {
        s.version = 2;
        if let Retried::No(_) = want {
            s.done = set(&[FLAKY]);
        }
    });
}

/// (case, max_attempts, call target, attempt, reply headers, policy, 206 body, outcome)
type StepErrorCase = (&'static str, u32, CallTarget, u32, ReplyMeta, Policy, Value, Retried);

enum Retried {
    /// The same request again, one attempt later, at this time.
    At(i64),
    /// No retry: this memo is saved.
    No(Value),
}

#[test]
fn step_errors_retry_the_same_request_until_the_last_attempt() {
    let js = || json!([js_step_error()]);
    let saved = || Retried::No(json!({"error": js_step_error_body()}));
    let nr = || no_retry(false);
    #[rustfmt::skip]
    let cases: Vec<StepErrorCase> = vec![
        // Fixed interval (`--retry-interval`).
        ("fixed 1s, attempt 0 of 3", 3, CallTarget::Discovery, 0, nr(), FIXED_1S, js(), Retried::At(NOW + SECS)),
        ("fixed 1s, attempt 1 of 3", 3, CallTarget::Discovery, 1, nr(), FIXED_1S, js(), Retried::At(NOW + SECS)),
        ("fixed 250ms", 3, CallTarget::Discovery, 0, nr(), fixed(250), js(), Retried::At(NOW + 250)),
        ("fixed interval ignores jitter", 3, CallTarget::Discovery, 0, nr(), Policy { jitter_ms: 9_999, ..FIXED_1S }, js(), Retried::At(NOW + SECS)),
        ("No-Retry header absent (Python) still retries", 3, CallTarget::Discovery, 0, v(2), FIXED_1S, json!([py_step_error()]), Retried::At(NOW + SECS)),
        ("a planned step retries its own stepId", 3, step(FLAKY), 0, nr(), FIXED_1S, js(), Retried::At(NOW + SECS)),
        ("a planned step's second retry", 3, step(FLAKY), 1, nr(), FIXED_1S, js(), Retried::At(NOW + SECS)),
        // Inngest's table: 15s, 30s, 1m, 2m, 5m, ... 2h, plus jitter.
        ("table, attempt 0, no jitter", 5, CallTarget::Discovery, 0, nr(), table(0), js(), Retried::At(NOW + 15 * SECS)),
        ("table, attempt 0, with jitter", 5, CallTarget::Discovery, 0, nr(), table(12_345), js(), Retried::At(NOW + 15 * SECS + 12_345)),
        ("table, attempt 1", 5, CallTarget::Discovery, 1, nr(), table(0), js(), Retried::At(NOW + 30 * SECS)),
        ("table, attempt 3, with jitter", 5, CallTarget::Discovery, 3, nr(), table(30_000), js(), Retried::At(NOW + 120 * SECS + 30_000)),
        ("table, attempt 9 reaches 2h", 20, CallTarget::Discovery, 9, nr(), table(1), js(), Retried::At(NOW + 2 * HOURS + 1)),
        ("table, attempt 15 stays at 2h", 20, CallTarget::Discovery, 15, nr(), table(0), js(), Retried::At(NOW + 2 * HOURS)),
        // Retry-After (RetryAfterError: `Retry-After: 30` on the 206).
        ("Retry-After beats the fixed interval", 3, CallTarget::Discovery, 0, retry_after(Duration::from_secs(30)), FIXED_1S,
            json!([{"id": FLAKY, "op": "StepError", "displayName": "flaky", "error": {"name": "RetryAfterError", "message": "come back later"}}]),
            Retried::At(NOW + 30 * SECS)),
        ("Retry-After beats the table and its jitter", 5, CallTarget::Discovery, 0, retry_after(Duration::from_secs(30)), table(29_000), js(),
            Retried::At(NOW + 30 * SECS)),
        ("Retry-After below 1s is raised to 1s", 3, CallTarget::Discovery, 0, retry_after(Duration::ZERO), fixed(5_000), js(), Retried::At(NOW + SECS)),
        ("Retry-After above 24h is capped at 24h", 3, CallTarget::Discovery, 0, retry_after(Duration::from_secs(48 * 3600)), FIXED_1S, js(),
            Retried::At(NOW + 24 * HOURS)),
        // No attempts left, or told not to retry: the error becomes the step's result.
        ("the last attempt saves the error", 3, CallTarget::Discovery, 2, nr(), FIXED_1S, js(), saved()),
        ("an attempt past the last saves the error", 3, CallTarget::Discovery, 7, nr(), FIXED_1S, js(), saved()),
        ("max_attempts 1 never retries", 1, CallTarget::Discovery, 0, nr(), FIXED_1S, js(), saved()),
        ("No-Retry: true saves at once", 5, CallTarget::Discovery, 0, no_retry(true), FIXED_1S, js(), saved()),
        ("Retry-After on the last attempt does not retry", 3, CallTarget::Discovery, 2, retry_after(Duration::from_secs(30)), FIXED_1S, js(), saved()),
        ("a planned step's last attempt", 3, step(FLAKY), 2, nr(), FIXED_1S, js(), saved()),
        ("Python error body on the last attempt", 3, CallTarget::Discovery, 2, v(2), FIXED_1S, json!([py_step_error()]),
            Retried::No(json!({"error": py_step_error_body()}))),
        ("a StepError without an error body", 1, CallTarget::Discovery, 0, v(2), FIXED_1S,
            json!([{"id": FLAKY, "op": "StepError", "displayName": "flaky"}]),
            Retried::No(json!({"error": {"name": "Error", "message": "step errored"}}))),
    ];
    for case in cases {
        check_step_error(case);
    }
}

#[test]
fn js_v4_step_error_walk_matches_the_fixture() {
    // step-error (retries: 2): StepError, StepError, StepFailed, then the
    // memoized error is rethrown and the function fails non-retriably.
    let mut r = run(3);
    let failed_op = json!([{"id": FLAKY, "op": "StepFailed", "name": "flaky", "opts": {}, "displayName": "flaky", "userland": {"id": "flaky"},
                           "error": js_step_error_body(), "data": {"__serialized": true, "name": "Error", "message": "step boom", "stack": ""}}]);
    r = assert_decision(
        "01 discovery: StepError",
        &r,
        discovered(json!([js_step_error()]), no_retry(false)),
        FIXED_1S,
        vec![call(CallTarget::Discovery, 1, NOW + SECS)],
        |s| s.version = 2,
    );
    r = assert_decision(
        "02 attempt 1: StepError",
        &r,
        reply(CallTarget::Discovery, 1, ops(json!([js_step_error()])), no_retry(false)),
        FIXED_1S,
        vec![call(CallTarget::Discovery, 2, NOW + SECS)],
        |_| {},
    );
    r = assert_decision(
        "03 attempt 2: StepFailed",
        &r,
        reply(CallTarget::Discovery, 2, ops(failed_op), no_retry(true)),
        FIXED_1S,
        vec![save(FLAKY, "flaky", json!({"error": js_step_error_body()})), discovery()],
        |s| s.done = set(&[FLAKY]),
    );
    let rethrown = json!({"name": "Error", "message": "step boom", "stack": "", "__serialized": true});
    assert_decision(
        "04 discovery: the rethrown error fails the run",
        &r,
        reply(CallTarget::Discovery, 0, Reply::Error { status: 400, error: rethrown.clone() }, no_retry(true)),
        FIXED_1S,
        vec![failed(rethrown)],
        |s| s.status = RunStatus::Failed,
    );
}

// ---------------------------------------------------------------------------
// Function-level errors and unreadable replies
// ---------------------------------------------------------------------------

/// A failed call (error status or invalid reply) on a run with `max_attempts`:
/// a retry of the same request, or the run failed with `Failed(output)`.
#[track_caller]
fn check_call_error((case, max_attempts, target, attempt, reply_, meta, policy, want): CallErrorCase) {
    let r = run(max_attempts);
    let version = meta.version;
    let effects = match &want {
        Outcome::Retry(at_ms) => vec![call(target.clone(), attempt + 1, *at_ms)],
        Outcome::Failed(output) => vec![failed(output.clone())],
    };
    assert_decision(case, &r, reply(target, attempt, reply_, meta), policy, effects, |s| {
        if let Some(v) = version {
            s.version = v;
        }
        if let Outcome::Failed(_) = want {
            s.status = RunStatus::Failed;
        }
    });
}

/// (case, max_attempts, call target, attempt, reply, reply headers, policy, outcome)
type CallErrorCase = (&'static str, u32, CallTarget, u32, Reply, ReplyMeta, Policy, Outcome);

enum Outcome {
    Retry(i64),
    Failed(Value),
}

#[test]
fn function_errors_retry_the_request_then_fail_the_run() {
    let err = |status: u16, error: Value| Reply::Error { status, error };
    let js = || err(500, js_fn_error());
    let d = || CallTarget::Discovery;
    let nr = || no_retry(false);
    let unauthorized = json!({"message": "Unauthorized"});
    let invalid = |reason: &str| Reply::Invalid(reason.into());
    let invalid_error = |reason: &str| json!({"name": "InvalidResponseError", "message": reason});
    let step_not_found = || ops(json!([{"id": PAR_A, "op": "StepNotFound"}]));
    let step_not_found_error = json!({"name": "StepNotFoundError", "message": format!("the SDK could not find step {PAR_A}")});
    #[rustfmt::skip]
    let cases: Vec<CallErrorCase> = vec![
        ("JS 500, attempt 0 of 5", 5, d(), 0, js(), nr(), FIXED_1S, Outcome::Retry(NOW + SECS)),
        ("JS 500, attempt 3 of 5", 5, d(), 3, js(), nr(), FIXED_1S, Outcome::Retry(NOW + SECS)),
        ("JS 500 on the last attempt fails with the error body", 5, d(), 4, js(), nr(), FIXED_1S, Outcome::Failed(js_fn_error())),
        ("JS v4 400 + No-Retry on the last attempt", 5, d(), 4, err(400, js_fn_error()), no_retry(true), FIXED_1S, Outcome::Failed(js_fn_error())),
        ("JS NonRetriableError: 400 + No-Retry at attempt 0", 5, d(), 0, err(400, js_fn_error()), no_retry(true), FIXED_1S, Outcome::Failed(js_fn_error())),
        ("Python 500 without No-Retry retries", 5, d(), 0, err(500, py_fn_error()), v(2), FIXED_1S, Outcome::Retry(NOW + SECS)),
        ("Python 500 + No-Retry fails at once", 5, d(), 0, err(500, py_fn_nonretriable()), no_retry(true), FIXED_1S, Outcome::Failed(py_fn_nonretriable())),
        ("Python 500 on the last attempt", 5, d(), 4, err(500, py_fn_error()), v(2), FIXED_1S, Outcome::Failed(py_fn_error())),
        ("401 Unauthorized retries", 5, d(), 0, err(401, unauthorized.clone()), meta(), FIXED_1S, Outcome::Retry(NOW + SECS)),
        ("401 on the last attempt fails", 2, d(), 1, err(401, unauthorized.clone()), meta(), FIXED_1S, Outcome::Failed(unauthorized.clone())),
        ("a 4xx without No-Retry retries", 5, d(), 0, err(404, json!({"message": "nope"})), meta(), FIXED_1S, Outcome::Retry(NOW + SECS)),
        ("table policy with jitter", 5, d(), 0, js(), nr(), table(7), Outcome::Retry(NOW + 15 * SECS + 7)),
        ("table policy, attempt 2", 5, d(), 2, js(), nr(), table(0), Outcome::Retry(NOW + 60 * SECS)),
        ("Retry-After (a date two hours out, as a delay)", 5, d(), 0, js(), retry_after(Duration::from_secs(7_200)), FIXED_1S, Outcome::Retry(NOW + 2 * HOURS)),
        ("Retry-After is clamped to 24h", 5, d(), 0, js(), retry_after(Duration::from_secs(1_000_000)), table(0), Outcome::Retry(NOW + 24 * HOURS)),
        ("No-Retry: false on the last attempt still fails", 3, d(), 2, js(), nr(), FIXED_1S, Outcome::Failed(js_fn_error())),
        ("max_attempts 1", 1, d(), 0, js(), nr(), FIXED_1S, Outcome::Failed(js_fn_error())),
        ("a planned step's call retries that step", 5, step(PAR_A), 0, js(), nr(), FIXED_1S, Outcome::Retry(NOW + SECS)),
        ("a planned step's call on its last attempt fails the run", 5, step(PAR_A), 4, js(), nr(), FIXED_1S, Outcome::Failed(js_fn_error())),
        // Not an SDK reply (no X-Inngest-SDK, unreadable body): retryable.
        ("an invalid reply retries", 5, d(), 0, invalid("response has no X-Inngest-SDK header"), meta(), FIXED_1S, Outcome::Retry(NOW + SECS)),
        ("an invalid reply honours Retry-After", 5, d(), 0, invalid("bad gateway"), retry_after(Duration::from_secs(5)), FIXED_1S, Outcome::Retry(NOW + 5 * SECS)),
        ("an invalid reply ignores No-Retry", 5, d(), 0, invalid("206 reply is not JSON"), no_retry(true), FIXED_1S, Outcome::Retry(NOW + SECS)),
        ("an invalid reply on the last attempt fails with a readable message", 5, d(), 4,
            invalid("response has no X-Inngest-SDK header"), meta(), FIXED_1S,
            Outcome::Failed(invalid_error("response has no X-Inngest-SDK header"))),
        // StepNotFound: the planned step vanished; retry the same request.
        ("StepNotFound retries the step's request", 5, step(PAR_A), 0, step_not_found(), v(2), FIXED_1S, Outcome::Retry(NOW + SECS)),
        ("StepNotFound on the last attempt fails", 5, step(PAR_A), 4, step_not_found(), v(2), FIXED_1S, Outcome::Failed(step_not_found_error)),
    ];
    for case in cases {
        check_call_error(case);
    }
}

#[test]
fn function_error_walk_retries_every_attempt_then_fails() {
    // fn-error (default retries: 5 attempts): 500 x4, then JS v4's 400 + No-Retry.
    let mut r = run(5);
    for attempt in 0..4 {
        r = assert_decision(
            &format!("attempt {attempt}"),
            &r,
            reply(CallTarget::Discovery, attempt, Reply::Error { status: 500, error: js_fn_error() }, no_retry(false)),
            FIXED_1S,
            vec![call(CallTarget::Discovery, attempt + 1, NOW + SECS)],
            |s| s.version = 2,
        );
    }
    assert_decision(
        "attempt 4",
        &r,
        reply(CallTarget::Discovery, 4, Reply::Error { status: 400, error: js_fn_error() }, no_retry(true)),
        FIXED_1S,
        vec![failed(js_fn_error())],
        |s| s.status = RunStatus::Failed,
    );
}

// ---------------------------------------------------------------------------
// Parallelism: StepPlanned, pending siblings, force-plan, V1 vs V2
// ---------------------------------------------------------------------------

/// One input of a parallel walk, with what it must produce and the
/// parallel bookkeeping afterwards.
struct Turn {
    label: &'static str,
    input: Input,
    effects: Vec<Effect>,
    force_plan: bool,
    pending: &'static [&'static str],
    done: &'static [&'static str],
}

/// Plays `turns` in order from `run`; every turn's effects and bookkeeping
/// must match, and `planned` must only ever grow.
#[track_caller]
fn check_parallel(walk: &str, mut run: RunState, turns: Vec<Turn>) -> RunState {
    for t in turns {
        let case = format!("{walk}: {}", t.label);
        let before = run.planned.clone();
        let got = decide(&run, t.input, NOW, FIXED_1S);
        assert_eq!(got.effects, t.effects, "{case}: effects");
        assert_eq!(got.state.force_plan, t.force_plan, "{case}: force_plan");
        assert_eq!(got.state.pending, set(t.pending), "{case}: pending");
        assert_eq!(got.state.done, set(t.done), "{case}: done");
        assert!(got.state.planned.is_superset(&before), "{case}: planned shrank");
        run = got.state;
    }
    run
}

fn turn(
    label: &'static str,
    input: Input,
    effects: Vec<Effect>,
    force_plan: bool,
    pending: &'static [&'static str],
    done: &'static [&'static str],
) -> Turn {
    Turn { label, input, effects, force_plan, pending, done }
}

/// The V2 walk (JS v4 and Python, `parallel.*`), with the SDK's op shapes.
fn v2_parallel_walk(walk: &str, planned: fn(&str, &str) -> Value, ran: fn(&str, &str, Value) -> Value) {
    let on_step = |id: &str, body: Value| reply(step(id), 0, ops(body), v(2));
    let end = check_parallel(
        walk,
        run(5),
        vec![
            turn(
                "discovery plans both branches",
                discovered(json!([planned(PAR_A, "par-a"), planned(PAR_B, "par-b")]), v(2)),
                vec![call(step(PAR_A), 0, NOW), call(step(PAR_B), 0, NOW)],
                true,
                &[PAR_A, PAR_B],
                &[],
            ),
            turn(
                "par-a finishes first: saved, no discovery",
                on_step(PAR_A, json!([ran(PAR_A, "par-a", json!("A"))])),
                vec![save(PAR_A, "par-a", json!({"data": "A"}))],
                true,
                &[PAR_B],
                &[PAR_A],
            ),
            turn(
                "par-b finishes last: one discovery, force-plan cleared",
                on_step(PAR_B, json!([ran(PAR_B, "par-b", json!("B"))])),
                vec![save(PAR_B, "par-b", json!({"data": "B"})), discovery()],
                false,
                &[],
                &[PAR_A, PAR_B],
            ),
            turn(
                "the discovery returns the value",
                reply(CallTarget::Discovery, 0, Reply::Done(json!(["A", "B"])), v(2)),
                vec![finish(RunStatus::Completed, json!(["A", "B"]))],
                false,
                &[],
                &[PAR_A, PAR_B],
            ),
        ],
    );
    assert_eq!(end.version, 2, "{walk}: version");
    assert_eq!(end.planned, set(&[PAR_A, PAR_B]), "{walk}: planned");
    assert_eq!(end.status, RunStatus::Completed, "{walk}: status");
}

#[test]
fn v2_parallel_steps_share_one_discovery() {
    v2_parallel_walk("JS v4", js_planned, js_ran);
    v2_parallel_walk("Python", py_planned, py_ran);
}

#[test]
fn v2_parallel_completion_order_and_failures_do_not_matter() {
    let on_step = |id: &str, attempt: u32, body: Value| reply(step(id), attempt, ops(body), v(2));
    let failed_b = json!([{"id": PAR_B, "op": "StepFailed", "displayName": "par-b", "error": {"name": "Error", "message": "b broke"}}]);
    let error_a = json!([{"id": PAR_A, "op": "StepError", "displayName": "par-a", "error": {"name": "Error", "message": "a flaked"}}]);
    check_parallel(
        "V2, b fails first, a retries once",
        run(3),
        vec![
            turn(
                "plan",
                discovered(json!([js_planned(PAR_A, "par-a"), js_planned(PAR_B, "par-b")]), v(2)),
                vec![call(step(PAR_A), 0, NOW), call(step(PAR_B), 0, NOW)],
                true,
                &[PAR_A, PAR_B],
                &[],
            ),
            turn(
                "par-b fails for good: saved as an error, a still pending",
                on_step(PAR_B, 0, failed_b),
                vec![save(PAR_B, "par-b", json!({"error": {"name": "Error", "message": "b broke"}}))],
                true,
                &[PAR_A],
                &[PAR_B],
            ),
            turn(
                "par-a errors: retried alone, still pending",
                on_step(PAR_A, 0, error_a.clone()),
                vec![call(step(PAR_A), 1, NOW + SECS)],
                true,
                &[PAR_A],
                &[PAR_B],
            ),
            turn(
                "par-a errors on its last attempt: saved, then the discovery",
                on_step(PAR_A, 2, error_a),
                vec![save(PAR_A, "par-a", json!({"error": {"name": "Error", "message": "a flaked"}})), discovery()],
                false,
                &[],
                &[PAR_A, PAR_B],
            ),
        ],
    );
}

#[test]
fn v1_parallel_steps_each_trigger_discovery_and_replans_are_ignored() {
    // JS v3 `parallel.*`: request version 1.
    let on_step = |id: &str, body: Value| reply(step(id), 0, ops(body), v(1));
    let end = check_parallel(
        "JS v3",
        run(5),
        vec![
            turn(
                "discovery plans both branches",
                discovered(json!([js_planned(PAR_A, "par-a"), js_planned(PAR_B, "par-b")]), v(1)),
                vec![call(step(PAR_A), 0, NOW), call(step(PAR_B), 0, NOW)],
                true,
                &[PAR_A, PAR_B],
                &[],
            ),
            turn(
                "par-a finishes: saved and a discovery at once",
                on_step(PAR_A, json!([js_ran(PAR_A, "par-a", json!("A"))])),
                vec![save(PAR_A, "par-a", json!({"data": "A"})), discovery()],
                true,
                &[PAR_B],
                &[PAR_A],
            ),
            turn(
                "that discovery re-reports par-b as planned: not called twice",
                discovered(json!([js_planned(PAR_B, "par-b")]), v(1)),
                vec![],
                true,
                &[PAR_B],
                &[PAR_A],
            ),
            turn(
                "par-b finishes: saved and a discovery, force-plan stays on",
                on_step(PAR_B, json!([js_ran(PAR_B, "par-b", json!("B"))])),
                vec![save(PAR_B, "par-b", json!({"data": "B"})), discovery()],
                true,
                &[],
                &[PAR_A, PAR_B],
            ),
            turn(
                "a late re-report of par-b (already done): nothing saved; with nothing pending the call is retried (a spare discovery is harmless)",
                discovered(json!([js_planned(PAR_B, "par-b")]), v(1)),
                vec![call(CallTarget::Discovery, 1, NOW + 1_000)],
                true,
                &[],
                &[PAR_A, PAR_B],
            ),
            turn(
                "the function returns",
                reply(CallTarget::Discovery, 0, Reply::Done(json!({"a": "A", "b": "B"})), v(1)),
                vec![finish(RunStatus::Completed, json!({"a": "A", "b": "B"}))],
                true,
                &[],
                &[PAR_A, PAR_B],
            ),
        ],
    );
    assert_eq!(end.version, 1);
}

/// (case, run before, discovery's 206 body, reply headers, effects, force_plan after)
type PlanCase = (&'static str, RunState, Value, ReplyMeta, Vec<Effect>, bool);

/// A single reply on a run in the given state: effects, and force-plan after.
#[track_caller]
fn check_plan(case: &str, run: RunState, body: Value, meta: ReplyMeta, effects: Vec<Effect>, force_plan: bool) {
    let got = decide(&run, discovered(body, meta), NOW, FIXED_1S);
    assert_eq!(got.effects, effects, "{case}: effects");
    assert_eq!(got.state.force_plan, force_plan, "{case}: force_plan");
}

#[test]
fn force_plan_is_set_when_a_reply_reports_more_than_one_step() {
    let a = || js_planned(PAR_A, "par-a");
    let b = || js_planned(PAR_B, "par-b");
    let plan_ab = || vec![call(step(PAR_A), 0, NOW), call(step(PAR_B), 0, NOW)];
    let nap = || js_sleep(NAP, "nap", "2s");
    let defer = || json!({"id": "d1", "op": "DeferAdd", "opts": {}});
    #[rustfmt::skip]
    let cases: Vec<PlanCase> = vec![
        ("one StepRun: immediate execution stays on", run(5), json!([js_step_run_first()]), v(2),
            vec![save(FIRST, "first", json!({"data": {"n": 1, "from": "fixture"}})), discovery()], false),
        ("one StepPlanned (disable_immediate_execution)", run(5), json!([a()]), v(2), vec![call(step(PAR_A), 0, NOW)], false),
        ("one Sleep", run(5), json!([nap()]), v(2), vec![Effect::Sleep { step: NAP.into(), name: "nap".into(), at_ms: NOW + 2 * SECS }], false),
        ("two StepPlanned", run(5), json!([a(), b()]), v(2), plan_ab(), true),
        ("two StepPlanned, version 1", run(5), json!([a(), b()]), v(1), plan_ab(), true),
        ("a Sleep and a WaitForEvent in parallel", run(5), json!([nap(), js_wait()]), v(2),
            vec![Effect::Sleep { step: NAP.into(), name: "nap".into(), at_ms: NOW + 2 * SECS },
                 Effect::WaitForEvent { step: WAIT.into(), name: "wait-approve".into(), event: "test/approve".into(),
                                        if_exp: Some("async.data.id == event.data.id".into()), expires_ms: NOW + HOURS }], true),
        ("a StepPlanned and a DeferAdd: the defer does not count", run(5), json!([a(), defer()]), v(2), vec![call(step(PAR_A), 0, NOW)], false),
        ("V1 keeps force-plan on for a single op", RunState { force_plan: true, ..run_v(5, 1) }, json!([a()]), v(1),
            vec![call(step(PAR_A), 0, NOW)], true),
        ("V2 clears force-plan when the last pending step finishes in one reply", RunState { force_plan: true, ..run_v(5, 2) },
            json!([js_step_run_first()]), v(2), vec![save(FIRST, "first", json!({"data": {"n": 1, "from": "fixture"}})), discovery()], false),
    ];
    for (case, run, body, meta, effects, force_plan) in cases {
        check_plan(case, run, body, meta, effects, force_plan);
    }
}

#[test]
fn a_replanned_step_is_not_called_twice() {
    let v2_pending = RunState { planned: set(&[PAR_A, PAR_B]), pending: set(&[PAR_A, PAR_B]), force_plan: true, ..run_v(5, 2) };
    let r = v2_pending.clone();
    assert_decision(
        "V2: both re-reported",
        &r,
        discovered(json!([js_planned(PAR_A, "par-a"), js_planned(PAR_B, "par-b")]), v(2)),
        FIXED_1S,
        vec![],
        |_| {},
    );
    let r = RunState { planned: set(&[PAR_A]), pending: set(&[PAR_A]), ..run_v(5, 1) };
    assert_decision(
        "V1: a known and a new one: only the new one is called",
        &r,
        discovered(json!([js_planned(PAR_A, "par-a"), js_planned(PAR_B, "par-b")]), v(1)),
        FIXED_1S,
        vec![call(step(PAR_B), 0, NOW)],
        |s| {
            s.planned = set(&[PAR_A, PAR_B]);
            s.pending = set(&[PAR_A, PAR_B]);
            s.force_plan = true;
        },
    );
    let r = RunState { planned: set(&[PAR_A]), done: set(&[PAR_A]), ..run_v(5, 1) };
    assert_decision(
        "V1: a done step re-planned, nothing pending: retried",
        &r,
        discovered(json!([js_planned(PAR_A, "par-a")]), v(1)),
        FIXED_1S,
        vec![call(CallTarget::Discovery, 1, NOW + 1_000)],
        |_| {},
    );
    let r = RunState { done: set(&[PAR_A]), ..run_v(5, 1) };
    assert_decision(
        "a done step never planned by us: retried",
        &r,
        discovered(json!([js_planned(PAR_A, "par-a")]), v(1)),
        FIXED_1S,
        vec![call(CallTarget::Discovery, 1, NOW + 1_000)],
        |_| {},
    );
}

#[test]
fn resumes_respect_pending_siblings() {
    // `Promise.all([step.sleep("nap", "2s"), step.run("par-a")])`.
    let plan = || discovered(json!([js_sleep(NAP, "nap", "2s"), js_planned(PAR_A, "par-a")]), v(2));
    let ran_a = || reply(step(PAR_A), 0, ops(json!([js_ran(PAR_A, "par-a", json!("A"))])), v(2));
    let sleep = Effect::Sleep { step: NAP.into(), name: "nap".into(), at_ms: NOW + 2 * SECS };
    check_parallel(
        "V2: step first, then the sleep",
        run(5),
        vec![
            turn("plan", plan(), vec![sleep.clone(), call(step(PAR_A), 0, NOW)], true, &[NAP, PAR_A], &[]),
            turn("par-a done, the sleep still pending", ran_a(), vec![save(PAR_A, "par-a", json!({"data": "A"}))], true, &[NAP], &[PAR_A]),
            turn(
                "the sleep ends: the one discovery",
                Input::SleepDone { step: NAP.into() },
                vec![save(NAP, NAP, Value::Null), discovery()],
                false,
                &[],
                &[NAP, PAR_A],
            ),
        ],
    );
    check_parallel(
        "V2: the sleep first, then the step",
        run(5),
        vec![
            turn("plan", plan(), vec![sleep.clone(), call(step(PAR_A), 0, NOW)], true, &[NAP, PAR_A], &[]),
            turn(
                "the sleep ends while par-a is pending",
                Input::SleepDone { step: NAP.into() },
                vec![save(NAP, NAP, Value::Null)],
                true,
                &[PAR_A],
                &[NAP],
            ),
            turn(
                "par-a done: the one discovery",
                ran_a(),
                vec![save(PAR_A, "par-a", json!({"data": "A"})), discovery()],
                false,
                &[],
                &[NAP, PAR_A],
            ),
        ],
    );
    let plan_v1 = || discovered(json!([js_sleep(NAP, "nap", "2s"), js_planned(PAR_A, "par-a")]), v(1));
    check_parallel(
        "V1: every completion calls",
        run(5),
        vec![
            turn("plan", plan_v1(), vec![sleep, call(step(PAR_A), 0, NOW)], true, &[NAP, PAR_A], &[]),
            turn(
                "the sleep ends",
                Input::SleepDone { step: NAP.into() },
                vec![save(NAP, NAP, Value::Null), discovery()],
                true,
                &[PAR_A],
                &[NAP],
            ),
        ],
    );
}

// ---------------------------------------------------------------------------
// Sleep
// ---------------------------------------------------------------------------

/// A discovery replying with one Sleep op: a timer at `Ok(at_ms)`, or the
/// step saved as an error with `Err(message)` and the run called again.
#[track_caller]
fn check_sleep(case: &str, op: Value, want: Result<i64, String>) {
    let parsed: Op = serde_json::from_value(op.clone()).expect("op");
    let (id, name) = (parsed.id.clone(), parsed.display());
    let r = run(5);
    match want {
        Ok(at_ms) => {
            assert_decision(case, &r, discovered(json!([op]), v(2)), FIXED_1S, vec![Effect::Sleep { step: id.clone(), name, at_ms }], |s| {
                s.version = 2;
                s.pending = set(&[&id]);
            })
        }
        Err(message) => assert_decision(
            case,
            &r,
            discovered(json!([op]), v(2)),
            FIXED_1S,
            vec![save(&id, &name, json!({"error": {"name": "Error", "message": message}})), discovery()],
            |s| {
                s.version = 2;
                s.done = set(&[&id]);
            },
        ),
    };
}

fn unreadable(spec: &str) -> Result<i64, String> {
    Err(format!("cannot read sleep {spec:?}: expected a duration like \"2s\" or an ISO-8601 time"))
}

#[test]
fn sleeps_read_a_duration_or_a_date() {
    let date_ms = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis();
    let with_opts = |name: Value, opts: Value| json!({"id": NAP, "op": "Sleep", "displayName": "nap", "name": name, "opts": opts});
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, Result<i64, String>)> = vec![
        ("JS step.sleep(\"nap\", \"2s\")", js_sleep(NAP, "nap", "2s"), Ok(NOW + 2 * SECS)),
        ("a compound duration", js_sleep(NAP, "nap", "1h30m"), Ok(NOW + 90 * 60 * SECS)),
        ("days", js_sleep(NAP, "nap", "7d"), Ok(NOW + 7 * 24 * HOURS)),
        ("milliseconds", js_sleep(NAP, "nap", "500ms"), Ok(NOW + 500)),
        ("zero wakes now", js_sleep(NAP, "nap", "0s"), Ok(NOW)),
        ("surrounding spaces are trimmed", js_sleep(NAP, "nap", " 2s "), Ok(NOW + 2 * SECS)),
        ("Python: the wake-up time in name", py_sleep(NAP, "nap", "2026-11-26T16:12:01.104Z"), Ok(NOW + 2 * SECS)),
        ("sleepUntil within the year", js_sleep(UNTIL, "until", "2027-01-01T00:00:00.000Z"), Ok(date_ms("2027-01-01T00:00:00Z"))),
        ("a date with an offset", js_sleep(UNTIL, "until", "2027-01-01T01:00:00+01:00"), Ok(date_ms("2027-01-01T00:00:00Z"))),
        ("sleepUntil more than a year out (the fixture's 2030) is capped at a year", js_sleep(UNTIL, "until", "2030-01-02T03:04:05.000Z"),
            Ok(NOW + MAX_SLEEP_MS)),
        ("Python sleepUntil in 2030, capped", py_sleep(UNTIL, "until", "2030-01-02T03:04:05.000Z"), Ok(NOW + MAX_SLEEP_MS)),
        ("a date in the past wakes now", js_sleep(UNTIL, "until", "2020-01-01T00:00:00Z"), Ok(NOW)),
        ("a duration over a year is capped", js_sleep(NAP, "nap", "400d"), Ok(NOW + MAX_SLEEP_MS)),
        ("opts.duration (newer form)", with_opts(json!("nap"), json!({"duration": "5s"})), Ok(NOW + 5 * SECS)),
        ("opts.duration wins over a duration in name", with_opts(json!("1h"), json!({"duration": "5s"})), Ok(NOW + 5 * SECS)),
        ("opts without duration falls back to name", with_opts(json!("3s"), json!({"other": 1})), Ok(NOW + 3 * SECS)),
        ("no displayName: the name is the user's id", json!({"id": NAP, "op": "Sleep", "name": "2s", "userland": {"id": "nap"}}), Ok(NOW + 2 * SECS)),
        // Unreadable: the step gets an error the SDK rethrows in user code.
        ("an unreadable sleep", js_sleep(NAP, "nap", "tomorrow-ish"), unreadable("tomorrow-ish")),
        ("a bare number has no unit", js_sleep(NAP, "nap", "5"), unreadable("5")),
        ("a date without a zone", js_sleep(UNTIL, "until", "2027-01-01T00:00:00"), unreadable("2027-01-01T00:00:00")),
        ("a negative duration", js_sleep(NAP, "nap", "-1s"), unreadable("-1s")),
        ("no name and no opts", json!({"id": NAP, "op": "Sleep", "displayName": "nap"}), unreadable("")),
    ];
    for (case, op, want) in cases {
        check_sleep(case, op, want);
    }
}

#[test]
fn a_sleep_already_pending_is_not_scheduled_twice() {
    let r = RunState { pending: set(&[NAP]), ..run_v(5, 2) };
    assert_decision("re-reported sleep", &r, discovered(json!([js_sleep(NAP, "nap", "2s")]), v(2)), FIXED_1S, vec![], |_| {});
}

// ---------------------------------------------------------------------------
// WaitForEvent
// ---------------------------------------------------------------------------

/// A pause, or (the step's name, its error memo) when the op is unreadable.
type WaitOutcome = Result<Effect, (String, Value)>;

/// A discovery replying with one WaitForEvent op.
#[track_caller]
fn check_wait(case: &str, op: Value, want: WaitOutcome) {
    let id = op["id"].as_str().unwrap().to_string();
    let r = run(5);
    match want {
        Ok(effect) => assert_decision(case, &r, discovered(json!([op]), v(2)), FIXED_1S, vec![effect], |s| {
            s.version = 2;
            s.pending = set(&[&id]);
        }),
        Err((name, memo)) => {
            assert_decision(case, &r, discovered(json!([op]), v(2)), FIXED_1S, vec![save(&id, &name, memo), discovery()], |s| {
                s.version = 2;
                s.done = set(&[&id]);
            })
        }
    };
}

fn wait(step: &str, name: &str, event: &str, if_exp: Option<&str>, expires_ms: i64) -> Effect {
    Effect::WaitForEvent { step: step.into(), name: name.into(), event: event.into(), if_exp: if_exp.map(String::from), expires_ms }
}

#[test]
fn waits_create_a_pause_with_event_condition_and_expiry() {
    let approve_if = Some("async.data.id == event.data.id");
    let w = |opts: Value| json!({"id": WAIT, "op": "WaitForEvent", "displayName": "wait-approve", "name": "test/approve", "opts": opts});
    let bad_timeout = |t: &str| {
        let message = format!("invalid duration {t:?}: expected e.g. \"30s\", \"1h30m\", \"7d\"");
        Err(("wait-approve".to_string(), json!({"error": {"name": "Error", "message": message}})))
    };
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, WaitOutcome)> = vec![
        ("JS v4 fixture: name, if, 1h", js_wait(), Ok(wait(WAIT, "wait-approve", "test/approve", approve_if, NOW + HOURS))),
        ("Python fixture", py_wait(), Ok(wait(WAIT, "wait-approve", "test/approve", approve_if, NOW + HOURS))),
        ("no if", w(json!({"timeout": "30s"})), Ok(wait(WAIT, "wait-approve", "test/approve", None, NOW + 30 * SECS))),
        ("a blank if is no condition", w(json!({"timeout": "30s", "if": "  "})), Ok(wait(WAIT, "wait-approve", "test/approve", None, NOW + 30 * SECS))),
        ("opts.event overrides name", w(json!({"timeout": "1m", "event": "test/other"})), Ok(wait(WAIT, "wait-approve", "test/other", None, NOW + 60 * SECS))),
        ("an empty timeout expires at once", w(json!({"timeout": ""})), Ok(wait(WAIT, "wait-approve", "test/approve", None, NOW))),
        ("no timeout expires at once", w(json!({})), Ok(wait(WAIT, "wait-approve", "test/approve", None, NOW))),
        ("null opts expires at once", w(Value::Null), Ok(wait(WAIT, "wait-approve", "test/approve", None, NOW))),
        ("a timeout over a year is capped", w(json!({"timeout": "400d"})), Ok(wait(WAIT, "wait-approve", "test/approve", None, NOW + MAX_SLEEP_MS))),
        ("no displayName: named by its hash, not the event",
            json!({"id": WAIT, "op": "WaitForEvent", "name": "test/approve", "opts": {"timeout": "1h"}}),
            Ok(wait(WAIT, WAIT, "test/approve", None, NOW + HOURS))),
        ("an unreadable timeout saves an error", w(json!({"timeout": "soonish"})), bad_timeout("soonish")),
    ];
    for (case, op, want) in cases {
        check_wait(case, op, want);
    }
}

// ---------------------------------------------------------------------------
// InvokeFunction
// ---------------------------------------------------------------------------

/// A discovery replying with one InvokeFunction op.
#[track_caller]
fn check_invoke(case: &str, op: Value, function: &str, payload: Value, expires_ms: i64) {
    let r = run(5);
    let effect = Effect::Invoke { step: CALL_CHILD.into(), name: "call-child".into(), function: function.into(), payload, expires_ms };
    assert_decision(case, &r, discovered(json!([op]), v(2)), FIXED_1S, vec![effect], |s| {
        s.version = 2;
        s.pending = set(&[CALL_CHILD]);
    });
}

#[test]
fn invokes_start_the_target_and_wait_for_it() {
    let i = |opts: Value| json!({"id": CALL_CHILD, "op": "InvokeFunction", "displayName": "call-child", "opts": opts});
    let x1 = || json!({"data": {"x": 1}});
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, &str, Value, i64)> = vec![
        ("JS v4 fixture: default expiry one year", js_invoke(), "js-v4-child", x1(), NOW + MAX_SLEEP_MS),
        ("Python fixture: timeout null", py_invoke(), "py-child", json!({"data": {"x": 1}, "v": null}), NOW + MAX_SLEEP_MS),
        ("an explicit timeout", i(json!({"function_id": "app-child", "payload": x1(), "timeout": "1h"})), "app-child", x1(), NOW + HOURS),
        ("a timeout over a year is capped", i(json!({"function_id": "app-child", "payload": x1(), "timeout": "400d"})), "app-child", x1(), NOW + MAX_SLEEP_MS),
        ("an unreadable timeout falls back to a year", i(json!({"function_id": "app-child", "payload": x1(), "timeout": "later"})), "app-child", x1(),
            NOW + MAX_SLEEP_MS),
        ("the whole payload is passed on", i(json!({"function_id": "app-child", "payload": {"data": {}, "v": "2024-01-01", "user": {"id": 1}}})),
            "app-child", json!({"data": {}, "v": "2024-01-01", "user": {"id": 1}}), NOW + MAX_SLEEP_MS),
        ("no payload: an empty one", i(json!({"function_id": "app-child"})), "app-child", json!({}), NOW + MAX_SLEEP_MS),
        ("no function id: empty (the shell answers not found)", i(json!({"payload": x1()})), "", x1(), NOW + MAX_SLEEP_MS),
    ];
    for (case, op, function, payload, expires_ms) in cases {
        check_invoke(case, op, function, payload, expires_ms);
    }
}

// ---------------------------------------------------------------------------
// Resumes: SleepDone, WaitResolved, InvokeResolved
// ---------------------------------------------------------------------------

/// `input` resumes `step` on a run where it is pending (or, with `done`, already memoized).
#[track_caller]
fn check_resume(case: &str, already_done: bool, step: &str, input: Input, memo: Option<Value>) {
    let r = if already_done { RunState { done: set(&[step]), ..run_v(5, 2) } } else { RunState { pending: set(&[step]), ..run_v(5, 2) } };
    match memo {
        Some(memo) => assert_decision(case, &r, input, FIXED_1S, vec![save(step, step, memo), discovery()], |s| {
            s.pending.clear();
            s.done = set(&[step]);
        }),
        None => assert_decision(case, &r, input, FIXED_1S, vec![], |_| {}),
    };
}

#[test]
fn resumes_memoize_the_result_and_call_again() {
    let child_out = json!({"child": true, "got": {"x": 1}});
    let sdk_error = json!({"name": "Error", "message": "child failed", "stack": ""});
    #[rustfmt::skip]
    let cases: Vec<(&str, bool, &str, Input, Option<Value>)> = vec![
        ("a sleep ends: memo null", false, NAP, Input::SleepDone { step: NAP.into() }, Some(Value::Null)),
        ("a wait matched: memo is the raw event", false, WAIT, Input::WaitResolved { step: WAIT.into(), event: Some(approve_event()) },
            Some(approve_event())),
        ("a wait matched an event with a data field only", false, WAIT, Input::WaitResolved { step: WAIT.into(), event: Some(json!({"data": 1})) },
            Some(json!({"data": 1}))),
        ("a wait timed out: memo null", false, WAIT, Input::WaitResolved { step: WAIT.into(), event: None }, Some(Value::Null)),
        ("an invoked function finished: {data}", false, CALL_CHILD, Input::InvokeResolved { step: CALL_CHILD.into(), result: Ok(child_out.clone()) },
            Some(json!({"data": child_out}))),
        ("an invoked function returned null: {data: null}", false, CALL_CHILD, Input::InvokeResolved { step: CALL_CHILD.into(), result: Ok(Value::Null) },
            Some(json!({"data": null}))),
        ("an invoke timed out: {error}", false, CALL_CHILD, Input::InvokeResolved { step: CALL_CHILD.into(), result: Err(invoke_timed_out()) },
            Some(json!({"error": {"name": "InngestInvokeTimeoutError", "message": "Timed out waiting for invoked function to complete"}}))),
        ("an invoked function failed: {error}", false, CALL_CHILD, Input::InvokeResolved { step: CALL_CHILD.into(), result: Err(sdk_error.clone()) },
            Some(json!({"error": sdk_error}))),
        // Late or repeated resumes change nothing.
        ("a second SleepDone", true, NAP, Input::SleepDone { step: NAP.into() }, None),
        ("a wait resolved twice", true, WAIT, Input::WaitResolved { step: WAIT.into(), event: None }, None),
        ("an invoke resolved twice", true, CALL_CHILD, Input::InvokeResolved { step: CALL_CHILD.into(), result: Ok(json!(1)) }, None),
    ];
    for (case, done, step, input, memo) in cases {
        check_resume(case, done, step, input, memo);
    }
}

#[test]
fn wait_and_invoke_walks_match_the_fixtures() {
    // wait-matched: WaitForEvent, then the event, then 200.
    let mut r = run(5);
    r = assert_decision(
        "wait: discovery",
        &r,
        discovered(json!([js_wait()]), v(2)),
        FIXED_1S,
        vec![wait(WAIT, "wait-approve", "test/approve", Some("async.data.id == event.data.id"), NOW + HOURS)],
        |s| {
            s.version = 2;
            s.pending = set(&[WAIT]);
        },
    );
    r = assert_decision(
        "wait: matched",
        &r,
        Input::WaitResolved { step: WAIT.into(), event: Some(approve_event()) },
        FIXED_1S,
        vec![save(WAIT, WAIT, approve_event()), discovery()],
        |s| {
            s.pending.clear();
            s.done = set(&[WAIT]);
        },
    );
    let out = json!({"approved": true, "ev": approve_event()});
    assert_decision(
        "wait: returns",
        &r,
        reply(CallTarget::Discovery, 0, Reply::Done(out.clone()), v(2)),
        FIXED_1S,
        vec![finish(RunStatus::Completed, out)],
        |s| s.status = RunStatus::Completed,
    );

    // invoker-error: the child never finishes; the timeout memo is rethrown and fails the run.
    let mut r = run(5);
    r = assert_decision(
        "invoke: discovery",
        &r,
        discovered(json!([js_invoke()]), v(2)),
        FIXED_1S,
        vec![Effect::Invoke {
            step: CALL_CHILD.into(),
            name: "call-child".into(),
            function: "js-v4-child".into(),
            payload: json!({"data": {"x": 1}}),
            expires_ms: NOW + MAX_SLEEP_MS,
        }],
        |s| {
            s.version = 2;
            s.pending = set(&[CALL_CHILD]);
        },
    );
    r = assert_decision(
        "invoke: timed out",
        &r,
        Input::InvokeResolved { step: CALL_CHILD.into(), result: Err(invoke_timed_out()) },
        FIXED_1S,
        vec![save(CALL_CHILD, CALL_CHILD, json!({"error": invoke_timed_out()})), discovery()],
        |s| {
            s.pending.clear();
            s.done = set(&[CALL_CHILD]);
        },
    );
    let rethrown = json!({"name": "InngestInvokeTimeoutError", "message": "Timed out waiting for invoked function to complete", "stack": "", "__serialized": true});
    assert_decision(
        "invoke: rethrown",
        &r,
        reply(CallTarget::Discovery, 0, Reply::Error { status: 400, error: rethrown.clone() }, no_retry(true)),
        FIXED_1S,
        vec![failed(rethrown)],
        |s| s.status = RunStatus::Failed,
    );
}

// ---------------------------------------------------------------------------
// DiscoveryRequest, DeferAdd/DeferAbort, unknown ops
// ---------------------------------------------------------------------------

#[track_caller]
fn check_control_ops(case: &str, body: Value, effects: Vec<Effect>, done: &[&str]) {
    check_step_result(case, CallTarget::Discovery, 0, v(2), body, effects, done);
}

#[test]
fn discovery_requests_call_now_and_unknown_ops_are_ignored() {
    let dr = || json!({"id": "dr", "op": "DiscoveryRequest"});
    let now = || call(CallTarget::Discovery, 0, NOW);
    let first = || save(FIRST, "first", json!({"data": {"n": 1, "from": "fixture"}}));
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, Vec<Effect>, &[&str])> = vec![
        ("DiscoveryRequest: a discovery now", json!([dr()]), vec![now()], &[]),
        ("two DiscoveryRequests: one call", json!([dr(), dr()]), vec![now()], &[]),
        ("a step and a DiscoveryRequest: one discovery", json!([js_step_run_first(), dr()]), vec![first(), discovery()], &[FIRST]),
        ("DeferAdd alone is ignored, and the call retried", json!([{"id": "d1", "op": "DeferAdd", "opts": {"fn": "x"}, "data": {"y": 1}}]), vec![call(CallTarget::Discovery, 1, NOW + 1_000)], &[]),
        ("DeferAbort alone is ignored, and the call retried", json!([{"id": "d1", "op": "DeferAbort"}]), vec![call(CallTarget::Discovery, 1, NOW + 1_000)], &[]),
        ("an unknown op alone is ignored, and the call retried", json!([{"id": "f1", "op": "SomeFutureOp", "opts": {"a": 1}}]), vec![call(CallTarget::Discovery, 1, NOW + 1_000)], &[]),
        ("a gateway op the engine has no response for is retried", json!([{"id": "g1", "op": "AIGateway", "opts": {"url": "http://x"}}]), vec![call(CallTarget::Discovery, 1, NOW + 1_000)], &[]),
        ("ignored ops do not disturb a step", json!([{"id": "d1", "op": "DeferAdd"}, js_step_run_first(), {"id": "f1", "op": "Nope"}]),
            vec![first(), discovery()], &[FIRST]),
    ];
    for (case, body, effects, done) in cases {
        check_control_ops(case, body, effects, done);
    }
}

// ---------------------------------------------------------------------------
// Request version
// ---------------------------------------------------------------------------

#[track_caller]
fn check_version(case: &str, before: i32, input: Input, after: i32) {
    let got = decide(&run_v(5, before), input, NOW, FIXED_1S);
    assert_eq!(got.state.version, after, "{case}");
}

#[test]
fn the_sdk_request_version_is_recorded() {
    let err = || Reply::Error { status: 500, error: js_fn_error() };
    #[rustfmt::skip]
    let cases: Vec<(&str, i32, Input, i32)> = vec![
        ("first reply from JS v4 / Python", -1, discovered(json!([js_step_run_first()]), v(2)), 2),
        ("first reply from JS v3", -1, discovered(json!([js_step_run_first()]), v(1)), 1),
        ("on a 200", -1, reply(CallTarget::Discovery, 0, Reply::Done(json!(1)), v(2)), 2),
        ("on an error reply", -1, reply(CallTarget::Discovery, 0, err(), v(2)), 2),
        ("on an empty 206", -1, discovered(json!([]), v(1)), 1),
        ("no header keeps the old version", 2, discovered(json!([js_step_run_first()]), meta()), 2),
        ("no header on the first reply keeps -1", -1, reply(CallTarget::Discovery, 0, Reply::Invalid("x".into()), meta()), -1),
        ("a changed version wins", 1, discovered(json!([]), v(2)), 2),
        ("resumes do not touch it", 2, Input::SleepDone { step: NAP.into() }, 2),
    ];
    for (case, before, input, after) in cases {
        check_version(case, before, input, after);
    }
}

// ---------------------------------------------------------------------------
// Step limit
// ---------------------------------------------------------------------------

fn ids(prefix: &str, n: usize) -> BTreeSet<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn step_run(id: &str) -> Value {
    json!({"id": id, "op": "StepRun", "name": id, "data": 1})
}

/// (case, memoized, in flight, discovery's 206 body, effects or `None` for a step-limit failure)
type LimitCase = (&'static str, BTreeSet<String>, BTreeSet<String>, Value, Option<Vec<Effect>>);

/// A reply on a run with `done` memoized and `pending` in flight: the run
/// either carries on (`Some(effects)`) or fails on the step limit (`None`).
#[track_caller]
fn check_step_limit(case: &str, done: BTreeSet<String>, pending: BTreeSet<String>, body: Value, want: Option<Vec<Effect>>) {
    let r = RunState { done, pending, ..run_v(5, 2) };
    let got = decide(&r, discovered(body, v(2)), NOW, FIXED_1S);
    match want {
        Some(effects) => {
            assert_eq!(got.effects, effects, "{case}: effects");
            assert_ne!(got.state.status, RunStatus::Failed, "{case}: status");
        }
        None => {
            let error = json!({"name": "StepLimitError", "message": format!("a run may have at most {MAX_STEPS} steps")});
            assert_eq!(got.effects, vec![failed(error)], "{case}: effects");
            assert_eq!(got.state.status, RunStatus::Failed, "{case}: status");
            assert_eq!(got.state.done, r.done, "{case}: nothing saved");
        }
    }
}

#[test]
fn a_run_may_have_at_most_a_thousand_steps() {
    let planned_ids = ids("p", MAX_STEPS);
    let plan_all = Value::Array(planned_ids.iter().map(|id| js_planned(id, id)).collect());
    let plan_all_calls: Vec<Effect> = planned_ids.iter().map(|id| call(step(id), 0, NOW)).collect();
    let one_too_many = Value::Array(ids("p", MAX_STEPS + 1).iter().map(|id| js_planned(id, id)).collect());
    let defers = Value::Array((0..=MAX_STEPS).map(|i| json!({"id": format!("d{i}"), "op": "DeferAdd"})).collect());
    let complete = || json!({"op": "RunComplete", "id": COMPLETE, "data": 1});
    let completed = || vec![finish(RunStatus::Completed, json!(1))];
    let none = BTreeSet::new;
    #[rustfmt::skip]
    let cases: Vec<LimitCase> = vec![
        ("999 done + 1 new step: the 1000th is fine", ids("s", MAX_STEPS - 1), none(), json!([step_run("new")]),
            Some(vec![save("new", "new", json!({"data": 1})), discovery()])),
        ("1000 done + 1 new step: the 1001st fails the run", ids("s", MAX_STEPS), none(), json!([step_run("new")]), None),
        ("998 done + 1 pending + 2 new: 1001 fails", ids("s", MAX_STEPS - 2), set(&["p"]), json!([step_run("a"), step_run("b")]), None),
        ("999 done + the pending step finishing: still 1000", ids("s", MAX_STEPS - 1), set(&["p"]), json!([step_run("p")]),
            Some(vec![save("p", "p", json!({"data": 1})), discovery()])),
        ("1000 done + RunComplete: the run may finish", ids("s", MAX_STEPS), none(), json!([complete()]), Some(completed())),
        ("1000 done + a repeated step and RunComplete", ids("s", MAX_STEPS), none(), json!([step_run("s0"), complete()]), Some(completed())),
        ("1000 done + an empty 206: retried", ids("s", MAX_STEPS), none(), json!([]), Some(vec![call(CallTarget::Discovery, 1, NOW + 1_000)])),
        ("1000 StepPlanned in one reply", none(), none(), plan_all, Some(plan_all_calls)),
        ("1001 StepPlanned in one reply", none(), none(), one_too_many, None),
        ("1001 ops of any kind in one reply", none(), none(), defers, None),
    ];
    for (case, done, pending, body, want) in cases {
        check_step_limit(case, done, pending, body, want);
    }
}

// ---------------------------------------------------------------------------
// Whole walks, as the SDKs played them
// ---------------------------------------------------------------------------

#[test]
fn two_steps_walk_matches_the_fixture() {
    let second = json!({"id": SECOND, "op": "StepRun", "name": "second", "opts": {}, "displayName": "second", "userland": {"id": "second"},
                        "data": "second saw 1"});
    let mut r = run(5);
    r = assert_decision(
        "01 discovery: first",
        &r,
        discovered(json!([js_step_run_first()]), v(2)),
        FIXED_1S,
        vec![save(FIRST, "first", json!({"data": {"n": 1, "from": "fixture"}})), discovery()],
        |s| {
            s.version = 2;
            s.done = set(&[FIRST]);
        },
    );
    r = assert_decision(
        "02 discovery: second",
        &r,
        discovered(json!([second]), v(2)),
        FIXED_1S,
        vec![save(SECOND, "second", json!({"data": "second saw 1"})), discovery()],
        |s| s.done = set(&[FIRST, SECOND]),
    );
    let out = json!({"a": {"n": 1, "from": "fixture"}, "b": "second saw 1"});
    assert_decision(
        "03 discovery: 200",
        &r,
        reply(CallTarget::Discovery, 0, Reply::Done(out.clone()), v(2)),
        FIXED_1S,
        vec![finish(RunStatus::Completed, out)],
        |s| s.status = RunStatus::Completed,
    );
}

#[test]
fn sleeps_walk_matches_the_fixture() {
    let mut r = run(5);
    r = assert_decision(
        "01 discovery: nap 2s",
        &r,
        discovered(json!([js_sleep(NAP, "nap", "2s")]), v(2)),
        FIXED_1S,
        vec![Effect::Sleep { step: NAP.into(), name: "nap".into(), at_ms: NOW + 2 * SECS }],
        |s| {
            s.version = 2;
            s.pending = set(&[NAP]);
        },
    );
    r = assert_decision(
        "nap ends",
        &r,
        Input::SleepDone { step: NAP.into() },
        FIXED_1S,
        vec![save(NAP, NAP, Value::Null), discovery()],
        |s| {
            s.pending.clear();
            s.done = set(&[NAP]);
        },
    );
    r = assert_decision(
        "02 discovery: until 2030",
        &r,
        discovered(json!([js_sleep(UNTIL, "until", "2030-01-02T03:04:05.000Z")]), v(2)),
        FIXED_1S,
        vec![Effect::Sleep { step: UNTIL.into(), name: "until".into(), at_ms: NOW + MAX_SLEEP_MS }],
        |s| s.pending = set(&[UNTIL]),
    );
    r = assert_decision(
        "until ends",
        &r,
        Input::SleepDone { step: UNTIL.into() },
        FIXED_1S,
        vec![save(UNTIL, UNTIL, Value::Null), discovery()],
        |s| {
            s.pending.clear();
            s.done = set(&[NAP, UNTIL]);
        },
    );
    assert_decision(
        "03 discovery: 200",
        &r,
        reply(CallTarget::Discovery, 0, Reply::Done(json!("slept")), v(2)),
        FIXED_1S,
        vec![finish(RunStatus::Completed, json!("slept"))],
        |s| s.status = RunStatus::Completed,
    );
}

#[test]
fn retry_after_walk_matches_the_fixture() {
    // retry-after: the step throws RetryAfterError("30s") once, then succeeds.
    let later = json!([{"id": LATER, "op": "StepError", "name": "later", "opts": {}, "displayName": "later", "userland": {"id": "later"},
                        "error": {"name": "RetryAfterError", "message": "come back later", "stack": "", "__serialized": true}, "data": null}]);
    let mut r = run(5);
    r = assert_decision(
        "01: StepError + Retry-After: 30",
        &r,
        discovered(later, retry_after(Duration::from_secs(30))),
        table(20_000),
        vec![call(CallTarget::Discovery, 1, NOW + 30 * SECS)],
        |s| s.version = 2,
    );
    assert_decision(
        "02 attempt 1: StepRun",
        &r,
        reply(CallTarget::Discovery, 1, ops(json!([{"id": LATER, "op": "StepRun", "displayName": "later", "data": "ok"}])), v(2)),
        table(20_000),
        vec![save(LATER, "later", json!({"data": "ok"})), discovery()],
        |s| s.done = set(&[LATER]),
    );
}

#[test]
fn checkpointed_steps_are_memoized_without_a_new_call() {
    let ops = parse_ops(json!([
        {"id": FIRST, "op": "StepRun", "name": "first", "displayName": "first", "data": {"n": 1}, "mode": "sync", "hashedId": FIRST},
        {"id": SECOND, "op": "StepPlanned", "name": "second"},
    ]));
    let d = decide(&run_v(5, 2), Input::Checkpoint { ops: ops.clone() }, NOW, fixed(1000));
    assert_eq!(d.effects, vec![Effect::SaveStep { step: FIRST.into(), name: "first".into(), memo: json!({"data": {"n": 1}}) }]);
    assert!(d.state.done.contains(FIRST));
    assert_eq!(d.state.status, RunStatus::Running);
    // The call's reply repeats the checkpointed step: it is not saved twice, and the run
    // still gets its next call (it must never be left without a way forward).
    let done = decide(
        &d.state,
        Input::Reply {
            target: CallTarget::Discovery,
            attempt: 0,
            reply: Reply::Ops(ops[..1].to_vec()),
            meta: ReplyMeta::default(),
            gateway: vec![],
        },
        NOW,
        fixed(1000),
    );
    assert_eq!(done.effects, vec![Effect::Call { target: CallTarget::Discovery, attempt: 1, at_ms: NOW }]);
    // A checkpoint for an ended run changes nothing.
    let ended = RunState { status: RunStatus::Completed, ..run_v(5, 2) };
    assert!(decide(&ended, Input::Checkpoint { ops }, NOW, fixed(1000)).effects.is_empty());
}

// ---------------------------------------------------------------------------
// Size limits and engine failures (hostile or oversized SDK replies)
// ---------------------------------------------------------------------------

fn failed_with(d: &ingot_core::Decision, name: &str) -> bool {
    d.state.status == RunStatus::Failed
        && matches!(d.effects.as_slice(), [Effect::Finish { status: RunStatus::Failed, output }] if output["name"] == json!(name))
}

#[test]
fn run_state_over_32_mib_fails_the_run_and_keeps_nothing() {
    let p = Policy { retry: RetryPolicy::Table, jitter_ms: 0 };
    let mut r = run_v(3, 1);
    r.state_bytes = ingot_core::MAX_RUN_STATE_BYTES as u64 - 10;
    let big = json!([{"id": FIRST, "op": "StepRun", "name": "first", "data": "x".repeat(100)}]);
    let d = decide(&r, discovered(big.clone(), ReplyMeta::default()), NOW, p);
    assert!(failed_with(&d, "StateTooLargeError"), "{d:?}");
    assert!(d.state.done.is_empty(), "the step that overflowed is not memoized");
    // Under the limit the same reply is memoized and counted.
    let small = RunState { state_bytes: 0, ..r.clone() };
    let d = decide(&small, discovered(big, ReplyMeta::default()), NOW, p);
    assert_eq!(d.state.status, RunStatus::Running);
    assert!(d.state.state_bytes > 100, "memo bytes are counted: {}", d.state.state_bytes);
    // Checkpointed steps count too.
    let cp = Input::Checkpoint { ops: parse_ops(json!([{"id": SECOND, "op": "StepRun", "name": "second", "data": "x".repeat(100)}])) };
    assert!(failed_with(&decide(&r, cp, NOW, p), "StateTooLargeError"));
}

#[test]
fn oversized_outputs_are_refused_on_every_path() {
    let p = Policy { retry: RetryPolicy::Table, jitter_ms: 0 };
    let huge = "x".repeat(MAX_STEP_OUTPUT_BYTES + 1);
    let r = run_v(3, 1);
    // A function's return value (200) and RunComplete fail the run.
    let done = reply(CallTarget::Discovery, 0, Reply::Done(json!(huge)), ReplyMeta::default());
    assert!(failed_with(&decide(&r, done, NOW, p), "OutputTooLargeError"));
    let complete = json!([{"id": COMPLETE, "op": "RunComplete", "data": huge}]);
    assert!(failed_with(&decide(&r, discovered(complete, ReplyMeta::default()), NOW, p), "OutputTooLargeError"));
    // A checkpointed step gets the same error memo as a StepRun reply.
    let cp = Input::Checkpoint { ops: parse_ops(json!([{"id": FIRST, "op": "StepRun", "name": "first", "data": huge}])) };
    let d = decide(&r, cp, NOW, p);
    assert!(matches!(&d.effects[..], [Effect::SaveStep { memo, .. }] if memo["error"]["name"] == json!("OutputTooLargeError")), "{d:?}");
}

#[test]
fn an_invoke_payload_over_the_event_limit_fails_the_step() {
    let p = Policy { retry: RetryPolicy::Table, jitter_ms: 0 };
    let payload = json!({"data": {"s": "x".repeat(ingot_protocol::event::MAX_EVENT_BYTES)}});
    let body =
        json!([{"id": CALL_CHILD, "op": "InvokeFunction", "name": "call-child", "opts": {"function_id": "app-child", "payload": payload}}]);
    let d = decide(&run_v(3, 1), discovered(body, ReplyMeta::default()), NOW, p);
    assert!(!d.effects.iter().any(|e| matches!(e, Effect::Invoke { .. })), "no invoke is started: {d:?}");
    assert!(d
        .effects
        .iter()
        .any(|e| matches!(e, Effect::SaveStep { memo, .. } if memo["error"]["message"].as_str().unwrap_or("").contains("event limit"))));
}

#[test]
fn an_engine_failure_ends_the_run_with_its_message() {
    let p = Policy { retry: RetryPolicy::Table, jitter_ms: 0 };
    let d = decide(&run_v(3, 1), Input::EngineFailed { message: "disk full".into() }, NOW, p);
    assert!(failed_with(&d, "EngineError"));
    assert!(matches!(&d.effects[..], [Effect::Finish { output, .. }] if output["message"] == json!("disk full")));
}

// ---------------------------------------------------------------------------
// Signals: WaitForSignal, and the wait resolving
// ---------------------------------------------------------------------------

const SIG: &str = "5b9a2b4c0f3e1d2a6b7c8d9e0f1a2b3c4d5e6f70"; // "wait-for-approval"

fn signal_op(opts: Value) -> Value {
    // As JS v4 reports `step.waitForSignal("wait-for-approval", {...})`.
    json!({"id": SIG, "op": "WaitForSignal", "name": opts["signal"], "displayName": "wait-for-approval", "opts": opts, "userland": {"id": "wait-for-approval"}})
}

fn wait_signal(signal: &str, replace: bool, expires_ms: i64) -> Effect {
    Effect::WaitForSignal { step: SIG.into(), name: "wait-for-approval".into(), signal: signal.into(), replace, expires_ms }
}

#[test]
fn wait_for_signal_waits_with_its_timeout_and_conflict_mode() {
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, Vec<Effect>, bool)> = vec![
        ("onConflict replace", json!({"signal": "order-1", "timeout": "1h", "conflict": "replace"}),
            vec![wait_signal("order-1", true, NOW + HOURS)], true),
        ("onConflict fail", json!({"signal": "order-1", "timeout": "30s", "conflict": "fail"}),
            vec![wait_signal("order-1", false, NOW + 30 * SECS)], true),
        ("no conflict mode: fail, as Inngest", json!({"signal": "order-1", "timeout": "30s"}),
            vec![wait_signal("order-1", false, NOW + 30 * SECS)], true),
        ("no timeout: a year", json!({"signal": "order-1"}),
            vec![wait_signal("order-1", false, NOW + MAX_SLEEP_MS)], true),
        ("a timeout over a year is a year", json!({"signal": "s", "timeout": "800d"}),
            vec![wait_signal("s", false, NOW + MAX_SLEEP_MS)], true),
        ("no signal name: the step fails", json!({"signal": "", "timeout": "1h"}),
            vec![save(SIG, "wait-for-approval", json!({"error": {"name": "Error", "message": "step.waitForSignal needs a signal name"}})), discovery()], false),
    ];
    for (case, opts, effects, waits) in cases {
        let done = if waits { vec![] } else { vec![SIG] };
        assert_decision(case, &run_v(3, 2), discovered(json!([signal_op(opts)]), v(2)), FIXED_1S, effects, |s| {
            if waits {
                s.pending = set(&[SIG]);
            } else {
                s.done = set(&done);
            }
        });
    }
    // A bad timeout fails the step with the parser's words.
    let got = decide(&run_v(3, 2), discovered(json!([signal_op(json!({"signal": "s", "timeout": "soon"}))]), v(2)), NOW, FIXED_1S);
    assert!(
        matches!(&got.effects[0], Effect::SaveStep { memo, .. } if memo["error"]["message"].as_str().is_some_and(|m| m.contains("soon"))),
        "{:?}",
        got.effects
    );
    // Reported again while waiting: nothing new, and no orphan (the wait is its way forward).
    let waiting = RunState { pending: set(&[SIG]), ..run_v(3, 2) };
    let again = decide(&waiting, discovered(json!([signal_op(json!({"signal": "s"}))]), v(2)), NOW, FIXED_1S);
    assert!(!again.effects.iter().any(|e| matches!(e, Effect::WaitForSignal { .. })), "{:?}", again.effects);
}

/// (case, what resolved the wait, memo)
type SignalCase = (&'static str, Option<Result<Value, Value>>, Value);

#[test]
fn a_resolved_signal_wait_is_memoized() {
    let waiting = RunState { pending: set(&[SIG]), ..run_v(3, 2) };
    let received = json!({"signal": "order-1", "data": {"approved": true}});
    let conflict = ingot_core::errors::signal_conflict("order-1");
    #[rustfmt::skip]
    let cases: Vec<SignalCase> = vec![
        ("a signal arrived: {data: {signal, data}}", Some(Ok(received.clone())), json!({"data": received})),
        ("timed out: null", None, Value::Null),
        ("another run holds the signal: the step fails", Some(Err(conflict.clone())), json!({"error": conflict})),
    ];
    for (case, result, memo) in cases {
        let input = Input::SignalResolved { step: SIG.into(), result };
        assert_decision(case, &waiting, input, FIXED_1S, vec![save(SIG, SIG, memo), discovery()], |s| {
            s.pending.clear();
            s.done = set(&[SIG]);
        });
    }
    // Resolved twice (a timeout racing the signal): the second does nothing.
    let done = RunState { done: set(&[SIG]), ..run_v(3, 2) };
    assert!(decide(&done, Input::SignalResolved { step: SIG.into(), result: None }, NOW, FIXED_1S).effects.is_empty());
}

// ---------------------------------------------------------------------------
// step.fetch (Gateway) and step.ai.infer (AIGateway)
// ---------------------------------------------------------------------------

use ingot_core::gateway::{self, GatewayOutcome, GatewayResult};

const FETCH: &str = "7d1e0b6f4c2a9e8d3b5f1a0c6e2d4b8f9a1c3e5d"; // "step.fetch: 127.0.0.1"
const INFER: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"; // "ask"

fn fetch_op() -> Value {
    json!({"id": FETCH, "op": "Gateway", "displayName": "step.fetch: 127.0.0.1",
        "opts": {"url": "http://127.0.0.1:9/echo?x=1", "method": "PUT", "headers": {"x-trace": "t1"}, "body": "{\"a\":1}"},
        "userland": {"id": "step.fetch: 127.0.0.1"}})
}

fn infer_op(format: &str) -> Value {
    json!({"id": INFER, "op": "AIGateway", "displayName": "ask",
        "opts": {"type": "step.ai.infer", "url": "http://127.0.0.1:9/v1/chat/completions", "headers": {}, "auth_key": "sk-secret-123",
            "format": format, "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}},
        "userland": {"id": "ask"}})
}

fn response(status: u16, body: &str) -> GatewayOutcome {
    GatewayOutcome::Response { status, headers: vec![("Content-Type".into(), "application/json".into())], body: body.as_bytes().to_vec() }
}

fn failed_req(message: &str) -> GatewayOutcome {
    GatewayOutcome::Failed { message: message.into() }
}

fn gateway_reply(attempt: u32, op: Value, step: &str, outcome: Option<GatewayOutcome>) -> Input {
    let results = outcome.map(|outcome| GatewayResult { step: step.into(), outcome }).into_iter().collect();
    Input::Reply { target: CallTarget::Discovery, attempt, reply: ops(json!([op])), meta: v(2), gateway: results }
}

/// (case, attempt, op, its step, what the request came to, effects)
type GatewayCase = (&'static str, u32, Value, &'static str, Option<GatewayOutcome>, Vec<Effect>);

#[test]
fn gateway_ops_memoize_the_response_or_retry_the_call() {
    let fetched = |status: u16, body: &str| json!({"data": {"url": "http://127.0.0.1:9/echo?x=1", "headers": {"Content-Type": "application/json"}, "body": body, "status_code": status}});
    let ai_error_500 = json!({"error": {"name": "AIGatewayError", "message": "Error making AI request: unsuccessful status code: 500",
        "data": {"error": "overloaded"}, "stack": "{\"error\":\"overloaded\"}"}});
    let retry = |attempt: u32| vec![call(CallTarget::Discovery, attempt, NOW + 1_000)];
    #[rustfmt::skip]
    let cases: Vec<GatewayCase> = vec![
        ("fetch: the response is the step's result", 0, fetch_op(), FETCH, Some(response(200, "{\"ok\":true}")),
            vec![save(FETCH, "step.fetch: 127.0.0.1", fetched(200, "{\"ok\":true}")), discovery()]),
        ("fetch: a 500 is a response too, not retried", 0, fetch_op(), FETCH, Some(response(500, "boom")),
            vec![save(FETCH, "step.fetch: 127.0.0.1", fetched(500, "boom")), discovery()]),
        ("fetch: no response retries the call", 0, fetch_op(), FETCH, Some(failed_req("connection refused")), retry(1)),
        ("fetch: no response on the last attempt fails the step", 2, fetch_op(), FETCH, Some(failed_req("connection refused")),
            vec![save(FETCH, "step.fetch: 127.0.0.1", json!({"error": {"name": "GatewayError", "message": "Error making gateway request: connection refused"}})), discovery()]),
        ("fetch: a request never made counts as failed", 0, fetch_op(), FETCH, None, retry(1)),
        ("ai: a 2xx body is the result, as JSON", 0, infer_op("openai-chat"), INFER, Some(response(200, "{\"choices\":[{\"message\":{\"content\":\"hello\"}}]}")),
            vec![save(INFER, "ask", json!({"data": {"choices": [{"message": {"content": "hello"}}]}})), discovery()]),
        ("ai: a 500 retries the call", 1, infer_op("anthropic"), INFER, Some(response(500, "{\"error\":\"overloaded\"}")), retry(2)),
        ("ai: a 500 on the last attempt is an AIGatewayError", 2, infer_op("anthropic"), INFER, Some(response(500, "{\"error\":\"overloaded\"}")),
            vec![save(INFER, "ask", ai_error_500), discovery()]),
    ];
    for (case, attempt, op, step, outcome, effects) in cases {
        let saved = effects.iter().any(|e| matches!(e, Effect::SaveStep { .. }));
        assert_decision(case, &run_v(3, 2), gateway_reply(attempt, op, step, outcome), FIXED_1S, effects, |s| {
            if saved {
                s.done = set(&[step]);
            }
        });
    }
    // A request that cannot be made fails the step at once, unsent.
    let bad = json!({"id": FETCH, "op": "Gateway", "displayName": "f", "opts": {"url": "file:///etc/passwd"}});
    let got = decide(&run_v(3, 2), gateway_reply(0, bad, FETCH, None), NOW, FIXED_1S);
    assert!(matches!(&got.effects[0], Effect::SaveStep { memo, .. } if memo["error"]["name"] == "GatewayError"), "{:?}", got.effects);
    assert!(gateway::requests(&run_v(3, 2), &parse_ops(json!([{"id": FETCH, "op": "Gateway", "opts": {"url": "file:///x"}}]))).is_empty());
    // Already memoized (checkpointed, reported again): no request, no second memo.
    let done = RunState { done: set(&[FETCH]), ..run_v(3, 2) };
    assert!(gateway::requests(&done, &parse_ops(json!([fetch_op()]))).is_empty());
}

#[test]
fn gateway_requests_place_the_key_as_the_format_requires_and_never_show_it() {
    let req = |op: Value| gateway::request(&parse_ops(json!([op])).remove(0)).expect("a request");
    let header = |r: &gateway::GatewayRequest, name: &str| r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let openai = req(infer_op("openai-chat"));
    assert_eq!((openai.method.as_str(), header(&openai, "authorization")), ("POST", Some("Bearer sk-secret-123".into())));
    assert_eq!(header(&openai, "content-type").as_deref(), Some("application/json"));
    assert_eq!(serde_json::from_slice::<Value>(openai.body.as_ref().unwrap()).unwrap()["messages"][0]["content"], "hi");
    let anthropic = req(infer_op("anthropic"));
    assert_eq!((header(&anthropic, "x-api-key"), header(&anthropic, "authorization")), (Some("sk-secret-123".into()), None));
    let gemini = req(infer_op("gemini"));
    assert!(gemini.url.ends_with("?key=sk-secret-123"), "{}", gemini.url);
    assert_eq!(gemini.public_url(), "http://127.0.0.1:9/v1/chat/completions");
    for r in [&openai, &anthropic, &gemini] {
        assert!(!format!("{r:?}").contains("sk-secret"), "Debug shows the key: {r:?}");
        assert!(!gateway::describe(r).to_string().contains("sk-secret"), "history shows the key");
        assert_eq!(gateway::describe(r)["request"]["messages"][0]["content"], "hi", "the prompt is on the timeline");
    }
    let fetch = req(fetch_op());
    assert_eq!((fetch.method.as_str(), fetch.url.as_str()), ("PUT", "http://127.0.0.1:9/echo?x=1"));
    assert_eq!((header(&fetch, "x-trace"), fetch.body.clone()), (Some("t1".into()), Some(b"{\"a\":1}".to_vec())));
    // No method: POST, as Inngest's gateway.
    assert_eq!(req(json!({"id": "g", "op": "Gateway", "opts": {"url": "https://example.com"}})).method, "POST");
}

// ---------------------------------------------------------------------------
// Parallel race mode
// ---------------------------------------------------------------------------

#[test]
fn a_race_resumes_the_function_when_its_first_step_finishes() {
    let planned = |id: &str, race: bool| {
        let opts = if race { json!({"parallelMode": "race"}) } else { json!({}) };
        json!({"id": id, "op": "StepPlanned", "displayName": id, "opts": opts})
    };
    // Planning records which steps race.
    let got = decide(&run_v(5, 2), discovered(json!([planned("fast", true), planned("slow", true)]), v(2)), NOW, FIXED_1S);
    assert_eq!(got.state.race, set(&["fast", "slow"]));
    assert_eq!(got.state.pending, set(&["fast", "slow"]));
    let racing = got.state;
    let result = |id: &str| json!([{"id": id, "op": "StepRun", "displayName": id, "data": id, "opts": {"parallelMode": "race"}}]);
    // The first to finish: memoized, and the function called at once although "slow" is pending.
    let after_fast = assert_decision(
        "the winner resumes the function",
        &racing,
        reply(step("fast"), 0, ops(result("fast")), v(2)),
        FIXED_1S,
        vec![save("fast", "fast", json!({"data": "fast"})), discovery()],
        |s| {
            s.done = set(&["fast"]);
            s.pending = set(&["slow"]);
            s.race = set(&["slow"]);
        },
    );
    // The loser's result is still kept when it arrives.
    assert_decision(
        "the loser is kept",
        &after_fast,
        reply(step("slow"), 0, ops(result("slow")), v(2)),
        FIXED_1S,
        vec![save("slow", "slow", json!({"data": "slow"})), discovery()],
        |s| {
            s.done = set(&["fast", "slow"]);
            s.pending.clear();
            s.race.clear();
            s.force_plan = false;
        },
    );
    // Without race mode the first result waits for its sibling (no call).
    let waiting = decide(&run_v(5, 2), discovered(json!([planned("a", false), planned("b", false)]), v(2)), NOW, FIXED_1S).state;
    let got = decide(&waiting, reply(step("a"), 0, ops(json!([{"id": "a", "op": "StepRun", "data": 1}])), v(2)), NOW, FIXED_1S);
    assert_eq!(got.effects, vec![save("a", "a", json!({"data": 1}))]);
}
