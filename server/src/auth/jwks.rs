//! [`Jwks`]: the token issuer's public keys, fetched from its JWKS URL and cached.
//!
//! The set is fetched at start, refreshed in the background once it is older than
//! `max_age`, and fetched again when a token names a key (`kid`) the cache does not hold, as
//! happens when the issuer starts signing with a new key. A fetch has a deadline (connection
//! included), follows no redirect, and reads at most [`MAX_JWKS_BYTES`]. Past the one at
//! start, at most one fetch starts per `refetch_interval` whatever asks for it, so a flood of
//! tokens naming unknown keys costs the issuer one request. A failed fetch, or a set without one usable key, keeps
//! the cached set. Usable keys are RSA (RS256), EC P-256 (ES256) and Ed25519 (EdDSA) keys
//! with a `kid`, not marked for encryption; at most [`MAX_JWKS_KEYS`] are kept.

use crate::settings::{JwksConfig, KeyAlgorithm};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm as JwkAlgorithm, PublicKeyUse,
};
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// The largest JWKS document read.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The most keys kept from one JWKS document.
pub const MAX_JWKS_KEYS: usize = 64;

/// A key of the set.
#[derive(Debug, Clone)]
pub struct JwksKey {
    /// What it verifies.
    pub alg: KeyAlgorithm,
    /// The key.
    pub key: Arc<DecodingKey>,
}

/// The cached set.
#[derive(Debug, Default)]
struct Cache {
    keys: HashMap<String, JwksKey>,
    fetched: Option<Instant>,
}

/// The JWKS of the token issuer, cached. Share it in an [`Arc`].
#[derive(Debug)]
pub struct Jwks {
    config: JwksConfig,
    client: reqwest::Client,
    cache: RwLock<Cache>,
    /// When the last fetch started; held while one runs, so that fetches never overlap.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
}

/// Why a fetch failed (logged; the cached set stays).
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("request failed: {0}")]
    Request(#[from] reqwest::Error),
    #[error("answered {0}")]
    Status(reqwest::StatusCode),
    #[error("the document is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("not a JWKS document: {0}")]
    Json(#[from] serde_json::Error),
    #[error("no usable key (RS256, ES256 or EdDSA, with a kid)")]
    NoUsableKey,
}

impl Jwks {
    /// A cache for `config`, empty until the first fetch.
    pub fn new(config: &JwksConfig) -> Arc<Self> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a TLS-capable HTTP client with the system's roots");
        Arc::new(Jwks {
            config: config.clone(),
            client,
            cache: RwLock::new(Cache::default()),
            last_attempt: tokio::sync::Mutex::new(None),
        })
    }

    /// The key named `kid`. Not cached: fetch the set again (unless one fetch already started
    /// within the refetch interval), then look again. Cached but old: refresh in the
    /// background and answer from the cache.
    pub async fn key(self: &Arc<Self>, kid: &str) -> Option<JwksKey> {
        if let Some(key) = self.cached(kid) {
            self.refresh_if_old();
            return Some(key);
        }
        self.refetch().await;
        self.cached(kid)
    }

    fn cached(&self, kid: &str) -> Option<JwksKey> {
        let cache = self.cache.read().expect("not poisoned");
        cache.keys.get(kid).cloned()
    }

    fn refresh_if_old(self: &Arc<Self>) {
        let old = {
            let cache = self.cache.read().expect("not poisoned");
            cache
                .fetched
                .is_none_or(|at| at.elapsed() >= self.config.max_age)
        };
        // One background refresh at a time, and none within the refetch interval: handshakes
        // that find the set old while a fetch runs spawn nothing.
        let due = self
            .last_attempt
            .try_lock()
            .is_ok_and(|last| last.is_none_or(|at| at.elapsed() >= self.config.refetch_interval));
        if old && due {
            let jwks = Arc::clone(self);
            tokio::spawn(async move { jwks.refetch().await });
        }
    }

    /// Fetch the set at start: not counted against the refetch interval, so that if the
    /// issuer cannot be reached now, the first token naming a key asks again at once.
    pub async fn prime(&self) -> bool {
        let _fetching = self.last_attempt.lock().await;
        self.install().await
    }

    /// Fetch the set now, unless a fetch started within the refetch interval (then wait for
    /// it if it is still running). True if this call fetched a usable set.
    pub async fn refetch(&self) -> bool {
        let mut last = self.last_attempt.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.config.refetch_interval) {
            return false;
        }
        *last = Some(Instant::now());
        self.install().await
    }

    /// Fetch the set and cache it; on failure keep the cached one.
    async fn install(&self) -> bool {
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(url = %self.config.url, keys = keys.len(), "JWKS fetched");
                let mut cache = self.cache.write().expect("not poisoned");
                *cache = Cache {
                    keys,
                    fetched: Some(Instant::now()),
                };
                true
            }
            Err(e) => {
                tracing::warn!(url = %self.config.url, error = %e, "JWKS fetch failed; the cached keys stay");
                false
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, JwksKey>, FetchError> {
        let mut response = self.client.get(&self.config.url).send().await?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let keys = usable_keys(&body)?;
        if keys.is_empty() {
            return Err(FetchError::NoUsableKey);
        }
        Ok(keys)
    }
}

