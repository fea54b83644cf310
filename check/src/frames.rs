//! The `frames` target: arbitrary bytes as client frames, checked against `docs/PROTOCOL.md`.
//!
//! # The script
//!
//! The input is read as lines (split at `\n`). A line is a command letter, a slot digit (which
//! of four clients; any byte, taken modulo 4) and a payload, the rest of the line:
//!
//! | Line | Does |
//! |---|---|
//! | `t<slot><bytes>` | the client sends `<bytes>` as a text frame |
//! | `b<slot><bytes>` | a binary frame |
//! | `p<slot><bytes>` | a pong with that payload |
//! | `i<slot>` | a WebSocket ping (the transport answers it; the hub rate-limits it) |
//! | `x<slot><digits>` | a `ping` frame padded to about `<digits>` bytes (oversized frames without huge seeds) |
//! | `w<slot><digits>` | the clock moves `<digits>` milliseconds (at most two minutes) |
//! | `s<slot>` / `r<slot>` | the client stops / resumes reading (a client that does not read answers no ping) |
//! | `c<slot>` | the client's socket drops |
//! | `o<slot>` | the client opens another connection (refused past a limit) |
//! | `a<slot><t><event>` | the application publishes `<event>` to the slot's room `lobby` (`t`=`r`), user (`u`), thread (`t`), connection (`c`), everyone (`a`), or ephemerally to the room (`e`) |
//! | `g<slot><json>` | the application sends an agent event (`AgentEvent` JSON, run `r1`) for the slot's user |
//! | `l<slot>` | the producer of the slot's user's run `r1` is lost |
//!
//! Any other line is a text frame from slot 0. Slots: 0 `ana` (any room), 1 `ana` bound to thread
//! `t1`, 2 `ben` (joins `lobby` and `team-*` only, publishes to `team-*` only), 3 `cho`. The hub runs with small limits so that
//! short inputs reach them: 2 connections per user, 5 in all, 512-byte frames, 5 frames/s with
//! bursts of 10, 4 strikes, small backpressure budgets, 30 s history.
//!
//! # The oracles
//!
//! Every frame written is a JSON object whose `type` section 3 lists, with that type's fields;
//! `error` codes are those of section 4; `ref` appears only on the replies section 2 names and,
//! on the reply to a frame, is exactly that frame's `ref`, unless that `ref` is longer than
//! section 2 allows or a `resume` lists more streams than a connection may have (3 rooms and
//! its user stream): then the only reply is an `invalid_frame` error (echoing no oversized
//! `ref`); a frame on a user stream (and
//! `welcome`) goes only to a connection of that user. An open is refused exactly when a limit
//! says so: 4003 when the user holds its 2 connections, else 4004 when the hub holds 5. Every
//! close code is in section 5 with its
//! label, and is one the command can cause: 1009 for an oversized frame, 1007 for invalid UTF-8,
//! 1003 for a binary frame, 1008 or 4029 for bad frames past the strikes, 4029 for pings and
//! unsolicited pongs past the rate and the strikes, 4008 for a reader that stopped, 4000 after
//! silence; where the cause is certain the close is required (`required`: each connection's
//! rate and strikes followed as token buckets in `budgets`, its silence, what a stopped reader
//! is owed), and agent run events are accepted exactly as the run automaton says (`runs`).
//! The reply to a text frame fits its type (a `ping` gets exactly
//! one `pong` or `error`, a `publish` never echoes to its sender and is `forbidden` only to a room
//! outside the sender's publish grant, ...); a `presence` frame names a room its recipient may
//! join, and reaches a sender only in reply to a `join` or `resume`. At the end everyone
//! leaves and, once history expired, the hub holds nothing.

use crate::ProtocolDoc;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};
use switchboard::{
    AgentEvent, AgentUpdate, BackpressureConfig, Config, ConnId, Hub, Message, Notice, Open,
    Output, Reason, RoomAccess, SocketInput, SocketOutput, StreamId, Target, UnknownConnection,
    UserId,
};

mod budgets;
mod oracles;
mod required;
mod runs;

const SLOTS: usize = 4;
const MAX_FRAME: usize = 512;
const MAX_WAIT_MS: u64 = 120_000;
const ROOMS_PER_CONNECTION: usize = 3;

