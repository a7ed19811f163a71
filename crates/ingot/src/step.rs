//! Step tools (`ctx.step`): durable units of work whose results the engine
//! memoizes, so each runs once per run however often the function is
//! re-entered.
//!
//! Every tool takes an id unique within the function (repeats get `:1`,
//! `:2`, ... suffixes, as in the official SDKs). Steps that are not done
//! yet suspend the function; awaiting several at once (`futures::join!`,
//! `tokio::join!`, `join_all`) runs them in parallel, each in its own call.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::error::Error;
use crate::event::{AnyEvent, Event, EventId, EventType, IntoEvents, ReceivedEvent};
use crate::exec::{Exec, Memo, Registration, StepKind};
use crate::time::TimeSpec;

/// The step tools of one call; `ctx.step`.
#[derive(Clone)]
pub struct Step {
    exec: Arc<Exec>,
    client: Client,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step").finish_non_exhaustive()
    }
}

/// Options of [`Step::wait_for_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOpts {
    /// How long to wait before giving up (the step then returns `None`).
    pub timeout: TimeSpec,
    /// A CEL expression that the awaited event must satisfy; `event` is the
    /// run's triggering event, `async` the candidate.
    pub if_exp: Option<String>,
}

impl WaitOpts {
    /// Waits up to `timeout` (a `Duration` or a time string such as
    /// `"1h"`) for any event of the type.
    pub fn new(timeout: impl Into<TimeSpec>) -> WaitOpts {
        WaitOpts { timeout: timeout.into(), if_exp: None }
    }

    /// Only an event for which this expression is true.
    pub fn if_exp(mut self, expr: impl Into<String>) -> WaitOpts {
        self.if_exp = Some(expr.into());
        self
    }

    /// Only an event whose `field` (e.g. `"data.order_id"`) equals the
    /// triggering event's: `event.<field> == async.<field>`.
    pub fn match_field(self, field: &str) -> WaitOpts {
        self.if_exp(format!("event.{field} == async.{field}"))
    }
}

/// Options of [`Step::wait_for_signal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalOpts {
    /// How long to wait before giving up (the step then returns `None`).
    pub timeout: TimeSpec,
    /// What happens when another run already waits for the same signal.
    pub on_conflict: OnConflict,
}

/// When two runs wait for one signal name (only one can).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnConflict {
    /// This run's step fails (the engine's "Signal conflict" error).
    #[default]
    Fail,
    /// This run takes the signal over; the other stops waiting for it.
    Replace,
}

impl SignalOpts {
    /// Waits up to `timeout` (a `Duration` or a time string such as `"1h"`).
    pub fn new(timeout: impl Into<TimeSpec>) -> SignalOpts {
        SignalOpts { timeout: timeout.into(), on_conflict: OnConflict::Fail }
    }

    /// What to do when another run waits for the same signal.
    pub fn on_conflict(mut self, mode: OnConflict) -> SignalOpts {
        self.on_conflict = mode;
        self
    }
}

/// A signal a run received: its name and the data sent with it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, Serialize)]
pub struct Signal<D = Value> {
    /// The signal's name.
    pub signal: String,
    /// What the sender sent with it.
    pub data: D,
}

/// Options of [`Step::invoke_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvokeOpts {
    /// How long to wait for the invoked run before the step fails with
    /// `InngestInvokeTimeoutError` (the engine's default: one year).
    pub timeout: Option<TimeSpec>,
}

impl InvokeOpts {
    /// The engine's defaults.
    pub fn new() -> InvokeOpts {
        InvokeOpts::default()
    }

    /// Fails the step if the invoked run has not finished within `timeout`.
    pub fn timeout(mut self, timeout: impl Into<TimeSpec>) -> InvokeOpts {
        self.timeout = Some(timeout.into());
        self
    }
}

/// A function to invoke: typed by the event payload it takes (`P`) and the
/// output it returns (`T`).
///
/// For a function of this app, take it from the function itself with
/// [`crate::TypedFunction::reference`]: both types are then the handler's.
/// For a function served elsewhere (another app, another language), name
/// it by id and state its types: `FunctionRef::<Invoked<Amount>, u64>::in_app("billing", "compute-tax")`.
#[derive(Debug)]
pub struct FunctionRef<P: EventType = AnyEvent, T = Value> {
    app_id: Option<String>,
    function_id: String,
    _types: PhantomData<fn(P) -> T>,
}

impl<P: EventType, T> Clone for FunctionRef<P, T> {
    fn clone(&self) -> Self {
        FunctionRef { app_id: self.app_id.clone(), function_id: self.function_id.clone(), _types: PhantomData }
    }
}

