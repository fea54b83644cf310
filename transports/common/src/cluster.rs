//! Outputs for other nodes: what this node's hubs emit for the rest of the cluster
//! ([`ClusterEvent`]), and the channel that carries it from the shards straight to the bridge
//! that joins the node to the others ([`cluster_channel`]: the shards' [`ClusterSink`],
//! registered with [`Builder::cluster`](crate::Builder::cluster), and the bridge's
//! [`ClusterEvents`]).
//!
//! None of it passes through the application's [`Events`](crate::Events): an application
//! cannot break clustering by not reading them, and its events carry only what it sees.

use async_channel::{Receiver, Sender};
use futures_util::Stream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use switchboard::{
    Answer, CancelRequest, CancelTicket, ConnId, Envelope, Position, PresenceChange, StreamId,
    Unsequenced, UserId,
};

/// Something the rest of the cluster needs from this node, in the order its shard emitted it.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterEvent {
    /// A publish other nodes must see (`ClusterOutput::Envelope`): one envelope per publish, whatever
    /// the number of shards. Shared with the shards it was relayed to, so cloning the event
    /// does not copy the message.
    Publish(Arc<Envelope>),
    /// A stream entry for the cluster's sequencer (`ClusterOutput::Sequence`, with
    /// `Config::shared_streams`): one per publish, whatever the number of shards. Hand it back
    /// sealed with [`Handle::deliver_sequenced`](crate::Handle::deliver_sequenced), here and
    /// on every other node: until then it reaches no one.
    Sequence(Arc<Unsequenced>),
    /// A shard started (`interested: true`) or stopped serving a stream
    /// (`ClusterOutput::Interest`): what to subscribe to.
    Interest {
        /// The stream: a room's or a user's.
        stream: StreamId,
        /// True on the first member or connection on the shard, false after the last left.
        interested: bool,
    },
    /// A shard started serving a room and waits for the sequencer's head, and for the entries
    /// after `since` from the shared history, before it answers the joins
    /// (`ClusterOutput::Follow`, with `Config::shared_streams`).
    Follow {
        /// The room's stream.
        stream: StreamId,
        /// Where the first joining member was.
        since: Option<Position>,
    },
    /// A user's first connection on this node joined a room, or its last one here left it
    /// (`ClusterOutput::Presence`). The bridge decides whether the user's presence in the whole
    /// cluster changed, and if so hands the change to every node serving the room, this one
    /// included, with [`Handle::deliver_presence`](crate::Handle::deliver_presence): until
    /// then it reaches no one.
    Presence(Arc<PresenceChange>),
    /// A client of this node asked to cancel a run that is not in progress on its hub
    /// (`ClusterOutput::Cancel`): the bridge asks the other nodes (their
    /// [`Handle::remote_cancel`](crate::Handle::remote_cancel)) and answers the client with
    /// [`Handle::answer`](crate::Handle::answer), `unknown_run` when no node has the run.
    Cancel(Box<CancelRequest>),
    /// The application answered a cancel another node carried here
    /// ([`Handle::answer_cancel`](crate::Handle::answer_cancel) of a
    /// [`CancelFrom::Node`](switchboard::CancelFrom::Node)): the bridge sends `answer` back to
    /// the ticket's node, for its client.
    CancelAnswer {
        /// The request, as the asking node named it.
        ticket: CancelTicket,
        /// What the run's producer side answered.
        answer: Answer,
    },
    /// A connection opened on this node (presence, the cluster-wide connection limit).
    Opened {
        /// The connection.
        conn: ConnId,
        /// Its user.
        user: UserId,
    },
    /// A connection of this node is gone (presence).
    Closed {
        /// The connection.
        conn: ConnId,
        /// Its user.
        user: UserId,
    },
}

/// A new cluster channel: hand the [`ClusterSink`] to
/// [`Builder::cluster`](crate::Builder::cluster), and the [`ClusterEvents`] to the bridge that
/// joins this node to the others.
///
/// It is unbounded so that no hub ever waits for the bridge; the bridge bounds what it keeps
/// waiting for Redis itself. Dropping the [`ClusterEvents`] discards what follows.
pub fn cluster_channel() -> (ClusterSink, ClusterEvents) {
    let (sink, events) = async_channel::unbounded();
    (
        ClusterSink { sink },
        ClusterEvents {
            inbox: Box::pin(events),
        },
    )
}

/// The shards' end of a [`cluster_channel`]: where every shard sends its [`ClusterEvent`]s.
#[derive(Debug, Clone)]
pub struct ClusterSink {
    sink: Sender<ClusterEvent>,
}

impl ClusterSink {
    /// Send `event` without waiting; discarded once the bridge dropped its end.
    pub(crate) fn send(&self, event: ClusterEvent) {
        let _ = self.sink.try_send(event);
    }
}

/// The bridge's end of a [`cluster_channel`]: every shard's [`ClusterEvent`]s, in order per
/// shard.
#[derive(Debug)]
pub struct ClusterEvents {
    inbox: Pin<Box<Receiver<ClusterEvent>>>,
}

impl ClusterEvents {
    /// The next event; `None` once every shard has stopped (after
    /// [`Handle::shutdown`](crate::Handle::shutdown)) and every event was received.
    pub async fn recv(&mut self) -> Option<ClusterEvent> {
        self.inbox.recv().await.ok()
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<ClusterEvent> {
        self.inbox.try_recv().ok()
    }
}

impl Stream for ClusterEvents {
    type Item = ClusterEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClusterEvent>> {
        self.inbox.as_mut().poll_next(cx)
    }
}
