//! Delivery: a publish rendered once and handed to every connection it addresses, numbered in
//! its stream and kept in its history (or, with shared streams, handed to the sequencer and
//! delivered when it comes back sealed).
//!
//! Everything a delivery touches is borrowed in [`Fanout`]: the connections and the rooms (who
//! reads), the streams (numbers and history), the cluster (envelopes, the sequencer, rooms whose
//! head is awaited), the sweep (a new stream or entry must expire) and the outputs. Not the
//! runs, not the waiters, not the configuration.

use crate::cluster::Cluster;
use crate::directory::Directory;
use crate::id::{ConnId, RoomId, ThreadId, UserId};
use crate::io::Delivery;
use crate::message::{Lane, Message};
use crate::mutation::{self, Fault};
use crate::outbox::{CoalesceKey, Origin};
use crate::outputs::Outputs;
use crate::protocol::{Sequence, ServerFrame};
use crate::reason::Reason;
use crate::room::Rooms;
use crate::run::Body;
use crate::sequenced::Tags;
use crate::stream::{Entry, Position, StreamId, Streams};
use crate::target::{Audience, Target};
use crate::timer::Sweep;
use bytes::Bytes;
use std::time::Instant;

/// The parts of the hub a delivery touches (see the module docs).
pub(super) struct Fanout<'h> {
    pub conns: &'h mut Directory,
    pub rooms: &'h mut Rooms,
    pub streams: &'h mut Streams,
    pub cluster: &'h mut Cluster,
    pub sweep: &'h mut Sweep,
    pub out: &'h mut Outputs,
}

