//! `POST /v0/gql`: the subset of the Inngest dev server's GraphQL API that
//! the official SDKs' test suites read: the event stream and its runs, events,
//! a run's status, output and trace, a span's output, a run's trigger.
//!
//! Field and type names follow Inngest's schema, so queries written against
//! the Inngest dev server (including their typed variables) run unchanged.

use std::sync::Arc;

use async_graphql::{
    scalar, Context, EmptyMutation, EmptySubscription, Enum, Error, InputObject, Json, Object, Request, Schema, SimpleObject, ID,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ingot_core::{EventId, RunId, RunStatus};
use ingot_store::{EventFilter, RunRecord, StoredEvent};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::dashboard::{function_name, rfc3339};
use super::trace::{self, Span, SpanOp, SpanStatus};
use crate::Engine;

/// An RFC 3339 time.
#[derive(Serialize, Deserialize, Clone)]
pub struct Time(String);
scalar!(Time, "Time");

/// A ULID as text.
#[derive(Serialize, Deserialize, Clone)]
pub struct Ulid(String);
scalar!(Ulid, "ULID");

/// A UUID as text.
#[derive(Serialize, Deserialize, Clone)]
pub struct Uuid(String);
scalar!(Uuid, "UUID");

/// JSON text.
#[derive(Serialize, Deserialize, Clone)]
pub struct JsonBytes(String);
scalar!(JsonBytes, "Bytes");

fn time(ms: i64) -> Time {
    Time(rfc3339(ms))
}

pub type GqlSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Builds the schema over `engine`.
pub fn schema(engine: Arc<Engine>) -> GqlSchema {
    Schema::build(Query, EmptyMutation, EmptySubscription).data(engine).finish()
}

/// `POST /v0/gql`: errors are GraphQL errors in a 200, as Inngest answers.
pub async fn handle(State(schema): State<GqlSchema>, body: Bytes) -> Response {
    let request: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let body = json!({"data": null, "errors": [{"message": format!("request is not a GraphQL JSON body: {e}")}]});
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    };
    axum::Json(schema.execute(request).await).into_response()
}

