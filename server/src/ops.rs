//! Operations routes: `/healthz` (the process answers), `/readyz` (it accepts connections:
//! 503 once shutting down) and `/metrics` (Prometheus text: the hubs, the node's budgets, the
//! connection front, the process and, on a node of a cluster, the bridge).

use crate::metrics::{self, Scrape};
use crate::process::ProcessStats;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`.
pub async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    if !state.lifecycle.is_serving() || state.handle.is_shutting_down() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}

/// `GET /metrics`; 503 once the switchboard has stopped (the end of a shutdown), which has
/// no statistics left to report.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let Ok(stats) = state.handle.stats().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    };
    let scrape = Scrape {
        stats: stats.total,
        cluster: state.bridge.as_ref().map(|bridge| bridge.stats()),
        front: state.admission.stats(),
        budgets: state.budgets,
        uptime_secs: state.started.elapsed().as_secs_f64(),
        process: ProcessStats::sample(),
        webhook: state.webhook.clone(),
        sse_connections: state.sse.len(),
        log_lines_dropped: crate::logging::dropped_lines(),
    };
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        scrape.render(),
    )
        .into_response()
}
