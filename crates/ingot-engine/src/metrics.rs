//! Prometheus metrics: one registry per engine (not a process-global
//! recorder), so an engine embedded beside others in one process, as in
//! tests and advert-01, counts only its own work. Served at `GET /metrics`.
//!
//! Labels are function slugs and event names only, never run or event ids:
//! slugs are bounded by what apps sync, and event names are capped at
//! [`MAX_EVENT_NAMES`] distinct values, the rest counted as `other`.
//!
//! What is counted where: runs, events, skips and throttles in
//! [`Metrics::committed`] (called by `Shared::commit` after a commit
//! succeeded, so nothing is counted twice for a retried decision or at all
//! for a failed one); SDK calls in [`Metrics::observe_call`] (the worker,
//! after the driver's call); claim lag in the worker's dispatch; commit
//! latency and size in `Shared::commit`; queue depth when scraped.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use ingot_core::{Reply, RunStatus};
use ingot_store::WriteOp;
use prometheus::{Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// Most distinct event names given their own label value; later names count as `other`.
pub const MAX_EVENT_NAMES: usize = 200;
/// The label value for event names past [`MAX_EVENT_NAMES`].
pub const OTHER_EVENTS: &str = "other";

/// The engine's metric families.
pub struct Metrics {
    registry: Registry,
    runs: IntCounterVec,
    steps: IntCounterVec,
    step_duration: HistogramVec,
    pub(crate) queue_depth: IntGaugeVec,
    queue_lag: Histogram,
    events: IntCounterVec,
    sdk_errors: IntCounterVec,
    skips: IntCounterVec,
    throttled: IntCounterVec,
    commit_seconds: Histogram,
    commit_ops: Histogram,
    commit_errors: IntCounterVec,
    pub(crate) spans_exported: IntCounter,
    pub(crate) spans_dropped: IntCounter,
    pub(crate) span_export_errors: IntCounter,
    event_names: Mutex<HashSet<String>>,
}

/// Seconds, from 1 ms to 5 min.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every family registered (and the process metrics on Linux).
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric options are valid");
            registry.register(Box::new(c.clone())).expect("metric names are unique");
            c
        };
        let plain = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("metric options are valid");
            registry.register(Box::new(c.clone())).expect("metric names are unique");
            c
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())).expect("metric options are valid");
            registry.register(Box::new(h.clone())).expect("metric names are unique");
            h
        };
        let runs = counter(
            "ingot_runs_total",
            "Runs by function and status: started, then Completed, Failed or Cancelled.",
            &["function", "status"],
        );
        let steps = counter(
            "ingot_steps_total",
            "Step outcomes reported by SDK calls, by function: completed, errored (retried), failed, planned, sleep, wait, invoke, function_done, function_error, invalid.",
            &["function", "outcome"],
        );
        let step_duration = HistogramVec::new(
            HistogramOpts::new("ingot_step_duration_seconds", "SDK call time, by function.").buckets(LATENCY_BUCKETS.to_vec()),
            &["function"],
        )
        .expect("metric options are valid");
        registry.register(Box::new(step_duration.clone())).expect("metric names are unique");
        let queue_depth = IntGaugeVec::new(Opts::new("ingot_queue_depth", "Queued items: due now, or due in the future."), &["when"])
            .expect("metric options are valid");
        registry.register(Box::new(queue_depth.clone())).expect("metric names are unique");
        let queue_lag = histogram("ingot_queue_lag_seconds", "Time from an item falling due to its claim.", LATENCY_BUCKETS);
        let events = counter("ingot_events_total", "Events stored, by name (at most 200 names; the rest are `other`).", &["name"]);
        let sdk_errors = counter(
            "ingot_sdk_errors_total",
            "Failed SDK calls by function and kind: unreachable, invalid (not an SDK reply or unreadable), http_4xx, http_5xx.",
            &["function", "kind"],
        );
        let skips = counter(
            "ingot_flow_skips_total",
            "Events that did not start a run (rate limit, idempotency, singleton, paused...), by function.",
            &["function"],
        );
        let throttled = counter("ingot_flow_throttled_total", "Runs whose first call went through a throttle, by function.", &["function"]);
        let commit_seconds =
            histogram("ingot_store_commit_seconds", "Store commit latency (grouped commits share one transaction).", LATENCY_BUCKETS);
        let commit_ops = histogram(
            "ingot_store_commit_ops",
            "Write ops per store commit.",
            &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 512.0, 2048.0],
        );
        let commit_errors = counter(
            "ingot_store_commit_errors_total",
            "Store commits that failed, by kind: conflict (the run changed; decided again), lease_lost, other.",
            &["kind"],
        );
        let spans_exported = plain("ingot_trace_spans_exported_total", "Spans handed to the OTLP exporter.");
        let spans_dropped = plain("ingot_trace_spans_dropped_total", "Spans dropped because the export queue was full.");
        let span_export_errors = plain("ingot_trace_export_errors_total", "OTLP export requests that failed.");
        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::for_self();
            if let Err(e) = registry.register(Box::new(process)) {
                tracing::debug!(error = %e, "process metrics are not available");
            }
        }
        Metrics {
            registry,
            runs,
            steps,
            step_duration,
            queue_depth,
            queue_lag,
            events,
            sdk_errors,
            skips,
            throttled,
            commit_seconds,
            commit_ops,
            commit_errors,
            spans_exported,
            spans_dropped,
            span_export_errors,
            event_names: Mutex::new(HashSet::new()),
        }
    }

    /// The metrics in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// The label for event `name`: itself while fewer than [`MAX_EVENT_NAMES`] are known, else `other`.
    fn event_label(&self, name: &str) -> String {
        let mut names = self.event_names.lock().unwrap_or_else(|e| e.into_inner());
        if names.contains(name) {
            return name.to_string();
        }
        if names.len() < MAX_EVENT_NAMES {
            names.insert(name.to_string());
            return name.to_string();
        }
        OTHER_EVENTS.to_string()
    }

    /// What `ops` would count once committed: small, so the ops themselves can move into the commit.
    pub fn tally(ops: &[WriteOp]) -> Vec<Tally> {
        let mut functions = HashMap::new();
        collect_functions(ops, &mut functions);
        tally_ops(ops, &functions)
    }

    /// Counts what a successful commit of `count` ops did (its [`Metrics::tally`]):
    /// stored events, started and finished runs, skips and throttled starts.
    /// `guards_passed` says which branch of each guard was applied (depth
    /// first, as the store reports).
    pub fn committed(&self, tally: &[Tally], count: usize, guards_passed: &[bool], took: Duration) {
        self.commit_seconds.observe(took.as_secs_f64());
        self.commit_ops.observe(count as f64);
        self.count(tally, &mut guards_passed.iter().copied());
    }

    /// A commit failed with `error`.
    pub fn commit_failed(&self, error: &ingot_store::StoreError) {
        let kind = match error {
            ingot_store::StoreError::Conflict(_) => "conflict",
            ingot_store::StoreError::LeaseLost(_) => "lease_lost",
            _ => "other",
        };
        self.commit_errors.with_label_values(&[kind]).inc();
    }

    fn count(&self, tally: &[Tally], passed: &mut impl Iterator<Item = bool>) {
        for t in tally {
            match t {
                Tally::Event(name) => self.events.with_label_values(&[self.event_label(name).as_str()]).inc(),
                Tally::Run(function, status) => self.runs.with_label_values(&[function.as_str(), status]).inc(),
                Tally::Skip(function) => self.skips.with_label_values(&[function.as_str()]).inc(),
                Tally::Throttled(function) => self.throttled.with_label_values(&[function.as_str()]).inc(),
                Tally::Guarded { then, otherwise } => {
                    let branch = if passed.next().unwrap_or(false) { then } else { otherwise };
                    self.count(branch, passed);
                }
            }
        }
    }

    /// Counts one SDK call of `function`: its time, the step outcomes its
    /// reply reports, and the error if it failed.
    pub fn observe_call(&self, function: &str, reply: &Reply, status: Option<u16>, took: Duration) {
        self.step_duration.with_label_values(&[function]).observe(took.as_secs_f64());
        let step = |outcome: &str| self.steps.with_label_values(&[function, outcome]).inc();
        match reply {
            Reply::Done(_) => step("function_done"),
            Reply::Ops(ops) => {
                for op in ops {
                    step(op_outcome(op.op.as_str()));
                }
            }
            Reply::Error { status, .. } => {
                step("function_error");
                let kind = if *status >= 500 { "http_5xx" } else { "http_4xx" };
                self.sdk_errors.with_label_values(&[function, kind]).inc();
            }
            Reply::Invalid(_) => {
                step("invalid");
                let kind = if status.is_none() { "unreachable" } else { "invalid" };
                self.sdk_errors.with_label_values(&[function, kind]).inc();
            }
        }
    }

    /// Counts the steps a checkpoint reported (steps an SDK ran during a call
    /// and sent ahead of its reply), by their opcodes.
    pub fn checkpointed(&self, function: &str, opcodes: &[String]) {
        for op in opcodes {
            self.steps.with_label_values(&[function, op_outcome(op)]).inc();
        }
    }

    /// An item that fell due at `due_ms` was claimed at `now_ms`.
    pub fn claimed(&self, due_ms: i64, now_ms: i64) {
        self.queue_lag.observe((now_ms - due_ms).max(0) as f64 / 1000.0);
    }

    /// Sets the queue-depth gauge.
    pub fn set_queue_depth(&self, due: u64, future: u64) {
        self.queue_depth.with_label_values(&["due"]).set(due as i64);
        self.queue_depth.with_label_values(&["future"]).set(future as i64);
    }
}

