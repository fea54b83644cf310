//! Devices that follow the protocol's client algorithm through drops, reconnects, resumes,
//! slow reading and time: the body of the `runs` and `resume` fuzz targets.
//!
//! A few devices (of two users, each on no thread or on one of two threads, each in some of two
//! rooms) connect and join their rooms before anything is published; then the case's operations
//! run. A device keeps, like a real client, its position per stream (the last `(epoch, seq)` it
//! read, or a `gap`'s `(epoch, to)`), reconnects with its user-stream position at connect and
//! resumes its rooms with a `resume` frame or a `join` with `since`. The test keeps a shadow of
//! every stream: its epochs, each message in order, and what history still holds.
//!
//! After every operation, for every frame each device read:
//!
//! 1. **Isolation.** A frame on a stream is on the device's own user stream or a room it is in,
//!    and is exactly the message or run event the shadow has at that sequence number, one the
//!    device's thread selects.
//! 2. **Exactly once, in order.** Across all of a device's connections, each stream's sequence
//!    numbers only grow; a message the device selects is never skipped unless a `gap` said so
//!    (only an `agent_thinking` superseded while it did not read may be missing).
//! 3. **Exact gaps.** A `gap` comes only in the replay that answers a reconnect or a `resume`,
//!    and covers exactly what is lost: reason `history` from the device's position to the message
//!    before the oldest history keeps, reason `epoch` (the stream was created anew) from 1 to
//!    the message before the oldest kept.
//! 4. **No silent loss.** A device that is connected and reading has everything up to each
//!    stream's head; the hub closes only a device that stopped reading, and only as a slow
//!    consumer (4008).
//! 5. **Runs.** Per connection and across a device's connections, each run's events follow the
//!    automaton of `docs/PROTOCOL.md` section 8: `agent_started` first (unless a gap cut the
//!    beginning off), a tool call completed only after it executed, `agent_completed` with no
//!    call open, nothing after the ending. An event the automaton refuses is refused to the
//!    producer and reaches nobody; a run whose producer is lost or idle ends with
//!    `producer_lost`. At the end every device has received every ended run's ending exactly
//!    once, unless a gap announced its loss.
//! 6. **Streams.** The hub keeps exactly the shadow's streams, with the same heads and history
//!    sizes; a stream created anew gets an epoch larger than any before it; every gauge the hub
//!    keeps as its state changes equals a recount of that state.

use arbitrary::Arbitrary;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;
use switchboard::testing::Harness;
use switchboard::{
    AgentEvent, AgentUpdate, BackpressureConfig, Config, ConnId, Delivery, EventKind,
    HistoryConfig, Message, Open, Position, PublishError, Reason, RunId, StreamId, Target, UserId,
};

const USERS: [&str; 2] = ["ana", "ben"];
const ROOMS: [&str; 2] = ["r0", "r1"];
const THREADS: [&str; 2] = ["t0", "t1"];
const TOOLS: [&str; 2] = ["search", "fetch"];
const CALLS: [Option<&str>; 3] = [None, Some("c1"), Some("c2")];
/// Devices in a case, at most.
const MAX_DEVICES: usize = 4;
/// Operations in a case, at most.
const MAX_OPS: usize = 100;
/// How long history keeps a message: longer than all the ticks of a case but the long ones.
const MAX_AGE: Duration = Duration::from_secs(7200);
/// How often the clean-up sweep runs (history expiry, idle runs).
const CLEANUP: Duration = Duration::from_secs(20);
/// A run with no event for this long ends with `producer_lost`.
const RUN_IDLE: Duration = Duration::from_secs(20);
/// Long enough for every running run to idle out.
const IDLE_TICK: Duration = Duration::from_secs(60);
/// Long enough for every message kept to expire, including the `producer_lost` of runs that
/// idle out during the tick.
const LONG_TICK: Duration = Duration::from_secs(7200 + 100);
const _: () = assert!(IDLE_TICK.as_secs() >= RUN_IDLE.as_secs() + 2 * CLEANUP.as_secs());
const _: () = assert!((MAX_OPS as u64) * IDLE_TICK.as_secs() < MAX_AGE.as_secs());
const _: () =
    assert!(LONG_TICK.as_secs() >= MAX_AGE.as_secs() + RUN_IDLE.as_secs() + 3 * CLEANUP.as_secs());

// ----- the cases ---------------------------------------------------------------------------

/// One device: its user, the thread it connects on, the rooms it is in.
#[derive(Debug, Clone, Arbitrary)]
pub struct DeviceSpec {
    /// The user (of two).
    pub user: u8,
    /// 0: no thread; 1 or 2: thread `t0` or `t1`.
    pub thread: u8,
    /// Bit `i` set: in room `r<i>`.
    pub rooms: u8,
}

