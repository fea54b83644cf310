//! The connection front's families (`switchboard_http_*`, accept errors, the open-file
//! limits), from the listener's [`AdmissionStats`].

use super::families::Families;
use crate::admission::{AdmissionStats, Refusal};
use prometheus_client::metrics::MetricType;
use std::fmt;

/// The connection front: sockets held, refusals at accept, deadlines hit, accept failures and
/// the open-file limits.
pub(super) fn render_front(f: &mut Families, front: &AdmissionStats) -> fmt::Result {
    f.gauge(
        "http_connections",
        "Client sockets held (HTTP connections and WebSockets).",
        front.connections,
    )?;
    f.gauge(
        "http_handshakes",
        "Client sockets that have not sent a complete first request head.",
        front.handshakes,
    )?;
    f.labelled(
        "http_refused",
        "Sockets closed at accept, by the budget that was spent: descriptors, per_ip.",
        MetricType::Counter,
        Refusal::ALL
            .iter()
            .zip(front.refused)
            .map(|(refusal, n)| ([("reason", refusal.label())], n)),
    )?;
    f.counter(
        "http_handshakes_evicted",
        "Connections closed in their handshake to make room for a new one, the oldest first.",
        front.evicted,
    )?;
    f.labelled(
        "http_timeouts",
        "Connections closed for taking too long: no complete first request head in time (handshake), no request for the idle timeout (idle).",
        MetricType::Counter,
        [
            ([("stage", "handshake")], front.handshake_timeouts),
            ([("stage", "idle")], front.idle_timeouts),
        ],
    )?;
    f.counter(
        "accept_errors",
        "Failed accepts (out of file descriptors, usually); accepting pauses after each.",
        front.accept_errors,
    )?;
    f.labelled(
        "open_files_limit",
        "The process's open-file limit (RLIMIT_NOFILE), soft and hard.",
        MetricType::Gauge,
        [
            ("soft", front.open_files_soft),
            ("hard", front.open_files_hard),
        ]
        .into_iter()
        .filter_map(|(kind, limit)| Some(([("kind", kind)], limit?))),
    )
}
