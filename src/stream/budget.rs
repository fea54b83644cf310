//! Every stream of a hub and the history budget they share.
//!
//! Each stream bounds its own history (`HistoryConfig`: messages, bytes and age per stream). A
//! hub with many streams needs one bound more: `HistoryConfig::max_total_bytes`, the frame
//! bytes kept in all histories together. Past it, the streams that went longest without a new
//! entry lose their oldest entries first, until the total fits again. Trimming takes entries
//! from the front of a history exactly as the per-stream bounds do, so a reader behind them
//! gets an exact `history` gap, and a pending entry (offline buffering) trimmed before any
//! connection took it is recorded as lost, for the `gap` of the next connection that selects
//! it. A stream emptied that way keeps its losses until they would have expired by age.
//!
//! [`Streams`] owns the streams so that every change to what a history holds goes through it:
//! it keeps the totals (the `history_messages` and `history_bytes` gauges) and the order of
//! the streams with history by their last append: an ordered index from a number no later than
//! each stream's last append to its id. An append only numbers the stream (O(1)); the index is
//! brought up to date lazily, when trimming finds at its front a stream appended to since (it
//! moves to its place, once per append at most, O(log n)). Nothing scans the streams.

use super::{AlreadyTaken, Entry, Gap, Position, Stream, StreamId};
use crate::config::HistoryConfig;
use hashbrown::HashMap;
use std::collections::BTreeMap;
use std::time::Instant;

/// The streams of a hub, their history totals and their order of last append.
#[derive(Debug)]
pub(crate) struct Streams {
    streams: HashMap<StreamId, Stream>,
    totals: Totals,
    /// The bounds of every history, and of all of them together.
    limits: HistoryConfig,
    /// The epoch of the next stream created (`Config::epoch_base` first): each incarnation of
    /// a stream has an epoch no earlier one had.
    next_epoch: u64,
    /// `Config::shared_streams`: the cluster's sequencer numbers the streams, and a reader may
    /// know positions this hub has not seen yet.
    shared: bool,
}

/// What all the histories hold together, and in which order they are trimmed.
#[derive(Debug, Default)]
struct Totals {
    /// The streams holding entries, by their last append as last seen here (a stream appended
    /// to since sits too early, and moves when trimming reaches it).
    by_last_append: BTreeMap<u64, StreamId>,
    /// The last append's number (the next is one more).
    appends: u64,
    /// Entries kept in all histories.
    messages: usize,
    /// Frame bytes kept in all histories.
    bytes: usize,
    /// Entries trimmed to fit `max_total_bytes`, since the hub started.
    trimmed: u64,
}

impl Totals {
    /// Account for what `stream` (`id`) gained or lost since it held `before` (messages,
    /// bytes): the totals, and its place in the order of last appends (numbered when
    /// `appended`; in the order while it holds entries, out of it once it holds none).
    fn account(
        &mut self,
        id: &StreamId,
        stream: &mut Stream,
        before: (usize, usize),
        appended: bool,
    ) {
        let (messages, bytes) = stream.retained();
        self.messages = self.messages + messages - before.0;
        self.bytes = self.bytes + bytes - before.1;
        let holds = messages > 0;
        if appended || (holds && stream.order_key == 0) {
            self.appends += 1;
            stream.last_append = self.appends;
        }
        if !holds && stream.order_key != 0 {
            self.by_last_append.remove(&stream.order_key);
            stream.order_key = 0;
        } else if holds && stream.order_key == 0 {
            stream.order_key = stream.last_append;
            self.by_last_append.insert(stream.order_key, id.clone());
        }
    }
}

impl Streams {
    /// No stream yet, histories bounded by `limits`; the first stream created gets epoch
    /// `epoch_base`. `shared`: numbered by the cluster's sequencer (`Config::shared_streams`).
    pub fn new(limits: HistoryConfig, epoch_base: u64, shared: bool) -> Self {
        Self {
            streams: HashMap::new(),
            totals: Totals::default(),
            limits,
            next_epoch: epoch_base,
            shared,
        }
    }

    /// True when the cluster's sequencer numbers the streams.
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// Create `id`'s stream, in a new epoch, unless the hub keeps it. True if it was created.
    pub fn create(&mut self, id: &StreamId) -> bool {
        if self.streams.contains_key(id) {
            return false;
        }
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        self.insert(id.clone(), Stream::new(epoch));
        true
    }

    /// The position of `id`'s stream, or the default (0:0) if the hub keeps none.
    pub fn position(&self, id: &StreamId) -> Position {
        self.streams
            .get(id)
            .map(Stream::position)
            .unwrap_or_default()
    }

    pub fn get(&self, id: &StreamId) -> Option<&Stream> {
        self.streams.get(id)
    }

    /// A stream, for everything but what changes its history (which goes through `Streams`).
    pub fn get_mut(&mut self, id: &StreamId) -> Option<&mut Stream> {
        self.streams.get_mut(id)
    }

