//! The conformance suite: behaviour every [`Store`] must share. Each backend's
//! tests call [`run_all`] with a fresh store.

use ingot_core::{CallTarget, EventId, FunctionSlug, RunId, RunState, RunStatus};
use serde_json::json;
use ulid::Ulid;

use crate::records::*;
use crate::{Store, StoreError};

fn run(id: RunId, event: EventId) -> RunRecord {
    RunRecord {
        state: RunState::new(id, FunctionSlug("app-f".into()), 3),
        event_ids: vec![event],
        output: None,
        started_at_ms: 1,
        ended_at_ms: None,
        correlation_id: None,
        rev: 0,
    }
}

fn item(run_id: RunId, at: i64) -> QueueItem {
    QueueItem {
        id: QueueItemId(Ulid::new().to_string()),
        run_id,
        work: Work::Call { target: CallTarget::Discovery, attempt: 0 },
        available_at_ms: at,
        dedupe: None,
    }
}

/// Runs every check against `store`.
pub async fn run_all(store: &dyn Store) {
    ingest_and_read_back(store).await;
    claims_respect_time_and_leases(store).await;
    claims_carry_the_runs_revision(store).await;
    steps_are_memoized_once_in_order(store).await;
    revision_guard_conflicts(store).await;
    pauses_are_consumed_once(store).await;
    signal_waits_hold_their_signal_once(store).await;
    unique_keys_expire(store).await;
    sync_archives_missing_functions(store).await;
    throttle_delays_and_rate_limit_skips(store).await;
    debounce_keeps_the_newest_event(store).await;
    batches_fill_and_are_taken_once(store).await;
    singletons_hold_while_running(store).await;
    singleton_replacement_cancels_the_holder(store).await;
    retention_deletes_only_old_finished_work(store).await;
    paused_functions_are_kept(store).await;
    sessions_are_kept_until_deleted(store).await;
    retention_purges_what_finished_runs_and_time_leave(store).await;
    retention_passes_stop_at_their_limit(store).await;
    runs_page_by_id_under_every_filter(store).await;
    events_page_by_id_and_hide_a_prefix(store).await;
    queue_depth_counts_due_and_future_items(store).await;
    call_samples_are_a_functions_recent_calls(store).await;
}

/// Pages through `filter` `per` at a time with the keyset cursor.
async fn all_pages(store: &dyn Store, filter: &RunFilter, per: usize) -> Vec<RunId> {
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let page = store.runs(&RunFilter { before, limit: per, ..filter.clone() }).await.unwrap();
        assert!(page.len() <= per);
        out.extend(page.iter().map(|r| r.id()));
        match page.last() {
            Some(last) if page.len() == per => before = Some(last.id()),
            _ => return out,
        }
    }
}

