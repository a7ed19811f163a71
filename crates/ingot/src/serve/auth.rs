//! Request signatures (protocol §4): verifying the engine's
//! `X-Inngest-Signature` over the JCS-canonical body with a 5-minute window
//! and the fallback key, and signing replies with the key that verified.

use std::borrow::Cow;

use axum::http::HeaderMap;
use ingot_protocol::signature;
use serde_json::Value;

use crate::client::Client;

/// How far a signature's timestamp may be from now, either way (as JS).
pub(crate) const MAX_SIGNATURE_AGE_SECS: i64 = 5 * 60;

/// The bytes a request signature covers: the JCS form of a JSON body (the
/// engine signs canonical JSON; a proxy may have re-serialized it), else the
/// raw bytes.
pub(crate) fn canonical_body(body: &[u8]) -> Cow<'_, [u8]> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Cow::Borrowed(&[]);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => serde_jcs::to_vec(&v).map_or(Cow::Borrowed(body), Cow::Owned),
        Err(_) => Cow::Borrowed(body),
    }
}

/// Checks the request's signature against the signing key, then the
/// fallback key. Returns the key that verified it.
pub(crate) fn verify<'c>(client: &'c Client, headers: &HeaderMap, body: &[u8], now_secs: i64) -> Option<&'c str> {
    let header = headers.get("x-inngest-signature").and_then(|v| v.to_str().ok())?;
    let canonical = canonical_body(body);
    [client.inner.signing_key.as_deref(), client.inner.signing_key_fallback.as_deref()]
        .into_iter()
        .flatten()
        .find(|key| signature::verify(&canonical, header, key, now_secs, MAX_SIGNATURE_AGE_SECS))
}

/// The `X-Inngest-Signature` of a reply body.
pub(crate) fn sign(body: &[u8], key: &str, now_secs: i64) -> String {
    signature::sign(body, key, now_secs)
}
