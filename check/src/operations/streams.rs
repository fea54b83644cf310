//! The model's own streams, written from `docs/PROTOCOL.md` and never read from the hub: each
//! incarnation of a user's or a room's stream (its head, what history keeps, the pending
//! messages and those history dropped before anyone took them), the epochs clients learn from
//! the frames they read, and the rules of sections 3 (`gap`) and 7 (`resume`, `already_live`)
//! that answer a client's position.
//!
//! The hub picks epochs; the protocol only promises that each incarnation of a stream gets a
//! larger epoch than any before it (section 6). So the model numbers incarnations in the order
//! it creates them and learns each one's epoch from the first frame a client reads that
//! carries it; from then on every frame of that incarnation must carry the same epoch, and
//! epochs must grow with the incarnations.

use super::*;

/// A stream: a user's or a room's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Key {
    User(usize),
    Room(usize),
}

impl Key {
    pub(super) fn id(self) -> StreamId {
        match self {
            Key::User(u) => StreamId::User(user_id(u)),
            Key::Room(r) => StreamId::Room(ROOMS[r].into()),
        }
    }

    /// Every stream a case can name.
    pub(super) fn all() -> impl Iterator<Item = Key> {
        let users = (0..USERS.len()).map(Key::User);
        users.chain((0..ROOMS.len()).map(Key::Room))
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Key::User(u) => write!(f, "user:{}", USERS[u]),
            Key::Room(r) => write!(f, "room:{}", ROOMS[r]),
        }
    }
}

/// One message kept in a stream's history.
#[derive(Debug, Clone, Copy)]
pub(super) struct Kept {
    pub(super) seq: u64,
    /// When it was kept.
    pub(super) at: Instant,
    /// The length of its frame, counted against `max_bytes`.
    pub(super) bytes: usize,
    /// The thread it is for (none: every connection of the user; always none in a room).
    pub(super) thread: Option<usize>,
    /// The message's number.
    pub(super) n: u64,
    /// Published while no connection selected it, and not taken yet (user streams only).
    pub(super) pending: bool,
}

/// One incarnation of a stream.
#[derive(Debug)]
pub(super) struct Stream {
    /// Which incarnation (the model's count of streams created, see [`Epochs`]).
    pub(super) inc: usize,
    /// The last sequence number given (0: none yet).
    pub(super) head: u64,
    /// What history keeps, oldest first: the newest messages, at most `max_messages` and
    /// `max_bytes` of frames, kept less than `max_age` (section 6).
    pub(super) kept: Vec<Kept>,
    /// Per thread, the first pending message that history dropped before a connection took it
    /// (section 6, "Offline buffering").
    pub(super) lost: BTreeMap<Option<usize>, u64>,
}

impl Stream {
    /// The first sequence number history still holds (the next one if it holds none): it
    /// keeps every message from its oldest to the head.
    pub(super) fn oldest(&self) -> u64 {
        self.kept.first().map_or(self.head + 1, |k| k.seq)
    }

    /// Give message `n`, whose frame is `bytes` long, the next number and keep it at `now`,
    /// then let history drop what it no longer keeps: the newest messages stay, at most
    /// `max_messages` of them and `max_bytes` of frames.
    pub(super) fn append(
        &mut self,
        n: u64,
        thread: Option<usize>,
        pending: bool,
        ((max_messages, max_bytes), bytes): ((u64, usize), usize),
        now: Instant,
    ) -> u64 {
        self.head += 1;
        self.kept.push(Kept {
            seq: self.head,
            at: now,
            bytes,
            thread,
            n,
            pending,
        });
        // The oldest go while more are kept than either bound allows.
        let (mut count, mut total) = (self.kept.len() as u64, self.kept_bytes());
        let mut drop = 0;
        while count > max_messages || total > max_bytes {
            total -= self.kept[drop].bytes;
            count -= 1;
            drop += 1;
        }
        let first = self.kept.get(drop).map_or(self.head + 1, |k| k.seq);
        self.drop_oldest(|k| k.seq < first);
        self.head
    }

    /// The bytes of the frames history keeps.
    fn kept_bytes(&self) -> usize {
        self.kept.iter().map(|k| k.bytes).sum()
    }

    /// History drops every message kept for `max_age` or longer at `now`. Once it holds
    /// nothing, the losses it would announce are forgotten too: what was lost would have
    /// expired by now, and a stream whose history expired is created anew (section 3, `gap`).
    pub(super) fn expire(&mut self, now: Instant, max_age: Duration) {
        self.drop_oldest(|k| now.saturating_duration_since(k.at) >= max_age);
        if self.kept.is_empty() {
            self.lost.clear();
        }
    }

    /// History drops its oldest messages while `gone` picks them, remembering pending
    /// messages dropped before anyone took them.
    fn drop_oldest(&mut self, gone: impl Fn(&Kept) -> bool) {
        let kept = self.kept.iter().take_while(|k| gone(k)).count();
        for k in self.kept.drain(..kept) {
            if k.pending {
                self.lost.entry(k.thread).or_insert(k.seq);
            }
        }
    }