fn config() -> Config {
    let mut config = Config::development();
    let limits = &mut config.limits;
    limits.max_connections_per_user = 2;
    // One less than every user at its limit, so that both refusals can happen.
    limits.max_connections = 5;
    limits.max_rooms_per_connection = ROOMS_PER_CONNECTION;
    limits.max_members_per_room = 3;
    limits.max_frame_bytes = MAX_FRAME;
    limits.messages_per_second = 5;
    limits.message_burst = 10;
    limits.max_strikes = 4;
    limits.strike_refill = Duration::from_secs(2);
    config.backpressure = BackpressureConfig {
        inflight_bytes: 1024,
        queue_messages: 8,
        queue_bytes: 4096,
        ..config.backpressure
    };
    config.history.max_messages = 8;
    config.history.max_age = Duration::from_secs(30);
    config.run_idle_timeout = Duration::from_secs(60);
    config.run_retention = Duration::from_secs(10);
    config.app_frame_types = vec!["user_message".into()];
    // Members of `lobby` hear who comes and goes without asking; of other rooms, when they ask.
    config.presence.rooms = RoomAccess::Only(vec!["lobby".into()]);
    config.presence.max_members = 2;
    config
}

/// Who each slot is.
fn slot_open(slot: usize) -> Open {
    match slot {
        0 => Open::new("ana"),
        1 => Open::new("ana").thread("t1"),
        2 => Open::new("ben")
            .access(RoomAccess::Only(vec!["lobby".into(), "team-*".into()]))
            .publish(RoomAccess::Only(vec!["team-*".into()])),
        _ => Open::new("cho"),
    }
}

/// One open connection as the fake transport sees it.
#[derive(Debug)]
struct Conn {
    user: UserId,
    /// The rooms it may join (and so receive).
    join: RoomAccess,
    /// The rooms it may publish to.
    publish: RoomAccess,
    reading: bool,
    /// Bytes written while not reading, reported flushed when reading resumes.
    unflushed: usize,
    /// The hub holds frames for it until a flush report (`SocketOutput::AwaitingFlush`).
    awaited: bool,
}

/// What one command may cause, to check the closes and replies it produced.
#[derive(Debug, Default)]
struct Cause {
    /// The connection whose frame this is, and what the frame is.
    sender: Option<(ConnId, Sent)>,
    /// Time moved: heartbeat closes are possible.
    time: bool,
    /// Whether the sender was reading when it sent the frame.
    reading: bool,
}

#[derive(Debug)]
enum Sent {
    Text(Vec<u8>),
    Binary,
    /// A ping, or a pong; `counted` against the rate unless it answers the hub's ping.
    Control {
        counted: bool,
    },
}

/// The head of a client frame, parsed like the hub parses it.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "ref", default)]
    reference: Option<Box<RawValue>>,
}

/// The fake transport and the oracles' state.
struct Script {
    hub: Hub,
    now: Instant,
    doc: &'static ProtocolDoc,
    conns: HashMap<ConnId, Conn>,
    /// The latest connection of each slot.
    slots: [Option<ConnId>; SLOTS],
    /// Frames and closes of the current command, per connection.
    frames: BTreeMap<ConnId, Vec<BTreeMap<String, Box<RawValue>>>>,
    closes: BTreeMap<ConnId, (u16, Reason)>,
    /// The connections the current command closed.
    gone: BTreeMap<ConnId, Conn>,
    /// What each open connection may spend and is owed.
    ledgers: HashMap<ConnId, budgets::Ledger>,
    /// Each user's run `r1`.
    runs: HashMap<UserId, runs::RunModel>,
    /// What the whole script caused.
    outcomes: Outcomes,
}

/// What a script caused, counted: for tests that a seed named after a behaviour shows it.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Close codes: of connections the hub closed, and of opens it refused.
    pub closes: BTreeMap<u16, usize>,
    /// The `code` of every `error` frame.
    pub errors: BTreeMap<String, usize>,
    /// The `type` of every frame written.
    pub frames: BTreeMap<String, usize>,
    /// Agent run events the hub accepted and refused.
    pub updates: (usize, usize),
}

/// Run one input, checking every oracle; what it caused.
pub fn run(data: &[u8]) -> Outcomes {
    let mut s = Script {
        hub: Hub::new(config()),
        now: Instant::now(),
        doc: ProtocolDoc::get(),
        conns: HashMap::new(),
        slots: [None; SLOTS],
        frames: BTreeMap::new(),
        closes: BTreeMap::new(),
        gone: BTreeMap::new(),
        ledgers: HashMap::new(),
        runs: HashMap::new(),
        outcomes: Outcomes::default(),
    };
    for slot in 0..SLOTS {
        s.open(slot);
    }
    for line in data.split(|&b| b == b'\n') {
        s.command(line);
    }
    s.finish();
    s.outcomes
}

