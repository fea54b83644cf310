//! A message's deltas kept as one history entry: the text so far, at its latest delta's
//! sequence number.
//!
//! When a delta of a message is appended, the entry that holds the message so far is joined
//! into it ([`crate::run::append_delta`]) and leaves history: the new entry is a delta at the
//! first kept offset (0 unless history had already trimmed the message's beginning) with all
//! the text since, at the sequence number of the latest delta. A history holds one entry per
//! message, about as many bytes as its text, however many deltas it took.
//!
//! Resume stays exact: the numbers the joined entry stands for are still in history (the
//! stream's `floor` is unchanged), so a reader positioned anywhere in a message is behind the
//! joined entry's number and receives it whole; it keeps the part after the text it has, by
//! offset (PROTOCOL §6).

use super::Stream;

impl Stream {
    /// The newest entry, a message delta, was just appended: join into it the entry that holds
    /// its message so far, if history still has it and the two follow each other.
    pub(super) fn join_message(&mut self) {
        let Some(last) = self.history.len().checked_sub(1) else {
            return;
        };
        let key = self.history[last].coalesce.clone();
        let Some(i) = (self.history.range(..last)).rposition(|e| e.coalesce == key) else {
            return;
        };
        let Some(joined) =
            crate::run::append_delta(&self.history[i].frame, &self.history[last].frame)
        else {
            return;
        };
        let old = self.history.remove(i).expect("index from rposition");
        let newest = self.history.back_mut().expect("the newest entry");
        self.bytes = self.bytes - old.frame.len() - newest.frame.len() + joined.len();
        newest.frame = joined;
        // Text that waited for a connection still waits, now in the joined entry.
        if old.pending {
            self.pending -= usize::from(newest.pending);
            newest.pending = true;
        }
    }
}
