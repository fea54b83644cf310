//! A reference model of the hub's routing, checked against the real hub under arbitrary
//! sequences of operations: the body of the `operations` fuzz target and of the property test
//! `tests/model.rs`.
//!
//! The model is a few plain maps: the open connections of each user (oldest first), the thread,
//! the rooms and the reading state of each connection, the members of each room, and each
//! user's and room's stream (sequence numbers, what history keeps, and the user stream's pending
//! messages: reliable messages that no connection selected when they were published, waiting for
//! the first connection that selects them, one that opens or binds to their thread). A sequence
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
//!    `error` with the model's code), every published message that addresses it, the pending
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
//!    says so.
//! 5. **Same state.** The hub's users, connections, threads, rooms and gauges equal the model's,
//!    and every gauge the hub keeps as its state changes equals a recount of that state.
//!
//! At the end everyone closes; once the history has expired and the clean-up sweep has run, the
//! hub holds no state at all (`is_idle`, every gauge zero).
//!
//! The harness's clients answer pings, so the heartbeat never closes a connection here; the
//! ticks of one sequence add up to less than the history's `max_age`, so history is bounded by
//! count only; and the backpressure budgets are far above what a sequence writes, so a client
//! that does not read is never closed as a slow consumer.

use arbitrary::Arbitrary;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;
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

/// How long history is kept; no sequence's ticks add up to it.
const MAX_AGE: Duration = Duration::from_secs(600);
const _: () = assert!(MAX_OPS as u64 * MAX_TICK_MS as u64 <= MAX_AGE.as_secs() * 1000);

mod case;
mod checks;
mod step;

pub use case::{BindBy, Case, Limits, Op, Resumed, Scoped, Since, To};
use checks::{check_frames, check_state};
use step::step;

// ----- the model ---------------------------------------------------------------------------

#[derive(Debug)]
struct Conn {
    user: usize,
    thread: Option<usize>,
    /// The rooms it is in, each with the first sequence number it has every message from
    /// (0: no message of the room reached it yet).
    rooms: BTreeMap<usize, u64>,
    /// The same on its user stream.
    user_from: u64,
}

/// One message kept in a user stream's history.
#[derive(Debug, Clone, Copy)]
struct Kept {
    seq: u64,
    /// The thread it is for (none: every connection of the user).
    thread: Option<usize>,
    /// The message's number.
    n: u64,
    /// Published while no connection selected it, and not taken yet.
    pending: bool,
}

/// What the model needs of a user's stream.
#[derive(Debug, Default)]
struct UserStream {
    /// The last sequence number given.
    head: u64,
    /// What history keeps, oldest first.
    kept: Vec<Kept>,
    /// Per thread, the first pending message that history dropped before a connection took it.
    lost: BTreeMap<Option<usize>, u64>,
}

/// What the model needs of a room's stream: the head and the messages history keeps.
#[derive(Debug, Default)]
struct RoomStream {
    head: u64,
    /// (sequence number, message number), oldest first.
    kept: Vec<(u64, u64)>,
}

/// The oldest sequence number a history of `history` messages keeps at `head` (the next one if
/// it keeps none).
fn oldest(head: u64, history: u64) -> u64 {
    (head + 1).saturating_sub(history).max(1)
}

/// A gap and the first sequence number a reader at `position` can still receive, for a stream
/// at `current` whose history starts at `oldest` (the hub's rule, `docs/PROTOCOL.md` section 7).
fn catch_up(position: Position, current: Position, oldest: u64) -> (Option<String>, u64) {
    if position.epoch != current.epoch || position.seq > current.seq {
        (Some(format!("gap:epoch:1-{}", oldest - 1)), 1)
    } else if position.seq + 1 < oldest {
        let gap = format!("gap:history:{}-{}", position.seq + 1, oldest - 1);
        (Some(gap), oldest)
    } else {
        (None, position.seq + 1)
    }
}

/// Where a connection stands on a stream it asks to resume from `position`.
enum Standing {
    /// Nothing delivered on the stream yet: replay.
    Fresh,
    /// Nothing missing: just `resumed`.
    UpToDate,
    /// Live messages flowed and the position is older: `already_live`.
    Behind,
}

fn standing(from: u64, position: Position, current: Position) -> Standing {
    if from == 0 {
        Standing::Fresh
    } else if position.epoch == current.epoch && position.seq + 1 >= from {
        Standing::UpToDate
    } else {
        Standing::Behind
    }
}