/// A run the paging check made: id, function, status, called.
type Made = (RunId, &'static str, RunStatus, bool);

async fn runs_page_by_id_under_every_filter(store: &dyn Store) {
    // 24 runs of two functions, in id order; every third one ended, every
    // other running one has had a call.
    let ev = EventId(Ulid::new());
    let mut ops = vec![WriteOp::InsertEvent(StoredEvent { internal_id: ev, name: "srch/e".into(), payload: json!({}), received_at_ms: 1 })];
    let mut made: Vec<Made> = Vec::new();
    for i in 0..24 {
        let id = RunId(Ulid::from_parts(1_700_000_000_000 + i as u64, i as u128));
        let function = if i % 2 == 0 { "srch-a" } else { "srch-b" };
        let mut r = run(id, ev);
        r.state.function = FunctionSlug(function.into());
        let status = if i % 3 == 0 { RunStatus::Completed } else { RunStatus::Running };
        r.state.status = status;
        let called = status == RunStatus::Completed || i % 4 == 1;
        ops.push(WriteOp::InsertRun(r));
        if called {
            ops.push(WriteOp::History(HistoryRecord {
                run_id: id,
                at_ms: 5,
                kind: "call".into(),
                step: None,
                name: None,
                attempt: Some(0),
                duration_ms: Some(1),
                detail: json!({}),
            }));
        }
        made.push((id, function, status, called));
    }
    store.commit(Commit { ops }).await.unwrap();
    let newest_first = |pick: &dyn Fn(&Made) -> bool| -> Vec<RunId> {
        let mut ids: Vec<RunId> = made.iter().filter(|m| pick(m)).map(|m| m.0).collect();
        ids.sort_by(|a, b| b.cmp(a));
        ids
    };
    let a = FunctionSlug("srch-a".into());
    let b = FunctionSlug("srch-b".into());
    let cases: Vec<(RunFilter, Vec<RunId>)> = vec![
        (RunFilter { function: Some(a.clone()), ..Default::default() }, newest_first(&|m| m.1 == "srch-a")),
        (
            RunFilter { function: Some(b.clone()), status: Some(RunStatus::Running), ..Default::default() },
            newest_first(&|m| m.1 == "srch-b" && m.2 == RunStatus::Running),
        ),
        (
            RunFilter { function: Some(a.clone()), progress: Some(RunProgress::Queued), ..Default::default() },
            newest_first(&|m| m.1 == "srch-a" && m.2 == RunStatus::Running && !m.3),
        ),
        (
            RunFilter { function: Some(b.clone()), progress: Some(RunProgress::Called), ..Default::default() },
            newest_first(&|m| m.1 == "srch-b" && m.3),
        ),
        (
            RunFilter { function: Some(b.clone()), since: Some(made[10].0), ..Default::default() },
            newest_first(&|m| m.1 == "srch-b" && m.0 >= made[10].0),
        ),
    ];
    for (filter, want) in cases {
        assert!(!want.is_empty(), "{filter:?}");
        assert_eq!(all_pages(store, &filter, 5).await, want, "paging {filter:?}");
        assert_eq!(all_pages(store, &filter, 1000).await, want, "one page {filter:?}");
        assert_eq!(store.count_runs(&filter).await.unwrap(), want.len() as u64, "count {filter:?}");
        let capped = RunFilter { limit: 2, ..filter.clone() };
        assert_eq!(store.count_runs(&capped).await.unwrap(), 2, "a count is capped by the limit: {filter:?}");
    }
    // A status filter alone pages through these runs too (among others').
    let running = all_pages(store, &RunFilter { status: Some(RunStatus::Running), ..Default::default() }, 7).await;
    let mine: Vec<RunId> = running.into_iter().filter(|id| made.iter().any(|m| m.0 == *id)).collect();
    assert_eq!(mine, newest_first(&|m| m.2 == RunStatus::Running));
}

async fn events_page_by_id_and_hide_a_prefix(store: &dyn Store) {
    let mut ops = Vec::new();
    let mut mine = Vec::new();
    for i in 0..9u64 {
        let id = EventId(Ulid::from_parts(1_700_000_100_000 + i, i as u128));
        let name = if i % 3 == 0 { "srchint/x" } else { "srchpub/y" };
        ops.push(WriteOp::InsertEvent(StoredEvent {
            internal_id: id,
            name: name.into(),
            payload: json!({}),
            received_at_ms: 100 + i as i64,
        }));
        mine.push((id, name));
    }
    store.commit(Commit { ops }).await.unwrap();
    let mut want: Vec<EventId> = mine.iter().filter(|m| m.1 == "srchpub/y").map(|m| m.0).collect();
    want.sort_by(|a, b| b.cmp(a));
    let filter = EventFilter { name: Some("srchpub/y".into()), ..Default::default() };
    let mut got = Vec::new();
    let mut before = None;
    loop {
        let page = store.events(&EventFilter { before, limit: 4, ..filter.clone() }).await.unwrap();
        got.extend(page.iter().map(|e| e.internal_id));
        match page.last() {
            Some(last) if page.len() == 4 => before = Some(last.internal_id),
            _ => break,
        }
    }
    assert_eq!(got, want);
    assert_eq!(store.count_events(&filter).await.unwrap(), 6);
    let window = EventFilter { received_after_ms: Some(100), received_before_ms: Some(108), ..Default::default() };
    let all = store.events(&window).await.unwrap();
    assert!(all.iter().any(|e| e.name == "srchint/x"));
    let hidden = store.events(&EventFilter { exclude_prefix: Some("srchint/".into()), ..window.clone() }).await.unwrap();
    assert!(hidden.iter().all(|e| !e.name.starts_with("srchint/")));
    assert_eq!(hidden.iter().filter(|e| e.name == "srchpub/y").count(), 6);
    assert_eq!(store.count_events(&EventFilter { exclude_prefix: Some("srchint/".into()), ..window }).await.unwrap(), hidden.len() as u64);
}

async fn sessions_are_kept_until_deleted(store: &dyn Store) {
    let s = SessionRecord { id: "conf-session".into(), created_at_ms: 1, expires_at_ms: 10 };
    store.commit(Commit { ops: vec![WriteOp::InsertSession(s.clone())] }).await.unwrap();
    assert_eq!(store.session("conf-session").await.unwrap(), Some(s));
    assert_eq!(store.session("other").await.unwrap(), None);
    store.commit(Commit { ops: vec![WriteOp::DeleteSession("conf-session".into())] }).await.unwrap();
    assert_eq!(store.session("conf-session").await.unwrap(), None, "a deleted session is gone");
    store.commit(Commit { ops: vec![WriteOp::DeleteSession("conf-session".into())] }).await.unwrap();
}

fn finished(id: RunId, event: EventId, ended_ms: i64) -> RunRecord {
    let mut r = run(id, event);
    r.state.status = RunStatus::Completed;
    r.ended_at_ms = Some(ended_ms);
    r
}

fn event_at(id: EventId, at: i64) -> WriteOp {
    WriteOp::InsertEvent(StoredEvent { internal_id: id, name: "ret2/x".into(), payload: json!({"name":"ret2/x"}), received_at_ms: at })
}

/// Everything a run or an event adds is deleted once it is dead: a finished
/// run's steps, history, leftover queue items and pauses, singleton and batch
/// rows; events nothing needs; expired keys and sessions; limiter state in the
/// past; old skips. What is still needed stays. (`before` = 1,000, now = 2,000.)
async fn retention_purges_what_finished_runs_and_time_leave(store: &dyn Store) {
    let (before_ms, now_ms) = (1_000, 2_000);
    let [e_old, e_recent_run, e_debounced, e_new] = [(); 4].map(|_| EventId(Ulid::new()));
    let (old, recent, throttled, debounced) = (RunId(Ulid::new()), RunId(Ulid::new()), RunId(Ulid::new()), RunId(Ulid::new()));
    let key = |key: &str, now_ms, expires_at_ms| WriteOp::Guarded {
        guard: Guard::UniqueKey { scope: "ret2".into(), key: key.into(), now_ms, expires_at_ms },
        then: vec![],
        otherwise: vec![],
    };
    let throttle = |name: &str, now_ms, period_ms| WriteOp::Throttled {
        name: name.into(),
        now_ms,
        limit: 1,
        period_ms,
        burst: 0,
        item: item(throttled, now_ms),
    };
    let session = |id: &str, expires_at_ms| WriteOp::InsertSession(SessionRecord { id: id.into(), created_at_ms: 0, expires_at_ms });
    let skip = |at_ms| WriteOp::Skip(SkipRecord { function: "ret2-f".into(), event_id: e_new, reason: "test".into(), at_ms });
    let ops = vec![
        event_at(e_old, 10),
        event_at(e_recent_run, 10),
        event_at(e_debounced, 10),
        event_at(e_new, 1_500),
        WriteOp::InsertRun(finished(old, e_old, 20)),
        WriteOp::InsertRun(finished(recent, e_recent_run, 1_500)),
        WriteOp::SaveStep(StepRecord { run_id: old, step: "a".into(), name: "a".into(), memo: json!({"data":1}), seq: 0, at_ms: 15 }),
        WriteOp::History(HistoryRecord {
            run_id: old,
            at_ms: 15,
            kind: "call".into(),
            step: None,
            name: None,
            attempt: Some(0),
            duration_ms: Some(1),
            detail: json!({}),
        }),
        WriteOp::Enqueue(item(old, 5_000_000)),
        WriteOp::InsertPause(Pause {
            id: Ulid::new().to_string(),
            run_id: old,
            step: "w".into(),
            kind: PauseKind::WaitForEvent,
            event_name: Some("ret2/never".into()),
            if_exp: None,
            correlation_id: None,
            trigger: json!({}),
            expires_at_ms: 5_000_000,
        }),
        WriteOp::SetSingleton { scope: "ret2".into(), key: "k".into(), run_id: old },
        WriteOp::AppendBatch {
            function: "ret2-b".into(),
            key: "".into(),
            event_id: e_old,
            run_id: old,
            now_ms: 10,
            max_size: 10,
            timeout_ms: 1_000,
        },
        WriteOp::Debounce {
            function: "ret2-d".into(),
            key: "k".into(),
            event_id: e_debounced,
            run_id: debounced,
            now_ms: 10,
            period_ms: 10_000_000,
            timeout_ms: None,
        },
        key("dead", 0, 1_500),
        key("live", 0, 3_000),
        throttle("ret2-dead", 0, 1_000),
        throttle("ret2-live", 0, 10_000),
        session("ret2-dead", 1_500),
        session("ret2-live", 5_000),
        skip(10),
        skip(1_500),
    ];
    store.commit(Commit { ops }).await.unwrap();
    store.commit(Commit { ops: vec![WriteOp::ClearRunWork(throttled)] }).await.unwrap();

    let out = store.commit(Commit { ops: vec![WriteOp::Purge { now_ms, before_ms, limit: 1_000 }] }).await.unwrap();
    assert!(out.purged.runs >= 1 && out.purged.events >= 1 && out.purged.expired >= 4, "{:?}", out.purged);
    assert!(!out.purged.more, "a pass under its limit has nothing more to do");

    assert!(store.run(old).await.unwrap().is_none(), "an old finished run is deleted");
    assert!(store.run_steps(old).await.unwrap().is_empty(), "with its steps");
    assert!(store.run_history(old).await.unwrap().is_empty(), "with its history");
    assert!(store.run_items(old).await.unwrap().is_empty(), "with its leftover queue items");
    assert!(store.pauses_for_run(old).await.unwrap().is_empty(), "with its leftover pauses");
    assert_eq!(store.singleton_holder("ret2", "k").await.unwrap(), None, "with the singleton row it held");
    assert!(store.batch(old).await.unwrap().is_none(), "with its batch row");
    assert!(store.event(e_old).await.unwrap().is_none(), "and its event");
    assert!(store.runs_for_event(e_old).await.unwrap().is_empty());

    assert!(store.run(recent).await.unwrap().is_some(), "a run that ended after the cut-off stays");
    assert!(store.event(e_recent_run).await.unwrap().is_some(), "and so does its old event");
    assert!(store.event(e_debounced).await.unwrap().is_some(), "an old event a debounce holds stays");
    assert!(store.event(e_new).await.unwrap().is_some(), "a recent event stays");

    // An expired key is gone: asked again "before" it expired, it is free.
    let passed = |c: crate::CommitOutcome| c.guards_passed;
    assert_eq!(passed(store.commit(Commit { ops: vec![key("dead", 0, 1_500)] }).await.unwrap()), vec![true], "expired key deleted");
    assert_eq!(passed(store.commit(Commit { ops: vec![key("live", 0, 3_000)] }).await.unwrap()), vec![false], "live key kept");
    // A limiter whose state is in the past is gone: the same first slot is free again.
    store.commit(Commit { ops: vec![throttle("ret2-dead", 0, 1_000), throttle("ret2-live", 0, 10_000)] }).await.unwrap();
    let mut times: Vec<i64> = store.run_items(throttled).await.unwrap().iter().map(|i| i.available_at_ms).collect();
    times.sort();
    assert_eq!(times, vec![0, 10_000], "the past limiter was deleted, the live one kept");
    store.commit(Commit { ops: vec![WriteOp::ClearRunWork(throttled)] }).await.unwrap();

    assert_eq!(store.session("ret2-dead").await.unwrap(), None, "an expired session is deleted");
    assert!(store.session("ret2-live").await.unwrap().is_some(), "a live session stays");
    let skips: Vec<i64> = store.skips(Some("ret2-f"), 0).await.unwrap().iter().map(|s| s.at_ms).collect();
    assert_eq!(skips, vec![1_500], "old skips are deleted");

    let take = Guard::TakeDebounce { function: "ret2-d".into(), key: "k".into(), event_id: e_debounced };
    let cleanup = vec![
        WriteOp::Guarded { guard: take, then: vec![], otherwise: vec![] },
        WriteOp::ClearRunWork(debounced),
        WriteOp::DeleteSession("ret2-live".into()),
    ];
    store.commit(Commit { ops: cleanup }).await.unwrap();
}

/// A pass deletes at most `limit` runs, oldest first, and says when there is more.
async fn retention_passes_stop_at_their_limit(store: &dyn Store) {
    let ids = [(); 3].map(|_| (RunId(Ulid::new()), EventId(Ulid::new())));
    let mut ops = Vec::new();
    for (i, (r, e)) in ids.iter().enumerate() {
        ops.push(event_at(*e, 10));
        ops.push(WriteOp::InsertRun(finished(*r, *e, 30 + i as i64)));
    }
    store.commit(Commit { ops }).await.unwrap();
    let purge = || Commit { ops: vec![WriteOp::Purge { now_ms: 2_000, before_ms: 1_000, limit: 2 }] };
    let first = store.commit(purge()).await.unwrap().purged;
    assert_eq!(first.runs, 2, "{first:?}");
    assert!(first.more, "a pass that reached its limit says there is more: {first:?}");
    assert!(store.run(ids[0].0).await.unwrap().is_none() && store.run(ids[1].0).await.unwrap().is_none(), "oldest first");
    assert!(store.run(ids[2].0).await.unwrap().is_some());
    let second = store.commit(purge()).await.unwrap().purged;
    assert_eq!(second.runs, 1, "{second:?}");
    let mut passes = 0;
    while store.commit(purge()).await.unwrap().purged.more {
        passes += 1;
        assert!(passes < 100, "purging never runs out");
    }
    for (r, e) in ids {
        assert!(store.run(r).await.unwrap().is_none());
        assert!(store.event(e).await.unwrap().is_none());
    }
}

async fn paused_functions_are_kept(store: &dyn Store) {
    let set = |paused| Commit { ops: vec![WriteOp::SetPaused { slug: "conf-app-p".into(), paused }] };
    store.commit(set(true)).await.unwrap();
    store.commit(set(true)).await.unwrap();
    assert!(store.paused_functions().await.unwrap().contains(&"conf-app-p".to_string()));
    store.commit(set(false)).await.unwrap();
    assert!(!store.paused_functions().await.unwrap().contains(&"conf-app-p".to_string()));
}

async fn retention_deletes_only_old_finished_work(store: &dyn Store) {
    let (old_ev, live_ev) = (EventId(Ulid::new()), EventId(Ulid::new()));
    let ev = |id, at| StoredEvent { internal_id: id, name: "ret/x".into(), payload: json!({"name":"ret/x"}), received_at_ms: at };
    let (old_run, live_run) = (RunId(Ulid::new()), RunId(Ulid::new()));
    let mut finished = run(old_run, old_ev);
    finished.state.status = RunStatus::Completed;
    finished.ended_at_ms = Some(5);
    store
        .commit(Commit {
            ops: vec![
                WriteOp::InsertEvent(ev(old_ev, 1)),
                WriteOp::InsertEvent(ev(live_ev, 1)),
                WriteOp::InsertRun(finished),
                WriteOp::InsertRun(run(live_run, live_ev)),
            ],
        })
        .await
        .unwrap();
    store.commit(Commit { ops: vec![WriteOp::Purge { now_ms: 100, before_ms: 100, limit: 1000 }] }).await.unwrap();
    assert!(store.run(old_run).await.unwrap().is_none(), "an old finished run is deleted");
    assert!(store.event(old_ev).await.unwrap().is_none(), "an old event no live run needs is deleted");
    assert!(store.run(live_run).await.unwrap().is_some(), "a running run is kept");
    assert!(store.event(live_ev).await.unwrap().is_some(), "a live run's event is kept");
    store.commit(Commit { ops: vec![WriteOp::ClearRunWork(live_run)] }).await.unwrap();
}

async fn throttle_delays_and_rate_limit_skips(store: &dyn Store) {
    let rid = RunId(Ulid::new());
    let t = |at| WriteOp::Throttled { name: "thr".into(), now_ms: 1_000, limit: 1, period_ms: 1_000, burst: 0, item: item(rid, at) };
    store.commit(Commit { ops: vec![t(1_000), t(1_000), t(1_000)] }).await.unwrap();
    let mut times: Vec<i64> = store.run_items(rid).await.unwrap().iter().map(|i| i.available_at_ms).collect();
    times.sort();
    assert_eq!(times, vec![1_000, 2_000, 3_000], "throttled items are spread, none dropped");
    store.commit(Commit { ops: vec![WriteOp::ClearRunWork(rid)] }).await.unwrap();
    let rl = |now| Commit {
        ops: vec![WriteOp::Guarded {
            otherwise: vec![],
            guard: Guard::RateLimit { name: "rl".into(), now_ms: now, limit: 1, period_ms: 1_000 },
            then: vec![],
        }],
    };
    assert_eq!(store.commit(rl(0)).await.unwrap().guards_passed, vec![true]);
    assert_eq!(store.commit(rl(10)).await.unwrap().guards_passed, vec![false]);
    assert_eq!(store.commit(rl(1_000)).await.unwrap().guards_passed, vec![true]);
    // A skip is found by its event.
    let ev = EventId(Ulid::new());
    let skip = |f: &str| WriteOp::Skip(SkipRecord { function: f.into(), event_id: ev, reason: "function paused".into(), at_ms: 7 });
    store.commit(Commit { ops: vec![skip("sk-a"), skip("sk-b")] }).await.unwrap();
    let found: Vec<String> = store.skips_for_event(ev).await.unwrap().into_iter().map(|s| s.function).collect();
    assert_eq!(found, vec!["sk-a".to_string(), "sk-b".to_string()]);
    assert!(store.skips_for_event(EventId(Ulid::new())).await.unwrap().is_empty());
}

async fn debounce_keeps_the_newest_event(store: &dyn Store) {
    let (e1, e2) = (EventId(Ulid::new()), EventId(Ulid::new()));
    let run_id = RunId(Ulid::new());
    let d = |event_id, now| WriteOp::Debounce {
        function: "f".into(),
        key: "k".into(),
        event_id,
        run_id: RunId(Ulid::new()),
        now_ms: now,
        period_ms: 100,
        timeout_ms: Some(150),
    };
    store
        .commit(Commit {
            ops: vec![WriteOp::Debounce {
                function: "f".into(),
                key: "k".into(),
                event_id: e1,
                run_id,
                now_ms: 0,
                period_ms: 100,
                timeout_ms: Some(150),
            }],
        })
        .await
        .unwrap();
    store.commit(Commit { ops: vec![d(e2, 90)] }).await.unwrap();
    let rec = store.debounce("f", "k").await.unwrap().unwrap();
    assert_eq!((rec.event_id, rec.run_id, rec.fire_ms), (e2, run_id, 150), "newest event wins; the timeout caps the delay");
    let items = store.run_items(run_id).await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].available_at_ms, 150);
    let take = |e| Commit {
        ops: vec![WriteOp::Guarded {
            otherwise: vec![],
            guard: Guard::TakeDebounce { function: "f".into(), key: "k".into(), event_id: e },
            then: vec![],
        }],
    };
    assert_eq!(store.commit(take(e1)).await.unwrap().guards_passed, vec![false]);
    assert_eq!(store.commit(take(e2)).await.unwrap().guards_passed, vec![true]);
    assert!(store.debounce("f", "k").await.unwrap().is_none());
    store.commit(Commit { ops: vec![WriteOp::ClearRunWork(run_id)] }).await.unwrap();
}

