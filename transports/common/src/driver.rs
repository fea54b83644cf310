//! The connection driver: one task per connection that moves bytes between a WebSocket and
//! its shard, whatever the WebSocket library.
//!
//! A socket is anything that is a `Stream` of [`Frame`]s and a `Sink` of [`Frame`]s
//! ([`Socket`]); the tungstenite and axum adapters are a few lines each. The driver
//! opens the connection on its shard, then runs two loops until either ends or the hub
//! closes the connection:
//!
//! - the **reader** feeds every text, binary, ping and pong frame to the hub, and `Closed`
//!   when the peer closes or the socket fails. The WebSocket layer answers pings itself; the
//!   hub counts them (and pongs that answer none of its pings) against the connection's
//!   message rate, so a ping flood ends in 4029;
//! - the **writer** performs the hub's outputs in order: at each wake-up it takes everything
//!   the shard queued in the connection's outbox (`outbox.rs`; one operation, bounded by the
//!   hub's in-flight budget), writes it as one batch, flushes it to the socket once, and only
//!   then counts it written. It reports what it wrote
//!   ([`SocketInput::Flushed`](switchboard::SocketInput::Flushed), the hub's backpressure
//!   signal) once [`FLUSH_REPORT_BYTES`] have gathered, and after every batch while the hub
//!   holds frames back for it (`SocketOutput::AwaitingFlush`, which also wakes a waiting
//!   writer with writes to report): a reader that stops reading stops the reports and the hub
//!   queues, coalesces or closes it. The more the shard queued while the writer was busy, the
//!   larger the next batch: under load a connection costs a wake-up and a socket write per
//!   batch, not per frame, and a report per 16 KiB. The batch's text frames go out one per
//!   WebSocket message, or, for a connection [`Framing::Batched`], in as few messages as
//!   [`BATCH_MESSAGE_BYTES`](crate::BATCH_MESSAGE_BYTES) and 64 frames each allow
//!   (`framing.rs`). A socket with a [`WriteQueue`] (the transports' own:
//!   [`Socket::write_queue`](crate::Socket::write_queue)) gets the batch's messages and pings
//!   framed straight into it, and the flush writes them in vectored writes; any other socket
//!   gets them one by one through its sink.
//!
//! The reader is polled only when the socket woke it (`woken.rs`), not each time the task
//! wakes to write.
//!
//! **Closing.** Once the hub closes the connection it listens to nothing more from it, so the
//! reader stops: a peer that floods costs nothing from then on. The writer has
//! `close_timeout` to write what it was handed and the close frame (else the socket is
//! dropped), then the driver waits (again at most `close_timeout`) for the peer's close frame,
//! reading at most [`FRAMES_READ_AFTER_CLOSE`] frames while it does: a peer that sends
//! anything else is dropped.
//!
//! **Stuck writers.** A batch the socket does not take within `write_timeout` (the peer reads
//! nothing, yet keeps its connection alive with pings within the rate) ends the writer: the
//! hub closes the connection as a slow consumer (4008), and the driver writes the close frame
//! if the socket takes it within `close_timeout`, else drops the socket. The socket's write
//! buffer is bounded as well ([`write_buffer_limit`](crate::write_buffer_limit)): a frame that
//! does not fit (the peer has left that much unread, its pongs typically) ends the writer the
//! same way, and the socket is dropped without a close frame, which would not fit either.

use crate::frame::{Frame, Socket, SocketError};
use crate::framing::{Framing, Message};
use crate::outbox::{outbox, Outgoing};
use crate::runtime::{self, Runtime};
use crate::seat::SocketInbox;
use crate::shard::{Out, SocketEvent, Writer};
use crate::shards::Shards;
use crate::woken::Woken;
use crate::write_queue::WriteQueue;
use bytes::Bytes;
use futures_channel::oneshot;
use futures_util::{pin_mut, select, FutureExt, Sink, SinkExt, Stream, StreamExt};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use switchboard::{ConnId, Open, OpenError, Reason};

/// The most frames the driver reads from a peer after the hub closed its connection, while it
/// waits for the peer's close frame: a peer that answers the close has at most what it sent
/// before it saw the close in flight; one that sends more is dropped. Bounds what a flooding
/// peer costs after its close (4029, 4008, ...) whatever `close_timeout` is.
pub const FRAMES_READ_AFTER_CLOSE: usize = 64;

/// The most bytes a writer writes before it reports them to its hub while the hub does not
/// await the report ([`SocketOutput::AwaitingFlush`](switchboard::SocketOutput::AwaitingFlush));
/// while it does, every write is reported at once. Under fan-out most connections never come
/// near their in-flight budget, so most writes need no report: each costs a hand-off to the
/// shard and often a wake-up of its task. Reported late, bytes count as in flight a little
/// longer, which only makes the hub hold frames back sooner, and then it awaits the report.
pub const FLUSH_REPORT_BYTES: usize = 16 * 1024;

