//! What a transport brings: an async runtime ([`Runtime`]: spawning and timers) and, for the
//! standalone server, a TCP listener ([`Listen`]) and a WebSocket library ([`Upgrade`]).
//!
//! Everything else (shards, the connection driver, the application handle, the accept loop,
//! the handshake's authentication) is written once against these traits.

use crate::frame::Socket;
use crate::server::Handshake;
use futures_util::future::{self, Either};
use std::future::Future;
use std::io;
use std::pin::pin;
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

/// A runtime's TCP listener, for [`Handle::serve`](crate::Handle::serve).
pub trait Listen: Runtime {
    /// The listener.
    type Listener: Send + Sync + 'static;
    /// An accepted connection.
    type Stream: Send + 'static;

    /// Accept the next connection (with `TCP_NODELAY` set, as befits small frames). Dropping
    /// the future before it completes loses no connection.
    fn accept(
        &self,
        listener: &Self::Listener,
    ) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// A WebSocket library's server handshake over the byte stream `IO`, for
/// [`Handle::serve`](crate::Handle::serve) and [`Handle::accept`](crate::Handle::accept).
pub trait Upgrade<IO>: Runtime {
    /// The upgraded WebSocket, as the driver runs it.
    type Socket: Socket;

    /// Perform the server side of the handshake on `io`, with `handshake` as the library's
    /// callback (it authenticates the request and answers a refusal itself) and
    /// [`Handshake::config`] as its configuration (the message limits).
    fn upgrade(
        &self,
        io: IO,
        handshake: Handshake<'_>,
    ) -> impl Future<Output = Result<Self::Socket, tungstenite::Error>> + Send;
}

/// `f`'s output, or `None` if `limit` passes first.
pub(crate) async fn timeout<R: Runtime, F: Future>(
    runtime: &R,
    limit: Duration,
    f: F,
) -> Option<F::Output> {
    let deadline = pin!(runtime.sleep_until(Instant::now() + limit));
    match future::select(pin!(f), deadline).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(((), _)) => None,
    }
}

/// Wait for `duration`.
pub(crate) async fn sleep<R: Runtime>(runtime: &R, duration: Duration) {
    runtime.sleep_until(Instant::now() + duration).await;
}
