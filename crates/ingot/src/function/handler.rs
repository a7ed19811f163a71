//! What a handler receives ([`Ctx`]) and how typed handlers are stored
//! behind one object-safe trait, so functions of different event types can
//! live in one list.

use std::future::Future;
use std::marker::PhantomData;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde::Serialize;
use serde_json::Value;

use super::state::States;
use crate::error::Error;
use crate::event::{AnyEvent, EventType, ReceivedEvent, RunId};
use crate::step::Step;

/// What a function handler receives: the triggering event(s), run
/// information and the step tools.
#[non_exhaustive]
pub struct Ctx<P: EventType = AnyEvent> {
    /// The (first) triggering event.
    pub event: ReceivedEvent<P::Data>,
    /// Every triggering event: one, or a batch.
    pub events: Vec<ReceivedEvent<P::Data>>,
    /// The run.
    pub run_id: RunId,
    /// Zero-based attempt of this call; each step has its own attempts.
    pub attempt: u32,
    /// Attempts allowed (retries + 1).
    pub max_attempts: u32,
    /// The step tools: `ctx.step.run(..)`, `ctx.step.sleep(..)`, ...
    pub step: Step,
    state: States,
}

/// The raw material of a [`Ctx`], as it comes from a call request.
pub(crate) struct HandlerInput {
    pub(crate) event: Value,
    pub(crate) events: Vec<Value>,
    pub(crate) run_id: RunId,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) step: Step,
    pub(crate) state: States,
}

impl<P: EventType> Ctx<P> {
    /// The value of type `S` given with [`crate::FunctionBuilder::with_state`]
    /// or [`crate::Handler::with_state`] (the function's first). Not given is
    /// an error that fails the run without retries, and says what to add.
    ///
    /// ```
    /// use ingot::{Ctx, Function};
    ///
    /// struct Prices { vat_percent: u64 }
    ///
    /// let f = Function::new("quote")
    ///     .trigger_event_name("shop/quote")
    ///     .with_state(Prices { vat_percent: 20 })
    ///     .handler(|ctx: Ctx| async move {
    ///         let prices = ctx.state::<Prices>()?;
    ///         let net = ctx.event.data["net"].as_u64().unwrap_or(0);
    ///         Ok(net + net * prices.vat_percent / 100)
    ///     });
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let run = ingot::testing::TestRun::new(&f, ingot::JsonEvent::new("shop/quote", serde_json::json!({"net": 100}))).run().await;
    /// assert_eq!(run.output, Ok(serde_json::json!(120)));
    /// # });
    /// ```
    pub fn state<S: Send + Sync + 'static>(&self) -> Result<&S, Error> {
        self.state.get::<S>().ok_or_else(missing_state::<S>)
    }

    /// As [`Ctx::state`], as a shared handle to move into a `'static` task.
    pub fn state_arc<S: Send + Sync + 'static>(&self) -> Result<std::sync::Arc<S>, Error> {
        self.state.get_arc::<S>().ok_or_else(missing_state::<S>)
    }

    fn from_input(input: HandlerInput) -> Result<Ctx<P>, Error> {
        let typed = P::is_typed();
        let read = |v: Value| {
            ReceivedEvent::<P::Data>::from_json(v, typed)
                .map_err(|e| Error::non_retriable(format!("the event does not fit the function's event type {}: {e}", P::type_name())))
        };
        let event = read(input.event.clone())?;
        let events = if input.events.is_empty() {
            vec![read(input.event)?]
        } else {
            input.events.into_iter().map(read).collect::<Result<Vec<_>, _>>()?
        };
        Ok(Ctx {
            event,
            events,
            run_id: input.run_id,
            attempt: input.attempt,
            max_attempts: input.max_attempts,
            step: input.step,
            state: input.state,
        })
    }
}

fn missing_state<S>() -> Error {
    Error::non_retriable(format!(
        "no state of type {} was given to this function: add it with Function::new(..).with_state(..), \
         Handler::with_state(..) or, in tests, TestRun::with_state(..)",
        std::any::type_name::<S>()
    ))
}

pub(crate) type HandlerFuture = BoxFuture<'static, Result<Value, Error>>;

/// A handler with its event type erased.
pub(crate) trait ErasedHandler: Send + Sync {
    fn call(&self, input: HandlerInput) -> HandlerFuture;
}

/// A user handler for events of type `P`.
pub(crate) struct TypedHandler<P, F> {
    f: F,
    _p: PhantomData<fn(P)>,
}

impl<P, F> TypedHandler<P, F> {
    pub(crate) fn new(f: F) -> Self {
        TypedHandler { f, _p: PhantomData }
    }
}

impl<P, F, Fut, T> ErasedHandler for TypedHandler<P, F>
where
    P: EventType,
    F: Fn(Ctx<P>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, Error>> + Send + 'static,
    T: Serialize + 'static,
{
    fn call(&self, input: HandlerInput) -> HandlerFuture {
        let ctx = match Ctx::<P>::from_input(input) {
            Ok(ctx) => ctx,
            Err(e) => return futures::future::ready(Err(e)).boxed(),
        };
        let fut = (self.f)(ctx);
        async move {
            let out = fut.await?;
            serde_json::to_value(out).map_err(|e| Error::non_retriable(format!("the function's result cannot be serialized: {e}")))
        }
        .boxed()
    }
}
