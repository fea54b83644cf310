//! # Switchboard
//!
//! A sans-IO WebSocket hub: one state machine, [`Hub`], that owns connections, users, rooms,
//! conversation threads and agent runs, routes every message to exactly the right
//! connections, and keeps per-stream history so that a client that reconnects receives what it
//! missed, or an explicit `gap`.
//!
//! The hub does no IO: transports feed it [`Input`]s with the current time and carry out its
//! [`Output`]s (see [`hub`] for the drain invariant). The same core runs under every
//! transport, in every test, and on every node.
//!
//! Modules, one concept each: [`id`] (handles and names), [`config`] (limits and presets),
//! [`protocol`] (the JSON wire format), [`hub`] (the state machine), [`scope`] (per-user
//! isolation), [`run`] (agent run automaton), [`stream`] (sequence numbers and history),
//! `outbox` (backpressure lanes), `heartbeat` (liveness and health), `room` (membership),
//! `timer` (deadlines), [`reason`] (close and drop reasons), [`stats`] (counters),
//! [`target`] (addressing), [`message`], [`access`] (room grants), [`io`] (inputs and outputs).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod config;
mod connection;
pub mod error;
mod heartbeat;
pub mod hub;
pub mod id;
pub mod io;
pub mod message;
mod outbox;
pub mod protocol;
mod rate;
pub mod reason;
mod room;
pub mod run;
pub mod scope;
pub mod sequenced;
pub mod stats;
pub mod stream;
pub mod target;
mod timer;

#[cfg(feature = "testing")]
pub mod testing;

pub use access::RoomAccess;
pub use config::{
    BackpressureConfig, Config, HeartbeatConfig, HistoryConfig, Limits, UserLimitPolicy,
};
pub use connection::{ConnectionInfo, Traffic};
pub use error::{OpenError, PublishError, RoomError, RunLimit, UnknownConnection};
pub use heartbeat::{Liveness, RttStats};
pub use hub::{AgentUpdate, Hub};
pub use id::{AgentId, ConnId, ParseConnIdError, RoomId, RunId, ThreadId, UserId};
pub use io::{AppMessage, Delivery, Envelope, Input, Notice, Open, Output, RemoteTarget, WaiterId};
pub use message::{Lane, Message};
pub use protocol::{ErrorCode, StreamPosition};
pub use reason::{Reason, ReasonCounts};
pub use run::{AgentEvent, EventKind, EventRecord, RunError, RunReport, RunState};
pub use scope::UserScope;
pub use sequenced::{EntryMeta, Sequenced, Unsequenced};
pub use stats::{Counters, RttHistogram, Stats, RTT_BUCKETS_MS};
pub use stream::{Position, StreamId};
pub use target::{Audience, Target};

/// The README's example, compiled and run as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