/// A JWKS document whose keys are read one by one: a key of a kind this server does not know
/// is skipped, not a reason to refuse the others.
#[derive(Deserialize)]
struct Document {
    keys: Vec<serde_json::Value>,
}

/// The usable keys of a JWKS document, by `kid`.
fn usable_keys(body: &[u8]) -> Result<HashMap<String, JwksKey>, serde_json::Error> {
    let document: Document = serde_json::from_slice(body)?;
    let keys = document
        .keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let alg = algorithm(&jwk)?;
            let key = DecodingKey::from_jwk(&jwk).ok()?;
            Some((
                kid,
                JwksKey {
                    alg,
                    key: Arc::new(key),
                },
            ))
        })
        .take(MAX_JWKS_KEYS)
        .collect();
    Ok(keys)
}

/// What a JWK verifies: its `alg` if it names one, else what its key type implies. Keys for
/// encryption, and of other algorithms, verify nothing here.
fn algorithm(jwk: &Jwk) -> Option<KeyAlgorithm> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyAlgorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            KeyAlgorithm::ES256
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            KeyAlgorithm::EdDSA
        }
        _ => return None,
    };
    let named = match jwk.common.key_algorithm {
        None => return Some(implied),
        Some(JwkAlgorithm::RS256) => KeyAlgorithm::RS256,
        Some(JwkAlgorithm::ES256) => KeyAlgorithm::ES256,
        Some(JwkAlgorithm::EdDSA) => KeyAlgorithm::EdDSA,
        Some(_) => return None,
    };
    (named == implied).then_some(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    fn document(keys: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap()
    }

    #[test]
    fn keys_without_kid_for_encryption_or_of_unknown_kinds_are_skipped() {
        let body = document(serde_json::json!([
            {"kty": "RSA", "kid": "sig", "n": RSA_N, "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": RSA_N, "e": "AQAB"},
            {"kty": "RSA", "n": RSA_N, "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": RSA_N, "e": "AQAB"},
            {"kty": "RSA", "kid": "mislabelled", "alg": "ES256", "n": RSA_N, "e": "AQAB"},
            {"kty": "XYZ", "kid": "future", "q": "?"},
            {"kty": "oct", "kid": "shared", "k": "c2VjcmV0"},
        ]));
        let keys = usable_keys(&body).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["sig"]);
        assert_eq!(keys["sig"].alg, KeyAlgorithm::RS256);
        assert!(usable_keys(b"{\"keys\": 3}").is_err());
        assert!(usable_keys(b"[]").is_err());
    }

    #[test]
    fn at_most_the_bound_of_keys_is_kept() {
        let many: Vec<_> = (0..MAX_JWKS_KEYS + 10)
            .map(|i| serde_json::json!({"kty": "RSA", "kid": format!("k{i}"), "n": RSA_N, "e": "AQAB"}))
            .collect();
        let keys = usable_keys(&document(serde_json::Value::Array(many))).unwrap();
        assert_eq!(keys.len(), MAX_JWKS_KEYS);
    }
}
