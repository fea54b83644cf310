//! The names of the Redis channels and keys a cluster uses, all under one prefix.

use switchboard::{RemoteTarget, RoomId, StreamId, UserId};

/// Channel and key names under a prefix (default `sb`), so that several clusters can share
/// one Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

/// The longest prefix [`Keys::check_prefix`] accepts, in bytes.
pub const MAX_PREFIX_LEN: usize = 64;

impl Keys {
    /// Names under `prefix` (see [`Keys::check_prefix`] for what a prefix should be).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// Whether `prefix` keeps one cluster's names apart from another's: 1 to
    /// [`MAX_PREFIX_LEN`] ASCII letters, digits, `-`, `_` or `.`. A `:` would let one prefix
    /// name another's keys (`a:room` + `:all` is `a`'s channel of room `all`); spaces, control
    /// characters and the glob characters `*?[]\` would break the patterns an operator matches
    /// one cluster's keys with (`redis-cli --scan --pattern 'sb:*'`). `Err` says why not.
    pub fn check_prefix(prefix: &str) -> Result<(), String> {
        if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
            return Err(format!(
                "must have 1 to {MAX_PREFIX_LEN} characters, has {}",
                prefix.len()
            ));
        }
        match prefix
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            Some(c) => Err(format!(
                "may hold only ASCII letters, digits, '-', '_' and '.', not {c:?}"
            )),
            None => Ok(()),
        }
    }

    /// The channel of a room's publishes: `<prefix>:room:<room>`.
    pub fn room_channel(&self, room: &RoomId) -> String {
        format!("{}{room}", self.room_channel_prefix())
    }

    /// What room channels start with.
    pub(crate) fn room_channel_prefix(&self) -> String {
        format!("{}:room:", self.prefix)
    }

    /// The channel of a user's (and the user's threads') publishes: `<prefix>:user:<user>`.
    pub fn user_channel(&self, user: &UserId) -> String {
        format!("{}:user:{user}", self.prefix)
    }

    /// The channel of publishes to everyone: `<prefix>:all`.
    pub fn all_channel(&self) -> String {
        format!("{}:all", self.prefix)
    }

    /// The channel of cluster-wide commands (disconnect a user): `<prefix>:control`.
    pub fn control_channel(&self) -> String {
        format!("{}:control", self.prefix)
    }

    /// The channel a stream's publishes travel on.
    pub fn stream_channel(&self, stream: &StreamId) -> String {
        match stream {
            StreamId::User(user) => self.user_channel(user),
            StreamId::Room(room) => self.room_channel(room),
        }
    }

    /// The channel an envelope is published on (a thread's on its user's channel).
    pub fn target_channel(&self, target: &RemoteTarget) -> String {
        match target {
            RemoteTarget::User { user } | RemoteTarget::Thread { user, .. } => {
                self.user_channel(user)
            }
            RemoteTarget::Room { room } => self.room_channel(room),
            RemoteTarget::All => self.all_channel(),
        }
    }

    /// A stream's counter, `<prefix>:stream:<stream>`: a hash of its `epoch`, its last `seq`
    /// and the frame `bytes` its shared history holds.
    pub fn stream_counter(&self, stream: &StreamId) -> String {
        format!("{}:stream:{stream}", self.prefix)
    }

    /// A stream's shared history, `<prefix>:history:<stream>`: a list of sealed entries.
    pub fn stream_history(&self, stream: &StreamId) -> String {
        format!("{}:history:{stream}", self.prefix)
    }

    /// The index of a stream's shared history, `<prefix>:history-index:<stream>`: a list
    /// parallel to the history's, of `<append time in ms> <frame bytes>` per entry, so that
    /// trimming by age and size reads a few bytes per entry, not the entries.
    pub fn stream_index(&self, stream: &StreamId) -> String {
        format!("{}:history-index:{stream}", self.prefix)
    }

    /// A node's lease key, `<prefix>:node:<node>`: it exists while the node is alive.
    pub fn lease(&self, node: &str) -> String {
        format!("{}{node}", self.lease_prefix())
    }

    /// What lease keys start with.
    pub(crate) fn lease_prefix(&self) -> String {
        format!("{}:node:", self.prefix)
    }

    /// The set of nodes that ever announced themselves (dead ones are pruned by readers).
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// The hash of a user's connections: node → count.
    pub fn user_presence(&self, user: &UserId) -> String {
        format!("{}:presence:user:{user}", self.prefix)
    }

    /// The hash of a room's members: node → count.
    pub fn room_presence(&self, room: &RoomId) -> String {
        format!("{}:presence:room:{room}", self.prefix)
    }

    /// The hash of a room's users, `<prefix>:members:<room>`: user → the number of nodes the
    /// user is in the room through.
    pub fn room_users(&self, room: &RoomId) -> String {
        format!("{}{room}", self.room_users_prefix())
    }

    /// What the hashes of rooms' users start with.
    pub(crate) fn room_users_prefix(&self) -> String {
        format!("{}:members:", self.prefix)
    }

    /// The set of a node's room users, `<prefix>:members-of:<node>`: `[room, user]` as JSON,
    /// one per user the node counts in a room of `room_users`, so that another node can take a
    /// dead node's users out.
    pub fn node_room_users(&self, node: &str) -> String {
        format!("{}{node}", self.node_room_users_prefix())
    }

    /// What the sets of nodes' room users start with.
    pub(crate) fn node_room_users_prefix(&self) -> String {
        format!("{}:members-of:", self.prefix)
    }

    /// The set of nodes that may hold room users, `<prefix>:member-nodes`.
    pub fn room_user_nodes(&self) -> String {
        format!("{}:member-nodes", self.prefix)
    }

    /// The hash of what each node holds, `<prefix>:load`: node → `<connections> <users>
    /// <rooms>`, written at each heartbeat.
    pub fn load(&self) -> String {
        format!("{}:load", self.prefix)
    }

    /// A user's revocation cut-off, `<prefix>:revoked:user:<user>`: the user's credentials
    /// issued at or before it (seconds since the Unix epoch) are refused.
    pub fn revoked_user(&self, user: &UserId) -> String {
        format!("{}:revoked:user:{user}", self.prefix)
    }

    /// A revoked token id, `<prefix>:revoked:token:<jti>`.
    pub fn revoked_token(&self, jti: &str) -> String {
        format!("{}:revoked:token:{jti}", self.prefix)
    }

    /// A one-time ticket, `<prefix>:ticket:<ticket>`: what it grants, until used or expired.
    pub fn ticket(&self, ticket: &str) -> String {
        format!("{}:ticket:{ticket}", self.prefix)
    }
}

