//! One error type for every handler, mapped to status codes in one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ingot_store::StoreError;
use serde_json::json;

use crate::error::EngineError;
use crate::sync::SyncError;

/// What a handler can fail with. Internal details are logged, not returned.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    /// Any other refusal, with its status (403, 409, 413, …).
    #[error("{1}")]
    Refused(StatusCode, String),
    /// A refused event send, in the event API's shape (`ids: []`).
    #[error("{1}")]
    Events(StatusCode, String),
    /// A refusal with a machine-readable `code` in the body.
    #[error("{2}")]
    Coded(StatusCode, &'static str, String),
    #[error("internal error")]
    Internal(#[source] EngineError),
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound(m) => ApiError::NotFound(m),
            EngineError::Refused(m) => ApiError::BadRequest(m),
            EngineError::Store(StoreError::NotFound) => ApiError::NotFound("not found".into()),
            EngineError::Sync(e) => e.into(),
            other => ApiError::Internal(other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        EngineError::from(e).into()
    }
}

/// A refused register: the status and a machine-readable `code` the SDKs log.
impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        let (status, code) = match &e {
            SyncError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            SyncError::KindMismatch { .. } => (StatusCode::BAD_REQUEST, "server_kind_mismatch"),
            SyncError::Owned { .. } => (StatusCode::CONFLICT, "function_owned_by_another_app"),
            SyncError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::Coded(status, code, e.to_string())
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Refused(status, _) | ApiError::Events(status, _) | ApiError::Coded(status, ..) => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = %e, "request failed");
        }
        let status = self.status();
        let mut body = json!({ "error": self.to_string(), "status": status.as_u16() });
        match &self {
            ApiError::Coded(_, code, _) => body["code"] = json!(code),
            ApiError::Events(..) => body["ids"] = json!([]),
            ApiError::Unauthorized(_) => return (status, [("www-authenticate", "Bearer")], Json(body)).into_response(),
            _ => {}
        }
        (status, Json(body)).into_response()
    }
}
