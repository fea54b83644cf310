//! One shard: one [`Hub`] and what performs its outputs, following the drain invariant
//! literally.
//!
//! The shard's task receives [`Command`]s on a bounded channel (socket events from connection
//! drivers, and closures from the [`Handle`](crate::Handle) that found the shard busy; one that
//! finds it free runs on the caller's thread, `seat.rs`), feeds each to the hub with the current
//! time, then drains every output: frames, pings and closes go to the connection's writer
//! through its outbox (`outbox.rs`; the hub's in-flight budget bounds it); what other nodes need
//! (envelopes, stream entries for the sequencer, interest, follows, connections opening and
//! closing) goes to the cluster sink, if the application registered one; notices for the
//! application go to its [`Events`](crate::Events). It then sleeps until the next command or
//! [`Hub::poll_timeout`]. It never awaits anything but its own inboxes, so no socket, no
//! application and no bridge can make it wait; while a request runs in its seat it waits for
//! that run, which awaits nothing.
//!
//! A user's presence in a room changes on its shard alone (a user's connections all live
//! there); without a cluster the shard counts it in the node's roster (`presence.rs`) and hands
//! it to every shard, itself included, as `ClusterInput::Presence` (a shard that starts serving
//! a room is told who is in it the same way), and with one to the bridge, which hands back those that change the
//! user's presence in the whole cluster.
//!
//! Shards relay to each other what a client publishes to a room: the hub (configured as part
//! of a cluster when there are several shards) emits the publish as a
//! `ClusterOutput::Envelope`, which goes to every other shard's inbound queue and is fed there
//! as `ClusterInput::Envelope`. Only room and broadcast envelopes cross shards: a user's connections and
//! streams live on the user's shard alone, so a user or thread envelope goes to the cluster
//! (for other nodes) and never to a sibling, which would buffer a copy for a user it never
//! serves. The same inbound queue carries what the bridge received from other nodes (see
//! `remote.rs`). Inbound queues are unbounded so that two shards never wait for each other
//! or for a bridge; the clients' rate limit bounds what siblings relay, the bridge what it
//! queues.

use crate::cluster::{ClusterEvent, ClusterSink};
use crate::events::Event;
use crate::outbox::Outbox;
use crate::presence::NodeRoster;
use crate::runtime::Runtime;
use crate::seat::Seat;
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
    Answer, CancelFrom, CancelRequest, ClusterInput, ClusterOutput, ConnId, Envelope, Hub, Notice,
    Open, OpenError, Output, Position, PresenceChange, Reason, RemoteTarget, Sequenced,
    SocketInput, SocketOutput, StreamId, Unsequenced, WaiterId,
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

/// The shard's end of one connection's writer: its inbox, and the signal that the hub is
/// done with the connection.
#[derive(Debug)]
pub(crate) struct Writer {
    /// Frames, pings and the close, in the hub's order (`outbox.rs`: unbounded here, as the
    /// hub's backpressure budgets bound what it hands a connection; empty, it holds no buffer).
    pub out: Outbox,
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

/// An input from outside the shard's connections, queued in order in its inbound queue: an
/// envelope a sibling shard relayed, or what the bridge received from other nodes.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// `ClusterInput::Envelope`: a sibling's relayed envelope, or another node's.
    Envelope(Arc<Envelope>),
    /// `ClusterInput::Sequenced`.
    Sequenced(Arc<Sequenced>),
    /// `ClusterInput::History`.
    History(Arc<Sequenced>),
    /// `ClusterInput::StreamHead`.
    Head(Arc<StreamId>, Option<Position>),
    /// `ClusterInput::Presence`: a user's arrival in or departure from a room, for the whole
    /// node (from a shard of this node without a cluster) or the whole cluster (from the bridge).
    Presence(Arc<PresenceChange>),
    /// Answered once everything queued before it was fed.
    Fence(oneshot::Sender<()>),
}

/// Where the envelopes and stream entries of the operation in progress go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    /// Relay room and broadcast envelopes to the sibling shards.
    pub relay: bool,
    /// Send envelopes and stream entries to the cluster (if this node is part of one).
    pub to_cluster: bool,
}

impl Route {
    /// What a shard's own operations emit: relayed to the siblings, sent to the cluster.
    pub const EVERYWHERE: Route = Route {
        relay: true,
        to_cluster: true,
    };
}

