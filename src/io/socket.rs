//! The sockets' side of the boundary: what a connection's socket did ([`SocketInput`], through
//! [`Hub::handle_socket`](crate::Hub::handle_socket)) and what the transport must do on it
//! ([`SocketOutput`]).

use crate::id::ConnId;
use crate::reason::Reason;
use bytes::Bytes;

/// Something that happened on a connection's socket, fed to
/// [`Hub::handle_socket`](crate::Hub::handle_socket). Each names its connection; one the hub
/// no longer knows (the input raced the connection's close) is
/// [`UnknownConnection`](crate::UnknownConnection), and the transport ignores it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum SocketInput<'a> {
    /// A text frame's payload, as received (validated as UTF-8 by the hub).
    Text {
        /// The connection.
        conn: ConnId,
        /// The payload.
        bytes: &'a [u8],
    },
    /// A binary frame (not part of the protocol: closed with 1003).
    Binary {
        /// The connection.
        conn: ConnId,
        /// The payload.
        bytes: &'a [u8],
    },
    /// A ping control frame from the peer. The transport's WebSocket layer answers it with a
    /// pong by itself; the hub counts it as a sign of life and against the connection's message
    /// rate, like a text frame: past the rate it takes a strike (without an `error` frame), and
    /// with no strike left the connection closes with 4029.
    Ping {
        /// The connection.
        conn: ConnId,
    },
    /// A pong control frame with its payload. A pong that answers no ping of the hub's
    /// (unsolicited) counts against the message rate as [`SocketInput::Ping`] does.
    Pong {
        /// The connection.
        conn: ConnId,
        /// The payload (echo of the ping's).
        payload: &'a [u8],
    },
    /// The transport wrote `bytes` of this connection's frames to the socket.
    Flushed {
        /// The connection.
        conn: ConnId,
        /// How many bytes of [`SocketOutput::Send`] frames were written.
        bytes: usize,
    },
    /// The peer closed the connection or the socket failed.
    Closed {
        /// The connection.
        conn: ConnId,
    },
}

impl SocketInput<'_> {
    /// The connection whose socket this happened on.
    pub fn conn(&self) -> ConnId {
        match *self {
            SocketInput::Text { conn, .. }
            | SocketInput::Binary { conn, .. }
            | SocketInput::Ping { conn }
            | SocketInput::Pong { conn, .. }
            | SocketInput::Flushed { conn, .. }
            | SocketInput::Closed { conn } => conn,
        }
    }
}

/// What the transport must do on one connection's socket, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocketOutput {
    /// Write this text frame to the connection, then report [`SocketInput::Flushed`] (at once
    /// while the hub awaits the report, see [`SocketOutput::AwaitingFlush`]).
    Send {
        /// The connection.
        conn: ConnId,
        /// A complete JSON text frame, shared by every recipient.
        frame: Bytes,
    },
    /// Send a ping control frame with this payload.
    Ping {
        /// The connection.
        conn: ConnId,
        /// The payload the pong must echo.
        payload: [u8; 8],
    },
    /// Whether the hub holds frames for the connection until [`SocketInput::Flushed`] makes
    /// room in its in-flight budget (`awaiting`), or no longer holds any (`!awaiting`): a
    /// transport may gather several writes into one report while the hub does not await it,
    /// and must report each write at once while it does. Reported late, written bytes only make
    /// the hub count more in flight than there is, never less; a report the hub awaits and does
    /// not get would leave the connection's frames waiting.
    AwaitingFlush {
        /// The connection.
        conn: ConnId,
        /// True from the first frame the hub holds, false once it handed out the last.
        awaiting: bool,
    },
    /// Send a close frame with `code` and the reason's label, then drop the socket. The hub
    /// has already forgotten the connection.
    Close {
        /// The connection.
        conn: ConnId,
        /// The WebSocket close code.
        code: u16,
        /// Why.
        reason: Reason,
    },
}

impl SocketOutput {
    /// The connection whose socket this is for.
    pub fn conn(&self) -> ConnId {
        match *self {
            SocketOutput::Send { conn, .. }
            | SocketOutput::Ping { conn, .. }
            | SocketOutput::AwaitingFlush { conn, .. }
            | SocketOutput::Close { conn, .. } => conn,
        }
    }
}
