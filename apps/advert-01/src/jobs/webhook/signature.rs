//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256
//! of "{webhook-id}.{webhook-timestamp}.{body}">`, keyed with the bytes of a
//! `whsec_<base64>` secret.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of Standard Webhooks secrets.
pub const SECRET_PREFIX: &str = "whsec_";
/// The fewest secret bytes accepted.
pub const MIN_SECRET_BYTES: usize = 16;

/// A secret that cannot sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not base64 after the `whsec_` prefix.
    #[error("expected whsec_ followed by base64: {0}")]
    NotBase64(String),
    /// Too short to be safe.
    #[error("the secret has {0} bytes; at least {MIN_SECRET_BYTES} are needed")]
    TooShort(usize),
}

/// A webhook signing secret.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

impl WebhookSecret {
    /// Reads `whsec_<base64>` (the prefix may be left out).
    pub fn parse(s: &str) -> Result<WebhookSecret, SecretError> {
        let b64 = s.trim().strip_prefix(SECRET_PREFIX).unwrap_or(s.trim());
        let bytes = STANDARD.decode(b64).map_err(|e| SecretError::NotBase64(e.to_string()))?;
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort(bytes.len()));
        }
        Ok(WebhookSecret(bytes))
    }

    /// The `webhook-signature` value for a message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks spec's reference libraries.
    #[test]
    fn matches_the_reference_example() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn bad_secrets_are_refused() {
        assert!(matches!(WebhookSecret::parse("whsec_!!"), Err(SecretError::NotBase64(_))));
        assert_eq!(WebhookSecret::parse("whsec_c2hvcnQ="), Err(SecretError::TooShort(5)));
    }
}
