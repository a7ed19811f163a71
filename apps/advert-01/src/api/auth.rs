//! The app API's bearer token: outside dev mode every `/api/*` route but
//! `/api/inngest` (which the engine reaches with signed requests) needs
//! `Authorization: Bearer <ADVERT_API_TOKEN>`. The token is compared as
//! SHA-256 digests in constant time, so neither its length nor how much of
//! a guess matches shows in the time an answer takes.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::ApiError;

/// The fewest characters a token may have.
pub const MIN_TOKEN_CHARS: usize = 16;

/// A token that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Too short to resist guessing.
    #[error("the token has {0} characters; at least {MIN_TOKEN_CHARS} are needed")]
    TooShort(usize),
    /// Spaces or other characters that do not fit in a header.
    #[error("the token may only hold visible ASCII characters (no spaces)")]
    Characters,
}

/// The API token, kept as its digest.
#[derive(Clone)]
pub struct ApiToken([u8; 32]);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(..)")
    }
}

impl ApiToken {
    /// Reads a token: at least [`MIN_TOKEN_CHARS`] visible ASCII characters.
    pub fn parse(s: &str) -> Result<ApiToken, TokenError> {
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::Characters);
        }
        if s.len() < MIN_TOKEN_CHARS {
            return Err(TokenError::TooShort(s.len()));
        }
        Ok(ApiToken(Sha256::digest(s.as_bytes()).into()))
    }

    /// Whether `presented` is the token, in time that does not depend on
    /// where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.iter().zip(self.0.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// Who may use the app API.
#[derive(Debug, Clone)]
pub enum ApiAccess {
    /// Anyone who can reach the port (dev mode without a token).
    Open,
    /// Requests carrying the token.
    Token(ApiToken),
}

/// The bearer token of a request, if it has one (`Bearer` in any case).
fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Middleware: lets a request through when `access` allows it, else 401.
pub async fn require(State(access): State<ApiAccess>, req: Request, next: Next) -> Response {
    match &access {
        ApiAccess::Open => next.run(req).await,
        ApiAccess::Token(token) => match bearer(&req) {
            Some(presented) if token.matches(presented) => next.run(req).await,
            Some(_) => ApiError::Unauthorized("the API token is wrong".into()).into_response(),
            None => ApiError::Unauthorized("send the API token as Authorization: Bearer <ADVERT_API_TOKEN>".into()).into_response(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_themselves() {
        let t = ApiToken::parse("a-long-enough-api-token").unwrap();
        assert!(t.matches("a-long-enough-api-token"));
        assert!(!t.matches("a-long-enough-api-tokeN"));
        assert!(!t.matches("a-long-enough-api-token "));
        assert!(!t.matches(""));
        assert!(matches!(ApiToken::parse("short"), Err(TokenError::TooShort(5))));
        assert!(matches!(ApiToken::parse("has a space in the middle"), Err(TokenError::Characters)));
        assert_eq!(format!("{t:?}"), "ApiToken(..)");
    }
}
