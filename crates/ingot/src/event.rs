//! Events: the [`Event`] trait that binds a Rust payload type to an event
//! name, the outgoing forms ([`TypedEvent`], [`JsonEvent`]), the incoming
//! form ([`ReceivedEvent`]), ids, and the engine's own events.
//!
//! A function triggered by `E: Event` receives `ReceivedEvent<E::Data>`, and
//! sending a `TypedEvent<E>` requires an `E::Data`: a payload of the wrong
//! type does not compile. [`JsonEvent`] and [`AnyEvent`] are the untyped way.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::StepError;

/// Binds a payload type to an event name. The [`event!`](crate::event!)
/// macro writes the impl in one line:
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct SignedUp { email: String }
///
/// ingot::event!(SignedUp = "app/user.signed-up");
/// # assert_eq!(<SignedUp as ingot::Event>::NAME, "app/user.signed-up");
/// ```
///
/// which is the same as
///
/// ```
/// # #[derive(serde::Serialize, serde::Deserialize)] struct SignedUp { email: String }
/// impl ingot::Event for SignedUp {
///     const NAME: &'static str = "app/user.signed-up";
///     type Data = Self;
/// }
/// ```
///
/// With `type Data = Self` the payload itself can be sent
/// (`client.send(SignedUp { .. })`); a separate marker type with another
/// `Data` works too, through [`TypedEvent`].
///
/// Payloads are checked at compile time. A handler for another event's
/// payload does not compile:
///
/// ```compile_fail,E0631
/// # use ingot::{Ctx, Event, Function};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct SignedUp { email: String }
/// # impl Event for SignedUp { const NAME: &'static str = "app/user.signed-up"; type Data = Self; }
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Paid { amount: u64 }
/// # impl Event for Paid { const NAME: &'static str = "app/paid"; type Data = Self; }
/// Function::new("welcome")
///     .trigger_event::<SignedUp>()
///     .handler(|ctx: Ctx<Paid>| async move { Ok(ctx.event.data.amount) });
/// ```
///
/// nor does sending a payload under the wrong event:
///
/// ```compile_fail,E0308
/// # use ingot::{Event, TypedEvent};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct SignedUp { email: String }
/// # impl Event for SignedUp { const NAME: &'static str = "app/user.signed-up"; type Data = Self; }
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Paid { amount: u64 }
/// # impl Event for Paid { const NAME: &'static str = "app/paid"; type Data = Self; }
/// let event = TypedEvent::<SignedUp>::new(Paid { amount: 5 });
/// ```
///
/// nor does a second trigger whose payload differs from the first's:
///
/// ```compile_fail,E0277
/// # use ingot::{Event, Function};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct SignedUp { email: String }
/// # impl Event for SignedUp { const NAME: &'static str = "app/user.signed-up"; type Data = Self; }
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Paid { amount: u64 }
/// # impl Event for Paid { const NAME: &'static str = "app/paid"; type Data = Self; }
/// Function::new("both").trigger_event::<SignedUp>().trigger_event::<Paid>();
/// ```
pub trait Event: Send + Sync + 'static {
    /// The event name, e.g. `"app/user.signed-up"`.
    const NAME: &'static str;
    /// The type of the event's `data`.
    type Data: Serialize + DeserializeOwned + Send + Sync + 'static;
}

/// Implements [`Event`] for payload types: `event!(Type = "name")` (the type
/// is its own payload, `type Data = Self`), several at once separated by
/// `;`, or `event!(Marker = "name", data = Payload)` for a marker type.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct OrderPlaced { id: u64 }
/// #[derive(Serialize, Deserialize)]
/// struct OrderPaid { id: u64 }
/// enum Tags {}
///
/// ingot::event!(OrderPlaced = "shop/order.placed"; OrderPaid = "shop/order.paid");
/// ingot::event!(Tags = "shop/tags", data = Vec<String>);
///
/// use ingot::Event;
/// assert_eq!((OrderPlaced::NAME, OrderPaid::NAME, Tags::NAME), ("shop/order.placed", "shop/order.paid", "shop/tags"));
/// let tags: <Tags as Event>::Data = vec!["new".to_string()];
/// # let _ = tags;
/// ```
#[macro_export]
macro_rules! event {
    ($ty:ty = $name:expr, data = $data:ty $(,)?) => {
        impl $crate::Event for $ty {
            const NAME: &'static str = $name;
            type Data = $data;
        }
    };
    ($($ty:ty = $name:expr);+ $(;)?) => {
        $(
            impl $crate::Event for $ty {
                const NAME: &'static str = $name;
                type Data = Self;
            }
        )+
    };
}

/// The name of the event an invoked run receives.
pub(crate) const INVOKED_EVENT: &str = "inngest/function.invoked";

/// The event type of invoke-only functions
/// ([`crate::FunctionBuilder::trigger_invoke`]): no event starts them;
/// `step.invoke` sends a payload `D`, which the handler receives as
/// `ctx.event.data` (the event's name is `inngest/function.invoked`).
pub struct Invoked<D>(PhantomData<fn() -> D>, std::convert::Infallible);

