//! The case of the operations model: the operations, their arguments and the limits a case
//! runs under, as `arbitrary` builds them from a fuzzer's bytes.

use super::*;

// ----- the case ----------------------------------------------------------------------------

/// The limits and history bound a case runs with (small, so that sequences reach them).
#[derive(Debug, Clone, Arbitrary)]
pub struct Limits {
    /// Messages history keeps per stream (1 to 16).
    pub history: u8,
    /// Connections per user (1 to 3).
    pub per_user: u8,
    /// Past `per_user`, evict the oldest connection instead of refusing the new one.
    pub evict_oldest: bool,
    /// Connections in the hub (3 to 8).
    pub max_connections: u8,
    /// Rooms per connection (1 to 3).
    pub rooms_per_connection: u8,
    /// Members per room (1 to 4).
    pub members_per_room: u8,
    /// Client frames per second, sustained (1 to 4).
    pub rate: u8,
    /// Client frames in a burst (2 to 9).
    pub burst: u8,
    /// Strikes of a connection (1 to 4).
    pub strikes: u8,
    /// Seconds for a strike to come back (1 to 8).
    pub strike_refill: u8,
    /// Seconds history keeps a message (1 to 8).
    pub max_age: u8,
    /// Bytes of frames history keeps per stream, in 128-byte steps (2 to 8: a frame takes
    /// about 100).
    pub history_bytes: u8,
}

impl Limits {
    fn normalized(&self) -> Limits {
        Limits {
            history: 1 + self.history % 16,
            per_user: 1 + self.per_user % 3,
            evict_oldest: self.evict_oldest,
            max_connections: 3 + self.max_connections % 6,
            rooms_per_connection: 1 + self.rooms_per_connection % 3,
            members_per_room: 1 + self.members_per_room % 4,
            rate: 1 + self.rate % 4,
            burst: 2 + self.burst % 8,
            strikes: 1 + self.strikes % 4,
            strike_refill: 1 + self.strike_refill % 8,
            max_age: 1 + self.max_age % 8,
            history_bytes: 2 + self.history_bytes % 7,
        }
    }

    /// The hub's configuration for these limits.
    pub fn config(&self) -> Config {
        let mut config = Config::development();
        let limits = &mut config.limits;
        limits.max_connections_per_user = usize::from(self.per_user);
        limits.user_limit_policy = if self.evict_oldest {
            UserLimitPolicy::EvictOldest
        } else {
            UserLimitPolicy::RejectNew
        };
        limits.max_connections = usize::from(self.max_connections);
        limits.max_rooms_per_connection = usize::from(self.rooms_per_connection);
        limits.max_members_per_room = usize::from(self.members_per_room);
        // Small enough that a case runs through them (section 4): refused joins, resumes and
        // frames past the rate take strikes, and connections close with 1008 and 4029.
        limits.messages_per_second = u32::from(self.rate);
        limits.message_burst = u32::from(self.burst);
        limits.max_strikes = u32::from(self.strikes);
        limits.strike_refill = Duration::from_secs(u64::from(self.strike_refill));
        config.history.max_messages = usize::from(self.history);
        config.history.max_bytes = 128 * usize::from(self.history_bytes);
        config.epoch_base = EPOCH_BASE;
        let max_age = Duration::from_secs(u64::from(self.max_age));
        config.history.max_age = max_age;
        // A room without members keeps its history as long as any other.
        config.history.empty_room_max_age = max_age;
        config.cleanup_interval = Duration::from_millis(u64::from(SWEEP_MS));
        config
    }
}

/// Who a hub-level publish is for.
#[derive(Debug, Clone, Arbitrary)]
pub enum To {
    /// A connection picked among every connection ever opened (possibly closed).
    Connection(u8),
    /// A user.
    User(u8),
    /// A room.
    Room(u8),
    /// A user's thread.
    Thread(u8, u8),
    /// Everyone.
    All,
}

/// How a connection's thread is changed.
#[derive(Debug, Clone, Arbitrary)]
pub enum BindBy {
    /// A `bind` frame from the client.
    Frame,
    /// `Hub::update_connection_thread`.
    Hub,
    /// `UserScope::update_connection_thread` of this user (maybe not the owner).
    Scope(u8),
}

/// What is done through a user's scope.
#[derive(Debug, Clone, Arbitrary)]
pub enum Scoped {
    /// `UserScope::publish`.
    Publish,
    /// `UserScope::publish_to_thread`.
    Thread(u8),
    /// `UserScope::send_to_connection`, to a connection picked among every one ever opened.
    Send(u8),
}

/// One stream named in a `resume` frame.
#[derive(Debug, Clone, Arbitrary)]
pub enum Resumed {
    /// The connection's own user stream.
    Own,
    /// A user's stream (another user's is forbidden).
    User(u8),
    /// A room's stream (one the connection is not in is joined).
    Room(u8),
    /// Not a stream: the whole frame is `invalid_frame`.
    Invalid,
}

/// The position a `resume` frame gives for a stream. Epochs are the ones clients learned from
/// frames; for a stream whose incarnation no client read a frame of, the epoch of another
/// incarnation, which cannot be its own.
#[derive(Debug, Clone, Arbitrary)]
pub enum Since {
    /// The position the client keeps for that stream from what it read (zero if none).
    Last,
    /// Sequence 0 of the stream's epoch.
    Zero,
    /// Sequence 0 of another incarnation's epoch.
    OtherEpoch,
    /// One past the stream's head.
    Ahead,
}

