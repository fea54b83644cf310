//! The node's [`Worker`]: the task that reads what the node's hubs emit for the cluster (the
//! [`ClusterEvents`] of their cluster sink), sends it to Redis (publishes, stream entries),
//! follows their interest, counts their connections in presence and refreshes the node's
//! lease, one event at a time in the order the hubs emitted them.

use crate::cancels;
use crate::follows::Follow;
use crate::history::Missed;
use crate::load::NodeLoad;
use crate::members::{self, NodeRoomUsers};
use crate::options::unix_millis;
use crate::sealed::{self, Ids};
use crate::shared::{hash_ttl, history_age_millis, Shared};
use crate::subscriber::SubCommand;
use crate::wire;
use redis::{RedisError, RedisResult};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard::{ConnId, Envelope, Position, Reason, RoomId, StreamId, Unsequenced, UserId};
use switchboard_transport::{ClusterEvent, ClusterEvents, Handle, Runtime};
use tokio::sync::{mpsc, oneshot};

/// How many publishes and stream entries waiting together go to Redis in one round trip.
pub(crate) const SEND_BATCH: usize = 256;
/// How many of their payload bytes, at most (one larger entry still goes alone): a round
/// trip must finish well within the Redis timeout even for large messages on a loaded
/// machine, or the whole batch would be numbered on this node only.
const SEND_BATCH_BYTES: usize = 1024 * 1024;

/// What a node sends to Redis for the other nodes.
enum Outgoing {
    /// An envelope, encoded for other nodes, to publish on its target's channel.
    Publish {
        /// The target's channel.
        channel: String,
        /// The encoded envelope.
        payload: Vec<u8>,
    },
    /// A stream entry, for the shared sequencer.
    Sequence(Arc<Unsequenced>),
}

impl Outgoing {
    /// `envelope`, encoded once for the other nodes.
    fn publish(shared: &Shared, envelope: &Envelope) -> Self {
        Outgoing::Publish {
            channel: shared.keys.target_channel(&envelope.target),
            payload: wire::envelope(&shared.node, &envelope.for_other_nodes()),
        }
    }

    /// The payload bytes it carries to Redis.
    fn len(&self) -> usize {
        match self {
            Outgoing::Publish { payload, .. } => payload.len(),
            Outgoing::Sequence(entry) => entry.template.len(),
        }
    }
}

/// A request to stop: answered once the node has left the cluster.
pub(crate) type Stop = oneshot::Sender<()>;

/// The node's worker: publishes envelopes, follows interest, counts connections, and
/// refreshes presence, one event at a time.
pub(crate) struct Worker<R: Runtime> {
    shared: Arc<Shared>,
    handle: Handle<R>,
    /// Streams some shard serves, with the number of shards serving each.
    interest: HashMap<StreamId, usize>,
    /// This node's counted connections per user.
    users: HashMap<UserId, usize>,
    /// Users whose count in Redis may be out of date (an update failed).
    stale: HashSet<UserId>,
    /// Connections counted in presence (not those refused by the cluster-wide limit).
    counted: HashSet<ConnId>,
    /// The users this node counts in each room.
    room_users: NodeRoomUsers,
    subscribe: mpsc::UnboundedSender<SubCommand>,
    /// While Redis is unreachable: the epoch this node numbers its streams in, and each
    /// stream's last number there.
    fallback_epoch: u64,
    fallback: HashMap<StreamId, u64>,
    /// The numbers of the entries handed to the sequencer (see `sealed.rs`).
    ids: Ids,
}

/// A call to Redis that failed.
struct Failed {
    error: RedisError,
    /// It was written to a connection: Redis may have carried it out.
    sent: bool,
}

