//! The [`Bridge`]: one per node, between the node's hubs and Redis.

use crate::admission::{Admission, Reservations};
use crate::counters::{BridgeStats, Counters};
use crate::follows::Follow;
use crate::history::Missed;
use crate::keys::Keys;
use crate::link::{Backoff, Link};
use crate::options::BridgeOptions;
use crate::scripts::Scripts;
use crate::shared::Shared;
use crate::subscriber::{self, SubCommand};
use crate::wire;
use crate::worker::{Stop, Worker};
use redis::{Client, ErrorKind, RedisError, RedisResult};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use switchboard::{Position, RoomId, StreamId, UserId, UserMembership};
use switchboard_transport::{ClusterEvents, Error, Handle, Runtime};
use tokio::sync::{mpsc, oneshot, RwLock};
use tokio::task::JoinHandle;

/// A node's link to the cluster: publishes what other nodes need, delivers what they publish,
/// keeps presence and the cluster-wide limit. Cheap to clone.
///
/// Start the node's hubs with a cluster sink (`Builder::cluster`), then [`Bridge::start`] with
/// the sink's [`ClusterEvents`]: the bridge reads what the hubs emit for other nodes from there
/// itself. To hold the per-user limit across the cluster exactly as one hub holds it (refusing
/// a connection before its `welcome`), ask [`Bridge::admit`] about each client before opening
/// its connection.
pub struct Bridge<R: Runtime> {
    inner: Arc<Inner<R>>,
}

struct Inner<R: Runtime> {
    shared: Arc<Shared>,
    handle: Handle<R>,
    /// The worker's stop requests.
    stop: mpsc::UnboundedSender<Stop>,
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
    /// worker and subscriber tasks (on tokio). The worker reads `cluster`, the events of the
    /// cluster sink `handle`'s switchboard was built with (`Builder::cluster`), in order.
    /// Fails if the options are refused ([`BridgeOptions::check`], an `InvalidClientConfig`
    /// error), the URL is invalid or Redis cannot be reached now; later outages are survived.
    pub async fn start(
        handle: Handle<R>,
        cluster: ClusterEvents,
        options: BridgeOptions,
    ) -> RedisResult<Self> {
        options.check().map_err(|bad| {
            RedisError::from((
                ErrorKind::InvalidClientConfig,
                "invalid bridge options",
                bad.to_string(),
            ))
        })?;
        let client = Client::open(options.url.as_str())?;
        let counters = Arc::new(Counters::default());
        let backoff = Backoff {
            min: options.backoff_min,
            max: options.backoff_max,
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
            cancels: Mutex::default(),
        });
        let (subscribe, commands) = mpsc::unbounded_channel();
        let mut worker = Worker::new(shared.clone(), handle.clone(), subscribe.clone());
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
        let (stop, stops) = mpsc::unbounded_channel();
        let worker = tokio::spawn(worker.run(cluster, stops));
        tracing::info!(node = %shared.node, "joined the cluster");
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                handle,
                stop,
                subscriber: subscribe,
                tasks: Mutex::new(vec![worker, subscriber]),
            }),
        })
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.inner.shared.node
    }

    /// What the bridge's tasks share, for the bridge's other `impl` blocks.
    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Admit a connection of `user` about to open on this node, before it opens: count it in
    /// the user's presence across the cluster, or refuse it if the user already has
    /// [`BridgeOptions::max_connections_per_user`] connections on live nodes (with no limit, every
    /// connection is admitted and counted).
    ///
    /// On [`Admission::Refused`], do not open the connection: refuse it as a hub refuses one
    /// over its own limit, with [`OpenError::UserLimit`](switchboard::OpenError::UserLimit)
    /// (close code 4003, no `welcome`; `switchboard_tokio::axum::refuse` does that for axum).
    /// On [`Admission::Admitted`], open it: the next connection of `user` to open on this node
    /// claims the admission and is not counted again. An admission not claimed within
    /// [`BridgeOptions::admission_timeout`] (the client went away during the upgrade, or the hub
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
    /// is loaded from the shared history (the client may come from another node), without it
    /// all the history this node keeps (what reached no connection waits there for this one,
    /// and so do the runs in progress so far); and the user's stream starts at the
    /// sequencer's head. Call it before opening the connection.
    /// Returns how many entries were loaded. Fails if Redis cannot be reached in time: the
    /// connection may still open; whatever it then misses is announced with a `gap`.
    pub async fn prepare(&self, user: &UserId, resume: Option<Position>) -> RedisResult<usize> {
        let shared = &self.inner.shared;
        let stream = StreamId::User(user.clone());
        let (answer, answered) = oneshot::channel();
        // Kept for replays; delivered in order if the node did not follow the stream (the
        // subscription task knows: see `Follow::live`).
        let follow = Follow {
            pin: Some(shared.keys.stream_channel(&stream)),
            stream,
            missed: resume.map_or(Missed::Kept, Missed::After),
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
    /// how many were closed on this node ([`Error::Stopped`] if this node's switchboard has
    /// shut down), and whether the other nodes could be told (each is attempted whatever the
    /// other's outcome).
    pub async fn disconnect_user(
        &self,
        user: impl Into<UserId>,
    ) -> (Result<usize, Error>, RedisResult<()>) {
        let user = user.into();
        let closed = self.inner.handle.disconnect_user(user.clone()).await;
        let command = wire::disconnect(&self.inner.shared.node, &user);
        (closed, self.tell_others(command).await)
    }

    /// Join every open connection of `user` to `room` on this node and on every other node,
    /// on the backend's decision (whatever their tokens allow, within the room limits; see
    /// [`Handle::add_user_to_room`]). Returns what it did on this node, and whether the other
    /// nodes could be told (each is attempted whatever the other's outcome).
    pub async fn add_user_to_room(
        &self,
        user: impl Into<UserId>,
        room: impl Into<RoomId>,
    ) -> (Result<UserMembership, Error>, RedisResult<()>) {
        self.change_membership(user.into(), room.into(), true).await
    }

    /// Take every open connection of `user` out of `room` on this node and on every other
    /// node. Returns what it did on this node, and whether the other nodes could be told.
    pub async fn remove_user_from_room(
        &self,
        user: impl Into<UserId>,
        room: impl Into<RoomId>,
    ) -> (Result<UserMembership, Error>, RedisResult<()>) {
        self.change_membership(user.into(), room.into(), false)
            .await
    }

    async fn change_membership(
        &self,
        user: UserId,
        room: RoomId,
        join: bool,
    ) -> (Result<UserMembership, Error>, RedisResult<()>) {
        let handle = &self.inner.handle;
        let here = match join {
            true => handle.add_user_to_room(user.clone(), room.clone()).await,
            false => {
                handle
                    .remove_user_from_room(user.clone(), room.clone())
                    .await
            }
        };
        let change = wire::RoomChange { user, room };
        let command = wire::membership(&self.inner.shared.node, &change, join);
        (here, self.tell_others(command).await)
    }

    /// Publish a command on the control channel, for every other node.
    async fn tell_others(&self, command: Vec<u8>) -> RedisResult<()> {
        self.inner.shared.tell_others(command).await.map(drop)
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

    /// Leave the cluster: carry out every cluster event the hubs emitted so far (a write the
    /// node answered before the call reaches Redis), withdraw this node's presence and lease,
    /// and stop the tasks. Call it before shutting the node's handle down.
    pub async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.inner.stop.send(done).is_ok() {
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