/// The reference: users, connections, rooms, threads and streams in plain maps.
#[derive(Debug, Default)]
struct Model {
    /// Messages history keeps per stream.
    history: u64,
    /// Open connections of each user, oldest first (absent: none).
    users: HashMap<usize, Vec<ConnId>>,
    conns: HashMap<ConnId, Conn>,
    /// Members of each room (absent: none).
    rooms: HashMap<usize, BTreeSet<ConnId>>,
    /// The stream of each user.
    streams: HashMap<usize, UserStream>,
    /// The streams of rooms the hub keeps.
    room_streams: HashMap<usize, RoomStream>,
    /// Every connection ever opened, in order.
    ever: Vec<ConnId>,
    /// Connections that do not read (open or closed).
    deaf: BTreeSet<ConnId>,
    /// Frames written to open connections that do not read, in order.
    backlog: BTreeMap<ConnId, Vec<String>>,
}

impl UserStream {
    fn oldest(&self, history: u64) -> u64 {
        oldest(self.head, history)
    }

    /// Append message `n`, then let history drop what it no longer keeps.
    fn append(&mut self, n: u64, thread: Option<usize>, pending: bool, history: u64) -> u64 {
        self.head += 1;
        self.kept.push(Kept {
            seq: self.head,
            thread,
            n,
            pending,
        });
        let oldest = self.oldest(history);
        let lost = &mut self.lost;
        self.kept.retain(|k| {
            if k.seq < oldest && k.pending {
                lost.entry(k.thread).or_insert(k.seq);
            }
            k.seq >= oldest
        });
        self.head
    }
}

impl RoomStream {
    fn append(&mut self, n: u64, history: u64) -> u64 {
        self.head += 1;
        self.kept.push((self.head, n));
        let oldest = oldest(self.head, history);
        self.kept.retain(|&(seq, _)| seq >= oldest);
        self.head
    }
}

impl Model {
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

