//! The hub's place in a cluster: what it tells the other hubs and the cluster's sequencer, and
//! the rooms whose position it waits for.
//!
//! With `Config::cluster` a publish other hubs may serve leaves as an [`Envelope`]; with
//! `Config::shared_streams` a reliable entry of a user or room stream leaves unnumbered, for the
//! sequencer ([`Unsequenced`]), and comes back sealed. Either way the hub says which streams it
//! serves (interest), and, with shared streams, a room it starts serving is *followed*: its
//! joins wait for the sequencer's head of the room's stream, then are answered from there.

use crate::config::Config;
use crate::id::{ConnId, RoomId, UserId};
use crate::io::{ClusterOutput, Envelope, RemoteTarget};
use crate::message::{Lane, Message};
use crate::outputs::Outputs;
use crate::presence::PresenceChange;
use crate::sequenced::{self, Tags, Unsequenced};
use crate::stream::{Position, StreamId};
use crate::target::{Audience, Target};
use bytes::Bytes;
use hashbrown::HashMap;
use serde_json::value::RawValue;

/// The cluster settings and the rooms whose head the sequencer has not given yet.
#[derive(Debug, Default)]
pub(crate) struct Cluster {
    /// `Config::cluster`: publishes other hubs may serve leave as envelopes.
    envelopes: bool,
    /// `Config::shared_streams`: the sequencer numbers the user and room streams.
    shared: bool,
    /// Rooms this hub started serving whose head the sequencer has not given yet, with the
    /// joins waiting for it (they are answered with that head).
    awaiting: HashMap<RoomId, Vec<AwaitingJoin>>,
}

/// A join to a room whose head the sequencer has not given yet (shared streams).
#[derive(Debug)]
pub(crate) struct AwaitingJoin {
    pub conn: ConnId,
    pub since: Option<Position>,
    pub reference: Option<Box<RawValue>>,
}

impl Cluster {
    pub fn new(config: &Config) -> Self {
        Self {
            envelopes: config.cluster,
            shared: config.shared_streams,
            awaiting: HashMap::new(),
        }
    }

    /// True with shared streams: the sequencer numbers the user and room streams.
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// This hub started (`serving`) or stopped serving `stream` locally: the cluster is told
    /// (in a cluster, or with shared streams); a room no longer served waits for no head.
    pub fn serving(&mut self, stream: StreamId, serving: bool, out: &mut Outputs) {
        if let (false, StreamId::Room(room)) = (serving, &stream) {
            self.awaiting.remove(room);
        }
        if self.envelopes || self.shared {
            let interested = serving;
            out.cluster(ClusterOutput::Interest { stream, interested });
        }
    }

    /// With shared streams, a room's first member here: its joins wait for the sequencer's
    /// head of the room's stream, which the cluster is asked for (from the member's `since`).
    pub fn follow(&mut self, room: &RoomId, since: Option<Position>, out: &mut Outputs) {
        if self.shared {
            self.awaiting.insert(room.clone(), Vec::new());
            let room = room.clone();
            out.cluster(ClusterOutput::Follow { room, since });
        }
    }

    /// True while `room`'s head is awaited: its members have not joined yet.
    pub fn awaits(&self, room: &RoomId) -> bool {
        self.awaiting.contains_key(room)
    }

    /// Keep `join` until `room`'s head arrives (the caller checked it [`awaits`](Self::awaits)).
    pub fn hold(&mut self, room: &RoomId, join: AwaitingJoin) {
        if let Some(joins) = self.awaiting.get_mut(room) {
            joins.push(join);
        }
    }

    /// `room`'s head arrived: the joins that waited for it, in order.
    pub fn head_arrived(&mut self, room: &RoomId) -> Vec<AwaitingJoin> {
        self.awaiting.remove(room).unwrap_or_default()
    }

    /// True in a cluster: a client's `cancel` for a run not in progress here is the cluster's to
    /// answer (`ClusterOutput::Cancel`), since another node's producer may own the run.
    pub fn carries_cancels(&self) -> bool {
        self.envelopes
    }

    /// True in a cluster: the cluster decides presence (see [`presence`](Self::presence)).
    pub fn decides_presence(&self) -> bool {
        self.envelopes
    }

