//! The directory of open connections: every [`Connection`] by [`ConnId`], each user's
//! connections, the connections' heartbeat, token (`tokens.rs`) and flush window
//! (`flushes.rs`) deadlines, and the gauges of what the connections hold, kept as they change.
//!
//! Ids carry the slot's generation and the shard: every lookup checks both, so an id kept
//! after its connection closed is unknown even when its slot holds another connection. The
//! directory is also the only way to hand a connection a frame ([`Directory::offer`]): through
//! its outbox, into the [`Outputs`], counted and with its gauges kept.

mod flushes;
mod gauges;
mod offers;
mod tokens;

use offers::{send, Split};

pub(crate) use gauges::Gauges;

use crate::config::{BackpressureConfig, Config, HeartbeatConfig, Limits, UserLimitPolicy};
use crate::connection::Connection;
use crate::error::{OpenError, UnknownConnection};
use crate::id::{next_generation, ConnId, ThreadId, UserId};
use crate::io::{Notice, Open};
use crate::outputs::Outputs;
use crate::reason::Reason;
use crate::timer::{Deadlines, Timers};
use hashbrown::HashMap;
use slab::Slab;
use smallvec::SmallVec;
use std::time::{Duration, Instant};

/// The open connections, by id and by user.
#[derive(Debug)]
pub(crate) struct Directory {
    /// Stamped into every id issued here (`Config::shard`).
    shard: u8,
    conns: Slab<Connection>,
    /// The generation of every slot ever used; bumped when its connection closes.
    generations: Vec<u32>,
    /// Each user's open connections, oldest first. A user is here exactly while connected.
    users: HashMap<UserId, SmallVec<[ConnId; 3]>>,
    /// When each connection's heartbeat next has something to do (lazily deleted).
    heartbeats: Deadlines<ConnId>,
    /// When each connection whose token expires is next asked for a fresh one or closed.
    tokens: Timers<ConnId>,
    /// When each connection whose flush window holds a message delta must send it.
    flushes: Timers<ConnId>,
    /// The flush window of message deltas (`Limits::message_flush`; zero: none).
    message_flush: Duration,
    /// The connections' gauges, kept as their outboxes, heartbeats and bindings change.
    gauges: Gauges,
    backpressure: BackpressureConfig,
    /// Set by a shutdown (`Shutdown` or `ServiceRestart`): nothing is admitted any more.
    closing: Option<Reason>,
}

/// A connection taken out of the directory.
pub(crate) struct Removed {
    pub conn: Connection,
    /// It was its user's last connection.
    pub last_of_user: bool,
}

/// What a heartbeat deadline asks of the hub.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Beat {
    /// Nothing more (a ping may have been sent, the connection may have died).
    Done,
    /// The grace ran out: close the connection.
    Close(ConnId),
}

impl Directory {
    pub fn new(config: &Config) -> Self {
        Self {
            shard: config.shard,
            conns: Slab::new(),
            generations: Vec::new(),
            users: HashMap::new(),
            heartbeats: Deadlines::default(),
            tokens: Timers::default(),
            flushes: Timers::default(),
            message_flush: config.limits.message_flush,
            gauges: Gauges::default(),
            backpressure: config.backpressure.clone(),
            closing: None,
        }
    }

    // ----- ids ------------------------------------------------------------------------------

    fn id(&self, index: usize) -> ConnId {
        ConnId::new(self.shard, index, self.generations[index])
    }

    /// `Ok` if `id` names an open connection of this hub.
    pub fn check(&self, id: ConnId) -> Result<(), UnknownConnection> {
        let index = id.index();
        match (self.conns.get(index), self.generations.get(index)) {
            (Some(_), Some(&generation))
                if generation == id.generation() && id.shard() == self.shard =>
            {
                Ok(())
            }
            _ => Err(UnknownConnection(id)),
        }
    }

    pub fn get(&self, id: ConnId) -> Result<&Connection, UnknownConnection> {
        self.check(id).map(|()| &self.conns[id.index()])
    }

    /// The connection `id`, which the caller knows is open (checked earlier in the same
    /// operation, or read from an index of open connections).
    pub fn conn(&self, id: ConnId) -> &Connection {
        &self.conns[id.index()]
    }

    /// See [`Directory::conn`].
    pub fn conn_mut(&mut self, id: ConnId) -> &mut Connection {
        &mut self.conns[id.index()]
    }

    // ----- admission, opening, closing --------------------------------------------------------

    /// Stop admitting connections (a shutdown for `reason`). Returns the ids of the open ones.
    pub fn close_all(&mut self, reason: Reason) -> Vec<ConnId> {
        self.closing = Some(reason);
        self.conns.iter().map(|(i, _)| self.id(i)).collect()
    }

