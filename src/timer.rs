//! The timer table: every deadline of the hub in one min-heap, with lazy deletion.
//!
//! Each open connection has exactly one entry, pushed when it opens and again each time it
//! fires. Its true deadline only ever moves later (traffic pushes liveness out), so an entry is
//! never late: at worst it fires early and is pushed again. Entries of closed connections and
//! resolved waiters stay until they surface and are then discarded by a generation check.

use crate::id::ConnId;
use crate::io::WaiterId;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKind {
    /// A connection's heartbeat.
    Connection(ConnId),
    /// A `wait_for_connection` deadline.
    Waiter(WaiterId),
    /// The periodic sweep of idle state.
    Cleanup,
}

/// All pending deadlines.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, TimerKind)>>,
}

impl Timers {
    pub fn schedule(&mut self, at: Instant, kind: TimerKind) {
        self.heap.push(Reverse((at, kind)));
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Take one timer that is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<TimerKind> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse((_, k))| k),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_deadline_order_only_when_due() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.schedule(t0 + Duration::from_secs(2), TimerKind::Cleanup);
        t.schedule(t0 + Duration::from_secs(1), TimerKind::Waiter(WaiterId(1)));
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.pop_due(t0), None);
        assert_eq!(
            t.pop_due(t0 + Duration::from_secs(5)),
            Some(TimerKind::Waiter(WaiterId(1)))
        );
        assert_eq!(
            t.pop_due(t0 + Duration::from_secs(5)),
            Some(TimerKind::Cleanup)
        );
        assert_eq!(t.next(), None);
    }
}
