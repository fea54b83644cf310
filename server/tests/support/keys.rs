//! Signing keys for the tests (`tests/keys/test-only-*.pem`, never used anywhere else) and
//! tokens signed with them by jsonwebtoken, as an application's backend would sign them.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the test keys are.
pub const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims for `sub`, issued now, expiring in `ttl` seconds.
pub fn claims(sub: &str, ttl: u64) -> Value {
    let now = now();
    json!({"sub": sub, "iat": now, "exp": now + ttl})
}

/// `claims` with the fields of `extra` added or replaced.
pub fn with(mut claims: Value, extra: Value) -> Value {
    let fields = extra.as_object().expect("an object").clone();
    claims.as_object_mut().expect("an object").extend(fields);
    claims
}

/// A test key pair of one algorithm.
pub struct TestKey {
    pub alg: Algorithm,
    /// `rsa-a`, `rsa-b`, `ec` or `ed25519`: the files' names.
    pub name: &'static str,
    encoding: EncodingKey,
}

impl TestKey {
    fn load(name: &'static str, alg: Algorithm) -> Self {
        let pem = std::fs::read(format!("{KEYS}/test-only-{name}-private.pem")).unwrap();
        let encoding = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
            other => panic!("no test key for {other:?}"),
        }
        .unwrap();
        TestKey {
            alg,
            name,
            encoding,
        }
    }

    pub fn rsa_a() -> Self {
        Self::load("rsa-a", Algorithm::RS256)
    }

    pub fn rsa_b() -> Self {
        Self::load("rsa-b", Algorithm::RS256)
    }

    pub fn ec() -> Self {
        Self::load("ec", Algorithm::ES256)
    }

    pub fn ed25519() -> Self {
        Self::load("ed25519", Algorithm::EdDSA)
    }

    /// The public key's file.
    pub fn public_pem_file(&self) -> String {
        format!("{KEYS}/test-only-{}-public.pem", self.name)
    }

    /// The public key in PEM.
    pub fn public_pem(&self) -> String {
        std::fs::read_to_string(self.public_pem_file()).unwrap()
    }

    /// `claims` signed with this key, naming `kid` in the header if given.
    pub fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        self.sign_as(self.alg, kid, claims)
    }

    /// `claims` signed with this key under the header algorithm `alg`.
    pub fn sign_as(&self, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    /// The public key as a JWK with `kid`.
    pub fn jwk(&self, kid: &str) -> Value {
        let mut jwk = match self.alg {
            Algorithm::EdDSA => {
                // The SubjectPublicKeyInfo of an Ed25519 key ends with the 32-byte key.
                let der = self.public_der();
                let x = URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]);
                json!({"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA"})
            }
            alg => {
                serde_json::to_value(Jwk::from_encoding_key(&self.encoding, alg).unwrap()).unwrap()
            }
        };
        jwk["kid"] = kid.into();
        jwk
    }

    fn public_der(&self) -> Vec<u8> {
        let body: String = self
            .public_pem()
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        STANDARD.decode(body).unwrap()
    }
}

/// A JWKS document of these keys.
pub fn jwks(keys: &[(&TestKey, &str)]) -> Value {
    json!({"keys": keys.iter().map(|(key, kid)| key.jwk(kid)).collect::<Vec<_>>()})
}
