//! The [`Hub`]: the one state machine that owns every connection, user, room, thread, stream
//! and agent run, and decides who receives what.

use crate::config::{BackpressureConfig, Config, UserLimitPolicy};
use crate::connection::{Connection, ConnectionInfo, Membership};
use crate::error::{OpenError, PublishError, RoomError, UnknownConnection};
use crate::id::{next_generation, AgentId, ConnId, RoomId, RunId, ThreadId, UserId};
use crate::io::{
    AppMessage, Delivery, Envelope, Input, Notice, Open, Output, RemoteTarget, WaiterId,
};
use crate::message::{Lane, Message};
use crate::outbox::{CoalesceKey, Offer};
use crate::protocol::{self, ClientFrame, ErrorCode, GapReason, RunFrame, Sequence, ServerFrame};
use crate::reason::Reason;
use crate::room::Rooms;
use crate::run::{AgentEvent, EventKind, Run, RunReport, Runs};
use crate::sequenced::{self, EntryMeta, Sequenced, Unsequenced};
use crate::stats::{Counters, Gauges, Stats};
use crate::stream::{AlreadyTaken, Entry, Position, Stream, StreamId, Streams};
use crate::target::{Audience, Target};
use crate::timer::{TimerKind, Timers};
use bytes::Bytes;
use hashbrown::HashMap;
use serde_json::value::RawValue;
use slab::Slab;
use smallvec::SmallVec;
use std::collections::VecDeque;
use std::time::Instant;

/// One event of an agent run, as the producer sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentUpdate {
    /// The run.
    pub run: RunId,
    /// The agent producing it (taken from `agent_started`; ignored afterwards).
    pub agent: AgentId,
    /// The thread the run belongs to (taken from `agent_started`; ignored afterwards). A run
    /// with a thread reaches the user's connections bound to it; one without reaches all of the
    /// user's connections.
    pub thread: Option<ThreadId>,
    /// The event.
    pub event: AgentEvent,
}

/// The output queue and counters: where frames for connections end up.
#[derive(Debug)]
struct Wire {
    outputs: VecDeque<Output>,
    counters: Counters,
    /// The connections' gauges, kept as their outboxes and heartbeats change.
    gauges: Gauges,
    limits: BackpressureConfig,
    /// Connections that overflowed during the current operation; closed at its end.
    slow: SmallVec<[ConnId; 4]>,
}

impl Wire {
    fn push_send(&mut self, id: ConnId, conn: &mut Connection, frame: Bytes) {
        let len = frame.len() as u64;
        conn.traffic.messages_out += 1;
        conn.traffic.bytes_out += len;
        self.counters.messages_out += 1;
        self.counters.bytes_out += len;
        self.outputs.push_back(Output::Send { conn: id, frame });
    }

    /// Offer a live `frame` to a connection through its outbox. True if it was sent or queued.
    fn offer(
        &mut self,
        id: ConnId,
        conn: &mut Connection,
        frame: &Bytes,
        coalesce: Option<&CoalesceKey>,
    ) -> bool {
        let backlog = &mut self.gauges.backlog;
        let offer = conn
            .outbox
            .offer(frame.clone(), coalesce, &self.limits, backlog);
        self.settle(id, conn, offer)
    }

    /// Offer a `frame` replayed from history: outside the queue limits (see [`crate::outbox`]).
    fn offer_replay(
        &mut self,
        id: ConnId,
        conn: &mut Connection,
        frame: &Bytes,
        coalesce: Option<&CoalesceKey>,
    ) -> bool {
        let backlog = &mut self.gauges.backlog;
        let offer = (conn.outbox).offer_replay(frame.clone(), coalesce, &self.limits, backlog);
        self.settle(id, conn, offer)
    }

    /// Act on what the outbox decided for a frame. True if it was sent or queued.
    fn settle(&mut self, id: ConnId, conn: &mut Connection, offer: Offer) -> bool {
        match offer {
            Offer::Send(frame) => {
                self.push_send(id, conn, frame);
                true
            }
            Offer::Queued => true,
            Offer::Coalesced => {
                self.counters.drops.add(Reason::Coalesced);
                true
            }
            Offer::Shed => {
                self.counters.drops.add(Reason::Shed);
                false
            }
            Offer::Overflow => {
                if !self.slow.contains(&id) {
                    self.slow.push(id);
                }
                false
            }
        }
    }

    fn notice(&mut self, notice: Notice) {
        self.outputs.push_back(Output::Notice(notice));
    }
}

/// The sans-IO WebSocket hub: the one state machine that owns every connection, user, room,
/// thread, stream and agent run, and decides who receives what.
///
/// # The contract (the drain invariant)
///
/// The caller feeds the hub inputs with the current time — [`Hub::open`],
/// [`Hub::handle_input`], [`Hub::publish`], [`Hub::send_agent_update`] and the other
/// requests — and after **every** one of them drains [`Hub::poll_output`] until it returns
/// `None`, performing each [`Output`]. The last thing it learns is [`Hub::poll_timeout`]: it
/// sleeps until then (or until the next input) and calls [`Hub::handle_timeout`], then drains
/// again. The hub never reads a clock, never sleeps, never touches a socket: a test steps time
/// by hand and replays exactly.
///
/// ```
/// use std::time::Instant;
/// use switchboard::{Config, Hub, Input, Message, Open, Output, Target};
///
/// let now = Instant::now();
/// let mut hub = Hub::new(Config::development());
/// let conn = hub.open(now, Open::new("alice")).unwrap();
/// hub.handle_input(now, Input::Text { conn, bytes: br#"{"type":"join","room":"lobby"}"# }).unwrap();
/// let delivery = hub.publish(now, Target::Room("lobby".into()), &Message::new("hello", 42.into())).unwrap();
/// assert_eq!(delivery.reached, 1);
/// while let Some(output) = hub.poll_output() {
///     match output {
///         Output::Send { conn, frame } => { /* write `frame` to `conn`, then Input::Flushed */ }
///         Output::Close { conn, code, .. } => { /* send a close frame with `code` */ }
///         _ => {}
///     }
/// }
/// let wake_at = hub.poll_timeout(); // sleep until then, then hub.handle_timeout(then)
/// ```
#[derive(Debug)]
pub struct Hub {
    config: Config,
    conns: Slab<Connection>,
    generations: Vec<u32>,
    users: HashMap<UserId, SmallVec<[ConnId; 3]>>,
    rooms: Rooms,
    streams: Streams,
    /// With shared streams: rooms this hub started serving whose head the sequencer has not
    /// given yet, with the joins waiting for it (they are answered with that head).
    awaiting: HashMap<RoomId, Vec<AwaitingJoin>>,
    runs: Runs,
    waiters: HashMap<WaiterId, UserId>,
    timers: Timers,
    cleanup_scheduled: bool,
    wire: Wire,
    next_epoch: u64,
    next_waiter: u64,
    /// Set by [`Hub::shutdown`]: `Reason::Shutdown` or `Reason::ServiceRestart`.
    shutting_down: Option<Reason>,
}

/// What a stream entry carries besides its frame: who among the stream's readers receive it
/// and what a replay needs to know of it.
#[derive(Debug, Clone, Copy, Default)]
struct Tags<'a> {
    /// Only connections bound to this thread (user streams).
    thread: Option<&'a ThreadId>,
    /// Connections left out.
    except: &'a [ConnId],
    /// The agent run it belongs to.
    run: Option<&'a RunId>,
    /// Agent thinking: replaced by a newer one while a reader is behind.
    coalesce: Option<&'a CoalesceKey>,
}

/// A join to a room whose head the sequencer has not given yet (shared streams).
#[derive(Debug)]
struct AwaitingJoin {
    conn: ConnId,
    since: Option<Position>,
    reference: Option<Box<RawValue>>,
}

fn raw(r: &Option<Box<RawValue>>) -> Option<&RawValue> {
    r.as_deref()
}

impl Hub {
    /// A hub with this configuration and nothing in it.
    pub fn new(config: Config) -> Self {
        Self {
            wire: Wire {
                outputs: VecDeque::new(),
                counters: Counters::default(),
                gauges: Gauges::default(),
                limits: config.backpressure.clone(),
                slow: SmallVec::new(),
            },
            next_epoch: config.epoch_base,
            config,
            conns: Slab::new(),
            generations: Vec::new(),
            users: HashMap::new(),
            rooms: Rooms::default(),
            streams: Streams::default(),
            awaiting: HashMap::new(),
            runs: Runs::default(),
            waiters: HashMap::new(),
            timers: Timers::default(),
            cleanup_scheduled: false,
            next_waiter: 0,
            shutting_down: None,
        }
    }

