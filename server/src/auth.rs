//! Client authentication: who may open a WebSocket, as whom, and with which grants; and the
//! backend API key.
//!
//! A client proves who it is with a signed token (a JWT: HS256 with the server's secrets, or
//! RS256, ES256 or EdDSA with public keys from the settings or a JWKS URL) or a one-time
//! ticket its backend obtained from `POST /api/tickets`. The [`Authenticator`] turns either
//! into an [`Identity`]: the user, the credential's expiry and id, and the join and publish
//! grants. A credential that is missing, malformed, forged, expired, not yet valid, too long
//! lived, for another audience or issuer, revoked, or a ticket that is unknown or used
//! refuses the handshake with 401 and a stable [`TokenError::reason`]; what a parser said
//! never reaches the client.
//!
//! - [`claims`]: the claims, the grants, the identity;
//! - [`verifier`]: signature, time and claim checks;
//! - [`keys`], [`jwks`]: the keys a token may be signed with, and the JWKS cache;
//! - [`revocation`]: users and tokens refused until their tokens expire;
//! - [`tickets`]: one-time tickets;
//! - [`mint`]: HS256 tokens for development and tests.

pub mod claims;
pub mod jwks;
pub mod keys;
pub mod mint;
pub mod revocation;
pub mod tickets;
pub mod verifier;

pub use claims::{Claims, Identity, JoinGrant, PublishGrant};
pub use mint::TokenKeys;
pub use revocation::{Revocations, RevokeError};
pub use tickets::{TicketError, TicketGrant, Tickets};
pub use verifier::Verifier;

use crate::settings::AuthConfig;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use switchboard_redis::Bridge;
use switchboard_tokio::Tokio;

/// Why a credential was refused. The message is fixed per variant: it never quotes the token
/// or a parser's error.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// No credential in the request.
    #[error(
        "no credential: pass `Authorization: Bearer <token>`, the subprotocol `token.<token>` \
         beside `switchboard.v1`, `?token=<token>` or `?ticket=<ticket>`"
    )]
    Missing,
    /// Not a JWT this server can read: not three base64url parts, a header or claims that are
    /// not JSON, `sub` or `exp` missing or of the wrong type.
    #[error("the token is not a well-formed JWT with the claims `sub` and `exp`")]
    Malformed,
    /// A header this server does not implement: `crit`, or an algorithm it has no key for.
    #[error(
        "the token uses an algorithm this server has no key for, or a critical header \
         extension (`crit`) it does not support"
    )]
    Unsupported,
    /// The token names a key (`kid`) the server does not have, even after refreshing its
    /// JWKS; or names none where one is needed.
    #[error("the token's key (`kid`) is not one of the server's keys")]
    UnknownKey,
    /// Not signed with any of this server's keys.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// Past its `exp` (and the leeway).
    #[error("the token has expired")]
    Expired,
    /// Before its `nbf`, or issued (`iat`) in the future, beyond the leeway.
    #[error("the token is not valid yet (`nbf` or `iat` is in the future)")]
    NotYetValid,
    /// Lives longer than the server accepts (`exp - iat`, or `exp - now` without `iat`).
    #[error("the token lives longer than the server accepts (auth.max_token_lifetime_secs)")]
    LifetimeTooLong,
    /// `sub` is empty or holds control characters.
    #[error("the token's `sub` is empty or contains control characters")]
    InvalidSubject,
    /// An audience or issuer this server does not accept (or none where one is required),
    /// a `rooms` or `publish` claim past its bounds, or a `jti` that is too long.
    #[error(
        "the token's audience or issuer is not accepted here, or its `rooms`, `publish` or \
         `jti` claim is out of bounds"
    )]
    InvalidClaims,
    /// The user's tokens issued until a revocation, or this token's id, were revoked.
    #[error("the token has been revoked")]
    Revoked,
    /// A ticket that is unknown, already used or expired.
    #[error("the ticket is unknown, already used or expired")]
    InvalidTicket,
}

impl TokenError {
    /// The stable reason code answered with the 401 (`docs/API.md`).
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::Missing => "missing",
            TokenError::Malformed => "malformed",
            TokenError::Unsupported => "unsupported",
            TokenError::UnknownKey => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::LifetimeTooLong => "lifetime_too_long",
            TokenError::InvalidSubject => "invalid_subject",
            TokenError::InvalidClaims => "invalid_claims",
            TokenError::Revoked => "revoked",
            TokenError::InvalidTicket => "invalid_ticket",
        }
    }
}

/// How a client presented itself in its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// A signed token (header, subprotocol or query).
    Token(&'a str),
    /// A one-time ticket (`?ticket=`).
    Ticket(&'a str),
}

/// Verifies credentials and applies revocations: what the WebSocket endpoint asks about
/// every client, and what the API's identity routes change.
#[derive(Debug)]
pub struct Authenticator {
    /// Checks tokens.
    pub verifier: Verifier,
    /// Users and tokens revoked.
    pub revocations: Revocations,
    /// One-time tickets.
    pub tickets: Tickets,
}

impl Authenticator {
    /// An authenticator for `config`; with a `bridge`, revocations and tickets hold across
    /// the cluster. With a JWKS URL, the key set is fetched once now (a failure is logged,
    /// and retried when a token names a key the server does not have).
    pub async fn start(config: &AuthConfig, bridge: Option<Bridge<Tokio>>) -> Arc<Self> {
        let jwks = config.jwks.as_ref().map(jwks::Jwks::new);
        if let Some(jwks) = &jwks {
            jwks.prime().await;
        }
        Arc::new(Authenticator {
            verifier: Verifier::new(config, jwks),
            revocations: Revocations::new(config, bridge.clone()),
            tickets: Tickets::new(config.tickets, bridge),
        })
    }

    /// The identity `credential` proves, unless it was revoked.
    pub async fn authenticate(&self, credential: Credential<'_>) -> Result<Identity, TokenError> {
        let identity = match credential {
            Credential::Token(token) => self.verifier.verify(token).await?,
            Credential::Ticket(ticket) => {
                let request = self.tickets.redeem(ticket).await?;
                self.verifier
                    .ticket_identity(request)
                    .map_err(|_| TokenError::InvalidTicket)?
            }
        };
        self.revocations.check(&identity).await?;
        Ok(identity)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The instant on the hub's clock (`Instant`) of `exp`, seconds since the Unix epoch: what
/// the hub takes as a token's expiry. A time already past maps to an instant as far in the
/// past (or now, if the monotonic clock does not reach back that far).
pub fn instant_of(exp: u64) -> Instant {
    let (wall, now) = (SystemTime::now(), Instant::now());
    let at = UNIX_EPOCH + Duration::from_secs(exp);
    match at.duration_since(wall) {
        Ok(ahead) => now + ahead,
        Err(past) => now.checked_sub(past.duration()).unwrap_or(now),
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

    #[test]
    fn an_expiry_maps_to_the_instant_as_far_from_now() {
        let now = (unix_now(), Instant::now());
        let ahead = instant_of(now.0 + 100).duration_since(now.1);
        assert!(ahead > Duration::from_secs(98) && ahead <= Duration::from_secs(101));
        let past = instant_of(now.0 - 100);
        if now.1.checked_sub(Duration::from_secs(100)).is_some() {
            assert!(Instant::now().duration_since(past) >= Duration::from_secs(99));
        }
    }

    #[test]
    fn secrets_compare_by_content() {
        assert!(same_secret("key", "key"));
        assert!(!same_secret("key", "kez"));
        assert!(!same_secret("key", "key2"));
    }
}
