//! Agent answers streamed piece by piece: the messages of a run and where each stands.
//!
//! A message (`agent_message_delta` events with one `message` id) grows by appending: each
//! delta carries the text appended and its `offset`, the length of the message before it in
//! Unicode scalar values (Rust `chars`, Python `len`, JavaScript `for…of`). [`Messages`] keeps,
//! per message of a run, only its length and whether it ended, so that a delta at any other
//! offset, or after the message's `final` delta, is refused: a reader's text has no hole.
//!
//! How the frames of a message's deltas join into one is module `joined`.

use super::RunError;
use crate::id::RunId;
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

#[cfg(test)]
mod tests {
    use super::*;

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
