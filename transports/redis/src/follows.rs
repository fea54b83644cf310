//! [`Follows`]: the history reads a node's subscription has to make and the live entries it
//! holds back meanwhile.
//!
//! Following a stream means reading its head and the entries a reader missed from Redis (see
//! `history`) and handing them to the hubs before any live entry of the stream that arrives
//! after the read, so that nothing falls between the two. The reads run off the subscription
//! task, so a large one never delays the delivery of other streams: only the stream being
//! read waits, its live entries held here until its read was fed. Reads of one stream run one
//! at a time, in order; at most [`READS`] run at once (each holds up to a node's history bytes
//! in memory), and the others wait for a slot. What a stream holds is bounded by the history
//! bounds: past them, its held entries are dropped, and the stream is read again from the
//! shared history once its read is done, from the last position the hubs were fed.

use crate::history::Missed;
use crate::wire::Record;
use redis::RedisResult;
use std::collections::{HashMap, VecDeque};
use switchboard::{HistoryConfig, Position, StreamId};
use tokio::sync::oneshot;

/// How many history reads may run at once.
pub(crate) const READS: usize = 4;

/// Start following a stream for the hubs: after the subscriptions asked for before (and the
/// pin, if any), load what its reader `missed` and tell the hubs where the sequencer stands,
/// in order with what arrives on the subscription.
#[derive(Debug)]
pub(crate) struct Follow {
    pub stream: StreamId,
    /// The stream's channel, to hold subscribed for a while: a connection that opens within
    /// that time misses nothing published on it.
    pub pin: Option<String>,
    pub missed: Missed,
    /// What it missed is delivered to the readers now, in order (a stream followed again
    /// after its subscription was cut, or a pinned one whose channel the pin subscribes: the
    /// hubs' copy of it, if any, is stale), rather than kept for replays in front of what the
    /// hubs hold (a resume, a join with `since`, on a stream followed already).
    pub live: bool,
    /// Told how many entries were loaded.
    pub answer: Option<oneshot::Sender<RedisResult<usize>>>,
}

impl Follow {
    /// Follow `stream` again from `position`, the last one the hubs were fed: what followed it
    /// is delivered live.
    pub fn again(stream: StreamId, position: Position) -> Self {
        Self {
            stream,
            pin: None,
            missed: Missed::After(position),
            live: true,
            answer: None,
        }
    }
}

/// The follows of every stream with a read waiting or running.
#[derive(Debug)]
pub(crate) struct Follows {
    streams: HashMap<StreamId, Held>,
    /// Streams whose next read waits for a slot, in the order they became ready.
    ready: VecDeque<StreamId>,
    /// Reads running.
    reading: usize,
    /// What a stream may hold: the history bounds.
    max_messages: usize,
    max_bytes: usize,
}

/// One stream's reads and the live entries held for them.
#[derive(Debug, Default)]
struct Held {
    /// Reads not started yet, in order.
    queued: VecDeque<Follow>,
    /// A read is running.
    reading: bool,
    /// Live entries that arrived since, in order, and their frame bytes.
    entries: Vec<Record>,
    bytes: usize,
    /// Some entries were dropped, over the bounds.
    overflowed: bool,
}

/// What a finished read leaves to do once its result was fed.
#[derive(Debug, Default)]
pub(crate) struct Finished {
    /// The live entries held meanwhile, to deliver now, in order.
    pub held: Vec<Record>,
    /// Live entries were dropped, over the bounds: read them again from the shared history.
    pub overflowed: bool,
}

impl Follows {
    /// Nothing followed yet; a stream holds at most `bounds` (the node's history bounds).
    pub fn new(bounds: &HistoryConfig) -> Self {
        Self {
            streams: HashMap::new(),
            ready: VecDeque::new(),
            reading: 0,
            max_messages: bounds.max_messages,
            max_bytes: bounds.max_bytes,
        }
    }

