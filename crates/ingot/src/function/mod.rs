//! Functions: the [`FunctionBuilder`] (triggers, retries, flow control,
//! `on_failure`), the built [`Function`], and the function config JSON it
//! registers (protocol §1.3).
//!
//! The builder's type parameter is the event type the handler receives.
//! It starts as [`AnyEvent`] (raw JSON) and becomes `E` with the first
//! [`FunctionBuilder::trigger_event::<E>`] (or [`Invoked<D>`] with
//! [`FunctionBuilder::trigger_invoke::<D>`]); later typed triggers must carry
//! the same payload type, so a handler for the wrong payload does not compile.
//! [`FunctionBuilder::handler`] returns a [`TypedFunction`], which keeps the
//! handler's output type for [`TypedFunction::reference`] (typed invokes) and
//! converts into the untyped [`Function`] that [`crate::serve()`] takes.

mod handler;
pub mod options;
pub(crate) mod state;
mod typed;

use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use ingot_protocol::sync::{FunctionConfig, Retries, Runtime, StepConfig, Trigger, MAX_RETRIES};
use serde::Serialize;
use serde_json::Value;

pub use handler::Ctx;
use handler::TypedHandler;
pub(crate) use handler::{ErasedHandler, HandlerInput};
use options::{BatchEvents, CancelOn, Concurrency, Debounce, RateLimit, Singleton, Throttle, Timeouts};
use state::StateMap;
pub use typed::TypedFunction;

use crate::error::Error;
use crate::event::{AddTrigger, AnyEvent, Event, EventType, FunctionFailed, Invoked, INVOKED_EVENT};
use crate::time::BadTimeSpec;

/// Retries of the `-failure` function registered for `on_failure` (as JS).
const ON_FAILURE_RETRIES: u32 = 1;

/// Builds a [`Function`]: `Function::new("id")`, then triggers and options,
/// then [`FunctionBuilder::handler`].
pub struct FunctionBuilder<P: EventType = AnyEvent> {
    def: FunctionDef,
    _p: PhantomData<fn(P)>,
}

/// A function ready to be served. Cheap to clone.
#[derive(Clone)]
pub struct Function {
    pub(crate) def: Arc<FunctionDef>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function").field("id", &self.def.id).field("triggers", &self.def.triggers).finish_non_exhaustive()
    }
}

/// Everything about a function but its type.
#[derive(Clone, Default)]
pub(crate) struct FunctionDef {
    pub(crate) id: String,
    name: Option<String>,
    triggers: Vec<Trigger>,
    pub(crate) retries: Option<u32>,
    flow: BTreeMap<String, Value>,
    concurrency: Vec<Value>,
    cancel: Vec<Value>,
    invocation: Invocation,
    /// Options that could not be read (a bad time string), as messages.
    errors: Vec<String>,
    /// What `Function::with_state` gave the handler (`ctx.state`).
    pub(crate) state: Arc<StateMap>,
    pub(crate) handler: Option<Arc<dyn ErasedHandler>>,
    pub(crate) on_failure: Option<Arc<dyn ErasedHandler>>,
}

/// How runs of a function start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Invocation {
    /// By its triggers (and by `step.invoke`, as every function).
    #[default]
    Triggered,
    /// Only by `step.invoke` ([`FunctionBuilder::trigger_invoke`]).
    InvokeOnly,
}

