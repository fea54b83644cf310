//! What a node's bridge counts, and [`BridgeStats`], the snapshot it reports.

use std::sync::atomic::{AtomicU64, Ordering};

/// The bridge's counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub published: AtomicU64,
    pub unpublished: AtomicU64,
    pub received: AtomicU64,
    pub echoes: AtomicU64,
    pub malformed: AtomicU64,
    pub reconnects: AtomicU64,
    pub resubscribed: AtomicU64,
    pub refused: AtomicU64,
    pub disconnects: AtomicU64,
    pub memberships: AtomicU64,
    pub sequenced: AtomicU64,
    pub unsequenced: AtomicU64,
    pub entries: AtomicU64,
    pub cancels_asked: AtomicU64,
    pub cancels_unasked: AtomicU64,
    pub cancels_answered: AtomicU64,
    pub cancels_timed_out: AtomicU64,
}

/// A snapshot of what a node's bridge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// Envelopes published to Redis.
    pub published: u64,
    /// Envelopes that could not be published (Redis unreachable): lost for other nodes.
    pub unpublished: u64,
    /// Envelopes received from other nodes and delivered locally.
    pub received: u64,
    /// This node's own envelopes received back and ignored.
    pub echoes: u64,
    /// Messages on the channels that could not be parsed.
    pub malformed: u64,
    /// Times a command connection (the bridge's commands, or its history reads) came back
    /// after being lost.
    pub reconnects: u64,
    /// Times the subscription connection came back and every channel of interest was
    /// subscribed again.
    pub resubscribed: u64,
    /// Connections refused by [`Bridge::admit`](crate::Bridge::admit), or closed after opening, because the user
    /// was over the cluster-wide limit.
    pub refused: u64,
    /// Disconnect commands received from other nodes.
    pub disconnects: u64,
    /// Membership commands (a user's connections join or leave a room) received from other
    /// nodes.
    pub memberships: u64,
    /// Stream entries of this node's hubs numbered by the shared sequencer.
    pub sequenced: u64,
    /// Stream entries that could not be numbered (Redis unreachable): delivered on this node
    /// only, under the node's own epoch (readers are told with an `epoch` gap).
    pub unsequenced: u64,
    /// Sequenced stream entries delivered to this node's hubs (its own included).
    pub entries: u64,
    /// Cancels of this node's clients, for runs its hubs do not have in progress, asked of the
    /// other nodes (published on the control channel).
    pub cancels_asked: u64,
    /// Such cancels that could not be asked (too many already waiting, or Redis unreachable):
    /// answered `backend_unavailable` at once.
    pub cancels_unasked: u64,
    /// Asked cancels answered within
    /// [`BridgeOptions::cancel_timeout`](crate::BridgeOptions::cancel_timeout): by the run's
    /// node, or `unknown_run` once every node said it does not have the run.
    pub cancels_answered: u64,
    /// Asked cancels whose verdicts did not all come within the timeout: answered
    /// `backend_unavailable` (the run's node may be dead or its application silent).
    pub cancels_timed_out: u64,
    /// Channels subscribed right now.
    pub subscriptions: usize,
}

impl Counters {
    /// Add one to `counter`.
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now, with the number of channels subscribed.
    pub fn snapshot(&self, subscriptions: usize) -> BridgeStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        BridgeStats {
            published: get(&self.published),
            unpublished: get(&self.unpublished),
            received: get(&self.received),
            echoes: get(&self.echoes),
            malformed: get(&self.malformed),
            reconnects: get(&self.reconnects),
            resubscribed: get(&self.resubscribed),
            refused: get(&self.refused),
            disconnects: get(&self.disconnects),
            memberships: get(&self.memberships),
            sequenced: get(&self.sequenced),
            unsequenced: get(&self.unsequenced),
            entries: get(&self.entries),
            cancels_asked: get(&self.cancels_asked),
            cancels_unasked: get(&self.cancels_unasked),
            cancels_answered: get(&self.cancels_answered),
            cancels_timed_out: get(&self.cancels_timed_out),
            subscriptions,
        }
    }
}
