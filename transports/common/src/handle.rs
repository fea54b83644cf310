//! The application's side: [`Builder`] starts the shards, [`Handle`] publishes, queries and
//! shuts down, [`UserHandle`] is limited to one user.

use crate::driver;
use crate::events::Events;
use crate::frame::Socket;
use crate::runtime::Runtime;
use crate::server;
use crate::shard::{self, Command, Relay, Relaying, Shard};
use crate::tasks::Tasks;
use async_channel::Sender;
use futures_channel::oneshot;
use futures_util::future::join_all;
use futures_util::lock::Mutex as AsyncMutex;
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard::{
    AgentUpdate, Config, ConnId, ConnectionInfo, Delivery, Envelope, Hub, Input, Message, Open,
    OpenError, Position, PublishError, Reason, RemoteTarget, RoomError, RoomId, RunId, RunReport,
    Sequenced, Stats, StreamId, Target, ThreadId, UserId,
};
use tracing::Instrument;

/// Tuning of the transport itself (the hub's own limits are in [`Config`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Number of hubs, each owned by one task, 1 to 256. Default: the available parallelism.
    pub shards: usize,
    /// How long a connection the hub closed may take to write what it was handed and its
    /// close frame, and then to receive the peer's close frame. Default 5 s.
    pub close_timeout: Duration,
    /// How long [`Handle::shutdown`] waits for connections to close before dropping them.
    /// Default 10 s.
    pub shutdown_grace: Duration,
    /// How long a client may take to complete the WebSocket handshake. Default 10 s.
    pub handshake_timeout: Duration,
    /// Capacity of each shard's inbox; senders (connection readers, the handle) wait when it
    /// is full. Default 4096.
    pub inbox_capacity: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            shards: std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
            close_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            inbox_capacity: 4096,
        }
    }
}

/// Starts a switchboard on the runtime `R`: the hub configuration plus the transport
/// [`Options`]. Each transport names it for its runtime (`switchboard_tokio::Builder`).
///
/// ```no_run
/// # fn run<R: switchboard_transport::Runtime + Default>() {
/// use switchboard::Config;
/// use switchboard_transport::Builder;
///
/// let (handle, events) = Builder::<R>::new(Config::production()).shards(4).start();
/// # drop((handle, events));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Builder<R> {
    runtime: R,
    config: Config,
    options: Options,
}

impl<R: Runtime + Default> Builder<R> {
    /// A builder with `config` for every hub, default [`Options`] and the default runtime.
    pub fn new(config: Config) -> Self {
        Self::on(R::default(), config)
    }
}

impl<R: Runtime> Builder<R> {
    /// A builder on `runtime` with `config` for every hub and default [`Options`].
    pub fn on(runtime: R, config: Config) -> Self {
        Self {
            runtime,
            config,
            options: Options::default(),
        }
    }

    /// Replace all transport options.
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// The number of shards (1 to 256).
    pub fn shards(mut self, shards: usize) -> Self {
        self.options.shards = shards.max(1);
        self
    }

