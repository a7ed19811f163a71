//! # ingot: durable background jobs in Rust, over the Inngest protocol
//!
//! Write functions made of steps; an engine that speaks the Inngest wire
//! protocol (`ingot dev`, Inngest's dev server, or Inngest Cloud) calls them
//! over HTTP, memoizes each step's result, retries failures, sleeps, waits
//! for events and fans out.
//!
//! * [`Client`]: the app id and settings, read from `INNGEST_*` variables
//!   like the official SDKs; [`Client::send`] sends events.
//! * [`Event`]: binds a payload type to an event name, so sending or
//!   handling the wrong payload does not compile.
//! * [`Function`]: a builder with triggers, retries and flow control, and an
//!   `async fn(Ctx<E>) -> Result<T, Error>` handler.
//! * [`Step`] (`ctx.step`): `run`, `sleep`, `sleep_until`, `wait_for_event`,
//!   `send_event`, `invoke`; await several at once to run them in parallel.
//! * [`serve()`]: the axum endpoint (`GET`/`PUT`/`POST /api/inngest`).
//! * [`testing`]: run a function against mocked step results.
//!
//! ```
//! use ingot::{Ctx, Error, Event, Function};
//! use serde::{Deserialize, Serialize};
//! use serde_json::json;
//!
//! #[derive(Serialize, Deserialize)]
//! struct HelloWorld {
//!     name: String,
//! }
//!
//! impl Event for HelloWorld {
//!     const NAME: &'static str = "test/hello.world";
//!     type Data = Self;
//! }
//!
//! async fn hello(ctx: Ctx<HelloWorld>) -> Result<serde_json::Value, Error> {
//!     let greeting = ctx
//!         .step
//!         .run("greet", || async { Ok(format!("Hello, {}!", ctx.event.data.name)) })
//!         .await?;
//!     ctx.step.sleep("pause", std::time::Duration::from_secs(1)).await?;
//!     Ok(json!({ "message": greeting }))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let function = Function::new("hello-world")
//!     .trigger_event::<HelloWorld>()
//!     .retries(2)
//!     .handler(hello);
//!
//! // Run it as the engine would, with the sleep already over.
//! let result = ingot::testing::TestRun::new(&function, HelloWorld { name: "Ada".into() })
//!     .run()
//!     .await;
//! assert_eq!(result.output.unwrap(), json!({ "message": "Hello, Ada!" }));
//! assert_eq!(result.steps_run, ["greet"]);
//! # }
//! ```
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
//! HTTPS origins (Inngest Cloud) need a TLS backend in reqwest: add
//! `reqwest = { version = "0.12", features = ["rustls-tls"] }` to your app,
//! or pass your own client with [`ClientBuilder::http_client`].

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
pub use step::{FunctionRef, InvokeOpts, Step, WaitOpts};
pub use time::TimeSpec;

/// Reads an Inngest time string (`"30s"`, `"1h30m"`, `"7d"`) as a duration.
pub fn parse_time_string(s: &str) -> Result<std::time::Duration, ingot_protocol::timestr::BadDuration> {
    ingot_protocol::timestr::parse_duration(s)
}
