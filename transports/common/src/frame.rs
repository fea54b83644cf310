//! WebSocket messages independent of the WebSocket library ([`Frame`]), the [`Socket`] the
//! driver runs, and the [`Adapter`] that makes one of any library's socket given its
//! [`Codec`]; the codec of tungstenite ([`Tungstenite`]) serves both tokio-tungstenite and
//! async-tungstenite.

use crate::write_queue::WriteQueue;
use bytes::Bytes;
use futures_util::{Sink, Stream};
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::{frame, CloseFrame};
use tungstenite::Message;

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

/// What kind of failure a [`SocketError`] is: the ones the hub answers with a close code of
/// its own, or any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Other,
    TooLarge,
    InvalidUtf8,
    WriteBufferFull,
    PeerClosed,
}

/// A failure of the underlying WebSocket.
#[derive(Debug)]
pub struct SocketError {
    kind: Kind,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl SocketError {
    fn of(kind: Kind, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            kind,
            source: source.into(),
        }
    }

    /// A read or write failure.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::of(Kind::Other, source)
    }

    /// The peer sent a message larger than the socket accepts: the hub closes it with 1009.
    pub fn too_large(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::of(Kind::TooLarge, source)
    }

    /// The peer sent a text message that is not UTF-8 and the WebSocket library refused it
    /// before the hub saw it: the hub closes it with 1007.
    pub fn invalid_utf8(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::of(Kind::InvalidUtf8, source)
    }

    /// A frame did not fit the socket's bounded write buffer: the peer has not read what was
    /// written to it (its pongs, typically) for so long that the buffer is full. The hub closes
    /// it as a slow consumer (4008).
    pub fn write_buffer_full(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::of(Kind::WriteBufferFull, source)
    }

    /// The peer closed its side: a frame of the driver's is refused, as none may follow the
    /// close answer the WebSocket layer owes (see [`WriteQueue`](crate::WriteQueue)).
    pub(crate) fn peer_closed() -> Self {
        Self::of(Kind::PeerClosed, "the peer closed the connection")
    }

    /// A tungstenite error, classified: capacity errors are [`SocketError::too_large`],
    /// UTF-8 errors [`SocketError::invalid_utf8`], a full write buffer
    /// [`SocketError::write_buffer_full`].
    pub fn from_tungstenite(e: tungstenite::Error) -> Self {
        match e {
            e @ tungstenite::Error::Capacity(_) => Self::too_large(e),
            e @ tungstenite::Error::Utf8(_) => Self::invalid_utf8(e),
            e @ tungstenite::Error::WriteBufferFull(_) => Self::write_buffer_full(e),
            e => Self::new(e),
        }
    }

    /// True for a message larger than the socket accepts.
    pub fn is_too_large(&self) -> bool {
        self.kind == Kind::TooLarge
    }

    /// True for a text message that is not UTF-8.
    pub fn is_invalid_utf8(&self) -> bool {
        self.kind == Kind::InvalidUtf8
    }

    /// True for a frame that did not fit the bounded write buffer.
    pub fn is_write_buffer_full(&self) -> bool {
        self.kind == Kind::WriteBufferFull
    }

    /// True for a frame refused because the peer closed its side.
    pub(crate) fn is_peer_closed(&self) -> bool {
        self.kind == Kind::PeerClosed
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
/// Implemented by [`Adapter`], which wraps your library's socket with a [`Codec`] for its
/// messages ([`Tungstenite`] for tokio-tungstenite and async-tungstenite), and by the
/// Server-Sent Events socket. A socket of your own needs only `impl Socket for MySocket {}`.
pub trait Socket:
    Stream<Item = Result<Frame, SocketError>>
    + Sink<Frame, Error = SocketError>
    + Send
    + Unpin
    + 'static
{
    /// The queue the socket's bytes are written through, if the driver may put its frames
    /// there itself, framed, rather than through the sink (see [`WriteQueue`]); flushing the
    /// sink writes them. `None` (the default): every frame goes through the sink.
    fn write_queue(&self) -> Option<&WriteQueue> {
        None
    }
}

/// How one WebSocket library's messages and errors map to [`Frame`]s and [`SocketError`]s:
/// with it, [`Adapter`] turns that library's socket into a [`Socket`].
pub trait Codec {
    /// The library's message.
    type Message;
    /// The library's error.
    type Error: Into<Box<dyn std::error::Error + Send + Sync>>;

    /// The frame a message read from the peer is, or `None` for one the driver never sees.
    fn decode(message: Self::Message) -> Option<Frame>;

    /// The message that writes `frame`.
    fn encode(frame: Frame) -> Result<Self::Message, SocketError>;

    /// A read or write failure, classified ([`SocketError::too_large`],
    /// [`SocketError::invalid_utf8`], [`SocketError::write_buffer_full`] or any other).
    fn error(error: Self::Error) -> SocketError;
}

/// The WebSocket `W` of the library `C` describes, as a [`Socket`]: a stream of `C`'s
/// messages and a sink for them, converted frame by frame.
#[derive(Debug)]
pub struct Adapter<W, C> {
    socket: W,
    queue: Option<WriteQueue>,
    codec: PhantomData<fn() -> C>,
}

impl<W, C> Adapter<W, C> {
    /// Adapt `socket`: every frame goes through the library.
    pub fn new(socket: W) -> Self {
        Self {
            socket,
            queue: None,
            codec: PhantomData,
        }
    }

    /// Adapt `socket`, whose bytes the library writes through `queue` (the `Wire` of
    /// `switchboard_tokio` or `switchboard_async_std` under it): the driver puts its text
    /// frames and pings in the queue itself, and the library's flush writes them.
    pub fn with_write_queue(socket: W, queue: WriteQueue) -> Self {
        Self {
            socket,
            queue: Some(queue),
            codec: PhantomData,
        }
    }

    /// The library's socket.
    pub fn into_inner(self) -> W {
        self.socket
    }
}

impl<W, C> Stream for Adapter<W, C>
where
    C: Codec,
    W: Stream<Item = Result<C::Message, C::Error>> + Unpin,
{
    type Item = Result<Frame, SocketError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let frame = match ready!(Pin::new(&mut self.socket).poll_next(cx)) {
                None => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(C::error(e)))),
                Some(Ok(message)) => C::decode(message),
            };
            if let Some(frame) = frame {
                return Poll::Ready(Some(Ok(frame)));
            }
        }
    }
}

