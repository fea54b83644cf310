//! How the hub's frames are put into WebSocket messages ([`Framing`]): one frame per message,
//! or, for a client that asked for it at connect (`batch=1`), the frames the writer finds ready
//! at one wake-up in one message holding a JSON array of them ([`Message`]).
//!
//! A browser pays for every WebSocket message it delivers to a page (an event, a task) far
//! more than for the bytes in it: a tab that handles a few thousand messages a second handles
//! several times as many frames when they arrive a few to a message. Frames are batched only
//! when they are already waiting (the peer reads slower than the hub produces), so a client
//! that keeps up still gets each frame at once, alone.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

/// The most bytes one batched message holds, brackets and commas included: frames are added to
/// a message while it stays within this; a frame that would take it past goes in the next
/// message, and a frame larger than this on its own goes alone, as a plain object. Never
/// splits a frame.
pub const BATCH_MESSAGE_BYTES: usize = 64 * 1024;

/// The most frames one batched message holds (the protocol's limit, beside
/// [`BATCH_MESSAGE_BYTES`]): the frame past it starts the next message.
pub(crate) const BATCH_MESSAGE_FRAMES: usize = 64;

/// The query parameter of the WebSocket handshake that asks for batched messages.
pub const BATCH_PARAMETER: &str = "batch";

/// How a connection's frames are put into WebSocket text messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Framing {
    /// Each frame in a message of its own (the protocol's default).
    #[default]
    Single,
    /// The frames the writer finds ready at one wake-up in one message, `[{…},{…}]`, in
    /// order, up to [`BATCH_MESSAGE_BYTES`] and 64 frames; a frame ready alone is sent as before, a plain
    /// object. Close frames and pings are never part of a batch. Not for the Server-Sent
    /// Events transport, whose events are one frame each.
    Batched,
}

/// A value of the `batch` parameter that is neither `0` nor `1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFraming(pub String);

impl fmt::Display for BadFraming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{BATCH_PARAMETER}={:?}: expected 0 or 1", self.0)
    }
}

impl std::error::Error for BadFraming {}

impl Framing {
    /// The framing the `batch` parameter's value asks for: `1` batched, `0` single; any other
    /// value is refused.
    pub fn from_parameter(value: &str) -> Result<Self, BadFraming> {
        match value {
            "1" => Ok(Self::Batched),
            "0" => Ok(Self::Single),
            other => Err(BadFraming(other.to_owned())),
        }
    }

    /// The framing a handshake's query string asks for with its `batch` parameter (the first
    /// one, if repeated); [`Framing::Single`] without one.
    pub fn from_query(query: Option<&str>) -> Result<Self, BadFraming> {
        let value = query.and_then(|query| {
            (query.split('&'))
                .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
                .find(|(key, _)| *key == BATCH_PARAMETER)
                .map(|(_, value)| value)
        });
        value.map_or(Ok(Self::Single), Self::from_parameter)
    }

    /// The most bytes a message of several frames may hold: none for single frames.
    fn message_bytes(self) -> usize {
        match self {
            Self::Single => 0,
            Self::Batched => BATCH_MESSAGE_BYTES,
        }
    }
}

/// The text frames of the WebSocket message being gathered by a connection's writer.
///
/// Frames are held as they are (reference-counted, not copied) until the message is taken: a
/// single frame is then written as it is, several are copied once, into a buffer of the
/// array's exact size.
#[derive(Debug)]
pub(crate) struct Message {
    framing: Framing,
    frames: Vec<Bytes>,
    /// The frames' bytes.
    bytes: usize,
}

impl Message {
    /// An empty message of a connection framed as `framing`.
    pub(crate) fn new(framing: Framing) -> Self {
        Self {
            framing,
            frames: Vec::new(),
            bytes: 0,
        }
    }

    /// Add `frame`. If it does not fit beside the frames held, those are returned as the
    /// message to write first, and `frame` starts the next one.
    pub(crate) fn push(&mut self, frame: Bytes) -> Option<Bytes> {
        // `[`, the frames, a comma between each two, `]`.
        let with = self.bytes + frame.len() + self.frames.len() + 2;
        let full = !self.frames.is_empty()
            && (with > self.framing.message_bytes() || self.frames.len() == BATCH_MESSAGE_FRAMES);
        let before = if full { self.take() } else { None };
        self.bytes += frame.len();
        self.frames.push(frame);
        before
    }