fn engine<'a>(ctx: &Context<'a>) -> &'a Arc<Engine> {
    ctx.data_unchecked::<Arc<Engine>>()
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::new(e.to_string())
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum StreamType {
    Event,
    Cron,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum FunctionRunStatus {
    Completed,
    Failed,
    Cancelled,
    Running,
    Queued,
}

impl From<RunStatus> for FunctionRunStatus {
    fn from(s: RunStatus) -> Self {
        match s {
            RunStatus::Running => FunctionRunStatus::Running,
            RunStatus::Completed => FunctionRunStatus::Completed,
            RunStatus::Failed => FunctionRunStatus::Failed,
            RunStatus::Cancelled => FunctionRunStatus::Cancelled,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum RunTraceSpanStatus {
    Failed,
    Queued,
    Running,
    Completed,
    Waiting,
    Cancelled,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum StepOp {
    Invoke,
    Run,
    Sleep,
    WaitForEvent,
}

#[derive(InputObject)]
pub struct StreamQuery {
    after: Option<ID>,
    before: Option<ID>,
    #[graphql(default = 20)]
    limit: i32,
    include_internal_events: Option<bool>,
}

#[derive(InputObject)]
pub struct EventQuery {
    workspace_id: Option<ID>,
    event_id: ID,
}

#[derive(InputObject)]
pub struct EventsQuery {
    workspace_id: Option<ID>,
    last_event_id: Option<ID>,
}

#[derive(InputObject)]
pub struct FunctionRunQuery {
    workspace_id: Option<ID>,
    function_run_id: ID,
}

#[derive(InputObject)]
pub struct FunctionQuery {
    workspace_id: Option<ID>,
    function_slug: String,
}

/// The root query.
pub struct Query;

#[Object]
impl Query {
    /// Recent events, newest first, each with the runs it started.
    async fn stream(&self, ctx: &Context<'_>, query: StreamQuery) -> async_graphql::Result<Vec<StreamItem>> {
        let e = engine(ctx);
        let internal_too = query.include_internal_events.unwrap_or(false);
        let limit = query.limit.clamp(1, 1000) as usize;
        let mut out = Vec::new();
        let mut before = query.before.as_ref().and_then(|s| EventId::parse(s));
        let after = query.after.as_ref().and_then(|s| EventId::parse(s));
        // Internal events are skipped, so read pages until the limit is met.
        'pages: loop {
            let page = e.queries.events(&EventFilter { before, limit: 500, ..Default::default() }).await.map_err(internal)?;
            let Some(last) = page.last() else { break };
            before = Some(last.internal_id);
            let full = page.len() < 500;
            for ev in page {
                if after.is_some_and(|a| ev.internal_id <= a) {
                    break 'pages;
                }
                if internal_too || !ev.name.starts_with("inngest/") {
                    out.push(StreamItem(ev));
                    if out.len() >= limit {
                        break 'pages;
                    }
                }
            }
            if full {
                break;
            }
        }
        Ok(out)
    }

    /// One event.
    async fn event(&self, ctx: &Context<'_>, query: EventQuery) -> async_graphql::Result<Option<EventObj>> {
        let _ = query.workspace_id;
        let Some(id) = EventId::parse(&query.event_id) else { return Ok(None) };
        Ok(engine(ctx).queries.find_event(id).await.map_err(internal)?.map(EventObj))
    }

    /// Recent events sent by users and apps, newest first.
    async fn events(&self, ctx: &Context<'_>, query: EventsQuery) -> async_graphql::Result<Option<Vec<EventObj>>> {
        let _ = query.workspace_id;
        let filter =
            EventFilter { before: query.last_event_id.as_ref().and_then(|s| EventId::parse(s)), limit: 1000, ..Default::default() };
        let events = engine(ctx).queries.events(&filter).await.map_err(internal)?;
        Ok(Some(events.into_iter().filter(|e| !e.name.starts_with("inngest/")).map(EventObj).collect()))
    }

    #[graphql(name = "eventV2")]
    async fn event_v2(&self, ctx: &Context<'_>, id: Ulid) -> async_graphql::Result<EventV2> {
        let parsed = EventId::parse(&id.0).ok_or_else(|| Error::new(format!("{:?} is not an event id", id.0)))?;
        let ev = engine(ctx).queries.find_event(parsed).await.map_err(internal)?.ok_or_else(|| Error::new("event not found"))?;
        Ok(EventV2(ev))
    }

    /// Every active function.
    async fn functions(&self, ctx: &Context<'_>) -> Option<Vec<FunctionObj>> {
        Some(engine(ctx).queries.functions().into_iter().map(|f| FunctionObj(f.slug().as_str().to_string())).collect())
    }

    #[graphql(name = "functionBySlug")]
    async fn function_by_slug(&self, ctx: &Context<'_>, query: FunctionQuery) -> Option<FunctionObj> {
        let _ = query.workspace_id;
        engine(ctx).queries.function(&query.function_slug).map(|f| FunctionObj(f.slug().as_str().to_string()))
    }

    #[graphql(name = "functionRun")]
    async fn function_run(&self, ctx: &Context<'_>, query: FunctionRunQuery) -> async_graphql::Result<Option<FunctionRun>> {
        let _ = query.workspace_id;
        load_run(ctx, &query.function_run_id).await.map(|r| r.map(FunctionRun))
    }

    /// A run, with its trace.
    async fn run(&self, ctx: &Context<'_>, #[graphql(name = "runID")] run_id: String) -> async_graphql::Result<Option<FunctionRunV2>> {
        load_run(ctx, &run_id).await.map(|r| r.map(FunctionRunV2))
    }

    /// The root span of a run's trace.
    #[graphql(name = "runTrace")]
    async fn run_trace(&self, ctx: &Context<'_>, #[graphql(name = "runID")] run_id: String) -> async_graphql::Result<TraceSpan> {
        let run = load_run(ctx, &run_id).await?.ok_or_else(|| Error::new("run not found"))?;
        build_trace(ctx, &run).await
    }

    /// The output (or error) of a span, by the span's `outputID`.
    #[graphql(name = "runTraceSpanOutputByID")]
    async fn run_trace_span_output_by_id(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "outputID")] output_id: String,
    ) -> async_graphql::Result<SpanOutputObj> {
        let (input, out) = trace::span_output(&engine(ctx).queries, &output_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| Error::new(format!("no output with id {output_id:?}")))?;
        Ok(SpanOutputObj { input, out })
    }

    /// The event(s) that started a run.
    #[graphql(name = "runTrigger")]
    async fn run_trigger(&self, ctx: &Context<'_>, #[graphql(name = "runID")] run_id: String) -> async_graphql::Result<RunTrigger> {
        let run = load_run(ctx, &run_id).await?.ok_or_else(|| Error::new("run not found"))?;
        let events = engine(ctx).queries.events_by_ids(&run.event_ids).await.map_err(internal)?;
        let first = events.first();
        Ok(RunTrigger {
            event_name: first.map(|e| e.name.clone()),
            ids: events.iter().map(|e| Ulid(e.internal_id.to_string())).collect(),
            payloads: events.iter().map(|e| JsonBytes(e.payload.to_string())).collect(),
            timestamp: time(first.map_or(run.started_at_ms, |e| e.received_at_ms)),
            is_batch: run.event_ids.len() > 1,
            batch_id: None,
            cron: first
                .filter(|e| e.name == "inngest/scheduled.timer")
                .and_then(|e| e.payload.pointer("/data/cron"))
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }

    /// Synced apps.
    async fn apps(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<AppObj>> {
        Ok(engine(ctx).queries.apps().await.map_err(internal)?.into_iter().map(AppObj).collect())
    }
}

async fn load_run(ctx: &Context<'_>, id: &str) -> async_graphql::Result<Option<RunRecord>> {
    let Some(id) = RunId::parse(id) else { return Ok(None) };
    engine(ctx).queries.find_run(id).await.map_err(internal)
}

async fn build_trace(ctx: &Context<'_>, run: &RunRecord) -> async_graphql::Result<TraceSpan> {
    let e = engine(ctx);
    let root = trace::load(&e.queries, run, &function_name(e, run.state.function.as_str())).await.map_err(internal)?;
    Ok(TraceSpan { span: root, run_id: run.id(), function: run.state.function.as_str().to_string(), parent: None })
}

pub struct StreamItem(StoredEvent);

#[Object]
impl StreamItem {
    async fn id(&self) -> ID {
        ID(self.0.internal_id.to_string())
    }
    /// The event name.
    async fn trigger(&self) -> &str {
        &self.0.name
    }
    #[graphql(name = "type")]
    async fn kind(&self) -> StreamType {
        if self.0.name == "inngest/scheduled.timer" {
            StreamType::Cron
        } else {
            StreamType::Event
        }
    }
    async fn created_at(&self) -> Time {
        time(self.0.received_at_ms)
    }
    async fn in_batch(&self) -> bool {
        false
    }
    /// The runs the event started, once each has started (called its app):
    /// as in Inngest's stream, a run still queued is not listed yet, so a
    /// test that finds the run and sends the event it waits for does not
    /// race the run to its `waitForEvent`.
    async fn runs(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Vec<Option<FunctionRun>>>> {
        let queries = &engine(ctx).queries;
        let mut out = Vec::new();
        for r in queries.runs_for_event(self.0.internal_id).await.map_err(internal)? {
            if r.status().is_terminal() || queries.run_called(r.id()).await.map_err(internal)? {
                out.push(Some(FunctionRun(r)));
            }
        }
        Ok(Some(out))
    }
}

pub struct EventObj(StoredEvent);

#[Object(name = "Event")]
impl EventObj {
    async fn id(&self) -> Ulid {
        Ulid(self.0.internal_id.to_string())
    }
    #[graphql(name = "externalID")]
    async fn external_id(&self) -> Option<String> {
        self.0.payload.get("id").and_then(Value::as_str).map(str::to_string)
    }
    async fn name(&self) -> Option<&str> {
        Some(&self.0.name)
    }
    async fn created_at(&self) -> Option<Time> {
        Some(time(self.0.received_at_ms))
    }
    /// The event's `data`, as JSON text.
    async fn payload(&self) -> Option<String> {
        Some(self.0.payload.get("data").cloned().unwrap_or(json!({})).to_string())
    }
    /// The whole event, as JSON text.
    async fn raw(&self) -> Option<String> {
        Some(self.0.payload.to_string())
    }
    async fn total_runs(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<i32>> {
        Ok(Some(engine(ctx).queries.runs_for_event(self.0.internal_id).await.map_err(internal)?.len() as i32))
    }
    async fn pending_runs(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<i32>> {
        let runs = engine(ctx).queries.runs_for_event(self.0.internal_id).await.map_err(internal)?;
        Ok(Some(runs.iter().filter(|r| !r.status().is_terminal()).count() as i32))
    }
    async fn function_runs(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Vec<FunctionRun>>> {
        let runs = engine(ctx).queries.runs_for_event(self.0.internal_id).await.map_err(internal)?;
        Ok(Some(runs.into_iter().map(FunctionRun).collect()))
    }
}

pub struct EventV2(StoredEvent);

#[Object(name = "EventV2")]
impl EventV2 {
    async fn id(&self) -> Ulid {
        Ulid(self.0.internal_id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn raw(&self) -> String {
        self.0.payload.to_string()
    }
    async fn idempotency_key(&self) -> Option<String> {
        self.0.payload.get("id").and_then(Value::as_str).map(str::to_string)
    }
    async fn received_at(&self) -> Time {
        time(self.0.received_at_ms)
    }
    async fn occurred_at(&self) -> Time {
        time(self.0.payload.get("ts").and_then(Value::as_i64).unwrap_or(self.0.received_at_ms))
    }
    async fn runs(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<FunctionRunV2>> {
        let runs = engine(ctx).queries.runs_for_event(self.0.internal_id).await.map_err(internal)?;
        Ok(runs.into_iter().map(FunctionRunV2).collect())
    }
}

/// A run, as the v1 `FunctionRun`.
pub struct FunctionRun(RunRecord);

#[Object]
impl FunctionRun {
    async fn id(&self) -> ID {
        ID(self.0.id().to_string())
    }
    #[graphql(name = "functionID")]
    async fn function_id(&self) -> String {
        self.0.state.function.as_str().to_string()
    }
    async fn function(&self) -> Option<FunctionObj> {
        Some(FunctionObj(self.0.state.function.as_str().to_string()))
    }
    async fn status(&self) -> Option<FunctionRunStatus> {
        Some(self.0.status().into())
    }
    async fn started_at(&self) -> Option<Time> {
        Some(time(self.0.started_at_ms))
    }
    async fn finished_at(&self) -> Option<Time> {
        self.0.ended_at_ms.map(time)
    }
    /// The output as JSON text: the return value, or the error.
    async fn output(&self) -> Option<String> {
        self.0.output.as_ref().map(Value::to_string)
    }
    #[graphql(name = "eventID")]
    async fn event_id(&self) -> ID {
        ID(self.0.event_ids.first().map(|e| e.to_string()).unwrap_or_default())
    }
    async fn event(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<EventObj>> {
        let Some(id) = self.0.event_ids.first() else { return Ok(None) };
        Ok(engine(ctx).queries.find_event(*id).await.map_err(internal)?.map(EventObj))
    }
    async fn events(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<EventObj>> {
        Ok(engine(ctx).queries.events_by_ids(&self.0.event_ids).await.map_err(internal)?.into_iter().map(EventObj).collect())
    }
    #[graphql(name = "batchID")]
    async fn batch_id(&self) -> Option<Ulid> {
        None
    }
}

/// A run, as `run(runID:)` returns it.
pub struct FunctionRunV2(RunRecord);

#[Object]
impl FunctionRunV2 {
    async fn id(&self) -> Ulid {
        Ulid(self.0.id().to_string())
    }
    #[graphql(name = "functionID")]
    async fn function_id(&self, ctx: &Context<'_>) -> Uuid {
        Uuid(function_uuid(engine(ctx), self.0.state.function.as_str()))
    }
    async fn function(&self) -> FunctionObj {
        FunctionObj(self.0.state.function.as_str().to_string())
    }
    #[graphql(name = "appID")]
    async fn app_id(&self, ctx: &Context<'_>) -> Uuid {
        let app = engine(ctx).queries.function(self.0.state.function.as_str()).map(|f| f.record.app_id.clone()).unwrap_or_default();
        Uuid(crate::sync::stable_uuid(&app))
    }
    #[graphql(name = "traceID")]
    async fn trace_id(&self) -> String {
        self.0.id().to_string()
    }
    async fn queued_at(&self) -> Time {
        time(self.0.started_at_ms)
    }
    async fn started_at(&self) -> Option<Time> {
        Some(time(self.0.started_at_ms))
    }
    async fn ended_at(&self) -> Option<Time> {
        self.0.ended_at_ms.map(time)
    }
    async fn status(&self) -> FunctionRunStatus {
        self.0.status().into()
    }
    /// The output as JSON text: the return value, or the error.
    async fn output(&self) -> Option<JsonBytes> {
        self.0.output.as_ref().map(|o| JsonBytes(o.to_string()))
    }
    #[graphql(name = "triggerIDs")]
    async fn trigger_ids(&self) -> Vec<Ulid> {
        self.0.event_ids.iter().map(|e| Ulid(e.to_string())).collect()
    }
    async fn event_name(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        let Some(id) = self.0.event_ids.first() else { return Ok(None) };
        Ok(engine(ctx).queries.find_event(*id).await.map_err(internal)?.map(|e| e.name))
    }
    async fn is_batch(&self) -> bool {
        self.0.event_ids.len() > 1
    }
    #[graphql(name = "sourceID")]
    async fn source_id(&self) -> Option<String> {
        None
    }
    #[graphql(name = "hasAI")]
    async fn has_ai(&self) -> bool {
        false
    }
    /// The run's trace: the run span, with a child span per step.
    async fn trace(&self, ctx: &Context<'_>, preview: Option<bool>) -> async_graphql::Result<Option<TraceSpan>> {
        let _ = preview;
        build_trace(ctx, &self.0).await.map(Some)
    }
}

fn function_uuid(engine: &Engine, slug: &str) -> String {
    engine.queries.function(slug).map(|f| f.record.uuid.clone()).unwrap_or_else(|| crate::sync::stable_uuid(slug))
}

/// A span of a run's trace.
pub struct TraceSpan {
    span: Span,
    run_id: RunId,
    function: String,
    parent: Option<String>,
}

#[derive(SimpleObject)]
pub struct SpanMetadata {
    scope: String,
    kind: String,
    values: Json<Value>,
    updated_at: Time,
}

#[Object(name = "RunTraceSpan")]
impl TraceSpan {
    #[graphql(name = "appID")]
    async fn app_id(&self, ctx: &Context<'_>) -> Uuid {
        let app = engine(ctx).queries.function(&self.function).map(|f| f.record.app_id.clone()).unwrap_or_default();
        Uuid(crate::sync::stable_uuid(&app))
    }
    #[graphql(name = "functionID")]
    async fn function_id(&self, ctx: &Context<'_>) -> Uuid {
        Uuid(function_uuid(engine(ctx), &self.function))
    }
    #[graphql(name = "runID")]
    async fn run_id(&self) -> Ulid {
        Ulid(self.run_id.to_string())
    }
    #[graphql(name = "spanID")]
    async fn span_id(&self) -> String {
        format!("{}.{}", self.run_id, self.span.id)
    }
    #[graphql(name = "traceID")]
    async fn trace_id(&self) -> String {
        self.run_id.to_string()
    }
    async fn name(&self) -> &str {
        &self.span.name
    }
    async fn status(&self) -> RunTraceSpanStatus {
        match self.span.status {
            SpanStatus::Queued => RunTraceSpanStatus::Queued,
            SpanStatus::Running => RunTraceSpanStatus::Running,
            SpanStatus::Waiting => RunTraceSpanStatus::Waiting,
            SpanStatus::Completed => RunTraceSpanStatus::Completed,
            SpanStatus::Failed => RunTraceSpanStatus::Failed,
            SpanStatus::Cancelled => RunTraceSpanStatus::Cancelled,
        }
    }
    /// The number of the last attempt, from 0.
    async fn attempts(&self) -> Option<i32> {
        Some(self.span.attempts as i32)
    }
    /// Milliseconds; null while the span runs.
    async fn duration(&self) -> Option<i32> {
        self.span.duration_ms().map(|d| d as i32)
    }
    #[graphql(name = "outputID")]
    async fn output_id(&self) -> Option<&str> {
        self.span.output_id.as_deref()
    }
    async fn queued_at(&self) -> Time {
        time(self.span.queued_at_ms)
    }
    async fn started_at(&self) -> Option<Time> {
        self.span.started_at_ms.map(time)
    }
    async fn ended_at(&self) -> Option<Time> {
        self.span.ended_at_ms.map(time)
    }
    async fn children_spans(&self) -> Vec<TraceSpan> {
        let parent = Some(format!("{}.{}", self.run_id, self.span.id));
        self.span
            .children
            .iter()
            .map(|c| TraceSpan { span: c.clone(), run_id: self.run_id, function: self.function.clone(), parent: parent.clone() })
            .collect()
    }
    async fn step_op(&self) -> Option<StepOp> {
        match self.span.op {
            SpanOp::Step => Some(StepOp::Run),
            SpanOp::Sleep => Some(StepOp::Sleep),
            SpanOp::WaitForEvent => Some(StepOp::WaitForEvent),
            SpanOp::Invoke => Some(StepOp::Invoke),
            SpanOp::Run | SpanOp::Finalization => None,
        }
    }
    #[graphql(name = "stepID")]
    async fn step_id(&self) -> Option<&str> {
        self.span.step_id.as_deref()
    }
    /// `RUN`, `SLEEP`, `WAIT_FOR_EVENT`, `INVOKE` or `FINALIZATION`.
    async fn step_type(&self) -> &'static str {
        self.span.op.step_type()
    }
    async fn is_root(&self) -> bool {
        self.parent.is_none()
    }
    #[graphql(name = "parentSpanID")]
    async fn parent_span_id(&self) -> Option<&str> {
        self.parent.as_deref()
    }
    async fn is_userland(&self) -> bool {
        false
    }
    async fn metadata(&self) -> Vec<SpanMetadata> {
        Vec::new()
    }
    async fn skip_reason(&self) -> Option<String> {
        None
    }
}

#[derive(SimpleObject)]
#[graphql(name = "StepError")]
pub struct StepErrorObj {
    message: String,
    name: Option<String>,
    stack: Option<String>,
    cause: Option<Json<Value>>,
}

/// `runTraceSpanOutputByID`.
pub struct SpanOutputObj {
    input: Value,
    out: trace::SpanOutput,
}

#[Object(name = "RunTraceSpanOutput")]
impl SpanOutputObj {
    /// The run's events, as JSON text.
    async fn input(&self) -> Option<JsonBytes> {
        Some(JsonBytes(self.input.to_string()))
    }
    /// The span's data, as JSON text; null when it failed.
    async fn data(&self) -> Option<JsonBytes> {
        self.out.as_ref().ok().map(|d| JsonBytes(d.to_string()))
    }
    async fn error(&self) -> Option<StepErrorObj> {
        let e = self.out.as_ref().err()?;
        let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
        Some(StepErrorObj {
            message: text("message").unwrap_or_else(|| match e {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            name: text("name"),
            stack: text("stack"),
            cause: e.get("cause").filter(|c| !c.is_null()).cloned().map(Json),
        })
    }
}

#[derive(SimpleObject)]
pub struct RunTrigger {
    event_name: Option<String>,
    #[graphql(name = "IDs")]
    ids: Vec<Ulid>,
    payloads: Vec<JsonBytes>,
    timestamp: Time,
    is_batch: bool,
    #[graphql(name = "batchID")]
    batch_id: Option<Ulid>,
    cron: Option<String>,
}

#[derive(SimpleObject)]
pub struct FunctionTrigger {
    #[graphql(name = "type")]
    kind: FunctionTriggerType,
    value: String,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "FunctionTriggerTypes")]
pub enum FunctionTriggerType {
    Event,
    Cron,
}

/// A function, by slug.
pub struct FunctionObj(String);

#[Object(name = "Function")]
impl FunctionObj {
    async fn id(&self, ctx: &Context<'_>) -> String {
        function_uuid(engine(ctx), &self.0)
    }
    async fn name(&self, ctx: &Context<'_>) -> String {
        function_name(engine(ctx), &self.0)
    }
    async fn slug(&self) -> &str {
        &self.0
    }
    async fn config(&self, ctx: &Context<'_>) -> String {
        engine(ctx).queries.function(&self.0).map(|f| f.record.config.to_string()).unwrap_or_else(|| "{}".into())
    }
    async fn concurrency(&self, ctx: &Context<'_>) -> i32 {
        engine(ctx).queries.function(&self.0).and_then(|f| f.flow.concurrency.first().map(|c| c.limit as i32)).unwrap_or(0)
    }
    async fn triggers(&self, ctx: &Context<'_>) -> Option<Vec<FunctionTrigger>> {
        let f = engine(ctx).queries.function(&self.0)?;
        Some(
            f.config
                .triggers
                .iter()
                .filter_map(|t| match (&t.event, &t.cron) {
                    (Some(e), _) => Some(FunctionTrigger { kind: FunctionTriggerType::Event, value: e.clone() }),
                    (None, Some(c)) => Some(FunctionTrigger { kind: FunctionTriggerType::Cron, value: c.clone() }),
                    _ => None,
                })
                .collect(),
        )
    }
    async fn url(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        let e = engine(ctx);
        let app = e.queries.function(&self.0).map(|f| f.record.app_id.clone()).unwrap_or_default();
        Ok(e.queries.apps().await.map_err(internal)?.into_iter().find(|a| a.id == app).map(|a| a.url).unwrap_or_default())
    }
    #[graphql(name = "appID")]
    async fn app_id(&self, ctx: &Context<'_>) -> String {
        engine(ctx).queries.function(&self.0).map(|f| f.record.app_id.clone()).unwrap_or_default()
    }
    async fn app(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<AppObj>> {
        let e = engine(ctx);
        let app = e.queries.function(&self.0).map(|f| f.record.app_id.clone()).unwrap_or_default();
        Ok(e.queries.apps().await.map_err(internal)?.into_iter().find(|a| a.id == app).map(AppObj))
    }
}

/// A synced app.
pub struct AppObj(ingot_store::AppRecord);

#[Object(name = "App")]
impl AppObj {
    async fn id(&self) -> ID {
        ID(crate::sync::stable_uuid(&self.0.id))
    }
    #[graphql(name = "externalID")]
    async fn external_id(&self) -> &str {
        &self.0.id
    }
    async fn name(&self) -> &str {
        &self.0.id
    }
    async fn sdk_language(&self) -> String {
        self.0.sdk.as_deref().and_then(|s| s.split(':').next()).unwrap_or("").to_string()
    }
    async fn sdk_version(&self) -> String {
        self.0.sdk.as_deref().and_then(|s| s.split_once(':')).map(|(_, v)| v.trim_start_matches('v').to_string()).unwrap_or_default()
    }
    async fn framework(&self) -> Option<&str> {
        self.0.framework.as_deref()
    }
    async fn url(&self) -> Option<&str> {
        Some(&self.0.url)
    }
    async fn checksum(&self) -> Option<&str> {
        self.0.checksum.as_deref()
    }
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn connected(&self) -> bool {
        self.0.error.is_none()
    }
    async fn function_count(&self, ctx: &Context<'_>) -> i32 {
        engine(ctx).queries.functions().iter().filter(|f| f.record.app_id == self.0.id).count() as i32
    }
    async fn functions(&self, ctx: &Context<'_>) -> Vec<FunctionObj> {
        engine(ctx)
            .queries
            .functions()
            .iter()
            .filter(|f| f.record.app_id == self.0.id)
            .map(|f| FunctionObj(f.slug().as_str().to_string()))
            .collect()
    }
    async fn autodiscovered(&self) -> bool {
        false
    }
}
