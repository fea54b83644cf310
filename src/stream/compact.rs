//! A message's deltas kept as one history entry: the text so far, at its latest delta's
//! sequence number.
//!
//! When a delta of a message is appended, it is joined in place into the entry that holds the
//! message so far ([`crate::run::Body::join`]: a copy of the delta, not of the text so far),
//! and that entry moves to the back with the delta's sequence number. The entry is a delta at
//! the first kept offset (0 unless history had already trimmed the message's beginning) with
//! all the text since. A history holds one entry per message, about as many bytes as its text,
//! however many deltas it took; the frame is encoded when a reader is replayed it.
//!
//! Resume stays exact: the numbers the joined entry stands for are still in history (the
//! stream's `floor` is unchanged), so a reader positioned anywhere in a message is behind the
//! joined entry's number and receives it whole; it keeps the part after the text it has, by
//! offset (PROTOCOL §6).

use super::Stream;
use crate::run::Delta;

impl Stream {
    /// The newest entry, a message delta, was just appended: join it into the entry that holds
    /// its message so far, if history still has it and the two follow each other.
    pub(super) fn join_message(&mut self) {
        let Some(last) = self.history.len().checked_sub(1) else {
            return;
        };
        let key = &self.history[last].coalesce;
        let Some(i) = (self.history.range(..last)).rposition(|e| &e.coalesce == key) else {
            return;
        };
        let newest = self.history[last].body.frame();
        let Some(delta) = Delta::parse(&newest) else {
            return;
        };
        let before = self.history[i].body.len();
        if !self.history[i].body.join(&delta) {
            return;
        }
        let delta = self.history.pop_back().expect("the newest entry");
        self.runs.dropped(&delta);
        let mut joined = self.history.remove(i).expect("index from rposition");
        self.bytes = self.bytes - before - newest.len() + joined.body.len();
        joined.seq = delta.seq;
        joined.at = delta.at;
        // Text that waited for a connection still waits, now in the joined entry.
        if delta.pending {
            self.pending -= usize::from(joined.pending);
            joined.pending = true;
        }
        joined.thread = delta.thread;
        self.history.push_back(joined);
    }
}