    /// Queue `follow` behind its stream's earlier ones; the reads to start now. A read that
    /// follows a stream again after a cut is queued once: the one queued first reads from
    /// further back (and one for a connection, which someone awaits, reads all it needs).
    pub fn push(&mut self, follow: Follow) -> Vec<Follow> {
        let held = self.streams.entry(follow.stream.clone()).or_default();
        let again = follow.live && follow.answer.is_none();
        if again && held.queued.iter().any(|queued| queued.live) {
            return Vec::new();
        }
        if !held.reading && held.queued.is_empty() {
            self.ready.push_back(follow.stream.clone());
        }
        held.queued.push_back(follow);
        self.start()
    }

    /// A live entry: handed back if no read of its stream waits or runs (deliver it now);
    /// otherwise held until the read is done.
    pub fn hold(&mut self, record: Record) -> Option<Record> {
        let Some(held) = self.streams.get_mut(&record.sequenced.entry.stream) else {
            return Some(record);
        };
        if held.overflowed {
            return None;
        }
        let size = record.sequenced.frame.len();
        if held.entries.len() < self.max_messages && held.bytes + size <= self.max_bytes {
            held.bytes += size;
            held.entries.push(record);
        } else {
            held.entries.clear();
            held.bytes = 0;
            held.overflowed = true;
        }
        None
    }

    /// The running read of `stream` is done and its result was fed: what was held meanwhile.
    /// Its next read, if any, waits for a slot (see [`Follows::start`]).
    pub fn finish(&mut self, stream: &StreamId) -> Finished {
        let Some(held) = self.streams.get_mut(stream).filter(|held| held.reading) else {
            return Finished::default();
        };
        held.reading = false;
        self.reading -= 1;
        let finished = Finished {
            held: std::mem::take(&mut held.entries),
            overflowed: std::mem::take(&mut held.overflowed),
        };
        held.bytes = 0;
        if held.queued.is_empty() {
            self.streams.remove(stream);
        } else {
            self.ready.push_back(stream.clone());
        }
        finished
    }

