//! [`TokenKeys`]: HS256 client tokens signed with one secret, for `switchboard token`, the
//! demo page and tests. Applications sign their tokens in their own backend with any JWT
//! library; the server only verifies ([`super::Verifier`]).

use super::claims::Claims;
use super::unix_now;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::time::Duration;

/// Signs client tokens with one HS256 secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

impl TokenKeys {
    /// Keys for `secret`.
    pub fn new(secret: &str) -> Self {
        TokenKeys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
        }
    }

    /// A token for `user`, issued now, valid for `ttl`, limited to `rooms` if given.
    pub fn mint(&self, user: &str, rooms: Option<Vec<String>>, ttl: Duration) -> String {
        let iat = unix_now();
        self.sign(&Claims {
            sub: user.to_owned(),
            exp: iat + ttl.as_secs(),
            iat: Some(iat),
            rooms,
            ..Claims::default()
        })
    }

    /// A token with exactly these claims.
    pub fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }
}
