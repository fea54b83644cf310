//! The wire protocol: JSON text frames from clients, parsed here; frames to clients, encoded
//! here once into [`Bytes`] and shared by every recipient.
//!
//! `docs/PROTOCOL.md` is the prose version of this module. Unknown fields are ignored,
//! unknown `type`s and malformed JSON are parse errors that become `error` frames.

use crate::config::Config;
use crate::id::{AgentId, ConnId, RoomId, RunId, ThreadId, UserId};
use crate::presence::{PresenceEvent, Roster};
use crate::run::AgentEvent;
pub(crate) use crate::stream::GapReason;
use crate::stream::{Position, StreamId};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// A frame a client sent, after parsing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ClientFrame {
    /// Join a room, optionally replaying what was missed after `since`.
    Join {
        room: RoomId,
        since: Option<Position>,
        /// Whether the member hears who comes and goes; `None`: the configured patterns say.
        presence: Option<bool>,
    },
    /// Leave a room.
    Leave { room: RoomId },
    /// Publish to the other members of a room.
    Publish {
        room: RoomId,
        event: String,
        data: serde_json::Value,
    },
    /// Bind to a thread, or unbind with `None`.
    Bind { thread: Option<ThreadId> },
    /// An application-level ping; answered with `pong`.
    Ping,
    /// Replay what was missed on each stream after the given positions.
    Resume { streams: Vec<StreamPosition> },
    /// A fresh token, for the application to verify.
    Refresh { token: String },
    /// Ask the producer of one of the user's runs in progress to cancel it.
    Cancel { run: RunId },
    /// A frame of a type the application registered in `Config::app_frame_types`.
    App {
        kind: String,
        payload: serde_json::Value,
    },
}

/// The client frames of the protocol as the JSON Schema describes them ([`crate::protocol_schema`]):
/// each `type` with the body [`parse`] reads for it. [`parse`] reads frames itself (the `ref`
/// first, then the body by `type`); this enum only names the pairs, so a new frame type of
/// [`parse`] gets its variant here (the schema's tests check that the two agree).
#[cfg(feature = "schema")]
#[derive(schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum ClientFrameSchema {
    /// Join a room; answered `joined`. With `since`, followed by `gap` or the missed messages.
    Join(JoinBody),
    /// Leave a room; answered `left`.
    Leave(RoomBody),
    /// Publish to the other members of a room: no answer on success.
    Publish(PublishBody),
    /// Bind to a thread, or unbind with `null`; answered `bound`.
    Bind(BindBody),
    /// An application-level ping; answered `pong`.
    Ping,
    /// Replay what was missed on each stream; one answer per stream, each with the `ref`.
    Resume(ResumeBody),
    /// A fresh token, answering a server `refresh`; answered `refreshed` or `error`.
    Refresh(RefreshBody),
    /// Ask the producer of one of the user's runs in progress to cancel it; answered `reply`
    /// when a producer channel heard it, or `error` (`unknown_run`, `no_producer`).
    Cancel(CancelBody),
}

/// An application frame: a `type` the server lists in `[frames] types`, with its `data`.
#[cfg(feature = "schema")]
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
pub(crate) struct AppFrameSchema {
    /// One of the server's application frame types (never a protocol frame type).
    #[serde(rename = "type")]
    kind: String,
    #[serde(flatten)]
    body: AppBody,
}

/// A client's position on one stream, as sent in `resume`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StreamPosition {
    /// The stream, as `user:<id>` or `room:<id>`.
    pub stream: StreamId,
    /// The epoch and last sequence number the client saw.
    #[serde(flatten)]
    pub position: Position,
}

/// A parsed frame and its optional `ref`, echoed in the reply.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub frame: ClientFrame,
    pub reference: Option<Box<RawValue>>,
}