async fn batches_fill_and_are_taken_once(store: &dyn Store) {
    let first = RunId(Ulid::new());
    let append = |run_id| WriteOp::AppendBatch {
        function: "b".into(),
        key: "".into(),
        event_id: EventId(Ulid::new()),
        run_id,
        now_ms: 10,
        max_size: 2,
        timeout_ms: 1_000,
    };
    store.commit(Commit { ops: vec![append(first)] }).await.unwrap();
    assert_eq!(store.run_items(first).await.unwrap()[0].available_at_ms, 1_010, "an open batch fires at its timeout");
    store.commit(Commit { ops: vec![append(RunId(Ulid::new()))] }).await.unwrap();
    assert_eq!(store.batch(first).await.unwrap().unwrap().event_ids.len(), 2);
    assert_eq!(store.run_items(first).await.unwrap()[0].available_at_ms, 10, "a full batch fires now");
    let second = RunId(Ulid::new());
    store.commit(Commit { ops: vec![append(second)] }).await.unwrap();
    assert_eq!(store.batch(second).await.unwrap().unwrap().event_ids.len(), 1, "a full batch is closed; the next event opens a new one");
    let take = |count| Commit {
        ops: vec![WriteOp::Guarded { otherwise: vec![], guard: Guard::TakeBatch { run_id: first, count }, then: vec![] }],
    };
    assert_eq!(store.commit(take(1)).await.unwrap().guards_passed, vec![false]);
    assert_eq!(store.commit(take(2)).await.unwrap().guards_passed, vec![true]);
    assert!(store.batch(first).await.unwrap().is_none());
    for r in [first, second] {
        store.commit(Commit { ops: vec![WriteOp::ClearRunWork(r)] }).await.unwrap();
    }
}

