//! advert-01 without running functions: the client's configuration from
//! the environment, the app's settings, the typed events, the
//! `/api/inngest` route (GET introspection and the function list, PUT sync,
//! POST calls), the API token and reading exports.

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod client_config;
mod events;
mod exports;
mod route;
