//! The in-memory harness: a real [`Hub`] driven by a manual clock, with fake clients that
//! record every frame they receive.
//!
//! This is the test double for applications built on Switchboard. It is not a mock: it is the
//! production core with the transport replaced by a loop that follows the drain invariant, so
//! it cannot drift from what real clients see. Clients answer pings, report flushes, and
//! track their position on every stream the way the protocol's client algorithm says; a client
//! can stop reading to play a slow consumer, or stop answering pings to play a dead one.
//!
//! ```
//! use switchboard::testing::Harness;
//! use switchboard::{Config, Message, Target};
//!
//! let mut h = Harness::new(Config::development());
//! let alice = h.connect("alice");
//! h.send(alice, r#"{"type":"join","room":"lobby"}"#);
//! h.publish(Target::Room("lobby".into()), Message::new("hi", 1.into()));
//! assert_eq!(h.events(alice), vec!["hi"]);
//! ```

use crate::config::Config;
use crate::error::OpenError;
use crate::hub::Hub;
use crate::id::{ConnId, RoomId, UserId};
use crate::io::{
    CancelRequest, ClusterInput, ClusterOutput, Delivery, Envelope, Notice, Open, Output,
    SocketInput, SocketOutput,
};
use crate::message::Message;
use crate::presence::PresenceChange;
use crate::reason::Reason;
use crate::sequenced::Unsequenced;
use crate::stream::{Position, StreamId};
use crate::target::Audience;
use bytes::Bytes;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// A fake client: what it received and how it behaves.
#[derive(Debug)]
pub struct Client {
    /// Its user.
    pub user: UserId,
    /// Every frame read, parsed, in order.
    pub frames: Vec<Value>,
    /// Frames written by the hub and not yet read (while not reading).
    unread: VecDeque<Bytes>,
    reading: bool,
    answers_pings: bool,
    /// The close code and reason, once the hub closed it.
    pub closed: Option<(u16, Reason)>,
    /// Pings received.
    pub pings: u32,
    /// The hub holds frames for it until its next flush report
    /// ([`SocketOutput::AwaitingFlush`]).
    pub flush_awaited: bool,
    /// The last sequence number seen per stream (the client algorithm's state).
    pub positions: HashMap<StreamId, Position>,
}

impl Client {
    fn new(user: UserId) -> Self {
        Self {
            user,
            frames: Vec::new(),
            unread: VecDeque::new(),
            reading: true,
            answers_pings: true,
            closed: None,
            pings: 0,
            flush_awaited: false,
            positions: HashMap::new(),
        }
    }

    fn read(&mut self, frame: &[u8]) {
        let value: Value = serde_json::from_slice(frame).expect("the hub sends JSON");
        let kind = value["type"].as_str().unwrap_or_default();
        let sequenced = !matches!(kind, "welcome" | "joined" | "resumed" | "gap");
        if let (true, Some(stream), Some(epoch), Some(seq)) = (
            sequenced,
            value["stream"]
                .as_str()
                .and_then(|s| s.parse::<StreamId>().ok()),
            value["epoch"].as_u64(),
            value["seq"].as_u64(),
        ) {
            let p = self.positions.entry(stream).or_default();
            if p.epoch != epoch || seq > p.seq {
                *p = Position { epoch, seq };
            }
        }
        self.frames.push(value);
    }
}

/// A hub, a manual clock and recording clients.
#[derive(Debug)]
pub struct Harness {
    hub: Hub,
    now: Instant,
    clients: BTreeMap<ConnId, Client>,
    notices: Vec<Notice>,
    envelopes: Vec<Envelope>,
    unsequenced: Vec<Unsequenced>,
    interest: Vec<(StreamId, bool)>,
    follows: Vec<(RoomId, Option<Position>)>,
    presence: Vec<PresenceChange>,
    cancels: Vec<CancelRequest>,
}

impl Harness {
    /// A harness around a new hub with `config`; the clock starts now and only moves when told.
    pub fn new(config: Config) -> Self {
        Self {
            hub: Hub::new(config),
            now: Instant::now(),
            clients: BTreeMap::new(),
            notices: Vec::new(),
            envelopes: Vec::new(),
            unsequenced: Vec::new(),
            interest: Vec::new(),
            follows: Vec::new(),
            presence: Vec::new(),
            cancels: Vec::new(),
        }
    }

    /// The harness's current time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The hub, for queries.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Run `f` against the hub at the current time, then deliver every output.
    pub fn with_hub<R>(&mut self, f: impl FnOnce(&mut Hub, Instant) -> R) -> R {
        let r = f(&mut self.hub, self.now);
        self.pump();
        r
    }

