//! The connection driver: one task per connection that moves bytes between a WebSocket and
//! its shard, whatever the WebSocket library.
//!
//! A socket is anything that is a `Stream` of [`Frame`]s and a `Sink` of [`Frame`]s
//! ([`Socket`]); the tokio-tungstenite and axum adapters are a few lines each. The driver
//! opens the connection on its shard, then runs two loops until either ends:
//!
//! - the **reader** feeds every text, binary and pong frame to the hub, and `Closed` when
//!   the peer closes or the socket fails;
//! - the **writer** performs the hub's outputs in order, writing a batch of frames, flushing
//!   it to the socket, and only then reporting [`Input::Flushed`](switchboard::Input::Flushed)
//!   with the batch's size: that report is the hub's backpressure signal, so a reader that
//!   stops reading stops the reports and the hub queues, coalesces or closes it.
//!
//! When the hub closes the connection the writer sends the close frame and the driver waits
//! (at most `close_timeout`) for the peer's answer; a writer stuck on a peer that reads nothing
//! is abandoned `close_timeout` after the hub's close, and the socket dropped.

use crate::handle::Handle;
use crate::shard::{Command, Link, Out, SocketEvent};
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::fmt;
use switchboard::{ConnId, Open};
use tokio::sync::{mpsc, oneshot};

/// Frames written between two flush reports, at most.
const BATCH: usize = 64;

/// A WebSocket message, independent of the WebSocket library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame (UTF-8; the hub validates what it receives).
    Text(Bytes),
    /// A binary frame.
    Binary(Bytes),
    /// A ping control frame.
    Ping(Bytes),
    /// A pong control frame.
    Pong(Bytes),
    /// A close frame, with its code and reason text if it has them.
    Close(Option<(u16, String)>),
}

/// A failure of the underlying WebSocket.
#[derive(Debug)]
pub struct SocketError {
    too_large: bool,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl SocketError {
    /// A read or write failure.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            too_large: false,
            source: source.into(),
        }
    }

    /// The peer sent a message larger than the socket accepts: the hub closes it with 1009.
    pub fn too_large(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            too_large: true,
            source: source.into(),
        }
    }

    /// True for a message larger than the socket accepts.
    pub fn is_too_large(&self) -> bool {
        self.too_large
    }
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "websocket error: {}", self.source)
    }
}

impl std::error::Error for SocketError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// A WebSocket the driver can run: a stream and a sink of [`Frame`]s.
///
/// Implemented for every type that fits; wrap your library's socket in an adapter that
/// converts its messages (see `crate::server` for tokio-tungstenite, `crate::axum` for axum).
pub trait Socket:
    Stream<Item = Result<Frame, SocketError>>
    + Sink<Frame, Error = SocketError>
    + Send
    + Unpin
    + 'static
{
}

impl<S> Socket for S where
    S: Stream<Item = Result<Frame, SocketError>>
        + Sink<Frame, Error = SocketError>
        + Send
        + Unpin
        + 'static
{
}

/// Why the reader stopped.
enum ReadEnd {
    /// The peer closed or the socket failed.
    Peer,
    /// The peer sent a message too large to read: the read side is unusable, the hub closes.
    TooLarge,
}

/// How the connection's two loops ended.
enum Ended {
    /// The peer closed or the socket failed while reading.
    Peer,
    /// The hub closed the connection and its close frame was sent.
    Closed,
    /// Writing failed, or the hub forgot the connection without a close frame.
    Gone,
    /// The hub closed the connection and the writer did not finish within `close_timeout`.
    Abandoned,
}

