//! Records the store keeps, and the write ops a commit is made of.

use ingot_core::{CallTarget, EventId, FunctionSlug, RunId, RunState, RunStatus};
use serde_json::{json, Value};

/// A synced app.
#[derive(Debug, Clone, PartialEq)]
pub struct AppRecord {
    /// The app's id (`appName` of the register body).
    pub id: String,
    pub url: String,
    pub sdk: Option<String>,
    pub framework: Option<String>,
    /// sha256 of the last register body: an identical sync is not applied again.
    pub checksum: Option<String>,
    /// The last sync error, if the last sync failed.
    pub error: Option<String>,
    pub synced_at_ms: i64,
}

/// A function as last synced.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionRecord {
    pub slug: FunctionSlug,
    pub app_id: String,
    /// A stable UUID derived from the slug, for the REST API.
    pub uuid: String,
    pub name: String,
    /// The function config exactly as registered.
    pub config: Value,
    pub archived: bool,
    pub updated_at_ms: i64,
}

/// An event as stored: `payload` is the JSON sent to SDKs (with `id`).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub internal_id: EventId,
    pub name: String,
    pub payload: Value,
    pub received_at_ms: i64,
}

/// A run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub state: RunState,
    pub event_ids: Vec<EventId>,
    pub output: Option<Value>,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    /// `_inngest.correlation_id` of the trigger, for invoked runs.
    pub correlation_id: Option<String>,
    /// Bumped by every update; guards concurrent decisions.
    pub rev: i64,
}

impl RunRecord {
    pub fn id(&self) -> RunId {
        self.state.run_id
    }
    pub fn status(&self) -> RunStatus {
        self.state.status
    }
}

/// A memoized step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub run_id: RunId,
    pub step: String,
    pub name: String,
    pub memo: Value,
    /// Completion order within the run, from 1.
    pub seq: i64,
    pub at_ms: i64,
}

/// One line of a run's history: a call, its outcome, a sleep, a wait.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRecord {
    pub run_id: RunId,
    pub at_ms: i64,
    pub kind: String,
    pub step: Option<String>,
    pub name: Option<String>,
    pub attempt: Option<u32>,
    pub duration_ms: Option<i64>,
    pub detail: Value,
}

/// A queue item's id (a ULID string).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueItemId(pub String);

/// What a queue item asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// Call the SDK.
    Call { target: CallTarget, attempt: u32 },
    /// A sleep ends.
    Sleep { step: String },
    /// A pause of this run matched an event or an invoke finished.
    Resume { step: String, pause: String, kind: PauseKind, value: Result<Value, Value> },
    /// A pause timed out (skipped if the pause was already resolved).
    Timeout { step: String, pause: String, kind: PauseKind },
    /// Cancel the run.
    Cancel,
    /// Cancel the run if it has not started yet (`timeouts.start`).
    StartTimeout,
    /// A debounce period ended: start the run (whose id is the item's run id).
    Debounce { function: String, key: String },
    /// A batch is full or timed out: start its run.
    Batch { function: String, key: String },
    /// A cron tick: start a run (the item's run id) and schedule the next tick.
    Cron {
        function: String,
        cron: String,
        /// The tick's scheduled time; the item may be due later (trigger jitter).
        scheduled_ms: i64,
    },
}

/// A unit of later work.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueItem {
    pub id: QueueItemId,
    pub run_id: RunId,
    pub work: Work,
    pub available_at_ms: i64,
    /// Items with the same key are not enqueued twice while one is queued.
    pub dedupe: Option<String>,
}

impl QueueItem {
    /// A new item with a fresh id and no dedupe key.
    pub fn new(run_id: RunId, work: Work, available_at_ms: i64) -> QueueItem {
        QueueItem { id: QueueItemId(ulid::Ulid::new().to_string()), run_id, work, available_at_ms, dedupe: None }
    }
}

/// What a pause waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseKind {
    WaitForEvent,
    Invoke,
    /// `cancelOn`: a matching event cancels the run.
    Cancel,
    /// `step.waitForSignal`: `POST /v1/signals` resumes it. Its
    /// `correlation_id` is the signal's key (`ingot_core::keys::signal`),
    /// held by at most one signal pause ([`Guard::ClaimSignal`]).
    Signal,
}

impl PauseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PauseKind::WaitForEvent => "wait",
            PauseKind::Invoke => "invoke",
            PauseKind::Cancel => "cancel",
            PauseKind::Signal => "signal",
        }
    }
    pub fn parse(s: &str) -> Option<PauseKind> {
        match s {
            "wait" => Some(PauseKind::WaitForEvent),
            "invoke" => Some(PauseKind::Invoke),
            "cancel" => Some(PauseKind::Cancel),
            "signal" => Some(PauseKind::Signal),
            _ => None,
        }
    }
}

