//! Testing functions without an engine, like `@inngest/test`: run a
//! function against an event and mocked step results, and see what the SDK
//! would answer ([`TestRun::call`]) or what the run would end with
//! ([`TestRun::run`]).
//!
//! Mocks are keyed by step id (`"item:1"` for the second use of `"item"`).
//! A mocked step is memoized: its body does not run, and sleeps, waits and
//! invokes resolve with the mocked value: [`TestRun::mock_event`] for a
//! matched wait (typed by the event), [`TestRun::mock_wait_timeout`] for one
//! that timed out, [`TestRun::mock_invoke`] for an invoke (typed by the
//! reference). [`TestRun::fail_step_once`] makes a step's first attempt
//! fail, and [`RunResult::step`] shows each step's attempts and errors.
//!
//! ```
//! use ingot::testing::TestRun;
//! use ingot::{Ctx, Function, WaitOpts};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Order { id: u32 }
//! #[derive(Serialize, Deserialize)]
//! struct Paid { order: u32 }
//! ingot::event!(Order = "shop/order.placed"; Paid = "shop/order.paid");
//!
//! let checkout = Function::new("checkout").trigger_event::<Order>().handler(|ctx: Ctx<Order>| async move {
//!     let reserved: bool = ctx.step.run("reserve", || async { Ok(true) }).await?;
//!     let paid = ctx.step.wait_for_event::<Paid>("paid", WaitOpts::new("1h").match_field("data.id")).await?;
//!     Ok((reserved, paid.map(|e| e.data.order)))
//! });
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let run = TestRun::new(&checkout, Order { id: 7 })
//!     .fail_step_once("reserve")
//!     .mock_event::<Paid>("paid", Paid { order: 7 })
//!     .run()
//!     .await;
//! assert_eq!(run.output, Ok(serde_json::json!([true, 7])));
//! let reserve = run.step("reserve").unwrap();
//! assert_eq!((reserve.attempts, reserve.errors.len()), (2, 1)); // failed once, then succeeded
//! # });
//! ```

#[cfg(test)]
pub(crate) mod fixtures;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use ingot_protocol::call::{IncomingCallCtx, IncomingCallRequest};
use ingot_protocol::{hash_step_id, Op, Opcode};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::client::{Client, ClientBuilder};
use crate::error::StepError;
use crate::event::{Event, EventType, IntoEvent};
use crate::function::state::StateMap;
use crate::function::{Function, Role};
use crate::serve::{run_function, CallSetup};
use crate::step::FunctionRef;

/// The app id of the client a [`TestRun`] uses unless given one.
pub const TEST_APP_ID: &str = "test-app";

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
    /// Hashed ids of steps whose first attempt fails.
    fail_once: HashSet<String>,
    state: Arc<StateMap>,
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
    /// User ids of the steps whose bodies ran to a result (a value, or a
    /// failure for good), in order; not the mocked ones.
    pub steps_run: Vec<String>,
    /// Every step that was attempted, in the order first attempted, with
    /// its attempts and errors (not the mocked ones).
    pub steps: Vec<StepAttempts>,
    /// How many calls the run took.
    pub calls: u32,
}

impl RunResult {
    /// The attempts of step `id` (`"item:1"` for the second use of `"item"`).
    pub fn step(&self, id: &str) -> Option<&StepAttempts> {
        self.steps.iter().find(|s| s.id == id)
    }
}

/// What happened to one step over a [`TestRun::run`].
#[derive(Debug, Clone, PartialEq)]
pub struct StepAttempts {
    /// The step's user id.
    pub id: String,
    /// How many times it was attempted.
    pub attempts: u32,
    /// The error of each failed attempt, in order.
    pub errors: Vec<StepError>,
    /// Its result: `Ok` once it succeeded, `Err` once it failed for good,
    /// `None` while it was still being retried when the run ended.
    pub result: Option<Result<Value, StepError>>,
}

impl StepAttempts {
    /// `true` when the step failed at least once and then succeeded.
    pub fn recovered(&self) -> bool {
        !self.errors.is_empty() && matches!(self.result, Some(Ok(_)))
    }
}

/// Records one attempt of step `op` in `steps`.
fn record_attempt(steps: &mut Vec<StepAttempts>, op: &Op, result: Result<Value, StepError>, final_result: bool) {
    let id = user_id(op);
    let i = match steps.iter().position(|s| s.id == id) {
        Some(i) => i,
        None => {
            steps.push(StepAttempts { id, attempts: 0, errors: Vec::new(), result: None });
            steps.len() - 1
        }
    };
    let step = &mut steps[i];
    step.attempts += 1;
    if let Err(e) = &result {
        step.errors.push(e.clone());
    }
    if final_result {
        step.result = Some(result);
    }
}

fn user_id(op: &Op) -> String {
    op.userland.as_ref().and_then(|u| u.get("id")).and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| op.display())
}

/// The client of a [`TestRun`] not given one: dev mode, app
/// [`TEST_APP_ID`], and an engine address nothing listens on, so a step
/// that sends events fails instead of reaching a real engine.
fn test_client() -> Client {
    ClientBuilder::new(TEST_APP_ID).dev().base_url("http://127.0.0.1:9").build().expect("a valid test client")
}

impl TestRun {
    /// A run of `function` (a [`Function`] or a [`crate::TypedFunction`])
    /// triggered by `event`, with a dev client for app [`TEST_APP_ID`] (see
    /// [`TestRun::client`]).
    pub fn new(function: &impl AsRef<Function>, event: impl IntoEvent) -> TestRun {
        let client = test_client();
        let event = event
            .into_event()
            .map(|e| {
                let mut v = e.to_wire(client.now().timestamp_millis());
                v["user"] = json!({});
                v
            })
            .unwrap_or_else(|e| json!({"name": "", "data": {"serialize_error": e.to_string()}}));
        TestRun {
            client,
            function: function.as_ref().clone(),
            role: Role::Main,
            event,
            memo: Map::new(),
            fail_once: HashSet::new(),
            state: Arc::default(),
            attempt: 0,
            max_attempts: None,
            disable_immediate_execution: false,
            run_id: "01TESTRUN0000000000000000".into(),
        }
    }

