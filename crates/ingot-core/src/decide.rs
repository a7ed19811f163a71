//! The run state machine: `decide(run, input, now, policy) -> Decision`.
//!
//! Inputs are what happened to a run (an SDK reply, a sleep ending, a wait
//! resolving, an invoked function finishing, a cancel); the decision is the
//! run's next state and the effects the shell must commit in one transaction.

use std::collections::BTreeSet;
use std::time::Duration;

use ingot_protocol::{timestr, Op, Opcode};
use serde_json::{json, Value};

use crate::backoff::{retry_delay, RetryPolicy};
use crate::errors;
use crate::gateway::{self, GatewayOutcome, GatewayResult};
use crate::run::{RunState, RunStatus};

/// Longest sleep, wait or invoke timeout: one year, as Inngest.
pub const MAX_SLEEP_MS: i64 = 365 * 24 * 3600 * 1000;
/// Most ops one reply may carry, and most steps one run may have.
pub const MAX_STEPS: usize = 1_000;
/// Longest step id an op may carry. SDKs send hashes (40 hex digits); the
/// bound keeps a malformed reply from filling the store with huge keys.
pub const MAX_STEP_ID_BYTES: usize = 1024;
/// Longest signal name a wait may have.
pub const MAX_SIGNAL_BYTES: usize = 1024;
/// Largest step output kept (4 MiB, as Inngest); a function's output too.
pub const MAX_STEP_OUTPUT_BYTES: usize = 4 * 1024 * 1024;
/// Largest run state (every memoized step result): 32 MiB, as Inngest.
pub const MAX_RUN_STATE_BYTES: usize = 32 * 1024 * 1024;

/// Which request a call is: discovery (`stepId=step`) or one planned step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallTarget {
    Discovery,
    Step(String),
}

impl CallTarget {
    /// The `stepId` query value.
    pub fn step_id(&self) -> &str {
        match self {
            CallTarget::Discovery => "step",
            CallTarget::Step(id) => id,
        }
    }
}

/// Headers of an SDK reply that change what the engine does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplyMeta {
    /// `X-Inngest-Req-Version`.
    pub version: Option<i32>,
    /// `X-Inngest-No-Retry`, when present.
    pub no_retry: Option<bool>,
    /// `Retry-After`, already turned into a delay from now.
    pub retry_after: Option<Duration>,
}

/// An SDK's answer to a call, parsed into what it means.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// 200: the function returned this value.
    Done(Value),
    /// 206: these steps were reported.
    Ops(Vec<Op>),
    /// An error status from the SDK with its error body.
    Error { status: u16, error: Value },
    /// Not an SDK reply, or one we cannot read: retryable.
    Invalid(String),
}

/// What happened to a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Reply {
        target: CallTarget,
        attempt: u32,
        reply: Reply,
        meta: ReplyMeta,
        /// What came back from the requests of the reply's `Gateway` and
        /// `AIGateway` ops ([`gateway::requests`]), made by the shell.
        gateway: Vec<GatewayResult>,
    },
    SleepDone {
        step: String,
    },
    /// A wait matched (`Some(event)`) or timed out (`None`).
    WaitResolved {
        step: String,
        event: Option<Value>,
    },
    /// A signal wait resolved: `Some(Ok({signal, data}))` a signal arrived,
    /// `Some(Err(error))` the wait could not be made (a conflict), `None` it
    /// timed out.
    SignalResolved {
        step: String,
        result: Option<Result<Value, Value>>,
    },
    /// An invoked function finished (`Ok(output)`), failed or timed out (`Err(error)`).
    InvokeResolved {
        step: String,
        result: Result<Value, Value>,
    },
    Cancel,
    /// Steps an SDK checkpointed while its call is still running (JS v4):
    /// memoized at once; the call's own reply decides what comes next.
    Checkpoint {
        ops: Vec<Op>,
    },
    /// The engine could not carry out a decision for this run (its writes
    /// kept failing): the run fails with this message instead of looping.
    EngineFailed {
        message: String,
    },
    /// A call fell due but the run's function is gone (or has no HTTP URL).
    FunctionNotFound {
        target: CallTarget,
        attempt: u32,
    },
    /// The run's `timeouts.start` fell due; `call_sent` says whether its first
    /// call has been sent (the run started, and the timeout does nothing).
    StartTimeout {
        call_sent: bool,
    },
}

