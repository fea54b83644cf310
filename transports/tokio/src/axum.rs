//! Embedding in an axum application (feature `axum`).
//!
//! Authenticate in your own handler with whatever extractors you use, build the
//! [`Open`], and hand the upgrade to [`upgrade`]:
//!
//! ```no_run
//! use axum::extract::{ws::WebSocketUpgrade, RawQuery, State};
//! use axum::response::Response;
//! use axum::routing::get;
//! use switchboard::Open;
//! use switchboard_tokio::{axum::upgrade, position_from_query, Handle};
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

use crate::driver::{Frame, SocketError};
use crate::handle::Handle;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{Sink, Stream};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use switchboard::Open;

/// Upgrade the request and run the WebSocket as a connection of `open.user` on its shard.
/// Messages are read up to twice the hub's `max_frame_bytes` (the hub closes those over its
/// limit with 1009; larger ones are cut off by the WebSocket layer). While the switchboard shuts down
/// the request is answered with 503 and not upgraded.
pub fn upgrade(handle: &Handle, ws: WebSocketUpgrade, open: Open) -> Response {
    if handle.is_shutting_down() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let handle = handle.clone();
    let limit = handle.message_limit();
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| async move { handle.run_socket(open, Axum(socket)).await })
}

/// An axum WebSocket as a [`Socket`](crate::Socket).
#[derive(Debug)]
pub struct Axum(pub WebSocket);

fn read_error(e: axum::Error) -> SocketError {
    let inner = e.into_inner();
    match inner.downcast::<tokio_tungstenite::tungstenite::Error>() {
        Ok(e) if matches!(*e, tokio_tungstenite::tungstenite::Error::Capacity(_)) => {
            SocketError::too_large(e)
        }
        Ok(e) => SocketError::new(e),
        Err(other) => SocketError::new(other),
    }
}

impl Stream for Axum {
    type Item = Result<Frame, SocketError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(message) = ready!(Pin::new(&mut self.0).poll_next(cx)) else {
            return Poll::Ready(None);
        };
        let frame = match message {
            Ok(Message::Text(text)) => Frame::Text(text.into()),
            Ok(Message::Binary(bytes)) => Frame::Binary(bytes),
            Ok(Message::Ping(payload)) => Frame::Ping(payload),
            Ok(Message::Pong(payload)) => Frame::Pong(payload),
            Ok(Message::Close(close)) => {
                Frame::Close(close.map(|c| (c.code, c.reason.as_str().to_owned())))
            }
            Err(e) => return Poll::Ready(Some(Err(read_error(e)))),
        };
        Poll::Ready(Some(Ok(frame)))
    }
}

impl Sink<Frame> for Axum {
    type Error = SocketError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SocketError>> {
        Pin::new(&mut self.0)
            .poll_ready(cx)
            .map_err(SocketError::new)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Frame) -> Result<(), SocketError> {
        let message = match item {
            // axum takes text as checked UTF-8; the hub's frames always are.
            Frame::Text(bytes) => {
                Message::Text(Utf8Bytes::try_from(bytes).map_err(SocketError::new)?)
            }
            Frame::Binary(bytes) => Message::Binary(bytes),
            Frame::Ping(payload) => Message::Ping(payload),
            Frame::Pong(payload) => Message::Pong(payload),
            Frame::Close(close) => Message::Close(close.map(|(code, reason)| CloseFrame {
                code,
                reason: reason.into(),
            })),
        };
        Pin::new(&mut self.0)
            .start_send(message)
            .map_err(SocketError::new)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SocketError>> {
        Pin::new(&mut self.0)
            .poll_flush(cx)
            .map_err(SocketError::new)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SocketError>> {
        Pin::new(&mut self.0)
            .poll_close(cx)
            .map_err(SocketError::new)
    }
}
