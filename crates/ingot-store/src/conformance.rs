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
    steps_are_memoized_once_in_order(store).await;
    revision_guard_conflicts(store).await;
    pauses_are_consumed_once(store).await;
    unique_keys_expire(store).await;
    sync_archives_missing_functions(store).await;
    throttle_delays_and_rate_limit_skips(store).await;
    debounce_keeps_the_newest_event(store).await;
    batches_fill_and_are_taken_once(store).await;
    singletons_hold_while_running(store).await;
    retention_deletes_only_old_finished_work(store).await;
    paused_functions_are_kept(store).await;
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
    store.commit(Commit { ops: vec![WriteOp::Purge { before_ms: 100, limit: 1000 }] }).await.unwrap();
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
    store.release(&due.id).await;
    let after_release = store.claim(200, 10).await.unwrap();
    assert!(after_release.items.iter().any(|i| i.id == due.id), "a released item is claimable");
    store.commit(Commit { ops: vec![WriteOp::Ack(due.id.clone())] }).await.unwrap();
    let after_ack = store.claim(200, 10).await.unwrap();
    assert!(!after_ack.items.iter().any(|i| i.id == due.id), "an acked item is gone");
    for i in after_ack.items {
        store.release(&i.id).await;
    }
    store.commit(Commit { ops: vec![WriteOp::ClearRunWork(rid)] }).await.unwrap();
    assert!(store.run_items(rid).await.unwrap().is_empty());
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
