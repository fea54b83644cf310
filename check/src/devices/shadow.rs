//! The shadow of the streams: every message of each incarnation of a stream in order, what
//! history still holds of it (one entry per agent message, however many deltas it took), and
//! the epochs learned from the frames devices read.

use super::*;

/// What one message of a stream is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Item {
    /// The `n`th application message.
    Message(u64),
    /// An agent run event: its frame type, and for tool events the tool and call id.
    Run {
        run: String,
        kind: &'static str,
        tool: Option<(&'static str, Option<&'static str>)>,
    },
    /// An `agent_message_delta`: its run and message, the message's whole text up to this
    /// delta's end, whether it is the message's `final` one, and when it was sent.
    Delta {
        run: String,
        message: &'static str,
        text: String,
        last: bool,
        at: Instant,
    },
}

#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) item: Item,
    /// The thread a user-stream message is for (`None`: every connection of the user).
    pub(super) thread: Option<usize>,
}

impl Entry {
    /// The run whose `agent_thinking` this entry is, if it is one: a newer thought of the same
    /// run replaces it in a reader's queue (the lossy lane).
    pub(super) fn thought_of(&self) -> Option<&str> {
        match &self.item {
            Item::Run {
                run,
                kind: "agent_thinking",
                ..
            } => Some(run),
            _ => None,
        }
    }

    /// The run and message this entry is a delta of, if it is one.
    pub(super) fn message(&self) -> Option<(&str, &'static str)> {
        match &self.item {
            Item::Delta { run, message, .. } => Some((run, message)),
            _ => None,
        }
    }

    /// True if `frame` is this entry. A delta frame may carry more than this delta: the
    /// message's text from any offset up to this delta's end (deltas joined in a window, a
    /// queue or history), and exactly that text.
    pub(super) fn is(&self, frame: &Value) -> bool {
        match &self.item {
            Item::Message(n) => frame["type"] == "message" && frame["event"] == event(*n),
            Item::Delta {
                run,
                message,
                text,
                last,
                ..
            } => {
                let offset = frame["offset"]
                    .as_u64()
                    .and_then(|o| usize::try_from(o).ok());
                let piece = frame["text"].as_str();
                let (Some(offset), Some(piece)) = (offset, piece) else {
                    return false;
                };
                let after: String = text.chars().skip(offset).collect();
                frame["type"] == "agent_message_delta"
                    && frame["run"] == run.as_str()
                    && frame["message"] == *message
                    && frame["final"] == *last
                    && offset <= text.chars().count()
                    && piece == after
            }
            Item::Run { run, kind, tool } => {
                let tool_matches = match tool {
                    None => true,
                    Some((tool, call)) => frame["tool"] == *tool && frame["call_id"] == json!(call),
                };
                frame["type"] == *kind && frame["run"] == run.as_str() && tool_matches
            }
        }
    }
}

/// One incarnation of a stream: its epoch (once learned), every message, and what history
/// still holds.
#[derive(Debug, Clone)]
pub(super) struct Incarnation {
    /// Which incarnation: the shadow numbers them in the order it creates them, so their
    /// epochs grow with the number (`docs/PROTOCOL.md` section 6).
    pub(super) id: usize,
    /// Learned from the first frame a device read of it (`welcome` or `joined` first).
    pub(super) epoch: Option<u64>,
    pub(super) entries: Vec<Entry>,
    /// The sequence numbers of history's entries, oldest first. A message's deltas are one
    /// entry, numbered with its latest delta (`docs/PROTOCOL.md` section 6, "History keeps one
    /// entry per message"), so the numbers need not follow each other.
    pub(super) kept: VecDeque<u64>,
    /// While history holds entries: every number after it is kept, alone or joined into a
    /// later entry of its message; the last number history dropped.
    pub(super) floor: u64,
    /// When each entry was appended, on the shadow's clock.
    pub(super) at: Vec<Duration>,
    /// The length of each entry's frame, counted against history's `max_bytes` (0: not
    /// counted).
    pub(super) bytes: Vec<usize>,
}

impl Incarnation {
    pub(super) fn head(&self) -> u64 {
        self.entries.len() as u64
    }

    pub(super) fn entry(&self, seq: u64) -> &Entry {
        &self.entries[seq as usize - 1]
    }

