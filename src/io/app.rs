//! The application's side of the boundary: opening a connection, producing agent runs, what a
//! publish did, and the [`Notice`]s the hub tells the application.

use super::answer::ClientRef;
use crate::access::RoomAccess;
use crate::id::RunId;
use crate::id::{AgentId, ConnId, RoomId, ThreadId, UserId};
use crate::reason::Reason;
use crate::run::{AgentEvent, RunReport};
use crate::stream::Position;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// A request to open a connection, made by the transport once the client is authenticated.
#[derive(Debug, Clone, PartialEq)]
pub struct Open {
    /// The authenticated user.
    pub user: UserId,
    /// The thread to bind to at once, if any.
    pub thread: Option<ThreadId>,
    /// Application metadata (user agent, client version, ...), returned by `connection_info`.
    pub metadata: serde_json::Value,
    /// The rooms this connection may join (from the token).
    pub access: RoomAccess,
    /// The rooms this connection may publish to (from the token), among those it is a member
    /// of: a client `publish` to a room outside it is answered `forbidden`. The application's
    /// own publishes are not subject to it.
    pub publish: RoomAccess,
    /// The client's position on its user stream, from the connect request: what it missed is
    /// replayed before any live message, atomically.
    pub resume: Option<Position>,
    /// When the client's token expires, on the hub's clock (`None`: never, as for a one-time
    /// ticket). The hub asks the client for a fresh token ahead of it and closes the
    /// connection with 4005 once it passed (see [`TokenConfig`](crate::TokenConfig)).
    pub expires_at: Option<Instant>,
}

impl Open {
    /// A connection of `user` with no thread, no metadata, any room to join and publish to, no
    /// resume.
    pub fn new(user: impl Into<UserId>) -> Self {
        Self {
            user: user.into(),
            thread: None,
            metadata: serde_json::Value::Null,
            access: RoomAccess::Any,
            publish: RoomAccess::Any,
            resume: None,
            expires_at: None,
        }
    }

    /// The client's token expires at `at` (converted by the transport from the token's `exp`
    /// to the instants it feeds the hub): the hub asks for a fresh token ahead of it
    /// ([`Notice::Refresh`]) and closes the connection with 4005 once it passed without one.
    pub fn expires_at(mut self, at: Instant) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Bind to `thread` at once.
    pub fn thread(mut self, thread: impl Into<ThreadId>) -> Self {
        self.thread = Some(thread.into());
        self
    }

    /// Resume the user stream after `position`.
    pub fn resume(mut self, position: Position) -> Self {
        self.resume = Some(position);
        self
    }

    /// Restrict the rooms the connection may join.
    pub fn access(mut self, access: RoomAccess) -> Self {
        self.access = access;
        self
    }

    /// Restrict the rooms the connection may publish to (it must still be a member of a room
    /// to publish to it). A client `publish` outside the grant is refused with `forbidden`, as
    /// a `join` outside [`access`](Self::access) is.
    pub fn publish(mut self, publish: RoomAccess) -> Self {
        self.publish = publish;
        self
    }

    /// Attach application metadata.
    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }
}

/// One event of an agent run, as the producer sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentUpdate {
    /// The run.
    pub run: RunId,
    /// The agent producing it (taken from `agent_started`; ignored afterwards).
    pub agent: AgentId,
    /// The thread the run belongs to (taken from `agent_started`; ignored afterwards). A run
    /// with a thread reaches the user's connections bound to it; one without reaches all of the
    /// user's connections.
    pub thread: Option<ThreadId>,
    /// The event.
    pub event: AgentEvent,
}

/// What the application is told: connections opening, closing, going silent and coming back,
/// waits resolved, application frames, agent runs ending. Only what the application sees:
/// what the cluster needs is a [`ClusterOutput`](crate::ClusterOutput).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Notice {
    /// A connection opened (after its welcome frame).
    Opened {
        /// The connection.
        conn: ConnId,
        /// Its user.
        user: UserId,
    },
    /// A connection joined a room (its own `join` or `resume`, or the application's
    /// `join_room`).
    Joined(Box<RoomChange>),
    /// A connection left a room (its own `leave`, the application's `leave_room`, or a fresh
    /// token that no longer allows it). Rooms a closing connection was in are not reported one
    /// by one: [`Notice::Closed`] says it all.
    Left(Box<RoomChange>),
    /// A connection is gone, for `reason`.
    Closed {
        /// The connection.
        conn: ConnId,
        /// Its user.
        user: UserId,
        /// Why.
        reason: Reason,
    },
    /// A connection went silent past the heartbeat timeout; it is closed unless it answers
    /// within the grace.
    Dead {
        /// The connection.
        conn: ConnId,
    },
    /// A dead connection answered in time and is alive again.
    Resurrected {
        /// The connection.
        conn: ConnId,
    },
    /// A [`wait_for_connection`](crate::Hub::wait_for_connection) resolved.
    UserConnected {
        /// The registration.
        waiter: WaiterId,
        /// The user.
        user: UserId,
        /// The connection that opened (or was already open).
        conn: ConnId,
    },
    /// A [`wait_for_connection`](crate::Hub::wait_for_connection) reached its deadline.
    WaitExpired {
        /// The registration.
        waiter: WaiterId,
        /// The user.
        user: UserId,
    },
    /// A client frame of an application-defined type. The application answers one with a
    /// `ref` with [`Hub::answer`](crate::Hub::answer).
    App(Box<AppMessage>),
    /// An agent run ended; its report.
    RunEnded(Box<RunReport>),
    /// A client sent a fresh token (a `refresh` frame). The application verifies it as it
    /// verified the connection's first one, and answers with
    /// [`Hub::refreshed`](crate::Hub::refreshed) or
    /// [`Hub::refresh_refused`](crate::Hub::refresh_refused); until then the connection keeps
    /// its current grants and expiry, and a second `refresh` frame is answered
    /// `refresh_in_progress`.
    Refresh(Box<RefreshRequest>),
    /// A client asked to cancel one of its user's runs in progress (a `cancel` frame), on this
    /// hub or, through the cluster, on another node ([`CancelFrom`]). The application tells
    /// the run's producer and answers the one who asked: a client here with
    /// [`Hub::answer`](crate::Hub::answer), another node through the cluster. The run ends
    /// only when the producer sends `agent_cancelled`.
    Cancel(Box<CancelRequest>),
}

