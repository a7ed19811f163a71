//! advert-01 without running functions: the client's configuration from
//! the environment, the app's settings, the typed events, and the
//! `/api/inngest` route (GET introspection and the function list, PUT sync,
//! POST calls).

#[path = "../support/mod.rs"]
mod support;

mod client_config;
mod events;
mod route;
