//! Signing a delivery: HMAC-SHA256 over `timestamp + "." + body` with each signing secret,
//! sent as `X-Switchboard-Timestamp: <unix seconds>` and
//! `X-Switchboard-Signature: v1=<hex>[,v1=<hex>...]` (one per secret, the current one first,
//! so that a backend verifies with whichever it holds while secrets rotate).
//!
//! `docs/API.md` ("Verifying a webhook") gives the backend's side, with a replay window.

use crate::credentials::Secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt::Write;

/// The header carrying the signing time, in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-switchboard-timestamp";
/// The header carrying the signatures.
pub const SIGNATURE_HEADER: &str = "x-switchboard-signature";

/// The `X-Switchboard-Signature` value for `body` signed at `timestamp` (Unix seconds) with
/// each of `secrets`.
pub fn sign(secrets: &[Secret], timestamp: u64, body: &[u8]) -> String {
    let mut header = String::new();
    for secret in secrets {
        // HMAC takes a key of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC accepts any key length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        if !header.is_empty() {
            header.push(',');
        }
        header.push_str("v1=");
        for byte in mac.finalize().into_bytes() {
            let _ = write!(header, "{byte:02x}");
        }
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_timestamp_dot_body_with_every_secret_in_order() {
        // Computed independently: python3 -c "import hmac, hashlib;
        // print(hmac.new(b'key', b'1.x', hashlib.sha256).hexdigest())"
        assert_eq!(
            sign(&[Secret::new("key")], 1, b"x"),
            "v1=fc4913c41a7bf793267e2a384f3261c9436ec2cd097bd745e7b0d99113f510ec"
        );
        let two = sign(&[Secret::new("new"), Secret::new("old")], 7, b"{}");
        let parts: Vec<&str> = two.split(',').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&[Secret::new("new")], 7, b"{}"));
        assert_eq!(parts[1], sign(&[Secret::new("old")], 7, b"{}"));
    }
}