/// What `decide` may ask about the world beyond the run: lookups the shell
/// answers from what it has loaded, with no IO.
pub trait Lookup {
    /// Whether the function `slug` exists (the target of `step.invoke`).
    fn function_exists(&self, slug: &str) -> bool;
}

/// A [`Lookup`] in which every function exists.
pub struct AllFunctions;

impl Lookup for AllFunctions {
    fn function_exists(&self, _slug: &str) -> bool {
        true
    }
}

/// Engine settings that shape decisions, plus the randomness for this one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub retry: RetryPolicy,
    /// Jitter drawn by the shell for a retry this decision may schedule.
    pub jitter_ms: u64,
}

/// What the shell must do, all in one commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Memoize a step result and append it to the stack. Never overwrites.
    SaveStep { step: String, name: String, memo: Value },
    /// Call the SDK at `at_ms`.
    Call { target: CallTarget, attempt: u32, at_ms: i64 },
    /// Wake the run at `at_ms` and memoize `null` for `step`.
    Sleep { step: String, name: String, at_ms: i64 },
    /// Wait for an event named `event` matching `if_exp`, until `expires_ms`.
    WaitForEvent { step: String, name: String, event: String, if_exp: Option<String>, expires_ms: i64 },
    /// Wait for `signal` (`POST /v1/signals`) until `expires_ms`. With
    /// `replace`, a wait of another run for the same signal is superseded
    /// (it stays until its timeout); without, this wait fails if one exists.
    WaitForSignal { step: String, name: String, signal: String, replace: bool, expires_ms: i64 },
    /// Start `function` with `payload` and wait for it until `expires_ms`.
    Invoke { step: String, name: String, function: String, payload: Value, expires_ms: i64 },
    /// End the run.
    Finish { status: RunStatus, output: Value },
}

/// The run's next state and the effects to commit with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub state: RunState,
    pub effects: Vec<Effect>,
}

/// The pure transition function, in a world where every function exists.
pub fn decide(run: &RunState, input: Input, now_ms: i64, policy: Policy) -> Decision {
    decide_with(run, input, now_ms, policy, &AllFunctions)
}

