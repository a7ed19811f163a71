//! Serving functions to the engine: one endpoint (by convention
//! `/api/inngest`) answering `GET` (introspection), `PUT` (sync) and `POST`
//! (calls, and `?probe=trust`). [`Handler`] is framework-neutral
//! (`http::Request<Bytes>` in, `http::Response<Bytes>` out); [`serve`] and
//! [`Handler::method_router`] mount it in axum.
//!
//! In cloud mode (the engine's requests are signed):
//!
//! * calls, trust probes and introspection must carry a valid
//!   `X-Inngest-Signature` (else `401 {"message":"Unauthorized"}`), and
//!   replies are signed with the key that verified;
//! * each signature is accepted once within its 5-minute window
//!   (`replay`): a repeat gets `401` with a message saying so;
//! * a call's signed body must be for the function and step its URL names
//!   (`fnId`, `stepId`; `claims`), else `401` before the handler runs;
//! * a sync `PUT` registers the configured `serve_origin`, or, if it is
//!   signed, the URL it was sent to; an unsigned `PUT` with no configured
//!   origin is refused (`sync`), so a forged `Host`/`X-Forwarded-Host`
//!   cannot point the engine at another server.
//!
//! In dev mode nothing is verified; only a call whose `ctx.step_id` no
//! engine would send with its `stepId` is refused (`400`).

mod auth;
mod claims;
mod replay;
mod sync;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::routing::MethodRouter;
use bytes::Bytes;
use ingot_protocol::call::IncomingCallRequest;
use serde_json::{json, Map, Value};
use tracing::Instrument;

use crate::client::{sha256_hex, Client, Mode, SDK_VERSION};
use crate::exec::reply::{reply, CallReply};
use crate::exec::{drive, Exec, Target};
use crate::function::state::{StateMap, States};
use crate::function::{Function, HandlerInput, Role};
use crate::step::Step;
use crate::RunId;

/// The path the engine looks for apps at.
pub const DEFAULT_PATH: &str = "/api/inngest";
/// The introspection schema this SDK answers with.
pub const SCHEMA_VERSION: &str = "2024-05-24";
/// How much of a hashed signing key introspection reports.
const KEY_HASH_CHARS: usize = 12;
/// Largest request body read (call requests carry all step results).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The app's endpoint: its client, functions and state. Cheap to clone.
///
/// ```no_run
/// # async fn run(client: ingot::Client, functions: Vec<ingot::Function>) -> Result<(), Box<dyn std::error::Error>> {
/// struct Db; // e.g. a connection pool
/// let app = ingot::Handler::new(&client, functions)
///     .with_state(Db) // `ctx.state::<Db>()` in every handler
///     .into_router();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// axum::serve(listener, app).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Handler {
    inner: Arc<Inner>,
    /// What [`Handler::with_state`] gave every handler.
    state: Arc<StateMap>,
}

pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) functions: Vec<Function>,
    by_id: HashMap<String, (usize, Role)>,
    /// The slugs and derived UUIDs of every function, to bind calls to them.
    names: claims::FunctionNames,
    /// Signatures already accepted (cloud mode).
    seen: replay::SeenSignatures,
}

/// A request whose signature verified.
struct Signed {
    /// The key that verified it, to sign the reply with.
    key: String,
    /// The `X-Inngest-Signature` value.
    header: String,
}

/// A router serving `functions` at [`DEFAULT_PATH`] (give handlers state
/// with [`Handler::with_state`], or [`serve_with_state`]).
///
/// Serving does not sync the app: the engine learns about it when it is
/// told the URL (`ingot dev -u http://127.0.0.1:3000/api/inngest`, or the
/// dev server's UI), or when the app's URL is sent a `PUT` (a deploy hook:
/// `curl -X PUT http://127.0.0.1:3000/api/inngest`).
///
/// # Panics
/// If two functions have the same id.
pub fn serve<I>(client: &Client, functions: I) -> axum::Router
where
    I: IntoIterator,
    I::Item: Into<Function>,
{
    Handler::new(client, functions).into_router()
}

/// [`serve`] with a value every handler reads with
/// [`crate::Ctx::state`]: `serve_with_state(&client, functions, pool)`.
///
/// # Panics
/// If two functions have the same id.
pub fn serve_with_state<I, S>(client: &Client, functions: I, state: S) -> axum::Router
where
    I: IntoIterator,
    I::Item: Into<Function>,
    S: Send + Sync + 'static,
{
    Handler::new(client, functions).with_state(state).into_router()
}

