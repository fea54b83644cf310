//! Errors returned to the code driving the hub (never sent to clients as such).

use crate::id::ConnId;
use crate::reason::Reason;
use crate::run::{RunError, RunLimit};
use thiserror::Error;

/// Why a connection could not open. The transport closes the socket with [`OpenError::close_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The hub is shutting down; `restart`: the node restarts while others serve (1012),
    /// otherwise 1001.
    #[error("the hub is shutting down")]
    ShuttingDown {
        /// Shut down with [`Reason::ServiceRestart`].
        restart: bool,
    },
    /// The user has `max_connections_per_user` connections and the policy is `RejectNew`.
    #[error("the user is at the per-user connection limit")]
    UserLimit,
    /// The hub has `max_connections` connections.
    #[error("the hub is at its connection limit")]
    ServerFull,
}

impl OpenError {
    /// The reason, as counted in stats.
    pub fn reason(self) -> Reason {
        match self {
            OpenError::ShuttingDown { restart: true } => Reason::ServiceRestart,
            OpenError::ShuttingDown { restart: false } => Reason::Shutdown,
            OpenError::UserLimit => Reason::UserLimit,
            OpenError::ServerFull => Reason::ServerFull,
        }
    }

    /// The WebSocket close code to refuse the connection with.
    pub fn close_code(self) -> u16 {
        self.reason().close_code().unwrap_or(1008)
    }
}

/// An input or request named a connection that does not exist (closed, or a stale id whose
/// slot now holds another connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("unknown connection {0}")]
pub struct UnknownConnection(pub ConnId);

/// Why a publish or agent update was refused. Nothing was delivered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The target connection does not exist, or (through a user scope) is not the user's.
    #[error(transparent)]
    UnknownConnection(#[from] UnknownConnection),
    /// The agent event is out of order for its run.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The event would start a run while `max_active_runs_per_user` runs of the user, or
    /// `max_active_runs` runs of the hub, are in progress.
    #[error("too many agent runs in progress {0}")]
    TooManyRuns(RunLimit),
}

/// Why a server-side room or thread operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RoomError {
    /// The connection does not exist.
    #[error(transparent)]
    UnknownConnection(#[from] UnknownConnection),
    /// The connection's access does not allow that room.
    #[error("the connection may not join that room")]
    Forbidden,
    /// The room is full.
    #[error("the room is full")]
    RoomFull,
    /// The connection is in too many rooms.
    #[error("the connection is in too many rooms")]
    TooManyRooms,
    /// The connection is not a member of that room.
    #[error("the connection is not a member of that room")]
    NotMember,
}
