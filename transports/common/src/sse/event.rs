//! The `text/event-stream` encoding of the hub's outputs ([`Encoder`]) and the event ids that
//! let a reconnecting `EventSource` resume its user stream ([`position_from_event_id`]).
//!
//! One hub frame is one event of the default type (`message`, what `EventSource.onmessage`
//! receives) whose `data` is the frame's JSON text, exactly as a WebSocket connection receives
//! it. A frame of the connection's **user stream** that moves its position (a `message` or
//! agent frame with `stream: "user:<id>"`, `epoch` and `seq`, by the tracking rule of the
//! protocol: a new epoch, or a larger `seq`) carries `id: <epoch>:<seq>`, the form of the
//! `resume=` query parameter. The browser keeps the last id it saw and sends it back as
//! `Last-Event-ID` when it reconnects, so the server resumes the user stream from it. Other
//! frames carry no id, so the id the browser keeps is always a user-stream position: room
//! frames are resumed by the client itself (`join` with `since`, or `resume`), as on a
//! WebSocket, and `welcome`, `joined` and `resumed` report a head, not a position.
//!
//! A heartbeat ping is a comment line (`: ping`), which keeps proxies from timing the stream
//! out and which `EventSource` ignores. The hub's close is the terminal event `event: close`
//! with `data: {"code":<code>,"reason":"<reason>"}`.

use bytes::{BufMut, BytesMut};
use serde::Deserialize;
use std::borrow::Cow;
use switchboard::Position;

/// The field the heartbeat's comment lines carry.
const KEEP_ALIVE: &[u8] = b": ping\n\n";

/// Encodes one connection's frames as events, keeping its user-stream position for the ids.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    /// The last user-stream position written as an id.
    position: Option<Position>,
}

/// The fields of a frame that place it on a stream.
#[derive(Deserialize)]
struct Placed<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    stream: Option<Cow<'a, str>>,
    epoch: Option<u64>,
    seq: Option<u64>,
}

impl Encoder {
    /// Append `frame` (one JSON text) as an event to `out`, with an id if it moves the user
    /// stream's position.
    pub(crate) fn frame(&mut self, frame: &[u8], out: &mut BytesMut) {
        if let Some(position) = self.advance(frame) {
            out.put_slice(format!("id: {position}\n").as_bytes());
        }
        data_lines(frame, out);
        out.put_u8(b'\n');
    }

    /// A heartbeat: a comment line.
    pub(crate) fn keep_alive(out: &mut BytesMut) {
        out.put_slice(KEEP_ALIVE);
    }

    /// The terminal event of a closed connection.
    pub(crate) fn close(code: u16, reason: &str, out: &mut BytesMut) {
        let data = serde_json::json!({ "code": code, "reason": reason }).to_string();
        out.put_slice(b"event: close\n");
        data_lines(data.as_bytes(), out);
        out.put_u8(b'\n');
    }

    /// The new user-stream position `frame` brings, if it brings one.
    fn advance(&mut self, frame: &[u8]) -> Option<Position> {
        // Most frames are not on the user stream: skip parsing them.
        if !contains(frame, b"\"user:") {
            return None;
        }
        let placed: Placed<'_> = serde_json::from_slice(frame).ok()?;
        let head_report = matches!(
            placed.kind.as_deref(),
            Some("welcome" | "joined" | "resumed")
        );
        if head_report || !placed.stream?.starts_with("user:") {
            return None;
        }
        let next = Position {
            epoch: placed.epoch?,
            seq: placed.seq?,
        };
        let moves = match self.position {
            None => true,
            Some(kept) => kept.epoch != next.epoch || next.seq > kept.seq,
        };
        if moves {
            self.position = Some(next);
        }
        moves.then_some(next)
    }
}

/// `text` as `data:` lines: one per line of it (the hub's JSON has none, but the format
/// requires it of any text).
fn data_lines(text: &[u8], out: &mut BytesMut) {
    for line in text.split(|&b| b == b'\n') {
        out.put_slice(b"data: ");
        out.put_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.put_u8(b'\n');
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The user-stream position a `Last-Event-ID` names (`<epoch>:<seq>`, as the events' ids), if
/// it is one.
pub fn position_from_event_id(id: &str) -> Option<Position> {
    id.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(encoder: &mut Encoder, frame: &str) -> String {
        let mut out = BytesMut::new();
        encoder.frame(frame.as_bytes(), &mut out);
        String::from_utf8(out.to_vec()).expect("UTF-8")
    }

    #[test]
    fn a_user_stream_frame_carries_its_position_as_the_id() {
        let mut e = Encoder::default();
        let frame = r#"{"type":"message","stream":"user:a","epoch":3,"seq":7,"data":1}"#;
        assert_eq!(encode(&mut e, frame), format!("id: 3:7\ndata: {frame}\n\n"));
    }

    #[test]
    fn room_frames_and_head_reports_carry_no_id() {
        let mut e = Encoder::default();
        for frame in [
            r#"{"type":"message","stream":"room:user:x","epoch":1,"seq":2}"#,
            r#"{"type":"welcome","conn":"0.1.0","stream":"user:a","epoch":1,"seq":9}"#,
            r#"{"type":"resumed","stream":"user:a","epoch":1,"seq":9}"#,
            r#"{"type":"pong","ref":"user:a"}"#,
        ] {
            assert_eq!(encode(&mut e, frame), format!("data: {frame}\n\n"));
        }
    }

    #[test]
    fn an_older_frame_of_the_same_epoch_does_not_move_the_id_back() {
        let mut e = Encoder::default();
        let at = |epoch, seq| format!(r#"{{"stream":"user:a","epoch":{epoch},"seq":{seq}}}"#);
        assert!(encode(&mut e, &at(1, 5)).starts_with("id: 1:5\n"));
        assert!(encode(&mut e, &at(1, 4)).starts_with("data: "));
        assert!(encode(&mut e, &at(2, 1)).starts_with("id: 2:1\n"));
    }

    #[test]
    fn text_with_line_breaks_becomes_several_data_lines() {
        let mut out = BytesMut::new();
        data_lines(b"a\r\nb\nc", &mut out);
        assert_eq!(&out[..], b"data: a\ndata: b\ndata: c\n");
    }

    #[test]
    fn the_close_event_names_code_and_reason() {
        let mut out = BytesMut::new();
        Encoder::close(4008, "slow_consumer", &mut out);
        let expected = "event: close\ndata: {\"code\":4008,\"reason\":\"slow_consumer\"}\n\n";
        assert_eq!(&out[..], expected.as_bytes());
    }

    #[test]
    fn a_last_event_id_is_read_as_a_position() {
        assert_eq!(
            position_from_event_id("3:41"),
            Some(Position { epoch: 3, seq: 41 })
        );
        assert_eq!(position_from_event_id("room:3:41"), None);
        assert_eq!(position_from_event_id(""), None);
    }
}