/// A run waiting on an event (`waitForEvent`) or an invoked function.
#[derive(Debug, Clone, PartialEq)]
pub struct Pause {
    pub id: String,
    pub run_id: RunId,
    pub step: String,
    pub kind: PauseKind,
    pub event_name: Option<String>,
    pub if_exp: Option<String>,
    pub correlation_id: Option<String>,
    /// The run's trigger event, `event` in the `if` expression.
    pub trigger: Value,
    pub expires_at_ms: i64,
}

/// A condition inside a commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Guard {
    /// Passes once: deletes the pause if it is still there.
    ConsumePause(String),
    /// Passes if no signal pause holds the key `signal` (a pause's
    /// `correlation_id`), or if the one holding it expired before `now_ms`,
    /// or if `replace`; a pause passed over keeps waiting until its timeout
    /// but no longer holds the key. Then a new signal pause may hold it.
    ClaimSignal { signal: String, replace: bool, now_ms: i64 },
    /// Passes if `(scope, key)` is unused or expired, and claims it until `expires_at_ms`.
    UniqueKey { scope: String, key: String, now_ms: i64, expires_at_ms: i64 },
    /// Rate limit: passes if a GCRA slot (`limit` per `period_ms`) is free now, and takes it.
    RateLimit { name: String, now_ms: i64, limit: u32, period_ms: i64 },
    /// Passes if the batch `run_id` still holds exactly `count` events; deletes it.
    TakeBatch { run_id: RunId, count: usize },
    /// Passes if the debounce of `(function, key)` still holds `event_id`; deletes it.
    TakeDebounce { function: String, key: String, event_id: EventId },
    /// Passes if no live run holds `(scope, key)`, and makes `run_id` the holder.
    Singleton { scope: String, key: String, run_id: RunId },
}

/// One change inside a commit.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    UpsertApp(AppRecord),
    /// Upserts these functions and archives the app's others.
    SyncFunctions {
        app_id: String,
        functions: Vec<FunctionRecord>,
    },
    SetAppError {
        app_id: String,
        error: Option<String>,
    },
    InsertEvent(StoredEvent),
    InsertRun(RunRecord),
    /// Replaces the run if its revision is still `expected_rev`, else the commit fails.
    UpdateRun {
        run: RunRecord,
        expected_rev: i64,
    },
    /// Memoizes a step; a step already memoized is kept as it was.
    SaveStep(StepRecord),
    Enqueue(QueueItem),
    /// Deletes a claimed item and ends its lease. The commit fails with
    /// [`crate::StoreError::LeaseLost`] if the item is still queued under
    /// another lease (or none); an item already gone is fine.
    Ack(crate::Lease),
    InsertPause(Pause),
    /// Deletes every queued item and pause of a run (it ended).
    ClearRunWork(RunId),
    /// Retention, one pass: deletes up to `limit` runs that ended before `before_ms`
    /// with everything they left (steps, history, event links, queue items, pauses,
    /// singleton and batch rows), up to `limit` events received before it that no
    /// remaining run or debounce needs, and up to `limit` rows each of the state that
    /// is dead at `now_ms`: expired idempotency and unique keys, throttle and rate-limit
    /// rows whose state is in the past, expired sessions, and skips recorded before
    /// `before_ms`. [`CommitOutcome::purged`] says whether a limit was reached.
    Purge {
        now_ms: i64,
        before_ms: i64,
        limit: usize,
    },
    History(HistoryRecord),
    /// `then` if the guard passes, else `otherwise`.
    Guarded {
        guard: Guard,
        then: Vec<WriteOp>,
        otherwise: Vec<WriteOp>,
    },
    /// Enqueues `item` no earlier than the throttle `name` allows (GCRA with burst), taking the slot.
    Throttled {
        name: String,
        now_ms: i64,
        limit: u32,
        period_ms: i64,
        burst: u32,
        item: QueueItem,
    },
    /// Adds an event to the debounce of `(function, key)`: the newest event wins, and the
    /// firing item (id `debounce:<function>:<key>`, run id `run_id` for a new debounce)
    /// moves to `period` after now, capped at `timeout` after the first event.
    Debounce {
        function: String,
        key: String,
        event_id: EventId,
        run_id: RunId,
        now_ms: i64,
        period_ms: i64,
        timeout_ms: Option<i64>,
    },
    /// Adds an event to the open batch of `(function, key)`, opening one (for `run_id`)
    /// if none; a batch fires when it holds `max_size` events or `timeout_ms` after its first.
    AppendBatch {
        function: String,
        key: String,
        event_id: EventId,
        run_id: RunId,
        now_ms: i64,
        max_size: usize,
        timeout_ms: i64,
    },
    /// Records that an event did not start a function, and why.
    Skip(SkipRecord),
    /// Pauses (no new runs) or resumes a function.
    SetPaused {
        slug: String,
        paused: bool,
    },
    /// Makes `run_id` the holder of a singleton key, whoever held it.
    SetSingleton {
        scope: String,
        key: String,
        run_id: RunId,
    },
    /// `singleton.mode: "cancel"`: makes `run_id` the holder of the key and,
    /// in the same commit, queues a cancel (due `now_ms`) for the run that
    /// held it, read inside the commit.
    ReplaceSingleton {
        scope: String,
        key: String,
        run_id: RunId,
        now_ms: i64,
    },
    /// Stores a dashboard session (replacing one with the same id).
    InsertSession(SessionRecord),
    /// Deletes a dashboard session, if it is there (sign-out).
    DeleteSession(String),
}

