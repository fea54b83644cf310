//! One open connection: who it is, where it is subscribed, its liveness, its rate limits and
//! its outbox. The hub's indexes (users, rooms, threads) point here by [`ConnId`].

use crate::access::RoomAccess;
use crate::config::{Config, TokenConfig};
use crate::heartbeat::{Heartbeat, Liveness, RttStats};
use crate::id::{ConnId, RoomId, ThreadId, UserId};
use crate::mutation::{self, Fault};
use crate::outbox::Outbox;
use crate::rate::TokenBucket;
use crate::token::{Due, Refreshing, TokenLife};
use smallvec::SmallVec;
use std::time::{Duration, Instant};

/// A room the connection is in and where it sits in the room's member list.
#[derive(Debug)]
pub(crate) struct Membership {
    pub room: RoomId,
    pub slot: usize,
    /// The backend put the connection here (`Hub::add_user_to_room`): its token's join grant
    /// was not consulted, and a refreshed token that does not allow the room keeps it here.
    pub by_backend: bool,
}

/// Traffic counters of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Frames received.
    pub messages_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Frames handed to the transport.
    pub messages_out: u64,
    /// Bytes handed to the transport.
    pub bytes_out: u64,
}

/// What a connection's credential grants and until when, and the fresh credential being
/// verified (`Open::access`, `Open::publish`, `Open::expires_at`, then each accepted refresh).
#[derive(Debug, Default)]
pub(crate) struct Credential {
    pub join: RoomAccess,
    pub publish: RoomAccess,
    /// `None`: the credential does not expire.
    pub life: Option<TokenLife>,
    pub refreshing: Refreshing,
}

#[derive(Debug)]
pub(crate) struct Connection {
    pub user: UserId,
    pub thread: Option<ThreadId>,
    /// Application metadata, boxed when there is any (`None` stands for `null`, the common
    /// case): 8 bytes here instead of 32.
    metadata: Option<Box<serde_json::Value>>,
    /// The rooms it may join and publish to, its token's lifetime and a refresh in progress,
    /// boxed when any of them is set (`None` stands for `RoomAccess::Any` to both, no expiry
    /// and no refresh, the common case without tokens): 8 bytes here instead of its 100 and
    /// more.
    credential: Option<Box<Credential>>,
    pub rooms: SmallVec<[Membership; 2]>,
    /// The connection has every message of its user stream (that its thread selects) from
    /// this sequence number on (0 = not positioned yet: set by its first live message or a
    /// catch-up).
    pub user_from: u64,
    pub heartbeat: Heartbeat,
    pub rate: TokenBucket,
    pub strikes: TokenBucket,
    pub outbox: Outbox,
    pub traffic: Traffic,
}

impl Connection {
    pub fn new(now: Instant, open: crate::io::Open, config: &Config) -> Self {
        let limits = &config.limits;
        Self {
            user: open.user,
            thread: open.thread,
            metadata: match open.metadata {
                serde_json::Value::Null => None,
                metadata => Some(Box::new(metadata)),
            },
            credential: match (open.access, open.publish, open.expires_at) {
                (RoomAccess::Any, RoomAccess::Any, None) => None,
                (join, publish, expires_at) => Some(Box::new(Credential {
                    join,
                    publish,
                    life: expires_at.map(|at| TokenLife::new(now, at, &config.tokens)),
                    refreshing: Refreshing::Idle,
                })),
            },
            rooms: SmallVec::new(),
            user_from: 0,
            heartbeat: Heartbeat::new(now, &config.heartbeat),
            rate: TokenBucket::new(
                now,
                limits.message_burst + u32::from(mutation::injected(Fault::WiderBurst)),
                limits.messages_per_second,
                Duration::from_secs(1),
            ),
            strikes: TokenBucket::new(now, limits.max_strikes, 1, limits.strike_refill),
            outbox: Outbox::default(),
            traffic: Traffic::default(),
        }
    }

    /// True if the connection's join grant allows `room`.
    pub fn may_join(&self, room: &RoomId) -> bool {
        self.credential.as_ref().is_none_or(|g| g.join.allows(room))
    }

    /// True if the connection's publish grant allows `room`.
    pub fn may_publish(&self, room: &RoomId) -> bool {
        (self.credential.as_ref()).is_none_or(|g| g.publish.allows(room))
    }

    /// The lifetime of the connection's token, if it expires.
    pub fn token_life(&self) -> Option<&TokenLife> {
        self.credential.as_ref().and_then(|c| c.life.as_ref())
    }

    /// A deadline of the token's lifetime came: what it asks (`None`: the token does not
    /// expire).
    pub fn token_due(&mut self, now: Instant, config: &TokenConfig) -> Option<Due> {
        let credential = self.credential.as_mut()?;
        let verifying = credential.refreshing.is_verifying();
        Some(credential.life.as_mut()?.fire(now, verifying, config))
    }

    /// True while a fresh token of the client's is being verified.
    pub fn is_refreshing(&self) -> bool {
        (self.credential.as_ref()).is_some_and(|c| c.refreshing.is_verifying())
    }

    /// The connection's credential, to change (allocated the first time it differs from the
    /// default).
    pub fn credential_mut(&mut self) -> &mut Credential {
        self.credential.get_or_insert_with(Default::default)
    }

    pub fn membership(&self, room: &RoomId) -> Option<&Membership> {
        self.rooms.iter().find(|m| &m.room == room)
    }

    /// True if entries tagged with `thread` are for this connection.
    pub fn wants_thread(&self, thread: Option<&ThreadId>) -> bool {
        thread.is_none() || thread == self.thread.as_ref()
    }
}

/// A snapshot of one connection, from [`Hub::connection_info`](crate::Hub::connection_info).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionInfo {
    /// The connection.
    pub id: ConnId,
    /// Its user.
    pub user: UserId,
    /// The thread it is bound to.
    pub thread: Option<ThreadId>,
    /// The rooms it is in.
    pub rooms: Vec<RoomId>,
    /// Application metadata given at open.
    pub metadata: serde_json::Value,
    /// When it opened.
    pub opened_at: Instant,
    /// Health score, 0–100.
    pub health: u8,
    /// Alive or dead (awaiting its close deadline).
    pub liveness: Liveness,
    /// Ping round-trip statistics.
    pub rtt: RttStats,
    /// Frames and bytes in and out.
    pub traffic: Traffic,
    /// Frames waiting in its outbound queue.
    pub queued_messages: usize,
    /// Bytes handed to the transport and not yet flushed.
    pub inflight_bytes: usize,
}

impl ConnectionInfo {
    pub(crate) fn of(id: ConnId, c: &Connection) -> Self {
        Self {
            id,
            user: c.user.clone(),
            thread: c.thread.clone(),
            rooms: c.rooms.iter().map(|m| m.room.clone()).collect(),
            metadata: c
                .metadata
                .as_deref()
                .cloned()
                .unwrap_or(serde_json::Value::Null),
            opened_at: c.heartbeat.opened_at(),
            health: c.heartbeat.health(),
            liveness: c.heartbeat.liveness(),
            rtt: c.heartbeat.rtt(),
            traffic: c.traffic,
            queued_messages: c.outbox.queued_messages(),
            inflight_bytes: c.outbox.inflight(),
        }
    }
}
