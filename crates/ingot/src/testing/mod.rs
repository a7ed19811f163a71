//! Testing functions without an engine, like `@inngest/test`: run a
//! function against an event and mocked step results, and see what the SDK
//! would answer ([`TestRun::call`]) or what the run would end with
//! ([`TestRun::run`]).
//!
//! Mocks are keyed by step id (`"item:1"` for the second use of `"item"`).
//! A mocked step is memoized: its body does not run, and sleeps, waits and
//! invokes resolve with the mocked value (`null` for a sleep or a wait that
//! timed out, the event for a matched wait).

#[cfg(test)]
pub(crate) mod fixtures;

use std::collections::{HashSet, VecDeque};

use ingot_protocol::call::{IncomingCallCtx, IncomingCallRequest};
use ingot_protocol::{hash_step_id, Op, Opcode};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::error::StepError;
use crate::event::IntoEvent;
use crate::function::{Function, Role};
use crate::serve::run_function;

/// Most calls [`TestRun::run`] makes before giving up.
const MAX_CALLS: u32 = 1_000;

/// A function, an event and mocked steps, ready to be run.
#[derive(Clone)]
pub struct TestRun {
    client: Client,
    function: Function,
    role: Role,
    event: Value,
    memo: Map<String, Value>,
    attempt: u32,
    max_attempts: Option<u32>,
    disable_immediate_execution: bool,
    run_id: String,
}

/// What the SDK answered to one call.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutcome {
    /// 200: the function returned this output.
    Completed(Value),
    /// 4xx/5xx: the function failed; `retriable` unless told not to retry.
    Failed {
        /// The error the SDK reported.
        error: StepError,
        /// Whether the engine would retry the call.
        retriable: bool,
    },
    /// A step's body ran and returned this output (`StepRun`).
    StepRan {
        /// The step's user id.
        id: String,
        /// Its result.
        output: Value,
    },
    /// A step's body failed (`StepError`, or `StepFailed` when final).
    StepFailed {
        /// The step's user id.
        id: String,
        /// The error.
        error: StepError,
        /// `true` for `StepError` (the engine retries the step).
        retriable: bool,
    },
    /// Steps were found but not run here (`StepPlanned`, `Sleep`,
    /// `WaitForEvent`, `InvokeFunction`): the engine carries on with them.
    Ops(Vec<Op>),
    /// The SDK could not answer (e.g. the requested step was not reached).
    Error {
        /// The HTTP status.
        status: u16,
        /// The reply body.
        body: Value,
    },
}

/// How a whole run ended under [`TestRun::run`].
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// The output, or the error the run failed with.
    pub output: Result<Value, StepError>,
    /// User ids of the steps whose bodies ran, in order (not the mocked ones).
    pub steps_run: Vec<String>,
    /// How many calls the run took.
    pub calls: u32,
}

fn user_id(op: &Op) -> String {
    op.userland.as_ref().and_then(|u| u.get("id")).and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| op.display())
}

impl TestRun {
    /// A run of `function` triggered by `event`.
    pub fn new(client: &Client, function: &Function, event: impl IntoEvent) -> TestRun {
        let event = event
            .into_event()
            .map(|e| {
                let mut v = e.to_wire(client.now().timestamp_millis());
                v["user"] = json!({});
                v
            })
            .unwrap_or_else(|e| json!({"name": "", "data": {"serialize_error": e.to_string()}}));
        TestRun {
            client: client.clone(),
            function: function.clone(),
            role: Role::Main,
            event,
            memo: Map::new(),
            attempt: 0,
            max_attempts: None,
            disable_immediate_execution: false,
            run_id: "01TESTRUN0000000000000000".into(),
        }
    }

    /// A run of `function`'s `on_failure` handler, with an
    /// `inngest/function.failed` event for this failed run and error.
    pub fn on_failure(client: &Client, function: &Function, failed_run_id: &str, error: StepError, event: Value) -> TestRun {
        let mut t = TestRun::new(
            client,
            function,
            crate::event::JsonEvent::new(
                <crate::FunctionFailed as crate::Event>::NAME,
                json!({
                    "function_id": client.composite_id(function.id()),
                    "run_id": failed_run_id,
                    "error": error.to_json(),
                    "event": event,
                }),
            ),
        );
        t.role = Role::OnFailure;
        t
    }

    /// Mocks step `id` as done with this result.
    pub fn mock_step(mut self, id: &str, result: impl Serialize) -> TestRun {
        let data = serde_json::to_value(result).unwrap_or(Value::Null);
        self.memo.insert(hash_step_id(id), json!({ "data": data }));
        self
    }

    /// Mocks step `id` as failed for good with this error.
    pub fn mock_step_error(mut self, id: &str, error: StepError) -> TestRun {
        self.memo.insert(hash_step_id(id), json!({ "error": error.to_json() }));
        self
    }

    /// The attempt of the call (zero-based).
    pub fn attempt(mut self, attempt: u32) -> TestRun {
        self.attempt = attempt;
        self
    }

    /// The attempts the engine allows (default: the function's retries + 1).
    pub fn max_attempts(mut self, max_attempts: u32) -> TestRun {
        self.max_attempts = Some(max_attempts);
        self
    }

    /// Makes the call plan steps instead of running one at once, as the
    /// engine asks after parallel steps.
    pub fn disable_immediate_execution(mut self) -> TestRun {
        self.disable_immediate_execution = true;
        self
    }