impl<R: Runtime> Worker<R> {
    pub fn new(
        shared: Arc<Shared>,
        handle: Handle<R>,
        subscribe: mpsc::UnboundedSender<SubCommand>,
    ) -> Self {
        Self {
            shared,
            handle,
            interest: HashMap::new(),
            users: HashMap::new(),
            stale: HashSet::new(),
            counted: HashSet::new(),
            room_users: NodeRoomUsers::default(),
            subscribe,
            fallback_epoch: unix_millis(),
            fallback: HashMap::new(),
            ids: Ids::default(),
        }
    }

    /// Take the hubs' cluster events in order, and refresh presence every heartbeat, until
    /// asked to stop: then take every event emitted so far, withdraw the node, and answer.
    pub async fn run(
        mut self,
        mut cluster: ClusterEvents,
        mut stop: mpsc::UnboundedReceiver<Stop>,
    ) {
        let period = self.shared.options.heartbeat.max(Duration::from_millis(10));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Once the hubs have stopped nothing more comes; the node's presence stays until the
        // bridge stops.
        let mut hubs_running = true;
        loop {
            tokio::select! {
                event = cluster.recv(), if hubs_running => match event {
                    Some(event) => self.take(event, &mut cluster).await,
                    None => hubs_running = false,
                },
                stop = stop.recv() => {
                    // Every bridge handle dropped without a stop: leave as a crashed node.
                    let Some(done) = stop else { return };
                    while let Some(event) = cluster.try_recv() {
                        self.take(event, &mut cluster).await;
                    }
                    self.withdraw().await;
                    let _ = done.send(());
                    return;
                }
                _ = tick.tick() => {
                    if let Err(e) = self.heartbeat().await {
                        tracing::warn!(error = %e, "presence heartbeat failed");
                    }
                }
            }
        }
    }

    /// Carry out `event`; a publish or stream entry goes to Redis with those waiting right
    /// behind it.
    async fn take(&mut self, event: ClusterEvent, cluster: &mut ClusterEvents) {
        let mut next = Some(event);
        while let Some(event) = next.take() {
            match event {
                // Publishes and entries waiting together go in one round trip.
                ClusterEvent::Publish(envelope) => {
                    let first = Outgoing::publish(&self.shared, &envelope);
                    next = self.send_waiting(first, cluster).await;
                }
                ClusterEvent::Sequence(entry) => {
                    next = self.send_waiting(Outgoing::Sequence(entry), cluster).await;
                }
                ClusterEvent::Interest { stream, interested } => {
                    self.interest(stream, interested).await;
                }
                // After the subscription the interest asked for: the history after `since`,
                // then the head.
                ClusterEvent::Follow { stream, since } => {
                    let follow = Follow {
                        stream,
                        pin: None,
                        missed: since.map_or(Missed::Nothing, Missed::After),
                        live: false,
                        answer: None,
                    };
                    let _ = self.subscribe.send(SubCommand::Follow(follow));
                }
                ClusterEvent::Presence(change) => {
                    let change = (*change).clone();
                    (self.room_users)
                        .report(&self.shared, &self.handle, change)
                        .await;
                }
                ClusterEvent::Cancel(request) => {
                    let (shared, handle) = (self.shared.clone(), self.handle.clone());
                    tokio::spawn(cancels::ask(shared, handle, *request));
                }
                ClusterEvent::CancelAnswer { ticket, answer } => {
                    cancels::answered(&self.shared, ticket, answer).await;
                }
                ClusterEvent::Opened { conn, user } => self.opened(conn, user).await,
                ClusterEvent::Closed { conn, user } => self.closed(conn, user).await,
            }
        }
    }