/// Why a client frame could not be parsed.
#[derive(Debug)]
pub(crate) struct ParseError {
    pub code: ErrorCode,
    pub message: String,
    pub reference: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(rename = "ref", default)]
    reference: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub(crate) struct JoinBody {
    /// The room.
    room: RoomId,
    /// The last position the client saw on the room's stream: replay what came after it.
    #[serde(default)]
    since: Option<Position>,
    /// Watch the room's presence (`true`), or not even where the server's settings would
    /// (`false`); absent or `null`: as the settings say.
    #[serde(default)]
    presence: Option<bool>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub(crate) struct RoomBody {
    /// The room.
    room: RoomId,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub(crate) struct PublishBody {
    /// The room, which the connection is in.
    room: RoomId,
    /// The application's event name, passed on to the members.
    event: String,
    /// The payload, passed on to the members (`null` when absent).
    #[serde(default)]
    data: serde_json::Value,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub(crate) struct BindBody {
    /// The thread, or `null` to unbind.
    thread: Option<ThreadId>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub(crate) struct ResumeBody {
    /// The last position seen on each stream (the user stream and rooms the connection is in).
    streams: Vec<StreamPosition>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub(crate) struct RefreshBody {
    /// The fresh token (at most 8 KiB).
    token: String,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub(crate) struct CancelBody {
    /// The run to cancel: one of the user's own runs in progress.
    run: RunId,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub(crate) struct AppBody {
    /// The payload, POSTed to the application's backend (`null` when absent).
    #[serde(default)]
    data: serde_json::Value,
}

/// The `type`s of the frames the protocol defines for clients: the parser reads these as the
/// protocol's, before any application frame type, so an application may not use them
/// (`Config::app_frame_types` listing one would never be forwarded).
pub const CLIENT_FRAME_TYPES: [&str; 8] = [
    "join", "leave", "publish", "bind", "ping", "resume", "refresh", "cancel",
];

/// The longest `ref` a client frame may carry, in bytes of its JSON text. Every reply echoes
/// the `ref`, so without a bound a small frame could make the hub write a large reply many
/// times (a `resume` echoes it once per stream).
pub const MAX_REF_BYTES: usize = 256;

/// The longest token a `refresh` frame may carry, in bytes (8 KiB): a connection holds the token
/// until the application verified it, and verifying costs what the token weighs.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The most streams one `resume` frame may list: every room a connection may be in, and its
/// user stream.
pub(crate) fn max_resume_streams(config: &Config) -> usize {
    config.limits.max_rooms_per_connection.saturating_add(1)
}

/// Parse one client text frame, with the application's own frame types
/// (`Config::app_frame_types`) and the bound on `resume` ([`max_resume_streams`]).
pub(crate) fn parse(text: &str, config: &Config) -> Result<Parsed, ParseError> {
    // A frame is a JSON object; serde would also read an array as the fields in order.
    if !text.trim_start().starts_with('{') {
        return Err(ParseError {
            code: ErrorCode::MalformedJson,
            message: "a frame is a JSON object".into(),
            reference: None,
        });
    }
    let head: Head<'_> = serde_json::from_str(text).map_err(|e| ParseError {
        code: ErrorCode::MalformedJson,
        message: e.to_string(),
        reference: None,
    })?;
    let reference = head.reference;
    if reference
        .as_ref()
        .is_some_and(|r| r.get().len() > MAX_REF_BYTES)
    {
        // Not echoed: refusing it must not cost what echoing it would.
        return Err(ParseError {
            code: ErrorCode::InvalidFrame,
            message: format!("`ref` is longer than {MAX_REF_BYTES} bytes"),
            reference: None,
        });
    }
    let app_types = &config.app_frame_types;
    let body = |r: Result<ClientFrame, serde_json::Error>| r;
    let frame = match &*head.kind {
        "join" => body(
            serde_json::from_str::<JoinBody>(text).map(|b| ClientFrame::Join {
                room: b.room,
                since: b.since,
                presence: b.presence,
            }),
        ),
        "leave" => body(
            serde_json::from_str::<RoomBody>(text).map(|b| ClientFrame::Leave { room: b.room }),
        ),
        "publish" => {
            body(
                serde_json::from_str::<PublishBody>(text).map(|b| ClientFrame::Publish {
                    room: b.room,
                    event: b.event,
                    data: b.data,
                }),
            )
        }
        "bind" => body(
            serde_json::from_str::<BindBody>(text).map(|b| ClientFrame::Bind { thread: b.thread }),
        ),
        "ping" => Ok(ClientFrame::Ping),
        "resume" => match serde_json::from_str::<ResumeBody>(text) {
            Ok(b) if b.streams.len() > max_resume_streams(config) => {
                return Err(ParseError {
                    code: ErrorCode::InvalidFrame,
                    message: format!(
                        "`resume` lists more than {} streams",
                        max_resume_streams(config)
                    ),
                    reference,
                })
            }
            r => body(r.map(|b| ClientFrame::Resume { streams: b.streams })),
        },
        "refresh" => match serde_json::from_str::<RefreshBody>(text) {
            Ok(b) if b.token.len() > MAX_TOKEN_BYTES => {
                return Err(ParseError {
                    code: ErrorCode::InvalidFrame,
                    message: format!("`token` is longer than {MAX_TOKEN_BYTES} bytes"),
                    reference,
                })
            }
            r => body(r.map(|b| ClientFrame::Refresh { token: b.token })),
        },
        "cancel" => body(
            serde_json::from_str::<CancelBody>(text).map(|b| ClientFrame::Cancel { run: b.run }),
        ),
        kind if app_types.iter().any(|t| t == kind) => body(
            serde_json::from_str::<AppBody>(text).map(|b| ClientFrame::App {
                kind: kind.to_owned(),
                payload: b.data,
            }),
        ),
        other => {
            return Err(ParseError {
                code: ErrorCode::UnknownType,
                message: format!("unknown frame type {other:?}"),
                reference,
            })
        }
    };
    match frame {
        Ok(frame) => Ok(Parsed { frame, reference }),
        Err(e) => Err(ParseError {
            code: ErrorCode::InvalidFrame,
            message: e.to_string(),
            reference,
        }),
    }
}

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

    fn config() -> Config {
        let mut config = Config::development();
        config.app_frame_types = vec!["user_message".to_owned()];
        config.limits.max_rooms_per_connection = 2;
        config
    }

    fn parse_ok(text: &str) -> ClientFrame {
        parse(text, &config()).unwrap().frame
    }

    #[test]
    fn every_protocol_type_is_read_as_the_protocols_even_when_listed_as_an_application_type() {
        let mut config = config();
        config.app_frame_types = CLIENT_FRAME_TYPES.map(str::to_owned).to_vec();
        for kind in CLIENT_FRAME_TYPES {
            let text = format!(r#"{{"type":"{kind}"}}"#);
            match parse(&text, &config) {
                Ok(parsed) => assert!(!matches!(parsed.frame, ClientFrame::App { .. }), "{kind}"),
                // A protocol frame without its fields: refused as one, never as unknown.
                Err(e) => assert_eq!(e.code, ErrorCode::InvalidFrame, "{kind}: {}", e.message),
            }
        }
    }

    #[test]
    fn parses_every_client_frame() {
        assert_eq!(
            parse_ok(r#"{"type":"join","room":"lobby","extra":1}"#),
            ClientFrame::Join {
                room: "lobby".into(),
                since: None,
                presence: None,
            }
        );
        let watching = parse_ok(r#"{"type":"join","room":"lobby","presence":true}"#);
        assert!(matches!(
            watching,
            ClientFrame::Join {
                presence: Some(true),
                ..
            }
        ));
        assert_eq!(
            parse_ok(r#"{"type":"join","room":"a","since":{"epoch":2,"seq":9}}"#),
            ClientFrame::Join {
                room: "a".into(),
                since: Some(Position { epoch: 2, seq: 9 }),
                presence: None,
            }
        );
        assert_eq!(
            parse_ok(r#"{"type":"leave","room":"a"}"#),
            ClientFrame::Leave { room: "a".into() }
        );
        assert_eq!(
            parse_ok(r#"{"type":"bind","thread":null}"#),
            ClientFrame::Bind { thread: None }
        );
        assert_eq!(parse_ok(r#"{"type":"ping"}"#), ClientFrame::Ping);
        assert!(matches!(
            parse_ok(r#"{"type":"resume","streams":[{"stream":"room:a","epoch":1,"seq":3}]}"#),
            ClientFrame::Resume { streams } if streams.len() == 1
        ));
        assert_eq!(
            parse_ok(r#"{"type":"refresh","token":"t.t.t"}"#),
            ClientFrame::Refresh {
                token: "t.t.t".into()
            }
        );
        assert!(matches!(
            parse_ok(r#"{"type":"user_message","data":{"text":"hi"}}"#),
            ClientFrame::App { kind, .. } if kind == "user_message"
        ));
    }

    #[test]
    fn bad_frames_have_stable_codes_and_keep_the_ref() {
        let err = |t: &str| parse(t, &Config::development()).unwrap_err();
        assert_eq!(err("{not json").code, ErrorCode::MalformedJson);
        assert_eq!(err(r#"{"room":"a"}"#).code, ErrorCode::MalformedJson);
        let e = err(r#"{"type":"dance","ref":7}"#);
        assert_eq!(e.code, ErrorCode::UnknownType);
        assert_eq!(e.reference.unwrap().get(), "7");
        assert_eq!(err(r#"{"type":"join"}"#).code, ErrorCode::InvalidFrame);
        assert_eq!(
            err(r#"{"type":"join","room":5}"#).code,
            ErrorCode::InvalidFrame
        );
    }

    #[test]
    fn a_ref_longer_than_the_bound_is_an_invalid_frame_that_does_not_echo_it() {
        let with_ref = |len: usize| {
            let text = format!(r#"{{"type":"ping","ref":"{}"}}"#, "x".repeat(len - 2));
            parse(&text, &config())
        };
        let at_bound = with_ref(MAX_REF_BYTES).expect("a ref of exactly the bound");
        assert_eq!(at_bound.reference.unwrap().get().len(), MAX_REF_BYTES);
        let e = with_ref(MAX_REF_BYTES + 1).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidFrame);
        assert!(e.reference.is_none(), "an oversized ref is not echoed");
        let unknown = format!(r#"{{"type":"dance","ref":[{}0]}}"#, "0,".repeat(200));
        assert_eq!(
            parse(&unknown, &config()).unwrap_err().code,
            ErrorCode::InvalidFrame,
            "checked before the type, for every frame"
        );
    }

    #[test]
    fn a_resume_lists_at_most_one_stream_per_room_and_the_user_stream() {
        let resume = |n: usize| {
            let streams: Vec<String> = (0..n)
                .map(|i| format!(r#"{{"stream":"room:r{i}","epoch":1,"seq":0}}"#))
                .collect();
            let text = format!(
                r#"{{"type":"resume","streams":[{}],"ref":9}}"#,
                streams.join(",")
            );
            parse(&text, &config())
        };
        assert!(resume(3).is_ok(), "2 rooms and the user stream");
        let e = resume(4).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidFrame);
        assert_eq!(e.reference.unwrap().get(), "9");
    }

    #[test]
    fn a_refresh_token_longer_than_the_bound_is_an_invalid_frame() {
        let refresh = |len: usize| {
            let text = format!(
                r#"{{"type":"refresh","token":"{}","ref":3}}"#,
                "t".repeat(len)
            );
            parse(&text, &config())
        };
        assert!(
            refresh(MAX_TOKEN_BYTES).is_ok(),
            "a token of exactly the bound"
        );
        let e = refresh(MAX_TOKEN_BYTES + 1).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidFrame);
        assert_eq!(e.reference.unwrap().get(), "3");
        let missing = parse(r#"{"type":"refresh"}"#, &config()).unwrap_err();
        assert_eq!(missing.code, ErrorCode::InvalidFrame);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            parse(&deep, &Config::development()).unwrap_err().code,
            ErrorCode::MalformedJson
        );
    }

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
