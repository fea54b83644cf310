//! Delivery rules under random interleavings of publishes, agent runs, disconnects, reconnects
//! with resume positions, slow readers and time.
//!
//! A few devices (two users, each device on no thread or on thread `t0`, in some of two rooms)
//! connect once, then a random sequence of operations runs: publish to a user (on no thread, on
//! `t0` or on `t1`) or to a room, small or large; an agent run event (valid or out of order) or a
//! lost producer; a device's socket drops; a disconnected device reconnects the way the protocol's
//! client algorithm says (its user-stream position at connect, a `resume` for its rooms), first
//! reading what its old socket still held or not; a device stops or resumes reading (a slow
//! consumer, closed with 4008 once its queue overflows); the clock moves a little, or past the
//! history's `max_age`. History is short (3 to 12 messages), so resumes fall both inside and
//! outside its window.
//!
//! The test keeps a shadow of every stream: its epochs, each message in order, and which of them
//! history still holds. Each device follows the protocol's client algorithm: its position per
//! stream is the last `(epoch, seq)` it read, or the `gap`'s `(epoch, to)` after a gap. These
//! invariants hold after every step:
//!
//! 1. **Exactly once, in order.** Across all of a device's connections, each stream it follows
//!    delivers every message its thread selects exactly once, in sequence order. A device that
//!    is connected and reading has received everything up to the stream's head (only an
//!    `agent_thinking` superseded or shed while it did not read may be missing).
//! 2. **Resume.** A reconnecting device receives `welcome`, then on its user stream and on each
//!    room (after `joined`) exactly the messages after its position that it selects, in order.
//!    When history still reaches back to its position there is no `gap`; when it does not, one
//!    `gap` frame comes first and covers exactly what is missing (reason `history`: from the
//!    position to the message before the oldest kept; reason `epoch` when the stream was
//!    created anew: from 1 to the message before the oldest kept), and the replay continues
//!    right after it.
//! 3. **No silent loss.** A message is never skipped on the reliable lane: a connection's
//!    sequence numbers per stream have no hole that no `gap` announced; the hub only ever closes
//!    a connection as a slow consumer (4008), only one that stopped reading, and what that
//!    connection missed comes back on resume.
//! 4. **Agent runs.** On each connection, and across a device's resumes, a run's events follow
//!    the run automaton: `agent_started` first, `tool_completed` after its `tool_executing`,
//!    `agent_completed` with no call open, at most one ending and nothing after it. An event
//!    out of order is refused and reaches no one.
//! 5. **Streams.** The hub keeps exactly the streams the shadow keeps, with the same heads; a
//!    stream created anew gets an epoch larger than any before it.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;
use switchboard::testing::Harness;
use switchboard::{
    AgentEvent, AgentUpdate, BackpressureConfig, Config, ConnId, Delivery, HistoryConfig, Input,
    Message, Open, Position, PublishError, Reason, RunId, StreamId, Target, UserId,
};

const USERS: [&str; 2] = ["ana", "ben"];
const ROOMS: [&str; 2] = ["r0", "r1"];
const THREADS: [&str; 2] = ["t0", "t1"];
const TOOLS: [&str; 2] = ["search", "fetch"];
/// Operations in one generated sequence, at most.
const MAX_OPS: usize = 100;
/// The longest short tick, in milliseconds.
const MAX_TICK_MS: u64 = 500;
/// How long history keeps a message.
const MAX_AGE: Duration = Duration::from_secs(60);
/// How often the clean-up sweep runs.
const CLEANUP: Duration = Duration::from_secs(1);
/// A long tick: every message kept before it has expired when it ends.
const LONG_TICK: Duration = Duration::from_secs(62);
const _: () = assert!(LONG_TICK.as_millis() >= MAX_AGE.as_millis() + CLEANUP.as_millis());
// Short ticks alone never age a message out of history.
const _: () = assert!((MAX_OPS as u128) * (MAX_TICK_MS as u128) < MAX_AGE.as_millis());

// ----- the generated case --------------------------------------------------------------------

/// One client device: a user, a thread it always connects on, and the rooms it is in.
#[derive(Debug, Clone)]
struct DeviceSpec {
    user: usize,
    on_t0: bool,
    rooms: Vec<usize>,
}

#[derive(Debug, Clone)]
enum Op {
    /// Publish to a user, on no thread or on a thread.
    PublishUser {
        user: usize,
        thread: Option<usize>,
        big: bool,
    },
    PublishRoom {
        room: usize,
        big: bool,
    },
    /// The next agent event of a user's run slot, chosen by `action` (see [`World::agent`]).
    Agent {
        user: usize,
        slot: usize,
        action: usize,
    },
    ProducerLost {
        user: usize,
        slot: usize,
    },
    /// The device's socket drops.
    Drop {
        device: usize,
    },
    /// A disconnected device reconnects, after reading what its old socket held if `drain`.
    Reconnect {
        device: usize,
        drain: bool,
    },
    /// A connected device stops or resumes reading.
    Reading {
        device: usize,
        reading: bool,
    },
    Tick {
        ms: u64,
    },
    /// Past `max_age`: history empties and streams nobody is on are dropped.
    LongTick,
}

