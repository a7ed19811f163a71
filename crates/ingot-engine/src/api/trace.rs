//! A run's trace: one span for the run and one per step, rebuilt from the
//! memoized steps and the run's history. The dashboard's timeline and the
//! GraphQL `run.trace` both read it, so they always agree.

use std::collections::HashMap;

use ingot_core::{RunId, RunStatus};
use ingot_store::{HistoryRecord, RunRecord, StepRecord};
use serde_json::{json, Value};

use crate::error::EngineError;
use crate::queries::Queries;

/// What a step span stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanOp {
    /// The run itself (the root span).
    Run,
    /// `step.run`.
    Step,
    Sleep,
    WaitForEvent,
    Invoke,
    /// The function's own code after its last step, up to its return or error.
    Finalization,
}

impl SpanOp {
    /// The `stepType` of Inngest's trace spans.
    pub fn step_type(self) -> &'static str {
        match self {
            SpanOp::Run => "RUN",
            SpanOp::Step => "RUN",
            SpanOp::Sleep => "SLEEP",
            SpanOp::WaitForEvent => "WAIT_FOR_EVENT",
            SpanOp::Invoke => "INVOKE",
            SpanOp::Finalization => "FINALIZATION",
        }
    }

    fn from_opcode(op: &str) -> Option<SpanOp> {
        Some(match op {
            "StepRun" | "Step" | "StepError" | "StepFailed" | "StepPlanned" => SpanOp::Step,
            "Sleep" => SpanOp::Sleep,
            "WaitForEvent" => SpanOp::WaitForEvent,
            "InvokeFunction" => SpanOp::Invoke,
            _ => return None,
        })
    }
}

/// Where a span stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanStatus {
    Queued,
    Running,
    Waiting,
    Completed,
    Failed,
    Cancelled,
}

impl SpanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SpanStatus::Queued => "QUEUED",
            SpanStatus::Running => "RUNNING",
            SpanStatus::Waiting => "WAITING",
            SpanStatus::Completed => "COMPLETED",
            SpanStatus::Failed => "FAILED",
            SpanStatus::Cancelled => "CANCELLED",
        }
    }

    fn of_run(s: RunStatus) -> SpanStatus {
        match s {
            RunStatus::Running => SpanStatus::Running,
            RunStatus::Completed => SpanStatus::Completed,
            RunStatus::Failed => SpanStatus::Failed,
            RunStatus::Cancelled => SpanStatus::Cancelled,
        }
    }
}

/// One try of a step (or of the function's final code).
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// From 0.
    pub attempt: u32,
    pub started_at_ms: i64,
    pub duration_ms: Option<i64>,
    /// `completed`, `error` (will retry) or `failed`.
    pub outcome: &'static str,
    /// The error of this try, when the history holds it.
    pub error: Option<Value>,
}

/// A span of the trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Unique within the run: `run` or the step's hashed id.
    pub id: String,
    pub step_id: Option<String>,
    pub name: String,
    pub op: SpanOp,
    pub status: SpanStatus,
    /// The last attempt's number, from 0.
    pub attempts: u32,
    pub queued_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
    /// Present once there is something to show (see [`span_output`]).
    pub output_id: Option<String>,
    pub attempt_list: Vec<Attempt>,
    /// Op details: a sleep's end, the event a wait wants, the invoked function.
    pub detail: Value,
    /// When the next try of this failed span is due (it is retrying).
    pub retry_at_ms: Option<i64>,
    pub children: Vec<Span>,
}

impl Span {
    pub fn duration_ms(&self) -> Option<i64> {
        Some(self.ended_at_ms? - self.started_at_ms?)
    }
}

/// The output id of a span: `<run id>.<span id>`.
pub fn output_id(run: RunId, span: &str) -> String {
    format!("{run}.{span}")
}

/// A span's output: `Ok(data)` or `Err(error)`.
pub type SpanOutput = Result<Value, Value>;

