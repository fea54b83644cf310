//! [`Options`]: the tuning of the transport itself (the hubs' own limits are in
//! [`switchboard::Config`]).

use std::num::NonZeroUsize;
use std::time::Duration;

/// Tuning of the transport itself (the hub's own limits are in [`Config`](switchboard::Config)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Number of hubs, each owned by one task, 1 to 256. Default: [`default_shards`] of the
    /// available parallelism (one hub per two cores).
    pub shards: usize,
    /// How long a connection the hub closed may take to write what it was handed and its
    /// close frame, and then to receive the peer's close frame, reading at most
    /// [`FRAMES_READ_AFTER_CLOSE`](crate::FRAMES_READ_AFTER_CLOSE) frames meanwhile.
    /// Default 5 s.
    pub close_timeout: Duration,
    /// How long the socket may take to accept one batch of writes (at most the hub's in-flight
    /// budget, or one larger frame): a peer that reads nothing meanwhile, even one that keeps
    /// its connection alive with pings, is closed as a slow consumer (4008), with the close
    /// frame if the socket takes it within `close_timeout`, else by dropping the socket.
    /// Default 30 s.
    pub write_timeout: Duration,
    /// How long [`Handle::shutdown`](crate::Handle::shutdown) waits for connections to close
    /// before dropping them. Default 10 s.
    pub shutdown_grace: Duration,
    /// How long a client may take to complete the WebSocket handshake. Default 10 s.
    pub handshake_timeout: Duration,
    /// Capacity of each shard's inbox; senders (connection readers, the handle) wait when it
    /// is full. Default 4096.
    pub inbox_capacity: usize,
}

/// The hubs to run on `threads` threads unless told otherwise: one per two threads, at least
/// one.
///
/// A hub's own work is a small share of a delivery's cost; most of it is the writers' socket
/// writes, which run on every thread whatever the number of hubs. Every hub takes part in each
/// room publish (its seat, its drain, its writers' flush reports), and with fewer of them the
/// writers find more frames per wake-up: with one hub instead of two on two cores, a
/// 5 000-client burst was written in fewer, fuller writes with fewer context switches, at
/// 13–20 % less CPU per delivery for a 14–21 % longer p99, and a steady rate at the same CPU
/// with a shorter p99 (BENCHMARKS.md §3).
pub fn default_shards(threads: usize) -> usize {
    threads.div_ceil(2).max(1)
}

impl Default for Options {
    fn default() -> Self {
        Self {
            shards: default_shards(
                std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
            ),
            close_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            inbox_capacity: 4096,
        }
    }
}
