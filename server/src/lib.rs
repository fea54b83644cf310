//! The deployable Switchboard server: one port with the client WebSocket endpoint (`/ws`),
//! the backend HTTP API (`/api`), the operations routes (`/healthz`, `/readyz`, `/metrics`)
//! and the operations dashboard (`/dashboard`), over the tokio transport.
//!
//! [`start`] binds and runs a server (tests use it on an ephemeral port); the `switchboard`
//! binary adds the command line, logging and signal handling around it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
pub mod api;
pub mod auth;
pub mod credentials;
pub mod dashboard;
pub mod demo;
pub mod gateway;
pub mod lifecycle;
mod listener;
pub mod logging;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod process;
pub mod producer;
pub mod refresh;
pub mod settings;
pub mod state;
pub mod webhook;

use admission::{Admission, OpenFiles};
use axum::routing::{get, post};
use axum::Router;
use lifecycle::Lifecycle;
use settings::{HttpLimits, Settings};
use state::AppState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use switchboard::{Reason, UserLimitPolicy};
use switchboard_redis::{Bridge, BridgeOptions};
use switchboard_tokio::{cluster_channel, Builder, ClusterEvents, Handle, SseConnections, Tokio};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The routes of a server around `state`; the API's bodies are bounded by `max_body_bytes`
/// and `limits`' timeouts.
pub fn router(state: Arc<AppState>, limits: &HttpLimits, max_body_bytes: usize) -> Router {
    let sse = Router::new()
        .route("/sse", get(gateway::sse::connect))
        .route("/sse/{conn}", post(gateway::sse::post))
        .layer(state.origins.cors());
    Router::new()
        .route("/ws", get(gateway::connect))
        .merge(sse)
        .nest("/api", api::routes(state.clone(), limits, max_body_bytes))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .with_state(state)
}

/// A server that is running.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The switchboard behind it.
    pub handle: Handle,
    /// The link to the other nodes, when `[redis] url` is set.
    pub bridge: Option<Bridge<Tokio>>,
    state: Arc<AppState>,
    drain: Duration,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Begin shutting down without closing anything yet: `/readyz` answers 503, new clients
    /// are refused (1001, or 1012 on a node of a cluster), and the API answers writes with 503
    /// `shutting_down`, except, on a node with shared streams, the stream entries the
    /// cluster's history keeps. Connected clients are still served. [`Running::shutdown`]
    /// does this first by itself.
    pub async fn drain(&self) {
        self.state.lifecycle.drain().await;
    }

    /// Shut down gracefully: drain (as [`Running::drain`]) for `shutdown_drain_secs`, take no
    /// more writes (waiting for those in progress), close every client after flushing what
    /// was queued for it (waiting at most the configured grace), then stop serving HTTP.
    ///
    /// A single node closes its clients with 1001 (going away). A node of a cluster first
    /// leaves the cluster, its bridge carrying out every cluster event the accepted writes
    /// caused and withdrawing its presence, then closes its clients with 1012 (service
    /// restart): they reconnect to another node.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let lifecycle = &self.state.lifecycle;
        lifecycle.drain().await;
        tokio::time::sleep(self.drain).await;
        lifecycle.close().await;
        let reason = match &self.bridge {
            Some(bridge) => {
                bridge.stop().await;
                Reason::ServiceRestart
            }
            None => Reason::Shutdown,
        };
        self.handle.shutdown_with(reason).await;
        let _ = self.stop.send(());
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Raise the open-file limit (soft to hard), bind `settings.listen` and start serving.
pub async fn start(settings: Settings) -> std::io::Result<Running> {
    let listener = TcpListener::bind(settings.listen).await?;
    start_on(listener, settings).await
}

