//! A connection's outbox: what its shard hands the connection's writer, in the hub's order
//! ([`outbox`]).
//!
//! Under fan-out the shard hands one frame to thousands of writers per publish, and each
//! writer, on another core, takes what it finds at a wake-up. A channel with a node per item
//! made every frame an allocation, a free and a contended hand-off between the two cores, and
//! the writer took its items one by one. Here the shard appends to a plain vector under a lock
//! nobody holds for longer than a push or a swap, wakes the writer only when the vector was
//! empty (a writer with items waiting is already awake or about to take them), and the writer
//! takes everything queued in one operation per wake-up. Nothing is kept once the writer has
//! taken it: an idle connection's outbox holds no buffer.
//!
//! The writer's waker is kept under the same lock, and only while it waits: a writer that finds
//! frames takes them without registering anything, and the shard's first push takes the waker
//! out as it fills the queue, so each hand-off touches one lock and no other shared word (an
//! `AtomicWaker` beside the lock cost the writer a registration per wake-up, on a cache line
//! the shard's core had just written).
//!
//! Unbounded here, as the channel was: the hub's backpressure budgets bound what it hands a
//! connection (its in-flight budget unflushed, then its queue, then a close).
//!
//! The outbox also carries whether the hub awaits the writer's flush reports
//! ([`SocketOutput::AwaitingFlush`](switchboard::SocketOutput::AwaitingFlush)): the writer
//! gathers its reports while the hub does not (`driver.rs`), so the shard sets it under the
//! same lock and wakes a waiting writer that has writes to report.

use crate::shard::Out;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// The outbox of a new connection: the shard's end and the writer's.
pub(crate) fn outbox() -> (Outbox, Outgoing) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queued: Vec::new(),
            waiting: None,
            flush_awaited: false,
            shard_done: false,
            writer_gone: false,
        }),
    });
    (Outbox(shared.clone()), Outgoing(shared))
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    /// The state; a panic elsewhere while it was held (there is none: it is held for a push or
    /// a swap) leaves it consistent, so a poisoned lock is taken as it is.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug)]
struct State {
    /// What the writer has not taken yet, in order.
    queued: Vec<Out>,
    /// The writer's task while it waits for an empty queue to fill (or the shard to be done);
    /// taken by whoever wakes it.
    waiting: Option<Waker>,
    /// The hub holds frames for the connection until the writer reports a write.
    flush_awaited: bool,
    /// The shard's end was dropped: nothing more will be queued.
    shard_done: bool,
    /// The writer's end was dropped: what is queued is dropped.
    writer_gone: bool,
}

/// The shard's end of a connection's outbox.
#[derive(Debug)]
pub(crate) struct Outbox(Arc<Shared>);

impl Outbox {
    /// Queue `out` after everything queued before; dropped if the writer is gone (its socket
    /// is gone, and its `Closed` is on the way to the shard).
    pub(crate) fn push(&self, out: Out) {
        let waiting = {
            let mut state = self.0.state();
            if state.writer_gone {
                return;
            }
            state.queued.push(out);
            state.waiting.take()
        };
        // Woken outside the lock: the writer may run at once on another core and take it.
        if let Some(writer) = waiting {
            writer.wake();
        }
    }

    /// The hub began or stopped awaiting the writer's flush reports; a writer waiting for
    /// frames is woken when it began, in case it has writes it has not reported.
    pub(crate) fn await_flush(&self, awaiting: bool) {
        let waiting = {
            let mut state = self.0.state();
            state.flush_awaited = awaiting;
            // Not taken when it stopped: the writer waits for frames as before.
            if awaiting {
                state.waiting.take()
            } else {
                None
            }
        };
        if let Some(writer) = waiting {
            writer.wake();
        }
    }
}

impl Drop for Outbox {
    /// The writer takes what is queued, then finds the outbox ended.
    fn drop(&mut self) {
        let waiting = {
            let mut state = self.0.state();
            state.shard_done = true;
            state.waiting.take()
        };
        if let Some(writer) = waiting {
            writer.wake();
        }
    }
}

/// What the writer took at one wake-up.
#[derive(Debug)]
pub(crate) struct Taken {
    /// The outputs, in order (none when the writer was woken only to report).
    pub outs: Vec<Out>,
    /// The hub awaits the writer's report of what it writes.
    pub flush_awaited: bool,
}

/// The writer's end of a connection's outbox.
#[derive(Debug)]
pub(crate) struct Outgoing(Arc<Shared>);

impl Outgoing {
    /// Everything queued, in order, and whether the hub awaits flush reports, waiting until
    /// there is something; `None` once the shard's end is dropped and everything queued before
    /// was taken. A writer with writes it has not `reported` also returns, with nothing, as
    /// soon as the hub awaits its report.
    pub(crate) async fn take(&mut self, reported: bool) -> Option<Taken> {
        poll_fn(|cx| self.poll_take(cx, reported)).await
    }

    fn poll_take(&mut self, cx: &mut Context<'_>, reported: bool) -> Poll<Option<Taken>> {
        let mut state = self.0.state();
        let flush_awaited = state.flush_awaited;
        if !state.queued.is_empty() || (flush_awaited && !reported) {
            let outs = std::mem::take(&mut state.queued);
            Poll::Ready(Some(Taken {
                outs,
                flush_awaited,
            }))
        } else if state.shard_done {
            Poll::Ready(None)
        } else {
            // Left under the lock the shard pushes under: its next push finds it.
            match &mut state.waiting {
                Some(waker) => waker.clone_from(cx.waker()),
                empty => *empty = Some(cx.waker().clone()),
            }
            Poll::Pending
        }
    }

