//! One shard: a task that owns one [`Hub`] and follows the drain invariant literally.
//!
//! The task receives [`Command`]s on a bounded channel (socket events from connection drivers,
//! and closures from the [`Handle`](crate::Handle)), feeds each to the hub with the current
//! time, then drains every output: frames, pings and closes go to the connection's writer
//! through an unbounded channel (the hub's in-flight budget bounds it); what other nodes need
//! (envelopes, stream entries for the sequencer, interest, follows, connections opening and
//! closing) goes to the cluster sink, if the application registered one; notices for the
//! application go to its [`Events`](crate::Events). It then sleeps until the next command or
//! [`Hub::poll_timeout`]. It never awaits anything but its own inbox, so no socket, no
//! application and no bridge can make it wait.
//!
//! Shards relay to each other what a client publishes to a room: the hub (configured as part
//! of a cluster when there are several shards) emits the publish as an `Output::Remote`
//! envelope, which goes to every other shard's relay inbox and is fed there as
//! `Input::Remote`. Only room and broadcast envelopes cross shards: a user's connections and
//! streams live on the user's shard alone, so a user or thread envelope goes to the cluster
//! (for other nodes) and never to a sibling, which would buffer a copy for a user it never
//! serves. Relay inboxes are unbounded so that two shards never wait for each other; the
//! clients' inbound rate limit bounds them.

use crate::cluster::{ClusterEvent, ClusterSink};
use crate::events::Event;
use crate::runtime::Runtime;
use async_channel::{Receiver, Sender};
use bytes::Bytes;
use futures_channel::oneshot;
use futures_util::future::{Fuse, FutureExt};
use futures_util::{select, StreamExt};
use std::collections::HashMap;
use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;
use switchboard::{
    ConnId, Envelope, Hub, Input, Notice, Open, OpenError, Output, Position, Reason, RemoteTarget,
    Sequenced, StreamId, Unsequenced, WaiterId,
};

/// What a connection's writer must do next, in order.
#[derive(Debug)]
pub(crate) enum Out {
    /// Write this text frame, then report it flushed.
    Frame(Bytes),
    /// Send a ping control frame.
    Ping([u8; 8]),
    /// Send a close frame and stop.
    Close(u16, Reason),
}

/// The shard's end of one connection: its writer's inbox.
#[derive(Debug)]
pub(crate) struct Link {
    /// Frames, pings and the close, in the hub's order.
    pub out: Sender<Out>,
    /// Fired (or dropped) when the hub closed or forgot the connection: from then on the
    /// driver has `close_timeout` to finish writing.
    pub closing: Option<oneshot::Sender<()>>,
}

/// Something a connection's socket did.
#[derive(Debug)]
pub(crate) enum SocketEvent {
    Text(Bytes),
    Binary(Bytes),
    Ping,
    Pong(Bytes),
    Flushed(usize),
    /// The WebSocket layer refused what the peer sent before the hub saw it: a message larger
    /// than it reads (twice `max_frame_bytes`, [`Reason::FrameTooLarge`]) or a text message
    /// that is not UTF-8 ([`Reason::InvalidUtf8`]). The hub closes with the reason's code.
    Refused(Reason),
    Closed,
}

/// A closure run against the shard, followed by a drain.
pub(crate) type Call = Box<dyn FnOnce(&mut Shard, Instant) + Send>;

/// The answer to a [`Call`], sent once the drain that follows it is done.
pub(crate) type Reply = Box<dyn FnOnce() + Send>;

/// The shard task's inbox.
pub(crate) enum Command {
    Socket { conn: ConnId, event: SocketEvent },
    Call(Call),
    Stop,
}

/// An input from outside the shard's connections, queued in order in its relay inbox: a
/// sibling shard's envelope, or what the application's bridge received from other nodes.
#[derive(Debug)]
pub(crate) enum Relay {
    /// `Input::Remote`.
    Envelope(Arc<Envelope>),
    /// `Input::Sequenced`.
    Sequenced(Arc<Sequenced>),
    /// `Input::History`.
    History(Arc<Sequenced>),
    /// `Input::StreamHead`.
    Head(Arc<StreamId>, Option<Position>),
    /// Answered once everything queued before it was fed.
    Flush(oneshot::Sender<()>),
}

/// Where the envelopes of the operation in progress go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Relaying {
    /// To the other shards, and to the cluster.
    All,
    /// A publish the handle runs on every shard: every shard already serves its own members,
    /// so nothing goes to the other shards; to the cluster only if `forward` (one shard's
    /// copy, so that other nodes get one envelope per publish).
    Quiet { forward: bool },
}

