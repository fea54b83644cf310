//! The deployable Switchboard server: one port with the client WebSocket endpoint (`/ws`),
//! the backend HTTP API (`/api`), and the operations routes (`/healthz`, `/readyz`,
//! `/metrics`), over the tokio transport.
//!
//! [`start`] binds and runs a server (tests use it on an ephemeral port); the `switchboard`
//! binary adds the command line, logging and signal handling around it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod auth;
pub mod demo;
pub mod gateway;
pub mod metrics;
pub mod ops;
pub mod settings;
pub mod state;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as HttpBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use settings::Settings;
use state::AppState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use switchboard::{Reason, UserLimitPolicy};
use switchboard_redis::{Bridge, Options as RedisOptions};
use switchboard_tokio::{Builder, Event, Handle, Tokio};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The routes of a server around `state`.
pub fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/ws", get(gateway::connect))
        .nest(
            "/api",
            api::routes().layer(DefaultBodyLimit::max(max_body_bytes)),
        )
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
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Shut down gracefully: stop accepting, close every client after flushing what was queued
    /// for it (waiting at most the configured grace), then stop serving HTTP.
    ///
    /// A single node closes its clients with 1001 (going away). A node of a cluster first
    /// leaves it (withdrawing its presence), then closes its clients with 1012 (service
    /// restart): they reconnect to another node.
    pub async fn shutdown(self) -> std::io::Result<()> {
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

/// Bind `settings.listen` and start serving.
pub async fn start(mut settings: Settings) -> std::io::Result<Running> {
    // A new epoch base per start: a client holding a position from before a restart learns
    // that the history it refers to is gone.
    settings.hub.epoch_base = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64);
    let listener = TcpListener::bind(settings.listen).await?;
    let addr = listener.local_addr()?;
    // With Redis, the hubs emit what other nodes need (envelopes, interest).
    let mut builder = Builder::new(settings.hub.clone()).shutdown_grace(settings.shutdown_grace);
    if settings.shards > 0 {
        builder = builder.shards(settings.shards);
    }
    let (handle, mut events) = builder.start();
    let bridge = match &settings.redis_url {
        Some(url) => Some(join_cluster(&handle, url, &settings).await?),
        None => None,
    };
    let observer = bridge.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Some(bridge) = &observer {
                bridge.observe(&event);
            }
            log_event(&event);
        }
    });
    let state = Arc::new(AppState {
        handle: handle.clone(),
        keys: auth::TokenKeys::new(&settings.secret),
        api_key: settings.api_key.clone(),
        started: Instant::now(),
        bridge: bridge.clone(),
        shared_streams: settings.hub.shared_streams,
    });
    let app = router(state, settings.max_body_bytes).merge(demo::routes(&settings, &handle));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_http(listener, app, stopped, settings.shutdown_grace));
    tracing::info!(%addr, env = ?settings.env, "switchboard listening");
    Ok(Running {
        addr,
        handle,
        bridge,
        stop,
        task,
    })
}

/// Join the cluster of the Redis at `url`. The per-user connection limit holds across the
/// cluster when the policy rejects new connections (with `evict_oldest`, each node evicts
/// among its own connections).
async fn join_cluster(
    handle: &Handle,
    url: &str,
    settings: &Settings,
) -> std::io::Result<Bridge<Tokio>> {
    let mut options = RedisOptions::new(url);
    let limits = &settings.hub.limits;
    if limits.user_limit_policy == UserLimitPolicy::RejectNew {
        options.max_connections_per_user = Some(limits.max_connections_per_user);
    }
    // The shared history keeps what each hub keeps (entries, bytes, age), and a node loads no
    // more than that.
    options.history = settings.hub.history.clone();
    Bridge::start(handle.clone(), options)
        .await
        .map_err(|e| std::io::Error::other(format!("could not join the cluster over redis: {e}")))
}

/// A client that has not sent its whole request head (the WebSocket handshake included) by then
/// is disconnected, so half-open handshakes cannot pile up.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Accept HTTP/1 and HTTP/2 connections (with upgrades, for WebSockets) until `stopped`, then
/// let requests in flight finish for at most `grace`.
async fn serve_http(
    listener: TcpListener,
    app: Router,
    stopped: oneshot::Receiver<()>,
    grace: Duration,
) -> std::io::Result<()> {
    let mut http = HttpBuilder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, usually: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(app.clone());
                let connection = http
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            _ = &mut stopped => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP requests still in flight after the grace period");
    }
    Ok(())
}

fn log_event(event: &Event) {
    tracing::debug!(?event, "switchboard event");
}
