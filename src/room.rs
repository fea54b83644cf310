//! Room membership: each room's members in a dense list for fast fan-out, and its number of
//! users (presence: a user with several connections in the room counts once).
//!
//! A member's slot in the list is remembered by its connection ([`Membership::slot`]), so
//! leaving is O(1): swap-remove, then tell the hub which member moved into the freed slot.
//! A room whose last member leaves is removed at once.
//!
//! [`Membership::slot`]: crate::connection::Membership

use crate::id::{ConnId, RoomId};
use crate::presence::{PresenceChange, PresenceConfig, Told};
use hashbrown::HashMap;

/// One member of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub conn: ConnId,
    /// The connection has every message of the room's stream from this sequence number on
    /// (0 = not positioned yet: set by its first live message or a catch-up).
    pub from: u64,
    /// The member hears who comes and goes (`presence` frames).
    pub watches: bool,
}

/// A room's members, and how many users they belong to.
#[derive(Debug, Default)]
struct Room {
    members: Vec<Member>,
    users: usize,
}

/// Every non-empty room and its members, and the rules of presence.
#[derive(Debug)]
pub(crate) struct Rooms {
    rooms: HashMap<RoomId, Room>,
    presence: PresenceConfig,
    /// In a cluster: the users of the rooms served here, as the cluster told them.
    told: Told,
}

/// Whether a member's user is new to the room (on [`Rooms::add`]) or gone from it (on
/// [`Rooms::remove`]): its first connection there, or its last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserCount {
    /// The user has (had) other connections in the room.
    Unchanged,
    /// The user arrives with this member, or leaves with it.
    Changed,
}

/// A member that moved to another slot after a removal.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Moved {
    pub conn: ConnId,
    pub slot: usize,
}

impl Rooms {
    pub fn new(presence: PresenceConfig) -> Self {
        Self {
            rooms: HashMap::new(),
            presence,
            told: Told::default(),
        }
    }

    /// In a cluster: the users of the rooms served here, as the cluster told them.
    pub fn told(&self) -> &Told {
        &self.told
    }

    /// Apply what the cluster tells of a room served here; false if it changes nothing, or
    /// if the room is not served here (nobody here to tell, nothing to remember).
    pub fn tell(&mut self, change: &PresenceChange) -> bool {
        self.rooms.contains_key(&change.room) && self.told.apply(change)
    }

    /// Which rooms tell their members who comes and goes, and up to how many users.
    pub fn presence(&self) -> &PresenceConfig {
        &self.presence
    }

    /// The members of `room` (empty if there is no such room).
    pub fn members(&self, room: &RoomId) -> &[Member] {
        self.rooms.get(room).map_or(&[], |r| r.members.as_slice())
    }

    /// The members of `room`, to update their positions during a fan-out.
    pub fn members_mut(&mut self, room: &RoomId) -> &mut [Member] {
        (self.rooms.get_mut(room)).map_or(&mut [], |r| r.members.as_mut_slice())
    }

    /// The member at `slot` of `room`.
    pub fn member_mut(&mut self, room: &RoomId, slot: usize) -> Option<&mut Member> {
        self.rooms.get_mut(room)?.members.get_mut(slot)
    }

    /// How many users `room` holds.
    pub fn users(&self, room: &RoomId) -> usize {
        self.rooms.get(room).map_or(0, |r| r.users)
    }

    /// Number of non-empty rooms.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Add `conn` to `room` (`watches`: it hears of presence; `user`: whether its user arrives
    /// with it); returns its slot.
    pub fn add(&mut self, room: &RoomId, conn: ConnId, watches: bool, user: UserCount) -> usize {
        let entry = self.rooms.entry(room.clone()).or_default();
        entry.members.push(Member {
            conn,
            from: 0,
            watches,
        });
        entry.users += usize::from(user == UserCount::Changed);
        entry.members.len() - 1
    }

    /// Remove the member at `slot` (which must be `conn`; `user`: whether its user leaves with
    /// it); reports who moved into the slot.
    pub fn remove(
        &mut self,
        room: &RoomId,
        conn: ConnId,
        slot: usize,
        user: UserCount,
    ) -> Option<Moved> {
        let entry = self.rooms.get_mut(room)?;
        let members = &mut entry.members;
        debug_assert_eq!(members.get(slot).map(|m| m.conn), Some(conn));
        members.swap_remove(slot);
        let moved = members.get(slot).map(|m| Moved { conn: m.conn, slot });
        entry.users -= usize::from(user == UserCount::Changed);
        if members.is_empty() {
            debug_assert_eq!(entry.users, 0, "users without a member");
            self.rooms.remove(room);
            self.told.forget(room);
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_remove_reports_the_moved_member_and_empty_rooms_vanish() {
        let mut rooms = Rooms::new(PresenceConfig::default());
        let room: RoomId = "r".into();
        let (new, old) = (UserCount::Changed, UserCount::Unchanged);
        let (a, b, c) = (
            ConnId::new(0, 0, 0),
            ConnId::new(0, 1, 0),
            ConnId::new(0, 2, 0),
        );
        assert_eq!(rooms.add(&room, a, false, new), 0);
        assert_eq!(rooms.add(&room, b, true, new), 1);
        assert_eq!(rooms.add(&room, c, false, old), 2);
        assert_eq!(rooms.users(&room), 2, "c's user was in already");
        let moved = rooms.remove(&room, a, 0, new);
        assert_eq!(moved, Some(Moved { conn: c, slot: 0 }));
        let conns: Vec<ConnId> = rooms.members(&room).iter().map(|m| m.conn).collect();
        assert_eq!(conns, vec![c, b]);
        assert_eq!(rooms.users(&room), 1);
        assert_eq!(rooms.remove(&room, b, 1, old), None);
        assert_eq!(rooms.remove(&room, c, 0, new), None);
        assert_eq!((rooms.len(), rooms.users(&room)), (0, 0));
        assert!(rooms.members(&room).is_empty());
    }
}
