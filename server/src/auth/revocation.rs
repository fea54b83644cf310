//! [`Revocations`]: credentials refused before they expire.
//!
//! Two kinds, each kept until every token it concerns has expired (the longest token
//! lifetime plus twice the leeway, [`Revocations::keep`]):
//!
//! - **a user's cut-off**: the user's credentials issued at or before it (`iat`, or when a
//!   ticket was issued) are refused, and so is every token of that user without `iat`, which
//!   cannot show it is newer. Credentials issued later pass: mint the user's next token at
//!   least a second after the revocation. A newer cut-off replaces an older one.
//! - **a token id** (`jti`): that token is refused.
//!
//! Every node keeps in memory the revocations made through it, at most
//! `auth.max_revocations` (past that, and with nothing expired to drop, a single node refuses
//! the revocation: 429). With Redis they are also written to Redis
//! (`<prefix>:revoked:user:<user>`, `<prefix>:revoked:token:<jti>`, expiring with the
//! revocation) and every handshake reads them there, so a revocation answered 200 holds on
//! every node from then on. While Redis cannot be reached, a node checks what it holds itself
//! (a revocation made through another node meanwhile is not seen) and a revocation made
//! through it is answered 503 (it holds on that node only: retry).

use super::claims::Identity;
use super::{unix_now, TokenError};
use crate::settings::AuthConfig;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use switchboard::UserId;
use switchboard_redis::Bridge;
use switchboard_tokio::Tokio;

/// Why a revocation was not recorded everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RevokeError {
    /// A single node holds `auth.max_revocations` revocations that have not expired.
    #[error("this node holds as many revocations as auth.max_revocations allows")]
    Full,
    /// Redis could not be written: the revocation holds on this node only.
    #[error("the revocation could not be stored in Redis: it holds on this node only; retry")]
    Cluster,
}

/// What is revoked of one identity, as found in a store.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Found {
    /// The user's cut-off, seconds since the Unix epoch.
    cutoff: Option<u64>,
    /// The token's id is revoked.
    token: bool,
}

impl Found {
    fn refuses(self, identity: &Identity) -> bool {
        let before_cutoff = self
            .cutoff
            .is_some_and(|cutoff| identity.issued_at.is_none_or(|iat| iat <= cutoff));
        self.token || before_cutoff
    }
}

/// The revocations made through this node, each until it expires.
#[derive(Debug, Default)]
struct Local {
    users: HashMap<UserId, (u64, Instant)>,
    tokens: HashMap<String, Instant>,
}

impl Local {
    fn len(&self) -> usize {
        self.users.len() + self.tokens.len()
    }

    /// Room for one more under `max`, dropping what expired if needed.
    fn has_room(&mut self, max: usize, now: Instant) -> bool {
        if self.len() >= max {
            self.users.retain(|_, (_, until)| *until > now);
            self.tokens.retain(|_, until| *until > now);
        }
        self.len() < max
    }

    fn revoke_user(&mut self, user: UserId, cutoff: u64, until: Instant, max: usize) -> bool {
        if let Some((kept, kept_until)) = self.users.get_mut(&user) {
            *kept = (*kept).max(cutoff);
            *kept_until = (*kept_until).max(until);
            return true;
        }
        if !self.has_room(max, Instant::now()) {
            return false;
        }
        self.users.insert(user, (cutoff, until));
        true
    }

    fn revoke_token(&mut self, jti: &str, until: Instant, max: usize) -> bool {
        if let Some(kept_until) = self.tokens.get_mut(jti) {
            *kept_until = (*kept_until).max(until);
            return true;
        }
        if !self.has_room(max, Instant::now()) {
            return false;
        }
        self.tokens.insert(jti.to_owned(), until);
        true
    }

    fn find(&self, identity: &Identity, now: Instant) -> Found {
        let cutoff = self
            .users
            .get(&identity.user)
            .filter(|(_, until)| *until > now)
            .map(|(cutoff, _)| *cutoff);
        let token = identity
            .token_id
            .as_ref()
            .and_then(|jti| self.tokens.get(jti))
            .is_some_and(|until| *until > now);
        Found { cutoff, token }
    }
}

/// The revoked users and tokens, on this node and, with a bridge, across the cluster.
#[derive(Debug)]
pub struct Revocations {
    local: Mutex<Local>,
    bridge: Option<Bridge<Tokio>>,
    keep: Duration,
    leeway: Duration,
    max: usize,
}

impl Revocations {
    /// Revocations under `config`'s lifetimes and bound; shared through `bridge` if given.
    pub fn new(config: &AuthConfig, bridge: Option<Bridge<Tokio>>) -> Self {
        Revocations {
            local: Mutex::new(Local::default()),
            bridge,
            keep: config.max_token_lifetime + config.leeway * 2,
            leeway: config.leeway,
            max: config.max_revocations,
        }
    }

    /// How long a revocation is kept: past it, every token it concerns has expired.
    pub fn keep(&self) -> Duration {
        self.keep
    }