async fn singletons_hold_while_running(store: &dyn Store) {
    let ev = EventId(Ulid::new());
    let (a, b) = (RunId(Ulid::new()), RunId(Ulid::new()));
    let guard = |run_id| WriteOp::Guarded {
        otherwise: vec![],
        guard: Guard::Singleton { scope: "s".into(), key: "k".into(), run_id },
        then: vec![WriteOp::InsertRun(run(run_id, ev))],
    };
    assert_eq!(store.commit(Commit { ops: vec![guard(a)] }).await.unwrap().guards_passed, vec![true]);
    assert_eq!(store.commit(Commit { ops: vec![guard(b)] }).await.unwrap().guards_passed, vec![false]);
    assert_eq!(store.singleton_holder("s", "k").await.unwrap(), Some(a));
    let mut done = store.run(a).await.unwrap().unwrap();
    done.state.status = RunStatus::Completed;
    store.commit(Commit { ops: vec![WriteOp::UpdateRun { run: done, expected_rev: 0 }] }).await.unwrap();
    assert_eq!(store.commit(Commit { ops: vec![guard(b)] }).await.unwrap().guards_passed, vec![true]);
}

async fn singleton_replacement_cancels_the_holder(store: &dyn Store) {
    let ev = EventId(Ulid::new());
    let (a, b) = (RunId(Ulid::new()), RunId(Ulid::new()));
    let replace = |run_id| WriteOp::ReplaceSingleton { scope: "rs".into(), key: "k".into(), run_id, now_ms: 7 };
    store.commit(Commit { ops: vec![WriteOp::InsertRun(run(a, ev)), replace(a)] }).await.unwrap();
    assert!(store.run_items(a).await.unwrap().is_empty(), "no holder before: nothing to cancel");
    // Replacing with the same run cancels nothing either.
    store.commit(Commit { ops: vec![replace(a)] }).await.unwrap();
    assert!(store.run_items(a).await.unwrap().is_empty());
    store.commit(Commit { ops: vec![WriteOp::InsertRun(run(b, ev)), replace(b)] }).await.unwrap();
    assert_eq!(store.singleton_holder("rs", "k").await.unwrap(), Some(b));
    let items = store.run_items(a).await.unwrap();
    assert!(matches!(&items[..], [i] if i.work == Work::Cancel && i.available_at_ms == 7), "the old holder is cancelled: {items:?}");
    assert!(store.run_items(b).await.unwrap().is_empty());
}

