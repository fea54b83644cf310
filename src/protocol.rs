//! The wire protocol: JSON text frames from clients, parsed in [`client`]; frames to clients,
//! encoded in [`server`] once into [`Bytes`](bytes::Bytes) and shared by every recipient; and the
//! stable codes of `error` frames, which both sides name.
//!
//! `docs/PROTOCOL.md` is the prose version of this module. Unknown fields are ignored,
//! unknown `type`s and malformed JSON are parse errors that become `error` frames.

mod client;
mod server;

pub(crate) use client::{parse, ClientFrame};
#[cfg(feature = "schema")]
pub(crate) use client::{AppFrameSchema, ClientFrameSchema};
pub use client::{StreamPosition, CLIENT_FRAME_TYPES, MAX_REF_BYTES, MAX_TOKEN_BYTES};
use serde::Serialize;
pub(crate) use server::{encode, LeftReason, RunFrame, Sequence, ServerFrame};
/// The stable code of an `error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not valid JSON, or has no string `type`.
    MalformedJson,
    /// The frame's `type` is known but a field is missing or of the wrong type.
    InvalidFrame,
    /// The frame's `type` is not part of the protocol.
    UnknownType,
    /// The frame came faster than the rate limit and was dropped.
    RateLimited,
    /// The connection may not join that room or address that stream.
    Forbidden,
    /// Publishing to or leaving a room the connection is not in.
    NotMember,
    /// The room has `max_members_per_room` members.
    RoomFull,
    /// The connection is in `max_rooms_per_connection` rooms.
    TooManyRooms,
    /// `resume` for a stream that already delivered live messages to this connection.
    AlreadyLive,
    /// The fresh token of a `refresh` frame did not verify.
    InvalidToken,
    /// A `refresh` frame while the connection's previous one is still being verified.
    RefreshInProgress,
    /// The application's backend could not take an application frame (its queue is full, or
    /// it kept failing): the frame was not handled.
    BackendUnavailable,
    /// `cancel` for a run that is not one of the user's runs in progress on this node
    /// (another user's run gets the same answer: it does not exist for this user).
    UnknownRun,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::InvalidFrame => "invalid_frame",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotMember => "not_member",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::AlreadyLive => "already_live",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::RefreshInProgress => "refresh_in_progress",
            ErrorCode::BackendUnavailable => "backend_unavailable",
            ErrorCode::UnknownRun => "unknown_run",
        }
    }
}
