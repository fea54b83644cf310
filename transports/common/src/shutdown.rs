//! Shutting a switchboard down: [`Handle::shutdown`] stops accepting, has every hub close its
//! connections after what was queued for them, waits (within the grace) for the connection
//! tasks, and stops the shards; from then on every request answers
//! [`Error::Stopped`](crate::Error::Stopped).

use crate::handle::Handle;
use crate::runtime::Runtime;
use crate::shard::Command;
use switchboard::Reason;

impl<R: Runtime> Handle<R> {
    /// True once [`Handle::shutdown`] has started.
    pub fn is_shutting_down(&self) -> bool {
        self.shards.is_stopping()
    }

    /// Shut down gracefully: stop accepting, have every hub close its connections with 1001
    /// after what was queued for them, wait up to
    /// [`Options::shutdown_grace`](crate::Options::shutdown_grace) for the connection tasks to
    /// finish (then drop the rest), and stop the shards. Afterwards requests fail with
    /// [`Error::Stopped`](crate::Error::Stopped) and [`Events::recv`](crate::Events::recv)
    /// returns `None`. Calling it again waits for the first call to finish.
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
        let shards = &self.shards;
        let _once = shards.shutdown.lock().await;
        shards.stopping.0.close();
        let _ = shards.call_all(move |s, _| s.hub.shutdown(reason)).await;
        let grace = shards.options.shutdown_grace;
        shards.connections.shutdown(&shards.runtime, grace).await;
        for inbox in &shards.inboxes {
            let _ = inbox.send(Command::Stop).await;
        }
        let stopped = std::mem::take(&mut *shards.stopped.lock().expect("not poisoned"));
        for shard in stopped {
            let _ = shard.await;
        }
    }
}
