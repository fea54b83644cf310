//! Agent messages streamed as deltas: the producer's side of a message, and the text each
//! reader assembles from what it receives, checked against the shadow.
//!
//! The rule is the client's of `docs/PROTOCOL.md` section 6 ("Agent messages"): per (run,
//! message), keep the text received; a frame at `offset` with `text` appends the part past
//! what is held. Every delta frame is checked to be the message's exact text from its offset
//! to the end of the delta whose `seq` it carries (`Entry::is`); on top of that:
//!
//! - **No hole.** A device's first frame of a message starts at offset 0, and each later one
//!   at most where its text ends, unless a `gap` on its user stream cut the run (history or a
//!   new epoch lost text it cannot receive).
//! - **No repetition on a live connection.** On one connection, a live frame of a message
//!   continues exactly where that connection's text ends: deltas joined in a flush window or a
//!   queue carry the first one's offset, so only a replay (after a reconnect or a `resume`)
//!   may repeat text, from offset 0 or the first offset history holds.
//! - **Nothing missing.** A connected device that reads holds, for every message of its
//!   selection, the whole text of the deltas up to its position; past its position only a
//!   flush window may hold the newest deltas, of one message, and only for less than the
//!   window's width since the last of them was sent. Each of its connections that received
//!   part of a message holds it up to the same end as the device.

use super::*;

/// The message ids of a run's two messages.
pub(super) const MESSAGES: [&str; 2] = ["a", "b"];
/// The pieces of text deltas carry: several characters outside ASCII (offsets count Unicode
/// scalar values), and an empty one.
const PIECES: [&str; 4] = ["he", "wö", "🙂 ", ""];

/// One message of a run, as its producer streams it.
#[derive(Debug, Clone, Default)]
pub(super) struct Msg {
    /// A delta opened it.
    pub opened: bool,
    /// Its `final` delta was accepted.
    pub ended: bool,
    /// Its text so far.
    pub text: String,
}

impl Msg {
    /// The offset the next delta must have.
    pub fn len(&self) -> u64 {
        self.text.chars().count() as u64
    }

    /// True unless it was opened and not ended (`agent_completed` needs every message ended).
    pub fn settled(&self) -> bool {
        !self.opened || self.ended
    }
}

/// What a delta action sends to message `message`: text, offset and `final`, and whether the
/// run automaton accepts it. `action % 16` is 10 to 15 (see `World::agent`): 10 and 11 continue
/// the message, 12 ends it, 13 and 14 give a wrong offset (one past or one short of its
/// length), 15 ends it at once with no text.
pub(super) fn delta(msg: &Msg, message: usize, action: usize) -> (AgentEvent, bool) {
    let text = PIECES[(action / 32) % PIECES.len()];
    let len = msg.len();
    let (offset, last, text) = match action % 16 {
        10 | 11 => (len, false, text),
        12 => (len, true, text),
        13 => (len + 1, false, text),
        14 if len > 0 => (len - 1, false, text),
        14 => (len + 2, false, text),
        _ => (len, true, ""),
    };
    let event = AgentEvent::AgentMessageDelta {
        message: MESSAGES[message].into(),
        offset,
        last,
        text: text.into(),
    };
    (event, !msg.ended && offset == len)
}

/// Device `device` read, on the connection `view`, the delta frame `f` of `message` of `run`
/// (already checked to be the message's text at its offset): assemble it.
pub(super) fn assemble(
    device: &mut Device,
    view: &mut ConnView,
    replay: bool,
    f: &Value,
    run: &str,
    message: &'static str,
) -> Result<(), String> {
    let offset = f["offset"].as_u64().unwrap_or_default();
    let end = offset + f["text"].as_str().unwrap_or_default().chars().count() as u64;
    let cut = device.cut.contains(run);
    let key = (run.to_owned(), message);
    match device.texts.get_mut(&key) {
        None => {
            ensure!(
                offset == 0 || cut,
                "the device's first text of message {message} of {run} starts at {offset}"
            );
            device.texts.insert(key.clone(), end);
        }
        Some(held) if offset > *held => {
            ensure!(
                cut,
                "a hole in message {message} of {run}: the device holds up to {held}, the \
                 frame starts at {offset}"
            );
            *held = end;
        }
        Some(held) => *held = (*held).max(end),
    }
    // A connection that resumed from a position may start in the middle of a message.
    let here = view.texts.entry(key).or_insert(offset);
    if offset > *here {
        ensure!(
            cut,
            "a hole in message {message} of {run} on one connection: it holds up to {here}, \
             the frame starts at {offset}"
        );
    } else {
        ensure!(
            replay || offset == *here,
            "live text of message {message} of {run} repeated on one connection: it holds up \
             to {here}, the frame starts at {offset}"
        );
    }
    *here = (*here).max(end);
    Ok(())
}

impl World {
    /// Device `d` (connected, reading, on the current epoch of its streams) holds the text of
    /// every message it selects, as the module says.
    pub(super) fn check_texts(&self, d: usize) -> Result<(), String> {
        let device = &self.devices[d];
        let Some(s) = self.shadow.streams.get(&device.user_stream()) else {
            return Ok(());
        };
        let cursor = device.cursor[&device.user_stream()].seq;
        // Per message: where its text ends at the device's position, and at the head.
        let mut ends: BTreeMap<(&str, &'static str), (u64, u64)> = BTreeMap::new();
        for seq in 1..=s.head() {
            let entry = s.entry(seq);
            let Item::Delta { run, text, .. } = &entry.item else {
                continue;
            };
            let key = entry.message().expect("a delta");
            if !device.selects(entry) || device.cut.contains(run) {
                continue;
            }
            let end = text.chars().count() as u64;
            let at = ends.entry(key).or_default();
            at.1 = end;
            if seq <= cursor {
                at.0 = end;
            }
        }
        for (&(run, message), &(at_position, at_head)) in &ends {
            let key = (run.to_owned(), message);
            let held = device.texts.get(&key).copied().unwrap_or(0);
            ensure!(
                held >= at_position,
                "device {d} holds {held} characters of message {message} of {run}, not the \
                 {at_position} sent up to its position {cursor}"
            );
            if held < at_head {
                ensure!(
                    self.window_holds(d, s, (run, message)),
                    "device {d} holds {held} of the {at_head} characters of message {message} \
                     of {run}, and no flush window may hold the rest"
                );
            }
            let here = self.views.get(&device.conn());
            if let Some(&here) = here.and_then(|v| v.texts.get(&key)) {
                ensure_eq!(
                    here,
                    held,
                    "end of message {} of {} on the connection of device {}",
                    message,
                    run,
                    d
                );
            }
        }
        Ok(())
    }

    /// True if a flush window of device `d`'s connection may still hold the deltas of `key`
    /// after its position: windows are on, everything the device selects past its position is
    /// a delta of that message, and the last was sent less than a window ago.
    fn window_holds(&self, d: usize, s: &Incarnation, key: (&str, &str)) -> bool {
        let device = &self.devices[d];
        let cursor = device.cursor[&device.user_stream()].seq;
        let mut newest = None;
        for seq in cursor + 1..=s.head() {
            let entry = s.entry(seq);
            if !device.selects(entry) {
                continue;
            }
            match &entry.item {
                Item::Delta { at, .. } if entry.message() == Some(key) => newest = Some(*at),
                _ => return false,
            }
        }
        newest.is_some_and(|at| self.h.now().duration_since(at) < self.flush)
    }
}