/// One operation.
#[derive(Debug, Clone, Arbitrary)]
pub enum Op {
    /// Open a connection of a user, on a thread or not.
    Open {
        /// The user.
        user: u8,
        /// The thread.
        thread: Option<u8>,
    },
    /// Close an open connection: by the peer, or by the application (1000).
    Close {
        /// The connection, among the open ones.
        conn: u8,
        /// By the application rather than the peer.
        by_app: bool,
    },
    /// `UserScope::disconnect`: every connection of the user, with 4002.
    Disconnect {
        /// The user.
        user: u8,
    },
    /// Join a room, by client frame or on the server's initiative.
    Join {
        /// The connection, among the open ones.
        conn: u8,
        /// The room.
        room: u8,
        /// `Hub::join_room` rather than a `join` frame.
        by_server: bool,
    },
    /// Leave a room, by client frame or on the server's initiative.
    Leave {
        /// The connection, among the open ones.
        conn: u8,
        /// The room.
        room: u8,
        /// `Hub::leave_room` rather than a `leave` frame.
        by_server: bool,
    },
    /// Bind a connection (picked among every connection ever opened) to a thread or unbind it.
    Bind {
        /// The connection.
        conn: u8,
        /// The thread, or none.
        thread: Option<u8>,
        /// How.
        by: BindBy,
    },
    /// The application publishes.
    Publish {
        /// To whom.
        to: To,
        /// Connections left out, picked among every connection ever opened.
        except: Vec<u8>,
        /// In the lossy lane.
        ephemeral: bool,
    },
    /// A client's `publish` frame to a room.
    ClientPublish {
        /// The connection, among the open ones.
        conn: u8,
        /// The room.
        room: u8,
    },
    /// A call through a user's scope.
    Scope {
        /// The user.
        user: u8,
        /// The call.
        what: Scoped,
    },
    /// A `resume` frame listing streams with positions.
    Resume {
        /// The connection, among the open ones.
        conn: u8,
        /// The streams, in order.
        streams: Vec<(Resumed, Since)>,
    },
    /// A client stops or resumes reading its socket.
    Reading {
        /// The connection, among the open ones.
        conn: u8,
        /// Reading or not.
        reading: bool,
    },
    /// The clock moves, in whole sweeps ([`SWEEP_MS`]: the milliseconds are rounded down).
    Tick {
        /// Milliseconds.
        ms: u16,
    },
}

/// A generated case: limits and operations.
#[derive(Debug, Clone, Arbitrary)]
pub struct Case {
    /// The limits.
    pub limits: Limits,
    /// The operations.
    pub ops: Vec<Op>,
}

impl Case {
    /// Every index reduced into range, at most [`MAX_OPS`] operations, ticks at most
    /// [`MAX_TICK_MS`]. A case generated within range is unchanged.
    pub fn normalized(&self) -> Case {
        let n = |v: u8, len: usize| (usize::from(v) % len) as u8;
        let user = |u: u8| n(u, USERS.len());
        let room = |r: u8| n(r, ROOMS.len());
        let thread = |t: u8| n(t, THREADS.len());
        let pick = |p: u8| p % PICK;
        let ops = self.ops.iter().take(MAX_OPS).map(|op| match op.clone() {
            Op::Open { user: u, thread: t } => Op::Open {
                user: user(u),
                thread: t.map(thread),
            },
            Op::Close { conn, by_app } => Op::Close {
                conn: pick(conn),
                by_app,
            },
            Op::Disconnect { user: u } => Op::Disconnect { user: user(u) },
            Op::Join {
                conn,
                room: r,
                by_server,
            } => Op::Join {
                conn: pick(conn),
                room: room(r),
                by_server,
            },
            Op::Leave {
                conn,
                room: r,
                by_server,
            } => Op::Leave {
                conn: pick(conn),
                room: room(r),
                by_server,
            },
            Op::Bind {
                conn,
                thread: t,
                by,
            } => Op::Bind {
                conn: pick(conn),
                thread: t.map(thread),
                by: match by {
                    BindBy::Scope(u) => BindBy::Scope(user(u)),
                    by => by,
                },
            },
            Op::Publish {
                to,
                except,
                ephemeral,
            } => Op::Publish {
                to: match to {
                    To::Connection(p) => To::Connection(pick(p)),
                    To::User(u) => To::User(user(u)),
                    To::Room(r) => To::Room(room(r)),
                    To::Thread(u, t) => To::Thread(user(u), thread(t)),
                    To::All => To::All,
                },
                except: except.into_iter().take(2).map(pick).collect(),
                ephemeral,
            },
            Op::ClientPublish { conn, room: r } => Op::ClientPublish {
                conn: pick(conn),
                room: room(r),
            },
            Op::Scope { user: u, what } => Op::Scope {
                user: user(u),
                what: match what {
                    Scoped::Publish => Scoped::Publish,
                    Scoped::Thread(t) => Scoped::Thread(thread(t)),
                    Scoped::Send(p) => Scoped::Send(pick(p)),
                },
            },
            Op::Resume { conn, streams } => Op::Resume {
                conn: pick(conn),
                streams: streams
                    .into_iter()
                    .take(3)
                    .map(|(s, from)| {
                        let s = match s {
                            Resumed::User(u) => Resumed::User(user(u)),
                            Resumed::Room(r) => Resumed::Room(room(r)),
                            s => s,
                        };
                        (s, from)
                    })
                    .collect(),
            },
            Op::Reading { conn, reading } => Op::Reading {
                conn: pick(conn),
                reading,
            },
            Op::Tick { ms } => Op::Tick {
                ms: ms % (MAX_TICK_MS + 1),
            },
        });
        Case {
            limits: self.limits.normalized(),
            ops: ops.collect(),
        }
    }
}
