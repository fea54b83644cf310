//! Agent answers streamed piece by piece: the messages of a run and how their deltas join.
//!
//! A message (`agent_message_delta` events with one `message` id) grows by appending: each
//! delta carries the text appended and its `offset`, the length of the message before it in
//! Unicode scalar values (Rust `chars`, Python `len`, JavaScript `for…of`). [`Messages`] keeps,
//! per message of a run, only its length and whether it ended, so that a delta at any other
//! offset, or after the message's `final` delta, is refused: a reader's text has no hole.
//!
//! Two delta frames of one message that follow each other join into one ([`append`]): the
//! newer frame with the older one's offset and both texts. A reader that fell behind gets one
//! frame instead of a backlog (the outbox), and a history keeps one entry per message holding
//! the text so far (the stream). Joining is a byte operation on frames the hub encoded itself
//! (a delta frame ends with `"offset":N,"final":B,"text":"…"}`), so that it costs a copy of
//! the text, never a parse of it.

use super::RunError;
use crate::id::RunId;
use bytes::Bytes;
use hashbrown::HashMap;

/// Messages a run may open. Past it, a delta opening another is refused
/// (`RunError::TooManyMessages`), so that a run's memory stays bounded whatever its producer
/// sends.
pub const MAX_MESSAGES_PER_RUN: usize = 1_000;

/// Where one message of a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Message {
    /// Its length so far, in Unicode scalar values: the offset the next delta must have.
    len: u64,
    /// Its `final` delta was accepted: nothing more may be appended.
    ended: bool,
}

/// The messages of one run: their lengths, and which ended.
#[derive(Debug, Clone, Default)]
pub(crate) struct Messages {
    by_id: HashMap<String, Message>,
}

impl Messages {
    /// Check that `text` may be appended at `offset` to `message` of `run`.
    pub fn check(&self, run: &RunId, message: &str, offset: u64) -> Result<(), RunError> {
        let current = self.by_id.get(message).copied();
        match current {
            Some(Message { ended: true, .. }) => Err(RunError::MessageEnded {
                run: run.clone(),
                message: message.to_owned(),
            }),
            None if self.by_id.len() >= MAX_MESSAGES_PER_RUN => {
                Err(RunError::TooManyMessages(run.clone()))
            }
            _ => {
                let expected = current.map_or(0, |m| m.len);
                if offset == expected {
                    Ok(())
                } else {
                    Err(RunError::WrongOffset {
                        run: run.clone(),
                        message: message.to_owned(),
                        expected,
                        offset,
                    })
                }
            }
        }
    }

    /// Append `text` to `message` (checked with [`Messages::check`]); `last` ends it.
    pub fn append(&mut self, message: &str, text: &str, last: bool) {
        let entry = self.by_id.entry_ref(message).or_insert(Message {
            len: 0,
            ended: false,
        });
        entry.len += text.chars().count() as u64;
        entry.ended |= last;
    }

    /// The messages not ended yet, by id.
    pub fn open(&self) -> Vec<String> {
        let mut open: Vec<String> = (self.by_id.iter())
            .filter(|(_, m)| !m.ended)
            .map(|(id, _)| id.clone())
            .collect();
        open.sort_unstable();
        open
    }
}

/// The pieces of an encoded delta frame: everything before the offset's digits, the offset,
/// `,"final":B,"text":"`, and the text's escaped content.
struct Parts<'a> {
    head: &'a [u8],
    offset: u64,
    flag: &'a [u8],
    text: &'a [u8],
}

/// The first place `needle` occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Split a delta frame the hub encoded. Inside a JSON string every `"` is escaped, so `,"`
/// only occurs between members, and `offset` is a member of the frame once: the first
/// `,"offset":` is the member's, never text, and found in the few bytes before the text.
fn parts(frame: &[u8]) -> Option<Parts<'_>> {
    const OFFSET: &[u8] = b",\"offset\":";
    const TEXT: &[u8] = b",\"text\":\"";
    let body = frame.strip_suffix(b"\"}")?;
    let digits_at = find(body, OFFSET)? + OFFSET.len();
    let digits = body[digits_at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let flag_at = digits_at + digits;
    let flag = [&b",\"final\":false"[..], b",\"final\":true"]
        .into_iter()
        .find(|f| body[flag_at..].starts_with(f))?;
    let text_at = flag_at + flag.len();
    body[text_at..].starts_with(TEXT).then_some(())?;
    let offset = std::str::from_utf8(&body[digits_at..flag_at])
        .ok()?
        .parse()
        .ok()?;
    Some(Parts {
        head: &body[..digits_at],
        offset,
        flag: &body[flag_at..text_at + TEXT.len()],
        text: &body[text_at + TEXT.len()..],
    })
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

/// Join two delta frames of one message, `older` then `newer`: `newer` (its position, its
/// `final`) with `older`'s offset and both texts. `None` if either is not a delta frame, if
/// `older` ended its message, or if `newer` does not start where `older` stops (they would not
/// be one piece of text).
pub(crate) fn append(older: &[u8], newer: &[u8]) -> Option<Bytes> {
    let (o, n) = (parts(older)?, parts(newer)?);
    let older_open = o.flag.starts_with(b",\"final\":false");
    if !older_open || o.offset + escaped_len(o.text) != n.offset {
        return None;
    }
    let offset = o.offset.to_string();
    let mut frame = Vec::with_capacity(
        n.head.len() + offset.len() + n.flag.len() + o.text.len() + n.text.len() + 2,
    );
    for piece in [n.head, offset.as_bytes(), n.flag, o.text, n.text, b"\"}"] {
        frame.extend_from_slice(piece);
    }
    Some(Bytes::from(frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{encode, RunFrame, Sequence};
    use crate::run::AgentEvent;
    use crate::stream::{Position, StreamId};
    use serde_json::Value;

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
    }

    #[test]
    fn a_message_accepts_only_its_next_offset_and_nothing_after_its_end() {
        let (run, mut m) = (RunId::from("r"), Messages::default());
        m.check(&run, "a", 0).unwrap();
        m.append("a", "héllo", false);
        assert_eq!(
            m.check(&run, "a", 4),
            Err(RunError::WrongOffset {
                run: run.clone(),
                message: "a".into(),
                expected: 5,
                offset: 4
            })
        );
        assert!(matches!(
            m.check(&run, "b", 1),
            Err(RunError::WrongOffset { expected: 0, .. })
        ));
        assert_eq!(m.open(), vec!["a".to_owned()]);
        m.append("a", "", true);
        assert!(matches!(
            m.check(&run, "a", 5),
            Err(RunError::MessageEnded { .. })
        ));
        assert!(m.open().is_empty());
    }
}