    pub fn contains_key(&self, id: &StreamId) -> bool {
        self.streams.contains_key(id)
    }

    /// Add a new stream (without history) under `id`, which has none.
    fn insert(&mut self, id: StreamId, stream: Stream) {
        debug_assert!(stream.is_empty() && stream.order_key == 0);
        let previous = self.streams.insert(id, stream);
        debug_assert!(previous.is_none(), "a stream is created once");
    }

    /// Streams kept.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Forget `id` if it holds nothing (its last reader left).
    pub fn remove_if_empty(&mut self, id: &StreamId) {
        if self.streams.get(id).is_some_and(Stream::is_empty) {
            self.streams.remove(id);
        }
    }

    /// Entries kept in all histories, and their frame bytes.
    pub fn retained(&self) -> (usize, usize) {
        (self.totals.messages, self.totals.bytes)
    }

    /// Entries trimmed to fit the budget since the hub started.
    pub fn trimmed(&self) -> u64 {
        self.totals.trimmed
    }

    /// Keep `entry` in `id`'s history (the stream exists), then trim to the bounds: the
    /// stream's own, then the hub's.
    pub fn append(&mut self, id: &StreamId, entry: Entry) {
        let limits = &self.limits;
        let (streams, totals) = (&mut self.streams, &mut self.totals);
        change(streams, totals, id, true, |stream| {
            stream.append(entry, limits)
        });
        self.fit();
    }

    /// Keep `entry`, an older entry of `id` from a shared history, in front of the history
    /// (see [`Stream::restore`]). False if not kept.
    pub fn restore(&mut self, id: &StreamId, position: Position, entry: Entry) -> bool {
        let limits = &self.limits;
        let (streams, totals) = (&mut self.streams, &mut self.totals);
        let kept = change(streams, totals, id, false, |s| {
            s.restore(position, entry, limits)
        });
        self.fit();
        kept
    }

    /// Take `position` as `id`'s next (see [`Stream::adopt`]).
    pub fn adopt(
        &mut self,
        id: &StreamId,
        position: Position,
    ) -> Result<Option<Gap>, AlreadyTaken> {
        let (streams, totals) = (&mut self.streams, &mut self.totals);
        change(streams, totals, id, false, |stream| stream.adopt(position))
    }

    /// The clean-up sweep: expire history by age (`empty_room_max_age` for a room without
    /// members here, `interest` false), and forget the streams without `interest` that hold
    /// nothing.
    pub fn sweep(&mut self, now: Instant, interest: impl Fn(&StreamId) -> bool) {
        let (limits, totals) = (&self.limits, &mut self.totals);
        self.streams.retain(|id, stream| {
            let interested = interest(id);
            let max_age = match id {
                StreamId::Room(_) if !interested => limits.empty_room_max_age,
                _ => limits.max_age,
            };
            let before = stream.retained();
            stream.expire(now, max_age);
            totals.account(id, stream, before, false);
            interested || !stream.is_empty()
        });
    }

    /// Trim the streams that went longest without an append, oldest entries first, until the
    /// histories hold at most `max_total_bytes`.
    fn fit(&mut self) {
        let (budget, totals) = (self.limits.max_total_bytes, &mut self.totals);
        while totals.bytes > budget {
            let Some(first) = totals.by_last_append.first_entry() else {
                return;
            };
            let stream = self
                .streams
                .get_mut(first.get())
                .expect("indexed streams exist");
            if stream.last_append != *first.key() {
                // Appended to since it was placed: it goes to its place, behind the others.
                let id = first.remove();
                stream.order_key = stream.last_append;
                totals.by_last_append.insert(stream.order_key, id);
                continue;
            }
            while totals.bytes > budget && stream.retained().0 > 0 {
                let bytes = stream.retained().1;
                stream.pop_oldest();
                totals.trimmed += 1;
                totals.messages -= 1;
                totals.bytes -= bytes - stream.retained().1;
            }
            if stream.retained().0 == 0 {
                stream.order_key = 0;
                first.remove();
            }
        }
    }

    /// The totals counted anew from every history, to check the ones kept as they change.
    /// Panics if a stream's runs are not those of its history.
    #[cfg(any(test, feature = "testing"))]
    pub fn recount(&self) -> (usize, usize) {
        self.streams
            .values()
            .inspect(|s| s.check_runs())
            .map(Stream::retained)
            .fold((0, 0), |(m, b), (mm, bb)| (m + mm, b + bb))
    }
}

