//! A minimal SDK endpoint speaking the Inngest call protocol: function
//! `bench-steps{N}` runs N steps, one per call, then returns.
//!
//! Calls whose event carries `data.seq` and `data.rec: true` are traced: the
//! arrival instant of every call is kept under that `seq`, and a waiter
//! registered for it fires when the run's final call (the 200) arrives.
//!
//! Calls whose event carries `data.k` (below [`CONC_KEYS`]) are counted per
//! (function, key) while the handler runs, keeping the most seen at once;
//! `data.sleep_ms` makes every call of that run take that long.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::de::IgnoredAny;
use serde::Deserialize;
use tokio::sync::oneshot;

/// The functions the endpoint serves: (function id, trigger event, steps).
/// `bench-steps3-conc` is registered with a keyed concurrency limit.
pub const FUNCTIONS: [(&str, &str, usize); 4] = [
    ("bench-hello", "bench/hello", 0),
    ("bench-steps3", "bench/steps3", 3),
    ("bench-steps10", "bench/steps10", 10),
    ("bench-steps3-conc", "bench/steps3-conc", 3),
];

/// The concurrency limit of `bench-steps3-conc`, per key, and how many keys the phase uses.
pub const CONC_LIMIT: u32 = 10;
pub const CONC_KEYS: usize = 20;

/// Calls of one (function, key) in the handler now, and the most at once.
#[derive(Default)]
struct Gauge {
    now: AtomicU32,
    max: AtomicU32,
}

/// Leaves a [`Gauge`] when the handler ends (or its future is dropped).
struct InFlight<'a>(&'a Gauge);