impl<D: Serialize + DeserializeOwned + Send + Sync + 'static> EventType for Invoked<D> {
    type Data = D;
}

/// The event type of functions whose events are read as raw JSON: their
/// handlers get `ReceivedEvent<serde_json::Value>`. It is not an [`Event`]
/// (it has no name), so it cannot be sent.
#[derive(Debug)]
pub enum AnyEvent {}

/// What a function handler receives as `ctx.event.data`: any [`Event`]'s
/// `Data`, or JSON for [`AnyEvent`]. Implemented for you; you do not
/// implement it.
pub trait EventType: Send + Sync + 'static {
    /// The payload type.
    type Data: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The name of the Rust payload type, for error messages.
    fn type_name() -> &'static str {
        std::any::type_name::<Self::Data>()
    }
    /// `true` when the payload is typed (not [`AnyEvent`]).
    fn is_typed() -> bool {
        true
    }
}

impl<E: Event> EventType for E {
    type Data = E::Data;
}

impl EventType for AnyEvent {
    type Data = Value;
    fn is_typed() -> bool {
        false
    }
}

/// How adding a trigger for event `T` changes a function builder's event
/// type: an untyped builder ([`AnyEvent`]) becomes `T`; a typed builder keeps
/// its type and accepts only events with the same `Data`.
pub trait AddTrigger<T: Event>: EventType {
    /// The builder's event type after the trigger is added.
    type Out: EventType;
}

impl<T: Event> AddTrigger<T> for AnyEvent {
    type Out = T;
}

impl<E: Event, T: Event<Data = E::Data>> AddTrigger<T> for E {
    type Out = E;
}

/// An event id as returned by the event API (the engine's internal id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub String);

impl EventId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A run id (a ULID).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct RunId(pub String);

impl RunId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event to send whose name and payload type come from `E`.
pub struct TypedEvent<E: Event> {
    /// The payload.
    pub data: E::Data,
    /// An idempotency key: the engine starts no second run for the same id
    /// within 24 hours.
    pub id: Option<String>,
    /// Milliseconds since the epoch; the SDK fills in "now" when unset.
    pub ts: Option<i64>,
    /// A version string for the payload's schema.
    pub v: Option<String>,
    _event: PhantomData<fn() -> E>,
}

impl<E: Event> TypedEvent<E> {
    /// An event of type `E` with this payload.
    pub fn new(data: E::Data) -> Self {
        TypedEvent { data, id: None, ts: None, v: None, _event: PhantomData }
    }

    /// Sets the idempotency key.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the timestamp (milliseconds since the epoch).
    pub fn with_ts(mut self, ts: i64) -> Self {
        self.ts = Some(ts);
        self
    }

    /// Sets the schema version.
    pub fn with_version(mut self, v: impl Into<String>) -> Self {
        self.v = Some(v.into());
        self
    }
}

/// An untyped event to send: a name and JSON data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonEvent {
    /// The event name.
    pub name: String,
    /// The payload (an object; `null` is sent as `{}`).
    #[serde(default)]
    pub data: Value,
    /// An idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Milliseconds since the epoch; the SDK fills in "now" when unset.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_ts")]
    pub ts: Option<i64>,
    /// A version string for the payload's schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<String>,
}

impl JsonEvent {
    /// An event with this name and data.
    pub fn new(name: impl Into<String>, data: Value) -> Self {
        JsonEvent { name: name.into(), data, id: None, ts: None, v: None }
    }

    /// Sets the idempotency key.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the timestamp (milliseconds since the epoch).
    pub fn with_ts(mut self, ts: i64) -> Self {
        self.ts = Some(ts);
        self
    }

    /// The wire form sent to the event API: `data` always an object, `ts`
    /// filled in, no `user` (as the official SDKs).
    pub(crate) fn to_wire(&self, now_ms: i64) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), Value::String(self.name.clone()));
        let data = match &self.data {
            Value::Null => Value::Object(Map::new()),
            other => other.clone(),
        };
        m.insert("data".into(), data);
        if let Some(id) = &self.id {
            m.insert("id".into(), Value::String(id.clone()));
        }
        m.insert("ts".into(), Value::from(self.ts.unwrap_or(now_ms)));
        if let Some(v) = &self.v {
            m.insert("v".into(), Value::String(v.clone()));
        }
        Value::Object(m)
    }
}

/// Anything that can be sent as one event.
pub trait IntoEvent {
    /// The untyped form of this event.
    fn into_event(self) -> Result<JsonEvent, serde_json::Error>;
}

impl IntoEvent for JsonEvent {
    fn into_event(self) -> Result<JsonEvent, serde_json::Error> {
        Ok(self)
    }
}

impl<E: Event> IntoEvent for TypedEvent<E> {
    fn into_event(self) -> Result<JsonEvent, serde_json::Error> {
        Ok(JsonEvent { name: E::NAME.to_string(), data: serde_json::to_value(&self.data)?, id: self.id, ts: self.ts, v: self.v })
    }
}