/// Why the reader stopped.
enum ReadEnd {
    /// The peer closed or the socket failed.
    Peer,
    /// The WebSocket layer refused what the peer sent (too large, not UTF-8): the read side is
    /// unusable, the hub closes.
    Refused,
}

/// Where the connection is once the reader or the writer ended, or the hub closed it.
enum Phase {
    /// One of the two ended.
    Ended(Ended),
    /// The hub closed the connection (or will, for what the reader refused): the writer
    /// finishes alone. The peer's close frame is awaited only if the stream is `readable`.
    Closing { readable: bool },
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
    /// A batch was not written within `write_timeout`: the peer does not read. With the
    /// hub's close if the batch had taken it.
    Stalled(Option<(u16, Reason)>),
    /// The hub closed the connection and the writer did not finish within `close_timeout`.
    Abandoned,
}

/// Open `open` on its shard and run the connection until it ends, its frames put in messages
/// as `framing` says. `opened` is called with the connection's id once the hub accepted it,
/// and what it returns is kept until the connection ends (or its task is dropped): a transport
/// that must find its connections by id (the Server-Sent Events one, whose client frames arrive
/// in other requests) registers them there.
///
/// Not an async fn: the socket is split and the `Open` boxed before the future is made, so that
/// the connection's task does not keep them besides the halves for as long as it lives (an
/// async fn keeps its arguments).
pub(crate) fn drive<R, S, G>(
    shards: Arc<Shards<R>>,
    open: Open,
    socket: S,
    framing: Framing,
    opened: impl FnOnce(ConnId) -> G,
) -> impl Future<Output = ()>
where
    R: Runtime,
    S: Socket,
{
    let queue = socket.write_queue().cloned();
    let (mut sink, stream) = socket.split();
    // Polled only when the socket woke it, not each time the task wakes to write.
    let mut stream = Woken::new(stream);
    let shard = shards.shard_of(&open.user);
    let open = Box::new(open);
    async move {
        let runtime = shards.runtime.clone();
        let (close_timeout, write_timeout) =
            (shards.options.close_timeout, shards.options.write_timeout);
        let (out, mut outgoing) = outbox();
        let (closing, closed_by_hub) = oneshot::channel();
        let writer = Writer {
            out,
            closing: Some(closing),
        };
        // Boxed, as every step an idle connection is not in: the task keeps, for as long as the
        // connection lives, room for the largest state of its future.
        let accepted = Box::pin(shards.call(shard, move |s, now| s.open(now, *open, writer))).await;
        let conn = match accepted {
            Ok(Ok(conn)) => conn,
            Ok(Err(refused)) => return Box::pin(refuse(&shards, &mut sink, refused)).await,
            Err(_stopped) => {
                let stopped = OpenError::ShuttingDown { restart: false };
                return Box::pin(refuse(&shards, &mut sink, stopped)).await;
            }
        };
        tracing::Span::current().record("conn", tracing::field::display(conn));
        tracing::debug!(shard, %conn, "connection opened");
        let _registered = opened(conn);
        let inbox = shards.socket_inbox(shard);
        let ended = {
            let reader = read(&mut stream, queue.as_ref(), &inbox, conn).fuse();
            let limits = (write_timeout, framing);
            let queue = queue.as_ref();
            let writer = write(
                &runtime,
                limits,
                &mut sink,
                queue,
                &mut outgoing,
                &inbox,
                conn,
            );
            let writer = writer.fuse();
            let mut closed_by_hub = closed_by_hub.fuse();
            pin_mut!(reader, writer);
            let phase = loop {
                select! {
                    end = reader => break match end {
                        ReadEnd::Peer => Phase::Ended(Ended::Peer),
                        ReadEnd::Refused => Phase::Closing { readable: false },
                    },
                    ended = writer => break Phase::Ended(ended),
                    closed = closed_by_hub => if closed.is_ok() {
                        // The hub closed the connection: it reads nothing more from it.
                        break Phase::Closing { readable: true };
                    },
                    // Otherwise the hub forgot it without a close frame: the writer ends after
                    // what it was handed, the reader with the peer.
                }
            };
            match phase {
                Phase::Ended(ended) => ended,
                // The reader is not polled again.
                Phase::Closing { readable } => {
                    match Box::pin(runtime::timeout(&runtime, close_timeout, writer)).await {
                        Some(Ended::Closed) if !readable => Ended::Gone,
                        Some(ended) => ended,
                        None => Ended::Abandoned,
                    }
                }
            }
        };
        Box::pin(async {
            match ended {
                // Let the WebSocket layer finish the closing handshake it may owe the peer.
                Ended::Peer => {
                    let _ = runtime::timeout(&runtime, close_timeout, sink.close()).await;
                }
                Ended::Closed => await_close(&runtime, close_timeout, &mut stream).await,
                // The hub learns why before the socket is dropped (unless it closed the connection
                // already, and that close frame is what did not fit).
                Ended::Overflowed => {
                    tracing::debug!(shard, %conn, "write buffer full");
                    close_as_slow(&shards, shard, conn).await;
                }
                // The same, but the hub's close frame (4008, or the close it had already decided) is
                // written if the socket takes it in time, after what the socket already holds; the
                // frames still waiting in the outbox are dropped, as the peer was not reading them.
                Ended::Stalled(taken) => {
                    tracing::debug!(shard, %conn, "write timed out");
                    close_as_slow(&shards, shard, conn).await;
                    if let Some((code, reason)) = taken.or_else(|| find_close(outgoing.take_now()))
                    {
                        let close = close_frame(code, reason);
                        let sent =
                            runtime::timeout(&runtime, close_timeout, sink.send(close)).await;
                        if let Some(Ok(())) = sent {
                            await_close(&runtime, close_timeout, &mut stream).await;
                        }
                    }
                }
                Ended::Gone | Ended::Abandoned => {}
            }
            // Harmless if the hub already closed it: the id's generation no longer matches.
            let _ = inbox.send(conn, SocketEvent::Closed).await;
        })
        .await;
        tracing::debug!(shard, %conn, "connection ended");
    }
}

