//! Request body limits, per route, enforced before a body is buffered and
//! before auth looks at the request: a `Content-Length` over the limit is
//! refused at once, and a body that streams past it is cut off by the
//! extractor ([`DefaultBodyLimit`]). Both answer with a JSON error body.

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use ingot_protocol::event::{MAX_EVENT_BYTES, MAX_EVENT_REQUEST_BYTES};

/// `POST /e/{key}` and the dashboard's send: Inngest's 3 MiB event request.
pub const EVENTS: usize = MAX_EVENT_REQUEST_BYTES;
/// `POST /invoke/{slug}`: one event's payload and a little envelope.
pub const INVOKE: usize = MAX_EVENT_BYTES + 16 * 1024;
/// `POST /fn/register`: every function config of an app.
pub const REGISTER: usize = 8 * 1024 * 1024;
/// `POST /v1/checkpoint/{id}/async`: steps of one call, within the run state cap.
pub const CHECKPOINT: usize = ingot_core::MAX_RUN_STATE_BYTES + 1024 * 1024;
/// Everything else: REST and GraphQL requests, forms.
pub const DEFAULT: usize = 1024 * 1024;

/// Applies a body limit of `max` bytes to every route of `router`; a refused
/// body is answered with `status` (the event API answers 400, as it does for
/// every other bad request; the rest 413).
pub fn limit<S: Clone + Send + Sync + 'static>(router: Router<S>, max: usize, status: StatusCode) -> Router<S> {
    router
        .layer(axum::middleware::from_fn(move |req: Request, next: Next| async move {
            let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
            if let Some(len) = declared.filter(|len| *len > max as u64) {
                return refused(status, Some(len), max);
            }
            let resp = next.run(req).await;
            if resp.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json(&resp) {
                return refused(status, None, max);
            }
            resp
        }))
        .layer(DefaultBodyLimit::max(max))
}

fn is_json(resp: &Response) -> bool {
    resp.headers().get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"))
}

fn refused(status: StatusCode, len: Option<u64>, max: usize) -> Response {
    let error = match len {
        Some(len) => format!("request body is {len} bytes, over the limit of {max} bytes"),
        None => format!("request body is over the limit of {max} bytes"),
    };
    super::ApiError::Refused(status, error).into_response()
}
