//! What the hub sends: every server frame as it is serialized, each encoded once into
//! [`Bytes`] that every recipient shares.

use super::ErrorCode;
use crate::id::{AgentId, ConnId, RoomId, RunId, ThreadId, UserId};
use crate::presence::{PresenceEvent, Roster};
use crate::run::AgentEvent;
use crate::stream::GapReason;
use crate::stream::{Position, StreamId};
use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;

/// Where a sequenced frame sits in its stream. Without a position the frame is a template
/// for the cluster's sequencer, which seals it (see [`crate::sequenced`]).
#[derive(Debug, Clone, Copy, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub(crate) struct Sequence<'a> {
    pub stream: &'a StreamId,
    // Clients only ever receive sealed frames: for them the position is always there.
    #[serde(flatten)]
    #[cfg_attr(feature = "schema", schemars(with = "Position"))]
    pub position: Option<Position>,
}

impl<'a> Sequence<'a> {
    /// `stream` at `position`.
    pub fn at(stream: &'a StreamId, position: Position) -> Self {
        Self {
            stream,
            position: Some(position),
        }
    }
}

/// A frame the hub sends to clients. Encoded once with [`ServerFrame::encode`].
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ServerFrame<'a> {
    /// The first frame of every connection; `epoch`/`seq` is the user stream's head.
    Welcome {
        conn: ConnId,
        user: &'a UserId,
        #[serde(skip_serializing_if = "Option::is_none")]
        thread: Option<&'a ThreadId>,
        heartbeat_ms: u64,
        stream: &'a StreamId,
        epoch: u64,
        seq: u64,
    },
    /// An application message; sequenced messages carry `stream`/`epoch`/`seq`.
    Message {
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        sequence: Option<Sequence<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a RoomId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        thread: Option<&'a ThreadId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<&'a UserId>,
        event: &'a str,
        data: &'a serde_json::Value,
    },
    /// The connection is in the room; `epoch`/`seq` is the room stream's head.
    Joined {
        room: &'a RoomId,
        #[serde(flatten)]
        sequence: Sequence<'a>,
        /// Who is in the room, for a member that watches presence.
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        roster: Option<Roster>,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a RawValue>,
    },
    /// A user arrived in a room or left it (to members that watch the room's presence).
    Presence {
        /// The room.
        room: &'a RoomId,
        /// Whether the user arrived (`join`) or left (`leave`).
        event: PresenceEvent,
        /// The user.
        user: &'a UserId,
    },
    /// The connection is no longer in the room.
    Left {
        room: &'a RoomId,
        /// Why the hub took the connection out of the room, when the client did not ask.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<LeftReason>,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a RawValue>,
    },
    /// The thread the connection is now bound to (`null`: none).
    Bound {
        thread: Option<&'a ThreadId>,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a RawValue>,
    },
    /// The answer to `ping`.
    Pong {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a RawValue>,
    },
    /// Messages `from`..`to` of `stream` cannot be delivered; `epoch` is the stream's current one.
    Gap {
        stream: &'a StreamId,
        epoch: u64,
        from: u64,
        to: u64,
        reason: GapReason,
    },
    /// The replay of a stream the connection was already on is complete; `epoch`/`seq` is its
    /// head.
    Resumed {
        #[serde(flatten)]
        sequence: Sequence<'a>,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a RawValue>,
    },
    /// A refused frame: `code` is stable, `message` is for humans.
    Error {
        code: ErrorCode,
        message: &'a str,
        /// The stable reason of an `invalid_token`.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a RawValue>,
    },
    /// The connection's token expires soon: the client is asked for a fresh one.
    Refresh { expires_in: u64 },
    /// The application's answer to a client frame of its own type.
    Reply {
        data: &'a serde_json::Value,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a RawValue>,
    },
    /// An `error` with a code the application chose (see `AppErrorCode`).
    #[serde(rename = "error")]
    AppError {
        code: &'a str,
        message: &'a str,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a RawValue>,
    },
    /// A fresh token was accepted; its grants apply from now on.
    Refreshed {
        #[serde(skip_serializing_if = "Option::is_none")]
        expires_in: Option<u64>,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a RawValue>,
    },
}

/// Why the hub took a connection out of a room on its own (the `reason` of a `left` frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub(crate) enum LeftReason {
    /// The connection's fresh token does not allow the room.
    Forbidden,
}

/// An agent run event as clients receive it: `type` is the event kind.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub(crate) struct RunFrame<'a> {
    #[serde(rename = "type")]
    #[cfg_attr(feature = "schema", schemars(with = "crate::run::EventKind"))]
    pub kind: &'static str,
    pub run: &'a RunId,
    pub agent: &'a AgentId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread: Option<&'a ThreadId>,
    #[serde(flatten)]
    pub sequence: Sequence<'a>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub event: Option<&'a AgentEvent>,
}

impl ServerFrame<'_> {
    /// Serialize the frame once; recipients share the bytes.
    pub(crate) fn encode(&self) -> Bytes {
        encode(self)
    }
}

/// Serialize any server frame to shared bytes.
pub(crate) fn encode<T: Serialize + ?Sized>(frame: &T) -> Bytes {
    // Serializing these types cannot fail: every map key is a string and no Serialize impl
    // of ours returns an error.
    Bytes::from(serde_json::to_vec(frame).expect("server frames always serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::Position;

    #[test]
    fn frames_encode_with_their_type_tag() {
        let stream = StreamId::Room("a".into());
        let data = serde_json::json!({"x": 1});
        let bytes = ServerFrame::Message {
            sequence: Some(Sequence::at(&stream, Position { epoch: 4, seq: 2 })),
            room: None,
            thread: None,
            from: None,
            event: "e",
            data: &data,
        }
        .encode();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"message","stream":"room:a","epoch":4,"seq":2,"event":"e","data":{"x":1}})
        );
    }
}
