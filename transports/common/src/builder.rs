//! [`Builder`]: starts a switchboard — one task per shard, each owning a hub configured from
//! the application's [`Config`] — and hands back the [`Handle`] and the [`Events`]; with
//! [`Builder::cluster`], what the hubs emit for other nodes goes to a cluster sink.

use crate::cluster::ClusterSink;
use crate::events::Events;
use crate::handle::Handle;
use crate::options::Options;
use crate::presence::NodeRoster;
use crate::runtime::Runtime;
use crate::seat::Seat;
use crate::server::write_buffer_limit;
use crate::shard::{self, Relays, Shard};
use crate::shards::{Shards, MAX_SHARDS};
use crate::tasks::Tasks;
use futures_channel::oneshot;
use futures_util::lock::Mutex as AsyncMutex;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard::{Config, Hub};

/// Starts a switchboard on the runtime `R`: the hub configuration plus the transport
/// [`Options`]. Each transport names it for its runtime (`switchboard_tokio::Builder`).
///
/// ```no_run
/// # fn run<R: switchboard_transport::Runtime + Default>() {
/// use switchboard::Config;
/// use switchboard_transport::Builder;
///
/// let (handle, events) = Builder::<R>::new(Config::production()).shards(4).start();
/// # drop((handle, events));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Builder<R> {
    runtime: R,
    config: Config,
    options: Options,
    cluster: Option<ClusterSink>,
}

impl<R: Runtime + Default> Builder<R> {
    /// A builder with `config` for every hub, default [`Options`] and the default runtime.
    pub fn new(config: Config) -> Self {
        Self::on(R::default(), config)
    }
}

impl<R: Runtime> Builder<R> {
    /// A builder on `runtime` with `config` for every hub and default [`Options`].
    pub fn on(runtime: R, config: Config) -> Self {
        Self {
            runtime,
            config,
            options: Options::default(),
            cluster: None,
        }
    }

    /// Make this node part of a cluster: every hub runs with `Config::cluster` set, and what
    /// the hubs emit for other nodes — envelopes, stream entries for the sequencer (with
    /// `Config::shared_streams`), interest, follows, connections opening and closing — goes
    /// from the shards straight to `sink`, whose [`ClusterEvents`](crate::ClusterEvents) the
    /// bridge to the other nodes reads (see [`cluster_channel`](crate::cluster_channel)). None
    /// of it goes through the application's [`Events`].
    pub fn cluster(mut self, sink: ClusterSink) -> Self {
        self.cluster = Some(sink);
        self
    }

    /// Replace all transport options.
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// The number of shards (1 to 256).
    pub fn shards(mut self, shards: usize) -> Self {
        self.options.shards = shards.max(1);
        self
    }

    /// See [`Options::close_timeout`].
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.options.close_timeout = timeout;
        self
    }

    /// See [`Options::write_timeout`].
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.options.write_timeout = timeout;
        self
    }

    /// See [`Options::shutdown_grace`].
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.options.shutdown_grace = grace;
        self
    }

    /// See [`Options::handshake_timeout`].
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.options.handshake_timeout = timeout;
        self
    }

    /// Spawn one task per shard, each owning a `Hub::new(config)`, and return the handle and
    /// the application's event inbox. Must be called where the runtime can spawn (within a
    /// tokio runtime, for tokio).
    ///
    /// Every hub gets the same `Config`: its limits, `max_connections` included, apply per
    /// shard, except the history budget (`history.max_total_bytes`), which bounds the process:
    /// each of N shards keeps 1/N of it. Each hub's `shard` is set to its index (so connection
    /// ids name their shard), and with several shards each hub is part of a cluster so that
    /// clients' room publishes reach every shard; what the hubs emit for other nodes leaves
    /// the process only through the sink of [`Builder::cluster`].
    pub fn start(self) -> (Handle<R>, Events) {
        let Builder {
            runtime,
            config,
            mut options,
            cluster,
        } = self;
        if cluster.is_none() && (config.cluster || config.shared_streams) {
            tracing::warn!(
                "Config::cluster or shared_streams without Builder::cluster: nothing reaches other nodes, and shared stream entries reach no one"
            );
        }
        options.shards = options.shards.clamp(1, MAX_SHARDS);
        options.inbox_capacity = options.inbox_capacity.max(1);
        let (events, inbox) = async_channel::unbounded();
        let (inbound_tx, inbound_rx): (Vec<_>, Vec<_>) = (0..options.shards)
            .map(|_| async_channel::unbounded())
            .unzip();
        let roster = NodeRoster::default();
        let mut inboxes = Vec::with_capacity(options.shards);
        let mut stopped = Vec::with_capacity(options.shards);
        let mut seats = Vec::with_capacity(options.shards);
        for (index, inbound) in inbound_rx.into_iter().enumerate() {
            let (tx, rx) = async_channel::bounded(options.inbox_capacity);
            let mut hub_config = config.clone();
            hub_config.shard = u8::try_from(index).expect("at most MAX_SHARDS shards");
            // The history budget is the process's: each shard keeps its share.
            hub_config.history.max_total_bytes = config.history.max_total_bytes / options.shards;
            // Several shards relay client publishes to each other as envelopes.
            hub_config.cluster = config.cluster || cluster.is_some() || options.shards > 1;
            let siblings = inbound_tx
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != index)
                .map(|(_, tx)| tx.clone())
                .collect();
            let hub = Hub::new(hub_config);
            let relays = Relays {
                siblings,
                own: inbound_tx[index].clone(),
                roster: roster.clone(),
            };
            let shard = Shard::new(index, hub, events.clone(), cluster.clone(), relays);
            let (seat, rung) = Seat::new(shard);
            seats.push(seat.clone());
            let (done, finished) = oneshot::channel::<()>();
            let task = shard::run(runtime.clone(), seat, rung, rx, inbound);
            runtime.spawn(async move {
                task.await;
                drop(done);
            });
            stopped.push(finished);
            inboxes.push(tx);
        }
        let shards = Shards {
            runtime,
            inboxes,
            seats,
            inbound: inbound_tx,
            options,
            message_limit: config.limits.max_frame_bytes.saturating_mul(2),
            write_buffer_limit: write_buffer_limit(&config.backpressure),
            connections: Tasks::new(),
            stopped: Mutex::new(stopped),
            stopping: async_channel::bounded(1),
            shutdown: AsyncMutex::new(()),
            cluster,
        };
        (Handle::new(Arc::new(shards)), Events::new(inbox))
    }
}
