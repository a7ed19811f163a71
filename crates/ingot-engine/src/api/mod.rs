//! The HTTP API on one port: the event API, sync, the REST API, the
//! endpoints SDKs call during runs, the dev-server GraphQL API and the
//! dashboard. In `ingot start` everything but health and the login page
//! needs a key: the event API an event key, the rest the signing key or a
//! dashboard session ([`auth`]).

pub mod auth;
mod dashboard;
mod error;
mod events;
pub mod gql;
pub mod limits;
pub mod live;
mod observe;
pub mod origin;
mod rest;
mod sdk;
pub mod trace;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::routing::{delete, get, post};
use axum::Router;

pub use error::ApiError;

use crate::Engine;

/// Builds the router.
///
/// Every route has a body limit ([`limits`]) applied before its body is read
/// and before auth runs. In `ingot start` every route but health, the event
/// API (event key) and the login page needs a key ([`auth`]); in `ingot dev`
/// requests a web page made for another site are refused ([`origin`]).
pub fn router(engine: Arc<Engine>) -> Router {
    let kind = HeaderValue::from_static(engine.config().mode.server_kind());
    let gql = Router::new().route("/v0/gql", post(gql::handle)).with_state(gql::schema(engine.clone()));
    let checkpoint = Router::new().route("/v1/checkpoint/{id}/async", post(sdk::checkpoint));
    let send = Router::new().route("/v1/events", get(rest::list_events).post(dashboard::send_events));
    // Everything here needs the token in `ingot start`. The SDK-facing
    // routes accept the hashed signing key, which SDKs send as a Bearer.
    let guarded = Router::new()
        .route("/dev", get(sdk::dev_info))
        .route("/v0/runs/{id}/batch", get(sdk::run_batch))
        .route("/v0/runs/{id}/actions", get(sdk::run_actions))
        .route("/v0/runs/{id}", delete(rest::cancel_run))
        .route("/v1/events/{id}/replay", post(dashboard::replay_event))
        .route("/v1/events/{id}", get(rest::get_event))
        .route("/v1/events/{id}/runs", get(rest::event_runs))
        .route("/v1/runs", get(rest::list_runs))
        .route("/v1/runs/{id}", get(rest::get_run).delete(rest::cancel_run))
        .route("/v1/runs/{id}/jobs", get(rest::run_jobs))
        .route("/v1/runs/{id}/steps", get(rest::run_steps))
        .route("/v1/runs/{id}/timeline", get(dashboard::timeline))
        .route("/v1/runs/{id}/rerun", post(dashboard::rerun))
        .route("/v1/cancellations", post(rest::bulk_cancel))
        .route("/v1/signals", post(rest::send_signal))
        .route("/v1/skips", get(rest::list_skips))
        .route("/v1/apps", get(rest::list_apps).post(dashboard::add_app))
        .route("/v1/apps/{app}/functions", get(rest::app_functions))
        .route("/v1/apps/{app}/sync", post(rest::resync_app))
        .route("/v1/functions", get(dashboard::functions))
        .route("/v1/functions/{slug}/pause", post(dashboard::pause))
        .route("/v1/functions/{slug}/resume", post(dashboard::resume))
        .route("/v1/functions/{slug}/invoke", post(dashboard::invoke))
        .route("/v1/dashboard/runs", get(dashboard::runs))
        .route("/v1/dashboard/events", get(dashboard::events_feed))
        .route("/v1/dashboard/events/{id}", get(dashboard::event_detail))
        .route("/v1/stream", get(live::stream))
        .route("/metrics", get(observe::metrics))
        .route("/v1/functions/{slug}/stats", get(observe::function_stats))
        .route("/v1/queue/stats", get(observe::queue_stats))
        .merge(gql)
        .merge(ingot_dashboard::pages());
    let guarded = limits::limit(guarded, limits::DEFAULT, StatusCode::PAYLOAD_TOO_LARGE)
        .merge(limits::limit(checkpoint, limits::CHECKPOINT, StatusCode::PAYLOAD_TOO_LARGE))
        .merge(limits::limit(send, limits::EVENTS, StatusCode::PAYLOAD_TOO_LARGE))
        .route_layer(axum::middleware::from_fn_with_state(engine.clone(), auth::require));
    let open = Router::new()
        .route("/health", get(events::health))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .merge(ingot_dashboard::assets());
    // These check their own key: an event key, or the signing key.
    let keyed = limits::limit(Router::new().route("/e/{key}", post(events::send)), limits::EVENTS, StatusCode::BAD_REQUEST)
        .merge(limits::limit(Router::new().route("/invoke/{slug}", post(events::invoke)), limits::INVOKE, StatusCode::PAYLOAD_TOO_LARGE))
        .merge(limits::limit(Router::new().route("/fn/register", post(sdk::register)), limits::REGISTER, StatusCode::PAYLOAD_TOO_LARGE));
    let poke = engine.clone();
    limits::limit(open, limits::DEFAULT, StatusCode::PAYLOAD_TOO_LARGE)
        .merge(keyed)
        .merge(guarded)
        .layer(axum::middleware::from_fn_with_state(engine.clone(), origin::require_local))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        // A write may have made an event or changed a run: live views look now.
        .layer(axum::middleware::from_fn(move |req: Request, next: Next| {
            let engine = poke.clone();
            async move {
                let writes = req.method() != Method::GET && req.method() != Method::HEAD;
                let resp = next.run(req).await;
                if writes && resp.status().is_success() {
                    engine.live.poke();
                }
                resp
            }
        }))
        .layer(axum::middleware::map_response(move |mut resp: axum::response::Response| {
            let kind = kind.clone();
            async move {
                resp.headers_mut().insert("x-inngest-server-kind", kind);
                resp
            }
        }))
        .with_state(engine)
}
