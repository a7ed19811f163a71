//! Bytes as an `X-Inngest-Signature` header, a signing key and a body:
//! `verify` (as the engine and the Rust SDK's verifier call it, over the
//! JCS form of a JSON body), `normalize_key` and `hashed_key`, and a
//! sign-then-verify round trip.
#![no_main]

use ingot_protocol::signature::{hashed_key, normalize_key, sign, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    // header \n key \n body
    let mut parts = s.splitn(3, '\n');
    let header = parts.next().unwrap_or("");
    let key = parts.next().unwrap_or("signkey-test-abcd");
    let body = parts.next().unwrap_or("{}").as_bytes();
    let canonical = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => serde_jcs::to_vec(&v).unwrap_or_else(|_| body.to_vec()),
        Err(_) => body.to_vec(),
    };
    for now in [0, 1_700_000_000, i64::MIN, i64::MAX] {
        for max_age in [300, 0, -1, i64::MAX] {
            let _ = verify(&canonical, header, key, now, max_age);
        }
    }
    let bare = normalize_key(key);
    assert!(key.ends_with(bare));
    if let Some(h) = hashed_key(key) {
        assert!(h.len() >= 64);
    }
    for t in [0, 1_700_000_000, i64::MIN, i64::MAX] {
        let sig = sign(&canonical, key, t);
        assert!(verify(&canonical, &sig, key, t, 0), "a fresh signature verifies");
        let _ = verify(&canonical, &format!("{sig}&{header}"), key, t, 300);
    }
});