    /// Send `first` and what else waits to go to Redis right behind it (at most
    /// [`SEND_BATCH`] in all, and [`SEND_BATCH_BYTES`] of payload); the next event, if one of
    /// another kind came or the batch is full.
    async fn send_waiting(
        &mut self,
        first: Outgoing,
        cluster: &mut ClusterEvents,
    ) -> Option<ClusterEvent> {
        let mut bytes = first.len();
        let mut batch = vec![first];
        let mut next = None;
        while batch.len() < SEND_BATCH && bytes < SEND_BATCH_BYTES {
            let outgoing = match cluster.try_recv() {
                Some(ClusterEvent::Publish(envelope)) => Outgoing::publish(&self.shared, &envelope),
                Some(ClusterEvent::Sequence(entry)) => Outgoing::Sequence(entry),
                Some(other) => {
                    next = Some(other);
                    break;
                }
                None => break,
            };
            bytes += outgoing.len();
            batch.push(outgoing);
        }
        self.send(&batch).await;
        next
    }

    /// Send publishes and stream entries to Redis in one round trip, in their order. An
    /// envelope is published once, on its target's channel. A stream entry is numbered by the
    /// shared sequencer, which publishes it to every node serving its stream (this one
    /// included) and keeps it in the stream's shared history. Without Redis, envelopes are
    /// counted as lost for other nodes, and entries delivered here only, numbered in this
    /// node's own epoch, except those the sequencer published before the call failed, which
    /// this node's subscription delivered already (`sealed.rs`).
    async fn send(&mut self, batch: &[Outgoing]) {
        let shared = &self.shared;
        let options = &shared.options;
        let script = &shared.scripts.sequence;
        let mut pipe = redis::pipe();
        if batch.iter().any(|o| matches!(o, Outgoing::Sequence(_))) {
            // Loaded with every batch: a restarted Redis has forgotten it.
            pipe.load_script(script).ignore();
        }
        let first_id = self.ids.next();
        for outgoing in batch {
            match outgoing {
                Outgoing::Publish { channel, payload } => {
                    pipe.cmd("PUBLISH").arg(channel).arg(payload).ignore();
                }
                Outgoing::Sequence(entry) => {
                    let stream = &entry.entry.stream;
                    let history = &options.history;
                    pipe.invoke_script(
                        script
                            .key(shared.keys.stream_counter(stream))
                            .key(shared.keys.stream_history(stream))
                            .key(shared.keys.stream_index(stream))
                            .arg(shared.keys.stream_channel(stream))
                            .arg(wire::entry_header(
                                &shared.node,
                                self.ids.take(),
                                &entry.entry,
                            ))
                            .arg(&entry.template[..])
                            .arg(unix_millis())
                            .arg(history.max_messages)
                            .arg(history.max_bytes)
                            .arg(history_age_millis(history)),
                    )
                    .ignore();
                }
            }
        }
        let ids = first_id..self.ids.next();
        let result = self.call::<()>(&pipe).await;
        // The entries of a failed call that reached Redis and came back: numbered there and
        // delivered here already.
        let mut sealed = Vec::new();
        if let Err(failed) = &result {
            tracing::warn!(batch = batch.len(), error = %failed.error, "could not reach redis: publishes lost for other nodes, stream entries not sequenced delivered on this node only");
            if failed.sent && !ids.is_empty() {
                let timeout = self.shared.options.timeout;
                sealed = sealed::ask(&self.subscribe, ids.clone(), timeout).await;
            }
        }
        let mut numbers = ids;
        for outgoing in batch {
            // Whether Redis carried it out (and the node knows).
            let carried = match outgoing {
                Outgoing::Sequence(_) => {
                    let id = numbers.next();
                    result.is_ok() || id.is_some_and(|id| sealed.contains(&id))
                }
                Outgoing::Publish { .. } => result.is_ok(),
            };
            match (outgoing, carried) {
                (Outgoing::Publish { .. }, true) => {
                    self.shared.count(&self.shared.counters.published)
                }
                (Outgoing::Publish { .. }, false) => {
                    self.shared.count(&self.shared.counters.unpublished)
                }
                (Outgoing::Sequence(_), true) => self.shared.count(&self.shared.counters.sequenced),
                (Outgoing::Sequence(entry), false) => {
                    self.shared.count(&self.shared.counters.unsequenced);
                    let stream = &entry.entry.stream;
                    let seq = self.fallback.entry(stream.clone()).or_default();
                    *seq += 1;
                    let position = Position {
                        epoch: self.fallback_epoch,
                        seq: *seq,
                    };
                    let _ = self.handle.deliver_sequenced(entry.seal(position));
                }
            }
        }
    }