    /// Hand `change`, a user's arrival or departure here, to the cluster, which decides
    /// whether it is one for the whole cluster. False outside a cluster: the hub delivers it.
    pub fn presence(&self, change: PresenceChange, out: &mut Outputs) -> bool {
        if self.envelopes {
            out.cluster(ClusterOutput::Presence(Box::new(change)));
        }
        self.envelopes
    }

    /// True if a publish of `message` to `target` is numbered by the cluster's sequencer: it
    /// reaches every hub through it, not as an envelope.
    pub fn sequenced_outside(&self, target: &Target, message: &Message) -> bool {
        self.shared
            && message.lane == Lane::Reliable
            && matches!(
                target,
                Target::User(_) | Target::Thread { .. } | Target::Room(_)
            )
    }

    /// In a cluster, hand a publish the other hubs may have to serve to the transport, as an
    /// envelope (not for one connection, nor what the sequencer carries).
    pub fn envelope(
        &self,
        audience: &Audience,
        message: &Message,
        from: Option<&UserId>,
        out: &mut Outputs,
    ) {
        if !self.envelopes || self.sequenced_outside(&audience.target, message) {
            return;
        }
        if let Some(target) = remote_target(&audience.target) {
            out.envelope(Envelope {
                target,
                message: message.clone(),
                from: from.cloned(),
                except: audience.except.to_vec(),
            });
        }
    }

    /// With shared streams, hand a rendered entry of `stream` to the cluster's sequencer
    /// instead of numbering it here.
    pub fn sequence(&self, stream: StreamId, tags: Tags<'_>, frame: Bytes, out: &mut Outputs) {
        out.counters.publishes += 1;
        let entry = tags.meta(stream);
        let template = sequenced::template(frame);
        out.sequence(Unsequenced { entry, template });
    }
}

fn remote_target(target: &Target) -> Option<RemoteTarget> {
    match target {
        Target::Connection(_) => None,
        Target::User(user) => Some(RemoteTarget::User { user: user.clone() }),
        Target::Room(room) => Some(RemoteTarget::Room { room: room.clone() }),
        Target::Thread { user, thread } => Some(RemoteTarget::Thread {
            user: user.clone(),
            thread: thread.clone(),
        }),
        Target::All => Some(RemoteTarget::All),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::Output;

    fn outputs(out: &mut Outputs) -> Vec<Output> {
        std::iter::from_fn(|| out.pop()).collect()
    }

    #[test]
    fn a_single_hub_tells_nothing_and_follows_nothing() {
        let mut cluster = Cluster::new(&Config::development());
        let mut out = Outputs::default();
        let room = RoomId::from("r");
        cluster.serving(StreamId::Room(room.clone()), true, &mut out);
        cluster.follow(&room, None, &mut out);
        let message = Message::new("e", 1.into());
        cluster.envelope(&Target::Room(room.clone()).into(), &message, None, &mut out);
        assert!(outputs(&mut out).is_empty());
        assert!(!cluster.awaits(&room));
    }

    #[test]
    fn with_shared_streams_a_followed_room_holds_its_joins_until_its_head() {
        let mut config = Config::development();
        config.shared_streams = true;
        let mut cluster = Cluster::new(&config);
        let mut out = Outputs::default();
        let room = RoomId::from("r");
        let join = |n| AwaitingJoin {
            conn: ConnId::new(0, n, 0),
            since: None,
            reference: None,
        };
        cluster.hold(&room, join(0));
        assert!(
            cluster.head_arrived(&room).is_empty(),
            "not followed yet: nothing held"
        );
        cluster.follow(&room, None, &mut out);
        assert!(cluster.awaits(&room));
        cluster.hold(&room, join(1));
        cluster.hold(&room, join(2));
        let conns: Vec<usize> = (cluster.head_arrived(&room).iter())
            .map(|j| j.conn.index())
            .collect();
        assert_eq!(conns, [1, 2]);
        assert!(!cluster.awaits(&room));
        cluster.follow(&room, None, &mut out);
        cluster.serving(StreamId::Room(room.clone()), false, &mut out);
        assert!(
            !cluster.awaits(&room),
            "a room no longer served waits for nothing"
        );
        let message = Message::new("e", 1.into());
        assert!(cluster.sequenced_outside(&Target::Room(room.clone()), &message));
        assert!(!cluster.sequenced_outside(&Target::All, &message));
        let ephemeral = message.ephemeral("k");
        assert!(!cluster.sequenced_outside(&Target::Room(room), &ephemeral));
    }
}