/// The state one shard task owns.
pub(crate) struct Shard {
    /// This shard's index.
    pub index: usize,
    /// The hub.
    pub hub: Hub,
    links: HashMap<ConnId, Link>,
    waiters: HashMap<WaiterId, oneshot::Sender<bool>>,
    /// The application's events.
    events: Sender<Event>,
    /// What other nodes need, if this node is part of a cluster.
    cluster: Option<ClusterSink>,
    /// The relay inboxes of the other shards.
    siblings: Vec<Sender<Relay>>,
    /// Where the envelopes of the operation in progress go; reset after each drain.
    pub relaying: Relaying,
    /// Answers to send once the current drain is done.
    replies: Vec<Reply>,
}

impl Shard {
    pub fn new(
        index: usize,
        hub: Hub,
        events: Sender<Event>,
        cluster: Option<ClusterSink>,
        siblings: Vec<Sender<Relay>>,
    ) -> Self {
        Self {
            index,
            hub,
            links: HashMap::new(),
            waiters: HashMap::new(),
            events,
            cluster,
            siblings,
            relaying: Relaying::All,
            replies: Vec::new(),
        }
    }

    /// Open a connection and register its writer before its first output is drained.
    pub fn open(&mut self, now: Instant, open: Open, link: Link) -> Result<ConnId, OpenError> {
        let conn = self.hub.open(now, open)?;
        self.links.insert(conn, link);
        Ok(conn)
    }

    /// Send `reply` after the drain that follows the operation in progress: whoever waits for
    /// it then finds everything the operation emitted already handed to the connections'
    /// writers and to the application's events.
    pub fn reply_after_drain(&mut self, reply: Reply) {
        self.replies.push(reply);
    }

    /// Register the sender a `wait_for_connection` resolves (before the drain that may
    /// carry its notice).
    pub fn add_waiter(&mut self, waiter: WaiterId, done: oneshot::Sender<bool>) {
        self.waiters.insert(waiter, done);
    }

    fn socket(&mut self, now: Instant, conn: ConnId, event: SocketEvent) {
        let result = match event {
            SocketEvent::Text(bytes) => self.hub.handle_input(
                now,
                Input::Text {
                    conn,
                    bytes: &bytes,
                },
            ),
            SocketEvent::Binary(bytes) => self.hub.handle_input(
                now,
                Input::Binary {
                    conn,
                    bytes: &bytes,
                },
            ),
            SocketEvent::Ping => self.hub.handle_input(now, Input::Ping { conn }),
            SocketEvent::Pong(payload) => self.hub.handle_input(
                now,
                Input::Pong {
                    conn,
                    payload: &payload,
                },
            ),
            SocketEvent::Flushed(bytes) => {
                self.hub.handle_input(now, Input::Flushed { conn, bytes })
            }
            SocketEvent::Refused(reason) => self.hub.close_connection(conn, reason),
            SocketEvent::Closed => self.hub.handle_input(now, Input::Closed { conn }),
        };
        // An event that raced the connection's close names a connection the hub already
        // forgot: nothing to do.
        let _ = result;
    }

    /// Perform every pending output, in order (the drain invariant).
    fn drain(&mut self) {
        while let Some(output) = self.hub.poll_output() {
            match output {
                Output::Send { conn, frame } => self.write(conn, Out::Frame(frame)),
                Output::Ping { conn, payload } => self.write(conn, Out::Ping(payload)),
                Output::Close { conn, code, reason } => {
                    if let Some(link) = self.links.get_mut(&conn) {
                        let _ = link.out.try_send(Out::Close(code, reason));
                        if let Some(closing) = link.closing.take() {
                            let _ = closing.send(());
                        }
                    }
                }
                Output::Remote(envelope) => self.relay(envelope),
                Output::Sequence(entry) => self.sequence(entry),
                Output::Notice(notice) => self.notice(notice),
            }
        }
        self.relaying = Relaying::All;
        for reply in self.replies.drain(..) {
            reply();
        }
    }

    fn relay(&mut self, envelope: Box<Envelope>) {
        // One allocation shared by the other shards and the cluster: no copy of the message.
        let envelope: Arc<Envelope> = Arc::from(envelope);
        let forward = match self.relaying {
            Relaying::All => {
                // A user's streams live on its shard only (this one, or the one a publish
                // went to): a sibling has nothing to deliver and would buffer a copy.
                let shared = matches!(
                    envelope.target,
                    RemoteTarget::Room { .. } | RemoteTarget::All
                );
                for sibling in self.siblings.iter().filter(|_| shared) {
                    let _ = sibling.try_send(Relay::Envelope(envelope.clone()));
                }
                true
            }
            Relaying::Quiet { forward } => forward,
        };
        if forward {
            self.to_cluster(|| ClusterEvent::Publish(envelope));
        }
    }