/// [`start`] on a listener the caller bound (`settings.listen` is not used), e.g. one whose
/// socket options (buffer sizes) its accepted connections are to inherit.
pub async fn start_on(listener: TcpListener, mut settings: Settings) -> std::io::Result<Running> {
    // A new epoch base per start: a client holding a position from before a restart learns
    // that the history it refers to is gone.
    settings.hub.epoch_base = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64);
    let admission = Arc::new(Admission::new(&settings.http, OpenFiles::raise())?);
    let addr = listener.local_addr()?;
    let mut builder = Builder::new(settings.hub.clone()).shutdown_grace(settings.shutdown_grace);
    if settings.shards > 0 {
        builder = builder.shards(settings.shards);
    }
    // With Redis, what the hubs emit for other nodes goes from the shards to the bridge.
    let mut cluster = None;
    if settings.redis_url.is_some() {
        let (sink, events) = cluster_channel();
        builder = builder.cluster(sink);
        cluster = Some(events);
    }
    let (handle, events) = builder.start();
    let bridge = match (&settings.redis_url, cluster) {
        (Some(url), Some(cluster)) => {
            Some(join_cluster(&handle, cluster, url.expose(), &settings).await?)
        }
        _ => None,
    };
    let shared_history = bridge.is_some() && settings.hub.shared_streams;
    for warning in settings.auth.warnings(settings.env) {
        tracing::warn!("{warning}");
    }
    let auth = auth::Authenticator::start(&settings.auth, bridge.clone()).await;
    let webhook = match settings.webhook.clone() {
        Some(config) => {
            let node = bridge
                .as_ref()
                .map_or_else(random_node_id, |b| b.node().to_owned());
            Some(webhook::Webhook::new(config, handle.clone(), node)?)
        }
        None => None,
    };
    let webhook_metrics = webhook.as_ref().map(webhook::Webhook::metrics);
    let producers = Arc::new(producer::registry::Producers::default());
    refresh::serve(
        events,
        handle.clone(),
        auth.clone(),
        webhook,
        producers.clone(),
    );
    let state = Arc::new(AppState {
        handle: handle.clone(),
        auth: auth.clone(),
        origins: settings.auth.allowed_origins.clone(),
        api_key: settings.api_key.clone(),
        started: Instant::now(),
        bridge: bridge.clone(),
        shared_streams: settings.hub.shared_streams,
        lifecycle: Lifecycle::new(shared_history),
        admission: admission.clone(),
        budgets: metrics::Budgets::of(&settings.hub, handle.shards()),
        sse: SseConnections::new(),
        webhook: webhook_metrics,
        producers,
        producer: settings.producer,
        max_body_bytes: settings.max_body_bytes,
        max_publish_batch: settings.max_publish_batch,
    });
    let cluster = bridge
        .clone()
        .zip(settings.redis_url.as_ref())
        .map(|(bridge, url)| dashboard::ClusterLink {
            bridge,
            url: url.expose().to_owned(),
            prefix: settings.redis.prefix.clone(),
            timeout: settings.redis.timeout,
        });
    let app = logging::http(
        router(state.clone(), &settings.http, settings.max_body_bytes)
            .merge(demo::routes(&settings, &handle, auth))
            .merge(dashboard::routes(
                &settings.dashboard,
                state.clone(),
                cluster,
            )),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(listener::serve(
        listener,
        app,
        admission.clone(),
        settings.http.clone(),
        stopped,
        settings.shutdown_grace,
    ));
    let limits = admission.stats();
    tracing::info!(
        %addr,
        env = ?settings.env,
        workers = tokio::runtime::Handle::current().metrics().num_workers(),
        shards = handle.shards(),
        open_files_soft = ?limits.open_files_soft,
        open_files_hard = ?limits.open_files_hard,
        max_handshakes = admission.max_handshakes(),
        "switchboard listening"
    );
    Ok(Running {
        addr,
        handle,
        bridge,
        state,
        drain: settings.shutdown_drain,
        stop,
        task,
    })
}

/// A node id for the webhook's event ids when the node is not part of a cluster (which names
/// its nodes): random, so that ids stay unique across restarts.
fn random_node_id() -> String {
    format!("node-{:016x}", getrandom::u64().unwrap_or_default())
}

/// Join the cluster of the Redis at `url`. The per-user connection limit holds across the
/// cluster when the policy rejects new connections (with `evict_oldest`, each node evicts
/// among its own connections).
async fn join_cluster(
    handle: &Handle,
    cluster: ClusterEvents,
    url: &str,
    settings: &Settings,
) -> std::io::Result<Bridge<Tokio>> {
    let mut options = BridgeOptions::new(url);
    let limits = &settings.hub.limits;
    if limits.user_limit_policy == UserLimitPolicy::RejectNew {
        options.max_connections_per_user = Some(limits.max_connections_per_user);
    }
    // The shared history keeps what each hub keeps (entries, bytes, age), and a node loads no
    // more than that.
    options.history = settings.hub.history.clone();
    settings.redis.apply(&mut options);
    Bridge::start(handle.clone(), cluster, options)
        .await
        .map_err(|e| std::io::Error::other(format!("could not join the cluster over redis: {e}")))
}