    /// Refuse the credentials of `user` issued at or before now. Returns the cut-off
    /// (seconds since the Unix epoch).
    pub async fn revoke_user(&self, user: &UserId) -> Result<u64, RevokeError> {
        let cutoff = unix_now();
        let until = Instant::now() + self.keep;
        let kept = {
            let mut local = self.local.lock().expect("not poisoned");
            local.revoke_user(user.clone(), cutoff, until, self.max)
        };
        let shared = match &self.bridge {
            Some(bridge) => Some(bridge.revoke_user(user, cutoff, self.keep).await),
            None => None,
        };
        outcome(kept, shared)?;
        Ok(cutoff)
    }

    /// Refuse the token `jti`, whose expiry is `exp` (unknown: kept as long as any token
    /// may live). Returns until when it is kept (seconds since the Unix epoch).
    pub async fn revoke_token(&self, jti: &str, exp: Option<u64>) -> Result<u64, RevokeError> {
        let now = unix_now();
        let longest = now + self.keep.as_secs();
        let until = exp.map_or(longest, |exp| {
            exp.saturating_add(self.leeway.as_secs()).min(longest)
        });
        let Some(left) = until.checked_sub(now).filter(|left| *left > 0) else {
            // Expired beyond the leeway already: every node refuses it without a record.
            return Ok(until);
        };
        let left = Duration::from_secs(left);
        let kept = {
            let mut local = self.local.lock().expect("not poisoned");
            local.revoke_token(jti, Instant::now() + left, self.max)
        };
        let shared = match &self.bridge {
            Some(bridge) => Some(bridge.revoke_token(jti, left).await),
            None => None,
        };
        outcome(kept, shared)?;
        Ok(until)
    }

    /// `Ok` unless `identity`'s credential is revoked.
    pub async fn check(&self, identity: &Identity) -> Result<(), TokenError> {
        let local = self
            .local
            .lock()
            .expect("not poisoned")
            .find(identity, Instant::now());
        if local.refuses(identity) {
            return Err(TokenError::Revoked);
        }
        let Some(bridge) = &self.bridge else {
            return Ok(());
        };
        match bridge
            .revocations(&identity.user, identity.token_id.as_deref())
            .await
        {
            Ok(found) => {
                let found = Found {
                    cutoff: found.issued_until,
                    token: found.token,
                };
                match found.refuses(identity) {
                    true => Err(TokenError::Revoked),
                    false => Ok(()),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "revocations checked on this node only: redis unreachable");
                Ok(())
            }
        }
    }
}

/// The outcome of a revocation `kept` (or not) on this node and, in a cluster, `shared` in
/// Redis (or not): Redis holds it for every node, a single node only for itself.
fn outcome<E: std::fmt::Display>(
    kept: bool,
    shared: Option<Result<(), E>>,
) -> Result<(), RevokeError> {
    match shared {
        None if kept => Ok(()),
        None => Err(RevokeError::Full),
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "a revocation could not be stored in Redis");
            Err(RevokeError::Cluster)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::claims::{JoinGrant, PublishGrant};
    use switchboard::RoomAccess;

    fn identity(user: &str, iat: Option<u64>, jti: Option<&str>) -> Identity {
        Identity {
            user: user.into(),
            expires_at: Some(u64::MAX),
            issued_at: iat,
            token_id: jti.map(str::to_owned),
            join: JoinGrant::from_claim(None, &RoomAccess::Any).unwrap(),
            publish: PublishGrant::from_claim(None, &RoomAccess::Any).unwrap(),
        }
    }

    #[test]
    fn a_cutoff_refuses_what_was_issued_until_it_and_tokens_without_iat() {
        let found = Found {
            cutoff: Some(1000),
            token: false,
        };
        assert!(found.refuses(&identity("a", Some(999), None)));
        assert!(
            found.refuses(&identity("a", Some(1000), None)),
            "at the cut-off"
        );
        assert!(!found.refuses(&identity("a", Some(1001), None)));
        assert!(
            found.refuses(&identity("a", None, None)),
            "no iat: not provably newer"
        );
        assert!(!Found::default().refuses(&identity("a", None, None)));
    }

    #[test]
    fn the_local_store_is_bounded_and_forgets_what_expired() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut local = Local::default();
        assert!(local.revoke_user("a".into(), 10, later, 2));
        assert!(local.revoke_token("t1", now, 2));
        assert!(
            local.revoke_user("a".into(), 20, later, 2),
            "an update takes no room"
        );
        // Full, but the token revocation has expired: it makes room.
        assert!(local.revoke_token("t2", later, 2));
        assert!(
            !local.revoke_user("b".into(), 10, later, 2),
            "full of live revocations"
        );
        assert_eq!(local.len(), 2);
        let found = local.find(&identity("a", Some(15), Some("t2")), now);
        assert_eq!(
            found,
            Found {
                cutoff: Some(20),
                token: true
            }
        );
        assert_eq!(
            local.find(&identity("a", None, Some("t2")), later),
            Found::default()
        );
    }
}