#[derive(Debug, Clone)]
struct Case {
    max_messages: usize,
    devices: Vec<DeviceSpec>,
    ops: Vec<Op>,
}

fn device() -> impl Strategy<Value = DeviceSpec> {
    (0..USERS.len(), any::<bool>(), 0..4usize).prop_map(|(user, on_t0, rooms)| DeviceSpec {
        user,
        on_t0,
        rooms: (0..ROOMS.len()).filter(|r| rooms & (1 << r) != 0).collect(),
    })
}

fn op() -> impl Strategy<Value = Op> {
    let user = || 0..USERS.len();
    let device = || 0..4usize;
    prop_oneof![
        5 => (user(), prop::option::of(0..THREADS.len()), prop::bool::weighted(0.3))
            .prop_map(|(user, thread, big)| Op::PublishUser { user, thread, big }),
        4 => (0..ROOMS.len(), prop::bool::weighted(0.3))
            .prop_map(|(room, big)| Op::PublishRoom { room, big }),
        5 => (user(), 0..2usize, 0..18usize)
            .prop_map(|(user, slot, action)| Op::Agent { user, slot, action }),
        1 => (user(), 0..2usize).prop_map(|(user, slot)| Op::ProducerLost { user, slot }),
        2 => device().prop_map(|device| Op::Drop { device }),
        3 => (device(), any::<bool>()).prop_map(|(device, drain)| Op::Reconnect { device, drain }),
        4 => (device(), prop::bool::weighted(0.3))
            .prop_map(|(device, reading)| Op::Reading { device, reading }),
        2 => (0..=MAX_TICK_MS).prop_map(|ms| Op::Tick { ms }),
        1 => Just(Op::LongTick),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        3..=12usize,
        prop::collection::vec(device(), 2..=4),
        prop::collection::vec(op(), 1..=MAX_OPS),
    )
        .prop_map(|(max_messages, devices, ops)| Case {
            max_messages,
            devices,
            ops,
        })
}

fn config(max_messages: usize) -> Config {
    let mut config = Config::development();
    config.limits.max_connections_per_user = 4;
    config.backpressure = BackpressureConfig {
        inflight_bytes: 512,
        queue_messages: 4,
        queue_bytes: 64 * 1024,
    };
    config.history = HistoryConfig {
        max_messages,
        max_bytes: 1 << 20,
        max_age: MAX_AGE,
    };
    config.cleanup_interval = CLEANUP;
    // Runs end only when their producer says so (or is reported lost), not by idling.
    config.run_idle_timeout = Duration::from_secs(365 * 24 * 3600);
    config
}

// ----- the shadow of the streams --------------------------------------------------------------

/// What one message of a stream is.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    /// The `n`th application message.
    Message(u64),
    /// An agent run event (`kind` is the frame type); `tool` for tool events.
    Run {
        run: String,
        kind: &'static str,
        tool: Option<&'static str>,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    item: Item,
    /// The thread a user-stream message is for (`None`: every connection of the user).
    thread: Option<usize>,
}

impl Entry {
    /// May be missing for a reader that fell behind: superseded or shed in the lossy lane.
    fn optional(&self) -> bool {
        matches!(
            self.item,
            Item::Run {
                kind: "agent_thinking",
                ..
            }
        )
    }

    /// True if `frame` is this entry.
    fn is(&self, frame: &Value) -> bool {
        match &self.item {
            Item::Message(n) => frame["type"] == "message" && frame["event"] == event(*n),
            Item::Run { run, kind, .. } => frame["type"] == *kind && frame["run"] == run.as_str(),
        }
    }
}

/// One incarnation of a stream: its epoch (once learned), every message it got, and the first
/// sequence number history still holds.
#[derive(Debug, Clone)]
struct Incarnation {
    epoch: Option<u64>,
    entries: Vec<Entry>,
    oldest: u64,
}

impl Incarnation {
    fn new() -> Self {
        Self {
            epoch: None,
            entries: Vec::new(),
            oldest: 1,
        }
    }

    fn head(&self) -> u64 {
        self.entries.len() as u64
    }

    fn entry(&self, seq: u64) -> &Entry {
        &self.entries[seq as usize - 1]
    }

    fn is_empty(&self) -> bool {
        self.oldest > self.head()
    }
}

#[derive(Debug, Default)]
struct Shadow {
    max_messages: usize,
    streams: BTreeMap<StreamId, Incarnation>,
    /// Incarnations dropped, by stream and epoch (frames read late may belong to them).
    retired: HashMap<(StreamId, u64), Incarnation>,
    /// The largest epoch learned before the current operation.
    max_epoch: u64,
    /// The largest epoch learned so far.
    learned_epoch: u64,
}

impl Shadow {
    /// The stream, created anew if the hub does not keep it.
    fn ensure(&mut self, stream: &StreamId) -> &mut Incarnation {
        self.streams
            .entry(stream.clone())
            .or_insert_with(Incarnation::new)
    }

