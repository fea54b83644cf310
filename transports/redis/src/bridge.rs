//! The [`Bridge`]: one per node, between the node's hubs and Redis.

use crate::admission::{Admission, Reservations};
use crate::counters::{BridgeStats, Counters};
use crate::follows::Follow;
use crate::keys::Keys;
use crate::link::{Backoff, Link};
use crate::options::{unix_millis, Options};
use crate::scripts::Scripts;
use crate::shared::{hash_ttl, history_age_millis, Shared};
use crate::subscriber::{self, SubCommand};
use crate::wire;
use redis::{Client, RedisResult};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard::{
    ConnId, Envelope, Notice, Position, Reason, RoomId, StreamId, Unsequenced, UserId,
};
use switchboard_transport::{Event, Handle, Runtime};
use tokio::sync::{mpsc, oneshot, RwLock};
use tokio::task::JoinHandle;

/// How many publishes and stream entries waiting together go to Redis in one round trip.
const SEND_BATCH: usize = 256;

/// What a node sends to Redis for the other nodes.
enum Outgoing {
    /// An envelope, published on its target's channel.
    Publish(Arc<Envelope>),
    /// A stream entry, for the shared sequencer.
    Sequence(Arc<Unsequenced>),
}

/// Work for the node's worker task, in the order the events arrived.
enum Job {
    Event(Event),
    Stop(oneshot::Sender<()>),
}

/// A node's link to the cluster: publishes what other nodes need, delivers what they publish,
/// keeps presence and the cluster-wide limit. Cheap to clone.
///
/// Start the node's hubs with `Config::cluster` set (otherwise they emit no envelopes and no
/// interest), then [`Bridge::start`], and hand every event to [`Bridge::observe`]. To hold the
/// per-user limit across the cluster exactly as one hub holds it (refusing a connection before
/// its `welcome`), ask [`Bridge::admit`] about each client before opening its connection.
pub struct Bridge<R: Runtime> {
    inner: Arc<Inner<R>>,
}

struct Inner<R: Runtime> {
    shared: Arc<Shared>,
    handle: Handle<R>,
    jobs: mpsc::UnboundedSender<Job>,
    /// The subscriber's inbox, for pins.
    subscriber: mpsc::UnboundedSender<SubCommand>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl<R: Runtime> Clone for Bridge<R> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<R: Runtime> std::fmt::Debug for Bridge<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("node", &self.inner.shared.node)
            .finish()
    }
}

