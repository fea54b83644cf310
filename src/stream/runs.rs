//! The runs a stream's history holds entries of, counted as entries come and go, and whether
//! those include the run's ending: a late joiner is sent the events so far of the runs in
//! progress without a walk over the history.

use super::Entry;
use crate::id::{RunId, ThreadId};
use hashbrown::HashMap;
use smallvec::SmallVec;

/// The agent run a user-stream entry belongs to. A run with kept entries of which none `ends`
/// it is in progress as far as the history tells: on a node that did not run it too, since
/// with shared streams every node keeps the same entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunTag {
    pub id: RunId,
    /// The run's ending event (`agent_completed`, `agent_failed`, `agent_cancelled`,
    /// `producer_lost`).
    pub ends: bool,
}

/// The runs with entries in one stream's history.
#[derive(Debug, Default)]
pub(super) struct KeptRuns(HashMap<RunId, Kept>);

#[derive(Debug, PartialEq, Eq)]
struct Kept {
    /// The thread of its newest entry (every entry of one run has the run's).
    thread: Option<ThreadId>,
    /// Its entries in the history.
    entries: usize,
    /// The newest of them is its ending.
    ended: bool,
}

impl KeptRuns {
    /// `entry` became the newest of the history: whether its run ended, and on which thread,
    /// is its to say (a run's ending is its last event; after it, the same id may start a new
    /// run).
    pub fn appended(&mut self, entry: &Entry) {
        if let Some(kept) = self.kept(entry) {
            kept.ended = entry.run.as_ref().is_some_and(|r| r.ends);
            kept.thread.clone_from(&entry.thread);
        }
    }

    /// `entry` went in front of the history: an older entry of its run says nothing of how
    /// the run stands now, unless it is the run's only one.
    pub fn restored(&mut self, entry: &Entry) {
        self.kept(entry);
    }

    fn kept(&mut self, entry: &Entry) -> Option<&mut Kept> {
        let run = entry.run.as_ref()?;
        let kept = self.0.entry(run.id.clone()).or_insert_with(|| Kept {
            thread: entry.thread.clone(),
            entries: 0,
            ended: run.ends,
        });
        kept.entries += 1;
        Some(kept)
    }

    /// `entry` left the history (trimmed, or joined into another).
    pub fn dropped(&mut self, entry: &Entry) {
        let Some(run) = &entry.run else { return };
        if let Some(kept) = self.0.get_mut(&run.id) {
            kept.entries -= 1;
            if kept.entries == 0 {
                self.0.remove(&run.id);
            }
        }
    }

    /// The runs in progress on a thread that `receives` selects (`None`: without a thread).
    pub fn in_progress(
        &self,
        receives: impl Fn(Option<&ThreadId>) -> bool,
    ) -> SmallVec<[RunId; 2]> {
        let runs = self.0.iter();
        runs.filter(|(_, kept)| !kept.ended && receives(kept.thread.as_ref()))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Panics unless these are exactly the runs of `history`, counted anew.
    #[cfg(any(test, feature = "testing"))]
    pub fn check(&self, history: &std::collections::VecDeque<Entry>) {
        let mut anew = KeptRuns::default();
        history.iter().for_each(|e| anew.appended(e));
        assert_eq!(self.0, anew.0, "the runs kept are not those of the history");
    }
}