/// Reads the output behind an output id, if it exists.
pub async fn span_output(queries: &Queries, id: &str) -> Result<Option<(Value, SpanOutput)>, EngineError> {
    let Some((run_id, span)) = id.split_once('.') else { return Ok(None) };
    let Some(run_id) = RunId::parse(run_id) else { return Ok(None) };
    let Some(run) = queries.find_run(run_id).await? else { return Ok(None) };
    let input = Value::Array(queries.run_events(&run).await?);
    if span == "run" || span == "final" {
        return Ok(run_output(&run).map(|o| (input, o)));
    }
    let steps = queries.run_steps(run_id).await?;
    Ok(steps.into_iter().find(|s| s.step == span).map(|s| (input, memo_output(&s.memo))))
}

/// A run's output: its return value, or its error.
pub fn run_output(run: &RunRecord) -> Option<SpanOutput> {
    match run.status() {
        RunStatus::Running => None,
        RunStatus::Completed => Some(Ok(run.output.clone().unwrap_or(Value::Null))),
        RunStatus::Failed | RunStatus::Cancelled => {
            let out = run.output.clone().unwrap_or(Value::Null);
            Some(Err(match out {
                Value::Null => json!({"name": "Cancelled", "message": "the run was cancelled"}),
                Value::Object(ref m) if m.len() == 1 && m.contains_key("error") => m["error"].clone(),
                other => other,
            }))
        }
    }
}

/// A step memo as output: `{data}` is data, `{error}` an error, anything
/// else (an event a wait received, `null` after a sleep) is data as it is.
pub fn memo_output(memo: &Value) -> SpanOutput {
    match memo {
        Value::Object(m) if m.contains_key("error") && !m.contains_key("data") => Err(m["error"].clone()),
        Value::Object(m) if m.contains_key("data") => Ok(m["data"].clone()),
        other => Ok(other.clone()),
    }
}

/// Loads what a run's trace needs and builds it.
pub async fn load(queries: &Queries, run: &RunRecord, function_name: &str) -> Result<Span, EngineError> {
    let steps = queries.run_steps(run.id()).await?;
    let history = queries.run_history(run.id()).await?;
    Ok(build(run, function_name, &steps, &history))
}

/// Everything known about one step while the history is read.
struct StepAcc {
    span: Span,
    order: (i64, usize),
}

fn new_step(id: &str, name: &str, op: SpanOp, at: i64, order: usize) -> StepAcc {
    StepAcc {
        span: Span {
            id: id.to_string(),
            step_id: Some(id.to_string()),
            name: name.to_string(),
            op,
            status: SpanStatus::Queued,
            attempts: 0,
            queued_at_ms: at,
            started_at_ms: None,
            ended_at_ms: None,
            output_id: None,
            attempt_list: Vec::new(),
            detail: Value::Null,
            retry_at_ms: None,
            children: Vec::new(),
        },
        order: (at, order),
    }
}

