//! A reference model of the hub's routing, checked against the real hub under arbitrary
//! sequences of operations: the body of the `operations` fuzz target and of the property test
//! `tests/model.rs`.
//!
//! The model is a few plain maps: the open connections of each user (oldest first), the thread,
//! the rooms and the reading state of each connection, the members of each room, and each
//! user's and room's stream (sequence numbers, what history keeps, and the user stream's pending
//! messages: reliable messages that no connection selected when they were published, waiting for
//! the first connection that selects them, one that opens or binds to their thread). The
//! streams are the model's own, written from `docs/PROTOCOL.md` (module `streams`): it creates
//! and drops each incarnation where the protocol says the hub does, numbers its messages, keeps
//! its history, and learns its epoch only from the frames clients read, as a client does; each
//! client's positions are kept from what it read by the client algorithm of section 7, and the
//! answer to a `resume` (replay, `gap`, `resumed` or `already_live`) follows from the model's
//! streams and positions alone. Nothing the model predicts is read from the hub. A sequence
//! of operations is applied to the model and to a hub driven by the in-memory harness: open (one
//! of four users, optionally on a thread), close (by the peer or by the application), disconnect
//! a user through its scope, join and leave (by client frame and by the server), bind a thread
//! (by client frame, by `update_connection_thread`, through a user scope), publish to a
//! connection, a user, a room, a user's thread or everyone, reliable or ephemeral, with an
//! except-set; a member's own room publish; publishes through a user's scope; `resume` frames
//! (own and other users' streams, rooms joined or not, from the last position seen, from zero,
//! from another epoch or from beyond the head); a client that stops and resumes reading (its
//! frames wait unflushed and are read later, in order); and clock ticks. History is short (1 to
//! 16 messages), so it sometimes drops pending messages and resumes fall outside it.
//!
//! After every step these invariants hold:
//!
//! 1. **Exact delivery.** Every connection received exactly the frames the model predicts for
//!    the step (or, for a connection that is not reading, receives them once it reads again):
//!    the reply to its own request (`welcome`, `joined`, `left`, `bound`, `resumed` or an
//!    `error` with the model's code; `welcome`, `joined` and `resumed` with the stream's head),
//!    every published message that addresses it (a sequenced one with its stream and number,
//!    every frame of a stream in its incarnation's epoch, which grows with each incarnation
//!    created), the pending
//!    messages it takes over (after a `gap` covering exactly those of them that history dropped
//!    meanwhile), and what a `resume` replays (after a `gap` covering exactly what history no
//!    longer holds), in that order, nothing else. A publish's `Delivery::reached` is the number
//!    of connections the model says it reaches, and `Delivery::buffered` says whether the model
//!    keeps it pending.
//! 2. **Publish order.** Each connection receives the messages delivered to it live in the
//!    order they were published; replayed messages come together, in stream order, right after
//!    the frame that asked for them.
//! 3. **Isolation.** A message published through one user's scope reaches only that user's
//!    connections; a scope cannot send to, rebind, or even see another user's connection; a
//!    `resume` of another user's stream is `forbidden`.
//! 4. **Limits.** Connections per user, connections in the hub, rooms per connection and members
//!    per room never exceed the configured limits; a request past a limit is refused (or, with
//!    `EvictOldest`, the user's oldest connection is closed with 4001) exactly when the model
//!    says so. Every client frame takes a token of its connection's message rate, and every
//!    refusal section 4 marks takes a strike, both token buckets the model follows exactly as
//!    the clock moves (module `budgets` of the crate, shared with the `frames` oracle): a
//!    frame past the rate is answered `rate_limited` and not read, a refused one gets its
//!    `error`, and one that finds no strike left gets nothing and closes its connection, with
//!    4029 past the rate and 1008 otherwise (the rest of a `resume` frame is not read).
//! 5. **Same state.** The hub's users, connections, threads, rooms and gauges equal the model's,
//!    and every gauge the hub keeps as its state changes equals a recount of that state; the
//!    hub reports exactly the model's streams (`Hub::stream_position`), at the model's heads
//!    and in the epochs clients learned, and history holds as many messages as the model's.
//!
//! At the end everyone closes; once the history has expired and the clean-up sweep has run, the
//! hub holds no state at all (`is_idle`, every gauge zero).
//!
//! A case's rate (1 to 4 frames a second, bursts of 2 to 9) and strikes (1 to 4, one back every
//! 1 to 8 s) are small enough that sequences run through them, and so is its history (1 to 16
//! messages, 256 to 1024 bytes of frames, each frame's length known from section 3, kept 1 to
//! 8 s: ticks move the clock in whole sweeps, [`SWEEP_MS`]), so the model drops exactly the
//! messages the hub must, remembers the pending ones among them for a `gap`, and forgets a
//! stream nobody is on once its history expired. The harness's clients answer pings, so the
//! heartbeat never closes a connection here; and the backpressure budgets are far above what a
//! sequence writes, so a client that does not read is never closed as a slow consumer here (the
//! devices model predicts those closes).