/// A signed-in dashboard session. `id` is a digest of the token the browser
/// holds in its cookie, never the token itself, so a copy of the database
/// cannot be replayed as a cookie.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub id: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// A debounce waiting to fire.
#[derive(Debug, Clone, PartialEq)]
pub struct DebounceRecord {
    pub function: String,
    pub key: String,
    pub run_id: RunId,
    pub event_id: EventId,
    pub first_ms: i64,
    pub fire_ms: i64,
}

/// An open or full batch of events.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRecord {
    pub function: String,
    pub key: String,
    pub run_id: RunId,
    pub event_ids: Vec<EventId>,
    pub first_ms: i64,
}

/// An event that did not start a function (rate limit, singleton, …).
#[derive(Debug, Clone, PartialEq)]
pub struct SkipRecord {
    pub function: String,
    pub event_id: EventId,
    pub reason: String,
    pub at_ms: i64,
}

/// A set of ops applied atomically.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Commit {
    pub ops: Vec<WriteOp>,
}

/// What a commit did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitOutcome {
    /// Guards that passed, in the order they appear (depth first).
    pub guards_passed: Vec<bool>,
    /// What the commit's [`WriteOp::Purge`] deleted (zero without one).
    pub purged: Purged,
}

/// What one retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Finished runs deleted, with their steps, history and leftovers.
    pub runs: usize,
    /// Events deleted.
    pub events: usize,
    /// Rows of dead state deleted: keys, limiters, sessions, skips.
    pub expired: usize,
    /// A limit was reached: another pass right away has more to delete.
    pub more: bool,
}

/// Filters for listing runs, newest first (by id: run ids are ULIDs, so
/// paging is a keyset on the id, and every filter has an index ending in it).
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub function: Option<FunctionSlug>,
    /// Whether the run has had its first call (see [`RunProgress`]).
    pub progress: Option<RunProgress>,
    /// Keyset cursor: only runs whose id is below this one.
    pub before: Option<RunId>,
    /// Only runs whose id is at least this one: with ULID ids, a lower bound
    /// on the time the run was created.
    pub since: Option<RunId>,
    /// At most this many (0: all).
    pub limit: usize,
}

/// Where a run stands with its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunProgress {
    /// Running and not yet called: no history line of a [`CALLED_KINDS`] kind.
    Queued,
    /// Called at least once (whatever its status now).
    Called,
}

/// The history kinds that mean the run's function was called: `call` (a
/// reply came back) and `started` (the marker stored before a first call
/// that has a start timeout).
pub const CALLED_KINDS: [&str; 2] = ["call", "started"];

/// Filters for listing events, newest first (keyset on the internal id).
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub name: Option<String>,
    /// Keyset cursor: only events whose internal id is below this one.
    pub before: Option<EventId>,
    pub received_after_ms: Option<i64>,
    pub received_before_ms: Option<i64>,
    /// Leaves out events whose name starts with this (`inngest/` hides the
    /// engine's own events).
    pub exclude_prefix: Option<String>,
    /// At most this many (0: all).
    pub limit: usize,
}

/// A value bound to a placeholder of a [`Where`] clause.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    Text(String),
    Int(i64),
}

/// A `WHERE` clause (empty: no condition) and its parameters, written once
/// for the SQL backends so their filters cannot drift apart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Where {
    pub sql: String,
    pub params: Vec<SqlParam>,
}

impl Where {
    fn push(&mut self, cond: impl FnOnce(&str) -> String, param: SqlParam, ph: &dyn Fn(usize) -> String) {
        self.params.push(param);
        let c = cond(&ph(self.params.len()));
        self.sql.push_str(if self.sql.is_empty() { " WHERE " } else { " AND " });
        self.sql.push_str(&c);
    }

