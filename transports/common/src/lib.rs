//! # switchboard-transport
//!
//! The runtime-neutral half of every switchboard transport, written once against `futures`:
//! the shards that own the hubs, the connection driver, the application's [`Handle`], the
//! accept loop and the handshake's authentication. A transport supplies its runtime
//! ([`Runtime`]: spawn and sleep-until), optionally a TCP listener ([`Listen`]) and a
//! WebSocket handshake ([`Upgrade`]), and names the types for it: `switchboard_tokio` and
//! `switchboard_async_std` are each a few impls and adapters over this crate.
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
//!   requests from the [`Handle`] that found the shard busy); a request that finds its shard
//!   free runs and drains it on the caller's own thread, with no hand-off to the task;
//! - one task per connection (the driver, generic over any [`Socket`]): its reader feeds the
//!   shard, its writer takes everything the shard queued in the connection's outbox at each
//!   wake-up (unbounded, bounded in practice by the hub's in-flight budget), writes it as one
//!   batch and reports `Flushed` once the batch is flushed to the socket — the hub's
//!   backpressure signal;
//! - the application's [`Events`] inbox for notices (application frames, closes, run reports).
//!
//! ## Server-Sent Events
//!
//! The same driver runs a connection whose server frames are a `text/event-stream` response
//! body and whose client frames are posted in separate requests ([`Handle::open_sse`],
//! [`SseConnections`]): a WebSocket connection in everything but its encoding.
//!
//! Channels are `async-channel` and `futures` oneshots; the only runtime calls are
//! [`Runtime::spawn`] and [`Runtime::sleep_until`] (timeouts are a sleep raced against the
//! work).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod batch;
mod builder;
mod cluster;
mod driver;
mod error;
mod events;
mod frame;
mod framing;
mod handle;
mod options;
mod outbox;
mod presence;
mod read_chunks;
mod remote;
mod runtime;
mod seat;
mod server;
mod shard;
mod shards;
mod shutdown;
mod socket_io;
mod sse;
mod tasks;
mod user;
mod woken;
mod write_queue;

pub use builder::Builder;
pub use cluster::{cluster_channel, ClusterEvent, ClusterEvents, ClusterSink};
pub use driver::{FLUSH_REPORT_BYTES, FRAMES_READ_AFTER_CLOSE};
pub use error::Error;
pub use events::{Event, Events};
pub use frame::{Adapter, Codec, Frame, Socket, SocketError, Tungstenite};
pub use framing::{BadFraming, Framing, BATCH_MESSAGE_BYTES, BATCH_PARAMETER};
pub use handle::{Handle, ShardedStats};
pub use options::{default_shards, Options};
pub use read_chunks::{ReadChunks, READ_BUFFER_BYTES, READ_CHUNK_BYTES};
pub use runtime::Runtime;
pub use server::{
    position_from_query, write_buffer_limit, Authenticate, HandshakeCallback, Listen, Refusal,
    Request, Upgrade, WRITE_BUFFER_BYTES,
};
pub use socket_io::SocketIo;
pub use sse::{
    position_from_event_id, EventStream, PostError, SseConnections, SseInbox, SseSocket,
    CHUNKS_IN_FLIGHT, INBOUND_FRAMES, MAX_FRAMES_PER_POST,
};
/// The tungstenite crate the adapters and the handshake are written against.
pub use tungstenite;
/// The `http` types of the handshake ([`Request`], the status of a [`Refusal`]).
pub use tungstenite::http;
pub use user::UserHandle;
pub use write_queue::WriteQueue;