/// The pure transition function; `lookup` answers what the run's reply asks
/// of the world (whether an invoked function exists).
pub fn decide_with(run: &RunState, input: Input, now_ms: i64, policy: Policy, lookup: &dyn Lookup) -> Decision {
    let mut d = Decision { state: run.clone(), effects: Vec::new() };
    if run.status.is_terminal() {
        return d;
    }
    match input {
        Input::Cancel => finish(&mut d, RunStatus::Cancelled, Value::Null),
        Input::EngineFailed { message } => finish(&mut d, RunStatus::Failed, errors::engine_failed(message)),
        Input::FunctionNotFound { target, attempt } => {
            let error = errors::function_not_found(run.function.as_str());
            call_failed(&mut d, &target, attempt, error, true, None, now_ms, policy)
        }
        Input::StartTimeout { call_sent } => {
            let started = call_sent || run.version != -1 || !run.done.is_empty();
            if !started {
                finish(&mut d, RunStatus::Cancelled, Value::Null);
            }
        }
        Input::Checkpoint { ops } => {
            for op in ops.into_iter().filter(|o| matches!(o.op, Opcode::StepRun | Opcode::Step) && malformed(o).is_none()) {
                if d.state.done.contains(&op.id) || d.state.done.len() >= MAX_STEPS {
                    continue;
                }
                let name = op.display();
                let (memo, size) = step_memo(&op);
                save_sized(&mut d, op.id, name, memo, size);
            }
        }
        Input::SleepDone { step } => resolve_async(&mut d, step, Value::Null, now_ms),
        Input::WaitResolved { step, event } => resolve_async(&mut d, step, event.unwrap_or(Value::Null), now_ms),
        Input::SignalResolved { step, result } => {
            let memo = match result {
                Some(Ok(signal)) => json!({ "data": signal }),
                Some(Err(error)) => errors::failed_memo(error),
                None => Value::Null,
            };
            resolve_async(&mut d, step, memo, now_ms)
        }
        Input::InvokeResolved { step, result } => {
            let memo = match result {
                Ok(data) => json!({ "data": data }),
                Err(error) => errors::failed_memo(error),
            };
            resolve_async(&mut d, step, memo, now_ms)
        }
        Input::Reply { target, attempt, reply, meta, gateway } => {
            if let Some(v) = meta.version {
                d.state.version = v;
            }
            match reply {
                Reply::Done(output) => finish_with_output(&mut d, output),
                Reply::Ops(ops) => {
                    let call = CallInfo { target: &target, attempt, meta: &meta, gateway: &gateway };
                    apply_ops(&mut d, &call, ops, now_ms, policy, lookup)
                }
                Reply::Error { error, .. } => {
                    call_failed(&mut d, &target, attempt, error, meta.no_retry == Some(true), meta.retry_after, now_ms, policy)
                }
                Reply::Invalid(reason) => {
                    call_failed(&mut d, &target, attempt, errors::invalid_response(reason), false, meta.retry_after, now_ms, policy)
                }
            }
        }
    }
    if !d.state.status.is_terminal() && d.state.state_bytes > MAX_RUN_STATE_BYTES as u64 {
        // Nothing of this input is kept: the run fails as it stood.
        let size = d.state.state_bytes;
        d = Decision { state: run.clone(), effects: Vec::new() };
        finish(&mut d, RunStatus::Failed, errors::state_too_large(size, MAX_RUN_STATE_BYTES));
    }
    d
}

/// Bytes of a value as JSON.
fn json_size(v: &Value) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(0)
}

/// Completes the run with `output`, or fails it when the output is over the
/// step output limit (as Inngest does for a function's return value).
fn finish_with_output(d: &mut Decision, output: Value) {
    let size = json_size(&output);
    if size > MAX_STEP_OUTPUT_BYTES {
        return finish(d, RunStatus::Failed, errors::output_too_large("the function's output", Some(size), MAX_STEP_OUTPUT_BYTES));
    }
    finish(d, RunStatus::Completed, output)
}

/// The memo of a step that returned (`StepRun`, or `Step` which carries its
/// memo as is), with its size as JSON: an error memo when the output is over
/// the limit. The output is serialized once, here.
fn step_memo(op: &Op) -> (Value, usize) {
    let data = op.data.clone().unwrap_or(Value::Null);
    let size = json_size(&data);
    if size > MAX_STEP_OUTPUT_BYTES {
        let memo = errors::failed_memo(errors::output_too_large("step output", Some(size), MAX_STEP_OUTPUT_BYTES));
        let memo_size = json_size(&memo);
        (memo, memo_size)
    } else if op.op == Opcode::Step {
        (data, size)
    } else {
        // `{"data":` + data + `}`
        (json!({ "data": data }), size + 9)
    }
}

fn finish(d: &mut Decision, status: RunStatus, output: Value) {
    d.state.status = status;
    d.effects.push(Effect::Finish { status, output });
}

/// A whole request failed: retry the same request, or fail the run.
#[allow(clippy::too_many_arguments)]
fn call_failed(
    d: &mut Decision,
    target: &CallTarget,
    attempt: u32,
    error: Value,
    no_retry: bool,
    retry_after: Option<Duration>,
    now_ms: i64,
    policy: Policy,
) {
    if !retry(d, target, attempt, no_retry, retry_after, now_ms, policy) {
        finish(d, RunStatus::Failed, error);
    }
}

