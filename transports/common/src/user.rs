//! [`UserHandle`]: a [`Handle`] limited to one user, made by [`Handle::user`]. Every method
//! goes through the hub's `UserScope` on the user's shard, so it can only address that
//! user's own connections, threads and runs.

use crate::error::Error;
use crate::handle::Handle;
use crate::runtime::Runtime;
use std::time::{Duration, Instant};
use switchboard::{
    AgentUpdate, ConnId, ConnectionInfo, Delivery, Message, PublishError, RunId, RunReport,
    ThreadId, UserId, UserScope,
};

/// A [`Handle`] limited to one user: every method addresses that user's own connections,
/// threads and runs, through the hub's `UserScope`. A connection of another user is reported
/// as unknown, exactly like a closed one. There is no method for rooms or everyone.
///
/// Like the handle's, its requests and queries answer [`Error::Stopped`] once the switchboard
/// has shut down.
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

impl<R: Runtime> Handle<R> {
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
}

impl<R: Runtime> UserHandle<R> {
    /// The user.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// Run `f` with the user's scope on the user's shard.
    async fn scoped<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut UserScope<'_>, Instant) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let user = self.user.clone();
        self.handle
            .shards
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

    /// The report of one of the user's runs; `None` if the hub has none.
    pub async fn run_report(&self, run: impl Into<RunId>) -> Result<Option<RunReport>, Error> {
        let run = run.into();
        self.scoped(move |scope, _| scope.run_report(&run).cloned())
            .await
    }

    /// Wait until the user has a connection (`true`) or `timeout` passes (`false`).
    pub async fn wait_for_connection(&self, timeout: Duration) -> Result<bool, Error> {
        self.handle
            .wait_for_connection(self.user.clone(), timeout)
            .await
    }

    /// Close every connection of the user with 4002. Returns how many were closed.
    pub async fn disconnect(&self) -> Result<usize, Error> {
        self.scoped(|scope, _| scope.disconnect()).await
    }

    /// The user's open connections, oldest first.
    pub async fn connections(&self) -> Result<Vec<ConnId>, Error> {
        self.scoped(|scope, _| scope.connections().to_vec()).await
    }

    /// True if the user has an open connection.
    pub async fn is_connected(&self) -> Result<bool, Error> {
        self.scoped(|scope, _| scope.is_connected()).await
    }

    /// A snapshot of one of the user's connections; [`Error::UnknownConnection`] if it is
    /// not open or not the user's.
    pub async fn connection_info(&self, conn: ConnId) -> Result<ConnectionInfo, Error> {
        let id = self.local(conn)?;
        self.scoped(move |scope, _| scope.connection_info(id))
            .await?
            .ok_or(Error::UnknownConnection(conn))
    }
}
