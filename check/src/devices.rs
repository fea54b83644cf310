//! Devices that follow the protocol's client algorithm through drops, reconnects, resumes,
//! slow reading and time: the body of the `runs` and `resume` fuzz targets.
//!
//! A few devices (of two users, each on no thread or on one of two threads, each in some of two
//! rooms) connect and join their rooms before anything is published; then the case's operations
//! run. A device keeps, like a real client, its position per stream (the last `(epoch, seq)` it
//! read, or a `gap`'s `(epoch, to)`), reconnects with its user-stream position at connect and
//! resumes its rooms with a `resume` frame or a `join` with `since`. The test keeps a shadow of
//! every stream: its epochs, each message in order, and what history still holds. Epochs are
//! learned from the frames devices read (the `welcome` or `joined` of the connection that gets
//! on an incarnation first); what the hub reports of a stream (`Hub::stream_position`, a
//! publish's `Delivery`) is only checked against the shadow.
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
//!    consumer (4008). In the `resume` cases the model predicts which and when: with an
//!    in-flight budget of one byte, of the reliable live frames offered to a reader since it
//!    stopped the first is written and the next four queued, and the sixth closes it (see
//!    `Profile`).
//! 5. **Runs.** Per connection and across a device's connections, each run's events follow the
//!    automaton of `docs/PROTOCOL.md` section 8: `agent_started` first (unless a gap cut the
//!    beginning off), a tool call completed only after it executed, `agent_completed` with no
//!    call open, nothing after the ending. An event the automaton refuses is refused to the
//!    producer and reaches nobody; a run whose producer is lost or idle ends with
//!    `producer_lost`. At the end every device has received every ended run's ending exactly
//!    once, unless a gap announced its loss.
//! 6. **Streams.** The hub keeps exactly the shadow's streams, with the same heads and history
//!    sizes (in the `resume` cases history is bounded by count, by the bytes of its frames,
//!    each frame's length known from section 3, and by age, the clock moving in whole sweeps:
//!    the shadow drops exactly what the hub must, so every `gap` is exact); a stream created
//!    anew gets an epoch larger than any before it (checked in the order the shadow creates
//!    incarnations, module `epochs` of the crate); every gauge the hub keeps as its state
//!    changes equals a recount of that state.
//! 7. **Messages.** Agent runs stream messages as deltas (at the right offset or not, after
//!    their message's `final` one or not, outside a run); the hub refuses exactly those the
//!    automaton refuses. Each delta frame is the message's exact text from its offset to the
//!    end of the delta whose `seq` it carries, however many deltas a flush window, a queue or
//!    history joined into it; each device assembles every message by offset with no hole, no
//!    connection is sent live text it already has, and a connected reader holds every message
//!    so far but what a flush window may hold for less than its width (module `messages`).
//!    History keeps one entry per message, so the shadow's history sizes and gaps follow it.

use crate::frame_bytes::{check_epoch_digits, message_frame_bytes, EPOCH_BASE};
use arbitrary::Arbitrary;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};
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

mod connections;
mod messages;
mod producers;
mod profile;
mod reading;
mod shadow;

use messages::Msg;
use profile::{config, Profile, QUEUE};
use shadow::{Entry, Incarnation, Item, Shadow};

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
    /// The clock moves up to half a second (in the `resume` cases, in whole sweeps of 50 ms).
    Tick {
        /// Milliseconds (taken modulo 501).
        ms: u16,
    },
    /// By `max_age` or more: history empties, streams nobody is on are dropped, runs idle out.
    LongTick,
}