/// What a device does that both targets share.
#[derive(Debug, Clone, Arbitrary)]
pub enum DeviceOp {
    /// The device's socket drops.
    Drop {
        /// The device.
        device: u8,
    },
    /// A disconnected device reconnects, after reading what its old socket held if `drain`,
    /// resuming its rooms with `join` + `since` frames if `by_join`, else one `resume` frame.
    Reconnect {
        /// The device.
        device: u8,
        /// Read what the old socket still held first.
        drain: bool,
        /// Rooms by `join` with `since`.
        by_join: bool,
    },
    /// A connected device stops or resumes reading.
    Reading {
        /// The device.
        device: u8,
        /// Reading or not.
        reading: bool,
    },
    /// The clock moves up to half a second.
    Tick {
        /// Milliseconds (taken modulo 501).
        ms: u16,
    },
    /// Past `max_age`: history empties, streams nobody is on are dropped, runs idle out.
    LongTick,
}

/// An operation of the `runs` target.
#[derive(Debug, Clone, Arbitrary)]
pub enum RunOp {
    /// The next event of a user's run slot, picked by `action`, valid or not.
    Event {
        /// The user.
        user: u8,
        /// One of two run slots of the user.
        slot: u8,
        /// Which event (see the module's `World::agent`).
        action: u8,
    },
    /// The producer of a slot's run goes away.
    ProducerLost {
        /// The user.
        user: u8,
        /// The slot.
        slot: u8,
    },
    /// Time passes until every running run idled out.
    Idle,
    /// A device operation.
    Device(DeviceOp),
}

/// An input of the `runs` target.
#[derive(Debug, Clone, Arbitrary)]
pub struct RunsCase {
    /// Messages history keeps per stream (3 to 12).
    pub history: u8,
    /// The devices (1 to 4).
    pub devices: Vec<DeviceSpec>,
    /// The operations.
    pub ops: Vec<RunOp>,
}

/// An operation of the `resume` target.
#[derive(Debug, Clone, Arbitrary)]
pub enum ResumeOp {
    /// Publish to a user: 0 no thread, 1 or 2 a thread.
    PublishUser {
        /// The user.
        user: u8,
        /// The thread.
        thread: u8,
        /// About 400 bytes instead of a few dozen.
        big: bool,
    },
    /// Publish to a room.
    PublishRoom {
        /// The room.
        room: u8,
        /// About 400 bytes.
        big: bool,
    },
    /// A connected, reading device sends `resume` for its user stream (`None`) or one of its
    /// rooms, from its position.
    ResumeLive {
        /// The device.
        device: u8,
        /// The room, or the user stream.
        room: Option<u8>,
    },
    /// A device operation.
    Device(DeviceOp),
}

/// An input of the `resume` target.
#[derive(Debug, Clone, Arbitrary)]
pub struct ResumeCase {
    /// Messages history keeps per stream (3 to 12).
    pub history: u8,
    /// The devices (1 to 4).
    pub devices: Vec<DeviceSpec>,
    /// The operations.
    pub ops: Vec<ResumeOp>,
}

fn config(history: u8) -> Config {
    let mut config = Config::development();
    config.limits.max_connections_per_user = MAX_DEVICES;
    config.limits.max_strikes = 1_000_000;
    config.limits.message_burst = 1_000_000;
    config.backpressure = BackpressureConfig {
        inflight_bytes: 512,
        queue_messages: 4,
        queue_bytes: 64 * 1024,
    };
    config.history = HistoryConfig {
        max_messages: 3 + usize::from(history) % 10,
        max_bytes: 1 << 20,
        max_age: MAX_AGE,
        // The shadow keeps a room's history as long as any other (the shorter age of rooms
        // without members and the hub-wide budget have tests of their own).
        empty_room_max_age: MAX_AGE,
        max_total_bytes: usize::MAX,
    };
    config.cleanup_interval = CLEANUP;
    // Clients answer pings; rare pings keep the long ticks cheap.
    config.heartbeat.interval = Duration::from_secs(600);
    config.heartbeat.grace = Duration::from_secs(600);
    config.heartbeat.timeout = Duration::from_secs(1800);
    config.run_idle_timeout = RUN_IDLE;
    config.run_retention = LONG_TICK * 2;
    config
}

/// Run a `runs` case. The error says which step failed and how.
pub fn run_runs(case: &RunsCase) -> Result<(), String> {
    let Some(mut world) = World::new(case.history, &case.devices) else {
        return Ok(());
    };
    world.connect_all()?;
    for (i, op) in case.ops.iter().take(MAX_OPS).enumerate() {
        let r = match op {
            RunOp::Event { user, slot, action } => world.agent(
                usize::from(*user) % USERS.len(),
                usize::from(*slot) % 2,
                *action,
            ),
            RunOp::ProducerLost { user, slot } => {
                world.producer_lost(usize::from(*user) % USERS.len(), usize::from(*slot) % 2)
            }
            RunOp::Idle => world.advance(IDLE_TICK),
            RunOp::Device(op) => world.device_op(op),
        };
        r.and_then(|()| world.after())
            .map_err(|e| format!("step {i} {op:?}: {e}"))?;
    }
    world.finish().map_err(|e| format!("at the end: {e}"))
}

