//! What only a shared PostgreSQL has: several stores (nodes) on one
//! database, leases in rows, wake-ups between nodes, grouped commits that
//! fail one by one, concurrent migrators, reconnects, and unreadable rows.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingot_core::{CallTarget, EventId, FunctionSlug, RunId, RunState};
use ingot_store::*;
use ingot_store_postgres::{PgOptions, PgStore};
use ulid::Ulid;

fn item(run_id: RunId, at: i64) -> QueueItem {
    QueueItem::new(run_id, Work::Call { target: CallTarget::Discovery, attempt: 0 }, at)
}

fn run(id: RunId) -> RunRecord {
    RunRecord {
        state: RunState::new(id, FunctionSlug("nodes-f".into()), 3),
        event_ids: vec![EventId(Ulid::new())],
        output: None,
        started_at_ms: 1,
        ended_at_ms: None,
        correlation_id: None,
        rev: 0,
    }
}

async fn node(uri: &str, lease: Duration) -> Arc<PgStore> {
    PgStore::connect(uri, PgOptions { max_conns: 4, lease, node_id: None }).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_never_hold_the_same_item() {
    common::with_fresh_db(|uri| async move {
        let (a, b) = (node(&uri, Duration::from_secs(30)).await, node(&uri, Duration::from_secs(30)).await);
        let rid = RunId(Ulid::new());
        let items: Vec<QueueItem> = (0..300).map(|i| item(rid, i)).collect();
        a.commit(Commit { ops: items.iter().cloned().map(WriteOp::Enqueue).collect() }).await.unwrap();
        let drain = |s: Arc<PgStore>| {
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let c = s.claim(1_000, 7).await.unwrap();
                    if c.items.is_empty() {
                        return got;
                    }
                    got.extend(c.items.into_iter().map(|i| i.lease));
                }
            })
        };
        let (ga, gb) = (drain(a.clone()), drain(b.clone()));
        let (ga, gb) = (ga.await.unwrap(), gb.await.unwrap());
        let (sa, sb): (HashSet<_>, HashSet<_>) = (ga.iter().map(|l| l.item.clone()).collect(), gb.iter().map(|l| l.item.clone()).collect());
        assert_eq!(sa.len(), ga.len(), "a node never gets an item twice");
        assert!(sa.is_disjoint(&sb), "no item is held by both nodes");
        assert_eq!(sa.len() + sb.len(), 300, "every due item is claimed by one node");
        // Held items stay held: neither node gets anything more.
        assert!(a.claim(1_000, 10).await.unwrap().items.is_empty());
        assert!(b.claim(1_000, 10).await.unwrap().items.is_empty());
        // A release hands the item to whichever node claims next.
        let first = ga.first().or(gb.first()).unwrap().clone();
        let (holder, other) = if sa.contains(&first.item) { (&a, &b) } else { (&b, &a) };
        holder.release(&first).await.unwrap();
        let c = other.claim(1_000, 10).await.unwrap();
        assert_eq!(c.items.iter().map(|i| i.id.clone()).collect::<Vec<_>>(), vec![first.item]);
    })
    .await;
}