use arbitrary::Arbitrary;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};
use switchboard::testing::Harness;
use switchboard::{
    Audience, Config, ConnId, Delivery, Message, Open, OpenError, Position, PublishError, Reason,
    RoomError, Stats, StreamId, Target, ThreadId, UserId, UserLimitPolicy,
};

/// The users of a case.
pub const USERS: [&str; 4] = ["ana", "ben", "cho", "dan"];
/// The rooms of a case.
pub const ROOMS: [&str; 3] = ["r0", "r1", "r2"];
/// The threads of a case (each user has its own of each name).
pub const THREADS: [&str; 2] = ["t0", "t1"];
/// Operations in one case, at most (longer inputs are cut).
pub const MAX_OPS: usize = 96;
/// The longest single tick, in milliseconds.
pub const MAX_TICK_MS: u16 = 5_000;
/// Picks of a connection are taken modulo the candidates; this bounds the raw value.
pub const PICK: u8 = 16;

/// The clean-up sweep's interval, and the step ticks move in: every operation comes at a
/// multiple of it, and so does every sweep, so a message is gone exactly at the first
/// operation at least `max_age` after it was kept (section 6, "History": up to a sweep later,
/// and no operation falls between).
pub const SWEEP_MS: u16 = 250;

mod case;
mod checks;
mod expect;
mod step;
mod streams;

use crate::budgets::Budget;
use crate::frame_bytes::{check_epoch_digits, message_frame_bytes, EPOCH_BASE};
pub use case::{BindBy, Case, Limits, Op, Resumed, Scoped, Since, To};
use checks::{check_frames, check_state};
use expect::{event, label, Expect, Want};
use step::step;
use streams::{answer, catch_up, frame_bytes, Answer, CatchUp, Epochs, Kept, Key, Stream};

// ----- the model ---------------------------------------------------------------------------

#[derive(Debug)]
struct Conn {
    user: usize,
    thread: Option<usize>,
    /// The rooms it is in, each with the first sequence number it has every message from
    /// (0: nothing of the room reached it yet).
    rooms: BTreeMap<usize, u64>,
    /// The same on its user stream.
    user_from: u64,
    /// Its message rate and its strikes (section 4), known exactly: the model sees every
    /// frame the client sends.
    rate: Budget,
    strikes: Budget,
}

/// The reference: users, connections, rooms, threads and streams in plain maps.
#[derive(Debug)]
struct Model {
    /// Messages history keeps per stream.
    history: u64,
    /// Bytes of frames history keeps per stream.
    history_bytes: usize,
    /// The limits a connection's budgets follow.
    limits: switchboard::Limits,
    /// How long history keeps a message.
    max_age: Duration,
    /// The clock, moved by the case's ticks.
    now: Instant,
    /// Open connections of each user, oldest first (absent: none).
    users: HashMap<usize, Vec<ConnId>>,
    conns: HashMap<ConnId, Conn>,
    /// Members of each room (absent: none).
    rooms: HashMap<usize, BTreeSet<ConnId>>,
    /// The streams the hub keeps: a user's while it has connections or holds anything, a
    /// room's while it has members or holds anything (section 6).
    streams: BTreeMap<Key, Stream>,
    /// The epochs of the streams' incarnations, as clients learn them.
    epochs: Epochs,
    /// Every connection ever opened, in order.
    ever: Vec<ConnId>,
    /// Connections that do not read (open or closed).
    deaf: BTreeSet<ConnId>,
    /// Frames written to open connections that do not read, in order.
    backlog: BTreeMap<ConnId, Vec<Want>>,
}

