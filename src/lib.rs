//! # Switchboard
//!
//! A sans-IO WebSocket hub: one state machine, [`Hub`], that owns connections, users, rooms,
//! conversation threads and agent runs, routes every message to exactly the right
//! connections, and keeps per-stream history so that a client that reconnects receives what it
//! missed, or an explicit `gap`.
//!
//! The hub does no IO: it is fed inputs with the current time and asks for [`Output`]s, typed
//! by destination: [`SocketInput`] in and [`SocketOutput`] out for the transport's sockets,
//! requests in and [`Notice`]s out for the application, [`ClusterInput`] in and
//! [`ClusterOutput`] out for the other hubs of a cluster (see [`Hub`] for the drain
//! invariant). The same core runs under every transport, in every test, and on every node.
//!
//! Every public item is at the crate root, under one path; the modules are private.
#![cfg_attr(
    feature = "testing",
    doc = "The one public module is [`testing`] (feature `testing`): the in-memory \
           [`Harness`](testing::Harness), the test double for applications."
)]
#![cfg_attr(
    not(feature = "testing"),
    doc = "The one public module is `testing`, behind the feature `testing`: the in-memory \
           `Harness`, the test double for applications."
)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod access;
mod cluster;
mod config;
mod connection;
mod directory;
mod error;
mod heartbeat;
mod hub;
mod id;
mod io;
mod message;
mod mutation;
mod outbox;
mod outputs;
mod presence;
mod protocol;
mod rate;
mod reason;
mod room;
mod run;
#[cfg(feature = "schema")]
mod schema;
mod scope;
mod sequenced;
mod stats;
mod stream;
mod target;
mod timer;
mod token;
mod waiters;

#[cfg(feature = "testing")]
pub mod testing;

pub use access::RoomAccess;
pub use config::{
    BackpressureConfig, Config, HeartbeatConfig, HistoryConfig, Limits, TokenConfig,
    UserLimitPolicy,
};
pub use connection::{ConnectionInfo, Traffic};
pub use error::{OpenError, PublishError, RoomError, UnknownConnection};
pub use heartbeat::{Liveness, RttStats};
pub use hub::{Hub, UserMembership};
pub use id::{AgentId, ConnId, ParseConnIdError, RoomId, RunId, ThreadId, UserId};
pub use io::{
    AgentUpdate, Answer, AppErrorCode, AppMessage, CancelFrom, CancelRequest, CancelTicket,
    ClientRef, ClusterInput, ClusterOutput, Delivery, Envelope, Notice, Open, Output, RefreshGrant,
    RefreshRefusal, RefreshRequest, RemoteTarget, RoomChange, SocketInput, SocketOutput, WaiterId,
    MAX_APP_CODE_BYTES,
};
pub use message::{Lane, Message};
pub use presence::{PresenceChange, PresenceConfig, PresenceEvent};
pub use protocol::{ErrorCode, StreamPosition, CLIENT_FRAME_TYPES, MAX_REF_BYTES, MAX_TOKEN_BYTES};
pub use reason::{Reason, ReasonCounts};
pub use run::{
    AgentEvent, EventKind, EventRecord, RunError, RunLimit, RunReport, RunState,
    MAX_MESSAGES_PER_RUN, MAX_REPORT_EVENTS,
};
#[cfg(feature = "schema")]
pub use schema::{protocol_schema, protocol_schema_text};
pub use scope::UserScope;
pub use sequenced::{EntryMeta, Sequenced, Unsequenced};
pub use stats::{Counters, RttHistogram, Stats, RTT_BUCKETS_MS};
pub use stream::{ParsePositionError, Position, StreamId};
pub use target::{Audience, Target};

/// The README's example, compiled and run as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
