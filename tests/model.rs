//! A reference model of the hub's routing, checked against the real hub under random sequences
//! of operations.
//!
//! The model is a few plain maps: the open connections of each user (oldest first), the thread
//! and the rooms of each connection, the members of each room, and the pending messages of each
//! user (reliable user-stream messages that no connection selected when they were published,
//! waiting for the first connection that selects them: one that opens, or that binds to their
//! thread). A random sequence of operations is applied to the model and to a hub driven by the
//! in-memory harness: open (one of four users, optionally on a thread), close (by the peer or by
//! the application), disconnect a user through its scope, join and leave (by client frame and by
//! the server), bind a thread (by client frame, by `update_connection_thread`, through a user
//! scope), publish to a connection, a user, a room, a user's thread or everyone, reliable or
//! ephemeral, with an except-set; a member's own room publish; publishes through a user's scope;
//! and clock ticks. History is short (1 to 16 messages), so it sometimes drops pending messages.
//!
//! After every step these invariants hold:
//!
//! 1. **Exact delivery.** Every connection received exactly the frames the model predicts for
//!    the step: the reply to its own request (`welcome`, `joined`, `left`, `bound` or an `error`
//!    with the model's code), every published message that addresses it, and the pending
//!    messages it takes over (after a `gap` covering exactly those of them that history dropped
//!    meanwhile), in that order, nothing else. A publish's `Delivery::reached` is the number of
//!    connections the model says it reaches, and `Delivery::buffered` says whether the model
//!    keeps it pending.
//! 2. **Publish order.** Each connection receives the messages delivered to it live in the
//!    order they were published; pending messages it takes over come together, in publish order,
//!    right after its `welcome` or `bound`.
//! 3. **Isolation.** A message published through one user's scope reaches only that user's
//!    connections; a scope cannot send to, rebind, or even see another user's connection.
//! 4. **Limits.** Connections per user, connections in the hub, rooms per connection and members
//!    per room never exceed the configured limits; a request past a limit is refused (or, with
//!    `EvictOldest`, the user's oldest connection is closed with 4001) exactly when the model
//!    says so.
//! 5. **Same state.** The hub's users, connections, threads, rooms and gauges equal the model's.
//!
//! At the end everyone closes; once the history has expired and the clean-up sweep has run, the
//! hub holds no state at all (`is_idle`, every gauge zero).
//!
//! The harness's clients answer pings, so the heartbeat never closes a connection here, and the
//! ticks of one sequence add up to less than the history's `max_age`, so a pending message is
//! still there when a connection comes to take it.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use switchboard::testing::Harness;
use switchboard::{
    Audience, Config, ConnId, Delivery, Message, Open, OpenError, PublishError, Reason, RoomError,
    Stats, Target, ThreadId, UserId, UserLimitPolicy,
};

const USERS: [&str; 4] = ["ana", "ben", "cho", "dan"];
const ROOMS: [&str; 3] = ["r0", "r1", "r2"];
const THREADS: [&str; 2] = ["t0", "t1"];
/// Operations in one generated sequence, at most.
const MAX_OPS: usize = 96;
/// The longest single tick, in milliseconds.
const MAX_TICK_MS: u64 = 5_000;
/// Picks of a connection are taken modulo the candidates; this bounds the raw value.
const PICK: usize = 16;

/// How long history is kept; no sequence's ticks add up to it.
const MAX_AGE: Duration = Duration::from_secs(600);
const _: () = assert!(MAX_OPS as u64 * MAX_TICK_MS < MAX_AGE.as_secs() * 1000);

// ----- the generated case --------------------------------------------------------------------

/// The limits and history bound a case runs with (small, so that sequences reach them).
#[derive(Debug, Clone)]
struct Limits {
    /// Messages history keeps per stream.
    history: usize,
    per_user: usize,
    evict_oldest: bool,
    max_connections: usize,
    rooms_per_connection: usize,
    members_per_room: usize,
}

