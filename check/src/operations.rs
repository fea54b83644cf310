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

// ----- the case ----------------------------------------------------------------------------

/// The limits and history bound a case runs with (small, so that sequences reach them).
#[derive(Debug, Clone, Arbitrary)]
pub struct Limits {
    /// Messages history keeps per stream (1 to 16).
    pub history: u8,
    /// Connections per user (1 to 3).
    pub per_user: u8,
    /// Past `per_user`, evict the oldest connection instead of refusing the new one.
    pub evict_oldest: bool,
    /// Connections in the hub (3 to 8).
    pub max_connections: u8,
    /// Rooms per connection (1 to 3).
    pub rooms_per_connection: u8,
    /// Members per room (1 to 4).
    pub members_per_room: u8,
}

impl Limits {
    fn normalized(&self) -> Limits {
        Limits {
            history: 1 + self.history % 16,
            per_user: 1 + self.per_user % 3,
            evict_oldest: self.evict_oldest,
            max_connections: 3 + self.max_connections % 6,
            rooms_per_connection: 1 + self.rooms_per_connection % 3,
            members_per_room: 1 + self.members_per_room % 4,
        }
    }

    /// The hub's configuration for these limits.
    pub fn config(&self) -> Config {
        let mut config = Config::development();
        let limits = &mut config.limits;
        limits.max_connections_per_user = usize::from(self.per_user);
        limits.user_limit_policy = if self.evict_oldest {
            UserLimitPolicy::EvictOldest
        } else {
            UserLimitPolicy::RejectNew
        };
        limits.max_connections = usize::from(self.max_connections);
        limits.max_rooms_per_connection = usize::from(self.rooms_per_connection);
        limits.max_members_per_room = usize::from(self.members_per_room);
        // Refused joins take strikes and client frames count against the rate limit; neither
        // is what this model is about, so both budgets are out of reach.
        limits.max_strikes = 1_000_000;
        limits.message_burst = 1_000_000;
        config.history.max_messages = usize::from(self.history);
        config.history.max_age = MAX_AGE;
        // The model keeps every history by count only.
        config.history.empty_room_max_age = MAX_AGE;
        config
    }
}

/// Who a hub-level publish is for.
#[derive(Debug, Clone, Arbitrary)]
pub enum To {
    /// A connection picked among every connection ever opened (possibly closed).
    Connection(u8),
    /// A user.
    User(u8),
    /// A room.
    Room(u8),
    /// A user's thread.
    Thread(u8, u8),
    /// Everyone.
    All,
}

/// How a connection's thread is changed.
#[derive(Debug, Clone, Arbitrary)]
pub enum BindBy {
    /// A `bind` frame from the client.
    Frame,
    /// `Hub::update_connection_thread`.
    Hub,
    /// `UserScope::update_connection_thread` of this user (maybe not the owner).
    Scope(u8),
}

/// What is done through a user's scope.
#[derive(Debug, Clone, Arbitrary)]
pub enum Scoped {
    /// `UserScope::publish`.
    Publish,
    /// `UserScope::publish_to_thread`.
    Thread(u8),
    /// `UserScope::send_to_connection`, to a connection picked among every one ever opened.
    Send(u8),
}

/// One stream named in a `resume` frame.
#[derive(Debug, Clone, Arbitrary)]
pub enum Resumed {
    /// The connection's own user stream.
    Own,
    /// A user's stream (another user's is forbidden).
    User(u8),
    /// A room's stream (one the connection is not in is joined).
    Room(u8),
    /// Not a stream: the whole frame is `invalid_frame`.
    Invalid,
}

/// The position a `resume` frame gives for a stream.
#[derive(Debug, Clone, Arbitrary)]
pub enum Since {
    /// The last position the client read on that stream (zero if none).
    Last,
    /// Sequence 0 of the stream's epoch.
    Zero,
    /// A position in an epoch the stream does not have.
    OtherEpoch,
    /// Beyond the stream's head.
    Ahead,
}