/// What one write op counts for, with the guards kept so the store's
/// `guards_passed` can be followed.
#[derive(Debug)]
pub enum Tally {
    Event(String),
    /// A run of the function reached the status (`started`, `Completed`...).
    Run(String, &'static str),
    Skip(String),
    Throttled(String),
    Guarded {
        then: Vec<Tally>,
        otherwise: Vec<Tally>,
    },
}

fn collect_functions(ops: &[WriteOp], out: &mut HashMap<ingot_core::RunId, String>) {
    for op in ops {
        match op {
            WriteOp::InsertRun(r) => {
                out.insert(r.id(), r.state.function.as_str().to_string());
            }
            WriteOp::Guarded { then, otherwise, .. } => {
                collect_functions(then, out);
                collect_functions(otherwise, out);
            }
            _ => {}
        }
    }
}

fn tally_ops(ops: &[WriteOp], functions: &HashMap<ingot_core::RunId, String>) -> Vec<Tally> {
    let mut out = Vec::new();
    for op in ops {
        match op {
            WriteOp::InsertEvent(e) => out.push(Tally::Event(e.name.clone())),
            WriteOp::InsertRun(r) => {
                out.push(Tally::Run(r.state.function.as_str().to_string(), "started"));
                if r.status().is_terminal() {
                    out.push(Tally::Run(r.state.function.as_str().to_string(), status_label(r.status())));
                }
            }
            WriteOp::UpdateRun { run, .. } if run.status().is_terminal() => {
                out.push(Tally::Run(run.state.function.as_str().to_string(), status_label(run.status())))
            }
            WriteOp::Skip(s) => out.push(Tally::Skip(s.function.clone())),
            WriteOp::Throttled { item, .. } => {
                if let Some(f) = functions.get(&item.run_id) {
                    out.push(Tally::Throttled(f.clone()));
                }
            }
            WriteOp::Guarded { then, otherwise, .. } => {
                out.push(Tally::Guarded { then: tally_ops(then, functions), otherwise: tally_ops(otherwise, functions) })
            }
            _ => {}
        }
    }
    out
}

fn status_label(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Completed => "Completed",
        RunStatus::Failed => "Failed",
        RunStatus::Cancelled => "Cancelled",
        _ => "Running",
    }
}