    /// True when it holds no message and no loss to announce: once nobody is on it, the hub
    /// drops it, and the next one is created anew in a new epoch (section 6).
    pub(super) fn holds_nothing(&self) -> bool {
        self.kept.is_empty() && self.lost.is_empty()
    }
}

/// The epoch of every incarnation the model created, as clients learned it.
#[derive(Debug, Default)]
pub(super) struct Epochs(Vec<Option<u64>>);

impl Epochs {
    /// A new incarnation, created after every one before it; its epoch is not known yet.
    pub(super) fn create(&mut self) -> usize {
        self.0.push(None);
        self.0.len() - 1
    }

    /// The epoch of incarnation `inc`, once a client read a frame carrying it.
    pub(super) fn get(&self, inc: usize) -> Option<u64> {
        self.0[inc]
    }

    /// True if `epoch` is incarnation `inc`'s. An epoch the model does not know for it is
    /// another incarnation's (see [`Epochs::other_than`]).
    pub(super) fn is(&self, inc: usize, epoch: u64) -> bool {
        self.get(inc) == Some(epoch)
    }

    /// `epoch`, carried by a frame of incarnation `inc`, is its epoch: the one learned, or, if
    /// none was, one that fits between the epochs of the incarnations created before and
    /// after it.
    pub(super) fn check(&self, inc: usize, epoch: u64) -> Result<(), String> {
        check_epoch_digits(epoch)?;
        if let Some(known) = self.get(inc) {
            ensure_eq!(epoch, known, "the epoch of incarnation {}", inc);
            return Ok(());
        }
        let learned = self.0.iter().enumerate();
        crate::epochs::fits(inc, epoch, learned.filter_map(|(i, e)| Some((i, (*e)?))))
    }

    /// Check `epoch` for incarnation `inc` and learn it.
    pub(super) fn learn(&mut self, inc: usize, epoch: u64) -> Result<(), String> {
        self.check(inc, epoch)?;
        self.0[inc] = Some(epoch);
        Ok(())
    }

    /// An epoch that is certainly not incarnation `inc`'s: one learned of another incarnation
    /// (no two have the same), or, if none is known, one past `inc`'s own.
    pub(super) fn other_than(&self, inc: Option<usize>) -> u64 {
        let others = self.0.iter().enumerate().filter(|&(i, _)| Some(i) != inc);
        let learned = others.filter_map(|(_, e)| *e).max();
        let past = inc.and_then(|i| self.get(i)).map(|e| e + 1);
        learned.or(past).unwrap_or(0)
    }
}

/// The length in bytes of the frame of the `n`th message (its data the number `n`) at `seq`
/// of `key`'s stream, for a user's `thread`, or from a member of user `from`.
pub(super) fn frame_bytes(
    key: Key,
    seq: u64,
    n: u64,
    thread: Option<usize>,
    from: Option<usize>,
) -> usize {
    let thread = thread.map(|t| THREADS[t]);
    let from = from.map(|u| USERS[u]);
    message_frame_bytes(&key.id(), seq, (&event(n), json!(n)), thread, from)
}

/// What a replay after a client's position starts with.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct CatchUp {
    /// The `gap` announced first, if the client cannot receive everything after its position:
    /// (reason, from, to).
    pub(super) gap: Option<(&'static str, u64, u64)>,
    /// The first sequence number replayed.
    pub(super) first: u64,
}

/// What a reader at `position` receives of `s` (section 3, `gap`): after a position of another
/// epoch, or beyond the head, an `epoch` gap for what the stream no longer holds and its whole
/// history; after one history no longer reaches, a `history` gap for exactly what is lost and
/// what history holds; otherwise everything after the position.
pub(super) fn catch_up(s: &Stream, epochs: &Epochs, position: Position) -> CatchUp {
    let oldest = s.oldest();
    let lost = oldest - 1;
    if !epochs.is(s.inc, position.epoch) || position.seq > s.head {
        CatchUp {
            gap: Some(("epoch", 1, lost)),
            first: 1,
        }
    } else if position.seq < lost {
        CatchUp {
            gap: Some(("history", position.seq + 1, lost)),
            first: oldest,
        }
    } else {
        CatchUp {
            gap: None,
            first: position.seq + 1,
        }
    }
}

/// How a connection is answered when it asks to resume a stream it is on (section 7, steps 5
/// and 6).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Answer {
    /// Nothing flowed on the stream yet: a replay after the position, then `resumed`.
    Replay,
    /// The position leaves nothing missing before what it holds: `resumed` alone.
    Resumed,
    /// A replay now would interleave with what flowed: `already_live`.
    AlreadyLive,
}

/// The answer to a `resume` after `position` of `s` from a connection that has every message
/// it selects from `from` on (0: none yet).
pub(super) fn answer(s: &Stream, epochs: &Epochs, from: u64, position: Position) -> Answer {
    if from == 0 {
        return Answer::Replay;
    }
    // Nothing missing: the position is in the stream's epoch and the message after it is no
    // later than the first one the connection holds.
    let missing = !epochs.is(s.inc, position.epoch) || position.seq.saturating_add(1) < from;
    if missing {
        Answer::AlreadyLive
    } else {
        Answer::Resumed
    }
}