/// One operation.
#[derive(Debug, Clone, Arbitrary)]
pub enum Op {
    /// Open a connection of a user, on a thread or not.
    Open {
        /// The user.
        user: u8,
        /// The thread.
        thread: Option<u8>,
    },
    /// Close an open connection: by the peer, or by the application (1000).
    Close {
        /// The connection, among the open ones.
        conn: u8,
        /// By the application rather than the peer.
        by_app: bool,
    },
    /// `UserScope::disconnect`: every connection of the user, with 4002.
    Disconnect {
        /// The user.
        user: u8,
    },
    /// Join a room, by client frame or on the server's initiative.
    Join {
        /// The connection, among the open ones.
        conn: u8,
        /// The room.
        room: u8,
        /// `Hub::join_room` rather than a `join` frame.
        by_server: bool,
    },
    /// Leave a room, by client frame or on the server's initiative.
    Leave {
        /// The connection, among the open ones.
        conn: u8,
        /// The room.
        room: u8,
        /// `Hub::leave_room` rather than a `leave` frame.
        by_server: bool,
    },
    /// Bind a connection (picked among every connection ever opened) to a thread or unbind it.
    Bind {
        /// The connection.
        conn: u8,
        /// The thread, or none.
        thread: Option<u8>,
        /// How.
        by: BindBy,
    },
    /// The application publishes.
    Publish {
        /// To whom.
        to: To,
        /// Connections left out, picked among every connection ever opened.
        except: Vec<u8>,
        /// In the lossy lane.
        ephemeral: bool,
    },
    /// A client's `publish` frame to a room.
    ClientPublish {
        /// The connection, among the open ones.
        conn: u8,
        /// The room.
        room: u8,
    },
    /// A call through a user's scope.
    Scope {
        /// The user.
        user: u8,
        /// The call.
        what: Scoped,
    },
    /// A `resume` frame listing streams with positions.
    Resume {
        /// The connection, among the open ones.
        conn: u8,
        /// The streams, in order.
        streams: Vec<(Resumed, Since)>,
    },
    /// A client stops or resumes reading its socket.
    Reading {
        /// The connection, among the open ones.
        conn: u8,
        /// Reading or not.
        reading: bool,
    },
    /// The clock moves.
    Tick {
        /// Milliseconds.
        ms: u16,
    },
}

/// A generated case: limits and operations.
#[derive(Debug, Clone, Arbitrary)]
pub struct Case {
    /// The limits.
    pub limits: Limits,
    /// The operations.
    pub ops: Vec<Op>,
}