impl Model {
    fn new(config: &Config, now: Instant) -> Self {
        Model {
            history: config.history.max_messages as u64,
            history_bytes: config.history.max_bytes,
            limits: config.limits.clone(),
            max_age: config.history.max_age,
            now,
            users: HashMap::new(),
            conns: HashMap::new(),
            rooms: HashMap::new(),
            streams: BTreeMap::new(),
            epochs: Epochs::default(),
            ever: Vec::new(),
            deaf: BTreeSet::new(),
            backlog: BTreeMap::new(),
        }
    }

    /// Open connections, in id order.
    fn open(&self) -> Vec<ConnId> {
        let mut open: Vec<ConnId> = self.conns.keys().copied().collect();
        open.sort_unstable();
        open
    }

    fn pick_open(&self, pick: u8) -> Option<ConnId> {
        let open = self.open();
        (!open.is_empty()).then(|| open[usize::from(pick) % open.len()])
    }

    fn pick_ever(&self, pick: u8) -> Option<ConnId> {
        (!self.ever.is_empty()).then(|| self.ever[usize::from(pick) % self.ever.len()])
    }

    fn user_conns(&self, user: usize) -> &[ConnId] {
        self.users.get(&user).map_or(&[], Vec::as_slice)
    }

    fn members(&self, room: usize) -> Vec<ConnId> {
        self.rooms
            .get(&room)
            .map_or_else(Vec::new, |m| m.iter().copied().collect())
    }