/// The outcome label of an opcode (a fixed set, whatever the SDK sent).
fn op_outcome(op: &str) -> &'static str {
    match op {
        "StepRun" | "Step" => "completed",
        "StepError" => "errored",
        "StepFailed" => "failed",
        "StepPlanned" => "planned",
        "Sleep" => "sleep",
        "WaitForEvent" | "WaitForSignal" => "wait",
        "InvokeFunction" => "invoke",
        "RunComplete" => "function_done",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_past_the_cap_are_other() {
        let m = Metrics::new();
        for i in 0..MAX_EVENT_NAMES {
            assert_eq!(m.event_label(&format!("e/{i}")), format!("e/{i}"));
        }
        assert_eq!(m.event_label("e/new"), OTHER_EVENTS);
        assert_eq!(m.event_label("e/0"), "e/0", "a known name keeps its label");
    }

    #[test]
    fn guarded_branches_count_only_when_applied() {
        let m = Metrics::new();
        let skip = |f: &str| {
            WriteOp::Skip(ingot_store::SkipRecord {
                function: f.into(),
                event_id: ingot_core::EventId(ulid::Ulid::new()),
                reason: "x".into(),
                at_ms: 0,
            })
        };
        let guarded = |then: Vec<WriteOp>, otherwise: Vec<WriteOp>| WriteOp::Guarded {
            guard: ingot_store::Guard::ConsumePause("p".into()),
            then,
            otherwise,
        };
        let ops = vec![guarded(vec![skip("a")], vec![skip("b")]), guarded(vec![skip("c")], vec![skip("d")])];
        m.committed(&Metrics::tally(&ops), ops.len(), &[true, false], Duration::from_millis(1));
        let text = m.render();
        assert!(text.contains("ingot_flow_skips_total{function=\"a\"} 1"), "{text}");
        assert!(text.contains("ingot_flow_skips_total{function=\"d\"} 1"), "{text}");
        assert!(!text.contains("function=\"b\"") && !text.contains("function=\"c\""), "{text}");
    }
}