/// A payload that is its own event type (`type Data = Self`) is sent as is.
impl<E: Event<Data = E> + Serialize> IntoEvent for E {
    fn into_event(self) -> Result<JsonEvent, serde_json::Error> {
        TypedEvent::<E>::new(self).into_event()
    }
}

/// One event or several, for `step.send_event`.
pub trait IntoEvents {
    /// The untyped forms of these events.
    fn into_events(self) -> Result<Vec<JsonEvent>, serde_json::Error>;
}

impl<T: IntoEvent> IntoEvents for T {
    fn into_events(self) -> Result<Vec<JsonEvent>, serde_json::Error> {
        Ok(vec![self.into_event()?])
    }
}

impl<T: IntoEvent> IntoEvents for Vec<T> {
    fn into_events(self) -> Result<Vec<JsonEvent>, serde_json::Error> {
        self.into_iter().map(IntoEvent::into_event).collect()
    }
}

/// An event as a function receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceivedEvent<D> {
    /// The event name (for invoked functions `inngest/function.invoked`, for
    /// crons `inngest/scheduled.timer`).
    pub name: String,
    /// The payload.
    pub data: D,
    /// The event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_ts")]
    pub ts: Option<i64>,
    /// The schema version, if sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<String>,
    /// The deprecated `user` object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Value>,
}

impl<D: DeserializeOwned> ReceivedEvent<D> {
    /// Reads an event from the engine's JSON. For typed payloads the
    /// engine's `data._inngest` metadata is removed first.
    pub(crate) fn from_json(mut value: Value, strip_meta: bool) -> Result<Self, serde_json::Error> {
        if let Value::Object(obj) = &mut value {
            match obj.get_mut("data") {
                Some(Value::Object(data)) if strip_meta => {
                    data.remove("_inngest");
                }
                None | Some(Value::Null) => {
                    obj.insert("data".into(), Value::Object(Map::new()));
                }
                _ => {}
            }
            if !obj.contains_key("name") {
                obj.insert("name".into(), Value::String(String::new()));
            }
        }
        serde_json::from_value(value)
    }
}

/// Reads `ts` as an integer, a float (truncated) or null.
fn lenient_ts<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    })
}

/// `inngest/function.failed`: a run failed. `on_failure` handlers receive it.
#[derive(Debug)]
pub enum FunctionFailed {}

impl Event for FunctionFailed {
    const NAME: &'static str = "inngest/function.failed";
    type Data = FunctionFailedData;
}

/// The data of [`FunctionFailed`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionFailedData {
    /// The composite id (`<app>-<function>`) of the function that failed.
    pub function_id: String,
    /// The failed run.
    pub run_id: RunId,
    /// Why it failed.
    pub error: StepError,
    /// The event that triggered the failed run.
    #[serde(default)]
    pub event: Value,
}

impl FunctionFailedData {
    /// The failed run's triggering event, typed.
    pub fn original_event<P: EventType>(&self) -> Result<ReceivedEvent<P::Data>, serde_json::Error> {
        ReceivedEvent::from_json(self.event.clone(), P::is_typed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Hello {
        name: String,
    }
    impl Event for Hello {
        const NAME: &'static str = "test/hello";
        type Data = Self;
    }

    enum Marker {}
    impl Event for Marker {
        const NAME: &'static str = "test/marker";
        type Data = Vec<u32>;
    }

    #[test]
    fn typed_events_carry_their_name() {
        let e = Hello { name: "a".into() }.into_event().unwrap();
        assert_eq!((e.name.as_str(), e.data.clone()), ("test/hello", json!({"name": "a"})));
        let m = TypedEvent::<Marker>::new(vec![1, 2]).with_id("k").into_event().unwrap();
        assert_eq!(m.to_wire(7), json!({"name": "test/marker", "data": [1, 2], "id": "k", "ts": 7}));
        let many = vec![JsonEvent::new("a", Value::Null), JsonEvent::new("b", json!({}))];
        assert_eq!(many.into_events().unwrap().len(), 2);
        assert_eq!(JsonEvent::new("a", Value::Null).to_wire(1)["data"], json!({}));
    }

    #[test]
    fn received_events_read_leniently() {
        let e: ReceivedEvent<Hello> = ReceivedEvent::from_json(
            json!({"name": "inngest/function.invoked", "data": {"name": "x", "_inngest": {"fn_id": "f"}}, "ts": 1.5e12}),
            true,
        )
        .unwrap();
        assert_eq!((e.data.name.as_str(), e.ts), ("x", Some(1_500_000_000_000)));
        let raw: ReceivedEvent<Value> = ReceivedEvent::from_json(json!({"name": "a", "data": {"_inngest": 1}}), false).unwrap();
        assert_eq!(raw.data, json!({"_inngest": 1}));
        let empty: ReceivedEvent<Value> = ReceivedEvent::from_json(json!({}), false).unwrap();
        assert_eq!(empty.data, json!({}));
    }
}
