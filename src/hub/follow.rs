//! Following the cluster: what other hubs and the cluster's sequencer feed this hub.
//!
//! An [`Envelope`] is another hub's publish, delivered here as if published here. With shared
//! streams, a [`Sequenced`] entry is delivered in its stream's order (an entry already taken is
//! ignored; one after a hole first tells the stream's readers what they cannot receive), an
//! older entry from the shared history is kept for replays only, and a stream's head tells a
//! fresh stream where to start and answers the joins that waited for it.

use super::delivery::Fanout;
use super::membership;
use super::replay;
use super::reply::Reply;
use crate::id::ConnId;
use crate::io::Envelope;
use crate::run::Body;
use crate::sequenced::{Sequenced, Tags};
use crate::stream::{AlreadyTaken, Entry, Position, StreamId};
use std::time::Instant;

/// A publish from another hub: delivered here as if published here, unless the sequencer
/// brings it (shared streams: it would be numbered a second time).
pub(super) fn envelope(f: &mut Fanout<'_>, now: Instant, envelope: &Envelope) {
    let audience = envelope.audience();
    if !f
        .cluster
        .sequenced_outside(&audience.target, &envelope.message)
    {
        let from = envelope.from.as_ref();
        f.deliver(now, &audience, &envelope.message, from);
    }
}

/// A stream entry sealed by the cluster's sequencer: delivered here in the stream's order.
pub(super) fn sequenced(f: &mut Fanout<'_>, now: Instant, sealed: &Sequenced) {
    let entry = &sealed.entry;
    match &entry.stream {
        StreamId::User(user) => {
            f.streams.create(&entry.stream);
            if !adopt(f, &entry.stream, sealed.position) {
                return;
            }
            let (coalesce, run) = (entry.coalesce(), entry.run_tag());
            let tags = Tags {
                thread: entry.thread.as_ref(),
                except: &entry.except,
                run: run.as_ref(),
                coalesce: coalesce.as_ref(),
            };
            let frame = sealed.frame.clone();
            f.commit_user(now, user, tags, sealed.position, frame, entry.undelivered);
        }
        StreamId::Room(room) => {
            // A room without members here has no readers to keep history for; one whose
            // head is awaited has members only from that head on.
            if f.rooms.members(room).is_empty() || f.cluster.awaits(room) {
                return;
            }
            f.room_stream(now, room);
            if adopt(f, &entry.stream, sealed.position) {
                let (frame, position) = (&sealed.frame, Some(sealed.position));
                f.commit_room(now, room, &entry.except, frame, position, None);
            }
        }
    }
}

/// An older entry of a stream from the shared history, fed newest first: kept for replays (a
/// resume, a join with `since`, offline buffering) and delivered to no one now.
pub(super) fn history(f: &mut Fanout<'_>, now: Instant, sealed: &Sequenced) {
    let entry = &sealed.entry;
    match &entry.stream {
        StreamId::User(_) => {
            f.streams.create(&entry.stream);
        }
        StreamId::Room(room) if !f.rooms.members(room).is_empty() => f.room_stream(now, room),
        StreamId::Room(_) => return,
    }
    let kept = Entry {
        seq: sealed.position.seq,
        at: now,
        body: Body::Frame(sealed.frame.clone()),
        thread: entry.thread.clone(),
        run: entry.run_tag(),
        coalesce: entry.coalesce(),
        // Nobody received it live: it waits for the user's next connection.
        pending: entry.undelivered,
    };
    if f.streams.restore(&entry.stream, sealed.position, kept) {
        f.sweep.schedule(now);
    }
}

/// The sequencer's head of a stream this hub started serving: entries after it will be
/// handed to the hub. A fresh stream starts there; a room's waiting joins are answered.
pub(super) fn stream_head(
    f: &mut Fanout<'_>,
    now: Instant,
    stream_id: &StreamId,
    head: Option<Position>,
) {
    match stream_id {
        StreamId::User(_) => {
            f.streams.create(stream_id);
        }
        StreamId::Room(room) if !f.rooms.members(room).is_empty() => f.room_stream(now, room),
        StreamId::Room(_) => return,
    }
    if let Some(head) = head {
        let stream = f.streams.get_mut(stream_id).expect("created above");
        stream.start_at(head);
    }
    if let StreamId::Room(room) = stream_id {
        for join in f.cluster.head_arrived(room) {
            if f.conns.check(join.conn).is_ok() {
                let reply = Reply::asked(join.conn, join.reference.as_deref());
                membership::answer_join(f, reply, room, join.since);
            }
        }
    }
}

/// Take `position` as the next of `stream_id` (which exists). False for an entry already
/// taken. After a hole or in a new epoch, the stream's live readers get a `gap` first.
fn adopt(f: &mut Fanout<'_>, stream_id: &StreamId, position: Position) -> bool {
    let gap = match f.streams.adopt(stream_id, position) {
        Err(AlreadyTaken) => {
            f.out.counters.duplicates += 1;
            return false;
        }
        Ok(gap) => gap,
    };
    if let Some(gap) = gap {
        for (id, from) in readers(f, stream_id) {
            // A reader that came positioned ahead of this hub misses only what follows it.
            if let Some(gap) = gap.seen_from(from) {
                let (conns, out) = (&mut *f.conns, &mut *f.out);
                replay::send_gap(conns, out, Reply::to(id), stream_id, position.epoch, gap);
            }
        }
    }
    true
}

/// The connections reading `stream_id` here (the user's, or the room's members), each with
/// the number it has every entry from.
fn readers(f: &Fanout<'_>, stream_id: &StreamId) -> Vec<(ConnId, u64)> {
    match stream_id {
        StreamId::User(user) => (f.conns.user_connections(user).iter())
            .map(|&id| (id, f.conns.conn(id).user_from))
            .collect(),
        StreamId::Room(room) => f
            .rooms
            .members(room)
            .iter()
            .map(|m| (m.conn, m.from))
            .collect(),
    }
}
