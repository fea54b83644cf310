//! [`Handle`]: the application's requests to a running switchboard — publishes, agent
//! updates, room, thread and token operations on connections, and queries — each routed to the
//! shard it concerns (a user's, a connection's) or to every shard (rooms, everyone) and
//! answered once that shard has drained what it caused.
//!
//! Every request answers [`Error::Stopped`] once the switchboard has shut down, queries
//! included: a stopped switchboard has no answer, not an empty one.
//!
//! The other `impl Handle` blocks are by role: connections entering the switchboard in
//! `server.rs`, inputs from other nodes in `remote.rs`, the per-user handle in `user.rs`,
//! shutdown in `shutdown.rs`.

use crate::error::Error;
use crate::options::Options;
use crate::runtime::Runtime;
use crate::shard::Route;
use crate::shards::Shards;
use futures_channel::oneshot;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard::{
    AgentUpdate, Answer, ClientRef, ConnId, ConnectionInfo, Delivery, Message, PublishError,
    Reason, RefreshGrant, RefreshRefusal, RoomId, RunId, RunReport, Stats, Target, ThreadId,
    UserId, UserMembership,
};

/// The application's handle on a running switchboard. Cheap to clone; every method talks to
/// the shard tasks through their inboxes.
///
/// Routing across shards: a connection lives on the shard of its user
/// ([`Handle::shard_of`]), so everything per user (targets `User` and `Thread`, agent runs,
/// per-user limits, resume, offline buffering, waiters) is one shard's business; a publish to
/// a `Room` or to `All` goes to every shard and the [`Delivery`]s are summed.
///
/// Each transport names it for its runtime (`switchboard_tokio::Handle`).
pub struct Handle<R> {
    pub(crate) shards: Arc<Shards<R>>,
}

impl<R> Clone for Handle<R> {
    fn clone(&self) -> Self {
        Self {
            shards: Arc::clone(&self.shards),
        }
    }
}

impl<R: Runtime> fmt::Debug for Handle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("shards", &self.shards.count())
            .field("stopping", &self.is_shutting_down())
            .finish()
    }
}

/// Statistics of every shard and their sum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardedStats {
    /// Every gauge and counter summed over the shards ([`Stats::merge`]): a room with members
    /// on several shards counts once per shard, and a publish to a room or to everyone counts
    /// once per shard in `publishes`.
    pub total: Stats,
    /// Each shard's own snapshot, by shard index.
    pub shards: Vec<Stats>,
}

impl ShardedStats {
    fn of(shards: Vec<Stats>) -> Self {
        let mut total = Stats::default();
        for s in &shards {
            total.merge(s);
        }
        Self { total, shards }
    }
}

/// Add up what each shard did with one publish: `reached` and `buffered` summed, `position`
/// kept only when exactly one shard sequenced the message (a user or thread target; a room's
/// stream is numbered per shard).
pub(crate) fn sum(deliveries: impl IntoIterator<Item = Delivery>) -> Delivery {
    let mut total = Delivery::default();
    let mut positions = 0;
    for d in deliveries {
        total.reached += d.reached;
        total.buffered |= d.buffered;
        if d.position.is_some() {
            positions += 1;
            total.position = d.position;
        }
    }
    if positions > 1 {
        total.position = None;
    }
    total
}

/// A refused publish as the handle reports it: an unknown connection is named as such.
pub(crate) fn publish_error(e: PublishError) -> Error {
    match e {
        PublishError::UnknownConnection(u) => Error::UnknownConnection(u.0),
        e => Error::Publish(e),
    }
}

impl<R: Runtime> Handle<R> {
    pub(crate) fn new(shards: Arc<Shards<R>>) -> Self {
        Self { shards }
    }

    // ----- configuration and topology -------------------------------------------------------

    /// The transport options it was started with.
    pub fn options(&self) -> &Options {
        &self.shards.options
    }

    /// The runtime it runs on.
    pub fn runtime(&self) -> &R {
        &self.shards.runtime
    }

    /// The largest message the WebSocket layer should read: twice the hub's
    /// `max_frame_bytes`, so that the hub sees (and closes with 1009) a frame somewhat over
    /// its limit, while a huge one is cut off before it is buffered.
    pub fn message_limit(&self) -> usize {
        self.shards.message_limit
    }