/// Have the hub close `conn` as a slow consumer: it counts the close, tells the application
/// and emits its close frame. A no-op if the hub has closed it already.
async fn close_as_slow<R: Runtime>(shards: &Shards<R>, shard: usize, conn: ConnId) {
    let slow = Reason::SlowConsumer;
    let _ = shards
        .call(shard, move |s, _| s.hub.close_connection(conn, slow))
        .await;
}

/// After the close frame was sent: wait at most `limit` for the peer's close frame (or the end
/// of the stream), reading at most [`FRAMES_READ_AFTER_CLOSE`] frames, all discarded.
async fn await_close<R, S>(runtime: &R, limit: Duration, stream: &mut S)
where
    R: Runtime,
    S: Stream<Item = Result<Frame, SocketError>> + Unpin,
{
    let _ = runtime::timeout(runtime, limit, async {
        for _ in 0..FRAMES_READ_AFTER_CLOSE {
            match stream.next().await {
                Some(Ok(Frame::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
}

/// A close frame with `code` and `reason`'s label.
fn close_frame(code: u16, reason: Reason) -> Frame {
    Frame::Close(Some((code, reason.as_str().to_owned())))
}

/// Close a socket whose connection did not open, as `refused` says (its close code and reason),
/// waiting at most `close_timeout` for the close frame to be written.
pub(crate) async fn refuse<R, S>(shards: &Shards<R>, sink: &mut S, refused: OpenError)
where
    R: Runtime,
    S: Sink<Frame, Error = SocketError> + Unpin,
{
    let close = close_frame(refused.close_code(), refused.reason());
    let close_timeout = shards.options.close_timeout;
    let _ = runtime::timeout(&shards.runtime, close_timeout, sink.send(close)).await;
}

/// Feed the hub every frame the peer sends, until it closes or the socket fails. Once the peer
/// closed, `queue` takes no more frames of the writer's: the WebSocket layer answers the close
/// at its next flush, and nothing may follow that.
async fn read<S>(
    stream: &mut S,
    queue: Option<&WriteQueue>,
    inbox: &SocketInbox,
    conn: ConnId,
) -> ReadEnd
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
            Ok(Frame::Close(_)) => {
                if let Some(queue) = queue {
                    queue.close();
                }
                break;
            }
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
        if inbox.send(conn, event).await.is_err() {
            break;
        }
        if matches!(end, ReadEnd::Refused) {
            return end;
        }
    }
    let _ = inbox.send(conn, SocketEvent::Closed).await;
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

/// Perform the hub's outputs for one connection, its frames put in messages as `framing`
/// says, reporting each flushed batch; a batch the socket does not take within
/// `write_timeout` ends it as [`Ended::Stalled`].
async fn write<R, S>(
    runtime: &R,
    (write_timeout, framing): (Duration, Framing),
    sink: &mut S,
    queue: Option<&WriteQueue>,
    outgoing: &mut Outgoing,
    inbox: &SocketInbox,
    conn: ConnId,
) -> Ended
where
    R: Runtime,
    S: Sink<Frame, Error = SocketError> + Unpin,
{
    // Written and not yet reported: gathered while the hub does not await the report.
    let mut unreported = 0;
    while let Some(taken) = outgoing.take(unreported == 0).await {
        let mut outs = taken.outs.into_iter();
        // Set by the batch as soon as it reaches the hub's close; what it has not reached
        // stays in `outs`, so that a stalled batch loses no close either way.
        let mut close = None;
        // Boxed: an idle connection's task keeps no room for a batch in progress.
        let batch = Box::pin(write_batch(sink, queue, &mut outs, framing, &mut close));
        let written = match runtime::timeout(runtime, write_timeout, batch).await {
            Some(Ok(written)) => written,
            Some(Err(e)) => return failed(&e),
            None => return Ended::Stalled(close.or_else(|| find_close(outs))),
        };
        unreported += written;
        if unreported > 0 && (taken.flush_awaited || unreported >= FLUSH_REPORT_BYTES) {
            let flushed = SocketEvent::Flushed(std::mem::take(&mut unreported));
            if inbox.send(conn, flushed).await.is_err() {
                return Ended::Gone;
            }
        }
        if let Some((code, reason)) = close {
            return match sink.send(close_frame(code, reason)).await {
                Ok(()) => Ended::Closed,
                Err(e) => failed(&e),
            };
        }
    }
    Ended::Gone
}

/// Write `outs` (everything the writer took at one wake-up), up to a close, which is left in
/// `close`, its text frames in messages as `framing` says, and flush once; the frames' bytes
/// written. With a write queue the frames are put there, framed, and the flush writes them;
/// without, each goes through the sink.
async fn write_batch<S>(
    sink: &mut S,
    queue: Option<&WriteQueue>,
    outs: &mut impl Iterator<Item = Out>,
    framing: Framing,
    close: &mut Option<(u16, Reason)>,
) -> Result<usize, SocketError>
where
    S: Sink<Frame, Error = SocketError> + Unpin,
{
    let frames = outs.size_hint().0;
    let mut messages = Messages {
        outs,
        message: Message::new(framing),
        ping: None,
        close,
        written: 0,
    };
    match queue {
        Some(queue) => {
            let mut batch = queue.batch(frames);
            for message in &mut messages {
                match message {
                    Written::Text(text) => batch.push_text(text)?,
                    Written::Ping(payload) => batch.push_ping(payload)?,
                }
            }
        }
        None => {
            for message in &mut messages {
                sink.feed(message.into_frame()).await?;
            }
        }
    }
    sink.flush().await?;
    Ok(messages.written)
}

/// A WebSocket message the writer sends.
enum Written {
    /// A text message: one frame, or several as a JSON array.
    Text(Bytes),
    /// A ping of the hub's.
    Ping(Bytes),
}

impl Written {
    fn into_frame(self) -> Frame {
        match self {
            Self::Text(text) => Frame::Text(text),
            Self::Ping(payload) => Frame::Ping(payload),
        }
    }
}

/// The messages of a batch of outputs, in order, up to the hub's close (left in `close`).
struct Messages<'a, I> {
    outs: &'a mut I,
    /// The text message being gathered.
    message: Message,
    /// A ping that waits for the message before it.
    ping: Option<Bytes>,
    close: &'a mut Option<(u16, Reason)>,
    /// The frames' bytes so far.
    written: usize,
}

impl<I: Iterator<Item = Out>> Iterator for Messages<'_, I> {
    type Item = Written;

    fn next(&mut self) -> Option<Written> {
        if let Some(payload) = self.ping.take() {
            return Some(Written::Ping(payload));
        }
        while self.close.is_none() {
            match self.outs.next() {
                Some(Out::Frame(frame)) => {
                    self.written += frame.len();
                    if let Some(full) = self.message.push(frame) {
                        return Some(Written::Text(full));
                    }
                }
                // A ping ends the message: what came before it goes first.
                Some(Out::Ping(payload)) => {
                    let ping = Bytes::copy_from_slice(&payload);
                    match self.message.take() {
                        Some(before) => {
                            self.ping = Some(ping);
                            return Some(Written::Text(before));
                        }
                        None => return Some(Written::Ping(ping)),
                    }
                }
                // Nothing follows the hub's close.
                Some(Out::Close(code, reason)) => *self.close = Some((code, reason)),
                None => break,
            }
        }
        self.message.take().map(Written::Text)
    }
}

/// The hub's close among `outs`, if it is there.
fn find_close(outs: impl IntoIterator<Item = Out>) -> Option<(u16, Reason)> {
    outs.into_iter().find_map(|out| match out {
        Out::Close(code, reason) => Some((code, reason)),
        Out::Frame(_) | Out::Ping(_) => None,
    })
}

/// How the writer ends on a write failure. A frame refused because the peer closed ends it as
/// the peer did: the reader saw the close in the same wake-up, and the WebSocket layer still
/// owes its answer, after whatever part of a frame the socket has not taken yet.
fn failed(e: &SocketError) -> Ended {
    if e.is_write_buffer_full() {
        Ended::Overflowed
    } else if e.is_peer_closed() {
        Ended::Peer
    } else {
        tracing::debug!(error = %e, "write failed");
        Ended::Gone
    }
}
