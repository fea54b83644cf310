//! Deadlines: each part of the hub that needs waking keeps its own, and the hub wakes at the
//! [`earliest`] of them.
//!
//! [`Timers`] is for deadlines that may move earlier as well as later (the connections' token
//! lifetimes: a fresh token may expire sooner than the one it replaces): exactly one entry per
//! key, moved or removed in O(log n), so nothing stale accumulates however often they move.
//!
//! [`Deadlines`] is the min-heap of the parts with many deadlines (the connections' heartbeats,
//! the waiters), with lazy deletion: an entry is never removed before it surfaces, and a part
//! that finds one stale (a closed connection, a resolved waiter) discards it then. A connection
//! has exactly one entry, pushed when it opens and again each time it fires; its true deadline
//! only ever moves later (traffic pushes liveness out), so an entry is never late: at worst it
//! fires early and is pushed again.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::time::{Duration, Instant};

/// Deadlines keyed by what they are for, earliest first (then by key).
#[derive(Debug)]
pub(crate) struct Deadlines<K> {
    heap: BinaryHeap<Reverse<(Instant, K)>>,
}

impl<K: Ord> Default for Deadlines<K> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
        }
    }
}

impl<K: Ord + Copy> Deadlines<K> {
    pub fn schedule(&mut self, at: Instant, key: K) {
        self.heap.push(Reverse((at, key)));
    }

    /// The earliest deadline and its key (possibly stale).
    pub fn next(&self) -> Option<(Instant, K)> {
        self.heap.peek().map(|Reverse(entry)| *entry)
    }

    /// Take the earliest deadline out.
    pub fn pop(&mut self) -> Option<K> {
        self.heap.pop().map(|Reverse((_, key))| key)
    }
}

/// Deadlines with at most one per key, ordered by instant then key. The owner of a key knows
/// its deadline, and names it to move or remove it.
#[derive(Debug)]
pub(crate) struct Timers<K> {
    set: BTreeSet<(Instant, K)>,
}

impl<K: Ord> Default for Timers<K> {
    fn default() -> Self {
        Self {
            set: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Copy> Timers<K> {
    /// Move `key`'s deadline from `from` to `to` (`None`: it has none).
    pub fn set(&mut self, key: K, from: Option<Instant>, to: Option<Instant>) {
        if from == to {
            return;
        }
        if let Some(at) = from {
            self.set.remove(&(at, key));
        }
        if let Some(at) = to {
            self.set.insert((at, key));
        }
    }

    /// The earliest deadline and its key.
    pub fn next(&self) -> Option<(Instant, K)> {
        self.set.first().copied()
    }

    /// Take the earliest deadline out.
    pub fn pop(&mut self) -> Option<(Instant, K)> {
        self.set.pop_first()
    }

    /// How many keys have a deadline.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.set.len()
    }
}

/// The periodic sweep of what expires (history by age, idle and ended runs): one deadline,
/// `interval` after the first thing that needs sweeping appeared, and again while anything
/// remains to sweep.
#[derive(Debug)]
pub(crate) struct Sweep {
    interval: Duration,
    next: Option<Instant>,
}

impl Sweep {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            next: None,
        }
    }

    /// Something that needs sweeping appeared at `now`: sweep `interval` later, unless a
    /// sweep is already due.
    pub fn schedule(&mut self, now: Instant) {
        if self.next.is_none() {
            self.next = Some(now + self.interval);
        }
    }

    /// When the next sweep is due.
    pub fn deadline(&self) -> Option<Instant> {
        self.next
    }

    /// The sweep is running: the next one is scheduled anew.
    pub fn fired(&mut self) {
        self.next = None;
    }
}

/// The earliest of some deadlines, if any: what [`Hub::poll_timeout`](crate::Hub::poll_timeout)
/// answers for its parts.
pub(crate) fn earliest(deadlines: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_come_out_earliest_first_then_by_key() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.schedule(t0 + Duration::from_secs(2), 1u32);
        d.schedule(t0 + Duration::from_secs(1), 9);
        d.schedule(t0 + Duration::from_secs(1), 3);
        assert_eq!(d.next(), Some((t0 + Duration::from_secs(1), 3)));
        assert_eq!(
            [d.pop(), d.pop(), d.pop(), d.pop()],
            [Some(3), Some(9), Some(1), None]
        );
        assert_eq!(d.next(), None);
    }

    #[test]
    fn timers_keep_one_deadline_per_key_moved_either_way() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut timers = Timers::default();
        timers.set(1u32, None, Some(t0 + s(10)));
        timers.set(2, None, Some(t0 + s(5)));
        timers.set(1, Some(t0 + s(10)), Some(t0 + s(2)));
        assert_eq!(timers.next(), Some((t0 + s(2), 1)), "moved earlier");
        timers.set(1, Some(t0 + s(2)), Some(t0 + s(20)));
        assert_eq!(timers.len(), 2, "nothing stale is left behind");
        timers.set(2, Some(t0 + s(5)), None);
        assert_eq!(timers.pop(), Some((t0 + s(20), 1)));
        assert_eq!(timers.pop(), None);
    }

    #[test]
    fn a_sweep_is_scheduled_once_until_it_runs() {
        let t0 = Instant::now();
        let mut sweep = Sweep::new(Duration::from_secs(5));
        assert_eq!(sweep.deadline(), None);
        sweep.schedule(t0);
        sweep.schedule(t0 + Duration::from_secs(1));
        assert_eq!(sweep.deadline(), Some(t0 + Duration::from_secs(5)));
        sweep.fired();
        assert_eq!(sweep.deadline(), None);
    }

    #[test]
    fn the_earliest_of_some_deadlines() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(1);
        assert_eq!(earliest([None, Some(later), Some(t0)]), Some(t0));
        assert_eq!(earliest([None, None]), None);
    }
}
