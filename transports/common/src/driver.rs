//! The connection driver: one task per connection that moves bytes between a WebSocket and
//! its shard, whatever the WebSocket library.
//!
//! A socket is anything that is a `Stream` of [`Frame`]s and a `Sink` of [`Frame`]s
//! ([`Socket`]); the tungstenite and axum adapters are a few lines each. The driver
//! opens the connection on its shard, then runs two loops until either ends:
//!
//! - the **reader** feeds every text, binary, ping and pong frame to the hub, and `Closed`
//!   when the peer closes or the socket fails. The WebSocket layer answers pings itself; the
//!   hub counts them (and pongs that answer none of its pings) against the connection's
//!   message rate, so a ping flood ends in 4029;
//! - the **writer** performs the hub's outputs in order, writing a batch of frames, flushing
//!   it to the socket, and only then reporting [`Input::Flushed`](switchboard::Input::Flushed)
//!   with the batch's size: that report is the hub's backpressure signal, so a reader that
//!   stops reading stops the reports and the hub queues, coalesces or closes it.
//!
//! When the hub closes the connection the writer sends the close frame and the driver waits
//! (at most `close_timeout`) for the peer's answer; a writer stuck on a peer that reads nothing
//! is abandoned `close_timeout` after the hub's close, and the socket dropped.
//!
//! The socket's write buffer is bounded ([`write_buffer_limit`](crate::write_buffer_limit)):
//! a frame that does not fit (the peer has left that much unread, its pongs typically) ends
//! the writer, the hub closes the connection as a slow consumer (4008), and the socket is
//! dropped without a close frame, which would not fit either.

use crate::frame::{Frame, Socket, SocketError};
use crate::handle::Handle;
use crate::runtime::{self, Runtime};
use crate::shard::{Command, Link, Out, SocketEvent};
use async_channel::{Receiver, Sender};
use bytes::Bytes;
use futures_channel::oneshot;
use futures_util::{pin_mut, select, FutureExt, Sink, SinkExt, Stream, StreamExt};
use switchboard::{ConnId, Open, OpenError, Reason};

/// Frames written between two flush reports, at most.
const BATCH: usize = 64;

/// Why the reader stopped.
enum ReadEnd {
    /// The peer closed or the socket failed.
    Peer,
    /// The WebSocket layer refused what the peer sent (too large, not UTF-8): the read side is
    /// unusable, the hub closes.
    Refused,
}

/// How the connection's two loops ended.
enum Ended {
    /// The peer closed or the socket failed while reading.
    Peer,
    /// The hub closed the connection and its close frame was sent.
    Closed,
    /// Writing failed, or the hub forgot the connection without a close frame.
    Gone,
    /// A frame did not fit the socket's bounded write buffer: the peer does not read.
    Overflowed,
    /// The hub closed the connection and the writer did not finish within `close_timeout`.
    Abandoned,
}

