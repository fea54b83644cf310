//! Stream entries numbered outside the hub: what makes a stream the same on every node.
//!
//! With [`Config::shared_streams`](crate::Config::shared_streams) a hub does not number the
//! user and room streams itself. It renders each entry once without its position (an
//! [`Unsequenced`] entry, out through [`ClusterOutput::Sequence`](crate::ClusterOutput::Sequence)); the
//! cluster's sequencer gives it the stream's next position, keeps it in the shared history and
//! hands it, [sealed](Unsequenced::seal), to every hub serving the stream, the origin included (an
//! [`Sequenced`] entry, in through [`ClusterInput::Sequenced`](crate::ClusterInput::Sequenced)). Every hub
//! therefore delivers a stream in the sequencer's order, with its numbers, and a client can
//! resume on any node.
//!
//! Sealing is a byte operation so that a sequencer that cannot parse JSON (a Redis script)
//! seals exactly as the hub does: a template is a JSON object without its closing brace, and
//! sealing appends `,"epoch":E,"seq":N}`.

use crate::id::{ConnId, RunId, ThreadId};
use crate::outbox::CoalesceKey;
use crate::stream::{Position, RunTag, StreamId};
use bytes::Bytes;

/// A stream entry rendered by a hub and waiting for its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsequenced {
    /// What the entry says and who receives it.
    pub entry: EntryMeta,
    /// The client frame without its position: a JSON object missing its closing brace.
    pub template: Bytes,
}

/// A stream entry with its position, as every hub serving the stream receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequenced {
    /// What the entry says and who receives it.
    pub entry: EntryMeta,
    /// Its place in the stream.
    pub position: Position,
    /// The complete client frame, position included.
    pub frame: Bytes,
}

/// Who receives a stream entry, and what the hub needs to replay it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntryMeta {
    /// The user or room stream.
    pub stream: StreamId,
    /// In a user stream, only connections bound to this thread receive it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<ThreadId>,
    /// The agent run it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunId>,
    /// The run's ending event: a node that did not run it learns from its history whether it
    /// is still in progress (late joiners).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ends_run: bool,
    /// Agent thinking: a newer one may replace it while a reader is behind.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub thinking: bool,
    /// A delta of this message of the run: joined to its message in history and while a
    /// reader is behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Set by the sequencer when no hub was serving the user's stream as it sealed the entry:
    /// nobody received it live, so it waits for the user's next connection (offline
    /// buffering). A hub serving the user decides that for its own connections.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub undelivered: bool,
    /// Connections of the origin hub's process to leave out. Ids name connections of one
    /// process only: a sequencer hands them back to the origin and clears them for others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<ConnId>,
}

/// What a stream entry carries besides its frame, borrowed while it is delivered: who among
/// the stream's readers receive it and what a replay needs to know of it (the owned form, for
/// the sequencer, is [`EntryMeta`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tags<'a> {
    /// Only connections bound to this thread (user streams).
    pub thread: Option<&'a ThreadId>,
    /// Connections left out.
    pub except: &'a [ConnId],
    /// The agent run it belongs to.
    pub run: Option<&'a RunTag>,
    /// Agent thinking: replaced by a newer one while a reader is behind.
    pub coalesce: Option<&'a CoalesceKey>,
}

impl Tags<'_> {
    /// The entry's tags as the sequencer carries them, for an entry of `stream`.
    pub fn meta(self, stream: StreamId) -> EntryMeta {
        EntryMeta {
            stream,
            thread: self.thread.cloned(),
            run: self.run.map(|r| r.id.clone()),
            ends_run: self.run.is_some_and(|r| r.ends),
            thinking: matches!(self.coalesce, Some(CoalesceKey::Thinking(_))),
            message: match self.coalesce {
                Some(CoalesceKey::Message(_, message)) => Some(message.to_string()),
                _ => None,
            },
            undelivered: false,
            except: self.except.to_vec(),
        }
    }
}

impl EntryMeta {
    /// The run the entry belongs to, and whether it ends it.
    pub(crate) fn run_tag(&self) -> Option<RunTag> {
        let ends = self.ends_run;
        self.run.clone().map(|id| RunTag { id, ends })
    }

    /// The coalescing key of the entry: agent thinking of its run, or a message delta.
    pub(crate) fn coalesce(&self) -> Option<CoalesceKey> {
        match (&self.run, self.thinking, &self.message) {
            (Some(run), true, _) => Some(CoalesceKey::Thinking(run.clone())),
            (Some(run), false, Some(m)) => {
                Some(CoalesceKey::Message(run.clone(), m.as_str().into()))
            }
            _ => None,
        }
    }
}

impl Unsequenced {
    /// The entry at `position`, sealed as the sequencer does.
    pub fn seal(&self, position: Position) -> Sequenced {
        Sequenced {
            entry: self.entry.clone(),
            position,
            frame: seal(&self.template, position),
        }
    }
}

/// Complete a template (a JSON object without its closing brace) with a position.
pub(crate) fn seal(template: &[u8], position: Position) -> Bytes {
    use std::io::Write;
    let mut frame = Vec::with_capacity(template.len() + 48);
    frame.extend_from_slice(template);
    let Position { epoch, seq } = position;
    write!(frame, ",\"epoch\":{epoch},\"seq\":{seq}}}").expect("writing to a Vec cannot fail");
    Bytes::from(frame)
}

/// Turn a complete JSON object into a template (drop its closing brace).
pub(crate) fn template(frame: Bytes) -> Bytes {
    debug_assert_eq!(frame.last(), Some(&b'}'), "a frame is a JSON object");
    frame.slice(..frame.len().saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_template_is_the_object_with_its_position() {
        let t = template(Bytes::from_static(
            br#"{"type":"message","stream":"user:a","event":"e"}"#,
        ));
        let frame = seal(&t, Position { epoch: 17, seq: 3 });
        let value: serde_json::Value = serde_json::from_slice(&frame).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"type": "message", "stream": "user:a", "event": "e",
                "epoch": 17, "seq": 3})
        );
    }
}