    /// The configuration the hub runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    // ----- the sans-IO contract -------------------------------------------------------------

    /// The next thing the transport or application must do, or `None` when drained.
    #[must_use = "every output must be performed (the drain invariant)"]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.wire.outputs.pop_front()
    }

    /// When [`Hub::handle_timeout`] must next be called. May be early (then nothing is due).
    #[must_use = "the hub must be woken at this instant"]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Run every timer due at `now`: pings, dead connections, waiters, clean-up.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(kind) = self.timers.pop_due(now) {
            match kind {
                TimerKind::Connection(id) => self.heartbeat(now, id),
                TimerKind::Waiter(waiter) => {
                    if let Some(user) = self.waiters.remove(&waiter) {
                        self.wire.notice(Notice::WaitExpired { waiter, user });
                    }
                }
                TimerKind::Cleanup => {
                    self.cleanup_scheduled = false;
                    self.cleanup(now);
                }
            }
        }
        self.close_slow();
    }

    /// Open a connection for an authenticated client. Sends `welcome`, then replays what the
    /// user missed (after `open.resume`, or what was buffered while the user was offline, and
    /// agent runs in progress on its thread). On error the transport closes the socket with
    /// [`OpenError::close_code`].
    pub fn open(&mut self, now: Instant, open: Open) -> Result<ConnId, OpenError> {
        if let Err(e) = self.admit(&open.user) {
            self.wire.counters.refused += 1;
            self.wire.counters.closes.add(e.reason());
            return Err(e);
        }
        let resume = open.resume;
        let user = open.user.clone();
        let entry = self.conns.vacant_entry();
        let index = entry.key();
        if self.generations.len() <= index {
            self.generations.resize(index + 1, 0);
        }
        let id = ConnId::new(self.config.shard, index, self.generations[index]);
        let conn = entry.insert(Connection::new(now, open, &self.config));
        self.wire.gauges.opened(&conn.heartbeat);
        self.timers.schedule(
            conn.heartbeat.deadline(&self.config.heartbeat),
            TimerKind::Connection(id),
        );
        let conns = self.users.entry(user.clone()).or_default();
        conns.push(id);
        if conns.len() == 1 {
            self.interest(StreamId::User(user.clone()), true);
        }
        let thread = self.conns[index].thread.clone();
        self.count_thread(id, &user, thread.as_ref(), true);
        self.wire.counters.opened += 1;

        let stream_id = StreamId::User(user.clone());
        let position = self.user_stream(&user).position();
        let conn = &mut self.conns[index];
        let welcome = ServerFrame::Welcome {
            conn: id,
            user: &user,
            thread: conn.thread.as_ref(),
            heartbeat_ms: self.config.heartbeat.interval.as_millis() as u64,
            stream: &stream_id,
            epoch: position.epoch,
            seq: position.seq,
        }
        .encode();
        self.wire.offer(id, conn, &welcome, None);
        self.catch_up_user(id, resume);
        self.wire.notice(Notice::Opened {
            conn: id,
            user: user.clone(),
        });
        self.resolve_waiters(&user, id);
        self.close_slow();
        Ok(id)
    }

    fn admit(&mut self, user: &UserId) -> Result<(), OpenError> {
        if let Some(reason) = self.shutting_down {
            let restart = reason == Reason::ServiceRestart;
            return Err(OpenError::ShuttingDown { restart });
        }
        let limits = &self.config.limits;
        let existing = self.users.get(user).map_or(&[][..], |c| c.as_slice());
        if existing.len() >= limits.max_connections_per_user {
            match limits.user_limit_policy {
                UserLimitPolicy::RejectNew => return Err(OpenError::UserLimit),
                UserLimitPolicy::EvictOldest => match existing.first() {
                    Some(&oldest) => self.close(oldest, Reason::Evicted),
                    // A limit of zero: there is nothing to evict to make room.
                    None => return Err(OpenError::UserLimit),
                },
            }
        }
        if self.conns.len() >= self.config.limits.max_connections {
            return Err(OpenError::ServerFull);
        }
        Ok(())
    }

    /// Feed one event from a socket (or from another node). Frames from clients are answered
    /// through outputs; the only error is a connection the hub does not know (already closed).
    pub fn handle_input(
        &mut self,
        now: Instant,
        input: Input<'_>,
    ) -> Result<(), UnknownConnection> {
        match input {
            Input::Text { conn, bytes } => self.on_text(now, conn, bytes)?,
            Input::Binary { conn, bytes } => {
                self.note_traffic(now, conn, bytes.len())?;
                self.close(conn, Reason::BinaryFrame);
            }
            Input::Ping { conn: id } => {
                let index = self.check(id)?;
                let conn = &mut self.conns[index];
                let resurrected =
                    (self.wire.gauges).heartbeat(&mut conn.heartbeat, |hb| hb.on_traffic(now));
                self.after_traffic(id, resurrected);
                self.rate_control_frame(now, id);
            }
            Input::Pong { conn: id, payload } => {
                let index = self.check(id)?;
                let conn = &mut self.conns[index];
                let config = &self.config.heartbeat;
                let (rtt, resurrected) = (self.wire.gauges)
                    .heartbeat(&mut conn.heartbeat, |hb| hb.on_pong(now, payload, config));
                self.after_traffic(id, resurrected);
                match rtt {
                    Some(rtt) => self.wire.counters.rtt.record(rtt),
                    None => self.rate_control_frame(now, id),
                }
            }
            Input::Flushed { conn: id, bytes } => {
                let index = self.check(id)?;
                let conn = &mut self.conns[index];
                let wire = &mut self.wire;
                let mut released = SmallVec::<[Bytes; 4]>::new();
                let backlog = &mut wire.gauges.backlog;
                conn.outbox
                    .flushed(bytes, &wire.limits, backlog, |frame| released.push(frame));
                for frame in released {
                    wire.push_send(id, conn, frame);
                }
            }
            Input::Closed { conn } => {
                self.check(conn)?;
                self.close(conn, Reason::PeerClosed);
            }
            Input::ProducerLost { user, run } => self.producer_lost(now, user, run),
            Input::Remote(envelope) => {
                let audience = envelope.audience();
                // With shared streams such a publish comes sealed, through the sequencer;
                // an envelope of it would be numbered a second time.
                if !self.sequenced_outside(&audience.target, &envelope.message) {
                    let from = envelope.from.as_ref();
                    self.deliver(now, &audience, &envelope.message, from);
                }
            }
            Input::Sequenced(sealed) => self.sequenced(now, sealed),
            Input::History(sealed) => self.restore(now, sealed),
            Input::StreamHead { stream, head } => self.stream_head(now, stream, head),
        }
        self.close_slow();
        Ok(())
    }

    // ----- connections ----------------------------------------------------------------------

    fn check(&self, id: ConnId) -> Result<usize, UnknownConnection> {
        let index = id.index();
        match (self.conns.get(index), self.generations.get(index)) {
            (Some(_), Some(&generation))
                if generation == id.generation() && id.shard() == self.config.shard =>
            {
                Ok(index)
            }
            _ => Err(UnknownConnection(id)),
        }
    }

    fn conn(&self, id: ConnId) -> Result<&Connection, UnknownConnection> {
        self.check(id).map(|i| &self.conns[i])
    }

    fn conn_mut(&mut self, id: ConnId) -> Result<&mut Connection, UnknownConnection> {
        self.check(id).map(|i| &mut self.conns[i])
    }

    /// Close a connection for `reason`: it leaves its rooms, its user and its thread at once,
    /// and (unless the peer already closed) the transport is told to send the close frame.
    fn close(&mut self, id: ConnId, reason: Reason) {
        let Ok(index) = self.check(id) else { return };
        let mut conn = self.conns.remove(index);
        self.generations[index] = next_generation(self.generations[index]);
        if matches!(
            reason,
            Reason::Shutdown
                | Reason::ServiceRestart
                | Reason::Normal
                | Reason::Disconnected
                | Reason::Evicted
        ) {
            for frame in conn.outbox.drain(&mut self.wire.gauges.backlog) {
                self.wire.push_send(id, &mut conn, frame);
            }
        }
        self.wire.gauges.closed(&mut conn);
        for m in &conn.rooms {
            self.remove_member(&m.room, id, m.slot);
        }
        if let Some(conns) = self.users.get_mut(&conn.user) {
            conns.retain(|c| *c != id);
            if conns.is_empty() {
                self.users.remove(&conn.user);
                let stream = StreamId::User(conn.user.clone());
                self.interest(stream.clone(), false);
                self.streams.remove_if_empty(&stream);
            }
        }
        self.count_thread(id, &conn.user, conn.thread.as_ref(), false);
        self.wire.counters.closes.add(reason);
        if let Some(code) = reason.close_code() {
            self.wire.outputs.push_back(Output::Close {
                conn: id,
                code,
                reason,
            });
        }
        self.wire.notice(Notice::Closed {
            conn: id,
            user: conn.user,
            reason,
        });
    }

    /// Count `id`'s `thread` in (`bound`) or out of the `threads` gauge. A thread counts while
    /// a connection of its user is bound to it: only when no other one is does it change.
    fn count_thread(&mut self, id: ConnId, user: &UserId, thread: Option<&ThreadId>, bound: bool) {
        let Some(thread) = thread else { return };
        let others = self.user_connections(user).iter().any(|&c| {
            c != id
                && self
                    .conns
                    .get(c.index())
                    .is_some_and(|o| o.thread.as_ref() == Some(thread))
        });
        let threads = &mut self.wire.gauges.threads;
        match (others, bound) {
            (true, _) => {}
            (false, true) => *threads += 1,
            (false, false) => *threads -= 1,
        }
    }

    fn remove_member(&mut self, room: &RoomId, id: ConnId, slot: usize) {
        if let Some(moved) = self.rooms.remove(room, id, slot) {
            let other = &mut self.conns[moved.conn.index()];
            if let Some(m) = other.rooms.iter_mut().find(|m| &m.room == room) {
                m.slot = moved.slot;
            }
        }
        if self.rooms.members(room).is_empty() {
            let stream = StreamId::Room(room.clone());
            self.awaiting.remove(room);
            self.interest(stream.clone(), false);
            self.streams.remove_if_empty(&stream);
        }
    }

    fn close_slow(&mut self) {
        while let Some(id) = self.wire.slow.pop() {
            self.close(id, Reason::SlowConsumer);
        }
    }

    /// Close one connection (the application's decision) with `reason`'s close code. A reason
    /// that has no close code (a drop reason, or `PeerClosed`) closes as `Normal` (1000): the
    /// client is always sent a close frame.
    pub fn close_connection(
        &mut self,
        id: ConnId,
        reason: Reason,
    ) -> Result<(), UnknownConnection> {
        self.check(id)?;
        let reason = match reason.close_code() {
            Some(_) => reason,
            None => Reason::Normal,
        };
        self.close(id, reason);
        self.close_slow();
        Ok(())
    }

    /// Close every connection of `user` with 4002. Returns how many were closed.
    pub fn disconnect_user(&mut self, user: &UserId) -> usize {
        let conns = self.users.get(user).cloned().unwrap_or_default();
        for &id in &conns {
            self.close(id, Reason::Disconnected);
        }
        conns.len()
    }

    /// Stop accepting connections and close every open one with `reason` (`Shutdown`, 1001,
    /// or `ServiceRestart`, 1012; any other reason closes as `Shutdown`) after handing out what
    /// was queued for it.
    pub fn shutdown(&mut self, reason: Reason) {
        let reason = match reason {
            Reason::ServiceRestart => reason,
            _ => Reason::Shutdown,
        };
        self.shutting_down = Some(reason);
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .map(|(i, _)| ConnId::new(self.config.shard, i, self.generations[i]))
            .collect();
        for id in ids {
            self.close(id, reason);
        }
    }

    /// True once [`Hub::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.is_some()
    }

    // ----- heartbeat ------------------------------------------------------------------------

    fn heartbeat(&mut self, now: Instant, id: ConnId) {
        let hb = &self.config.heartbeat;
        let Ok(index) = self.check(id) else { return };
        let conn = &mut self.conns[index];
        let deadline = conn.heartbeat.deadline(hb);
        if deadline > now {
            self.timers.schedule(deadline, TimerKind::Connection(id));
            return;
        }
        let tick = (self.wire.gauges).heartbeat(&mut conn.heartbeat, |h| h.poll(now, hb));
        if tick.missed_pong {
            self.wire.counters.missed_pongs += 1;
        }
        if tick.close {
            self.close(id, Reason::HeartbeatTimeout);
            return;
        }
        if tick.died {
            self.wire.notice(Notice::Dead { conn: id });
        }
        if let Some(nonce) = tick.ping {
            self.wire.outputs.push_back(Output::Ping {
                conn: id,
                payload: nonce.to_be_bytes(),
            });
        }
        self.timers
            .schedule(conn.heartbeat.deadline(hb), TimerKind::Connection(id));
    }

    fn note_traffic(
        &mut self,
        now: Instant,
        id: ConnId,
        len: usize,
    ) -> Result<(), UnknownConnection> {
        let index = self.check(id)?;
        let conn = &mut self.conns[index];
        conn.traffic.messages_in += 1;
        conn.traffic.bytes_in += len as u64;
        let resurrected =
            (self.wire.gauges).heartbeat(&mut conn.heartbeat, |hb| hb.on_traffic(now));
        self.wire.counters.messages_in += 1;
        self.wire.counters.bytes_in += len as u64;
        self.after_traffic(id, resurrected);
        Ok(())
    }

    fn after_traffic(&mut self, id: ConnId, resurrected: bool) {
        if resurrected {
            self.wire.counters.resurrections += 1;
            self.wire.notice(Notice::Resurrected { conn: id });
        }
    }

    // ----- client frames --------------------------------------------------------------------

    fn on_text(&mut self, now: Instant, id: ConnId, bytes: &[u8]) -> Result<(), UnknownConnection> {
        self.note_traffic(now, id, bytes.len())?;
        if bytes.len() > self.config.limits.max_frame_bytes {
            self.close(id, Reason::FrameTooLarge);
            return Ok(());
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            self.close(id, Reason::InvalidUtf8);
            return Ok(());
        };
        let conn = &mut self.conns[id.index()];
        if !conn.rate.try_take(now) {
            self.refuse(
                now,
                id,
                Reason::OverRate,
                ErrorCode::RateLimited,
                "slow down: frame dropped",
                None,
            );
            return Ok(());
        }
        match protocol::parse(text, &self.config) {
            Ok(parsed) => self.on_frame(now, id, parsed.frame, parsed.reference),
            Err(e) => {
                let reason = if e.code == ErrorCode::UnknownType {
                    Reason::UnknownType
                } else {
                    Reason::Malformed
                };
                self.refuse(now, id, reason, e.code, &e.message, e.reference.as_deref());
            }
        }
        Ok(())
    }

    /// Answer a bad frame with an `error` frame and a strike; past `max_strikes`, close.
    fn refuse(
        &mut self,
        now: Instant,
        id: ConnId,
        reason: Reason,
        code: ErrorCode,
        message: &str,
        reference: Option<&RawValue>,
    ) {
        if self.strike(now, id, reason) {
            self.send_error(id, code, message, reference);
        }
    }

    /// Count a frame dropped or refused for `reason` and take a strike for it; with no strike
    /// left, close the connection: 4029 if the frame was over the rate, 1008 otherwise.
    /// Whether the connection is still open.
    fn strike(&mut self, now: Instant, id: ConnId, reason: Reason) -> bool {
        self.wire.counters.drops.add(reason);
        let conn = &mut self.conns[id.index()];
        if conn.strikes.try_take(now) {
            return true;
        }
        let close = if reason == Reason::OverRate {
            Reason::RateLimited
        } else {
            Reason::ProtocolViolation
        };
        self.close(id, close);
        false
    }

    /// A control frame that answers nothing of the hub's (a ping, or a pong to no ping of
    /// ours) takes a token of the message rate as a text frame does. Past the rate it is
    /// counted as dropped (`over_rate`) and takes a strike, but gets no `error` frame: a flood
    /// of control frames may come from a client that never reads, and the answer to it must
    /// not be more to write. With no strike left the connection closes with 4029.
    fn rate_control_frame(&mut self, now: Instant, id: ConnId) {
        if !self.conns[id.index()].rate.try_take(now) {
            self.strike(now, id, Reason::OverRate);
        }
    }

    fn send_error(
        &mut self,
        id: ConnId,
        code: ErrorCode,
        message: &str,
        reference: Option<&RawValue>,
    ) {
        let frame = ServerFrame::Error {
            code,
            message,
            reference,
        }
        .encode();
        self.wire
            .offer(id, &mut self.conns[id.index()], &frame, None);
    }

    fn reply(&mut self, id: ConnId, frame: &ServerFrame<'_>) {
        let frame = frame.encode();
        self.wire
            .offer(id, &mut self.conns[id.index()], &frame, None);
    }

    fn on_frame(
        &mut self,
        now: Instant,
        id: ConnId,
        frame: ClientFrame,
        reference: Option<Box<RawValue>>,
    ) {
        let reference = raw(&reference);
        match frame {
            ClientFrame::Join { room, since } => {
                let conn = &self.conns[id.index()];
                if conn.membership(&room).is_some() {
                    if let Some(since) = since {
                        self.resume_room(id, &room, since, reference);
                    } else {
                        self.reply_joined(id, &room, reference);
                    }
                    return;
                }
                if let Err(e) = self.join(now, id, &room, since, reference) {
                    self.refuse_room(now, id, e, reference);
                }
            }
            ClientFrame::Leave { room } => match self.leave(id, &room) {
                Ok(()) => self.reply(
                    id,
                    &ServerFrame::Left {
                        room: &room,
                        reference,
                    },
                ),
                Err(e) => self.refuse_room(now, id, e, reference),
            },
            ClientFrame::Publish { room, event, data } => {
                if self.conns[id.index()].membership(&room).is_none() {
                    self.refuse_room(now, id, RoomError::NotMember, reference);
                    return;
                }
                let user = self.conns[id.index()].user.clone();
                let message = Message::new(event, data);
                let audience = Target::Room(room).except([id]);
                self.deliver(now, &audience, &message, Some(&user));
                self.relay(&audience, &message, Some(&user));
            }
            ClientFrame::Bind { thread } => self.bind(id, thread, reference),
            ClientFrame::Ping => self.reply(id, &ServerFrame::Pong { reference }),
            ClientFrame::Resume { streams } => {
                for s in streams {
                    match &s.stream {
                        StreamId::User(user) if *user == self.conns[id.index()].user => {
                            self.resume_user(id, s.position, reference)
                        }
                        StreamId::User(_) => {
                            self.refuse(
                                now,
                                id,
                                Reason::Forbidden,
                                ErrorCode::Forbidden,
                                "not your stream",
                                reference,
                            );
                        }
                        StreamId::Room(room) => {
                            if self.conns[id.index()].membership(room).is_some() {
                                self.resume_room(id, room, s.position, reference);
                            } else if let Err(e) =
                                self.join(now, id, room, Some(s.position), reference)
                            {
                                self.refuse_room(now, id, e, reference);
                            }
                        }
                    }
                    if self.check(id).is_err() {
                        return;
                    }
                }
            }
            ClientFrame::App { kind, payload } => {
                let conn = &self.conns[id.index()];
                let app = AppMessage {
                    conn: id,
                    user: conn.user.clone(),
                    thread: conn.thread.clone(),
                    kind,
                    data: payload,
                };
                self.wire.notice(Notice::App(Box::new(app)));
            }
        }
    }

    fn refuse_room(
        &mut self,
        now: Instant,
        id: ConnId,
        e: RoomError,
        reference: Option<&RawValue>,
    ) {
        let (reason, code) = match e {
            RoomError::Forbidden => (Reason::Forbidden, ErrorCode::Forbidden),
            RoomError::RoomFull => (Reason::LimitReached, ErrorCode::RoomFull),
            RoomError::TooManyRooms => (Reason::LimitReached, ErrorCode::TooManyRooms),
            RoomError::NotMember | RoomError::UnknownConnection(_) => {
                self.send_error(
                    id,
                    ErrorCode::NotMember,
                    "not a member of that room",
                    reference,
                );
                return;
            }
        };
        self.refuse(now, id, reason, code, &e.to_string(), reference);
    }

    // ----- rooms ----------------------------------------------------------------------------

    fn join(
        &mut self,
        now: Instant,
        id: ConnId,
        room: &RoomId,
        since: Option<Position>,
        reference: Option<&RawValue>,
    ) -> Result<(), RoomError> {
        let limits = &self.config.limits;
        let conn = self.conn(id)?;
        if conn.membership(room).is_some() {
            return Ok(());
        }
        if !conn.may_join(room) {
            return Err(RoomError::Forbidden);
        }
        if conn.rooms.len() >= limits.max_rooms_per_connection {
            return Err(RoomError::TooManyRooms);
        }
        if self.rooms.members(room).len() >= limits.max_members_per_room {
            return Err(RoomError::RoomFull);
        }
        let slot = self.rooms.add(room, id);
        if self.rooms.members(room).len() == 1 {
            let stream = StreamId::Room(room.clone());
            self.interest(stream.clone(), true);
            if self.config.shared_streams {
                self.awaiting.insert(room.clone(), Vec::new());
                self.wire.notice(Notice::Follow { stream, since });
            }
        }
        self.conns[id.index()].rooms.push(Membership {
            room: room.clone(),
            slot,
        });
        self.room_stream(now, room);
        // With shared streams, a member's position is the sequencer's: it is answered once
        // the sequencer gave the room's head (`Input::StreamHead`).
        if let Some(joins) = self.awaiting.get_mut(room) {
            joins.push(AwaitingJoin {
                conn: id,
                since,
                reference: reference.map(ToOwned::to_owned),
            });
            return Ok(());
        }
        self.answer_join(id, room, since, reference);
        Ok(())
    }

    /// Tell a new member where it stands in the room's stream, and replay what followed
    /// `since`.
    fn answer_join(
        &mut self,
        id: ConnId,
        room: &RoomId,
        since: Option<Position>,
        reference: Option<&RawValue>,
    ) {
        self.reply_joined(id, room, reference);
        let slot = self.conns[id.index()].membership(room).map(|m| m.slot);
        if let (Some(since), Some(slot)) = (since, slot) {
            self.catch_up_room(id, room, slot, since);
        }
    }

    /// The sequencer's head of a stream this hub started serving: entries after it will be
    /// handed to the hub. A fresh stream starts there; a room's waiting joins are answered.
    fn stream_head(&mut self, now: Instant, stream_id: &StreamId, head: Option<Position>) {
        let ready = match stream_id {
            StreamId::User(user) => {
                self.user_stream(user);
                true
            }
            StreamId::Room(room) if !self.rooms.members(room).is_empty() => {
                self.room_stream(now, room);
                true
            }
            StreamId::Room(_) => false,
        };
        if !ready {
            return;
        }
        if let Some(head) = head {
            let stream = self.streams.get_mut(stream_id).expect("created above");
            stream.start_at(head);
        }
        if let StreamId::Room(room) = stream_id {
            for join in self.awaiting.remove(room).unwrap_or_default() {
                if self.check(join.conn).is_ok() {
                    self.answer_join(join.conn, room, join.since, raw(&join.reference));
                }
            }
        }
    }

    fn reply_joined(&mut self, id: ConnId, room: &RoomId, reference: Option<&RawValue>) {
        let stream = StreamId::Room(room.clone());
        let position = self
            .streams
            .get(&stream)
            .map(Stream::position)
            .unwrap_or_default();
        let frame = ServerFrame::Joined {
            room,
            sequence: Sequence::at(&stream, position),
            reference,
        };
        self.reply(id, &frame);
    }

    fn leave(&mut self, id: ConnId, room: &RoomId) -> Result<(), RoomError> {
        let conn = self.conn_mut(id)?;
        let i = conn
            .rooms
            .iter()
            .position(|m| &m.room == room)
            .ok_or(RoomError::NotMember)?;
        let m = conn.rooms.swap_remove(i);
        self.remove_member(room, id, m.slot);
        Ok(())
    }

    /// Join `conn` to `room` on the server's initiative (the client gets `joined`).
    pub fn join_room(
        &mut self,
        now: Instant,
        conn: ConnId,
        room: &RoomId,
    ) -> Result<(), RoomError> {
        let r = self.join(now, conn, room, None, None);
        self.close_slow();
        r
    }

    /// Remove `conn` from `room` on the server's initiative (the client gets `left`).
    pub fn leave_room(&mut self, conn: ConnId, room: &RoomId) -> Result<(), RoomError> {
        self.leave(conn, room)?;
        self.reply(
            conn,
            &ServerFrame::Left {
                room,
                reference: None,
            },
        );
        self.close_slow();
        Ok(())
    }

    // ----- threads --------------------------------------------------------------------------

    fn bind(&mut self, id: ConnId, thread: Option<ThreadId>, reference: Option<&RawValue>) {
        let conn = &self.conns[id.index()];
        let (user, old) = (conn.user.clone(), conn.thread.clone());
        self.count_thread(id, &user, old.as_ref(), false);
        self.count_thread(id, &user, thread.as_ref(), true);
        let conn = &mut self.conns[id.index()];
        let changed = conn.thread != thread;
        conn.thread = thread;
        let frame = ServerFrame::Bound {
            thread: conn.thread.as_ref(),
            reference,
        }
        .encode();
        self.wire.offer(id, conn, &frame, None);
        if changed {
            self.catch_up_thread(id);
        }
    }

    /// Bind `conn` to `thread` (or unbind with `None`); the client gets `bound`, then the
    /// events so far of agent runs in progress on the new thread and the thread's messages
    /// that waited for a connection.
    pub fn update_connection_thread(
        &mut self,
        conn: ConnId,
        thread: Option<ThreadId>,
    ) -> Result<(), UnknownConnection> {
        self.check(conn)?;
        self.bind(conn, thread, None);
        self.close_slow();
        Ok(())
    }

    // ----- streams, catch-up, resume --------------------------------------------------------

    fn new_epoch(&mut self) -> u64 {
        let e = self.next_epoch;
        self.next_epoch += 1;
        e
    }

    fn user_stream(&mut self, user: &UserId) -> &mut Stream {
        let key = StreamId::User(user.clone());
        if !self.streams.contains_key(&key) {
            let stream = Stream::new(self.new_epoch());
            self.streams.insert(key.clone(), stream);
        }
        self.streams.get_mut(&key).expect("inserted above")
    }

    fn room_stream(&mut self, now: Instant, room: &RoomId) {
        let key = StreamId::Room(room.clone());
        if !self.streams.contains_key(&key) {
            let epoch = self.new_epoch();
            self.streams.insert(key, Stream::new(epoch));
            self.schedule_cleanup(now);
        }
    }

    fn schedule_cleanup(&mut self, now: Instant) {
        if !self.cleanup_scheduled {
            self.cleanup_scheduled = true;
            self.timers
                .schedule(now + self.config.cleanup_interval, TimerKind::Cleanup);
        }
    }

    fn send_gap(
        &mut self,
        id: ConnId,
        stream: &StreamId,
        epoch: u64,
        from: u64,
        to: u64,
        reason: GapReason,
    ) {
        self.wire.counters.gaps += 1;
        self.reply(
            id,
            &ServerFrame::Gap {
                stream,
                epoch,
                from,
                to,
                reason,
            },
        );
    }

    /// Replay `stream_id` to `id` after `after` (opening with a `gap` frame if history does not
    /// reach back, or the epoch changed), plus the older entries of `extra`, keeping to what
    /// the connection's thread selects. Returns the first sequence number the connection now
    /// has every message from and how many frames were replayed, or `None` if the hub keeps no
    /// such stream.
    fn replay(
        &mut self,
        id: ConnId,
        stream_id: &StreamId,
        after: Option<Position>,
        extra: &Older<'_>,
    ) -> Option<(u64, usize)> {
        let stream = self.streams.get_mut(stream_id)?;
        let conn = &mut self.conns[id.index()];
        // Pending entries lost to the history bounds are announced to the first connection
        // that would have received them; one with a position learns of its losses from that.
        let lost = match extra.pending {
            true => stream.take_lost(conn.thread.as_ref()),
            false => None,
        };
        if let Some(p) = after.filter(|_| self.config.shared_streams) {
            // With shared streams a stream this hub never received an entry of starts where
            // the reader is.
            stream.start_at(p);
        }
        let head = stream.position();
        let (gap, from) = match after {
            // With shared streams a reader may be ahead of this hub, which has not received
            // the latest entries yet: it is positioned after what it has, and nothing is lost.
            Some(p) if self.config.shared_streams && p.epoch == head.epoch && p.seq > head.seq => {
                (None, p.seq.saturating_add(1))
            }
            Some(p) => stream.catch_up_from(p),
            None => (lost, head.seq.saturating_add(1)),
        };
        if let Some(gap) = gap {
            let epoch = stream.epoch();
            self.send_gap(id, stream_id, epoch, gap.from, gap.to, gap.reason);
        }
        let stream = self.streams.get_mut(stream_id).expect("looked up above");
        let conn = &mut self.conns[id.index()];
        let with_older = !extra.runs.is_empty() || (extra.pending && stream.has_pending());
        let mut claimed: SmallVec<[u64; 8]> = SmallVec::new();
        let mut replayed = 0;
        for e in stream.entries_from(if with_older { 0 } else { from }) {
            let wanted = e.seq >= from
                || e.pending && extra.pending
                || e.run.as_ref().is_some_and(|r| extra.runs.contains(r));
            if wanted && conn.wants_thread(e.thread.as_ref()) {
                replayed += 1;
                if e.pending {
                    claimed.push(e.seq);
                }
                self.wire
                    .offer_replay(id, conn, &e.frame, e.coalesce.as_ref());
            }
        }
        for seq in claimed {
            stream.claim(seq);
        }
        self.wire.counters.replayed += replayed as u64;
        Some((from, replayed))
    }

    /// Replay the user stream to a connection that just opened: what followed `resume`, or,
    /// without a position, the events so far of runs in progress that it receives; and, either
    /// way, what waited for a connection like it (published while none was open).
    fn catch_up_user(&mut self, id: ConnId, resume: Option<Position>) {
        let conn = &self.conns[id.index()];
        let stream_id = StreamId::User(conn.user.clone());
        let runs: SmallVec<[RunId; 2]> = match resume {
            // A client with a position saw the runs' earlier events: it gets what follows.
            Some(_) => SmallVec::new(),
            None => self
                .runs
                .to_catch_up(&conn.user, conn.thread.as_ref(), true),
        };
        let older = Older {
            runs: &runs,
            pending: true,
        };
        if let Some((from, replayed)) = self.replay(id, &stream_id, resume, &older) {
            // Positioned from here: a later `resume` frame cannot replay these frames again.
            if resume.is_some() || replayed > 0 {
                self.conns[id.index()].user_from = from;
            }
        }
    }

    /// Send a connection that just bound to a thread the events so far of runs in progress
    /// there, and what waited for a connection of that thread.
    fn catch_up_thread(&mut self, id: ConnId) {
        let conn = &self.conns[id.index()];
        let stream_id = StreamId::User(conn.user.clone());
        let runs = (self.runs).to_catch_up(&conn.user, conn.thread.as_ref(), false);
        let older = Older {
            runs: &runs,
            pending: true,
        };
        self.replay(id, &stream_id, None, &older);
    }

    fn resume_user(&mut self, id: ConnId, position: Position, reference: Option<&RawValue>) {
        let conn = &self.conns[id.index()];
        let stream_id = StreamId::User(conn.user.clone());
        let from = conn.user_from;
        let hint = "live messages already flowed on this stream: reconnect with the position";
        self.answer_resume(id, &stream_id, from, position, reference, hint, |hub| {
            hub.catch_up_user(id, Some(position));
        });
    }

    fn resume_room(
        &mut self,
        id: ConnId,
        room: &RoomId,
        position: Position,
        reference: Option<&RawValue>,
    ) {
        let slot = self.conns[id.index()]
            .membership(room)
            .expect("caller checked membership")
            .slot;
        let stream_id = StreamId::Room(room.clone());
        let from = self.rooms.members(room)[slot].from;
        let hint = "live messages already flowed on this stream: rejoin with `since`";
        self.answer_resume(id, &stream_id, from, position, reference, hint, |hub| {
            hub.catch_up_room(id, room, slot, position);
        });
    }

    /// Answer a `resume` of `stream_id`, on which the connection has everything from `from`
    /// (0: nothing yet): replay with `catch_up` if nothing live flowed, then `resumed`; just
    /// `resumed` if nothing is missing; `already_live` with `hint` if replaying would reorder.
    #[allow(clippy::too_many_arguments)]
    fn answer_resume(
        &mut self,
        id: ConnId,
        stream_id: &StreamId,
        from: u64,
        position: Position,
        reference: Option<&RawValue>,
        hint: &str,
        catch_up: impl FnOnce(&mut Self),
    ) {
        let current = self
            .streams
            .get(stream_id)
            .map(Stream::position)
            .unwrap_or_default();
        match positioned(from, position, current) {
            Positioned::No => catch_up(self),
            Positioned::UpToDate => {}
            Positioned::Behind => {
                self.send_error(id, ErrorCode::AlreadyLive, hint, reference);
                return;
            }
        }
        self.reply_resumed(id, stream_id, reference);
    }

    fn catch_up_room(&mut self, id: ConnId, room: &RoomId, slot: usize, after: Position) {
        let stream_id = StreamId::Room(room.clone());
        let older = Older {
            runs: &[],
            pending: false,
        };
        if let Some((from, _)) = self.replay(id, &stream_id, Some(after), &older) {
            if let Some(member) = self.rooms.member_mut(room, slot) {
                member.from = from;
            }
        }
    }

    fn reply_resumed(&mut self, id: ConnId, stream: &StreamId, reference: Option<&RawValue>) {
        let position = self
            .streams
            .get(stream)
            .map(Stream::position)
            .unwrap_or_default();
        let frame = ServerFrame::Resumed {
            sequence: Sequence::at(stream, position),
            reference,
        };
        self.reply(id, &frame);
    }

    // ----- publishing -----------------------------------------------------------------------

    /// Publish `message` to `to`. The frame is serialized once and shared by every recipient.
    /// Messages to a user, a thread or a room are sequenced in their stream and kept in its
    /// history; to a user with no open connection they are buffered there. Never waits for any
    /// connection: a slow one is queued, coalesced or closed by the backpressure rules.
    pub fn publish(
        &mut self,
        now: Instant,
        to: impl Into<Audience>,
        message: &Message,
    ) -> Result<Delivery, PublishError> {
        let audience = to.into();
        if let Target::Connection(id) = audience.target {
            if let Err(e) = self.check(id) {
                self.wire.counters.drops.add(Reason::UnknownConnection);
                return Err(e.into());
            }
        }
        let delivery = self.deliver(now, &audience, message, None);
        self.relay(&audience, message, None);
        self.close_slow();
        Ok(delivery)
    }

    /// In a cluster (or with shared streams), tell the transport that this hub started or
    /// stopped serving `stream`.
    fn interest(&mut self, stream: StreamId, interested: bool) {
        if self.config.cluster || self.config.shared_streams {
            self.wire.notice(Notice::Interest { stream, interested });
        }
    }

    /// True if a publish of `message` to `target` is numbered by the cluster's sequencer: it
    /// reaches every hub through it, not as an envelope.
    fn sequenced_outside(&self, target: &Target, message: &Message) -> bool {
        self.config.shared_streams
            && message.lane == Lane::Reliable
            && matches!(
                target,
                Target::User(_) | Target::Thread { .. } | Target::Room(_)
            )
    }

    /// In a cluster, hand a publish the other hubs may have to serve to the transport.
    fn relay(&mut self, audience: &Audience, message: &Message, from: Option<&UserId>) {
        if !self.config.cluster || self.sequenced_outside(&audience.target, message) {
            return;
        }
        if let Some(target) = remote_target(&audience.target) {
            let envelope = Envelope {
                target,
                message: message.clone(),
                from: from.cloned(),
                except: audience.except.to_vec(),
            };
            self.wire
                .outputs
                .push_back(Output::Remote(Box::new(envelope)));
        }
    }

    /// With shared streams, hand a rendered entry to the cluster's sequencer instead of
    /// numbering it here.
    fn sequence(&mut self, stream: StreamId, tags: Tags<'_>, frame: Bytes) {
        self.wire.counters.publishes += 1;
        let entry = EntryMeta {
            stream,
            thread: tags.thread.cloned(),
            run: tags.run.cloned(),
            thinking: matches!(tags.coalesce, Some(CoalesceKey::Thinking(_))),
            undelivered: false,
            except: tags.except.to_vec(),
        };
        let template = sequenced::template(frame);
        self.wire
            .outputs
            .push_back(Output::Sequence(Box::new(Unsequenced { entry, template })));
    }

    /// A stream entry sealed by the cluster's sequencer: delivered here in the stream's order.
    /// An entry already delivered is ignored; one after a hole first tells the stream's readers
    /// what they cannot receive.
    fn sequenced(&mut self, now: Instant, sealed: &Sequenced) {
        let entry = &sealed.entry;
        match &entry.stream {
            StreamId::User(user) => {
                self.user_stream(user);
                if !self.adopt(&entry.stream, sealed.position) {
                    return;
                }
                let coalesce = entry.coalesce();
                let tags = Tags {
                    thread: entry.thread.as_ref(),
                    except: &entry.except,
                    run: entry.run.as_ref(),
                    coalesce: coalesce.as_ref(),
                };
                let frame = sealed.frame.clone();
                self.commit_user(now, user, tags, sealed.position, frame, entry.undelivered);
            }
            StreamId::Room(room) => {
                // A room without members here has no readers to keep history for; one whose
                // head is awaited has members only from that head on.
                if self.rooms.members(room).is_empty() || self.awaiting.contains_key(room) {
                    return;
                }
                self.room_stream(now, room);
                if self.adopt(&entry.stream, sealed.position) {
                    let frame = &sealed.frame;
                    self.commit_room(now, room, &entry.except, frame, Some(sealed.position), None);
                }
            }
        }
    }

    /// An older entry of a stream from the shared history, fed newest first: kept for
    /// replays (a resume, a join with `since`, offline buffering) and delivered to no one now.
    fn restore(&mut self, now: Instant, sealed: &Sequenced) {
        let entry = &sealed.entry;
        match &entry.stream {
            StreamId::User(user) => {
                self.user_stream(user);
            }
            StreamId::Room(room) if !self.rooms.members(room).is_empty() => {
                self.room_stream(now, room)
            }
            StreamId::Room(_) => return,
        }
        let kept = Entry {
            seq: sealed.position.seq,
            at: now,
            frame: sealed.frame.clone(),
            thread: entry.thread.clone(),
            run: entry.run.clone(),
            coalesce: entry.coalesce(),
            // Nobody received it live: it waits for the user's next connection.
            pending: entry.undelivered,
        };
        let history = &self.config.history;
        if (self.streams).restore(&entry.stream, sealed.position, kept, history) {
            self.schedule_cleanup(now);
        }
    }

    /// Take `position` as the next of `stream_id` (which exists). False for an entry already
    /// taken. After a hole or in a new epoch, the stream's live readers get a `gap` first.
    fn adopt(&mut self, stream_id: &StreamId, position: Position) -> bool {
        let gap = match self.streams.adopt(stream_id, position) {
            Err(AlreadyTaken) => {
                self.wire.counters.duplicates += 1;
                return false;
            }
            Ok(gap) => gap,
        };
        if let Some(gap) = gap {
            let readers: Vec<ConnId> = match stream_id {
                StreamId::User(user) => self.user_connections(user).to_vec(),
                StreamId::Room(room) => self.rooms.members(room).iter().map(|m| m.conn).collect(),
            };
            for id in readers {
                self.send_gap(id, stream_id, position.epoch, gap.from, gap.to, gap.reason);
            }
        }
        true
    }

    /// Hand `frame` to the members of `room` (but `except`), and keep it in the room's history
    /// when it has a `position`.
    fn commit_room(
        &mut self,
        now: Instant,
        room: &RoomId,
        except: &[ConnId],
        frame: &Bytes,
        position: Option<Position>,
        coalesce: Option<&CoalesceKey>,
    ) -> Delivery {
        // Members of a room whose head is awaited have not joined yet.
        if self.awaiting.contains_key(room) {
            return Delivery::default();
        }
        if let Some(Position { seq, .. }) = position {
            let entry = Entry {
                seq,
                at: now,
                frame: frame.clone(),
                thread: None,
                run: None,
                coalesce: None,
                // Rooms have no offline buffering: a member that joins later asks for history
                // with `since`.
                pending: false,
            };
            let stream = StreamId::Room(room.clone());
            self.streams.append(&stream, entry, &self.config.history);
        }
        let mut reached = 0;
        for member in self.rooms.members_mut(room) {
            let behind = position.is_some_and(|p| p.seq < member.from);
            if except.contains(&member.conn) || behind {
                continue;
            }
            if let (Some(p), 0) = (position, member.from) {
                member.from = p.seq;
            }
            let conn = &mut self.conns[member.conn.index()];
            reached += usize::from(self.wire.offer(member.conn, conn, frame, coalesce));
        }
        Delivery {
            reached,
            position,
            buffered: false,
        }
    }

    fn deliver(
        &mut self,
        now: Instant,
        audience: &Audience,
        message: &Message,
        from: Option<&UserId>,
    ) -> Delivery {
        self.wire.counters.publishes += 1;
        let coalesce = match &message.lane {
            Lane::Reliable => None,
            Lane::Ephemeral { key } => Some(CoalesceKey::Ephemeral(key.clone())),
        };
        let frame =
            |sequence: Option<Sequence<'_>>, room: Option<&RoomId>, thread: Option<&ThreadId>| {
                ServerFrame::Message {
                    sequence,
                    room,
                    thread,
                    from,
                    event: &message.event,
                    data: &message.data,
                }
                .encode()
            };
        match &audience.target {
            Target::User(user) | Target::Thread { user, .. } => {
                let thread = match &audience.target {
                    Target::Thread { thread, .. } => Some(thread),
                    _ => None,
                };
                if coalesce.is_some() {
                    let frame = frame(None, None, thread);
                    return self.fan_out_user(
                        user,
                        thread,
                        &audience.except,
                        &frame,
                        coalesce.as_ref(),
                        None,
                    );
                }
                let tags = Tags {
                    thread,
                    except: &audience.except,
                    ..Tags::default()
                };
                self.publish_to_user(now, user, tags, |seq| frame(Some(seq), None, thread))
            }
            Target::Room(room) => {
                let stream_id = StreamId::Room(room.clone());
                if coalesce.is_none() && self.config.shared_streams {
                    let sequence = Sequence {
                        stream: &stream_id,
                        position: None,
                    };
                    let template = frame(Some(sequence), Some(room), None);
                    let tags = Tags {
                        except: &audience.except,
                        ..Tags::default()
                    };
                    self.sequence(stream_id, tags, template);
                    return Delivery::default();
                }
                let sequenced = coalesce.is_none()
                    && (self.streams.contains_key(&stream_id)
                        || !self.rooms.members(room).is_empty());
                if sequenced {
                    self.room_stream(now, room);
                    let stream = self.streams.get_mut(&stream_id).expect("created above");
                    let position = stream.advance();
                    let bytes = frame(Some(Sequence::at(&stream_id, position)), Some(room), None);
                    self.commit_room(now, room, &audience.except, &bytes, Some(position), None)
                } else {
                    let bytes = frame(None, Some(room), None);
                    self.commit_room(now, room, &audience.except, &bytes, None, coalesce.as_ref())
                }
            }
            Target::Connection(id) => {
                let frame = frame(None, None, None);
                let reached = match self.check(*id) {
                    Ok(index) if !audience.excludes(*id) => usize::from(self.wire.offer(
                        *id,
                        &mut self.conns[index],
                        &frame,
                        coalesce.as_ref(),
                    )),
                    Ok(_) => 0,
                    Err(_) => {
                        self.wire.counters.drops.add(Reason::UnknownConnection);
                        0
                    }
                };
                Delivery {
                    reached,
                    position: None,
                    buffered: false,
                }
            }
            Target::All => {
                let frame = frame(None, None, None);
                let mut reached = 0;
                for (index, conn) in self.conns.iter_mut() {
                    let id = ConnId::new(self.config.shard, index, self.generations[index]);
                    if !audience.excludes(id) {
                        reached +=
                            usize::from(self.wire.offer(id, conn, &frame, coalesce.as_ref()));
                    }
                }
                Delivery {
                    reached,
                    position: None,
                    buffered: false,
                }
            }
        }
    }

    /// Sequence a frame in `user`'s stream, keep it in history, and hand it to the user's
    /// connections that `tags` select.
    fn publish_to_user(
        &mut self,
        now: Instant,
        user: &UserId,
        tags: Tags<'_>,
        build: impl FnOnce(Sequence<'_>) -> Bytes,
    ) -> Delivery {
        let stream_id = StreamId::User(user.clone());
        if self.config.shared_streams {
            let template = build(Sequence {
                stream: &stream_id,
                position: None,
            });
            self.sequence(stream_id, tags, template);
            return Delivery::default();
        }
        let position = self.user_stream(user).advance();
        let frame = build(Sequence::at(&stream_id, position));
        // This hub is the whole world: nobody else delivered it.
        self.commit_user(now, user, tags, position, frame, true)
    }

    /// Hand `frame`, at `position` of `user`'s stream, to the user's connections that `tags`
    /// select, and keep it in the stream's history; pending if none selects it and, for a
    /// user without connections here, nobody received it (`undelivered`).
    fn commit_user(
        &mut self,
        now: Instant,
        user: &UserId,
        tags: Tags<'_>,
        position: Position,
        frame: Bytes,
        undelivered: bool,
    ) -> Delivery {
        let Tags {
            thread,
            except,
            run,
            coalesce,
        } = tags;
        let stream_id = StreamId::User(user.clone());
        let Position { seq, .. } = position;
        // With no open connection that selects it (whatever `except` says), the entry waits
        // for the next one that does; a connection left out by `except` was meant to miss it.
        // For a user with no connection here, that is the sequencer's call: another hub may
        // have delivered it.
        let conns = self.users.get(user).map_or(&[][..], |c| c.as_slice());
        let selected = conns
            .iter()
            .any(|id| self.conns[id.index()].wants_thread(thread));
        let pending = !selected && (undelivered || !conns.is_empty());
        let mut delivery = self.fan_out_user(user, thread, except, &frame, coalesce, Some(seq));
        let entry = Entry {
            seq,
            at: now,
            frame,
            thread: thread.cloned(),
            run: run.cloned(),
            coalesce: coalesce.cloned(),
            pending,
        };
        self.streams.append(&stream_id, entry, &self.config.history);
        self.schedule_cleanup(now);
        delivery.position = Some(position);
        delivery.buffered = pending;
        delivery
    }

    fn fan_out_user(
        &mut self,
        user: &UserId,
        thread: Option<&ThreadId>,
        except: &[ConnId],
        frame: &Bytes,
        coalesce: Option<&CoalesceKey>,
        seq: Option<u64>,
    ) -> Delivery {
        let mut reached = 0;
        let conns = self.users.get(user).map_or(&[][..], |c| c.as_slice());
        for &id in conns {
            let conn = &mut self.conns[id.index()];
            // A connection positioned after this entry has it (shared streams: it read it
            // on another hub).
            let behind = seq.is_some_and(|seq| seq < conn.user_from);
            if except.contains(&id) || !conn.wants_thread(thread) || behind {
                continue;
            }
            if let (Some(seq), 0) = (seq, conn.user_from) {
                conn.user_from = seq;
            }
            reached += usize::from(self.wire.offer(id, conn, frame, coalesce));
        }
        Delivery {
            reached,
            ..Delivery::default()
        }
    }

    // ----- agent runs -----------------------------------------------------------------------

    /// Publish one agent run event of `user`'s run. An event out of order is refused with a
    /// [`RunError`](crate::RunError) and reaches no one. When the run ends a
    /// [`Notice::RunEnded`] carries its report.
    pub fn send_agent_update(
        &mut self,
        now: Instant,
        user: &UserId,
        update: AgentUpdate,
    ) -> Result<Delivery, PublishError> {
        let key = (user.clone(), update.run.clone());
        match self.runs.get(&key) {
            Some(run) => run.check(&update.event)?,
            None => {
                let run = Run::start(
                    now,
                    update.run.clone(),
                    user.clone(),
                    update.agent,
                    update.thread,
                    &update.event,
                )?;
                if let Err(limit) = self.runs.start(run, &self.config.limits) {
                    self.wire.counters.drops.add(Reason::TooManyRuns);
                    return Err(PublishError::TooManyRuns(limit));
                }
                self.schedule_cleanup(now);
            }
        }
        let delivery = self.emit_run_event(now, &key, update.event.kind(), Some(&update.event));
        self.close_slow();
        Ok(delivery)
    }

    fn emit_run_event(
        &mut self,
        now: Instant,
        key: &(UserId, RunId),
        kind: EventKind,
        event: Option<&AgentEvent>,
    ) -> Delivery {
        let run = self.runs.get(key).expect("run exists");
        let (agent, thread) = (run.report.agent.clone(), run.report.thread.clone());
        let coalesce =
            (kind == EventKind::AgentThinking).then(|| CoalesceKey::Thinking(key.1.clone()));
        let tags = Tags {
            thread: thread.as_ref(),
            run: Some(&key.1),
            coalesce: coalesce.as_ref(),
            ..Tags::default()
        };
        let delivery = self.publish_to_user(now, &key.0, tags, |sequence| {
            protocol::encode(&RunFrame {
                kind: kind.as_str(),
                run: &key.1,
                agent: &agent,
                thread: thread.as_ref(),
                sequence,
                event,
            })
        });
        let seq = delivery.position.map_or(0, |p| p.seq);
        let run = (self.runs).record(key, now, kind, event, seq, delivery.reached);
        if kind.is_ending() {
            let report = run.report.clone();
            self.wire.notice(Notice::RunEnded(Box::new(report)));
        }
        delivery
    }

    fn producer_lost(&mut self, now: Instant, user: &UserId, run: &RunId) {
        let key = (user.clone(), run.clone());
        if self.runs.get(&key).is_some_and(Run::is_running) {
            self.emit_run_event(now, &key, EventKind::ProducerLost, None);
        }
    }

    /// The report of a run of `user` (in progress, or ended within `run_retention`).
    pub fn run_report(&self, user: &UserId, run: &RunId) -> Option<&RunReport> {
        self.runs
            .get(&(user.clone(), run.clone()))
            .map(|r| &r.report)
    }

    // ----- waiting for a user ---------------------------------------------------------------

    /// Ask to be told when `user` has a connection: a [`Notice::UserConnected`] (at once if one
    /// is open) or a [`Notice::WaitExpired`] at `deadline`. Events published to the user in the
    /// meantime wait in the user's stream and are delivered when the connection opens.
    pub fn wait_for_connection(&mut self, user: &UserId, deadline: Instant) -> WaiterId {
        let waiter = WaiterId(self.next_waiter);
        self.next_waiter += 1;
        if let Some(&conn) = self.users.get(user).and_then(|c| c.first()) {
            self.wire.notice(Notice::UserConnected {
                waiter,
                user: user.clone(),
                conn,
            });
        } else {
            self.waiters.insert(waiter, user.clone());
            self.timers.schedule(deadline, TimerKind::Waiter(waiter));
        }
        waiter
    }

    /// Withdraw a registration. Returns false if it already resolved or expired.
    pub fn cancel_wait(&mut self, waiter: WaiterId) -> bool {
        self.waiters.remove(&waiter).is_some()
    }

    fn resolve_waiters(&mut self, user: &UserId, conn: ConnId) {
        if self.waiters.is_empty() {
            return;
        }
        let mut resolved: Vec<WaiterId> = self
            .waiters
            .iter()
            .filter(|(_, u)| *u == user)
            .map(|(w, _)| *w)
            .collect();
        resolved.sort_unstable();
        for waiter in resolved {
            self.waiters.remove(&waiter);
            self.wire.notice(Notice::UserConnected {
                waiter,
                user: user.clone(),
                conn,
            });
        }
    }

    // ----- clean-up -------------------------------------------------------------------------

    fn cleanup(&mut self, now: Instant) {
        let (users, rooms) = (&self.users, &self.rooms);
        self.streams
            .sweep(now, &self.config.history, |id| match id {
                StreamId::User(u) => users.contains_key(u),
                StreamId::Room(r) => !rooms.members(r).is_empty(),
            });
        let idle = self.runs.idle(now, self.config.run_idle_timeout);
        for key in idle {
            self.emit_run_event(now, &key, EventKind::ProducerLost, None);
        }
        self.runs.forget_ended(now, self.config.run_retention);
        if !self.streams.is_empty() || !self.runs.is_empty() {
            self.schedule_cleanup(now);
        }
    }

    // ----- queries --------------------------------------------------------------------------

    /// Open connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// A snapshot of one connection.
    pub fn connection_info(&self, conn: ConnId) -> Option<ConnectionInfo> {
        self.conn(conn).ok().map(|c| ConnectionInfo::of(conn, c))
    }

    /// True if `user` has at least one open connection.
    pub fn is_user_connected(&self, user: &UserId) -> bool {
        self.users.contains_key(user)
    }

    /// The open connections of `user`, oldest first.
    pub fn user_connections(&self, user: &UserId) -> &[ConnId] {
        self.users.get(user).map_or(&[], |c| c.as_slice())
    }

    /// Users with at least one open connection.
    pub fn users(&self) -> impl Iterator<Item = &UserId> {
        self.users.keys()
    }

    /// The members of `room`.
    pub fn room_members(&self, room: &RoomId) -> Vec<ConnId> {
        self.rooms.members(room).iter().map(|m| m.conn).collect()
    }

    /// The connections of `user` bound to `thread`.
    pub fn thread_connections(&self, user: &UserId, thread: &ThreadId) -> Vec<ConnId> {
        self.user_connections(user)
            .iter()
            .copied()
            .filter(|&c| self.conns[c.index()].thread.as_ref() == Some(thread))
            .collect()
    }

    /// The current position of a stream, if the hub keeps it.
    pub fn stream_position(&self, stream: &StreamId) -> Option<Position> {
        self.streams.get(stream).map(Stream::position)
    }

    /// Counters and gauges, in constant time: the gauges are kept as the state changes.
    pub fn stats(&self) -> Stats {
        let gauges = self.wire.gauges;
        self.snapshot(gauges, self.streams.retained(), self.runs.active())
    }

    /// The same figures as [`Hub::stats`], counted anew from every connection, stream and
    /// run: what each gauge means, to check the ones kept as the state changes.
    #[cfg(any(test, feature = "testing"))]
    pub fn recounted_stats(&self) -> Stats {
        let gauges = Gauges::recount(self.conns.iter().map(|(_, c)| c));
        self.snapshot(gauges, self.streams.recount(), self.runs.recount())
    }

    fn snapshot(&self, gauges: Gauges, history: (usize, usize), runs_active: usize) -> Stats {
        let mut counters = self.wire.counters.clone();
        counters.history_trimmed = self.streams.trimmed();
        Stats {
            connections: self.conns.len(),
            users: self.users.len(),
            rooms: self.rooms.len(),
            threads: gauges.threads,
            streams: self.streams.len(),
            runs_active,
            waiters: self.waiters.len(),
            queued_messages: gauges.backlog.queued_messages,
            queued_bytes: gauges.backlog.queued_bytes,
            inflight_bytes: gauges.backlog.inflight_bytes,
            history_messages: history.0,
            history_bytes: history.1,
            health: gauges.health,
            counters,
        }
    }

    /// True when the hub holds no connection, room, stream, run or waiter (after everyone
    /// left and history expired).
    pub fn is_idle(&self) -> bool {
        self.conns.is_empty()
            && self.users.is_empty()
            && self.rooms.len() == 0
            && self.streams.is_empty()
            && self.runs.is_empty()
            && self.waiters.is_empty()
    }

    pub(crate) fn owner(&self, conn: ConnId) -> Option<&UserId> {
        self.conn(conn).ok().map(|c| &c.user)
    }
}

