//! # switchboard-tokio
//!
//! Drives the sans-IO [`switchboard::Hub`] over tokio and WebSockets, on every core.
//!
//! The transport owns sockets and timers and nothing else: it accepts TCP, performs the
//! WebSocket handshake (asking your [`Authenticate`] who the client is, or refusing with an
//! HTTP status), feeds the hub text, binary and pong frames, flush reports and closes, carries
//! out the hub's sends, pings and closes, and sleeps until the hub's next timer. Every routing
//! decision is the hub's.
//!
//! This crate is thin: the shards, the connection driver, the [`Handle`] and the accept loop
//! are runtime-neutral and live in `switchboard-transport`, shared with the async-std
//! transport. Here are tokio's part ([`Tokio`]: `tokio::spawn`, `tokio::time`, tokio's
//! `TcpListener`, tokio-tungstenite's handshake), the axum adapter, and the names of the shared
//! types for tokio ([`Builder`], [`Handle`], [`UserHandle`]).
//!
//! ## Shards
//!
//! Connections are spread over `N` hubs (default: one per available core), each owned by one
//! task that follows the hub's drain invariant. A connection goes to the shard of its user
//! ([`Handle::shard_of`], a stable hash of the user id), so one user's connections, per-user
//! limits, streams, resume positions, offline buffer, agent runs and waiters all live on one
//! hub. Rooms span shards: [`Handle::publish`] to a room or to everyone is published on every
//! shard and the deliveries summed; a client's room `publish` frame is relayed from its shard to
//! the others. Every hub stamps its index into the connection ids it issues, so a
//! [`switchboard::ConnId`] names its shard.
//!
//! ## Tasks and channels
//!
//! - one task per shard, with a bounded inbox of commands (socket events from connections,
//!   requests from the [`Handle`]);
//! - one task per connection (the driver, generic over any [`Socket`]): its reader feeds the
//!   shard, its writer takes everything the shard queued in the connection's outbox at each
//!   wake-up (unbounded, bounded in practice by the hub's in-flight budget), writes it as one
//!   batch and reports `Flushed` once the batch is flushed to the socket — the hub's
//!   backpressure signal;
//! - the application's [`Events`] inbox for notices (application frames, closes, run reports).
//!
//! ## Example
//!
//! ```no_run
//! use switchboard::{Config, Message, Open, Target};
//! use switchboard_tokio::{Builder, Refusal, Request};
//!
//! # async fn run() -> std::io::Result<()> {
//! let (handle, mut events) = Builder::new(Config::production()).start();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let auth = |request: &Request| -> Result<Open, Refusal> {
//!     match request.headers().get("x-user").and_then(|v| v.to_str().ok()) {
//!         Some(user) => Ok(Open::new(user)),
//!         None => Err(Refusal::unauthorized()),
//!     }
//! };
//! tokio::spawn(handle.clone().serve(listener, auth));
//! tokio::spawn(async move { while let Some(_event) = events.recv().await { /* ... */ } });
//! handle.publish(Target::Room("lobby".into()), Message::new("hello", 1.into())).await.ok();
//! handle.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! With the `axum` feature, `axum::upgrade` runs the request of an `axum::WebSocketUpgrade`
//! extractor on the hub, and
//! `axum::sse` / `axum::sse_post` serve the same connections as Server-Sent Events.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "axum")]
pub mod axum;
mod runtime;
mod wire;

pub use runtime::Tokio;
pub use switchboard_transport::{
    cluster_channel, default_shards, http, position_from_query, Adapter, Authenticate, BadFraming,
    ClusterEvent, ClusterEvents, ClusterSink, Codec, Error, Event, EventStream, Events, Frame,
    Framing, Options, PostError, Refusal, Request, ShardedStats, Socket, SocketError,
    SseConnections, SseInbox, Tungstenite, BATCH_MESSAGE_BYTES, BATCH_PARAMETER,
    FLUSH_REPORT_BYTES, FRAMES_READ_AFTER_CLOSE, MAX_FRAMES_PER_POST,
};
pub use wire::Wire;

/// Starts a switchboard on tokio (see [`switchboard_transport::Builder`]).
pub type Builder = switchboard_transport::Builder<Tokio>;
/// The application's handle on a switchboard running on tokio (see
/// [`switchboard_transport::Handle`]).
pub type Handle = switchboard_transport::Handle<Tokio>;
/// A [`Handle`] limited to one user (see [`switchboard_transport::UserHandle`]).
pub type UserHandle = switchboard_transport::UserHandle<Tokio>;

/// The README's examples, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
