//! What every request handler shares: the switchboard handle, the authenticator, the API key,
//! the server's phase and its connection budgets.

use crate::admission::Admission;
use crate::auth::Authenticator;
use crate::credentials::Secret;
use crate::gateway::origin::AllowedOrigins;
use crate::lifecycle::Lifecycle;
use crate::metrics::Budgets;
use crate::producer::registry::Producers;
use crate::settings::ProducerLimits;
use crate::webhook::metrics::WebhookMetrics;
use std::sync::Arc;
use std::time::Instant;
use switchboard_redis::Bridge;
use switchboard_tokio::{Handle, SseConnections, Tokio};

/// Shared by the WebSocket endpoint, the API and the operations routes.
#[derive(Debug)]
pub struct AppState {
    /// The running switchboard.
    pub handle: Handle,
    /// Checks client credentials; keeps revocations and tickets.
    pub auth: Arc<Authenticator>,
    /// The browser origins a WebSocket may come from.
    pub origins: AllowedOrigins,
    /// The backend API key.
    pub api_key: Secret,
    /// When the server started, for the uptime metric.
    pub started: Instant,
    /// The link to the other nodes, when the server is part of a cluster.
    pub bridge: Option<Bridge<Tokio>>,
    /// Whether the cluster's streams are numbered in Redis (`Config::shared_streams`).
    pub shared_streams: bool,
    /// Serving, draining or closed: what the API and the WebSocket endpoint still take.
    pub lifecycle: Lifecycle,
    /// The connection front's budgets and counters, for `/metrics`.
    pub admission: Arc<Admission>,
    /// The node's budgets, for `/metrics` and the dashboard.
    pub budgets: Budgets,
    /// The Server-Sent Events connections open on this node, where `POST /sse/{conn}` finds
    /// them.
    pub sse: SseConnections,
    /// The webhook's counters, for `/metrics`, when `[webhook] url` is set.
    pub webhook: Option<WebhookMetrics>,
    /// The runs this node's producer channels own, and where their cancels go.
    pub producers: Arc<Producers>,
    /// The producer channel's bounds and timings (`[producer]`).
    pub producer: ProducerLimits,
    /// The largest API body, and producer channel frame, in bytes.
    pub max_body_bytes: usize,
    /// The most messages of one `POST /api/publish/batch`.
    pub max_publish_batch: usize,
}
