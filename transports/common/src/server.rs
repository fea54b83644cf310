//! Connections entering the switchboard: the standalone server on any runtime that can
//! [`Listen`] and [`Upgrade`] ([`Handle::serve`], [`Handle::accept`]: accept, authenticate the
//! WebSocket handshake, run each connection on its shard), an already upgraded WebSocket from
//! any library ([`Handle::run_socket`], [`Handle::run_socket_framed`],
//! [`Handle::refuse_socket`]), and the WebSocket layer's write buffer sizes (its read buffer:
//! `read_chunks.rs`).

use crate::driver;
use crate::frame::Socket;
use crate::framing::Framing;
use crate::handle::Handle;
use crate::read_chunks::READ_BUFFER_BYTES;
use crate::runtime::{self, Runtime};
use futures_util::future::{self, Either};
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use switchboard::{BackpressureConfig, ConnId, Open, OpenError, Position};
use tungstenite::handshake::server::{Callback, ErrorResponse, Response};
use tungstenite::http::StatusCode;
use tungstenite::protocol::WebSocketConfig;

/// The WebSocket write buffer's target: frames collect up to this size before they are written
/// to the socket (tungstenite's default, named because [`write_buffer_limit`] is computed from
/// it). The driver flushes after every batch of frames anyway.
pub const WRITE_BUFFER_BYTES: usize = 128 * 1024;

/// The most one connection's socket may hold unwritten, given the hub's backpressure budgets:
/// the target ([`WRITE_BUFFER_BYTES`]), the in-flight budget, and one more frame as large as
/// the hub's whole queue: 128 KiB + 256 KiB + 1 MiB = 1.375 MiB with the presets' budgets. It
/// bounds the transports' [`WriteQueue`](crate::WriteQueue) (the driver's frames and what the
/// WebSocket layer writes behind them) and tungstenite's own buffer
/// (`max_write_buffer_size`: what it could not hand the queue yet, its pongs and close).
///
/// The hub never hands a connection more than its in-flight budget unflushed (or one frame
/// alone), and a reliable frame larger than the queue overflows any reader that falls behind,
/// so a reader that keeps up never comes near the bound. What fills it is a peer that sends
/// pings and does not read their pongs. When tungstenite's buffer is full, it drops further
/// pongs (it keeps only the latest, outside the buffer) without an error; a frame of ours that
/// does not fit is refused (`WriteBufferFull`): the driver then has the hub close the
/// connection as a slow consumer (4008) and drops the socket, since no close frame fits
/// either.
pub fn write_buffer_limit(backpressure: &BackpressureConfig) -> usize {
    WRITE_BUFFER_BYTES
        .saturating_add(backpressure.inflight_bytes)
        .saturating_add(backpressure.queue_bytes)
        // tungstenite requires the bound to exceed the target.
        .max(WRITE_BUFFER_BYTES + 1)
}

/// A runtime's TCP listener, for [`Handle::serve`](crate::Handle::serve).
pub trait Listen: Runtime {
    /// The listener.
    type Listener: Send + Sync + 'static;
    /// An accepted connection.
    type Stream: Send + 'static;

    /// Accept the next connection (with `TCP_NODELAY` set, as befits small frames). Dropping
    /// the future before it completes loses no connection.
    fn accept(
        &self,
        listener: &Self::Listener,
    ) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// A WebSocket library's server handshake over the byte stream `IO`, for
/// [`Handle::serve`](crate::Handle::serve) and [`Handle::accept`](crate::Handle::accept).
pub trait Upgrade<IO>: Runtime {
    /// The upgraded WebSocket, as the driver runs it.
    type Socket: Socket;

    /// Perform the server side of the handshake on `io`, with `callback` as the library's
    /// handshake callback (it authenticates the request and answers a refusal itself) and
    /// [`HandshakeCallback::config`] as its configuration (the message and buffer limits).
    fn upgrade(
        &self,
        io: IO,
        callback: HandshakeCallback<'_>,
    ) -> impl Future<Output = Result<Self::Socket, tungstenite::Error>> + Send;
}

/// The HTTP request of a WebSocket handshake (method, URI with path and query, headers).
pub type Request = tungstenite::handshake::server::Request;

/// Decides who a connecting client is, from its handshake request.
///
/// Return the [`Open`] for the hub (user, thread, room access, metadata, resume position) to
/// accept, or a [`Refusal`] to answer with an HTTP status and no WebSocket. If the returned
/// `Open` has no `resume`, the `resume=<epoch>:<seq>` query parameter is used (see
/// [`position_from_query`]). The `batch` query parameter decides the connection's [`Framing`]
/// (see [`Framing::from_query`]; a value other than `0` or `1` is answered 400).
/// Implemented for every `Fn(&Request) -> Result<Open, Refusal>`.
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
        .and_then(|(_, value)| value.parse().ok())
}

