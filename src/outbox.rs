//! Backpressure for one connection: an in-flight budget, then a bounded queue with a lossy
//! lane and a reliable lane.
//!
//! The hub hands a frame to the transport only while the bytes it handed out and the transport
//! has not yet reported flushed stay within `inflight_bytes`. Past that, frames wait here.
//! A frame with a coalescing key (agent thinking, ephemeral messages) replaces the queued frame
//! with the same key, so a slow reader gets the latest state, not a backlog. A message delta
//! is appended to the queued delta of its message it follows (the append lane: the text is
//! joined, never dropped), so a slow reader gets one frame per message. A reliable frame
//! that does not fit the queue is an [`Offer::Overflow`]: the hub closes the connection as a slow
//! consumer, and the client resumes. Nothing is dropped silently.
//!
//! A live reader that keeps up gets a message's deltas rolled up per flush window (module
//! `window`): the first delta goes out at once, those that follow within the window wait
//! joined and go out together when it closes.
//!
//! Replayed frames (catch-up from history on open, bind, join with `since` and `resume`) are
//! queued outside those limits: counting them would close a client with a long replay as a
//! slow consumer before it could read anything, again on every reconnect. They have their own
//! bound, `replay_messages` (one full history for every stream a connection may be on), since
//! a client that joins, leaves and joins again with `since` without reading could otherwise
//! queue history without end. Live frames behind a replay are still held to the queue
//! limits, counted without the replay.

use crate::config::BackpressureConfig;
use crate::id::RunId;
use crate::mutation::{self, Fault};
use crate::run::{Body, Delta};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;

mod window;

pub(crate) use window::Flush;
use window::Window;

/// What replaces what in the lossy lane (frames with equal keys supersede each other), or
/// joins what in the append lane. The kinds never collide, whatever keys an application picks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CoalesceKey {
    /// The `agent_thinking` frames of one run.
    Thinking(RunId),
    /// Ephemeral messages with the application's key.
    Ephemeral(Arc<str>),
    /// The `agent_message_delta` frames of one message of a run: joined, never dropped.
    Message(RunId, Arc<str>),
}

impl CoalesceKey {
    /// True for the lossy lane: a frame that does not fit is shed.
    fn lossy(&self) -> bool {
        !matches!(self, CoalesceKey::Message(..))
    }
}

/// Where a frame comes from: the queue limits hold live frames only (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A frame produced now: held to the queue limits; a message delta joins the live delta
    /// of its message queued before it.
    Live,
    /// A frame replayed from history (catch-up on open, bind, join with `since`, `resume`):
    /// queued outside the limits (it never overflows them itself; a live delta a flush window
    /// held and released ahead of it still may), never joined.
    Replay,
}

#[derive(Debug)]
struct Queued {
    body: Body,
    coalesce: Option<CoalesceKey>,
    origin: Origin,
}

/// The result of offering a frame to a connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Offer {
    /// The frame was handed to the transport (through `send`).
    Sent,
    /// A message delta waits, joined, for its flush window to close (module `window`).
    Held,
    /// The frame waits in the queue.
    Queued,
    /// The frame replaced an older queued frame with the same key.
    Coalesced,
    /// The frame was joined to the queued delta of its message (nothing dropped).
    Appended,
    /// An ephemeral frame did not fit and was dropped (the lossy lane).
    Shed,
    /// A reliable frame did not fit: the connection is a slow consumer.
    Overflow,
}

/// What the connections' outboxes hold: frames and bytes queued, bytes in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Backlog {
    pub queued_messages: usize,
    pub queued_bytes: usize,
    pub inflight_bytes: usize,
}

impl Backlog {
    /// One outbox went from holding `before` to holding `after`.
    pub fn shift(&mut self, before: Backlog, after: Backlog) {
        self.queued_messages =
            self.queued_messages + after.queued_messages - before.queued_messages;
        self.queued_bytes = self.queued_bytes + after.queued_bytes - before.queued_bytes;
        self.inflight_bytes = self.inflight_bytes + after.inflight_bytes - before.inflight_bytes;
    }
}

/// In-flight accounting and the queue of one connection.
///
/// The queue's state lives behind a box that is allocated the first time the connection falls
/// behind and kept afterwards: a connection that keeps up (most of them, most of the time)
/// carries 16 bytes here instead of 64.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    inflight: usize,
    queue: Option<Box<Queue>>,
}

/// The frames waiting past the in-flight budget.
#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<Queued>,
    queued_bytes: usize,
    /// The share of the queue that is replay, exempt from the limits.
    replay_messages: usize,
    replay_bytes: usize,
    /// A live message's flush window, while one is open.
    window: Option<Window>,
    /// A reliable frame did not fit: the connection is closed as a slow consumer at the end
    /// of the operation, which need not hear of it again.
    overflowed: bool,
}

impl Queue {
    /// Take a frame that left the queue out of the accounting.
    fn forget(&mut self, q: &Queued) {
        self.queued_bytes -= q.body.len();
        if q.origin == Origin::Replay {
            self.replay_messages -= 1;
            self.replay_bytes -= q.body.len();
        }
    }

