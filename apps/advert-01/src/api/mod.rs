//! The app's HTTP surface: `/api/inngest` for the engine (GET
//! introspection, PUT sync, POST calls, via [`ingot::Handler`]) and a small
//! API for the app's own code: send an event by name (checked against its
//! payload type, then [`ingot::Client::send`]), read a stored strategy, the
//! webhook attempts, and download an export. Outside dev mode the app API
//! needs the API token ([`auth`]); `/api/inngest` checks the engine's
//! request signatures instead, and `/` and `/health` stay open.

pub mod auth;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ingot::{Client, Function};
use serde_json::{json, Value};

use crate::jobs::client::{self, SendNamedError};
use crate::jobs::strategy::store;
use crate::jobs::webhook::attempts;
use crate::jobs::Deps;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The Ingot client (sends events).
    pub client: Client,
    /// The jobs' dependencies (database, storage).
    pub deps: Arc<Deps>,
    /// The engine's origin, shown on the index page.
    pub engine_url: String,
}

/// An API failure, mapped to a status in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// No API token, or the wrong one.
    #[error("{0}")]
    Unauthorized(String),
    /// Nothing there.
    #[error("{0}")]
    NotFound(String),
    /// The engine refused or could not be reached.
    #[error("{0}")]
    Upstream(String),
    /// Our own failure; the detail is logged, not sent.
    #[error("internal error")]
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "API request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let mut resp = (status, Json(json!({"error": self.to_string()}))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> ApiError {
        ApiError::Internal(e.to_string())
    }
}

/// The app's router: `/api/inngest` serving `functions`, and the app API
/// behind [`auth::require`].
pub fn router(state: AppState, functions: Vec<Function>) -> Router {
    let inngest = ingot::Handler::new(&state.client, functions);
    let access = state.deps.settings.api_access.clone();
    // `route_layer`: only matched routes ask for the token, so an unknown
    // path is a 404 whoever asks.
    let app_api = Router::new()
        .route("/api/events", get(list_events))
        .route("/api/events/{*name}", post(send_event))
        .route("/api/strategies/{id}", get(get_strategy))
        .route("/api/webhooks/attempts", get(list_attempts))
        .route("/api/exports/{*key}", get(download_export))
        .route_layer(axum::middleware::from_fn_with_state(access, auth::require));
    Router::new()
        .route(ingot::serve::DEFAULT_PATH, inngest.method_router())
        .route("/", get(index))
        .route("/health", get(|| async { Json(json!({"ok": true})) }))
        .merge(app_api)
        .with_state(state)
}

async fn index(State(s): State<AppState>) -> Json<Value> {
    Json(json!({
        "app": client::APP_ID,
        "mode": s.client.mode().as_str(),
        "engine": s.engine_url,
        "dashboard": s.engine_url,
        "api_auth": match s.deps.settings.api_access {
            auth::ApiAccess::Open => "open (dev mode without ADVERT_API_TOKEN)",
            auth::ApiAccess::Token(_) => "Authorization: Bearer <ADVERT_API_TOKEN> on /api/* but /api/inngest",
        },
        "endpoints": {
            "inngest": "GET/PUT/POST /api/inngest",
            "send an event": "POST /api/events/{name} with the event's data as the body",
            "events and example payloads": "GET /api/events",
            "a stored strategy": "GET /api/strategies/{id}",
            "webhook attempts": "GET /api/webhooks/attempts?url=...|message_id=...",
            "an exported PDF (local storage)": "GET /api/exports/{key}",
        },
    }))
}

async fn list_events() -> Json<Value> {
    Json(json!({"events": client::SENDABLE, "examples": client::examples()}))
}

async fn send_event(State(s): State<AppState>, Path(name): Path<String>, Json(data): Json<Value>) -> Result<Json<Value>, ApiError> {
    match client::send_named(&s.client, &name, data, s.deps.webhooks.policy()).await {
        Ok(id) => Ok(Json(json!({"ids": [id], "name": name}))),
        Err(e @ SendNamedError::UnknownEvent { .. }) => Err(ApiError::NotFound(e.to_string())),
        Err(e @ (SendNamedError::InvalidData { .. } | SendNamedError::Refused { .. })) => Err(ApiError::BadRequest(e.to_string())),
        Err(e @ SendNamedError::Send(_)) => Err(ApiError::Upstream(e.to_string())),
    }
}

async fn get_strategy(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<store::StoredStrategy>, ApiError> {
    store::load(&s.deps.db, &id).await?.map(Json).ok_or_else(|| ApiError::NotFound(format!("no strategy {id:?}")))
}

async fn list_attempts(State(s): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Result<Json<Value>, ApiError> {
    let rows = match (q.get("message_id"), q.get("url")) {
        (Some(id), _) => attempts::for_message(&s.deps.db, id).await?,
        (None, Some(url)) => attempts::for_url(&s.deps.db, url, 1_000).await?,
        (None, None) => attempts::recent(&s.deps.db, 100).await?,
    };
    Ok(Json(json!({"data": rows})))
}

async fn download_export(State(s): State<AppState>, Path(key): Path<String>) -> Result<Response, ApiError> {
    match s.deps.exports.get(&key).await {
        Ok(bytes) => Ok(([(header::CONTENT_TYPE, "application/pdf")], bytes).into_response()),
        Err(crate::storage::StorageError::Store(object_store::Error::NotFound { .. })) => {
            Err(ApiError::NotFound(format!("no export {key:?}")))
        }
        Err(crate::storage::StorageError::BadKey { .. }) => Err(ApiError::BadRequest(format!("{key:?} is not an export key"))),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}
