//! Presence rules: a user's arrival in or departure from a room announced to the members who
//! watch, and the member list a watching member gets in `joined`.
//!
//! Outside a cluster the hub's own members are the truth and a change is delivered at once. In
//! a cluster (the shards of a process, or nodes) the hub only reports its changes
//! (`ClusterOutput::Presence`); what comes back as `ClusterInput::Presence` — a change of the
//! user's presence in the whole cluster — is remembered for the rooms served here (`Told`) and
//! delivered, once: a change that changes nothing the hub was told (the cluster telling a hub
//! that starts serving a room who is already in it) is not delivered again. `joined` lists
//! what the hub was told, and the joining member's own user. Presence frames are not stream
//! entries: they are sent to the members connected now, never kept for a replay.

use crate::cluster::Cluster;
use crate::directory::Directory;
use crate::id::{RoomId, UserId};
use crate::outbox::Origin;
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
        send(conns, rooms, cluster, out, &change);
    }
}

/// What the cluster tells (`ClusterInput::Presence`): remembered for a room served here and,
/// if it changes what the hub was told, delivered.
pub(super) fn told(
    conns: &mut Directory,
    rooms: &mut Rooms,
    cluster: &Cluster,
    out: &mut Outputs,
    change: &PresenceChange,
) {
    if rooms.tell(change) {
        send(conns, rooms, cluster, out, change);
    }
}

/// A `presence` frame for `change` to every member of its room here who watches, unless the
/// room holds more users than members are told about. Members of a room whose head is awaited
/// (shared streams) have not joined yet: their `joined` will list who is there.
fn send(
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
        let _ = conns.offer(member.conn, frame, None, Origin::Live, out);
    }
}

/// Who is in `room`, for a `joined` to a connection of `user` that asked: the users (here, or
/// in a cluster as told, with `user`), or only their count when there are more than members
/// are told about.
pub(super) fn roster(
    conns: &Directory,
    rooms: &Rooms,
    cluster: &Cluster,
    room: &RoomId,
    user: &UserId,
) -> Roster {
    // Users are counted as they come and go (here, or as told): a room too large to list is
    // answered without walking its members, which any client may ask for on every join.
    let count = match cluster.decides_presence() {
        true => rooms.told().count_with(room, user),
        false => rooms.users(room),
    };
    if !rooms.presence().lists(count) {
        return Roster {
            members: None,
            count,
        };
    }
    let users = match cluster.decides_presence() {
        true => each_once(rooms.told().users(room).chain([user]).cloned().collect()),
        false => users(conns, rooms, room),
    };
    Roster {
        count: users.len(),
        members: Some(users),
    }
}

/// The users of `room`'s members, each once, sorted.
pub(super) fn users(conns: &Directory, rooms: &Rooms, room: &RoomId) -> Vec<UserId> {
    let members = rooms.members(room).iter();
    each_once(members.map(|m| conns.conn(m.conn).user.clone()).collect())
}

/// `users` sorted, each once.
fn each_once(mut users: Vec<UserId>) -> Vec<UserId> {
    users.sort_unstable();
    users.dedup();
    users
}
