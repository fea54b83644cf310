//! The [`Hub`]: the coordinator of the core. Its fields are the hub's parts, each owning its
//! state with its own methods and tests (`Directory`, `Rooms`, `Streams`, `Runs`, `Waiters`,
//! `Cluster`, `Sweep`, `Outputs`); this file is the contract (inputs, outputs, the drain,
//! timeouts), `requests.rs` the application's requests. The rules that combine parts live beside it, one concern per file, each a
//! function that borrows exactly the parts it needs:
//!
//! | File | Rules |
//! |---|---|
//! | `lifecycle.rs` | admitting, welcoming and closing a connection |
//! | `client.rs` | text and control frames from clients, rejections and strikes |
//! | `membership.rs` | joining and leaving rooms, binding threads |
//! | `presence.rs` | users arriving in and leaving rooms, told to the members who watch |
//! | `backend.rs` | rooms every connection of a user joins or leaves on the backend's decision |
//! | `delivery.rs` | publishing: rendered once, numbered, fanned out ([`Fanout`]) |
//! | `replay.rs` | replays, catch-ups and `resume` answers |
//! | `follow.rs` | what the cluster feeds: envelopes, sealed entries, history, heads |
//! | `agent.rs` | agent run events |
//! | `refresh.rs` | token lifetimes: asking for a fresh token, its answer, the 4005 close |
//! | `sweep.rs` | the periodic sweep |
//! | `reply.rs` | answering a client |
//! | `queries.rs` | questions about the state, and stats |

mod agent;
mod backend;
mod cancel;
mod client;
mod delivery;
mod follow;
mod lifecycle;
mod membership;
mod presence;
mod queries;
mod refresh;
mod replay;
mod reply;
mod requests;
mod sweep;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::directory::{Beat, Directory};
use crate::error::{OpenError, UnknownConnection};
use crate::id::ConnId;
use crate::io::{ClusterInput, Notice, Open, Output, SocketInput, WaiterId};
use crate::outputs::Outputs;
use crate::reason::Reason;
use crate::room::Rooms;
use crate::run::Runs;
use crate::stream::Streams;
use crate::timer::{earliest, Sweep};
use crate::waiters::Waiters;
pub use backend::UserMembership;
use delivery::Fanout;
use std::time::Instant;

/// The sans-IO WebSocket hub: the one state machine that owns every connection, user, room,
/// thread, stream and agent run, and decides who receives what.
///
/// # The contract (the drain invariant)
///
/// The caller feeds the hub inputs with the current time — [`Hub::open`] and
/// [`Hub::handle_socket`] from the sockets, [`Hub::handle_cluster`] from the rest of the
/// cluster, and the application's requests ([`Hub::publish`], [`Hub::send_agent_update`] and
/// the others) — and after **every** one of them drains [`Hub::poll_output`] until it returns
/// `None`, performing each [`Output`]: [`Output::Socket`] on the connection's socket,
/// [`Output::Notice`] for the application, [`Output::Cluster`] for the other hubs. The last
/// thing it learns is [`Hub::poll_timeout`]: it sleeps until then (or until the next input) and
/// calls [`Hub::handle_timeout`], then drains again. The hub never reads a clock, never sleeps,
/// never touches a socket: a test steps time by hand and replays exactly.
///
/// Every operation ends by closing the connections that overflowed during it (4008), so such
/// a close always comes after the frames the operation produced for the others.
///
/// ```
/// use std::time::Instant;
/// use switchboard::{Config, Hub, Message, Open, Output, SocketInput, SocketOutput, Target};
///
/// let now = Instant::now();
/// let mut hub = Hub::new(Config::development());
/// let conn = hub.open(now, Open::new("alice")).unwrap();
/// let join = br#"{"type":"join","room":"lobby"}"#;
/// hub.handle_socket(now, SocketInput::Text { conn, bytes: join }).unwrap();
/// let hello = Message::new("hello", 42.into());
/// let delivery = hub.publish(now, Target::Room("lobby".into()), &hello).unwrap();
/// assert_eq!(delivery.reached, 1);
/// while let Some(output) = hub.poll_output() {
///     match output {
///         Output::Socket(SocketOutput::Send { conn, frame }) => {
///             /* write `frame` to `conn`, then SocketInput::Flushed */
///         }
///         Output::Socket(SocketOutput::Close { conn, code, .. }) => {
///             /* send a close frame with `code` */
///         }
///         _ => {}
///     }
/// }
/// let wake_at = hub.poll_timeout(); // sleep until then, then hub.handle_timeout(then)
/// ```
#[derive(Debug)]
pub struct Hub {
    config: Config,
    /// The open connections, by id and by user, their heartbeat deadlines and gauges.
    conns: Directory,
    /// Who is in which room.
    rooms: Rooms,
    /// The user and room streams: numbering, history, the history budget.
    streams: Streams,
    /// Agent runs, their automata and caps.
    runs: Runs,
    /// `wait_for_connection` registrations and their deadlines.
    waiters: Waiters,
    /// What the cluster is told, and the rooms whose head the sequencer has not given yet.
    cluster: Cluster,
    /// When the periodic sweep is due.
    sweep: Sweep,
    /// The output queue and the counters.
    out: Outputs,
}

