//! Concurrency at claim time: a call whose run counts against a full key is
//! parked (still leased, holding no worker) and admitted, in queue order,
//! when a call on that key finishes. The counting is the core's
//! `ConcurrencyBook`; this adds the waiting line.
//!
//! In-memory, because the SQLite store serves one engine process; a
//! PostgreSQL deployment needs the counts in the database.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use ingot_core::flow::{ConcurrencyBook, ConcurrencyKey};
use ingot_store::{Claimed, QueueItemId};

/// Most items parked at once; past it the dispatcher stops claiming.
pub const MAX_PARKED: usize = 20_000;
/// Most items parked behind one key. Past it a call is deferred (put back in
/// the queue for later) instead, so one function's backlog (concurrency 1 and
/// 20,000 events) never fills the line and stalls every other function.
pub const MAX_PARKED_PER_KEY: usize = 500;

/// What [`Limiter::admit`] did with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The keys are taken: make the call.
    Acquired,
    /// Parked: it is admitted when a call on its keys ends.
    Parked,
    /// The line behind one of its keys is full; `waiting` are in it.
    Deferred { waiting: usize },
}

struct Parked {
    item: Claimed,
    keys: Vec<ConcurrencyKey>,
}

#[derive(Default)]
struct Inner {
    book: ConcurrencyBook,
    /// Parked items by (available_at, id).
    parked: BTreeMap<(i64, QueueItemId), Parked>,
    /// For each key, the parked items waiting on it.
    by_key: HashMap<String, BTreeMap<(i64, QueueItemId), ()>>,
}

/// The waiting line in front of concurrency limits.
#[derive(Default)]
pub struct Limiter {
    inner: Mutex<Inner>,
}

impl Limiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the keys now, or parks `item` and returns false.
    pub fn acquire_or_park(&self, item: &Claimed, keys: &[ConcurrencyKey]) -> bool {
        self.admit(item, keys) == Admission::Acquired
    }

    /// Takes the keys now, parks `item`, or (its line is full) defers it.
    pub fn admit(&self, item: &Claimed, keys: &[ConcurrencyKey]) -> Admission {
        let mut inner = self.lock();
        // Earlier parked items on the same keys go first.
        let line = keys.iter().map(|k| inner.by_key.get(&k.key).map_or(0, |m| m.len())).max().unwrap_or(0);
        if line == 0 && inner.book.try_acquire(keys) {
            return Admission::Acquired;
        }
        if line >= MAX_PARKED_PER_KEY {
            return Admission::Deferred { waiting: line };
        }
        let at = (item.available_at_ms, item.id.clone());
        for k in keys {
            inner.by_key.entry(k.key.clone()).or_default().insert(at.clone(), ());
        }
        inner.parked.insert(at, Parked { item: item.clone(), keys: keys.to_vec() });
        Admission::Parked
    }

    /// Gives back `keys` and returns parked items admitted in their place
    /// (their keys are already taken for them).
    pub fn release(&self, keys: &[ConcurrencyKey]) -> Vec<(Claimed, Vec<ConcurrencyKey>)> {
        let mut inner = self.lock();
        inner.book.release(keys);
        let mut admitted = Vec::new();
        for k in keys {
            let candidates: Vec<(i64, QueueItemId)> = inner.by_key.get(&k.key).map(|m| m.keys().cloned().collect()).unwrap_or_default();
            for at in candidates {
                let Some(p) = inner.parked.get(&at) else { continue };
                let pk = p.keys.clone();
                if !inner.book.try_acquire(&pk) {
                    if inner.book.in_flight(&k.key) >= k.limit {
                        break;
                    }
                    continue;
                }
                let p = inner.parked.remove(&at).expect("present");
                for key in &p.keys {
                    if let Some(m) = inner.by_key.get_mut(&key.key) {
                        m.remove(&at);
                        if m.is_empty() {
                            inner.by_key.remove(&key.key);
                        }
                    }
                }
                admitted.push((p.item, p.keys));
            }
        }
        admitted
    }

    pub fn parked(&self) -> usize {
        self.lock().parked.len()
    }

    /// The largest in-flight count seen is not tracked here; this is the current one.
    pub fn in_flight(&self, key: &str) -> u32 {
        self.lock().book.in_flight(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingot_core::{CallTarget, RunId};
    use ingot_store::{Lease, QueueItem, Work};

    fn item(at: i64) -> Claimed {
        let id = QueueItemId(format!("{at:05}"));
        let item = QueueItem {
            id: id.clone(),
            run_id: RunId(ulid::Ulid::new()),
            work: Work::Call { target: CallTarget::Discovery, attempt: 0 },
            available_at_ms: at,
            dedupe: None,
        };
        Claimed { item, lease: Lease { item: id, token: 1 }, run_rev: None }
    }

    #[test]
    fn parks_over_the_limit_and_admits_in_order() {
        let l = Limiter::default();
        let k = vec![ConcurrencyKey { key: "k".into(), limit: 1 }];
        assert!(l.acquire_or_park(&item(1), &k));
        assert!(!l.acquire_or_park(&item(3), &k));
        assert!(!l.acquire_or_park(&item(2), &k));
        assert_eq!(l.parked(), 2);
        let next = l.release(&k);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].0.available_at_ms, 2, "the earlier item goes first");
        assert_eq!(l.in_flight("k"), 1);
        let next = l.release(&k);
        assert_eq!(next[0].0.available_at_ms, 3);
        assert!(l.release(&k).is_empty());
        assert_eq!(l.in_flight("k"), 0);
    }

    #[test]
    fn a_full_line_defers_without_touching_other_keys() {
        let l = Limiter::default();
        let a = vec![ConcurrencyKey { key: "a".into(), limit: 1 }];
        let b = vec![ConcurrencyKey { key: "b".into(), limit: 1 }];
        assert_eq!(l.admit(&item(0), &a), Admission::Acquired);
        for i in 0..MAX_PARKED_PER_KEY {
            assert_eq!(l.admit(&item(1 + i as i64), &a), Admission::Parked);
        }
        assert_eq!(l.admit(&item(100_000), &a), Admission::Deferred { waiting: MAX_PARKED_PER_KEY });
        assert_eq!(l.parked(), MAX_PARKED_PER_KEY);
        assert_eq!(l.admit(&item(100_001), &b), Admission::Acquired, "another key is not held up");
    }
}