/// Open `open` on its shard and run the connection until it ends.
pub(crate) async fn drive<R: Runtime, S: Socket>(handle: Handle<R>, open: Open, socket: S) {
    let runtime = handle.runtime().clone();
    let close_timeout = handle.options().close_timeout;
    let (mut sink, mut stream) = socket.split();
    let shard = handle.shard_of(&open.user);
    let (out, outbox) = async_channel::unbounded();
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
        Ok(Err(refused)) => return refuse(&handle, &mut sink, refused).await,
        Err(_stopped) => {
            let stopped = OpenError::ShuttingDown { restart: false };
            return refuse(&handle, &mut sink, stopped).await;
        }
    };
    tracing::Span::current().record("conn", tracing::field::display(conn));
    tracing::debug!(shard, %conn, "connection opened");
    let inbox = handle.inbox(shard);
    let ended = {
        let reader = read(&mut stream, &inbox, conn).fuse();
        let writer = write(&mut sink, &outbox, &inbox, conn).fuse();
        let abandon = async {
            let _ = closed_by_hub.await;
            runtime::sleep(&runtime, close_timeout).await;
        }
        .fuse();
        pin_mut!(reader, writer, abandon);
        select! {
            end = reader => match end {
                ReadEnd::Peer => Ended::Peer,
                // Let the writer send the hub's close; nothing more can be read.
                ReadEnd::Refused => select! {
                    _ = writer => Ended::Gone,
                    () = abandon => Ended::Abandoned,
                },
            },
            ended = writer => ended,
            () = abandon => Ended::Abandoned,
        }
    };
    match ended {
        // Let the WebSocket layer finish the closing handshake it may owe the peer.
        Ended::Peer => {
            let _ = runtime::timeout(&runtime, close_timeout, sink.close()).await;
        }
        // Wait for the peer's close frame (or the end of the stream), discarding data frames.
        Ended::Closed => {
            let _ = runtime::timeout(&runtime, close_timeout, async {
                while let Some(Ok(_)) = stream.next().await {}
            })
            .await;
        }
        // The hub learns why before the socket is dropped (unless it closed the connection
        // already, and that close frame is what did not fit).
        Ended::Overflowed => {
            tracing::debug!(shard, %conn, "write buffer full");
            let slow = Reason::SlowConsumer;
            let _ = handle
                .call(shard, move |s, _| s.hub.close_connection(conn, slow))
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

/// Close a socket whose connection did not open, as `refused` says (its close code and reason),
/// waiting at most `close_timeout` for the close frame to be written.
pub(crate) async fn refuse<R, S>(handle: &Handle<R>, sink: &mut S, refused: OpenError)
where
    R: Runtime,
    S: Sink<Frame, Error = SocketError> + Unpin,
{
    let reason = refused.reason();
    let close = Frame::Close(Some((refused.close_code(), reason.as_str().to_owned())));
    let close_timeout = handle.options().close_timeout;
    let _ = runtime::timeout(handle.runtime(), close_timeout, sink.send(close)).await;
}

/// Feed the hub every frame the peer sends, until it closes or the socket fails.
async fn read<S>(stream: &mut S, inbox: &Sender<Command>, conn: ConnId) -> ReadEnd
where
    S: Stream<Item = Result<Frame, SocketError>> + Unpin,
{
    let mut end = ReadEnd::Peer;
    while let Some(frame) = stream.next().await {
        let event = match frame {
            Ok(Frame::Text(bytes)) => SocketEvent::Text(bytes),
            Ok(Frame::Binary(bytes)) => SocketEvent::Binary(bytes),
            Ok(Frame::Pong(payload)) => SocketEvent::Pong(payload),
            // The WebSocket layer answers pings itself; the hub rate-limits them.
            Ok(Frame::Ping(_)) => SocketEvent::Ping,
            Ok(Frame::Close(_)) => break,
            Err(e) => match refusal(&e) {
                Some(reason) => {
                    end = ReadEnd::Refused;
                    SocketEvent::Refused(reason)
                }
                None => {
                    tracing::debug!(%conn, error = %e, "read failed");
                    break;
                }
            },
        };
        if inbox.send(Command::Socket { conn, event }).await.is_err() {
            break;
        }
        if matches!(end, ReadEnd::Refused) {
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

/// The close reason for what the WebSocket layer refused to read, if it was the peer's fault.
fn refusal(e: &SocketError) -> Option<Reason> {
    if e.is_too_large() {
        Some(Reason::FrameTooLarge)
    } else if e.is_invalid_utf8() {
        Some(Reason::InvalidUtf8)
    } else {
        None
    }
}

/// Perform the hub's outputs for one connection, reporting each flushed batch.
async fn write<S>(
    sink: &mut S,
    outbox: &Receiver<Out>,
    inbox: &Sender<Command>,
    conn: ConnId,
) -> Ended
where
    S: Sink<Frame, Error = SocketError> + Unpin,
{
    while let Ok(first) = outbox.recv().await {
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
            if let Err(e) = sink.feed(frame).await {
                return failed(&e);
            }
            batch += 1;
            if batch < BATCH {
                next = outbox.try_recv().ok();
            }
        }
        if let Err(e) = sink.flush().await {
            return failed(&e);
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
                Err(e) => failed(&e),
            };
        }
    }
    Ended::Gone
}

/// How the writer ends on a write failure.
fn failed(e: &SocketError) -> Ended {
    if e.is_write_buffer_full() {
        Ended::Overflowed
    } else {
        tracing::debug!(error = %e, "write failed");
        Ended::Gone
    }
}
