//! A connection's life in the hub: admitted (within the limits, evicting the user's oldest
//! connection if the policy says so), welcomed, and closed, leaving its rooms, its user and its
//! thread at once.

use super::delivery::Fanout;
use super::membership;
use crate::cluster::Cluster;
use crate::config::{Config, Limits};
use crate::directory::{Directory, Removed};
use crate::error::OpenError;
use crate::id::{ConnId, UserId};
use crate::io::Open;
use crate::outbox::Origin;
use crate::outputs::Outputs;
use crate::protocol::ServerFrame;
use crate::reason::Reason;
use crate::stream::{StreamId, Streams};
use std::time::Instant;

/// Add an admitted connection and send it `welcome`, with its user stream's position (the
/// stream is created with the user's first connection, if the hub kept none).
pub(super) fn welcome(
    config: &Config,
    conns: &mut Directory,
    streams: &mut Streams,
    cluster: &mut Cluster,
    out: &mut Outputs,
    now: Instant,
    open: Open,
) -> ConnId {
    let (id, first) = conns.insert(now, open, config);
    let user = conns.conn(id).user.clone();
    let stream = StreamId::User(user.clone());
    if first {
        cluster.serving(stream.clone(), true, out);
    }
    out.counters.opened += 1;
    streams.create(&stream);
    let position = streams.position(&stream);
    let welcome = ServerFrame::Welcome {
        conn: id,
        user: &user,
        thread: conns.conn(id).thread.as_ref(),
        heartbeat_ms: config.heartbeat.interval.as_millis() as u64,
        stream: &stream,
        epoch: position.epoch,
        seq: position.seq,
    }
    .encode();
    let _ = conns.offer(id, &welcome, None, Origin::Live, out);
    id
}

impl Fanout<'_> {
    /// May a connection of `user` open? With `EvictOldest`, the user's oldest connection is
    /// closed to make room. A refusal is counted (`refused_opens`, and `closes` by its reason).
    pub fn admit(&mut self, user: &UserId, limits: &Limits) -> Result<(), OpenError> {
        let admitted = self.conns.admit(user, limits).and_then(|evict| {
            if let Some(oldest) = evict {
                self.close(oldest, Reason::Evicted);
            }
            self.conns.has_room(limits)
        });
        if let Err(e) = admitted {
            self.out.counters.refused_opens += 1;
            self.out.counters.closes.add(e.reason());
        }
        admitted
    }

    /// Close a connection for `reason`: it leaves its rooms, its user and its thread at once,
    /// and (unless the peer already closed) the transport is told to send the close frame. A
    /// graceful close hands out what was queued for it first. Nothing happens for a closed
    /// connection.
    pub fn close(&mut self, id: ConnId, reason: Reason) {
        let graceful = reason.is_graceful();
        let Some(Removed { conn, last_of_user }) = self.conns.remove(id, graceful, self.out) else {
            return;
        };
        let Fanout {
            conns,
            rooms,
            streams,
            cluster,
            out,
            ..
        } = self;
        for m in &conn.rooms {
            let member = (id, &conn.user);
            if membership::remove_member(conns, rooms, cluster, out, &m.room, member, m.slot) {
                membership::unserved(streams, cluster, out, StreamId::Room(m.room.clone()));
            }
        }
        if last_of_user {
            membership::unserved(streams, cluster, out, StreamId::User(conn.user.clone()));
        }
        out.closed(id, conn.user, reason);
    }

    /// Close the connections that overflowed during the operation that ends (4008): after
    /// every frame it produced for the others, never in the middle of a fan-out.
    pub fn close_slow(&mut self) {
        while let Some(id) = self.out.take_slow() {
            self.close(id, Reason::SlowConsumer);
        }
    }
}
