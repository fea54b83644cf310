//! Membership: a connection joins and leaves rooms, binds to one of its user's threads, and a
//! stream stops being served here when its last local reader leaves.
//!
//! A room's members sit in a dense list (`Rooms`) and each connection remembers its slot in
//! every room it is in (`Membership`), so leaving is a swap-remove and the member moved into
//! the freed slot learns its new place here. A user's first member of a room and its last one
//! are presence changes, announced by `presence.rs`.

use super::delivery::Fanout;
use super::presence;
use super::replay;
use super::reply::Reply;
use crate::cluster::{AwaitingJoin, Cluster};
use crate::config::Limits;
use crate::connection::Membership;
use crate::directory::Directory;
use crate::error::RoomError;
use crate::id::{ConnId, RoomId, ThreadId, UserId};
use crate::io::{Notice, RoomChange};
use crate::outbox::Origin;
use crate::outputs::Outputs;
use crate::presence::PresenceEvent;
use crate::protocol::{Sequence, ServerFrame};
use crate::room::{Rooms, UserCount};
use crate::stream::{Position, StreamId, Streams};
use std::time::Instant;

/// What a join asks for.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Ask {
    /// Replay what followed this position.
    pub since: Option<Position>,
    /// Hear who comes and goes; `None`: as `PresenceConfig::rooms` says.
    pub presence: Option<bool>,
}

impl Ask {
    /// A join that only asks for what followed `since`.
    pub fn since(since: Option<Position>) -> Self {
        Self {
            since,
            presence: None,
        }
    }
}

/// Join `reply.conn` to `room` (a client's `join`, a `resume` of a room it is not in, or the
/// application's `join_room`); the member then gets `joined` and, after `since`, what it missed.
/// With shared streams, the first member of a room here waits for the room's head. The user's
/// first member of the room is announced once the member has its `joined`.
pub(super) fn join(
    f: &mut Fanout<'_>,
    limits: &Limits,
    now: Instant,
    reply: Reply<'_>,
    room: &RoomId,
    ask: Ask,
) -> Result<(), RoomError> {
    join_as(f, limits, now, reply, room, ask, Decider::Grant)
}

/// Who decides whether a connection may be in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decider {
    /// The connection's token: its join grant must allow the room.
    Grant,
    /// The backend: the grant is not consulted, and the membership outlives a refreshed
    /// token that does not allow the room. The limits hold all the same.
    Backend,
}

/// [`join`], with the grant consulted or not as `decider` says. Already a member, a
/// connection the backend joins keeps its place and becomes the backend's.
pub(super) fn join_as(
    f: &mut Fanout<'_>,
    limits: &Limits,
    now: Instant,
    reply: Reply<'_>,
    room: &RoomId,
    ask: Ask,
    decider: Decider,
) -> Result<(), RoomError> {
    let since = ask.since;
    let id = reply.conn;
    let conn = f.conns.get(id)?;
    if conn.membership(room).is_some() {
        if decider == Decider::Backend {
            let m = f
                .conns
                .conn_mut(id)
                .rooms
                .iter_mut()
                .find(|m| &m.room == room);
            m.expect("a member").by_backend = true;
        }
        return Ok(());
    }
    if decider == Decider::Grant && !conn.may_join(room) {
        return Err(RoomError::Forbidden);
    }
    if conn.rooms.len() >= limits.max_rooms_per_connection {
        return Err(RoomError::TooManyRooms);
    }
    if f.rooms.members(room).len() >= limits.max_members_per_room {
        return Err(RoomError::RoomFull);
    }
    let user = conn.user.clone();
    let watches = f.rooms.presence().watches(room, ask.presence);
    let arrives = presence::user_count(f.conns, &user, room);
    let slot = f.rooms.add(room, id, watches, arrives);
    if f.rooms.members(room).len() == 1 {
        f.cluster.serving(StreamId::Room(room.clone()), true, f.out);
        f.cluster.follow(room, since, f.out);
    }
    let conn = f.conns.conn_mut(id);
    conn.rooms.push(Membership {
        room: room.clone(),
        slot,
        by_backend: decider == Decider::Backend,
    });
    let change = RoomChange {
        conn: id,
        user: user.clone(),
        room: room.clone(),
    };
    f.out.notice(Notice::Joined(Box::new(change)));
    f.room_stream(now, room);
    // With shared streams, a member's position is the sequencer's: it is answered once the
    // sequencer gave the room's head (`ClusterInput::StreamHead`).
    if f.cluster.awaits(room) {
        let reference = reply.reference.map(ToOwned::to_owned);
        let join = AwaitingJoin {
            conn: id,
            since,
            reference,
        };
        f.cluster.hold(room, join);
    } else {
        answer_join(f, reply, room, since);
    }
    if arrives == UserCount::Changed {
        let join = PresenceEvent::Join;
        presence::announce(f.conns, f.rooms, f.cluster, f.out, (room, &user), join);
    }
    Ok(())
}

