//! The server's life between start and exit, and the order of its shutdown.
//!
//! [`Lifecycle`] is the phase every request looks at: serving; draining (shutdown began: no new
//! WebSocket, `/readyz` 503, and the API takes only writes that outlive this process); closed
//! (every write is answered 503 `shutting_down`). A single node keeps nothing past its exit, so
//! it refuses every write once draining. A node of a cluster with shared streams hands stream
//! entries (publishes to users, threads and rooms, agent-run events) to Redis, which keeps them
//! in the shared history: it takes those for as long as its bridge runs.
//!
//! Shutdown closes the API to writes and waits for the writes in flight; a write is answered
//! once its shard has handed what it caused to the cluster sink, and the bridge, stopping,
//! carries out everything in the sink before it leaves: no write answered 200 is lost with
//! the process.

use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{RwLock, RwLockReadGuard};

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Everything is served.
    Serving,
    /// Shutdown began: only writes kept in the cluster's shared history are taken.
    Draining,
    /// No write is taken.
    Closed,
}

/// What a write leaves behind once this process exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Stream entries numbered and kept by the cluster (shared streams): they survive the node.
    SharedHistory,
    /// Anything else: delivered, buffered or kept by this process alone.
    ThisNode,
}

/// The answer to a write while shutting down (503 `shutting_down`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShuttingDown;

/// The server's phase, shared by every request.
#[derive(Debug)]
pub struct Lifecycle {
    phase: RwLock<Phase>,
    /// Set once draining begins; read without waiting by `/readyz` and the WebSocket endpoint.
    draining: AtomicBool,
    /// Whether this node hands stream entries to a shared history (Redis with shared streams).
    shared_history: bool,
}

/// Held by a write while it is carried out: the phase does not change under it.
pub type WritePermit<'a> = RwLockReadGuard<'a, ()>;

impl Lifecycle {
    /// A serving server; `shared_history` if its stream entries go to a cluster's history.
    pub fn new(shared_history: bool) -> Self {
        Lifecycle {
            phase: RwLock::new(Phase::Serving),
            draining: AtomicBool::new(false),
            shared_history,
        }
    }

    /// False once shutdown began: take no new client, answer `/readyz` with 503.
    pub fn is_serving(&self) -> bool {
        !self.draining.load(Ordering::Acquire)
    }

    /// Whether this node takes `write` now. The permit holds the phase until the write is
    /// done: shutdown waits for it.
    pub async fn admit(&self, write: Write) -> Result<WritePermit<'_>, ShuttingDown> {
        let phase = self.phase.read().await;
        let taken = match *phase {
            Phase::Serving => true,
            Phase::Draining => self.shared_history && write == Write::SharedHistory,
            Phase::Closed => false,
        };
        if taken {
            Ok(RwLockReadGuard::map(phase, |_| &()))
        } else {
            Err(ShuttingDown)
        }
    }

    /// Begin shutting down: no new client, only writes kept by the shared history. Returns
    /// once the writes in flight that this refuses from now on are done.
    pub async fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        let mut phase = self.phase.write().await;
        if *phase == Phase::Serving {
            *phase = Phase::Draining;
        }
    }

    /// Take no write at all; returns once every write in flight is done.
    pub async fn close(&self) {
        self.draining.store(true, Ordering::Release);
        *self.phase.write().await = Phase::Closed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_single_node_refuses_every_write_once_draining() {
        let single = Lifecycle::new(false);
        assert!(single.admit(Write::ThisNode).await.is_ok());
        single.drain().await;
        assert!(!single.is_serving());
        assert_eq!(
            single.admit(Write::SharedHistory).await.err(),
            Some(ShuttingDown)
        );
        assert_eq!(
            single.admit(Write::ThisNode).await.err(),
            Some(ShuttingDown)
        );
    }

    #[tokio::test]
    async fn a_clustered_node_takes_shared_history_writes_until_closed() {
        let node = Lifecycle::new(true);
        node.drain().await;
        assert!(node.admit(Write::SharedHistory).await.is_ok());
        assert_eq!(node.admit(Write::ThisNode).await.err(), Some(ShuttingDown));
        node.close().await;
        assert_eq!(
            node.admit(Write::SharedHistory).await.err(),
            Some(ShuttingDown)
        );
    }

    /// Closing waits for the write in flight, and a drain after the close does not reopen.
    #[tokio::test]
    async fn closing_waits_for_the_writes_in_flight() {
        let node = std::sync::Arc::new(Lifecycle::new(true));
        let permit = node.admit(Write::SharedHistory).await.unwrap();
        let closing = tokio::spawn({
            let node = node.clone();
            async move { node.close().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!closing.is_finished(), "a write is in flight");
        drop(permit);
        closing.await.unwrap();
        node.drain().await;
        assert!(node.admit(Write::SharedHistory).await.is_err());
    }
}
