//! What every transport brings: an async runtime ([`Runtime`]: spawning and timers). (For the
//! standalone server it also brings a TCP listener and a WebSocket library: `Listen` and
//! `Upgrade`, in `server.rs`.)
//!
//! Everything else (shards, the connection driver, the application handle, the accept loop,
//! the handshake's authentication) is written once against these traits.

use futures_util::future::{self, Either};
use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

/// An async runtime: how to run a task in the background and how to wait for a deadline.
///
/// Implemented by each transport for its runtime (tokio; async-io for async-std and smol).
/// It is cheap to clone; the handle keeps one and clones it into the tasks it spawns.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// Run `task` in the background, detached: it is never awaited and may be dropped when
    /// the runtime stops.
    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// A future that completes at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + 'static;
}

/// `f`'s output, or `None` if `limit` passes first.
///
/// `f` is polled once before the deadline is armed: most futures given here are ready at once
/// (a batch of frames the socket takes whole, a close frame), and for those no timer is
/// registered with the runtime and cancelled again, on every wake-up of a connection's writer.
pub(crate) async fn timeout<R: Runtime, F: Future>(
    runtime: &R,
    limit: Duration,
    f: F,
) -> Option<F::Output> {
    let mut f = pin!(f);
    if let Poll::Ready(output) = futures_util::poll!(f.as_mut()) {
        return Some(output);
    }
    let deadline = pin!(runtime.sleep_until(Instant::now() + limit));
    match future::select(f, deadline).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(((), _)) => None,
    }
}

/// Wait for `duration`.
pub(crate) async fn sleep<R: Runtime>(runtime: &R, duration: Duration) {
    runtime.sleep_until(Instant::now() + duration).await;
}