impl Limits {
    fn config(&self) -> Config {
        let mut config = Config::development();
        let limits = &mut config.limits;
        limits.max_connections_per_user = self.per_user;
        limits.user_limit_policy = if self.evict_oldest {
            UserLimitPolicy::EvictOldest
        } else {
            UserLimitPolicy::RejectNew
        };
        limits.max_connections = self.max_connections;
        limits.max_rooms_per_connection = self.rooms_per_connection;
        limits.max_members_per_room = self.members_per_room;
        // Refused joins take strikes and client frames count against the rate limit; neither
        // is what this model is about, so both budgets are out of reach.
        limits.max_strikes = 1_000_000;
        limits.message_burst = 1_000_000;
        config.history.max_messages = self.history;
        config.history.max_age = MAX_AGE;
        config
    }
}

/// Who a hub-level publish is for.
#[derive(Debug, Clone)]
enum To {
    /// A connection picked among every connection ever opened (possibly closed).
    Connection(usize),
    User(usize),
    Room(usize),
    Thread(usize, usize),
    All,
}

/// How a connection's thread is changed.
#[derive(Debug, Clone)]
enum BindBy {
    /// A `bind` frame from the client.
    Frame,
    /// `Hub::update_connection_thread`.
    Hub,
    /// `UserScope::update_connection_thread` of this user (maybe not the owner).
    Scope(usize),
}