    fn owns(&self, user: usize, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.user == user)
    }

    /// `key`'s stream, created in a new incarnation if the hub keeps none.
    fn stream(&mut self, key: Key) -> &mut Stream {
        let epochs = &mut self.epochs;
        self.streams.entry(key).or_insert_with(|| Stream {
            inc: epochs.create(),
            head: 0,
            kept: Vec::new(),
            lost: BTreeMap::new(),
        })
    }

    /// What history keeps per stream: messages, and bytes of frames.
    fn bounds(&self) -> (u64, usize) {
        (self.history, self.history_bytes)
    }

    /// True while someone is on `key`: a user's stream while it has connections, a room's
    /// while it has members.
    fn served(&self, key: Key) -> bool {
        match key {
            Key::User(u) => self.users.contains_key(&u),
            Key::Room(r) => self.rooms.contains_key(&r),
        }
    }

    /// The clean-up sweep at the model's clock: history drops every message kept for
    /// `max_age` or longer, and the streams nobody is on that hold nothing are forgotten
    /// (section 6).
    fn sweep(&mut self) {
        let (now, max_age) = (self.now, self.max_age);
        for s in self.streams.values_mut() {
            s.expire(now, max_age);
        }
        let idle: Vec<Key> = (self.streams.iter())
            .filter(|&(&key, s)| s.holds_nothing() && !self.served(key))
            .map(|(&key, _)| key)
            .collect();
        for key in idle {
            self.streams.remove(&key);
        }
    }

    /// Nobody is on `key` any more: the hub forgets it if it holds nothing.
    fn unserved(&mut self, key: Key) {
        if self.streams.get(&key).is_some_and(Stream::holds_nothing) {
            self.streams.remove(&key);
        }
    }

    fn add(&mut self, id: ConnId, user: usize, thread: Option<usize>) {
        self.users.entry(user).or_default().push(id);
        self.conns.insert(
            id,
            Conn {
                user,
                thread,
                rooms: BTreeMap::new(),
                user_from: 0,
                rate: Budget::rate(self.now, &self.limits),
                strikes: Budget::strikes(self.now, &self.limits),
            },
        );
        self.stream(Key::User(user));
        self.ever.push(id);
    }

    fn remove(&mut self, id: ConnId) {
        let conn = self.conns.remove(&id).expect("closing an open connection");
        for &room in conn.rooms.keys() {
            self.remove_member(room, id);
        }
        let conns = self.users.get_mut(&conn.user).expect("the user has it");
        conns.retain(|c| *c != id);
        if conns.is_empty() {
            self.users.remove(&conn.user);
            self.unserved(Key::User(conn.user));
        }
        self.backlog.remove(&id);
    }

    /// `id` leaves `room`.
    fn remove_member(&mut self, room: usize, id: ConnId) {
        let members = self.rooms.get_mut(&room).expect("member of the room");
        members.remove(&id);
        if members.is_empty() {
            self.rooms.remove(&room);
            self.unserved(Key::Room(room));
        }
    }

    /// `conn` joins `room` (whose stream the hub creates if it keeps none).
    fn join(&mut self, conn: ConnId, room: usize) {
        self.conns
            .get_mut(&conn)
            .expect("open")
            .rooms
            .insert(room, 0);
        self.rooms.entry(room).or_default().insert(conn);
        self.stream(Key::Room(room));
    }

    /// A frame reporting `key`'s head (`welcome`, `joined`, `resumed`).
    fn head(&self, kind: &str, key: Key) -> Want {
        let s = &self.streams[&key];
        Want {
            label: format!("{kind} {key}#{}", s.head),
            inc: Some(s.inc),
            at: None,
        }
    }

    /// Kept message `k` of `key`'s stream, as a frame.
    fn kept(&self, key: Key, k: Kept) -> Want {
        Want::message(k.n, Some((key, self.streams[&key].inc, k.seq)))
    }

    /// A `gap` on `key`'s stream.
    fn gap(&self, key: Key, (reason, from, to): (&str, u64, u64)) -> Want {
        Want {
            label: format!("gap:{reason}:{from}-{to} {key}"),
            inc: Some(self.streams[&key].inc),
            at: Some((key, to)),
        }
    }

    /// The connections that the `n`th message, to `user` (on `thread` if any) except `except`,
    /// reaches, its frame, and whether it is pending: reliable, and no connection of the user
    /// selects it (a message whose except-set left out every connection that selects it is not
    /// pending).
    fn user_audience(
        &mut self,
        user: usize,
        thread: Option<usize>,
        except: &[ConnId],
        n: u64,
        reliable: bool,
    ) -> (Vec<ConnId>, Want, bool) {
        let selected: Vec<ConnId> = self
            .user_conns(user)
            .iter()
            .copied()
            .filter(|c| thread.is_none() || self.conns[c].thread == thread)
            .collect();
        let pending = reliable && selected.is_empty();
        let reached: Vec<ConnId> = selected
            .into_iter()
            .filter(|c| !except.contains(c))
            .collect();
        if !reliable {
            return (reached, Want::message(n, None), false);
        }
        let (bounds, now, key) = (self.bounds(), self.now, Key::User(user));
        let s = self.stream(key);
        let bytes = frame_bytes(key, s.head + 1, n, thread, None);
        let seq = s.append(n, thread, pending, (bounds, bytes), now);
        let inc = s.inc;
        for c in &reached {
            let conn = self.conns.get_mut(c).expect("open");
            if conn.user_from == 0 {
                conn.user_from = seq;
            }
        }
        (reached, Want::message(n, Some((key, inc, seq))), pending)
    }

    /// The `n`th message to `room`'s members except `except`, from a member of user `from`
    /// or from the application: sequenced in the room's stream if it is reliable and the hub
    /// keeps one (a room without members or history has none).
    fn room_message(
        &mut self,
        room: usize,
        except: &[ConnId],
        (n, from): (u64, Option<usize>),
        reliable: bool,
    ) -> Want {
        let (bounds, now, key) = (self.bounds(), self.now, Key::Room(room));
        let Some(s) = self.streams.get_mut(&key).filter(|_| reliable) else {
            return Want::message(n, None);
        };
        let bytes = frame_bytes(key, s.head + 1, n, None, from);
        let seq = s.append(n, None, false, (bounds, bytes), now);
        let inc = s.inc;
        for c in self.members(room).iter().filter(|c| !except.contains(c)) {
            let from = self.conns.get_mut(c).expect("open").rooms.get_mut(&room);
            let from = from.expect("member");
            if *from == 0 {
                *from = seq;
            }
        }
        Want::message(n, Some((key, inc, seq)))
    }

    /// What a connection of `user` on `thread` that just opened or bound receives: a `gap` from
    /// the first pending message it would have received that history dropped to the message
    /// before the oldest still kept, then the pending messages it selects, which it takes over
    /// (they are no longer pending). Section 6, "Offline buffering".
    fn take_pending(&mut self, user: usize, thread: Option<usize>) -> Vec<Want> {
        let key = Key::User(user);
        let s = self.stream(key);
        let selects = |t: Option<usize>| t.is_none() || t == thread;
        let mut first_lost: Option<u64> = None;
        s.lost.retain(|&t, &mut from| {
            if selects(t) {
                first_lost = Some(first_lost.map_or(from, |f| f.min(from)));
            }
            !selects(t)
        });
        let gap = first_lost.map(|from| ("history", from, s.oldest() - 1));
        let mut taken = Vec::new();
        for k in s.kept.iter_mut().filter(|k| k.pending && selects(k.thread)) {
            k.pending = false;
            taken.push(*k);
        }
        let mut frames: Vec<Want> = gap.into_iter().map(|g| self.gap(key, g)).collect();
        frames.extend(taken.into_iter().map(|k| self.kept(key, k)));
        frames
    }

    /// A `resume` of `conn`'s own user stream from `position`: the frames it answers with,
    /// the replay included (section 7).
    fn resume_user(&mut self, conn: ConnId, position: Position) -> Vec<Want> {
        let c = &self.conns[&conn];
        let (thread, key) = (c.thread, Key::User(c.user));
        let s = &self.streams[&key];
        match answer(s, &self.epochs, c.user_from, position) {
            Answer::Resumed => return vec![self.head("resumed", key)],
            Answer::AlreadyLive => return vec![Want::plain("error:already_live")],
            Answer::Replay => {}
        }
        let CatchUp { gap, first } = catch_up(s, &self.epochs, position);
        let s = self.stream(key);
        // A replay after a position reports its own gap; the losses of pending messages it
        // would have been told of are covered by it.
        s.lost.retain(|t, _| !(t.is_none() || *t == thread));
        let mut replayed = Vec::new();
        for k in s.kept.iter_mut() {
            let selected = k.thread.is_none() || k.thread == thread;
            if selected && (k.seq >= first || k.pending) {
                k.pending = false;
                replayed.push(*k);
            }
        }
        let mut frames: Vec<Want> = gap.into_iter().map(|g| self.gap(key, g)).collect();
        frames.extend(replayed.into_iter().map(|k| self.kept(key, k)));
        self.conns.get_mut(&conn).expect("open").user_from = first;
        frames.push(self.head("resumed", key));
        frames
    }

    /// The replay of `room` to a member from `position`: its frames; the member has every
    /// message from the returned sequence number on.
    fn replay_room(&self, room: usize, position: Position) -> (Vec<Want>, u64) {
        let key = Key::Room(room);
        let s = &self.streams[&key];
        let CatchUp { gap, first } = catch_up(s, &self.epochs, position);
        let mut frames: Vec<Want> = gap.into_iter().map(|g| self.gap(key, g)).collect();
        let replayed = s.kept.iter().filter(|k| k.seq >= first);
        frames.extend(replayed.map(|&k| self.kept(key, k)));
        (frames, first)
    }

    /// Distinct (user, thread) pairs with a bound connection.
    fn threads(&self) -> BTreeSet<(usize, usize)> {
        self.conns
            .values()
            .filter_map(|c| c.thread.map(|t| (c.user, t)))
            .collect()
    }
}