/// Run a `resume` case. The error says which step failed and how.
pub fn run_resume(case: &ResumeCase) -> Result<(), String> {
    let Some(mut world) = World::new(case.history, &case.devices) else {
        return Ok(());
    };
    world.connect_all()?;
    for (i, op) in case.ops.iter().take(MAX_OPS).enumerate() {
        let r = match op {
            ResumeOp::PublishUser { user, thread, big } => {
                world.publish_user(usize::from(*user) % USERS.len(), thread_of(*thread), *big)
            }
            ResumeOp::PublishRoom { room, big } => {
                world.publish_room(usize::from(*room) % ROOMS.len(), *big)
            }
            ResumeOp::ResumeLive { device, room } => world.resume_live(
                usize::from(*device) % world.devices.len(),
                room.map(|r| usize::from(r) % ROOMS.len()),
            ),
            ResumeOp::Device(op) => world.device_op(op),
        };
        r.and_then(|()| world.after())
            .map_err(|e| format!("step {i} {op:?}: {e}"))?;
    }
    world.finish().map_err(|e| format!("at the end: {e}"))
}

fn thread_of(t: u8) -> Option<usize> {
    match t % 3 {
        0 => None,
        t => Some(usize::from(t) - 1),
    }
}

// ----- the shadow of the streams -----------------------------------------------------------

/// What one message of a stream is.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    /// The `n`th application message.
    Message(u64),
    /// An agent run event: its frame type, and for tool events the tool and call id.
    Run {
        run: String,
        kind: &'static str,
        tool: Option<(&'static str, Option<&'static str>)>,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    item: Item,
    /// The thread a user-stream message is for (`None`: every connection of the user).
    thread: Option<usize>,
}

impl Entry {
    /// May be missing for a reader that fell behind (superseded in the lossy lane).
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
            Item::Run { run, kind, tool } => {
                let tool_matches = match tool {
                    None => true,
                    Some((tool, call)) => frame["tool"] == *tool && frame["call_id"] == json!(call),
                };
                frame["type"] == *kind && frame["run"] == run.as_str() && tool_matches
            }
        }
    }
}

/// One incarnation of a stream: its epoch (once learned), every message, and the first
/// sequence number history still holds.
#[derive(Debug, Clone)]
struct Incarnation {
    epoch: Option<u64>,
    entries: Vec<Entry>,
    oldest: u64,
}

impl Incarnation {
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
    history: u64,
    streams: BTreeMap<StreamId, Incarnation>,
    /// Incarnations dropped, by stream and epoch (frames read late may belong to them).
    retired: HashMap<(StreamId, u64), Incarnation>,
    /// The largest epoch learned before the current operation.
    max_epoch: u64,
    /// The largest epoch learned so far.
    learned_epoch: u64,
}

impl Shadow {
    fn ensure(&mut self, stream: &StreamId) -> &mut Incarnation {
        self.streams
            .entry(stream.clone())
            .or_insert_with(|| Incarnation {
                epoch: None,
                entries: Vec::new(),
                oldest: 1,
            })
    }

