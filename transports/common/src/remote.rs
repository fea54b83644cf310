//! Inputs from other nodes: what a bridge to the cluster receives and hands to this node's
//! hubs ([`Handle::deliver_remote`], [`Handle::deliver_sequenced`],
//! [`Handle::deliver_history`], [`Handle::deliver_head`], [`Handle::deliver_presence`]), and how it keeps pace with them
//! ([`Handle::fed`], [`Handle::inbound_backlog`]); and a client's cancel carried between
//! nodes ([`Handle::remote_cancel`] where the run's producer is, [`Handle::answer_cancel`]
//! for the application's answer).
//!
//! Each is queued, without waiting, in the inbound queue of the shards it concerns (the
//! user's shard for a user's stream, every shard for a room or everyone), in order: a node's
//! subscription keeps reading while its shards fan out. A shard feeds up to 64 queued inputs
//! to its hub, then drains once (see `shard.rs`).

use crate::cluster::ClusterEvent;
use crate::error::Error;
use crate::handle::Handle;
use crate::runtime::Runtime;
use crate::shard::Inbound;
use futures_channel::oneshot;
use std::sync::Arc;
use switchboard::{
    Answer, CancelFrom, CancelTicket, Envelope, Position, PresenceChange, RemoteTarget, RunId,
    Sequenced, StreamId, UserId,
};

/// The user whose shard serves `stream` alone (a room's members are on every shard).
fn owner(stream: &StreamId) -> Option<&UserId> {
    match stream {
        StreamId::User(user) => Some(user),
        StreamId::Room(_) => None,
    }
}

impl<R: Runtime> Handle<R> {
    /// Queue a publish that arrived from another node (`ClusterInput::Envelope`) for the shards it
    /// concerns, after what was queued before. It emits no new envelope. Never waits: see
    /// [`Handle::fed`].
    pub fn deliver_remote(&self, envelope: Envelope) -> Result<(), Error> {
        let user = match &envelope.target {
            RemoteTarget::User { user } | RemoteTarget::Thread { user, .. } => Some(user.clone()),
            RemoteTarget::Room { .. } | RemoteTarget::All => None,
        };
        let envelope = Arc::new(envelope);
        self.shards
            .queue(user.as_ref(), || Inbound::Envelope(envelope.clone()))
    }

    /// Queue a stream entry sealed by the cluster's sequencer (`ClusterInput::Sequenced`) for the
    /// shards serving its stream, after what was queued before: queue a stream's entries in
    /// its order. Never waits: see [`Handle::fed`].
    pub fn deliver_sequenced(&self, entry: Sequenced) -> Result<(), Error> {
        let user = owner(&entry.entry.stream).cloned();
        let entry = Arc::new(entry);
        self.shards
            .queue(user.as_ref(), || Inbound::Sequenced(entry.clone()))
    }

    /// Queue an older entry of a stream, from the cluster's shared history
    /// (`ClusterInput::History`), for the shards serving its stream: queue a stream's history newest
    /// first. Never waits: see [`Handle::fed`].
    pub fn deliver_history(&self, entry: Sequenced) -> Result<(), Error> {
        let user = owner(&entry.entry.stream).cloned();
        let entry = Arc::new(entry);
        self.shards
            .queue(user.as_ref(), || Inbound::History(entry.clone()))
    }

    /// Queue, for the shards serving `stream`, where the cluster's sequencer stands on it
    /// (`ClusterInput::StreamHead`): a hub that just started serving a room answers its waiting
    /// joins. Never waits: see [`Handle::fed`].
    pub fn deliver_head(&self, stream: StreamId, head: Option<Position>) -> Result<(), Error> {
        let user = owner(&stream).cloned();
        let stream = Arc::new(stream);
        self.shards
            .queue(user.as_ref(), || Inbound::Head(stream.clone(), head))
    }

    /// Queue, for every shard, a change of a user's presence in a room across the cluster
    /// (`ClusterInput::Presence`): delivered to the room's members there who watch presence.
    /// Never waits: see [`Handle::fed`].
    pub fn deliver_presence(&self, change: PresenceChange) -> Result<(), Error> {
        let change = Arc::new(change);
        self.shards
            .queue(None, || Inbound::Presence(change.clone()))
    }

    /// Wait until the shards serving `stream` (every shard for `None`) have been fed
    /// everything queued for them so far by the `deliver_*` methods: what opens after this
    /// sees it, and a feeder that waits for it keeps the queues short.
    pub async fn fed(&self, stream: Option<&StreamId>) -> Result<(), Error> {
        let user = stream.and_then(owner);
        let mut answers = Vec::new();
        self.shards.queue(user, || {
            let (tx, rx) = oneshot::channel();
            answers.push(rx);
            Inbound::Fence(tx)
        })?;
        for answer in answers {
            answer.await.map_err(|_| Error::Stopped)?;
        }
        Ok(())
    }

    /// The longest queue of inputs not fed yet, over the shards: what a feeder from another
    /// node compares with its bound before it waits with [`Handle::fed`].
    pub fn inbound_backlog(&self) -> usize {
        self.shards.inbound_backlog()
    }

    /// A client of another node (named by `ticket`) asked to cancel its user's `run`, which
    /// its own node does not have in progress: if `user`'s `run` is in progress here, the
    /// application's [`Events`](crate::Events) get a
    /// [`Notice::Cancel`](switchboard::Notice::Cancel) from
    /// [`CancelFrom::Node`] (answer it with [`Handle::answer_cancel`]) and this returns true;
    /// false if this node has no such run for that user.
    pub async fn remote_cancel(
        &self,
        ticket: CancelTicket,
        user: UserId,
        run: RunId,
    ) -> Result<bool, Error> {
        let shard = self.shards.shard_of(&user);
        self.shards
            .call(shard, move |s, _| s.hub.remote_cancel(ticket, user, run))
            .await
    }

    /// Answer a [`Notice::Cancel`](switchboard::Notice::Cancel): a client of this node gets
    /// its `reply` or `error` (as with [`Handle::answer`]); for a client of another node,
    /// `answer` goes to the cluster sink ([`ClusterEvent::CancelAnswer`]), whose bridge sends
    /// it back to that node. Fails only for a client of this node whose connection is gone
    /// ([`Error::UnknownConnection`]) or once the node stopped.
    pub async fn answer_cancel(&self, from: CancelFrom, answer: Answer) -> Result<(), Error> {
        match from {
            CancelFrom::Client { conn, reference } => self.answer(conn, reference, answer).await,
            CancelFrom::Node(ticket) => {
                // A ticket comes only from a bridge, which reads this sink.
                if let Some(cluster) = &self.shards.cluster {
                    cluster.send(ClusterEvent::CancelAnswer { ticket, answer });
                }
                Ok(())
            }
        }
    }
}
