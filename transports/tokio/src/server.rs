//! The standalone server: accept TCP, authenticate the WebSocket handshake with
//! tokio-tungstenite, and run each connection on its shard.

use crate::driver::{self, Frame, SocketError};
use crate::handle::Handle;
use futures_util::{Sink, Stream};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use switchboard::{Open, Position};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::{frame, CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

/// The HTTP request of a WebSocket handshake (method, URI with path and query, headers).
pub type Request = tungstenite::handshake::server::Request;

/// Decides who a connecting client is, from its handshake request.
///
/// Return the [`Open`] for the hub (user, thread, room access, metadata, resume position) to
/// accept, or a [`Refusal`] to answer with an HTTP status and no WebSocket. If the returned
/// `Open` has no `resume`, the `resume=<epoch>:<seq>` query parameter is used (see
/// [`position_from_query`]). Implemented for every `Fn(&Request) -> Result<Open, Refusal>`.
pub trait Authenticate: Send + Sync + 'static {
    /// Authenticate one handshake.
    fn authenticate(&self, request: &Request) -> Result<Open, Refusal>;
}

impl<F> Authenticate for F
where
    F: Fn(&Request) -> Result<Open, Refusal> + Send + Sync + 'static,
{
    fn authenticate(&self, request: &Request) -> Result<Open, Refusal> {
        self(request)
    }
}

/// A refused handshake: the HTTP status (and optional body) to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    status: StatusCode,
    body: Option<String>,
}

impl Refusal {
    /// Refuse with `status` (a client error is expected, e.g. 401, 403 or 429).
    pub fn new(status: StatusCode) -> Self {
        Self { status, body: None }
    }

    /// 401 Unauthorized: no or bad credentials.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED)
    }

    /// 403 Forbidden: valid credentials, no access.
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN)
    }

    /// Answer with this body text.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    fn into_response(self) -> ErrorResponse {
        let mut response = ErrorResponse::new(self.body);
        *response.status_mut() = self.status;
        response
    }
}

/// The `resume=<epoch>:<seq>` parameter of a query string (the client's position on its user
/// stream), if present and well formed.
pub fn position_from_query(query: Option<&str>) -> Option<Position> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "resume")
        .and_then(|(_, value)| {
            let (epoch, seq) = value.split_once(':')?;
            Some(Position {
                epoch: epoch.parse().ok()?,
                seq: seq.parse().ok()?,
            })
        })
}

impl Handle {
    /// Accept connections on `listener` until [`Handle::shutdown`] starts, each in its own
    /// task: handshake (with [`Options::handshake_timeout`](crate::Options::handshake_timeout)),
    /// authentication, then the connection on its user's shard.
    pub async fn serve(self, listener: TcpListener, auth: impl Authenticate) {
        let auth = Arc::new(auth);
        let mut stopping = self.stopping();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stopping.wait_for(|stop| *stop) => break,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    let (handle, auth) = (self.clone(), auth.clone());
                    let task = async move {
                        tracing::trace!(%peer, "accepted");
                        if let Some((open, ws)) = handle.handshake(tcp, &*auth).await {
                            driver::drive(handle, open, Tungstenite(ws)).await;
                        }
                    };
                    if self.spawn_tracked(task).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
        tracing::debug!("stopped accepting");
    }

    /// Perform the WebSocket handshake on `io` (a TCP or TLS stream you accepted), authenticate
    /// it and run the connection until it ends, tracked by [`Handle::shutdown`]. A refused
    /// handshake is answered with the refusal's status.
    pub async fn accept<IO>(&self, io: IO, auth: &impl Authenticate)
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        if let Some((open, ws)) = self.handshake(io, auth).await {
            self.run_socket(open, Tungstenite(ws)).await;
        }
    }

    /// The handshake and authentication; `None` if refused, failed or timed out.
    async fn handshake<IO>(
        &self,
        io: IO,
        auth: &impl Authenticate,
    ) -> Option<(Open, WebSocketStream<IO>)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let mut open = None;
        // The shape of the callback (and its large error) is tungstenite's `Callback`.
        #[allow(clippy::result_large_err)]
        let callback = |request: &Request, response: Response| match auth.authenticate(request) {
            Ok(mut accepted) => {
                if accepted.resume.is_none() {
                    accepted.resume = position_from_query(request.uri().query());
                }
                open = Some(accepted);
                Ok(response)
            }
            Err(refusal) => Err(refusal.into_response()),
        };
        let limit = Some(self.message_limit());
        let config = WebSocketConfig::default()
            .max_message_size(limit)
            .max_frame_size(limit);
        let handshake = tokio_tungstenite::accept_hdr_async_with_config(io, callback, Some(config));
        let result = tokio::time::timeout(self.options().handshake_timeout, handshake).await;
        match result {
            Ok(Ok(ws)) => open.map(|open| (open, ws)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "handshake refused or failed");
                None
            }
            Err(_) => {
                tracing::debug!("handshake timed out");
                None
            }
        }
    }
}

/// A tokio-tungstenite WebSocket as a [`Socket`](crate::Socket). Text frames are written as
/// raw frames, so the hub's `Bytes` go out without a copy or a second UTF-8 check.
#[derive(Debug)]
pub struct Tungstenite<S>(pub WebSocketStream<S>);

fn read_error(e: tungstenite::Error) -> SocketError {
    match e {
        e @ tungstenite::Error::Capacity(_) => SocketError::too_large(e),
        e => SocketError::new(e),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for Tungstenite<S> {
    type Item = Result<Frame, SocketError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let Some(message) = ready!(Pin::new(&mut self.0).poll_next(cx)) else {
                return Poll::Ready(None);
            };
            let frame = match message {
                Ok(Message::Text(text)) => Frame::Text(text.into()),
                Ok(Message::Binary(bytes)) => Frame::Binary(bytes),
                Ok(Message::Ping(payload)) => Frame::Ping(payload),
                Ok(Message::Pong(payload)) => Frame::Pong(payload),
                Ok(Message::Close(close)) => {
                    Frame::Close(close.map(|c| (u16::from(c.code), c.reason.as_str().to_owned())))
                }
                // Raw frames are never produced by reading.
                Ok(Message::Frame(_)) => continue,
                Err(e) => return Poll::Ready(Some(Err(read_error(e)))),
            };
            return Poll::Ready(Some(Ok(frame)));
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Frame> for Tungstenite<S> {
    type Error = SocketError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SocketError>> {
        Pin::new(&mut self.0)
            .poll_ready(cx)
            .map_err(SocketError::new)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Frame) -> Result<(), SocketError> {
        let message = match item {
            Frame::Text(bytes) => {
                Message::Frame(frame::Frame::message(bytes, OpCode::Data(Data::Text), true))
            }
            Frame::Binary(bytes) => Message::Binary(bytes),
            Frame::Ping(payload) => Message::Ping(payload),
            Frame::Pong(payload) => Message::Pong(payload),
            Frame::Close(close) => Message::Close(close.map(|(code, reason)| CloseFrame {
                code: CloseCode::from(code),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_parameter_is_read_from_the_query() {
        let at = |epoch, seq| Some(Position { epoch, seq });
        assert_eq!(position_from_query(Some("user=a&resume=3:41")), at(3, 41));
        assert_eq!(position_from_query(Some("resume=1:0")), at(1, 0));
        assert_eq!(position_from_query(Some("resume=x:1")), None);
        assert_eq!(position_from_query(Some("resume=1")), None);
        assert_eq!(position_from_query(Some("user=a")), None);
        assert_eq!(position_from_query(None), None);
    }
}