/// Which entries before the replay's starting point a replay also sends.
struct Older<'a> {
    /// Every kept entry of these runs (late joiners to runs in progress).
    runs: &'a [RunId],
    /// Entries published while no connection that selects them was open.
    pending: bool,
}

/// Where a connection stands on a stream when it asks to resume from `position`.
enum Positioned {
    /// Nothing delivered on the stream yet: replay after the position.
    No,
    /// Everything after the position was already delivered.
    UpToDate,
    /// Live messages flowed and the position is older: replaying now would reorder.
    Behind,
}

fn positioned(from: u64, position: Position, current: Position) -> Positioned {
    if from == 0 {
        Positioned::No
    } else if position.epoch == current.epoch && position.seq.saturating_add(1) >= from {
        Positioned::UpToDate
    } else {
        Positioned::Behind
    }
}

fn remote_target(target: &Target) -> Option<RemoteTarget> {
    match target {
        Target::Connection(_) => None,
        Target::User(user) => Some(RemoteTarget::User { user: user.clone() }),
        Target::Room(room) => Some(RemoteTarget::Room { room: room.clone() }),
        Target::Thread { user, thread } => Some(RemoteTarget::Thread {
            user: user.clone(),
            thread: thread.clone(),
        }),
        Target::All => Some(RemoteTarget::All),
    }
}
