//! Questions about the hub's state, answered from the parts that hold it, and [`Stats`].

use super::Hub;
use crate::connection::ConnectionInfo;
use crate::directory::Gauges;
use crate::id::{ConnId, RoomId, RunId, ThreadId, UserId};
use crate::run::RunReport;
use crate::stats::Stats;
use crate::stream::{Position, StreamId};

impl Hub {
    /// Open connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// A snapshot of one connection.
    pub fn connection_info(&self, conn: ConnId) -> Option<ConnectionInfo> {
        self.conns
            .get(conn)
            .ok()
            .map(|c| ConnectionInfo::of(conn, c))
    }

    /// True if `user` has at least one open connection.
    pub fn is_user_connected(&self, user: &UserId) -> bool {
        self.conns.is_connected(user)
    }

    /// The open connections of `user`, oldest first.
    pub fn user_connections(&self, user: &UserId) -> &[ConnId] {
        self.conns.user_connections(user)
    }

    /// Users with at least one open connection.
    pub fn users(&self) -> impl Iterator<Item = &UserId> {
        self.conns.users()
    }

    /// The members of `room`.
    pub fn room_members(&self, room: &RoomId) -> Vec<ConnId> {
        self.rooms.members(room).iter().map(|m| m.conn).collect()
    }

    /// The users with a connection in `room` (each once, however many connections), sorted:
    /// who the room's presence lists.
    pub fn room_users(&self, room: &RoomId) -> Vec<UserId> {
        super::presence::users(&self.conns, &self.rooms, room)
    }

    /// The connections of `user` bound to `thread`.
    pub fn thread_connections(&self, user: &UserId, thread: &ThreadId) -> Vec<ConnId> {
        self.conns.thread_connections(user, thread)
    }

    /// The current position of a stream, if the hub keeps it.
    pub fn stream_position(&self, stream: &StreamId) -> Option<Position> {
        self.streams.get(stream).map(|s| s.position())
    }

    /// The report of a run of `user` (in progress, or ended within `run_retention`).
    pub fn run_report(&self, user: &UserId, run: &RunId) -> Option<&RunReport> {
        self.runs
            .get(&(user.clone(), run.clone()))
            .map(|r| &r.report)
    }

    /// Counters and gauges, in constant time: the gauges are kept as the state changes.
    pub fn stats(&self) -> Stats {
        let history = self.streams.retained();
        self.snapshot(self.conns.gauges(), history, self.runs.active())
    }

    /// The same figures as [`Hub::stats`], counted anew from every connection, stream and
    /// run: what each gauge means, to check the ones kept as the state changes.
    #[cfg(any(test, feature = "testing"))]
    pub fn recounted_stats(&self) -> Stats {
        let history = self.streams.recount();
        self.snapshot(self.conns.recount(), history, self.runs.recount())
    }

    fn snapshot(&self, gauges: Gauges, history: (usize, usize), runs_active: usize) -> Stats {
        let mut counters = self.out.counters.clone();
        counters.history_trimmed = self.streams.trimmed();
        Stats {
            connections: self.conns.len(),
            users: self.conns.user_count(),
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
            && self.conns.user_count() == 0
            && self.rooms.len() == 0
            && self.streams.is_empty()
            && self.runs.is_empty()
            && self.waiters.is_empty()
    }

    /// The user of an open connection.
    pub(crate) fn owner(&self, conn: ConnId) -> Option<&UserId> {
        self.conns.get(conn).ok().map(|c| &c.user)
    }
}
