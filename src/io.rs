//! The hub's typed inputs and outputs: what a transport feeds in and what it must carry out.

use crate::access::RoomAccess;
use crate::id::{AgentId, ConnId, RunId, ThreadId, UserId};
use crate::message::Message;
use crate::reason::Reason;
use crate::run::{AgentEvent, RunReport};
use crate::sequenced::{Sequenced, Unsequenced};
use crate::stream::{Position, StreamId};
use crate::target::Audience;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

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
    /// The client's position on its user stream, from the connect request: what it missed is
    /// replayed before any live message, atomically.
    pub resume: Option<Position>,
}

impl Open {
    /// A connection of `user` with no thread, no metadata, any room, no resume.
    pub fn new(user: impl Into<UserId>) -> Self {
        Self {
            user: user.into(),
            thread: None,
            metadata: serde_json::Value::Null,
            access: RoomAccess::Any,
            resume: None,
        }
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

    /// Attach application metadata.
    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }
}

/// Something that happened on a connection's socket, or from elsewhere, fed to
/// [`Hub::handle_input`](crate::Hub::handle_input).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Input<'a> {
    /// A text frame's payload, as received (validated as UTF-8 by the hub).
    Text {
        /// The connection.
        conn: ConnId,
        /// The payload.
        bytes: &'a [u8],
    },
    /// A binary frame (not part of the protocol: closed with 1003).
    Binary {
        /// The connection.
        conn: ConnId,
        /// The payload.
        bytes: &'a [u8],
    },
    /// A ping control frame from the peer. The transport's WebSocket layer answers it with a
    /// pong by itself; the hub counts it as a sign of life and against the connection's message
    /// rate, like a text frame: past the rate it takes a strike (without an `error` frame), and
    /// with no strike left the connection closes with 4029.
    Ping {
        /// The connection.
        conn: ConnId,
    },
    /// A pong control frame with its payload. A pong that answers no ping of the hub's
    /// (unsolicited) counts against the message rate as [`Input::Ping`] does.
    Pong {
        /// The connection.
        conn: ConnId,
        /// The payload (echo of the ping's).
        payload: &'a [u8],
    },
    /// The transport wrote `bytes` of this connection's frames to the socket.
    Flushed {
        /// The connection.
        conn: ConnId,
        /// How many bytes of [`Output::Send`] frames were written.
        bytes: usize,
    },
    /// The peer closed the connection or the socket failed.
    Closed {
        /// The connection.
        conn: ConnId,
    },
    /// The producer of a run went away (its process died, its request was cancelled): the run
    /// ends with `producer_lost`.
    ProducerLost {
        /// The run's user.
        user: &'a UserId,
        /// The run.
        run: &'a RunId,
    },
    /// A publish that arrived from another node.
    Remote(&'a Envelope),
    /// A stream entry with its position, from the cluster's sequencer (with
    /// `Config::shared_streams`): delivered in the stream's order, kept in its history.
    Sequenced(&'a Sequenced),
    /// An older entry of a stream, from the cluster's shared history (with
    /// `Config::shared_streams`), fed newest first after a [`Notice::Follow`] or before a
    /// connection that resumes opens: kept for replays, delivered to no one now.
    History(&'a Sequenced),
    /// Where the cluster's sequencer stands on a stream this hub started serving (with
    /// `Config::shared_streams`): it hands the hub every entry after `head`. Joins to a room the
    /// hub just started serving are answered once this arrives (`head` `None`: the sequencer
    /// is unreachable; the joins are answered with the hub's own position).
    StreamHead {
        /// The stream.
        stream: &'a StreamId,
        /// The last entry the sequencer numbered in it, if it could tell.
        head: Option<Position>,
    },
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

/// A publish travelling to the other hubs of a process (shards) or to other nodes: who it is
/// for, what it says, and who sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The recipients. A single connection is never a remote target.
    pub target: RemoteTarget,
    /// The message.
    pub message: Message,
    /// The user whose client published it (a room `publish` frame), shown to recipients as
    /// `from`; `None` for the application's publishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<UserId>,
    /// Connections to leave out. Ids are unique within one process only: a bridge to other
    /// nodes sends [`Envelope::for_other_nodes`], which leaves this empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<ConnId>,
}

/// The targets that can cross nodes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RemoteTarget {
    /// Every connection of a user.
    User {
        /// The user.
        user: UserId,
    },
    /// Every member of a room.
    Room {
        /// The room.
        room: crate::id::RoomId,
    },
    /// A user's thread.
    Thread {
        /// The user.
        user: UserId,
        /// The thread.
        thread: ThreadId,
    },
    /// Everyone.
    All,
}

impl Envelope {
    /// Serialize once for the wire between nodes.
    pub fn encode(&self) -> Bytes {
        crate::protocol::encode(self)
    }

    /// Parse an envelope received from another node.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// This envelope as another node must see it: without connection ids, which name other
    /// connections there.
    pub fn for_other_nodes(&self) -> Envelope {
        Envelope {
            except: Vec::new(),
            ..self.clone()
        }
    }

    pub(crate) fn audience(&self) -> Audience {
        use crate::target::Target;
        let target = match &self.target {
            RemoteTarget::User { user } => Target::User(user.clone()),
            RemoteTarget::Room { room } => Target::Room(room.clone()),
            RemoteTarget::Thread { user, thread } => Target::Thread {
                user: user.clone(),
                thread: thread.clone(),
            },
            RemoteTarget::All => Target::All,
        };
        target.except(self.except.iter().copied())
    }
}

/// Something the transport or the application must do, drained with
/// [`Hub::poll_output`](crate::Hub::poll_output).
#[derive(Debug, Clone, PartialEq)]
#[must_use = "every output must be performed (the drain invariant)"]
pub enum Output {
    /// Write this text frame to the connection, then report [`Input::Flushed`].
    Send {
        /// The connection.
        conn: ConnId,
        /// A complete JSON text frame, shared by every recipient.
        frame: Bytes,
    },
    /// Send a ping control frame with this payload.
    Ping {
        /// The connection.
        conn: ConnId,
        /// The payload the pong must echo.
        payload: [u8; 8],
    },
    /// Send a close frame with `code` and the reason's label, then drop the socket. The hub
    /// has already forgotten the connection.
    Close {
        /// The connection.
        conn: ConnId,
        /// The WebSocket close code.
        code: u16,
        /// Why.
        reason: Reason,
    },
    /// Publish this envelope to the other nodes (only with `Config::cluster`).
    Remote(Box<Envelope>),
    /// Have this stream entry numbered by the cluster's sequencer, which hands it back sealed
    /// to every hub serving its stream (only with `Config::shared_streams`).
    Sequence(Box<Unsequenced>),
    /// Tell the application something.
    Notice(Notice),
}

/// Events for the embedding application.
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
    /// A client frame of an application-defined type.
    App(Box<AppMessage>),
    /// An agent run ended; its report.
    RunEnded(Box<RunReport>),
    /// With `Config::cluster` or `Config::shared_streams`: this hub started (`interested:
    /// true`) or stopped serving a
    /// stream locally. A room's stream when it gets its first member or loses its last; a
    /// user's stream when the user gets a first connection or loses the last. A bridge to
    /// other nodes subscribes to what the hubs are interested in, and to nothing else.
    Interest {
        /// The stream: `StreamId::Room` or `StreamId::User`.
        stream: StreamId,
        /// True on the first member or connection, false after the last one left.
        interested: bool,
    },
    /// With `Config::shared_streams`: this hub started serving a room (its first member here)
    /// and answers the joins to it once the sequencer's head arrives
    /// ([`Input::StreamHead`]); before it, the entries after `since`
    /// (the joining member's position), from the shared history, newest first
    /// ([`Input::History`]).
    Follow {
        /// The stream.
        stream: StreamId,
        /// Where the first joining member was.
        since: Option<Position>,
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