    /// The frames waiting in the queue proper (not a held delta).
    fn len(&self) -> usize {
        self.frames.len()
    }
}

impl Outbox {
    /// What the outbox holds now.
    fn backlog(&self) -> Backlog {
        Backlog {
            queued_messages: self.queued_messages(),
            queued_bytes: self.queued_bytes(),
            inflight_bytes: self.inflight,
        }
    }

    /// Run `f` and report what it changed to the hub's `gauges`.
    fn tracked<R>(&mut self, gauges: &mut Backlog, f: impl FnOnce(&mut Self) -> R) -> R {
        let before = self.backlog();
        let result = f(self);
        gauges.shift(before, self.backlog());
        result
    }

    /// Offer a frame from `origin`; `coalesce` puts it in the lossy lane. What goes out now is
    /// handed to `send`: a delta held by a flush window first (nothing overtakes it), then the
    /// frame.
    pub fn offer(
        &mut self,
        frame: Bytes,
        coalesce: Option<&CoalesceKey>,
        origin: Origin,
        limits: &BackpressureConfig,
        gauges: &mut Backlog,
        mut send: impl FnMut(Bytes),
    ) -> Offer {
        if self.release_held(limits, gauges, &mut send) == Offer::Overflow {
            return Offer::Overflow;
        }
        self.offer_now(frame, coalesce, origin, limits, gauges, send)
    }

    /// Offer `frame` to the budget and the queue (nothing is held).
    fn offer_now(
        &mut self,
        frame: Bytes,
        coalesce: Option<&CoalesceKey>,
        origin: Origin,
        limits: &BackpressureConfig,
        gauges: &mut Backlog,
        mut send: impl FnMut(Bytes),
    ) -> Offer {
        if origin == Origin::Live
            && matches!(coalesce, Some(CoalesceKey::Thinking(_)))
            && mutation::injected(Fault::LiveThoughts)
        {
            return Offer::Coalesced;
        }
        let len = frame.len();
        // The first frame always goes out, so a frame larger than the budget cannot stall.
        if self.queue.as_ref().is_none_or(|q| q.len() == 0)
            && (self.inflight == 0 || self.inflight + len <= limits.inflight_bytes)
        {
            // The common case, once per delivery: only the in-flight bytes change.
            self.inflight += len;
            gauges.inflight_bytes += len;
            send(frame);
            return Offer::Sent;
        }
        self.tracked(gauges, |o| match coalesce {
            Some(key @ CoalesceKey::Message(..)) => o.append(frame, key, origin, limits),
            _ => o.enqueue(frame, coalesce, origin, limits),
        })
    }

    /// Queue a frame that cannot go out now, or refuse it (see [`Offer`]).
    fn enqueue(
        &mut self,
        frame: Bytes,
        coalesce: Option<&CoalesceKey>,
        origin: Origin,
        limits: &BackpressureConfig,
    ) -> Offer {
        let len = frame.len();
        let queue = self.queue.get_or_insert_with(Box::default);
        let replaced = coalesce.filter(|k| k.lossy()).and_then(|key| {
            queue
                .frames
                .iter()
                .position(|q| q.coalesce.as_ref() == Some(key))
        });
        // Check the fit before replacing anything, so that a frame that is shed leaves the
        // one it would have replaced in place (nothing is dropped without being counted).
        let (freed_messages, freed_bytes) = replaced
            .filter(|&i| queue.frames[i].origin == Origin::Live)
            .map_or((0, 0), |i| (1, queue.frames[i].body.len()));
        let live_messages = queue.frames.len() - queue.replay_messages;
        let live_bytes = queue.queued_bytes - queue.replay_bytes;
        let queue_messages =
            limits.queue_messages + usize::from(mutation::injected(Fault::LongerQueue));
        if origin == Origin::Live
            && (live_messages - freed_messages >= queue_messages
                || live_bytes - freed_bytes + len > limits.queue_bytes)
        {
            return if coalesce.is_some_and(CoalesceKey::lossy) {
                Offer::Shed
            } else {
                Offer::Overflow
            };
        }
        // A replay has a bound of its own rather than the live queue's: what catch-ups of every
        // stream the connection may be on hold (one that replaces a replayed frame of its key
        // adds nothing).
        let replaces_replay = replaced.is_some_and(|i| queue.frames[i].origin == Origin::Replay);
        if origin == Origin::Replay
            && !replaces_replay
            && queue.replay_messages >= limits.replay_messages
        {
            return Offer::Overflow;
        }
        let mut offer = Offer::Queued;
        if let Some(i) = replaced {
            let old = queue.frames.remove(i).expect("index from position");
            queue.forget(&old);
            offer = Offer::Coalesced;
        }
        queue.queued_bytes += len;
        if origin == Origin::Replay {
            queue.replay_messages += 1;
            queue.replay_bytes += len;
        }
        queue.frames.push_back(Queued {
            body: Body::Frame(frame),
            coalesce: coalesce.cloned(),
            origin,
        });
        offer
    }

