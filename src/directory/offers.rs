//! Handing connections frames: the only way a frame reaches a connection is through its
//! outbox, here ([`Directory::offer`] and its kin), counted, with the gauges and the
//! connection's flush deadline kept.

use super::Directory;
use crate::config::BackpressureConfig;
use crate::connection::Connection;
use crate::error::UnknownConnection;
use crate::id::{ConnId, ThreadId, UserId};
use crate::outbox::{Backlog, CoalesceKey, Flush, Offer, Origin, Outbox};
use crate::outputs::Outputs;
use crate::reason::Reason;
use crate::run::Delta;
use crate::timer::Timers;
use bytes::Bytes;
use hashbrown::HashMap;
use slab::Slab;
use smallvec::SmallVec;
use std::time::Instant;

impl Directory {
    // ----- frames to connections --------------------------------------------------------------

    /// The connections apart from what handing them a frame touches.
    pub(super) fn split<'d>(&'d mut self, out: &'d mut Outputs) -> Split<'d> {
        let Directory {
            shard,
            conns,
            generations,
            users,
            flushes,
            gauges,
            backpressure,
            ..
        } = self;
        let sink = Sink {
            flushes,
            backlog: &mut gauges.backlog,
            limits: backpressure,
            out,
        };
        Split {
            shard: *shard,
            conns,
            generations,
            users,
            sink,
        }
    }

    /// Offer `frame` to `id` (open) through its outbox, from `origin`. True if it was sent or
    /// queued.
    pub fn offer(
        &mut self,
        id: ConnId,
        frame: &Bytes,
        coalesce: Option<&CoalesceKey>,
        origin: Origin,
        out: &mut Outputs,
    ) -> bool {
        let Split {
            conns, mut sink, ..
        } = self.split(out);
        sink.offer(
            id,
            &mut conns[id.index()],
            |outbox, limits, backlog, send| {
                outbox.offer(frame.clone(), coalesce, origin, limits, backlog, send)
            },
        )
    }

    /// Offer `frame` to every open connection but `except`. Returns how many took it.
    pub fn offer_all(
        &mut self,
        except: &[ConnId],
        frame: &Bytes,
        coalesce: Option<&CoalesceKey>,
        out: &mut Outputs,
    ) -> usize {
        let Split {
            shard,
            conns,
            generations,
            mut sink,
            ..
        } = self.split(out);
        let mut reached = 0;
        for (index, conn) in conns.iter_mut() {
            let id = ConnId::new(shard, index, generations[index]);
            if !except.contains(&id) {
                reached += usize::from(sink.offer(id, conn, |outbox, limits, backlog, send| {
                    outbox.offer(frame.clone(), coalesce, Origin::Live, limits, backlog, send)
                }));
            }
        }
        reached
    }

    /// Offer `frame` to the connections of `user` that select `thread`, but `except`; with a
    /// `seq` (an entry of the user's stream), not to those positioned after it, and those not
    /// positioned yet are from now on. A message delta (at `now`) is rolled up in its flush
    /// window for a connection that keeps up (`outbox`). Returns how many took it.
    #[allow(clippy::too_many_arguments)]
    pub fn offer_user(
        &mut self,
        now: Instant,
        user: &UserId,
        thread: Option<&ThreadId>,
        except: &[ConnId],
        frame: &Bytes,
        coalesce: Option<&CoalesceKey>,
        seq: Option<u64>,
        out: &mut Outputs,
    ) -> usize {
        // A delta is parsed once for every reader's window.
        let window = match coalesce {
            Some(key @ CoalesceKey::Message(..)) if !self.message_flush.is_zero() => {
                let width = self.message_flush;
                Delta::parse(frame).map(|delta| (key, Flush { now, width }, delta))
            }
            _ => None,
        };
        let Split {
            conns,
            users,
            mut sink,
            ..
        } = self.split(out);
        let ids = users.get(user).map_or(&[][..], |c| c.as_slice());
        let mut reached = 0;
        for &id in ids {
            let conn = &mut conns[id.index()];
            // A connection positioned after this entry has it (shared streams: it read it
            // on another hub).
            let behind = seq.is_some_and(|seq| seq < conn.user_from);
            if except.contains(&id) || !conn.wants_thread(thread) || behind {
                continue;
            }
            if let (Some(seq), 0) = (seq, conn.user_from) {
                conn.user_from = seq;
            }
            let took = sink.offer(id, conn, |outbox, limits, backlog, send| match window {
                Some((key, flush, ref delta)) => {
                    let frame = frame.clone();
                    outbox.offer_windowed(frame, delta, key, flush, limits, backlog, send)
                }
                None => outbox.offer(frame.clone(), coalesce, Origin::Live, limits, backlog, send),
            });
            reached += usize::from(took);
        }
        reached
    }