    /// See [`Options::close_timeout`].
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.options.close_timeout = timeout;
        self
    }

    /// See [`Options::shutdown_grace`].
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.options.shutdown_grace = grace;
        self
    }

    /// See [`Options::handshake_timeout`].
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.options.handshake_timeout = timeout;
        self
    }

    /// Spawn one task per shard, each owning a `Hub::new(config)`, and return the handle and
    /// the application's event inbox. Must be called where the runtime can spawn (within a
    /// tokio runtime, for tokio).
    ///
    /// Every hub gets the same `Config`: its limits, `max_connections` included, apply per
    /// shard, except the history budget (`history.max_total_bytes`), which bounds the process:
    /// each of N shards keeps 1/N of it. Each hub's `shard` is set to its index (so connection ids name their shard), and
    /// with several shards each hub is part of a cluster so that clients' room publishes reach
    /// every shard; envelopes reach [`Events`] only if `config.cluster` was set.
    pub fn start(self) -> (Handle<R>, Events) {
        let Builder {
            runtime,
            config,
            mut options,
        } = self;
        options.shards = options.shards.clamp(1, MAX_SHARDS);
        options.inbox_capacity = options.inbox_capacity.max(1);
        let (events, inbox) = async_channel::unbounded();
        let (relay_tx, relay_rx): (Vec<_>, Vec<_>) = (0..options.shards)
            .map(|_| async_channel::unbounded())
            .unzip();
        let mut shards = Vec::with_capacity(options.shards);
        let mut stopped = Vec::with_capacity(options.shards);
        for (index, relays) in relay_rx.into_iter().enumerate() {
            let (tx, rx) = async_channel::bounded(options.inbox_capacity);
            let mut hub_config = config.clone();
            hub_config.shard = u8::try_from(index).expect("at most MAX_SHARDS shards");
            // The history budget is the process's: each shard keeps its share.
            hub_config.history.max_total_bytes = config.history.max_total_bytes / options.shards;
            // Several shards relay client publishes to each other as envelopes.
            hub_config.cluster = config.cluster || options.shards > 1;
            let siblings = relay_tx
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != index)
                .map(|(_, tx)| tx.clone())
                .collect();
            let hub = Hub::new(hub_config);
            let shard = Shard::new(index, hub, events.clone(), siblings, config.cluster);
            let (done, finished) = oneshot::channel::<()>();
            let task = shard::run(runtime.clone(), shard, rx, relays);
            runtime.spawn(async move {
                task.await;
                drop(done);
            });
            stopped.push(finished);
            shards.push(tx);
        }
        let inner = Inner {
            runtime,
            shards,
            relays: relay_tx,
            options,
            message_limit: config.limits.max_frame_bytes.saturating_mul(2),
            write_buffer_limit: server::write_buffer_limit(&config.backpressure),
            connections: Tasks::new(),
            shards_stopped: Mutex::new(stopped),
            stopping: async_channel::bounded(1),
            shutdown: AsyncMutex::new(()),
        };
        let handle = Handle {
            inner: Arc::new(inner),
        };
        (handle, Events::new(inbox))
    }
}

/// The user whose shard serves `stream` alone (a room's members are on every shard).
fn owner(stream: &StreamId) -> Option<&UserId> {
    match stream {
        StreamId::User(user) => Some(user),
        StreamId::Room(_) => None,
    }
}

/// Connection ids carry their shard in 8 bits.
const MAX_SHARDS: usize = 256;

struct Inner<R> {
    runtime: R,
    shards: Vec<Sender<Command>>,
    /// Each shard's relay inbox: inputs from sibling shards and other nodes, in order.
    relays: Vec<Sender<Relay>>,
    options: Options,
    /// The largest message the WebSocket layer reads: twice the hub's `max_frame_bytes`, so
    /// that the hub sees (and closes with 1009) a frame somewhat over its limit, while a huge
    /// one is cut off before it is buffered.
    message_limit: usize,
    /// The most the WebSocket layer holds unwritten per connection (see
    /// [`server::write_buffer_limit`]).
    write_buffer_limit: usize,
    /// Connection tasks, refused once shutdown started.
    connections: Arc<Tasks>,
    /// Each shard task drops its sender when it ends.
    shards_stopped: Mutex<Vec<oneshot::Receiver<()>>>,
    /// Closed when shutdown starts: the accept loops wait on the receiver.
    stopping: (Sender<()>, async_channel::Receiver<()>),
    /// Held by a shutdown in progress, so a second caller waits for it to finish.
    shutdown: AsyncMutex<()>,
}

/// Why a request through the [`Handle`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The hub refused the publish or agent update (see [`PublishError`]).
    Publish(PublishError),
    /// The hub refused the room or thread operation (see [`RoomError`]).
    Room(RoomError),
    /// The connection does not exist (closed, never existed, or not the scope's user's).
    UnknownConnection(ConnId),
    /// The switchboard has shut down.
    Stopped,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Publish(e) => write!(f, "publish refused: {e}"),
            Error::Room(e) => write!(f, "room operation refused: {e}"),
            Error::UnknownConnection(c) => write!(f, "unknown connection {c}"),
            Error::Stopped => f.write_str("the switchboard has shut down"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Publish(e) => Some(e),
            Error::Room(e) => Some(e),
            _ => None,
        }
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
fn sum(deliveries: impl IntoIterator<Item = Delivery>) -> Delivery {
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

/// The shard of a user: FNV-1a of the id, modulo the number of shards. Stable across runs
/// and versions, so a reconnecting client lands on the shard that holds its streams.
pub(crate) fn shard_for(user: &str, shards: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in user.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % shards as u64) as usize
}

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
    inner: Arc<Inner<R>>,
}