    /// Queue a message delta: joined in place to the last live queued delta of its message
    /// when it follows it (the joined frame then moves to the back, so positions stay in
    /// order), queued as a reliable frame otherwise. Past the limits, an overflow.
    fn append(
        &mut self,
        frame: Bytes,
        key: &CoalesceKey,
        origin: Origin,
        limits: &BackpressureConfig,
    ) -> Offer {
        let queue = self.queue.get_or_insert_with(Box::default);
        let last = (origin == Origin::Live)
            .then(|| {
                (queue.frames.iter())
                    .rposition(|q| q.origin == Origin::Live && q.coalesce.as_ref() == Some(key))
            })
            .flatten();
        let Some(i) = last else {
            return self.enqueue(frame, Some(key), origin, limits);
        };
        if mutation::injected(Fault::QueuedDelta) {
            return Offer::Appended;
        }
        // A joined frame is never longer than the two it joins: check the fit before joining.
        let live_bytes = queue.queued_bytes - queue.replay_bytes;
        if live_bytes + frame.len() > limits.queue_bytes {
            return Offer::Overflow;
        }
        let before = queue.frames[i].body.len();
        let joined = Delta::parse(&frame).is_some_and(|d| queue.frames[i].body.join(&d));
        if !joined {
            return self.enqueue(frame, Some(key), origin, limits);
        }
        let joined = queue.frames.remove(i).expect("index from rposition");
        queue.queued_bytes = queue.queued_bytes - before + joined.body.len();
        queue.frames.push_back(joined);
        Offer::Appended
    }

    /// The transport wrote `bytes`; release queued frames that now fit the budget.
    pub fn flushed(
        &mut self,
        bytes: usize,
        limits: &BackpressureConfig,
        gauges: &mut Backlog,
        send: impl FnMut(Bytes),
    ) {
        if self.queue.as_ref().is_none_or(|q| q.len() == 0) {
            // The common case: nothing waits, only the in-flight bytes change.
            let written = bytes.min(self.inflight);
            self.inflight -= written;
            gauges.inflight_bytes -= written;
            return;
        }
        self.tracked(gauges, |o| o.release(bytes, limits, send));
    }

    fn release(&mut self, bytes: usize, limits: &BackpressureConfig, mut send: impl FnMut(Bytes)) {
        self.inflight = self.inflight.saturating_sub(bytes);
        let Some(queue) = self.queue.as_deref_mut() else {
            return;
        };
        while let Some(front) = queue.frames.front() {
            let len = front.body.len();
            if self.inflight != 0 && self.inflight + len > limits.inflight_bytes {
                break;
            }
            let q = queue.frames.pop_front().expect("front exists");
            queue.forget(&q);
            self.inflight += len;
            send(q.body.frame());
        }
    }

    /// Hand out everything still queued, ignoring the budget (graceful shutdown).
    pub fn drain(&mut self, gauges: &mut Backlog) -> Vec<Bytes> {
        self.tracked(gauges, |o| {
            let Some(queue) = o.queue.as_deref_mut() else {
                return Vec::new();
            };
            queue.queued_bytes = 0;
            queue.replay_messages = 0;
            queue.replay_bytes = 0;
            let held = queue.window.take().and_then(Window::into_held);
            let frames = queue.frames.drain(..).map(|q| q.body.frame());
            frames.chain(held.map(|h| h.frame())).collect()
        })
    }

    /// The connection is gone: what the outbox holds leaves the hub's `gauges`.
    pub fn discard(&mut self, gauges: &mut Backlog) {
        self.tracked(gauges, |o| *o = Outbox::default());
    }

    /// Note that a reliable frame did not fit ([`Offer::Overflow`]); true the first time (an
    /// overflow comes from the queue, so it exists already).
    pub fn first_overflow(&mut self) -> bool {
        let queue = self.queue.get_or_insert_with(Box::default);
        !std::mem::replace(&mut queue.overflowed, true)
    }

    /// True while frames wait in the queue for room in the in-flight budget, that is for the
    /// transport's next report (a delta held by a flush window waits for its window instead).
    pub fn awaits_flush(&self) -> bool {
        self.queue.as_ref().is_some_and(|q| q.len() > 0)
    }

    /// Frames waiting: in the queue, and a delta held by a flush window.
    pub fn queued_messages(&self) -> usize {
        (self.queue.as_ref()).map_or(0, |q| q.len() + q.held().map_or(0, |_| 1))
    }

    /// Bytes waiting: in the queue, and a delta held by a flush window.
    pub fn queued_bytes(&self) -> usize {
        (self.queue.as_ref()).map_or(0, |q| q.queued_bytes + q.held().map_or(0, Body::len))
    }

    /// Bytes handed out and not yet flushed.
    pub fn inflight(&self) -> usize {
        self.inflight
    }
}

#[cfg(test)]
mod tests;