/// A client's request to cancel a run of its user ([`Notice::Cancel`], or
/// [`ClusterOutput::Cancel`](crate::ClusterOutput::Cancel) when the run is not in progress on
/// the client's hub).
#[derive(Debug, Clone, PartialEq)]
pub struct CancelRequest {
    /// Who asked, and where the answer goes.
    pub from: CancelFrom,
    /// The user of the client that asked, whose run it is.
    pub user: UserId,
    /// The run, in progress on this hub when the notice was emitted.
    pub run: RunId,
}

/// Who asked for a [`CancelRequest`].
#[derive(Debug, Clone, PartialEq)]
pub enum CancelFrom {
    /// A client of this hub.
    Client {
        /// The connection it came from.
        conn: ConnId,
        /// The frame's `ref`, to hand back with the answer.
        reference: Option<ClientRef>,
    },
    /// A client of another node, whose cancel the cluster carried here
    /// ([`Hub::remote_cancel`](crate::Hub::remote_cancel)): the answer goes back to that node
    /// with this ticket.
    Node(CancelTicket),
}

/// Names a cancel carried between nodes: the node whose client asked, and that node's number
/// for the request. Opaque to the hubs, which hand it back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CancelTicket {
    /// The node whose client asked.
    pub node: String,
    /// That node's number for the request, unique on it.
    pub id: u64,
}

/// A connection that joined or left a room ([`Notice::Joined`], [`Notice::Left`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RoomChange {
    /// The connection.
    pub conn: ConnId,
    /// Its user.
    pub user: UserId,
    /// The room.
    pub room: RoomId,
}

/// A fresh token a client sent, for the application to verify ([`Notice::Refresh`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshRequest {
    /// The connection it came from.
    pub conn: ConnId,
    /// Its user: the fresh token must be this user's.
    pub user: UserId,
    /// The token, as the client sent it (at most [`MAX_TOKEN_BYTES`](crate::MAX_TOKEN_BYTES)).
    pub token: String,
}

/// What a verified fresh token grants, for [`Hub::refreshed`](crate::Hub::refreshed): it
/// replaces what the connection was granted so far, at once.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshGrant {
    /// When the fresh token expires, on the hub's clock (`None`: never).
    pub expires_at: Option<Instant>,
    /// The rooms the connection may join from now on: it leaves those it is in outside this.
    pub join: RoomAccess,
    /// The rooms it may publish to from now on.
    pub publish: RoomAccess,
}

/// Why the application refused a fresh token, for
/// [`Hub::refresh_refused`](crate::Hub::refresh_refused). The connection keeps its current
/// grants and expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshRefusal {
    /// The token is valid but for another user: the client gets `error` `forbidden`.
    Forbidden,
    /// The token did not verify: the client gets `error` `invalid_token`, with `reason` (a
    /// stable code, as the handshake's refusals have: `expired`, `bad_signature`, ...).
    InvalidToken {
        /// Why, as a stable code.
        reason: &'static str,
    },
}

/// A client frame of a type listed in `Config::app_frame_types`.
#[derive(Debug, Clone, PartialEq)]
pub struct AppMessage {
    /// The connection it came from.
    pub conn: ConnId,
    /// Its user.
    pub user: UserId,
    /// The thread the connection is bound to.
    pub thread: Option<ThreadId>,
    /// The frame's `type`.
    pub kind: String,
    /// The frame's `data`.
    pub data: serde_json::Value,
    /// The frame's `ref`, to hand back with the answer
    /// ([`Hub::answer`](crate::Hub::answer)).
    pub reference: Option<ClientRef>,
}

/// The handle of one `wait_for_connection` registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaiterId(pub(crate) u64);

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivery {
    /// Connections the message was handed or queued to.
    pub reached: usize,
    /// The stream position it was given, for sequenced messages.
    pub position: Option<Position>,
    /// True if no connection received it live and it waits in history for the next
    /// connection of the user that selects it: one that opens, or that binds to its thread
    /// (offline buffering). History bounds how long it can wait.
    pub buffered: bool,
}