/// The one retry rule: the same request again after the backoff, while
/// attempts are left and the SDK did not say `X-Inngest-No-Retry`. Returns
/// whether a retry was scheduled.
fn retry(
    d: &mut Decision,
    target: &CallTarget,
    attempt: u32,
    no_retry: bool,
    retry_after: Option<Duration>,
    now_ms: i64,
    policy: Policy,
) -> bool {
    if no_retry || attempt.saturating_add(1) >= d.state.max_attempts {
        return false;
    }
    let delay = retry_delay(policy.retry, attempt, policy.jitter_ms, retry_after);
    d.effects.push(Effect::Call { target: target.clone(), attempt: attempt + 1, at_ms: after(now_ms, delay) });
    true
}

/// A sleep, wait or invoke finished: memoize and maybe call again.
fn resolve_async(d: &mut Decision, step: String, memo: Value, now_ms: i64) {
    if d.state.done.contains(&step) {
        return;
    }
    let race = d.state.race.contains(&step);
    save(d, step.clone(), step, memo);
    after_completion(d, now_ms, race);
}

fn save(d: &mut Decision, step: String, name: String, memo: Value) {
    let size = json_size(&memo);
    save_sized(d, step, name, memo, size);
}

/// [`save`] for a memo whose JSON size is already known.
fn save_sized(d: &mut Decision, step: String, name: String, memo: Value, size: usize) {
    d.state.state_bytes = d.state.state_bytes.saturating_add(size as u64);
    d.state.pending.remove(&step);
    d.state.race.remove(&step);
    d.state.done.insert(step.clone());
    d.effects.push(Effect::SaveStep { step, name, memo });
}

/// After a step completes: the next discovery, unless (request version 2)
/// siblings of a parallel group are still pending and the step was not in a
/// race (`parallelMode: "race"`, which resumes the function at once).
fn after_completion(d: &mut Decision, now_ms: i64, race: bool) {
    if d.state.version >= 2 && !d.state.pending.is_empty() {
        if race {
            push_discovery(d, now_ms);
        }
        return;
    }
    if d.state.version >= 2 {
        d.state.force_plan = false;
    }
    push_discovery(d, now_ms);
}

fn push_discovery(d: &mut Decision, at_ms: i64) {
    let exists = d.effects.iter().any(|e| matches!(e, Effect::Call { target: CallTarget::Discovery, attempt: 0, .. }));
    if !exists {
        d.effects.push(Effect::Call { target: CallTarget::Discovery, attempt: 0, at_ms });
    }
}

/// The call a reply answers, and what the shell did for its gateway ops.
struct CallInfo<'a> {
    target: &'a CallTarget,
    attempt: u32,
    meta: &'a ReplyMeta,
    gateway: &'a [GatewayResult],
}

/// Whether an op asks for `parallelMode: "race"`.
fn races(op: &Op) -> bool {
    op.opt_str("parallelMode").is_some_and(|m| m.eq_ignore_ascii_case("race"))
}