/// Removes `null`s from objects, recursively (as the Python SDK does before
/// registering).
pub(crate) fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, strip_nulls(v))).collect()),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// A reply before it becomes an HTTP response.
struct Out {
    status: u16,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    /// The key that verified the request, to sign the reply with.
    sign_with: Option<String>,
    /// `false` for 401s, which carry no SDK headers (as the official SDKs).
    sdk_headers: bool,
    version: u8,
}

impl Out {
    fn json(status: u16, body: &Value) -> Out {
        Out {
            status,
            body: serde_json::to_vec(body).unwrap_or_default(),
            headers: Vec::new(),
            sign_with: None,
            sdk_headers: true,
            version: 2,
        }
    }

    fn unauthorized() -> Out {
        Out { sdk_headers: false, ..Out::json(401, &json!({"message": "Unauthorized"})) }
    }

    /// A 401 that says why (a replayed signature, a call signed for another
    /// function): no SDK headers, as for a bad signature.
    fn refused(reason: &str) -> Out {
        Out { sdk_headers: false, ..Out::json(401, &json!({"message": format!("Unauthorized: {reason}")})) }
    }

    fn signed(mut self, key: Option<&str>) -> Out {
        self.sign_with = key.map(str::to_string);
        self
    }
}

/// The request's query parameters.
fn query(uri: &axum::http::Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| reqwest::Url::parse(&format!("http://x/?{q}")).map(|u| u.query_pairs().into_owned().collect()).unwrap_or_default())
        .unwrap_or_default()
}

impl Handler {
    /// An endpoint for `functions`.
    ///
    /// # Panics
    /// If two functions have the same id.
    pub fn new<I>(client: &Client, functions: I) -> Handler
    where
        I: IntoIterator,
        I::Item: Into<Function>,
    {
        let functions: Vec<Function> = functions.into_iter().map(Into::into).collect();
        let mut by_id = HashMap::new();
        let mut names = claims::FunctionNames::default();
        for (i, f) in functions.iter().enumerate() {
            let composite = client.composite_id(f.id());
            let failure = format!("{composite}-failure");
            for (id, role) in [(composite, Role::Main), (failure, Role::OnFailure)] {
                if role == Role::OnFailure && f.handler(role).is_none() {
                    continue;
                }
                names.add(&id);
                if by_id.insert(id.clone(), (i, role)).is_some() {
                    panic!("two functions of app {:?} have the id {id:?}", client.app_id());
                }
            }
        }
        let seen = replay::SeenSignatures::new(replay::MAX_REMEMBERED);
        Handler { inner: Arc::new(Inner { client: client.clone(), functions, by_id, names, seen }), state: Arc::default() }
    }

