//! # switchboard-testing
//!
//! What the tests of the switchboard crates share, so that each is written once:
//!
//! - [`WsClient`]: a real WebSocket client (async-tungstenite over async-net), which runs under
//!   any runtime (tokio, async-std, smol), with the readers the tests assert on;
//! - [`guard`] and [`eventually`]: every wait for a server is bounded, so a bug fails instead
//!   of hanging (guards against hangs, not timing assertions);
//! - [`Redis`]: a `redis-server` from PATH on a free port, killed when dropped;
//! - with the feature `sse`, `SseClient`: a real HTTP client (hyper, on tokio) of the
//!   Server-Sent Events transport;
//! - with the feature `axum`, `serve_ws_route`: an axum route that upgrades `/ws?user=<id>`
//!   as the test says, for tests of embedding the hub in axum;
//! - [`query_param`]: one parameter of a test's query string (`user`, `thread`, ...), and
//!   [`authenticate`]: the tests' authenticator, which reads `user` and `thread` from it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "axum")]
mod axum;
mod client;
mod open;
mod redis;
#[cfg(feature = "sse")]
mod sse;

#[cfg(feature = "axum")]
pub use axum::serve_ws_route;
pub use client::{small_listener, small_socket, Received, WsClient, SMALL_BUFFER, SOCKET_SLACK};
pub use open::authenticate;
pub use redis::Redis;
#[cfg(feature = "sse")]
pub use sse::{post, Answer, SseClient, SseEvent};

use futures_util::future::{self, Either};
use std::future::Future;
use std::pin::pin;
use std::time::Duration;

/// Every wait for a server is bounded by this, so a bug fails instead of hanging.
pub const GUARD: Duration = Duration::from_secs(20);

/// `f`'s output; panics, naming `what` it waited for, if that takes longer than [`GUARD`].
pub async fn guard<F: Future>(what: &str, f: F) -> F::Output {
    let timer = pin!(async_io::Timer::after(GUARD));
    match future::select(pin!(f), timer).await {
        Either::Left((output, _)) => output,
        Either::Right(_) => panic!("timed out waiting for {what}"),
    }
}

/// Poll `check` (every 20 ms) until it holds; panics, naming `what`, after [`GUARD`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    guard(what, async {
        while !check().await {
            async_io::Timer::after(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// The value of `key` in a query string (`user=alice&thread=t1`), if it has one.
pub fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}
