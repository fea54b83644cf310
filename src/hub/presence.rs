//! Presence rules: a user's arrival in or departure from a room announced to the members who
//! watch, and the member list a watching member gets in `joined`.
//!
//! Outside a cluster the hub's own count is the truth and a change is delivered at once. In a
//! cluster the hub only reports its changes (`ClusterOutput::Presence`); what comes back as
//! `ClusterInput::Presence` — a change of the user's presence in the whole cluster — is
//! delivered. Presence frames are not stream entries: they are sent to the members connected
//! now, never kept for a replay.

use crate::cluster::Cluster;
use crate::directory::Directory;
use crate::id::{RoomId, UserId};
use crate::outputs::Outputs;
use crate::presence::{PresenceChange, PresenceEvent, Roster};
use crate::protocol::ServerFrame;
use crate::room::{Rooms, UserCount};

/// Whether `user` is new to `room` (before a connection of it becomes a member) or gone from
/// it (after one stopped being a member): true if none of its connections is in it. A user
/// has few connections (`Limits::max_connections_per_user`), each in a bounded number of
/// rooms, so this costs no memory per membership.
pub(super) fn user_count(conns: &Directory, user: &UserId, room: &RoomId) -> UserCount {
    let connections = conns.user_connections(user);
    match connections
        .iter()
        .any(|&c| conns.conn(c).membership(room).is_some())
    {
        true => UserCount::Unchanged,
        false => UserCount::Changed,
    }
}

/// `user` arrived in `room` or left it here: delivered now outside a cluster, handed to the
/// cluster in one.
pub(super) fn announce(
    conns: &mut Directory,
    rooms: &Rooms,
    cluster: &Cluster,
    out: &mut Outputs,
    (room, user): (&RoomId, &UserId),
    event: PresenceEvent,
) {
    let change = PresenceChange {
        room: room.clone(),
        user: user.clone(),
        event,
        users: rooms.users(room),
    };
    if !cluster.presence(change.clone(), out) {
        deliver(conns, rooms, cluster, out, &change);
    }
}

/// A `presence` frame for `change` to every member of its room here who watches, unless the
/// room holds more users than members are told about. Members of a room whose head is awaited
/// (shared streams) have not joined yet: their `joined` will list who is there.
pub(super) fn deliver(
    conns: &mut Directory,
    rooms: &Rooms,
    cluster: &Cluster,
    out: &mut Outputs,
    change: &PresenceChange,
) {
    if !rooms.presence().lists(change.users) || cluster.awaits(&change.room) {
        return;
    }
    let mut frame = None;
    for member in rooms.members(&change.room).iter().filter(|m| m.watches) {
        let frame = frame.get_or_insert_with(|| {
            ServerFrame::Presence {
                room: &change.room,
                event: change.event,
                user: &change.user,
            }
            .encode()
        });
        let _ = conns.offer(member.conn, frame, None, out);
    }
}

/// Who is in `room` here, for a `joined` that asked: the users, or only their count when there
/// are more than members are told about.
pub(super) fn roster(conns: &Directory, rooms: &Rooms, room: &RoomId) -> Roster {
    let count = rooms.users(room);
    let members = (rooms.presence().lists(count)).then(|| users(conns, rooms, room));
    Roster { members, count }
}

/// The users of `room`'s members, each once, sorted.
pub(super) fn users(conns: &Directory, rooms: &Rooms, room: &RoomId) -> Vec<UserId> {
    let members = rooms.members(room).iter();
    let mut users: Vec<UserId> = members.map(|m| conns.conn(m.conn).user.clone()).collect();
    users.sort_unstable();
    users.dedup();
    users
}
