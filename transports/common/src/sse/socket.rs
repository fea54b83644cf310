//! One Server-Sent Events connection as the driver's [`Socket`](crate::Socket)
//! ([`SseSocket`]), and the response body it writes to ([`EventStream`]).
//!
//! **Outbound.** The sink encodes each frame as an event into a buffer; a flush hands the
//! buffer to the body as one chunk through a channel of [`CHUNKS_IN_FLIGHT`] chunks, which the
//! HTTP layer takes as fast as the peer reads (and writes out at once, as the body then has
//! nothing more ready). A peer that stops reading stops the HTTP layer taking chunks, so the
//! flush waits, the hub hears no `Flushed`, and the driver's `write_timeout` closes the
//! connection as a slow consumer (4008), as on a WebSocket. A body the HTTP layer dropped (the
//! peer went away) fails the next write.
//!
//! **Inbound.** Client frames come from `POST /sse/{conn}` requests through a bounded channel
//! ([`INBOUND_FRAMES`]); the stream ends when the body is dropped (the peer went away) or once
//! the connection's close was written (an event stream has no closing handshake).
//!
//! **Heartbeats.** A ping becomes a comment line. An `EventSource` cannot answer it, so the
//! body answers for it: when the HTTP layer takes a chunk holding a ping, the pong echoing it
//! is fed to the hub. A peer that stops reading stops those pongs with the chunks, so the hub
//! still finds it dead after its heartbeat timeout.

use super::event::Encoder;
use crate::frame::{Frame, Socket, SocketError};
use bytes::{Bytes, BytesMut};
use futures_channel::{mpsc, oneshot};
use futures_util::{Sink, Stream};
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use switchboard::OpenError;

/// Chunks handed to the body and not yet taken by the HTTP layer, at most (plus one per
/// sender, which is the sink's).
pub const CHUNKS_IN_FLIGHT: usize = 1;

/// Client frames posted and not yet read by the driver, at most: a request posting more waits.
pub const INBOUND_FRAMES: usize = 64;

/// What the driver reads: a posted frame, or the refusal of a request body too large.
pub(crate) type Inbound = Result<Frame, SocketError>;

/// One batch of events, and the payload of the last ping it holds.
struct Chunk {
    bytes: Bytes,
    ping: Option<Bytes>,
}

/// The driver's side of one Server-Sent Events connection.
pub struct SseSocket {
    encoder: Encoder,
    buffer: BytesMut,
    ping: Option<Bytes>,
    out: mpsc::Sender<Chunk>,
    /// Boxed: the receiver is not `Unpin`, the socket must be.
    inbound: Pin<Box<async_channel::Receiver<Inbound>>>,
    /// Resolves (cancelled) when the body is dropped.
    body_gone: oneshot::Receiver<()>,
    /// The close was written: the body ends after it, and nothing more is read.
    closed: bool,
}

/// The response body of one Server-Sent Events connection: a stream of chunks of
/// `text/event-stream`, ending after the close event (or when the connection's task ends).
pub struct EventStream {
    chunks: mpsc::Receiver<Chunk>,
    /// Where the pongs answering the pings it hands out go.
    pongs: async_channel::Sender<Inbound>,
    /// Dropped with the body, which tells the socket.
    _alive: oneshot::Sender<()>,
}

/// A socket, its body, and the sender that feeds it client frames.
pub(crate) fn pair() -> (SseSocket, EventStream, async_channel::Sender<Inbound>) {
    let (out, chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let (inbound_tx, inbound) = async_channel::bounded(INBOUND_FRAMES);
    let (alive, body_gone) = oneshot::channel();
    let socket = SseSocket {
        encoder: Encoder::default(),
        buffer: BytesMut::new(),
        ping: None,
        out,
        inbound: Box::pin(inbound),
        body_gone,
        closed: false,
    };
    let body = EventStream {
        chunks,
        pongs: inbound_tx.clone(),
        _alive: alive,
    };
    (socket, body, inbound_tx)
}

impl EventStream {
    /// A body holding only the close event of `refused` (its close code and reason): for a
    /// connection refused before it reached the hub (a cluster-wide limit, say), which the
    /// client then sees exactly as the hub's own refusal of an open.
    pub fn refusal(refused: &OpenError) -> Self {
        let (mut socket, body, _) = pair();
        let mut bytes = BytesMut::new();
        Encoder::close(refused.close_code(), refused.reason().as_str(), &mut bytes);
        let chunk = Chunk {
            bytes: bytes.freeze(),
            ping: None,
        };
        // The channel is empty: it has room for this one chunk.
        let _ = socket.out.try_send(chunk);
        socket.out.close_channel();
        body
    }
}

fn gone() -> SocketError {
    SocketError::new("the event stream's response body was dropped")
}

impl Stream for SseSocket {
    type Item = Inbound;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Inbound>> {
        if self.closed || Pin::new(&mut self.body_gone).poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        self.inbound.as_mut().poll_next(cx)
    }
}

/// Its events are written by the response body, frame by frame: no write queue.
impl Socket for SseSocket {}

impl Sink<Frame> for SseSocket {
    type Error = SocketError;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), SocketError>> {
        Poll::Ready(if self.closed { Err(gone()) } else { Ok(()) })
    }

    fn start_send(mut self: Pin<&mut Self>, frame: Frame) -> Result<(), SocketError> {
        let this = &mut *self;
        match frame {
            Frame::Text(text) => this.encoder.frame(&text, &mut this.buffer),
            Frame::Ping(payload) => {
                Encoder::keep_alive(&mut this.buffer);
                this.ping = Some(payload);
            }
            Frame::Close(close) => {
                let (code, reason) = close.unwrap_or((1000, String::new()));
                Encoder::close(code, &reason, &mut this.buffer);
                this.closed = true;
            }
            // The hub writes neither; an event stream has no place for them.
            Frame::Binary(_) | Frame::Pong(_) => {}
        }
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SocketError>> {
        let this = &mut *self;
        if !this.buffer.is_empty() {
            ready!(this.out.poll_ready(cx)).map_err(|_| gone())?;
            let chunk = Chunk {
                bytes: this.buffer.split().freeze(),
                ping: this.ping.take(),
            };
            this.out.start_send(chunk).map_err(|_| gone())?;
        }
        if this.closed {
            // The close event is the last: the body ends after it.
            this.out.close_channel();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SocketError>> {
        ready!(self.as_mut().poll_flush(cx))?;
        self.out.close_channel();
        Poll::Ready(Ok(()))
    }
}

impl Stream for EventStream {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(chunk) = ready!(Pin::new(&mut self.chunks).poll_next(cx)) else {
            return Poll::Ready(None);
        };
        if let Some(payload) = chunk.ping {
            // The HTTP layer took the ping: the peer is reading. A full inbox loses nothing
            // that matters, since the posted frames waiting in it count as signs of life.
            let _ = self.pongs.try_send(Ok(Frame::Pong(payload)));
        }
        Poll::Ready(Some(Ok(chunk.bytes)))
    }
}

impl std::fmt::Debug for SseSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseSocket")
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}
