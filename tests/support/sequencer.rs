//! An in-test sequencer for shared streams (`Config::shared_streams`): it numbers the entries
//! hubs hand out, per stream in one epoch, delivers them sealed to every hub, and answers a
//! hub's follows from its log, as the Redis bridge's script does in production.

use super::small_config;
use serde_json::json;
use std::collections::HashMap;
use switchboard::testing::Harness;
use switchboard::{ClusterInput, ConnId, Position, Sequenced, StreamId, Unsequenced};

pub fn shared_hub(shard: u8) -> Harness {
    let mut config = small_config();
    config.cluster = true;
    config.shared_streams = true;
    config.shard = shard;
    Harness::new(config)
}

/// Numbers entries per stream, in the order it takes them, in one epoch.
#[derive(Default)]
pub struct Sequencer {
    /// The last position given in each stream.
    pub heads: HashMap<StreamId, u64>,
    /// Every entry sealed, in order.
    pub log: Vec<Sequenced>,
}

/// The sequencer's one epoch.
pub const EPOCH: u64 = 1_700_000_000_000;

impl Sequencer {
    /// Number what `origin` handed out and deliver it to every hub, the origin included.
    pub fn run(&mut self, origin: usize, hubs: &mut [&mut Harness]) {
        let entries = hubs[origin].unsequenced();
        for entry in entries {
            let mut sealed = self.seal(&entry);
            // Like a Redis PUBLISH that no node received: no hub serves the user.
            if let StreamId::User(user) = &sealed.entry.stream {
                sealed.entry.undelivered = !hubs.iter().any(|h| h.hub().is_user_connected(user));
            }
            for (i, hub) in hubs.iter_mut().enumerate() {
                let mut copy = sealed.clone();
                // Connection ids name connections of the origin only.
                if i != origin {
                    copy.entry.except.clear();
                }
                hub.cluster(ClusterInput::Sequenced(&copy));
            }
        }
    }

    /// Answer every room `hub` started following, as a bridge does once it listens to the
    /// room: the entries after the joining member's position from the shared history, newest
    /// first, then the room's head.
    pub fn follow(&self, hub: &mut Harness) {
        for (room, since) in hub.follows() {
            let stream = StreamId::Room(room);
            if let Some(since) = since {
                let missed = self
                    .log
                    .iter()
                    .rev()
                    .filter(|s| s.entry.stream == stream && s.position.seq > since.seq);
                for sealed in missed {
                    hub.cluster(ClusterInput::History(sealed));
                }
            }
            // Like the Redis script: a stream without entries is at 0 of its epoch.
            let seq = self.heads.get(&stream).copied().unwrap_or(0);
            let head = Some(Position { epoch: EPOCH, seq });
            hub.cluster(ClusterInput::StreamHead {
                stream: &stream,
                head,
            });
        }
    }

    /// `conn` joins `room`, answered once the room's head is given.
    pub fn join(&self, hub: &mut Harness, conn: ConnId, room: &str, since: Option<Position>) {
        send_join(hub, conn, room, since);
        self.follow(hub);
        assert!(
            hub.frames_of(conn, "joined")
                .iter()
                .any(|f| f["room"] == room),
            "{conn} did not join {room}: {:?}",
            hub.frames(conn)
        );
    }

    /// Give `entry` its stream's next position and keep it in the log.
    pub fn seal(&mut self, entry: &Unsequenced) -> Sequenced {
        let head = self.heads.entry(entry.entry.stream.clone()).or_default();
        *head += 1;
        let sealed = entry.seal(Position {
            epoch: EPOCH,
            seq: *head,
        });
        self.log.push(sealed.clone());
        sealed
    }
}

/// `conn` sends a `join` frame for `room`, with `since` if given.
pub fn send_join(hub: &mut Harness, conn: ConnId, room: &str, since: Option<Position>) {
    let mut frame = json!({"type": "join", "room": room});
    if let Some(p) = since {
        frame["since"] = json!({"epoch": p.epoch, "seq": p.seq});
    }
    hub.send(conn, &frame.to_string());
}