/// Apply `f` to `id`'s stream (which exists) and account for what its history gained or lost
/// (`appended`: an entry at its head, which numbers its last append).
fn change<R>(
    streams: &mut HashMap<StreamId, Stream>,
    totals: &mut Totals,
    id: &StreamId,
    appended: bool,
    f: impl FnOnce(&mut Stream) -> R,
) -> R {
    let stream = streams.get_mut(id).expect("the caller created the stream");
    let before = stream.retained();
    let result = f(stream);
    totals.account(id, stream, before, appended);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::UserId;
    use bytes::Bytes;
    use std::time::Duration;

    fn limits(max_total_bytes: usize) -> HistoryConfig {
        HistoryConfig {
            max_total_bytes,
            ..crate::Config::development().history
        }
    }

    fn room(name: &str) -> StreamId {
        StreamId::Room(name.into())
    }

    /// The streams of a hub with these bounds.
    fn streams(l: &HistoryConfig) -> Streams {
        Streams::new(l.clone(), 1, false)
    }

    /// Append a 10-byte entry to `id`, creating the stream if needed.
    fn push(streams: &mut Streams, id: &StreamId, now: Instant, pending: bool) {
        if !streams.contains_key(id) {
            streams.insert(id.clone(), Stream::new(1));
        }
        let seq = streams.get_mut(id).unwrap().advance().seq;
        let entry = Entry {
            seq,
            at: now,
            body: crate::run::Body::Frame(Bytes::from(format!("{seq:010}"))),
            thread: None,
            run: None,
            coalesce: None,
            pending,
        };
        streams.append(id, entry);
    }

    fn seqs(streams: &Streams, id: &StreamId) -> Vec<u64> {
        let stream = streams.get(id).unwrap();
        stream.entries_from(0).map(|e| e.seq).collect()
    }

    #[test]
    fn past_the_budget_the_stream_idle_longest_loses_its_oldest_entries_first() {
        let now = Instant::now();
        let l = limits(50);
        let mut s = streams(&l);
        for id in ["a", "b", "c"] {
            push(&mut s, &room(id), now, false);
            push(&mut s, &room(id), now, false);
        }
        assert_eq!(
            seqs(&s, &room("a")),
            vec![2],
            "a went longest without an append"
        );
        push(&mut s, &room("a"), now, false);
        assert_eq!(s.retained(), (5, 50), "within the budget after trimming b");
        assert_eq!(seqs(&s, &room("b")), vec![2], "then b");
        assert_eq!(seqs(&s, &room("c")), vec![1, 2]);
        assert_eq!(seqs(&s, &room("a")), vec![2, 3]);
        assert_eq!(s.trimmed(), 2);
        push(&mut s, &room("b"), now, false);
        assert_eq!(seqs(&s, &room("c")), vec![2], "then c");
        let (gap, from) = s
            .get(&room("c"))
            .unwrap()
            .catch_up_from(Position { epoch: 1, seq: 0 });
        assert_eq!(
            (gap.map(|g| (g.from, g.to)), from),
            (Some((1, 1)), 2),
            "a reader behind the trim gets exactly the entries it lost"
        );
        assert_eq!(s.retained(), s.recount());
    }

    #[test]
    fn a_pending_entry_trimmed_by_the_budget_is_announced_to_the_next_connection() {
        let now = Instant::now();
        let l = limits(20);
        let mut s = streams(&l);
        let offline = StreamId::User(UserId::from("ana"));
        push(&mut s, &offline, now, true);
        push(&mut s, &offline, now, true);
        push(&mut s, &room("busy"), now, false);
        push(&mut s, &room("busy"), now, false);
        assert!(s.get(&offline).unwrap().retained().0 == 0);
        let stream = s.get_mut(&offline).unwrap();
        assert!(!stream.is_empty(), "its losses are kept");
        let gap = stream.take_lost(None).expect("a gap for the lost entries");
        assert_eq!((gap.from, gap.to), (1, 2));
    }

    #[test]
    fn a_stream_emptied_by_the_budget_keeps_its_losses_until_they_would_have_expired() {
        let now = Instant::now();
        let l = limits(10);
        let mut s = streams(&l);
        let offline = StreamId::User(UserId::from("ana"));
        push(&mut s, &offline, now, true);
        push(&mut s, &room("busy"), now, false);
        s.sweep(now + l.max_age / 2, |_| false);
        assert!(s.contains_key(&offline), "losses to announce");
        s.sweep(now + l.max_age, |_| false);
        assert!(!s.contains_key(&offline));
    }

    #[test]
    fn a_room_without_members_keeps_its_history_for_the_shorter_age() {
        let now = Instant::now();
        let l = limits(1 << 20);
        let mut s = streams(&l);
        push(&mut s, &room("empty"), now, false);
        push(&mut s, &room("full"), now, false);
        let later = now + l.empty_room_max_age + Duration::from_secs(1);
        s.sweep(later, |id| *id == room("full"));
        assert!(!s.contains_key(&room("empty")));
        assert_eq!(seqs(&s, &room("full")), vec![1]);
        assert_eq!(s.retained(), (1, 10));
        assert_eq!(s.retained(), s.recount());
    }
}