impl Function {
    /// Starts a function with this id (unique within the app; the engine
    /// knows it as `<app id>-<id>`).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(id: &str) -> FunctionBuilder<AnyEvent> {
        FunctionBuilder { def: FunctionDef { id: id.to_string(), ..FunctionDef::default() }, _p: PhantomData }
    }

    /// The function's id within its app.
    pub fn id(&self) -> &str {
        &self.def.id
    }

    /// What was wrong with the function's options when it was built (a bad
    /// time string, e.g. `Throttle::new(1, "an hour")`), one message each;
    /// empty when it is fine. Such a function does not register: syncing
    /// the app fails with these messages, and so does each call to it.
    pub fn config_errors(&self) -> &[String] {
        &self.def.errors
    }

    /// The function configs this function registers: itself, and its
    /// `-failure` function if it has an `on_failure` handler.
    pub fn configs(&self, app_id: &str, serve_url: &str) -> Vec<FunctionConfig> {
        let def = &self.def;
        let composite = format!("{app_id}-{}", def.id);
        let name = def.name.clone().unwrap_or_else(|| def.id.clone());
        let mut rest = def.flow.clone();
        match def.concurrency.as_slice() {
            [] => {}
            // A plain limit is sent as a number, as the JS SDK does.
            [only] if only.as_object().is_some_and(|o| o.len() == 1) => {
                rest.insert("concurrency".into(), only["limit"].clone());
            }
            all => {
                rest.insert("concurrency".into(), Value::Array(all.to_vec()));
            }
        }
        if !def.cancel.is_empty() {
            rest.insert("cancel".into(), Value::Array(def.cancel.clone()));
        }
        let mut triggers = def.triggers.clone();
        if def.invocation == Invocation::InvokeOnly && triggers.is_empty() {
            // Engines refuse a function without triggers. This one matches
            // only the invoke events addressed to this very function (which
            // engines route by `fn_id` anyway), so no event starts it.
            triggers.push(Trigger {
                event: Some(INVOKED_EVENT.to_string()),
                expression: Some(format!("event.data._inngest.fn_id == '{composite}'")),
                cron: None,
                jitter: None,
            });
        }
        let mut out = vec![FunctionConfig {
            id: composite.clone(),
            name: Some(name.clone()),
            triggers,
            steps: step_config(serve_url, &composite, def.retries),
            cancel: None,
            rest,
        }];
        if def.on_failure.is_some() {
            let failure_id = format!("{composite}-failure");
            out.push(FunctionConfig {
                id: failure_id.clone(),
                name: Some(format!("{name} (failure)")),
                triggers: vec![Trigger {
                    event: Some(FunctionFailed::NAME.to_string()),
                    expression: Some(format!("event.data.function_id == '{composite}'")),
                    cron: None,
                    jitter: None,
                }],
                steps: step_config(serve_url, &failure_id, Some(ON_FAILURE_RETRIES)),
                cancel: None,
                rest: BTreeMap::new(),
            });
        }
        out
    }

    /// Attempts per step: retries + 1, 5 by default.
    pub(crate) fn max_attempts(&self, role: Role) -> u32 {
        let retries = match role {
            Role::Main => self.def.retries,
            Role::OnFailure => Some(ON_FAILURE_RETRIES),
        };
        retries.unwrap_or(ingot_protocol::sync::DEFAULT_RETRIES).min(MAX_RETRIES) + 1
    }

    /// Whether one of the function's event triggers matches the event name
    /// `name` (a `*` in a trigger matches any run of characters).
    pub(crate) fn triggered_by(&self, name: &str) -> bool {
        self.def.triggers.iter().filter_map(|t| t.event.as_deref()).any(|pattern| glob_matches(pattern, name))
    }

    pub(crate) fn handler(&self, role: Role) -> Option<&Arc<dyn ErasedHandler>> {
        match role {
            Role::Main => self.def.handler.as_ref(),
            Role::OnFailure => self.def.on_failure.as_ref(),
        }
    }
}

/// Which of a function's handlers a composite id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Main,
    OnFailure,
}

/// `*`-glob matching of event names.
fn glob_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// `steps.step`: the URL to call and the retries.
fn step_config(serve_url: &str, composite: &str, retries: Option<u32>) -> BTreeMap<String, StepConfig> {
    let url = match reqwest::Url::parse(serve_url) {
        Ok(mut u) => {
            u.query_pairs_mut().append_pair("fnId", composite).append_pair("stepId", "step");
            u.to_string()
        }
        Err(_) => format!("{serve_url}?fnId={composite}&stepId=step"),
    };
    BTreeMap::from([(
        "step".to_string(),
        StepConfig {
            id: Some("step".into()),
            name: Some("step".into()),
            runtime: Some(Runtime { kind: Some("http".into()), url: Some(url) }),
            retries: retries.map(|n| Retries { attempts: Some(i64::from(n.min(MAX_RETRIES))) }),
        },
    )])
}