    /// A run of `function`'s `on_failure` handler, with an
    /// `inngest/function.failed` event for this failed run and error.
    pub fn on_failure(function: &impl AsRef<Function>, failed_run_id: &str, error: StepError, event: Value) -> TestRun {
        let mut t = TestRun::new(
            function,
            crate::event::JsonEvent::new(
                <crate::FunctionFailed as crate::Event>::NAME,
                json!({
                    "function_id": Value::Null, // the client's composite id, filled in per call
                    "run_id": failed_run_id,
                    "error": error.to_json(),
                    "event": event,
                }),
            ),
        );
        t.role = Role::OnFailure;
        t
    }

    /// Runs with this client (its app id names the functions; its engine
    /// receives the events that steps send).
    pub fn client(mut self, client: &Client) -> TestRun {
        self.client = client.clone();
        self
    }

    /// Gives the handler a value it reads with [`crate::Ctx::state`], as
    /// [`crate::Handler::with_state`] does when served.
    pub fn with_state<S: Send + Sync + 'static>(mut self, state: S) -> TestRun {
        Arc::make_mut(&mut self.state).insert(Arc::new(state));
        self
    }

    /// Mocks step `id` as done with this result.
    pub fn mock_step(mut self, id: &str, result: impl Serialize) -> TestRun {
        let data = serde_json::to_value(result).unwrap_or(Value::Null);
        self.memo.insert(hash_step_id(id), json!({ "data": data }));
        self
    }

    /// Mocks `wait_for_event` step `id` as matched by an event `E` with
    /// this payload (its name, an id and a timestamp are filled in).
    pub fn mock_event<E: Event>(self, id: &str, data: E::Data) -> TestRun {
        let data = serde_json::to_value(data).unwrap_or(Value::Null);
        let ts = self.client.now().timestamp_millis();
        let event = json!({"name": E::NAME, "data": data, "id": format!("mock-{id}"), "ts": ts, "user": {}});
        self.mock_step(id, event)
    }

    /// Mocks `wait_for_event` step `id` as timed out (it returns `None`).
    pub fn mock_wait_timeout(self, id: &str) -> TestRun {
        self.mock_step(id, Value::Null)
    }

    /// Mocks invoke step `id` of `function` as returning `output`, of the
    /// type the reference says the function returns.
    pub fn mock_invoke<P: EventType, T: Serialize>(self, id: &str, function: &FunctionRef<P, T>, output: T) -> TestRun {
        let _ = function;
        self.mock_step(id, output)
    }

    /// Makes the first attempt of step `id` fail (its body does not run in
    /// that attempt) with a retriable error; [`TestRun::run`] then retries
    /// it as the engine would, and [`RunResult::step`] shows both attempts.
    pub fn fail_step_once(mut self, id: &str) -> TestRun {
        self.fail_once.insert(hash_step_id(id));
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
        let mut event = self.event.clone();
        if self.role == Role::OnFailure {
            event["data"]["function_id"] = json!(self.client.composite_id(self.function.id()));
        }
        IncomingCallRequest {
            event: event.clone(),
            events: vec![event],
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

    async fn call_raw(
        &self,
        memo: &Map<String, Value>,
        failing: &HashSet<String>,
        attempt: u32,
        plan: bool,
        step_id: &str,
    ) -> (CallOutcome, Vec<Op>) {
        let req = self.request(memo, attempt, plan, step_id);
        let step = (step_id != "step").then_some(step_id);
        let setup = CallSetup { client: &self.client, app_state: self.state.clone(), failing: failing.clone() };
        let reply = run_function(&setup, &self.function, self.role, req, step).await;
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
        self.call_raw(&self.memo, &self.fail_once, self.attempt, self.disable_immediate_execution, "step").await.0
    }

    /// A call that runs the planned step `id`.
    pub async fn call_step(&self, id: &str) -> CallOutcome {
        self.call_raw(&self.memo, &self.fail_once, self.attempt, true, &hash_step_id(id)).await.0
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
        let mut failing = self.fail_once.clone();
        let mut result = RunResult {
            output: Err(StepError::from_json(&json!("the run did not finish"))),
            steps_run: Vec::new(),
            steps: Vec::new(),
            calls: 0,
        };
        while result.calls < MAX_CALLS {
            result.calls += 1;
            let target = planned.front().cloned();
            let step_id = target.clone().unwrap_or_else(|| "step".into());
            let plan = force_plan || target.is_some();
            let (outcome, ops) = self.call_raw(&memo, &failing, attempt, plan, &step_id).await;
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
                        let data = op.data.clone().unwrap_or(Value::Null);
                        record_attempt(&mut result.steps, op, Ok(data.clone()), true);
                        result.steps_run.push(user_id(op));
                        memo.insert(op.id.clone(), json!({ "data": data }));
                        planned.retain(|p| p != &op.id);
                    }
                    Opcode::StepError => {
                        failing.remove(&op.id);
                        let error = StepError::from_json(op.error.as_ref().unwrap_or(&Value::Null));
                        record_attempt(&mut result.steps, op, Err(error), false);
                    }
                    Opcode::StepFailed => {
                        failing.remove(&op.id);
                        let error = StepError::from_json(op.error.as_ref().unwrap_or(&Value::Null));
                        record_attempt(&mut result.steps, op, Err(error), true);
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
