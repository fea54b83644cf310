//! # switchboard-async-std
//!
//! Drives the sans-IO [`switchboard::Hub`] over async-std or smol and WebSockets
//! (async-tungstenite), on every core: the same responsibilities and the same application
//! handle as `switchboard-tokio` (accept, handshake with your [`Authenticate`], inputs,
//! outputs, flush reports, timers, graceful shutdown), and no routing decision.
//!
//! Written against runtime-neutral pieces — async-io timers, async-net sockets,
//! async-tungstenite over `futures-io`, `futures` — so it runs under async-std and under smol
//! (async-std is in maintenance and recommends smol). Only spawning is the executor's:
//! [`AsyncIo::async_std`] or [`AsyncIo::smol`] (features `async-std` and `smol`, both on by
//! default), or [`AsyncIo::new`] with any executor's spawn function.
//!
//! Everything but that runtime glue (shards, connection driver, [`Handle`], accept loop,
//! authentication) lives once, in `switchboard-transport`; here are the names of its types for
//! [`AsyncIo`] ([`Builder`], [`Handle`], [`UserHandle`]).
//!
//! ## Example (smol)
//!
//! ```no_run
//! use switchboard::{Config, Message, Open, Target};
//! use switchboard_async_std::{AsyncIo, Builder, Refusal, Request, Runtime};
//!
//! # fn main() -> std::io::Result<()> {
//! smol::block_on(async {
//!     let (handle, mut events) = Builder::on(AsyncIo::smol(), Config::production()).start();
//!     let listener = async_net::TcpListener::bind("127.0.0.1:8080").await?;
//!     let auth = |request: &Request| -> Result<Open, Refusal> {
//!         match request.headers().get("x-user").and_then(|v| v.to_str().ok()) {
//!             Some(user) => Ok(Open::new(user)),
//!             None => Err(Refusal::unauthorized()),
//!         }
//!     };
//!     handle.runtime().spawn(handle.clone().serve(listener, auth));
//!     handle.runtime().spawn(async move { while let Some(_event) = events.recv().await {} });
//!     let lobby = Target::Room("lobby".into());
//!     handle.publish(lobby, Message::new("hello", 1.into())).await.ok();
//!     handle.shutdown().await;
//!     Ok(())
//! })
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod runtime;
mod wire;

pub use runtime::{AsyncIo, Task};
pub use switchboard_transport::{
    cluster_channel, default_shards, http, position_from_query, Adapter, Authenticate, BadFraming,
    ClusterEvent, ClusterEvents, ClusterSink, Codec, Error, Event, Events, Frame, Framing, Options,
    Refusal, Request, Runtime, ShardedStats, Socket, SocketError, Tungstenite, BATCH_MESSAGE_BYTES,
    BATCH_PARAMETER, FLUSH_REPORT_BYTES, FRAMES_READ_AFTER_CLOSE,
};
pub use wire::Wire;

/// Starts a switchboard on async-io (see [`switchboard_transport::Builder`]).
pub type Builder = switchboard_transport::Builder<AsyncIo>;
/// The application's handle on a switchboard running on async-io (see
/// [`switchboard_transport::Handle`]).
pub type Handle = switchboard_transport::Handle<AsyncIo>;
/// A [`Handle`] limited to one user (see [`switchboard_transport::UserHandle`]).
pub type UserHandle = switchboard_transport::UserHandle<AsyncIo>;

/// The README's examples, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