impl<R: Runtime> Bridge<R> {
    /// Join the cluster: announce the node, subscribe to `all` and `control`, and start the
    /// worker and subscriber tasks (on tokio). Fails if the URL is invalid or Redis cannot be
    /// reached now; later outages are survived.
    pub async fn start(handle: Handle<R>, options: Options) -> RedisResult<Self> {
        let client = Client::open(options.url.as_str())?;
        let counters = Arc::new(Counters::default());
        let backoff = Backoff {
            min: options.backoff_min,
            max: options.backoff_max.max(options.backoff_min),
        };
        let shared = Arc::new(Shared {
            node: options.node.clone(),
            keys: Keys::new(options.prefix.clone()),
            link: Link::new(client.clone(), options.timeout, backoff, counters.clone()),
            reader: Link::new(client.clone(), options.timeout, backoff, counters.clone()),
            client,
            options,
            scripts: Scripts::new(),
            counters,
            subscribed: Mutex::new(HashSet::new()),
            reservations: Mutex::new(Reservations::default()),
            counting: RwLock::new(()),
        });
        let (subscribe, commands) = mpsc::unbounded_channel();
        let mut worker = Worker {
            shared: shared.clone(),
            handle: handle.clone(),
            interest: HashMap::new(),
            users: HashMap::new(),
            stale: HashSet::new(),
            counted: HashSet::new(),
            subscribe: subscribe.clone(),
            fallback_epoch: unix_millis(),
            fallback: HashMap::new(),
        };
        worker.heartbeat().await?;
        let (ready, subscribed) = oneshot::channel();
        let subscriber = tokio::spawn(subscriber::run(
            shared.clone(),
            handle.clone(),
            commands,
            ready,
        ));
        match subscribed.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(redis::RedisError::from(std::io::Error::other(
                    "the subscriber stopped",
                )))
            }
        }
        let (jobs, inbox) = mpsc::unbounded_channel();
        let worker = tokio::spawn(worker.run(inbox));
        tracing::info!(node = %shared.node, "joined the cluster");
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                handle,
                jobs,
                subscriber: subscribe,
                tasks: Mutex::new(vec![worker, subscriber]),
            }),
        })
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.inner.shared.node
    }

    /// Hand the bridge one of the node's events. It takes what concerns the cluster (publishes
    /// for other nodes, interest, connections opening and closing) in order, and never waits.
    pub fn observe(&self, event: &Event) {
        let wanted = match event {
            Event::Remote(_) | Event::Sequence(_) => true,
            Event::Notice { notice, .. } => matches!(
                notice,
                Notice::Interest { .. }
                    | Notice::Follow { .. }
                    | Notice::Opened { .. }
                    | Notice::Closed { .. }
            ),
        };
        if wanted {
            let _ = self.inner.jobs.send(Job::Event(event.clone()));
        }
    }

    /// Admit a connection of `user` about to open on this node, before it opens: count it in
    /// the user's presence across the cluster, or refuse it if the user already has
    /// [`Options::max_connections_per_user`] connections on live nodes (with no limit, every
    /// connection is admitted and counted).
    ///
    /// On [`Admission::Refused`], do not open the connection: refuse it as a hub refuses one
    /// over its own limit, with [`OpenError::UserLimit`](switchboard::OpenError::UserLimit)
    /// (close code 4003, no `welcome`; `switchboard_tokio::axum::refuse` does that for axum).
    /// On [`Admission::Admitted`], open it: the next connection of `user` to open on this node
    /// claims the admission and is not counted again. An admission not claimed within
    /// [`Options::admission_timeout`] (the client went away during the upgrade, or the hub
    /// refused the open) stops counting at the next heartbeat.
    ///
    /// Fails if Redis cannot be asked: open the connection anyway; it is then counted when it
    /// opens, as a connection opened without admission is (and closed with 4003, after its
    /// `welcome`, if the user turns out to be over the limit).
    pub async fn admit(&self, user: &UserId) -> RedisResult<Admission> {
        let shared = &self.inner.shared;
        let _counting = shared.counting.read().await;
        let counted = shared.open(user).await;
        let mut reservations = shared.reservations.lock().expect("not poisoned");
        match counted {
            Ok(-1) => {
                shared.count(&shared.counters.refused);
                tracing::debug!(%user, "refused: over the cluster-wide connection limit");
                Ok(Admission::Refused)
            }
            Ok(_) => {
                let deadline = Instant::now() + shared.options.admission_timeout;
                reservations.reserve(user.clone(), deadline);
                Ok(Admission::Admitted)
            }
            Err(e) => {
                // Redis may have counted it before the answer was lost: the next heartbeat
                // rewrites the user's count from what this node holds.
                reservations.mark_stale(user.clone());
                Err(e)
            }
        }
    }

    /// Make this node ready for a connection of `user` about to open (with shared streams):
    /// the user's channel is subscribed, and held so for a few seconds, so that no entry
    /// sequenced from now on misses the connection; with `resume`, what followed that position
    /// is loaded from the shared history (the client may come from another node); and the
    /// user's stream starts at the sequencer's head. Call it before opening the connection.
    /// Returns how many entries were loaded. Fails if Redis cannot be reached in time: the
    /// connection may still open; whatever it then misses is announced with a `gap`.
    pub async fn prepare(&self, user: &UserId, resume: Option<Position>) -> RedisResult<usize> {
        let shared = &self.inner.shared;
        let stream = StreamId::User(user.clone());
        let (answer, answered) = oneshot::channel();
        let follow = Follow {
            pin: Some(shared.keys.stream_channel(&stream)),
            stream,
            resume,
            live: false,
            answer: Some(answer),
        };
        let _ = self.inner.subscriber.send(SubCommand::Follow(follow));
        match tokio::time::timeout(shared.options.timeout, answered).await {
            Ok(Ok(loaded)) => loaded,
            _ => Err(redis::RedisError::from(std::io::Error::other(
                "redis did not answer in time",
            ))),
        }
    }

    /// What the bridge did so far.
    pub fn stats(&self) -> BridgeStats {
        let subscriptions = self.subscriptions().len();
        self.inner.shared.counters.snapshot(subscriptions)
    }

    /// The channels subscribed right now, sorted.
    pub fn subscriptions(&self) -> Vec<String> {
        let subscribed = self.inner.shared.subscribed.lock().expect("not poisoned");
        let mut channels: Vec<String> = subscribed.iter().cloned().collect();
        channels.sort();
        channels
    }

    /// Close every connection of `user` on this node and on every other node (4002). Returns
    /// how many were closed on this node, and whether the other nodes could be told (this
    /// node's connections are closed either way).
    pub async fn disconnect_user(&self, user: impl Into<UserId>) -> (usize, RedisResult<()>) {
        let user = user.into();
        let closed = self.inner.handle.disconnect_user(user.clone()).await;
        (closed, self.tell_others(&user).await)
    }

    async fn tell_others(&self, user: &UserId) -> RedisResult<()> {
        let shared = &self.inner.shared;
        let command = wire::disconnect(&shared.node, user);
        let mut conn = shared.link.conn().await?;
        let sent = redis::cmd("PUBLISH")
            .arg(shared.keys.control_channel())
            .arg(command)
            .query_async::<i64>(&mut conn)
            .await;
        shared.link.check(sent).await.map(drop)
    }

    /// The user's open connections on every live node.
    pub async fn user_connections(&self, user: impl Into<UserId>) -> RedisResult<u64> {
        let key = self.inner.shared.keys.user_presence(&user.into());
        self.count(&key).await
    }

    /// True if the user has an open connection on some live node.
    pub async fn is_user_connected(&self, user: impl Into<UserId>) -> RedisResult<bool> {
        Ok(self.user_connections(user).await? > 0)
    }

    /// The room's members on every live node, as of each node's last heartbeat.
    pub async fn room_members(&self, room: impl Into<RoomId>) -> RedisResult<u64> {
        let key = self.inner.shared.keys.room_presence(&room.into());
        self.count(&key).await
    }

    /// The nodes whose lease is alive, sorted.
    pub async fn live_nodes(&self) -> RedisResult<Vec<String>> {
        let shared = &self.inner.shared;
        let mut conn = shared.link.conn().await?;
        let nodes = shared
            .scripts
            .live_nodes
            .key(shared.keys.nodes())
            .arg(shared.keys.lease_prefix())
            .invoke_async::<Vec<String>>(&mut conn)
            .await;
        let mut nodes = shared.link.check(nodes).await?;
        nodes.sort();
        Ok(nodes)
    }

    async fn count(&self, key: &str) -> RedisResult<u64> {
        let shared = &self.inner.shared;
        let mut conn = shared.link.conn().await?;
        let total = shared
            .scripts
            .count
            .key(key)
            .arg(shared.keys.lease_prefix())
            .invoke_async::<u64>(&mut conn)
            .await;
        shared.link.check(total).await
    }

    /// Leave the cluster: handle the events observed so far, withdraw this node's presence and
    /// lease, and stop the tasks. Call it before shutting the node's handle down.
    pub async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.inner.jobs.send(Job::Stop(done)).is_ok() {
            let _ = stopped.await;
        }
        self.abort();
    }

    /// Stop the tasks at once, without withdrawing anything, as a crashed node would: other
    /// nodes stop counting this node's presence when its lease expires.
    pub fn abort(&self) {
        for task in self.inner.tasks.lock().expect("not poisoned").drain(..) {
            task.abort();
        }
        self.inner
            .shared
            .subscribed
            .lock()
            .expect("not poisoned")
            .clear();
    }
}

