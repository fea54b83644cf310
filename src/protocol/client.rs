//! What clients send: the frames of the protocol, each `type` with its body, read by
//! [`parse`] (the `ref` first, so that even a refusal can echo it), and their bounds.

use super::ErrorCode;
use crate::config::Config;
use crate::id::{RoomId, RunId, ThreadId};
use crate::stream::{Position, StreamId};
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
}