impl<R: Listen + Upgrade<<R as Listen>::Stream>> Handle<R> {
    /// Accept connections on `listener` until [`Handle::shutdown`] starts, each in its own
    /// task: handshake (with [`Options::handshake_timeout`](crate::Options::handshake_timeout)),
    /// authentication, then the connection on its user's shard.
    pub async fn serve(self, listener: R::Listener, auth: impl Authenticate) {
        let auth = Arc::new(auth);
        let mut stopping = pin!(self.shards.stopping());
        loop {
            let accepted = {
                let accept = pin!(self.runtime().accept(&listener));
                match future::select(accept, stopping.as_mut()).await {
                    Either::Left((accepted, _)) => accepted,
                    Either::Right(_) => break,
                }
            };
            match accepted {
                Ok(io) => {
                    let (handle, auth) = (self.clone(), auth.clone());
                    let task = async move {
                        // Boxed: the connection's task keeps no room for its handshake.
                        let handshake = Box::pin(handle.handshake(io, &*auth));
                        if let Some((open, framing, ws)) = handshake.await {
                            driver::drive(handle.shards, open, ws, framing, |_| ()).await;
                        }
                    };
                    if self.shards.spawn_tracked(task).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    runtime::sleep(self.runtime(), std::time::Duration::from_millis(50)).await;
                }
            }
        }
        tracing::debug!("stopped accepting");
    }
}

impl<R: Runtime> Handle<R> {
    /// Run an already upgraded WebSocket as a connection of `open.user` until it ends, from
    /// any WebSocket library (wrap it as a [`Socket`]). The connection is tracked by
    /// [`Handle::shutdown`] (which aborts it after its grace); refused opens are closed with the
    /// hub's close code. The connection runs in the caller's task, not one of its own, so in
    /// the caller's current `tracing` span (a request's, say), and records the connection id in
    /// that span's `conn` field if it has one. Dropping the future before it ends drops the
    /// socket; the hub then closes the connection when its heartbeat goes unanswered.
    pub fn run_socket<S: Socket>(&self, open: Open, socket: S) -> impl Future<Output = ()> {
        self.run_socket_framed(open, socket, Framing::Single)
    }

    /// [`Handle::run_socket`], with the connection's frames put in WebSocket messages as
    /// `framing` says: [`Framing::Batched`] for a client that asked for it (`batch=1`, see
    /// [`Framing::from_query`]).
    pub fn run_socket_framed<S: Socket>(
        &self,
        open: Open,
        socket: S,
        framing: Framing,
    ) -> impl Future<Output = ()> {
        self.run(open, socket, framing, |_| ())
    }

    /// [`Handle::run_socket`], calling `opened` with the connection's id once the hub accepted
    /// it and keeping what it returns until the connection ends (or its task is dropped by
    /// shutdown): for a transport that finds its connections by id, such as the Server-Sent
    /// Events one, whose client frames arrive in other requests (one frame per message).
    pub fn run_socket_with<S, G>(
        &self,
        open: Open,
        socket: S,
        opened: impl FnOnce(ConnId) -> G + Send + 'static,
    ) -> impl Future<Output = ()>
    where
        S: Socket,
        G: Send + 'static,
    {
        self.run(open, socket, Framing::Single, opened)
    }

    /// The connection, to run in the caller's task, tracked by [`Handle::shutdown`], until it
    /// ends (or shutdown aborts it). Not an async fn (nor are the public ones above): each
    /// would keep its arguments, the socket and the `Open`, in the connection's task for as
    /// long as it lives, besides the driver's own.
    fn run<S, G>(
        &self,
        open: Open,
        socket: S,
        framing: Framing,
        opened: impl FnOnce(ConnId) -> G + Send + 'static,
    ) -> impl Future<Output = ()>
    where
        S: Socket,
        G: Send + 'static,
    {
        let drive = driver::drive(self.shards.clone(), open, socket, framing, opened);
        match self.shards.track(drive) {
            Ok(tracked) => Either::Left(tracked),
            // Shutting down: the hub refuses the open and the socket is closed with 1001.
            Err(drive) => Either::Right(drive),
        }
    }