    fn request(&self, memo: &Map<String, Value>, attempt: u32, plan: bool, step_id: &str) -> IncomingCallRequest {
        IncomingCallRequest {
            event: self.event.clone(),
            events: vec![self.event.clone()],
            steps: memo.clone(),
            version: 2,
            use_api: false,
            ctx: IncomingCallCtx {
                run_id: self.run_id.clone(),
                step_id: Some(step_id.to_string()),
                attempt,
                max_attempts: self.max_attempts,
                disable_immediate_execution: plan,
                ..IncomingCallCtx::default()
            },
        }
    }

    async fn call_raw(&self, memo: &Map<String, Value>, attempt: u32, plan: bool, step_id: &str) -> (CallOutcome, Vec<Op>) {
        let req = self.request(memo, attempt, plan, step_id);
        let step = (step_id != "step").then_some(step_id);
        let reply = run_function(&self.client, &self.function, self.role, req, step).await;
        let ops = reply.parsed_ops();
        let outcome = match reply.status {
            200 => CallOutcome::Completed(reply.body),
            206 => match ops.as_slice() {
                [op] if op.op == Opcode::StepRun => {
                    CallOutcome::StepRan { id: user_id(op), output: op.data.clone().unwrap_or(Value::Null) }
                }
                [op] if matches!(op.op, Opcode::StepError | Opcode::StepFailed) => CallOutcome::StepFailed {
                    id: user_id(op),
                    error: StepError::from_json(op.error.as_ref().unwrap_or(&Value::Null)),
                    retriable: op.op == Opcode::StepError,
                },
                _ => CallOutcome::Ops(ops.clone()),
            },
            400 | 500 if reply.body.get("message").is_some() => {
                CallOutcome::Failed { error: StepError::from_json(&reply.body), retriable: reply.no_retry != Some(true) }
            }
            status => CallOutcome::Error { status, body: reply.body },
        };
        (outcome, ops)
    }

    /// One discovery call, as the engine's first call of a run (or its
    /// next call once the mocked steps are done).
    pub async fn call(&self) -> CallOutcome {
        self.call_raw(&self.memo, self.attempt, self.disable_immediate_execution, "step").await.0
    }

    /// A call that runs the planned step `id`.
    pub async fn call_step(&self, id: &str) -> CallOutcome {
        self.call_raw(&self.memo, self.attempt, true, &hash_step_id(id)).await.0
    }

    /// Runs the function to its end as the engine would: runs steps,
    /// retries failures at once (no backoff), ends sleeps at once, times out
    /// waits that are not mocked, and fails invokes that are not mocked.
    pub async fn run(&self) -> RunResult {
        let max_attempts = self.max_attempts.unwrap_or_else(|| self.function.max_attempts(self.role));
        let mut memo = self.memo.clone();
        let mut planned: VecDeque<String> = VecDeque::new();
        let mut seen_planned: HashSet<String> = HashSet::new();
        let mut force_plan = self.disable_immediate_execution;
        let mut attempt = self.attempt;
        let mut result = RunResult { output: Err(StepError::from_json(&json!("the run did not finish"))), steps_run: Vec::new(), calls: 0 };
        while result.calls < MAX_CALLS {
            result.calls += 1;
            let target = planned.front().cloned();
            let step_id = target.clone().unwrap_or_else(|| "step".into());
            let plan = force_plan || target.is_some();
            let (outcome, ops) = self.call_raw(&memo, attempt, plan, &step_id).await;
            let mut next_attempt = 0;
            match outcome {
                CallOutcome::Completed(v) => {
                    result.output = Ok(v);
                    return result;
                }
                CallOutcome::Failed { error, retriable } => {
                    if retriable && attempt + 1 < max_attempts {
                        attempt += 1;
                        continue;
                    }
                    result.output = Err(error);
                    return result;
                }
                CallOutcome::Error { body, .. } => {
                    result.output = Err(StepError::from_json(&body));
                    return result;
                }
                CallOutcome::StepFailed { retriable: true, .. } => next_attempt = attempt + 1,
                _ => {}
            }
            for op in &ops {
                match op.op {
                    Opcode::StepRun => {
                        result.steps_run.push(user_id(op));
                        memo.insert(op.id.clone(), json!({"data": op.data.clone().unwrap_or(Value::Null)}));
                        planned.retain(|p| p != &op.id);
                    }
                    Opcode::StepFailed => {
                        result.steps_run.push(user_id(op));
                        memo.insert(op.id.clone(), json!({"error": op.error.clone().unwrap_or(Value::Null)}));
                        planned.retain(|p| p != &op.id);
                    }
                    Opcode::StepPlanned if seen_planned.insert(op.id.clone()) => planned.push_back(op.id.clone()),
                    Opcode::Sleep | Opcode::WaitForEvent => {
                        memo.insert(op.id.clone(), Value::Null);
                    }
                    Opcode::InvokeFunction => {
                        let target = op.opt_str("function_id").unwrap_or("?").to_string();
                        let message = format!("invoking {target} is not mocked in this test");
                        memo.insert(op.id.clone(), json!({"error": {"name": "Error", "message": message}}));
                    }
                    _ => {}
                }
            }
            if ops.len() > 1 {
                force_plan = true;
            }
            if planned.is_empty() && next_attempt == 0 {
                force_plan = self.disable_immediate_execution;
            }
            attempt = next_attempt;
        }
        result
    }
}