    fn add(&mut self, id: ConnId, user: usize, thread: Option<usize>) {
        self.users.entry(user).or_default().push(id);
        self.conns.insert(
            id,
            Conn {
                user,
                thread,
                rooms: BTreeMap::new(),
                user_from: 0,
            },
        );
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
        }
        self.backlog.remove(&id);
    }

    /// `id` leaves `room`; a room stream with no member and no message is dropped.
    fn remove_member(&mut self, room: usize, id: ConnId) {
        let members = self.rooms.get_mut(&room).expect("member of the room");
        members.remove(&id);
        if members.is_empty() {
            self.rooms.remove(&room);
            if self.room_streams.get(&room).is_some_and(|s| s.head == 0) {
                self.room_streams.remove(&room);
            }
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
        self.room_streams.entry(room).or_default();
    }

    /// The connections that the `n`th message, to `user` (on `thread` if any) except `except`,
    /// reaches, and whether it is pending: reliable, and no connection of the user selects it
    /// (a message whose except-set left out every connection that selects it is not pending).
    fn user_audience(
        &mut self,
        user: usize,
        thread: Option<usize>,
        except: &[ConnId],
        n: u64,
        reliable: bool,
    ) -> (Vec<ConnId>, bool) {
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
        if reliable {
            let history = self.history;
            let seq = self
                .streams
                .entry(user)
                .or_default()
                .append(n, thread, pending, history);
            for c in &reached {
                let conn = self.conns.get_mut(c).expect("open");
                if conn.user_from == 0 {
                    conn.user_from = seq;
                }
            }
        }
        (reached, pending)
    }

    /// What a connection of `user` on `thread` that just opened or bound receives: the `gap`
    /// (from, to) of the pending messages it would have received that history dropped, then
    /// the pending messages it selects, which it takes over (they are no longer pending).
    fn take_pending(&mut self, user: usize, thread: Option<usize>) -> (Option<String>, Vec<u64>) {
        let history = self.history;
        let s = self.streams.entry(user).or_default();
        let unthreaded = s.lost.remove(&None);
        let threaded = thread.and_then(|t| s.lost.remove(&Some(t)));
        let oldest = s.oldest(history);
        let gap = unthreaded
            .into_iter()
            .chain(threaded)
            .min()
            .map(|from| format!("gap:history:{from}-{}", oldest - 1));
        let mut taken = Vec::new();
        for k in s.kept.iter_mut() {
            if k.pending && (k.thread.is_none() || k.thread == thread) {
                k.pending = false;
                taken.push(k.n);
            }
        }
        (gap, taken)
    }

    /// A `resume` of `conn`'s own user stream from `position`, the stream being at `current`:
    /// the frames it answers with, and the messages it replays.
    fn resume_user(&mut self, conn: ConnId, position: Position, current: Position) -> Vec<String> {
        let history = self.history;
        let c = &self.conns[&conn];
        let (user, thread) = (c.user, c.thread);
        match standing(c.user_from, position, current) {
            Standing::UpToDate => return vec!["resumed".into()],
            Standing::Behind => return vec!["error:already_live".into()],
            Standing::Fresh => {}
        }
        let s = self.streams.entry(user).or_default();
        // A replay with a position reports its own gap; losses of pending messages it would
        // have announced are covered by it.
        s.lost.remove(&None);
        if let Some(t) = thread {
            s.lost.remove(&Some(t));
        }
        let (gap, from) = catch_up(position, current, s.oldest(history));
        let mut frames: Vec<String> = gap.into_iter().collect();
        for k in s.kept.iter_mut() {
            if (k.seq >= from || k.pending) && (k.thread.is_none() || k.thread == thread) {
                k.pending = false;
                frames.push(event(k.n));
            }
        }
        self.conns.get_mut(&conn).expect("open").user_from = from;
        frames.push("resumed".into());
        frames
    }

    /// The replay of `room` to a member from `position` (the stream being at `current`): its
    /// frames; the member has every message from the returned sequence number on.
    fn replay_room(
        &self,
        room: usize,
        position: Position,
        current: Position,
    ) -> (Vec<String>, u64) {
        let s = &self.room_streams[&room];
        let (gap, from) = catch_up(position, current, oldest(s.head, self.history));
        let mut frames: Vec<String> = gap.into_iter().collect();
        frames.extend(
            s.kept
                .iter()
                .filter(|&&(seq, _)| seq >= from)
                .map(|&(_, n)| event(n)),
        );
        (frames, from)
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

/// What one step must produce.
#[derive(Debug, Default)]
struct Expect {
    /// The labels of the frames each connection receives in this step (absent: none).
    frames: BTreeMap<ConnId, Vec<String>>,
}

impl Expect {
    fn frame(&mut self, conn: ConnId, label: impl Into<String>) {
        self.frames.entry(conn).or_default().push(label.into());
    }

    fn message(&mut self, conns: &[ConnId], n: u64) {
        for &c in conns {
            self.frame(c, event(n));
        }
    }

    /// Frames replayed to `conn`: exempt from the live order (older than what it may have).
    fn replay(&mut self, seen: &mut Seen, conn: ConnId, frames: Vec<String>) {
        for f in frames {
            if let Some(n) = f.strip_prefix('p').and_then(|n| n.parse().ok()) {
                seen.replayed.insert((conn, n));
            }
            self.frame(conn, f);
        }
    }
}

/// The name of the `n`th published message.
fn event(n: u64) -> String {
    format!("p{n}")
}

/// A short label for a frame: the event of a message, `error:<code>`,
/// `gap:<reason>:<from>-<to>`, or the frame's type.
fn label(frame: &Value) -> String {
    match frame["type"].as_str().unwrap_or_default() {
        "message" => frame["event"].as_str().unwrap_or_default().to_owned(),
        "gap" => format!(
            "gap:{}:{}-{}",
            frame["reason"].as_str().unwrap_or_default(),
            frame["from"],
            frame["to"]
        ),
        "error" => format!("error:{}", frame["code"].as_str().unwrap_or_default()),
        kind => kind.to_owned(),
    }
}

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
}

/// Run a case (normalized: see [`Case::normalized`]) against the model. The error says which
/// step differed and how.
pub fn run(case: &Case) -> Result<(), String> {
    let limits = &case.limits;
    let config = limits.config();
    let mut h = Harness::new(config.clone());
    let mut m = Model {
        history: u64::from(limits.history),
        ..Model::default()
    };
    let mut seen = Seen::default();
    for (i, op) in case.ops.iter().enumerate() {
        let mut expect = step(&mut h, &mut m, &mut seen, limits, op)
            .map_err(|e| format!("step {i} {op:?}: {e}"))?;
        defer(&mut m, &mut expect);
        check_frames(&h, &m, &mut seen, &expect).map_err(|e| format!("step {i} {op:?}: {e}"))?;
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

/// The position a `resume` frame gives for `stream`, seen from `conn`.
fn position_for(h: &Harness, conn: ConnId, stream: &StreamId, from: &Since) -> Position {
    let current = h.hub().stream_position(stream).unwrap_or_default();
    match from {
        Since::Last => h
            .client(conn)
            .positions
            .get(stream)
            .copied()
            .unwrap_or(Position {
                epoch: current.epoch,
                seq: 0,
            }),
        Since::Zero => Position {
            epoch: current.epoch,
            seq: 0,
        },
        Since::OtherEpoch => Position {
            epoch: current.epoch + (1 << 32),
            seq: 0,
        },
        Since::Ahead => Position {
            epoch: current.epoch,
            seq: current.seq + 3,
        },
    }
}
