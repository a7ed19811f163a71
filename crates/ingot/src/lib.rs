//! # ingot: durable background jobs in Rust, over the Inngest protocol
//!
//! Write functions made of steps; an engine that speaks the Inngest wire
//! protocol (`ingot dev`, Inngest's dev server, or Inngest Cloud) calls them
//! over HTTP, memoizes each step's result, retries failures, sleeps, waits
//! for events and fans out. The quick start (Cargo.toml, serving, syncing,
//! logging, HTTPS) is in the crate's `README.md`; `examples/orders.rs` is a
//! whole app with its tests.
//!
//! * [`Client`]: the app id and settings, read from `INNGEST_*` variables
//!   like the official SDKs; [`Client::send`] sends events.
//! * [`Event`] (or the one-line [`event!`]): binds a payload type to an
//!   event name, so sending or handling the wrong payload does not compile.
//! * [`Function`]: a builder with triggers, retries, flow control and state
//!   ([`FunctionBuilder::with_state`]), and an
//!   `async fn(Ctx<E>) -> Result<T, Error>` handler; the result is a
//!   [`TypedFunction<E, T>`] whose [`reference`](TypedFunction::reference)
//!   invokes it with a typed result.
//! * [`Step`] (`ctx.step`): `run`, `sleep`, `sleep_until`, `wait_for_event`,
//!   `send_event`, `invoke`; await several at once to run them in parallel.
//!   Periods are [`TimeSpec`]s: a `Duration` or `"1h30m"`.
//! * [`Error`]: what handlers return; `?` takes std errors, `String`, `&str`
//!   and `anyhow::Error`; [`bail!`] and [`ensure!`] return early.
//! * [`serve()`]: the axum endpoint (`GET`/`PUT`/`POST /api/inngest`);
//!   [`Handler::with_state`] gives every handler a value. Serving does not
//!   sync: `ingot dev -u <url>` or a `PUT` to the endpoint does.
//! * [`testing`]: run a function against mocked steps, without an engine.
//!
//! ## The same function in TypeScript and in Rust
//!
//! ```ts
//! // TypeScript (inngest v3)
//! const computeTax = inngest.createFunction(
//!   { id: "compute-tax" },
//!   { event: "shop/tax.requested" }, // a trigger is required, even if only invoked
//!   async ({ event }) => Math.floor(event.data.cents / 5),
//! );
//!
//! const checkout = inngest.createFunction(
//!   { id: "checkout", retries: 3, concurrency: { limit: 1, key: "event.data.customer" } },
//!   { event: "shop/order.placed" },
//!   async ({ event, step }) => {
//!     const cents = await step.run("price", () => event.data.cents);
//!     const tax = await step.invoke("tax", { function: computeTax, data: { cents } });
//!     await step.sleep("cool-off", "2s");
//!     const paid = await step.waitForEvent("paid", { event: "shop/order.paid", timeout: "1h", match: "data.order_id" });
//!     return { total: cents + tax, paid: paid !== null };
//!   },
//! );
//! ```
//!
//! ```
//! // Rust: the same two functions.
//! use ingot::{Concurrency, Ctx, Function, Invoked, WaitOpts};
//! use serde::{Deserialize, Serialize};
//! use serde_json::json;
//!
//! #[derive(Serialize, Deserialize)]
//! struct OrderPlaced { order_id: String, customer: String, cents: u64 }
//! #[derive(Serialize, Deserialize)]
//! struct OrderPaid { order_id: String }
//! ingot::event!(OrderPlaced = "shop/order.placed"; OrderPaid = "shop/order.paid");
//!
//! #[derive(Serialize, Deserialize)]
//! struct Tax { cents: u64 }
//!
//! let compute_tax = Function::new("compute-tax")
//!     .trigger_invoke::<Tax>() // invoke-only: no made-up trigger event
//!     .handler(|ctx: Ctx<Invoked<Tax>>| async move { Ok(ctx.event.data.cents / 5) });
//!
//! let tax_fn = compute_tax.reference(); // FunctionRef<Invoked<Tax>, u64>
//! let checkout = Function::new("checkout")
//!     .trigger_event::<OrderPlaced>()
//!     .retries(3)
//!     .concurrency(Concurrency::new(1).key("event.data.customer"))
//!     .handler(move |ctx: Ctx<OrderPlaced>| {
//!         let tax_fn = tax_fn.clone();
//!         async move {
//!             let cents: u64 = ctx.step.run("price", || async { Ok(ctx.event.data.cents) }).await?;
//!             let tax = ctx.step.invoke("tax", &tax_fn, Tax { cents }).await?; // a u64
//!             ctx.step.sleep("cool-off", "2s").await?;
//!             let paid = ctx.step.wait_for_event::<OrderPaid>("paid", WaitOpts::new("1h").match_field("data.order_id")).await?;
//!             Ok(json!({ "total": cents + tax, "paid": paid.is_some() }))
//!         }
//!     });
//!
//! // Run it as the engine would, with the sleep over, the invoke and the wait mocked.
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let order = OrderPlaced { order_id: "o-1".into(), customer: "ada".into(), cents: 1000 };
//! let result = ingot::testing::TestRun::new(&checkout, order)
//!     .mock_invoke("tax", &compute_tax.reference(), 200)
//!     .mock_event::<OrderPaid>("paid", OrderPaid { order_id: "o-1".into() })
//!     .run()
//!     .await;
//! assert_eq!(result.output.unwrap(), json!({ "total": 1200, "paid": true }));
//! assert_eq!(result.steps_run, ["price"]);
//! # });
//! # let _ = ingot::functions![compute_tax, checkout];
//! ```
//!
//! What differs: the payload and output types are checked when compiling
//! (an invoke awaited as the wrong type, or a handler for another event's
//! payload, does not compile), and state such as a pool is given with
//! `with_state` instead of closed over.
//!
//! Serving the functions with axum (`INNGEST_DEV=1` for a local engine):
//!
//! ```no_run
//! # use ingot::{Client, Function};
//! # async fn run(functions: Vec<Function>) -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new("my-app")?;
//! let app = ingot::serve(&client, functions); // GET/PUT/POST /api/inngest
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! // Then: `ingot dev -u http://127.0.0.1:3000/api/inngest` syncs it.
//! # Ok(())
//! # }
//! ```
//!
//! ## How a run executes
//!
//! The engine calls the function once per step. In each call, steps that
//! already have a result (sent back by the engine, "memoized") return it at
//! once without running their body; the first step without one suspends the
//! function (its future stays pending; this is not an error). The SDK then
//! runs that step and reports its result, or, when several new steps were
//! reached together (`join!`), reports them as planned so the engine runs
//! each in its own call. Code outside steps therefore runs again on every
//! call: keep side effects inside steps.
//!
//! HTTPS origins (Inngest Cloud) work with the default feature `rustls`
//! (reqwest with rustls and the system's roots). Without it, pass your own
//! client with [`ClientBuilder::http_client`].

