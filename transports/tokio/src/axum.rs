//! Embedding in an axum application (feature `axum`).
//!
//! Authenticate in your own handler with whatever extractors you use, build the
//! [`Open`], and hand the upgrade to [`upgrade`]:
//!
//! ```no_run
//! use axum::extract::{RawQuery, State};
//! use axum::response::Response;
//! use axum::routing::get;
//! use switchboard::Open;
//! use switchboard_tokio::axum::{upgrade, WebSocketUpgrade};
//! use switchboard_tokio::{position_from_query, Handle};
//!
//! async fn ws(State(hub): State<Handle>, RawQuery(query): RawQuery, ws: WebSocketUpgrade) -> Response {
//!     let mut open = Open::new("alice"); // from your session or token
//!     open.resume = position_from_query(query.as_deref());
//!     upgrade(&hub, ws, open)
//! }
//!
//! # fn app(hub: Handle) -> axum::Router {
//! axum::Router::new().route("/ws", get(ws)).with_state(hub)
//! # }
//! ```
//!
//! To honour a client's `batch=1` (several frames per WebSocket message, see
//! [`Framing::from_query`]), hand the upgrade to [`upgrade_framed`] with its [`Framing`].
//!
//! To turn a client away with a close code after all (e.g. a limit your application keeps),
//! hand the upgrade to [`refuse`] instead: the client sees what it sees when the hub refuses.
//!
//! The same connections over Server-Sent Events: [`sse`], [`sse_post`] (module `sse`).

mod sse;
mod upgrade;

pub use sse::{last_event_position, sse, sse_post, sse_refuse, LAST_EVENT_ID};
pub use upgrade::WebSocketUpgrade;

use crate::{Framing, Handle};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use switchboard::{Open, OpenError};
use tracing::{Instrument, Span};

/// Upgrade the request and run the WebSocket as a connection of `open.user` on its shard.
/// Messages are read up to twice the hub's `max_frame_bytes` (the hub closes those over its
/// limit with 1009; larger ones are cut off by the WebSocket layer), and at most
/// [`Handle::write_buffer_limit`] is held unwritten (a peer that does not read its pongs is
/// closed as a slow consumer, see [`write_buffer_limit`](switchboard_transport::write_buffer_limit)).
/// While the switchboard shuts down the request is answered with 503 and not upgraded. The
/// connection runs in the handler's current `tracing` span (see [`Handle::run_socket`]).
/// One frame per WebSocket message ([`Framing::Single`]).
pub fn upgrade(handle: &Handle, ws: WebSocketUpgrade, open: Open) -> Response {
    upgrade_framed(handle, ws, open, Framing::Single)
}

/// [`upgrade`], with the connection's frames put in WebSocket messages as `framing` says
/// ([`Framing::Batched`] for a client that asked for it, see [`Handle::run_socket_framed`]).
pub fn upgrade_framed(
    handle: &Handle,
    ws: WebSocketUpgrade,
    open: Open,
    framing: Framing,
) -> Response {
    if handle.is_shutting_down() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let handle = handle.clone();
    let span = Span::current();
    ws.on_upgrade(handle.websocket_config(), move |socket| {
        async move {
            handle.run_socket_framed(open, socket, framing).await;
        }
        .instrument(span)
    })
}

/// Upgrade the request and close the WebSocket at once with `refused`'s close code and reason,
/// without opening a connection: the client sees exactly what it sees when the hub refuses its
/// open (no `welcome`, then the close frame, e.g. 4003 for [`OpenError::UserLimit`]). For a
/// refusal decided before the hub, such as a per-user limit held across a cluster. While the
/// switchboard shuts down the request is answered with 503 and not upgraded.
pub fn refuse(handle: &Handle, ws: WebSocketUpgrade, refused: OpenError) -> Response {
    if handle.is_shutting_down() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let handle = handle.clone();
    let span = Span::current();
    ws.on_upgrade(handle.websocket_config(), move |socket| {
        async move {
            handle.refuse_socket(socket, refused).await;
        }
        .instrument(span)
    })
}