impl<W, C> Sink<Frame> for Adapter<W, C>
where
    C: Codec,
    W: Sink<C::Message, Error = C::Error> + Unpin,
{
    type Error = SocketError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SocketError>> {
        Pin::new(&mut self.socket).poll_ready(cx).map_err(C::error)
    }

    fn start_send(mut self: Pin<&mut Self>, frame: Frame) -> Result<(), SocketError> {
        let message = C::encode(frame)?;
        Pin::new(&mut self.socket)
            .start_send(message)
            .map_err(C::error)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SocketError>> {
        Pin::new(&mut self.socket).poll_flush(cx).map_err(C::error)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SocketError>> {
        Pin::new(&mut self.socket).poll_close(cx).map_err(C::error)
    }
}

impl<W, C> Socket for Adapter<W, C>
where
    C: Codec + 'static,
    W: Stream<Item = Result<C::Message, C::Error>>
        + Sink<C::Message, Error = C::Error>
        + Send
        + Unpin
        + 'static,
{
    fn write_queue(&self) -> Option<&WriteQueue> {
        self.queue.as_ref()
    }
}

/// tungstenite's messages, for tokio-tungstenite's and async-tungstenite's `WebSocketStream`
/// (`Adapter<WebSocketStream<_>, Tungstenite>`). Text frames are written as raw frames, so
/// the hub's `Bytes` go out without a copy or a second UTF-8 check.
#[derive(Debug)]
pub enum Tungstenite {}

impl Codec for Tungstenite {
    type Message = Message;
    type Error = tungstenite::Error;

    fn decode(message: Message) -> Option<Frame> {
        Some(match message {
            Message::Text(text) => Frame::Text(text.into()),
            Message::Binary(bytes) => Frame::Binary(bytes),
            Message::Ping(payload) => Frame::Ping(payload),
            Message::Pong(payload) => Frame::Pong(payload),
            Message::Close(close) => {
                Frame::Close(close.map(|c| (u16::from(c.code), c.reason.as_str().to_owned())))
            }
            // Raw frames are never produced by reading.
            Message::Frame(_) => return None,
        })
    }

    fn encode(frame: Frame) -> Result<Message, SocketError> {
        Ok(match frame {
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
        })
    }

    fn error(error: tungstenite::Error) -> SocketError {
        SocketError::from_tungstenite(error)
    }
}