/// Real time passes here on purpose: leases are measured on the
/// database's clock, which a paused tokio clock does not move.
#[tokio::test]
async fn a_live_node_keeps_its_lease_and_a_dead_nodes_lease_runs_out() {
    common::with_fresh_db(|uri| async move {
        let lease = Duration::from_millis(300);
        let (a, b) = (node(&uri, lease).await, node(&uri, lease).await);
        let rid = RunId(Ulid::new());
        let it = item(rid, 0);
        a.commit(Commit { ops: vec![WriteOp::Enqueue(it.clone())] }).await.unwrap();
        assert_eq!(a.claim(10, 10).await.unwrap().items.len(), 1);
        // A is alive and renews: for several lease lengths B never gets the item,
        // and the claim tells B when the lease would run out.
        let until = Instant::now() + lease * 4;
        while Instant::now() < until {
            let c = b.claim(10, 10).await.unwrap();
            assert!(c.items.is_empty(), "a renewed lease is not taken over");
            let next = c.next_at_ms.expect("a leased due item says when to look again");
            assert!((10..=10 + 300).contains(&next), "{next}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A dies without releasing: B gets the item once A's lease has run out.
        drop(a);
        let died = Instant::now();
        let deadline = died + Duration::from_secs(10);
        let got = loop {
            let c = b.claim(10, 10).await.unwrap();
            if let Some(i) = c.items.into_iter().next() {
                break i;
            }
            assert!(Instant::now() < deadline, "the dead node's item was never claimed again");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(got.id, it.id);
        // An ack (from the new holder) removes it for good.
        b.commit(Commit { ops: vec![WriteOp::Ack(got.lease)] }).await.unwrap();
        assert!(b.run_items(rid).await.unwrap().is_empty());
    })
    .await;
}

/// A node cut off from the database past its lease (simulated by ending the
/// lease in the row) loses the item to another node: its ack and its release
/// fail with `LeaseLost` and change nothing; the new holder's ack works.
#[tokio::test]
async fn a_lost_leases_ack_fails_and_the_new_holders_works() {
    common::with_fresh_db(|uri| async move {
        let (a, b) = (node(&uri, Duration::from_secs(30)).await, node(&uri, Duration::from_secs(30)).await);
        let rid = RunId(Ulid::new());
        let it = item(rid, 0);
        a.commit(Commit { ops: vec![WriteOp::Enqueue(it.clone())] }).await.unwrap();
        let stale = a.claim(10, 10).await.unwrap().items.remove(0).lease;
        common::raw(&uri).await.execute("UPDATE queue SET lease_until_ms = 0", &[]).await.unwrap();
        let taken = b.claim(10, 10).await.unwrap().items.remove(0).lease;
        assert_eq!(taken.item, it.id);
        let ack = a.commit(Commit { ops: vec![WriteOp::Ack(stale.clone()), WriteOp::InsertRun(run(rid))] }).await;
        assert!(matches!(ack, Err(StoreError::LeaseLost(_))), "{ack:?}");
        assert!(a.run(rid).await.unwrap().is_none(), "the failed commit changed nothing");
        assert!(matches!(a.release(&stale).await, Err(StoreError::LeaseLost(_))));
        assert_eq!(b.run_items(rid).await.unwrap().len(), 1, "the item is still B's");
        b.commit(Commit { ops: vec![WriteOp::Ack(taken)] }).await.unwrap();
        assert!(b.run_items(rid).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_commit_that_adds_work_wakes_the_other_node() {
    common::with_fresh_db(|uri| async move {
        let (a, b) = (node(&uri, Duration::from_secs(30)).await, node(&uri, Duration::from_secs(30)).await);
        let wake = b.work_notify();
        // The listener fires once when it starts listening: from then on it hears A.
        tokio::time::timeout(Duration::from_secs(10), wake.notified()).await.expect("B's listener started");
        a.commit(Commit { ops: vec![WriteOp::InsertSession(SessionRecord { id: "s".into(), created_at_ms: 0, expires_at_ms: 1 })] })
            .await
            .unwrap();
        let rid = RunId(Ulid::new());
        a.commit(Commit { ops: vec![WriteOp::Enqueue(item(rid, 0))] }).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), wake.notified()).await.expect("A's enqueue woke B");
        let c = b.claim(10, 10).await.unwrap();
        assert_eq!(c.items.len(), 1, "B claims what woke it");
    })
    .await;
}

/// Concurrent commits are grouped; one that fails its revision guard fails
/// alone and leaves nothing behind, the others apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_commit_in_a_group_fails_alone() {
    common::with_fresh_db(|uri| async move {
        let store = node(&uri, Duration::from_secs(30)).await;
        let stale = RunId(Ulid::new());
        store.commit(Commit { ops: vec![WriteOp::InsertRun(run(stale))] }).await.unwrap();
        let mut bumped = run(stale);
        bumped.output = Some(serde_json::json!(1));
        store.commit(Commit { ops: vec![WriteOp::UpdateRun { run: bumped.clone(), expected_rev: 0 }] }).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let store = store.clone();
            let bumped = bumped.clone();
            tasks.push(tokio::spawn(async move {
                let rid = RunId(Ulid::new());
                let mut ops = vec![WriteOp::InsertRun(run(rid)), WriteOp::Enqueue(item(rid, 5))];
                let fails = i % 7 == 3;
                if fails {
                    ops.push(WriteOp::UpdateRun { run: bumped, expected_rev: 0 });
                }
                (rid, fails, store.commit(Commit { ops }).await)
            }));
        }
        for t in tasks {
            let (rid, fails, outcome) = t.await.unwrap();
            if fails {
                assert!(matches!(outcome, Err(StoreError::Conflict(_))), "{outcome:?}");
                assert!(store.run(rid).await.unwrap().is_none(), "a failed commit leaves no run");
                assert!(store.run_items(rid).await.unwrap().is_empty(), "and no queue item");
            } else {
                outcome.unwrap();
                assert!(store.run(rid).await.unwrap().is_some());
                assert_eq!(store.run_items(rid).await.unwrap().len(), 1);
            }
        }
        assert_eq!(store.run(stale).await.unwrap().unwrap().rev, 1, "the stale updates changed nothing");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    common::with_fresh_db(|uri| async move {
        let starts: Vec<_> = (0..4)
            .map(|_| {
                let uri = uri.clone();
                tokio::spawn(async move { PgStore::connect(&uri, PgOptions::default()).await.map(|_| ()) })
            })
            .collect();
        for s in starts {
            s.await.unwrap().unwrap();
        }
        let raw = common::raw(&uri).await;
        let versions: Vec<i64> =
            raw.query("SELECT version FROM ingot_migrations ORDER BY version", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
        assert_eq!(versions, (1..=common::migration_count() as i64).collect::<Vec<_>>(), "each migration applied once");
    })
    .await;
}

#[tokio::test]
async fn a_database_newer_than_this_ingot_is_refused() {
    common::with_fresh_db(|uri| async move {
        drop(PgStore::connect(&uri, PgOptions::default()).await.unwrap());
        let raw = common::raw(&uri).await;
        raw.execute("INSERT INTO ingot_migrations (version, name) VALUES (99, '0099_future.sql')", &[]).await.unwrap();
        let err = PgStore::connect(&uri, PgOptions::default()).await.map(|_| ()).unwrap_err();
        assert!(matches!(&err, StoreError::Unavailable(m) if m.contains("newer")), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn a_bad_uri_or_an_unreachable_server_is_an_error() {
    let err = PgStore::connect("postgres://[::1", PgOptions::default()).await.map(|_| ()).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    // Port 1 on loopback: nothing listens there.
    let err = PgStore::connect("postgres://postgres@127.0.0.1:1/x", PgOptions::default()).await.map(|_| ()).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

/// Rows no store wrote are read back as errors, never as panics, and one
/// unreadable queue item does not stop the others from being claimed.
#[tokio::test]
async fn unreadable_rows_are_corrupt_errors() {
    common::with_fresh_db(|uri| async move {
        let store = node(&uri, Duration::from_secs(30)).await;
        let raw = common::raw(&uri).await;
        let (bad_run, bad_status, good) = (RunId(Ulid::new()), RunId(Ulid::new()), RunId(Ulid::new()));
        raw.execute(
            "INSERT INTO runs (id, function, status, state, event_ids, started_at_ms, rev) VALUES ($1, 'f', 'Running', 'not json', '{}', 0, 0)",
            &[&bad_run.to_string()],
        )
        .await
        .unwrap();
        raw.execute(
            "INSERT INTO runs (id, function, status, state, event_ids, started_at_ms, rev)
             VALUES ($1, 'f', 'Sideways', '{\"function\":\"f\"}', '{not-an-event-id}', 0, 0)",
            &[&bad_status.to_string()],
        )
        .await
        .unwrap();
        for id in [bad_run, bad_status] {
            let err = store.run(id).await.unwrap_err();
            assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        }
        raw.execute(
            "INSERT INTO queue (id, run_id, work, available_at_ms) VALUES ('bad-1', $1, '{\"t\":\"nonsense\"}', 1)",
            &[&good.to_string()],
        )
        .await
        .unwrap();
        store.commit(Commit { ops: vec![WriteOp::Enqueue(item(good, 2))] }).await.unwrap();
        let err = store.claim(10, 10).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        let c = store.claim(10, 10).await.unwrap();
        assert_eq!(c.items.len(), 1, "the readable item is still claimable");
        assert_eq!(c.items[0].run_id, good);
    })
    .await;
}

/// When the server drops the store's connections, the next commit may fail
/// with `Unavailable`, the one after it succeeds on a new connection, and
/// wake-ups from the other node arrive again.
#[tokio::test]
async fn the_store_reconnects_after_its_connections_are_killed() {
    common::with_fresh_db(|uri| async move {
        let (a, b) = (node(&uri, Duration::from_secs(30)).await, node(&uri, Duration::from_secs(30)).await);
        let wake = b.work_notify();
        tokio::time::timeout(Duration::from_secs(10), wake.notified()).await.expect("B's listener started");
        let raw = common::raw(&uri).await;
        raw.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
        let rid = RunId(Ulid::new());
        let commit = || Commit { ops: vec![WriteOp::InsertRun(run(RunId(Ulid::new())))] };
        if let Err(e) = a.commit(commit()).await {
            assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        }
        a.commit(commit()).await.expect("a commit after a reconnect");
        // B's listener reconnects (and fires once for what it may have missed).
        tokio::time::timeout(Duration::from_secs(10), wake.notified()).await.expect("B's listener reconnected");
        a.commit(Commit { ops: vec![WriteOp::Enqueue(item(rid, 0))] }).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), wake.notified()).await.expect("A's enqueue woke B after the reconnect");
        // Reads recover too (the pool drops its dead connections).
        let mut ok = false;
        for _ in 0..3 {
            if b.run_items(rid).await.is_ok_and(|items| items.len() == 1) {
                ok = true;
                break;
            }
        }
        assert!(ok, "reads work again");
    })
    .await;
}

/// One concurrency limit across two nodes: a slot taken on one node counts
/// on the other until the call's ack frees it, and a dead node's slot is
/// freed when its lease runs out.
#[tokio::test]
async fn one_concurrency_limit_holds_across_two_nodes() {
    common::with_fresh_db(|uri| async move {
        let lease = Duration::from_millis(400);
        let (a, b) = (node(&uri, Duration::from_secs(30)).await, node(&uri, Duration::from_secs(30)).await);
        let key = |k: &str| vec![ingot_core::flow::ConcurrencyKey { key: k.into(), limit: 1 }];
        let rid = RunId(Ulid::new());
        a.commit(Commit { ops: vec![WriteOp::Enqueue(item(rid, 0))] }).await.unwrap();
        let first = a.claim(10, 1).await.unwrap().items.remove(0).lease;
        b.commit(Commit { ops: vec![WriteOp::Enqueue(item(rid, 1))] }).await.unwrap();
        let second = b.claim(10, 1).await.unwrap().items.remove(0).lease;
        assert!(a.take_slots(&first, &key("c:fn:x")).await.unwrap(), "the first call takes the slot");
        assert!(!b.take_slots(&second, &key("c:fn:x")).await.unwrap(), "the other node's call waits");
        assert!(b.take_slots(&second, &key("c:fn:other")).await.unwrap(), "another key is free");
        a.commit(Commit { ops: vec![WriteOp::Ack(first)] }).await.unwrap();
        assert!(b.take_slots(&second, &key("c:fn:x")).await.unwrap(), "the ack freed the slot");
        b.commit(Commit { ops: vec![WriteOp::Ack(second)] }).await.unwrap();

        // A node that dies holding a slot: the slot counts until its lease ends.
        let dying = node(&uri, lease).await;
        dying.commit(Commit { ops: vec![WriteOp::Enqueue(item(rid, 2))] }).await.unwrap();
        let held = dying.claim(10, 1).await.unwrap().items.remove(0).lease;
        assert!(dying.take_slots(&held, &key("c:fn:y")).await.unwrap());
        b.commit(Commit { ops: vec![WriteOp::Enqueue(item(rid, 3))] }).await.unwrap();
        let waiting = loop {
            let c = b.claim(10, 10).await.unwrap();
            if let Some(i) = c.items.into_iter().next() {
                break i.lease;
            }
        };
        assert!(!b.take_slots(&waiting, &key("c:fn:y")).await.unwrap(), "a live holder's slot counts");
        drop(dying);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !b.take_slots(&waiting, &key("c:fn:y")).await.unwrap() {
            assert!(Instant::now() < deadline, "a dead node's slot was never freed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A slot never outlives its lease: a lost lease takes no slot.
        assert!(matches!(a.take_slots(&waiting, &key("c:fn:z")).await, Err(StoreError::LeaseLost(_))));
    })
    .await;
}

/// A cron tick fires once across nodes: every node queues the next tick of
/// every cron trigger it knows (at start and after each sync), as one item
/// with the same dedupe key, so the shared queue holds it once and one node
/// claims it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_tick_is_queued_and_claimed_once_across_nodes() {
    common::with_fresh_db(|uri| async move {
        let (a, b) = (node(&uri, Duration::from_secs(30)).await, node(&uri, Duration::from_secs(30)).await);
        let tick = |at: i64| {
            let work = Work::Cron { function: "nightly".into(), cron: "0 3 * * *".into(), scheduled_ms: at };
            QueueItem { dedupe: Some(ingot_core::keys::cron_tick("nightly", "0 3 * * *")), ..QueueItem::new(RunId(Ulid::new()), work, at) }
        };
        let (qa, qb) = (a.clone(), b.clone());
        let (ra, rb) = tokio::join!(
            qa.commit(Commit { ops: vec![WriteOp::Enqueue(tick(100))] }),
            qb.commit(Commit { ops: vec![WriteOp::Enqueue(tick(100))] })
        );
        ra.unwrap();
        rb.unwrap();
        b.commit(Commit { ops: vec![WriteOp::Enqueue(tick(100))] }).await.unwrap();
        let (ca, cb) = (a.claim(1_000, 10).await.unwrap().items, b.claim(1_000, 10).await.unwrap().items);
        assert_eq!(ca.len() + cb.len(), 1, "one tick in the shared queue, claimed by one node: {ca:?} {cb:?}");
        // Once it fired (acked by its holder), the next tick is queued again, once.
        let (holder, fired) = match ca.into_iter().next() {
            Some(c) => (&a, c),
            None => (&b, cb.into_iter().next().unwrap()),
        };
        holder.commit(Commit { ops: vec![WriteOp::Ack(fired.lease), WriteOp::Enqueue(tick(200))] }).await.unwrap();
        a.commit(Commit { ops: vec![WriteOp::Enqueue(tick(200))] }).await.unwrap();
        let (ca, cb) = tokio::join!(a.claim(1_000, 10), b.claim(1_000, 10));
        assert_eq!(ca.unwrap().items.len() + cb.unwrap().items.len(), 1, "the next tick, once");
    })
    .await;
}