async fn ingest_and_read_back(store: &dyn Store) {
    let ev = EventId(Ulid::new());
    let rid = RunId(Ulid::new());
    let stored = StoredEvent { internal_id: ev, name: "a/b".into(), payload: json!({"name":"a/b","data":{"k":1}}), received_at_ms: 10 };
    store.commit(Commit { ops: vec![WriteOp::InsertEvent(stored.clone()), WriteOp::InsertRun(run(rid, ev))] }).await.unwrap();
    assert_eq!(store.event(ev).await.unwrap(), Some(stored.clone()));
    let runs = store.runs_for_event(ev).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].id(), rid);
    assert_eq!(runs[0].state, run(rid, ev).state);
    let named = store.events(&EventFilter { name: Some("a/b".into()), limit: 10, ..Default::default() }).await.unwrap();
    assert!(named.iter().any(|e| e.internal_id == ev));
    assert!(store.run(RunId(Ulid::new())).await.unwrap().is_none());
}

async fn claims_respect_time_and_leases(store: &dyn Store) {
    let rid = RunId(Ulid::new());
    let due = item(rid, 100);
    let later = item(rid, 5_000_000_000_000);
    store.commit(Commit { ops: vec![WriteOp::Enqueue(due.clone()), WriteOp::Enqueue(later.clone())] }).await.unwrap();
    let c = store.claim(200, 10).await.unwrap();
    assert!(c.items.iter().any(|i| i.id == due.id), "due item is claimed");
    assert!(!c.items.iter().any(|i| i.id == later.id), "future item is not");
    assert!(c.next_at_ms.is_some());
    let again = store.claim(200, 10).await.unwrap();
    assert!(!again.items.iter().any(|i| i.id == due.id), "a held item is not claimed twice");
    let first = c.items.iter().find(|i| i.id == due.id).unwrap().lease.clone();
    store.release(&first).await.unwrap();
    assert!(matches!(store.release(&first).await, Err(StoreError::LeaseLost(_))), "a lease ends once");
    let after_release = store.claim(200, 10).await.unwrap();
    let second = after_release.items.iter().find(|i| i.id == due.id).expect("a released item is claimable").lease.clone();
    assert_ne!(first, second, "each claim is its own lease");
    let stale = store.commit(Commit { ops: vec![WriteOp::Ack(first.clone())] }).await;
    assert!(matches!(stale, Err(StoreError::LeaseLost(_))), "an ack under a lost lease fails: {stale:?}");
    assert_eq!(store.run_items(rid).await.unwrap().len(), 2, "and changes nothing");
    store.commit(Commit { ops: vec![WriteOp::Ack(second.clone())] }).await.unwrap();
    let after_ack = store.claim(200, 10).await.unwrap();
    assert!(!after_ack.items.iter().any(|i| i.id == due.id), "an acked item is gone");
    store.commit(Commit { ops: vec![WriteOp::Ack(second)] }).await.expect("acking an item already gone is fine");
    for i in after_ack.items.iter().chain(again.items.iter()).chain(c.items.iter().filter(|i| i.id != due.id)) {
        let _ = store.release(&i.lease).await;
    }
    store.commit(Commit { ops: vec![WriteOp::ClearRunWork(rid)] }).await.unwrap();
    assert!(store.run_items(rid).await.unwrap().is_empty());
}