    /// Close an already upgraded WebSocket at once with `refused`'s close code and reason,
    /// without opening a connection: for a refusal decided outside the hub (a cluster-wide
    /// limit, say), which the client sees exactly as the hub's own refusal of an open (no
    /// `welcome`, then the close frame). Waits at most
    /// [`Options::close_timeout`](crate::Options::close_timeout) for the close frame to be
    /// written.
    pub async fn refuse_socket<S: Socket>(&self, mut socket: S, refused: OpenError) {
        driver::refuse(&self.shards, &mut socket, refused).await;
    }

    /// The configuration of every WebSocket the switchboard runs (tungstenite's): messages
    /// read up to [`Handle::message_limit`], at most [`Handle::write_buffer_limit`] held
    /// unwritten, and a read buffer of [`READ_BUFFER_BYTES`] (the socket under it is read
    /// through a [`ReadChunks`](crate::ReadChunks) of each transport).
    pub fn websocket_config(&self) -> WebSocketConfig {
        let limit = Some(self.message_limit());
        WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .write_buffer_size(WRITE_BUFFER_BYTES)
            .max_write_buffer_size(self.write_buffer_limit())
            .max_message_size(limit)
            .max_frame_size(limit)
    }

    /// Perform the WebSocket handshake on `io` (a TCP or TLS stream you accepted), authenticate
    /// it and run the connection until it ends, tracked by [`Handle::shutdown`]. A refused
    /// handshake is answered with the refusal's status.
    pub async fn accept<IO>(&self, io: IO, auth: &impl Authenticate)
    where
        R: Upgrade<IO>,
    {
        if let Some((open, framing, ws)) = Box::pin(self.handshake(io, auth)).await {
            self.run_socket_framed(open, ws, framing).await;
        }
    }

    /// The handshake and authentication; `None` if refused, failed or timed out.
    async fn handshake<IO>(
        &self,
        io: IO,
        auth: &impl Authenticate,
    ) -> Option<(Open, Framing, <R as Upgrade<IO>>::Socket)>
    where
        R: Upgrade<IO>,
    {
        let mut open = None;
        let callback = HandshakeCallback {
            auth,
            open: &mut open,
            config: self.websocket_config(),
        };
        let upgrade = self.runtime().upgrade(io, callback);
        let limit = self.options().handshake_timeout;
        match runtime::timeout(self.runtime(), limit, upgrade).await {
            Some(Ok(ws)) => open.map(|(open, framing)| (open, framing, ws)),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "handshake refused or failed");
                None
            }
            None => {
                tracing::debug!("handshake timed out");
                None
            }
        }
    }
}

/// One WebSocket handshake in progress, as a WebSocket library's callback: it asks the
/// [`Authenticate`] about the request, keeps the [`Open`] it returns (with the
/// `resume=<epoch>:<seq>` query parameter applied if it has no resume position) and the
/// [`Framing`] of the `batch` parameter, or answers the [`Refusal`] (400 for a `batch` other
/// than `0` or `1`).
pub struct HandshakeCallback<'a> {
    auth: &'a dyn Authenticate,
    open: &'a mut Option<(Open, Framing)>,
    config: WebSocketConfig,
}

impl HandshakeCallback<'_> {
    /// The WebSocket configuration to accept with: messages are read up to
    /// [`Handle::message_limit`], and at most [`Handle::write_buffer_limit`] is held
    /// unwritten.
    pub fn config(&self) -> WebSocketConfig {
        self.config
    }
}

impl Callback for HandshakeCallback<'_> {
    fn on_request(self, request: &Request, response: Response) -> Result<Response, ErrorResponse> {
        let framing = Framing::from_query(request.uri().query()).map_err(|bad| {
            Refusal::new(StatusCode::BAD_REQUEST)
                .body(bad.to_string())
                .into_response()
        })?;
        let mut accepted = self
            .auth
            .authenticate(request)
            .map_err(Refusal::into_response)?;
        if accepted.resume.is_none() {
            accepted.resume = position_from_query(request.uri().query());
        }
        *self.open = Some((accepted, framing));
        Ok(response)
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
