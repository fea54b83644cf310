//! The Server-Sent Events transport, runtime- and framework-neutral: a hub connection whose
//! server frames are a `text/event-stream` response body ([`EventStream`]) and whose client
//! frames arrive in separate HTTP requests ([`SseConnections::find`], [`SseInbox::deliver`]).
//!
//! It is the WebSocket connection's driver over another [`Socket`](crate::Socket)
//! ([`SseSocket`]): the same per-connection outbound queue, backpressure, heartbeats, limits,
//! close reasons and shutdown, with the event encoding of `event.rs` instead of WebSocket
//! frames. An HTTP framework serves it in two routes (`switchboard_tokio::axum::sse` does it
//! for axum):
//!
//! - `GET`: authenticate, build the [`Open`] (with the position of `Last-Event-ID`, see
//!   [`position_from_event_id`]), then [`Handle::open_sse`]: answer the returned body as
//!   `text/event-stream` and run the returned future (the connection) in a task;
//! - `POST .../{conn}`: authenticate, find the connection's [`SseInbox`], then deliver the
//!   body to it: one frame, or several as newline-delimited JSON. The connection id is `welcome.conn`; a connection is
//!   found only with its own user's credential, so another user's id is answered exactly as
//!   an unknown one.

mod event;
mod socket;

pub use event::position_from_event_id;
pub use socket::{EventStream, SseSocket, CHUNKS_IN_FLIGHT, INBOUND_FRAMES};

use crate::frame::{Frame, SocketError};
use crate::handle::Handle;
use crate::runtime::Runtime;
use bytes::Bytes;
use socket::Inbound;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use switchboard::{ConnId, Open, UserId};

/// The most frames one `POST` may carry (newline-delimited). A body with more is refused as a
/// whole ([`PostError::TooManyFrames`]).
pub const MAX_FRAMES_PER_POST: usize = 64;

/// The Server-Sent Events connections open on this node, by id: where posted client frames go.
/// Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct SseConnections {
    open: Arc<Mutex<HashMap<ConnId, Entry>>>,
}

/// One open connection: its user, and its inbox.
struct Entry {
    user: UserId,
    inbound: async_channel::Sender<Inbound>,
}

/// Why a `POST` was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostError {
    /// No open connection of this user has that id (unknown, closed, or another user's: the
    /// same answer, which tells nothing about other users' connections). HTTP 404.
    NotFound,
    /// The body is larger than [`Handle::message_limit`]: nothing was delivered and the
    /// connection is closed with 1009, as a WebSocket frame over that limit
    /// ([`SseInbox::refuse_too_large`]). HTTP 413.
    TooLarge,
    /// The body holds more than [`MAX_FRAMES_PER_POST`] frames: nothing was delivered, the
    /// connection stays open. HTTP 413.
    TooManyFrames,
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotFound => "no such connection",
            Self::TooLarge => "the body is larger than the connection accepts",
            Self::TooManyFrames => "the body holds more frames than one request may carry",
        })
    }
}

impl std::error::Error for PostError {}

/// One open connection's inbox ([`SseConnections::find`]).
#[derive(Debug)]
pub struct SseInbox {
    inbound: async_channel::Sender<Inbound>,
}

impl SseInbox {
    /// Deliver the client frames of one request, in order: `body` is one frame, or several
    /// separated by newlines (blank lines are skipped), at most [`Handle::message_limit`]
    /// bytes in all (the framework reads at most that much, else [`SseInbox::refuse_too_large`]).
    /// Frames are not checked here: the hub reads them as it reads WebSocket text frames
    /// (UTF-8, size, JSON, rate and strikes), and its answers arrive on the event stream.
    /// Returns how many frames were delivered.
    pub async fn deliver(&self, body: Bytes) -> Result<usize, PostError> {
        let frames: Vec<Bytes> = body
            .split(|&b| b == b'\n')
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .map(|line| body.slice_ref(line.strip_suffix(b"\r").unwrap_or(line)))
            .take(MAX_FRAMES_PER_POST + 1)
            .collect();
        if frames.len() > MAX_FRAMES_PER_POST {
            return Err(PostError::TooManyFrames);
        }
        let count = frames.len();
        for frame in frames {
            // Closed: the connection ended while the request was read.
            if self.inbound.send(Ok(Frame::Text(frame))).await.is_err() {
                return Err(PostError::NotFound);
            }
        }
        Ok(count)
    }

    /// The request's body is over [`Handle::message_limit`]: the connection is closed with
    /// 1009, as a WebSocket frame over it is. Answer [`PostError::TooLarge`].
    pub async fn refuse_too_large(&self) {
        let refused = SocketError::too_large("a posted body over the message limit");
        let _ = self.inbound.send(Err(refused)).await;
    }
}

/// Removes a connection from [`SseConnections`] when dropped (when the connection ends).
struct Registered {
    connections: SseConnections,
    conn: ConnId,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.connections.entries().remove(&self.conn);
    }
}

impl SseConnections {
    /// No connections.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many are open.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, Entry>> {
        // A panic while holding the map leaves it consistent (single inserts and removes).
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The inbox of connection `conn` of `user`, where the frames of a `POST` go: found only
    /// with the connection's own user ([`PostError::NotFound`] otherwise, the same answer as
    /// for an unknown id). Look it up before reading the request's body.
    pub fn find(&self, user: &str, conn: &str) -> Result<SseInbox, PostError> {
        let conn = conn.parse::<ConnId>().map_err(|_| PostError::NotFound)?;
        match self.entries().get(&conn) {
            Some(entry) if entry.user.as_str() == user => Ok(SseInbox {
                inbound: entry.inbound.clone(),
            }),
            _ => Err(PostError::NotFound),
        }
    }

    fn register(
        &self,
        conn: ConnId,
        user: UserId,
        inbound: async_channel::Sender<Inbound>,
    ) -> Registered {
        self.entries().insert(conn, Entry { user, inbound });
        Registered {
            connections: self.clone(),
            conn,
        }
    }
}

impl fmt::Debug for SseConnections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseConnections")
            .field("open", &self.len())
            .finish()
    }
}

impl<R: Runtime> Handle<R> {
    /// Open a Server-Sent Events connection of `open.user`: the response body to answer with
    /// (`text/event-stream`), and the connection, to run in a task of its own (it is tracked by
    /// [`Handle::shutdown`], and registered in `connections` while it is open). A refused open
    /// (per-user limit, shutdown) writes its close event and ends the body, as the WebSocket
    /// transport writes its close frame.
    pub fn open_sse(
        &self,
        connections: &SseConnections,
        open: Open,
    ) -> (EventStream, impl Future<Output = ()> + Send + 'static) {
        let (socket, body, inbound) = socket::pair();
        let (handle, connections) = (self.clone(), connections.clone());
        let user = open.user.clone();
        let run = async move {
            let opened = move |conn| connections.register(conn, user, inbound);
            handle.run_socket_with(open, socket, opened).await;
        };
        (body, run)
    }
}