impl<P: EventType> FunctionBuilder<P> {
    /// A readable name (defaults to the id).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.def.name = Some(name.into());
        self
    }

    fn push_trigger(mut self, event: Option<String>, expression: Option<String>, cron: Option<String>) -> Self {
        self.def.triggers.push(Trigger { event, expression, cron, jitter: None });
        self
    }

    fn retype<Q: EventType>(self) -> FunctionBuilder<Q> {
        FunctionBuilder { def: self.def, _p: PhantomData }
    }

    /// Sets a flow-control option, or records why its JSON cannot be built.
    fn flow_option(mut self, key: &str, json: Result<Value, BadTimeSpec>) -> Self {
        match json {
            Ok(v) => {
                self.def.flow.insert(key.to_string(), v);
            }
            Err(e) => self.def.errors.push(format!("function {:?}, {key}: {e}", self.def.id)),
        }
        self
    }

    /// Gives the handler a value it reads with [`Ctx::state`] (a database
    /// pool, settings): no `Arc` to clone into the closure. One value per
    /// type; it takes precedence over a value of the same type given to
    /// [`crate::Handler::with_state`].
    pub fn with_state<S: Send + Sync + 'static>(self, state: S) -> Self {
        self.with_shared_state(Arc::new(state))
    }

    /// As [`FunctionBuilder::with_state`], for a value already in an `Arc`
    /// (`ctx.state::<S>()` then reads the `S` inside).
    pub fn with_shared_state<S: Send + Sync + 'static>(mut self, state: Arc<S>) -> Self {
        Arc::make_mut(&mut self.def.state).insert(state);
        self
    }

    /// Triggers on event `E`; the handler then receives `E::Data`.
    pub fn trigger_event<E: Event>(self) -> FunctionBuilder<<P as AddTrigger<E>>::Out>
    where
        P: AddTrigger<E>,
    {
        self.push_trigger(Some(E::NAME.into()), None, None).retype()
    }

    /// Triggers on event `E` when the expression (CEL over `event`) is true.
    pub fn trigger_event_if<E: Event>(self, expression: impl Into<String>) -> FunctionBuilder<<P as AddTrigger<E>>::Out>
    where
        P: AddTrigger<E>,
    {
        self.push_trigger(Some(E::NAME.into()), Some(expression.into()), None).retype()
    }

    /// Triggers on events by name; wildcards like `"app/*"` are allowed.
    /// With a typed handler, those events must carry the handler's payload.
    pub fn trigger_event_name(self, name: impl Into<String>) -> Self {
        self.push_trigger(Some(name.into()), None, None)
    }

    /// Triggers on events by name when the expression is true.
    pub fn trigger_event_name_if(self, name: impl Into<String>, expression: impl Into<String>) -> Self {
        self.push_trigger(Some(name.into()), Some(expression.into()), None)
    }

    /// Triggers on a schedule: five-field cron, optionally prefixed with
    /// `TZ=<zone> `, e.g. `"TZ=Europe/Paris 0 9 * * *"`. The run's event is
    /// `inngest/scheduled.timer`, so give cron functions an untyped handler.
    pub fn trigger_cron(self, cron: impl Into<String>) -> Self {
        self.push_trigger(None, None, Some(cron.into()))
    }

    /// Retries per step and for the function body (Inngest's default is 4;
    /// at most 20).
    pub fn retries(mut self, retries: u32) -> Self {
        self.def.retries = Some(retries.min(MAX_RETRIES));
        self
    }

    /// Adds a concurrency limit (at most two).
    pub fn concurrency(mut self, limit: Concurrency) -> Self {
        self.def.concurrency.push(limit.to_json());
        self
    }

    /// Limits run starts per period (queued, not dropped).
    pub fn throttle(self, throttle: Throttle) -> Self {
        self.flow_option("throttle", throttle.to_json())
    }

    /// Limits runs per period (events over the limit are dropped).
    pub fn rate_limit(self, limit: RateLimit) -> Self {
        self.flow_option("rateLimit", limit.to_json())
    }

    /// Delays the start until events stop arriving.
    pub fn debounce(self, debounce: Debounce) -> Self {
        self.flow_option("debounce", debounce.to_json())
    }

    /// Runs on batches of events (`ctx.events`).
    pub fn batch_events(self, batch: BatchEvents) -> Self {
        self.flow_option("batchEvents", batch.to_json())
    }

    /// Cancels the run when a matching event arrives (up to five).
    pub fn cancel_on(mut self, cancel: CancelOn) -> Self {
        match cancel.to_json() {
            Ok(v) => self.def.cancel.push(v),
            Err(e) => self.def.errors.push(format!("function {:?}, cancel: {e}", self.def.id)),
        }
        self
    }

    /// Run priority: an expression giving seconds to move the run ahead
    /// (positive) or back (negative), e.g. `"event.data.plan == 'pro' ? 120 : 0"`.
    pub fn priority(mut self, run_expression: impl Into<String>) -> Self {
        self.def.flow.insert("priority".into(), serde_json::json!({"run": run_expression.into()}));
        self
    }

    /// At most one run per value of this expression in 24 hours.
    pub fn idempotency(mut self, expression: impl Into<String>) -> Self {
        self.def.flow.insert("idempotency".into(), Value::String(expression.into()));
        self
    }

    /// Cancels runs that do not start or finish in time.
    pub fn timeouts(self, timeouts: Timeouts) -> Self {
        self.flow_option("timeouts", timeouts.to_json())
    }

    /// At most one active run (per key).
    pub fn singleton(mut self, singleton: Singleton) -> Self {
        self.def.flow.insert("singleton".into(), singleton.to_json());
        self
    }

    /// A handler that runs when a run of this function fails for good. It is
    /// registered as a separate function, `<id>-failure`, triggered by
    /// `inngest/function.failed` for this function.
    pub fn on_failure<F, Fut, T>(mut self, handler: F) -> Self
    where
        F: Fn(Ctx<FunctionFailed>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
        T: Serialize + 'static,
    {
        self.def.on_failure = Some(Arc::new(TypedHandler::<FunctionFailed, F>::new(handler)));
        self
    }

    /// Sets the handler and finishes the function.
    ///
    /// The handler is an `async fn(Ctx<P>) -> Result<T, ingot::Error>` (or
    /// a closure returning such a future); `T` is the run's output, kept in
    /// the [`TypedFunction`] returned, so [`TypedFunction::reference`] can
    /// invoke it with a typed result. `.into()` (or [`crate::functions!`])
    /// makes it a [`Function`] for lists of functions of different types.
    pub fn handler<F, Fut, T>(mut self, handler: F) -> TypedFunction<P, T>
    where
        F: Fn(Ctx<P>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
        T: Serialize + 'static,
    {
        self.def.handler = Some(Arc::new(TypedHandler::<P, F>::new(handler)));
        for e in &self.def.errors {
            tracing::error!(function = %self.def.id, error = %e, "the function's options are invalid; it will not register");
        }
        TypedFunction::new(Function { def: Arc::new(self.def) })
    }
}

impl FunctionBuilder<AnyEvent> {
    /// Makes the function invoke-only: started by `step.invoke` with a
    /// payload `D` (the handler gets `ctx.event.data: D`), by no event.
    /// Engines need a trigger, so it registers one that matches only
    /// invokes of this function.
    ///
    /// ```
    /// use ingot::{Function, Invoked, Ctx};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Amount { cents: u64 }
    ///
    /// let tax = Function::new("compute-tax")
    ///     .trigger_invoke::<Amount>()
    ///     .handler(|ctx: Ctx<Invoked<Amount>>| async move { Ok(ctx.event.data.cents / 5) });
    /// let reference: ingot::FunctionRef<Invoked<Amount>, u64> = tax.reference();
    /// # let _ = reference;
    /// ```
    pub fn trigger_invoke<D>(mut self) -> FunctionBuilder<Invoked<D>>
    where
        Invoked<D>: EventType,
    {
        self.def.invocation = Invocation::InvokeOnly;
        self.retype()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use options::{ConcurrencyScope, SingletonMode};
    use serde::Deserialize;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn triggers_match_event_names_with_globs() {
        for (pattern, name, want) in [
            ("inngest/function.invoked", "inngest/function.invoked", true),
            ("inngest/*", "inngest/function.invoked", true),
            ("*", "inngest/function.invoked", true),
            ("*/function.*", "inngest/function.invoked", true),
            ("app/*", "inngest/function.invoked", false),
            ("inngest/function.invoked.x", "inngest/function.invoked", false),
            ("inngest/*.x", "inngest/function.invoked", false),
        ] {
            assert_eq!(glob_matches(pattern, name), want, "{pattern}");
        }
        let f = Function::new("f").trigger_event_name("app/x").trigger_cron("* * * * *").handler(|_ctx: Ctx| async { Ok(()) });
        assert!(f.triggered_by("app/x") && !f.triggered_by("inngest/function.invoked"));
    }

    #[derive(Serialize, Deserialize)]
    struct Flow {
        plan: String,
    }
    impl Event for Flow {
        const NAME: &'static str = "test/flow";
        type Data = Self;
    }

    fn config_json(f: &Function) -> Vec<Value> {
        f.configs("js-v4", "http://127.0.0.1:13041/api/inngest")
            .iter()
            .map(|c| crate::serve::strip_nulls(serde_json::to_value(c).unwrap()))
            .collect()
    }

    /// The flow-config function of the JS fixture app, built with this SDK,
    /// registers the same config as `inngest-js` did.
    #[test]
    fn flow_config_matches_the_js_sdk() {
        let s = Duration::from_secs;
        let f = Function::new("flow-config")
            .name("Flow config")
            .trigger_event_if::<Flow>("event.data.plan == 'pro'")
            .trigger_event_name("test/flow.*")
            .trigger_cron("TZ=Europe/Paris 0 9 * * 1")
            .retries(7)
            .idempotency("event.data.id")
            .rate_limit(RateLimit::new(10, s(3600)).key("event.data.user"))
            .throttle(Throttle::new(3, s(60)).burst(2).key("event.data.user"))
            .concurrency(Concurrency::new(5).key("event.data.user").scope(ConcurrencyScope::Fn))
            .concurrency(Concurrency::new(20).key("event.data.acct").scope(ConcurrencyScope::Env))
            .debounce(Debounce::new(s(5)).key("event.data.user").timeout(s(60)))
            .priority("event.data.priority")
            .timeouts(Timeouts::new().start(s(10)).finish(s(3600)))
            .cancel_on(CancelOn::event_name("test/cancel").if_exp("event.data.id == async.data.id").timeout(s(3600)))
            .cancel_on(CancelOn::event_name("test/cancel2").if_exp("event.data.id == async.data.ref"))
            .handler(|_ctx: Ctx<Flow>| async { Ok(()) });
        let golden = crate::testing::fixtures::load("js-v4/sync-register.json");
        let want =
            golden["request"]["body"]["functions"].as_array().unwrap().iter().find(|f| f["id"] == "js-v4-flow-config").unwrap().clone();
        assert_eq!(config_json(&f), vec![want]);
        let _ = (SingletonMode::Skip, BatchEvents::new(2, s(1)));
    }

    #[test]
    fn on_failure_registers_a_failure_function() {
        let f = Function::new("with-failure")
            .name("With failure")
            .trigger_event_name("test/with-failure")
            .retries(0)
            .on_failure(|_ctx| async { Ok("handled") })
            .handler(|_ctx| async { Err::<(), _>(Error::msg("failing on purpose")) });
        let golden = crate::testing::fixtures::load("js-v4/sync-register.json");
        let want: Vec<Value> = golden["request"]["body"]["functions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["id"].as_str().unwrap().starts_with("js-v4-with-failure"))
            .cloned()
            .collect();
        assert_eq!(config_json(&f), want);
        assert_eq!(f.max_attempts(Role::Main), 1);
        assert_eq!(f.max_attempts(Role::OnFailure), 2);
    }

    #[test]
    fn defaults_and_batch_config() {
        let f = Function::new("batch-config")
            .name("Batch config")
            .trigger_event_name("test/batch")
            .trigger_cron("*/5 * * * *")
            .batch_events(BatchEvents::new(50, Duration::from_secs(5)).key("event.data.acct"))
            .concurrency(Concurrency::new(4))
            .singleton(Singleton::new(SingletonMode::Skip).key("event.data.acct"))
            .handler(|_ctx| async { Ok(json!(null)) });
        let got = config_json(&f);
        assert_eq!(got[0]["concurrency"], json!(4));
        assert_eq!(got[0]["batchEvents"], json!({"maxSize": 50, "timeout": "5s", "key": "event.data.acct"}));
        assert!(got[0]["steps"]["step"].get("retries").is_none());
        assert_eq!(f.max_attempts(Role::Main), 5);
    }
}