// ----- driving both ------------------------------------------------------------------------

fn user_id(user: usize) -> UserId {
    USERS[user].into()
}

fn thread_id(thread: usize) -> ThreadId {
    THREADS[thread].into()
}

/// The test's view of what clients received so far.
#[derive(Debug, Default)]
struct Seen {
    /// Frames of each connection already checked.
    frames: HashMap<ConnId, usize>,
    /// The last message number each connection received live.
    last: HashMap<ConnId, u64>,
    /// Messages a connection received replayed (taken over or resumed), not live.
    replayed: HashSet<(ConnId, u64)>,
    /// Messages published through a user's scope, and that user.
    scoped: HashMap<u64, usize>,
    /// Messages numbered so far (a number is used at most once; some are never published).
    published: u64,
    /// Each connection's position per stream, kept as the client algorithm says (section 7,
    /// step 1) from the frames it read: (incarnation, seq).
    positions: HashMap<(ConnId, Key), (usize, u64)>,
}

/// Run a case (normalized: see [`Case::normalized`]) against the model. The error says which
/// step differed and how.
pub fn run(case: &Case) -> Result<(), String> {
    let limits = &case.limits;
    let config = limits.config();
    let mut h = Harness::new(config.clone());
    let mut m = Model::new(&config, h.now());
    let mut seen = Seen::default();
    for (i, op) in case.ops.iter().enumerate() {
        let mut expect = step(&mut h, &mut m, &mut seen, limits, op)
            .map_err(|e| format!("step {i} {op:?}: {e}"))?;
        defer(&mut m, &mut expect);
        check_frames(&h, &mut m, &mut seen, &expect)
            .map_err(|e| format!("step {i} {op:?}: {e}"))?;
        check_state(&h, &m, limits).map_err(|e| format!("after step {i} {op:?}: {e}"))?;
    }

    for conn in m.open() {
        h.drop_connection(conn);
        m.remove(conn);
    }
    check_state(&h, &m, limits)?;
    h.advance(config.history.max_age + 2 * config.cleanup_interval);
    let stats = h.hub().stats();
    ensure!(h.hub().is_idle(), "state left behind: {stats:?}");
    let zero = Stats {
        counters: stats.counters.clone(),
        ..Stats::default()
    };
    ensure_eq!(stats, zero, "gauges once everyone left");
    Ok(())
}