fn digits(payload: &[u8]) -> u64 {
    payload
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .take(9)
        .fold(0, |n, b| n * 10 + u64::from(b - b'0'))
}

impl Script {
    fn open(&mut self, slot: usize) {
        let open = slot_open(slot);
        let (user, join, publish) = (open.user.clone(), open.access.clone(), open.publish.clone());
        // The user's limit is checked first, then the hub's (`reject_new`).
        let limits = &self.hub.config().limits;
        let users = self.conns.values().filter(|c| c.user == user).count();
        let expected = if users >= limits.max_connections_per_user {
            Some(4003)
        } else if self.conns.len() >= limits.max_connections {
            Some(4004)
        } else {
            None
        };
        let result = self.hub.open(self.now, open);
        assert_eq!(
            result.as_ref().err().map(|e| e.close_code()),
            expected,
            "{user}'s open with {users} of its connections and {} in all",
            self.conns.len()
        );
        match result {
            Ok(conn) => {
                self.conns.insert(
                    conn,
                    Conn {
                        user,
                        join,
                        publish,
                        reading: true,
                        unflushed: 0,
                        awaited: false,
                    },
                );
                self.slots[slot] = Some(conn);
                let ledger = budgets::Ledger::new(self.now, &self.hub.config().limits);
                self.ledgers.insert(conn, ledger);
                self.drain(&Cause::default());
                let welcome = &self.frames[&conn][0];
                assert_eq!(str_field(welcome, "type"), "welcome", "welcome first");
            }
            Err(e) => {
                let code = e.close_code();
                assert!(
                    self.doc.close_codes.get(&code) == Some(&e.reason().as_str().to_owned()),
                    "refusal {code} is not documented"
                );
                *self.outcomes.closes.entry(code).or_default() += 1;
                self.drain(&Cause::default());
            }
        }
    }

