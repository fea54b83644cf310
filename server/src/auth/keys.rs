//! [`KeyRing`]: the keys a token may be signed with, chosen by the token's header.
//!
//! The algorithm in the header decides the family first, so a key is only ever used with its
//! own algorithm (an RSA public key is never taken for an HMAC secret):
//!
//! - `HS256`: each configured secret, the current one first, then those of a rotation;
//! - `RS256`, `ES256`, `EdDSA` with a `kid`: the configured public key with that `kid`, else
//!   the JWKS key with that `kid` (fetched again if unknown, see [`Jwks`]); none:
//!   `unknown_key`;
//! - the same without a `kid`: every configured public key of that algorithm, in order (JWKS
//!   keys are only found by `kid`);
//! - anything else, or an algorithm without a key: `unsupported`.

use super::jwks::Jwks;
use super::TokenError;
use crate::settings::{AuthConfig, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Header};
use std::sync::Arc;

/// A configured public key.
#[derive(Debug, Clone)]
struct StaticKey {
    kid: Option<String>,
    alg: KeyAlgorithm,
    key: Arc<DecodingKey>,
}

/// The server's keys.
#[derive(Debug)]
pub struct KeyRing {
    secrets: Vec<Arc<DecodingKey>>,
    keys: Vec<StaticKey>,
    jwks: Option<Arc<Jwks>>,
}

impl KeyRing {
    /// The keys of `config`, and its JWKS cache if any.
    pub fn new(config: &AuthConfig, jwks: Option<Arc<Jwks>>) -> Self {
        let secrets = config
            .secret
            .iter()
            .chain(&config.previous_secrets)
            .map(|s| Arc::new(DecodingKey::from_secret(s.expose().as_bytes())))
            .collect();
        let keys = config
            .keys
            .iter()
            .map(|k| StaticKey {
                kid: k.kid.clone(),
                alg: k.alg,
                key: Arc::new(k.key.clone()),
            })
            .collect();
        KeyRing {
            secrets,
            keys,
            jwks,
        }
    }

    /// The keys a token with `header` may have been signed with, to try in order.
    pub async fn candidates(&self, header: &Header) -> Result<Vec<Arc<DecodingKey>>, TokenError> {
        if header.alg == Algorithm::HS256 {
            return match self.secrets.is_empty() {
                true => Err(TokenError::Unsupported),
                false => Ok(self.secrets.clone()),
            };
        }
        let alg = KeyAlgorithm::of(header.alg).ok_or(TokenError::Unsupported)?;
        let Some(kid) = &header.kid else {
            let keys: Vec<_> = self
                .keys
                .iter()
                .filter(|k| k.alg == alg)
                .map(|k| k.key.clone())
                .collect();
            return match (keys.is_empty(), &self.jwks) {
                (false, _) => Ok(keys),
                (true, Some(_)) => Err(TokenError::UnknownKey),
                (true, None) => Err(TokenError::Unsupported),
            };
        };
        let (key_alg, key) = match self.keys.iter().find(|k| k.kid.as_ref() == Some(kid)) {
            Some(k) => (k.alg, k.key.clone()),
            None => {
                let jwks = self.jwks.as_ref().ok_or(TokenError::UnknownKey)?;
                let found = jwks.key(kid).await.ok_or(TokenError::UnknownKey)?;
                (found.alg, found.key)
            }
        };
        // The key named is not a key of the token's algorithm: it did not sign this token.
        if key_alg != alg {
            return Err(TokenError::BadSignature);
        }
        Ok(vec![key])
    }
}
