//! Presence: which users are in each room here, counted per user rather than per connection,
//! so that a user's second tab does not announce the user again and only the last one to leave
//! announces its departure.
//!
//! A user arrives in a room when none of its connections was in it and one joins, and leaves
//! when its last connection there goes: the hub's rules (`hub/presence.rs`) ask the user's own
//! connections, which are few (`Limits::max_connections_per_user`), so that presence costs a
//! room membership nothing; `Rooms` keeps only each room's number of users. Whether members
//! hear of changes is their choice ([`PresenceConfig::rooms`] or the join's `presence` flag);
//! users are counted in every room, so that a member list is right whenever someone asks for
//! it. Presence is ephemeral state: changes are not stream entries, they are not kept in
//! history and a resuming client is not replayed them — it joins again and reads the current
//! list in `joined`.

use crate::access::RoomAccess;
use crate::id::{RoomId, UserId};
use hashbrown::{HashMap, HashSet};
use serde::{Deserialize, Serialize};

/// Which rooms tell their members who comes and goes, and how large a room may grow before
/// only counts are given.
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceConfig {
    /// Rooms whose members receive `presence` frames and a member list in `joined` without
    /// asking (a join's `"presence": false` still opts out). Default: none — members opt in
    /// with `"presence": true` on their join.
    pub rooms: RoomAccess,
    /// The most users a room may hold for its members to be told who they are. Above it
    /// `joined` carries the `count` of users and no `members`, and no `presence` frame is sent
    /// for a change that leaves the room with more users than this. Default 1000.
    pub max_members: usize,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            rooms: RoomAccess::Only(Vec::new()),
            max_members: 1000,
        }
    }
}

impl PresenceConfig {
    /// True if a connection joining `room` hears of presence: as its join `asked`, or, when it
    /// did not say, as the configured patterns say.
    pub fn watches(&self, room: &RoomId, asked: Option<bool>) -> bool {
        asked.unwrap_or_else(|| self.rooms.allows(room))
    }

    /// True if a room of `users` users is small enough for its members to be told who they are.
    pub fn lists(&self, users: usize) -> bool {
        users <= self.max_members
    }
}

/// Whether a user arrived in a room or left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum PresenceEvent {
    /// The user's first connection joined the room.
    Join,
    /// The user's last connection left the room (or closed).
    Leave,
}

/// A user's first connection joined a room, or its last one left it: announced to the room's
/// members who watch presence. In a cluster a hub hands its own changes out
/// ([`ClusterOutput::Presence`](crate::ClusterOutput::Presence)) and delivers only those the
/// cluster hands back ([`ClusterInput::Presence`](crate::ClusterInput::Presence)), which are
/// the changes of the user's presence on every node together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceChange {
    /// The room.
    pub room: RoomId,
    /// The user who arrived or left.
    pub user: UserId,
    /// Arrived or left.
    pub event: PresenceEvent,
    /// How many users the room holds after the change, as whoever decided the change counts
    /// them (a hub: its own members; a bridge: every node's). Above
    /// [`PresenceConfig::max_members`] the change is not delivered.
    pub users: usize,
}

/// In a cluster, the users of each room this hub serves as the cluster told it
/// (`ClusterInput::Presence`): who the room's `joined` lists. Applying a change is idempotent,
/// so that the cluster may tell a hub that starts serving a room who is already in it with
/// the same changes. A room is forgotten when the hub stops serving it.
#[derive(Debug, Default)]
pub(crate) struct Told {
    rooms: HashMap<RoomId, HashSet<UserId>>,
}

impl Told {
    /// Apply `change`; false if it changes nothing (a user already known to be in, or not).
    pub fn apply(&mut self, change: &PresenceChange) -> bool {
        let room = &change.room;
        match change.event {
            PresenceEvent::Join => {
                let users = self.rooms.entry_ref(room.as_str()).or_default();
                users.insert(change.user.clone())
            }
            PresenceEvent::Leave => {
                let Some(users) = self.rooms.get_mut(room) else {
                    return false;
                };
                let removed = users.remove(&change.user);
                if users.is_empty() {
                    self.rooms.remove(room);
                }
                removed
            }
        }
    }

    /// How many users `room` holds as told, counting `user` in.
    pub fn count_with(&self, room: &RoomId, user: &UserId) -> usize {
        let told = self.rooms.get(room);
        told.map_or(0, HashSet::len) + usize::from(!told.is_some_and(|users| users.contains(user)))
    }

    /// The users of `room` as told.
    pub fn users(&self, room: &RoomId) -> impl Iterator<Item = &UserId> {
        self.rooms.get(room).into_iter().flatten()
    }

    /// The hub stopped serving `room`: what it was told of it is out of date from now on.
    pub fn forget(&mut self, room: &RoomId) {
        self.rooms.remove(room);
    }
}

/// Who is in a room, as `joined` tells a member that watches presence: the users, unless the
/// room holds more than `PresenceConfig::max_members`, and always their count.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub(crate) struct Roster {
    /// The users in the room, sorted; absent above the cap (`[presence] max_members`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<UserId>>,
    /// How many users are in the room (users, not connections).
    pub count: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_cluster_tells_is_applied_once() {
        let mut told = Told::default();
        let change = |user: &str, event| PresenceChange {
            room: "r".into(),
            user: user.into(),
            event,
            users: 1,
        };
        assert!(told.apply(&change("alice", PresenceEvent::Join)));
        assert!(
            !told.apply(&change("alice", PresenceEvent::Join)),
            "already in"
        );
        assert!(
            !told.apply(&change("bob", PresenceEvent::Leave)),
            "never in"
        );
        let room: RoomId = "r".into();
        assert_eq!(told.users(&room).count(), 1);
        assert_eq!(told.count_with(&room, &"alice".into()), 1, "alice is in");
        assert_eq!(told.count_with(&room, &"bob".into()), 2, "bob joins alice");
        assert_eq!(told.count_with(&"empty".into(), &"bob".into()), 1);
        assert!(told.apply(&change("alice", PresenceEvent::Leave)));
        assert!(told.rooms.is_empty(), "an empty room is forgotten");
    }

    #[test]
    fn a_join_says_whether_it_watches_or_the_patterns_decide() {
        let config = PresenceConfig {
            rooms: RoomAccess::Only(vec!["chat:*".into()]),
            max_members: 2,
        };
        let (chat, game): (RoomId, RoomId) = ("chat:1".into(), "game:1".into());
        assert!(config.watches(&chat, None));
        assert!(!config.watches(&chat, Some(false)));
        assert!(!config.watches(&game, None));
        assert!(config.watches(&game, Some(true)));
        assert!(config.lists(2) && !config.lists(3));
    }
}