    /// The first sequence number history still holds, alone or joined into a later entry of
    /// its message (the next one if it holds none).
    pub(super) fn oldest(&self) -> u64 {
        if self.kept.is_empty() {
            self.head() + 1
        } else {
            self.floor + 1
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The bytes of the frames history keeps.
    fn kept_bytes(&self) -> usize {
        self.kept
            .iter()
            .map(|&seq| self.bytes[seq as usize - 1])
            .sum()
    }
}

#[derive(Debug, Default)]
pub(super) struct Shadow {
    pub(super) history: u64,
    /// The bytes of frames history keeps per stream.
    pub(super) max_bytes: usize,
    /// Frame lengths count against `max_bytes` (the `resume` cases).
    pub(super) counts_bytes: bool,
    pub(super) streams: BTreeMap<StreamId, Incarnation>,
    /// Incarnations dropped, by stream and epoch (frames read late may belong to them).
    pub(super) retired: HashMap<(StreamId, u64), Incarnation>,
    /// Incarnations created so far.
    pub(super) created: usize,
    /// The time since the case began.
    pub(super) clock: Duration,
}

impl Shadow {
    pub(super) fn ensure(&mut self, stream: &StreamId) -> &mut Incarnation {
        let created = &mut self.created;
        self.streams
            .entry(stream.clone())
            .or_insert_with(|| Incarnation {
                id: std::mem::replace(created, *created + 1),
                epoch: None,
                entries: Vec::new(),
                kept: VecDeque::new(),
                floor: 0,
                at: Vec::new(),
                bytes: Vec::new(),
            })
    }

    /// Keep `entry`, whose frame is `bytes` long, and trim history to its bounds: at most
    /// `history` entries and `max_bytes` of frames, the oldest dropped first.
    pub(super) fn append(&mut self, stream: &StreamId, entry: Entry, bytes: usize) -> u64 {
        let (history, max_bytes, clock) = (self.history, self.max_bytes, self.clock);
        let s = self.ensure(stream);
        s.entries.push(entry);
        s.at.push(clock);
        s.bytes.push(bytes);
        let head = s.head();
        if s.kept.is_empty() {
            s.floor = head - 1;
        }
        // A delta takes the place of its message's entry: the text so far, at its number.
        if let Some(key) = s.entry(head).message() {
            let older = (s.kept.iter()).position(|&seq| s.entry(seq).message() == Some(key));
            if let Some(i) = older {
                s.kept.remove(i);
            }
        }
        s.kept.push_back(head);
        while s.kept.len() as u64 > history || s.kept_bytes() > max_bytes {
            s.floor = s.kept.pop_front().expect("more than history holds");
        }
        head
    }

    /// History drops every entry kept for `max_age` or longer, oldest first (section 6).
    pub(super) fn expire(&mut self, max_age: Duration) {
        let clock = self.clock;
        for s in self.streams.values_mut() {
            while let Some(&seq) = s.kept.front() {
                if clock - s.at[seq as usize - 1] < max_age {
                    break;
                }
                s.floor = seq;
                s.kept.pop_front();
            }
        }
    }

    pub(super) fn remove(&mut self, stream: &StreamId) {
        if let Some(s) = self.streams.remove(stream) {
            if let Some(epoch) = s.epoch {
                self.retired.insert((stream.clone(), epoch), s);
            }
        }
    }

    pub(super) fn lookup(&self, stream: &StreamId, epoch: u64) -> Option<&Incarnation> {
        match self.streams.get(stream) {
            Some(s) if s.epoch == Some(epoch) => Some(s),
            _ => self.retired.get(&(stream.clone(), epoch)),
        }
    }

    /// `epoch` may be the epoch of `stream`'s incarnation: the one learned, or one that fits
    /// among the epochs learned of the incarnations created before and after it.
    fn check_epoch(&self, stream: &StreamId, epoch: u64) -> Result<&Incarnation, String> {
        let s =
            (self.streams.get(stream)).ok_or_else(|| format!("the shadow keeps no {stream}"))?;
        match s.epoch {
            Some(known) => ensure_eq!(epoch, known, "epoch of {}", stream),
            None => {
                let all = self.streams.values().chain(self.retired.values());
                let learned = all.filter_map(|i| Some((i.id, i.epoch?)));
                crate::epochs::fits(s.id, epoch, learned)
                    .map_err(|e| format!("{stream} created anew: {e}"))?;
            }
        }
        Ok(s)
    }

    /// Learn or confirm the epoch of `stream`'s incarnation from a frame a device read.
    pub(super) fn learn(&mut self, stream: &StreamId, epoch: u64) -> Result<(), String> {
        self.check_epoch(stream, epoch)?;
        if self.counts_bytes {
            check_epoch_digits(epoch).map_err(|e| format!("{stream}: {e}"))?;
        }
        let s = self.streams.get_mut(stream).expect("checked above");
        s.epoch = Some(epoch);
        Ok(())
    }

    /// The hub reports `stream` at `position` (its `stream_position`, or a publish's
    /// `Delivery`): the shadow's head, in an epoch that may be its incarnation's. Nothing is
    /// learned from it: epochs come from frames, as a client learns them.
    pub(super) fn confirm(&self, stream: &StreamId, position: Position) -> Result<(), String> {
        let s = self.check_epoch(stream, position.epoch)?;
        ensure_eq!(position.seq, s.head(), "head of {}", stream);
        Ok(())
    }
}