/// The hub's parts borrowed apart (see [`Hub::parts`]): the configuration, the runs, the
/// waiters, and the parts every delivery touches.
struct Parts<'h> {
    config: &'h Config,
    runs: &'h mut Runs,
    waiters: &'h mut Waiters,
    fanout: Fanout<'h>,
}

/// A deadline that fell due, in the order the hub handles them: by instant, then heartbeats
/// before token lifetimes before flush windows before waiters before the sweep, then by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Heartbeat(ConnId),
    Token(ConnId),
    Flush(ConnId),
    Waiter(WaiterId),
    Sweep,
}

impl Hub {
    /// A hub with this configuration and nothing in it.
    pub fn new(config: Config) -> Self {
        Self {
            conns: Directory::new(&config),
            rooms: Rooms::new(config.presence.clone()),
            streams: Streams::new(
                config.history.clone(),
                config.epoch_base,
                config.shared_streams,
            ),
            runs: Runs::new(&config),
            waiters: Waiters::default(),
            cluster: Cluster::new(&config),
            sweep: Sweep::new(config.cleanup_interval),
            out: Outputs::default(),
            config,
        }
    }

    /// The configuration the hub runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    // ----- outputs and time ------------------------------------------------------------------

    /// The next thing the transport or application must do, or `None` when drained.
    #[must_use = "every output must be performed (the drain invariant)"]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop()
    }

    /// When [`Hub::handle_timeout`] must next be called: the earliest deadline of the parts
    /// (heartbeats, token lifetimes, message flush windows, waiters, the sweep). May be early
    /// (then nothing is due).
    #[must_use = "the hub must be woken at this instant"]
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest([
            self.conns.next_heartbeat().map(|(at, _)| at),
            self.conns.next_token().map(|(at, _)| at),
            self.conns.next_flush().map(|(at, _)| at),
            self.waiters.next_deadline().map(|(at, _)| at),
            self.sweep.deadline(),
        ])
    }

    /// Run every deadline due at `now`, earliest first: pings, dead connections, requests for
    /// fresh tokens and expired ones (4005), message deltas held by a flush window, waiters,
    /// the sweep.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(due) = self.next_due(now) {
            let Parts {
                config,
                runs,
                waiters,
                fanout: mut f,
            } = self.parts();
            match due {
                Due::Heartbeat(_) => {
                    if let Beat::Close(id) = f.conns.heartbeat(now, &config.heartbeat, f.out) {
                        f.close(id, Reason::HeartbeatTimeout);
                    }
                }
                Due::Token(_) => refresh::due(&mut f, now, &config.tokens),
                Due::Flush(_) => f.conns.flush_due(now, f.out),
                Due::Waiter(_) => waiters.expire_next(f.out),
                Due::Sweep => {
                    f.sweep.fired();
                    sweep::run(runs, &mut f, now);
                }
            }
        }
        self.finish();
    }

    fn next_due(&self, now: Instant) -> Option<Due> {
        let deadlines = [
            (self.conns.next_heartbeat()).map(|(at, id)| (at, Due::Heartbeat(id))),
            (self.conns.next_token()).map(|(at, id)| (at, Due::Token(id))),
            (self.conns.next_flush()).map(|(at, id)| (at, Due::Flush(id))),
            (self.waiters.next_deadline()).map(|(at, w)| (at, Due::Waiter(w))),
            self.sweep.deadline().map(|at| (at, Due::Sweep)),
        ];
        let due = deadlines.into_iter().flatten().filter(|(at, _)| *at <= now);
        due.min().map(|(_, due)| due)
    }

    // ----- inputs ----------------------------------------------------------------------------

    /// Open a connection for an authenticated client. Sends `welcome`, then replays what the
    /// user missed (after `open.resume`, or what was buffered while the user was offline, and
    /// agent runs in progress on its thread). On error the transport closes the socket with
    /// [`OpenError::close_code`].
    pub fn open(&mut self, now: Instant, open: Open) -> Result<ConnId, OpenError> {
        let Parts {
            config,
            waiters,
            mut fanout,
            ..
        } = self.parts();
        fanout.admit(&open.user, &config.limits)?;
        let Fanout {
            conns,
            streams,
            cluster,
            out,
            ..
        } = fanout;
        let (user, resume) = (open.user.clone(), open.resume);
        let id = lifecycle::welcome(config, conns, streams, cluster, out, now, open);
        replay::catch_up_user(conns, streams, out, id, resume);
        out.notice(Notice::Opened {
            conn: id,
            user: user.clone(),
        });
        waiters.resolve(&user, id, out);
        self.finish();
        Ok(id)
    }

    /// Feed what happened on a connection's socket. Frames from clients are answered through
    /// outputs; the only error is a connection the hub does not know (it closed: the input
    /// raced the close, and the transport ignores it).
    pub fn handle_socket(
        &mut self,
        now: Instant,
        input: SocketInput<'_>,
    ) -> Result<(), UnknownConnection> {
        let Parts {
            config,
            runs,
            fanout: mut f,
            ..
        } = self.parts();
        match input {
            SocketInput::Text { conn, bytes } => {
                client::text(config, runs, &mut f, now, conn, bytes)?
            }
            SocketInput::Binary { conn, bytes } => {
                f.conns.received(now, conn, bytes.len(), f.out)?;
                f.close(conn, Reason::BinaryFrame);
            }
            SocketInput::Ping { conn } => {
                f.conns.alive(now, conn, f.out)?;
                client::control_frame(&mut f, now, conn);
            }
            SocketInput::Pong { conn, payload } => {
                match f.conns.pong(now, conn, payload, &config.heartbeat, f.out)? {
                    Some(rtt) => f.out.counters.rtt.record(rtt),
                    None => client::control_frame(&mut f, now, conn),
                }
            }
            SocketInput::Flushed { conn, bytes } => f.conns.flushed(conn, bytes, f.out)?,
            SocketInput::Closed { conn } => {
                f.conns.check(conn)?;
                f.close(conn, Reason::PeerClosed);
            }
        }
        self.finish();
        Ok(())
    }

    /// Feed what other hubs and the cluster's sequencer sent: a publish, a sealed stream
    /// entry, an older entry from the shared history, a stream's head. It names no connection
    /// of this hub, so nothing can fail.
    pub fn handle_cluster(&mut self, now: Instant, input: ClusterInput<'_>) {
        let mut f = self.parts().fanout;
        match input {
            ClusterInput::Envelope(envelope) => follow::envelope(&mut f, now, envelope),
            ClusterInput::Sequenced(sealed) => follow::sequenced(&mut f, now, sealed),
            ClusterInput::History(sealed) => follow::history(&mut f, now, sealed),
            ClusterInput::StreamHead { stream, head } => {
                follow::stream_head(&mut f, now, stream, head)
            }
            ClusterInput::Presence(change) => {
                presence::told(f.conns, f.rooms, f.cluster, f.out, change)
            }
        }
        self.finish();
    }

    // ----- the parts -------------------------------------------------------------------------

    /// The hub's parts, borrowed apart: what a rule needs is handed to it, and nothing else.
    fn parts(&mut self) -> Parts<'_> {
        let Hub {
            config,
            conns,
            rooms,
            streams,
            runs,
            waiters,
            cluster,
            sweep,
            out,
        } = self;
        let fanout = Fanout {
            conns,
            rooms,
            streams,
            cluster,
            sweep,
            out,
        };
        Parts {
            config,
            runs,
            waiters,
            fanout,
        }
    }

    /// The end of every operation: the connections that overflowed during it are closed.
    fn finish(&mut self) {
        self.parts().fanout.close_slow();
    }
}
