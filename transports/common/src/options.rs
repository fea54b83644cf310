//! [`Options`]: the tuning of the transport itself (the hubs' own limits are in
//! [`switchboard::Config`]).

use std::num::NonZeroUsize;
use std::time::Duration;

/// Tuning of the transport itself (the hub's own limits are in [`Config`](switchboard::Config)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Number of hubs, each owned by one task, 1 to 256. Default: the available parallelism.
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

impl Default for Options {
    fn default() -> Self {
        Self {
            shards: std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
            close_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            inbox_capacity: 4096,
        }
    }
}