    /// A stream entry for the cluster's sequencer goes to the cluster, once per publish: the
    /// sequencer hands it back to every shard serving the stream.
    fn sequence(&mut self, entry: Box<Unsequenced>) {
        if self.relaying != (Relaying::Quiet { forward: false }) {
            self.to_cluster(|| ClusterEvent::Sequence(Arc::from(entry)));
        }
    }

    /// Send what `event` makes to the cluster sink, if this node is part of a cluster.
    fn to_cluster(&self, event: impl FnOnce() -> ClusterEvent) {
        if let Some(cluster) = &self.cluster {
            cluster.send(event());
        }
    }

    fn write(&mut self, conn: ConnId, out: Out) {
        if let Some(link) = self.links.get(&conn) {
            // A writer that is gone has a socket that is gone: its `Closed` is on the way.
            let _ = link.out.try_send(out);
        }
    }

    fn notice(&mut self, notice: Notice) {
        match notice {
            Notice::UserConnected { waiter, .. } => self.resolve(waiter, true),
            Notice::WaitExpired { waiter, .. } => self.resolve(waiter, false),
            // The cluster's business alone (shards of one node need no subscription).
            Notice::Interest { stream, interested } => {
                self.to_cluster(|| ClusterEvent::Interest { stream, interested });
            }
            Notice::Follow { stream, since } => {
                self.to_cluster(|| ClusterEvent::Follow { stream, since });
            }
            notice => {
                match &notice {
                    // Presence is the cluster's business too.
                    Notice::Opened { conn, user } => self.to_cluster(|| ClusterEvent::Opened {
                        conn: *conn,
                        user: user.clone(),
                    }),
                    Notice::Closed { conn, user, .. } => {
                        // Frames already handed to the writer stay in its inbox; dropping the
                        // link ends the inbox after them.
                        self.links.remove(conn);
                        self.to_cluster(|| ClusterEvent::Closed {
                            conn: *conn,
                            user: user.clone(),
                        });
                    }
                    _ => {}
                }
                let event = Event {
                    shard: self.index,
                    notice,
                };
                let _ = self.events.try_send(event);
            }
        }
    }

    fn resolve(&mut self, waiter: WaiterId, connected: bool) {
        if let Some(done) = self.waiters.remove(&waiter) {
            let _ = done.send(connected);
        }
    }
}

/// How many queued relays are fed before the outputs are drained.
const RELAY_BATCH: usize = 64;

impl Shard {
    /// Feed one relay to the hub. Inputs from other hubs name no connection of this one, so
    /// the hub has no error to report for them.
    fn relayed(&mut self, now: Instant, relay: Relay) {
        let hub = &mut self.hub;
        let _ = match relay {
            Relay::Envelope(envelope) => hub.handle_input(now, Input::Remote(&envelope)),
            Relay::Sequenced(entry) => hub.handle_input(now, Input::Sequenced(&entry)),
            Relay::History(entry) => hub.handle_input(now, Input::History(&entry)),
            Relay::Head(stream, head) => hub.handle_input(
                now,
                Input::StreamHead {
                    stream: &stream,
                    head,
                },
            ),
            // Answered after the drain, like a call.
            Relay::Flush(answer) => {
                self.reply_after_drain(Box::new(move || {
                    let _ = answer.send(());
                }));
                Ok(())
            }
        };
    }
}

/// The shard task: feed, drain, sleep until the next command, relay or timer, until stopped.
pub(crate) async fn run<R: Runtime>(
    runtime: R,
    mut shard: Shard,
    inbox: Receiver<Command>,
    relays: Receiver<Relay>,
) {
    let mut inbox = pin!(inbox);
    let queued = relays.clone();
    let mut relays = pin!(relays);
    let mut sleep = pin!(Fuse::terminated());
    let mut armed: Option<Instant> = None;
    loop {
        let wake = shard.hub.poll_timeout();
        if wake != armed {
            match wake {
                Some(at) => sleep.set(runtime.sleep_until(at).fuse()),
                None => sleep.set(Fuse::terminated()),
            }
            armed = wake;
        }
        // Unbiased: under a steady stream of commands the timer still gets its turn.
        select! {
            command = inbox.next() => match command {
                Some(Command::Socket { conn, event }) => shard.socket(Instant::now(), conn, event),
                Some(Command::Call(call)) => call(&mut shard, Instant::now()),
                Some(Command::Stop) | None => break,
            },
            relay = relays.next() => if let Some(relay) = relay {
                let now = Instant::now();
                shard.relayed(now, relay);
                // A burst from another node is fed together, then drained once.
                for _ in 1..RELAY_BATCH {
                    match queued.try_recv() {
                        Ok(relay) => shard.relayed(now, relay),
                        Err(_) => break,
                    }
                }
            },
            () = sleep.as_mut() => {
                armed = None;
                shard.hub.handle_timeout(Instant::now());
            }
        }
        shard.drain();
    }
    tracing::debug!(shard = shard.index, "shard stopped");
}