    /// Drain the hub's outputs into the clients, following the drain invariant.
    fn pump(&mut self) {
        while let Some(output) = self.hub.poll_output() {
            match output {
                Output::Socket(SocketOutput::Send { conn, frame }) => {
                    let client = self
                        .clients
                        .get_mut(&conn)
                        .expect("frames only go to open clients");
                    // Frames written earlier and still unread come first: a client that
                    // resumes reading drains them in order (see `set_reading`).
                    if client.reading && client.unread.is_empty() {
                        client.read(&frame);
                        let bytes = frame.len();
                        // The connection may have been closed by the same operation (a 4008
                        // during a replay): like a transport, ignore the input that races it.
                        let flushed = SocketInput::Flushed { conn, bytes };
                        let _ = self.hub.handle_socket(self.now, flushed);
                    } else {
                        client.unread.push_back(frame);
                    }
                }
                Output::Socket(SocketOutput::Ping { conn, payload }) => {
                    let client = self
                        .clients
                        .get_mut(&conn)
                        .expect("pings only go to open clients");
                    client.pings += 1;
                    if client.answers_pings {
                        // As with flushes: the operation that sent the ping may also have
                        // closed the connection; a transport ignores the input that races it.
                        let pong = SocketInput::Pong {
                            conn,
                            payload: &payload,
                        };
                        let _ = self.hub.handle_socket(self.now, pong);
                    }
                }
                // Every write is reported at once here, awaited or not.
                Output::Socket(SocketOutput::AwaitingFlush { conn, awaiting }) => {
                    if let Some(c) = self.clients.get_mut(&conn) {
                        c.flush_awaited = awaiting;
                    }
                }
                Output::Socket(SocketOutput::Close { conn, code, reason }) => {
                    if let Some(c) = self.clients.get_mut(&conn) {
                        c.closed = Some((code, reason));
                    }
                }
                Output::Notice(notice) => self.notices.push(notice),
                Output::Cluster(ClusterOutput::Envelope(envelope)) => {
                    self.envelopes.push(*envelope)
                }
                Output::Cluster(ClusterOutput::Sequence(entry)) => self.unsequenced.push(*entry),
                Output::Cluster(ClusterOutput::Interest { stream, interested }) => {
                    self.interest.push((stream, interested))
                }
                Output::Cluster(ClusterOutput::Follow { room, since }) => {
                    self.follows.push((room, since))
                }
                Output::Cluster(ClusterOutput::Presence(change)) => self.presence.push(*change),
                Output::Cluster(ClusterOutput::Cancel(request)) => self.cancels.push(*request),
            }
        }
    }

    /// Open a connection with `open`; the client records from the welcome frame on.
    pub fn open(&mut self, open: Open) -> Result<ConnId, OpenError> {
        let user = open.user.clone();
        // The record must exist before the hub's first output for it is pumped.
        let conn = self.hub.open(self.now, open);
        if let Ok(conn) = conn {
            self.clients.insert(conn, Client::new(user));
        }
        self.pump();
        conn
    }

    /// Open a connection for `user` (no thread, any room). Panics if refused.
    pub fn connect(&mut self, user: &str) -> ConnId {
        self.open(Open::new(user)).expect("connection refused")
    }

    /// Reopen for the same user after `old` was closed, resuming its user stream from where
    /// the old client was, then its rooms (the protocol's reconnect algorithm).
    pub fn reconnect(&mut self, old: ConnId, open: Open) -> Result<ConnId, OpenError> {
        let positions = self.clients[&old].positions.clone();
        let user_stream = StreamId::User(open.user.clone());
        let open = match positions.get(&user_stream) {
            Some(p) => open.resume(*p),
            None => open,
        };
        let conn = self.open(open)?;
        let rooms: Vec<Value> = positions
            .iter()
            .filter(|(s, _)| matches!(s, StreamId::Room(_)))
            .map(|(s, p)| serde_json::json!({"stream": s, "epoch": p.epoch, "seq": p.seq}))
            .collect();
        if !rooms.is_empty() {
            let frame = serde_json::json!({"type": "resume", "streams": rooms});
            self.send(conn, &frame.to_string());
        }
        Ok(conn)
    }

    /// The client sends a text frame.
    pub fn send(&mut self, conn: ConnId, text: &str) {
        self.send_bytes(conn, text.as_bytes());
    }

    /// The client sends a text frame with arbitrary bytes.
    pub fn send_bytes(&mut self, conn: ConnId, bytes: &[u8]) {
        self.socket(SocketInput::Text { conn, bytes });
    }

    /// Feed what a socket did, at the current time (an input for a closed connection is
    /// ignored, as a transport does).
    pub fn socket(&mut self, input: SocketInput<'_>) {
        let _ = self.hub.handle_socket(self.now, input);
        self.pump();
    }