    async fn interest(&mut self, stream: StreamId, interested: bool) {
        let channel = self.shared.keys.stream_channel(&stream);
        if interested {
            let shards = self.interest.entry(stream.clone()).or_default();
            *shards += 1;
            if *shards == 1 {
                let _ = self.subscribe.send(SubCommand::Subscribe(channel));
            }
            if let StreamId::Room(room) = &stream {
                if let Err(e) = members::tell_room(&self.shared, &self.handle, room).await {
                    tracing::warn!(%room, error = %e, "could not read the room's users");
                }
            }
            return;
        }
        match self.interest.get_mut(&stream) {
            Some(shards) if *shards > 1 => *shards -= 1,
            Some(_) => {
                self.interest.remove(&stream);
                let _ = self.subscribe.send(SubCommand::Unsubscribe(channel));
                if let StreamId::Room(room) = &stream {
                    let key = self.shared.keys.room_presence(room);
                    let mut pipe = redis::pipe();
                    pipe.cmd("HDEL").arg(key).arg(&self.shared.node).ignore();
                    // Best effort: a stale count is ignored once the lease expires, and the
                    // next heartbeat does not write the room again.
                    let _ = self.query::<()>(&pipe).await;
                }
            }
            None => {}
        }
    }

    /// Count a new connection, or close it if the user is at the cluster-wide limit. A
    /// connection admitted by [`Bridge::admit`] was counted then: it claims its admission.
    async fn opened(&mut self, conn: ConnId, user: UserId) {
        let shared = self.shared.clone();
        let admitted = shared
            .reservations
            .lock()
            .expect("not poisoned")
            .claim(&user);
        if !admitted {
            match shared.open(&user).await {
                Ok(-1) => {
                    shared.count(&shared.counters.refused);
                    tracing::debug!(%user, %conn, "over the cluster-wide connection limit");
                    let _ = self.handle.close_connection(conn, Reason::UserLimit).await;
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    // Accepted without the cluster-wide check; announced at the next heartbeat.
                    tracing::warn!(%user, error = %e, "connection not counted in redis");
                    self.stale.insert(user.clone());
                }
            }
        }
        self.counted.insert(conn);
        *self.users.entry(user).or_default() += 1;
    }

    async fn closed(&mut self, conn: ConnId, user: UserId) {
        if !self.counted.remove(&conn) {
            return;
        }
        if let Some(count) = self.users.get_mut(&user) {
            *count -= 1;
            if *count == 0 {
                self.users.remove(&user);
            }
        }
        let shared = self.shared.clone();
        let result = match shared.link.conn().await {
            Ok(mut c) => {
                let result = shared
                    .scripts
                    .close
                    .key(shared.keys.user_presence(&user))
                    .arg(&shared.node)
                    .invoke_async::<i64>(&mut c)
                    .await;
                shared.link.check(result).await
            }
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.stale.insert(user);
        }
    }

