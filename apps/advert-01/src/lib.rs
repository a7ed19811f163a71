//! # advert-01: the product's background jobs, on Ingot
//!
//! advert-01 sends emails, turns campaign briefs into media strategies,
//! exports documents to PDF and delivers signed webhooks, all as durable
//! functions written with the `ingot` Rust SDK. One binary serves the
//! functions at `/api/inngest` (axum, 127.0.0.1:3000) and, unless told to
//! use another engine, runs the Ingot engine and its dashboard in the same
//! process (127.0.0.1:8288, SQLite).
//!
//! * [`jobs`]: the client, the typed events and one module per function.
//! * [`config`]: the app's settings (SMTP, storage, webhooks, database).
//! * [`server`]: start-up, with the engine embedded or external.
//! * [`api`]: the HTTP routes, including the app's own "send an event".
//! * [`db`], [`storage`]: the app's SQLite database and its export storage.

pub mod api;
pub mod config;
pub mod db;
pub mod jobs;
pub mod server;
pub mod storage;