/// Open `open` on its shard and run the connection until it ends.
pub(crate) async fn drive<S: Socket>(handle: Handle, open: Open, socket: S) {
    let close_timeout = handle.options().close_timeout;
    let (mut sink, mut stream) = socket.split();
    let shard = handle.shard_of(&open.user);
    let (out, mut outbox) = mpsc::unbounded_channel();
    let (closing, closed_by_hub) = oneshot::channel();
    let link = Link {
        out,
        closing: Some(closing),
    };
    let opened = handle
        .call(shard, move |s, now| s.open(now, open, link))
        .await;
    let conn = match opened {
        Ok(Ok(conn)) => conn,
        Ok(Err(refused)) => {
            let reason = refused.reason().as_str().to_owned();
            let close = Frame::Close(Some((refused.close_code(), reason)));
            let _ = tokio::time::timeout(close_timeout, sink.send(close)).await;
            return;
        }
        Err(_stopped) => {
            let close = Frame::Close(Some((1001, "shutdown".to_owned())));
            let _ = tokio::time::timeout(close_timeout, sink.send(close)).await;
            return;
        }
    };
    tracing::debug!(shard, %conn, "connection opened");
    let inbox = handle.inbox(shard);
    let ended = {
        let reader = read(&mut stream, &inbox, conn);
        let writer = write(&mut sink, &mut outbox, &inbox, conn);
        let abandon = async {
            let _ = closed_by_hub.await;
            tokio::time::sleep(close_timeout).await;
        };
        tokio::pin!(writer, abandon);
        tokio::select! {
            end = reader => match end {
                ReadEnd::Peer => Ended::Peer,
                // Let the writer send the hub's 1009; nothing more can be read.
                ReadEnd::TooLarge => tokio::select! {
                    _ = &mut writer => Ended::Gone,
                    () = &mut abandon => Ended::Abandoned,
                },
            },
            ended = &mut writer => ended,
            () = &mut abandon => Ended::Abandoned,
        }
    };
    match ended {
        // Let the WebSocket layer finish the closing handshake it may owe the peer.
        Ended::Peer => {
            let _ = tokio::time::timeout(close_timeout, sink.close()).await;
        }
        // Wait for the peer's close frame (or the end of the stream), discarding data frames.
        Ended::Closed => {
            let _ = tokio::time::timeout(close_timeout, async {
                while let Some(Ok(_)) = stream.next().await {}
            })
            .await;
        }
        Ended::Gone | Ended::Abandoned => {}
    }
    // Harmless if the hub already closed it: the id's generation no longer matches.
    let _ = inbox
        .send(Command::Socket {
            conn,
            event: SocketEvent::Closed,
        })
        .await;
    tracing::debug!(shard, %conn, "connection ended");
}

/// Feed the hub every frame the peer sends, until it closes or the socket fails.
async fn read<S>(stream: &mut S, inbox: &mpsc::Sender<Command>, conn: ConnId) -> ReadEnd
where
    S: Stream<Item = Result<Frame, SocketError>> + Unpin,
{
    let mut end = ReadEnd::Peer;
    while let Some(frame) = stream.next().await {
        let event = match frame {
            Ok(Frame::Text(bytes)) => SocketEvent::Text(bytes),
            Ok(Frame::Binary(bytes)) => SocketEvent::Binary(bytes),
            Ok(Frame::Pong(payload)) => SocketEvent::Pong(payload),
            // The WebSocket layer answers pings itself.
            Ok(Frame::Ping(_)) => continue,
            Ok(Frame::Close(_)) => break,
            Err(e) if e.is_too_large() => {
                end = ReadEnd::TooLarge;
                SocketEvent::TooLarge
            }
            Err(e) => {
                tracing::debug!(%conn, error = %e, "read failed");
                break;
            }
        };
        if inbox.send(Command::Socket { conn, event }).await.is_err() {
            break;
        }
        if matches!(end, ReadEnd::TooLarge) {
            return end;
        }
    }
    let _ = inbox
        .send(Command::Socket {
            conn,
            event: SocketEvent::Closed,
        })
        .await;
    end
}

/// Perform the hub's outputs for one connection, reporting each flushed batch.
async fn write<S>(
    sink: &mut S,
    outbox: &mut mpsc::UnboundedReceiver<Out>,
    inbox: &mpsc::Sender<Command>,
    conn: ConnId,
) -> Ended
where
    S: Sink<Frame, Error = SocketError> + Unpin,
{
    while let Some(first) = outbox.recv().await {
        let mut next = Some(first);
        let mut written = 0;
        let mut batch = 0;
        let mut close = None;
        while let Some(out) = next.take() {
            let frame = match out {
                Out::Frame(frame) => {
                    written += frame.len();
                    Frame::Text(frame)
                }
                Out::Ping(payload) => Frame::Ping(Bytes::copy_from_slice(&payload)),
                Out::Close(code, reason) => {
                    close = Some((code, reason));
                    break;
                }
            };
            if sink.feed(frame).await.is_err() {
                return Ended::Gone;
            }
            batch += 1;
            if batch < BATCH {
                next = outbox.try_recv().ok();
            }
        }
        if sink.flush().await.is_err() {
            return Ended::Gone;
        }
        if written > 0 {
            let flushed = Command::Socket {
                conn,
                event: SocketEvent::Flushed(written),
            };
            if inbox.send(flushed).await.is_err() {
                return Ended::Gone;
            }
        }
        if let Some((code, reason)) = close {
            let frame = Frame::Close(Some((code, reason.as_str().to_owned())));
            return match sink.send(frame).await {
                Ok(()) => Ended::Closed,
                Err(_) => Ended::Gone,
            };
        }
    }
    Ended::Gone
}
