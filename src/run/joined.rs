//! A message's delta frames joined in place: one growing frame per message, each delta
//! appended in time proportional to the delta, encoded when it is sent.
//!
//! Two delta frames of one message that follow each other join into one: the newer frame (its
//! position, its `final`) with the older one's offset and both texts. A reader that fell behind
//! gets one frame instead of a backlog (the outbox), a live reader gets one frame per flush
//! window (the outbox), and a history keeps one entry per message holding the text so far (the
//! stream). [`Joined`] keeps the pieces apart (the newest frame's members before the offset,
//! the first offset, the escaped text, the newest frame's members after the text), so that
//! appending a delta copies the delta, never the text so far: a 10 000-token answer costs
//! 10 000 small copies, not the square of its length. [`Joined::encode`] writes the frame out
//! once, when a reader needs it.
//!
//! Joining is a byte operation on frames the hub encoded itself (a delta frame holds
//! `"offset":N,"final":B,"text":"…"` and, after the text, only its closing brace or, with shared
//! streams, the position the sequencer sealed it with), so that it never parses the text.

use bytes::Bytes;

/// The pieces of an encoded delta frame: everything before the offset's digits, the offset,
/// its `final`, the text's escaped content (and its length in Unicode scalar values), and
/// everything after the text's closing quote. Parsed once however many readers join it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Delta<'a> {
    head: &'a [u8],
    offset: u64,
    last: bool,
    text: &'a [u8],
    chars: u64,
    tail: &'a [u8],
}

const OFFSET: &[u8] = b",\"offset\":";
const FLAG_OPEN: &[u8] = b",\"final\":false,\"text\":\"";
const FLAG_LAST: &[u8] = b",\"final\":true,\"text\":\"";

/// The first place `needle` occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl<'a> Delta<'a> {
    /// Split a delta frame the hub encoded (`None` if it is not one). Inside a JSON string
    /// every `"` is escaped, so `,"` only occurs between members, and `offset` is a member of
    /// the frame once: the first `,"offset":` is the member's, never text, and found in the few
    /// bytes before the text. The text ends at its first unescaped quote.
    pub fn parse(frame: &'a [u8]) -> Option<Self> {
        parts(frame)
    }

    /// True for a message's `final` delta.
    pub fn is_final(&self) -> bool {
        self.last
    }
}

fn parts(frame: &[u8]) -> Option<Delta<'_>> {
    let digits_at = find(frame, OFFSET)? + OFFSET.len();
    let digits = frame[digits_at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let flag_at = digits_at + digits;
    let (last, flag) = [(false, FLAG_OPEN), (true, FLAG_LAST)]
        .into_iter()
        .find(|(_, f)| frame[flag_at..].starts_with(f))?;
    let text_at = flag_at + flag.len();
    let text_len = closing_quote(&frame[text_at..])?;
    let offset = std::str::from_utf8(&frame[digits_at..flag_at])
        .ok()?
        .parse()
        .ok()?;
    let text = &frame[text_at..text_at + text_len];
    Some(Delta {
        head: &frame[..digits_at],
        offset,
        last,
        text,
        chars: escaped_len(text),
        tail: &frame[text_at + text_len + 1..],
    })
}

