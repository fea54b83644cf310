//! Client authentication: HS256 JSON Web Tokens naming the user, an expiry and, optionally,
//! the rooms the client may join; and the backend API key.
//!
//! A token travels in the WebSocket handshake, as `Authorization: Bearer <token>` or as the
//! `token` query parameter (browsers cannot set headers on a WebSocket). A token that is
//! missing, malformed, forged, expired, not yet valid, carries a `crit` header (no extension is
//! understood here, RFC 7515 §4.1.11) or names a user id that is empty or holds control
//! characters refuses the handshake with 401 and a stable [`TokenError::reason`]; what the
//! JSON or base64 parser said never reaches the client.

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

/// Why a token was refused. The message is fixed per variant: it never quotes the token or a
/// parser's error.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// No token in the request.
    #[error("no token: pass `Authorization: Bearer <token>` or `?token=<token>`")]
    Missing,
    /// Not a JWT this server can read: not three base64url parts, a header or claims that are
    /// not JSON, `sub` or `exp` missing or of the wrong type.
    #[error("the token is not a well-formed JWT with the claims `sub` and `exp`")]
    Malformed,
    /// A header this server does not implement: `crit`, or an algorithm other than HS256.
    #[error("the token uses an algorithm or a critical header extension this server does not support (HS256 only, no `crit`)")]
    Unsupported,
    /// Not signed with this server's secret.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// Past its `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before its `nbf`.
    #[error("the token is not valid yet (`nbf` is in the future)")]
    NotYetValid,
    /// `sub` is empty or holds control characters.
    #[error("the token's `sub` is empty or contains control characters")]
    InvalidSubject,
    /// An audience or issuer this server does not accept.
    #[error("the token's audience or issuer is not accepted here")]
    InvalidClaims,
}

impl TokenError {
    /// The stable reason code answered with the 401 (`docs/API.md`).
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::Missing => "missing",
            TokenError::Malformed => "malformed",
            TokenError::Unsupported => "unsupported",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::InvalidSubject => "invalid_subject",
            TokenError::InvalidClaims => "invalid_claims",
        }
    }

    fn of(error: &jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind;
        match error.kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidAlgorithmName
            | ErrorKind::MissingAlgorithm => TokenError::Unsupported,
            ErrorKind::InvalidAudience | ErrorKind::InvalidIssuer | ErrorKind::InvalidSubject => {
                TokenError::InvalidClaims
            }
            _ => TokenError::Malformed,
        }
    }
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
        validation.validate_nbf = true;
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
        let header = jsonwebtoken::decode_header(token).map_err(|e| TokenError::of(&e))?;
        if header.crit.is_some() {
            return Err(TokenError::Unsupported);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| TokenError::of(&e))?;
        let sub = &data.claims.sub;
        // A user id reaches logs and metrics labels: no line breaks, escapes or NULs in it.
        if sub.is_empty() || sub.chars().any(char::is_control) {
            return Err(TokenError::InvalidSubject);
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

    /// Sign `claims` with `secret` under `header`.
    fn sign(header: &Header, claims: &serde_json::Value, secret: &str) -> String {
        jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    #[test]
    fn each_refusal_has_its_stable_reason() {
        let keys = TokenKeys::new(SECRET);
        let now = unix_now();
        let hs256 = Header::new(Algorithm::HS256);
        let claims = |sub: &str| serde_json::json!({"sub": sub, "exp": now + 60, "iat": now});
        let forged = sign(&hs256, &claims("alice"), "another-secret-entirely");
        let expired = serde_json::json!({"sub": "a", "exp": now - 5, "iat": now - 60});
        let expired = sign(&hs256, &expired, SECRET);
        let early = serde_json::json!({"sub": "a", "exp": now + 60, "iat": now, "nbf": now + 30});
        let mut critical = hs256.clone();
        critical.crit = Some(vec!["exp".into()]);
        let hs512 = Header::new(Algorithm::HS512);
        let cases = [
            (forged, TokenError::BadSignature),
            (expired, TokenError::Expired),
            (sign(&hs256, &early, SECRET), TokenError::NotYetValid),
            (
                sign(&critical, &claims("alice"), SECRET),
                TokenError::Unsupported,
            ),
            (
                sign(&hs512, &claims("alice"), SECRET),
                TokenError::Unsupported,
            ),
            (
                sign(&hs256, &claims(""), SECRET),
                TokenError::InvalidSubject,
            ),
            (
                sign(&hs256, &claims("al\u{0}ice"), SECRET),
                TokenError::InvalidSubject,
            ),
            (
                sign(&hs256, &claims("al\nice"), SECRET),
                TokenError::InvalidSubject,
            ),
            (
                sign(&hs256, &claims("al\u{9b}ice"), SECRET),
                TokenError::InvalidSubject,
            ),
            (
                sign(
                    &hs256,
                    &serde_json::json!({"exp": now + 60, "iat": now}),
                    SECRET,
                ),
                TokenError::Malformed,
            ),
            ("not.a.token".to_owned(), TokenError::Malformed),
            ("garbage".to_owned(), TokenError::Malformed),
        ];
        for (token, expected) in cases {
            assert_eq!(keys.verify(&token), Err(expected), "{token}");
        }
        assert_eq!(
            keys.verify(&sign(&hs256, &claims("zoë"), SECRET))
                .unwrap()
                .sub,
            "zoë"
        );
    }

    #[test]
    fn secrets_compare_by_content() {
        assert!(same_secret("key", "key"));
        assert!(!same_secret("key", "kez"));
        assert!(!same_secret("key", "key2"));
    }
}
