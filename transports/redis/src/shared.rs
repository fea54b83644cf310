//! [`Shared`]: what a node's bridge tasks (the worker, the subscription, the callers of
//! [`Bridge`](crate::Bridge)) share: options, keys, the command links, the scripts, counters.

use crate::admission::Reservations;
use crate::cancels::Cancels;
use crate::counters::Counters;
use crate::keys::Keys;
use crate::link::{Backoff, Link};
use crate::options::BridgeOptions;
use crate::scripts::Scripts;
use redis::{Client, RedisResult};
use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use switchboard::{HistoryConfig, UserId};
use tokio::sync::RwLock;

/// What the bridge's tasks share.
pub(crate) struct Shared {
    pub node: String,
    pub keys: Keys,
    pub options: BridgeOptions,
    pub client: Client,
    pub link: Link,
    /// The connection of history reads, apart from `link`: a large read never delays a
    /// publish.
    pub reader: Link,
    pub scripts: Scripts,
    pub counters: Arc<Counters>,
    /// The channels the subscription connection has confirmed.
    pub subscribed: Mutex<HashSet<String>>,
    /// Admitted connections that have not opened yet.
    pub reservations: Mutex<Reservations>,
    /// Held shared by each admission while it counts in Redis, and exclusively by the
    /// heartbeat while it rewrites this node's counts, so that no rewrite undoes an admission.
    pub counting: RwLock<()>,
    /// Cancels carried between nodes (`cancels.rs`).
    pub cancels: Mutex<Cancels>,
}

impl Shared {
    pub fn backoff(&self) -> Backoff {
        Backoff {
            min: self.options.backoff_min,
            max: self.options.backoff_max.max(self.options.backoff_min),
        }
    }

    pub fn count(&self, counter: &AtomicU64) {
        Counters::count(counter);
    }

    /// The cancels carried between nodes.
    pub fn cancels(&self) -> std::sync::MutexGuard<'_, Cancels> {
        self.cancels.lock().expect("not poisoned")
    }

    /// Publish `command` on the control channel, for every other node: how many subscribers
    /// received it (this node's own subscription included).
    pub async fn tell_others(&self, command: Vec<u8>) -> RedisResult<u64> {
        let mut conn = self.link.conn().await?;
        let sent = redis::cmd("PUBLISH")
            .arg(self.keys.control_channel())
            .arg(command)
            .query_async::<u64>(&mut conn)
            .await;
        self.link.check(sent).await
    }

    /// Run the `OPEN` script: add one connection of `user` on this node, unless the user is at
    /// the cluster-wide limit. The node's new count, or -1 if refused.
    pub async fn open(&self, user: &UserId) -> RedisResult<i64> {
        let limit = self.options.max_connections_per_user.unwrap_or(0);
        let mut conn = self.link.conn().await?;
        let result = self
            .scripts
            .open
            .key(self.keys.user_presence(user))
            .arg(&self.node)
            .arg(limit)
            .arg(self.keys.lease_prefix())
            .arg(hash_ttl(&self.options))
            .invoke_async::<i64>(&mut conn)
            .await;
        self.link.check(result).await
    }
}

/// How long a presence hash outlives its last update: two leases.
pub(crate) fn hash_ttl(options: &BridgeOptions) -> u64 {
    (options.lease.as_millis() as u64).saturating_mul(2).max(1)
}

/// A history's age in milliseconds, as the scripts take it: at least 1 (Redis deletes a key
/// given no time to live at all).
pub(crate) fn history_age_millis(history: &HistoryConfig) -> u64 {
    (history.max_age.as_millis() as u64).max(1)
}
