//! The keys that verify client tokens besides the HS256 secrets: public keys in PEM
//! (`[[auth.keys]]`: RS256, ES256, EdDSA) and a JWKS URL (`[auth.jwks]`), as written in the
//! settings file and resolved. A key that cannot be read stops the server at start.

use super::SettingsError;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `[[auth.keys]]`: one public key, inline (`pem`) or in a file (`pem_file`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    /// The key id tokens name in their header (`kid`). Without one, the key is tried for
    /// tokens of its algorithm that name no `kid`.
    pub kid: Option<String>,
    /// `RS256`, `ES256` or `EdDSA`.
    pub alg: KeyAlgorithm,
    /// The public key in PEM (`-----BEGIN PUBLIC KEY-----`).
    pub pem: Option<String>,
    /// A file holding the public key in PEM.
    pub pem_file: Option<PathBuf>,
}

/// The asymmetric algorithms a public key may be configured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum KeyAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl KeyAlgorithm {
    /// The algorithm as jsonwebtoken names it.
    pub fn algorithm(self) -> Algorithm {
        match self {
            KeyAlgorithm::RS256 => Algorithm::RS256,
            KeyAlgorithm::ES256 => Algorithm::ES256,
            KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        }
    }

    /// The algorithm of `alg`, if it is one of these.
    pub fn of(alg: Algorithm) -> Option<Self> {
        match alg {
            Algorithm::RS256 => Some(KeyAlgorithm::RS256),
            Algorithm::ES256 => Some(KeyAlgorithm::ES256),
            Algorithm::EdDSA => Some(KeyAlgorithm::EdDSA),
            _ => None,
        }
    }

    fn decoding_key(self, pem: &[u8]) -> jsonwebtoken::errors::Result<DecodingKey> {
        match self {
            KeyAlgorithm::RS256 => DecodingKey::from_rsa_pem(pem),
            KeyAlgorithm::ES256 => DecodingKey::from_ec_pem(pem),
            KeyAlgorithm::EdDSA => DecodingKey::from_ed_pem(pem),
        }
    }
}

/// `[auth.jwks]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwksSettings {
    /// The JWKS URL: `https://`, or `http://` to a loopback address.
    pub url: Option<String>,
    /// Seconds a fetch may take, connection included.
    pub timeout_secs: Option<u64>,
    /// Seconds after a fetch before the set is refreshed in the background.
    pub max_age_secs: Option<u64>,
    /// The fewest seconds between two fetches (an unknown `kid` asks for one).
    pub refetch_interval_secs: Option<u64>,
}

/// A public key, parsed.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// The `kid` tokens name it by, if any.
    pub kid: Option<String>,
    /// Its algorithm.
    pub alg: KeyAlgorithm,
    /// The key.
    pub key: DecodingKey,
}

/// The JWKS endpoint and its cache's timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksConfig {
    /// The URL.
    pub url: String,
    /// A fetch's deadline, connection included. Default 5 s.
    pub timeout: Duration,
    /// Age of the cached set after which a handshake refreshes it in the background.
    /// Default 300 s.
    pub max_age: Duration,
    /// The shortest time between two fetches. Default 10 s.
    pub refetch_interval: Duration,
}

pub(super) fn load_key(index: usize, key: KeySettings) -> Result<PublicKey, SettingsError> {
    let name = match &key.kid {
        Some(kid) => format!("auth.keys[{index}] (kid {kid:?})"),
        None => format!("auth.keys[{index}]"),
    };
    let pem = match (key.pem, &key.pem_file) {
        (Some(pem), None) => pem.into_bytes(),
        (None, Some(path)) => std::fs::read(path).map_err(|source| SettingsError::Read {
            path: path.display().to_string(),
            source,
        })?,
        _ => {
            return Err(SettingsError::Invalid(format!(
                "{name}: give exactly one of `pem` and `pem_file`"
            )))
        }
    };
    let decoded = key.alg.decoding_key(&pem).map_err(|_| {
        SettingsError::Invalid(format!(
            "{name}: not a {:?} public key in PEM (-----BEGIN PUBLIC KEY-----)",
            key.alg
        ))
    })?;
    Ok(PublicKey {
        kid: key.kid,
        alg: key.alg,
        key: decoded,
    })
}

/// A JWKS URL must be `https://`, or `http://` to a loopback address (a proxy on the same
/// host, or a test): keys fetched in the clear could be anyone's.
pub(super) fn check_jwks_url(url: String) -> Result<String, SettingsError> {
    let parsed = reqwest::Url::parse(&url)
        .map_err(|_| SettingsError::Invalid("auth.jwks.url is not a URL".into()))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(SettingsError::Invalid(
            "auth.jwks.url must be https:// (http:// only to a loopback address)".into(),
        )),
    }
}