impl Fanout<'_> {
    /// `room`'s stream, created (and swept from now on) if the hub keeps none.
    pub fn room_stream(&mut self, now: Instant, room: &RoomId) {
        if self.streams.create(&StreamId::Room(room.clone())) {
            self.sweep.schedule(now);
        }
    }

    /// Publish `message` to `audience`, as published by the application (`from` `None`) or by
    /// a client of user `from`: delivered here, and handed to the cluster as an envelope when
    /// other hubs may have to serve it.
    pub fn publish(
        &mut self,
        now: Instant,
        audience: &Audience,
        message: &Message,
        from: Option<&UserId>,
    ) -> Delivery {
        let delivery = self.deliver(now, audience, message, from);
        self.cluster.envelope(audience, message, from, self.out);
        delivery
    }

    /// Deliver `message` to `audience` here, as published by the application (`from` `None`)
    /// or by a client of user `from` (a room `publish` frame). The frame is rendered once and
    /// shared by every recipient.
    pub fn deliver(
        &mut self,
        now: Instant,
        audience: &Audience,
        message: &Message,
        from: Option<&UserId>,
    ) -> Delivery {
        self.out.counters.publishes += 1;
        let coalesce = match &message.lane {
            Lane::Reliable => None,
            Lane::Ephemeral { key } => Some(CoalesceKey::Ephemeral(key.clone())),
        };
        let frame =
            |sequence: Option<Sequence<'_>>, room: Option<&RoomId>, thread: Option<&ThreadId>| {
                ServerFrame::Message {
                    sequence,
                    room,
                    thread,
                    from,
                    event: &message.event,
                    data: &message.data,
                }
                .encode()
            };
        let except = &audience.except[..];
        match &audience.target {
            Target::User(user) | Target::Thread { user, .. } => {
                let thread = match &audience.target {
                    Target::Thread { thread, .. } => Some(thread),
                    _ => None,
                };
                if coalesce.is_some() {
                    let frame = frame(None, None, thread);
                    let (conns, out) = (&mut *self.conns, &mut *self.out);
                    let reached = conns.offer_user(
                        now,
                        user,
                        thread,
                        except,
                        &frame,
                        coalesce.as_ref(),
                        None,
                        out,
                    );
                    return Delivery {
                        reached,
                        ..Delivery::default()
                    };
                }
                let tags = Tags {
                    thread,
                    except,
                    ..Tags::default()
                };
                self.publish_to_user(now, user, tags, |seq| frame(Some(seq), None, thread))
            }
            Target::Room(room) => {
                let stream_id = StreamId::Room(room.clone());
                if coalesce.is_none() && self.cluster.shared() {
                    let sequence = Sequence {
                        stream: &stream_id,
                        position: None,
                    };
                    let template = frame(Some(sequence), Some(room), None);
                    let tags = Tags {
                        except,
                        ..Tags::default()
                    };
                    self.cluster.sequence(stream_id, tags, template, self.out);
                    return Delivery::default();
                }
                let sequenced = coalesce.is_none()
                    && (self.streams.contains_key(&stream_id)
                        || !self.rooms.members(room).is_empty());
                if sequenced {
                    self.room_stream(now, room);
                    let stream = self.streams.get_mut(&stream_id).expect("created above");
                    let position = stream.advance();
                    let bytes = frame(Some(Sequence::at(&stream_id, position)), Some(room), None);
                    self.commit_room(now, room, except, &bytes, Some(position), None)
                } else {
                    let bytes = frame(None, Some(room), None);
                    self.commit_room(now, room, except, &bytes, None, coalesce.as_ref())
                }
            }
            Target::Connection(id) => {
                let frame = frame(None, None, None);
                let reached = match self.conns.check(*id) {
                    Ok(()) if !audience.excludes(*id) => {
                        let (conns, out) = (&mut *self.conns, &mut *self.out);
                        usize::from(conns.offer(*id, &frame, coalesce.as_ref(), Origin::Live, out))
                    }
                    Ok(()) => 0,
                    Err(_) => {
                        self.out.counters.drops.add(Reason::UnknownConnection);
                        0
                    }
                };
                Delivery {
                    reached,
                    ..Delivery::default()
                }
            }
            Target::All => {
                let frame = frame(None, None, None);
                let (conns, out) = (&mut *self.conns, &mut *self.out);
                Delivery {
                    reached: conns.offer_all(except, &frame, coalesce.as_ref(), out),
                    ..Delivery::default()
                }
            }
        }
    }

    /// Sequence a frame in `user`'s stream, keep it in history, and hand it to the user's
    /// connections that `tags` select; with shared streams, hand it to the sequencer instead.
    pub fn publish_to_user(
        &mut self,
        now: Instant,
        user: &UserId,
        tags: Tags<'_>,
        build: impl FnOnce(Sequence<'_>) -> Bytes,
    ) -> Delivery {
        let stream_id = StreamId::User(user.clone());
        if self.cluster.shared() {
            let template = build(Sequence {
                stream: &stream_id,
                position: None,
            });
            self.cluster.sequence(stream_id, tags, template, self.out);
            return Delivery::default();
        }
        self.streams.create(&stream_id);
        let stream = self.streams.get_mut(&stream_id).expect("created above");
        let position = stream.advance();
        let on_wire = if mutation::injected(Fault::MessageSeq) {
            Position {
                seq: position.seq + 1,
                ..position
            }
        } else {
            position
        };
        let frame = build(Sequence::at(&stream_id, on_wire));
        // This hub is the whole world: nobody else delivered it.
        self.commit_user(now, user, tags, position, frame, true)
    }

    /// Hand `frame`, at `position` of `user`'s stream, to the user's connections that `tags`
    /// select, and keep it in the stream's history; pending if none selects it and, for a
    /// user without connections here, nobody received it (`undelivered`).
    pub fn commit_user(
        &mut self,
        now: Instant,
        user: &UserId,
        tags: Tags<'_>,
        position: Position,
        frame: Bytes,
        undelivered: bool,
    ) -> Delivery {
        let Tags {
            thread,
            except,
            run,
            coalesce,
        } = tags;
        let seq = position.seq;
        // With no open connection that selects it (whatever `except` says), the entry waits
        // for the next one that does; a connection left out by `except` was meant to miss it.
        // For a user with no connection here, that is the sequencer's call: another hub may
        // have delivered it.
        let connected = self.conns.is_connected(user);
        let pending = !self.conns.selects(user, thread) && (undelivered || connected);
        let (conns, out) = (&mut *self.conns, &mut *self.out);
        let reached = conns.offer_user(now, user, thread, except, &frame, coalesce, Some(seq), out);
        let entry = Entry {
            seq,
            at: now,
            body: Body::Frame(frame),
            thread: thread.cloned(),
            run: run.cloned(),
            coalesce: coalesce.cloned(),
            pending,
        };
        self.streams.append(&StreamId::User(user.clone()), entry);
        self.sweep.schedule(now);
        Delivery {
            reached,
            position: Some(position),
            buffered: pending,
        }
    }

    /// Hand `frame` to the members of `room` (but `except`), and keep it in the room's history
    /// when it has a `position`.
    pub fn commit_room(
        &mut self,
        now: Instant,
        room: &RoomId,
        except: &[ConnId],
        frame: &Bytes,
        position: Option<Position>,
        coalesce: Option<&CoalesceKey>,
    ) -> Delivery {
        // Members of a room whose head is awaited have not joined yet.
        if self.cluster.awaits(room) {
            return Delivery::default();
        }
        if let Some(Position { seq, .. }) = position {
            let entry = Entry {
                seq,
                at: now,
                body: Body::Frame(frame.clone()),
                thread: None,
                run: None,
                coalesce: None,
                // Rooms have no offline buffering: a member that joins later asks for history
                // with `since`.
                pending: false,
            };
            self.streams.append(&StreamId::Room(room.clone()), entry);
        }
        let mut reached = 0;
        for member in self.rooms.members_mut(room) {
            let behind = position.is_some_and(|p| p.seq < member.from);
            if except.contains(&member.conn) || behind {
                continue;
            }
            if let (Some(p), 0) = (position, member.from) {
                member.from = p.seq;
            }
            reached += usize::from((self.conns).offer(
                member.conn,
                frame,
                coalesce,
                Origin::Live,
                self.out,
            ));
        }
        Delivery {
            reached,
            position,
            buffered: false,
        }
    }
}
