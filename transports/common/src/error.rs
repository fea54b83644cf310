//! [`Error`]: why a request through the [`Handle`](crate::Handle) or a
//! [`UserHandle`](crate::UserHandle) failed.

use std::fmt;
use switchboard::{ConnId, PublishError, RoomError};

/// Why a request through the [`Handle`](crate::Handle) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The hub refused the publish or agent update (see [`PublishError`]).
    Publish(PublishError),
    /// The hub refused the room or thread operation (see [`RoomError`]).
    Room(RoomError),
    /// The connection does not exist (closed, never existed, or not the scope's user's).
    UnknownConnection(ConnId),
    /// The switchboard has shut down: there is no answer, not even an empty one.
    Stopped,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Publish(e) => write!(f, "publish refused: {e}"),
            Error::Room(e) => write!(f, "room operation refused: {e}"),
            Error::UnknownConnection(c) => write!(f, "unknown connection {c}"),
            Error::Stopped => f.write_str("the switchboard has shut down"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Publish(e) => Some(e),
            Error::Room(e) => Some(e),
            _ => None,
        }
    }
}