fn apply_ops(d: &mut Decision, call: &CallInfo<'_>, ops: Vec<Op>, now_ms: i64, policy: Policy, lookup: &dyn Lookup) {
    let CallInfo { target, attempt, meta, gateway } = *call;
    // Distinct steps the run would have: memoized, in flight, and newly reported.
    let mut steps: BTreeSet<&str> = d.state.done.iter().chain(&d.state.pending).map(String::as_str).collect();
    steps.extend(ops.iter().filter(|o| is_step(&o.op)).map(|o| o.id.as_str()));
    if ops.len() > MAX_STEPS || steps.len() > MAX_STEPS {
        return finish(d, RunStatus::Failed, errors::step_limit(MAX_STEPS));
    }
    if let Some(reason) = ops.iter().find_map(malformed) {
        return call_failed(d, target, attempt, errors::invalid_response(reason), false, meta.retry_after, now_ms, policy);
    }
    let lazy = |o: &Op| {
        matches!(
            o.op,
            Opcode::StepPlanned
                | Opcode::Sleep
                | Opcode::WaitForEvent
                | Opcode::WaitForSignal
                | Opcode::InvokeFunction
                | Opcode::Gateway
                | Opcode::AIGateway
        )
    };
    if ops.iter().filter(|o| lazy(o) || o.op == Opcode::StepRun).count() > 1 {
        d.state.force_plan = true;
    }
    let op_count = ops.len();
    let mut completed = false;
    // A step of a race finished: the function is called at once.
    let mut race = false;
    let mut call_now = false;
    // Steps already memoized (checkpointed during this call) still count as
    // progress: the run must get its next call.
    let mut repeated = false;
    for op in ops {
        let name = op.display();
        match op.op {
            Opcode::StepRun | Opcode::Step => {
                if d.state.done.contains(&op.id) {
                    repeated = true;
                    continue;
                }
                race |= races(&op) || d.state.race.contains(&op.id);
                let (memo, size) = step_memo(&op);
                save_sized(d, op.id, name, memo, size);
                completed = true;
            }
            Opcode::StepFailed => {
                if d.state.done.contains(&op.id) {
                    continue;
                }
                let error = op.error.clone().or(op.data.clone()).unwrap_or_else(|| errors::error("Error", "step failed"));
                race |= races(&op) || d.state.race.contains(&op.id);
                save(d, op.id, name, errors::failed_memo(error));
                completed = true;
            }
            Opcode::StepError => {
                if d.state.done.contains(&op.id) {
                    continue;
                }
                let error = op.error.clone().unwrap_or_else(|| errors::error("Error", "step errored"));
                if !retry(d, target, attempt, meta.no_retry == Some(true), meta.retry_after, now_ms, policy) {
                    race |= races(&op) || d.state.race.contains(&op.id);
                    save(d, op.id, name, errors::failed_memo(error));
                    completed = true;
                }
            }
            Opcode::StepPlanned => {
                if d.state.done.contains(&op.id) || d.state.planned.contains(&op.id) {
                    continue;
                }
                d.state.planned.insert(op.id.clone());
                d.state.pending.insert(op.id.clone());
                if races(&op) {
                    d.state.race.insert(op.id.clone());
                }
                d.effects.push(Effect::Call { target: CallTarget::Step(op.id), attempt: 0, at_ms: now_ms });
            }
            Opcode::Sleep => {
                if d.state.done.contains(&op.id) || d.state.pending.contains(&op.id) {
                    continue;
                }
                match sleep_until(&op, now_ms) {
                    Ok(at_ms) => {
                        d.state.pending.insert(op.id.clone());
                        if races(&op) {
                            d.state.race.insert(op.id.clone());
                        }
                        d.effects.push(Effect::Sleep { step: op.id, name, at_ms });
                    }
                    Err(msg) => {
                        save(d, op.id, name, errors::failed_memo(errors::error("Error", msg)));
                        completed = true;
                    }
                }
            }
            Opcode::WaitForEvent => {
                if d.state.done.contains(&op.id) || d.state.pending.contains(&op.id) {
                    continue;
                }
                let event = op.opt_str("event").map(str::to_string).or(op.name.clone()).unwrap_or_default();
                let if_exp = op.opt_str("if").filter(|s| !s.trim().is_empty()).map(str::to_string);
                let timeout = op.opt_str("timeout").unwrap_or("");
                if let Some(Err(e)) = if_exp.as_deref().map(crate::expr::Expr::compile) {
                    save(d, op.id, name, errors::failed_memo(errors::error("InvalidExpressionError", e)));
                    completed = true;
                    continue;
                }
                let expires_ms = match timestr::parse_duration(timeout) {
                    Ok(t) => now_ms.saturating_add(timestr::millis_i64(t).min(MAX_SLEEP_MS)),
                    Err(_) if timeout.is_empty() => now_ms,
                    Err(e) => {
                        save(d, op.id, name, errors::failed_memo(errors::error("Error", e.to_string())));
                        completed = true;
                        continue;
                    }
                };
                d.state.pending.insert(op.id.clone());
                if races(&op) {
                    d.state.race.insert(op.id.clone());
                }
                let name = op.display_name.clone().unwrap_or_else(|| op.id.clone());
                d.effects.push(Effect::WaitForEvent { step: op.id, name, event, if_exp, expires_ms });
            }
            Opcode::InvokeFunction => {
                if d.state.done.contains(&op.id) || d.state.pending.contains(&op.id) {
                    continue;
                }
                let function = op.opt_str("function_id").unwrap_or("").to_string();
                let payload = op.opts.as_ref().and_then(|o| o.get("payload")).cloned().unwrap_or_else(|| json!({}));
                let size = json_size(&payload);
                if size > ingot_protocol::event::MAX_EVENT_BYTES {
                    let max = ingot_protocol::event::MAX_EVENT_BYTES;
                    let message = format!("the invoke payload is {size} bytes, over the event limit of {max} bytes");
                    save(d, op.id, name, errors::failed_memo(errors::error("Error", message)));
                    completed = true;
                    continue;
                }
                if !lookup.function_exists(&function) {
                    save(d, op.id, name, errors::failed_memo(errors::invoke_not_found(&function)));
                    completed = true;
                    continue;
                }
                let expires_ms = match op.opt_str("timeout").map(timestr::parse_duration) {
                    Some(Ok(t)) => now_ms.saturating_add(timestr::millis_i64(t).min(MAX_SLEEP_MS)),
                    _ => now_ms.saturating_add(MAX_SLEEP_MS),
                };
                d.state.pending.insert(op.id.clone());
                if races(&op) {
                    d.state.race.insert(op.id.clone());
                }
                let name = op.display_name.clone().unwrap_or_else(|| op.id.clone());
                d.effects.push(Effect::Invoke { step: op.id, name, function, payload, expires_ms });
            }
            Opcode::WaitForSignal => {
                if d.state.done.contains(&op.id) || d.state.pending.contains(&op.id) {
                    continue;
                }
                let signal = op.opt_str("signal").or(op.name.as_deref()).unwrap_or("").to_string();
                if signal.trim().is_empty() {
                    save(d, op.id, name, errors::failed_memo(errors::error("Error", "step.waitForSignal needs a signal name")));
                    completed = true;
                    continue;
                }
                if signal.len() > MAX_SIGNAL_BYTES {
                    let message = format!("the signal name is {} bytes long; the limit is {MAX_SIGNAL_BYTES}", signal.len());
                    save(d, op.id, name, errors::failed_memo(errors::error("Error", message)));
                    completed = true;
                    continue;
                }
                let timeout = op.opt_str("timeout").unwrap_or("");
                let expires_ms = match timestr::parse_duration(timeout) {
                    Ok(t) => now_ms.saturating_add(timestr::millis_i64(t).min(MAX_SLEEP_MS)),
                    // No timeout: a year, as Inngest.
                    Err(_) if timeout.is_empty() => now_ms.saturating_add(MAX_SLEEP_MS),
                    Err(e) => {
                        save(d, op.id, name, errors::failed_memo(errors::error("Error", e.to_string())));
                        completed = true;
                        continue;
                    }
                };
                let replace = op.opt_str("conflict").is_some_and(|c| c.eq_ignore_ascii_case("replace"));
                d.state.pending.insert(op.id.clone());
                if races(&op) {
                    d.state.race.insert(op.id.clone());
                }
                let name = op.display_name.clone().unwrap_or_else(|| op.id.clone());
                d.effects.push(Effect::WaitForSignal { step: op.id, name, signal, replace, expires_ms });
            }
            Opcode::Gateway | Opcode::AIGateway => {
                if d.state.done.contains(&op.id) {
                    repeated = true;
                    continue;
                }
                let req = match gateway::request(&op) {
                    Ok(r) => r,
                    Err(reason) => {
                        save(d, op.id.clone(), name, gateway::invalid_memo(&op, &reason));
                        completed = true;
                        continue;
                    }
                };
                let outcome = gateway
                    .iter()
                    .find(|g| g.step == op.id)
                    .map(|g| g.outcome.clone())
                    .unwrap_or_else(|| GatewayOutcome::Failed { message: "the engine did not make the request".into() });
                let memo = match gateway::success_memo(&req, &outcome) {
                    Some(memo) => memo,
                    None if retry(d, target, attempt, false, None, now_ms, policy) => continue,
                    None => gateway::failure_memo(&req, &outcome),
                };
                let memo = if json_size(&memo) > MAX_STEP_OUTPUT_BYTES {
                    errors::failed_memo(errors::output_too_large("the response", Some(json_size(&memo)), MAX_STEP_OUTPUT_BYTES))
                } else {
                    memo
                };
                race |= races(&op) || d.state.race.contains(&op.id);
                save(d, op.id, name, memo);
                completed = true;
            }
            Opcode::RunComplete => {
                finish_with_output(d, op.data.unwrap_or(Value::Null));
                return;
            }
            Opcode::DiscoveryRequest => call_now = true,
            Opcode::StepNotFound => {
                return call_failed(d, target, attempt, errors::step_not_found(&op.id), false, meta.retry_after, now_ms, policy);
            }
            // Experimental and unknown ops are ignored, never fatal.
            Opcode::DeferAdd | Opcode::DeferAbort | Opcode::Other(_) => {}
        }
    }
    if completed {
        after_completion(d, now_ms, race);
    } else if call_now {
        push_discovery(d, now_ms);
    }
    // The no-progress rule. Every pending step has its own way forward (a
    // queued call, a sleep's wake-up, a wait's or invoke's pause and timeout),
    // except the step this call was for: its call ends now. So a reply that
    // saves and schedules nothing while nothing else is pending, or while
    // the step it was called for is still unresolved, would leave the run
    // with no way forward.
    let target_step = match target {
        CallTarget::Step(s) => Some(s.as_str()),
        CallTarget::Discovery => None,
    };
    if d.effects.is_empty() && d.state.pending.iter().all(|p| Some(p.as_str()) == target_step) {
        let error = errors::no_progress(op_count);
        if repeated && attempt.saturating_add(1) < d.state.max_attempts {
            // Steps checkpointed during the call and reported again: ask at once.
            d.effects.push(Effect::Call { target: CallTarget::Discovery, attempt: attempt + 1, at_ms: now_ms });
        } else {
            call_failed(d, target, attempt, error, false, meta.retry_after, now_ms, policy);
        }
    }
}