#![warn(missing_docs)]

pub mod client;
pub mod error;
pub mod event;
mod exec;
pub mod function;
pub mod serve;
pub mod step;
pub mod testing;
pub mod time;

/// The axum this crate serves with (0.8), for apps that want the same one.
pub use axum;
pub use client::{Client, ClientBuilder, Mode};
pub use error::{ConfigError, Error, ResultExt, SendError, StepError};
pub use event::{AnyEvent, Event, EventId, FunctionFailed, Invoked, JsonEvent, ReceivedEvent, RunId, TypedEvent};
pub use function::options::{
    BatchEvents, CancelOn, Concurrency, ConcurrencyScope, Debounce, RateLimit, Singleton, SingletonMode, Throttle, Timeouts,
};
pub use function::{Ctx, Function, FunctionBuilder, TypedFunction};
pub use serve::{serve, serve_with_state, Handler};
pub use step::{FunctionRef, InvokeOpts, OnConflict, Signal, SignalOpts, Step, WaitOpts};
pub use time::TimeSpec;

/// Reads an Inngest time string (`"30s"`, `"1h30m"`, `"7d"`) as a duration.
pub fn parse_time_string(s: &str) -> Result<std::time::Duration, ingot_protocol::timestr::BadDuration> {
    ingot_protocol::timestr::parse_duration(s)
}