    fn push_raw(&mut self, cond: &str) {
        self.sql.push_str(if self.sql.is_empty() { " WHERE " } else { " AND " });
        self.sql.push_str(cond);
    }

    /// The conditions of `f` over the `runs` table; `ph(n)` writes the n-th
    /// placeholder (`?n` or `$n`). Only the filters given appear, so the
    /// planner sees plain equalities and picks the index for them.
    pub fn runs(f: &RunFilter, ph: &dyn Fn(usize) -> String) -> Where {
        let mut w = Where::default();
        if let Some(s) = f.status {
            w.push(|p| format!("status = {p}"), SqlParam::Text(s.as_str().into()), ph);
        }
        if let Some(func) = &f.function {
            w.push(|p| format!("function = {p}"), SqlParam::Text(func.0.clone()), ph);
        }
        if let Some(b) = f.before {
            w.push(|p| format!("id < {p}"), SqlParam::Text(b.to_string()), ph);
        }
        if let Some(s) = f.since {
            w.push(|p| format!("id >= {p}"), SqlParam::Text(s.to_string()), ph);
        }
        let called = format!(
            "EXISTS (SELECT 1 FROM history h WHERE h.run_id = runs.id AND h.kind IN ({}))",
            CALLED_KINDS.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ")
        );
        match f.progress {
            Some(RunProgress::Queued) => {
                if f.status.is_none() {
                    w.push(|p| format!("status = {p}"), SqlParam::Text(RunStatus::Running.as_str().into()), ph);
                }
                w.push_raw(&format!("NOT {called}"));
            }
            Some(RunProgress::Called) => w.push_raw(&called),
            None => {}
        }
        w
    }

    /// The conditions of `f` over the `events` table.
    pub fn events(f: &EventFilter, ph: &dyn Fn(usize) -> String) -> Where {
        let mut w = Where::default();
        if let Some(n) = &f.name {
            w.push(|p| format!("name = {p}"), SqlParam::Text(n.clone()), ph);
        }
        if let Some(b) = f.before {
            w.push(|p| format!("internal_id < {p}"), SqlParam::Text(b.to_string()), ph);
        }
        if let Some(t) = f.received_after_ms {
            w.push(|p| format!("received_at_ms >= {p}"), SqlParam::Int(t), ph);
        }
        if let Some(t) = f.received_before_ms {
            w.push(|p| format!("received_at_ms <= {p}"), SqlParam::Int(t), ph);
        }
        if let Some(prefix) = f.exclude_prefix.as_ref().filter(|p| !p.is_empty()) {
            let len = prefix.chars().count();
            w.push(|p| format!("substr(name, 1, {len}) <> {p}"), SqlParam::Text(prefix.clone()), ph);
        }
        w
    }
}

impl RunFilter {
    /// Whether `run` passes the filter's own columns (not `progress`, which
    /// needs the run's history).
    pub fn admits(&self, run: &RunRecord) -> bool {
        self.status.is_none_or(|s| run.status() == s)
            && self.function.as_ref().is_none_or(|f| &run.state.function == f)
            && self.before.is_none_or(|b| run.id() < b)
            && self.since.is_none_or(|s| run.id() >= s)
    }
}

impl EventFilter {
    /// Whether `e` passes the filter.
    pub fn admits(&self, e: &StoredEvent) -> bool {
        self.name.as_ref().is_none_or(|n| &e.name == n)
            && self.before.is_none_or(|b| e.internal_id < b)
            && self.received_after_ms.is_none_or(|t| e.received_at_ms >= t)
            && self.received_before_ms.is_none_or(|t| e.received_at_ms <= t)
            && self.exclude_prefix.as_ref().filter(|p| !p.is_empty()).is_none_or(|p| !e.name.starts_with(p.as_str()))
    }
}

// ---- row mapping helpers shared by backends ----

pub(crate) fn target_to_json(t: &CallTarget) -> Value {
    match t {
        CallTarget::Discovery => Value::Null,
        CallTarget::Step(s) => Value::String(s.clone()),
    }
}

pub(crate) fn target_from_json(v: &Value) -> CallTarget {
    match v.as_str() {
        Some(s) => CallTarget::Step(s.to_string()),
        None => CallTarget::Discovery,
    }
}