    /// The message of the frames held, if any, leaving none: a single frame as it is, several
    /// as a JSON array.
    pub(crate) fn take(&mut self) -> Option<Bytes> {
        let message = match self.frames.len() {
            0 => None,
            1 => self.frames.pop(),
            n => {
                let mut array = BytesMut::with_capacity(self.bytes + n + 1);
                array.put_u8(b'[');
                for (i, frame) in self.frames.drain(..).enumerate() {
                    if i > 0 {
                        array.put_u8(b',');
                    }
                    array.put_slice(&frame);
                }
                array.put_u8(b']');
                Some(array.freeze())
            }
        };
        self.bytes = 0;
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Bytes {
        Bytes::from(format!("{{\"n\":{n}}}"))
    }

    fn messages(framing: Framing, frames: &[Bytes]) -> Vec<Bytes> {
        let mut message = Message::new(framing);
        let mut out: Vec<Bytes> = frames
            .iter()
            .filter_map(|f| message.push(f.clone()))
            .collect();
        out.extend(message.take());
        out
    }

    #[test]
    fn single_framing_writes_every_frame_alone_and_uncopied() {
        let frames: Vec<Bytes> = (0..3).map(frame).collect();
        let out = messages(Framing::Single, &frames);
        assert_eq!(out, frames);
        assert!(out
            .iter()
            .zip(&frames)
            .all(|(a, b)| a.as_ptr() == b.as_ptr()));
    }

    #[test]
    fn batched_frames_ready_together_are_one_json_array_in_order() {
        let frames: Vec<Bytes> = (0..3).map(frame).collect();
        let out = messages(Framing::Batched, &frames);
        assert_eq!(
            out,
            vec![Bytes::from_static(b"[{\"n\":0},{\"n\":1},{\"n\":2}]")]
        );
    }

    #[test]
    fn a_frame_ready_alone_is_a_plain_object_even_when_batched() {
        let out = messages(Framing::Batched, &[frame(7)]);
        assert_eq!(out, vec![frame(7)]);
        assert!(messages(Framing::Batched, &[]).is_empty());
    }

    #[test]
    fn a_batch_never_passes_the_cap_and_a_larger_frame_goes_alone() {
        let body = |len: usize| Bytes::from(format!("\"{}\"", "x".repeat(len - 2)));
        // Two frames of half the cap do not fit together (brackets and comma).
        let half = body(BATCH_MESSAGE_BYTES / 2);
        let huge = body(BATCH_MESSAGE_BYTES + 10);
        let small = body(100);
        let frames = [
            half.clone(),
            half.clone(),
            small.clone(),
            huge.clone(),
            small.clone(),
        ];
        let out = messages(Framing::Batched, &frames);
        let joined = |parts: &[&Bytes]| {
            let inner: Vec<&[u8]> = parts.iter().map(|b| &b[..]).collect();
            Bytes::from([b"[".as_slice(), &inner.join(&b","[..]), b"]"].concat())
        };
        assert_eq!(
            out,
            vec![half.clone(), joined(&[&half, &small]), huge, small]
        );
        assert!(out
            .iter()
            .all(|m| m.len() <= BATCH_MESSAGE_BYTES || m.len() == frames[3].len()));
        // Exactly full fits.
        let exact = body((BATCH_MESSAGE_BYTES - 3) / 2);
        let fill = body(BATCH_MESSAGE_BYTES - 3 - exact.len());
        let out = messages(Framing::Batched, &[exact.clone(), fill.clone()]);
        assert_eq!(out, vec![joined(&[&exact, &fill])]);
        assert_eq!(out[0].len(), BATCH_MESSAGE_BYTES);
    }

    #[test]
    fn a_batch_never_holds_more_than_64_frames() {
        let frames: Vec<Bytes> = (0..150).map(frame).collect();
        let out = messages(Framing::Batched, &frames);
        let counts: Vec<usize> = out
            .iter()
            .map(|m| m.iter().filter(|&&b| b == b'{').count())
            .collect();
        assert_eq!(counts, [64, 64, 22]);
        assert!(out[2].starts_with(b"[{\"n\":128}"), "{:?}", out[2]);
    }

    #[test]
    fn the_batch_parameter_is_0_or_1() {
        assert_eq!(
            Framing::from_query(Some("token=t&batch=1")),
            Ok(Framing::Batched)
        );
        assert_eq!(
            Framing::from_query(Some("batch=0&resume=1:2")),
            Ok(Framing::Single)
        );
        assert_eq!(Framing::from_query(Some("token=t")), Ok(Framing::Single));
        assert_eq!(Framing::from_query(None), Ok(Framing::Single));
        let bad = |v: &str| Err(BadFraming(v.to_owned()));
        assert_eq!(Framing::from_query(Some("batch=yes")), bad("yes"));
        assert_eq!(Framing::from_query(Some("batch")), bad(""));
        assert_eq!(Framing::from_query(Some("batch=")), bad(""));
        assert_eq!(
            BadFraming("2".into()).to_string(),
            "batch=\"2\": expected 0 or 1"
        );
    }
}