async fn claims_carry_the_runs_revision(store: &dyn Store) {
    let ev = EventId(Ulid::new());
    let rid = RunId(Ulid::new());
    let orphan = RunId(Ulid::new());
    store.commit(Commit { ops: vec![WriteOp::InsertRun(run(rid, ev))] }).await.unwrap();
    let r = store.run(rid).await.unwrap().unwrap();
    let (mine, none) = (item(rid, 1), item(orphan, 1));
    store
        .commit(Commit {
            ops: vec![WriteOp::UpdateRun { run: r, expected_rev: 0 }, WriteOp::Enqueue(mine.clone()), WriteOp::Enqueue(none.clone())],
        })
        .await
        .unwrap();
    let c = store.claim(200, 1000).await.unwrap();
    let got = |id: &QueueItemId| c.items.iter().find(|i| &i.id == id).expect("the due item is claimed").run_rev;
    assert_eq!(got(&mine.id), Some(1), "a claimed item carries its run's revision");
    assert_eq!(got(&none.id), None, "and none when its run has no row");
    for i in &c.items {
        let _ = store.release(&i.lease).await;
    }
    store.commit(Commit { ops: vec![WriteOp::ClearRunWork(rid), WriteOp::ClearRunWork(orphan)] }).await.unwrap();
}

async fn steps_are_memoized_once_in_order(store: &dyn Store) {
    let rid = RunId(Ulid::new());
    let step = |s: &str, memo| StepRecord { run_id: rid, step: s.into(), name: s.into(), memo, seq: 0, at_ms: 1 };
    store.commit(Commit { ops: vec![WriteOp::SaveStep(step("a", json!({"data":1})))] }).await.unwrap();
    store
        .commit(Commit { ops: vec![WriteOp::SaveStep(step("b", json!({"data":2}))), WriteOp::SaveStep(step("a", json!({"data":99})))] })
        .await
        .unwrap();
    let steps = store.run_steps(rid).await.unwrap();
    assert_eq!(steps.iter().map(|s| (s.step.as_str(), s.seq)).collect::<Vec<_>>(), vec![("a", 1), ("b", 2)]);
    assert_eq!(steps[0].memo, json!({"data":1}), "a memoized step is never overwritten");
}

