//! What the hubs tell the application: [`Event`]s, received through [`Events`].

use async_channel::Receiver;
use futures_util::Stream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use switchboard::{ConnId, Envelope, Notice, Unsequenced};

/// Something the application may act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A hub's [`Notice`]: a connection opened or closed, went dead or came back, an
    /// application frame arrived ([`Notice::App`], to answer with
    /// [`Handle::send_to_connection`](crate::Handle::send_to_connection)), or an agent run
    /// ended. [`Event::conn`] names the connection it is about.
    /// (`UserConnected` and `WaitExpired` are consumed by
    /// [`Handle::wait_for_connection`](crate::Handle::wait_for_connection) and never appear.)
    Notice {
        /// The shard whose hub emitted it.
        shard: usize,
        /// The notice.
        notice: Notice,
    },
    /// A publish other nodes must see (only with `Config::cluster`): one envelope per
    /// publish, whatever the number of shards. Shared with the shards it was relayed to, so
    /// cloning the event does not copy the message.
    Remote(Arc<Envelope>),
    /// A stream entry for the cluster's sequencer (only with `Config::shared_streams`): one
    /// per publish, whatever the number of shards. Hand it back sealed with
    /// [`Handle::deliver_sequenced`](crate::Handle::deliver_sequenced), here and on every
    /// other node.
    Sequence(Arc<Unsequenced>),
}

impl Event {
    /// The connection this event is about, if any.
    pub fn conn(&self) -> Option<ConnId> {
        let Event::Notice { notice, .. } = self else {
            return None;
        };
        let id = match notice {
            Notice::Opened { conn, .. }
            | Notice::Closed { conn, .. }
            | Notice::Dead { conn }
            | Notice::Resurrected { conn }
            | Notice::UserConnected { conn, .. } => *conn,
            Notice::App(app) => app.conn,
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