impl Case {
    /// Every index reduced into range, at most [`MAX_OPS`] operations, ticks at most
    /// [`MAX_TICK_MS`]. A case generated within range is unchanged.
    pub fn normalized(&self) -> Case {
        let n = |v: u8, len: usize| (usize::from(v) % len) as u8;
        let user = |u: u8| n(u, USERS.len());
        let room = |r: u8| n(r, ROOMS.len());
        let thread = |t: u8| n(t, THREADS.len());
        let pick = |p: u8| p % PICK;
        let ops = self.ops.iter().take(MAX_OPS).map(|op| match op.clone() {
            Op::Open { user: u, thread: t } => Op::Open {
                user: user(u),
                thread: t.map(thread),
            },
            Op::Close { conn, by_app } => Op::Close {
                conn: pick(conn),
                by_app,
            },
            Op::Disconnect { user: u } => Op::Disconnect { user: user(u) },
            Op::Join {
                conn,
                room: r,
                by_server,
            } => Op::Join {
                conn: pick(conn),
                room: room(r),
                by_server,
            },
            Op::Leave {
                conn,
                room: r,
                by_server,
            } => Op::Leave {
                conn: pick(conn),
                room: room(r),
                by_server,
            },
            Op::Bind {
                conn,
                thread: t,
                by,
            } => Op::Bind {
                conn: pick(conn),
                thread: t.map(thread),
                by: match by {
                    BindBy::Scope(u) => BindBy::Scope(user(u)),
                    by => by,
                },
            },
            Op::Publish {
                to,
                except,
                ephemeral,
            } => Op::Publish {
                to: match to {
                    To::Connection(p) => To::Connection(pick(p)),
                    To::User(u) => To::User(user(u)),
                    To::Room(r) => To::Room(room(r)),
                    To::Thread(u, t) => To::Thread(user(u), thread(t)),
                    To::All => To::All,
                },
                except: except.into_iter().take(2).map(pick).collect(),
                ephemeral,
            },
            Op::ClientPublish { conn, room: r } => Op::ClientPublish {
                conn: pick(conn),
                room: room(r),
            },
            Op::Scope { user: u, what } => Op::Scope {
                user: user(u),
                what: match what {
                    Scoped::Publish => Scoped::Publish,
                    Scoped::Thread(t) => Scoped::Thread(thread(t)),
                    Scoped::Send(p) => Scoped::Send(pick(p)),
                },
            },
            Op::Resume { conn, streams } => Op::Resume {
                conn: pick(conn),
                streams: streams
                    .into_iter()
                    .take(3)
                    .map(|(s, from)| {
                        let s = match s {
                            Resumed::User(u) => Resumed::User(user(u)),
                            Resumed::Room(r) => Resumed::Room(room(r)),
                            s => s,
                        };
                        (s, from)
                    })
                    .collect(),
            },
            Op::Reading { conn, reading } => Op::Reading {
                conn: pick(conn),
                reading,
            },
            Op::Tick { ms } => Op::Tick {
                ms: ms % (MAX_TICK_MS + 1),
            },
        });
        Case {
            limits: self.limits.normalized(),
            ops: ops.collect(),
        }
    }
}

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

