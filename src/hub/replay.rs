//! Replay: sending a connection the entries of a stream it missed, from history, in stream
//! order, after a `gap` when history does not reach back; and the `resume` answers.
//!
//! A replay happens when a connection opens (its user stream, after `welcome`), binds to a
//! thread (runs in progress there and what waited for it), joins a room with `since`, or asks
//! to `resume` a stream. Replayed frames are the stored bytes, offered to the outbox as
//! [`Origin::Replay`] (outside its queue limits). Each connection remembers, per stream, the
//! first sequence number from which it has everything its thread selects
//! (`Connection::user_from`, `Member::from`), so that a later `resume` never replays what
//! flowed live.

use super::reply::Reply;
use crate::directory::Directory;
use crate::id::{ConnId, RoomId};
use crate::mutation::{self, Fault};
use crate::outbox::Origin;
use crate::outputs::Outputs;
use crate::protocol::{ErrorCode, Sequence, ServerFrame};
use crate::room::Rooms;
use crate::stream::{Gap, Position, StreamId, Streams};
use smallvec::SmallVec;

/// Which entries before the replay's starting point a replay also sends.
pub(super) struct Older {
    /// Every kept entry of the runs in progress that the connection has not seen (late
    /// joiners).
    pub runs: InProgress,
    /// Entries published while no connection that selects them was open.
    pub pending: bool,
}

/// Which runs in progress a connection has not seen the entries so far of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InProgress {
    /// None: a room has no runs, and a resume follows what the reader saw.
    None,
    /// Those on its thread: it just bound to it, and had those without a thread already.
    OfThread,
    /// Those on its thread and those without one: it just opened.
    Received,
}

impl Older {
    /// Nothing older (a room, or a resume).
    pub const NONE: Older = Older {
        runs: InProgress::None,
        pending: false,
    };
}

/// Tell `reply.conn` that it cannot receive `gap` of `stream` (in `epoch`).
pub(super) fn send_gap(
    conns: &mut Directory,
    out: &mut Outputs,
    reply: Reply<'_>,
    stream: &StreamId,
    epoch: u64,
    gap: Gap,
) {
    out.counters.gaps += 1;
    let frame = ServerFrame::Gap {
        stream,
        epoch,
        from: gap.from,
        to: gap.to,
        reason: gap.reason,
    };
    reply.send(conns, out, &frame);
}

/// Replay `stream_id` to `id` after `after` (opening with a `gap` frame if history does not
/// reach back, or the epoch changed), plus the older entries of `older`, keeping to what the
/// connection's thread selects. Returns the first sequence number the connection now has
/// every message from and how many frames were replayed, or `None` if the hub keeps no such
/// stream.
pub(super) fn replay(
    conns: &mut Directory,
    streams: &mut Streams,
    out: &mut Outputs,
    id: ConnId,
    stream_id: &StreamId,
    after: Option<Position>,
    older: &Older,
) -> Option<(u64, usize)> {
    let shared = streams.shared();
    let stream = streams.get_mut(stream_id)?;
    let conn = conns.conn(id);
    // Pending entries lost to the history bounds are announced to the first connection that
    // would have received them; one with a position learns of its losses from that.
    let lost = match older.pending {
        true => stream.take_lost(conn.thread.as_ref()),
        false => None,
    };
    if let Some(p) = after.filter(|_| shared) {
        // With shared streams a stream this hub never received an entry of numbers as the
        // reader's does; the reader stands ahead of it (below), not the others with it.
        stream.take_epoch(p);
    }
    let head = stream.position();
    let (gap, from) = match after {
        // With shared streams a reader may be ahead of this hub, which has not received the
        // latest entries yet: it is positioned after what it has, and nothing is lost.
        Some(p) if shared && p.epoch == head.epoch && p.seq > head.seq => {
            (None, p.seq.saturating_add(1))
        }
        Some(p) => stream.catch_up_from(p),
        None => (lost, head.seq.saturating_add(1)),
    };
    if let Some(gap) = gap {
        let epoch = stream.epoch();
        send_gap(conns, out, Reply::to(id), stream_id, epoch, gap);
    }
    let stream = streams.get_mut(stream_id).expect("looked up above");
    let thread = conns.conn(id).thread.as_ref();
    let runs = match older.runs {
        InProgress::None => SmallVec::new(),
        scope => stream.runs_in_progress(|t| match t {
            Some(t) => Some(t) == thread,
            None => scope == InProgress::Received,
        }),
    };
    let with_older = !runs.is_empty() || (older.pending && stream.has_pending());
    let mut claimed: SmallVec<[u64; 8]> = SmallVec::new();
    let mut replayed = 0;
    for e in stream.entries_from(if with_older { 0 } else { from }) {
        let wanted = e.seq >= from
            || e.pending && older.pending
            || e.run.as_ref().is_some_and(|r| runs.contains(&r.id));
        if wanted && conns.conn(id).wants_thread(e.thread.as_ref()) {
            replayed += 1;
            if e.pending {
                claimed.push(e.seq);
            }
            conns.offer(
                id,
                &e.body.frame(),
                e.coalesce.as_ref(),
                Origin::Replay,
                out,
            );
        }
    }
    for seq in claimed {
        stream.claim(seq);
    }
    out.counters.replayed += replayed as u64;
    Some((from, replayed))
}