    fn command(&mut self, line: &[u8]) {
        let Some((&cmd, rest)) = line.split_first() else {
            return;
        };
        let (slot, payload) = match rest.split_first() {
            Some((&s, payload)) => (usize::from(s.wrapping_sub(b'0')) % SLOTS, payload),
            None => (0, &[][..]),
        };
        let conn = self.slots[slot].filter(|c| self.conns.contains_key(c));
        let now = self.now;
        match (cmd, conn) {
            (b't', Some(conn)) => self.text(conn, payload.to_vec()),
            (b'x', Some(conn)) => {
                let pad = "x".repeat(digits(payload).min(4 * MAX_FRAME as u64) as usize);
                let frame = format!(r#"{{"type":"ping","pad":"{pad}"}}"#);
                self.text(conn, frame.into_bytes());
            }
            (b'b', Some(conn)) => {
                let reading = self.alive(conn);
                let r = self.hub.handle_socket(
                    now,
                    SocketInput::Binary {
                        conn,
                        bytes: payload,
                    },
                );
                assert!(r.is_ok(), "an open connection is known");
                self.drain(&Cause {
                    sender: Some((conn, Sent::Binary)),
                    time: false,
                    reading,
                });
            }
            (b'p' | b'i', Some(conn)) => {
                let reading = self.alive(conn);
                let ledger = self.ledgers.get_mut(&conn).expect("open");
                let (input, counted) = match cmd {
                    b'p' => {
                        let answers = ledger.ping.as_deref() == Some(payload);
                        if answers {
                            ledger.ping = None;
                        }
                        (SocketInput::Pong { conn, payload }, !answers)
                    }
                    _ => (SocketInput::Ping { conn }, true),
                };
                let r = self.hub.handle_socket(now, input);
                assert!(r.is_ok(), "an open connection is known");
                self.drain(&Cause {
                    sender: Some((conn, Sent::Control { counted })),
                    time: false,
                    reading,
                });
                assert!(
                    self.frames.get(&conn).is_none_or(Vec::is_empty),
                    "a control frame is answered by no text frame"
                );
            }
            (b'w', _) => self.wait(Duration::from_millis(digits(payload).min(MAX_WAIT_MS))),
            (b's', Some(conn)) => {
                let c = self.conns.get_mut(&conn).expect("open");
                if c.reading {
                    c.reading = false;
                    let ledger = self.ledgers.get_mut(&conn).expect("open");
                    (ledger.owed, ledger.sent) = (0, 0);
                }
            }
            (b'r', Some(conn)) => {
                let c = self.conns.get_mut(&conn).expect("open");
                c.reading = true;
                let bytes = std::mem::take(&mut c.unflushed);
                let r = self
                    .hub
                    .handle_socket(now, SocketInput::Flushed { conn, bytes });
                assert!(r.is_ok(), "an open connection is known");
                self.drain(&Cause::default());
            }
            (b'c', Some(conn)) => {
                let r = self.hub.handle_socket(now, SocketInput::Closed { conn });
                assert!(r.is_ok(), "an open connection is known");
                self.conns.remove(&conn);
                self.ledgers.remove(&conn);
                self.drain(&Cause::default());
                assert!(self.hub.connection_info(conn).is_none(), "closed");
            }
            (b'o', _) => self.open(slot),
            (b'a', _) => self.publish(slot, conn, payload),
            (b'g', _) => {
                if let Ok(event) = serde_json::from_slice::<AgentEvent>(payload) {
                    self.agent_update(slot, event);
                }
            }
            (b'l', _) => self.producer_lost(slot),
            (b't' | b'x' | b'b' | b'p' | b's' | b'r' | b'c', None) => {}
            _ => {
                if let Some(conn) = self.slots[0].filter(|c| self.conns.contains_key(c)) {
                    self.text(conn, line.to_vec());
                }
            }
        }
    }

    fn publish(&mut self, slot: usize, conn: Option<ConnId>, payload: &[u8]) {
        let (kind, event) = payload.split_first().unwrap_or((&b'r', &[]));
        let event = String::from_utf8_lossy(event).into_owned();
        let user = slot_open(slot).user;
        let mut message = Message::new(event, serde_json::json!(payload.len()));
        let target = match kind {
            b'u' => Target::User(user),
            b't' => Target::Thread {
                user,
                thread: "t1".into(),
            },
            b'a' => Target::All,
            b'c' => match conn {
                Some(conn) => Target::Connection(conn),
                None => return,
            },
            b'e' => {
                message = message.ephemeral("state");
                Target::Room("lobby".into())
            }
            _ => Target::Room("lobby".into()),
        };
        if *kind == b'a' {
            // A reliable live frame for every connection: one more owed to each stopped reader.
            for (conn, c) in &self.conns {
                if !c.reading {
                    self.ledgers.get_mut(conn).expect("open").owed += 1;
                }
            }
        }
        let r = self.hub.publish(self.now, target, &message);
        assert!(
            r.is_ok(),
            "a publish to an open connection or a group: {r:?}"
        );
        self.drain(&Cause::default());
    }

    fn text(&mut self, conn: ConnId, bytes: Vec<u8>) {
        let reading = self.alive(conn);
        let r = self.hub.handle_socket(
            self.now,
            SocketInput::Text {
                conn,
                bytes: &bytes,
            },
        );
        assert!(r.is_ok(), "an open connection is known");
        self.drain(&Cause {
            sender: Some((conn, Sent::Text(bytes))),
            time: false,
            reading,
        });
    }

    /// Move the clock, firing every timer at its deadline, answering pings of readers.
    fn wait(&mut self, by: Duration) {
        let target = self.now + by;
        while let Some(at) = self.hub.poll_timeout() {
            if at > target {
                break;
            }
            self.now = self.now.max(at);
            self.hub.handle_timeout(self.now);
            self.drain(&Cause {
                sender: None,
                time: true,
                reading: false,
            });
        }
        self.now = target;
        self.require_state();
    }

    /// `conn` is about to send a frame: a sign of life. Whether it reads.
    fn alive(&mut self, conn: ConnId) -> bool {
        self.ledgers.get_mut(&conn).expect("open").alive_at = self.now;
        self.conns[&conn].reading
    }

    /// Carry out every output like a transport, then check what the command caused.
    fn drain(&mut self, cause: &Cause) {
        self.frames.clear();
        self.closes.clear();
        self.gone.clear();
        let mut closing = BTreeSet::new();
        while let Some(output) = self.hub.poll_output() {
            match output {
                Output::Socket(SocketOutput::Send { conn, frame }) => {
                    let parsed = self.check_frame(conn, &frame);
                    let kind = str_field(&parsed, "type");
                    if kind == "error" {
                        let code = str_field(&parsed, "code");
                        *self.outcomes.errors.entry(code).or_default() += 1;
                    }
                    *self.outcomes.frames.entry(kind).or_default() += 1;
                    self.frames.entry(conn).or_default().push(parsed);
                    let c = self
                        .conns
                        .get_mut(&conn)
                        .expect("frames go to open connections");
                    if c.reading {
                        let bytes = frame.len();
                        let r = self
                            .hub
                            .handle_socket(self.now, SocketInput::Flushed { conn, bytes });
                        // A request answered in parts (a `resume` of several streams) can
                        // write replies and then run out of strikes: the hub has closed the
                        // connection before its transport reports those writes, and its close
                        // must follow in this turn's outputs.
                        if r.is_err() {
                            assert_eq!(r, Err(UnknownConnection(conn)));
                            closing.insert(conn);
                        }
                    } else {
                        c.unflushed += frame.len();
                        self.ledgers.get_mut(&conn).expect("open").sent += 1;
                    }
                }
                Output::Socket(SocketOutput::Ping { conn, payload }) => {
                    let c = self.conns.get(&conn).expect("pings go to open connections");
                    let ledger = self.ledgers.get_mut(&conn).expect("open");
                    if c.reading {
                        ledger.alive_at = self.now;
                        ledger.ping = None;
                        let pong = SocketInput::Pong {
                            conn,
                            payload: &payload,
                        };
                        let r = self.hub.handle_socket(self.now, pong);
                        assert!(r.is_ok(), "pong while open");
                    } else {
                        ledger.ping = Some(payload.to_vec());
                    }
                }
                Output::Socket(SocketOutput::AwaitingFlush { conn, awaiting }) => {
                    let c = self.conns.get_mut(&conn).expect("open");
                    assert_ne!(c.awaited, awaiting, "{conn}: the same change told twice");
                    c.awaited = awaiting;
                }
                Output::Socket(SocketOutput::Close { conn, code, reason }) => {
                    let label = self.doc.close_codes.get(&code);
                    assert_eq!(
                        label.map(String::as_str),
                        Some(reason.as_str()),
                        "close {code} {reason} is not in docs/PROTOCOL.md section 5"
                    );
                    assert_eq!(reason.close_code(), Some(code));
                    let gone = self.conns.remove(&conn);
                    assert!(gone.is_some(), "closed twice: {conn}");
                    self.gone.extend(gone.map(|c| (conn, c)));
                    self.closes.insert(conn, (code, reason));
                    *self.outcomes.closes.entry(code).or_default() += 1;
                }
                Output::Cluster(output) => panic!("a single hub told a cluster {output:?}"),
                Output::Notice(Notice::App(app)) => {
                    assert_eq!(
                        app.kind, "user_message",
                        "only registered types reach the app"
                    )
                }
                Output::Notice(_) => {}
                other => panic!("an output this target does not know: {other:?}"),
            }
        }
        for conn in closing {
            assert!(
                self.closes.contains_key(&conn),
                "{conn} was unknown to a flush but not closed in the same turn"
            );
        }
        // Every write of a reading connection was reported: the hub holds nothing back for
        // a report, or a transport that reports only when awaited would wait forever.
        for (conn, c) in &self.conns {
            assert!(
                !(c.reading && c.awaited),
                "{conn} reads, yet the hub awaits a report"
            );
        }
        self.check_causes(cause);
        self.require_budgets(cause);
        self.require_closes(cause);
        self.require_state();
        assert_eq!(
            self.hub.connection_count(),
            self.conns.len(),
            "the hub's connections are the transport's"
        );
    }

    /// Everyone leaves; once history and run reports expired, nothing is left.
    fn finish(&mut self) {
        // One at a time, highest id first (a fixed order, so that an input always does the
        // same): a connection's going can close another (its `left` overflows the queue of a
        // member that stopped reading: 4008), which then has nothing left to close.
        while let Some(&conn) = self.conns.keys().max() {
            let r = self
                .hub
                .handle_socket(self.now, SocketInput::Closed { conn });
            assert!(r.is_ok(), "an open connection is known");
            self.conns.remove(&conn);
            self.ledgers.remove(&conn);
            self.drain(&Cause::default());
        }
        let config = self.hub.config();
        let long = config.history.max_age
            + config.run_idle_timeout
            + config.run_retention
            + 3 * config.cleanup_interval;
        self.wait(long);
        let stats = self.hub.stats();
        assert!(
            self.hub.is_idle(),
            "state left after everyone left: {stats:?}"
        );
        assert_eq!(
            (
                stats.queued_bytes,
                stats.history_bytes,
                stats.history_messages
            ),
            (0, 0, 0),
            "gauges after everyone left"
        );
    }
}

/// How many entries the `streams` array of a frame has (0 if it has none).
fn resume_streams(bytes: &[u8]) -> usize {
    let frame: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    frame["streams"].as_array().map_or(0, Vec::len)
}

/// A string field of a parsed frame ("" if absent or not a string).
fn str_field(fields: &BTreeMap<String, Box<RawValue>>, key: &str) -> String {
    fields
        .get(key)
        .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
        .unwrap_or_default()
}
