//! The HTTP API on one port: the event API, sync, the REST API and the
//! endpoints SDKs call during runs.

mod error;
mod events;
mod rest;
mod sdk;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::HeaderValue;
use axum::routing::{delete, get, post};
use axum::Router;

pub use error::ApiError;

use crate::Engine;

/// Largest body any endpoint reads; larger event requests get a clear 400
/// from the handler rather than a bare 413 from the framework.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Builds the router.
pub fn router(engine: Arc<Engine>) -> Router {
    let kind = HeaderValue::from_static(engine.config.mode.server_kind());
    Router::new()
        .route("/health", get(events::health))
        .route("/e/{key}", post(events::send))
        .route("/invoke/{slug}", post(events::invoke))
        .route("/fn/register", post(sdk::register))
        .route("/dev", get(sdk::dev_info))
        .route("/v0/runs/{id}/batch", get(sdk::run_batch))
        .route("/v0/runs/{id}/actions", get(sdk::run_actions))
        .route("/v0/runs/{id}", delete(rest::cancel_run))
        .route("/v1/events", get(rest::list_events))
        .route("/v1/events/{id}", get(rest::get_event))
        .route("/v1/events/{id}/runs", get(rest::event_runs))
        .route("/v1/runs", get(rest::list_runs))
        .route("/v1/runs/{id}", get(rest::get_run).delete(rest::cancel_run))
        .route("/v1/runs/{id}/jobs", get(rest::run_jobs))
        .route("/v1/runs/{id}/steps", get(rest::run_steps))
        .route("/v1/cancellations", post(rest::bulk_cancel))
        .route("/v1/skips", get(rest::list_skips))
        .route("/v1/apps", get(rest::list_apps))
        .route("/v1/apps/{app}/functions", get(rest::app_functions))
        .route("/v1/apps/{app}/sync", post(rest::resync_app))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response(move |mut resp: axum::response::Response| {
            let kind = kind.clone();
            async move {
                resp.headers_mut().insert("x-inngest-server-kind", kind);
                resp
            }
        }))
        .with_state(engine)
}
