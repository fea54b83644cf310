//! [`Shards`]: the running shards as every part of the transport reaches them — each shard's
//! inbox of commands and its inbound queue, the transport's options and the WebSocket limits
//! derived from the hubs' configuration, the runtime, the connection tasks and the shutdown
//! signal — and the two ways to reach a hub: [`Shards::call`] (a closure run on the caller's
//! thread if the shard is free, on its task if not, answered after the drain that follows)
//! and [`Shards::queue`] (an input queued without waiting).
//!
//! The [`Handle`](crate::Handle) is a shared `Shards`; the connection driver gets the same
//! value, so it never depends on the application's handle.

use crate::cluster::ClusterSink;
use crate::error::Error;
use crate::options::Options;
use crate::runtime::Runtime;
use crate::seat::{Seat, SocketInbox};
use crate::shard::{Command, Inbound, Shard};
use crate::tasks::Tasks;
use async_channel::{Receiver, Sender};
use futures_channel::oneshot;
use futures_util::future::join_all;
use futures_util::lock::Mutex as AsyncMutex;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use switchboard::{ConnId, UserId};

/// Connection ids carry their shard in 8 bits.
pub(crate) const MAX_SHARDS: usize = 256;

/// The running shards (see the module docs).
pub(crate) struct Shards<R> {
    pub runtime: R,
    /// Each shard's inbox of commands, by shard index.
    pub inboxes: Vec<Sender<Command>>,
    /// Each shard's state, for requests run directly when it is free (`seat.rs`).
    pub seats: Vec<Seat>,
    /// Each shard's inbound queue: envelopes relayed by sibling shards and inputs from other
    /// nodes, in order.
    pub inbound: Vec<Sender<Inbound>>,
    pub options: Options,
    /// The largest message the WebSocket layer reads: twice the hub's `max_frame_bytes`, so
    /// that the hub sees (and closes with 1009) a frame somewhat over its limit, while a huge
    /// one is cut off before it is buffered.
    pub message_limit: usize,
    /// The most the WebSocket layer holds unwritten per connection (see
    /// [`write_buffer_limit`](crate::write_buffer_limit)).
    pub write_buffer_limit: usize,
    /// Connection tasks, refused once shutdown started.
    pub connections: Arc<Tasks>,
    /// Each shard task drops its sender when it ends.
    pub stopped: Mutex<Vec<oneshot::Receiver<()>>>,
    /// Closed when shutdown starts: the accept loops wait on the receiver.
    pub stopping: (Sender<()>, Receiver<()>),
    /// Held by a shutdown in progress, so a second caller waits for it to finish.
    pub shutdown: AsyncMutex<()>,
    /// Where what other nodes need goes, if this node is part of a cluster.
    pub cluster: Option<ClusterSink>,
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

impl<R: Runtime> Shards<R> {
    /// The way a connection on `shard` hands its socket events to the shard's task.
    pub fn socket_inbox(&self, shard: usize) -> SocketInbox {
        self.seats[shard].socket_inbox(self.inboxes[shard].clone())
    }

    /// The number of shards.
    pub fn count(&self) -> usize {
        self.inboxes.len()
    }

    /// The shard that holds `user`'s connections, streams and runs.
    pub fn shard_of(&self, user: &UserId) -> usize {
        shard_for(user.as_str(), self.count())
    }

    /// The shard that issued `conn` (its hub checks the rest).
    pub fn shard_of_connection(&self, conn: ConnId) -> Result<usize, Error> {
        let shard = usize::from(conn.shard());
        if shard < self.count() {
            Ok(shard)
        } else {
            Err(Error::UnknownConnection(conn))
        }
    }

    /// Run `f` on `shard` and return its result once the drain that follows is done (so what
    /// `f` made the hub emit is already with the writers and in the event inboxes): on the
    /// caller's thread if nobody holds the shard, through its task if someone does (`seat.rs`).
    pub async fn call<T: Send + 'static>(
        &self,
        shard: usize,
        f: impl FnOnce(&mut Shard, Instant) -> T + Send + 'static,
    ) -> Result<T, Error> {
        // Directly on the caller's thread if the shard is free; through its task if not.
        let f = match self.seats[shard].try_call(f) {
            Ok(result) => return result,
            Err(f) => f,
        };
        let (tx, rx) = oneshot::channel();
        let call = Command::Call(Box::new(move |s, now| {
            let result = f(s, now);
            s.reply_after_drain(Box::new(move || {
                let _ = tx.send(result);
            }));
        }));
        self.inboxes[shard]
            .send(call)
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Run `f` on every shard concurrently; results by shard index.
    pub async fn call_all<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Shard, Instant) -> T + Clone + Send + 'static,
    ) -> Result<Vec<T>, Error> {
        let calls = (0..self.count()).map(|i| self.call(i, f.clone()));
        join_all(calls).await.into_iter().collect()
    }

    /// Queue an inbound input for `user`'s shard, or for every shard, without waiting.
    pub fn queue(
        &self,
        user: Option<&UserId>,
        mut input: impl FnMut() -> Inbound,
    ) -> Result<(), Error> {
        let targets = match user {
            Some(user) => std::slice::from_ref(&self.inbound[self.shard_of(user)]),
            None => &self.inbound[..],
        };
        for target in targets {
            target.try_send(input()).map_err(|_| Error::Stopped)?;
        }
        Ok(())
    }

    /// The longest inbound queue, over the shards: inputs not fed yet.
    pub fn inbound_backlog(&self) -> usize {
        self.inbound.iter().map(Sender::len).max().unwrap_or(0)
    }

    /// Spawn a connection task that shutdown waits for (and aborts after the grace). Once
    /// shutdown has started the task is handed back instead.
    pub fn spawn_tracked<F>(&self, task: F) -> Result<(), F>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.connections.spawn(&self.runtime, task)
    }

    /// A connection future that shutdown waits for (and aborts after the grace), to run in
    /// the caller's own task. Once shutdown has started the future is handed back instead.
    pub fn track<F>(&self, task: F) -> Result<impl Future<Output = ()>, F>
    where
        F: Future<Output = ()>,
    {
        self.connections.track(task)
    }

    /// True once shutdown has started.
    pub fn is_stopping(&self) -> bool {
        self.stopping.0.is_closed()
    }

    /// Resolves once shutdown has started.
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        let stopping = self.stopping.1.clone();
        async move {
            let _ = stopping.recv().await;
        }
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
}