/// Builds the trace of `run` from its steps and history (sorted by time).
pub fn build(run: &RunRecord, function_name: &str, steps: &[StepRecord], history: &[HistoryRecord]) -> Span {
    let mut acc: HashMap<String, StepAcc> = HashMap::new();
    let mut fin: Vec<Attempt> = Vec::new();
    let mut last_call_end: Option<i64> = None;
    // The span the last failed try belongs to (`None`: the function's own
    // code), and the retry scheduled for it: `(span, attempt, due)`.
    let mut last_failed: Option<Option<String>> = None;
    let mut retry: Option<(Option<String>, u32, i64)> = None;
    for (seq, h) in history.iter().enumerate() {
        match h.kind.as_str() {
            "retry_scheduled" => {
                let attempt = h.detail.get("attempt").and_then(Value::as_u64).unwrap_or(0) as u32;
                let at = h.detail.get("at_ms").and_then(Value::as_i64).unwrap_or(h.at_ms);
                let span = match h.step.as_deref().filter(|s| *s != "step") {
                    Some(step) => Some(step.to_string()),
                    None => last_failed.clone().flatten(),
                };
                retry = Some((span, attempt, at));
            }
            "call" => {
                let attempt = h.attempt.unwrap_or(0);
                if retry.as_ref().is_some_and(|r| attempt >= r.1) {
                    retry = None;
                }
                let end = h.at_ms + h.duration_ms.unwrap_or(0);
                last_call_end = Some(end);
                let ops = h.detail.get("ops").and_then(Value::as_array).cloned().unwrap_or_default();
                for op in &ops {
                    let (Some(code), Some(id)) = (op.get("op").and_then(Value::as_str), op.get("id").and_then(Value::as_str)) else {
                        continue;
                    };
                    let Some(kind) = SpanOp::from_opcode(code) else { continue };
                    let name = op.get("name").and_then(Value::as_str).unwrap_or(id);
                    let entry = acc.entry(id.to_string()).or_insert_with(|| new_step(id, name, kind, h.at_ms, seq));
                    if entry.span.op == SpanOp::Step && kind != SpanOp::Step {
                        entry.span.op = kind;
                    }
                    let outcome = match code {
                        "StepRun" | "Step" => "completed",
                        "StepError" => "error",
                        "StepFailed" => "failed",
                        _ => {
                            // A planned step waits for its own call; an async
                            // op starts when the SDK reports it.
                            if kind != SpanOp::Step {
                                entry.span.started_at_ms.get_or_insert(end);
                            }
                            continue;
                        }
                    };
                    entry.span.started_at_ms.get_or_insert(h.at_ms);
                    if outcome != "completed" {
                        last_failed = Some(Some(id.to_string()));
                    }
                    entry.span.attempt_list.push(Attempt {
                        attempt,
                        started_at_ms: h.at_ms,
                        duration_ms: h.duration_ms,
                        outcome,
                        error: op.get("error").cloned(),
                    });
                }
                match h.detail.get("result").and_then(Value::as_str) {
                    Some("completed") => {
                        fin.push(Attempt { attempt, started_at_ms: h.at_ms, duration_ms: h.duration_ms, outcome: "completed", error: None })
                    }
                    Some("error") | Some("invalid") => {
                        let error = h.detail.get("error").cloned();
                        let target = h.step.as_deref().filter(|s| *s != "step");
                        last_failed = Some(target.filter(|t| acc.contains_key(*t)).map(str::to_string));
                        match target.and_then(|t| acc.get_mut(t)) {
                            Some(step) => step.span.attempt_list.push(Attempt {
                                attempt,
                                started_at_ms: h.at_ms,
                                duration_ms: h.duration_ms,
                                outcome: "error",
                                error,
                            }),
                            None => {
                                fin.push(Attempt { attempt, started_at_ms: h.at_ms, duration_ms: h.duration_ms, outcome: "error", error })
                            }
                        }
                    }
                    _ => {}
                }
            }
            "sleep" | "wait" | "invoke" => {
                let Some(id) = h.step.as_deref() else { continue };
                let kind = match h.kind.as_str() {
                    "sleep" => SpanOp::Sleep,
                    "wait" => SpanOp::WaitForEvent,
                    _ => SpanOp::Invoke,
                };
                let name = h.name.as_deref().unwrap_or(id);
                let entry = acc.entry(id.to_string()).or_insert_with(|| new_step(id, name, kind, h.at_ms, seq));
                entry.span.op = kind;
                entry.span.started_at_ms.get_or_insert(h.at_ms);
                entry.span.detail = h.detail.clone();
            }
            _ => {}
        }
    }

    // Memoized steps: their end, output and final status.
    for s in steps {
        // Steps with no history (kept by a rerun, checkpointed) sort by their memo order.
        let order = usize::MAX / 2 + usize::try_from(s.seq).unwrap_or(0);
        let entry = acc.entry(s.step.clone()).or_insert_with(|| new_step(&s.step, &s.name, SpanOp::Step, s.at_ms, order));
        if entry.span.name == entry.span.id || entry.span.name.is_empty() {
            entry.span.name = s.name.clone();
        }
        entry.span.ended_at_ms = Some(s.at_ms);
        entry.span.started_at_ms.get_or_insert(s.at_ms);
        entry.span.output_id = Some(output_id(run.id(), &s.step));
        entry.span.status = match memo_output(&s.memo) {
            Ok(_) => SpanStatus::Completed,
            Err(_) => SpanStatus::Failed,
        };
        // The last try of a failed step is its failure, whatever the SDK called it.
        if entry.span.status == SpanStatus::Failed {
            if let Some(last) = entry.span.attempt_list.last_mut() {
                last.outcome = "failed";
            }
        }
    }

    let run_status = match SpanStatus::of_run(run.status()) {
        SpanStatus::Running if !history.iter().any(|h| ingot_store::CALLED_KINDS.contains(&h.kind.as_str())) => SpanStatus::Queued,
        s => s,
    };
    // A retry is shown while the run still waits for it.
    let retry = retry.filter(|_| run.status() == RunStatus::Running);
    let mut children: Vec<StepAcc> = acc.into_values().collect();
    for c in &mut children {
        let span = &mut c.span;
        if let Some((Some(step), _, at)) = &retry {
            if *step == span.id && span.ended_at_ms.is_none() {
                span.retry_at_ms = Some(*at);
            }
        }
        span.attempts = span.attempt_list.iter().map(|a| a.attempt).max().unwrap_or(0);
        if span.ended_at_ms.is_none() {
            span.status = match (run_status, span.op) {
                (SpanStatus::Cancelled, _) => SpanStatus::Cancelled,
                (SpanStatus::Failed, _) => SpanStatus::Failed,
                (SpanStatus::Completed, _) => SpanStatus::Completed,
                (_, SpanOp::Sleep | SpanOp::WaitForEvent | SpanOp::Invoke) => SpanStatus::Waiting,
                (SpanStatus::Queued, _) => SpanStatus::Queued,
                _ if span.started_at_ms.is_some() => SpanStatus::Running,
                _ => SpanStatus::Queued,
            };
            if run.status().is_terminal() {
                span.ended_at_ms = run.ended_at_ms;
            }
        }
        if span.attempt_list.len() > 1 {
            span.children = span
                .attempt_list
                .iter()
                .enumerate()
                .map(|(i, a)| Span {
                    id: format!("{}:{i}", span.id),
                    step_id: span.step_id.clone(),
                    // People count tries from 1 (the data keeps Inngest's 0-based `attempt`).
                    name: format!("Attempt {}", a.attempt + 1),
                    op: span.op,
                    status: match a.outcome {
                        "completed" => SpanStatus::Completed,
                        _ => SpanStatus::Failed,
                    },
                    attempts: a.attempt,
                    queued_at_ms: a.started_at_ms,
                    started_at_ms: Some(a.started_at_ms),
                    ended_at_ms: a.duration_ms.map(|d| a.started_at_ms + d),
                    output_id: None,
                    attempt_list: Vec::new(),
                    detail: a.error.clone().map(|e| json!({"error": e})).unwrap_or(Value::Null),
                    retry_at_ms: None,
                    children: Vec::new(),
                })
                .collect();
        }
    }
    children.sort_by_key(|c| c.order);
    let mut children: Vec<Span> = children.into_iter().map(|c| c.span).collect();
    // A step memoized without a recorded try (checkpointed by the SDK during
    // a call) ran at most from the later of the previous step's end and the
    // start of the call it was reported in, to its memo.
    let call_starts: Vec<i64> = history.iter().filter(|h| h.kind == "call").map(|h| h.at_ms).collect();
    let mut cursor = run.started_at_ms;
    for c in children.iter_mut().filter(|c| c.op == SpanOp::Step) {
        if let (true, Some(end)) = (c.attempt_list.is_empty() && c.started_at_ms == c.ended_at_ms, c.ended_at_ms) {
            let call = call_starts.iter().copied().filter(|t| *t <= end).max().unwrap_or(cursor);
            c.started_at_ms = Some(cursor.max(call).min(end));
        }
        cursor = cursor.max(c.ended_at_ms.unwrap_or(cursor));
    }

    // The function's own code after its last step: shown once the run ended
    // by returning or throwing, and whenever a try of it failed (a run
    // retrying its code, or cancelled after a failed try, keeps that try).
    if matches!(run.status(), RunStatus::Completed | RunStatus::Failed) || !fin.is_empty() {
        let last_step_end = children.iter().filter_map(|c| c.ended_at_ms).max();
        let start = fin.first().map(|a| a.started_at_ms).or(last_step_end).or(last_call_end).unwrap_or(run.started_at_ms);
        let last_try_end = fin.last().map(|a| a.started_at_ms + a.duration_ms.unwrap_or(0));
        let retry_at_ms = retry.as_ref().filter(|r| r.0.is_none()).map(|r| r.2);
        children.push(Span {
            id: "final".into(),
            step_id: None,
            name: "Finalization".into(),
            op: SpanOp::Finalization,
            status: match run.status() {
                RunStatus::Completed => SpanStatus::Completed,
                RunStatus::Failed => SpanStatus::Failed,
                RunStatus::Cancelled => SpanStatus::Cancelled,
                RunStatus::Running => SpanStatus::Running,
            },
            attempts: fin.iter().map(|a| a.attempt).max().unwrap_or(0),
            queued_at_ms: start,
            started_at_ms: Some(start),
            ended_at_ms: if run.status() == RunStatus::Running { None } else { run.ended_at_ms.or(last_try_end) },
            output_id: run.status().is_terminal().then(|| output_id(run.id(), "final")),
            attempt_list: fin,
            detail: Value::Null,
            retry_at_ms,
            children: Vec::new(),
        });
    }

    Span {
        id: "run".into(),
        step_id: None,
        name: function_name.to_string(),
        op: SpanOp::Run,
        status: run_status,
        attempts: 0,
        queued_at_ms: run.started_at_ms,
        started_at_ms: Some(history.iter().find(|h| h.kind == "call").map_or(run.started_at_ms, |h| h.at_ms)),
        ended_at_ms: run.ended_at_ms,
        output_id: run.status().is_terminal().then(|| output_id(run.id(), "run")),
        attempt_list: Vec::new(),
        detail: Value::Null,
        retry_at_ms: retry.as_ref().map(|r| r.2),
        children,
    }
}

/// The trace as JSON for the dashboard.
pub fn span_json(s: &Span, output: impl Fn(&Span) -> Option<SpanOutput> + Copy) -> Value {
    let out = output(s);
    json!({
        "id": s.id,
        "step_id": s.step_id,
        "name": s.name,
        "op": s.op.step_type(),
        "status": s.status.as_str(),
        "attempts": s.attempts,
        "queued_at_ms": s.queued_at_ms,
        "started_at_ms": s.started_at_ms,
        "ended_at_ms": s.ended_at_ms,
        "duration_ms": s.duration_ms(),
        "output_id": s.output_id,
        "output": out.as_ref().and_then(|o| o.as_ref().ok().cloned()),
        "error": out.as_ref().and_then(|o| o.as_ref().err().cloned()),
        "attempt_list": s.attempt_list.iter().map(|a| json!({
            "attempt": a.attempt,
            "started_at_ms": a.started_at_ms,
            "duration_ms": a.duration_ms,
            "outcome": a.outcome,
            "error": a.error,
        })).collect::<Vec<_>>(),
        "detail": s.detail,
        "retry_at_ms": s.retry_at_ms,
        "children": s.children.iter().map(|c| span_json(c, output)).collect::<Vec<_>>(),
    })
}
