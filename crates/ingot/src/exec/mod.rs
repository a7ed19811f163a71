//! Executing one call: the per-call step state (memoized results, hashed
//! ids, steps found), and the driver that polls the handler until it
//! finishes or settles on steps that are not memoized.
//!
//! Suspension is not an error: a step without a memoized result registers
//! itself and returns a future that stays pending. When the handler can make
//! no more progress, the driver decides, as the JS SDK v4 does, whether to
//! run one step now (a single new `step.run` on discovery, or the step the
//! engine asked for) or to report the steps found as ops, and then drops the
//! handler.

pub(crate) mod reply;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use futures::FutureExt;
use ingot_protocol::hash_step_id;
use serde_json::{Map, Value};
use tokio::sync::Notify;

use crate::error::{Error, StepError};
use crate::function::HandlerInput;

/// What kind of step was found, with what its op needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StepKind {
    /// A step with a body run by the SDK (`step.run`, `step.send_event`).
    /// `name` is the op's `name`, `opts` its `opts`.
    Run { name: String, opts: Value },
    /// `step.sleep`/`sleep_until`: the duration or time is the op's `name`.
    Sleep { name: String },
    /// `step.wait_for_event`: the event name, and `{timeout, if}`.
    WaitForEvent { event: String, opts: Value },
    /// `step.invoke`: `{function_id, payload, timeout}`.
    Invoke { opts: Value },
    /// `step.wait_for_signal`: the signal, and `{signal, timeout, conflict}`.
    WaitForSignal { signal: String, opts: Value },
}

/// A step found in this call that has no memoized result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FoundStep {
    pub(crate) hashed: String,
    pub(crate) user_id: String,
    /// 0 for the first use of `user_id` in this call, then 1, 2, ...
    pub(crate) index: u32,
    pub(crate) kind: StepKind,
}

/// A memoized step result (protocol §3.4).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Memo {
    Data(Value),
    Error(StepError),
}

impl Memo {
    /// Reads a memo: `{data}` ⇒ data, `{error}` ⇒ error, `{input}` alone ⇒
    /// not run yet, anything else (e.g. `null`, a raw event) ⇒ the value.
    fn parse(value: &Value) -> Option<Memo> {
        if let Value::Object(m) = value {
            // A raw event (a waitForEvent memo) has a name; take it whole.
            let wrapper = !m.contains_key("name") && !m.is_empty() && m.keys().all(|k| matches!(k.as_str(), "data" | "error" | "input"));
            if wrapper {
                if let Some(e) = m.get("error").filter(|e| !e.is_null()) {
                    return Some(Memo::Error(StepError::from_json(e)));
                }
                if let Some(d) = m.get("data") {
                    return Some(Memo::Data(d.clone()));
                }
                return None;
            }
        }
        Some(Memo::Data(value.clone()))
    }
}

/// How a new step is to be resolved by its future.
pub(crate) enum Registration {
    /// Already done in an earlier call.
    Memoized(Memo),
    /// New: wait to be chosen, under this hashed id.
    New(String),
    /// Called inside another step's body, which is not supported.
    Nested { inside: String },
}

struct Slot {
    step: FoundStep,
    waker: Option<Waker>,
}

#[derive(Default)]
struct State {
    memo: Map<String, Value>,
    used: HashSet<String>,
    counters: HashMap<String, u32>,
    found: Vec<Slot>,
    run_now: Option<String>,
    executing: Option<String>,
    outcome: Option<(String, Result<Value, Error>)>,
}

/// The step state of one call, shared by the driver and the step futures.
pub(crate) struct Exec {
    state: Mutex<State>,
    /// Hashed ids of steps whose attempt in this call fails without running
    /// its body (`testing::TestRun::fail_step_once`); empty when served.
    failing: HashSet<String>,
}

/// The error of an attempt failed by `testing::TestRun::fail_step_once`.
pub(crate) const INJECTED_FAILURE: &str = "failed once on purpose (TestRun::fail_step_once)";

impl Exec {
    #[cfg(test)]
    pub(crate) fn new(memo: Map<String, Value>) -> Arc<Exec> {
        Exec::with_failures(memo, HashSet::new())
    }

    /// An `Exec` whose steps `failing` (hashed ids) fail this attempt.
    pub(crate) fn with_failures(memo: Map<String, Value>, failing: HashSet<String>) -> Arc<Exec> {
        Arc::new(Exec { state: Mutex::new(State { memo, ..State::default() }), failing })
    }