/// Where a shard relays what the other shards (or itself) must be fed.
pub(crate) struct Relays {
    /// The inbound queues of the other shards.
    pub siblings: Vec<Sender<Inbound>>,
    /// This shard's own inbound queue, for what it hands every shard, itself included.
    pub own: Sender<Inbound>,
    /// Who is in each room of the node (used when no bridge joins it to other nodes).
    pub roster: NodeRoster,
}

/// The state one shard task owns.
pub(crate) struct Shard {
    /// This shard's index.
    pub index: usize,
    /// The hub.
    pub hub: Hub,
    writers: HashMap<ConnId, Writer>,
    waiters: HashMap<WaiterId, oneshot::Sender<bool>>,
    /// The application's events.
    events: Sender<Event>,
    /// What other nodes need, if this node is part of a cluster.
    cluster: Option<ClusterSink>,
    /// The inbound queues of the shards, and the node's room users.
    relays: Relays,
    /// Where the envelopes of the operation in progress go; reset after each drain.
    pub route: Route,
    /// Answers to send once the current drain is done.
    replies: Vec<Reply>,
    /// The timer the task sleeps until (the hub's `poll_timeout` after the task's last drain):
    /// a request run directly that schedules a sooner one rings the task (`seat.rs`).
    pub armed: Option<Instant>,
}

impl Shard {
    pub fn new(
        index: usize,
        hub: Hub,
        events: Sender<Event>,
        cluster: Option<ClusterSink>,
        relays: Relays,
    ) -> Self {
        Self {
            index,
            armed: hub.poll_timeout(),
            hub,
            writers: HashMap::new(),
            waiters: HashMap::new(),
            events,
            cluster,
            relays,
            route: Route::EVERYWHERE,
            replies: Vec::new(),
        }
    }

