//! Counters and gauges: what the hub has done and what it holds now.
//!
//! Counters only grow. Gauges are kept up to date as the state they describe changes (the
//! directory's gauges for the connections, the stream and run collections for history and
//! runs), so that a [`Stats`] snapshot costs the same whatever the hub holds;
//! `Hub::recounted_stats` (tests only) computes the same figures from the state itself, the
//! definition they are checked against.

use crate::reason::ReasonCounts;
use std::time::Duration;

/// Upper bounds of the round-trip histogram buckets, in milliseconds (the last is +inf).
pub const RTT_BUCKETS_MS: [u64; 11] = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

/// A histogram of ping round-trip times.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RttHistogram {
    /// Count per bucket of [`RTT_BUCKETS_MS`], plus one for larger values.
    pub buckets: [u64; RTT_BUCKETS_MS.len() + 1],
    /// Sum of all samples.
    pub sum: Duration,
    /// Number of samples.
    pub count: u64,
}

impl RttHistogram {
    pub(crate) fn record(&mut self, rtt: Duration) {
        let ms = rtt.as_millis();
        let i = RTT_BUCKETS_MS
            .iter()
            .position(|&b| ms <= u128::from(b))
            .unwrap_or(RTT_BUCKETS_MS.len());
        self.buckets[i] += 1;
        self.sum += rtt;
        self.count += 1;
    }
}

impl RttHistogram {
    /// Add another histogram's samples to this one.
    pub fn merge(&mut self, other: &RttHistogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum += other.sum;
        self.count += other.count;
    }
}

/// Monotonic counters since the hub was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections opened.
    pub opened: u64,
    /// Connections refused at open (also counted in `closes` by reason).
    pub refused_opens: u64,
    /// Publishes (backend and client) accepted.
    pub publishes: u64,
    /// Client frames received.
    pub messages_in: u64,
    /// Client bytes received.
    pub bytes_in: u64,
    /// Frames handed to transports.
    pub messages_out: u64,
    /// Bytes handed to transports.
    pub bytes_out: u64,
    /// Closes by reason (evictions are `closes.get(Reason::Evicted)`).
    pub closes: ReasonCounts,
    /// Frames and messages dropped, and requests rejected, by reason.
    pub drops: ReasonCounts,
    /// Dead connections that came back.
    pub resurrections: u64,
    /// Pings that went unanswered.
    pub missed_pongs: u64,
    /// Frames sent again from history (resume, offline, late join).
    pub replayed: u64,
    /// `gap` frames sent.
    pub gaps: u64,
    /// Sequenced entries received again and ignored (shared streams: a sequencer's
    /// redelivery, or a history load overlapping what was already delivered).
    pub duplicates: u64,
    /// History entries trimmed to keep all histories within `HistoryConfig::max_total_bytes`.
    pub history_trimmed: u64,
    /// Ping round trips.
    pub rtt: RttHistogram,
}

/// A snapshot of the hub: gauges computed now, counters since the start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Open connections.
    pub connections: usize,
    /// Users with at least one open connection.
    pub users: usize,
    /// Rooms with at least one member.
    pub rooms: usize,
    /// Threads with at least one bound connection.
    pub threads: usize,
    /// Streams kept (with members or with history).
    pub streams: usize,
    /// Agent runs in progress.
    pub runs_active: usize,
    /// Pending `wait_for_connection` registrations.
    pub waiters: usize,
    /// Frames waiting in outbound queues.
    pub queued_messages: usize,
    /// Bytes waiting in outbound queues.
    pub queued_bytes: usize,
    /// Bytes handed to transports and not yet flushed.
    pub inflight_bytes: usize,
    /// Messages kept in stream histories.
    pub history_messages: usize,
    /// Bytes kept in stream histories.
    pub history_bytes: usize,
    /// Connections by health score: 0–19, 20–39, 40–59, 60–79, 80–100.
    pub health: [usize; 5],
    /// Counters since the hub was created.
    pub counters: Counters,
}

impl Counters {
    /// Add another hub's counters to these.
    pub fn merge(&mut self, other: &Counters) {
        self.opened += other.opened;
        self.refused_opens += other.refused_opens;
        self.publishes += other.publishes;
        self.messages_in += other.messages_in;
        self.bytes_in += other.bytes_in;
        self.messages_out += other.messages_out;
        self.bytes_out += other.bytes_out;
        self.closes.merge(&other.closes);
        self.drops.merge(&other.drops);
        self.resurrections += other.resurrections;
        self.missed_pongs += other.missed_pongs;
        self.replayed += other.replayed;
        self.gaps += other.gaps;
        self.duplicates += other.duplicates;
        self.history_trimmed += other.history_trimmed;
        self.rtt.merge(&other.rtt);
    }
}

impl Stats {
    /// Add another hub's snapshot to this one: the totals of several hubs (shards of one
    /// process). A room or user present on several hubs is counted once per hub.
    pub fn merge(&mut self, other: &Stats) {
        self.connections += other.connections;
        self.users += other.users;
        self.rooms += other.rooms;
        self.threads += other.threads;
        self.streams += other.streams;
        self.runs_active += other.runs_active;
        self.waiters += other.waiters;
        self.queued_messages += other.queued_messages;
        self.queued_bytes += other.queued_bytes;
        self.inflight_bytes += other.inflight_bytes;
        self.history_messages += other.history_messages;
        self.history_bytes += other.history_bytes;
        for (mine, theirs) in self.health.iter_mut().zip(other.health) {
            *mine += theirs;
        }
        self.counters.merge(&other.counters);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reason::Reason;

    #[test]
    fn merged_stats_are_the_sum_of_their_parts() {
        let mut a = Stats {
            connections: 2,
            health: [0, 0, 0, 1, 1],
            ..Stats::default()
        };
        a.counters.closes.add(Reason::SlowConsumer);
        a.counters.rtt.record(Duration::from_millis(3));
        let mut b = a.clone();
        b.counters.opened = 5;
        b.merge(&a);
        assert_eq!(b.connections, 4);
        assert_eq!(b.health, [0, 0, 0, 2, 2]);
        assert_eq!(b.counters.opened, 5);
        assert_eq!(b.counters.closes.get(Reason::SlowConsumer), 2);
        assert_eq!((b.counters.rtt.count, b.counters.rtt.buckets[1]), (2, 2));
    }
}
