//! Sequenced streams and their bounded history: what makes resume and offline buffering work.
//!
//! Every user and every room has a stream. A message to it gets the next sequence number
//! (gap-free per stream) and stays in the stream's history, bounded by count, bytes and age
//! ([`HistoryConfig`]). The epoch changes whenever a stream is created anew, so a client
//! holding a position from a lost history learns that it is stale. The deltas of an agent's
//! message are kept as one entry holding the text so far (module `compact`); the runs a history
//! holds entries of, and which of them are still in progress, are counted as entries come and
//! go (module `runs`). Every change to what a
//! history holds goes through `Streams` (module `budget`), which keeps the hub's total
//! within its budget. Streams are named by [`StreamId`] and read from a [`Position`] (module
//! `position`).

mod budget;
mod compact;
mod position;
mod runs;

pub(crate) use budget::Streams;
pub use position::{ParsePositionError, Position, StreamId};
pub(crate) use runs::RunTag;

use crate::config::HistoryConfig;
use crate::id::{RunId, ThreadId};
use crate::mutation::{self, Fault};
use crate::outbox::CoalesceKey;
use crate::run::Body;
use runs::KeptRuns;
use serde::Serialize;
use smallvec::SmallVec;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Why a `gap` frame was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub(crate) enum GapReason {
    /// History no longer reaches back to the client's position.
    History,
    /// The stream was created anew (a restart, or its history expired): everything after the
    /// client's position in the old epoch is unknown.
    Epoch,
}

/// The messages a reader can no longer receive, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gap {
    pub from: u64,
    pub to: u64,
    pub reason: GapReason,
}

impl Gap {
    /// What of this gap a reader misses that has every entry from `from` on (0: a reader
    /// not positioned yet misses all of it). A reader positioned ahead of this hub got the
    /// numbers before `from` elsewhere; in a new epoch the old numbers mean nothing.
    pub fn seen_from(self, from: u64) -> Option<Gap> {
        if from == 0 || self.reason == GapReason::Epoch {
            return Some(self);
        }
        (from <= self.to).then_some(Gap {
            from: self.from.max(from),
            ..self
        })
    }
}

/// A sequenced entry arrived again: the stream already has its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AlreadyTaken;

/// One message kept in history, with what decides who may receive it again.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub seq: u64,
    pub at: Instant,
    /// The frame, or a message's deltas joined in place (module `compact`).
    pub body: Body,
    /// Only connections bound to this thread receive the entry (user streams).
    pub thread: Option<ThreadId>,
    /// The agent run the entry belongs to, for late joiners.
    pub run: Option<RunTag>,
    /// Agent thinking: may be replaced by a newer one while a reader is behind. A message
    /// delta: joined to its message's entry in history, and while a reader is behind.
    pub coalesce: Option<CoalesceKey>,
    /// Published while no connection it was meant for was open: the next connection that
    /// selects it (by opening, or binding to its thread) receives it.
    pub pending: bool,
}

/// A stream's counter and history.
#[derive(Debug)]
pub(crate) struct Stream {
    epoch: u64,
    head: u64,
    /// Ordered by sequence number, not always consecutive: a message's entry takes the number
    /// of its latest delta (module `compact`).
    history: VecDeque<Entry>,
    /// While `history` holds entries: every number after it is kept, alone or joined into a
    /// later message entry; those up to it are not.
    floor: u64,
    bytes: usize,
    /// How many entries of `history` are pending.
    pending: usize,
    /// The runs `history` holds entries of.
    runs: KeptRuns,
    /// Pending entries trimmed before any connection took them: per thread they were for, the
    /// first one lost. The next connection that selects them is told with a `gap`.
    lost: HashMap<Option<ThreadId>, u64>,
    /// When the newest of the `lost` entries was published: once it would have expired by age,
    /// a stream with nothing else left forgets its losses.
    lost_at: Option<Instant>,
    /// The number of the stream's last append among the hub's (`Streams`).
    last_append: u64,
    /// Its key in `Streams`' order of last appends (0: not in it, it holds no entry); at most
    /// `last_append`, which it catches up with lazily.
    order_key: u64,
}

/// Past this many threads with lost entries, losses are recorded as unthreaded, which every
/// connection of the user is told about: more `gap`s than strictly needed, never fewer, and
/// bounded memory whatever a publisher does.
const MAX_LOST_THREADS: usize = 64;

