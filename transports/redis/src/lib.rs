//! # switchboard-redis
//!
//! Joins several switchboard nodes into one cluster over Redis. Each node runs its own hubs
//! (a [`switchboard_transport::Handle`] built with a cluster sink) and one [`Bridge`], which:
//!
//! - **routes by interest**: it subscribes to a room's channel (`sb:room:<room>`) while some
//!   local connection is a member, to a user's channel (`sb:user:<user>`) while the user has a
//!   local connection, and always to `sb:all` and `sb:control`. Every publish other nodes may
//!   need ([`ClusterEvent::Publish`](switchboard_transport::ClusterEvent::Publish)) goes out once, serialized
//!   once, on its target's channel (a thread's on its user's channel); a node without interest
//!   receives nothing. Envelopes carry the origin node, so a node ignores its own echoes;
//! - keeps **presence** in Redis: user → node → connections and room → node → members, under
//!   a per-node lease (`sb:node:<id>`, with a TTL) that the node's heartbeat refreshes. Readers
//!   count only nodes whose lease is alive, so a crashed node's entries stop counting when its
//!   lease expires;
//! - announces **room presence** once for the cluster: a user's arrival in a room (its first
//!   connection on any node) and its departure (its last), counted per node in Redis and
//!   published by the same script on the room's channel; the users of a dead node leave when a
//!   live node sweeps it (`members.rs`);
//! - enforces the **per-user connection limit across nodes** with an atomic check-and-add
//!   script: [`Bridge::admit`], asked before a connection opens, counts it or refuses it, so
//!   that the application refuses it before its `welcome` with 4003, exactly as one hub
//!   refuses a connection over its own limit. A connection opened without admission is counted
//!   when it opens, and closed with 4003 (after its `welcome`) if it is over the limit;
//! - numbers user and room streams in Redis (**shared streams**, with `Config::shared_streams`):
//!   one script numbers each entry, publishes it and keeps it in the stream's shared history,
//!   bounded as a hub bounds its own ([`BridgeOptions::history`]). A node that starts serving a
//!   stream reads where it stands and what a reader missed (at most what the node keeps) in a
//!   task of its own, and holds only that stream's live entries until the read was fed, so a
//!   large read delays no other stream;
//! - **disconnects a user everywhere** through the control channel, and joins every
//!   connection of a user to a room (or takes them out) everywhere the same way
//!   ([`Bridge::add_user_to_room`], [`Bridge::remove_user_from_room`]);
//! - carries a client's **cancel** for a run produced on another node to that node, whose
//!   application hands it to the run's producer, and brings the answer back (`unknown_run`
//!   when no node has the user's run; `backend_unavailable` past
//!   [`BridgeOptions::cancel_timeout`]): see `Handle::answer_cancel` and the crate's
//!   `cancels.rs`;
//! - answers **cluster-wide questions** from the presence hashes and each node's load
//!   (`<prefix>:load`, written at each heartbeat), one round trip each
//!   ([`Bridge::user_connections_by_node`], [`Bridge::room_members_by_node`],
//!   [`Bridge::node_loads`]);
//! - keeps the server's **revocations and one-time tickets** for every node
//!   ([`Bridge::revoke_user`], [`Bridge::revoke_token`], [`Bridge::revocations`],
//!   [`Bridge::put_ticket`], [`Bridge::take_ticket`]), each key expiring with what it holds;
//! - survives **Redis outages**: local delivery never waits for Redis; publishes that fail are
//!   counted and logged; the connections are re-established with capped exponential backoff,
//!   and every channel of current interest is subscribed again.
//!
//! What the hubs emit for other nodes (publishes, stream entries, interest, connections
//! opening and closing) reaches the bridge straight from the shards, through the cluster sink
//! registered on the node's builder; the application's own
//! [`Events`](switchboard_transport::Events) carry none of it, so nothing the application
//! does or forgets with them affects the cluster:
//!
//! ```no_run
//! # async fn run() -> Result<(), redis::RedisError> {
//! use switchboard::Config;
//! use switchboard_redis::{Bridge, BridgeOptions};
//! use switchboard_tokio::{cluster_channel, Builder};
//!
//! let (sink, cluster) = cluster_channel();
//! let (handle, mut events) = Builder::new(Config::production()).cluster(sink).start();
//! let options = BridgeOptions::new("redis://127.0.0.1/");
//! let bridge = Bridge::start(handle.clone(), cluster, options).await?;
//! tokio::spawn(async move {
//!     while let Some(event) = events.recv().await {
//!         // ... the application's own handling of notices
//!     }
//! });
//! # Ok(())
//! # }
//! ```
//!
//! The bridge's tasks run on tokio (the redis crate's runtime), whatever runtime the handle
//! uses.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admission;
mod bridge;
mod cancels;
mod counters;
mod follows;
mod history;
mod identity;
mod keys;
mod link;
mod load;
mod members;
mod options;
mod scripts;
mod sealed;
mod shared;
mod subscriber;
mod wire;
mod worker;

pub use admission::Admission;
pub use bridge::Bridge;
pub use cancels::{MAX_CANCELS_ASKED, MAX_CANCELS_JUDGED};
pub use counters::BridgeStats;
pub use identity::Revoked;
pub use keys::{Keys, MAX_PREFIX_LEN};
pub use load::NodeLoad;
pub use options::{BadOptions, BridgeOptions, Timing};
