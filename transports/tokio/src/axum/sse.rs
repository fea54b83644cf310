//! Server-Sent Events in an axum application: [`sse`] answers the `GET` with the connection's
//! `text/event-stream` ([`sse_refuse`] refuses it with a close code), [`sse_post`] delivers a `POST`'s client frames to it, and
//! [`last_event_position`] reads the position a reconnecting `EventSource` resumes from.
//!
//! ```no_run
//! use axum::body::Body;
//! use axum::extract::{Path, State};
//! use axum::http::HeaderMap;
//! use axum::response::Response;
//! use axum::routing::{get, post};
//! use switchboard::Open;
//! use switchboard_tokio::axum::{last_event_position, sse, sse_post};
//! use switchboard_tokio::{Handle, SseConnections};
//!
//! async fn events(State((hub, open_sse)): State<(Handle, SseConnections)>, headers: HeaderMap) -> Response {
//!     let mut open = Open::new("alice"); // from your session or token
//!     open.resume = last_event_position(&headers).ok().flatten();
//!     sse(&hub, &open_sse, open)
//! }
//!
//! async fn frames(
//!     State((hub, open_sse)): State<(Handle, SseConnections)>,
//!     Path(conn): Path<String>,
//!     body: Body,
//! ) -> Response {
//!     sse_post(&hub, &open_sse, "alice", &conn, body).await // the same user as the stream's
//! }
//!
//! # fn app(hub: Handle) -> axum::Router {
//! axum::Router::new()
//!     .route("/sse", get(events))
//!     .route("/sse/{conn}", post(frames))
//!     .with_state((hub, SseConnections::new()))
//! # }
//! ```

use crate::{EventStream, Handle, PostError, SseConnections};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use switchboard::{Open, OpenError, Position};
use tracing::{Instrument, Span};

/// The header that tells nginx (and proxies that follow it) not to buffer the response.
const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// The header a reconnecting `EventSource` sends with the last event id it received.
pub const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// Open a Server-Sent Events connection of `open.user` and answer with its event stream
/// (`text/event-stream`, `Cache-Control: no-cache`, `X-Accel-Buffering: no`); the connection
/// runs in a task of its own, in the handler's current `tracing` span, until the stream ends.
/// Every refusal the hub makes (per-user limit, shutdown) is the stream's only event, the
/// `close` event with the refusal's code, as the WebSocket transport's close frame.
pub fn sse(handle: &Handle, connections: &SseConnections, open: Open) -> Response {
    let (body, run) = handle.open_sse(connections, open);
    tokio::spawn(run.instrument(Span::current()));
    event_stream(body)
}

/// Answer with an event stream holding only the `close` event of `refused`, without opening a
/// connection: the client sees exactly what it sees when the hub refuses its open (e.g. 4003
/// for [`OpenError::UserLimit`]). For a refusal decided before the hub, such as a per-user
/// limit held across a cluster.
pub fn sse_refuse(refused: &OpenError) -> Response {
    event_stream(EventStream::refusal(refused))
}

/// `body` as a `text/event-stream` response that proxies neither cache nor buffer.
fn event_stream(body: EventStream) -> Response {
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (X_ACCEL_BUFFERING, HeaderValue::from_static("no")),
    ];
    (headers, Body::from_stream(body)).into_response()
}

/// The user-stream position of the request's `Last-Event-ID` (the event ids' form,
/// `<epoch>:<seq>`): `Ok(None)` without the header, `Err` with the text of one that is not a
/// position.
pub fn last_event_position(headers: &HeaderMap) -> Result<Option<Position>, String> {
    let Some(value) = headers.get(LAST_EVENT_ID) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| format!("{value:?}"))?;
    switchboard_transport::position_from_event_id(text)
        .map(Some)
        .ok_or_else(|| text.to_owned())
}

/// Deliver the client frames a `POST` carries (one frame, or newline-delimited frames) to
/// connection `conn` of `user` (authenticate the request as you authenticated the stream's),
/// reading at most [`Handle::message_limit`] bytes of the body. Answers 202 with
/// `{"accepted":<frames>}`; 404 `not_found` for an unknown id, a closed connection or another
/// user's (the same answer); 413 `too_large` for a larger body (the connection is closed with
/// 1009, as a WebSocket frame over the limit) and 413 `too_many_frames` for more than
/// [`MAX_FRAMES_PER_POST`](crate::MAX_FRAMES_PER_POST) frames (nothing delivered, the
/// connection stays open). The hub's answers to the frames arrive on the event stream.
pub async fn sse_post(
    handle: &Handle,
    connections: &SseConnections,
    user: &str,
    conn: &str,
    body: Body,
) -> Response {
    let inbox = match connections.find(user, conn) {
        Ok(inbox) => inbox,
        Err(e) => return refused(e),
    };
    let body = match axum::body::to_bytes(body, handle.message_limit()).await {
        Ok(body) => body,
        Err(_) => {
            inbox.refuse_too_large().await;
            return refused(PostError::TooLarge);
        }
    };
    match inbox.deliver(body).await {
        Ok(count) => (
            StatusCode::ACCEPTED,
            json(format!("{{\"accepted\":{count}}}")),
        )
            .into_response(),
        Err(e) => refused(e),
    }
}

/// The answer to a refused `POST`: its status and `{"error":<code>,"message":<text>}`.
fn refused(e: PostError) -> Response {
    let (status, code) = match e {
        PostError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        PostError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        PostError::TooManyFrames => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_frames"),
    };
    let body = format!("{{\"error\":\"{code}\",\"message\":\"{e}\"}}");
    (status, json(body)).into_response()
}

fn json(body: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], body)
}
