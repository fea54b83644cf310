//! Room membership: each room's members in a dense list for fast fan-out.
//!
//! A member's slot in the list is remembered by its connection ([`Membership::slot`]), so
//! leaving is O(1): swap-remove, then tell the hub which member moved into the freed slot.
//! A room whose last member leaves is removed at once.
//!
//! [`Membership::slot`]: crate::connection::Membership

use crate::id::{ConnId, RoomId};
use hashbrown::HashMap;

/// One member of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub conn: ConnId,
    /// The connection has every message of the room's stream from this sequence number on
    /// (0 = not positioned yet: set by its first live message or a catch-up).
    pub from: u64,
}

/// Every non-empty room and its members.
#[derive(Debug, Default)]
pub(crate) struct Rooms {
    rooms: HashMap<RoomId, Vec<Member>>,
}

/// A member that moved to another slot after a removal.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Moved {
    pub conn: ConnId,
    pub slot: usize,
}

impl Rooms {
    /// The members of `room` (empty if there is no such room).
    pub fn members(&self, room: &RoomId) -> &[Member] {
        self.rooms.get(room).map_or(&[], Vec::as_slice)
    }

    /// The members of `room`, to update their positions during a fan-out.
    pub fn members_mut(&mut self, room: &RoomId) -> &mut [Member] {
        self.rooms.get_mut(room).map_or(&mut [], Vec::as_mut_slice)
    }

    /// The member at `slot` of `room`.
    pub fn member_mut(&mut self, room: &RoomId, slot: usize) -> Option<&mut Member> {
        self.rooms.get_mut(room)?.get_mut(slot)
    }

    /// Number of non-empty rooms.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Add `conn` to `room`; returns its slot.
    pub fn add(&mut self, room: &RoomId, conn: ConnId) -> usize {
        let members = self.rooms.entry(room.clone()).or_default();
        members.push(Member { conn, from: 0 });
        members.len() - 1
    }

    /// Remove the member at `slot` (which must be `conn`); reports who moved into the slot.
    pub fn remove(&mut self, room: &RoomId, conn: ConnId, slot: usize) -> Option<Moved> {
        let members = self.rooms.get_mut(room)?;
        debug_assert_eq!(members.get(slot).map(|m| m.conn), Some(conn));
        members.swap_remove(slot);
        let moved = members.get(slot).map(|m| Moved { conn: m.conn, slot });
        if members.is_empty() {
            self.rooms.remove(room);
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_remove_reports_the_moved_member_and_empty_rooms_vanish() {
        let mut rooms = Rooms::default();
        let room: RoomId = "r".into();
        let (a, b, c) = (
            ConnId::new(0, 0, 0),
            ConnId::new(0, 1, 0),
            ConnId::new(0, 2, 0),
        );
        assert_eq!(rooms.add(&room, a), 0);
        assert_eq!(rooms.add(&room, b), 1);
        assert_eq!(rooms.add(&room, c), 2);
        assert_eq!(rooms.remove(&room, a, 0), Some(Moved { conn: c, slot: 0 }));
        let conns: Vec<ConnId> = rooms.members(&room).iter().map(|m| m.conn).collect();
        assert_eq!(conns, vec![c, b]);
        assert_eq!(rooms.remove(&room, b, 1), None);
        assert_eq!(rooms.remove(&room, c, 0), None);
        assert_eq!(rooms.len(), 0);
        assert!(rooms.members(&room).is_empty());
    }
}
