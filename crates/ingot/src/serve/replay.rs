//! Replay protection (cloud mode): every signature that verified is
//! remembered until it expires, and a second request carrying it is refused.
//!
//! A signature (`X-Inngest-Signature: t=<unix s>&s=<hex mac>`) verifies for
//! [`MAX_SIGNATURE_AGE_SECS`] either side of `t`, so an entry is kept until
//! `t + MAX_SIGNATURE_AGE_SECS`, after which the signature is refused as stale
//! anyway. Entries are keyed by the MAC alone: it already covers `t` and the
//! body, and the header's other spellings (parameters reordered, `t` with
//! leading zeros, extra parameters) carry the same MAC.
//!
//! Memory is bounded: at most [`MAX_REMEMBERED`] entries (about 100 bytes
//! each); past that the entry closest to expiry is dropped first. Under more
//! than `MAX_REMEMBERED` signed requests per 10 minutes (about 160 a second,
//! per process) the oldest signatures can be accepted again before they
//! expire; above that rate this is best effort.
//!
//! Legitimate repeats: the engine signs every call with the current second,
//! and a call's body changes between calls of a run (`ctx.attempt`, the
//! memoized steps, `ctx.step_id` on Ingot, `qi_id`/`request_id` on Inngest),
//! so two genuine calls with one MAC are not expected. What can repeat is a
//! request with a fixed body sent twice within one second (two introspection
//! `GET`s, two trust probes, two sync `PUT`s), or an HTTP client resending a
//! call whose first copy did reach the app: the repeat gets a 401, which the
//! engine treats as a failed call and retries later with a fresh signature.
//!
//! The cache lives in the [`super::Handler`] (shared by its clones), so it
//! covers one process: replicas behind a load balancer each keep their own,
//! which is why calls are also bound to their function and step
//! (`super::claims`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::auth::MAX_SIGNATURE_AGE_SECS;

/// The most signatures remembered at once.
pub(crate) const MAX_REMEMBERED: usize = 100_000;

/// A MAC, as the cache keys it.
type Mac = [u8; 32];

/// Signatures seen recently, shared by every clone of a handler.
pub(crate) struct SeenSignatures {
    cap: usize,
    state: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// MAC → the unix second it expires at.
    expiry: HashMap<Mac, i64>,
    /// The same entries ordered by expiry, to evict.
    by_expiry: BTreeSet<(i64, Mac)>,
}

impl SeenSignatures {
    /// An empty cache holding at most `cap` signatures.
    pub(crate) fn new(cap: usize) -> SeenSignatures {
        SeenSignatures { cap: cap.max(1), state: Mutex::new(Seen::default()) }
    }

    /// Records the signature `header` (already verified) at `now_secs`;
    /// `false` if it was recorded before and has not expired.
    pub(crate) fn first_use(&self, header: &str, now_secs: i64) -> bool {
        let (t, mac) = parse(header);
        let expires = t.unwrap_or(now_secs).saturating_add(MAX_SIGNATURE_AGE_SECS);
        // A poisoned lock only means another request panicked while holding
        // it; the sets are still consistent (every change is two inserts or
        // two removes with no panic in between).
        let mut seen = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(&(at, old)) = seen.by_expiry.first() {
            if at >= now_secs {
                break;
            }
            seen.by_expiry.pop_first();
            seen.expiry.remove(&old);
        }
        if seen.expiry.contains_key(&mac) {
            return false;
        }
        while seen.expiry.len() >= self.cap {
            let Some((_, old)) = seen.by_expiry.pop_first() else { break };
            seen.expiry.remove(&old);
        }
        seen.expiry.insert(mac, expires);
        seen.by_expiry.insert((expires, mac));
        true
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().unwrap().expiry.len()
    }
}

/// The `t` and the MAC of a signature header, read as
/// `ingot_protocol::signature::verify` reads them (the last `t=` and `s=`
/// win). The MAC is its hex decoded; anything else is hashed, so it still
/// keys the cache.
fn parse(header: &str) -> (Option<i64>, Mac) {
    let mut t = None;
    let mut s = "";
    for part in header.split('&') {
        if let Some(v) = part.strip_prefix("t=") {
            t = v.parse::<i64>().ok();
        } else if let Some(v) = part.strip_prefix("s=") {
            s = v;
        }
    }
    let mut mac = [0u8; 32];
    if hex::decode_to_slice(s, &mut mac).is_err() {
        mac = Sha256::digest(s.as_bytes()).into();
    }
    (t, mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(t: i64, n: u8) -> String {
        format!("t={t}&s={}", hex::encode([n; 32]))
    }

    #[test]
    fn a_signature_is_accepted_once_within_its_window() {
        let seen = SeenSignatures::new(10);
        let now = 1_800_000_000;
        assert!(seen.first_use(&header(now, 1), now));
        assert!(!seen.first_use(&header(now, 1), now + 1));
        // Other spellings of the same header carry the same MAC.
        let s = hex::encode([1u8; 32]);
        assert!(!seen.first_use(&format!("s={s}&t={now}"), now + 2));
        assert!(!seen.first_use(&format!("t=0{now}&s={s}&x=1"), now + 2));
        assert!(seen.first_use(&header(now, 2), now + 2));
        // Still refused at the last second the signature verifies.
        assert!(!seen.first_use(&header(now, 1), now + MAX_SIGNATURE_AGE_SECS));
    }

    #[test]
    fn expired_entries_are_dropped() {
        let seen = SeenSignatures::new(10);
        let now = 1_800_000_000;
        for n in 0..5 {
            assert!(seen.first_use(&header(now, n), now));
        }
        assert_eq!(seen.len(), 5);
        // Past the window nothing is kept (and the signature would be stale).
        assert!(seen.first_use(&header(now + 1000, 9), now + 1000));
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn future_signatures_are_kept_until_they_expire() {
        let seen = SeenSignatures::new(10);
        let now = 1_800_000_000;
        let ahead = header(now + MAX_SIGNATURE_AGE_SECS, 3);
        assert!(seen.first_use(&ahead, now));
        assert!(!seen.first_use(&ahead, now + 2 * MAX_SIGNATURE_AGE_SECS - 1));
    }

    #[test]
    fn the_cap_bounds_memory_dropping_the_oldest_first() {
        let seen = SeenSignatures::new(3);
        let now = 1_800_000_000;
        for n in 0..3 {
            assert!(seen.first_use(&header(now + i64::from(n), n), now + 3));
        }
        assert!(seen.first_use(&header(now + 3, 3), now + 3));
        assert_eq!(seen.len(), 3);
        // The oldest (n = 0) was dropped; the newer ones are still refused.
        assert!(!seen.first_use(&header(now + 2, 2), now + 3));
        assert!(seen.first_use(&header(now, 0), now + 3));
    }
}