/// An operation of the `runs` target.
#[derive(Debug, Clone, Arbitrary)]
pub enum RunOp {
    /// The next event of a user's run slot, picked by `action`, valid or not (in a running
    /// run, `action % 16` from 10 to 15 is a message delta, to message `(action / 16) % 2`).
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
    /// The flush window of message deltas: off, 10, 40 or 300 ms (taken modulo 4).
    pub flush: u8,
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

/// The flush window a `runs` case's `flush` picks.
fn flush_of(flush: u8) -> Duration {
    Duration::from_millis([0, 10, 40, 300][usize::from(flush % 4)])
}

/// Run a `runs` case. The error says which step failed and how.
pub fn run_runs(case: &RunsCase) -> Result<(), String> {
    let flush = flush_of(case.flush);
    let Some(mut world) = World::new(case.history, flush, &case.devices, Profile::Runs) else {
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
    let flush = Config::development().limits.message_flush;
    let Some(mut world) = World::new(case.history, flush, &case.devices, Profile::Resume) else {
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
    /// Reliable live frames offered to its connection since it stopped reading: with the
    /// `resume` cases' budget, the first is written and the rest wait in its queue.
    offered: usize,
    /// The client algorithm's position per stream.
    cursor: BTreeMap<StreamId, Position>,
    /// Runs as seen across all its connections.
    runs: HashMap<String, RunView>,
    /// Runs a user-stream gap may have cut.
    cut: HashSet<String>,
    /// Endings received per run, across its connections.
    endings: HashMap<String, u32>,
    /// The (incarnation, seq) of user-stream thoughts it may never receive: offered while it
    /// was not connected and reading (shed from a full queue), or while they could still wait
    /// in its queue a newer thought of their run came (it was not reading, not connected, or
    /// both came in one replay). Any other thought is owed to it.
    superseded: BTreeSet<(usize, u64)>,
    /// Where the text of each message (by run and message) it assembled across its
    /// connections ends, in characters.
    texts: HashMap<(String, &'static str), u64>,
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

    /// True if the device must receive entry `seq` of `incarnation` (unless a gap says it is
    /// lost): it selects it, it is not a thought superseded while it waited, and it is not a
    /// message delta (whose text may come joined into a later frame of its message: the text
    /// the device assembles is checked instead, module `messages`).
    fn owes(&self, incarnation: &Incarnation, seq: u64) -> bool {
        let entry = incarnation.entry(seq);
        if entry.message().is_some() {
            return false;
        }
        let waited =
            entry.thought_of().is_some() && self.superseded.contains(&(incarnation.id, seq));
        self.selects(entry) && !waited
    }

    /// Thoughts of `incarnation` (the user stream) after `after` that a newer thought of the
    /// same run, at most `upto`, supersedes: they may never reach this device.
    fn supersede(&mut self, incarnation: &Incarnation, after: u64, upto: u64) {
        let mut newest: HashMap<&str, u64> = HashMap::new();
        for seq in after + 1..=upto {
            if let Some(run) = incarnation.entry(seq).thought_of() {
                newest.insert(run, seq);
            }
        }
        for seq in after + 1..=upto {
            let entry = incarnation.entry(seq);
            if let Some(run) = entry.thought_of() {
                if newest[run] > seq {
                    self.superseded.insert((incarnation.id, seq));
                }
            }
        }
    }
}

/// What one connection read so far.
#[derive(Debug, Default)]
struct ConnView {
    read: usize,
    /// The last `(epoch, seq)` per stream.
    last: HashMap<StreamId, (u64, u64)>,
    runs: HashMap<String, RunView>,
    /// Where the text of each message (by run and message) it received ends.
    texts: HashMap<(String, &'static str), u64>,
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
    /// The run's two messages, as its producer streams them.
    messages: [Msg; 2],
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
    /// The flush window of message deltas (zero: none).
    flush: Duration,
    /// The `resume` cases predict which stopped reader closes with 4008, and when, and which
    /// messages history drops by age (see [`Profile`]).
    profile: Profile,
}

fn event(n: u64) -> String {
    format!("m{n}")
}

/// The `n`th message: small or about 400 bytes.
fn message(n: u64, big: bool) -> Message {
    Message::new(event(n), data(n, big))
}

fn data(n: u64, big: bool) -> Value {
    let pad = if big { "x".repeat(400) } else { String::new() };
    json!({ "n": n, "pad": pad })
}

/// The length in bytes of the frame of the `n`th message at `seq` of `stream`, for `thread`.
fn frame_bytes(stream: &StreamId, seq: u64, thread: Option<usize>, n: u64, big: bool) -> usize {
    let thread = thread.map(|t| THREADS[t]);
    message_frame_bytes(stream, seq, (&event(n), data(n, big)), thread, None)
}