/// Apply `op` to the hub and to the model; returns what the step must deliver.
fn step(
    h: &mut Harness,
    m: &mut Model,
    seen: &mut Seen,
    limits: &Limits,
    op: &Op,
) -> Result<Expect, String> {
    let mut expect = Expect::default();
    match *op {
        Op::Open { user, thread } => {
            let (user, thread) = (usize::from(user), thread.map(usize::from));
            let mut open = Open::new(USERS[user]);
            if let Some(t) = thread {
                open = open.thread(THREADS[t]);
            }
            let result = h.open(open);
            // The per-user limit first: refuse, or evict the oldest; then the hub's limit.
            let at_limit = m.user_conns(user).len() >= usize::from(limits.per_user);
            if at_limit && limits.evict_oldest {
                let oldest = m.user_conns(user)[0];
                ensure_eq!(h.closed(oldest), Some((4001, Reason::Evicted)), "eviction");
                m.remove(oldest);
            }
            let predicted = if at_limit && !limits.evict_oldest {
                Err(OpenError::UserLimit)
            } else if m.conns.len() >= usize::from(limits.max_connections) {
                Err(OpenError::ServerFull)
            } else {
                Ok(())
            };
            match (result, predicted) {
                (Ok(conn), Ok(())) => {
                    ensure!(!m.ever.contains(&conn), "{conn:?} was handed out before");
                    m.add(conn, user, thread);
                    expect.frame(conn, "welcome");
                    let (gap, taken) = m.take_pending(user, thread);
                    if !taken.is_empty() {
                        let head = m.streams[&user].head;
                        m.conns.get_mut(&conn).expect("open").user_from = head + 1;
                    }
                    let frames = gap.into_iter().chain(taken.into_iter().map(event));
                    expect.replay(seen, conn, frames.collect());
                }
                (Err(e), Err(p)) => ensure_eq!(e, p, "refusal"),
                (result, predicted) => {
                    return Err(format!("open: hub {result:?}, model {predicted:?}"))
                }
            }
        }
        Op::Close { conn, by_app } => {
            if let Some(conn) = m.pick_open(conn) {
                if by_app {
                    let r = h.with_hub(|hub, _| hub.close_connection(conn, Reason::Normal));
                    ensure!(r.is_ok(), "close refused: {r:?}");
                    ensure_eq!(h.closed(conn), Some((1000, Reason::Normal)), "close code");
                } else {
                    h.drop_connection(conn);
                }
                m.remove(conn);
            }
        }
        Op::Disconnect { user } => {
            let user = usize::from(user);
            let conns = m.user_conns(user).to_vec();
            let closed = h.with_hub(|hub, _| hub.scope(USERS[user]).disconnect());
            ensure_eq!(closed, conns.len(), "connections disconnected");
            for conn in conns {
                ensure_eq!(h.closed(conn), Some((4002, Reason::Disconnected)), "close");
                m.remove(conn);
            }
        }
        Op::Join {
            conn,
            room,
            by_server,
        } => {
            let Some(conn) = m.pick_open(conn) else {
                return Ok(expect);
            };
            let room = usize::from(room);
            let already = m.conns[&conn].rooms.contains_key(&room);
            let refusal = join_refusal(m, limits, conn, room);
            if by_server {
                let r = h.with_hub(|hub, now| hub.join_room(now, conn, &ROOMS[room].into()));
                ensure_eq!(r.err(), refusal.clone(), "join_room");
                if refusal.is_none() && !already {
                    expect.frame(conn, "joined");
                }
            } else {
                h.send(
                    conn,
                    &json!({"type": "join", "room": ROOMS[room]}).to_string(),
                );
                expect.frame(conn, refusal_label(&refusal).unwrap_or("joined"));
            }
            if refusal.is_none() && !already {
                m.join(conn, room);
            }
        }
        Op::Leave {
            conn,
            room,
            by_server,
        } => {
            let Some(conn) = m.pick_open(conn) else {
                return Ok(expect);
            };
            let room = usize::from(room);
            let member = m.conns[&conn].rooms.contains_key(&room);
            if by_server {
                let r = h.with_hub(|hub, _| hub.leave_room(conn, &ROOMS[room].into()));
                ensure_eq!(r.err(), (!member).then_some(RoomError::NotMember), "leave");
                if member {
                    expect.frame(conn, "left");
                }
            } else {
                h.send(
                    conn,
                    &json!({"type": "leave", "room": ROOMS[room]}).to_string(),
                );
                expect.frame(conn, if member { "left" } else { "error:not_member" });
            }
            if member {
                m.conns.get_mut(&conn).expect("open").rooms.remove(&room);
                m.remove_member(room, conn);
            }
        }
        Op::Bind {
            conn,
            thread,
            ref by,
        } => {
            let Some(conn) = m.pick_ever(conn) else {
                return Ok(expect);
            };
            let thread = thread.map(usize::from);
            let open = m.conns.contains_key(&conn);
            let new = thread.map(thread_id);
            let allowed = match *by {
                BindBy::Frame => {
                    if !open {
                        return Ok(expect);
                    }
                    let frame =
                        json!({"type": "bind", "thread": new.as_ref().map(ThreadId::as_str)});
                    h.send(conn, &frame.to_string());
                    true
                }
                BindBy::Hub => {
                    let r = h.with_hub(|hub, _| hub.update_connection_thread(conn, new));
                    ensure_eq!(r.is_ok(), open, "update_connection_thread");
                    open
                }
                BindBy::Scope(user) => {
                    let user = usize::from(user);
                    let r = h.with_hub(|hub, _| {
                        hub.scope(USERS[user]).update_connection_thread(conn, new)
                    });
                    let owned = m.owns(user, conn);
                    ensure_eq!(r.is_ok(), owned, "a scope rebinds only its own connections");
                    owned
                }
            };
            if allowed {
                let c = m.conns.get_mut(&conn).expect("open");
                let changed = c.thread != thread;
                c.thread = thread;
                let user = c.user;
                expect.frame(conn, "bound");
                if changed {
                    let (gap, taken) = m.take_pending(user, thread);
                    let frames = gap.into_iter().chain(taken.into_iter().map(event));
                    expect.replay(seen, conn, frames.collect());
                }
            }
        }
        Op::Publish {
            ref to,
            ref except,
            ephemeral,
        } => {
            seen.published += 1;
            let n = seen.published;
            let except: Vec<ConnId> = except.iter().filter_map(|&p| m.pick_ever(p)).collect();
            let (target, reached, pending): (Target, Vec<ConnId>, bool) = match *to {
                To::Connection(p) => {
                    let Some(conn) = m.pick_ever(p) else {
                        return Ok(expect);
                    };
                    let open = m.conns.contains_key(&conn);
                    let target = Target::Connection(conn);
                    let r = publish(h, target.except(except.clone()), n, ephemeral);
                    if !open {
                        ensure!(
                            matches!(r, Err(PublishError::UnknownConnection(_))),
                            "a publish to a closed connection: {r:?}"
                        );
                        return Ok(expect);
                    }
                    let reached: Vec<ConnId> =
                        [conn].into_iter().filter(|c| !except.contains(c)).collect();
                    check_delivery(&r, &reached, false)?;
                    expect.message(&reached, n);
                    return Ok(expect);
                }
                To::User(u) => {
                    let u = usize::from(u);
                    let (reached, pending) = m.user_audience(u, None, &except, n, !ephemeral);
                    (Target::User(user_id(u)), reached, pending)
                }
                To::Thread(u, t) => {
                    let (u, t) = (usize::from(u), usize::from(t));
                    let (reached, pending) = m.user_audience(u, Some(t), &except, n, !ephemeral);
                    let target = Target::Thread {
                        user: user_id(u),
                        thread: thread_id(t),
                    };
                    (target, reached, pending)
                }
                To::Room(r) => {
                    let r = usize::from(r);
                    let reached: Vec<ConnId> = m
                        .members(r)
                        .into_iter()
                        .filter(|c| !except.contains(c))
                        .collect();
                    let history = m.history;
                    if let (false, Some(s)) = (ephemeral, m.room_streams.get_mut(&r)) {
                        let seq = s.append(n, history);
                        for c in &reached {
                            let from = m.conns.get_mut(c).expect("open").rooms.get_mut(&r);
                            let from = from.expect("member");
                            if *from == 0 {
                                *from = seq;
                            }
                        }
                    }
                    (Target::Room(ROOMS[r].into()), reached, false)
                }
                To::All => {
                    let open = m.open().into_iter();
                    (
                        Target::All,
                        open.filter(|c| !except.contains(c)).collect(),
                        false,
                    )
                }
            };
            let r = publish(h, target.except(except), n, ephemeral);
            check_delivery(&r, &reached, pending)?;
            expect.message(&reached, n);
        }
        Op::ClientPublish { conn, room } => {
            let Some(conn) = m.pick_open(conn) else {
                return Ok(expect);
            };
            let room = usize::from(room);
            seen.published += 1;
            let n = seen.published;
            let frame =
                json!({"type": "publish", "room": ROOMS[room], "event": event(n), "data": n});
            h.send(conn, &frame.to_string());
            if m.conns[&conn].rooms.contains_key(&room) {
                let others: Vec<ConnId> =
                    m.members(room).into_iter().filter(|c| *c != conn).collect();
                let history = m.history;
                let seq = m
                    .room_streams
                    .get_mut(&room)
                    .expect("a member's room has a stream")
                    .append(n, history);
                for c in &others {
                    let from = m.conns.get_mut(c).expect("open").rooms.get_mut(&room);
                    let from = from.expect("member");
                    if *from == 0 {
                        *from = seq;
                    }
                }
                expect.message(&others, n);
            } else {
                expect.frame(conn, "error:not_member");
            }
        }
        Op::Scope { user, ref what } => {
            let user = usize::from(user);
            seen.published += 1;
            let n = seen.published;
            seen.scoped.insert(n, user);
            let message = Message::new(event(n), json!(n));
            let name = USERS[user];
            match *what {
                Scoped::Publish => {
                    let (reached, pending) = m.user_audience(user, None, &[], n, true);
                    let r = h.with_hub(|hub, now| hub.scope(name).publish(now, &message));
                    check_delivery(&r, &reached, pending)?;
                    expect.message(&reached, n);
                }
                Scoped::Thread(t) => {
                    let t = usize::from(t);
                    let (reached, pending) = m.user_audience(user, Some(t), &[], n, true);
                    let r = h.with_hub(|hub, now| {
                        hub.scope(name)
                            .publish_to_thread(now, thread_id(t), &message)
                    });
                    check_delivery(&r, &reached, pending)?;
                    expect.message(&reached, n);
                }
                Scoped::Send(p) => {
                    let Some(conn) = m.pick_ever(p) else {
                        return Ok(expect);
                    };
                    let r = h.with_hub(|hub, now| {
                        hub.scope(name).send_to_connection(now, conn, &message)
                    });
                    if m.owns(user, conn) {
                        check_delivery(&r, &[conn], false)?;
                        expect.message(&[conn], n);
                    } else {
                        ensure!(
                            matches!(r, Err(PublishError::UnknownConnection(_))),
                            "a scope reached a connection that is not its user's: {r:?}"
                        );
                    }
                }
            }
        }
        Op::Resume { conn, ref streams } => {
            let Some(conn) = m.pick_open(conn) else {
                return Ok(expect);
            };
            resume(h, m, seen, limits, conn, streams, &mut expect)?;
        }
        Op::Reading { conn, reading } => {
            let Some(conn) = m.pick_open(conn) else {
                return Ok(expect);
            };
            h.set_reading(conn, reading);
            if reading {
                m.deaf.remove(&conn);
                for f in m.backlog.remove(&conn).unwrap_or_default() {
                    expect.frame(conn, f);
                }
            } else {
                m.deaf.insert(conn);
            }
        }
        Op::Tick { ms } => h.advance(Duration::from_millis(u64::from(ms))),
    }
    Ok(expect)
}