/// Replay the user stream to a connection that just opened: what followed `resume`, or,
/// without a position, the events so far of runs in progress that it receives; and, either
/// way, what waited for a connection like it (published while none was open).
pub(super) fn catch_up_user(
    conns: &mut Directory,
    streams: &mut Streams,
    out: &mut Outputs,
    id: ConnId,
    resume: Option<Position>,
) {
    let stream_id = StreamId::User(conns.conn(id).user.clone());
    let older = Older {
        // A client with a position saw the runs' earlier events: it gets what follows.
        runs: match resume {
            Some(_) => InProgress::None,
            None => InProgress::Received,
        },
        pending: true,
    };
    if let Some((from, replayed)) = replay(conns, streams, out, id, &stream_id, resume, &older) {
        // Positioned from here: a later `resume` frame cannot replay these frames again.
        if resume.is_some() || replayed > 0 {
            conns.conn_mut(id).user_from = from;
        }
    }
}

/// Send a connection that just bound to a thread the events so far of runs in progress
/// there, and what waited for a connection of that thread.
pub(super) fn catch_up_thread(
    conns: &mut Directory,
    streams: &mut Streams,
    out: &mut Outputs,
    id: ConnId,
) {
    let stream_id = StreamId::User(conns.conn(id).user.clone());
    let older = Older {
        runs: InProgress::OfThread,
        pending: true,
    };
    let _ = replay(conns, streams, out, id, &stream_id, None, &older);
}

/// Replay `room`'s stream to `id` after `after`, if it is a member (a join answered late may
/// have left meanwhile); the member is positioned from where the replay leaves it.
pub(super) fn catch_up_room(
    conns: &mut Directory,
    rooms: &mut Rooms,
    streams: &mut Streams,
    out: &mut Outputs,
    id: ConnId,
    room: &RoomId,
    after: Position,
) {
    let Some(slot) = conns.conn(id).membership(room).map(|m| m.slot) else {
        return;
    };
    let stream_id = StreamId::Room(room.clone());
    let replayed = replay(
        conns,
        streams,
        out,
        id,
        &stream_id,
        Some(after),
        &Older::NONE,
    );
    if let Some((from, _)) = replayed {
        if let Some(member) = rooms.member_mut(room, slot) {
            member.from = from;
        }
    }
}

/// Answer a `resume` of the user's own stream.
pub(super) fn resume_user(
    conns: &mut Directory,
    streams: &mut Streams,
    out: &mut Outputs,
    reply: Reply<'_>,
    position: Position,
) {
    let conn = conns.conn(reply.conn);
    let stream_id = StreamId::User(conn.user.clone());
    match positioned(conn.user_from, position, streams.position(&stream_id)) {
        Positioned::No => catch_up_user(conns, streams, out, reply.conn, Some(position)),
        Positioned::UpToDate => {}
        Positioned::Behind => {
            let hint = "live messages already flowed on this stream: reconnect with the position";
            return reply.error(conns, out, ErrorCode::AlreadyLive, hint);
        }
    }
    reply_resumed(conns, streams, out, reply, &stream_id);
}

/// Answer a `resume` of a room the connection is in (or a `join` of it with `since`).
pub(super) fn resume_room(
    conns: &mut Directory,
    rooms: &mut Rooms,
    streams: &mut Streams,
    out: &mut Outputs,
    reply: Reply<'_>,
    room: &RoomId,
    position: Position,
) {
    let membership = conns.conn(reply.conn).membership(room);
    let slot = membership.expect("caller checked membership").slot;
    let stream_id = StreamId::Room(room.clone());
    let from = rooms.members(room)[slot].from;
    match positioned(from, position, streams.position(&stream_id)) {
        Positioned::No => catch_up_room(conns, rooms, streams, out, reply.conn, room, position),
        Positioned::UpToDate => {}
        Positioned::Behind => {
            let hint = "live messages already flowed on this stream: rejoin with `since`";
            return reply.error(conns, out, ErrorCode::AlreadyLive, hint);
        }
    }
    reply_resumed(conns, streams, out, reply, &stream_id);
}

fn reply_resumed(
    conns: &mut Directory,
    streams: &Streams,
    out: &mut Outputs,
    reply: Reply<'_>,
    stream: &StreamId,
) {
    let frame = ServerFrame::Resumed {
        sequence: Sequence::at(stream, streams.position(stream)),
        reference: reply.reference,
    };
    reply.send(conns, out, &frame);
}

/// Where a connection stands on a stream when it asks to resume from `position`.
#[derive(Debug, PartialEq, Eq)]
enum Positioned {
    /// Nothing delivered on the stream yet: replay after the position.
    No,
    /// Everything after the position was already delivered.
    UpToDate,
    /// Live messages flowed and the position is older: replaying now would reorder.
    Behind,
}

/// Where a connection that has everything of a stream from `from` (0: nothing yet) stands,
/// asking to resume after `position` of the stream at `current`.
fn positioned(from: u64, position: Position, current: Position) -> Positioned {
    let next = if mutation::injected(Fault::AlreadyLive) {
        position.seq
    } else {
        position.seq.saturating_add(1)
    };
    if from == 0 {
        Positioned::No
    } else if position.epoch == current.epoch && next >= from {
        Positioned::UpToDate
    } else {
        Positioned::Behind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_replays_only_before_live_frames_or_when_nothing_is_missing() {
        let at = |epoch, seq| Position { epoch, seq };
        let current = at(2, 10);
        assert_eq!(positioned(0, at(2, 3), current), Positioned::No);
        assert_eq!(positioned(5, at(2, 4), current), Positioned::UpToDate);
        assert_eq!(positioned(5, at(2, 9), current), Positioned::UpToDate);
        assert_eq!(positioned(5, at(2, 3), current), Positioned::Behind);
        assert_eq!(
            positioned(5, at(1, 9), current),
            Positioned::Behind,
            "another epoch"
        );
    }
}
