//! A stream polled only when it woke its task ([`Woken`]): the connection driver's reader.
//!
//! The driver runs a connection's reader and writer in one task, and a task that wakes polls
//! both. Polling a WebSocket reader that has nothing to read is not free (tungstenite fills its
//! read buffer and tries the socket), and under fan-out a connection's task wakes far more
//! often to write than to read: the reader is polled again only once something it waits on
//! (the socket's readiness, the WebSocket layer) woke it.

use futures_util::task::AtomicWaker;
use futures_util::Stream;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// Whether the inner stream woke, and the task to wake when it does.
#[derive(Debug)]
struct Signal {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// `S`, polled only when it woke its task since it last answered `Pending` (and always
/// after an item, as a stream may hold more than one without waking anyone).
#[derive(Debug)]
pub(crate) struct Woken<S> {
    stream: S,
    signal: Arc<Signal>,
    /// The waker `S` is polled with: it marks the signal, then wakes the task.
    waker: Waker,
}

impl<S> Woken<S> {
    /// Wrap `stream`, to be polled at the first call.
    pub(crate) fn new(stream: S) -> Self {
        let signal = Arc::new(Signal {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(signal.clone());
        Self {
            stream,
            signal,
            waker,
        }
    }
}

impl<S: Stream + Unpin> Stream for Woken<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        // Registered before the flag is read: a wake between the two is not lost.
        self.signal.task.register(cx.waker());
        if !self.signal.woken.swap(false, Ordering::Acquire) {
            return Poll::Pending;
        }
        let this = &mut *self;
        let polled = Pin::new(&mut this.stream).poll_next(&mut Context::from_waker(&this.waker));
        if polled.is_ready() {
            this.signal.woken.store(true, Ordering::Release);
        }
        polled
    }
}