    /// The most the WebSocket layer may hold unwritten for one connection (its
    /// `max_write_buffer_size`), from the hub's backpressure budgets: see
    /// [`write_buffer_limit`](crate::write_buffer_limit).
    pub fn write_buffer_limit(&self) -> usize {
        self.shards.write_buffer_limit
    }

    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.shards.count()
    }

    /// The shard that holds `user`'s connections, streams and runs.
    pub fn shard_of(&self, user: &UserId) -> usize {
        self.shards.shard_of(user)
    }

    // ----- publishing -----------------------------------------------------------------------

    /// Publish `message` to `to`: a connection on its shard, a user or thread on the user's
    /// shard, a room or everyone on every shard. The returned [`Delivery`] is summed over the
    /// shards.
    pub async fn publish(&self, to: Target, message: Message) -> Result<Delivery, Error> {
        self.publish_except(to, [], message).await
    }

    /// Publish `message` to `to`, leaving out the `except` connections.
    pub async fn publish_except(
        &self,
        to: Target,
        except: impl IntoIterator<Item = ConnId>,
        message: Message,
    ) -> Result<Delivery, Error> {
        let audience = to.except(except);
        let shard = match &audience.target {
            Target::Connection(conn) => Some(self.shards.shard_of_connection(*conn)?),
            Target::User(user) | Target::Thread { user, .. } => Some(self.shard_of(user)),
            Target::Room(_) | Target::All => None,
        };
        let result = match shard {
            Some(shard) => {
                self.shards
                    .call(shard, move |s, now| s.hub.publish(now, audience, &message))
                    .await?
            }
            None => {
                let message = Arc::new(message);
                let deliveries = self
                    .shards
                    .call_all(move |s, now| {
                        // Every shard serves its own members: nothing to relay between them,
                        // and other nodes get one envelope per publish, the first shard's.
                        s.route = Route {
                            relay: false,
                            to_cluster: s.index == 0,
                        };
                        s.hub.publish(now, audience.clone(), &message)
                    })
                    .await?;
                deliveries
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()
                    .map(sum)
            }
        };
        result.map_err(publish_error)
    }

    /// Send `message` to one connection (unsequenced): `publish` to `Target::Connection`.
    pub async fn send_to_connection(
        &self,
        conn: ConnId,
        message: Message,
    ) -> Result<Delivery, Error> {
        self.publish(Target::Connection(conn), message).await
    }

    /// Publish one event of `user`'s agent run (see [`Hub::send_agent_update`](switchboard::Hub::send_agent_update)).
    pub async fn send_agent_update(
        &self,
        user: impl Into<UserId>,
        update: AgentUpdate,
    ) -> Result<Delivery, Error> {
        let user = user.into();
        self.shards
            .call(self.shard_of(&user), move |s, now| {
                s.hub.send_agent_update(now, &user, update)
            })
            .await?
            .map_err(Error::Publish)
    }

    /// The producer of `user`'s run went away: the run ends with `producer_lost`.
    pub async fn producer_lost(
        &self,
        user: impl Into<UserId>,
        run: impl Into<RunId>,
    ) -> Result<(), Error> {
        let (user, run) = (user.into(), run.into());
        self.shards
            .call(self.shard_of(&user), move |s, now| {
                let _ = s.hub.producer_lost(now, &user, &run);
            })
            .await
    }

    /// The report of one of `user`'s runs (in progress, or ended within `run_retention`);
    /// `None` if the hub has none.
    pub async fn run_report(
        &self,
        user: impl Into<UserId>,
        run: impl Into<RunId>,
    ) -> Result<Option<RunReport>, Error> {
        let (user, run) = (user.into(), run.into());
        self.shards
            .call(self.shard_of(&user), move |s, _| {
                s.hub.run_report(&user, &run).cloned()
            })
            .await
    }

    // ----- per user -------------------------------------------------------------------------

    /// True if `user` has an open connection.
    pub async fn is_user_connected(&self, user: impl Into<UserId>) -> Result<bool, Error> {
        let user = user.into();
        self.shards
            .call(self.shard_of(&user), move |s, _| {
                s.hub.is_user_connected(&user)
            })
            .await
    }

    /// `user`'s open connections, oldest first.
    pub async fn user_connections(&self, user: impl Into<UserId>) -> Result<Vec<ConnId>, Error> {
        let user = user.into();
        self.shards
            .call(self.shard_of(&user), move |s, _| {
                s.hub.user_connections(&user).to_vec()
            })
            .await
    }

    /// Wait until `user` has a connection (`true`), or `timeout` passes (`false`). Messages
    /// published to the user meanwhile wait in the user's stream and are delivered when the
    /// connection opens. [`Error::Stopped`] if the switchboard shuts down first.
    pub async fn wait_for_connection(
        &self,
        user: impl Into<UserId>,
        timeout: Duration,
    ) -> Result<bool, Error> {
        let user = user.into();
        let (done, connected) = oneshot::channel();
        let deadline = Instant::now() + timeout;
        self.shards
            .call(self.shard_of(&user), move |s, _| {
                let waiter = s.hub.wait_for_connection(&user, deadline);
                s.add_waiter(waiter, done);
            })
            .await?;
        connected.await.map_err(|_| Error::Stopped)
    }

    /// Close every connection of `user` with 4002. Returns how many were closed.
    pub async fn disconnect_user(&self, user: impl Into<UserId>) -> Result<usize, Error> {
        let user = user.into();
        self.shards
            .call(self.shard_of(&user), move |s, _| {
                s.hub.disconnect_user(&user)
            })
            .await
    }

    /// Join every open connection of `user` to `room` on the backend's decision, whatever
    /// their tokens allow, within the room limits ([`Hub::add_user_to_room`]); each that joins
    /// gets `joined` without a `ref`.
    ///
    /// [`Hub::add_user_to_room`]: switchboard::Hub::add_user_to_room
    pub async fn add_user_to_room(
        &self,
        user: impl Into<UserId>,
        room: impl Into<RoomId>,
    ) -> Result<UserMembership, Error> {
        let (user, room) = (user.into(), room.into());
        self.shards
            .call(self.shard_of(&user), move |s, now| {
                s.hub.add_user_to_room(now, &user, &room)
            })
            .await
    }

    /// Take every open connection of `user` out of `room` ([`Hub::remove_user_from_room`]);
    /// each that was in it gets `left` without a `ref`.
    ///
    /// [`Hub::remove_user_from_room`]: switchboard::Hub::remove_user_from_room
    pub async fn remove_user_from_room(
        &self,
        user: impl Into<UserId>,
        room: impl Into<RoomId>,
    ) -> Result<UserMembership, Error> {
        let (user, room) = (user.into(), room.into());
        self.shards
            .call(self.shard_of(&user), move |s, _| {
                s.hub.remove_user_from_room(&user, &room)
            })
            .await
    }

    // ----- per connection -------------------------------------------------------------------

    /// A snapshot of one connection; [`Error::UnknownConnection`] if it is not open.
    pub async fn connection_info(&self, conn: ConnId) -> Result<ConnectionInfo, Error> {
        let shard = self.shards.shard_of_connection(conn)?;
        self.shards
            .call(shard, move |s, _| s.hub.connection_info(conn))
            .await?
            .ok_or(Error::UnknownConnection(conn))
    }

    /// Close one connection with `reason`'s close code (after what is queued for it, for
    /// the graceful reasons).
    pub async fn close_connection(&self, conn: ConnId, reason: Reason) -> Result<(), Error> {
        let shard = self.shards.shard_of_connection(conn)?;
        self.shards
            .call(shard, move |s, _| s.hub.close_connection(conn, reason))
            .await?
            .map_err(|_| Error::UnknownConnection(conn))
    }

    /// Add a connection to a room (it receives `joined`).
    pub async fn join_room(&self, conn: ConnId, room: impl Into<RoomId>) -> Result<(), Error> {
        let room = room.into();
        let shard = self.shards.shard_of_connection(conn)?;
        self.shards
            .call(shard, move |s, now| s.hub.join_room(now, conn, &room))
            .await?
            .map_err(Error::Room)
    }

    /// Remove a connection from a room (it receives `left`).
    pub async fn leave_room(&self, conn: ConnId, room: impl Into<RoomId>) -> Result<(), Error> {
        let room = room.into();
        let shard = self.shards.shard_of_connection(conn)?;
        self.shards
            .call(shard, move |s, _| s.hub.leave_room(conn, &room))
            .await?
            .map_err(Error::Room)
    }

    /// Bind a connection to a thread of its user, or unbind it with `None`.
    pub async fn update_connection_thread(
        &self,
        conn: ConnId,
        thread: Option<ThreadId>,
    ) -> Result<(), Error> {
        let shard = self.shards.shard_of_connection(conn)?;
        self.shards
            .call(shard, move |s, _| {
                s.hub.update_connection_thread(conn, thread)
            })
            .await?
            .map_err(|_| Error::UnknownConnection(conn))
    }

    /// The fresh token a connection sent ([`Notice::Refresh`](switchboard::Notice::Refresh)) was
    /// verified: its grants and expiry apply at once (the connection leaves the rooms it may no
    /// longer join) and the client gets `refreshed`. [`Error::UnknownConnection`] if the
    /// connection closed meanwhile (its old token expired first): nothing happens.
    pub async fn refreshed(&self, conn: ConnId, grant: RefreshGrant) -> Result<(), Error> {
        let shard = self.shards.shard_of_connection(conn)?;
        self.shards
            .call(shard, move |s, now| s.hub.refreshed(now, conn, grant))
            .await?
            .map_err(|_| Error::UnknownConnection(conn))
    }

    /// The fresh token a connection sent was refused: the client gets an `error` for its
    /// `refresh` frame, and the connection keeps its grants and expiry.
    pub async fn refresh_refused(
        &self,
        conn: ConnId,
        refusal: RefreshRefusal,
    ) -> Result<(), Error> {
        let shard = self.shards.shard_of_connection(conn)?;
        self.shards
            .call(shard, move |s, now| {
                s.hub.refresh_refused(now, conn, refusal)
            })
            .await?
            .map_err(|_| Error::UnknownConnection(conn))
    }

    /// Answer a connection's frame of an application type
    /// ([`Notice::App`](switchboard::Notice::App)) that carried `reference`: the client gets a
    /// `reply` or an `error` with the application's code, echoing the `ref`.
    /// [`Error::UnknownConnection`] if the connection closed meanwhile: nothing happens.
    pub async fn answer(
        &self,
        conn: ConnId,
        reference: Option<ClientRef>,
        answer: Answer,
    ) -> Result<(), Error> {
        let shard = self.shards.shard_of_connection(conn)?;
        self.shards
            .call(shard, move |s, _| s.hub.answer(conn, reference, answer))
            .await?
            .map_err(|_| Error::UnknownConnection(conn))
    }

    // ----- rooms and the whole switchboard --------------------------------------------------

    /// The members of `room` on every shard.
    pub async fn room_members(&self, room: impl Into<RoomId>) -> Result<Vec<ConnId>, Error> {
        let room = room.into();
        let members = self
            .shards
            .call_all(move |s, _| s.hub.room_members(&room))
            .await?;
        Ok(members.into_iter().flatten().collect())
    }

    /// Every shard's statistics and their sum.
    pub async fn stats(&self) -> Result<ShardedStats, Error> {
        let shards = self.shards.call_all(|s, _| s.hub.stats()).await?;
        Ok(ShardedStats::of(shards))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summed_delivery_keeps_a_position_only_from_a_single_shard() {
        let at = |seq| Some(switchboard::Position { epoch: 1, seq });
        let one = sum([
            Delivery {
                reached: 2,
                position: at(5),
                buffered: false,
            },
            Delivery::default(),
        ]);
        assert_eq!((one.reached, one.position), (2, at(5)));
        let two = sum([
            Delivery {
                reached: 1,
                position: at(5),
                buffered: false,
            },
            Delivery {
                reached: 3,
                position: at(9),
                buffered: false,
            },
        ]);
        assert_eq!((two.reached, two.position), (4, None));
    }
}