    /// The failure to report instead of running step `hashed`'s body, if
    /// a test asked for one.
    pub(crate) fn injected_failure(&self, hashed: &str) -> Option<Error> {
        self.failing.contains(hashed).then(|| Error::msg(INJECTED_FAILURE))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in user code never happens while this lock is held.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives a step its hashed id (`id`, then `id:1`, `id:2`, ... skipping
    /// hashes already used in this call, as JS does) and looks up its memo.
    pub(crate) fn register(&self, user_id: &str, kind: StepKind) -> Registration {
        let mut st = self.lock();
        let mut n = st.counters.get(user_id).copied().unwrap_or(0);
        let (hashed, index) = loop {
            let candidate = if n == 0 { user_id.to_string() } else { format!("{user_id}:{n}") };
            let h = hash_step_id(&candidate);
            n += 1;
            if st.used.insert(h.clone()) {
                break (h, n - 1);
            }
        };
        st.counters.insert(user_id.to_string(), n);
        if let Some(memo) = st.memo.get(&hashed).and_then(Memo::parse) {
            tracing::trace!(step = user_id, %hashed, "step memoized");
            return Registration::Memoized(memo);
        }
        if let Some(inside) = &st.executing {
            let inside = st.found.iter().find(|s| &s.step.hashed == inside).map(|s| s.step.user_id.clone()).unwrap_or_default();
            return Registration::Nested { inside };
        }
        tracing::trace!(step = user_id, %hashed, "step found");
        st.found.push(Slot { step: FoundStep { hashed: hashed.clone(), user_id: user_id.to_string(), index, kind }, waker: None });
        Registration::New(hashed)
    }

    /// Ready once the driver chose this step to run now.
    pub(crate) fn poll_turn(&self, hashed: &str, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.lock();
        if st.run_now.as_deref() == Some(hashed) {
            st.executing = Some(hashed.to_string());
            return Poll::Ready(());
        }
        if let Some(slot) = st.found.iter_mut().find(|s| s.step.hashed == hashed) {
            slot.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Records the result of the step that ran.
    pub(crate) fn finish(&self, hashed: &str, result: Result<Value, Error>) {
        let mut st = self.lock();
        st.executing = None;
        st.outcome = Some((hashed.to_string(), result));
    }
}

/// Which part of the function the engine asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `stepId=step`: run the function as far as it goes.
    Discovery,
    /// `stepId=<hash>`: run that planned step.
    Step(String),
}

impl Target {
    pub(crate) fn from_step_id(step_id: Option<&str>) -> Target {
        match step_id {
            None | Some("") | Some("step") => Target::Discovery,
            Some(h) => Target::Step(h.to_string()),
        }
    }
}

/// How one call ended.
#[derive(Debug)]
pub(crate) enum Driven {
    /// The handler returned.
    Finished(Result<Value, Error>),
    /// One step's body ran.
    Ran { step: FoundStep, result: Result<Value, Error> },
    /// Steps to report as ops (planned runs, sleeps, waits, invokes).
    Report(Vec<FoundStep>),
    /// The engine asked for a step this call never reached.
    NotFound { requested: String, found: Vec<FoundStep> },
}

/// Wakes the driver: sets a flag (so it knows progress is possible) and
/// notifies it (in case it is waiting for I/O the handler awaits).
#[derive(Default)]
struct WakeFlag {
    woken: AtomicBool,
    notify: Notify,
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }
}

/// What to do once the handler is blocked only on new steps.
enum Decision {
    Run(String),
    Report(Vec<FoundStep>),
    NotFound,
}

fn decide(found: &[FoundStep], target: &Target, disable_immediate: bool) -> Decision {
    match target {
        Target::Step(h) => match found.iter().find(|s| &s.hashed == h) {
            Some(s) if matches!(s.kind, StepKind::Run { .. }) => Decision::Run(h.clone()),
            Some(s) => Decision::Report(vec![s.clone()]),
            None => Decision::NotFound,
        },
        Target::Discovery => match found {
            [only] if !disable_immediate && matches!(only.kind, StepKind::Run { .. }) => Decision::Run(only.hashed.clone()),
            _ => Decision::Report(found.to_vec()),
        },
    }
}

/// Runs the handler for one call.
pub(crate) async fn drive(
    handler: &dyn crate::function::ErasedHandler,
    input: HandlerInput,
    exec: Arc<Exec>,
    target: Target,
    disable_immediate: bool,
) -> Driven {
    let flag = Arc::new(WakeFlag::default());
    let waker = Waker::from(flag.clone());
    let mut fut = std::panic::AssertUnwindSafe(handler.call(input)).catch_unwind();
    loop {
        flag.woken.store(false, Ordering::SeqCst);
        // `Context` is not `Send`: it lives only for the poll.
        let polled = fut.poll_unpin(&mut Context::from_waker(&waker));
        match polled {
            Poll::Ready(Ok(result)) => return Driven::Finished(result),
            Poll::Ready(Err(panic)) => {
                return Driven::Finished(Err(Error::msg(format!("the function panicked: {}", panic_message(&panic)))))
            }
            Poll::Pending => {}
        }
        let woken = flag.woken.load(Ordering::SeqCst);
        match settle(&exec, &target, disable_immediate, woken) {
            Next::Done(driven) => return driven,
            Next::Poll => {}
            Next::Wait => flag.notify.notified().await,
            Next::Chosen => flag.woken.store(true, Ordering::SeqCst),
        }
    }
}

/// What the driver does after a poll that returned `Pending`.
enum Next {
    Done(Driven),
    /// Poll again at once.
    Poll,
    /// Wait for a wake-up (I/O or timers in the handler or a step body).
    Wait,
    /// A step was chosen to run; poll again so it starts.
    Chosen,
}

fn settle(exec: &Exec, target: &Target, disable_immediate: bool, woken: bool) -> Next {
    let mut st = exec.lock();
    if let Some((hashed, result)) = st.outcome.take() {
        let step = st.found.iter().find(|s| s.step.hashed == hashed).map(|s| s.step.clone()).expect("a step that ran was found first");
        return Next::Done(Driven::Ran { step, result });
    }
    if woken {
        return Next::Poll;
    }
    if st.executing.is_some() {
        return Next::Wait;
    }
    let found: Vec<FoundStep> = st.found.iter().map(|s| s.step.clone()).collect();
    if let Some(chosen) = &st.run_now {
        // The chosen step's future was not polled again (dropped, or never
        // awaited): report what was found instead of hanging.
        tracing::debug!(step = %chosen, "the step chosen to run was not driven");
        return Next::Done(match target {
            Target::Step(requested) => Driven::NotFound { requested: requested.clone(), found },
            Target::Discovery => Driven::Report(found),
        });
    }
    if found.is_empty() {
        // Blocked on something other than steps.
        return Next::Wait;
    }
    match decide(&found, target, disable_immediate) {
        Decision::Run(hashed) => {
            tracing::debug!(step = %hashed, "running step");
            if let Some(w) = st.found.iter_mut().find(|s| s.step.hashed == hashed).and_then(|s| s.waker.take()) {
                w.wake();
            }
            st.run_now = Some(hashed);
            Next::Chosen
        }
        Decision::Report(steps) => Next::Done(Driven::Report(steps)),
        Decision::NotFound => Next::Done(Driven::NotFound {
            requested: match target {
                Target::Step(h) => h.clone(),
                Target::Discovery => String::new(),
            },
            found,
        }),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn memo_forms_follow_the_protocol() {
        let parse = |v: Value| Memo::parse(&v);
        assert_eq!(parse(json!({"data": 1})), Some(Memo::Data(json!(1))));
        assert_eq!(parse(json!({"data": null})), Some(Memo::Data(Value::Null)));
        assert_eq!(parse(Value::Null), Some(Memo::Data(Value::Null)));
        assert!(matches!(parse(json!({"error": {"message": "m"}})), Some(Memo::Error(e)) if e.message == "m"));
        assert_eq!(parse(json!({"input": ["x"]})), None);
        let raw_event = json!({"name": "test/approve", "data": {"id": "42"}, "id": "e", "ts": 1});
        assert_eq!(parse(raw_event.clone()), Some(Memo::Data(raw_event.clone())));
        assert_eq!(parse(json!({"data": raw_event.clone()})), Some(Memo::Data(raw_event)));
        assert_eq!(parse(json!({"from": "raw", "n": 1})), Some(Memo::Data(json!({"from": "raw", "n": 1}))));
    }

    #[test]
    fn repeated_ids_get_suffixes() {
        let exec = Exec::new(Map::new());
        let kind = StepKind::Sleep { name: "1s".into() };
        let ids: Vec<String> = (0..3)
            .map(|_| match exec.register("item", kind.clone()) {
                Registration::New(h) => h,
                _ => panic!("not new"),
            })
            .collect();
        assert_eq!(ids, [hash_step_id("item"), hash_step_id("item:1"), hash_step_id("item:2")]);
        // A literal "x:1" taken first pushes the second "x" to "x:2".
        let exec = Exec::new(Map::new());
        exec.register("x:1", kind.clone());
        exec.register("x", kind.clone());
        match exec.register("x", kind) {
            Registration::New(h) => assert_eq!(h, hash_step_id("x:2")),
            _ => panic!("not new"),
        }
    }

    #[test]
    fn decisions_follow_js_v4() {
        let run = |id: &str| FoundStep {
            hashed: id.into(),
            user_id: id.into(),
            index: 0,
            kind: StepKind::Run { name: id.into(), opts: json!({}) },
        };
        let sleep = FoundStep { kind: StepKind::Sleep { name: "1s".into() }, ..run("s") };
        let d = Target::Discovery;
        assert!(matches!(decide(&[run("a")], &d, false), Decision::Run(h) if h == "a"));
        assert!(matches!(decide(&[run("a")], &d, true), Decision::Report(v) if v.len() == 1));
        assert!(matches!(decide(&[run("a"), run("b")], &d, false), Decision::Report(v) if v.len() == 2));
        assert!(matches!(decide(std::slice::from_ref(&sleep), &d, false), Decision::Report(_)));
        let t = Target::Step("b".into());
        assert!(matches!(decide(&[run("a"), run("b")], &t, true), Decision::Run(h) if h == "b"));
        assert!(matches!(decide(&[run("a")], &t, true), Decision::NotFound));
        assert_eq!(Target::from_step_id(Some("step")), Target::Discovery);
    }
}