    fn append(&mut self, stream: &StreamId, entry: Entry) -> u64 {
        let max = self.max_messages as u64;
        let s = self.ensure(stream);
        s.entries.push(entry);
        let head = s.head();
        s.oldest = s.oldest.max((head + 1).saturating_sub(max));
        head
    }

    fn remove(&mut self, stream: &StreamId) {
        if let Some(s) = self.streams.remove(stream) {
            if let Some(epoch) = s.epoch {
                self.retired.insert((stream.clone(), epoch), s);
            }
        }
    }

    fn lookup(&self, stream: &StreamId, epoch: u64) -> Option<&Incarnation> {
        match self.streams.get(stream) {
            Some(s) if s.epoch == Some(epoch) => Some(s),
            _ => self.retired.get(&(stream.clone(), epoch)),
        }
    }

    /// Learn or confirm the epoch of a stream the hub reports at `position`. A stream created
    /// anew during the current operation must have an epoch above every one learned before it.
    fn learn(&mut self, stream: &StreamId, position: Position) -> Result<(), TestCaseError> {
        let max_epoch = self.max_epoch;
        let s = self.streams.get_mut(stream).ok_or_else(|| {
            TestCaseError::fail(format!("the hub keeps {stream}, the shadow not"))
        })?;
        prop_assert_eq!(position.seq, s.head(), "head of {}", stream);
        match s.epoch {
            Some(epoch) => prop_assert_eq!(position.epoch, epoch, "epoch of {}", stream),
            None => {
                prop_assert!(
                    position.epoch > max_epoch,
                    "{stream} was created anew with epoch {}, not above {max_epoch}",
                    position.epoch
                );
                s.epoch = Some(position.epoch);
                self.learned_epoch = self.learned_epoch.max(position.epoch);
            }
        }
        Ok(())
    }
}

// ----- devices and what they saw --------------------------------------------------------------

/// A run as one reader sees it, checked against the run automaton.
#[derive(Debug, Default)]
struct RunView {
    events: usize,
    started: bool,
    open: BTreeSet<&'static str>,
    ended: bool,
}

impl RunView {
    fn see(&mut self, kind: &str, tool: Option<&'static str>) -> Result<(), String> {
        if self.ended {
            return Err(format!("{kind} after the run ended"));
        }
        match (kind, tool) {
            ("agent_started", _) if self.events > 0 => {
                return Err("agent_started after other events of the run".into())
            }
            ("agent_started", _) => self.started = true,
            ("tool_executing", Some(tool)) if !self.open.insert(tool) => {
                return Err(format!("tool_executing of {tool} while it executes"))
            }
            ("tool_completed", Some(tool)) if !self.open.remove(tool) && self.started => {
                return Err(format!(
                    "tool_completed of {tool} before its tool_executing"
                ))
            }
            ("agent_completed", _) if self.started && !self.open.is_empty() => {
                return Err(format!("agent_completed with {:?} executing", self.open))
            }
            _ => {}
        }
        self.ended = is_ending(kind);
        self.events += 1;
        Ok(())
    }
}

fn is_ending(kind: &str) -> bool {
    matches!(
        kind,
        "agent_completed" | "agent_failed" | "agent_cancelled" | "producer_lost"
    )
}

#[derive(Debug)]
struct Device {
    user: usize,
    thread: Option<usize>,
    rooms: Vec<usize>,
    /// Its connections, oldest first; the last is the current one.
    conns: Vec<ConnId>,
    /// The current connection is open.
    connected: bool,
    reading: bool,
    /// The client algorithm's position per stream.
    cursor: BTreeMap<StreamId, Position>,
    /// Runs as seen across all its connections (restarted by a user-stream gap).
    runs: HashMap<String, RunView>,
    /// Runs whose ending it received.
    ended: HashSet<String>,
}

impl Device {
    fn conn(&self) -> ConnId {
        *self.conns.last().expect("connected once")
    }

    fn user_stream(&self) -> StreamId {
        StreamId::User(USERS[self.user].into())
    }

    fn streams(&self) -> Vec<StreamId> {
        let rooms = self.rooms.iter().map(|&r| StreamId::Room(ROOMS[r].into()));
        std::iter::once(self.user_stream()).chain(rooms).collect()
    }

    /// True if the device receives `entry` of one of its streams.
    fn selects(&self, entry: &Entry) -> bool {
        entry.thread.is_none() || entry.thread == self.thread
    }
}

/// What one connection read so far.
#[derive(Debug, Default)]
struct ConnView {
    /// Frames checked.
    read: usize,
    /// Frames of its opening replay (a `gap` may only come among them).
    replay_end: usize,
    /// The last `(epoch, seq)` per stream.
    last: HashMap<StreamId, (u64, u64)>,
    /// Runs as seen on this connection.
    runs: HashMap<String, RunView>,
}

/// A run slot of a user: the current run and where it is.
#[derive(Debug, Clone)]
struct Slot {
    run: String,
    thread: Option<usize>,
    state: RunState,
}

