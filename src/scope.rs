//! [`UserScope`]: a handle that can only see and address one user's own connections, threads
//! and agent runs.
//!
//! The old system built a "manager from user context" per user and then let it reach every
//! connection; here the type is the boundary. A scope has no method that takes another user,
//! a room or `All`; a connection id of another user is reported as unknown, exactly as a
//! closed one, so a scope cannot even learn that it exists.

use crate::connection::ConnectionInfo;
use crate::error::{PublishError, UnknownConnection};
use crate::hub::Hub;
use crate::id::{ConnId, RunId, ThreadId, UserId};
use crate::io::{AgentUpdate, Delivery, WaiterId};
use crate::message::Message;
use crate::run::RunReport;
use crate::target::Target;
use std::time::Instant;

/// One user's view of the hub. Obtain it with [`Hub::scope`].
pub struct UserScope<'h> {
    hub: &'h mut Hub,
    user: UserId,
}

impl Hub {
    /// A handle that can only see and address `user`'s own connections, threads and runs.
    pub fn scope(&mut self, user: impl Into<UserId>) -> UserScope<'_> {
        UserScope {
            hub: self,
            user: user.into(),
        }
    }
}

impl UserScope<'_> {
    /// The user this scope belongs to.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    fn own(&self, conn: ConnId) -> Result<(), UnknownConnection> {
        match self.hub.owner(conn) {
            Some(owner) if *owner == self.user => Ok(()),
            _ => Err(UnknownConnection(conn)),
        }
    }

    /// The user's open connections.
    pub fn connections(&self) -> &[ConnId] {
        self.hub.user_connections(&self.user)
    }

    /// True if the user has an open connection.
    pub fn is_connected(&self) -> bool {
        self.hub.is_user_connected(&self.user)
    }

    /// A snapshot of one of the user's connections.
    pub fn connection_info(&self, conn: ConnId) -> Option<ConnectionInfo> {
        self.own(conn).ok()?;
        self.hub.connection_info(conn)
    }

    /// The user's connections bound to `thread`.
    pub fn thread_connections(&self, thread: &ThreadId) -> Vec<ConnId> {
        self.hub.thread_connections(&self.user, thread)
    }

    /// Publish to every connection of the user.
    pub fn publish(&mut self, now: Instant, message: &Message) -> Result<Delivery, PublishError> {
        self.hub
            .publish(now, Target::User(self.user.clone()), message)
    }

    /// Publish to the user's connections bound to `thread`.
    pub fn publish_to_thread(
        &mut self,
        now: Instant,
        thread: ThreadId,
        message: &Message,
    ) -> Result<Delivery, PublishError> {
        let target = Target::Thread {
            user: self.user.clone(),
            thread,
        };
        self.hub.publish(now, target, message)
    }

    /// Send to one of the user's connections.
    pub fn send_to_connection(
        &mut self,
        now: Instant,
        conn: ConnId,
        message: &Message,
    ) -> Result<Delivery, PublishError> {
        self.own(conn)?;
        self.hub.publish(now, Target::Connection(conn), message)
    }

    /// Rebind one of the user's connections to a thread.
    pub fn update_connection_thread(
        &mut self,
        conn: ConnId,
        thread: Option<ThreadId>,
    ) -> Result<(), UnknownConnection> {
        self.own(conn)?;
        self.hub.update_connection_thread(conn, thread)
    }

    /// Publish an event of one of the user's agent runs.
    pub fn send_agent_update(
        &mut self,
        now: Instant,
        update: AgentUpdate,
    ) -> Result<Delivery, PublishError> {
        self.hub.send_agent_update(now, &self.user, update)
    }

    /// The report of one of the user's runs.
    pub fn run_report(&self, run: &RunId) -> Option<&RunReport> {
        self.hub.run_report(&self.user, run)
    }

    /// Be told when the user has a connection (see [`Hub::wait_for_connection`]).
    pub fn wait_for_connection(&mut self, deadline: Instant) -> WaiterId {
        self.hub.wait_for_connection(&self.user, deadline)
    }

    /// Close every connection of the user with 4002.
    pub fn disconnect(&mut self) -> usize {
        self.hub.disconnect_user(&self.user)
    }
}