    /// Refresh the lease and write this node's counts: every connected or admitted user, every
    /// room of interest, and the users whose count may be out of date (admissions that expired
    /// unclaimed among them).
    pub async fn heartbeat(&mut self) -> RedisResult<()> {
        let shared = self.shared.clone();
        let keys = &shared.keys;
        let node = &shared.node;
        let lease = shared.options.lease.as_millis() as u64;
        let ttl = hash_ttl(&shared.options);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(keys.lease(node))
            .arg(node)
            .arg("PX")
            .arg(lease.max(1))
            .ignore();
        pipe.cmd("SADD").arg(keys.nodes()).arg(node).ignore();
        // Until the counts are written, no admission counts in Redis behind their back.
        let _counting = shared.counting.write().await;
        let admitted = {
            let mut reservations = shared.reservations.lock().expect("not poisoned");
            self.stale.extend(reservations.expire(Instant::now()));
            self.stale.extend(reservations.take_stale());
            reservations.counts()
        };
        let mut counts: HashMap<&UserId, usize> =
            self.users.iter().map(|(user, n)| (user, *n)).collect();
        for (user, n) in &admitted {
            *counts.entry(user).or_default() += n;
        }
        for (user, count) in &counts {
            let key = keys.user_presence(user);
            pipe.cmd("HSET").arg(&key).arg(node).arg(*count).ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(ttl).ignore();
        }
        for user in &self.stale {
            if !counts.contains_key(user) {
                pipe.cmd("HDEL")
                    .arg(keys.user_presence(user))
                    .arg(node)
                    .ignore();
            }
        }
        let rooms: Vec<RoomId> = self
            .interest
            .keys()
            .filter_map(|stream| match stream {
                StreamId::Room(room) => Some(room.clone()),
                StreamId::User(_) => None,
            })
            .collect();
        let room_count = rooms.len();
        for room in rooms {
            // Once the node's switchboard has stopped it counts nothing: its presence expires
            // with its lease.
            let Ok(members) = self.handle.room_members(room.clone()).await else {
                continue;
            };
            let members = members.len();
            let key = keys.room_presence(&room);
            pipe.cmd("HSET").arg(&key).arg(node).arg(members).ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(ttl).ignore();
        }
        let load = NodeLoad {
            connections: self.counted.len() as u64,
            users: self.users.len() as u64,
            rooms: room_count as u64,
        };
        pipe.cmd("HSET")
            .arg(keys.load())
            .arg(node)
            .arg(load.to_string())
            .ignore();
        pipe.cmd("PEXPIRE").arg(keys.load()).arg(ttl).ignore();
        self.query::<()>(&pipe).await?;
        self.stale.clear();
        // The room users of nodes whose lease expired leave their rooms; this node's come back
        // if its own lease had expired.
        members::sweep(&shared, false).await?;
        self.room_users.resync(&shared).await?;
        Ok(())
    }

    /// Withdraw this node: its lease, its membership of the node set, its counts.
    async fn withdraw(&mut self) {
        let keys = &self.shared.keys;
        let node = &self.shared.node;
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(keys.lease(node)).ignore();
        pipe.cmd("SREM").arg(keys.nodes()).arg(node).ignore();
        pipe.cmd("HDEL").arg(keys.load()).arg(node).ignore();
        let admitted = self
            .shared
            .reservations
            .lock()
            .expect("not poisoned")
            .clear();
        for user in self.users.keys().chain(&self.stale).chain(&admitted) {
            pipe.cmd("HDEL")
                .arg(keys.user_presence(user))
                .arg(node)
                .ignore();
        }
        for stream in self.interest.keys() {
            if let StreamId::Room(room) = stream {
                pipe.cmd("HDEL")
                    .arg(keys.room_presence(room))
                    .arg(node)
                    .ignore();
            }
        }
        if let Err(e) = self.query::<()>(&pipe).await {
            tracing::warn!(error = %e, "could not withdraw presence; it expires with the lease");
        }
        if let Err(e) = members::sweep(&self.shared, true).await {
            tracing::warn!(error = %e, "could not take this node's users out of their rooms; another node does once the lease expires");
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> RedisResult<T> {
        self.call(pipe).await.map_err(|failed| failed.error)
    }

    /// Run `pipe`; if it fails, whether it may have reached Redis.
    async fn call<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, Failed> {
        let mut conn = self
            .shared
            .link
            .conn()
            .await
            .map_err(|error| Failed { error, sent: false })?;
        let result = pipe.query_async(&mut conn).await;
        (self.shared.link.check(result).await).map_err(|error| Failed { error, sent: true })
    }
}