    /// Feed what the cluster sent, at the current time.
    pub fn cluster(&mut self, input: ClusterInput<'_>) {
        self.hub.handle_cluster(self.now, input);
        self.pump();
    }

    /// The client's socket drops (no close frame from the hub).
    pub fn drop_connection(&mut self, conn: ConnId) {
        self.socket(SocketInput::Closed { conn });
    }

    /// Publish at the current time; panics on a refused publish.
    pub fn publish(&mut self, to: impl Into<Audience>, message: Message) -> Delivery {
        let to = to.into();
        self.with_hub(|hub, now| hub.publish(now, to, &message))
            .expect("publish refused")
    }

    /// Move the clock forward by `by`, firing every timer on the way at its own deadline.
    pub fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        while let Some(at) = self.hub.poll_timeout() {
            if at > target {
                break;
            }
            self.now = self.now.max(at);
            self.hub.handle_timeout(self.now);
            self.pump();
        }
        self.now = target;
    }

    /// Stop or resume reading from the socket. A client that does not read reports no flush,
    /// so the hub's budget for it fills up; resuming reads everything written meanwhile.
    pub fn set_reading(&mut self, conn: ConnId, reading: bool) {
        let client = self.clients.get_mut(&conn).expect("known client");
        client.reading = reading;
        if reading {
            while let Some(frame) = self
                .clients
                .get_mut(&conn)
                .and_then(|c| c.unread.pop_front())
            {
                let client = self.clients.get_mut(&conn).expect("known client");
                client.read(&frame);
                if client.closed.is_none() {
                    let bytes = frame.len();
                    let _ =
                        (self.hub).handle_socket(self.now, SocketInput::Flushed { conn, bytes });
                    self.pump();
                }
            }
        }
    }

    /// Stop or resume answering pings (a silent client).
    pub fn set_answers_pings(&mut self, conn: ConnId, answers: bool) {
        self.clients
            .get_mut(&conn)
            .expect("known client")
            .answers_pings = answers;
    }

    /// A client's record.
    pub fn client(&self, conn: ConnId) -> &Client {
        &self.clients[&conn]
    }

    /// Every frame `conn` received so far.
    pub fn frames(&self, conn: ConnId) -> &[Value] {
        &self.clients[&conn].frames
    }

    /// Take the frames `conn` received so far (later calls see only newer ones).
    pub fn take(&mut self, conn: ConnId) -> Vec<Value> {
        std::mem::take(&mut self.clients.get_mut(&conn).expect("known client").frames)
    }

    /// The frames of one `type` that `conn` received.
    pub fn frames_of(&self, conn: ConnId, kind: &str) -> Vec<Value> {
        self.frames(conn)
            .iter()
            .filter(|f| f["type"] == kind)
            .cloned()
            .collect()
    }

    /// The `event` names of the `message` frames `conn` received, in order.
    pub fn events(&self, conn: ConnId) -> Vec<String> {
        self.frames_of(conn, "message")
            .iter()
            .map(|f| f["event"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The close code and reason the hub closed `conn` with, if it did.
    pub fn closed(&self, conn: ConnId) -> Option<(u16, Reason)> {
        self.clients[&conn].closed
    }

    /// Take the notices the application received so far.
    pub fn notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    /// Take the envelopes the hub handed to the cluster so far (with `Config::cluster`).
    pub fn envelopes(&mut self) -> Vec<Envelope> {
        std::mem::take(&mut self.envelopes)
    }

    /// Take the interest the hub told the cluster so far (`ClusterOutput::Interest`: a stream
    /// it started, `true`, or stopped serving).
    pub fn interest(&mut self) -> Vec<(StreamId, bool)> {
        std::mem::take(&mut self.interest)
    }

    /// Take the rooms the hub asked to follow so far (`ClusterOutput::Follow`, with shared
    /// streams: the room and its first member's position).
    pub fn follows(&mut self) -> Vec<(RoomId, Option<Position>)> {
        std::mem::take(&mut self.follows)
    }

    /// The stream entries handed to the cluster's sequencer since the last call (with
    /// `Config::shared_streams`).
    pub fn unsequenced(&mut self) -> Vec<Unsequenced> {
        std::mem::take(&mut self.unsequenced)
    }

    /// Take the presence changes the hub handed to the cluster so far (with `Config::cluster`:
    /// a user's first member of a room here, or its last one gone).
    pub fn presence(&mut self) -> Vec<PresenceChange> {
        std::mem::take(&mut self.presence)
    }

    /// Take the cancels the hub handed to the cluster so far (with `Config::cluster`: a
    /// client's `cancel` for a run not in progress here).
    pub fn cluster_cancels(&mut self) -> Vec<CancelRequest> {
        std::mem::take(&mut self.cancels)
    }
}
