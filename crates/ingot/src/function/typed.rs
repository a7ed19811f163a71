//! [`TypedFunction`]: a built function that still knows its payload and
//! output types, so it can hand out typed [`FunctionRef`]s.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Function;
use crate::event::{AnyEvent, EventType};
use crate::step::FunctionRef;

/// A function whose handler takes events of type `P` and returns `T`.
/// Derefs to [`Function`] and converts into one (`.into()`,
/// [`crate::functions!`]) to be served.
///
/// [`TypedFunction::reference`] gives a [`FunctionRef<P, T>`] for
/// `step.invoke`: the payload and the output are then checked at compile
/// time. Awaiting an invoke as another type does not compile:
///
/// ```compile_fail,E0308
/// use ingot::{Ctx, Function, Invoked};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Amount { cents: u64 }
/// let tax = Function::new("tax").trigger_invoke::<Amount>().handler(|ctx: Ctx<Invoked<Amount>>| async move {
///     Ok(ctx.event.data.cents / 5)
/// });
/// let tax = tax.reference();
/// Function::new("checkout").trigger_event_name("shop/checkout").handler(move |ctx: Ctx| {
///     let tax = tax.clone();
///     async move {
///         let due: String = ctx.step.invoke("tax", &tax, Amount { cents: 100 }).await?;
///         Ok(due)
///     }
/// });
/// ```
///
/// nor does invoking it with another payload:
///
/// ```compile_fail,E0308
/// use ingot::{Ctx, Function, Invoked};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Amount { cents: u64 }
/// let tax = Function::new("tax").trigger_invoke::<Amount>().handler(|ctx: Ctx<Invoked<Amount>>| async move {
///     Ok(ctx.event.data.cents / 5)
/// });
/// let tax = tax.reference();
/// Function::new("checkout").trigger_event_name("shop/checkout").handler(move |ctx: Ctx| {
///     let tax = tax.clone();
///     async move { ctx.step.invoke("tax", &tax, "one hundred".to_string()).await }
/// });
/// ```
pub struct TypedFunction<P: EventType = AnyEvent, T = Value> {
    function: Function,
    _types: PhantomData<fn(P) -> T>,
}

impl<P: EventType, T> TypedFunction<P, T> {
    pub(crate) fn new(function: Function) -> Self {
        TypedFunction { function, _types: PhantomData }
    }

    /// The untyped function, to serve.
    pub fn function(&self) -> &Function {
        &self.function
    }

    /// A reference to invoke this function with from another function of
    /// the same app: `ctx.step.invoke("id", &reference, payload)` returns
    /// a `T`.
    pub fn reference(&self) -> FunctionRef<P, T>
    where
        T: DeserializeOwned,
    {
        FunctionRef::new(self.function.id())
    }
}

impl<P: EventType, T> Clone for TypedFunction<P, T> {
    fn clone(&self) -> Self {
        TypedFunction::new(self.function.clone())
    }
}

impl<P: EventType, T> fmt::Debug for TypedFunction<P, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.function.fmt(f)
    }
}

impl<P: EventType, T> Deref for TypedFunction<P, T> {
    type Target = Function;
    fn deref(&self) -> &Function {
        &self.function
    }
}

impl<P: EventType, T> AsRef<Function> for TypedFunction<P, T> {
    fn as_ref(&self) -> &Function {
        &self.function
    }
}

impl AsRef<Function> for Function {
    fn as_ref(&self) -> &Function {
        self
    }
}

impl<P: EventType, T> From<TypedFunction<P, T>> for Function {
    fn from(f: TypedFunction<P, T>) -> Function {
        f.function
    }
}

impl<P: EventType, T: DeserializeOwned> From<&TypedFunction<P, T>> for FunctionRef<P, T> {
    fn from(f: &TypedFunction<P, T>) -> FunctionRef<P, T> {
        f.reference()
    }
}

/// A `Vec<Function>` from functions of any types:
/// `ingot::functions![hello, checkout, compute_tax]`.
#[macro_export]
macro_rules! functions {
    ($($f:expr),* $(,)?) => {
        ::std::vec![$($crate::Function::from($f)),*]
    };
}