impl<'a> InFlight<'a> {
    fn enter(g: &'a Gauge) -> InFlight<'a> {
        let now = g.now.fetch_add(1, Ordering::SeqCst) + 1;
        g.max.fetch_max(now, Ordering::SeqCst);
        InFlight(g)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The id the baseline round-trip uses: answered like `bench-hello`, not counted.
pub const BASELINE_FN: &str = "bench-baseline";

/// The calls of one traced run.
#[derive(Default)]
pub struct Trace {
    pub run_id: String,
    pub calls: Vec<Instant>,
}

pub struct Sdk {
    step_ids: Vec<String>,
    traces: Mutex<HashMap<u64, Trace>>,
    waiters: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    next_seq: AtomicU64,
    /// Runs finished (200 answered), per entry of [`FUNCTIONS`].
    done: [AtomicU64; FUNCTIONS.len()],
    /// Per (entry of [`FUNCTIONS`], key below [`CONC_KEYS`]): calls in the handler.
    keyed: Vec<Gauge>,
    /// Every call received.
    pub calls: AtomicU64,
}

impl Sdk {
    pub fn new() -> Arc<Sdk> {
        Arc::new(Sdk {
            step_ids: (0..10).map(|k| ingot_protocol::hash_step_id(&format!("s{k}"))).collect(),
            traces: Mutex::new(HashMap::new()),
            waiters: Mutex::new(HashMap::new()),
            next_seq: AtomicU64::new(1),
            done: Default::default(),
            keyed: (0..FUNCTIONS.len() * CONC_KEYS).map(|_| Gauge::default()).collect(),
            calls: AtomicU64::new(0),
        })
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().route("/api/inngest", post(call)).with_state(self.clone())
    }

    /// A fresh `seq` and a receiver that fires when its run's last call arrives.
    pub fn trace(&self) -> (u64, oneshot::Receiver<()>) {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(seq, tx);
        (seq, rx)
    }

    pub fn take_trace(&self, seq: u64) -> Option<Trace> {
        lock(&self.traces).remove(&seq)
    }

    /// Runs of `function` that finished so far.
    pub fn done(&self, function: &str) -> u64 {
        FUNCTIONS.iter().position(|f| f.0 == function).map(|i| self.done[i].load(Ordering::Relaxed)).unwrap_or(0)
    }

    fn gauges(&self, function: &str) -> &[Gauge] {
        match FUNCTIONS.iter().position(|f| f.0 == function) {
            Some(i) => &self.keyed[i * CONC_KEYS..(i + 1) * CONC_KEYS],
            None => &[],
        }
    }

    /// Forgets the most-at-once counts of `function` (the current counts stay).
    pub fn reset_max_in_flight(&self, function: &str) {
        for g in self.gauges(function) {
            g.max.store(g.now.load(Ordering::SeqCst), Ordering::SeqCst);
        }
    }

    /// The most calls of `function` for one key in the handler at once, over
    /// all keys, since the last reset; and how many keys reached `at_least`.
    pub fn max_in_flight(&self, function: &str, at_least: u32) -> (u32, usize) {
        let maxes: Vec<u32> = self.gauges(function).iter().map(|g| g.max.load(Ordering::SeqCst)).collect();
        (maxes.iter().copied().max().unwrap_or(0), maxes.iter().filter(|&&m| m >= at_least).count())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Deserialize)]
struct CallQuery {
    #[serde(rename = "fnId")]
    fn_id: String,
}

#[derive(Deserialize)]
struct CallIn {
    #[serde(default)]
    event: EventIn,
    #[serde(default)]
    steps: HashMap<String, IgnoredAny>,
    ctx: CtxIn,
}

#[derive(Deserialize, Default)]
struct EventIn {
    #[serde(default)]
    data: DataIn,
}

#[derive(Deserialize, Default)]
struct DataIn {
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    rec: bool,
    #[serde(default)]
    k: Option<usize>,
    #[serde(default)]
    sleep_ms: u64,
}

#[derive(Deserialize)]
struct CtxIn {
    run_id: String,
}

fn reply(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .header("X-Inngest-SDK", "ingot-bench:v0")
        .header("X-Inngest-Req-Version", "2")
        .body(Body::from(body))
        .expect("static headers are valid")
}

async fn call(State(sdk): State<Arc<Sdk>>, Query(q): Query<CallQuery>, body: Bytes) -> Response {
    let arrived = Instant::now();
    sdk.calls.fetch_add(1, Ordering::Relaxed);
    let req: CallIn = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return reply(StatusCode::BAD_REQUEST, serde_json::json!({"name": "Error", "message": e.to_string()}).to_string()),
    };
    let (index, steps) = match FUNCTIONS.iter().position(|f| f.0 == q.fn_id) {
        Some(i) => (Some(i), FUNCTIONS[i].2),
        None if q.fn_id == BASELINE_FN => (None, 0),
        None => return reply(StatusCode::BAD_REQUEST, format!(r#"{{"name":"Error","message":"unknown function {:?}"}}"#, q.fn_id)),
    };
    let _in_flight = match (index, req.event.data.k) {
        (Some(i), Some(key)) if key < CONC_KEYS => Some(InFlight::enter(&sdk.keyed[i * CONC_KEYS + key])),
        _ => None,
    };
    if req.event.data.sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(req.event.data.sleep_ms)).await;
    }
    let k = req.steps.len();
    let traced = req.event.data.seq.filter(|_| req.event.data.rec);
    if let Some(seq) = traced {
        let mut traces = lock(&sdk.traces);
        let t = traces.entry(seq).or_default();
        t.run_id = req.ctx.run_id;
        t.calls.push(arrived);
    }
    if k < steps {
        return reply(StatusCode::PARTIAL_CONTENT, format!(r#"[{{"id":"{}","op":"StepRun","name":"s{k}","data":{k}}}]"#, sdk.step_ids[k]));
    }
    if let Some(i) = index {
        sdk.done[i].fetch_add(1, Ordering::Relaxed);
    }
    if let Some(seq) = traced {
        if let Some(tx) = lock(&sdk.waiters).remove(&seq) {
            let _ = tx.send(());
        }
    }
    reply(StatusCode::OK, format!(r#"{{"steps":{k}}}"#))
}