    pub fn is_closing(&self) -> bool {
        self.closing.is_some()
    }

    /// May `user` open one more connection? `Ok(Some(oldest))`: only if its oldest connection
    /// is evicted first (`EvictOldest`); then [`Directory::has_room`] decides.
    pub fn admit(&self, user: &UserId, limits: &Limits) -> Result<Option<ConnId>, OpenError> {
        if let Some(reason) = self.closing {
            let restart = reason == Reason::ServiceRestart;
            return Err(OpenError::ShuttingDown { restart });
        }
        let existing = self.user_connections(user);
        if existing.len() < limits.max_connections_per_user {
            return Ok(None);
        }
        match (limits.user_limit_policy, existing.first()) {
            (UserLimitPolicy::EvictOldest, Some(&oldest)) => Ok(Some(oldest)),
            // A limit of zero: there is nothing to evict to make room.
            _ => Err(OpenError::UserLimit),
        }
    }

    /// `Ok` unless the hub has `max_connections` connections.
    pub fn has_room(&self, limits: &Limits) -> Result<(), OpenError> {
        match self.conns.len() >= limits.max_connections {
            true => Err(OpenError::ServerFull),
            false => Ok(()),
        }
    }

    /// Add an admitted connection. Returns its id and whether it is its user's first.
    pub fn insert(&mut self, now: Instant, open: Open, config: &Config) -> (ConnId, bool) {
        let user = open.user.clone();
        let entry = self.conns.vacant_entry();
        let index = entry.key();
        if self.generations.len() <= index {
            self.generations.resize(index + 1, 0);
        }
        let id = ConnId::new(self.shard, index, self.generations[index]);
        let conn = entry.insert(Connection::new(now, open, config));
        self.gauges.opened(&conn.heartbeat);
        let deadline = conn.heartbeat.deadline(&config.heartbeat);
        let thread = conn.thread.clone();
        self.heartbeats.schedule(deadline, id);
        let token = conn.token_life().map(|life| life.deadline());
        self.tokens.set(id, None, token);
        let conns = self.users.entry(user.clone()).or_default();
        conns.push(id);
        let first = conns.len() == 1;
        self.count_thread(id, &user, thread.as_ref(), true);
        (id, first)
    }

    /// Take `id` out (its id is stale from now on). A `graceful` close first hands out what
    /// its outbox still holds, ignoring the budget; otherwise that is discarded.
    pub fn remove(&mut self, id: ConnId, graceful: bool, out: &mut Outputs) -> Option<Removed> {
        self.check(id).ok()?;
        let index = id.index();
        let mut conn = self.conns.remove(index);
        self.generations[index] = next_generation(self.generations[index]);
        (self.flushes).set(id, conn.outbox.window_due(), None);
        if graceful {
            for frame in conn.outbox.drain(&mut self.gauges.backlog) {
                send(id, &mut conn, frame, out);
            }
        }
        self.gauges.closed(&mut conn);
        (self.tokens).set(id, conn.token_life().map(|life| life.deadline()), None);
        let mut last_of_user = false;
        if let Some(conns) = self.users.get_mut(&conn.user) {
            conns.retain(|c| *c != id);
            if conns.is_empty() {
                self.users.remove(&conn.user);
                last_of_user = true;
            }
        }
        self.count_thread(id, &conn.user, conn.thread.as_ref(), false);
        Some(Removed { conn, last_of_user })
    }

    // ----- users and threads ----------------------------------------------------------------

    /// The open connections of `user`, oldest first.
    pub fn user_connections(&self, user: &UserId) -> &[ConnId] {
        self.users.get(user).map_or(&[], |c| c.as_slice())
    }

    /// Users with at least one open connection.
    pub fn users(&self) -> impl Iterator<Item = &UserId> {
        self.users.keys()
    }

