//! Request signing: `X-Inngest-Signature: t=<unix s>&s=<hex hmac>`.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Strips a `signkey-<env>-` prefix: the HMAC key is the rest, as UTF-8 text.
pub fn normalize_key(key: &str) -> &str {
    if let Some(rest) = key.strip_prefix("signkey-") {
        if let Some(idx) = rest.find('-') {
            let env = &rest[..idx];
            if !env.is_empty() && env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return &rest[idx + 1..];
            }
        }
    }
    key
}

/// The signature header value for `body` at `unix_secs`.
pub fn sign(body: &[u8], key: &str, unix_secs: i64) -> String {
    let ts = unix_secs.to_string();
    let mut mac = HmacSha256::new_from_slice(normalize_key(key).as_bytes()).expect("hmac takes any key length");
    mac.update(body);
    mac.update(ts.as_bytes());
    format!("t={ts}&s={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature header against a body; `max_age_secs` bounds clock skew.
/// Any header is safe: a timestamp far from now (even `i64::MIN`) is refused
/// without overflow, and the MAC is compared in constant time.
pub fn verify(body: &[u8], header: &str, key: &str, now_secs: i64, max_age_secs: i64) -> bool {
    let mut t = None;
    let mut s = None;
    for part in header.split('&') {
        if let Some(v) = part.strip_prefix("t=") {
            t = v.parse::<i64>().ok();
        } else if let Some(v) = part.strip_prefix("s=") {
            s = Some(v);
        }
    }
    let (Some(t), Some(s)) = (t, s) else {
        return false;
    };
    let skew = i128::from(now_secs) - i128::from(t);
    if skew.abs() > i128::from(max_age_secs) {
        return false;
    }
    let Ok(sig) = hex::decode(s) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(normalize_key(key).as_bytes()).expect("hmac takes any key length");
    mac.update(body);
    mac.update(t.to_string().as_bytes());
    mac.verify_slice(&sig).is_ok()
}

/// The hashed signing key SDKs send as a Bearer token: prefix kept,
/// the hex key decoded and hashed with SHA-256.
pub fn hashed_key(key: &str) -> Option<String> {
    let bare = normalize_key(key);
    let prefix = &key[..key.len() - bare.len()];
    let raw = hex::decode(bare).ok()?;
    Some(format!("{prefix}{}", hex::encode(Sha256::digest(raw))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_keys_like_the_sdks() {
        assert_eq!(
            hashed_key("signkey-prod-12345678").unwrap(),
            "signkey-prod-b2ed992186a5cb19f6668aade821f502c1d00970dfd0e35128d51bac4649916c"
        );
    }

    #[test]
    fn sign_and_verify_round_trip() {
        let sig = sign(b"{}", "signkey-test-abcd", 1_700_000_000);
        assert!(verify(b"{}", &sig, "signkey-test-abcd", 1_700_000_100, 300));
        assert!(!verify(b"{}", &sig, "signkey-test-abce", 1_700_000_100, 300));
        assert!(!verify(b"{}", &sig, "signkey-test-abcd", 1_700_001_000, 300));
        assert!(!verify(b"{ }", &sig, "signkey-test-abcd", 1_700_000_100, 300));
        // The hex may be upper case; a truncated or odd one is refused.
        let upper = format!("t=1700000000&s={}", sig.split("s=").nth(1).unwrap().to_uppercase());
        assert!(verify(b"{}", &upper, "signkey-test-abcd", 1_700_000_100, 300));
        assert!(!verify(b"{}", &sig[..sig.len() - 2], "signkey-test-abcd", 1_700_000_100, 300));
        assert!(!verify(b"{}", &sig[..sig.len() - 1], "signkey-test-abcd", 1_700_000_100, 300));
    }

    #[test]
    fn extreme_timestamps_are_refused_without_overflow() {
        for t in [i64::MIN, i64::MIN + 1, -1, i64::MAX] {
            let h = sign(b"{}", "k", t);
            for now in [i64::MIN, 0, i64::MAX] {
                let ok = verify(b"{}", &h, "k", now, 300);
                assert_eq!(ok, (i128::from(now) - i128::from(t)).abs() <= 300, "t={t} now={now}");
            }
            assert!(verify(b"{}", &h, "k", t, i64::MAX));
            assert!(verify(b"{}", &h, "k", t, 0));
            assert!(!verify(b"{}", &h, "k", t, -1));
        }
        assert!(!verify(b"{}", "t=99999999999999999999&s=00", "k", 0, i64::MAX));
        assert!(!verify(b"{}", "t=&s=", "k", 0, i64::MAX));
        assert!(!verify(b"{}", "", "k", 0, i64::MAX));
    }
}