    fn append(&mut self, stream: &StreamId, entry: Entry) -> u64 {
        let history = self.history;
        let s = self.ensure(stream);
        s.entries.push(entry);
        let head = s.head();
        s.oldest = s.oldest.max((head + 1).saturating_sub(history));
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

    /// Learn or confirm the epoch of a stream the hub reports at `position`.
    fn learn(&mut self, stream: &StreamId, position: Position) -> Result<(), String> {
        let max_epoch = self.max_epoch;
        let s = self
            .streams
            .get_mut(stream)
            .ok_or_else(|| format!("the hub keeps {stream}, the shadow not"))?;
        ensure_eq!(position.seq, s.head(), "head of {}", stream);
        match s.epoch {
            Some(epoch) => ensure_eq!(position.epoch, epoch, "epoch of {}", stream),
            None => {
                ensure!(
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

// ----- devices and what they saw -----------------------------------------------------------

/// A run as one reader sees it, checked against the run automaton.
#[derive(Debug, Default)]
struct RunView {
    events: usize,
    started: bool,
    open: BTreeSet<String>,
    ended: bool,
}

impl RunView {
    /// See one event; `strict`: the reader saw the run from its beginning.
    fn see(&mut self, kind: &str, call: Option<String>, strict: bool) -> Result<(), String> {
        ensure!(!self.ended, "{kind} after the run ended");
        match (kind, call) {
            ("agent_started", _) => {
                ensure!(self.events == 0, "agent_started after other events");
                self.started = true;
            }
            (_, _) if strict && !self.started => {
                return Err(format!("{kind} before agent_started"))
            }
            ("tool_executing", Some(call)) => {
                let new = self.open.insert(call.clone());
                ensure!(
                    !self.started || new,
                    "tool_executing of {call} while it executes"
                );
            }
            ("tool_completed", Some(call)) => {
                let was = self.open.remove(&call);
                ensure!(
                    !self.started || was,
                    "tool_completed of {call} before it executed"
                );
            }
            ("agent_completed", _) => {
                ensure!(
                    !self.started || self.open.is_empty(),
                    "agent_completed with {:?} executing",
                    self.open
                );
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
    connected: bool,
    reading: bool,
    /// The client algorithm's position per stream.
    cursor: BTreeMap<StreamId, Position>,
    /// Runs as seen across all its connections.
    runs: HashMap<String, RunView>,
    /// Runs a user-stream gap may have cut.
    cut: HashSet<String>,
    /// Endings received per run, across its connections.
    endings: HashMap<String, u32>,
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
    read: usize,
    /// The last `(epoch, seq)` per stream.
    last: HashMap<StreamId, (u64, u64)>,
    runs: HashMap<String, RunView>,
}

/// Where a run slot's run is, for the producer.
#[derive(Debug, Clone, PartialEq)]
enum Producer {
    Idle,
    /// Started; the open tool calls (by call id, or tool name without one).
    Running(Vec<String>),
    Ended,
}

#[derive(Debug, Clone)]
struct Slot {
    run: String,
    thread: Option<usize>,
    state: Producer,
}

/// The hub, the shadow and the devices.
struct World {
    h: Harness,
    shadow: Shadow,
    devices: Vec<Device>,
    views: HashMap<ConnId, ConnView>,
    /// Two run slots per user.
    slots: Vec<Vec<Slot>>,
    /// Every run ever started: user, id, thread.
    started: Vec<(usize, String, Option<usize>)>,
    published: u64,
    /// The connection whose replay may carry `gap` frames during the current operation.
    replaying: Option<ConnId>,
}

fn event(n: u64) -> String {
    format!("m{n}")
}

/// The `n`th message: small or about 400 bytes.
fn message(n: u64, big: bool) -> Message {
    let pad = if big { "x".repeat(400) } else { String::new() };
    Message::new(event(n), json!({ "n": n, "pad": pad }))
}

impl World {
    fn new(history: u8, specs: &[DeviceSpec]) -> Option<Self> {
        let devices: Vec<Device> = specs
            .iter()
            .take(MAX_DEVICES)
            .map(|d| Device {
                user: usize::from(d.user) % USERS.len(),
                thread: thread_of(d.thread),
                rooms: (0..ROOMS.len())
                    .filter(|r| d.rooms & (1 << r) != 0)
                    .collect(),
                conns: Vec::new(),
                connected: false,
                reading: true,
                cursor: BTreeMap::new(),
                runs: HashMap::new(),
                cut: HashSet::new(),
                endings: HashMap::new(),
            })
            .collect();
        if devices.is_empty() {
            return None;
        }
        let config = config(history);
        let slot = Slot {
            run: String::new(),
            thread: None,
            state: Producer::Idle,
        };
        Some(Self {
            shadow: Shadow {
                history: config.history.max_messages as u64,
                ..Shadow::default()
            },
            h: Harness::new(config),
            devices,
            views: HashMap::new(),
            slots: vec![vec![slot; 2]; USERS.len()],
            started: Vec::new(),
            published: 0,
            replaying: None,
        })
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
    fn connect_all(&mut self) -> Result<(), String> {
        for d in 0..self.devices.len() {
            let conn = self
                .h
                .open(self.open_for(d))
                .map_err(|e| format!("open refused: {e}"))?;
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
            ensure_eq!(kinds, expected, "frames on connecting");
            for f in &frames {
                let stream: StreamId = f["stream"].as_str().unwrap_or("").parse()?;
                ensure_eq!(f["seq"].as_u64(), Some(0), "nothing published yet");
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

    fn device_op(&mut self, op: &DeviceOp) -> Result<(), String> {
        let n = self.devices.len();
        match *op {
            DeviceOp::Drop { device } => {
                let d = usize::from(device) % n;
                if self.devices[d].connected {
                    self.h.drop_connection(self.devices[d].conn());
                    self.disconnected(d);
                }
            }
            DeviceOp::Reconnect {
                device,
                drain,
                by_join,
            } => {
                let d = usize::from(device) % n;
                if !self.devices[d].connected {
                    self.reconnect(d, drain, by_join)?;
                }
            }
            DeviceOp::Reading { device, reading } => {
                let d = usize::from(device) % n;
                if self.devices[d].connected {
                    self.h.set_reading(self.devices[d].conn(), reading);
                    self.devices[d].reading = reading;
                }
            }
            DeviceOp::Tick { ms } => {
                self.advance(Duration::from_millis(u64::from(ms % 501)))?;
            }
            DeviceOp::LongTick => {
                self.advance(LONG_TICK)?;
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
        Ok(())
    }

    /// Move the clock; runs that idled out meanwhile ended with `producer_lost`, in the order
    /// their reports give.
    fn advance(&mut self, by: Duration) -> Result<(), String> {
        self.h.advance(by);
        let mut lost = Vec::new();
        for (user, name) in USERS.iter().enumerate() {
            for (slot, s) in self.slots[user].iter().enumerate() {
                if !matches!(s.state, Producer::Running(_)) {
                    continue;
                }
                let user_id: UserId = (*name).into();
                let report = self.h.hub().run_report(&user_id, &s.run.as_str().into());
                let report = report.ok_or_else(|| format!("no report of running {}", s.run))?;
                if let Some(ending) = report.ended {
                    ensure_eq!(ending, EventKind::ProducerLost, "{} idled out", s.run);
                    let seq = report.events.last().map_or(0, |e| e.seq);
                    lost.push((user, seq, slot));
                }
            }
        }
        lost.sort_unstable();
        for (user, seq, slot) in lost {
            let s = &mut self.slots[user][slot];
            s.state = Producer::Ended;
            let entry = Entry {
                item: Item::Run {
                    run: s.run.clone(),
                    kind: "producer_lost",
                    tool: None,
                },
                thread: s.thread,
            };
            let head = self
                .shadow
                .append(&StreamId::User(USERS[user].into()), entry);
            ensure_eq!(
                head,
                seq,
                "sequence number of {}'s idle producer_lost",
                USERS[user]
            );
        }
        Ok(())
    }

    fn publish_user(
        &mut self,
        user: usize,
        thread: Option<usize>,
        big: bool,
    ) -> Result<(), String> {
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
        self.appended(&stream, entry, &delivery)
    }

    fn publish_room(&mut self, room: usize, big: bool) -> Result<(), String> {
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
            self.appended(&stream, entry, &delivery)
        } else {
            ensure_eq!(delivery.position, None, "a room without members or history");
            Ok(())
        }
    }

    /// A sequenced message went into `stream`; the delivery reports its position.
    fn appended(
        &mut self,
        stream: &StreamId,
        entry: Entry,
        delivery: &Delivery,
    ) -> Result<(), String> {
        let head = self.shadow.append(stream, entry);
        let position = delivery
            .position
            .ok_or_else(|| format!("no position for a message to {stream}"))?;
        ensure_eq!(position.seq, head, "sequence number");
        self.shadow.learn(stream, position)
    }

    /// The next event of run slot `slot` of `user`: a new run when the slot is idle or ended
    /// (or, for some actions, an event for the ended run, which is refused); otherwise an event
    /// picked by `action`, valid or not for the run's state.
    fn agent(&mut self, user: usize, slot: usize, action: u8) -> Result<(), String> {
        let action = usize::from(action);
        let tool = TOOLS[(action / 10) % 2];
        let call_id = CALLS[(action / 20) % 3];
        let call = call_id.unwrap_or(tool).to_owned();
        let s = &mut self.slots[user][slot];
        let (event, valid) = match &s.state {
            Producer::Ended if action % 7 == 0 => (thinking(), false),
            Producer::Idle | Producer::Ended => {
                s.run = format!("{}-run{}", USERS[user], self.started.len() + 1);
                s.thread = [None, Some(0), Some(1)][action % 3];
                s.state = Producer::Idle;
                self.started.push((user, s.run.clone(), s.thread));
                (AgentEvent::AgentStarted { data: json!(null) }, true)
            }
            Producer::Running(open) => match action % 10 {
                0 | 1 => (thinking(), true),
                2 | 3 => {
                    let event = AgentEvent::ToolExecuting {
                        tool: tool.into(),
                        call_id: call_id.map(str::to_owned),
                        input: json!(null),
                    };
                    (event, !open.contains(&call))
                }
                4 | 5 => {
                    let event = AgentEvent::ToolCompleted {
                        tool: tool.into(),
                        call_id: call_id.map(str::to_owned),
                        output: json!(null),
                    };
                    (event, open.contains(&call))
                }
                6 => {
                    let done = AgentEvent::AgentCompleted {
                        result: json!(null),
                    };
                    (done, open.is_empty())
                }
                7 => (
                    AgentEvent::AgentFailed {
                        error: "boom".into(),
                    },
                    true,
                ),
                8 => (AgentEvent::AgentCancelled { reason: None }, true),
                _ => (AgentEvent::AgentStarted { data: json!(null) }, false),
            },
        };
        let kind = event.kind();
        let tool_of = matches!(kind, EventKind::ToolExecuting | EventKind::ToolCompleted)
            .then_some((tool, call_id));
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
                s.state = match (&s.state, kind) {
                    (_, EventKind::AgentStarted) => Producer::Running(Vec::new()),
                    (_, kind) if kind.is_ending() => Producer::Ended,
                    (Producer::Running(open), EventKind::ToolExecuting) => {
                        Producer::Running([open.as_slice(), &[call]].concat())
                    }
                    (Producer::Running(open), EventKind::ToolCompleted) => {
                        Producer::Running(open.iter().filter(|c| **c != call).cloned().collect())
                    }
                    (state, _) => state.clone(),
                };
                let entry = Entry {
                    item: Item::Run {
                        run,
                        kind: kind.as_str(),
                        tool: tool_of,
                    },
                    thread,
                };
                self.appended(&stream, entry, &delivery)
            }
            (Err(PublishError::Run(_)), false) => {
                let now = self.shadow.streams.get(&stream).map(Incarnation::head);
                ensure_eq!(now, head, "a refused event took a sequence number");
                Ok(())
            }
            (result, valid) => Err(format!(
                "{} of {run}: the hub answered {result:?}, the automaton says valid={valid}",
                kind.as_str()
            )),
        }
    }

    fn producer_lost(&mut self, user: usize, slot: usize) -> Result<(), String> {
        let s = self.slots[user][slot].clone();
        let (user_id, run_id): (UserId, RunId) = (USERS[user].into(), s.run.as_str().into());
        let lost = (self.h).with_hub(|hub, now| hub.producer_lost(now, &user_id, &run_id));
        let running = matches!(s.state, Producer::Running(_));
        ensure!(
            lost.is_some() == running,
            "producer_lost of {user_id:?}'s {run_id:?} reported {lost:?}; in progress: {running}"
        );
        if running {
            self.slots[user][slot].state = Producer::Ended;
            let entry = Entry {
                item: Item::Run {
                    run: s.run,
                    kind: "producer_lost",
                    tool: None,
                },
                thread: s.thread,
            };
            self.shadow.append(&StreamId::User(user_id), entry);
        }
        Ok(())
    }

    /// A connected, reading device asks to resume one of its streams from its position: the
    /// answer is `resumed` (after whatever was missing) or `already_live`.
    fn resume_live(&mut self, d: usize, room: Option<usize>) -> Result<(), String> {
        let device = &self.devices[d];
        if !device.connected || !device.reading {
            return Ok(());
        }
        let stream = match room {
            None => device.user_stream(),
            Some(r) if device.rooms.contains(&r) => StreamId::Room(ROOMS[r].into()),
            Some(_) => return Ok(()),
        };
        let p = device.cursor[&stream];
        let conn = device.conn();
        let frame = json!({"type": "resume", "streams": [
            {"stream": stream, "epoch": p.epoch, "seq": p.seq}
        ]});
        let before = self.h.frames(conn).len();
        self.h.send(conn, &frame.to_string());
        self.replaying = Some(conn);
        let answer: Vec<String> = self.h.frames(conn)[before..]
            .iter()
            .filter(|f| matches!(f["type"].as_str(), Some("resumed" | "error")))
            .map(|f| format!("{}{}", f["type"], f["code"]))
            .collect();
        let ok = answer == [r#""resumed"null"#] || answer == [r#""error""already_live""#];
        ensure!(ok, "resume of {stream} answered {answer:?}");
        Ok(())
    }

    /// True if the hub keeps `stream` for someone on it.
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

    /// Reconnect device `d` with the client algorithm: optionally read what the old socket
    /// still held, open with the user-stream position, then resume the rooms.
    fn reconnect(&mut self, d: usize, drain: bool, by_join: bool) -> Result<(), String> {
        let old = self.devices[d].conn();
        if drain {
            self.h.set_reading(old, true);
            self.absorb(d)?;
        }
        let device = &self.devices[d];
        let open = self
            .open_for(d)
            .resume(device.cursor[&device.user_stream()]);
        let rooms: Vec<(usize, Position)> = device
            .rooms
            .iter()
            .map(|&r| (r, device.cursor[&StreamId::Room(ROOMS[r].into())]))
            .collect();
        let conn = self
            .h
            .open(open)
            .map_err(|e| format!("reconnect refused: {e}"))?;
        self.replaying = Some(conn);
        let device = &mut self.devices[d];
        device.conns.push(conn);
        device.connected = true;
        device.reading = true;
        for stream in device.streams() {
            self.shadow.ensure(&stream);
        }
        if by_join {
            for (r, p) in rooms {
                let since = json!({"epoch": p.epoch, "seq": p.seq});
                let frame = json!({"type": "join", "room": ROOMS[r], "since": since});
                self.h.send(conn, &frame.to_string());
            }
        } else if !rooms.is_empty() {
            let streams: Vec<Value> = rooms
                .iter()
                .map(|(r, p)| {
                    let stream = StreamId::Room(ROOMS[*r].into());
                    json!({"stream": stream, "epoch": p.epoch, "seq": p.seq})
                })
                .collect();
            let frame = json!({"type": "resume", "streams": streams});
            self.h.send(conn, &frame.to_string());
        }
        Ok(())
    }

    /// After every operation: notice the hub's closes, compare streams, read what devices
    /// received, and check that each connected reader has everything.
    fn after(&mut self) -> Result<(), String> {
        for d in 0..self.devices.len() {
            let device = &self.devices[d];
            if !device.connected {
                continue;
            }
            if let Some(closed) = self.h.closed(device.conn()) {
                ensure_eq!(
                    closed,
                    (4008, Reason::SlowConsumer),
                    "close of device {}",
                    d
                );
                ensure!(!device.reading, "a reading client was closed as slow");
                self.disconnected(d);
            }
        }
        self.sync()?;
        for d in 0..self.devices.len() {
            self.absorb(d)?;
            self.check_complete(d)?;
        }
        self.replaying = None;
        self.shadow.max_epoch = self.shadow.learned_epoch;
        Ok(())
    }

    /// The hub keeps exactly the shadow's streams, with the same heads and history sizes.
    fn sync(&mut self) -> Result<(), String> {
        let all = USERS
            .iter()
            .map(|u| StreamId::User((*u).into()))
            .chain(ROOMS.iter().map(|r| StreamId::Room((*r).into())));
        for stream in all {
            match self.h.hub().stream_position(&stream) {
                Some(position) => self.shadow.learn(&stream, position)?,
                None => ensure!(
                    !self.shadow.streams.contains_key(&stream),
                    "the shadow keeps {}, the hub not",
                    stream
                ),
            }
        }
        let kept: u64 = self
            .shadow
            .streams
            .values()
            .map(|s| s.head() + 1 - s.oldest)
            .sum();
        let stats = self.h.hub().stats();
        ensure_eq!(stats.history_messages as u64, kept, "messages in history");
        let recounted = self.h.hub().recounted_stats();
        ensure_eq!(stats, recounted, "gauges kept against a recount");
        Ok(())
    }

    /// Check every frame device `d` read since the last call, in the order read.
    fn absorb(&mut self, d: usize) -> Result<(), String> {
        for conn in self.devices[d].conns.clone() {
            let frames = self.h.frames(conn);
            let view = self.views.entry(conn).or_default();
            let start = view.read;
            let new = frames[start..].to_vec();
            view.read = frames.len();
            for frame in &new {
                self.observe(d, conn, frame)
                    .map_err(|e| format!("{conn:?} of device {d}, {frame}: {e}"))?;
            }
        }
        Ok(())
    }

    /// Check one frame device `d` read on `conn` and move the device's position.
    fn observe(&mut self, d: usize, conn: ConnId, f: &Value) -> Result<(), String> {
        let kind = f["type"].as_str().unwrap_or_default();
        let replay = self.replaying == Some(conn);
        match kind {
            "welcome" | "joined" | "resumed" => return Ok(()),
            "error" if f["code"] == "already_live" => return Ok(()),
            "gap" if !replay => return Err("a gap outside a replay".into()),
            "gap" | "message" => {}
            _ if f["run"].is_string() => {}
            _ => return Err(format!("unexpected {kind} frame")),
        }
        let stream: StreamId = f["stream"].as_str().unwrap_or_default().parse()?;
        let device = &mut self.devices[d];
        let cursor = *device
            .cursor
            .get(&stream)
            .ok_or_else(|| format!("device {d} is not on {stream}"))?;
        let epoch = f["epoch"].as_u64().unwrap_or_default();
        let view = self.views.entry(conn).or_default();
        if kind == "gap" {
            let (from, to) = (
                f["from"].as_u64().unwrap_or(0),
                f["to"].as_u64().unwrap_or(0),
            );
            let current = self
                .shadow
                .streams
                .get(&stream)
                .ok_or_else(|| format!("a gap on {stream}, which the hub does not keep"))?;
            ensure_eq!(Some(epoch), current.epoch, "a gap in the current epoch");
            match f["reason"].as_str() {
                Some("history") => {
                    ensure_eq!(epoch, cursor.epoch, "a history gap in another epoch");
                    ensure_eq!(
                        from,
                        cursor.seq + 1,
                        "a history gap starts after the position"
                    );
                    ensure_eq!(
                        to,
                        current.oldest - 1,
                        "a history gap ends before the oldest kept"
                    );
                    ensure!(from <= to, "an empty history gap");
                }
                Some("epoch") => {
                    let stale = epoch != cursor.epoch || cursor.seq > current.head();
                    ensure!(stale, "an epoch gap for a position of this epoch");
                    ensure_eq!(from, 1, "an epoch gap starts at 1");
                    ensure_eq!(
                        to,
                        current.oldest - 1,
                        "an epoch gap ends before the oldest kept"
                    );
                }
                _ => return Err("unknown gap reason".into()),
            }
            device
                .cursor
                .insert(stream.clone(), Position { epoch, seq: to });
            if matches!(stream, StreamId::User(_)) {
                // Anything of the runs so far may be lost: they are no longer followed strictly.
                let user = device.user;
                device.runs.clear();
                view.runs.clear();
                let runs = self.started.iter().filter(|(u, _, _)| *u == user);
                device.cut.extend(runs.map(|(_, r, _)| r.clone()));
            }
            let last = view.last.entry(stream).or_default();
            *last = (*last).max((epoch, to));
            return Ok(());
        }
        let seq = f["seq"]
            .as_u64()
            .ok_or_else(|| format!("unexpected {kind} frame without seq"))?;
        let last = view.last.entry(stream.clone()).or_default();
        ensure!(
            (epoch, seq) > *last,
            "this connection already had {:?}",
            last
        );
        *last = (epoch, seq);
        let incarnation = self
            .shadow
            .lookup(&stream, epoch)
            .ok_or_else(|| format!("no epoch {epoch} of {stream}"))?;
        ensure!(
            seq >= 1 && seq <= incarnation.head(),
            "no message {} in {}",
            seq,
            stream
        );
        let entry = incarnation.entry(seq);
        ensure!(entry.is(f), "is not {:?}", entry);
        ensure!(device.selects(entry), "not for this device's thread");
        ensure_eq!(epoch, cursor.epoch, "the epoch changed without a gap");
        ensure!(
            seq > cursor.seq,
            "received twice or out of order (position {:?})",
            cursor
        );
        for q in cursor.seq + 1..seq {
            let skipped = incarnation.entry(q);
            ensure!(
                !device.selects(skipped) || skipped.optional(),
                "{} of {} ({:?}) was skipped without a gap",
                q,
                stream,
                skipped
            );
        }
        device.cursor.insert(stream, Position { epoch, seq });
        if let Item::Run { run, kind, tool } = &entry.item {
            let call = tool.map(|(tool, call)| call.unwrap_or(tool).to_owned());
            let strict = !device.cut.contains(run);
            if is_ending(kind) {
                *device.endings.entry(run.clone()).or_default() += 1;
            }
            let across =
                device
                    .runs
                    .entry(run.clone())
                    .or_default()
                    .see(kind, call.clone(), strict);
            // A connection that resumed from a position may start in the middle of a run.
            let here = view
                .runs
                .entry(run.clone())
                .or_default()
                .see(kind, call, false);
            across.map_err(|e| format!("across resumes: {e}"))?;
            here.map_err(|e| format!("on one connection: {e}"))?;
        }
        Ok(())
    }

    /// A connected device that reads has every message of its streams that it selects (only
    /// superseded thoughts may be missing).
    fn check_complete(&self, d: usize) -> Result<(), String> {
        let device = &self.devices[d];
        if !device.connected || !device.reading {
            return Ok(());
        }
        for stream in device.streams() {
            let s = self
                .shadow
                .streams
                .get(&stream)
                .ok_or_else(|| format!("{stream} dropped while device {d} is on it"))?;
            let cursor = device.cursor[&stream];
            ensure_eq!(Some(cursor.epoch), s.epoch, "device {} on {}", d, stream);
            for q in cursor.seq + 1..=s.head() {
                let entry = s.entry(q);
                ensure!(
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

    /// Everyone comes back and reads: every device ends up with every message, and with every
    /// ended run's ending exactly once unless a gap announced its loss.
    fn finish(&mut self) -> Result<(), String> {
        for d in 0..self.devices.len() {
            if self.devices[d].connected {
                self.h.set_reading(self.devices[d].conn(), true);
                self.devices[d].reading = true;
            } else {
                self.reconnect(d, true, d % 2 == 0)?;
            }
            self.after()?;
        }
        for (user, run, thread) in &self.started {
            let slot = self.slots[*user].iter().find(|s| s.run == *run);
            let ended = !matches!(slot, Some(s) if s.state != Producer::Ended);
            for (d, device) in self.devices.iter().enumerate() {
                let selects = thread.is_none() || *thread == device.thread;
                if device.user != *user || !selects {
                    continue;
                }
                let endings = device.endings.get(run).copied().unwrap_or(0);
                ensure!(
                    endings <= 1,
                    "device {d} received {endings} endings of {run}"
                );
                if ended && !device.cut.contains(run) {
                    ensure_eq!(endings, 1, "device {} and the ending of {}", d, run);
                }
            }
        }
        Ok(())
    }
}

fn thinking() -> AgentEvent {
    AgentEvent::AgentThinking {
        thought: "hm".into(),
    }
}