/// Why `conn` may not join `room`, if it may not (it may if it is in already).
fn join_refusal(m: &Model, limits: &Limits, conn: ConnId, room: usize) -> Option<RoomError> {
    let rooms = &m.conns[&conn].rooms;
    if rooms.contains_key(&room) {
        None
    } else if rooms.len() >= usize::from(limits.rooms_per_connection) {
        Some(RoomError::TooManyRooms)
    } else if m.members(room).len() >= usize::from(limits.members_per_room) {
        Some(RoomError::RoomFull)
    } else {
        None
    }
}

fn refusal_label(refusal: &Option<RoomError>) -> Option<&'static str> {
    match refusal {
        None => None,
        Some(RoomError::TooManyRooms) => Some("error:too_many_rooms"),
        Some(_) => Some("error:room_full"),
    }
}

/// A `resume` frame from `conn` listing `streams`: each answered in order (`docs/PROTOCOL.md`
/// section 7).
fn resume(
    h: &mut Harness,
    m: &mut Model,
    seen: &mut Seen,
    limits: &Limits,
    conn: ConnId,
    streams: &[(Resumed, Since)],
    expect: &mut Expect,
) -> Result<(), String> {
    let own = m.conns[&conn].user;
    let mut entries = Vec::new();
    let mut resolved = Vec::new();
    for (stream, from) in streams {
        let id = match *stream {
            Resumed::Own => StreamId::User(user_id(own)),
            Resumed::User(u) => StreamId::User(user_id(usize::from(u))),
            Resumed::Room(r) => StreamId::Room(ROOMS[usize::from(r)].into()),
            Resumed::Invalid => {
                entries.push(json!({"stream": "thread:t0", "epoch": 1, "seq": 0}));
                continue;
            }
        };
        let p = position_for(h, conn, &id, from);
        entries.push(json!({"stream": id, "epoch": p.epoch, "seq": p.seq}));
        resolved.push((id, p));
    }
    h.send(
        conn,
        &json!({"type": "resume", "streams": entries}).to_string(),
    );
    let too_many = streams.len() > usize::from(limits.rooms_per_connection) + 1;
    if resolved.len() < streams.len() || too_many {
        expect.frame(conn, "error:invalid_frame");
        return Ok(());
    }
    for (id, p) in resolved {
        let current = || h.hub().stream_position(&id).unwrap_or_default();
        match &id {
            StreamId::User(u) if *u == user_id(own) => {
                let frames = m.resume_user(conn, p, current());
                expect.replay(seen, conn, frames);
            }
            StreamId::User(_) => expect.frame(conn, "error:forbidden"),
            StreamId::Room(r) => {
                let room = ROOMS.iter().position(|x| *x == r.as_str()).expect("a room");
                if let Some(&from) = m.conns[&conn].rooms.get(&room) {
                    match standing(from, p, current()) {
                        Standing::UpToDate => expect.frame(conn, "resumed"),
                        Standing::Behind => expect.frame(conn, "error:already_live"),
                        Standing::Fresh => {
                            let (frames, from) = m.replay_room(room, p, current());
                            set_room_from(m, conn, room, from);
                            expect.replay(seen, conn, frames);
                            expect.frame(conn, "resumed");
                        }
                    }
                } else if let Some(refusal) = refusal_label(&join_refusal(m, limits, conn, room)) {
                    expect.frame(conn, refusal);
                } else {
                    m.join(conn, room);
                    expect.frame(conn, "joined");
                    let (frames, from) = m.replay_room(room, p, current());
                    set_room_from(m, conn, room, from);
                    expect.replay(seen, conn, frames);
                }
            }
        }
    }
    Ok(())
}