/// Where a run is, for the producer.
#[derive(Debug, Clone, PartialEq)]
enum RunState {
    Idle,
    /// Started; the tools executing.
    Running(Vec<&'static str>),
    Ended,
}

/// The hub under test, the shadow of its streams, and the devices.
struct World {
    h: Harness,
    shadow: Shadow,
    devices: Vec<Device>,
    views: HashMap<ConnId, ConnView>,
    /// Two run slots per user.
    slots: Vec<Vec<Slot>>,
    runs_started: usize,
    published: u64,
}

fn event(n: u64) -> String {
    format!("m{n}")
}

fn fail(message: String) -> TestCaseError {
    TestCaseError::fail(message)
}

impl World {
    fn new(case: &Case) -> Self {
        let devices = case
            .devices
            .iter()
            .map(|d| Device {
                user: d.user,
                thread: d.on_t0.then_some(0),
                rooms: d.rooms.clone(),
                conns: Vec::new(),
                connected: false,
                reading: true,
                cursor: BTreeMap::new(),
                runs: HashMap::new(),
                ended: HashSet::new(),
            })
            .collect();
        let slot = Slot {
            run: String::new(),
            thread: None,
            state: RunState::Idle,
        };
        Self {
            h: Harness::new(config(case.max_messages)),
            shadow: Shadow {
                max_messages: case.max_messages,
                ..Shadow::default()
            },
            devices,
            views: HashMap::new(),
            slots: vec![vec![slot; 2]; USERS.len()],
            runs_started: 0,
            published: 0,
        }
    }

    fn open_for(&self, d: usize) -> Open {
        let device = &self.devices[d];
        let mut open = Open::new(USERS[device.user]);
        if let Some(t) = device.thread {
            open = open.thread(THREADS[t]);
        }
        open
    }

