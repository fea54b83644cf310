//! The gauges of the open connections (outbox backlog, health bands, bound threads), kept as
//! the directory changes them, so that a snapshot costs the same whatever the hub holds.

use crate::connection::Connection;
use crate::heartbeat::Heartbeat;
use crate::outbox::Backlog;

/// The health histogram bucket of a score.
fn health_bucket(score: u8) -> usize {
    usize::from(score.min(99) / 20)
}

/// The gauges of the open connections, kept as they change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Gauges {
    /// Summed over the outboxes.
    pub backlog: Backlog,
    /// Connections per health band.
    pub health: [usize; 5],
    /// Threads (of a user) with at least one bound connection.
    pub threads: usize,
}

impl Gauges {
    /// A connection opened with this heartbeat.
    pub fn opened(&mut self, heartbeat: &Heartbeat) {
        self.health[health_bucket(heartbeat.health())] += 1;
    }

    /// A connection closed: it leaves its band, and what its outbox still held is gone.
    pub fn closed(&mut self, conn: &mut Connection) {
        self.health[health_bucket(conn.heartbeat.health())] -= 1;
        conn.outbox.discard(&mut self.backlog);
    }

    /// Run `f` on a connection's heartbeat and move the connection to its new health band.
    pub fn heartbeat<R>(
        &mut self,
        heartbeat: &mut Heartbeat,
        f: impl FnOnce(&mut Heartbeat) -> R,
    ) -> R {
        let before = health_bucket(heartbeat.health());
        let result = f(heartbeat);
        self.health[before] -= 1;
        self.health[health_bucket(heartbeat.health())] += 1;
        result
    }

    /// The same gauges computed from every open connection.
    #[cfg(any(test, feature = "testing"))]
    pub fn recount<'a>(conns: impl Iterator<Item = &'a Connection>) -> Gauges {
        let mut gauges = Gauges::default();
        let mut threads = hashbrown::HashSet::new();
        for c in conns {
            let backlog = &mut gauges.backlog;
            backlog.queued_messages += c.outbox.queued_messages();
            backlog.queued_bytes += c.outbox.queued_bytes();
            backlog.inflight_bytes += c.outbox.inflight();
            gauges.health[health_bucket(c.heartbeat.health())] += 1;
            if let Some(t) = &c.thread {
                threads.insert((&c.user, t));
            }
        }
        gauges.threads = threads.len();
        gauges
    }
}
