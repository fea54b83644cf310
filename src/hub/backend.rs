//! Membership the backend decides: every connection of a user joins or leaves a room at once
//! (the backend API's `POST`/`DELETE /api/users/{user}/rooms/{room}`).
//!
//! The rule: a client's `join` (and the application's [`Hub::join_room`], which acts for a
//! client) needs the connection's token to allow the room; the backend's own decision does
//! not consult the token at all, and the room stays joined when a refreshed token does not
//! allow it. The limits (`max_rooms_per_connection`, `max_members_per_room`) hold for both.
//! Each connection is told as for any join or leave on the server's initiative: `joined` (or
//! `left`) without a `ref`.

use super::membership::{self, Ask, Decider};
use super::reply::Reply;
use super::Hub;
use crate::id::{RoomId, UserId};
use std::time::Instant;

/// What joining (or leaving) a room did to the open connections of one user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserMembership {
    /// Connections that joined (or left) the room now.
    pub changed: usize,
    /// Connections that were in the room already (or, for a leave, were not in it).
    pub unchanged: usize,
    /// Connections a limit kept out of the room (`too_many_rooms`, `room_full`); always 0
    /// for a leave.
    pub refused: usize,
}

impl Hub {
    /// Join every open connection of `user` to `room` on the backend's decision, whatever
    /// their tokens allow (see the module's rule); each connection that joins gets `joined`
    /// without a `ref`.
    pub fn add_user_to_room(
        &mut self,
        now: Instant,
        user: &UserId,
        room: &RoomId,
    ) -> UserMembership {
        let mut done = UserMembership::default();
        for conn in self.conns.user_connections(user).to_vec() {
            let was_member = self.conns.conn(conn).membership(room).is_some();
            let mut p = self.parts();
            let limits = &p.config.limits;
            let reply = Reply::to(conn);
            let joined = membership::join_as(
                &mut p.fanout,
                limits,
                now,
                reply,
                room,
                Ask::default(),
                Decider::Backend,
            );
            match joined {
                Ok(()) if was_member => done.unchanged += 1,
                Ok(()) => done.changed += 1,
                Err(_) => done.refused += 1,
            }
        }
        self.finish();
        done
    }

    /// Take every open connection of `user` out of `room` on the backend's decision; each
    /// one that was a member gets `left` without a `ref`.
    pub fn remove_user_from_room(&mut self, user: &UserId, room: &RoomId) -> UserMembership {
        let mut done = UserMembership::default();
        for conn in self.conns.user_connections(user).to_vec() {
            match self.leave_room(conn, room) {
                Ok(()) => done.changed += 1,
                Err(_) => done.unchanged += 1,
            }
        }
        done
    }
}