    /// Everything queued now, without waiting (empty if nothing is).
    pub(crate) fn take_now(&mut self) -> Vec<Out> {
        std::mem::take(&mut self.0.state().queued)
    }
}

impl Drop for Outgoing {
    /// What is queued is dropped, and what the shard pushes from now on.
    fn drop(&mut self) {
        let queued = {
            let mut state = self.0.state();
            state.writer_gone = true;
            std::mem::take(&mut state.queued)
        };
        drop(queued);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker_ref;
    use futures_util::FutureExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    fn frame(n: u8) -> Out {
        Out::Frame(bytes::Bytes::from(vec![n]))
    }

    fn frames(outs: &[Out]) -> Vec<u8> {
        outs.iter()
            .map(|out| match out {
                Out::Frame(bytes) => bytes[0],
                other => panic!("not a frame: {other:?}"),
            })
            .collect()
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A waker that counts its wake-ups, and a reading of the count.
    fn counting_waker() -> (std::task::Waker, impl Fn() -> usize) {
        let count = Arc::new(Count::default());
        let woken = {
            let count = count.clone();
            move || count.0.load(Ordering::SeqCst)
        };
        (std::task::Waker::from(count), woken)
    }

    #[test]
    fn the_writer_takes_everything_queued_in_order_in_one_operation() {
        let (outbox, mut outgoing) = outbox();
        for n in 0..5 {
            outbox.push(frame(n));
        }
        let taken = outgoing
            .take(true)
            .now_or_never()
            .flatten()
            .expect("queued");
        assert_eq!(frames(&taken.outs), [0, 1, 2, 3, 4]);
        assert!(outgoing.take_now().is_empty());
    }

    #[test]
    fn a_waiting_writer_is_woken_once_per_empty_queue_it_finds_filled() {
        let (outbox, mut outgoing) = outbox();
        let (waker, woken) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(outgoing.poll_take(&mut cx, true).is_pending());
        outbox.push(frame(1));
        outbox.push(frame(2));
        outbox.push(frame(3));
        assert_eq!(woken(), 1, "only the first push into an empty queue wakes");
        match outgoing.poll_take(&mut cx, true) {
            Poll::Ready(Some(taken)) => assert_eq!(frames(&taken.outs), [1, 2, 3]),
            other => panic!("expected the queued frames, got {other:?}"),
        }
        assert!(outgoing.poll_take(&mut cx, true).is_pending());
        outbox.push(frame(4));
        assert_eq!(woken(), 2);
    }

    #[test]
    fn the_outgoing_end_ends_after_what_was_queued_when_the_shard_drops_its_end() {
        let (outbox, mut outgoing) = outbox();
        outbox.push(frame(7));
        drop(outbox);
        let mut cx = Context::from_waker(noop_waker_ref());
        match outgoing.poll_take(&mut cx, true) {
            Poll::Ready(Some(taken)) => assert_eq!(frames(&taken.outs), [7]),
            other => panic!("expected the queued frame, got {other:?}"),
        }
        assert!(matches!(
            outgoing.poll_take(&mut cx, true),
            Poll::Ready(None)
        ));
    }

    #[test]
    fn a_writer_with_unreported_writes_is_woken_to_report_when_the_hub_awaits_them() {
        let (outbox, mut outgoing) = outbox();
        let (waker, woken) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(outgoing.poll_take(&mut cx, false).is_pending());
        outbox.await_flush(true);
        assert_eq!(woken(), 1, "the hub awaits a report from a waiting writer");
        match outgoing.poll_take(&mut cx, false) {
            Poll::Ready(Some(taken)) => assert!(taken.outs.is_empty() && taken.flush_awaited),
            other => panic!("expected a wake-up to report, got {other:?}"),
        }
        assert!(
            outgoing.poll_take(&mut cx, true).is_pending(),
            "with everything reported, the writer waits for frames"
        );
        outbox.push(frame(1));
        match outgoing.poll_take(&mut cx, true) {
            Poll::Ready(Some(taken)) => {
                assert_eq!(frames(&taken.outs), [1]);
                assert!(taken.flush_awaited, "reported at once while awaited");
            }
            other => panic!("expected the frame, got {other:?}"),
        }
        // Everything reported: the writer waits, and the hub's change keeps its waker.
        assert!(outgoing.poll_take(&mut cx, true).is_pending());
        outbox.await_flush(false);
        assert_eq!(woken(), 2, "stopping wakes nobody");
        outbox.push(frame(2));
        assert_eq!(
            woken(),
            3,
            "the writer's waker stayed through the hub's change"
        );
        match outgoing.poll_take(&mut cx, false) {
            Poll::Ready(Some(taken)) => assert!(!taken.flush_awaited, "no longer awaited"),
            other => panic!("expected the frame, got {other:?}"),
        }
    }

    #[test]
    fn pushes_after_the_writer_is_gone_are_dropped_and_hold_nothing() {
        let (outbox, outgoing) = outbox();
        outbox.push(frame(1));
        drop(outgoing);
        assert!(outbox.0.state().queued.is_empty());
        outbox.push(frame(2));
        assert!(outbox.0.state().queued.is_empty());
    }
}
