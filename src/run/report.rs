//! What happened to a run, for the application: each event and how many connections it
//! reached, within a bound. A run may last long and send many events; its report keeps the
//! first [`MAX_REPORT_EVENTS`] records and only counts those after them, so a run costs the hub
//! bounded memory however long it streams, and the report still tells whether everything
//! reached someone.

use super::EventKind;
use crate::id::{AgentId, RunId, ThreadId, UserId};
use serde::Serialize;

/// Records a run's report lists at most; later events are counted in
/// [`RunReport::omitted`] (and [`RunReport::omitted_undelivered`]).
pub const MAX_REPORT_EVENTS: usize = 1_000;

/// One event of a run and how many connections of the user it reached. Message deltas that
/// follow each other share one record: the last one's `seq`, the fewest `reached`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EventRecord {
    /// The event.
    pub kind: EventKind,
    /// Sequence number in the user's stream.
    pub seq: u64,
    /// Connections it was handed to when published (0 = buffered only).
    pub reached: usize,
}

/// What happened to a run: each event and whether it reached at least one connection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    /// The run.
    pub run: RunId,
    /// Its user.
    pub user: UserId,
    /// Its agent.
    pub agent: AgentId,
    /// Its thread, if bound to one.
    pub thread: Option<ThreadId>,
    /// The accepted events in order, the first [`MAX_REPORT_EVENTS`] records of them.
    pub events: Vec<EventRecord>,
    /// Events accepted after the listed records (message deltas counted one by one).
    pub omitted: u64,
    /// Of the omitted events, those that reached no connection.
    pub omitted_undelivered: u64,
    /// The ending, once the run ended.
    pub ended: Option<EventKind>,
}

impl RunReport {
    /// The report of a run that has no event yet.
    pub(crate) fn new(run: RunId, user: UserId, agent: AgentId, thread: Option<ThreadId>) -> Self {
        RunReport {
            run,
            user,
            agent,
            thread,
            events: Vec::new(),
            omitted: 0,
            omitted_undelivered: 0,
            ended: None,
        }
    }

    /// True before the run's first event.
    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Add an event: joined to the last record when both are message deltas, listed while
    /// there is room, counted otherwise.
    pub(crate) fn record(&mut self, record: EventRecord) {
        let listed = self.omitted == 0;
        let room = self.events.len() < MAX_REPORT_EVENTS;
        match self.events.last_mut() {
            Some(last)
                if listed
                    && record.kind == EventKind::AgentMessageDelta
                    && last.kind == record.kind =>
            {
                last.seq = record.seq;
                last.reached = last.reached.min(record.reached);
            }
            _ if listed && room => self.events.push(record),
            _ => {
                self.omitted += 1;
                self.omitted_undelivered += u64::from(record.reached == 0);
            }
        }
    }

    /// True if every event reached at least one connection when it was published.
    pub fn fully_delivered(&self) -> bool {
        self.omitted_undelivered == 0 && self.events.iter().all(|e| e.reached > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: EventKind, seq: u64, reached: usize) -> EventRecord {
        EventRecord { kind, seq, reached }
    }

    /// However many events a run sends, its report holds at most `MAX_REPORT_EVENTS` records;
    /// the rest are counted, and one that reached no one still shows in `fully_delivered`.
    #[test]
    fn a_long_run_lists_its_first_records_and_counts_the_rest() {
        let mut report = RunReport::new("r".into(), "u".into(), "a".into(), None);
        let total = MAX_REPORT_EVENTS as u64 + 500;
        for seq in 0..total {
            report.record(record(EventKind::AgentThinking, seq, 1));
        }
        assert_eq!(report.events.len(), MAX_REPORT_EVENTS);
        assert_eq!(
            report.events.last().unwrap().seq,
            MAX_REPORT_EVENTS as u64 - 1
        );
        assert_eq!((report.omitted, report.omitted_undelivered), (500, 0));
        assert!(report.fully_delivered());
        // Deltas past the bound are not joined to a listed record: each is counted.
        report.record(record(EventKind::AgentMessageDelta, total, 0));
        report.record(record(EventKind::AgentMessageDelta, total + 1, 1));
        assert_eq!((report.omitted, report.omitted_undelivered), (502, 1));
        assert_eq!(report.events.len(), MAX_REPORT_EVENTS);
        assert!(!report.fully_delivered(), "an omitted event reached no one");
    }

    /// Within the bound, deltas that follow each other share one record.
    #[test]
    fn deltas_in_a_row_share_a_record_within_the_bound() {
        let mut report = RunReport::new("r".into(), "u".into(), "a".into(), None);
        report.record(record(EventKind::AgentStarted, 1, 1));
        for seq in 2..2000 {
            report.record(record(EventKind::AgentMessageDelta, seq, 1));
        }
        assert_eq!(report.events.len(), 2);
        assert_eq!(report.events[1].seq, 1999);
        assert_eq!(report.omitted, 0);
    }
}