    /// The reads to start now: the next follow of each stream waiting for a slot, while
    /// slots are free.
    pub fn start(&mut self) -> Vec<Follow> {
        let mut started = Vec::new();
        while self.reading < READS {
            let Some(stream) = self.ready.pop_front() else {
                break;
            };
            let held = self
                .streams
                .get_mut(&stream)
                .expect("a ready stream is followed");
            let follow = held
                .queued
                .pop_front()
                .expect("a ready stream has a read queued");
            held.reading = true;
            self.reading += 1;
            started.push(follow);
        }
        started
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;
    use switchboard::{EntryMeta, Sequenced};

    fn room(name: &str) -> StreamId {
        StreamId::Room(name.into())
    }

    fn follow(stream: &StreamId) -> Follow {
        Follow {
            stream: stream.clone(),
            pin: None,
            missed: Missed::Nothing,
            live: false,
            answer: None,
        }
    }

    fn at(seq: u64) -> Position {
        Position { epoch: 1, seq }
    }

    fn record(stream: &StreamId, seq: u64, bytes: usize) -> Record {
        Record {
            origin: "n1".to_owned(),
            id: None,
            sequenced: Sequenced {
                entry: EntryMeta {
                    stream: stream.clone(),
                    thread: None,
                    run: None,
                    ends_run: false,
                    thinking: false,
                    message: None,
                    undelivered: false,
                    except: Vec::new(),
                },
                position: at(seq),
                frame: Bytes::from(vec![b'x'; bytes]),
            },
        }
    }

    fn bounds(max_messages: usize, max_bytes: usize) -> HistoryConfig {
        HistoryConfig {
            max_messages,
            max_bytes,
            max_age: Duration::from_secs(60),
            ..switchboard::Config::production().history
        }
    }

    fn seqs(records: &[Record]) -> Vec<u64> {
        records.iter().map(|r| r.sequenced.position.seq).collect()
    }

    /// While a stream is read, its live entries are held and handed over in order once the
    /// read is done; another stream's are handed back at once.
    #[test]
    fn only_the_stream_being_read_holds_its_live_entries() {
        let (big, other) = (room("big"), room("other"));
        let mut follows = Follows::new(&bounds(100, 1000));
        let started = follows.push(follow(&big));
        assert_eq!(started.len(), 1);
        assert!(follows.hold(record(&big, 7, 10)).is_none());
        assert!(follows.hold(record(&other, 3, 10)).is_some());
        assert!(follows.hold(record(&big, 8, 10)).is_none());

        let finished = follows.finish(&big);
        assert_eq!(seqs(&finished.held), [7, 8]);
        assert!(!finished.overflowed);
        assert!(
            follows.hold(record(&big, 9, 10)).is_some(),
            "no longer held"
        );
    }

    /// One read per stream at a time, in order; at most `READS` streams at once, the others
    /// started as slots free up.
    #[test]
    fn reads_run_one_at_a_time_per_stream_and_at_most_reads_at_once() {
        let mut follows = Follows::new(&bounds(100, 1000));
        let first = room("r0");
        let mut again = follow(&first);
        again.missed = Missed::After(at(5));
        assert_eq!(follows.push(follow(&first)).len(), 1);
        assert!(
            follows.push(again).is_empty(),
            "behind the first read of r0"
        );
        let streams: Vec<StreamId> = (1..=READS).map(|i| room(&format!("r{i}"))).collect();
        let mut started = 0;
        for stream in &streams {
            started += follows.push(follow(stream)).len();
        }
        assert_eq!(started, READS - 1, "one slot was r0's");

        follows.finish(&first);
        let next = follows.start();
        let names: Vec<&StreamId> = next.iter().map(|f| &f.stream).collect();
        assert_eq!(
            names,
            [&streams[READS - 1]],
            "the stream that waited longest first"
        );
        follows.finish(&streams[0]);
        let next = follows.start();
        assert_eq!(next.len(), 1);
        let after = Missed::After(at(5));
        assert_eq!((&next[0].stream, next[0].missed), (&first, after));
    }

    /// Past the history bounds, a stream's held entries are dropped (and later ones too), and
    /// the finished read says so, so that the stream is read again from history.
    #[test]
    fn held_entries_over_the_history_bounds_are_dropped_and_reported() {
        let stream = room("big");
        let mut follows = Follows::new(&bounds(3, 25));
        follows.push(follow(&stream));
        for seq in 1..=2 {
            assert!(follows.hold(record(&stream, seq, 10)).is_none());
        }
        assert!(
            follows.hold(record(&stream, 3, 10)).is_none(),
            "30 bytes > 25"
        );
        assert!(follows.hold(record(&stream, 4, 1)).is_none());
        let finished = follows.finish(&stream);
        assert!(finished.held.is_empty());
        assert!(finished.overflowed);

        let mut follows = Follows::new(&bounds(2, 1000));
        follows.push(follow(&stream));
        for seq in 1..=3 {
            follows.hold(record(&stream, seq, 1));
        }
        assert!(follows.finish(&stream).overflowed, "3 messages > 2");
    }

    /// A stream already waiting to be followed again is not queued a second time.
    #[test]
    fn a_stream_is_queued_to_be_followed_again_once() {
        let stream = room("big");
        let mut follows = Follows::new(&bounds(100, 1000));
        assert_eq!(follows.push(follow(&stream)).len(), 1);
        assert!(follows
            .push(Follow::again(stream.clone(), at(3)))
            .is_empty());
        assert!(follows
            .push(Follow::again(stream.clone(), at(9)))
            .is_empty());
        follows.finish(&stream);
        let next = follows.start();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].missed, Missed::After(at(3)), "from further back");
        follows.finish(&stream);
        assert!(follows.start().is_empty());
        assert!(follows.hold(record(&stream, 10, 1)).is_some());
    }
}