fn set_room_from(m: &mut Model, conn: ConnId, room: usize, from: u64) {
    let rooms = &mut m.conns.get_mut(&conn).expect("open").rooms;
    *rooms.get_mut(&room).expect("member") = from;
}

/// Publish the `n`th message at the harness's time.
fn publish(
    h: &mut Harness,
    to: Audience,
    n: u64,
    ephemeral: bool,
) -> Result<Delivery, PublishError> {
    let mut message = Message::new(event(n), json!(n));
    if ephemeral {
        message = message.ephemeral("state");
    }
    h.with_hub(|hub, now| hub.publish(now, to, &message))
}

/// The delivery reports the model's count, and whether the message is pending.
fn check_delivery(
    r: &Result<Delivery, PublishError>,
    reached: &[ConnId],
    pending: bool,
) -> Result<(), String> {
    let Ok(delivery) = r else {
        return Err(format!("publish refused: {r:?}"));
    };
    ensure_eq!(delivery.reached, reached.len(), "Delivery::reached");
    ensure_eq!(delivery.buffered, pending, "Delivery::buffered");
    Ok(())
}

/// Every connection received exactly what the step predicts, live messages in publish order,
/// and a scoped publish reached only its user's connections.
fn check_frames(h: &Harness, m: &Model, seen: &mut Seen, expect: &Expect) -> Result<(), String> {
    for &conn in &m.ever {
        let frames = h.frames(conn);
        let from = seen.frames.insert(conn, frames.len()).unwrap_or(0);
        let new = &frames[from..];
        let labels: Vec<String> = new.iter().map(label).collect();
        for frame in new.iter().filter(|f| f["type"] == "message") {
            let n: u64 = frame["event"].as_str().unwrap_or_default()[1..]
                .parse()
                .map_err(|e| format!("not p<n>: {e}"))?;
            if let Some(&user) = seen.scoped.get(&n) {
                ensure_eq!(
                    &h.client(conn).user,
                    &user_id(user),
                    "a message published through {}'s scope reached {:?}",
                    USERS[user],
                    conn
                );
            }
            if !seen.replayed.contains(&(conn, n)) {
                let last = seen.last.insert(conn, n).unwrap_or(0);
                ensure!(last < n, "{conn:?} received p{n} after p{last}");
            }
        }
        let expected = expect.frames.get(&conn).cloned().unwrap_or_default();
        ensure_eq!(labels, expected, "frames of {:?}", conn);
    }
    Ok(())
}