async fn revision_guard_conflicts(store: &dyn Store) {
    let ev = EventId(Ulid::new());
    let rid = RunId(Ulid::new());
    store.commit(Commit { ops: vec![WriteOp::InsertRun(run(rid, ev))] }).await.unwrap();
    let mut r = store.run(rid).await.unwrap().unwrap();
    r.state.status = RunStatus::Completed;
    r.output = Some(json!("done"));
    store.commit(Commit { ops: vec![WriteOp::UpdateRun { run: r.clone(), expected_rev: 0 }] }).await.unwrap();
    let marker = item(rid, 1);
    let err = store
        .commit(Commit { ops: vec![WriteOp::Enqueue(marker.clone()), WriteOp::UpdateRun { run: r, expected_rev: 0 }] })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
    assert!(store.run_items(rid).await.unwrap().is_empty(), "a failed commit leaves nothing behind");
    let stored = store.run(rid).await.unwrap().unwrap();
    assert_eq!(stored.status(), RunStatus::Completed);
    assert_eq!(stored.rev, 1);
}

async fn pauses_are_consumed_once(store: &dyn Store) {
    let rid = RunId(Ulid::new());
    let pause = Pause {
        id: Ulid::new().to_string(),
        run_id: rid,
        step: "w".into(),
        kind: PauseKind::WaitForEvent,
        event_name: Some("x/approve".into()),
        if_exp: None,
        correlation_id: Some("c-1".into()),
        trigger: json!({}),
        expires_at_ms: 10,
    };
    store.commit(Commit { ops: vec![WriteOp::InsertPause(pause.clone())] }).await.unwrap();
    assert_eq!(store.pauses_for_event("x/approve").await.unwrap(), vec![pause.clone()]);
    assert_eq!(store.pause_by_correlation("c-1").await.unwrap(), Some(pause.clone()));
    let guarded = |at| WriteOp::Guarded {
        otherwise: vec![],
        guard: Guard::ConsumePause(pause.id.clone()),
        then: vec![WriteOp::Enqueue(item(rid, at))],
    };
    let first = store.commit(Commit { ops: vec![guarded(1)] }).await.unwrap();
    let second = store.commit(Commit { ops: vec![guarded(2)] }).await.unwrap();
    assert_eq!(first.guards_passed, vec![true]);
    assert_eq!(second.guards_passed, vec![false]);
    assert_eq!(store.run_items(rid).await.unwrap().len(), 1);
    store.commit(Commit { ops: vec![WriteOp::ClearRunWork(rid)] }).await.unwrap();
}

/// A signal key is held by one pause: a second claim fails, a claim with
/// `replace` (or after the holder expired) passes and leaves the old pause
/// waiting without the key, and a consumed pause frees the key.
async fn signal_waits_hold_their_signal_once(store: &dyn Store) {
    let key = format!("sig:conf-{}", Ulid::new());
    let signal_pause = |rid: RunId, expires_at_ms: i64| Pause {
        id: Ulid::new().to_string(),
        run_id: rid,
        step: "s".into(),
        kind: PauseKind::Signal,
        event_name: None,
        if_exp: None,
        correlation_id: Some(key.clone()),
        trigger: serde_json::Value::Null,
        expires_at_ms,
    };
    let claim = |pause: &Pause, replace: bool, now_ms: i64| Commit {
        ops: vec![WriteOp::Guarded {
            guard: Guard::ClaimSignal { signal: key.clone(), replace, now_ms },
            then: vec![WriteOp::InsertPause(pause.clone())],
            otherwise: vec![WriteOp::Enqueue(item(pause.run_id, 5))],
        }],
    };
    let (a, b, c) = (RunId(Ulid::new()), RunId(Ulid::new()), RunId(Ulid::new()));
    let first = signal_pause(a, 1_000);
    assert_eq!(store.commit(claim(&first, false, 0)).await.unwrap().guards_passed, vec![true]);
    assert_eq!(store.pause_by_correlation(&key).await.unwrap(), Some(first.clone()));
    // A second wait that fails on conflict: its otherwise branch runs instead.
    let second = signal_pause(b, 1_000);
    assert_eq!(store.commit(claim(&second, false, 10)).await.unwrap().guards_passed, vec![false]);
    assert!(store.pauses_for_run(b).await.unwrap().is_empty());
    assert_eq!(store.run_items(b).await.unwrap().len(), 1);
    assert_eq!(store.pause_by_correlation(&key).await.unwrap().map(|p| p.run_id), Some(a));
    // Replace: the new wait holds the key; the old one still waits, keyless.
    assert_eq!(store.commit(claim(&second, true, 10)).await.unwrap().guards_passed, vec![true]);
    assert_eq!(store.pause_by_correlation(&key).await.unwrap().map(|p| p.run_id), Some(b));
    let old = store.pauses_for_run(a).await.unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].correlation_id, None);
    // A holder past its expiry does not block a new wait.
    let third = signal_pause(c, 5_000);
    assert_eq!(store.commit(claim(&third, false, 999)).await.unwrap().guards_passed, vec![false]);
    assert_eq!(store.commit(claim(&third, false, 1_001)).await.unwrap().guards_passed, vec![true]);
    assert_eq!(store.pause_by_correlation(&key).await.unwrap().map(|p| p.run_id), Some(c));
    // Consumed (the signal arrived): the key is free again.
    let consume = WriteOp::Guarded { guard: Guard::ConsumePause(third.id.clone()), then: vec![], otherwise: vec![] };
    assert_eq!(store.commit(Commit { ops: vec![consume] }).await.unwrap().guards_passed, vec![true]);
    assert_eq!(store.pause_by_correlation(&key).await.unwrap(), None);
    let again = signal_pause(a, 9_000);
    assert_eq!(store.commit(claim(&again, false, 2_000)).await.unwrap().guards_passed, vec![true]);
    for rid in [a, b, c] {
        store.commit(Commit { ops: vec![WriteOp::ClearRunWork(rid)] }).await.unwrap();
    }
    assert_eq!(store.pause_by_correlation(&key).await.unwrap(), None);
}

