//! The flush window: a live reader that keeps up gets a message's deltas rolled up, one frame
//! per window instead of one per token.
//!
//! The first delta of a message goes out at once and opens a window of `Limits::message_flush`.
//! The deltas of that message that follow before the window closes are held, joined in place
//! (one frame, about as large as their text); when the window closes (the hub's timer, at the
//! instant [`Outbox::window_due`] names) the held frame goes out and a new window opens, so a
//! steady stream gets one frame per window. A window ends without delay:
//! - at the message's `final` delta (it goes out at once, joined to what was held),
//! - when the held frame reaches the in-flight budget (it goes out at once: a window never
//!   holds more than one budget),
//! - when any other frame is offered to the connection (a run's end, a delta of another
//!   message, any message, a replay): the held frame goes out first, so nothing overtakes it
//!   and positions stay in order,
//! - when the reader falls behind (a queue forms): the append lane joins from then on.
//!
//! So no delta waits longer than one window, and the first one not at all.

use super::{Backlog, CoalesceKey, Offer, Origin, Outbox, Queue};
use crate::config::BackpressureConfig;
use crate::run::{Body, Delta};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// The time a delta is offered at and the window's width (non-zero).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flush {
    pub now: Instant,
    pub width: Duration,
}

/// An open window of one message.
#[derive(Debug)]
pub(super) struct Window {
    key: CoalesceKey,
    /// When it closes.
    until: Instant,
    /// The deltas offered since it opened, joined.
    held: Option<Body>,
}

impl Window {
    /// What the window holds.
    pub fn into_held(self) -> Option<Body> {
        self.held
    }
}

impl Queue {
    /// The delta a window holds.
    pub(super) fn held(&self) -> Option<&Body> {
        self.window.as_ref().and_then(|w| w.held.as_ref())
    }
}

impl Outbox {
    /// Offer a live message delta of `key` at `flush.now` (`frame`, parsed as `delta`): held
    /// if a window of its message is open, otherwise offered at once, opening a window if it
    /// went out (see the module docs).
    #[allow(clippy::too_many_arguments)]
    pub fn offer_windowed(
        &mut self,
        frame: Bytes,
        delta: &Delta<'_>,
        key: &CoalesceKey,
        flush: Flush,
        limits: &BackpressureConfig,
        gauges: &mut Backlog,
        mut send: impl FnMut(Bytes),
    ) -> Offer {
        let open = self.queue.as_deref_mut().and_then(|q| {
            let open = q.len() == 0
                && (q.window.as_ref()).is_some_and(|w| &w.key == key && flush.now < w.until);
            open.then_some(q)
        });
        if let Some(queue) = open {
            let window = queue.window.as_mut().expect("an open window");
            let held_before = window.held.as_ref().map_or((0, 0), |h| (1, h.len()));
            let joined = match &mut window.held {
                Some(held) => held.join(delta),
                None => {
                    window.held = Some(Body::Frame(frame.clone()));
                    true
                }
            };
            if joined {
                let held = window.held.as_ref().expect("held above");
                let (full, last) = (held.len() >= limits.inflight_bytes, held.is_final());
                let held_after = (1, held.len());
                gauges.queued_messages = gauges.queued_messages + held_after.0 - held_before.0;
                gauges.queued_bytes = gauges.queued_bytes + held_after.1 - held_before.1;
                if !(full || last) {
                    return Offer::Held;
                }
                // It ends the window: out at once.
                return self.release_held(limits, gauges, send);
            }
        }
        let last = delta.is_final();
        let offer = self.offer(frame, Some(key), Origin::Live, limits, gauges, &mut send);
        if offer == Offer::Sent && !last {
            self.open_window(key.clone(), flush);
        }
        offer
    }

    /// When the delta a window holds must go out (`None`: nothing is held).
    pub fn window_due(&self) -> Option<Instant> {
        let window = self.queue.as_ref()?.window.as_ref()?;
        window.held.as_ref().map(|_| window.until)
    }

    /// The window's time came (`flush.now` at or past [`Outbox::window_due`]): what it held
    /// goes out, and a new window opens if it went out at once. `None` if nothing was due.
    pub fn window_closes(
        &mut self,
        flush: Flush,
        limits: &BackpressureConfig,
        gauges: &mut Backlog,
        send: impl FnMut(Bytes),
    ) -> Option<Offer> {
        let due = self.window_due().is_some_and(|at| at <= flush.now);
        if !due {
            return None;
        }
        let key = self.queue.as_ref()?.window.as_ref()?.key.clone();
        let offer = self.release_held(limits, gauges, send);
        if offer == Offer::Sent {
            self.open_window(key, flush);
        }
        Some(offer)
    }

