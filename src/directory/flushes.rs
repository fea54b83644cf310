//! The connections' flush window deadlines: a connection whose outbox holds a message delta in
//! a flush window (module `outbox::window`) has exactly one, the instant the window closes,
//! kept in a [`Timers`] and moved by every offer that opens, fills or ends a window.
//!
//! [`Timers`]: crate::timer::Timers

use super::{Directory, Split};
use crate::id::ConnId;
use crate::outbox::{Flush, Offer};
use crate::outputs::Outputs;
use std::time::Instant;

impl Directory {
    /// The earliest flush window deadline.
    pub fn next_flush(&self) -> Option<(Instant, ConnId)> {
        self.flushes.next()
    }

    /// The earliest flush window deadline came (at or before `now`): the connection's held
    /// delta goes out, or waits in its queue (an overflow closes it as a slow consumer).
    pub fn flush_due(&mut self, now: Instant, out: &mut Outputs) {
        let Some((_, id)) = self.flushes.pop() else {
            return;
        };
        let width = self.message_flush;
        let Split {
            conns, mut sink, ..
        } = self.split(out);
        // An entry leaves with its connection, so it names an open one.
        let conn = &mut conns[id.index()];
        sink.offer(id, conn, |outbox, limits, backlog, send| {
            let flush = Flush { now, width };
            // The deadline is the instant its window closes: something is due.
            (outbox.window_closes(flush, limits, backlog, send)).unwrap_or(Offer::Sent)
        });
    }
}