impl<P: EventType, T: DeserializeOwned> FunctionRef<P, T> {
    /// A function of this app, by its id (prefer
    /// [`crate::TypedFunction::reference`], which cannot get the id or the
    /// types wrong).
    pub fn new(function_id: impl Into<String>) -> Self {
        FunctionRef { app_id: None, function_id: function_id.into(), _types: PhantomData }
    }

    /// A function of another app.
    pub fn in_app(app_id: impl Into<String>, function_id: impl Into<String>) -> Self {
        FunctionRef { app_id: Some(app_id.into()), function_id: function_id.into(), _types: PhantomData }
    }

    /// The function's id within its app.
    pub fn function_id(&self) -> &str {
        &self.function_id
    }

    /// The composite id the engine knows it by.
    pub(crate) fn composite(&self, client: &Client) -> String {
        let app = self.app_id.as_deref().unwrap_or(client.app_id());
        format!("{app}-{}", self.function_id)
    }
}

fn typed<T: DeserializeOwned>(step: &str, value: Value) -> Result<T, Error> {
    serde_json::from_value(value)
        .map_err(|e| Error::non_retriable(format!("the result of step {step:?} does not fit {}: {e}", std::any::type_name::<T>())))
}

fn nested(step: &str, inside: &str) -> Error {
    Error::non_retriable(format!("step {step:?} was called inside the body of step {inside:?}; steps cannot be nested"))
}

impl Step {
    pub(crate) fn new(exec: Arc<Exec>, client: Client) -> Step {
        Step { exec, client }
    }