/// What is done through a user's scope.
#[derive(Debug, Clone)]
enum Scoped {
    Publish,
    Thread(usize),
    /// Send to a connection picked among every connection ever opened.
    Send(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Open {
        user: usize,
        thread: Option<usize>,
    },
    /// Close an open connection: by the peer, or by the application (1000).
    Close {
        conn: usize,
        by_app: bool,
    },
    /// `UserScope::disconnect`: every connection of the user, with 4002.
    Disconnect {
        user: usize,
    },
    Join {
        conn: usize,
        room: usize,
        by_server: bool,
    },
    Leave {
        conn: usize,
        room: usize,
        by_server: bool,
    },
    /// Bind a connection (picked among every connection ever opened) to a thread or unbind it.
    Bind {
        conn: usize,
        thread: Option<usize>,
        by: BindBy,
    },
    Publish {
        to: To,
        /// Connections left out, picked among every connection ever opened.
        except: Vec<usize>,
        ephemeral: bool,
    },
    /// A client's `publish` frame to a room.
    ClientPublish {
        conn: usize,
        room: usize,
    },
    Scope {
        user: usize,
        what: Scoped,
    },
    Tick {
        ms: u64,
    },
}

#[derive(Debug, Clone)]
struct Case {
    limits: Limits,
    ops: Vec<Op>,
}

fn limits() -> impl Strategy<Value = Limits> {
    let connections = (1..=3usize, any::<bool>(), 3..=8usize);
    let rooms = (1..=3usize, 1..=4usize);
    (1..=16usize, connections, rooms).prop_map(
        |(history, (per_user, evict_oldest, max_connections), (rooms, members))| Limits {
            history,
            per_user,
            evict_oldest,
            max_connections,
            rooms_per_connection: rooms,
            members_per_room: members,
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    let user = || 0..USERS.len();
    let room = || 0..ROOMS.len();
    let thread = || 0..THREADS.len();
    let pick = || 0..PICK;
    let to = prop_oneof![
        pick().prop_map(To::Connection),
        user().prop_map(To::User),
        room().prop_map(To::Room),
        (user(), thread()).prop_map(|(u, t)| To::Thread(u, t)),
        Just(To::All),
    ];
    let bind_by = prop_oneof![
        Just(BindBy::Frame),
        Just(BindBy::Hub),
        user().prop_map(BindBy::Scope),
    ];
    let scoped = prop_oneof![
        Just(Scoped::Publish),
        thread().prop_map(Scoped::Thread),
        pick().prop_map(Scoped::Send),
    ];
    prop_oneof![
        4 => (user(), prop::option::of(thread())).prop_map(|(user, thread)| Op::Open { user, thread }),
        2 => (pick(), any::<bool>()).prop_map(|(conn, by_app)| Op::Close { conn, by_app }),
        1 => user().prop_map(|user| Op::Disconnect { user }),
        4 => (pick(), room(), any::<bool>())
            .prop_map(|(conn, room, by_server)| Op::Join { conn, room, by_server }),
        2 => (pick(), room(), any::<bool>())
            .prop_map(|(conn, room, by_server)| Op::Leave { conn, room, by_server }),
        2 => (pick(), prop::option::of(thread()), bind_by)
            .prop_map(|(conn, thread, by)| Op::Bind { conn, thread, by }),
        6 => (to, prop::collection::vec(pick(), 0..=2), prop::bool::weighted(0.2))
            .prop_map(|(to, except, ephemeral)| Op::Publish { to, except, ephemeral }),
        2 => (pick(), room()).prop_map(|(conn, room)| Op::ClientPublish { conn, room }),
        3 => (user(), scoped).prop_map(|(user, what)| Op::Scope { user, what }),
        1 => (0..=MAX_TICK_MS).prop_map(|ms| Op::Tick { ms }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (limits(), prop::collection::vec(op(), 1..=MAX_OPS))
        .prop_map(|(limits, ops)| Case { limits, ops })
}

// ----- the model -----------------------------------------------------------------------------

#[derive(Debug)]
struct Conn {
    user: usize,
    thread: Option<usize>,
    rooms: BTreeSet<usize>,
}

/// What the model needs of a user's stream: sequence numbers, what history keeps, and the
/// pending messages.
#[derive(Debug, Default)]
struct UserStream {
    /// The last sequence number given.
    head: u64,
    /// Pending messages: number, thread and sequence number, in publish order.
    pending: Vec<(u64, Option<usize>, u64)>,
    /// Per thread, the first pending message that history dropped before a connection took it.
    lost: BTreeMap<Option<usize>, u64>,
}

/// The reference: users, connections, rooms, threads and pending messages in plain maps.
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
    /// Every connection ever opened, in order.
    ever: Vec<ConnId>,
}

impl UserStream {
    /// The oldest sequence number history keeps (the next one if it keeps none).
    fn oldest(&self, history: u64) -> u64 {
        (self.head + 1).saturating_sub(history).max(1)
    }
}

impl Model {
    /// Open connections, in id order.
    fn open(&self) -> Vec<ConnId> {
        let mut open: Vec<ConnId> = self.conns.keys().copied().collect();
        open.sort_unstable();
        open
    }

    fn pick_open(&self, pick: usize) -> Option<ConnId> {
        let open = self.open();
        (!open.is_empty()).then(|| open[pick % open.len()])
    }

    fn pick_ever(&self, pick: usize) -> Option<ConnId> {
        (!self.ever.is_empty()).then(|| self.ever[pick % self.ever.len()])
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
                rooms: BTreeSet::new(),
            },
        );
        self.ever.push(id);
    }

    fn remove(&mut self, id: ConnId) {
        let conn = self.conns.remove(&id).expect("closing an open connection");
        for room in conn.rooms {
            let members = self.rooms.get_mut(&room).expect("member of the room");
            members.remove(&id);
            if members.is_empty() {
                self.rooms.remove(&room);
            }
        }
        let conns = self.users.get_mut(&conn.user).expect("the user has it");
        conns.retain(|c| *c != id);
        if conns.is_empty() {
            self.users.remove(&conn.user);
        }
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
        if reliable {
            let history = self.history;
            let s = self.streams.entry(user).or_default();
            s.head += 1;
            if pending {
                s.pending.push((n, thread, s.head));
            }
            // History keeps the last `history` messages; a pending one it drops is lost.
            let oldest = s.oldest(history);
            let lost = &mut s.lost;
            s.pending.retain(|&(_, t, seq)| {
                if seq < oldest {
                    lost.entry(t).or_insert(seq);
                }
                seq >= oldest
            });
        }
        let reached = selected
            .into_iter()
            .filter(|c| !except.contains(c))
            .collect();
        (reached, pending)
    }

    /// What a connection of `user` on `thread` that just opened or bound receives: the `gap`
    /// (from, to) of the pending messages it would have received that history dropped, then
    /// the pending messages it selects, which it takes over (they are no longer pending).
    fn take_pending(
        &mut self,
        user: usize,
        thread: Option<usize>,
    ) -> (Option<(u64, u64)>, Vec<u64>) {
        let history = self.history;
        let s = self.streams.entry(user).or_default();
        let unthreaded = s.lost.remove(&None);
        let threaded = thread.and_then(|t| s.lost.remove(&Some(t)));
        let gap = unthreaded
            .into_iter()
            .chain(threaded)
            .min()
            .map(|from| (from, s.oldest(history) - 1));
        let mut taken = Vec::new();
        s.pending.retain(|&(n, t, _)| {
            let selected = t.is_none() || t == thread;
            if selected {
                taken.push(n);
            }
            !selected
        });
        (gap, taken)
    }

    /// Distinct (user, thread) pairs with a bound connection.
    fn threads(&self) -> BTreeSet<(usize, usize)> {
        self.conns
            .values()
            .filter_map(|c| c.thread.map(|t| (c.user, t)))
            .collect()
    }
}

// ----- driving both ----------------------------------------------------------------------------

/// What one step must produce.
#[derive(Debug, Default)]
struct Expect {
    /// The labels of the frames each connection receives in this step (absent: none).
    frames: BTreeMap<ConnId, Vec<String>>,
    /// The scope's user, if the step published through a scope.
    scope: Option<usize>,
    /// Pending messages taken over in this step (older than what their taker may have seen).
    taken: BTreeSet<u64>,
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

    fn take_over(&mut self, conn: ConnId, (gap, taken): (Option<(u64, u64)>, Vec<u64>)) {
        if let Some((from, to)) = gap {
            self.frame(conn, format!("gap:history:{from}-{to}"));
        }
        for n in taken {
            self.frame(conn, event(n));
            self.taken.insert(n);
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
    /// Messages numbered so far (a number is used at most once; some are never published).
    published: u64,
}

fn run(case: &Case) -> Result<(), TestCaseError> {
    let limits = &case.limits;
    let config = limits.config();
    let mut h = Harness::new(config.clone());
    let mut m = Model {
        history: limits.history as u64,
        ..Model::default()
    };
    let mut seen = Seen::default();
    for (i, op) in case.ops.iter().enumerate() {
        let expect = step(&mut h, &mut m, &mut seen, limits, op)
            .map_err(|e| TestCaseError::fail(format!("step {i} {op:?}: {e}")))?;
        check_frames(&h, &m, &mut seen, &expect)
            .map_err(|e| TestCaseError::fail(format!("step {i} {op:?}: {e}")))?;
        check_state(&h, &m, limits)
            .map_err(|e| TestCaseError::fail(format!("after step {i} {op:?}: {e}")))?;
    }

    for conn in m.open() {
        h.drop_connection(conn);
        m.remove(conn);
    }
    check_state(&h, &m, limits)?;
    h.advance(config.history.max_age + 2 * config.cleanup_interval);
    let stats = h.hub().stats();
    prop_assert!(h.hub().is_idle(), "state left behind: {stats:?}");
    let zero = Stats {
        counters: stats.counters.clone(),
        ..Stats::default()
    };
    prop_assert_eq!(stats, zero);
    Ok(())
}

/// Apply `op` to the hub and to the model; returns what the step must deliver.
fn step(
    h: &mut Harness,
    m: &mut Model,
    seen: &mut Seen,
    limits: &Limits,
    op: &Op,
) -> Result<Expect, TestCaseError> {
    let mut expect = Expect::default();
    match *op {
        Op::Open { user, thread } => {
            let mut open = Open::new(USERS[user]);
            if let Some(t) = thread {
                open = open.thread(THREADS[t]);
            }
            let result = h.open(open);
            // The per-user limit first: refuse, or evict the oldest; then the hub's limit.
            let at_limit = m.user_conns(user).len() >= limits.per_user;
            if at_limit && limits.evict_oldest {
                let oldest = m.user_conns(user)[0];
                prop_assert_eq!(h.closed(oldest), Some((4001, Reason::Evicted)));
                m.remove(oldest);
            }
            let predicted = if at_limit && !limits.evict_oldest {
                Err(OpenError::UserLimit)
            } else if m.conns.len() >= limits.max_connections {
                Err(OpenError::ServerFull)
            } else {
                Ok(())
            };
            match (result, predicted) {
                (Ok(conn), Ok(())) => {
                    prop_assert!(!m.ever.contains(&conn), "{conn:?} was handed out before");
                    m.add(conn, user, thread);
                    expect.frame(conn, "welcome");
                    expect.take_over(conn, m.take_pending(user, thread));
                }
                (Err(e), Err(p)) => prop_assert_eq!(e, p),
                (result, predicted) => {
                    return Err(TestCaseError::fail(format!(
                        "open: hub {result:?}, model {predicted:?}"
                    )))
                }
            }
        }
        Op::Close { conn, by_app } => {
            if let Some(conn) = m.pick_open(conn) {
                if by_app {
                    let r = h.with_hub(|hub, _| hub.close_connection(conn, Reason::Normal));
                    prop_assert!(r.is_ok());
                    prop_assert_eq!(h.closed(conn), Some((1000, Reason::Normal)));
                } else {
                    h.drop_connection(conn);
                }
                m.remove(conn);
            }
        }
        Op::Disconnect { user } => {
            let conns = m.user_conns(user).to_vec();
            let closed = h.with_hub(|hub, _| hub.scope(USERS[user]).disconnect());
            prop_assert_eq!(closed, conns.len());
            for conn in conns {
                prop_assert_eq!(h.closed(conn), Some((4002, Reason::Disconnected)));
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
            let refusal = if m.conns[&conn].rooms.contains(&room) {
                None
            } else if m.conns[&conn].rooms.len() >= limits.rooms_per_connection {
                Some(RoomError::TooManyRooms)
            } else if m.members(room).len() >= limits.members_per_room {
                Some(RoomError::RoomFull)
            } else {
                None
            };
            let already = m.conns[&conn].rooms.contains(&room);
            if by_server {
                let r = h.with_hub(|hub, now| hub.join_room(now, conn, &ROOMS[room].into()));
                prop_assert_eq!(r.err(), refusal.clone());
                if refusal.is_none() && !already {
                    expect.frame(conn, "joined");
                }
            } else {
                h.send(
                    conn,
                    &json!({"type": "join", "room": ROOMS[room]}).to_string(),
                );
                expect.frame(
                    conn,
                    match refusal {
                        None => "joined",
                        Some(RoomError::TooManyRooms) => "error:too_many_rooms",
                        Some(_) => "error:room_full",
                    },
                );
            }
            if refusal.is_none() {
                m.conns.get_mut(&conn).expect("open").rooms.insert(room);
                m.rooms.entry(room).or_default().insert(conn);
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
            let member = m.conns[&conn].rooms.contains(&room);
            if by_server {
                let r = h.with_hub(|hub, _| hub.leave_room(conn, &ROOMS[room].into()));
                prop_assert_eq!(r.err(), (!member).then_some(RoomError::NotMember));
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
                let members = m.rooms.get_mut(&room).expect("member");
                members.remove(&conn);
                if members.is_empty() {
                    m.rooms.remove(&room);
                }
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
                    prop_assert_eq!(r.is_ok(), open);
                    open
                }
                BindBy::Scope(user) => {
                    let r = h.with_hub(|hub, _| {
                        hub.scope(USERS[user]).update_connection_thread(conn, new)
                    });
                    let owned = m.owns(user, conn);
                    prop_assert_eq!(r.is_ok(), owned, "a scope rebinds only its own connections");
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
                    expect.take_over(conn, m.take_pending(user, thread));
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
                        prop_assert!(matches!(r, Err(PublishError::UnknownConnection(_))));
                        return Ok(expect);
                    }
                    let reached: Vec<ConnId> =
                        [conn].into_iter().filter(|c| !except.contains(c)).collect();
                    check_delivery(&r, &reached, false)?;
                    expect.message(&reached, n);
                    return Ok(expect);
                }
                To::User(u) => {
                    let (reached, pending) = m.user_audience(u, None, &except, n, !ephemeral);
                    (Target::User(user_id(u)), reached, pending)
                }
                To::Thread(u, t) => {
                    let (reached, pending) = m.user_audience(u, Some(t), &except, n, !ephemeral);
                    let target = Target::Thread {
                        user: user_id(u),
                        thread: thread_id(t),
                    };
                    (target, reached, pending)
                }
                To::Room(r) => {
                    let members = m.members(r).into_iter();
                    let reached = members.filter(|c| !except.contains(c)).collect();
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
            seen.published += 1;
            let n = seen.published;
            let frame =
                json!({"type": "publish", "room": ROOMS[room], "event": event(n), "data": n});
            h.send(conn, &frame.to_string());
            if m.conns[&conn].rooms.contains(&room) {
                let others: Vec<ConnId> =
                    m.members(room).into_iter().filter(|c| *c != conn).collect();
                expect.message(&others, n);
            } else {
                expect.frame(conn, "error:not_member");
            }
        }
        Op::Scope { user, ref what } => {
            seen.published += 1;
            let n = seen.published;
            let message = Message::new(event(n), json!(n));
            expect.scope = Some(user);
            let name = USERS[user];
            match *what {
                Scoped::Publish => {
                    let (reached, pending) = m.user_audience(user, None, &[], n, true);
                    let r = h.with_hub(|hub, now| hub.scope(name).publish(now, &message));
                    check_delivery(&r, &reached, pending)?;
                    expect.message(&reached, n);
                }
                Scoped::Thread(t) => {
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
                        prop_assert!(
                            matches!(r, Err(PublishError::UnknownConnection(_))),
                            "a scope reached a connection that is not its user's: {r:?}"
                        );
                    }
                }
            }
        }
        Op::Tick { ms } => h.advance(Duration::from_millis(ms)),
    }
    Ok(expect)
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
) -> Result<(), TestCaseError> {
    let Ok(delivery) = r else {
        return Err(TestCaseError::fail(format!("publish refused: {r:?}")));
    };
    prop_assert_eq!(delivery.reached, reached.len(), "Delivery::reached");
    prop_assert_eq!(delivery.buffered, pending, "Delivery::buffered");
    Ok(())
}

/// Every connection received exactly what the step predicts, messages in publish order, and a
/// scoped publish reached only its user's connections.
fn check_frames(
    h: &Harness,
    m: &Model,
    seen: &mut Seen,
    expect: &Expect,
) -> Result<(), TestCaseError> {
    for &conn in &m.ever {
        let frames = h.frames(conn);
        let from = seen.frames.insert(conn, frames.len()).unwrap_or(0);
        let new = &frames[from..];
        let labels: Vec<String> = new.iter().map(label).collect();
        for frame in new.iter().filter(|f| f["type"] == "message") {
            let n: u64 = frame["event"].as_str().unwrap_or_default()[1..]
                .parse()
                .expect("p<n>");
            if let Some(user) = expect.scope {
                prop_assert_eq!(
                    &h.client(conn).user,
                    &user_id(user),
                    "a message published through {}'s scope reached {:?}",
                    USERS[user],
                    conn
                );
            }
            if !expect.taken.contains(&n) {
                let last = seen.last.insert(conn, n).unwrap_or(0);
                prop_assert!(last < n, "{conn:?} received p{n} after p{last}");
            }
        }
        let expected = expect.frames.get(&conn).cloned().unwrap_or_default();
        prop_assert_eq!(labels, expected, "frames of {:?}", conn);
    }
    Ok(())
}

/// The hub's users, connections, threads, rooms and gauges equal the model's, within limits.
fn check_state(h: &Harness, m: &Model, limits: &Limits) -> Result<(), TestCaseError> {
    let hub = h.hub();
    prop_assert!(hub.connection_count() <= limits.max_connections);
    prop_assert_eq!(hub.connection_count(), m.conns.len());
    let users: BTreeSet<UserId> = hub.users().cloned().collect();
    let model_users: BTreeSet<UserId> = m.users.keys().map(|&u| user_id(u)).collect();
    prop_assert_eq!(users, model_users);
    for (u, name) in USERS.iter().enumerate() {
        let conns = hub.user_connections(&(*name).into());
        prop_assert!(
            conns.len() <= limits.per_user,
            "{} has {} connections",
            name,
            conns.len()
        );
        prop_assert_eq!(conns, m.user_conns(u), "connections of {}", name);
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
            prop_assert_eq!(bound, model, "{}'s connections on {}", name, thread);
        }
    }
    for &conn in &m.ever {
        let info = hub.connection_info(conn);
        match m.conns.get(&conn) {
            Some(c) => {
                let info = info.expect("open in the hub");
                prop_assert!(h.closed(conn).is_none());
                prop_assert_eq!(&info.user, &user_id(c.user));
                prop_assert_eq!(info.thread, c.thread.map(thread_id));
                prop_assert!(info.rooms.len() <= limits.rooms_per_connection);
                let rooms: BTreeSet<String> =
                    info.rooms.iter().map(|r| r.as_str().to_owned()).collect();
                let model: BTreeSet<String> =
                    c.rooms.iter().map(|&r| ROOMS[r].to_owned()).collect();
                prop_assert_eq!(rooms, model, "rooms of {:?}", conn);
            }
            None => prop_assert!(info.is_none(), "{conn:?} should be closed"),
        }
    }
    for (r, room) in ROOMS.iter().enumerate() {
        let members: BTreeSet<ConnId> = hub.room_members(&(*room).into()).into_iter().collect();
        prop_assert!(members.len() <= limits.members_per_room);
        prop_assert_eq!(
            members,
            m.members(r).into_iter().collect::<BTreeSet<_>>(),
            "members of {}",
            room
        );
    }
    let stats = hub.stats();
    prop_assert_eq!(stats.connections, m.conns.len());
    prop_assert_eq!(stats.users, m.users.len());
    prop_assert_eq!(stats.rooms, m.rooms.len());
    prop_assert_eq!(stats.threads, m.threads().len());
    Ok(())
}

fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/model.txt"
        )))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    /// Under any sequence of opens, closes, joins, leaves, binds, publishes and ticks, the hub
    /// delivers exactly what the reference model predicts, in publish order, never across users
    /// through a scope and never past a limit, and is left with no state once everyone is gone.
    #[test]
    fn the_hub_routes_every_message_exactly_as_the_reference_model(case in case()) {
        run(&case)?;
    }
}

/// A reliable message to a user that no connection selects waits for the user's next
/// connection, whatever connections of other users its except-set names: the except-set leaves
/// out the connections it names, it does not cancel offline buffering.
#[test]
fn an_except_set_naming_another_users_connection_does_not_cancel_offline_buffering() {
    let mut h = Harness::new(Config::development());
    let ben = h.connect("ben");
    let delivery = h.publish(
        Target::User("ana".into()).except([ben]),
        Message::new("p1", json!(1)),
    );
    assert!(delivery.buffered, "{delivery:?}");
    let ana = h.connect("ana");
    assert_eq!(h.events(ana), vec!["p1"]);
}