impl Stream {
    pub fn new(epoch: u64) -> Self {
        Self {
            epoch,
            head: 0,
            history: VecDeque::new(),
            floor: 0,
            bytes: 0,
            pending: 0,
            runs: KeptRuns::default(),
            lost: HashMap::new(),
            lost_at: None,
            last_append: 0,
            order_key: 0,
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The last sequence number assigned.
    pub fn position(&self) -> Position {
        Position {
            epoch: self.epoch,
            seq: self.head,
        }
    }

    /// Reserve the next position.
    pub fn advance(&mut self) -> Position {
        // Positions come from clients and sequencers too: never an overflow.
        self.head = self.head.saturating_add(1);
        self.position()
    }

    /// Start at the sequencer's `head`, if this stream never had an entry: the next entry it
    /// takes is the one after it.
    pub fn start_at(&mut self, head: Position) {
        if self.is_fresh() {
            self.epoch = head.epoch;
            self.head = head.seq;
        }
    }

    /// Take the epoch of a reader's position (the sequencer's numbering), if this stream
    /// never had an entry; not its number: readers here already stand at this hub's head,
    /// and the entries up to the reader's position may still reach them.
    pub fn take_epoch(&mut self, position: Position) {
        if self.is_fresh() {
            self.epoch = position.epoch;
        }
    }

    fn is_fresh(&self) -> bool {
        self.head == 0 && self.history.is_empty()
    }

    /// Take `position`, assigned by the cluster's sequencer, as the stream's next: an entry at
    /// it may be appended. After a hole, or in another epoch, the entries kept so far can no
    /// longer be replayed without a hole: they are dropped and the gap readers missed is
    /// returned (none for a stream that never had an entry, if this is the stream's first).
    fn adopt(&mut self, position: Position) -> Result<Option<Gap>, AlreadyTaken> {
        let fresh = self.is_fresh();
        let gap = if position.epoch != self.epoch {
            // A stream that never had an entry misses nothing if this is the first one.
            (!fresh || position.seq > 1).then_some(Gap {
                from: 1,
                to: position.seq.saturating_sub(1),
                reason: GapReason::Epoch,
            })
        } else if position.seq <= self.head {
            return Err(AlreadyTaken);
        } else if position.seq > self.head.saturating_add(1) {
            Some(Gap {
                from: self.head + 1,
                to: position.seq - 1,
                reason: GapReason::History,
            })
        } else {
            None
        };
        if position.epoch != self.epoch || position.seq > self.head.saturating_add(1) {
            // Pending entries dropped here are announced as lost, like trimmed ones; in
            // another epoch, the old numbers mean nothing: the epoch gap says it all.
            while !self.history.is_empty() {
                self.pop_oldest();
            }
            if position.epoch != self.epoch {
                self.lost.clear();
                self.lost_at = None;
                self.epoch = position.epoch;
            }
        }
        self.head = position.seq;
        Ok(gap)
    }

    /// Keep `entry` (at the position [`Stream::advance`] or [`Stream::adopt`] gave) and trim
    /// to the bounds.
    fn append(&mut self, entry: Entry, limits: &HistoryConfig) {
        if self.history.is_empty() {
            self.floor = entry.seq.saturating_sub(1);
        }
        self.bytes += entry.body.len();
        self.pending += usize::from(entry.pending);
        self.runs.appended(&entry);
        let message = matches!(entry.coalesce, Some(CoalesceKey::Message(..)));
        self.history.push_back(entry);
        if message {
            self.join_message();
        }
        while self.history.len() > limits.max_messages || self.bytes > limits.max_bytes {
            self.pop_oldest();
        }
    }

    /// Keep `entry`, at `position`, an older entry loaded from a shared history newest first:
    /// a stream that never had an entry starts with it; otherwise it goes in front if it is
    /// the one just before the oldest kept and the bounds leave room. False if not kept.
    fn restore(&mut self, position: Position, entry: Entry, limits: &HistoryConfig) -> bool {
        if self.is_fresh() {
            self.start_at(position);
            self.append(entry, limits);
            return true;
        }
        let fits = self.history.len() < limits.max_messages
            && self.bytes + entry.body.len() <= limits.max_bytes;
        if position.epoch != self.epoch || position.seq.saturating_add(1) != self.oldest() || !fits
        {
            return false;
        }
        self.bytes += entry.body.len();
        self.pending += usize::from(entry.pending);
        self.floor = position.seq.saturating_sub(1);
        self.runs.restored(&entry);
        self.history.push_front(entry);
        true
    }

    fn pop_oldest(&mut self) {
        if let Some(old) = self.history.pop_front() {
            self.floor = old.seq;
            self.bytes -= old.body.len();
            self.runs.dropped(&old);
            if old.pending {
                self.pending -= 1;
                self.lost_at = Some(self.lost_at.map_or(old.at, |at| at.max(old.at)));
                self.lost.entry(old.thread).or_insert(old.seq);
                if self.lost.len() > MAX_LOST_THREADS {
                    let first = self.lost.drain().map(|(_, seq)| seq).min();
                    self.lost.extend(first.map(|seq| (None, seq)));
                }
            }
        }
    }

    /// For a new connection on `thread` that receives pending entries: the pending entries of
    /// its selection that were trimmed before any connection took them. Reported once.
    pub fn take_lost(&mut self, thread: Option<&ThreadId>) -> Option<Gap> {
        let unthreaded = self.lost.remove(&None);
        let threaded = thread.and_then(|t| self.lost.remove(&Some(t.clone())));
        let from = unthreaded.into_iter().chain(threaded).min()?;
        Some(Gap {
            from,
            to: self.oldest().saturating_sub(1),
            reason: GapReason::History,
        })
    }

    /// The first sequence number history still holds, alone or joined into a later message
    /// entry (the next one if it holds none).
    fn oldest(&self) -> u64 {
        match self.history.is_empty() {
            true => self.head.saturating_add(1),
            false => self.floor.saturating_add(1),
        }
    }

    /// True when some entry waits for a connection to select it.
    pub fn has_pending(&self) -> bool {
        self.pending > 0
    }

    /// Entry `seq` reached a connection: it is no longer pending.
    pub fn claim(&mut self, seq: u64) {
        let entry = (self.history)
            .binary_search_by_key(&seq, |e| e.seq)
            .ok()
            .and_then(|i| self.history.get_mut(i));
        if let Some(e) = entry.filter(|e| e.pending) {
            e.pending = false;
            self.pending -= 1;
        }
    }

    /// Drop entries older than `max_age`. With nothing left, losses older than that are
    /// forgotten too: the entries lost would have expired by now.
    fn expire(&mut self, now: Instant, max_age: Duration) {
        let old = |at: Instant| now.saturating_duration_since(at) >= max_age;
        while self.history.front().is_some_and(|e| old(e.at)) {
            self.pop_oldest();
        }
        if self.history.is_empty() && self.lost_at.is_some_and(old) {
            self.lost.clear();
            self.lost_at = None;
        }
    }

    /// True when the stream holds no message and no loss to announce.
    pub fn is_empty(&self) -> bool {
        self.history.is_empty() && self.lost.is_empty()
    }

    /// Entries currently kept, and their total size in bytes.
    pub fn retained(&self) -> (usize, usize) {
        (self.history.len(), self.bytes)
    }

    /// What a reader at `after` is missing: a gap if history does not reach back (or the
    /// epoch differs), and the first sequence number it can still receive.
    pub fn catch_up_from(&self, after: Position) -> (Option<Gap>, u64) {
        let oldest = self.oldest();
        if after.epoch != self.epoch || after.seq > self.head {
            let gap = Gap {
                from: 1,
                to: oldest.saturating_sub(1),
                reason: GapReason::Epoch,
            };
            return (Some(gap), 1);
        }
        let wanted = after.seq.saturating_add(1);
        if wanted < oldest {
            let to = if mutation::injected(Fault::GapBound) {
                oldest
            } else {
                oldest - 1
            };
            (
                Some(Gap {
                    from: wanted,
                    to,
                    reason: GapReason::History,
                }),
                oldest,
            )
        } else {
            (None, wanted)
        }
    }

    /// Entries with a sequence number of at least `from`, oldest first.
    pub fn entries_from(&self, from: u64) -> impl Iterator<Item = &Entry> {
        let skip = self.history.partition_point(|e| e.seq < from);
        self.history.range(skip..)
    }

    /// Panics unless the runs kept are those of the history (see `Streams::recount`).
    #[cfg(any(test, feature = "testing"))]
    pub fn check_runs(&self) {
        self.runs.check(&self.history);
    }

    /// The runs in progress with entries kept here on a thread that `receives` selects (`None`:
    /// entries without a thread): those whose kept entries include no ending.
    pub fn runs_in_progress(
        &self,
        receives: impl Fn(Option<&ThreadId>) -> bool,
    ) -> SmallVec<[RunId; 2]> {
        self.runs.in_progress(receives)
    }
}

#[cfg(test)]
mod tests;
