//! Revocations and one-time tickets, kept in Redis for every node of the cluster.
//!
//! - `<prefix>:revoked:user:<user>`: a user's cut-off (seconds since the Unix epoch); the
//!   user's credentials issued at or before it are refused. A newer cut-off replaces an older
//!   one, never the reverse (nodes' clocks differ). Expires when every token it concerns has.
//! - `<prefix>:revoked:token:<jti>`: a revoked token id, until the token expires.
//! - `<prefix>:ticket:<ticket>`: what a ticket grants (the server's JSON), set only if the
//!   key is new, expiring with the ticket, and read and deleted in one step by the node that
//!   accepts it, so that it opens one connection in the whole cluster.
//!
//! The scripts run on Redis 5 and later (no `GETDEL`, which needs 6.2).

use crate::bridge::Bridge;
use redis::{RedisResult, Script};
use std::sync::LazyLock;
use std::time::Duration;
use switchboard::UserId;
use switchboard_transport::Runtime;

/// Keep the later of the stored cut-off and `ARGV[1]`, for `ARGV[2]` milliseconds from now.
/// KEYS[1] the user's cut-off.
static REVOKE_USER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local kept = tonumber(redis.call('GET', KEYS[1]) or '0')
local cutoff = tonumber(ARGV[1])
if kept > cutoff then cutoff = kept end
redis.call('SET', KEYS[1], cutoff, 'PX', ARGV[2])
return cutoff
"#,
    )
});

/// Read and delete a ticket. KEYS[1] the ticket. Its value, or nil.
static TAKE_TICKET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local value = redis.call('GET', KEYS[1])
if value then redis.call('DEL', KEYS[1]) end
return value
"#,
    )
});

/// What is revoked of one user's credential, as Redis holds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revoked {
    /// The user's cut-off: credentials issued at or before it (seconds since the Unix epoch)
    /// are refused.
    pub issued_until: Option<u64>,
    /// The token id asked about is revoked.
    pub token: bool,
}

/// A duration as a key's time to live in milliseconds: at least 1 (Redis refuses 0).
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl<R: Runtime> Bridge<R> {
    /// Refuse the credentials of `user` issued at or before `cutoff` on every node, for
    /// `keep` (after which they have all expired).
    pub async fn revoke_user(&self, user: &UserId, cutoff: u64, keep: Duration) -> RedisResult<()> {
        let shared = self.shared();
        let mut conn = shared.link.conn().await?;
        let stored = REVOKE_USER
            .key(shared.keys.revoked_user(user))
            .arg(cutoff)
            .arg(ttl_millis(keep))
            .invoke_async::<u64>(&mut conn)
            .await;
        shared.link.check(stored).await.map(drop)
    }

    /// Refuse the token `jti` on every node, for `keep` (until it has expired).
    pub async fn revoke_token(&self, jti: &str, keep: Duration) -> RedisResult<()> {
        let shared = self.shared();
        let mut conn = shared.link.conn().await?;
        let stored = redis::cmd("SET")
            .arg(shared.keys.revoked_token(jti))
            .arg(1)
            .arg("PX")
            .arg(ttl_millis(keep))
            .query_async::<()>(&mut conn)
            .await;
        shared.link.check(stored).await
    }

    /// What is revoked of a credential of `user` with the token id `jti`, in one round trip.
    pub async fn revocations(&self, user: &UserId, jti: Option<&str>) -> RedisResult<Revoked> {
        let shared = self.shared();
        let mut conn = shared.link.conn().await?;
        let mut keys = vec![shared.keys.revoked_user(user)];
        keys.extend(jti.map(|jti| shared.keys.revoked_token(jti)));
        let found = redis::cmd("MGET")
            .arg(&keys)
            .query_async::<Vec<Option<String>>>(&mut conn)
            .await;
        let found = shared.link.check(found).await?;
        let mut found = found.into_iter();
        Ok(Revoked {
            issued_until: found.next().flatten().and_then(|c| c.parse().ok()),
            token: found.next().flatten().is_some(),
        })
    }

    /// Store a new ticket holding `grant` for `ttl`. False if one with that name exists.
    pub async fn put_ticket(&self, ticket: &str, grant: &str, ttl: Duration) -> RedisResult<bool> {
        let shared = self.shared();
        let mut conn = shared.link.conn().await?;
        let stored = redis::cmd("SET")
            .arg(shared.keys.ticket(ticket))
            .arg(grant)
            .arg("NX")
            .arg("PX")
            .arg(ttl_millis(ttl))
            .query_async::<Option<String>>(&mut conn)
            .await;
        Ok(shared.link.check(stored).await?.is_some())
    }

    /// Take the ticket: what it grants, and it is gone for every node. `None` if unknown,
    /// taken already, or expired.
    pub async fn take_ticket(&self, ticket: &str) -> RedisResult<Option<String>> {
        let shared = self.shared();
        let mut conn = shared.link.conn().await?;
        let taken = TAKE_TICKET
            .key(shared.keys.ticket(ticket))
            .invoke_async::<Option<String>>(&mut conn)
            .await;
        shared.link.check(taken).await
    }
}