    /// Every device connects and joins its rooms before anything is published: the `welcome`
    /// and `joined` positions (seq 0) are where each starts on its streams.
    fn connect_all(&mut self) -> Result<(), TestCaseError> {
        for d in 0..self.devices.len() {
            let conn = self
                .h
                .open(self.open_for(d))
                .map_err(|e| fail(format!("open refused: {e}")))?;
            self.shadow.ensure(&self.devices[d].user_stream());
            let device = &mut self.devices[d];
            device.conns.push(conn);
            device.connected = true;
            for r in device.rooms.clone() {
                self.h
                    .send(conn, &json!({"type": "join", "room": ROOMS[r]}).to_string());
                self.shadow.ensure(&StreamId::Room(ROOMS[r].into()));
            }
            self.sync()?;
            let frames = self.h.frames(conn).to_vec();
            let kinds: Vec<&str> = frames
                .iter()
                .map(|f| f["type"].as_str().unwrap_or(""))
                .collect();
            let mut expected = vec!["welcome"];
            expected.extend(self.devices[d].rooms.iter().map(|_| "joined"));
            prop_assert_eq!(kinds, expected);
            for f in &frames {
                let stream: StreamId = f["stream"].as_str().unwrap_or("").parse().map_err(fail)?;
                prop_assert_eq!(f["seq"].as_u64(), Some(0));
                let epoch = f["epoch"].as_u64().unwrap_or(0);
                self.devices[d]
                    .cursor
                    .insert(stream, Position { epoch, seq: 0 });
            }
            self.views.entry(conn).or_default().read = frames.len();
            self.shadow.max_epoch = self.shadow.learned_epoch;
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let devices = self.devices.len();
        match *op {
            Op::PublishUser { user, thread, big } => {
                self.published += 1;
                let n = self.published;
                let target = match thread {
                    None => Target::User(USERS[user].into()),
                    Some(t) => Target::Thread {
                        user: USERS[user].into(),
                        thread: THREADS[t].into(),
                    },
                };
                let delivery = self.h.publish(target, message(n, big));
                let stream = StreamId::User(USERS[user].into());
                let entry = Entry {
                    item: Item::Message(n),
                    thread,
                };
                self.appended(&stream, entry, &delivery)?;
            }
            Op::PublishRoom { room, big } => {
                self.published += 1;
                let n = self.published;
                let delivery = self
                    .h
                    .publish(Target::Room(ROOMS[room].into()), message(n, big));
                let stream = StreamId::Room(ROOMS[room].into());
                let members = self
                    .devices
                    .iter()
                    .any(|d| d.connected && d.rooms.contains(&room));
                if members || self.shadow.streams.contains_key(&stream) {
                    let entry = Entry {
                        item: Item::Message(n),
                        thread: None,
                    };
                    self.appended(&stream, entry, &delivery)?;
                } else {
                    prop_assert_eq!(delivery.position, None, "a room without members or history");
                }
            }
            Op::Agent { user, slot, action } => self.agent(user, slot, action)?,
            Op::ProducerLost { user, slot } => {
                let s = self.slots[user][slot].clone();
                let (user_id, run_id): (UserId, RunId) =
                    (USERS[user].into(), s.run.as_str().into());
                self.h.input(Input::ProducerLost {
                    user: &user_id,
                    run: &run_id,
                });
                if matches!(s.state, RunState::Running(_)) {
                    self.slots[user][slot].state = RunState::Ended;
                    let entry = Entry {
                        item: Item::Run {
                            run: s.run,
                            kind: "producer_lost",
                            tool: None,
                        },
                        thread: s.thread,
                    };
                    self.shadow
                        .append(&StreamId::User(USERS[user].into()), entry);
                }
            }
            Op::Drop { device } => {
                let d = device % devices;
                if self.devices[d].connected {
                    self.h.drop_connection(self.devices[d].conn());
                    self.disconnected(d);
                }
            }
            Op::Reconnect { device, drain } => {
                let d = device % devices;
                if !self.devices[d].connected {
                    self.reconnect(d, drain)?;
                }
            }
            Op::Reading { device, reading } => {
                let d = device % devices;
                if self.devices[d].connected {
                    self.h.set_reading(self.devices[d].conn(), reading);
                    self.devices[d].reading = reading;
                }
            }
            Op::Tick { ms } => self.h.advance(Duration::from_millis(ms)),
            Op::LongTick => {
                self.h.advance(LONG_TICK);
                for s in self.shadow.streams.values_mut() {
                    s.oldest = s.head() + 1;
                }
                let idle: Vec<StreamId> = self
                    .shadow
                    .streams
                    .keys()
                    .filter(|s| !self.interest(s))
                    .cloned()
                    .collect();
                for s in idle {
                    self.shadow.remove(&s);
                }
            }
        }
        self.after()
    }

    /// A sequenced message went into `stream`; the delivery reports its position.
    fn appended(
        &mut self,
        stream: &StreamId,
        entry: Entry,
        delivery: &Delivery,
    ) -> Result<(), TestCaseError> {
        let head = self.shadow.append(stream, entry);
        let position = delivery
            .position
            .ok_or_else(|| fail(format!("no position for a message to {stream}")))?;
        prop_assert_eq!(position.seq, head);
        self.shadow.learn(stream, position)
    }

    /// The next event of run slot `slot` of `user`: a new run when the slot is idle or ended
    /// (or, for some actions, an event for the ended run, which is refused); otherwise an event
    /// picked by `action`, valid or not for the run's state.
    fn agent(&mut self, user: usize, slot: usize, action: usize) -> Result<(), TestCaseError> {
        let s = &mut self.slots[user][slot];
        let (event, tool, valid) = match &s.state {
            RunState::Ended if action % 6 == 0 => (thinking(), None, false),
            RunState::Idle | RunState::Ended => {
                self.runs_started += 1;
                s.run = format!("{}-run{}", USERS[user], self.runs_started);
                s.thread = [None, Some(0), Some(1)][action % 3];
                s.state = RunState::Idle;
                (AgentEvent::AgentStarted { data: json!(null) }, None, true)
            }
            RunState::Running(open) => match action % 9 {
                0 | 1 => (thinking(), None, true),
                2 | 3 => {
                    let tool = TOOLS[action % 2];
                    let event = AgentEvent::ToolExecuting {
                        tool: tool.into(),
                        call_id: None,
                        input: json!(null),
                    };
                    (event, Some(tool), !open.contains(&tool))
                }
                4 | 5 => {
                    let tool = TOOLS[action % 2];
                    let event = AgentEvent::ToolCompleted {
                        tool: tool.into(),
                        call_id: None,
                        output: json!(null),
                    };
                    (event, Some(tool), open.contains(&tool))
                }
                6 => (
                    AgentEvent::AgentCompleted {
                        result: json!(null),
                    },
                    None,
                    open.is_empty(),
                ),
                7 => (
                    AgentEvent::AgentFailed {
                        error: "boom".into(),
                    },
                    None,
                    true,
                ),
                _ if action < 9 => (AgentEvent::AgentCancelled { reason: None }, None, true),
                _ => (AgentEvent::AgentStarted { data: json!(null) }, None, false),
            },
        };
        let kind = event.kind().as_str();
        let update = AgentUpdate {
            run: s.run.as_str().into(),
            agent: "planner".into(),
            thread: s.thread.map(|t| THREADS[t].into()),
            event,
        };
        let (run, thread) = (s.run.clone(), s.thread);
        let user_id: UserId = USERS[user].into();
        let stream = StreamId::User(user_id.clone());
        let head = self.shadow.streams.get(&stream).map(Incarnation::head);
        let result = self
            .h
            .with_hub(|hub, now| hub.send_agent_update(now, &user_id, update));
        match (result, valid) {
            (Ok(delivery), true) => {
                let s = &mut self.slots[user][slot];
                s.state = match (&s.state, kind, tool) {
                    (_, "agent_started", _) => RunState::Running(Vec::new()),
                    (_, kind, _) if is_ending(kind) => RunState::Ended,
                    (RunState::Running(open), "tool_executing", Some(tool)) => {
                        RunState::Running([open.as_slice(), &[tool]].concat())
                    }
                    (RunState::Running(open), "tool_completed", Some(tool)) => {
                        RunState::Running(open.iter().copied().filter(|t| *t != tool).collect())
                    }
                    (state, _, _) => state.clone(),
                };
                let entry = Entry {
                    item: Item::Run { run, kind, tool },
                    thread,
                };
                self.appended(&stream, entry, &delivery)
            }
            (Err(PublishError::Run(_)), false) => {
                let now = self.shadow.streams.get(&stream).map(Incarnation::head);
                prop_assert_eq!(now, head, "a refused event took a sequence number");
                Ok(())
            }
            (result, valid) => Err(fail(format!(
                "{kind} of {run}: the hub answered {result:?}, the run automaton says valid={valid}"
            ))),
        }
    }

    /// True if the hub keeps `stream` for someone on it: the user is connected, or the room has
    /// a member.
    fn interest(&self, stream: &StreamId) -> bool {
        self.devices.iter().any(|d| {
            d.connected
                && match stream {
                    StreamId::User(u) => USERS[d.user] == u.as_str(),
                    StreamId::Room(r) => d.rooms.iter().any(|&i| ROOMS[i] == r.as_str()),
                }
        })
    }

    /// Device `d`'s connection closed: streams nobody is on any more and with nothing in
    /// history are dropped.
    fn disconnected(&mut self, d: usize) {
        self.devices[d].connected = false;
        for stream in self.devices[d].streams() {
            let empty = self
                .shadow
                .streams
                .get(&stream)
                .is_some_and(Incarnation::is_empty);
            if empty && !self.interest(&stream) {
                self.shadow.remove(&stream);
            }
        }
    }

    /// Reconnect device `d` with the protocol's client algorithm, through the harness: the
    /// user-stream position at connect, then a `resume` for its rooms. Checks that the new
    /// connection receives exactly the predicted `welcome`/`joined`, `gap`s and replays.
    fn reconnect(&mut self, d: usize, drain: bool) -> Result<(), TestCaseError> {
        let old = self.devices[d].conn();
        if drain {
            self.h.set_reading(old, true);
            self.absorb(d)?;
        }
        // The harness's client tracked the same positions as the device, for what it read.
        for (stream, p) in &self.h.client(old).positions {
            prop_assert_eq!(Some(p), self.devices[d].cursor.get(stream), "{}", stream);
        }
        let device = &self.devices[d];
        let user_stream = device.user_stream();
        let open = self.open_for(d).resume(device.cursor[&user_stream]);
        let rest: Vec<Value> = device
            .cursor
            .iter()
            .filter(|(s, _)| {
                matches!(s, StreamId::Room(_)) && !self.h.client(old).positions.contains_key(*s)
            })
            .map(|(s, p)| json!({"stream": s, "epoch": p.epoch, "seq": p.seq}))
            .collect();
        let conn = self
            .h
            .reconnect(old, open)
            .map_err(|e| fail(format!("reconnect refused: {e}")))?;
        if !rest.is_empty() {
            let frame = json!({"type": "resume", "streams": rest});
            self.h.send(conn, &frame.to_string());
        }
        let device = &mut self.devices[d];
        device.conns.push(conn);
        device.connected = true;
        device.reading = true;
        for stream in device.streams() {
            self.shadow.ensure(&stream);
        }
        self.sync()?;

        // What the new connection must have received, stream by stream (with the optional
        // thoughts: one replayed behind others can be superseded by a newer one while queued).
        let device = &self.devices[d];
        let mut expected: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
        for stream in device.streams() {
            let s = &self.shadow.streams[&stream];
            let cursor = device.cursor[&stream];
            let epoch = s.epoch.expect("learned in sync");
            let (gap, from) = if cursor.epoch != epoch || cursor.seq > s.head() {
                (Some(("epoch", 1, s.oldest - 1)), 1)
            } else if cursor.seq + 1 < s.oldest {
                (Some(("history", cursor.seq + 1, s.oldest - 1)), s.oldest)
            } else {
                (None, cursor.seq + 1)
            };
            let mut labels = vec![match stream {
                StreamId::User(_) => ("welcome".to_owned(), false),
                StreamId::Room(_) => ("joined".to_owned(), false),
            }];
            labels
                .extend(gap.map(|(reason, from, to)| (format!("gap:{reason}:{from}-{to}"), false)));
            labels.extend(
                (from.max(s.oldest)..=s.head())
                    .filter(|&q| device.selects(s.entry(q)))
                    .map(|q| (format!("#{q}"), s.entry(q).optional())),
            );
            expected.insert(stream.to_string(), labels);
        }
        let frames = self.h.frames(conn);
        self.views.entry(conn).or_default().replay_end = frames.len();
        let mut received: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        for f in frames {
            let stream = f["stream"].as_str().unwrap_or("?").to_owned();
            let label = match f["type"].as_str().unwrap_or("") {
                kind @ ("welcome" | "joined") => kind.to_owned(),
                "gap" => format!(
                    "gap:{}:{}-{}",
                    f["reason"].as_str().unwrap_or(""),
                    f["from"],
                    f["to"]
                ),
                _ if f["seq"].is_u64() => format!("#{}", f["seq"]),
                kind => format!("unexpected {kind}: {f}"),
            };
            if order.last() != Some(&stream) {
                prop_assert!(
                    !order.contains(&stream),
                    "replay of {} interleaved: {:?}",
                    stream,
                    frames
                );
                order.push(stream.clone());
            }
            received.entry(stream).or_default().push(label);
        }
        prop_assert_eq!(
            order.first(),
            Some(&user_stream.to_string()),
            "welcome first"
        );
        let streams: Vec<&String> = expected.keys().collect();
        prop_assert_eq!(
            received.keys().collect::<Vec<_>>(),
            streams,
            "streams replayed"
        );
        for (stream, expected) in &expected {
            prop_assert!(
                matches_with_optional(&received[stream], expected),
                "on reconnecting, {:?} received {:?} on {}, expected {:?}",
                conn,
                received[stream],
                stream,
                expected
            );
        }
        Ok(())
    }

    /// After every operation: notice the hub's closes, compare streams, read what devices
    /// received, and check that each connected reader has everything.
    fn after(&mut self) -> Result<(), TestCaseError> {
        for d in 0..self.devices.len() {
            let device = &self.devices[d];
            if !device.connected {
                continue;
            }
            if let Some(closed) = self.h.closed(device.conn()) {
                prop_assert_eq!(closed, (4008, Reason::SlowConsumer));
                prop_assert!(!device.reading, "a reading client was closed as slow");
                self.disconnected(d);
            }
        }
        self.sync()?;
        for d in 0..self.devices.len() {
            self.absorb(d)?;
            self.check_complete(d)?;
        }
        self.shadow.max_epoch = self.shadow.learned_epoch;
        Ok(())
    }

    /// The hub keeps exactly the shadow's streams, with the same heads and epochs.
    fn sync(&mut self) -> Result<(), TestCaseError> {
        let all = USERS
            .iter()
            .map(|u| StreamId::User((*u).into()))
            .chain(ROOMS.iter().map(|r| StreamId::Room((*r).into())));
        for stream in all {
            match self.h.hub().stream_position(&stream) {
                Some(position) => self.shadow.learn(&stream, position)?,
                None => prop_assert!(
                    !self.shadow.streams.contains_key(&stream),
                    "the shadow keeps {}, the hub not",
                    stream
                ),
            }
        }
        let kept: usize = self
            .shadow
            .streams
            .values()
            .map(|s| (s.head() + 1 - s.oldest) as usize)
            .sum();
        prop_assert_eq!(
            self.h.hub().stats().history_messages,
            kept,
            "messages in history"
        );
        Ok(())
    }

    /// Check every frame device `d` read since the last call, in the order read.
    fn absorb(&mut self, d: usize) -> Result<(), TestCaseError> {
        for conn in self.devices[d].conns.clone() {
            let frames = self.h.frames(conn);
            let view = self.views.entry(conn).or_default();
            let (start, replay_end) = (view.read, view.replay_end);
            let new = frames[start..].to_vec();
            view.read = frames.len();
            for (i, frame) in (start..).zip(&new) {
                self.observe(d, conn, frame, i >= replay_end)
                    .map_err(|e| fail(format!("{conn:?} of device {d}, {frame}: {e}")))?;
            }
        }
        Ok(())
    }

    /// Check one frame device `d` read on `conn` (`live`: past the connection's opening
    /// replay) and move the device's position.
    fn observe(
        &mut self,
        d: usize,
        conn: ConnId,
        f: &Value,
        live: bool,
    ) -> Result<(), TestCaseError> {
        let kind = f["type"].as_str().unwrap_or_default();
        match kind {
            "welcome" | "joined" => return Ok(()),
            "gap" if live => return Err(fail("a gap on a live connection".into())),
            "gap" | "message" => {}
            _ if f["run"].is_string() => {}
            _ => return Err(fail(format!("unexpected {kind} frame"))),
        }
        let stream: StreamId = f["stream"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|e| fail(format!("not a stream frame: {e}")))?;
        let device = &mut self.devices[d];
        let view = self.views.entry(conn).or_default();
        let cursor = *device
            .cursor
            .get(&stream)
            .ok_or_else(|| fail(format!("device {d} does not follow {stream}")))?;
        let epoch = f["epoch"].as_u64().unwrap_or_default();
        if kind == "gap" {
            let (from, to) = (
                f["from"].as_u64().unwrap_or(0),
                f["to"].as_u64().unwrap_or(0),
            );
            match f["reason"].as_str() {
                Some("history") => {
                    prop_assert_eq!(epoch, cursor.epoch);
                    prop_assert_eq!(
                        from,
                        cursor.seq + 1,
                        "a history gap starts after the position"
                    );
                    prop_assert!(from <= to, "an empty history gap");
                }
                Some("epoch") => {
                    prop_assert_ne!(epoch, cursor.epoch, "an epoch gap within one epoch");
                    prop_assert_eq!(from, 1);
                }
                _ => return Err(fail("unknown gap reason".into())),
            }
            device
                .cursor
                .insert(stream.clone(), Position { epoch, seq: to });
            if matches!(stream, StreamId::User(_)) {
                device.runs.clear();
            }
            let last = view.last.entry(stream).or_default();
            *last = (*last).max((epoch, to));
            return Ok(());
        }
        let seq = f["seq"]
            .as_u64()
            .ok_or_else(|| fail(format!("unexpected {kind} frame")))?;
        let last = view.last.entry(stream.clone()).or_default();
        prop_assert!(
            (epoch, seq) > *last,
            "this connection already had {:?}",
            last
        );
        *last = (epoch, seq);
        let incarnation = self
            .shadow
            .lookup(&stream, epoch)
            .ok_or_else(|| fail(format!("no epoch {epoch} of {stream}")))?;
        prop_assert!(
            seq >= 1 && seq <= incarnation.head(),
            "no message {} in {}",
            seq,
            stream
        );
        let entry = incarnation.entry(seq);
        prop_assert!(entry.is(f), "is not {:?}", entry);
        prop_assert!(device.selects(entry), "not for this device's thread");
        prop_assert_eq!(epoch, cursor.epoch, "the epoch changed without a gap");
        prop_assert!(
            seq > cursor.seq,
            "received twice or out of order (position {:?})",
            cursor
        );
        for q in cursor.seq + 1..seq {
            let skipped = incarnation.entry(q);
            prop_assert!(
                !device.selects(skipped) || skipped.optional(),
                "{} of {} ({:?}) was skipped without a gap",
                q,
                stream,
                skipped
            );
        }
        device.cursor.insert(stream, Position { epoch, seq });
        if let Item::Run { run, kind, tool } = &entry.item {
            prop_assert!(
                !device.ended.contains(run),
                "an event of {} after its ending",
                run
            );
            if is_ending(kind) {
                device.ended.insert(run.clone());
            }
            let across = device.runs.entry(run.clone()).or_default().see(kind, *tool);
            let here = view.runs.entry(run.clone()).or_default().see(kind, *tool);
            across.map_err(|e| fail(format!("across resumes: {e}")))?;
            here.map_err(|e| fail(format!("on one connection: {e}")))?;
        }
        Ok(())
    }

    /// A connected device that reads has every message of its streams that it selects (only
    /// superseded or shed thoughts may be missing).
    fn check_complete(&self, d: usize) -> Result<(), TestCaseError> {
        let device = &self.devices[d];
        if !device.connected || !device.reading {
            return Ok(());
        }
        for stream in device.streams() {
            let s = self
                .shadow
                .streams
                .get(&stream)
                .ok_or_else(|| fail(format!("{stream} dropped while device {d} is on it")))?;
            let cursor = device.cursor[&stream];
            prop_assert_eq!(Some(cursor.epoch), s.epoch, "device {} on {}", d, stream);
            for q in cursor.seq + 1..=s.head() {
                let entry = s.entry(q);
                prop_assert!(
                    !device.selects(entry) || entry.optional(),
                    "device {} never received {} of {} ({:?})",
                    d,
                    q,
                    stream,
                    entry
                );
            }
        }
        Ok(())
    }

    /// Everyone comes back and reads: every device ends up with every message.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        for d in 0..self.devices.len() {
            if self.devices[d].connected {
                self.h.set_reading(self.devices[d].conn(), true);
                self.devices[d].reading = true;
            } else {
                self.reconnect(d, true)?;
            }
            self.after()?;
        }
        Ok(())
    }
}

