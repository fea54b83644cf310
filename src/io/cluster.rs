//! The cluster's side of the boundary: what other hubs and the cluster's sequencer feed a hub
//! ([`ClusterInput`], through [`Hub::handle_cluster`](crate::Hub::handle_cluster)) and what a
//! hub hands them ([`ClusterOutput`]), and the [`Envelope`] a publish travels in.

use crate::id::{ConnId, RoomId, ThreadId, UserId};
use crate::message::Message;
use crate::presence::PresenceChange;
use crate::sequenced::{Sequenced, Unsequenced};
use crate::stream::{Position, StreamId};
use crate::target::{Audience, Target};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// What other hubs and the cluster's sequencer feed a hub, through
/// [`Hub::handle_cluster`](crate::Hub::handle_cluster). It names no connection of the hub, so
/// it cannot fail.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum ClusterInput<'a> {
    /// A publish from another hub (another shard of the process, or another node), delivered
    /// here as if published here.
    Envelope(&'a Envelope),
    /// A stream entry with its position, from the cluster's sequencer (with
    /// `Config::shared_streams`): delivered in the stream's order, kept in its history.
    Sequenced(&'a Sequenced),
    /// An older entry of a stream, from the cluster's shared history (with
    /// `Config::shared_streams`), fed newest first after a [`ClusterOutput::Follow`] or before
    /// a connection that resumes opens: kept for replays, delivered to no one now.
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
    /// A user arrived in a room or left it, across the whole cluster (its first connection on
    /// any node joined, or its last one on every node left): delivered to the room's members
    /// here who watch presence. Every hub serving the room is fed it, the one whose
    /// [`ClusterOutput::Presence`] started it included.
    Presence(&'a PresenceChange),
}

/// What a hub hands the rest of the cluster (only with `Config::cluster` or
/// `Config::shared_streams`): a bridge to other nodes carries these out, in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClusterOutput {
    /// Publish this envelope to the other hubs (only with `Config::cluster`): a publish other
    /// hubs may have to serve, fed there as [`ClusterInput::Envelope`].
    Envelope(Box<Envelope>),
    /// Have this stream entry numbered by the cluster's sequencer, which hands it back sealed
    /// to every hub serving its stream, this one included, as [`ClusterInput::Sequenced`]
    /// (only with `Config::shared_streams`).
    Sequence(Box<Unsequenced>),
    /// This hub started (`interested: true`) or stopped serving a stream locally: a room's
    /// stream when it gets its first member here or loses its last, a user's stream when the
    /// user gets a first connection here or loses the last. A bridge subscribes to what the
    /// hubs are interested in, and to nothing else.
    Interest {
        /// The stream: `StreamId::Room` or `StreamId::User`.
        stream: StreamId,
        /// True on the first member or connection, false after the last one left.
        interested: bool,
    },
    /// With `Config::shared_streams`: this hub started serving a room (its first member here)
    /// and answers the joins to it once the sequencer's head of the room's stream arrives
    /// ([`ClusterInput::StreamHead`]); before it, the entries after `since` (the joining
    /// member's position), from the shared history, newest first ([`ClusterInput::History`]).
    Follow {
        /// The room (its stream is `StreamId::Room(room)`).
        room: RoomId,
        /// Where the first joining member was.
        since: Option<Position>,
    },
    /// With `Config::cluster`: a user's first connection here joined a room, or its last one
    /// here left it. The hub does not deliver it itself: whoever joins the hubs (a bridge
    /// counting every node's users, or the sibling shards of a process, whose users each live
    /// on one shard) decides whether the user's presence in the whole cluster changed, and if
    /// so feeds it to every hub serving the room as [`ClusterInput::Presence`].
    Presence(Box<PresenceChange>),
    /// With `Config::cluster`: a client's `cancel` for a run that is not in progress on this
    /// hub. The hub does not answer it: whoever joins the hubs asks the other nodes, whose
    /// hubs hand it to the run's producer ([`Hub::remote_cancel`](crate::Hub::remote_cancel)),
    /// and answers the client with [`Hub::answer`](crate::Hub::answer) — the producer node's
    /// answer, or `unknown_run` when no node has the run for that user. Its
    /// [`CancelRequest::from`](crate::CancelRequest::from) is always a client of this hub.
    Cancel(Box<crate::io::CancelRequest>),
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
        room: RoomId,
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