/// Tell a new member where it stands in the room's stream, and replay what followed `since`.
pub(super) fn answer_join(
    f: &mut Fanout<'_>,
    reply: Reply<'_>,
    room: &RoomId,
    since: Option<Position>,
) {
    reply_joined((f.conns, f.rooms, f.cluster), f.streams, f.out, reply, room);
    if let Some(since) = since {
        replay::catch_up_room(f.conns, f.rooms, f.streams, f.out, reply.conn, room, since);
    }
}

/// `joined`, with the room stream's head, and who is in the room for a member that watches.
pub(super) fn reply_joined(
    (conns, rooms, cluster): (&mut Directory, &Rooms, &Cluster),
    streams: &Streams,
    out: &mut Outputs,
    reply: Reply<'_>,
    room: &RoomId,
) {
    let stream = StreamId::Room(room.clone());
    let conn = conns.conn(reply.conn);
    let watches = (conn.membership(room))
        .and_then(|m| rooms.members(room).get(m.slot))
        .is_some_and(|m| m.watches);
    let roster = watches.then(|| presence::roster(conns, rooms, cluster, room, &conn.user));
    let frame = ServerFrame::Joined {
        room,
        sequence: Sequence::at(&stream, streams.position(&stream)),
        roster,
        reference: reply.reference,
    };
    reply.send(conns, out, &frame);
}

impl Fanout<'_> {
    /// Take `id` out of `room` (a client's `leave`, or the application's `leave_room`).
    pub fn leave(&mut self, id: ConnId, room: &RoomId) -> Result<(), RoomError> {
        let Fanout {
            conns,
            rooms,
            streams,
            cluster,
            out,
            ..
        } = self;
        let conn = conns.get(id)?;
        let i = (conn.rooms.iter())
            .position(|m| &m.room == room)
            .ok_or(RoomError::NotMember)?;
        let conn = conns.conn_mut(id);
        let m = conn.rooms.swap_remove(i);
        let user = conn.user.clone();
        if remove_member(conns, rooms, cluster, out, room, (id, &user), m.slot) {
            unserved(streams, cluster, out, StreamId::Room(room.clone()));
        }
        let change = RoomChange {
            conn: id,
            user,
            room: room.clone(),
        };
        out.notice(Notice::Left(Box::new(change)));
        Ok(())
    }
}

/// Remove member `id`, a connection of `user` that is no longer one of the room's (its
/// membership already taken from it, or the connection already gone), from `slot` of `room`;
/// the member moved into the slot learns its new place, and the user's last member leaving is
/// announced. True if the room is left without members here.
pub(super) fn remove_member(
    conns: &mut Directory,
    rooms: &mut Rooms,
    cluster: &Cluster,
    out: &mut Outputs,
    room: &RoomId,
    (id, user): (ConnId, &UserId),
    slot: usize,
) -> bool {
    let leaves = presence::user_count(conns, user, room);
    if let Some(moved) = rooms.remove(room, id, slot, leaves) {
        let other = conns.conn_mut(moved.conn);
        if let Some(m) = other.rooms.iter_mut().find(|m| &m.room == room) {
            m.slot = moved.slot;
        }
    }
    if leaves == UserCount::Changed {
        let leave = PresenceEvent::Leave;
        presence::announce(conns, rooms, cluster, out, (room, user), leave);
    }
    rooms.members(room).is_empty()
}

/// `stream`'s last reader here left: the cluster is told, and a stream that holds nothing is
/// forgotten at once (otherwise the sweep forgets it once its history has expired).
pub(super) fn unserved(
    streams: &mut Streams,
    cluster: &mut Cluster,
    out: &mut Outputs,
    stream: StreamId,
) {
    cluster.serving(stream.clone(), false, out);
    streams.remove_if_empty(&stream);
}

/// Bind `reply.conn` to `thread` (or unbind): `bound`, then, if the thread changed, the events
/// so far of runs in progress on it and what waited for a connection of it.
pub(super) fn bind(
    conns: &mut Directory,
    streams: &mut Streams,
    out: &mut Outputs,
    reply: Reply<'_>,
    thread: Option<ThreadId>,
) {
    let changed = conns.bind(reply.conn, thread);
    let frame = ServerFrame::Bound {
        thread: conns.conn(reply.conn).thread.as_ref(),
        reference: reply.reference,
    }
    .encode();
    let _ = conns.offer(reply.conn, &frame, None, Origin::Live, out);
    if changed {
        replay::catch_up_thread(conns, streams, out, reply.conn);
    }
}