/// Ops that make (or report) a step of the run, as opposed to control ops.
fn is_step(op: &Opcode) -> bool {
    matches!(
        op,
        Opcode::StepRun
            | Opcode::Step
            | Opcode::StepPlanned
            | Opcode::StepError
            | Opcode::StepFailed
            | Opcode::Sleep
            | Opcode::WaitForEvent
            | Opcode::WaitForSignal
            | Opcode::InvokeFunction
            | Opcode::Gateway
            | Opcode::AIGateway
    )
}

/// A Sleep op's wake-up time: `opts.duration`, else `name` as a duration or a date.
fn sleep_until(op: &Op, now_ms: i64) -> Result<i64, String> {
    let spec = op.opt_str("duration").or(op.name.as_deref()).unwrap_or("").trim().to_string();
    let at = if let Ok(d) = timestr::parse_duration(&spec) {
        now_ms.saturating_add(timestr::millis_i64(d))
    } else if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&spec) {
        t.timestamp_millis()
    } else {
        return Err(format!("cannot read sleep {spec:?}: expected a duration like \"2s\" or an ISO-8601 time"));
    };
    Ok(at.clamp(now_ms, now_ms.saturating_add(MAX_SLEEP_MS)))
}

/// `now_ms` plus a delay, saturating.
fn after(now_ms: i64, delay: Duration) -> i64 {
    now_ms.saturating_add(timestr::millis_i64(delay))
}

/// Why an op cannot be read, if it cannot.
fn malformed(op: &Op) -> Option<String> {
    if op.id.len() > MAX_STEP_ID_BYTES {
        return Some(format!("an op's step id is {} bytes long; the limit is {MAX_STEP_ID_BYTES}", op.id.len()));
    }
    None
}