/// The node's worker: publishes envelopes, follows interest, counts connections, and
/// refreshes presence, one job at a time.
struct Worker<R: Runtime> {
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
    subscribe: mpsc::UnboundedSender<SubCommand>,
    /// While Redis is unreachable: the epoch this node numbers its streams in, and each
    /// stream's last number there.
    fallback_epoch: u64,
    fallback: HashMap<StreamId, u64>,
}

impl<R: Runtime> Worker<R> {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Job>) {
        let period = self.shared.options.heartbeat.max(Duration::from_millis(10));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                job = inbox.recv() => {
                    let Some(job) = job else { return };
                    let mut next = Some(job);
                    while let Some(job) = next.take() {
                        match job {
                            // Publishes and entries waiting together go in one round trip.
                            Job::Event(Event::Remote(envelope)) => {
                                let first = Outgoing::Publish(envelope);
                                next = self.send_waiting(first, &mut inbox).await;
                            }
                            Job::Event(Event::Sequence(entry)) => {
                                let first = Outgoing::Sequence(entry);
                                next = self.send_waiting(first, &mut inbox).await;
                            }
                            Job::Event(event) => self.event(event).await,
                            Job::Stop(done) => {
                                while let Ok(Job::Event(event)) = inbox.try_recv() {
                                    self.event(event).await;
                                }
                                self.withdraw().await;
                                let _ = done.send(());
                                return;
                            }
                        }
                    }
                }
                _ = tick.tick() => {
                    if let Err(e) = self.heartbeat().await {
                        tracing::warn!(error = %e, "presence heartbeat failed");
                    }
                }
            }
        }
    }

    async fn event(&mut self, event: Event) {
        match event {
            Event::Remote(envelope) => self.send(&[Outgoing::Publish(envelope)]).await,
            Event::Sequence(entry) => self.send(&[Outgoing::Sequence(entry)]).await,
            Event::Notice { notice, .. } => match notice {
                Notice::Interest { stream, interested } => self.interest(stream, interested).await,
                // After the subscription the interest asked for: the history after `since`,
                // then the head.
                Notice::Follow { stream, since } => {
                    let follow = Follow {
                        stream,
                        pin: None,
                        resume: since,
                        live: false,
                        answer: None,
                    };
                    let _ = self.subscribe.send(SubCommand::Follow(follow));
                }
                Notice::Opened { conn, user } => self.opened(conn, user).await,
                Notice::Closed { conn, user, .. } => self.closed(conn, user).await,
                _ => {}
            },
        }
    }

    /// Send `first` and what else waits to go to Redis right behind it (at most
    /// [`SEND_BATCH`] in all); the next job, if one of another kind came.
    async fn send_waiting(
        &mut self,
        first: Outgoing,
        inbox: &mut mpsc::UnboundedReceiver<Job>,
    ) -> Option<Job> {
        let mut batch = vec![first];
        let mut next = None;
        while batch.len() < SEND_BATCH {
            match inbox.try_recv() {
                Ok(Job::Event(Event::Remote(envelope))) => batch.push(Outgoing::Publish(envelope)),
                Ok(Job::Event(Event::Sequence(entry))) => batch.push(Outgoing::Sequence(entry)),
                Ok(other) => {
                    next = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        self.send(&batch).await;
        next
    }

    /// Send publishes and stream entries to Redis in one round trip, in their order. An
    /// envelope is published once, on its target's channel. A stream entry is numbered by the
    /// shared sequencer, which publishes it to every node serving its stream (this one
    /// included) and keeps it in the stream's shared history. Without Redis, envelopes are
    /// counted as lost for other nodes, and entries delivered here only, numbered in this
    /// node's own epoch.
    async fn send(&mut self, batch: &[Outgoing]) {
        let shared = &self.shared;
        let options = &shared.options;
        let script = &shared.scripts.sequence;
        let mut pipe = redis::pipe();
        if batch.iter().any(|o| matches!(o, Outgoing::Sequence(_))) {
            // Loaded with every batch: a restarted Redis has forgotten it.
            pipe.load_script(script).ignore();
        }
        for outgoing in batch {
            match outgoing {
                Outgoing::Publish(envelope) => {
                    let payload = wire::envelope(&shared.node, &envelope.for_other_nodes());
                    pipe.cmd("PUBLISH")
                        .arg(shared.keys.target_channel(&envelope.target))
                        .arg(payload)
                        .ignore();
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
                            .arg(wire::entry_header(&shared.node, &entry.entry))
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
        let result = self.query::<()>(&pipe).await;
        if let Err(e) = &result {
            tracing::warn!(batch = batch.len(), error = %e, "could not reach redis: publishes lost for other nodes, stream entries delivered on this node only");
        }
        for outgoing in batch {
            match (outgoing, result.is_ok()) {
                (Outgoing::Publish(_), true) => self.shared.count(&self.shared.counters.published),
                (Outgoing::Publish(_), false) => {
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
            let shards = self.interest.entry(stream).or_default();
            *shards += 1;
            if *shards == 1 {
                let _ = self.subscribe.send(SubCommand::Subscribe(channel));
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
    async fn heartbeat(&mut self) -> RedisResult<()> {
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
        for room in rooms {
            let members = self.handle.room_members(room.clone()).await.len();
            let key = keys.room_presence(&room);
            pipe.cmd("HSET").arg(&key).arg(node).arg(members).ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(ttl).ignore();
        }
        self.query::<()>(&pipe).await?;
        self.stale.clear();
        Ok(())
    }

    /// Withdraw this node: its lease, its membership of the node set, its counts.
    async fn withdraw(&mut self) {
        let keys = &self.shared.keys;
        let node = &self.shared.node;
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(keys.lease(node)).ignore();
        pipe.cmd("SREM").arg(keys.nodes()).arg(node).ignore();
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
    }

    async fn query<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> RedisResult<T> {
        let mut conn = self.shared.link.conn().await?;
        let result = pipe.query_async(&mut conn).await;
        self.shared.link.check(result).await
    }
}