    /// The transport wrote `bytes` of `id`'s frames: release what now fits its budget.
    pub fn flushed(
        &mut self,
        id: ConnId,
        bytes: usize,
        out: &mut Outputs,
    ) -> Result<(), UnknownConnection> {
        self.check(id)?;
        let conn = &mut self.conns[id.index()];
        let mut released = SmallVec::<[Bytes; 4]>::new();
        let backlog = &mut self.gauges.backlog;
        let awaited = conn.outbox.awaits_flush();
        (conn.outbox).flushed(bytes, &self.backpressure, backlog, |f| released.push(f));
        for frame in released {
            send(id, conn, frame, out);
        }
        tell_awaiting(id, awaited, conn, out);
        Ok(())
    }
}

/// The connections, apart from what handing them a frame touches ([`Directory::split`]).
pub(super) struct Split<'d> {
    pub shard: u8,
    pub conns: &'d mut Slab<Connection>,
    pub generations: &'d [u32],
    pub users: &'d HashMap<UserId, SmallVec<[ConnId; 3]>>,
    pub sink: Sink<'d>,
}

/// What handing a frame to a connection touches besides the connection.
pub(super) struct Sink<'d> {
    flushes: &'d mut Timers<ConnId>,
    backlog: &'d mut Backlog,
    limits: &'d BackpressureConfig,
    out: &'d mut Outputs,
}

/// What an outbox operation hands a frame that goes out now to.
type SendNow<'a> = dyn FnMut(Bytes) + 'a;

impl Sink<'_> {
    /// Run `offer` on `id`'s outbox: hand out what it sends, settle what it decided, and move
    /// the connection's flush deadline. True if the frame was sent, queued or held.
    pub fn offer(
        &mut self,
        id: ConnId,
        conn: &mut Connection,
        offer: impl FnOnce(&mut Outbox, &BackpressureConfig, &mut Backlog, &mut SendNow<'_>) -> Offer,
    ) -> bool {
        let due = conn.outbox.window_due();
        let awaited = conn.outbox.awaits_flush();
        let mut sent = SmallVec::<[Bytes; 2]>::new();
        let offer = offer(&mut conn.outbox, self.limits, self.backlog, &mut |f| {
            sent.push(f)
        });
        self.flushes.set(id, due, conn.outbox.window_due());
        for frame in sent {
            send(id, conn, frame, self.out);
        }
        tell_awaiting(id, awaited, conn, self.out);
        settle(id, offer, conn, self.out)
    }
}

/// Tell the transport when `id`'s outbox began or stopped holding frames for its next report
/// (it `awaited` one before the operation).
fn tell_awaiting(id: ConnId, awaited: bool, conn: &Connection, out: &mut Outputs) {
    let awaits = conn.outbox.awaits_flush();
    if awaits != awaited {
        out.awaiting_flush(id, awaits);
    }
}

/// Act on what `id`'s outbox decided for a frame (what it sent is sent). True if it was sent,
/// queued or held.
fn settle(id: ConnId, offer: Offer, conn: &mut Connection, out: &mut Outputs) -> bool {
    match offer {
        Offer::Sent | Offer::Held | Offer::Queued | Offer::Appended => true,
        Offer::Coalesced => {
            out.counters.drops.add(Reason::Coalesced);
            true
        }
        Offer::Shed => {
            out.counters.drops.add(Reason::Shed);
            false
        }
        Offer::Overflow => {
            // Reported once: a connection that overflows again in the same operation (a
            // batch, a replay) is already to be closed.
            if conn.outbox.first_overflow() {
                out.overflowed(id);
            }
            false
        }
    }
}

/// Hand `frame` to the transport for `id`, counted on the connection.
pub(super) fn send(id: ConnId, conn: &mut Connection, frame: Bytes, out: &mut Outputs) {
    conn.traffic.messages_out += 1;
    conn.traffic.bytes_out += frame.len() as u64;
    out.send(id, frame);
}