/// True if `received` is `expected` without some of its optional labels.
fn matches_with_optional(received: &[String], expected: &[(String, bool)]) -> bool {
    let mut received = received.iter().peekable();
    for (label, optional) in expected {
        if received.peek() == Some(&label) {
            received.next();
        } else if !optional {
            return false;
        }
    }
    received.next().is_none()
}

fn thinking() -> AgentEvent {
    AgentEvent::AgentThinking {
        thought: "hm".into(),
    }
}

/// The `n`th message: reliable, small or about 400 bytes.
fn message(n: u64, big: bool) -> Message {
    let pad = if big { "x".repeat(400) } else { String::new() };
    Message::new(event(n), json!({ "n": n, "pad": pad }))
}

fn run(case: &Case) -> Result<(), TestCaseError> {
    let mut world = World::new(case);
    world.connect_all()?;
    for (i, op) in case.ops.iter().enumerate() {
        world
            .apply(op)
            .map_err(|e| fail(format!("step {i} {op:?}: {e}")))?;
    }
    world.finish().map_err(|e| fail(format!("at the end: {e}")))
}

fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/delivery_model.txt"
        )))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    /// Through drops, reconnects with resume positions, slow readers and expiring history,
    /// every device receives each message of its streams exactly once and in order, or a `gap`
    /// saying exactly what is lost; nothing is lost silently; runs follow their automaton.
    #[test]
    fn every_device_gets_each_message_once_in_order_or_an_exact_gap(case in case()) {
        run(&case)?;
    }
}
