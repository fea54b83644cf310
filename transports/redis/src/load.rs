//! What each node holds, as the cluster-wide answers of the backend API report it: the
//! per-node counts of a user's connections and of a room's members (the presence hashes), and
//! each node's totals (`<prefix>:load`, written at each heartbeat). Every read is one script
//! call, one round trip, that counts only live nodes.

use crate::bridge::Bridge;
use redis::RedisResult;
use std::collections::BTreeMap;
use std::fmt;
use switchboard::{RoomId, UserId};
use switchboard_transport::Runtime;

/// What one node held at its last heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeLoad {
    /// Open connections counted in presence.
    pub connections: u64,
    /// Users with an open connection there.
    pub users: u64,
    /// Rooms with a member there.
    pub rooms: u64,
}

impl fmt::Display for NodeLoad {
    /// As stored: `<connections> <users> <rooms>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.connections, self.users, self.rooms)
    }
}

impl NodeLoad {
    /// Read it back as stored; `None` if it is not three numbers.
    fn parse(stored: &str) -> Option<NodeLoad> {
        let mut numbers = stored.split(' ').map(|n| n.parse::<u64>());
        let load = NodeLoad {
            connections: numbers.next()?.ok()?,
            users: numbers.next()?.ok()?,
            rooms: numbers.next()?.ok()?,
        };
        numbers.next().is_none().then_some(load)
    }
}

impl<R: Runtime> Bridge<R> {
    /// The user's open connections on each live node that has some (counted as they open and
    /// close).
    pub async fn user_connections_by_node(
        &self,
        user: impl Into<UserId>,
    ) -> RedisResult<BTreeMap<String, u64>> {
        let key = self.shared().keys.user_presence(&user.into());
        self.per_node(&key).await
    }

    /// The room's members on each live node that has some, as of each node's last heartbeat
    /// (a node whose last member left says so at once).
    pub async fn room_members_by_node(
        &self,
        room: impl Into<RoomId>,
    ) -> RedisResult<BTreeMap<String, u64>> {
        let key = self.shared().keys.room_presence(&room.into());
        self.per_node(&key).await
    }

    /// What each live node held at its last heartbeat.
    pub async fn node_loads(&self) -> RedisResult<BTreeMap<String, NodeLoad>> {
        let stored = self.per_node::<String>(&self.shared().keys.load()).await?;
        Ok(stored
            .into_iter()
            .filter_map(|(node, load)| Some((node, NodeLoad::parse(&load)?)))
            .collect())
    }

    /// The live nodes' fields of a hash keyed by node, without those at zero.
    async fn per_node<T>(&self, key: &str) -> RedisResult<BTreeMap<String, T>>
    where
        T: redis::FromRedisValue + Default + PartialEq,
    {
        let shared = self.shared();
        let mut conn = shared.link.conn().await?;
        let fields = shared
            .scripts
            .per_node
            .key(key)
            .arg(shared.keys.lease_prefix())
            .invoke_async::<BTreeMap<String, T>>(&mut conn)
            .await;
        let mut fields = shared.link.check(fields).await?;
        fields.retain(|_, value| *value != T::default());
        Ok(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::NodeLoad;

    #[test]
    fn a_load_reads_back_as_written_and_nothing_else_does() {
        let load = NodeLoad {
            connections: 3,
            users: 2,
            rooms: 1,
        };
        assert_eq!(NodeLoad::parse(&load.to_string()), Some(load));
        for bad in ["", "1 2", "1 2 3 4", "a b c", "-1 2 3"] {
            assert_eq!(NodeLoad::parse(bad), None, "{bad:?}");
        }
    }
}