/// The hub's users, connections, threads, rooms and gauges equal the model's, within limits.
fn check_state(h: &Harness, m: &Model, limits: &Limits) -> Result<(), String> {
    let hub = h.hub();
    ensure!(
        hub.connection_count() <= usize::from(limits.max_connections),
        "past max_connections"
    );
    ensure_eq!(hub.connection_count(), m.conns.len(), "connections");
    let users: BTreeSet<UserId> = hub.users().cloned().collect();
    let model_users: BTreeSet<UserId> = m.users.keys().map(|&u| user_id(u)).collect();
    ensure_eq!(users, model_users, "users");
    for (u, name) in USERS.iter().enumerate() {
        let conns = hub.user_connections(&(*name).into());
        ensure!(
            conns.len() <= usize::from(limits.per_user),
            "{} has {} connections",
            name,
            conns.len()
        );
        ensure_eq!(conns, m.user_conns(u), "connections of {}", name);
        for (t, thread) in THREADS.iter().enumerate() {
            let bound: BTreeSet<ConnId> = hub
                .thread_connections(&(*name).into(), &(*thread).into())
                .into_iter()
                .collect();
            let model: BTreeSet<ConnId> = m
                .user_conns(u)
                .iter()
                .copied()
                .filter(|c| m.conns[c].thread == Some(t))
                .collect();
            ensure_eq!(bound, model, "{}'s connections on {}", name, thread);
        }
    }
    for &conn in &m.ever {
        let info = hub.connection_info(conn);
        match m.conns.get(&conn) {
            Some(c) => {
                let info = info.ok_or_else(|| format!("{conn:?} not open in the hub"))?;
                ensure!(h.closed(conn).is_none(), "{conn:?} was closed");
                ensure_eq!(&info.user, &user_id(c.user), "user of {:?}", conn);
                ensure_eq!(info.thread, c.thread.map(thread_id), "thread of {:?}", conn);
                ensure!(
                    info.rooms.len() <= usize::from(limits.rooms_per_connection),
                    "past max_rooms_per_connection"
                );
                let rooms: BTreeSet<String> =
                    info.rooms.iter().map(|r| r.as_str().to_owned()).collect();
                let model: BTreeSet<String> =
                    c.rooms.keys().map(|&r| ROOMS[r].to_owned()).collect();
                ensure_eq!(rooms, model, "rooms of {:?}", conn);
            }
            None => ensure!(info.is_none(), "{conn:?} should be closed"),
        }
    }
    for (r, room) in ROOMS.iter().enumerate() {
        let members: BTreeSet<ConnId> = hub.room_members(&(*room).into()).into_iter().collect();
        ensure!(
            members.len() <= usize::from(limits.members_per_room),
            "past max_members_per_room"
        );
        let model: BTreeSet<ConnId> = m.members(r).into_iter().collect();
        ensure_eq!(members, model, "members of {}", room);
        let stream = hub.stream_position(&StreamId::Room((*room).into()));
        let model = m.room_streams.get(&r).map(|s| s.head);
        ensure_eq!(stream.map(|p| p.seq), model, "stream of {}", room);
    }
    let stats = hub.stats();
    ensure_eq!(stats.connections, m.conns.len(), "stats.connections");
    ensure_eq!(stats.users, m.users.len(), "stats.users");
    ensure_eq!(stats.rooms, m.rooms.len(), "stats.rooms");
    ensure_eq!(stats.threads, m.threads().len(), "stats.threads");
    ensure_eq!(
        stats,
        hub.recounted_stats(),
        "gauges kept against a recount"
    );
    Ok(())
}
