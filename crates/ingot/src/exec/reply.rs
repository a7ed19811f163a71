//! Turning how a call ended ([`Driven`]) into the SDK's reply: the status,
//! the retry headers and the body (protocol §3.2, §3.3, §5), as the JS SDK v4
//! answers.

use serde_json::{json, Value};

use ingot_protocol::{Op, Opcode};

use super::{Driven, FoundStep, StepKind};
use crate::error::Error;

/// The reply to a call, before HTTP headers are added.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CallReply {
    pub(crate) status: u16,
    /// `X-Inngest-No-Retry`, when the SDK sets it.
    pub(crate) no_retry: Option<bool>,
    /// `Retry-After`, in whole seconds.
    pub(crate) retry_after: Option<u64>,
    pub(crate) body: Value,
}

impl CallReply {
    fn new(status: u16, body: Value) -> CallReply {
        CallReply { status, no_retry: None, retry_after: None, body }
    }

    fn ops(ops: Vec<Op>) -> CallReply {
        CallReply::new(206, serde_json::to_value(ops).unwrap_or_else(|_| json!([])))
    }

    /// The ops of a 206 reply.
    pub(crate) fn parsed_ops(&self) -> Vec<Op> {
        if self.status != 206 {
            return Vec::new();
        }
        serde_json::from_value(self.body.clone()).unwrap_or_default()
    }
}

/// The op for a step found in this call: `StepPlanned` for a step with a
/// body, its own op for sleeps, waits and invokes.
pub(crate) fn found_op(step: &FoundStep) -> Op {
    let mut op = base_op(step, Opcode::StepPlanned);
    match &step.kind {
        StepKind::Run { .. } => {}
        StepKind::Sleep { .. } => op.op = Opcode::Sleep,
        StepKind::WaitForEvent { .. } => op.op = Opcode::WaitForEvent,
        StepKind::Invoke { .. } => op.op = Opcode::InvokeFunction,
        StepKind::WaitForSignal { .. } => op.op = Opcode::WaitForSignal,
    }
    op
}

fn base_op(step: &FoundStep, opcode: Opcode) -> Op {
    let (name, opts) = match &step.kind {
        StepKind::Run { name, opts } => (Some(name.clone()), opts.clone()),
        StepKind::Sleep { name } => (Some(name.clone()), json!({})),
        StepKind::WaitForEvent { event, opts } => (Some(event.clone()), opts.clone()),
        StepKind::Invoke { opts } => (None, opts.clone()),
        StepKind::WaitForSignal { signal, opts } => (Some(signal.clone()), opts.clone()),
    };
    let userland = if step.index > 0 { json!({"id": step.user_id, "index": step.index}) } else { json!({"id": step.user_id}) };
    Op {
        id: step.hashed.clone(),
        op: opcode,
        name,
        display_name: Some(step.user_id.clone()),
        opts: Some(opts),
        data: None,
        error: None,
        userland: Some(userland),
    }
}

/// `Retry-After` seconds for a delay: rounded up, at least 1.
fn retry_secs(e: &Error) -> Option<u64> {
    e.retry_delay().map(|d| {
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        secs.max(1)
    })
}

/// The reply for a finished call. `attempt` is zero-based.
pub(crate) fn reply(driven: Driven, attempt: u32, max_attempts: u32) -> CallReply {
    let last_attempt = attempt + 1 >= max_attempts;
    match driven {
        Driven::Finished(Ok(value)) => CallReply::new(200, value),
        Driven::Finished(Err(e)) => {
            let fail_now = matches!(e, Error::NonRetriable(_) | Error::Step(_)) || last_attempt;
            let mut r = CallReply::new(if fail_now { 400 } else { 500 }, e.to_json());
            r.no_retry = Some(fail_now);
            if !fail_now {
                r.retry_after = retry_secs(&e);
            }
            r
        }
        Driven::Ran { step, result: Ok(data) } => {
            let mut op = base_op(&step, Opcode::StepRun);
            op.data = Some(data);
            CallReply::ops(vec![op])
        }
        Driven::Ran { step, result: Err(e) } => {
            let fail_now = !e.is_retriable() || last_attempt;
            let mut op = base_op(&step, if fail_now { Opcode::StepFailed } else { Opcode::StepError });
            op.error = Some(e.to_json());
            let mut r = CallReply::ops(vec![op]);
            r.no_retry = Some(fail_now);
            if !fail_now {
                r.retry_after = retry_secs(&e);
            }
            r
        }
        Driven::Report(steps) => CallReply::ops(steps.iter().map(found_op).collect()),
        Driven::NotFound { requested, found } => {
            let names: Vec<String> = found.iter().map(|s| format!("{} ({})", s.user_id, s.hashed)).collect();
            let mut r = CallReply::new(
                500,
                json!({
                    "error": format!(
                        "Could not find step {requested:?} to run. Found new steps: {}.",
                        names.join(", ")
                    ),
                    "requestedStep": requested,
                    "foundSteps": found
                        .iter()
                        .map(|s| json!({"id": s.hashed, "name": s.user_id, "displayName": s.user_id}))
                        .collect::<Vec<_>>(),
                    "totalFoundSteps": found.len(),
                }),
            );
            r.no_retry = Some(false);
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn step(kind: StepKind) -> FoundStep {
        FoundStep { hashed: "h".into(), user_id: "flaky".into(), index: 0, kind }
    }

    fn run() -> StepKind {
        StepKind::Run { name: "flaky".into(), opts: json!({}) }
    }

    #[test]
    fn step_errors_become_step_failed_on_the_last_attempt() {
        let ran = |attempt, e| reply(Driven::Ran { step: step(run()), result: Err(e) }, attempt, 3);
        let r = ran(0, Error::msg("boom"));
        assert_eq!((r.status, r.no_retry), (206, Some(false)));
        assert_eq!(r.parsed_ops()[0].op, Opcode::StepError);
        let r = ran(2, Error::msg("boom"));
        assert_eq!((r.parsed_ops()[0].op.clone(), r.no_retry), (Opcode::StepFailed, Some(true)));
        let r = ran(0, Error::non_retriable("fatal"));
        assert_eq!(r.parsed_ops()[0].op, Opcode::StepFailed);
        assert_eq!(r.parsed_ops()[0].error.as_ref().unwrap()["name"], "NonRetriableError");
        let r = ran(0, Error::retry_after(Duration::from_millis(29_500), "later"));
        assert_eq!((r.retry_after, r.no_retry), (Some(30), Some(false)));
    }

    #[test]
    fn function_errors_use_400_when_final() {
        let done = |attempt, e| reply(Driven::Finished(Err(e)), attempt, 5);
        assert_eq!(done(0, Error::msg("x")).status, 500);
        assert_eq!(done(4, Error::msg("x")).status, 400);
        assert_eq!(done(0, Error::non_retriable("x")).no_retry, Some(true));
        let r = done(0, Error::retry_after(Duration::from_secs(60), "x"));
        assert_eq!((r.status, r.retry_after), (500, Some(60)));
    }
}
