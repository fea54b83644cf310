//! The node's budgets, fixed at start ([`Budgets`]), and their families: what the hub's
//! gauges are measured against (`switchboard_*_max*`).

use super::families::Families;
use serde::{Deserialize, Serialize};
use std::fmt;
use switchboard::Config;

/// The node's budgets, fixed at start: what its gauges are measured against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budgets {
    /// Open connections the node takes (`limits.max_connections` per shard, times the shards).
    pub max_connections: usize,
    /// Bytes all histories of the node keep together (`history.max_total_bytes`).
    pub history_bytes: usize,
    /// Bytes queued for one connection before it is closed with 4008
    /// (`backpressure.queue_bytes`).
    pub queue_bytes: usize,
    /// Bytes written to one connection and not yet flushed (`backpressure.inflight_bytes`).
    pub inflight_bytes: usize,
}

impl Budgets {
    /// The budgets of hubs configured with `config`, `shards` of them.
    pub fn of(config: &Config, shards: usize) -> Self {
        Budgets {
            max_connections: config.limits.max_connections.saturating_mul(shards),
            history_bytes: config.history.max_total_bytes,
            queue_bytes: config.backpressure.queue_bytes,
            inflight_bytes: config.backpressure.inflight_bytes,
        }
    }
}

/// The budgets the hub's gauges are measured against.
pub(super) fn render_budgets(f: &mut Families, budgets: &Budgets) -> fmt::Result {
    f.gauge(
        "connections_max",
        "Open connections the node takes (limits.max_connections per shard, times the shards).",
        budgets.max_connections,
    )?;
    f.gauge(
        "history_max_bytes",
        "Bytes all stream histories of the node keep together (history.max_total_bytes).",
        budgets.history_bytes,
    )?;
    f.gauge(
        "queue_max_bytes",
        "Bytes queued for one connection before it is closed with 4008 (backpressure.queue_bytes).",
        budgets.queue_bytes,
    )?;
    f.gauge(
        "inflight_max_bytes",
        "Bytes written to one connection and not yet flushed, at most (backpressure.inflight_bytes).",
        budgets.inflight_bytes,
    )
}