    fn open_window(&mut self, key: CoalesceKey, flush: Flush) {
        let queue = self.queue.get_or_insert_with(Box::default);
        queue.window = Some(Window {
            key,
            until: flush.now + flush.width,
            held: None,
        });
    }

    /// Close the window, and offer what it held ahead of anything else. [`Offer::Sent`] if
    /// nothing was held.
    pub(super) fn release_held(
        &mut self,
        limits: &BackpressureConfig,
        gauges: &mut Backlog,
        send: impl FnMut(Bytes),
    ) -> Offer {
        let Some(window) = self.queue.as_deref_mut().and_then(|q| q.window.take()) else {
            return Offer::Sent;
        };
        let Some(held) = window.held else {
            return Offer::Sent;
        };
        gauges.queued_messages -= 1;
        gauges.queued_bytes -= held.len();
        self.offer_now(
            held.frame(),
            Some(&window.key),
            Origin::Live,
            limits,
            gauges,
            send,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::RunId;
    use serde_json::Value;
    use std::sync::Arc;

    fn limits() -> BackpressureConfig {
        BackpressureConfig {
            inflight_bytes: 4096,
            queue_messages: 8,
            queue_bytes: 1 << 16,
            replay_messages: 64,
        }
    }

    fn key(message: &str) -> CoalesceKey {
        CoalesceKey::Message(RunId::from("r"), Arc::from(message))
    }

    /// A delta frame as the hub encodes one.
    fn delta(message: &str, seq: u64, offset: u64, text: &str, last: bool) -> Bytes {
        Bytes::from(format!(
            r#"{{"type":"agent_message_delta","run":"r","seq":{seq},"event":"agent_message_delta","message":"{message}","offset":{offset},"final":{last},"text":"{text}"}}"#
        ))
    }

    /// The frames an outbox hands out, and its gauges.
    struct Reader {
        outbox: Outbox,
        gauges: Backlog,
        sent: Vec<Value>,
        t0: Instant,
    }

    impl Reader {
        fn new() -> Self {
            Self {
                outbox: Outbox::default(),
                gauges: Backlog::default(),
                sent: Vec::new(),
                t0: Instant::now(),
            }
        }

        fn at(&self, ms: u64) -> Flush {
            Flush {
                now: self.t0 + Duration::from_millis(ms),
                width: Duration::from_millis(40),
            }
        }

        fn delta(&mut self, ms: u64, message: &str, seq: u64, offset: u64, text: &str) -> Offer {
            let frame = delta(message, seq, offset, text, false);
            self.windowed(ms, message, frame)
        }

        fn windowed(&mut self, ms: u64, message: &str, frame: Bytes) -> Offer {
            let (flush, sent) = (self.at(ms), &mut self.sent);
            let delta = Delta::parse(&frame).expect("a delta frame");
            let offer = (self.outbox).offer_windowed(
                frame.clone(),
                &delta,
                &key(message),
                flush,
                &limits(),
                &mut self.gauges,
                |f| sent.push(serde_json::from_slice(&f).unwrap()),
            );
            self.check_gauges();
            offer
        }

        fn other(&mut self, frame: &str) -> Offer {
            let sent = &mut self.sent;
            let offer = (self.outbox).offer(
                Bytes::from(frame.to_owned()),
                None,
                Origin::Live,
                &limits(),
                &mut self.gauges,
                |f| sent.push(serde_json::from_slice(&f).unwrap()),
            );
            self.check_gauges();
            offer
        }

        fn closes(&mut self, ms: u64) -> Option<Offer> {
            let (flush, sent) = (self.at(ms), &mut self.sent);
            let offer = (self.outbox).window_closes(flush, &limits(), &mut self.gauges, |f| {
                sent.push(serde_json::from_slice(&f).unwrap())
            });
            self.check_gauges();
            offer
        }

        fn check_gauges(&self) {
            assert_eq!(self.gauges, self.outbox.backlog(), "the gauges follow");
        }

        /// What was sent: (seq, offset, text) per frame.
        fn take(&mut self) -> Vec<(u64, u64, String)> {
            (self.sent.drain(..))
                .map(|f| {
                    let text = f["text"].as_str().map_or(String::new(), str::to_owned);
                    (
                        f["seq"].as_u64().unwrap(),
                        f["offset"].as_u64().unwrap_or(0),
                        text,
                    )
                })
                .collect()
        }
    }

    #[test]
    fn the_first_delta_goes_out_at_once_and_those_within_the_window_together_when_it_closes() {
        let mut r = Reader::new();
        assert_eq!(r.delta(0, "m", 1, 0, "a"), Offer::Sent);
        assert_eq!(r.take(), [(1, 0, "a".into())], "not delayed");
        for (n, ms) in [5u64, 10, 39].into_iter().enumerate() {
            assert_eq!(
                r.delta(ms, "m", n as u64 + 2, n as u64 + 1, "b"),
                Offer::Held
            );
        }
        assert!(r.take().is_empty());
        assert_eq!(r.outbox.window_due(), Some(r.at(40).now));
        assert_eq!(r.closes(39), None, "not before the window closes");
        assert_eq!(r.closes(40), Some(Offer::Sent));
        assert_eq!(
            r.take(),
            [(4, 1, "bbb".into())],
            "one frame at the newest position"
        );
        assert_eq!(r.outbox.window_due(), None, "nothing held");
        assert_eq!(
            r.delta(50, "m", 5, 4, "c"),
            Offer::Held,
            "a new window opened"
        );
        assert_eq!(r.outbox.window_due(), Some(r.at(80).now));
    }

    #[test]
    fn a_delta_after_a_quiet_window_goes_out_at_once() {
        let mut r = Reader::new();
        r.delta(0, "m", 1, 0, "a");
        assert_eq!(r.delta(40, "m", 2, 1, "b"), Offer::Sent);
        assert_eq!(r.take().len(), 2);
    }

    #[test]
    fn a_final_delta_goes_out_at_once_joined_to_what_was_held() {
        let mut r = Reader::new();
        r.delta(0, "m", 1, 0, "a");
        r.delta(1, "m", 2, 1, "b");
        let last = delta("m", 3, 2, "c", true);
        assert_eq!(r.windowed(2, "m", last), Offer::Sent);
        assert_eq!(r.take(), [(1, 0, "a".into()), (3, 1, "bc".into())]);
        assert_eq!(r.outbox.window_due(), None);
        assert_eq!(r.outbox.queued_messages(), 0);
    }

    #[test]
    fn any_other_frame_releases_what_is_held_first() {
        let mut r = Reader::new();
        r.delta(0, "m", 1, 0, "a");
        r.delta(1, "m", 2, 1, "b");
        assert_eq!(
            r.other(r#"{"type":"agent_completed","seq":3}"#),
            Offer::Sent
        );
        assert_eq!(
            r.take(),
            [
                (1, 0, "a".into()),
                (2, 1, "b".into()),
                (3, 0, String::new())
            ]
        );
        r.delta(2, "m", 4, 2, "c");
        r.delta(3, "m", 5, 3, "d");
        assert_eq!(r.delta(4, "n", 6, 0, "x"), Offer::Sent, "another message");
        assert_eq!(
            r.take(),
            [(4, 2, "c".into()), (5, 3, "d".into()), (6, 0, "x".into())]
        );
    }

    #[test]
    fn a_window_never_holds_more_than_the_in_flight_budget() {
        let mut r = Reader::new();
        r.delta(0, "m", 1, 0, "a");
        let big = "x".repeat(limits().inflight_bytes);
        // Released, not held: it waits in the queue for "a" to be written.
        assert_eq!(r.delta(1, "m", 2, 1, &big), Offer::Queued);
        assert_eq!(r.outbox.window_due(), None);
        let (mut sent, l) = (Vec::new(), limits());
        (r.outbox).flushed(usize::MAX, &l, &mut r.gauges, |f| sent.push(f));
        assert_eq!(sent, [delta("m", 2, 1, &big, false)]);
    }

    #[test]
    fn a_graceful_drain_hands_out_the_held_delta_last() {
        let mut r = Reader::new();
        r.delta(0, "m", 1, 0, "a");
        r.delta(1, "m", 2, 1, "b");
        assert_eq!(r.outbox.queued_messages(), 1);
        let drained = r.outbox.drain(&mut r.gauges);
        assert_eq!(drained, vec![delta("m", 2, 1, "b", false)]);
        r.check_gauges();
    }
}
