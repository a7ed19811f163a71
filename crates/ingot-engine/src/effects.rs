//! Turns a [`Decision`] into the writes of one commit: pure, no engine, no
//! IO. The events the decision emits (a run's `function.finished`, the
//! `function.invoked` of a `step.invoke`) come back beside the writes; the
//! shell plans them like any other event (they may start runs and resume
//! pauses) and commits everything together.

use ingot_core::lifecycle::{self, Finished};
use ingot_core::{errors, CallTarget, Decision, Effect, RunStatus};
use ingot_protocol::Event;
use ingot_store::{Guard, HistoryRecord, Pause, PauseKind, QueueItem, RunRecord, StepRecord, Work, WriteOp};
use serde_json::{json, Value};
use ulid::Ulid;

use crate::error::EngineError;

/// What carrying out a decision takes.
#[derive(Debug, Default)]
pub struct DecisionOps {
    /// The run's writes, in order.
    pub ops: Vec<WriteOp>,
    /// Events the run emits, to plan and store in the same commit.
    pub emit: Vec<Event>,
}

fn enqueue(run: &RunRecord, work: Work, at_ms: i64) -> WriteOp {
    WriteOp::Enqueue(QueueItem::new(run.id(), work, at_ms))
}

fn history(run: &RunRecord, now: i64, kind: &str, step: Option<&str>, name: Option<&str>, detail: Value) -> WriteOp {
    WriteOp::History(HistoryRecord {
        run_id: run.id(),
        at_ms: now,
        kind: kind.into(),
        step: step.map(str::to_string),
        name: name.map(str::to_string),
        attempt: None,
        duration_ms: None,
        detail,
    })
}