    /// A step that runs a body and stores its result. When memoized, the
    /// body is skipped and the stored result returned (a stored failure is
    /// returned as [`Error::Step`]).
    ///
    /// An error from the body is retried with backoff (each step has its
    /// own attempts), unless it is [`Error::NonRetriable`].
    pub fn run<'a, T, F, Fut>(&'a self, id: &str, body: F) -> impl Future<Output = Result<T, Error>> + Send + 'a
    where
        T: Serialize + DeserializeOwned + Send + 'a,
        F: FnOnce() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, Error>> + Send + 'a,
    {
        let kind = StepKind::Run { name: id.to_string(), opts: json!({}) };
        let reg = self.exec.register(id, kind);
        self.run_body(id.to_string(), reg, async move {
            let out = body().await?;
            serde_json::to_value(out).map_err(|e| Error::non_retriable(format!("the step's result cannot be serialized: {e}")))
        })
    }

    /// Resolves a step with a body: from its memo, or by running it when the
    /// driver chooses it.
    fn run_body<'a, T, Fut>(&'a self, id: String, reg: Registration, body: Fut) -> impl Future<Output = Result<T, Error>> + Send + 'a
    where
        T: DeserializeOwned + Send + 'a,
        Fut: Future<Output = Result<Value, Error>> + Send + 'a,
    {
        let exec = self.exec.clone();
        async move {
            let hashed = match reg {
                Registration::Memoized(Memo::Data(v)) => return typed(&id, v),
                Registration::Memoized(Memo::Error(e)) => return Err(Error::Step(e)),
                Registration::Nested { inside } => return Err(nested(&id, &inside)),
                Registration::New(h) => h,
            };
            futures::future::poll_fn(|cx| exec.poll_turn(&hashed, cx)).await;
            let span = tracing::info_span!("step", step_id = %id, op = "StepRun");
            let result = match exec.injected_failure(&hashed) {
                // `testing::TestRun::fail_step_once`: this attempt fails
                // without running the body.
                Some(failure) => Err(failure),
                None => tracing::Instrument::instrument(body, span).await,
            };
            if let Err(e) = &result {
                tracing::info!(step_id = %id, error = %e, "step failed");
            }
            exec.finish(&hashed, result);
            // The call ends with this step's result; the function does not
            // go further in this call.
            std::future::pending().await
        }
    }

    /// Resolves a step the engine carries out (sleep, wait, invoke). A
    /// period that is not one (a bad time string) fails the step for good
    /// before it is registered.
    fn engine_step(&self, id: &str, kind: Result<StepKind, String>) -> impl Future<Output = Result<Value, Error>> + Send + 'static {
        let reg = kind.map(|kind| self.exec.register(id, kind));
        let id = id.to_string();
        async move {
            match reg {
                Err(bad) => Err(Error::non_retriable(format!("step {id:?}: {bad}"))),
                Ok(Registration::Memoized(Memo::Data(v))) => Ok(v),
                Ok(Registration::Memoized(Memo::Error(e))) => Err(Error::Step(e)),
                Ok(Registration::Nested { inside }) => Err(nested(&id, &inside)),
                // Suspended: the engine resumes the run in a later call.
                Ok(Registration::New(_)) => std::future::pending().await,
            }
        }
    }

    /// Pauses the run for `duration`, a `Duration` or a time string
    /// (`"2s"`, `"1h30m"`, `"7d"`); the engine wakes it, nothing runs
    /// meanwhile. A string that is not a period fails the step without
    /// retries.
    pub fn sleep(&self, id: &str, duration: impl Into<TimeSpec>) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let kind = duration.into().wire().map(|name| StepKind::Sleep { name }).map_err(|e| e.to_string());
        let fut = self.engine_step(id, kind);
        async move { fut.await.map(|_| ()) }
    }

    /// Pauses the run until `at`.
    pub fn sleep_until(&self, id: &str, at: DateTime<Utc>) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let fut = self.engine_step(id, Ok(StepKind::Sleep { name: at.to_rfc3339_opts(SecondsFormat::Millis, true) }));
        async move { fut.await.map(|_| ()) }
    }

    /// Waits for an event of type `E`; `None` when the timeout passes first.
    pub fn wait_for_event<E: Event>(
        &self,
        id: &str,
        opts: WaitOpts,
    ) -> impl Future<Output = Result<Option<ReceivedEvent<E::Data>>, Error>> + Send + 'static {
        self.wait_for::<E::Data>(id, E::NAME, opts, true)
    }

    /// Waits for an event by name, read as JSON.
    pub fn wait_for_event_name(
        &self,
        id: &str,
        name: &str,
        opts: WaitOpts,
    ) -> impl Future<Output = Result<Option<ReceivedEvent<Value>>, Error>> + Send + 'static {
        self.wait_for::<Value>(id, name, opts, false)
    }

    fn wait_for<D: DeserializeOwned + Send + 'static>(
        &self,
        id: &str,
        name: &str,
        opts: WaitOpts,
        typed_payload: bool,
    ) -> impl Future<Output = Result<Option<ReceivedEvent<D>>, Error>> + Send + 'static {
        let kind = opts.timeout.wire().map_err(|e| format!("timeout: {e}")).map(|timeout| {
            let mut o = Map::new();
            o.insert("timeout".into(), json!(timeout));
            if let Some(expr) = opts.if_exp {
                o.insert("if".into(), json!(expr));
            }
            StepKind::WaitForEvent { event: name.to_string(), opts: Value::Object(o) }
        });
        let fut = self.engine_step(id, kind);
        let id = id.to_string();
        async move {
            match fut.await? {
                Value::Null => Ok(None),
                event => ReceivedEvent::from_json(event, typed_payload)
                    .map(Some)
                    .map_err(|e| Error::non_retriable(format!("the event awaited by step {id:?} does not fit its type: {e}"))),
            }
        }
    }

    /// Waits until someone sends the signal `signal` (with
    /// [`Step::send_signal`], [`crate::Client::send_signal`], another SDK's
    /// `sendSignal`, or `POST /v1/signals`); `None` when the timeout passes
    /// first. Signal names are global: use one per thing awaited, e.g.
    /// `format!("approval:{order_id}")`.
    pub fn wait_for_signal<D: DeserializeOwned + Send + 'static>(
        &self,
        id: &str,
        signal: &str,
        opts: SignalOpts,
    ) -> impl Future<Output = Result<Option<Signal<D>>, Error>> + Send + 'static {
        let kind = opts.timeout.wire().map_err(|e| format!("timeout: {e}")).map(|timeout| {
            let conflict = match opts.on_conflict {
                OnConflict::Fail => "fail",
                OnConflict::Replace => "replace",
            };
            StepKind::WaitForSignal {
                signal: signal.to_string(),
                opts: json!({"signal": signal, "timeout": timeout, "conflict": conflict}),
            }
        });
        let fut = self.engine_step(id, kind);
        let id = id.to_string();
        async move {
            match fut.await? {
                Value::Null => Ok(None),
                got => serde_json::from_value(got)
                    .map(Some)
                    .map_err(|e| Error::non_retriable(format!("the signal received by step {id:?} does not fit its type: {e}"))),
            }
        }
    }

    /// Sends the signal `signal` with `data` to the run waiting for it, as a
    /// step (sent once however often the function is re-entered); returns
    /// that run's id, or `None` if no run was waiting.
    pub fn send_signal<'a, D: Serialize + Send + 'a>(
        &'a self,
        id: &str,
        signal: &str,
        data: D,
    ) -> impl Future<Output = Result<Option<String>, Error>> + Send + 'a {
        let kind = StepKind::Run { name: "sendSignal".to_string(), opts: json!({"type": "step.sendSignal", "signal": signal}) };
        let reg = self.exec.register(id, kind);
        let client = self.client.clone();
        let signal = signal.to_string();
        let body = async move {
            let data =
                serde_json::to_value(data).map_err(|e| Error::non_retriable(format!("the signal's data cannot be serialized: {e}")))?;
            let run_id = client.send_signal(&signal, data).await?;
            Ok(json!({ "run_id": run_id }))
        };
        let step = self.run_body::<Value, _>(id.to_string(), reg, body);
        async move { Ok(step.await?.get("run_id").and_then(Value::as_str).map(str::to_string)) }
    }

    /// Invokes another function with `data` and returns its output, typed
    /// by the reference ([`crate::TypedFunction::reference`]): the payload
    /// must be the function's and the result is its handler's output. A
    /// failure of the invoked function (or a timeout, default one year) is
    /// returned as [`Error::Step`].
    ///
    /// ```
    /// use ingot::{Ctx, Function, Invoked};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct Amount { cents: u64 }
    ///
    /// let tax = Function::new("compute-tax")
    ///     .trigger_invoke::<Amount>()
    ///     .handler(|ctx: Ctx<Invoked<Amount>>| async move { Ok(ctx.event.data.cents / 5) });
    /// let tax_ref = tax.reference();
    /// let checkout = Function::new("checkout").trigger_event_name("shop/checkout").handler(move |ctx: Ctx| {
    ///     let tax_ref = tax_ref.clone();
    ///     async move {
    ///         let tax = ctx.step.invoke("tax", &tax_ref, Amount { cents: 1000 }).await?; // a u64
    ///         Ok(1000 + tax)
    ///     }
    /// });
    /// # let _ = ingot::functions![tax, checkout];
    /// ```
    pub fn invoke<P: EventType, T: DeserializeOwned + Send + 'static>(
        &self,
        id: &str,
        function: &FunctionRef<P, T>,
        data: P::Data,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'static {
        self.invoke_with(id, function, data, InvokeOpts::default())
    }

    /// [`Step::invoke`] with options (a timeout).
    pub fn invoke_with<P: EventType, T: DeserializeOwned + Send + 'static>(
        &self,
        id: &str,
        function: &FunctionRef<P, T>,
        data: P::Data,
        options: InvokeOpts,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'static {
        let payload = serde_json::to_value(&data);
        let mut opts = Map::new();
        opts.insert("function_id".into(), json!(function.composite(&self.client)));
        let timeout = options.timeout.as_ref().map(TimeSpec::wire).transpose().map_err(|e| format!("timeout: {e}"));
        let ready = payload.map(|data| {
            let kind = timeout.map(|timeout| {
                if let Some(t) = timeout {
                    opts.insert("timeout".into(), json!(t));
                }
                opts.insert("payload".into(), json!({ "data": data }));
                StepKind::Invoke { opts: Value::Object(opts) }
            });
            self.engine_step(id, kind)
        });
        let id = id.to_string();
        async move {
            let fut = ready.map_err(|e| Error::non_retriable(format!("the payload of step {id:?} cannot be serialized: {e}")))?;
            typed(&id, fut.await?)
        }
    }

    /// Sends events from inside the run, as a step (so they are sent once).
    /// Returns the events' ids.
    pub fn send_event<'a>(&'a self, id: &str, events: impl IntoEvents) -> impl Future<Output = Result<Vec<EventId>, Error>> + Send + 'a {
        let events = events.into_events();
        let kind = StepKind::Run { name: "sendEvent".to_string(), opts: json!({"type": "step.sendEvent"}) };
        let reg = self.exec.register(id, kind);
        let client = self.client.clone();
        let body = async move {
            let events = events.map_err(|e| Error::non_retriable(format!("an event cannot be serialized: {e}")))?;
            let ids = client.send_json(&events).await?;
            Ok(json!({ "ids": ids }))
        };
        let step = self.run_body::<Value, _>(id.to_string(), reg, body);
        async move {
            // JS stores `{ids: [...]}`, Python a bare list of ids.
            let v = step.await?;
            let ids = v.get("ids").cloned().unwrap_or(v);
            typed("sendEvent", ids)
        }
    }
}