    /// Gives every handler a value it reads with [`crate::Ctx::state`]
    /// (one value per type; a function's own
    /// [`crate::FunctionBuilder::with_state`] of the same type wins).
    pub fn with_state<S: Send + Sync + 'static>(self, state: S) -> Handler {
        self.with_shared_state(Arc::new(state))
    }

    /// As [`Handler::with_state`], for a value already in an `Arc`.
    pub fn with_shared_state<S: Send + Sync + 'static>(mut self, state: Arc<S>) -> Handler {
        Arc::make_mut(&mut self.state).insert(state);
        self
    }

    /// A router serving this endpoint at [`DEFAULT_PATH`].
    pub fn into_router(self) -> axum::Router {
        axum::Router::new().route(DEFAULT_PATH, self.method_router())
    }

    /// This endpoint as an axum method router, to mount at any path:
    /// `Router::new().route("/my/path", handler.method_router())`.
    pub fn method_router<S: Clone + Send + Sync + 'static>(self) -> MethodRouter<S> {
        axum::routing::any(move |req: Request| {
            let handler = self.clone();
            async move {
                let (parts, body) = req.into_parts();
                let resp = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
                    Ok(bytes) => handler.handle(axum::http::Request::from_parts(parts, bytes)).await,
                    Err(e) => {
                        let mut r = axum::http::Response::new(Bytes::from(
                            json!({"message": format!("cannot read the request body: {e}")}).to_string(),
                        ));
                        *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
                        r
                    }
                };
                resp.map(axum::body::Body::from)
            }
        })
    }

    /// Answers one request to the endpoint.
    pub async fn handle(&self, req: axum::http::Request<Bytes>) -> axum::http::Response<Bytes> {
        let client = &self.inner.client;
        let now = client.now().timestamp();
        let method = req.method().clone();
        let span = tracing::info_span!("inngest.request", %method, uri = %req.uri());
        let out = async {
            match method {
                Method::GET => self.introspect(&req, now),
                Method::PUT => self.sync(&req, now).await,
                Method::POST => self.call(&req, now).await,
                _ => Out::json(405, &json!({"message": format!("method {method} not allowed")})),
            }
        }
        .instrument(span)
        .await;
        self.respond(out, now)
    }

    fn respond(&self, out: Out, now: i64) -> axum::http::Response<Bytes> {
        let client = &self.inner.client;
        let mut resp = axum::http::Response::new(Bytes::new());
        *resp.status_mut() = StatusCode::from_u16(out.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut headers: Vec<(&'static str, String)> =
            vec![("content-type", "application/json".into()), ("x-inngest-sdk-handled", "true".into())];
        if out.sdk_headers {
            let sdk = Client::sdk_header();
            headers.extend([
                ("x-inngest-sdk", sdk.clone()),
                ("user-agent", sdk),
                ("x-inngest-framework", sync::FRAMEWORK.into()),
                ("x-inngest-req-version", out.version.to_string()),
                ("x-inngest-expected-server-kind", client.mode().as_str().into()),
            ]);
            if let Some(env) = &client.inner.env {
                headers.push(("x-inngest-env", env.clone()));
            }
        }
        headers.extend(out.headers);
        if let Some(key) = &out.sign_with {
            headers.push(("x-inngest-signature", auth::sign(&out.body, key, now)));
        }
        for (name, value) in headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        *resp.body_mut() = Bytes::from(out.body);
        resp
    }

    /// Verifies a request in cloud mode; `Ok(None)` in dev mode.
    fn authenticate(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<Option<Signed>, Out> {
        match self.inner.client.mode() {
            Mode::Dev => Ok(None),
            Mode::Cloud => self.verified(headers, body, now).map(Some).ok_or_else(|| {
                tracing::warn!("rejected a request without a valid signature");
                Out::unauthorized()
            }),
        }
    }

    /// The request's signature, if it verifies with one of the keys.
    fn verified(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Option<Signed> {
        let key = auth::verify(&self.inner.client, headers, body, now)?;
        let header = headers.get("x-inngest-signature").and_then(|v| v.to_str().ok())?;
        Some(Signed { key: key.to_string(), header: header.to_string() })
    }

    /// Accepts a signature once (`super::replay`); a second use is refused.
    fn first_use(&self, signed: Option<&Signed>, now: i64) -> Result<(), Out> {
        match signed {
            Some(s) if !self.inner.seen.first_use(&s.header, now) => {
                tracing::warn!("rejected a replayed signature");
                Err(Out::refused("this signature was already used; each signed request is accepted once"))
            }
            _ => Ok(()),
        }
    }

    fn function_count(&self) -> usize {
        self.inner.by_id.len()
    }

    fn introspect(&self, req: &axum::http::Request<Bytes>, now: i64) -> Out {
        let c = &self.inner.client.inner;
        let signed = match self.authenticate(req.headers(), req.body(), now) {
            Ok(signed) => signed,
            Err(out) => return out,
        };
        if let Err(out) = self.first_use(signed.as_ref(), now) {
            return out;
        }
        let key = signed.as_ref().map(|s| s.key.as_str());
        let mut body = json!({
            "schema_version": SCHEMA_VERSION,
            "mode": c.mode.as_str(),
            "function_count": self.function_count(),
            "has_event_key": c.event_key.is_some(),
            "has_signing_key": c.signing_key.is_some(),
            "has_signing_key_fallback": c.signing_key_fallback.is_some(),
            "authentication_succeeded": Value::Null,
        });
        if key.is_some() {
            // The first 12 hex characters, as the JS SDK: the whole hash is
            // the Bearer token of the engine's API.
            let hash = |k: &Option<String>| {
                k.as_deref()
                    .and_then(ingot_protocol::signature::hashed_key)
                    .map(|h| ingot_protocol::signature::normalize_key(&h).chars().take(KEY_HASH_CHARS).collect::<String>())
            };
            let extra = json!({
                "authentication_succeeded": true,
                "api_origin": c.api_origin,
                "app_id": c.app_id,
                "capabilities": {"trust_probe": "v1"},
                "env": c.env,
                "event_api_origin": c.event_api_origin,
                "event_key_hash": c.event_key.as_deref().map(|k| sha256_hex(k.as_bytes())),
                "framework": sync::FRAMEWORK,
                "sdk_language": "rust",
                "sdk_version": SDK_VERSION,
                "serve_origin": c.serve_origin,
                "serve_path": c.serve_path,
                "signing_key_hash": hash(&c.signing_key),
                "signing_key_fallback_hash": hash(&c.signing_key_fallback),
            });
            if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
                b.extend(e);
            }
        }
        Out::json(200, &body).signed(key)
    }

    async fn sync(&self, req: &axum::http::Request<Bytes>, now: i64) -> Out {
        let trust = match self.inner.client.mode() {
            Mode::Dev => sync::Trust::Dev,
            // A PUT need not be signed (a deploy hook may `curl -X PUT`), but
            // only a signed one may say where the app is.
            Mode::Cloud => match self.verified(req.headers(), req.body(), now) {
                Some(signed) => {
                    if let Err(out) = self.first_use(Some(&signed), now) {
                        return out;
                    }
                    sync::Trust::Signed
                }
                None => sync::Trust::Unsigned,
            },
        };
        let url = match sync::app_url(&self.inner.client, req, trust) {
            Ok(url) => url,
            Err(reason) => {
                tracing::warn!(%reason, "refused to sync");
                return Out::refused(&reason);
            }
        };
        let q = query(req.uri());
        let kind = req.headers().get("x-inngest-server-kind").and_then(|v| v.to_str().ok());
        let (status, body) = sync::register(&self.inner, &url, q.get("deployId").map(String::as_str), kind).await;
        let mut out = Out::json(status, &body);
        out.headers.push(("x-inngest-sync-kind", "out_of_band".into()));
        out
    }

    async fn call(&self, req: &axum::http::Request<Bytes>, now: i64) -> Out {
        let q = query(req.uri());
        let signed = match self.authenticate(req.headers(), req.body(), now) {
            Ok(signed) => signed,
            Err(out) => return out,
        };
        let key = signed.as_ref().map(|s| s.key.clone());
        if q.get("probe").map(String::as_str) == Some("trust") {
            if let Err(out) = self.first_use(signed.as_ref(), now) {
                return out;
            }
            let mut out = Out::json(200, &Value::Null);
            out.body.clear();
            return out.signed(key.as_deref());
        }
        let fn_id = q.get("fnId").cloned().unwrap_or_default();
        let Some(&(index, role)) = self.inner.by_id.get(&fn_id) else {
            let message = format!("Function {fn_id:?} was not found in this app; is the app synced correctly?");
            tracing::warn!(%fn_id, "call for an unknown function");
            return Out::json(500, &json!({"name": "Error", "message": message})).signed(key.as_deref());
        };
        let request: IncomingCallRequest = match serde_json::from_slice(req.body()) {
            Ok(r) => r,
            Err(e) => {
                let message = format!("the call request cannot be read: {e}");
                return Out::json(500, &json!({"name": "Error", "message": message})).signed(key.as_deref());
            }
        };
        let function = &self.inner.functions[index];
        let main_slug = self.inner.client.composite_id(function.id());
        let addressed = claims::Addressed {
            slug: &fn_id,
            role,
            main_slug: &main_slug,
            hears_invoked_events: function.triggered_by(claims::INVOKED_EVENT),
            step_id: q.get("stepId").map(String::as_str),
        };
        // Checked before the signature is spent, so a replay to the wrong
        // function does not use up the genuine call.
        if let Err(refusal) = claims::check(&self.inner.names, &addressed, req.body(), &request, self.inner.client.mode()) {
            return self.refuse_call(refusal, &fn_id);
        }
        if let Err(out) = self.first_use(signed.as_ref(), now) {
            return out;
        }
        let step_id = q.get("stepId").cloned().or_else(|| request.ctx.step_id.clone());
        let version: u8 = if request.version == 1 { 1 } else { 2 };
        let span = tracing::info_span!(
            "run",
            function = %fn_id,
            run_id = %request.ctx.run_id,
            step_id = step_id.as_deref().unwrap_or("step"),
            attempt = request.ctx.attempt,
        );
        let reply = self.run_call(index, role, request, step_id.as_deref()).instrument(span).await;
        let mut out = Out::json(reply.status, &reply.body).signed(key.as_deref());
        out.version = version;
        if let Some(no_retry) = reply.no_retry {
            out.headers.push(("x-inngest-no-retry", no_retry.to_string()));
        }
        if let Some(secs) = reply.retry_after {
            out.headers.push(("retry-after", secs.to_string()));
        }
        out
    }

    /// The reply to a call whose body is not for the function or step its
    /// URL names: 401 in cloud mode (a signed call replayed elsewhere), 400
    /// otherwise (no engine sends such a call).
    fn refuse_call(&self, refusal: claims::Refusal, fn_id: &str) -> Out {
        match (refusal, self.inner.client.mode()) {
            (claims::Refusal::Mismatch(reason), Mode::Cloud) => {
                tracing::warn!(%fn_id, %reason, "rejected a call signed for another function or step");
                Out::refused(&reason)
            }
            (claims::Refusal::Mismatch(reason) | claims::Refusal::Malformed(reason), _) => {
                tracing::warn!(%fn_id, %reason, "rejected a malformed call");
                Out::json(400, &json!({"name": "Error", "message": reason}))
            }
        }
    }

    /// Runs a call to function `index` and builds its reply.
    async fn run_call(&self, index: usize, role: Role, mut request: IncomingCallRequest, step_id: Option<&str>) -> CallReply {
        if request.use_api || request.ctx.use_api {
            match self.fetch_state(&request.ctx.run_id).await {
                Ok((events, steps)) => {
                    request.event = events.first().cloned().unwrap_or(Value::Null);
                    request.events = events;
                    request.steps = steps;
                }
                Err(message) => {
                    tracing::warn!(%message, "could not load the run's state");
                    return CallReply::error(500, &message);
                }
            }
        }
        let setup = CallSetup { client: &self.inner.client, app_state: self.state.clone(), failing: HashSet::new() };
        run_function(&setup, &self.inner.functions[index], role, request, step_id).await
    }

    /// `use_api`: loads the run's events and step results from the engine.
    async fn fetch_state(&self, run_id: &str) -> Result<(Vec<Value>, Map<String, Value>), String> {
        let client = &self.inner.client;
        let get = |path: String| {
            let mut req = client
                .inner
                .http
                .get(format!("{}/v0/runs/{run_id}/{path}", client.api_origin()))
                .header("X-Inngest-SDK", Client::sdk_header());
            if let Some(auth) = Client::bearer(client.inner.signing_key.as_deref()) {
                req = req.header("Authorization", auth);
            }
            async move {
                let resp = req.send().await.map_err(|e| format!("GET {path}: {e}"))?;
                let status = resp.status();
                let body: Value = resp.json().await.map_err(|e| format!("GET {path}: {e}"))?;
                if !status.is_success() {
                    return Err(format!("GET {path} answered {status}: {body}"));
                }
                Ok(body)
            }
        };
        let events = match get("batch".into()).await? {
            Value::Array(a) => a,
            other => return Err(format!("the run's events are not a list: {other}")),
        };
        let steps = match get("actions".into()).await? {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => return Err(format!("the run's steps are not an object: {other}")),
        };
        Ok((events, steps))
    }
}

impl CallReply {
    fn error(status: u16, message: &str) -> CallReply {
        CallReply { status, no_retry: None, retry_after: None, body: json!({"name": "Error", "message": message}) }
    }
}

/// What a call runs with besides the request: the client, the endpoint's
/// state and, in tests, the steps whose attempt fails on purpose.
pub(crate) struct CallSetup<'a> {
    pub(crate) client: &'a Client,
    pub(crate) app_state: Arc<StateMap>,
    /// Hashed ids (`testing::TestRun::fail_step_once`).
    pub(crate) failing: HashSet<String>,
}

/// Runs one call of a function's handler (`role`) and builds the reply:
/// the core shared by the endpoint and [`crate::testing`].
pub(crate) async fn run_function(
    setup: &CallSetup<'_>,
    function: &Function,
    role: Role,
    request: IncomingCallRequest,
    step_id: Option<&str>,
) -> CallReply {
    let Some(handler) = function.handler(role) else {
        return CallReply::error(500, "the function has no handler");
    };
    if !function.config_errors().is_empty() {
        let mut r = CallReply::error(400, &function.config_errors().join("; "));
        r.no_retry = Some(true);
        return r;
    }
    let client = setup.client;
    let max_attempts = request.ctx.max_attempts.filter(|&n| n > 0).unwrap_or_else(|| function.max_attempts(role));
    let attempt = request.ctx.attempt;
    let exec = Exec::with_failures(request.steps, setup.failing.clone());
    let input = HandlerInput {
        event: request.event,
        events: request.events,
        run_id: RunId(request.ctx.run_id),
        attempt,
        max_attempts,
        step: Step::new(exec.clone(), client.clone()),
        state: States { function: function.def.state.clone(), app: setup.app_state.clone() },
    };
    let target = Target::from_step_id(step_id);
    let driven = drive(handler.as_ref(), input, exec, target, request.ctx.disable_immediate_execution).await;
    let r = reply(driven, attempt, max_attempts);
    tracing::debug!(status = r.status, "call answered");
    r
}