/// The writes that carry out `decision` for `run`, whose trigger events are
/// `events`, at `now`. A decision that changes nothing writes nothing.
pub fn decision_ops(run: &RunRecord, decision: Decision, events: &[Value], now: i64) -> Result<DecisionOps, EngineError> {
    if decision.effects.is_empty() && decision.state == run.state {
        return Ok(DecisionOps::default());
    }
    let mut ops = Vec::new();
    let mut next = run.clone();
    next.state = decision.state;
    let mut emitted: Vec<Event> = Vec::new();
    let mut tail = Vec::new();
    for effect in decision.effects {
        match effect {
            Effect::SaveStep { step, name, memo } => {
                let outcome = if errors::memo_failed(&memo) { "failed" } else { "completed" };
                tail.push(history(run, now, "step", Some(&step), Some(&name), json!({"outcome": outcome})));
                tail.push(WriteOp::SaveStep(StepRecord { run_id: run.id(), step, name, memo, seq: 0, at_ms: now }));
            }
            Effect::Call { target, attempt, at_ms } => {
                if attempt > 0 {
                    tail.push(history(
                        run,
                        now,
                        "retry_scheduled",
                        target_step(&target),
                        None,
                        json!({"attempt": attempt, "at_ms": at_ms}),
                    ));
                }
                tail.push(enqueue(run, Work::Call { target, attempt }, at_ms));
            }
            Effect::Sleep { step, name, at_ms } => {
                tail.push(history(run, now, "sleep", Some(&step), Some(&name), json!({"until_ms": at_ms})));
                tail.push(enqueue(run, Work::Sleep { step }, at_ms));
            }
            Effect::WaitForEvent { step, name, event, if_exp, expires_ms } => {
                let pause = Pause {
                    id: Ulid::new().to_string(),
                    run_id: run.id(),
                    step: step.clone(),
                    kind: PauseKind::WaitForEvent,
                    event_name: Some(event.clone()),
                    if_exp: if_exp.clone(),
                    correlation_id: None,
                    trigger: events.first().cloned().unwrap_or(Value::Null),
                    expires_at_ms: expires_ms,
                };
                tail.push(history(
                    run,
                    now,
                    "wait",
                    Some(&step),
                    Some(&name),
                    json!({"event": event, "if": if_exp, "expires_ms": expires_ms}),
                ));
                tail.push(enqueue(run, Work::Timeout { step, pause: pause.id.clone(), kind: PauseKind::WaitForEvent }, expires_ms));
                tail.push(WriteOp::InsertPause(pause));
            }
            Effect::WaitForSignal { step, name, signal, replace, expires_ms } => {
                let key = ingot_core::keys::signal(&signal);
                let pause = Pause {
                    id: Ulid::new().to_string(),
                    run_id: run.id(),
                    step: step.clone(),
                    kind: PauseKind::Signal,
                    event_name: None,
                    if_exp: None,
                    correlation_id: Some(key.clone()),
                    trigger: Value::Null,
                    expires_at_ms: expires_ms,
                };
                tail.push(history(
                    run,
                    now,
                    "wait_signal",
                    Some(&step),
                    Some(&name),
                    json!({"signal": signal, "replace": replace, "expires_ms": expires_ms}),
                ));
                let timeout =
                    enqueue(run, Work::Timeout { step: step.clone(), pause: pause.id.clone(), kind: PauseKind::Signal }, expires_ms);
                // Another run holds the signal and this wait may not replace
                // it: the step fails with the core's conflict error.
                let conflict =
                    Work::Resume { step, pause: pause.id.clone(), kind: PauseKind::Signal, value: Err(errors::signal_conflict(&signal)) };
                tail.push(WriteOp::Guarded {
                    guard: Guard::ClaimSignal { signal: key, replace, now_ms: now },
                    then: vec![WriteOp::InsertPause(pause), timeout],
                    otherwise: vec![enqueue(run, conflict, now)],
                });
            }
            Effect::Invoke { step, name, function, payload, expires_ms } => {
                tail.push(history(run, now, "invoke", Some(&step), Some(&name), json!({"function": function})));
                let run_id = run.id().to_string();
                let pause = Pause {
                    id: Ulid::new().to_string(),
                    run_id: run.id(),
                    step: step.clone(),
                    kind: PauseKind::Invoke,
                    event_name: None,
                    if_exp: None,
                    correlation_id: Some(lifecycle::correlation_id(&run_id, &step)),
                    trigger: Value::Null,
                    expires_at_ms: expires_ms,
                };
                tail.push(enqueue(run, Work::Timeout { step: step.clone(), pause: pause.id.clone(), kind: PauseKind::Invoke }, expires_ms));
                tail.push(WriteOp::InsertPause(pause));
                let ev = lifecycle::invoked_event(&function, &payload, &run_id, &step, run.state.function.as_str(), expires_ms, now);
                emitted.push(internal_event(ev)?);
            }
            Effect::Finish { status, output } => {
                // Its start-timeout item goes with the run's other work.
                ops.push(WriteOp::ClearRunWork(run.id()));
                next.output = Some(output.clone());
                next.ended_at_ms = Some(now);
                tail.push(history(run, now, "finished", None, None, json!({"status": status.as_str()})));
                let finished = Finished {
                    function: run.state.function.as_str(),
                    run_id: &run.id().to_string(),
                    events,
                    status,
                    output: &output,
                    correlation_id: run.correlation_id.as_deref(),
                };
                for ev in lifecycle::finished_events(&finished, now) {
                    emitted.push(internal_event(ev)?);
                }
                if status == RunStatus::Failed {
                    tracing::info!(run_id = %run.id(), function = %run.state.function, "run failed");
                }
            }
        }
    }
    ops.push(WriteOp::UpdateRun { run: next, expected_rev: run.rev });
    ops.extend(tail);
    Ok(DecisionOps { ops, emit: emitted })
}

fn target_step(t: &CallTarget) -> Option<&str> {
    match t {
        CallTarget::Discovery => None,
        CallTarget::Step(s) => Some(s),
    }
}

/// An event the engine emits. It is built by the core, so it is not validated
/// like a user's, and it is not held to the user-event size limit: the core
/// bounds what it copies (a function's output is capped like a step's).
fn internal_event(v: Value) -> Result<Event, EngineError> {
    serde_json::from_value(v).map_err(|e| EngineError::InternalEvent(e.to_string()))
}
