//! What the hubs tell the application: [`Event`]s, received through [`Events`]. What they
//! emit for other nodes goes to the cluster sink instead (`cluster.rs`).

use async_channel::Receiver;
use futures_util::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use switchboard::{CancelFrom, ConnId, Notice};

/// A hub's notice for the application: a connection opened or closed, joined or left a room,
/// went dead or came back, an application frame arrived ([`Notice::App`], to answer with
/// [`Handle::answer`](crate::Handle::answer)), a client sent a fresh
/// token ([`Notice::Refresh`], to answer with [`Handle::refreshed`](crate::Handle::refreshed)
/// or [`Handle::refresh_refused`](crate::Handle::refresh_refused)), or an agent run ended. [`Event::conn`] names the connection it is about.
///
/// Never seen here: `UserConnected` and `WaitExpired`, consumed by
/// [`Handle::wait_for_connection`](crate::Handle::wait_for_connection), and `Interest` and
/// `Follow`, which are the cluster's business ([`ClusterEvent`](crate::ClusterEvent)).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The shard whose hub emitted it.
    pub shard: usize,
    /// The notice.
    pub notice: Notice,
}

impl Event {
    /// The connection this event is about, if any.
    pub fn conn(&self) -> Option<ConnId> {
        let id = match &self.notice {
            Notice::Opened { conn, .. }
            | Notice::Closed { conn, .. }
            | Notice::Dead { conn }
            | Notice::Resurrected { conn }
            | Notice::UserConnected { conn, .. } => *conn,
            Notice::Joined(change) | Notice::Left(change) => change.conn,
            Notice::App(app) => app.conn,
            Notice::Refresh(request) => request.conn,
            Notice::Cancel(request) => match request.from {
                CancelFrom::Client { conn, .. } => conn,
                CancelFrom::Node(_) => return None,
            },
            _ => return None,
        };
        Some(id)
    }
}

/// The application's inbox of [`Event`]s from every shard, in order per shard.
///
/// It is unbounded so that no hub ever waits for the application: read it, or drop it (events
/// are then discarded).
#[derive(Debug)]
pub struct Events {
    inbox: Pin<Box<Receiver<Event>>>,
}

impl Events {
    pub(crate) fn new(inbox: Receiver<Event>) -> Self {
        Self {
            inbox: Box::pin(inbox),
        }
    }

    /// The next event; `None` once every shard has stopped (after
    /// [`Handle::shutdown`](crate::Handle::shutdown)).
    pub async fn recv(&mut self) -> Option<Event> {
        self.inbox.recv().await.ok()
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.inbox.try_recv().ok()
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.inbox.as_mut().poll_next(cx)
    }
}