/// Work as stored JSON.
pub fn work_to_json(w: &Work) -> Value {
    match w {
        Work::Call { target, attempt } => {
            json!({"t":"call","target":target_to_json(target),"attempt":attempt})
        }
        Work::Sleep { step } => json!({"t":"sleep","step":step}),
        Work::Resume { step, pause, kind, value } => {
            let (ok, v) = match value {
                Ok(v) => (true, v),
                Err(v) => (false, v),
            };
            json!({"t":"resume","step":step,"pause":pause,"kind":kind.as_str(),"ok":ok,"value":v})
        }
        Work::Timeout { step, pause, kind } => {
            json!({"t":"timeout","step":step,"pause":pause,"kind":kind.as_str()})
        }
        Work::Cancel => json!({"t":"cancel"}),
        Work::StartTimeout => json!({"t":"start_timeout"}),
        Work::Debounce { function, key } => json!({"t":"debounce","function":function,"key":key}),
        Work::Batch { function, key } => json!({"t":"batch","function":function,"key":key}),
        Work::Cron { function, cron, scheduled_ms } => json!({"t":"cron","function":function,"cron":cron,"scheduled_ms":scheduled_ms}),
    }
}

/// Work from stored JSON.
pub fn work_from_json(v: &Value) -> Result<Work, crate::StoreError> {
    let s = |k: &str| {
        v.get(k).and_then(Value::as_str).map(str::to_string).ok_or_else(|| crate::StoreError::Corrupt(format!("work without {k}: {v}")))
    };
    let kind = || s("kind").and_then(|k| PauseKind::parse(&k).ok_or_else(|| crate::StoreError::Corrupt(format!("bad pause kind {k}"))));
    Ok(match v.get("t").and_then(Value::as_str) {
        Some("call") => Work::Call {
            target: target_from_json(v.get("target").unwrap_or(&Value::Null)),
            attempt: v.get("attempt").and_then(Value::as_u64).unwrap_or(0) as u32,
        },
        Some("sleep") => Work::Sleep { step: s("step")? },
        Some("resume") => {
            let value = v.get("value").cloned().unwrap_or(Value::Null);
            let ok = v.get("ok").and_then(Value::as_bool).unwrap_or(true);
            Work::Resume { step: s("step")?, pause: s("pause")?, kind: kind()?, value: if ok { Ok(value) } else { Err(value) } }
        }
        Some("timeout") => Work::Timeout { step: s("step")?, pause: s("pause")?, kind: kind()? },
        Some("cancel") => Work::Cancel,
        Some("start_timeout") => Work::StartTimeout,
        Some("debounce") => Work::Debounce { function: s("function")?, key: s("key")? },
        Some("batch") => Work::Batch { function: s("function")?, key: s("key")? },
        Some("cron") => Work::Cron {
            function: s("function")?,
            cron: s("cron")?,
            scheduled_ms: v.get("scheduled_ms").and_then(Value::as_i64).unwrap_or(0),
        },
        _ => return Err(crate::StoreError::Corrupt(format!("unknown work {v}"))),
    })
}

/// The run state as stored JSON.
pub fn state_to_json(s: &RunState) -> Value {
    json!({
        "function": s.function.0,
        "max_attempts": s.max_attempts,
        "version": s.version,
        "force_plan": s.force_plan,
        "done": s.done,
        "planned": s.planned,
        "pending": s.pending,
        "race": s.race,
        "concurrency": s.concurrency.iter().map(|k| json!({"key": k.key, "limit": k.limit})).collect::<Vec<_>>(),
        "state_bytes": s.state_bytes,
    })
}

/// The run state from stored JSON.
pub fn state_from_json(run_id: RunId, status: RunStatus, v: &Value) -> Result<RunState, crate::StoreError> {
    let set = |k: &str| -> std::collections::BTreeSet<String> {
        v.get(k).and_then(Value::as_array).map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    let function =
        v.get("function").and_then(Value::as_str).ok_or_else(|| crate::StoreError::Corrupt("run state without function".into()))?;
    Ok(RunState {
        run_id,
        function: FunctionSlug(function.to_string()),
        status,
        max_attempts: v.get("max_attempts").and_then(Value::as_u64).unwrap_or(5) as u32,
        version: v.get("version").and_then(Value::as_i64).unwrap_or(-1) as i32,
        force_plan: v.get("force_plan").and_then(Value::as_bool).unwrap_or(false),
        done: set("done"),
        planned: set("planned"),
        pending: set("pending"),
        race: set("race"),
        concurrency: v
            .get("concurrency")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|k| {
                        Some(ingot_core::flow::ConcurrencyKey {
                            key: k.get("key")?.as_str()?.to_string(),
                            limit: k.get("limit")?.as_u64()? as u32,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default(),
        state_bytes: v.get("state_bytes").and_then(Value::as_u64).unwrap_or(0),
    })
}