/// Where the escaped content of a JSON string ends: its first quote not escaped.
fn closing_quote(content: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < content.len() {
        match content[i] {
            b'"' => return Some(i),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// The Unicode scalar values in the escaped content of a JSON string as serde_json writes it
/// (it escapes `"`, `\` and control characters, never a character outside the BMP). Without an
/// escape, the count of bytes that start a UTF-8 sequence, in one pass the compiler vectorizes.
fn escaped_len(text: &[u8]) -> u64 {
    let leading = |b: &&u8| (**b as i8) >= -0x40;
    if !text.contains(&b'\\') {
        return text.iter().filter(leading).count() as u64;
    }
    let (mut n, mut i) = (0, 0);
    while i < text.len() {
        i += match text[i] {
            b'\\' if text.get(i + 1) == Some(&b'u') => 6,
            b'\\' => 2,
            // A UTF-8 sequence counts once, at its leading byte.
            b if b & 0xC0 == 0x80 => {
                i += 1;
                continue;
            }
            _ => 1,
        };
        n += 1;
    }
    n
}

/// Consecutive delta frames of one message, joined: the newest frame's members with the first
/// one's offset and all the texts (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Joined {
    /// The newest frame up to its offset's digits.
    head: Vec<u8>,
    /// The first frame's offset.
    offset: u64,
    /// The newest frame's `final`.
    last: bool,
    /// Every frame's escaped text, in order.
    text: Vec<u8>,
    /// Unicode scalar values in `text`: where the next delta must start, past `offset`.
    chars: u64,
    /// The newest frame after its text's closing quote.
    tail: Vec<u8>,
}

impl Joined {
    /// A delta, to join others to.
    fn new(p: &Delta<'_>) -> Self {
        Self {
            head: p.head.to_vec(),
            offset: p.offset,
            last: p.last,
            text: p.text.to_vec(),
            chars: p.chars,
            tail: p.tail.to_vec(),
        }
    }

    /// Append the delta `p`. False, and nothing changes, if the message ended, or if `p` does
    /// not start where the text stops (they would not be one piece of text). Costs a copy of
    /// `p`, not of the text so far.
    fn push(&mut self, p: &Delta<'_>) -> bool {
        if self.last || self.offset + self.chars != p.offset {
            return false;
        }
        self.head.clear();
        self.head.extend_from_slice(p.head);
        self.tail.clear();
        self.tail.extend_from_slice(p.tail);
        self.text.extend_from_slice(p.text);
        self.chars += p.chars;
        self.last = p.last;
        if p.last {
            // Nothing more will be appended: give back what growing reserved.
            self.text.shrink_to_fit();
        }
        true
    }

    /// The length of the encoded frame, in bytes.
    pub fn len(&self) -> usize {
        let digits = self.offset.checked_ilog10().map_or(1, |d| d as usize + 1);
        let flag = if self.last { FLAG_LAST } else { FLAG_OPEN };
        self.head.len() + digits + flag.len() + self.text.len() + 1 + self.tail.len()
    }

    /// The joined frame.
    pub fn encode(&self) -> Bytes {
        let offset = self.offset.to_string();
        let flag = if self.last { FLAG_LAST } else { FLAG_OPEN };
        let mut frame = Vec::with_capacity(self.len());
        for piece in [
            &self.head[..],
            offset.as_bytes(),
            flag,
            &self.text,
            b"\"",
            &self.tail,
        ] {
            frame.extend_from_slice(piece);
        }
        Bytes::from(frame)
    }
}

/// A frame as a queue or a history keeps it: as encoded, or a message's deltas joined in
/// place (encoded when sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    /// A frame as encoded.
    Frame(Bytes),
    /// Delta frames of one message, joined.
    Joined(Box<Joined>),
}

impl Body {
    /// The length of the frame, in bytes.
    pub fn len(&self) -> usize {
        match self {
            Body::Frame(frame) => frame.len(),
            Body::Joined(joined) => joined.len(),
        }
    }

    /// True for a delta frame that ends its message.
    pub fn is_final(&self) -> bool {
        match self {
            Body::Frame(frame) => parts(frame).is_some_and(|p| p.last),
            Body::Joined(joined) => joined.last,
        }
    }

    /// The frame (encoded now if joined).
    pub fn frame(&self) -> Bytes {
        match self {
            Body::Frame(frame) => frame.clone(),
            Body::Joined(joined) => joined.encode(),
        }
    }

    /// Append the delta `newer` to this delta frame (see [`Joined::push`]). False, and nothing
    /// changes, if they do not join (or this is not a delta frame).
    pub fn join(&mut self, newer: &Delta<'_>) -> bool {
        match self {
            Body::Joined(joined) => joined.push(newer),
            Body::Frame(frame) => {
                let Some(older) = parts(frame) else {
                    return false;
                };
                let mut joined = Joined::new(&older);
                let joins = joined.push(newer);
                if joins {
                    *self = Body::Joined(Box::new(joined));
                }
                joins
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{encode, RunFrame, Sequence};
    use crate::run::AgentEvent;
    use crate::sequenced::{seal, template};
    use crate::stream::{Position, StreamId};
    use serde_json::Value;

    /// Join two delta frames of one message, `older` then `newer`.
    fn append(older: &[u8], newer: &[u8]) -> Option<Bytes> {
        let mut body = Body::Frame(Bytes::copy_from_slice(older));
        body.join(&Delta::parse(newer)?).then(|| body.frame())
    }

    /// A delta frame as the hub encodes it, of a message whose id looks like a member.
    fn delta(seq: u64, offset: u64, text: &str, last: bool) -> Bytes {
        let event = AgentEvent::AgentMessageDelta {
            message: "m\",\"final\":".into(),
            offset,
            last,
            text: text.into(),
        };
        let stream = StreamId::User("u".into());
        encode(&RunFrame {
            kind: "agent_message_delta",
            run: &"r".into(),
            agent: &"a".into(),
            thread: None,
            sequence: Sequence::at(&stream, Position { epoch: 1, seq }),
            event: Some(&event),
        })
    }

    #[test]
    fn two_following_deltas_join_into_the_newer_with_the_older_offset_and_both_texts() {
        let older = delta(4, 3, "é\"\n\u{1}😀", false);
        let newer = delta(7, 8, "\\,\"final\":true", true);
        let joined: Value = serde_json::from_slice(&append(&older, &newer).unwrap()).unwrap();
        assert_eq!(joined["seq"], 7);
        assert_eq!(joined["offset"], 3);
        assert_eq!(joined["final"], true);
        assert_eq!(joined["message"], "m\",\"final\":");
        assert_eq!(joined["text"], "é\"\n\u{1}😀\\,\"final\":true");
    }

    #[test]
    fn deltas_sealed_by_a_sequencer_join_with_the_newest_position() {
        let sealed = |seq, offset, text| {
            let frame = delta(0, offset, text, false);
            seal(&template(frame), Position { epoch: 9, seq })
        };
        let joined = append(&sealed(4, 0, "a\"b"), &sealed(6, 3, "cd")).unwrap();
        let joined: Value = serde_json::from_slice(&joined).unwrap();
        assert_eq!(
            (joined["epoch"].clone(), joined["seq"].clone()),
            (9.into(), 6.into())
        );
        assert_eq!(
            (joined["offset"].clone(), joined["text"].clone()),
            (0.into(), "a\"bcd".into())
        );
    }

    #[test]
    fn many_deltas_joined_in_place_encode_as_one_frame_of_the_exact_length() {
        let mut joined = Body::Frame(delta(1, 0, "", false));
        let mut text = String::new();
        for n in 0..300u64 {
            let piece = format!("t{n}é\"\n ");
            let newer = delta(n + 2, text.chars().count() as u64, &piece, false);
            assert!(joined.join(&Delta::parse(&newer).unwrap()));
            text.push_str(&piece);
        }
        assert!(matches!(joined, Body::Joined(_)), "joined in place");
        let frame = joined.frame();
        assert_eq!(joined.len(), frame.len());
        let value: Value = serde_json::from_slice(&frame).unwrap();
        assert_eq!(
            (value["seq"].clone(), value["text"].clone()),
            (301.into(), text.into())
        );
    }

    #[test]
    fn a_text_is_measured_in_unicode_scalar_values_with_or_without_escapes() {
        for text in ["", "abc", "é😀z", "a\"b\\c\n\u{1}é😀"] {
            let escaped = serde_json::to_string(text).unwrap();
            let content = &escaped.as_bytes()[1..escaped.len() - 1];
            assert_eq!(
                escaped_len(content),
                text.chars().count() as u64,
                "{text:?}"
            );
        }
    }

    #[test]
    fn deltas_that_do_not_follow_each_other_or_follow_an_end_do_not_join() {
        assert!(append(&delta(1, 0, "ab", false), &delta(2, 3, "c", false)).is_none());
        assert!(append(&delta(1, 0, "ab", true), &delta(2, 2, "c", false)).is_none());
        assert!(append(b"{\"type\":\"message\"}", &delta(2, 2, "c", false)).is_none());
        let mut joined = Body::Frame(delta(1, 0, "ab", false));
        assert!(joined.join(&Delta::parse(&delta(2, 2, "c", false)).unwrap()));
        let before = joined.clone();
        assert!(!joined.join(&Delta::parse(&delta(3, 2, "d", false)).unwrap()));
        assert_eq!(joined, before, "a refused delta changes nothing");
    }
}
