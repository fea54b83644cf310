//! Client authentication: HS256 JSON Web Tokens naming the user, an expiry and, optionally,
//! the rooms the client may join; and the backend API key.
//!
//! A token travels in the WebSocket handshake, as `Authorization: Bearer <token>` or as the
//! `token` query parameter (browsers cannot set headers on a WebSocket). A missing, malformed,
//! forged or expired token refuses the handshake with 401.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchboard::RoomAccess;

/// What a client token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Rooms the client may join: exact names, or prefixes ending in `*`. Absent: any room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<String>>,
}

impl Claims {
    /// The room access these claims grant.
    pub fn access(&self) -> RoomAccess {
        match &self.rooms {
            None => RoomAccess::Any,
            Some(patterns) => RoomAccess::Only(patterns.clone()),
        }
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// No token in the request.
    #[error("no token: pass `Authorization: Bearer <token>` or `?token=<token>`")]
    Missing,
    /// Past its `exp`.
    #[error("the token has expired")]
    Expired,
    /// Bad signature, bad encoding or missing claims.
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Signs and checks client tokens with one secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TokenKeys {
    /// Keys for `secret`.
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        TokenKeys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// A token for `user`, valid for `ttl`, limited to `rooms` if given.
    pub fn mint(&self, user: &str, rooms: Option<Vec<String>>, ttl: Duration) -> String {
        let iat = unix_now();
        let claims = Claims {
            sub: user.to_owned(),
            exp: iat + ttl.as_secs(),
            iat,
            rooms,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// Check a token and return its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid(e.to_string()),
            })?;
        if data.claims.sub.is_empty() {
            return Err(TokenError::Invalid("empty `sub`".into()));
        }
        Ok(data.claims)
    }
}

/// Compare two secrets in time that does not depend on where they differ.
pub fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "a-test-secret-of-some-length";

    #[test]
    fn a_minted_token_verifies_with_its_claims() {
        let keys = TokenKeys::new(SECRET);
        let token = keys.mint(
            "alice",
            Some(vec!["team:*".into()]),
            Duration::from_secs(60),
        );
        let claims = keys.verify(&token).unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.rooms, Some(vec!["team:*".to_owned()]));
        assert!(claims.access().allows(&"team:red".into()));
        assert!(!claims.access().allows(&"lobby".into()));
    }

    #[test]
    fn forged_expired_and_garbage_tokens_are_refused() {
        let keys = TokenKeys::new(SECRET);
        let forged =
            TokenKeys::new("another-secret-entirely").mint("alice", None, Duration::from_secs(60));
        assert!(matches!(keys.verify(&forged), Err(TokenError::Invalid(_))));
        let expired = keys.mint("alice", None, Duration::ZERO);
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(keys.verify(&expired), Err(TokenError::Expired));
        assert!(matches!(
            keys.verify("not.a.token"),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn secrets_compare_by_content() {
        assert!(same_secret("key", "key"));
        assert!(!same_secret("key", "kez"));
        assert!(!same_secret("key", "key2"));
    }
}
