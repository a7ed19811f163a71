//! One error type for every handler, mapped to status codes in one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

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
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<ingot_store::StoreError> for ApiError {
    fn from(e: ingot_store::StoreError) -> Self {
        match e {
            ingot_store::StoreError::NotFound => ApiError::NotFound("not found".into()),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Refused(status, _) => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = %format!("{e:#}"), "request failed");
        }
        let status = self.status();
        (status, Json(json!({ "error": self.to_string(), "status": status.as_u16() }))).into_response()
    }
}