    pub fn is_connected(&self, user: &UserId) -> bool {
        self.users.contains_key(user)
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// The connections of `user` bound to `thread`.
    pub fn thread_connections(&self, user: &UserId, thread: &ThreadId) -> Vec<ConnId> {
        (self.user_connections(user).iter().copied())
            .filter(|&c| self.conn(c).thread.as_ref() == Some(thread))
            .collect()
    }

    /// True if an open connection of `user` selects entries tagged with `thread`.
    pub fn selects(&self, user: &UserId, thread: Option<&ThreadId>) -> bool {
        (self.user_connections(user).iter()).any(|&id| self.conn(id).wants_thread(thread))
    }

    /// Bind `id` (open) to `thread`. True if the binding changed.
    pub fn bind(&mut self, id: ConnId, thread: Option<ThreadId>) -> bool {
        let conn = self.conn(id);
        let (user, old) = (conn.user.clone(), conn.thread.clone());
        self.count_thread(id, &user, old.as_ref(), false);
        self.count_thread(id, &user, thread.as_ref(), true);
        let conn = self.conn_mut(id);
        let changed = conn.thread != thread;
        conn.thread = thread;
        changed
    }

    /// Count `id`'s `thread` in (`bound`) or out of the `threads` gauge. A thread counts while
    /// a connection of its user is bound to it: only when no other one is does it change.
    fn count_thread(&mut self, id: ConnId, user: &UserId, thread: Option<&ThreadId>, bound: bool) {
        let Some(thread) = thread else { return };
        let others = self.user_connections(user).iter().any(|&c| {
            c != id
                && (self.conns.get(c.index())).is_some_and(|o| o.thread.as_ref() == Some(thread))
        });
        let threads = &mut self.gauges.threads;
        match (others, bound) {
            (true, _) => {}
            (false, true) => *threads += 1,
            (false, false) => *threads -= 1,
        }
    }

    // ----- liveness ---------------------------------------------------------------------------

    /// A frame of `len` bytes from `id`: counted, and a sign of life.
    pub fn received(
        &mut self,
        now: Instant,
        id: ConnId,
        len: usize,
        out: &mut Outputs,
    ) -> Result<(), UnknownConnection> {
        self.check(id)?;
        let conn = &mut self.conns[id.index()];
        conn.traffic.messages_in += 1;
        conn.traffic.bytes_in += len as u64;
        let resurrected = (self.gauges).heartbeat(&mut conn.heartbeat, |hb| hb.on_traffic(now));
        out.counters.messages_in += 1;
        out.counters.bytes_in += len as u64;
        resurrection(id, resurrected, out);
        Ok(())
    }

    /// A sign of life from `id` that is not a frame (a ping from the peer).
    pub fn alive(
        &mut self,
        now: Instant,
        id: ConnId,
        out: &mut Outputs,
    ) -> Result<(), UnknownConnection> {
        self.check(id)?;
        let conn = &mut self.conns[id.index()];
        let resurrected = (self.gauges).heartbeat(&mut conn.heartbeat, |hb| hb.on_traffic(now));
        resurrection(id, resurrected, out);
        Ok(())
    }

    /// A pong from `id`: the round trip it measured, if it answers the hub's ping.
    pub fn pong(
        &mut self,
        now: Instant,
        id: ConnId,
        payload: &[u8],
        config: &HeartbeatConfig,
        out: &mut Outputs,
    ) -> Result<Option<Duration>, UnknownConnection> {
        self.check(id)?;
        let conn = &mut self.conns[id.index()];
        let (rtt, resurrected) =
            (self.gauges).heartbeat(&mut conn.heartbeat, |hb| hb.on_pong(now, payload, config));
        resurrection(id, resurrected, out);
        Ok(rtt)
    }

    /// The earliest heartbeat deadline (possibly of a connection closed since).
    pub fn next_heartbeat(&self) -> Option<(Instant, ConnId)> {
        self.heartbeats.next()
    }

    /// The earliest heartbeat deadline came: ping the connection if due, mark it dead after
    /// the timeout, and ask for its close once the grace ran out.
    pub fn heartbeat(&mut self, now: Instant, config: &HeartbeatConfig, out: &mut Outputs) -> Beat {
        let Some(id) = self.heartbeats.pop() else {
            return Beat::Done;
        };
        if self.check(id).is_err() {
            return Beat::Done;
        }
        let conn = &mut self.conns[id.index()];
        let deadline = conn.heartbeat.deadline(config);
        if deadline > now {
            self.heartbeats.schedule(deadline, id);
            return Beat::Done;
        }
        let tick = (self.gauges).heartbeat(&mut conn.heartbeat, |h| h.poll(now, config));
        if tick.missed_pong {
            out.counters.missed_pongs += 1;
        }
        if tick.close {
            return Beat::Close(id);
        }
        if tick.died {
            out.notice(Notice::Dead { conn: id });
        }
        if let Some(nonce) = tick.ping {
            out.ping(id, nonce);
        }
        let deadline = conn.heartbeat.deadline(config);
        self.heartbeats.schedule(deadline, id);
        Beat::Done
    }

    // ----- queries ----------------------------------------------------------------------------

    /// Open connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// The gauges kept as the connections change.
    pub fn gauges(&self) -> Gauges {
        self.gauges
    }

    /// The same gauges counted anew from every connection.
    #[cfg(any(test, feature = "testing"))]
    pub fn recount(&self) -> Gauges {
        Gauges::recount(self.conns.iter().map(|(_, c)| c))
    }
}

fn resurrection(id: ConnId, resurrected: bool, out: &mut Outputs) {
    if resurrected {
        out.counters.resurrections += 1;
        out.notice(Notice::Resurrected { conn: id });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{Output, SocketOutput};
    use crate::outbox::Origin;

    #[test]
    fn a_closed_connections_id_stays_unknown_when_its_slot_is_reused() {
        let now = Instant::now();
        let config = Config::development();
        let mut conns = Directory::new(&config);
        let mut out = Outputs::default();
        let (old, first) = conns.insert(now, Open::new("ana"), &config);
        assert!(first);
        let removed = conns.remove(old, false, &mut out).expect("open");
        assert!(removed.last_of_user);
        let (new, _) = conns.insert(now, Open::new("ben"), &config);
        assert_eq!(new.index(), old.index(), "the slot is reused");
        assert_eq!(conns.check(old), Err(UnknownConnection(old)));
        assert!(conns.check(new).is_ok());
        let other_shard = ConnId::new(1, new.index(), new.generation());
        assert!(conns.check(other_shard).is_err(), "an id of another shard");
        assert!(conns.remove(old, false, &mut out).is_none());
    }

    #[test]
    fn eviction_is_offered_only_with_evict_oldest_and_a_connection_to_evict() {
        let now = Instant::now();
        let mut config = Config::development();
        config.limits.max_connections_per_user = 1;
        let mut conns = Directory::new(&config);
        let (oldest, _) = conns.insert(now, Open::new("ana"), &config);
        let ana = UserId::from("ana");
        assert_eq!(conns.admit(&ana, &config.limits), Err(OpenError::UserLimit));
        config.limits.user_limit_policy = UserLimitPolicy::EvictOldest;
        assert_eq!(conns.admit(&ana, &config.limits), Ok(Some(oldest)));
        config.limits.max_connections_per_user = 0;
        assert_eq!(
            conns.admit(&"ben".into(), &config.limits),
            Err(OpenError::UserLimit)
        );
        conns.close_all(Reason::ServiceRestart);
        let refused = OpenError::ShuttingDown { restart: true };
        assert_eq!(conns.admit(&"cho".into(), &config.limits), Err(refused));
    }

    #[test]
    fn a_thread_counts_while_a_connection_of_its_user_is_bound_to_it() {
        let now = Instant::now();
        let config = Config::development();
        let mut conns = Directory::new(&config);
        let mut out = Outputs::default();
        let (a, _) = conns.insert(now, Open::new("ana").thread("t"), &config);
        let (b, _) = conns.insert(now, Open::new("ana"), &config);
        assert!(conns.bind(b, Some("t".into())));
        assert!(!conns.bind(b, Some("t".into())), "no change");
        assert_eq!(conns.gauges().threads, 1);
        conns.remove(a, false, &mut out);
        assert_eq!(conns.gauges().threads, 1, "b is still bound to it");
        conns.bind(b, None);
        assert_eq!(conns.gauges(), conns.recount());
        assert_eq!(conns.gauges().threads, 0);
    }

    #[test]
    fn a_connection_that_overflows_again_in_the_same_operation_is_reported_once() {
        let now = Instant::now();
        let mut config = Config::development();
        config.backpressure.inflight_bytes = 1;
        config.backpressure.queue_messages = 1;
        let mut conns = Directory::new(&config);
        let mut out = Outputs::default();
        let (id, _) = conns.insert(now, Open::new("ana"), &config);
        let offer = |conns: &mut Directory, out: &mut Outputs| {
            conns.offer(id, &bytes::Bytes::from("m"), None, Origin::Live, out)
        };
        assert!(offer(&mut conns, &mut out), "sent");
        assert!(offer(&mut conns, &mut out), "queued");
        assert!(!offer(&mut conns, &mut out), "overflowed");
        assert!(!offer(&mut conns, &mut out), "overflowed again");
        assert_eq!((out.take_slow(), out.take_slow()), (Some(id), None));
    }

    #[test]
    fn a_graceful_removal_hands_out_what_was_queued() {
        let now = Instant::now();
        let mut config = Config::development();
        config.backpressure.inflight_bytes = 1;
        let mut conns = Directory::new(&config);
        let mut out = Outputs::default();
        let (id, _) = conns.insert(now, Open::new("ana"), &config);
        for frame in ["a", "b", "c"] {
            assert!(conns.offer(id, &bytes::Bytes::from(frame), None, Origin::Live, &mut out));
        }
        assert_eq!(conns.gauges().backlog.queued_messages, 2);
        conns.remove(id, true, &mut out);
        let sent = std::iter::from_fn(|| out.pop())
            .filter(|o| matches!(o, Output::Socket(SocketOutput::Send { .. })))
            .count();
        assert_eq!(sent, 3, "the first at once, the queued two at the close");
        assert_eq!(conns.gauges(), conns.recount());
    }
}
