//! A node's room users when no bridge joins it to other nodes: the shards are then the whole
//! cluster. A user's connections all live on its shard, so a shard's change (its first
//! connection in a room, its last one gone) is the node's; [`NodeRoster`] keeps who is in each
//! room across the shards, counts the users of a change before it is handed to every shard,
//! and tells a shard that starts serving a room who is already in it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use switchboard::{PresenceChange, PresenceEvent, RoomId, UserId};

/// Who is in each room of the node, shared by its shards.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeRoster {
    rooms: Arc<Mutex<HashMap<RoomId, HashSet<UserId>>>>,
}

impl NodeRoster {
    /// Apply a shard's `change`; the change, with the users the room holds on the node after it.
    pub fn apply(&self, mut change: PresenceChange) -> PresenceChange {
        let mut rooms = self.rooms.lock().expect("not poisoned");
        let users = rooms.entry(change.room.clone()).or_default();
        match change.event {
            PresenceEvent::Join => users.insert(change.user.clone()),
            PresenceEvent::Leave => users.remove(&change.user),
        };
        change.users = users.len();
        if users.is_empty() {
            rooms.remove(&change.room);
        }
        change
    }

    /// Who is in `room` now, as arrivals, for a shard that starts serving it.
    pub fn arrivals(&self, room: &RoomId) -> Vec<PresenceChange> {
        let rooms = self.rooms.lock().expect("not poisoned");
        let users = rooms.get(room).into_iter().flatten();
        let count = rooms.get(room).map_or(0, HashSet::len);
        users
            .map(|user| PresenceChange {
                room: room.clone(),
                user: user.clone(),
                event: PresenceEvent::Join,
                users: count,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(user: &str, event: PresenceEvent) -> PresenceChange {
        PresenceChange {
            room: "r".into(),
            user: user.into(),
            event,
            users: 0,
        }
    }

    #[test]
    fn changes_are_counted_across_shards_and_a_new_server_of_the_room_learns_who_is_in() {
        let roster = NodeRoster::default();
        assert_eq!(roster.apply(change("alice", PresenceEvent::Join)).users, 1);
        assert_eq!(roster.apply(change("bob", PresenceEvent::Join)).users, 2);
        let mut users: Vec<_> = (roster.arrivals(&"r".into()).into_iter())
            .map(|c| (c.user.to_string(), c.users))
            .collect();
        users.sort();
        assert_eq!(users, [("alice".into(), 2), ("bob".into(), 2)]);
        assert_eq!(roster.apply(change("alice", PresenceEvent::Leave)).users, 1);
        assert_eq!(roster.apply(change("bob", PresenceEvent::Leave)).users, 0);
        assert!(roster.rooms.lock().unwrap().is_empty());
    }
}