/// Frames for connections that do not read wait until they read again; those of a connection
/// that closed without reading them are never read.
fn defer(m: &mut Model, expect: &mut Expect) {
    let deaf: Vec<ConnId> = expect
        .frames
        .keys()
        .filter(|c| m.deaf.contains(c))
        .copied()
        .collect();
    for conn in deaf {
        let frames = expect.frames.remove(&conn).unwrap_or_default();
        if m.conns.contains_key(&conn) {
            m.backlog.entry(conn).or_default().extend(frames);
        }
    }
}

/// The position a `resume` frame from `conn` gives for `key`'s stream: one the client knows
/// (the last it read, or the epoch of the stream's incarnation once a client read it), or, for
/// an incarnation no client read a frame of, an epoch it certainly does not have.
fn position_for(m: &Model, seen: &Seen, conn: ConnId, key: Key, from: &Since) -> Position {
    let current = m.streams.get(&key);
    let inc = current.map(|s| s.inc);
    let stale = m.epochs.other_than(inc);
    let epoch = inc.and_then(|i| m.epochs.get(i)).unwrap_or(stale);
    let zero = Position { epoch, seq: 0 };
    match from {
        Since::Last => seen
            .positions
            .get(&(conn, key))
            .map_or(zero, |&(inc, seq)| Position {
                epoch: m.epochs.get(inc).expect("read from a frame"),
                seq,
            }),
        Since::Zero => zero,
        Since::OtherEpoch => Position {
            epoch: stale,
            seq: 0,
        },
        Since::Ahead => Position {
            epoch,
            seq: current.map_or(0, |s| s.head) + 1,
        },
    }
}