impl<R> Clone for Handle<R> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<R: Runtime> fmt::Debug for Handle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("shards", &self.inner.shards.len())
            .field("stopping", &self.is_shutting_down())
            .finish()
    }
}

impl<R: Runtime> Handle<R> {
    // ----- plumbing -------------------------------------------------------------------------

    /// The transport options it was started with.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// The runtime it runs on.
    pub fn runtime(&self) -> &R {
        &self.inner.runtime
    }

    /// The largest message the WebSocket layer should read: twice the hub's
    /// `max_frame_bytes`, so that the hub sees (and closes with 1009) a frame somewhat over
    /// its limit, while a huge one is cut off before it is buffered.
    pub fn message_limit(&self) -> usize {
        self.inner.message_limit
    }

    /// The most the WebSocket layer may hold unwritten for one connection (its
    /// `max_write_buffer_size`), from the hub's backpressure budgets: see
    /// [`write_buffer_limit`](crate::write_buffer_limit).
    pub fn write_buffer_limit(&self) -> usize {
        self.inner.write_buffer_limit
    }

    pub(crate) fn inbox(&self, shard: usize) -> Sender<Command> {
        self.inner.shards[shard].clone()
    }

    /// Resolves once [`Handle::shutdown`] has started.
    pub(crate) fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let stopping = self.inner.stopping.1.clone();
        async move {
            let _ = stopping.recv().await;
        }
    }

    /// Run `f` on `shard`'s task and return its result once the drain that follows is done
    /// (so what `f` made the hub emit is already with the writers and in [`Events`]).
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        shard: usize,
        f: impl FnOnce(&mut Shard, Instant) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        let call = Command::Call(Box::new(move |s, now| {
            let result = f(s, now);
            s.reply_after_drain(Box::new(move || {
                let _ = tx.send(result);
            }));
        }));
        self.inner.shards[shard]
            .send(call)
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Run `f` on every shard concurrently; results by shard index.
    async fn call_all<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Shard, Instant) -> T + Clone + Send + 'static,
    ) -> Result<Vec<T>, Error> {
        let calls = (0..self.shards()).map(|i| self.call(i, f.clone()));
        join_all(calls).await.into_iter().collect()
    }

    /// Spawn a connection task that shutdown waits for (and aborts after the grace). Once
    /// shutdown has started the task is handed back instead.
    pub(crate) fn spawn_tracked<F>(&self, task: F) -> Result<(), F>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.inner.connections.spawn(&self.inner.runtime, task)
    }

    // ----- topology -------------------------------------------------------------------------

    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.inner.shards.len()
    }

    /// The shard that holds `user`'s connections, streams and runs.
    pub fn shard_of(&self, user: &UserId) -> usize {
        shard_for(user.as_str(), self.shards())
    }

    // ----- connections ----------------------------------------------------------------------

    /// Run an already upgraded WebSocket as a connection of `open.user` until it ends, from
    /// any WebSocket library (wrap it as a [`Socket`]). The connection is tracked by
    /// [`Handle::shutdown`]; refused opens are closed with the hub's close code. The
    /// connection's task runs in the caller's current `tracing` span (a request's, say), and
    /// records the connection id in that span's `conn` field if it has one.
    pub async fn run_socket<S: Socket>(&self, open: Open, socket: S) {
        let (done, finished) = oneshot::channel::<()>();
        let handle = self.clone();
        let task = async move {
            driver::drive(handle, open, socket).await;
            let _ = done.send(());
        }
        .instrument(tracing::Span::current());
        match self.spawn_tracked(task) {
            // Resolves when the driver ends or is aborted by shutdown.
            Ok(()) => {
                let _ = finished.await;
            }
            // Shutting down: the hub refuses the open and the socket is closed with 1001.
            Err(task) => task.await,
        }
    }

    /// Close an already upgraded WebSocket at once with `refused`'s close code and reason,
    /// without opening a connection: for a refusal decided outside the hub (a cluster-wide
    /// limit, say), which the client sees exactly as the hub's own refusal of an open (no
    /// `welcome`, then the close frame). Waits at most
    /// [`Options::close_timeout`] for the close frame to be written.
    pub async fn refuse_socket<S: Socket>(&self, mut socket: S, refused: OpenError) {
        driver::refuse(self, &mut socket, refused).await;
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
            Target::Connection(conn) => Some(self.shard_of_connection(*conn)?),
            Target::User(user) | Target::Thread { user, .. } => Some(self.shard_of(user)),
            Target::Room(_) | Target::All => None,
        };
        let result = match shard {
            Some(shard) => {
                self.call(shard, move |s, now| s.hub.publish(now, audience, &message))
                    .await?
            }
            None => {
                let message = Arc::new(message);
                let deliveries = self
                    .call_all(move |s, now| {
                        // Every shard serves its own members: nothing to relay between them,
                        // and other nodes get one envelope per publish, the first shard's.
                        s.relaying = Relaying::Quiet {
                            forward: s.index == 0,
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
        result.map_err(|e| match e {
            PublishError::UnknownConnection(u) => Error::UnknownConnection(u.0),
            e => Error::Publish(e),
        })
    }

    /// Send `message` to one connection (unsequenced): `publish` to `Target::Connection`.
    pub async fn send_to_connection(
        &self,
        conn: ConnId,
        message: Message,
    ) -> Result<Delivery, Error> {
        self.publish(Target::Connection(conn), message).await
    }

    /// Publish one event of `user`'s agent run (see [`Hub::send_agent_update`]).
    pub async fn send_agent_update(
        &self,
        user: impl Into<UserId>,
        update: AgentUpdate,
    ) -> Result<Delivery, Error> {
        let user = user.into();
        self.call(self.shard_of(&user), move |s, now| {
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
        self.call(self.shard_of(&user), move |s, now| {
            let _ = s.hub.handle_input(
                now,
                Input::ProducerLost {
                    user: &user,
                    run: &run,
                },
            );
        })
        .await
    }

    /// The report of one of `user`'s runs (in progress, or ended within `run_retention`).
    pub async fn run_report(
        &self,
        user: impl Into<UserId>,
        run: impl Into<RunId>,
    ) -> Option<RunReport> {
        let (user, run) = (user.into(), run.into());
        self.call(self.shard_of(&user), move |s, _| {
            s.hub.run_report(&user, &run).cloned()
        })
        .await
        .ok()
        .flatten()
    }

    /// Queue a publish that arrived from another node (`Input::Remote`) for the shards it
    /// concerns, after what was queued before. It emits no new envelope. Never waits: see
    /// [`Handle::fed`].
    pub fn deliver_remote(&self, envelope: Envelope) -> Result<(), Error> {
        let user = match &envelope.target {
            RemoteTarget::User { user } | RemoteTarget::Thread { user, .. } => Some(user.clone()),
            RemoteTarget::Room { .. } | RemoteTarget::All => None,
        };
        let envelope = Arc::new(envelope);
        self.relay(user.as_ref(), || Relay::Envelope(envelope.clone()))
    }

    /// Queue a stream entry sealed by the cluster's sequencer (`Input::Sequenced`) for the
    /// shards serving its stream, after what was queued before: queue a stream's entries in
    /// its order. Never waits: see [`Handle::fed`].
    pub fn deliver_sequenced(&self, entry: Sequenced) -> Result<(), Error> {
        let user = owner(&entry.entry.stream).cloned();
        let entry = Arc::new(entry);
        self.relay(user.as_ref(), || Relay::Sequenced(entry.clone()))
    }

    /// Queue an older entry of a stream, from the cluster's shared history
    /// (`Input::History`), for the shards serving its stream: queue a stream's history newest
    /// first. Never waits: see [`Handle::fed`].
    pub fn deliver_history(&self, entry: Sequenced) -> Result<(), Error> {
        let user = owner(&entry.entry.stream).cloned();
        let entry = Arc::new(entry);
        self.relay(user.as_ref(), || Relay::History(entry.clone()))
    }

    /// Queue, for the shards serving `stream`, where the cluster's sequencer stands on it
    /// (`Input::StreamHead`): a hub that just started serving a room answers its waiting
    /// joins. Never waits: see [`Handle::fed`].
    pub fn deliver_head(&self, stream: StreamId, head: Option<Position>) -> Result<(), Error> {
        let user = owner(&stream).cloned();
        let stream = Arc::new(stream);
        self.relay(user.as_ref(), || Relay::Head(stream.clone(), head))
    }

    /// Wait until the shards serving `stream` (every shard for `None`) have been fed
    /// everything queued for them so far by the `deliver_*` methods: what opens after this
    /// sees it, and a feeder that waits for it keeps the queues short.
    pub async fn fed(&self, stream: Option<&StreamId>) -> Result<(), Error> {
        let user = stream.and_then(owner);
        let mut answers = Vec::new();
        self.relay(user, || {
            let (tx, rx) = oneshot::channel();
            answers.push(rx);
            Relay::Flush(tx)
        })?;
        for answer in answers {
            answer.await.map_err(|_| Error::Stopped)?;
        }
        Ok(())
    }

    /// The longest queue of relays not fed yet, over the shards: what a feeder from another
    /// node compares with its bound before it waits with [`Handle::fed`].
    pub fn relay_backlog(&self) -> usize {
        self.inner.relays.iter().map(Sender::len).max().unwrap_or(0)
    }

    /// Queue a relay for `user`'s shard, or for every shard.
    fn relay(&self, user: Option<&UserId>, mut relay: impl FnMut() -> Relay) -> Result<(), Error> {
        let relays = &self.inner.relays;
        let targets = match user {
            Some(user) => std::slice::from_ref(&relays[self.shard_of(user)]),
            None => &relays[..],
        };
        for target in targets {
            target.try_send(relay()).map_err(|_| Error::Stopped)?;
        }
        Ok(())
    }

    // ----- per user -------------------------------------------------------------------------

    /// A handle limited to `user`: it can only publish to, query and disconnect that user's
    /// own connections, threads and runs.
    pub fn user(&self, user: impl Into<UserId>) -> UserHandle<R> {
        let user = user.into();
        UserHandle {
            shard: self.shard_of(&user),
            handle: self.clone(),
            user,
        }
    }

    /// True if `user` has an open connection.
    pub async fn is_user_connected(&self, user: impl Into<UserId>) -> bool {
        let user = user.into();
        self.call(self.shard_of(&user), move |s, _| {
            s.hub.is_user_connected(&user)
        })
        .await
        .unwrap_or(false)
    }

    /// `user`'s open connections, oldest first.
    pub async fn user_connections(&self, user: impl Into<UserId>) -> Vec<ConnId> {
        let user = user.into();
        self.call(self.shard_of(&user), move |s, _| {
            s.hub.user_connections(&user).to_vec()
        })
        .await
        .unwrap_or_default()
    }

    /// Wait until `user` has a connection (true), or `timeout` passes (false). Messages
    /// published to the user meanwhile wait in the user's stream and are delivered when the
    /// connection opens.
    pub async fn wait_for_connection(&self, user: impl Into<UserId>, timeout: Duration) -> bool {
        let user = user.into();
        let (done, connected) = oneshot::channel();
        let deadline = Instant::now() + timeout;
        let registered = self
            .call(self.shard_of(&user), move |s, _| {
                let waiter = s.hub.wait_for_connection(&user, deadline);
                s.add_waiter(waiter, done);
            })
            .await;
        registered.is_ok() && connected.await.unwrap_or(false)
    }

    /// Close every connection of `user` with 4002. Returns how many were closed.
    pub async fn disconnect_user(&self, user: impl Into<UserId>) -> usize {
        let user = user.into();
        self.call(self.shard_of(&user), move |s, _| {
            s.hub.disconnect_user(&user)
        })
        .await
        .unwrap_or(0)
    }

    // ----- per connection -------------------------------------------------------------------

    /// The shard that issued `conn` (its hub checks the rest).
    fn shard_of_connection(&self, conn: ConnId) -> Result<usize, Error> {
        let shard = usize::from(conn.shard());
        if shard < self.shards() {
            Ok(shard)
        } else {
            Err(Error::UnknownConnection(conn))
        }
    }

    /// A snapshot of one connection.
    pub async fn connection_info(&self, conn: ConnId) -> Option<ConnectionInfo> {
        self.call(self.shard_of_connection(conn).ok()?, move |s, _| {
            s.hub.connection_info(conn)
        })
        .await
        .ok()
        .flatten()
    }

    /// Close one connection with `reason`'s close code (after what is queued for it, for
    /// the graceful reasons).
    pub async fn close_connection(&self, conn: ConnId, reason: Reason) -> Result<(), Error> {
        self.call(self.shard_of_connection(conn)?, move |s, _| {
            s.hub.close_connection(conn, reason)
        })
        .await?
        .map_err(|_| Error::UnknownConnection(conn))
    }

    /// Add a connection to a room (it receives `joined`).
    pub async fn join_room(&self, conn: ConnId, room: impl Into<RoomId>) -> Result<(), Error> {
        let room = room.into();
        self.call(self.shard_of_connection(conn)?, move |s, now| {
            s.hub.join_room(now, conn, &room)
        })
        .await?
        .map_err(Error::Room)
    }

    /// Remove a connection from a room (it receives `left`).
    pub async fn leave_room(&self, conn: ConnId, room: impl Into<RoomId>) -> Result<(), Error> {
        let room = room.into();
        self.call(self.shard_of_connection(conn)?, move |s, _| {
            s.hub.leave_room(conn, &room)
        })
        .await?
        .map_err(Error::Room)
    }

    /// Bind a connection to a thread of its user, or unbind it with `None`.
    pub async fn update_connection_thread(
        &self,
        conn: ConnId,
        thread: Option<ThreadId>,
    ) -> Result<(), Error> {
        self.call(self.shard_of_connection(conn)?, move |s, _| {
            s.hub.update_connection_thread(conn, thread)
        })
        .await?
        .map_err(|_| Error::UnknownConnection(conn))
    }

    /// The members of `room` on every shard.
    pub async fn room_members(&self, room: impl Into<RoomId>) -> Vec<ConnId> {
        let room = room.into();
        let members = self
            .call_all(move |s, _| s.hub.room_members(&room))
            .await
            .unwrap_or_default();
        members.into_iter().flatten().collect()
    }

    // ----- observability --------------------------------------------------------------------

    /// Every shard's statistics and their sum (empty once stopped).
    pub async fn stats(&self) -> ShardedStats {
        let shards = self
            .call_all(|s, _| s.hub.stats())
            .await
            .unwrap_or_default();
        ShardedStats::of(shards)
    }

    // ----- shutdown -------------------------------------------------------------------------

    /// True once [`Handle::shutdown`] has started.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.stopping.0.is_closed()
    }

    /// Shut down gracefully: stop accepting, have every hub close its connections with 1001
    /// after what was queued for them, wait up to [`Options::shutdown_grace`] for the
    /// connection tasks to finish (then drop the rest), and stop the shards. Afterwards
    /// requests fail with [`Error::Stopped`] and [`Events::recv`] returns `None`. Calling it
    /// again waits for the first call to finish.
    ///
    /// The same as [`Handle::shutdown_with`]`(Reason::Shutdown)`.
    pub async fn shutdown(&self) {
        self.shutdown_with(Reason::Shutdown).await;
    }

    /// [`Handle::shutdown`], closing the connections with `reason`: [`Reason::Shutdown`]
    /// (1001, going away) or [`Reason::ServiceRestart`] (1012: the client should reconnect,
    /// to another node of a cluster, and resume). Any other reason closes as
    /// [`Reason::Shutdown`]. Only the first call's reason counts; a later call waits for the
    /// first to finish.
    pub async fn shutdown_with(&self, reason: Reason) {
        let _once = self.inner.shutdown.lock().await;
        self.inner.stopping.0.close();
        let _ = self.call_all(move |s, _| s.hub.shutdown(reason)).await;
        let grace = self.inner.options.shutdown_grace;
        self.inner
            .connections
            .shutdown(&self.inner.runtime, grace)
            .await;
        for shard in &self.inner.shards {
            let _ = shard.send(Command::Stop).await;
        }
        let stopped = std::mem::take(&mut *self.inner.shards_stopped.lock().expect("not poisoned"));
        for shard in stopped {
            let _ = shard.await;
        }
    }
}

/// A [`Handle`] limited to one user: every method addresses that user's own connections,
/// threads and runs, through the hub's `UserScope`. A connection of another user is reported
/// as unknown, exactly like a closed one. There is no method for rooms or everyone.
#[derive(Debug)]
pub struct UserHandle<R: Runtime> {
    handle: Handle<R>,
    user: UserId,
    shard: usize,
}

impl<R: Runtime> Clone for UserHandle<R> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
            user: self.user.clone(),
            shard: self.shard,
        }
    }
}

impl<R: Runtime> UserHandle<R> {
    /// The user.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// Run `f` with the user's scope on the user's shard.
    async fn scoped<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut switchboard::UserScope<'_>, Instant) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let user = self.user.clone();
        self.handle
            .call(self.shard, move |s, now| f(&mut s.hub.scope(user), now))
            .await
    }

    /// Check that `conn` is on the user's shard (ownership itself is checked by the scope).
    fn local(&self, conn: ConnId) -> Result<ConnId, Error> {
        if usize::from(conn.shard()) == self.shard {
            Ok(conn)
        } else {
            Err(Error::UnknownConnection(conn))
        }
    }

    /// Publish to every connection of the user.
    pub async fn publish(&self, message: Message) -> Result<Delivery, Error> {
        self.scoped(move |scope, now| scope.publish(now, &message))
            .await?
            .map_err(Error::Publish)
    }

    /// Publish to the user's connections bound to `thread`.
    pub async fn publish_to_thread(
        &self,
        thread: impl Into<ThreadId>,
        message: Message,
    ) -> Result<Delivery, Error> {
        let thread = thread.into();
        self.scoped(move |scope, now| scope.publish_to_thread(now, thread, &message))
            .await?
            .map_err(Error::Publish)
    }

    /// Send to one of the user's connections.
    pub async fn send_to_connection(
        &self,
        conn: ConnId,
        message: Message,
    ) -> Result<Delivery, Error> {
        let id = self.local(conn)?;
        self.scoped(move |scope, now| scope.send_to_connection(now, id, &message))
            .await?
            .map_err(|e| match e {
                PublishError::UnknownConnection(_) => Error::UnknownConnection(conn),
                e => Error::Publish(e),
            })
    }

    /// Rebind one of the user's connections to a thread (or unbind it).
    pub async fn update_connection_thread(
        &self,
        conn: ConnId,
        thread: Option<ThreadId>,
    ) -> Result<(), Error> {
        let id = self.local(conn)?;
        self.scoped(move |scope, _| scope.update_connection_thread(id, thread))
            .await?
            .map_err(|_| Error::UnknownConnection(conn))
    }

    /// Publish one event of one of the user's agent runs.
    pub async fn send_agent_update(&self, update: AgentUpdate) -> Result<Delivery, Error> {
        self.scoped(move |scope, now| scope.send_agent_update(now, update))
            .await?
            .map_err(Error::Publish)
    }

    /// The report of one of the user's runs.
    pub async fn run_report(&self, run: impl Into<RunId>) -> Option<RunReport> {
        let run = run.into();
        self.scoped(move |scope, _| scope.run_report(&run).cloned())
            .await
            .ok()
            .flatten()
    }

    /// Wait until the user has a connection (true) or `timeout` passes (false).
    pub async fn wait_for_connection(&self, timeout: Duration) -> bool {
        self.handle
            .wait_for_connection(self.user.clone(), timeout)
            .await
    }

    /// Close every connection of the user with 4002. Returns how many were closed.
    pub async fn disconnect(&self) -> usize {
        self.scoped(|scope, _| scope.disconnect())
            .await
            .unwrap_or(0)
    }

    /// The user's open connections, oldest first.
    pub async fn connections(&self) -> Vec<ConnId> {
        self.scoped(|scope, _| scope.connections().to_vec())
            .await
            .unwrap_or_default()
    }

    /// True if the user has an open connection.
    pub async fn is_connected(&self) -> bool {
        self.scoped(|scope, _| scope.is_connected())
            .await
            .unwrap_or(false)
    }

    /// A snapshot of one of the user's connections.
    pub async fn connection_info(&self, conn: ConnId) -> Option<ConnectionInfo> {
        let id = self.local(conn).ok()?;
        self.scoped(move |scope, _| scope.connection_info(id))
            .await
            .ok()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_always_maps_to_the_same_shard_and_users_spread() {
        let shards: Vec<usize> = (0..64)
            .map(|i| shard_for(&format!("user-{i}"), 4))
            .collect();
        assert_eq!(shard_for("user-7", 4), shards[7]);
        for s in 0..4 {
            assert!(shards.contains(&s), "no user on shard {s}");
        }
    }

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