async fn unique_keys_expire(store: &dyn Store) {
    let key = |now| Guard::UniqueKey { scope: "fn".into(), key: "k".into(), now_ms: now, expires_at_ms: now + 100 };
    let c = |now| Commit { ops: vec![WriteOp::Guarded { otherwise: vec![], guard: key(now), then: vec![] }] };
    assert_eq!(store.commit(c(0)).await.unwrap().guards_passed, vec![true]);
    assert_eq!(store.commit(c(50)).await.unwrap().guards_passed, vec![false]);
    assert_eq!(store.commit(c(100)).await.unwrap().guards_passed, vec![true]);
}

async fn sync_archives_missing_functions(store: &dyn Store) {
    let f = |slug: &str| FunctionRecord {
        slug: FunctionSlug(slug.into()),
        app_id: "conf-app".into(),
        uuid: slug.into(),
        name: slug.into(),
        config: json!({"id": slug}),
        archived: false,
        updated_at_ms: 1,
    };
    let sync = |fs| Commit { ops: vec![WriteOp::SyncFunctions { app_id: "conf-app".into(), functions: fs }] };
    store.commit(sync(vec![f("conf-app-a"), f("conf-app-b")])).await.unwrap();
    store.commit(sync(vec![f("conf-app-a")])).await.unwrap();
    let active: Vec<String> =
        store.functions(false).await.unwrap().into_iter().filter(|x| x.app_id == "conf-app").map(|x| x.slug.0).collect();
    assert_eq!(active, vec!["conf-app-a".to_string()]);
    let all = store.functions(true).await.unwrap();
    assert!(all.iter().any(|x| x.slug.0 == "conf-app-b" && x.archived));
}

async fn queue_depth_counts_due_and_future_items(store: &dyn Store) {
    // Earlier checks left items behind: compare before and after.
    let now = 1_000_000_000;
    let before = store.queue_depth(now).await.unwrap();
    let run_id = RunId(Ulid::new());
    let mut ops = vec![WriteOp::InsertRun(run(run_id, EventId(Ulid::new())))];
    ops.extend([now - 5, now, now + 1, now + 60_000, now + 1].into_iter().map(|at| WriteOp::Enqueue(item(run_id, at))));
    store.commit(Commit { ops }).await.unwrap();
    let after = store.queue_depth(now).await.unwrap();
    assert_eq!((after.due - before.due, after.future - before.future), (2, 3), "{before:?} -> {after:?}");
    // A claimed item is still queued until it is acked.
    let claim = store.claim(now, 1).await.unwrap();
    assert_eq!(claim.items.len(), 1);
    assert_eq!(store.queue_depth(now).await.unwrap(), after);
    store.commit(Commit { ops: vec![WriteOp::Ack(claim.items[0].lease.clone())] }).await.unwrap();
    let acked = store.queue_depth(now).await.unwrap();
    assert_eq!(acked.due + acked.future, after.due + after.future - 1);
}

async fn call_samples_are_a_functions_recent_calls(store: &dyn Store) {
    let of = |function: &str, created_ms: u64| {
        let mut r = run(RunId(Ulid::from_parts(created_ms, rand_bits())), EventId(Ulid::new()));
        r.state.function = FunctionSlug(function.into());
        r
    };
    let line = |run_id: RunId, kind: &str, at_ms: i64, duration_ms: Option<i64>| {
        WriteOp::History(HistoryRecord {
            run_id,
            at_ms,
            kind: kind.into(),
            step: Some("step".into()),
            name: None,
            attempt: Some(0),
            duration_ms,
            detail: json!({}),
        })
    };
    let (recent, old, other) = (of("stats-f", 10_000), of("stats-f", 5_000), of("stats-g", 10_000));
    let ops = vec![
        WriteOp::InsertRun(recent.clone()),
        WriteOp::InsertRun(old.clone()),
        WriteOp::InsertRun(other.clone()),
        line(recent.id(), "call", 10_100, Some(5)),
        line(recent.id(), "call", 10_200, Some(7)),
        line(recent.id(), "sleep", 10_250, None),
        line(recent.id(), "call", 8_000, Some(9)),
        // Created before the window: left out even though its call is inside it.
        line(old.id(), "call", 10_300, Some(11)),
        line(other.id(), "call", 10_400, Some(13)),
    ];
    store.commit(Commit { ops }).await.unwrap();
    let got = store.call_samples("stats-f", 9_000, 0).await.unwrap();
    let want = vec![crate::CallSample { at_ms: 10_200, duration_ms: 7 }, crate::CallSample { at_ms: 10_100, duration_ms: 5 }];
    assert_eq!(got, want);
    assert_eq!(store.call_samples("stats-f", 9_000, 1).await.unwrap(), want[..1]);
    assert_eq!(store.call_samples("stats-g", 9_000, 0).await.unwrap(), vec![crate::CallSample { at_ms: 10_400, duration_ms: 13 }]);
    assert!(store.call_samples("stats-none", 0, 0).await.unwrap().is_empty());
}

/// Random low bits for a ULID made at a chosen time.
fn rand_bits() -> u128 {
    Ulid::new().random()
}