    /// Open a connection and register its writer before its first output is drained.
    pub fn open(&mut self, now: Instant, open: Open, writer: Writer) -> Result<ConnId, OpenError> {
        let conn = self.hub.open(now, open)?;
        self.writers.insert(conn, writer);
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
            SocketEvent::Text(bytes) => self.hub.handle_socket(
                now,
                SocketInput::Text {
                    conn,
                    bytes: &bytes,
                },
            ),
            SocketEvent::Binary(bytes) => self.hub.handle_socket(
                now,
                SocketInput::Binary {
                    conn,
                    bytes: &bytes,
                },
            ),
            SocketEvent::Ping => self.hub.handle_socket(now, SocketInput::Ping { conn }),
            SocketEvent::Pong(payload) => self.hub.handle_socket(
                now,
                SocketInput::Pong {
                    conn,
                    payload: &payload,
                },
            ),
            SocketEvent::Flushed(bytes) => self
                .hub
                .handle_socket(now, SocketInput::Flushed { conn, bytes }),
            SocketEvent::Refused(reason) => self.hub.close_connection(conn, reason),
            SocketEvent::Closed => self.hub.handle_socket(now, SocketInput::Closed { conn }),
        };
        // An event that raced the connection's close names a connection the hub already
        // forgot: nothing to do.
        let _ = result;
    }

    /// Perform every pending output, in order (the drain invariant); a batch of publishes
    /// drains after each of its messages (`batch.rs`).
    pub(crate) fn drain(&mut self) {
        while let Some(output) = self.hub.poll_output() {
            match output {
                Output::Socket(output) => self.socket_output(output),
                Output::Cluster(output) => self.cluster_output(output),
                Output::Notice(notice) => self.notice(notice),
                // A kind of output this transport does not know yet: nothing it can perform.
                _ => {}
            }
        }
        self.route = Route::EVERYWHERE;
        for reply in self.replies.drain(..) {
            reply();
        }
    }

    /// A frame, ping or close for a connection, or whether its hub awaits its flush reports:
    /// to its writer.
    fn socket_output(&mut self, output: SocketOutput) {
        match output {
            SocketOutput::Send { conn, frame } => self.write(conn, Out::Frame(frame)),
            SocketOutput::Ping { conn, payload } => self.write(conn, Out::Ping(payload)),
            SocketOutput::AwaitingFlush { conn, awaiting } => {
                if let Some(writer) = self.writers.get(&conn) {
                    writer.out.await_flush(awaiting);
                }
            }
            SocketOutput::Close { conn, code, reason } => {
                if let Some(writer) = self.writers.get_mut(&conn) {
                    writer.out.push(Out::Close(code, reason));
                    if let Some(closing) = writer.closing.take() {
                        let _ = closing.send(());
                    }
                }
            }
            _ => {}
        }
    }

    /// What the rest of the cluster needs: envelopes and stream entries as the operation's
    /// route says; interest and follows to the cluster sink alone (shards of one node need no
    /// subscription).
    fn cluster_output(&mut self, output: ClusterOutput) {
        match output {
            ClusterOutput::Envelope(envelope) => self.envelope(envelope),
            ClusterOutput::Sequence(entry) => self.sequence(entry),
            ClusterOutput::Interest { stream, interested } => {
                if let (StreamId::Room(room), true, None) = (&stream, interested, &self.cluster) {
                    // Alone, the node tells the hub that starts serving a room who is in it.
                    for arrival in self.relays.roster.arrivals(room) {
                        let _ = self
                            .relays
                            .own
                            .try_send(Inbound::Presence(Arc::new(arrival)));
                    }
                }
                self.to_cluster(|| ClusterEvent::Interest { stream, interested });
            }
            ClusterOutput::Follow { room, since } => {
                self.to_cluster(|| ClusterEvent::Follow {
                    stream: StreamId::Room(room),
                    since,
                });
            }
            ClusterOutput::Presence(change) => self.presence(change),
            ClusterOutput::Cancel(request) => self.cancel(request),
            _ => {}
        }
    }

    /// A client's cancel for a run not in progress on its hub: the cluster's to answer. Alone,
    /// the node has no other hub that could have it (a user's runs are on its shard).
    fn cancel(&mut self, request: Box<CancelRequest>) {
        if self.cluster.is_some() {
            self.to_cluster(|| ClusterEvent::Cancel(request));
        } else if let CancelFrom::Client { conn, reference } = request.from {
            let _ = self.hub.answer(conn, reference, Answer::unknown_run());
        }
    }

    /// A user's first connection on this shard joined a room, or its last one left it. A
    /// user's connections all live on its shard, so this is the user's change on the node: in
    /// a cluster the bridge decides whether it is one for the whole cluster and hands it back
    /// to every shard; alone, the node is the cluster, and every shard (this one included) is
    /// fed it at once. Whatever the route: a member that leaves while a relayed envelope is fed
    /// is still a departure.
    fn presence(&mut self, change: Box<PresenceChange>) {
        if self.cluster.is_some() {
            self.to_cluster(|| ClusterEvent::Presence(Arc::from(change)));
            return;
        }
        let change = Arc::new(self.relays.roster.apply(*change));
        let relays = &self.relays;
        for shard in relays.siblings.iter().chain([&relays.own]) {
            let _ = shard.try_send(Inbound::Presence(change.clone()));
        }
    }

    /// An envelope the hub emitted: relayed to the sibling shards and sent to the cluster, as
    /// the operation's route says.
    fn envelope(&mut self, envelope: Box<Envelope>) {
        // One allocation shared by the other shards and the cluster: no copy of the message.
        let envelope: Arc<Envelope> = Arc::from(envelope);
        // A user's streams live on its shard only (this one, or the one a publish went to): a
        // sibling has nothing to deliver and would buffer a copy.
        let shared = matches!(
            envelope.target,
            RemoteTarget::Room { .. } | RemoteTarget::All
        );
        if self.route.relay && shared {
            for sibling in &self.relays.siblings {
                let _ = sibling.try_send(Inbound::Envelope(envelope.clone()));
            }
        }
        if self.route.to_cluster {
            self.to_cluster(|| ClusterEvent::Publish(envelope));
        }
    }

    /// A stream entry for the cluster's sequencer goes to the cluster, once per publish: the
    /// sequencer hands it back to every shard serving the stream.
    fn sequence(&mut self, entry: Box<Unsequenced>) {
        if self.route.to_cluster {
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
        if let Some(writer) = self.writers.get(&conn) {
            // A writer that is gone has a socket that is gone: its `Closed` is on the way.
            writer.out.push(out);
        }
    }

    fn notice(&mut self, notice: Notice) {
        match notice {
            Notice::UserConnected { waiter, .. } => self.resolve(waiter, true),
            Notice::WaitExpired { waiter, .. } => self.resolve(waiter, false),
            notice => {
                match &notice {
                    // Presence is the cluster's business too.
                    Notice::Opened { conn, user } => self.to_cluster(|| ClusterEvent::Opened {
                        conn: *conn,
                        user: user.clone(),
                    }),
                    Notice::Closed { conn, user, .. } => {
                        // Frames already handed to the writer stay in its inbox; dropping our
                        // end of it ends the inbox after them.
                        self.writers.remove(conn);
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

/// How many queued inbound inputs are fed before the outputs are drained.
const INBOUND_BATCH: usize = 64;

/// How many queued commands the task feeds under one hold of the seat (each drained).
const COMMAND_BATCH: usize = 64;

impl Shard {
    /// Feed one inbound input to the hub. Inputs from other hubs name no connection of this
    /// one, so the hub has no error to report for them.
    fn inbound(&mut self, now: Instant, input: Inbound) {
        let hub = &mut self.hub;
        match input {
            Inbound::Envelope(envelope) => {
                hub.handle_cluster(now, ClusterInput::Envelope(&envelope))
            }
            Inbound::Sequenced(entry) => hub.handle_cluster(now, ClusterInput::Sequenced(&entry)),
            Inbound::History(entry) => hub.handle_cluster(now, ClusterInput::History(&entry)),
            Inbound::Head(stream, head) => hub.handle_cluster(
                now,
                ClusterInput::StreamHead {
                    stream: &stream,
                    head,
                },
            ),
            Inbound::Presence(change) => hub.handle_cluster(now, ClusterInput::Presence(&change)),
            // Answered after the drain, like a call.
            Inbound::Fence(answer) => {
                self.reply_after_drain(Box::new(move || {
                    let _ = answer.send(());
                }));
            }
        }
    }
}

/// What woke the shard task.
enum Wake {
    Command(Option<Command>),
    Inbound(Option<Inbound>),
    Timer,
    /// A request run directly scheduled a sooner timer (`seat.rs`).
    Rearm,
}

/// The shard task: feed, drain, sleep until the next command, inbound input, timer or ring,
/// until stopped; then empty the seat.
pub(crate) async fn run<R: Runtime>(
    runtime: R,
    seat: Seat,
    rung: Receiver<()>,
    inbox: Receiver<Command>,
    inbound: Receiver<Inbound>,
) {
    let mut inbox = pin!(inbox);
    let queued = inbound.clone();
    let mut inbound = pin!(inbound);
    let mut rung = pin!(rung);
    let mut sleep = pin!(Fuse::terminated());
    let mut armed: Option<Instant> = None;
    // Recorded in the shard while the task holds it, for direct runs to compare against.
    let mut wake = seat.take().and_then(|shard| shard.armed);
    'task: loop {
        if wake != armed {
            match wake {
                Some(at) => sleep.set(runtime.sleep_until(at).fuse()),
                None => sleep.set(Fuse::terminated()),
            }
            armed = wake;
        }
        // Unbiased: under a steady stream of commands the timer still gets its turn.
        let woken = select! {
            command = inbox.next() => Wake::Command(command),
            input = inbound.next() => Wake::Inbound(input),
            () = sleep.as_mut() => Wake::Timer,
            _ = rung.next() => Wake::Rearm,
        };
        let Some(mut shard) = seat.take() else { break };
        match woken {
            Wake::Command(mut command) => {
                // The commands queued behind the first are fed under the same hold of the seat
                // (each drained before the next): under fan-out they are mostly flush reports,
                // one per writer wake-up, and each cost a wake of the task, a take of the seat
                // and a look at the timers.
                for fed in 1.. {
                    match command {
                        Some(Command::Socket { conn, event }) => {
                            seat.fed(&event);
                            shard.socket(Instant::now(), conn, event);
                        }
                        Some(Command::Call(call)) => call(&mut shard, Instant::now()),
                        Some(Command::Stop) | None => {
                            tracing::debug!(shard = shard.index, "shard stopped");
                            break 'task;
                        }
                    }
                    if fed == COMMAND_BATCH {
                        break;
                    }
                    match inbox.try_recv() {
                        Ok(next) => {
                            shard.drain();
                            command = Some(next);
                        }
                        Err(_) => break,
                    }
                }
            }
            Wake::Inbound(Some(input)) => {
                let now = Instant::now();
                shard.inbound(now, input);
                // A burst from another node is fed together, then drained once.
                for _ in 1..INBOUND_BATCH {
                    match queued.try_recv() {
                        Ok(input) => shard.inbound(now, input),
                        Err(_) => break,
                    }
                }
            }
            Wake::Inbound(None) | Wake::Rearm => {}
            Wake::Timer => {
                armed = None;
                shard.hub.handle_timeout(Instant::now());
            }
        }
        shard.drain();
        shard.armed = shard.hub.poll_timeout();
        wake = shard.armed;
    }
    seat.stop();
}