impl Default for Keys {
    fn default() -> Self {
        Self::new("sb")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard::ThreadId;

    #[test]
    fn a_thread_travels_on_its_users_channel() {
        let keys = Keys::default();
        let thread = RemoteTarget::Thread {
            user: UserId::from("alice"),
            thread: ThreadId::from("t1"),
        };
        assert_eq!(keys.target_channel(&thread), "sb:user:alice");
        let room = RemoteTarget::Room {
            room: RoomId::from("lobby"),
        };
        assert_eq!(keys.target_channel(&room), "sb:room:lobby");
        assert_eq!(keys.target_channel(&RemoteTarget::All), "sb:all");
        assert_eq!(keys.lease("n1"), "sb:node:n1");
        // A user named like a key's suffix cannot collide with another stream's index.
        let index = keys.stream_index(&StreamId::User(UserId::from("a")));
        let history = keys.stream_history(&StreamId::User(UserId::from("a:index")));
        assert_eq!(index, "sb:history-index:user:a");
        assert_ne!(index, history);
    }

    #[test]
    fn a_prefix_that_could_name_another_clusters_keys_or_break_a_pattern_is_refused() {
        for good in ["sb", "staging-2", "eu_west.a", &"x".repeat(MAX_PREFIX_LEN)] {
            assert_eq!(Keys::check_prefix(good), Ok(()), "{good}");
        }
        let too_long = "x".repeat(MAX_PREFIX_LEN + 1);
        for bad in [
            "",
            "sb:room",
            "s b",
            "sb*",
            "a[1]",
            "sb\\n",
            "é",
            too_long.as_str(),
        ] {
            assert!(Keys::check_prefix(bad).is_err(), "{bad}");
        }
    }
}
