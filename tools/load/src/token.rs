//! The tokens the load tool's clients present: HS256 JWTs naming their user, signed with the
//! secret the server checks (`--token-secret`).

use crate::now_us;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
}

/// A token for `user`, valid from now for `ttl_secs`.
pub fn sign(key: &EncodingKey, user: &str, ttl_secs: u64) -> Result<String, String> {
    let iat = now_us() / 1_000_000;
    let claims = Claims {
        sub: user,
        iat,
        exp: iat + ttl_secs,
    };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, key)
        .map_err(|e| format!("cannot sign a token: {e}"))
}
